-- A transfer: two accounts (on different shards, as a hash of the key spreads them)
-- updated in one transaction. Over several data groups most transfers commit across
-- groups.
\set from random(1, :rows)
\set to random(1, :rows - 1)
\set to CASE WHEN :to >= :from THEN :to + 1 ELSE :to END
\set amount random(1, 100)
BEGIN;
UPDATE accounts SET abalance = abalance - :amount WHERE aid = :from;
UPDATE accounts SET abalance = abalance + :amount WHERE aid = :to;
END;
