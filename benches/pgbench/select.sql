-- Point SELECT by primary key.
\set aid random(1, :rows)
SELECT abalance FROM accounts WHERE aid = :aid;
