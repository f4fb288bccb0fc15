//! Economy mode: no clients, no zones, only the crafting economy at full
//! speed. Many concurrent crafters, each its own character, craft unique
//! items from resources and burn them back into the same resources through
//! [`inventory_core::crafting`], against the world's store (SQLite files by
//! default) and the descriptor service in this process, until the target
//! counts of crafts and burns are reached; then the audit runs.
//!
//! Burns can only outnumber crafts if crafted items exist before the run, so
//! when `--burns` exceeds `--crafts` the difference is **seeded** first:
//! crafted descriptors created and granted by plain `adjust` changes, as a
//! catalog migration would. Every seeded and every crafted item is then
//! burned while burns remain; what is left is held at the end.
//!
//! A retryable failure (an `unavailable` outcome above all) is retried with
//! the same order, sequentially, by the crafter that placed it; a refusal
//! puts the claimed unit of work back for any crafter to do.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use inventory_core::crafting::{self, BurnOrder, CraftOrder};
use inventory_core::{AppliedChange, Inventory};
use inventory_service::registry::InProcessRegistry;
use protocol::{Change, ChangeId, CharacterId, ItemId, OwnerId, Quantity, UserId};
use serde::Serialize;

use super::WorldConfig;
use super::cluster::Backend;
use crate::audit::{self, AuditReport, Evidence};

/// How an economy run goes.
#[derive(Clone, Debug, clap::Args)]
pub struct EconomyConfig {
    /// Run the crafting economy instead of a world of players.
    #[arg(long)]
    pub economy: bool,
    /// Crafts to reach.
    #[arg(long, default_value_t = 50_000)]
    pub crafts: u64,
    /// Burns to reach (above `--crafts`, the difference is seeded first).
    #[arg(long, default_value_t = 50_000)]
    pub burns: u64,
    /// Concurrent crafters, each its own character.
    #[arg(long, default_value_t = 256)]
    pub crafters: usize,
}

/// What an economy run did and found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EconomyReport {
    /// The store used.
    pub backend: String,
    /// Concurrent crafters.
    pub crafters: usize,
    /// Crafted items created before the run so that burns can exceed crafts.
    pub seeded: u64,
    /// Crafts applied.
    pub crafted: u64,
    /// Burns applied.
    pub burned: u64,
    /// Resource grants that fed the crafters.
    pub gathers: u64,
    /// Attempts retried after an unknown outcome.
    pub retries: u64,
    /// Orders that failed for good (their work was put back).
    pub failures: u64,
    /// Seconds to seed, craft and burn.
    pub seconds: f64,
    /// Crafts plus burns per second.
    pub orders_per_second: f64,
    /// Seconds the audit took.
    pub audit_seconds: f64,
    /// Resident memory at the end, MiB.
    pub rss_mib: f64,
    /// The audit.
    pub audit: AuditReport,
}

impl fmt::Display for EconomyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "economy: {} crafters on {}; {} seeded, {} crafted, {} burned ({} gathers) in {:.1} s: {:.0} crafts+burns/s",
            self.crafters,
            self.backend,
            self.seeded,
            self.crafted,
            self.burned,
            self.gathers,
            self.seconds,
            self.orders_per_second
        )?;
        writeln!(
            f,
            "{} retries after an unknown outcome, {} orders failed and put back",
            self.retries, self.failures
        )?;
        writeln!(
            f,
            "audit took {:.1} s; memory {:.0} MiB resident",
            self.audit_seconds, self.rss_mib
        )?;
        write!(f, "{}", self.audit)
    }
}

/// Units of work left, claimed one at a time.
#[derive(Debug, Default)]
struct Work {
    seeds: AtomicU64,
    crafts: AtomicU64,
    burns: AtomicU64,
}

/// Takes one unit of `left`, if any.
fn claim(left: &AtomicU64) -> bool {
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// What the crafters count.
#[derive(Debug, Default)]
struct Tally {
    seeded: AtomicU64,
    crafted: AtomicU64,
    burned: AtomicU64,
    gathers: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
}

/// What every crafter shares.
struct Economy {
    inventory: Inventory,
    registry: InProcessRegistry,
    work: Work,
    tally: Tally,
    progress: indicatif::ProgressBar,
}

/// Resources granted to a crafter when it runs out (pairs of ore and wood).
const GATHER: u64 = 1_000;

/// Runs the economy on the store `world` describes, then audits it.
pub async fn run(
    world: &WorldConfig,
    config: &EconomyConfig,
    progress: bool,
) -> anyhow::Result<EconomyReport> {
    anyhow::ensure!(config.crafters >= 1, "an economy needs at least 1 crafter");
    let backend = Backend::start(world).await?;
    super::create_catalog(&backend).await?;
    let seeds = config.burns.saturating_sub(config.crafts);
    let total = seeds + config.crafts + config.burns;
    let bar = super::progress_bar(
        progress,
        total,
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} orders ({per_sec}, eta {eta})  {msg}",
    );
    let economy = Arc::new(Economy {
        inventory: Inventory::from_arc(backend.store.clone()),
        registry: InProcessRegistry(backend.registry.clone()),
        work: Work {
            seeds: AtomicU64::new(seeds),
            crafts: AtomicU64::new(config.crafts),
            burns: AtomicU64::new(config.burns),
        },
        tally: Tally::default(),
        progress: bar.clone(),
    });
    let started = Instant::now();
    let crafters: Vec<_> = (0..config.crafters)
        .map(|i| {
            let economy = economy.clone();
            tokio::spawn(async move { crafter(&economy, i).await })
        })
        .collect();
    for crafter in crafters {
        crafter.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let audit_started = Instant::now();
    let audit = audit::audit(&*backend.scan, &*backend.descriptors, Evidence::default()).await?;
    let t = &economy.tally;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Ok(EconomyReport {
        backend: if world.mongodb_uri.is_some() {
            "MongoDB"
        } else {
            "SQLite"
        }
        .to_owned(),
        crafters: config.crafters,
        seeded: get(&t.seeded),
        crafted: get(&t.crafted),
        burned: get(&t.burned),
        gathers: get(&t.gathers),
        retries: get(&t.retries),
        failures: get(&t.failures),
        seconds,
        orders_per_second: (get(&t.crafted) + get(&t.burned)) as f64 / seconds,
        audit_seconds: audit_started.elapsed().as_secs_f64(),
        rss_mib: testkit::bench::rss_bytes().map_or(0.0, |b| b as f64 / (1 << 20) as f64),
        audit,
    })
}

/// One crafter: seeds while seeds remain, then crafts and burns (the newest
/// item first) until no work is left that it can do.
async fn crafter(economy: &Economy, index: usize) -> anyhow::Result<()> {
    let user = UserId::parse(format!("e{index:06}"))?;
    let owner = OwnerId::character(user.clone(), CharacterId::parse("hero")?);
    let ore = ItemId::parse("ore")?;
    let wood = ItemId::parse("wood")?;
    let recipe = [(ore.clone(), Quantity::ONE), (wood.clone(), Quantity::ONE)];
    let mut resources = 0u64;
    let mut held: Vec<ItemId> = Vec::new();
    let next_change = ChangeId::random;
    let work = &economy.work;
    loop {
        if claim(&work.seeds) {
            let change = next_change();
            if seed(economy, &owner, &recipe, change).await {
                held.push(crafting::crafted_item_id(change));
            } else {
                work.seeds.fetch_add(1, Ordering::SeqCst);
            }
            continue;
        }
        let mut did = false;
        if claim(&work.crafts) {
            did = true;
            if resources == 0 {
                let grant = Change::new(next_change())
                    .grant(owner.clone(), ore.clone(), Quantity::new(GATHER)?)
                    .grant(owner.clone(), wood.clone(), Quantity::new(GATHER)?);
                let applied = attempt(economy, || async {
                    economy.inventory.apply(grant.clone()).await
                })
                .await;
                anyhow::ensure!(applied, "a crafter could not gather its resources");
                economy.tally.gathers.fetch_add(1, Ordering::Relaxed);
                resources += GATHER;
            }
            let change = next_change();
            let order = crafted(&owner, change, &recipe);
            if attempt(economy, || {
                crafting::craft(&economy.inventory, &economy.registry, &order)
            })
            .await
            {
                resources -= 1;
                held.push(order.descriptor.id.clone());
                economy.tally.crafted.fetch_add(1, Ordering::Relaxed);
                economy.progress.inc(1);
            } else {
                work.crafts.fetch_add(1, Ordering::SeqCst);
            }
        }
        if !held.is_empty() && claim(&work.burns) {
            did = true;
            let order = BurnOrder {
                change: next_change(),
                owner: owner.clone(),
                item: held.pop().expect("not empty"),
                recovered: recipe.to_vec(),
            };
            if attempt(economy, || {
                crafting::burn(&economy.inventory, &economy.registry, &order)
            })
            .await
            {
                resources += 1;
                economy.tally.burned.fetch_add(1, Ordering::Relaxed);
                economy.progress.inc(1);
            } else {
                held.push(order.item);
                work.burns.fetch_add(1, Ordering::SeqCst);
            }
        }
        if !did {
            // Nothing this crafter can do: the crafts are done, and either
            // the burns are too or it holds nothing left to burn.
            return Ok(());
        }
    }
}

/// A crafted item that exists before the run: its descriptor created and
/// the item granted by a plain change.
async fn seed(
    economy: &Economy,
    owner: &OwnerId,
    recipe: &[(ItemId, Quantity)],
    change: ChangeId,
) -> bool {
    let descriptor = crafted(owner, change, recipe).descriptor;
    let grant = Change::new(change).grant(owner.clone(), descriptor.id.clone(), Quantity::ONE);
    let seeded = attempt(economy, || async {
        crafting::DescriptorRegistry::create(&economy.registry, &descriptor).await?;
        economy.inventory.apply(grant.clone()).await
    })
    .await;
    if seeded {
        economy.tally.seeded.fetch_add(1, Ordering::Relaxed);
        economy.progress.inc(1);
    }
    seeded
}

/// The craft order of change `change` by `owner` from `recipe`.
fn crafted(owner: &OwnerId, change: ChangeId, recipe: &[(ItemId, Quantity)]) -> CraftOrder {
    CraftOrder::new(
        change,
        owner.clone(),
        "ore and wood charm",
        recipe.iter().cloned(),
        crafting::unix_millis(),
    )
}

/// How an order whose outcome is unknown is retried: up to 99 more times,
/// backing off from 10 ms to 500 ms, jittered so that the crafters that one
/// blip failed together do not retry together.
fn retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(10))
        .with_max_delay(Duration::from_millis(500))
        .with_max_times(99)
        .with_jitter()
}

/// Runs `order` until it answers, retrying (the same order, sequentially)
/// while the error's code is retryable. True if applied.
async fn attempt<F, Fut>(economy: &Economy, order: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<AppliedChange, inventory_core::Error>>,
{
    let outcome = order
        .retry(retry_policy())
        .when(|e: &inventory_core::Error| e.code().is_retryable())
        .notify(|_, _| {
            economy.tally.retries.fetch_add(1, Ordering::Relaxed);
        })
        .await;
    match outcome {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "an economy order failed");
            economy.tally.failures.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}
