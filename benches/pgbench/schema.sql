-- Tables for the pgbench scripts; the same SQL works on Tessera and PostgreSQL.
CREATE TABLE accounts (aid INTEGER PRIMARY KEY, abalance INTEGER NOT NULL);
CREATE TABLE history (id BIGINT PRIMARY KEY, aid INTEGER NOT NULL, delta INTEGER NOT NULL);
