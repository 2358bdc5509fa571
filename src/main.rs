//! The `dbrouter` binary: `serve` runs the proxy, `ctl` holds operator commands.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use dbrouter::config::Config;
use dbrouter::{ctl, server};

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
        /// Log format: `text` (default) or `json` (one object per line); or DBROUTER_LOG_FORMAT.
        #[arg(long, value_name = "text|json")]
        log_format: Option<String>,
    },
    /// Operator commands.
    Ctl {
        /// `text` for people, or `json`: one versioned JSON document on standard output
        /// (docs/operations.md, "Machine-readable ctl"). Exit codes: 0 done, 1 refused or
        /// failed, 2 usage, 3 retry later.
        #[arg(long, global = true, value_enum, default_value = "text")]
        output: OutputArg,
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
    /// The shared topology in ZooKeeper.
    Topology {
        #[command(subcommand)]
        command: TopologyCommand,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Shards in the ZooKeeper topology.
    Shard {
        #[command(subcommand)]
        command: ShardCommand,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Per-user overrides in the ZooKeeper topology.
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Planned switchover: make a standby the master of a shard without losing a write.
    Promote {
        /// Shard name.
        shard: String,
        /// The standby to promote (default: the most advanced healthy one).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Emergency failover: the master is gone; promote the most advanced standby.
    #[command(args_conflicts_with_subcommands = true)]
    Failover {
        /// Shard name.
        shard: Option<String>,
        /// Proceed even if the master answers.
        #[arg(long)]
        force: bool,
        #[command(subcommand)]
        command: Option<FailoverCommand>,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Make a fenced former master a standby again (refused if it has errant transactions).
    Rejoin {
        /// Shard name.
        shard: String,
        /// host:port of the server.
        server: String,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Add, rebuild or remove a standby (docs/operations.md, "Standby lifecycle").
    Standby {
        #[command(subcommand)]
        command: StandbyCommand,
    },
    /// A consistent logical backup of a shard, taken from a standby, with its GTID position.
    Snapshot {
        /// Shard name.
        shard: String,
        /// Directory to write `<shard>-<ms>.sql` and its `.json` metadata into.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Per shard: master, standbys, lag, GTID, semi-sync, health, epoch; and the routers' view.
    Status {
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// The routers registered in ZooKeeper and the topology version each serves, and those
    /// gone that may still serve from their last topology.
    Routers {
        #[command(subcommand)]
        command: Option<RoutersCommand>,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Background jobs (drains queued with --background) and their progress.
    Jobs {
        #[command(subcommand)]
        command: Option<JobsCommand>,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Make a running router re-read its config file (as SIGHUP does) and print the
    /// outcome; exit 0 applied, 1 refused (invalid file), 3 router unreachable.
    Reload {
        /// The router's admin listener (`server.admin_listen`), HOST:PORT.
        #[arg(long, value_name = "HOST:ADMINPORT")]
        router: String,
        /// A config file whose `server.admin_token` to send (default: DBROUTER_ADMIN_TOKEN).
        #[arg(long, short)]
        config: Option<PathBuf>,
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

/// `ctl --output`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputArg {
    /// Text for people.
    Text,
    /// One JSON document (`format`: "dbrouter-ctl/1").
    Json,
}

/// Where a ctl command finds ZooKeeper.
#[derive(clap::Args)]
struct ZkArgs {
    /// ZooKeeper target, e.g. zk://127.0.0.1:2181/dbrouter/dev (default: the config's [topology] source).
    #[arg(long, global = true)]
    zk: Option<String>,
    /// Config file whose [topology] source names ZooKeeper.
    #[arg(long, short, global = true, default_value = "config/dbrouter.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum TopologyCommand {
    /// Create the layout from a config file's [[shards]] and [[overrides]] (idempotent).
    Init {
        /// The file to read shards and overrides from.
        #[arg(long)]
        from: PathBuf,
        /// Replace an existing topology document (repairs a malformed one).
        #[arg(long)]
        force: bool,
    },
    /// Print the topology.
    Show {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put the config's ZooKeeper identity ([topology] zk_user) on every node of an
    /// existing tree: all permissions for it, reading for anyone.
    Secure,
}

#[derive(Subcommand)]
enum ShardCommand {
    /// Add a shard (appended). Weight 0 (the default) gives it no users; with a weight,
    /// existing users whose ring shard changes are first pinned where their rows are.
    Add {
        /// Shard name.
        name: String,
        /// host:port of its master.
        #[arg(long)]
        master: String,
        /// host:port of a standby (repeatable).
        #[arg(long = "standby")]
        standbys: Vec<String>,
        /// Ring weight (0: no users until `set-weight`).
        #[arg(long, default_value_t = 0)]
        weight: u32,
        /// Say how many users would be pinned; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// A hibernation shard (weight 0): `user hibernate` moves idle users there and a
        /// statement for one of them moves the user back.
        #[arg(long)]
        hibernation: bool,
        /// Then move the pinned users to their new ring shards (and unpin them).
        #[arg(long)]
        rebalance: bool,
        /// With --rebalance: moves at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// With --rebalance, per move: how long routers and open transactions may take to
        /// let the hold begin.
        #[arg(long, default_value_t = 5000)]
        max_hold_ms: u64,
    },
    /// Change a shard's ring weight (0 = no new users); existing users whose ring shard
    /// changes are first pinned where their rows are.
    SetWeight {
        /// Shard name.
        name: String,
        /// New weight.
        weight: u32,
        /// Say how many users would be pinned; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Then move the pinned users to their new ring shards (and unpin them).
        #[arg(long)]
        rebalance: bool,
        /// With --rebalance: moves at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// With --rebalance, per move: how long routers and open transactions may take to
        /// let the hold begin.
        #[arg(long, default_value_t = 5000)]
        max_hold_ms: u64,
    },
    /// Remove a shard (refused while any user, override, hold or move needs it).
    Remove {
        /// Shard name.
        name: String,
    },
    /// Move every user of a shard away (weight 0 first), several at a time; run again to resume.
    Drain {
        /// Shard name.
        name: String,
        /// Target shards, comma-separated (default: each user's ring shard).
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        /// Moves at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// At most this many moves started per second.
        #[arg(long)]
        rate: Option<f64>,
        /// Per move: how long routers and open transactions may take to let the hold begin.
        #[arg(long, default_value_t = 5000)]
        max_hold_ms: u64,
        /// Queue the moves as a job that the coordinator router runs, and return at once
        /// (`dbrouter ctl jobs` follows it).
        #[arg(long)]
        background: bool,
    },
    /// Record a new master (epoch + 1) without moving anything: a repair tool; use promote/failover to change masters safely.
    SetMaster {
        /// Shard name.
        name: String,
        /// host:port of the new master.
        master: String,
    },
}

#[derive(Subcommand)]
enum RoutersCommand {
    /// Forget a router gone from ZooKeeper that is known to be stopped (moves stop waiting
    /// for its topology.stale_serving_ms to pass).
    Forget {
        /// Router id, as `dbrouter ctl routers` lists it.
        id: String,
    },
}

/// `--method` of the standby commands.
#[derive(Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    /// mariadb-dump over SQL.
    Logical,
    /// mariadb-backup on the database hosts.
    Physical,
}

impl From<MethodArg> for dbrouter::config::CloneMethod {
    fn from(m: MethodArg) -> Self {
        match m {
            MethodArg::Logical => Self::Logical,
            MethodArg::Physical => Self::Physical,
        }
    }
}

#[derive(Subcommand)]
enum StandbyCommand {
    /// Clone a new or wiped server from a healthy member of the shard (a standby by
    /// preference) or from a snapshot, let it catch up, and publish it as a standby.
    Add {
        /// Shard name.
        shard: String,
        /// host:port of the new server.
        server: String,
        /// Copy from this member of the shard (default: the standby with the least lag).
        #[arg(long, conflicts_with = "from_snapshot")]
        from: Option<String>,
        /// Restore this snapshot (`ctl snapshot`'s .sql file) instead of copying.
        #[arg(long)]
        from_snapshot: Option<PathBuf>,
        /// Drop the server's own databases first (else a server holding any is refused).
        #[arg(long)]
        wipe: bool,
        /// How to copy: logical (mariadb-dump) or physical (mariadb-backup; default: the
        /// config's `[clone] method`).
        #[arg(long, value_enum, conflicts_with = "from_snapshot")]
        method: Option<MethodArg>,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Wipe a fenced former master that cannot rejoin (errant transactions), clone it from
    /// a standby and publish it as a standby.
    Rebuild {
        /// Shard name.
        shard: String,
        /// host:port of the former master.
        server: String,
        /// How to copy (default: the config's `[clone] method`).
        #[arg(long, value_enum)]
        method: Option<MethodArg>,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Stop listing a server as a standby of the shard (the server is not changed).
    Remove {
        /// Shard name.
        shard: String,
        /// host:port of the standby.
        server: String,
        /// Remove the last standby too (no failover will be possible).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        zk: ZkArgs,
    },
}

#[derive(Subcommand)]
enum FailoverCommand {
    /// Let automatic failover act on the shard again (after an anti-flap stop or a
    /// disarm); also forgets its last automatic failover.
    Arm {
        /// Shard name.
        shard: String,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Keep automatic failover away from the shard (maintenance of its master).
    Disarm {
        /// Shard name.
        shard: String,
        /// Why, shown by `ctl status` and in the alert.
        #[arg(long, default_value = "disarmed by an operator")]
        why: String,
        #[command(flatten)]
        zk: ZkArgs,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Stop a job: no new move of it starts; moves under way finish.
    Cancel {
        /// Job id, as `dbrouter ctl jobs` lists it.
        id: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Place a user on a shard (override); refused if the user has rows elsewhere.
    Pin {
        /// User id.
        user: String,
        /// Shard name.
        shard: String,
        /// Skip the check that the user has no rows on another shard.
        #[arg(long)]
        no_data_check: bool,
    },
    /// Remove a user's override; refused if the user has rows off their ring shard.
    Unpin {
        /// User id.
        user: String,
        /// Skip the check that the user has no rows on another shard.
        #[arg(long)]
        no_data_check: bool,
    },
    /// Move a user's rows to another shard online (the user's statements pause briefly).
    Move {
        /// User id.
        user: String,
        /// Target shard.
        shard: String,
        /// Delete rows of the user already on the target instead of refusing.
        #[arg(long)]
        force: bool,
        /// How long routers and open transactions may take to let the hold begin.
        #[arg(long, default_value_t = 5000)]
        max_hold_ms: u64,
    },
    /// Current and recent moves.
    Moves,
    /// Move idle users to a hibernation shard; a statement for one moves it back.
    Hibernate {
        /// User ids.
        users: Vec<String>,
        /// A file with one user id per line (added to the ones given).
        #[arg(long)]
        from_file: Option<PathBuf>,
        /// The hibernation shard (needed when there are several).
        #[arg(long)]
        to: Option<String>,
        /// Per move: how long routers and open transactions may take to let the hold begin.
        #[arg(long, default_value_t = 5000)]
        max_hold_ms: u64,
    },
    /// Where a user is placed, per ZooKeeper.
    Show {
        /// User id.
        user: String,
    },
}

fn zk_ctl(
    zk: ZkArgs,
    command: impl FnOnce(dbrouter::topology::zk::ZkTarget, PathBuf) -> ctl::output::CtlFuture,
) -> ExitCode {
    match ctl::topology::target(zk.zk.as_deref(), &zk.config) {
        Ok(target) => ctl::output::run(|| command(target, zk.config)),
        Err(e) => ctl::output::finish(Err(ctl::CtlError::usage(e))),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, log_format } => serve(config, log_format),
        Command::Ctl { command, output } => {
            ctl::output::set_json(output == OutputArg::Json);
            match command {
            CtlCommand::CheckConfig { config } => ctl::output::finish(ctl::check_config(&config)),
            CtlCommand::Topology { command, zk } => zk_ctl(zk, move |t, _| match command {
                TopologyCommand::Init { from, force } => {
                    ctl::output::boxed(async move { ctl::topology::init(&t, &from, force).await })
                }
                TopologyCommand::Secure => ctl::output::boxed(async move { ctl::topology::secure(&t).await }),
                TopologyCommand::Show { json } => {
                    ctl::output::boxed(async move { ctl::topology::show(&t, json).await })
                }
            }),
            CtlCommand::Shard { command, zk } => zk_ctl(zk, move |t, config_path| match command {
                ShardCommand::Add {
                    name,
                    master,
                    standbys,
                    weight,
                    dry_run,
                    hibernation,
                    rebalance,
                    parallel,
                    max_hold_ms,
                } => ctl::output::boxed(async move {
                    let config = Config::load(&config_path)?;
                    let shard = ctl::topology::NewShard {
                        name: &name,
                        master: &master,
                        standbys: &standbys,
                        weight,
                        hibernation,
                    };
                    if rebalance && !dry_run {
                        let settings = ctl::moves::DrainSettings {
                            parallel,
                            max_hold_ms,
                            ..Default::default()
                        };
                        let change = ctl::placement::RingChange::Add(shard.doc());
                        ctl::moves::change_ring_and_rebalance(&t, &config, change, &settings).await
                    } else {
                        ctl::topology::shard_add(&t, &config, shard, dry_run).await
                    }
                }),
                ShardCommand::SetWeight {
                    name,
                    weight,
                    dry_run,
                    rebalance,
                    parallel,
                    max_hold_ms,
                } => ctl::output::boxed(async move {
                    let config = Config::load(&config_path)?;
                    if rebalance && !dry_run {
                        let settings = ctl::moves::DrainSettings {
                            parallel,
                            max_hold_ms,
                            ..Default::default()
                        };
                        let change = ctl::placement::RingChange::Weight { name, weight };
                        ctl::moves::change_ring_and_rebalance(&t, &config, change, &settings).await
                    } else {
                        ctl::topology::shard_set_weight(&t, &config, &name, weight, dry_run).await
                    }
                }),
                ShardCommand::Remove { name } => ctl::output::boxed(async move {
                    let config = Config::load(&config_path)?;
                    ctl::topology::shard_remove(&t, &config, &name).await
                }),
                ShardCommand::Drain {
                    name,
                    to,
                    parallel,
                    rate,
                    max_hold_ms,
                    background,
                } => ctl::output::boxed(async move {
                    let config = Config::load(&config_path)?;
                    let settings = ctl::moves::DrainSettings {
                        to,
                        parallel,
                        rate,
                        max_hold_ms,
                    };
                    ctl::moves::shard_drain(&t, &config, &name, &settings, background).await
                }),
                ShardCommand::SetMaster { name, master } => {
                    ctl::output::boxed(async move { ctl::topology::shard_set_master(&t, &name, &master).await })
                }
            }),
            CtlCommand::User { command, zk } => zk_ctl(zk, move |t, config_path| match command {
                UserCommand::Pin {
                    user,
                    shard,
                    no_data_check,
                } => ctl::output::boxed(async move {
                    let config = Config::load(&config_path)?;
                    ctl::topology::user_pin(&t, &config, &user, &shard, no_data_check).await
                }),
                UserCommand::Unpin {
                    user,
                    no_data_check,
                } => ctl::output::boxed(async move {
                    let config = Config::load(&config_path)?;
                    ctl::topology::user_unpin(&t, &config, &user, no_data_check).await
                }),
                UserCommand::Move {
                    user,
                    shard,
                    force,
                    max_hold_ms,
                } => ctl::output::boxed(async move {
                    let config = Config::load(&config_path)?;
                    ctl::moves::user_move(&t, &config, &user, &shard, force, max_hold_ms).await
                }),
                UserCommand::Moves => ctl::output::boxed(async move { ctl::moves::user_moves(&t).await }),
                UserCommand::Hibernate {
                    mut users,
                    from_file,
                    to,
                    max_hold_ms,
                } => ctl::output::boxed(async move {
                    let config = Config::load(&config_path)?;
                    if let Some(path) = from_file {
                        let text = std::fs::read_to_string(&path)
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                        users.extend(
                            text.lines()
                                .map(str::trim)
                                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                                .map(str::to_string),
                        );
                    }
                    let hold = std::time::Duration::from_millis(max_hold_ms);
                    ctl::moves::user_hibernate(&t, &config, &users, to.as_deref(), hold).await
                }),
                UserCommand::Show { user } => ctl::output::boxed(async move {
                    let config = Config::load(&config_path)?;
                    ctl::topology::user_show(&t, &user, &config).await
                }),
            }),
            CtlCommand::Promote { shard, to, zk } => zk_ctl(zk, move |t, c| {
                ctl::output::boxed(async move { ctl::failover::promote(&t, &c, &shard, to.as_deref()).await })
            }),
            CtlCommand::Failover {
                command: Some(FailoverCommand::Arm { shard, zk }),
                ..
            } => zk_ctl(zk, move |t, _| {
                ctl::output::boxed(async move { ctl::failover::arm(&t, &shard, None).await })
            }),
            CtlCommand::Failover {
                command: Some(FailoverCommand::Disarm { shard, why, zk }),
                ..
            } => zk_ctl(zk, move |t, _| {
                ctl::output::boxed(async move { ctl::failover::arm(&t, &shard, Some(why)).await })
            }),
            CtlCommand::Failover {
                shard: Some(shard),
                force,
                zk,
                command: None,
            } => zk_ctl(zk, move |t, c| {
                ctl::output::boxed(async move { ctl::failover::failover(&t, &c, &shard, force).await })
            }),
            CtlCommand::Failover { shard: None, .. } => ctl::output::finish(Err(ctl::CtlError::usage(
                "usage: dbrouter ctl failover <SHARD> [--force] | arm <SHARD> | disarm <SHARD> [--why TEXT]",
            ))),
            CtlCommand::Rejoin { shard, server, zk } => zk_ctl(zk, move |t, c| {
                ctl::output::boxed(async move { ctl::failover::rejoin(&t, &c, &shard, &server).await })
            }),
            CtlCommand::Standby { command } => match command {
                StandbyCommand::Add {
                    shard,
                    server,
                    from,
                    from_snapshot,
                    wipe,
                    method,
                    zk,
                } => zk_ctl(zk, move |t, c| {
                    let source = match from_snapshot {
                        Some(path) => dbrouter::failover::standby::CloneSource::Snapshot(path),
                        None => dbrouter::failover::standby::CloneSource::Server(
                            from,
                            method.map(Into::into),
                        ),
                    };
                    ctl::output::boxed(async move {
                        ctl::failover::standby_add(&t, &c, &shard, &server, source, wipe).await
                    })
                }),
                StandbyCommand::Rebuild {
                    shard,
                    server,
                    method,
                    zk,
                } => zk_ctl(zk, move |t, c| {
                    ctl::output::boxed(async move {
                        let method = method.map(Into::into);
                        ctl::failover::standby_rebuild(&t, &c, &shard, &server, method).await
                    })
                }),
                StandbyCommand::Remove {
                    shard,
                    server,
                    force,
                    zk,
                } => zk_ctl(zk, move |t, _| {
                    ctl::output::boxed(async move {
                        ctl::failover::standby_remove(&t, &shard, &server, force).await
                    })
                }),
            },
            CtlCommand::Snapshot { shard, to, zk } => zk_ctl(zk, move |t, c| {
                ctl::output::boxed(async move { ctl::failover::snapshot(&t, &c, &shard, &to).await })
            }),
            CtlCommand::Status { zk } => zk_ctl(zk, |t, c| {
                ctl::output::boxed(async move { ctl::failover::status(&t, &c).await })
            }),
            CtlCommand::Routers { command, zk } => zk_ctl(zk, move |t, _| match command {
                None => ctl::output::boxed(async move { ctl::topology::routers(&t).await }),
                Some(RoutersCommand::Forget { id }) => {
                    ctl::output::boxed(async move { ctl::topology::forget_router(&t, &id).await })
                }
            }),
            CtlCommand::Jobs { command, zk } => zk_ctl(zk, move |t, _| match command {
                None => ctl::output::boxed(async move { ctl::moves::jobs(&t).await }),
                Some(JobsCommand::Cancel { id }) => {
                    ctl::output::boxed(async move { ctl::moves::job_cancel(&t, &id).await })
                }
            }),
            CtlCommand::Reload { router, config } => ctl_reload(&router, config.as_deref()),
            CtlCommand::Route { user, config } => ctl::output::finish(ctl::route(&config, &user)),
            CtlCommand::HashPassword { user } => {
                let mut line = String::new();
                if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
                    return ctl::output::finish(Err(ctl::CtlError::usage(format!(
                        "cannot read the password from stdin: {e}"
                    ))));
                }
                let password = line.trim_end_matches(['\r', '\n']);
                ctl::output::finish(Ok(ctl::hash_password(&user, password).into()))
            }
            }
        }
    }
}

/// `dbrouter ctl reload`: exit 0 applied, 1 refused, 2 usage, 3 unreachable.
fn ctl_reload(router: &str, config: Option<&std::path::Path>) -> ExitCode {
    let token = match (std::env::var("DBROUTER_ADMIN_TOKEN").ok(), config) {
        (Some(t), _) if !t.is_empty() => Some(t),
        (_, Some(path)) => match Config::load(path) {
            Ok(c) => c.server.admin_token().map(str::to_string),
            Err(e) => return ctl::output::finish(Err(ctl::CtlError::usage(e.to_string()))),
        },
        _ => None,
    };
    ctl::output::run(|| async move {
        ctl::reload::reload(router, token.as_deref())
            .await
            .map(ctl::Report::from)
    })
}

fn serve(config_path: PathBuf, log_format: Option<String>) -> ExitCode {
    use tracing_subscriber::prelude::*;
    // DBROUTER_LOG, when set, wins over the config's log.filter (also on reload).
    let from_env = EnvFilter::try_from_env("DBROUTER_LOG").ok();
    let fixed = from_env.is_some();
    let (filter, filter_handle) =
        tracing_subscriber::reload::Layer::new(from_env.unwrap_or_else(|| EnvFilter::new("info")));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let format = log_format.or_else(|| std::env::var("DBROUTER_LOG_FORMAT").ok());
    let fmt = match format.as_deref().unwrap_or("text") {
        "text" | "" => fmt.with_ansi(std::io::stderr().is_terminal()).boxed(),
        "json" => fmt.json().flatten_event(true).boxed(),
        other => {
            eprintln!("error: unknown log format {other:?} (--log-format / DBROUTER_LOG_FORMAT): use text or json");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::registry().with(filter).with(fmt).init();
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // The log filter from the config (validated with it), replaced on reload.
    let set_filter: Option<server::LogFilter> = if fixed {
        if config.log.filter.is_some() {
            tracing::warn!("DBROUTER_LOG is set: it overrides log.filter (also on reload)");
        }
        None
    } else {
        Some(Box::new(move |directives: &str| {
            let filter = EnvFilter::builder()
                .parse(directives)
                .map_err(|e| e.to_string())?;
            filter_handle.reload(filter).map_err(|e| e.to_string())
        }))
    };
    if let Some(set) = &set_filter {
        if let Err(e) = set(config.log.directives()) {
            tracing::warn!(error = %e, "log.filter not applied");
        }
    }
    // The listener, the admin listener, the topology watcher and the health checks run
    // here; client sessions run on the serving threads (frontend::workers).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::serve(config, config_path, set_filter)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
