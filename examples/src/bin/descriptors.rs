//! A command-line tool over the descriptor service, built on the SDK's
//! [`sdk::DescriptorClient`]: `export` pages through the listing, `get`
//! streams ids through the batch get, `stats` counts.
//!
//! ```text
//! descriptors --url http://127.0.0.1:7100 export --kind crafted --out all.ndjson --cursor-file all.cursor
//! descriptors export --resume --cursor-file all.cursor --out all.ndjson   # after an interruption
//! descriptors get < ids.txt > found.ndjson
//! descriptors stats
//! ```
//!
//! Output is NDJSON (one JSON document a line). `get` prints each id's
//! descriptor, or `{"id": .., "state": "missing"|"burned"|"failed"}`.
//! Progress goes to standard error.
//!
//! Exit codes: 0 done; 1 the service or the output failed (nothing more was
//! written after the last complete line; `export` left its cursor file at
//! the last page written); 2 bad arguments; 3 `get` done, but some ids were
//! missing, burned or failed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use protocol::{DescriptorKind, ItemId, UserId};
use sdk::{DescriptorClient, DescriptorState, ListFilter};

/// Export, get and count item descriptors.
#[derive(Debug, Parser)]
struct Args {
    /// The descriptor service's base URL.
    #[arg(long, env = "DESCRIPTOR_URL", default_value = "http://127.0.0.1:7100")]
    url: String,
    /// The read token, when the service's reads are closed.
    #[arg(long, env = "DESCRIPTOR_TOKEN")]
    token: Option<String>,
    /// Retries of a request on 5xx, 429 and network errors.
    #[arg(long, default_value_t = 4)]
    retries: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every descriptor the filters select, as NDJSON, in id order.
    Export {
        /// `crafted` or `catalog`.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<DescriptorKind>,
        /// Only descriptors crafted by this user.
        #[arg(long)]
        crafted_by: Option<String>,
        /// Only descriptors created at or after this time (ms since the epoch).
        #[arg(long)]
        since: Option<u64>,
        /// Only descriptors created before this time (ms since the epoch).
        #[arg(long)]
        until: Option<u64>,
        /// Burned ids too, as `{"id": .., "state": "burned"}` lines.
        #[arg(long)]
        include_burned: bool,
        /// Descriptors a page (1 to 1,000).
        #[arg(long, default_value_t = 1_000)]
        page: usize,
        /// Write here instead of standard output (appended to with --resume).
        #[arg(long)]
        out: Option<PathBuf>,
        /// After each page written, the cursor that resumes the export.
        #[arg(long)]
        cursor_file: Option<PathBuf>,
        /// Resume after the cursor in --cursor-file.
        #[arg(long, requires = "cursor_file")]
        resume: bool,
    },
    /// The descriptors of ids given as arguments, or read one a line from
    /// --file or standard input.
    Get {
        /// Read the ids from this file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Batch POSTs in flight.
        #[arg(long, default_value_t = 4)]
        in_flight: usize,
        /// The ids.
        ids: Vec<String>,
    },
    /// Counts by kind, burned, and crafted per day (UTC), as one JSON document.
    Stats,
}

fn parse_kind(value: &str) -> Result<DescriptorKind, String> {
    match value {
        "crafted" => Ok(DescriptorKind::Crafted),
        "catalog" => Ok(DescriptorKind::Catalog),
        other => Err(format!("{other:?} is neither crafted nor catalog")),
    }
}

/// The tool's outcomes beyond success.
const FAILED: u8 = 1;
const INCOMPLETE: u8 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            // Standard error may be closed too; the exit code still says it.
            let _ = writeln!(std::io::stderr(), "descriptors: {error:#}");
            ExitCode::from(FAILED)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<u8> {
    let mut builder = DescriptorClient::builder(&args.url).with_retries(
        args.retries,
        Duration::from_millis(100),
        Duration::from_secs(2),
    );
    if let Some(token) = &args.token {
        builder = builder.with_bearer_token(token.clone());
    }
    let progress = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
            "{spinner} {human_pos} descriptors, {per_sec}, {elapsed_precise}",
        )?)
    };
    match args.command {
        Command::Export {
            kind,
            crafted_by,
            since,
            until,
            include_burned,
            page,
            out,
            cursor_file,
            resume,
        } => {
            let cursor = match (&cursor_file, resume) {
                (Some(path), true) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading the cursor in {}", path.display()))?
                        .trim()
                        .to_owned(),
                )
                .filter(|c| !c.is_empty()),
                _ => None,
            };
            let filter = ListFilter {
                kind,
                crafted_by: crafted_by.map(UserId::parse).transpose()?,
                since,
                until,
                include_burned,
                limit: page,
                cursor,
                with_total: true,
            };
            if resume && let Some(path) = &out {
                // What the interrupted run wrote, so that the bar and its
                // ETA start from there.
                progress.set_position(count_lines(path)?);
            }
            let out = open_out(out.as_deref(), resume)?;
            export(
                &builder.build()?,
                filter,
                out,
                cursor_file.as_deref(),
                &progress,
            )
            .await?;
            Ok(0)
        }
        Command::Get {
            file,
            in_flight,
            ids,
        } => {
            let ids = read_ids(ids, file.as_deref())?;
            let client = builder.with_max_in_flight(in_flight).build()?;
            get(&client, ids, &progress).await
        }
        Command::Stats => {
            stats(&builder.build()?, &progress).await?;
            Ok(0)
        }
    }
}

fn open_out(path: Option<&Path>, append: bool) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        None => Box::new(BufWriter::new(std::io::stdout())),
        Some(path) => Box::new(BufWriter::new(
            File::options()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        )),
    })
}

async fn export(
    client: &DescriptorClient,
    filter: ListFilter,
    mut out: Box<dyn Write>,
    cursor_file: Option<&Path>,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let mut pages = client.list_raw(filter);
    while let Some(page) = pages.try_next().await? {
        if let Some(total) = page.total {
            progress.set_length(total);
            progress.set_style(ProgressStyle::with_template(
                "{bar:30} {human_pos}/{human_len} descriptors, {per_sec}, eta {eta}",
            )?);
        }
        for descriptor in &page.descriptors {
            out.write_all(descriptor.get().as_bytes())?;
            out.write_all(b"\n")?;
        }
        for id in &page.burned {
            writeln!(
                out,
                "{}",
                serde_json::json!({ "id": id, "state": "burned" })
            )?;
        }
        out.flush()?;
        if let (Some(path), Some(cursor)) = (cursor_file, &page.next_cursor) {
            save_cursor(path, cursor)?;
        }
        progress.inc((page.descriptors.len() + page.burned.len()) as u64);
    }
    progress.finish();
    Ok(())
}

/// The lines of the file at `path` (none if it does not exist).
fn count_lines(path: &Path) -> anyhow::Result<u64> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut lines = 0;
    for line in std::io::BufReader::new(file).split(b'\n') {
        line?;
        lines += 1;
    }
    Ok(lines)
}

/// Replaces the cursor file whole (write, then rename), so that an
/// interruption leaves the previous cursor or the new one.
fn save_cursor(path: &Path, cursor: &str) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, cursor)?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("writing the cursor to {}", path.display()))
}

fn read_ids(mut raw: Vec<String>, file: Option<&Path>) -> anyhow::Result<Vec<ItemId>> {
    let lines: Box<dyn BufRead> = match file {
        Some(path) => Box::new(std::io::BufReader::new(
            File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        None if raw.is_empty() => Box::new(std::io::stdin().lock()),
        None => Box::new(std::io::empty()),
    };
    for line in lines.lines() {
        raw.extend(line?.split_whitespace().map(str::to_owned));
    }
    raw.into_iter()
        .map(|id| ItemId::parse(id).map_err(anyhow::Error::from))
        .collect()
}

async fn get(
    client: &DescriptorClient,
    ids: Vec<ItemId>,
    progress: &ProgressBar,
) -> anyhow::Result<u8> {
    progress.set_length(ids.len() as u64);
    progress.set_style(ProgressStyle::with_template(
        "{bar:30} {human_pos}/{human_len} ids, {per_sec}, eta {eta}",
    )?);
    let mut out = BufWriter::new(std::io::stdout());
    let mut incomplete = false;
    let mut answers = client.stream_many(ids);
    while let Some(answer) = answers.next().await {
        let line = match answer {
            Ok((_, DescriptorState::Ready(descriptor))) => serde_json::to_value(&*descriptor)?,
            Ok((id, state)) => {
                incomplete = true;
                let state = if matches!(state, DescriptorState::Burned) {
                    "burned"
                } else {
                    "missing"
                };
                serde_json::json!({ "id": id, "state": state })
            }
            Err((id, error)) => {
                incomplete = true;
                serde_json::json!({ "id": id, "state": "failed", "error": error.to_string() })
            }
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
        progress.inc(1);
    }
    out.flush()?;
    progress.finish();
    Ok(if incomplete { INCOMPLETE } else { 0 })
}

const DAY_MS: u64 = 86_400_000;

async fn stats(client: &DescriptorClient, progress: &ProgressBar) -> anyhow::Result<()> {
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    let mut burned = 0_u64;
    let mut crafted_per_day: BTreeMap<u64, u64> = BTreeMap::new();
    let filter = ListFilter {
        include_burned: true,
        ..ListFilter::default()
    };
    let mut pages = client.list(filter);
    while let Some(page) = pages.try_next().await? {
        for descriptor in &page.descriptors {
            let kind = match descriptor.kind {
                DescriptorKind::Crafted => {
                    *crafted_per_day
                        .entry(descriptor.created_at / DAY_MS)
                        .or_default() += 1;
                    "crafted"
                }
                DescriptorKind::Catalog => "catalog",
            };
            *by_kind.entry(kind).or_default() += 1;
        }
        burned += page.burned.len() as u64;
        progress.inc((page.descriptors.len() + page.burned.len()) as u64);
    }
    progress.finish();
    let per_day: BTreeMap<String, u64> = crafted_per_day
        .into_iter()
        .map(|(day, count)| (civil_date(day), count))
        .collect();
    let report = serde_json::json!({
        "live_by_kind": by_kind,
        "burned": burned,
        "crafted_per_day": per_day,
    });
    writeln!(std::io::stdout(), "{report}")?;
    Ok(())
}

/// The UTC date `YYYY-MM-DD` of `days` since 1970-01-01 (the proleptic
/// Gregorian calendar, after Howard Hinnant's `civil_from_days`).
fn civil_date(days: u64) -> String {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::civil_date;

    #[test]
    fn days_since_the_epoch_are_utc_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(1_700_000_000_000 / super::DAY_MS), "2023-11-14");
        assert_eq!(civil_date(11_016), "2000-02-29");
    }
}
