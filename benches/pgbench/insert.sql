-- Single-row INSERT; ids are random over 63 bits, so two runs practically never collide.
\set id random(1, 9000000000000000000)
INSERT INTO history (id, aid, delta) VALUES (:id, :client_id, 1);
