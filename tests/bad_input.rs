//! No input can crash the engine: arbitrary text, SQL-shaped token soup, and a catalogue
//! of hostile statements each get a result or a clear error with a SQLSTATE, never a
//! panic, and the database keeps working afterwards.

use proptest::prelude::*;
use tessera::Database;

const TOKENS: &[&str] = &[
    "SELECT",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "FROM",
    "WHERE",
    "CREATE",
    "TABLE",
    "INDEX",
    "UNIQUE",
    "ON",
    "DROP",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "DISTINCT",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "LIKE",
    "BETWEEN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "AS",
    "INTEGER",
    "TEXT",
    "BIGINT",
    "BOOLEAN",
    "PRIMARY",
    "KEY",
    "t",
    "a",
    "b",
    "count",
    "sum",
    "avg",
    "(",
    ")",
    ",",
    ";",
    "*",
    "+",
    "-",
    "/",
    "%",
    "=",
    "<",
    ">",
    "<=",
    "||",
    "::",
    "'x'",
    "''",
    "0",
    "1",
    "-1",
    "2147483648",
    "9223372036854775808",
    "1e308",
    "1.5",
    "$1",
    "true",
    "false",
];

fn database() -> Database {
    let db = Database::temporary().expect("db");
    db.session()
        .execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT); CREATE INDEX t_b ON t (b); INSERT INTO t VALUES (1, 'x'), (2, NULL)")
        .expect("setup");
    db
}

fn still_works(db: &Database) {
    let results = db
        .session()
        .execute("SELECT count(*) FROM t")
        .expect("database still answers");
    assert_eq!(results[0].rows.len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Arbitrary strings: an answer or an error with a valid SQLSTATE.
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let db = database();
        if let Err(e) = db.session().execute(&text) {
            prop_assert_eq!(e.sqlstate().len(), 5);
        }
        still_works(&db);
    }

    /// Sequences of SQL tokens reach deeper into planner and executor.
    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 1..24)) {
        let db = database();
        let sql = tokens.join(" ");
        if let Err(e) = db.session().execute_with_params(&sql, &[tessera::Value::Integer(1)]) {
            prop_assert_eq!(e.sqlstate().len(), 5);
        }
        still_works(&db);
    }
}

/// Hand-picked hostile statements, each with the SQLSTATE PostgreSQL would give.
#[test]
fn hostile_statements_get_clear_errors() {
    let db = database();
    let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    let cases: Vec<(String, &str)> = vec![
        (deep, "42601"),
        ("SELECT 9223372036854775807 + 1".into(), "22003"),
        ("SELECT -(-9223372036854775808)".into(), "22003"),
        ("SELECT 1 / 0".into(), "22012"),
        ("SELECT 1 % 0".into(), "22012"),
        ("SELECT 1e308 * 10".into(), "22003"),
        ("SELECT $2".into(), "42P02"),
        ("SELECT * FROM t LIMIT -1".into(), "2201W"),
        ("SELECT a FROM t ORDER BY 5".into(), "42P10"),
        ("SELECT nope FROM t".into(), "42703"),
        ("SELECT * FROM nope".into(), "42P01"),
        ("SELECT a + 'x' FROM t".into(), "22P02"),
        ("SELECT b + 1 FROM t".into(), "42883"),
        ("SELECT * FROM t WHERE a".into(), "42804"),
        ("SELECT 'x' LIKE 'x\\'".into(), "22023"),
        ("SELECT * FROM t, t".into(), "42712"),
        ("SELECT * FROM t RIGHT JOIN t u ON true".into(), "0A000"),
        ("SELECT (SELECT a FROM t)".into(), "21000"),
        ("INSERT INTO t VALUES (1, 'dup')".into(), "23505"),
        ("INSERT INTO t (a, a) VALUES (3, 3)".into(), "42701"),
        ("UPDATE t SET a = NULL".into(), "23502"),
        ("SET nonsense = 1".into(), "42704"),
        ("SET read_consistency = 'sometimes'".into(), "22023"),
    ];
    for (sql, sqlstate) in cases {
        let error = db.session().execute(&sql).expect_err(&sql);
        assert_eq!(error.sqlstate(), sqlstate, "{sql}: {error}");
    }
    still_works(&db);
}
