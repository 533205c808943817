//! The `tessera` command: `tessera shell` opens the psql-like shell on an embedded database.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use tessera::shell::format::OutputFormat;
use tessera::shell::{Input, Shell};

/// Tessera: a replicated, hash-sharded SQL database.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open a psql-like shell on an embedded database.
    Shell {
        /// Database directory (created if missing).
        #[arg(long, default_value = "./tessera-data")]
        data: PathBuf,
        /// Run this SQL (or meta-command) and exit; may be given several times.
        #[arg(short = 'c', long = "command")]
        commands: Vec<String>,
        /// Run the statements in this file and exit.
        #[arg(short = 'f', long = "file", conflicts_with = "commands")]
        file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

fn main() {
    let cli = Cli::parse();
    // Diagnostics go to stderr, filtered by RUST_LOG (default: warnings only), so they
    // never mix with query output on stdout.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match cli.command {
        Command::Shell {
            data,
            commands,
            file,
            format,
        } => run_shell(data, commands, file, format),
    };
    std::process::exit(code);
}

fn run_shell(
    data: PathBuf,
    commands: Vec<String>,
    file: Option<PathBuf>,
    format: OutputFormat,
) -> i32 {
    let database = match tessera::Database::open(&data) {
        Ok(database) => database,
        Err(e) => {
            eprintln!("tessera: {e}");
            return 1;
        }
    };
    let input = if !commands.is_empty() {
        Input::Commands(commands)
    } else if let Some(file) = file {
        Input::File(file)
    } else if std::io::stdin().is_terminal() {
        Input::Interactive
    } else {
        Input::Stdin
    };
    let description = format!("embedded, data in {}", data.display());
    Shell::new(database.session(), format, description).run(input)
}
