//! Batch-queries item descriptors by id from a descriptor service and prints
//! the answer as JSON: `{"descriptors": [...], "missing": [...], "burned": [...]}`.
//!
//! ```text
//! cargo run -p examples --bin descriptors -- --url http://127.0.0.1:7100 wood sword-7f3a
//! ```
//!
//! Any number of ids: the SDK's [`sdk::DescriptorClient`] chunks them to the
//! service's batch limit and retries what fails transiently.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use protocol::ItemId;

/// Batch-query item descriptors and print them as JSON.
#[derive(Debug, Parser)]
struct Args {
    /// The descriptor service's base URL.
    #[arg(long, env = "DESCRIPTOR_URL", default_value = "http://127.0.0.1:7100")]
    url: String,
    /// Read more ids from standard input, one per line.
    #[arg(long)]
    stdin: bool,
    /// Retries on 5xx, 429 and network errors.
    #[arg(long, default_value_t = 4)]
    retries: usize,
    /// Print one line of compact JSON instead of pretty JSON.
    #[arg(long)]
    compact: bool,
    /// The item ids to look up.
    ids: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut raw = args.ids;
    if args.stdin {
        for line in std::io::stdin().lines() {
            let line = line.context("reading ids from standard input")?;
            raw.extend(line.split_whitespace().map(str::to_owned));
        }
    }
    let ids = raw
        .into_iter()
        .map(ItemId::parse)
        .collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(!ids.is_empty(), "give at least one item id");

    let client = sdk::DescriptorClient::builder(&args.url)
        .with_retries(
            args.retries,
            Duration::from_millis(100),
            Duration::from_secs(2),
        )
        .build()?;
    let answer = client
        .get_many(ids)
        .await
        .with_context(|| format!("querying {}", args.url))?;

    let mut out = std::io::stdout().lock();
    if args.compact {
        serde_json::to_writer(&mut out, &answer)?;
    } else {
        serde_json::to_writer_pretty(&mut out, &answer)?;
    }
    writeln!(out)?;
    Ok(())
}
