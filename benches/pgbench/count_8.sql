-- A full-table count of a table in 8 shards.
SELECT count(*) FROM counted_8;
