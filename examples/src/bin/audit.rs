//! Audits a store: every journaled change against every balance and every
//! held item's descriptor. Prints the report (ending with PASS or the exact
//! violations) and exits with 1 on FAIL.
//!
//! ```text
//! cargo run --release -p examples --bin audit -- --sqlite-dir ./world-data
//! cargo run --release -p examples --bin audit -- --mongodb-uri mongodb://... --database world_1
//! ```

#![allow(clippy::print_stdout, reason = "the report goes to stdout")]

use std::path::PathBuf;

use clap::Parser;
use examples::audit;

/// Audit an inventory store and its descriptor store.
#[derive(Debug, Parser)]
struct Args {
    /// A directory holding `inventory.db` and `descriptors.db` (what the
    /// world's `--data-dir` keeps).
    #[arg(long, conflicts_with_all = ["sqlite_path", "mongodb_uri"])]
    sqlite_dir: Option<PathBuf>,
    /// The inventory SQLite file.
    #[arg(long, requires = "descriptor_sqlite_path")]
    sqlite_path: Option<PathBuf>,
    /// The descriptor SQLite file.
    #[arg(long)]
    descriptor_sqlite_path: Option<PathBuf>,
    /// A MongoDB deployment.
    #[arg(long, requires = "database")]
    mongodb_uri: Option<String>,
    /// The inventory database.
    #[arg(long)]
    database: Option<String>,
    /// The descriptor database (default: `<database>_desc`, as the world names it).
    #[arg(long)]
    descriptor_database: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let report = match (&args.sqlite_dir, &args.sqlite_path, &args.mongodb_uri) {
        (Some(dir), _, _) => {
            audit::audit_sqlite(&dir.join("inventory.db"), &dir.join("descriptors.db")).await?
        }
        (None, Some(path), _) => {
            let descriptors = args
                .descriptor_sqlite_path
                .as_deref()
                .expect("clap requires it");
            audit::audit_sqlite(path, descriptors).await?
        }
        (None, None, Some(uri)) => {
            let database = args.database.as_deref().expect("clap requires it");
            let descriptors = args
                .descriptor_database
                .clone()
                .unwrap_or_else(|| format!("{database}_desc"));
            audit::audit_mongodb(uri, database, &descriptors).await?
        }
        (None, None, None) => {
            anyhow::bail!("give --sqlite-dir, --sqlite-path or --mongodb-uri")
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}
