//! `mirrordns agent`: runs beside a mirror, takes its probe work from every
//! server, measures, and posts the results back (SPEC section 5).
//!
//! - `probe`: TCP connect and ICMP echo.
//! - `tries`: which addresses stand for a subnet target, in which order.
//! - `memory`: what answered last per sub-block, and the clients the access
//!   log showed, in bounded memory.
//! - `passive`: RTTs from a web server's access log.
//! - `shared`: the same through NATS (`--nats`): work heard from every
//!   server at once, results published once for all of them.
//!
//! Each server has its own probe loop and its own poster, so a server that
//! is down delays nothing for the others. A poster retries a batch with
//! backoff until it gets an answer; a batch that got its 200 is never sent
//! again, one that got a 4xx (refused as invalid, or a wrong token) is
//! logged and dropped, since sending it again cannot help.

mod memory;
mod passive;
mod probe;
mod shared;
mod tries;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, error, info, warn};

use memory::{Bounded, Sightings};
use probe::{Outcome, Prober};
use tries::{Hints, Target};

/// The server's batch limit is 1 MiB of JSON; 1,000 measurements stay well under.
const BATCH: usize = 1000;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodChoice {
    /// ICMP echo where the host allows it, else TCP connect.
    Auto,
    Tcp,
    Icmp,
}

pub struct Options {
    pub servers: Vec<String>,
    /// With NATS, no servers: work and results go through the streams.
    pub nats: Option<crate::nats::Options>,
    pub mirror: String,
    pub token: Option<String>,
    pub method: MethodChoice,
    pub probe_port: u16,
    pub timeout: Duration,
    pub interval: Duration,
    pub max_inflight: usize,
    /// Probes per second at most, over all servers.
    pub rate: f64,
    pub access_log: Option<PathBuf>,
    pub passive_window: Duration,
    pub block_v4: u8,
    pub block_v6: u8,
}

/// Runs until the process is stopped.
pub async fn run(options: Options) -> Result<(), String> {
    if options.servers.is_empty() && options.nats.is_none() {
        return Err("give at least one --server, or --nats".to_string());
    }
    let sightings = Arc::new(Mutex::new(Sightings::new(
        options.block_v4,
        options.block_v6,
    )));
    let measurer = Arc::new(Measurer {
        mirror: options.mirror.clone(),
        prober: choose_prober(&options),
        pacer: Pacer::new(options.rate),
        inflight: Semaphore::new(options.max_inflight.max(1)),
        answered: Mutex::new(Bounded::new(memory::MAX_BLOCKS)),
        sightings: Arc::clone(&sightings),
    });
    let mut posters = Vec::new();
    if let Some(nats) = &options.nats {
        posters.push(shared::start(nats, Arc::clone(&measurer)).await?);
    }
    for server in &options.servers {
        let server = server.trim_end_matches('/').to_string();
        let (tx, rx) = mpsc::channel::<Vec<Value>>(64);
        tokio::spawn(post_loop(server.clone(), options.token.clone(), rx));
        posters.push(tx.clone());
        let work = ProbeWork {
            server,
            measurer: Arc::clone(&measurer),
            results: tx,
            interval: options.interval,
        };
        tokio::spawn(work.run());
    }
    if let Some(log) = &options.access_log {
        tokio::spawn(follow_log(
            log.clone(),
            options.mirror.clone(),
            options.passive_window,
            options.block_v4,
            options.block_v6,
            posters,
            sightings,
        ));
    }
    info!(mirror = %options.mirror, servers = options.servers.len(), nats = options.nats.is_some(), method = measurer.prober.method(), "agent running");
    std::future::pending::<()>().await;
    Ok(())
}

fn choose_prober(options: &Options) -> Prober {
    let tcp = || Prober::tcp(options.probe_port, options.timeout);
    match options.method {
        MethodChoice::Tcp => tcp(),
        MethodChoice::Icmp | MethodChoice::Auto => match Prober::icmp(options.timeout) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, port = options.probe_port, "ICMP echo is not allowed here (no raw socket, and ping_group_range excludes us): measuring TCP connect time instead");
                tcp()
            }
        },
    }
}

/// Spaces probes so that at most `rate` start per second.
struct Pacer {
    gap: Duration,
    next: tokio::sync::Mutex<Instant>,
}

impl Pacer {
    fn new(rate: f64) -> Pacer {
        let gap = if rate > 0.0 {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::ZERO
        };
        Pacer {
            gap,
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let start = {
            let mut next = self.next.lock().await;
            let start = (*next).max(Instant::now());
            *next = start + self.gap;
            start
        };
        tokio::time::sleep_until(start.into()).await;
    }
}

#[derive(Deserialize)]
pub(crate) struct ProbeList {
    probes: Vec<ProbeItem>,
}

/// One target of probe work. The format is a contract with the servers:
/// fields are added, never renamed.
#[derive(Deserialize)]
pub(crate) struct ProbeItem {
    target: String,
    block: String,
    /// For a subnet target, resolver addresses seen asking with it. Kept as
    /// text so that one bad address skips that address, not the whole list.
    #[serde(default)]
    resolvers: Vec<String>,
}

/// Measures probe work, however it arrived, within the agent's rate and
/// in-flight limits (shared by every source of work).
struct Measurer {
    mirror: String,
    prober: Prober,
    pacer: Pacer,
    inflight: Semaphore,
    /// Per sub-block of a subnet target, the address that answered last.
    answered: Mutex<Bounded<IpNet, IpAddr>>,
    /// Clients the access log showed lately (empty without `--access-log`).
    sightings: Arc<Mutex<Sightings>>,
}

/// The result for one target, and the address it is about: the one that
/// answered, or for a timeout the only one tried (none when several were
/// tried and none answered).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Measured {
    outcome: Outcome,
    address: Option<IpAddr>,
}

impl Measurer {
    /// Measures every usable target; the results as the API takes them.
    async fn measure_all(self: &Arc<Self>, work: Vec<ProbeItem>) -> Vec<Value> {
        let tasks: Vec<_> = work
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let Some(target) = Target::parse(&item.target) else {
                    debug!(target = %item.target, "unusable probe target");
                    return None;
                };
                let block: Option<IpNet> = item.block.parse().ok().map(|b: IpNet| b.trunc());
                let addresses = self.addresses_for(target, block, &item.resolvers);
                if addresses.is_empty() {
                    debug!(target = %item.target, "no address to probe for the target");
                    return None;
                }
                let measurer = Arc::clone(self);
                // Distinct ICMP sequence numbers for the tries of each target
                // (wrapping past 65535 is harmless: far apart in time).
                let sequence = (i * tries::MAX_TRIES) as u16;
                Some(tokio::spawn(async move {
                    let measured = measurer.first_answer(&addresses, sequence).await?;
                    if let (Target::Subnet(_), Some(block)) = (target, block) {
                        measurer.remember(block, measured);
                    }
                    Some(measurement_json(
                        &measurer.mirror,
                        &item.block,
                        measured,
                        measurer.prober.method(),
                    ))
                }))
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            if let Ok(Some(m)) = t.await {
                out.push(m);
            }
        }
        out
    }

    /// The addresses to try for a target, best first (see `tries::order`).
    fn addresses_for(
        &self,
        target: Target,
        block: Option<IpNet>,
        resolvers: &[String],
    ) -> Vec<IpAddr> {
        let (remembered, seen) = match (target, block) {
            (Target::Subnet(_), Some(block)) => (
                self.answered.lock().get(&block).copied(),
                self.sightings.lock().in_block(block),
            ),
            _ => (None, Vec::new()),
        };
        let hints = Hints {
            remembered,
            resolvers,
            seen: &seen,
        };
        tries::order(target, &hints)
    }

    /// Probes `addresses` in order until one answers, each try within the
    /// rate and in-flight limits like any probe; a timeout only if none
    /// answers. `None` only if the agent is shutting down.
    async fn first_answer(&self, addresses: &[IpAddr], sequence: u16) -> Option<Measured> {
        for (n, address) in addresses.iter().enumerate() {
            self.pacer.wait().await;
            let _slot = self.inflight.acquire().await.ok()?;
            let outcome = self
                .prober
                .measure(*address, sequence.wrapping_add(n as u16))
                .await;
            if let Outcome::Rtt(_) = outcome {
                return Some(Measured {
                    outcome,
                    address: Some(*address),
                });
            }
        }
        let only = match addresses {
            [only] => Some(*only),
            _ => None,
        };
        Some(Measured {
            outcome: Outcome::Timeout,
            address: only,
        })
    }

    /// Keeps the address that answered for `block` to try first next time;
    /// forgets it when nothing answered, so a host that went away does not
    /// keep taking a try.
    fn remember(&self, block: IpNet, measured: Measured) {
        let mut answered = self.answered.lock();
        match (measured.outcome, measured.address) {
            (Outcome::Rtt(_), Some(address)) => answered.insert(block, address),
            _ => answered.remove(&block),
        }
    }
}

struct ProbeWork {
    server: String,
    measurer: Arc<Measurer>,
    results: mpsc::Sender<Vec<Value>>,
    interval: Duration,
}

impl ProbeWork {
    async fn run(self) {
        let client = reqwest::Client::new();
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.fetch(&client).await {
                Ok(work) => {
                    backoff = Duration::from_secs(1);
                    if !work.is_empty() {
                        let measured = self.measurer.measure_all(work).await;
                        for chunk in measured.chunks(BATCH) {
                            if self.results.send(chunk.to_vec()).await.is_err() {
                                return;
                            }
                        }
                    }
                    tokio::time::sleep(self.interval).await;
                }
                Err(e) => {
                    warn!(server = %self.server, error = %e, retry_in = ?backoff, "cannot fetch probe work");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<Vec<ProbeItem>, String> {
        // Mirror names are letters, digits, '-' and '_': nothing to escape.
        let url = format!("{}/v1/probes?mirror={}", self.server, self.measurer.mirror);
        let response = client
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!(
                "{} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ));
        }
        let list: ProbeList = response.json().await.map_err(|e| e.to_string())?;
        Ok(list.probes)
    }
}

/// One measurement as `POST /v1/measurements` and the measurement stream
/// take it, with `address` naming the host measured when there is one.
fn measurement_json(mirror: &str, block: &str, measured: Measured, method: &str) -> Value {
    let mut item = match measured.outcome {
        Outcome::Rtt(ms) => {
            json!({"mirror": mirror, "client": block, "rtt_ms": ms, "method": method})
        }
        Outcome::Timeout => {
            json!({"mirror": mirror, "client": block, "timeout": true, "method": method})
        }
    };
    if let Some(address) = measured.address {
        item["address"] = json!(address.to_string());
    }
    item
}

/// Posts batches to one server, in order, retrying each until it is answered.
async fn post_loop(server: String, token: Option<String>, mut batches: mpsc::Receiver<Vec<Value>>) {
    let client = reqwest::Client::new();
    let url = format!("{server}/v1/measurements");
    while let Some(batch) = batches.recv().await {
        let body = json!({ "measurements": batch });
        // A server sharing through NATS stores a retry of this batch once.
        let msg_id = crate::nats::new_msg_id();
        let mut backoff = Duration::from_secs(1);
        loop {
            let mut request = client
                .post(&url)
                .header(crate::nats::MSG_ID, &msg_id)
                .json(&body)
                .timeout(Duration::from_secs(30));
            if let Some(t) = &token {
                request = request.bearer_auth(t);
            }
            match request.send().await {
                Ok(r) if r.status().is_success() => {
                    debug!(server = %server, measurements = batch.len(), "batch posted");
                    break;
                }
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status();
                    let answer = r.text().await.unwrap_or_default();
                    error!(server = %server, %status, %answer, "batch refused; dropped");
                    break;
                }
                Ok(r) => {
                    warn!(server = %server, status = %r.status(), retry_in = ?backoff, "batch not stored")
                }
                Err(e) => {
                    warn!(server = %server, error = %e, retry_in = ?backoff, "cannot post batch")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Posts the median access-log RTT per sub-block every `window`, and keeps
/// the clients seen for the measurer to try.
async fn follow_log(
    path: PathBuf,
    mirror: String,
    window: Duration,
    block_v4: u8,
    block_v6: u8,
    posters: Vec<mpsc::Sender<Vec<Value>>>,
    sightings: Arc<Mutex<Sightings>>,
) {
    let mut follower = passive::Follower::new(&path);
    let mut aggregator = passive::Aggregator::new(block_v4, block_v6);
    let mut window_end = Instant::now() + window;
    info!(log = %path.display(), window = ?window, "following the access log for passive RTTs");
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        match follower.read_lines() {
            Ok(lines) => {
                // A client that reached us is a host that exists, RTT or not.
                let mut seen = sightings.lock();
                for line in &lines {
                    if let Some(client) = passive::parse_client(line) {
                        seen.record(client);
                    }
                }
                drop(seen);
                lines
                    .iter()
                    .filter_map(|l| passive::parse_line(l))
                    .for_each(|(c, rtt)| aggregator.add(c, rtt));
            }
            Err(e) => warn!(log = %path.display(), error = %e, "cannot read the access log"),
        }
        if Instant::now() < window_end {
            continue;
        }
        window_end = Instant::now() + window;
        let medians: Vec<Value> = aggregator
            .drain_medians()
            .into_iter()
            .map(|(block, rtt)| json!({"mirror": mirror, "client": block.to_string(), "rtt_ms": rtt, "method": "passive"}))
            .collect();
        for chunk in medians.chunks(BATCH) {
            for poster in &posters {
                let _ = poster.send(chunk.to_vec()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_work_reads_resolvers_when_given_and_does_without() {
        let list: ProbeList = serde_json::from_value(json!({"probes": [
            {"target": "198.51.100.0/24", "block": "198.51.100.0/24", "resolvers": ["203.0.113.53", "bad"]},
            {"target": "203.0.113.9", "block": "203.0.113.0/24", "new_field": 1},
        ]}))
        .unwrap();
        assert_eq!(list.probes[0].resolvers, ["203.0.113.53", "bad"]);
        assert!(list.probes[1].resolvers.is_empty());
    }

    #[test]
    fn a_measurement_names_the_address_it_is_about() {
        let answered = Measured {
            outcome: Outcome::Rtt(12.5),
            address: Some("198.51.100.7".parse().unwrap()),
        };
        assert_eq!(
            measurement_json("fra", "198.51.100.0/24", answered, "tcp"),
            json!({"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 12.5, "method": "tcp", "address": "198.51.100.7"})
        );
        let silent = Measured {
            outcome: Outcome::Timeout,
            address: None,
        };
        assert_eq!(
            measurement_json("fra", "198.51.100.0/24", silent, "icmp"),
            json!({"mirror": "fra", "client": "198.51.100.0/24", "timeout": true, "method": "icmp"})
        );
    }
}
