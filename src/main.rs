//! The `dbrouter` binary: `serve` runs the proxy, `ctl` holds operator commands.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use dbrouter::config::Config;
use dbrouter::{ctl, frontend};

/// A MySQL wire-protocol sharding proxy.
#[derive(Parser)]
#[command(name = "dbrouter", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// Path of the TOML config file.
        #[arg(long, short, default_value = "config/dbrouter.toml")]
        config: PathBuf,
    },
    /// Operator commands.
    Ctl {
        #[command(subcommand)]
        command: CtlCommand,
    },
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Validate a config file and print a summary.
    CheckConfig {
        /// Path of the TOML config file.
        #[arg(long, short, default_value = "config/dbrouter.toml")]
        config: PathBuf,
    },
    /// Print the [[users]] entry (password hashes) for an account; reads the password from stdin.
    HashPassword {
        /// Account name.
        user: String,
    },
    /// Show the shard a user id is routed to, its master, and why.
    Route {
        /// The user id.
        user: String,
        /// Path of the TOML config file.
        #[arg(long, short, default_value = "config/dbrouter.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::Ctl { command } => match command {
            CtlCommand::CheckConfig { config } => match ctl::check_config(&config) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            },
            CtlCommand::Route { user, config } => match ctl::route(&config, &user) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            },
            CtlCommand::HashPassword { user } => {
                let mut line = String::new();
                if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
                    eprintln!("error: cannot read the password from stdin: {e}");
                    return ExitCode::FAILURE;
                }
                let password = line.trim_end_matches(['\r', '\n']);
                print!("{}", ctl::hash_password(&user, password));
                ExitCode::SUCCESS
            }
        },
    }
}

fn serve(config_path: PathBuf) -> ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("DBROUTER_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(frontend::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
