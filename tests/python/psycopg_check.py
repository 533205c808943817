"""Drives a Tessera server with psycopg 3, as a Python application would.

Usage: psycopg_check.py PORT. Exits non-zero (with a traceback) on the first failure.
Run by tests/server.rs; each check says what it proves.
"""
import sys

import psycopg
from psycopg import errors


def main(port: int) -> None:
    conninfo = f"host=127.0.0.1 port={port} user=python dbname=tessera"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT, price DOUBLE PRECISION,"
            " in_stock BOOLEAN, raw BYTEA)"
        )

        # Parameters of every Python type, and NULLs, round-trip.
        rows = [
            (1, "apple", 1.25, True, b"\x00\xff"),
            (2, "pear", None, False, None),
            (3, None, 0.5, None, b""),
        ]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO items VALUES (%s, %s, %s, %s, %s)", rows)
            cur.execute("SELECT id, name, price, in_stock, raw FROM items ORDER BY id")
            got = cur.fetchall()
        assert got == rows, got

        # Server-side prepared statements (prepare=True) give the same answers.
        for _ in range(3):
            cur = conn.execute("SELECT name FROM items WHERE id = %s", (1,), prepare=True)
            assert cur.fetchone() == ("apple",)

        # Errors map to psycopg's exception classes by SQLSTATE.
        try:
            conn.execute("INSERT INTO items (id, name) VALUES (%s, %s)", (1, "dup"))
            raise AssertionError("duplicate key accepted")
        except errors.UniqueViolation as e:
            assert e.sqlstate == "23505", e.sqlstate

        try:
            conn.execute("SELECT * FROM missing")
            raise AssertionError("missing table accepted")
        except errors.UndefinedTable:
            pass

    # Transactions: the context manager commits, an exception rolls back.
    with psycopg.connect(conninfo) as conn:
        with conn.transaction():
            conn.execute("UPDATE items SET price = price * 2 WHERE id = %s", (1,))
        try:
            with conn.transaction():
                conn.execute("DELETE FROM items")
                raise RuntimeError("abandon")
        except RuntimeError:
            pass
        count = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        assert count == 3, count
        price = conn.execute("SELECT price FROM items WHERE id = 1").fetchone()[0]
        assert price == 2.5, price

    # Default (non-autocommit) mode: nested transactions are savepoints, and a failed
    # inner block rolls back alone; RETURNING and ON CONFLICT answer as in PostgreSQL.
    with psycopg.connect(conninfo) as conn:
        new_id = conn.execute(
            "INSERT INTO items (id, name) VALUES (%s, %s) RETURNING id, name", (4, "plum")
        ).fetchone()
        assert new_id == (4, "plum"), new_id
        try:
            with conn.transaction():
                conn.execute("INSERT INTO items (id, name) VALUES (%s, %s)", (4, "again"))
            raise AssertionError("duplicate key accepted in a nested transaction")
        except errors.UniqueViolation:
            pass
        with conn.transaction():
            conn.execute("UPDATE items SET name = 'PLUM' WHERE id = 4")
        upserted = conn.execute(
            "INSERT INTO items (id, name) VALUES (%s, %s) ON CONFLICT (id) "
            "DO UPDATE SET name = items.name || '+' || excluded.name RETURNING name",
            (4, "x"),
        ).fetchone()
        assert upserted == ("PLUM+x",), upserted
        conn.commit()
        name = conn.execute("SELECT name FROM items WHERE id = 4").fetchone()[0]
        assert name == "PLUM+x", name

    # Default mode runs DDL in the driver's implicit transaction: committed by commit(),
    # undone by rollback(), unseen by another connection before.
    with psycopg.connect(conninfo) as conn, psycopg.connect(conninfo, autocommit=True) as other:
        conn.execute("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)")
        conn.execute("CREATE INDEX notes_body ON notes (body)")
        try:
            other.execute("SELECT * FROM notes")
            raise AssertionError("a table seen before its block committed")
        except errors.UndefinedTable:
            pass
        conn.commit()
        conn.execute("CREATE TABLE drafts (id INT)")
        conn.rollback()
        conn.execute("INSERT INTO notes VALUES (1, 'hello')")
        conn.commit()
        body = other.execute("SELECT body FROM notes WHERE body = 'hello'").fetchone()[0]
        assert body == "hello", body
        try:
            other.execute("SELECT * FROM drafts")
            raise AssertionError("a rolled-back table exists")
        except errors.UndefinedTable:
            pass

    # Generated keys as ORMs use them: a SERIAL and an identity key, their values given
    # back by RETURNING, with parameters (extended protocol) and in a transaction.
    with psycopg.connect(conninfo) as conn:
        conn.execute("CREATE TABLE people (id SERIAL PRIMARY KEY, name TEXT NOT NULL)")
        conn.execute(
            "CREATE TABLE visits (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
            " person INT, at_page TEXT)"
        )
        conn.commit()
        ids = []
        for name in ["ann", "bob", "cy"]:
            row = conn.execute(
                "INSERT INTO people (name) VALUES (%s) RETURNING id", (name,)
            ).fetchone()
            ids.append(row[0])
        assert ids == [1, 2, 3], ids
        visit = conn.execute(
            "INSERT INTO visits (person, at_page) VALUES (%s, %s) RETURNING id",
            (ids[0], "/home"),
        ).fetchone()[0]
        assert visit == 1, visit
        assert conn.execute("SELECT currval('people_id_seq')").fetchone()[0] == 3
        conn.rollback()
        # nextval is not undone by ROLLBACK: the next key is 4, as in PostgreSQL.
        row = conn.execute("INSERT INTO people (name) VALUES ('dee') RETURNING id").fetchone()
        assert row[0] == 4, row
        conn.commit()
        try:
            conn.execute("SELECT currval('nowhere_seq')")
            raise AssertionError("currval of a missing sequence")
        except errors.UndefinedTable:
            conn.rollback()
        # COPY as psycopg does it: rows written from Python values (with a SERIAL key
        # filled in), read back with copy TO; a bad row fails the COPY and loads nothing.
        conn.execute("CREATE TABLE loaded (id SERIAL PRIMARY KEY, name TEXT, score INT)")
        conn.commit()
        cur = conn.cursor()
        with cur.copy("COPY loaded (name, score) FROM STDIN") as copy:
            for i in range(2000):
                copy.write_row((f"row\t{i}", None if i % 10 == 0 else i))
        conn.commit()
        assert conn.execute("SELECT count(*), max(id), count(score) FROM loaded").fetchone() == (2000, 2000, 1800)
        with cur.copy("COPY (SELECT name, score FROM loaded WHERE id <= 2 ORDER BY id) TO STDOUT") as copy:
            rows = [row for row in copy.rows()]
        assert rows == [("row\t0", None), ("row\t1", "1")], rows
        try:
            with cur.copy("COPY loaded (name, score) FROM STDIN") as copy:
                copy.write_row(("fine", 1))
                copy.write_row(("bad", "many"))
            raise AssertionError("a bad COPY row was accepted")
        except errors.InvalidTextRepresentation:
            conn.rollback()
        assert conn.execute("SELECT count(*) FROM loaded").fetchone()[0] == 2000
        conn.commit()
    print("psycopg checks passed")


if __name__ == "__main__":
    main(int(sys.argv[1]))
