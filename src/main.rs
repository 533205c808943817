//! The `tessera` command: `tessera shell` opens the psql-like shell on an embedded
//! database; `tessera server` serves a database to PostgreSQL clients.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use tessera::server::{self, ClusterFlags, ConfigFile, LogFormat, ServerConfig, ServerFlags};
use tessera::shell::backend::Remote;
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
        /// Connect to a server instead of opening a directory:
        /// postgres://user[:password]@host:port/db (PGPASSWORD is used too);
        /// TLS as in libpq: ?sslmode=disable|prefer|require|verify-ca|verify-full
        /// and &sslrootcert=FILE (default prefer).
        #[arg(long, conflicts_with = "data")]
        connect: Option<String>,
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
    /// Serve a database over the PostgreSQL wire protocol (psql, pgbench, drivers).
    Server {
        /// TOML file: data, listen, max_connections, log_format, max_message_size,
        /// statement_timeout, idle_session_timeout, idle_in_transaction_session_timeout,
        /// [tls] cert/key/required, [[users]] name/password. Flags win (see README).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Database directory (created if missing) [default: ./tessera-data].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:5432].
        #[arg(long)]
        listen: Option<String>,
        /// Most concurrent connections [default: 100].
        #[arg(long)]
        max_connections: Option<usize>,
        /// Log format; the level comes from RUST_LOG (default: info).
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
        /// Cluster node: this node's id (positive, unique, never reused).
        #[arg(long)]
        node_id: Option<u64>,
        /// Cluster node: address of the Raft transport, e.g. 127.0.0.1:7001.
        #[arg(long)]
        raft_listen: Option<String>,
        /// Cluster node, first start: every member as ID=HOST:PORT (Raft addresses),
        /// comma-separated, the same list on every member.
        #[arg(long, conflicts_with = "join")]
        initial_members: Option<String>,
        /// Cluster node, first start: join the cluster through this member's Raft address.
        #[arg(long)]
        join: Option<String>,
        /// Cluster node, first start: how many data groups the cluster runs (1 to 16,
        /// the same on every member; default 1). Tables' shards are spread over them.
        #[arg(long)]
        data_groups: Option<u64>,
        /// Cluster node, first start: how many nodes replicate each data group (1 to 7,
        /// default 3). With more nodes than this, each node hosts only its groups and
        /// reaches the others over the network.
        #[arg(long)]
        replication_factor: Option<usize>,
    },
    /// Start a throwaway local cluster (127.0.0.1 .. 127.0.0.N) and open the shell on
    /// it; `\node stop N` / `\node start N` in the shell kill and restart a node, to
    /// watch failover. Everything is removed when the shell exits.
    Demo {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
    },
    /// Inspect or change a running cluster through any member's SQL address
    /// (runs SHOW CLUSTER or ALTER CLUSTER there).
    Cluster {
        /// The member to connect to: postgres://user[:password]@host:port/db.
        #[arg(long, default_value = "postgres://tessera@127.0.0.1:5432/tessera")]
        connect: String,
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Print the SCRAM-SHA-256 verifier of a password, for a [[users]] entry of the
    /// server's config file. Reads the password from the terminal (twice, not echoed)
    /// or, when stdin is not a terminal, from its first line.
    HashPassword {
        /// SCRAM iteration count (more is slower for attackers and for every login).
        #[arg(long, default_value_t = server::auth::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
}

/// What `tessera cluster` does.
#[derive(Subcommand)]
enum ClusterAction {
    /// Every node and group: role, term, leader, indexes, lag.
    Status,
    /// Add the running node whose Raft transport listens at RAFT_ADDRESS: it becomes a
    /// learner of every group, catches up, then a voter.
    Add {
        /// The new node's Raft address, e.g. 127.0.0.4:7001.
        raft_address: String,
    },
    /// Remove a node from every group (its leaderships move first). Stop it afterwards;
    /// its id is never reused.
    Remove {
        /// The node's id.
        node_id: u64,
    },
    /// Move leadership to a node, of one group or of every group.
    TransferLeader {
        /// The node that should lead.
        #[arg(long)]
        to: u64,
        /// Only this group (0 is the metadata group, 1 the data group).
        #[arg(long)]
        group: Option<u64>,
    },
}

impl ClusterAction {
    /// The statement that does it.
    fn sql(&self) -> String {
        match self {
            ClusterAction::Status => "SHOW CLUSTER".into(),
            ClusterAction::Add { raft_address } => format!(
                "ALTER CLUSTER ADD NODE '{}'",
                raft_address.replace('\'', "''")
            ),
            ClusterAction::Remove { node_id } => format!("ALTER CLUSTER REMOVE NODE {node_id}"),
            ClusterAction::TransferLeader { to, group } => match group {
                Some(group) => {
                    format!("ALTER CLUSTER TRANSFER LEADER TO NODE {to} FOR GROUP {group}")
                }
                None => format!("ALTER CLUSTER TRANSFER LEADER TO NODE {to}"),
            },
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    // Diagnostics go to stderr, filtered by RUST_LOG, so they never mix with output.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Shell {
            data,
            connect,
            commands,
            file,
            format,
        } => {
            init_logging(LogFormat::Human, "warn");
            run_shell(data, connect, commands, file, format)
        }
        Command::Server {
            config,
            data,
            listen,
            max_connections,
            log_format,
            node_id,
            raft_listen,
            initial_members,
            join,
            data_groups,
            replication_factor,
        } => match server_config(
            config,
            ServerFlags {
                data,
                listen,
                max_connections,
                log_format,
                cluster: ClusterFlags {
                    node_id,
                    raft_listen,
                    initial_members,
                    join,
                    data_groups,
                    replication_factor,
                },
            },
        ) {
            Ok(config) => {
                // openraft narrates every election and vote at info; its warnings are
                // what an operator needs.
                init_logging(config.log_format, "info,openraft=warn");
                match server::run(config) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("tessera server: {e}");
                        1
                    }
                }
            }
            Err(e) => {
                eprintln!("tessera server: {e}");
                2
            }
        },
        Command::Demo { nodes } => {
            init_logging(LogFormat::Human, "warn");
            run_demo(nodes)
        }
        Command::Cluster { connect, action } => {
            init_logging(LogFormat::Human, "warn");
            run_shell(
                PathBuf::new(),
                Some(connect),
                vec![action.sql()],
                None,
                OutputFormat::Table,
            )
        }
        Command::HashPassword { iterations } => hash_password(iterations),
    };
    std::process::exit(code);
}

fn read_password() -> Result<String, String> {
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
    let second = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
    if first != second {
        return Err("the passwords do not match".into());
    }
    Ok(first)
}

fn hash_password(iterations: u32) -> i32 {
    let verifier = read_password()
        .and_then(|password| {
            if password.is_empty() {
                return Err("the password is empty".to_string());
            }
            server::auth::Verifier::from_password(&password, iterations).map_err(|e| e.to_string())
        })
        .and_then(|verifier| {
            // Checked like the server will check it (iteration bounds).
            server::auth::Verifier::parse(&verifier.to_string()).map_err(|e| e.to_string())
        });
    match verifier {
        Ok(verifier) => {
            println!("{verifier}");
            0
        }
        Err(e) => {
            eprintln!("tessera hash-password: {e}");
            2
        }
    }
}

fn server_config(file: Option<PathBuf>, flags: ServerFlags) -> tessera::Result<ServerConfig> {
    let file = match file {
        Some(path) => ConfigFile::load(&path)?,
        None => ConfigFile::default(),
    };
    ServerConfig::resolve(file, flags)
}

fn run_shell(
    data: PathBuf,
    connect: Option<String>,
    commands: Vec<String>,
    file: Option<PathBuf>,
    format: OutputFormat,
) -> i32 {
    let input = if !commands.is_empty() {
        Input::Commands(commands)
    } else if let Some(file) = file {
        Input::File(file)
    } else if std::io::stdin().is_terminal() {
        Input::Interactive
    } else {
        Input::Stdin
    };
    if let Some(url) = connect {
        return match Remote::connect(&url) {
            Ok(remote) => {
                let description = format!("server {}", redact_password(&url));
                Shell::over(Box::new(remote), format, description).run(input)
            }
            Err(e) => {
                eprintln!("tessera: cannot connect: {}: {e}", e.sqlstate());
                2
            }
        };
    }
    let database = match tessera::Database::open(&data) {
        Ok(database) => database,
        Err(e) => {
            eprintln!("tessera: {e}");
            return 1;
        }
    };
    let description = format!("embedded, data in {}", data.display());
    Shell::new(database.session(), format, description).run(input)
}

fn run_demo(nodes: usize) -> i32 {
    let cluster = match tessera::shell::demo::DemoCluster::start(nodes) {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("tessera demo: {e}");
            return 1;
        }
    };
    let input = if std::io::stdin().is_terminal() {
        Input::Interactive
    } else {
        Input::Stdin
    };
    let description =
        format!("a {nodes}-node demo cluster (\\cluster shows it; \\node stop N kills a node)");
    let mut shell = Shell::over(Box::new(cluster), OutputFormat::Table, description);
    // The shell owns the cluster: dropping it here stops every node before exit.
    let code = shell.run(input);
    drop(shell);
    code
}

/// The URL as shown in the banner: a password in it is replaced by `***`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}
