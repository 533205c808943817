//! The psql-like shell: `tessera shell`.
//!
//! Interactive use gets line editing and a history file (rustyline), multi-line
//! statements ended by `;`, a prompt that shows the transaction state (`=>`, `=*>` in a
//! block, `=!>` in a failed block), psql-style tables and meta-commands. Non-interactive
//! use (`-c`, `-f`, or SQL piped on stdin) behaves like psql with ON_ERROR_STOP: it stops
//! at the first error, prints it on stderr with its SQLSTATE, and exits non-zero.

pub mod backend;
pub mod demo;
pub mod format;
pub mod meta;
pub mod splitter;
pub mod tls;

use crate::error::{Error, Result};
use crate::session::{Session, TransactionStatus};
use backend::Backend;
use format::OutputFormat;
use indicatif::{ProgressBar, ProgressStyle};
use meta::MetaAction;
use splitter::StatementSplitter;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Exit status after a SQL error in a non-interactive run (psql uses 3 as well).
pub const EXIT_SQL_ERROR: i32 = 3;

/// Where the shell's input comes from.
pub enum Input {
    /// `-c` commands, run in order.
    Commands(Vec<String>),
    /// A script file (`-f`).
    File(PathBuf),
    /// Standard input when it is not a terminal.
    Stdin,
    /// A terminal: the interactive REPL.
    Interactive,
}

/// The shell's state: what it runs statements on, plus display settings.
pub struct Shell {
    session: Box<dyn Backend>,
    format: OutputFormat,
    expanded: bool,
    timing: bool,
    /// Shown in the banner.
    description: String,
}

impl Shell {
    /// A shell over an embedded session. `description` says what it is connected to.
    pub fn new(mut session: Session, format: OutputFormat, description: String) -> Shell {
        session.set_progress_listener(Some(progress_listener()));
        Shell::over(Box::new(session), format, description)
    }

    /// A shell over any backend, such as a server connection ([`backend::Remote`]).
    pub fn over(session: Box<dyn Backend>, format: OutputFormat, description: String) -> Shell {
        Shell {
            session,
            format,
            expanded: false,
            timing: false,
            description,
        }
    }

    /// Runs the shell on `input`; returns the process exit status.
    pub fn run(&mut self, input: Input) -> i32 {
        let outcome = match input {
            Input::Commands(commands) => {
                commands.iter().try_for_each(|c| self.run_command_string(c))
            }
            Input::File(path) => match std::fs::File::open(&path) {
                Ok(file) => self.run_script(std::io::BufReader::new(file)),
                Err(e) => {
                    eprintln!("tessera: {}: {e}", path.display());
                    return 1;
                }
            },
            Input::Stdin => self.run_script(std::io::stdin().lock()),
            Input::Interactive => return self.interactive(),
        };
        match outcome {
            Ok(()) | Err(ShellStop::Quit) => 0,
            Err(ShellStop::Failed) => EXIT_SQL_ERROR,
        }
    }

    /// A `-c` string: a meta-command, or SQL sent as one unit (it may hold several
    /// statements, whose results print as each completes).
    fn run_command_string(&mut self, text: &str) -> Result<(), ShellStop> {
        if text.trim_start().starts_with('\\') {
            return self.meta(text);
        }
        let (format, expanded) = (self.format, self.expanded);
        let mut printed = Ok(());
        let outcome = self.session.execute_each(text, &mut |result| {
            if printed.is_ok() {
                printed = print_result(&result, format, expanded);
            }
        });
        outcome.map_err(|e| self.report(&e, text))?;
        printed.map_err(|_| ShellStop::Quit)?;
        self.copy_from_stdin()
    }

    /// A script: statements split at `;`, meta-commands on lines of their own.
    fn run_script(&mut self, reader: impl BufRead) -> Result<(), ShellStop> {
        let mut splitter = StatementSplitter::new();
        for line in reader.lines() {
            let line = line.map_err(|e| {
                eprintln!("tessera: cannot read input: {e}");
                ShellStop::Failed
            })?;
            if self.session.copy_in_progress() {
                // A COPY FROM STDIN's data follows it in the script, up to `\.`.
                self.copy_line(&line)?;
                continue;
            }
            if !splitter.has_partial() && line.trim_start().starts_with('\\') {
                self.meta(&line)?;
                continue;
            }
            for statement in splitter.push(&format!("{line}\n")) {
                self.run_statement(&statement)
                    .map_err(|e| self.report(&e, &statement))?;
            }
        }
        if let Some(rest) = splitter.take_rest() {
            self.run_statement(&rest)
                .map_err(|e| self.report(&e, &rest))?;
        }
        self.end_copy()
    }

    /// One line of COPY FROM STDIN data; `\.` ends the data.
    fn copy_line(&mut self, line: &str) -> Result<(), ShellStop> {
        if line == "\\." {
            return self.end_copy();
        }
        let data = format!("{line}\n");
        self.session
            .copy_data(data.as_bytes())
            .map_err(|e| self.report(&e, ""))
    }

    /// Ends a COPY FROM STDIN, if one is waiting, and prints its `COPY n`.
    fn end_copy(&mut self) -> Result<(), ShellStop> {
        if !self.session.copy_in_progress() {
            return Ok(());
        }
        let result = self.session.copy_done().map_err(|e| self.report(&e, ""))?;
        print_result(&result, self.format, self.expanded).map_err(|_| ShellStop::Quit)
    }

    /// A COPY FROM STDIN run by `-c` or typed at the prompt reads its data from the
    /// shell's standard input, as psql's does.
    fn copy_from_stdin(&mut self) -> Result<(), ShellStop> {
        if !self.session.copy_in_progress() {
            return Ok(());
        }
        if std::io::stdin().is_terminal() {
            println!("Enter data to be copied followed by a newline.");
            println!("End with a backslash and a period on a line by itself, or an EOF signal.");
        }
        for line in std::io::stdin().lock().lines() {
            let line = line.map_err(|e| {
                eprintln!("tessera: cannot read input: {e}");
                ShellStop::Failed
            })?;
            if !self.session.copy_in_progress() {
                break;
            }
            self.copy_line(&line)?;
        }
        self.end_copy()
    }

    fn run_statement(&mut self, sql: &str) -> Result<()> {
        let started = Instant::now();
        let (format, expanded) = (self.format, self.expanded);
        self.session.execute_each(sql, &mut |result| {
            let _ = print_result(&result, format, expanded);
        })?;
        if self.timing {
            println!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(())
    }

    fn meta(&mut self, line: &str) -> Result<(), ShellStop> {
        let action = meta::run(line, self.session.as_mut()).map_err(|e| self.report(&e, line))?;
        match action {
            MetaAction::Quit => return Err(ShellStop::Quit),
            MetaAction::Print(text) => print!("{text}"),
            MetaAction::Show(results) => {
                for result in results {
                    let _ = print_result(&result, self.format, self.expanded);
                }
            }
            MetaAction::ToggleTiming => {
                self.timing = !self.timing;
                println!("Timing is {}.", if self.timing { "on" } else { "off" });
            }
            MetaAction::ToggleExpanded => {
                self.expanded = !self.expanded;
                println!(
                    "Expanded display is {}.",
                    if self.expanded { "on" } else { "off" }
                );
            }
        }
        Ok(())
    }

    /// Prints an error as psql does (with SQLSTATE, and the position of a syntax error).
    fn report(&self, error: &Error, sql: &str) -> ShellStop {
        eprintln!("{}", describe_error(error, sql));
        ShellStop::Failed
    }

    fn prompt(&self, continuation: bool) -> String {
        let marker = match (continuation, self.session.transaction_status()) {
            (true, _) => "-",
            (false, TransactionStatus::Idle) => "=",
            (false, TransactionStatus::InTransaction) => "=*",
            (false, TransactionStatus::Failed) => "=!",
        };
        format!("tessera{marker}> ")
    }

    fn interactive(&mut self) -> i32 {
        let config = rustyline::Config::builder()
            .auto_add_history(true)
            .max_history_size(1000)
            .unwrap_or_default()
            .build();
        let mut editor = match rustyline::DefaultEditor::with_config(config) {
            Ok(editor) => editor,
            Err(e) => {
                eprintln!("tessera: cannot start line editing: {e}");
                return 1;
            }
        };
        let history = history_path();
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        println!(
            "tessera {} ({})\nType \"\\?\" for help, \"\\q\" to quit.\n",
            env!("CARGO_PKG_VERSION"),
            self.description
        );
        let mut splitter = StatementSplitter::new();
        loop {
            let prompt = self.prompt(splitter.has_partial());
            let line = match editor.readline(&prompt) {
                Ok(line) => line,
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    splitter = StatementSplitter::new();
                    continue;
                }
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(e) => {
                    eprintln!("tessera: {e}");
                    break;
                }
            };
            if !splitter.has_partial() && line.trim_start().starts_with('\\') {
                if let Err(ShellStop::Quit) = self.meta(&line) {
                    break;
                }
                continue;
            }
            for statement in splitter.push(&format!("{line}\n")) {
                if let Err(e) = self.run_statement(&statement) {
                    eprintln!("{}", describe_error(&e, &statement));
                }
                self.copy_from_prompt(&mut editor);
            }
        }
        if let Some(path) = &history {
            let _ = editor.save_history(path);
        }
        0
    }
}

impl Shell {
    /// A COPY FROM STDIN typed at the prompt takes its data from the lines typed next.
    fn copy_from_prompt(&mut self, editor: &mut rustyline::DefaultEditor) {
        if !self.session.copy_in_progress() {
            return;
        }
        println!("Enter data to be copied followed by a newline.");
        println!("End with a backslash and a period on a line by itself, or an EOF signal.");
        while self.session.copy_in_progress() {
            let line = match editor.readline(">> ") {
                Ok(line) => line,
                Err(_) => "\\.".to_string(),
            };
            if self.copy_line(&line).is_err() {
                return;
            }
        }
    }
}

/// Why a non-interactive run stopped early.
enum ShellStop {
    /// `\q`, or output could not be written (closed pipe).
    Quit,
    /// A statement failed.
    Failed,
}

fn print_result(
    result: &crate::session::QueryResult,
    format: OutputFormat,
    expanded: bool,
) -> std::io::Result<()> {
    for notice in &result.notices {
        eprintln!("NOTICE:  {notice}");
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(format::render(result, format, expanded).as_bytes())?;
    stdout.flush()
}

/// psql's error layout: `ERROR:  SQLSTATE: message`, then DETAIL/HINT lines, and for a
/// syntax error the offending line with a caret under the position.
pub fn describe_error(error: &Error, sql: &str) -> String {
    let mut text = format!("ERROR:  {}: {error}", error.sqlstate());
    if let Some(detail) = error.detail() {
        text.push_str(&format!("\nDETAIL:  {detail}"));
    }
    if let Some(hint) = error.hint() {
        text.push_str(&format!("\nHINT:  {hint}"));
    }
    if let Some(context) = error.context() {
        text.push_str(&format!("\nCONTEXT:  {context}"));
    }
    if let Some(position) = error.position() {
        let mut remaining = position as usize;
        for (number, line) in sql.split('\n').enumerate() {
            let length = line.chars().count() + 1;
            if remaining <= length {
                let prefix = format!("LINE {}: ", number + 1);
                text.push_str(&format!(
                    "\n{prefix}{line}\n{}^",
                    " ".repeat(prefix.len() + remaining.saturating_sub(1))
                ));
                break;
            }
            remaining -= length;
        }
    }
    text
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".tessera_history"))
}

/// How long an operation runs before a progress bar appears.
const PROGRESS_DELAY: Duration = Duration::from_millis(300);

/// A listener that draws a progress bar on stderr for long CREATE INDEX backfills.
fn progress_listener() -> crate::session::ProgressListener {
    let state: Arc<Mutex<(Option<Instant>, Option<ProgressBar>)>> =
        Arc::new(Mutex::new((None, None)));
    Arc::new(move |done: u64, total: u64| {
        let Ok(mut state) = state.lock() else { return };
        let started = *state.0.get_or_insert_with(Instant::now);
        if state.1.is_none()
            && started.elapsed() >= PROGRESS_DELAY
            && std::io::stderr().is_terminal()
        {
            let bar = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows ({eta} left)")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message("building index");
            state.1 = Some(bar);
        }
        if let Some(bar) = &state.1 {
            bar.set_length(total);
            bar.set_position(done);
        }
        if done >= total {
            if let Some(bar) = state.1.take() {
                bar.finish_and_clear();
            }
            state.0 = None;
        }
    })
}
