CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT NOT NULL, price DOUBLE PRECISION, tags TEXT);
\copy items (name, price, tags) from 'items.csv' with (format csv, header)
\copy items from 'items.txt'
SELECT * FROM items ORDER BY id;
\copy items to stdout with (format csv, header)
COPY items (id, tags) TO STDOUT;
COPY (SELECT id, name FROM items WHERE price > 2 ORDER BY id) TO STDOUT WITH CSV HEADER DELIMITER ';';
\copy items from 'short.txt'
\copy items (id, name, price) from 'badnumber.txt'
\copy items (id, name) from 'duplicate.txt'
SELECT count(*) FROM items;
BEGIN;
\copy items (name) from 'names.txt'
SELECT count(*) FROM items;
ROLLBACK;
SELECT count(*) FROM items;
BEGIN;
\copy items (name) from 'names.txt'
\copy items (id, name) from 'duplicate.txt'
SELECT 1;
ROLLBACK;
SELECT count(*) FROM items;
