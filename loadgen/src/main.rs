//! `loadgen`: client sessions or game-server traffic against a zone node, as
//! a process of its own. See the crate docs and README's capacity section.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use loadgen::Report;
use loadgen::clients::{self, ClientsConfig};
use loadgen::traffic::{self, TrafficConfig};

/// A load generator that is not the system: run it as separate processes
/// beside the zone nodes. Capacity is measured with it (`cargo xtask bench
/// capacity`); the world simulation is for chaos, economy and the audit.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Holds one WebSocket session per player; prints `ready <n>` once every
    /// session is welcomed, then holds them and writes its report.
    Clients {
        /// The node's WebSocket URL.
        #[arg(long, default_value = "ws://127.0.0.1:8080/v1/ws")]
        url: String,
        /// The node's JWT secret (its `--jwt-secret`), to mint tokens.
        #[arg(long, env = "INVENTORY_JWT_SECRET", hide_env_values = true)]
        jwt_secret: String,
        #[command(flatten)]
        players: Players,
        /// Sessions opened per second while ramping up.
        #[arg(long, default_value_t = 1000)]
        connect_rate: u64,
        /// Sessions per player (a player on several devices).
        #[arg(long, default_value_t = 1)]
        sessions_per_player: u64,
        /// Seconds to wait for every session's welcome before going on with
        /// those welcomed.
        #[arg(long, default_value_t = 60)]
        ramp_timeout: u64,
        /// Seconds to hold the sessions once all are welcomed.
        #[arg(long, default_value_t = 60)]
        hold: u64,
        /// List in the report the version each session holds of each owner
        /// at the end.
        #[arg(long)]
        keep_versions: bool,
        /// Where to write the report (JSON); standard output if absent.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Sends game-server changes over HTTP at a fixed rate.
    Traffic {
        /// The node's HTTP base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The node's service token.
        #[arg(long, env = "INVENTORY_SERVICE_TOKEN", hide_env_values = true)]
        service_token: String,
        #[command(flatten)]
        players: Players,
        /// Changes per second, in all.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Seconds of traffic.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Requests in flight at most.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// The random source's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Give every player a starting inventory first (not measured).
        #[arg(long)]
        seed_players: bool,
        /// Where to write the report (JSON); standard output if absent.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Adds up reports and prints the headline figures.
    Summary {
        /// Report files.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
}

/// Which players a process plays.
#[derive(clap::Args, Debug)]
struct Players {
    /// Player names are `<prefix><n>`.
    #[arg(long, default_value = "p")]
    prefix: String,
    /// The first player's number.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// How many players.
    #[arg(long, default_value_t = 100)]
    players: u64,
}

fn write_report(report: &Report, path: Option<&PathBuf>) -> anyhow::Result<()> {
    let json = serde_json::to_string(report)?;
    match path {
        Some(path) => {
            std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            println!("{json}");
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Clients {
            url,
            jwt_secret,
            players,
            connect_rate,
            sessions_per_player,
            ramp_timeout,
            hold,
            keep_versions,
            report,
        } => {
            // One descriptor per session: take every one the hard limit allows.
            let (_, hard) = rlimit::Resource::NOFILE.get()?;
            rlimit::Resource::NOFILE.set(hard, hard)?;
            let config = ClientsConfig {
                url,
                jwt_secret,
                prefix: players.prefix,
                first: players.first,
                players: players.players,
                sessions_per_player,
                connect_rate,
                ramp_timeout: Duration::from_secs(ramp_timeout),
                hold: Duration::from_secs(hold),
                keep_versions,
            };
            let measured = clients::run(config, |welcomed| println!("ready {welcomed}")).await?;
            eprintln!("{}", measured.summary());
            write_report(&measured, report.as_ref())
        }
        Command::Traffic {
            url,
            service_token,
            players,
            rate,
            duration,
            concurrency,
            seed,
            seed_players,
            report,
        } => {
            let config = TrafficConfig {
                url,
                service_token,
                prefix: players.prefix,
                first: players.first,
                players: players.players,
                rate,
                duration: Duration::from_secs(duration),
                concurrency,
                seed,
            };
            if seed_players {
                traffic::seed(&config).await?;
                println!("seeded {}", config.players);
            }
            let measured = traffic::run(config).await?;
            eprintln!("{}", measured.summary());
            write_report(&measured, report.as_ref())
        }
        Command::Summary { reports } => {
            let mut total = Report::default();
            for path in &reports {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let report: Report = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a loadgen report", path.display()))?;
                total.merge(&report);
            }
            println!("{}", total.summary());
            println!("{}", serde_json::to_string(&total.summary())?);
            Ok(())
        }
    }
}
