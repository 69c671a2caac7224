//! `mirrordns agent`: runs beside a mirror, takes its probe work from every
//! server, measures, and posts the results back (SPEC section 5).
//!
//! - `http`: a server's API: the token check, probe work, posting results.
//! - `probe`: TCP connect and ICMP echo.
//! - `tries`: which addresses stand for a subnet target, in which order.
//! - `memory`: what answered last per sub-block, and the clients the access
//!   log showed, in bounded memory.
//! - `passive`: RTTs from a web server's access log.
//! - `shared`: the same through NATS (`--nats`): work heard from every
//!   server at once, results published once for all of them.
//!
//! Each server has its own probe loop and its own poster, so a server that
//! is down delays nothing for the others. A server that refuses the agent's
//! token stops it, at start or later, with an error that says so.
//!
//! The agent speaks only the messages of [`crate::protocol`], through its
//! HTTP client and the NATS client ([`crate::nats::client`]); nothing of the
//! server runs in it.

mod http;
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
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, info, warn};

use crate::protocol::{Measurement, ProbeItem};
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
    pub nats: Option<crate::nats::client::Options>,
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

/// Runs until the process is stopped, or until a server refuses the token.
pub async fn run(options: Options) -> Result<(), String> {
    if options.servers.is_empty() && options.nats.is_none() {
        return Err("give at least one --server, or --nats".to_string());
    }
    let servers: Vec<String> = options
        .servers
        .iter()
        .map(|s| s.trim_end_matches('/').to_string())
        .collect();
    for server in &servers {
        http::check_token(server, options.token.as_deref()).await?;
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
    let (fatal, mut stop) = mpsc::channel::<String>(1);
    for server in servers {
        let (tx, rx) = mpsc::channel::<Vec<Measurement>>(64);
        let poster = http::post_loop(server.clone(), options.token.clone(), rx, fatal.clone());
        tokio::spawn(poster);
        posters.push(tx.clone());
        let work = http::WorkLoop {
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
    // `fatal` lives as long as this function, so this waits for a poster's
    // report for ever if none comes.
    match stop.recv().await {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
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
    async fn measure_all(self: &Arc<Self>, work: Vec<ProbeItem>) -> Vec<Measurement> {
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
                    Some(measurement(
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

/// One measurement as `POST /v1/measurements` and the measurement stream
/// take it, with `address` naming the host measured when there is one.
fn measurement(mirror: &str, block: &str, measured: Measured, method: &str) -> Measurement {
    let (rtt_ms, timeout) = match measured.outcome {
        Outcome::Rtt(ms) => (Some(ms), false),
        Outcome::Timeout => (None, true),
    };
    Measurement {
        mirror: mirror.to_string(),
        client: block.to_string(),
        rtt_ms,
        timeout,
        method: Some(method.to_string()),
        address: measured.address,
        ..Measurement::default()
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
    posters: Vec<mpsc::Sender<Vec<Measurement>>>,
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
        let medians: Vec<Measurement> = aggregator
            .drain_medians()
            .into_iter()
            .map(|(block, rtt)| Measurement {
                mirror: mirror.clone(),
                client: block.to_string(),
                rtt_ms: Some(rtt),
                method: Some("passive".to_string()),
                ..Measurement::default()
            })
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
    use serde_json::json;

    #[test]
    fn a_measurement_names_the_address_it_is_about() {
        let answered = Measured {
            outcome: Outcome::Rtt(12.5),
            address: Some("198.51.100.7".parse().unwrap()),
        };
        assert_eq!(
            serde_json::to_value(measurement("fra", "198.51.100.0/24", answered, "tcp")).unwrap(),
            json!({"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 12.5, "method": "tcp", "address": "198.51.100.7"})
        );
        let silent = Measured {
            outcome: Outcome::Timeout,
            address: None,
        };
        assert_eq!(
            serde_json::to_value(measurement("fra", "198.51.100.0/24", silent, "icmp")).unwrap(),
            json!({"mirror": "fra", "client": "198.51.100.0/24", "timeout": true, "method": "icmp"})
        );
    }
}
