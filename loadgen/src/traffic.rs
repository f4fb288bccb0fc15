//! The game servers' side: changes over HTTP at a fixed rate, with a mix of
//! what games do.
//!
//! | action | share | the change |
//! |---|---|---|
//! | gather | 30% | the hero gains 1–3 wood, ore or herb |
//! | consume | 20% | the hero uses 1 herb (refused when it has none: expected) |
//! | move | 15% | 5 gold from the account to the hero |
//! | trade | 20% | two players' heroes swap 1 wood for 2 gold |
//! | craft | 7% | the hero crafts a unique knife from 2 wood (`POST /v1/crafts`) |
//! | burn | 3% | the hero burns a knife this process crafted for 1 wood back (`POST /v1/burns`; a craft when it has none) |
//! | travel | 5% | a game server hands the player to another zone (join, then leave the old) |
//!
//! Every change id is stamped with the moment the change was made
//! ([`stamp`](crate::stamp)), so clients measure change-to-client latency.
//! Before the measured phase, [`seed`] gives every player a starting
//! inventory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use protocol::{
    BurnOrder, Change, ChangeId, CharacterId, CraftOrder, ItemId, OwnerId, Quantity, UserId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;

use crate::{Report, player, stamp};

/// How many zones players travel between.
const ZONES: u64 = 8;

/// What a traffic process does.
#[derive(Clone, Debug)]
pub struct TrafficConfig {
    /// The node's HTTP base URL (`http://host:port`).
    pub url: String,
    /// The node's service token.
    pub service_token: String,
    /// Player names are `<prefix><n>`.
    pub prefix: String,
    /// The first player's number.
    pub first: u64,
    /// How many players.
    pub players: u64,
    /// Changes per second, in all.
    pub rate: f64,
    /// How long the measured phase lasts.
    pub duration: Duration,
    /// Requests in flight at most; beyond it the traffic falls behind its
    /// rate (counted as `behind`).
    pub concurrency: usize,
    /// The random source's seed.
    pub seed: u64,
}

struct Ids {
    gold: ItemId,
    /// What heroes gather: wood, ore, herb.
    gathered: [ItemId; 3],
    hero: CharacterId,
}

impl Ids {
    fn new() -> anyhow::Result<Self> {
        let item = |name: &str| ItemId::parse(name);
        Ok(Self {
            gold: item("gold")?,
            gathered: [item("wood")?, item("ore")?, item("herb")?],
            hero: CharacterId::parse("hero")?,
        })
    }

    fn wood(&self) -> &ItemId {
        &self.gathered[0]
    }

    fn herb(&self) -> &ItemId {
        &self.gathered[2]
    }
}

struct Node {
    http: reqwest::Client,
    config: TrafficConfig,
    ids: Ids,
    report: Mutex<Report>,
    random: AtomicU64,
    /// The knives this process crafted, by player, not yet burned.
    knives: Mutex<HashMap<u64, Vec<ItemId>>>,
}

impl Node {
    fn new(config: TrafficConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(config.concurrency)
            .build()?;
        Ok(Self {
            http,
            random: AtomicU64::new(config.seed),
            config,
            ids: Ids::new()?,
            report: Mutex::new(Report::default()),
            knives: Mutex::new(HashMap::new()),
        })
    }

    fn report(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn user(&self, n: u64) -> anyhow::Result<UserId> {
        Ok(UserId::parse(player(&self.config.prefix, n))?)
    }

    /// A fresh change id stamped with `micros` (since the Unix epoch).
    fn id_at(&self, micros: u64) -> ChangeId {
        let random = self
            .random
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        stamp::stamped(micros, random)
    }

    /// Posts a change; counts its outcome; whether it was applied.
    async fn post(&self, change: &Change) -> bool {
        self.send("/v1/changes", change).await
    }

    /// Posts a write (a change, a craft or a burn order) to `path`; counts
    /// its outcome; whether it was applied.
    async fn send(&self, path: &str, body: &impl serde::Serialize) -> bool {
        let sent = Instant::now();
        let answer = self
            .http
            .post(format!("{}{path}", self.config.url))
            .bearer_auth(&self.config.service_token)
            .json(body)
            .send()
            .await;
        let outcome = match answer {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(error_code(response).await),
            Err(e) => Err(format!(
                "http: {}",
                if e.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                }
            )),
        };
        let mut report = self.report();
        report.http_latency.record(sent.elapsed());
        match outcome {
            Ok(()) => {
                report.applied += 1;
                true
            }
            Err(code) if code == "insufficient_balance" => {
                report.refused += 1;
                false
            }
            Err(code) => {
                report.error(code);
                false
            }
        }
    }

    /// A game server hands `user` from one zone to another.
    async fn travel(&self, user: &UserId, from: u64, to: u64) {
        let base = &self.config.url;
        for (method, zone) in [(reqwest::Method::POST, to), (reqwest::Method::DELETE, from)] {
            let answer = self
                .http
                .request(method, format!("{base}/v1/zones/z{zone}/players/{user}"))
                .bearer_auth(&self.config.service_token)
                .send()
                .await;
            match answer {
                Ok(response) if response.status().is_success() => {}
                Ok(response) => {
                    let code = error_code(response).await;
                    self.report().error(format!("travel: {code}"));
                }
                Err(_) => self.report().error("travel: transport"),
            }
        }
    }

    /// One of the knives player `n` holds from this process's crafts.
    fn take_knife(&self, n: u64) -> Option<ItemId> {
        self.knives
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&n)?
            .pop()
    }

    fn qty(n: u64) -> Quantity {
        Quantity::new(n).unwrap_or_else(|_| unreachable!("small positive quantities"))
    }

    /// One action of the mix for a random player (and a partner for a
    /// trade), stamped with the moment it was due: a change that waits for a
    /// free request slot counts its wait, so a node falling behind shows in
    /// the latency instead of slowing the load (no coordinated omission).
    async fn act(&self, rng: &mut StdRng, due: u64) -> anyhow::Result<()> {
        let players = self.config.players.max(1);
        let n = self.config.first + rng.random_range(0..players);
        let user = self.user(n)?;
        let hero = OwnerId::character(user.clone(), self.ids.hero.clone());
        let account = OwnerId::account(user.clone());
        let roll = rng.random_range(0..100);
        let change = match roll {
            0..30 => {
                let item = self.ids.gathered[rng.random_range(0..3)].clone();
                Change::new(self.id_at(due)).grant(hero, item, Self::qty(rng.random_range(1..=3)))
            }
            30..50 => {
                Change::new(self.id_at(due)).consume(hero, self.ids.herb().clone(), Self::qty(1))
            }
            50..65 => Change::new(self.id_at(due))
                .consume(account, self.ids.gold.clone(), Self::qty(5))
                .grant(hero, self.ids.gold.clone(), Self::qty(5)),
            65..85 if players > 1 => {
                let other = self.config.first
                    + (n - self.config.first + 1 + rng.random_range(0..players - 1)) % players;
                let partner = OwnerId::character(self.user(other)?, self.ids.hero.clone());
                Change::trade(
                    self.id_at(due),
                    (hero, &[(self.ids.wood().clone(), Self::qty(1))]),
                    (partner, &[(self.ids.gold.clone(), Self::qty(2))]),
                )
            }
            95..100 => {
                let from = rng.random_range(0..ZONES);
                self.travel(&user, from, (from + 1) % ZONES).await;
                return Ok(());
            }
            burn_or_craft => {
                let knife = (burn_or_craft >= 92).then(|| self.take_knife(n)).flatten();
                match knife {
                    Some(knife) => {
                        let order = BurnOrder {
                            change: self.id_at(due),
                            owner: hero,
                            item: knife,
                            recovered: vec![(self.ids.wood().clone(), Self::qty(1))],
                        };
                        self.send("/v1/burns", &order).await;
                    }
                    None => {
                        let order = CraftOrder::new(
                            self.id_at(due),
                            hero,
                            "Hunting Knife",
                            [(self.ids.wood().clone(), Self::qty(2))],
                            due / 1_000,
                        );
                        if self.send("/v1/crafts", &order).await {
                            self.knives
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .entry(n)
                                .or_default()
                                .push(order.descriptor.id);
                        }
                    }
                }
                return Ok(());
            }
        };
        self.post(&change).await;
        Ok(())
    }
}

/// The code of an error answer, or its status when the body has none.
async fn error_code(response: reqwest::Response) -> String {
    let status = response.status();
    response
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|body| body.get("code")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("http {}", status.as_u16()))
}

/// Gives every player a starting inventory (not measured): 1,000 gold on the
/// account, 50 wood and 50 herb on the hero; `concurrency` at a time.
pub async fn seed(config: &TrafficConfig) -> anyhow::Result<()> {
    let node = Arc::new(Node::new(config.clone())?);
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut tasks = Vec::new();
    for n in config.first..config.first + config.players {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let node = Arc::clone(&node);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let user = node.user(n)?;
            let hero = OwnerId::character(user.clone(), node.ids.hero.clone());
            let change = Change::new(node.id_at(stamp::now_micros()))
                .grant(
                    OwnerId::account(user),
                    node.ids.gold.clone(),
                    Node::qty(1000),
                )
                .grant(hero.clone(), node.ids.wood().clone(), Node::qty(50))
                .grant(hero, node.ids.herb().clone(), Node::qty(50));
            anyhow::ensure!(
                node.post(&change).await,
                "seeding player {n} failed: {:?}",
                node.report().errors
            );
            Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Sends the mix at `rate` for `duration`, then waits for the answers in
/// flight, and reports. Changes still waiting for a request slot when the
/// duration is over are not sent (counted as `unsent`).
pub async fn run(config: TrafficConfig) -> anyhow::Result<Report> {
    let node = Arc::new(Node::new(config.clone())?);
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let gap = Duration::from_secs_f64(1.0 / config.rate.max(0.001));
    let total = (config.rate * config.duration.as_secs_f64()).round() as u64;
    let start = tokio::time::Instant::now();
    let started = Instant::now();
    let started_micros = stamp::now_micros();
    let mut behind = 0u64;
    let mut unsent = 0u64;
    let end = start + config.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let offset = gap.mul_f64(i as f64);
        tokio::time::sleep_until(start + offset).await;
        let due = started_micros + u64::try_from(offset.as_micros()).unwrap_or(u64::MAX);
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                behind += 1;
                // A node that cannot keep up does not stretch the run: what
                // is still unsent at the end stays unsent, and is reported.
                match tokio::time::timeout_at(end, Arc::clone(&permits).acquire_owned()).await {
                    Ok(permit) => permit?,
                    Err(_) => {
                        unsent = total - i;
                        break;
                    }
                }
            }
        };
        let node = Arc::clone(&node);
        let mut rng = StdRng::seed_from_u64(config.seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
        tasks.spawn(async move {
            let _permit = permit;
            node.act(&mut rng, due).await
        });
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let mut report = std::mem::take(&mut *node.report());
    if behind > 0 {
        report
            .errors
            .insert("behind (concurrency exhausted)".to_owned(), behind);
    }
    if unsent > 0 {
        report
            .errors
            .insert("unsent (the node could not keep up)".to_owned(), unsent);
    }
    report.elapsed_secs = started.elapsed().as_secs_f64();
    report.record_process();
    Ok(report)
}
