-- A full-table count of the same rows in one shard.
SELECT count(*) FROM counted_1;
