//! The `tessera shell` command as scripts use it: -c, -f, stdin, output formats, and
//! psql's ON_ERROR_STOP behaviour (stop at the first error, SQLSTATE on stderr, exit 3).

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn tessera(data: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["shell", "--data"])
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tessera");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait for tessera")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Repeated -c run in order; statements without rows print their command tags.
#[test]
fn commands_run_in_order_and_print_tags() {
    let dir = tempfile::tempdir().expect("dir");
    let output = tessera(
        dir.path(),
        &[
            "-c",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)",
            "-c",
            "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
            "-c",
            "BEGIN; UPDATE t SET name = 'z' WHERE id = 2; COMMIT",
            "-c",
            "SELECT * FROM t ORDER BY id",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "CREATE TABLE\nINSERT 0 2\nBEGIN\nUPDATE 1\nCOMMIT\n id | name \n----+------\n  1 | a\n  2 | z\n(2 rows)\n\n"
    );
}

/// A script file with multi-line statements, comments and a meta-command.
#[test]
fn file_scripts_with_multiline_statements() {
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("script.sql");
    std::fs::write(
        &script,
        "-- a comment; with a semicolon\nCREATE TABLE t (\n  id INTEGER PRIMARY KEY,\n  note TEXT\n);\nINSERT INTO t VALUES (1, 'semi;colon'), (2, 'it''s');\n\\dt\nSELECT note FROM t\nORDER BY id;\n",
    )
    .expect("write script");
    let output = tessera(
        &dir.path().join("db"),
        &["-f", script.to_str().expect("utf-8")],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("CREATE TABLE\nINSERT 0 2\n"), "{text}");
    assert!(text.contains(" public | t    | table | tessera"), "{text}");
    assert!(
        text.ends_with("    note    \n------------\n semi;colon\n it's\n(2 rows)\n\n"),
        "{text}"
    );
}

/// SQL piped on stdin runs like a file.
#[test]
fn stdin_scripts() {
    let dir = tempfile::tempdir().expect("dir");
    let output = tessera(dir.path(), &["--format", "csv"], Some("CREATE TABLE t (a INTEGER, b TEXT);\nINSERT INTO t VALUES (1, ''), (2, NULL), (3, 'x,y');\nSELECT * FROM t ORDER BY a;\n"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "CREATE TABLE\nINSERT 0 3\na,b\n1,\"\"\n2,\n3,\"x,y\"\n"
    );
}

/// JSON output keeps value types.
#[test]
fn json_output() {
    let dir = tempfile::tempdir().expect("dir");
    let output = tessera(
        dir.path(),
        &[
            "--format",
            "json",
            "-c",
            "SELECT 1 AS n, 'x' AS s, NULL AS z, true AS b, 1.5 AS f",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "[{\"n\":1,\"s\":\"x\",\"z\":null,\"b\":true,\"f\":1.5}]\n"
    );
}

/// The first error stops the run: SQLSTATE on stderr, exit status 3, and later
/// statements never run.
#[test]
fn stops_at_first_error() {
    let dir = tempfile::tempdir().expect("dir");
    let output = tessera(dir.path(), &[], Some("CREATE TABLE t (id INTEGER PRIMARY KEY);\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\n"));
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output)
            .contains("ERROR:  23505: duplicate key value violates unique constraint \"t_pkey\""),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("DETAIL:  Key (id)=(1) already exists."),
        "{}",
        stderr(&output)
    );
    let check = tessera(dir.path(), &["-c", "SELECT count(*) FROM t"], None);
    assert!(
        stdout(&check).contains("     1\n(1 row)"),
        "{}",
        stdout(&check)
    );
}

/// A syntax error shows the SQLSTATE and points at the position.
#[test]
fn syntax_errors_point_at_the_position() {
    let dir = tempfile::tempdir().expect("dir");
    let output = tessera(dir.path(), &["-c", "SELECT 1 +* 2"], None);
    assert_eq!(output.status.code(), Some(3));
    let text = stderr(&output);
    assert!(text.starts_with("ERROR:  42601: syntax error"), "{text}");
    assert!(
        text.contains("LINE 1: SELECT 1 +* 2\n                  ^"),
        "{text}"
    );
}

/// A database directory that cannot be opened is a clear error, not a panic.
#[test]
fn unopenable_directory_is_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let output = tessera(&file, &["-c", "SELECT 1"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot open database"),
        "{}",
        stderr(&output)
    );
}

/// A script may carry COPY FROM STDIN's data after the statement, up to `\.`, as
/// pg_dump writes it; `-c` COPY reads its data from standard input; COPY TO STDOUT
/// prints the data alone. A bad data line stops the script with COPY's CONTEXT.
#[test]
fn copy_in_scripts_and_commands() {
    let dir = tempfile::tempdir().unwrap();
    let script = "CREATE TABLE s (a INT, b TEXT);\nCOPY s FROM stdin;\n1\tone\n2\t\\N\n\\.\n\
                  COPY s TO STDOUT (FORMAT csv);\n";
    let output = tessera(dir.path(), &[], Some(script));
    assert_eq!(stdout(&output), "CREATE TABLE\nCOPY 2\n1,one\n2,\n");
    let output = tessera(dir.path(), &["-c", "COPY s FROM STDIN"], Some("3\tthree\n"));
    assert_eq!(stdout(&output), "COPY 1\n");
    let output = tessera(dir.path(), &[], Some("COPY s FROM stdin;\nx\ty\n\\.\n"));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("CONTEXT:  COPY s, line 1, column a: \"x\""),
        "{}",
        stderr(&output)
    );
    let output = tessera(dir.path(), &["-c", "SELECT count(*) FROM s"], None);
    assert!(stdout(&output).contains("     3\n"), "{}", stdout(&output));
}
