//! Offline replay of a latency data set through the real steering engine:
//! synthetic client networks answer queries, mirrors answer their probe work
//! from the matrix (with noise), and each round reports how close the answers
//! come to the oracle (the best mirror for every sub-block), beside baselines.
//!
//! - `matrix`: the latency data (WonderNetwork, RIPE Atlas countries, a
//!   square matrix, or synthetic).
//! - `report`: the results as a table and as an SVG plot.
//!
//! Deterministic for a seed: the generator is our own SplitMix64, so a seed
//! gives the same run whatever version of a random crate is in the lock file.

mod matrix;
pub mod report;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net};

pub use matrix::{LatencyMatrix, great_circle_km};

use crate::steering::{Decision, Engine, MeasurementRequest, Seconds, ServiceHandle};
use crate::zone::{self, Family, ZoneSet};

/// RTT charged for answering a mirror that cannot reach the client at all.
const UNREACHABLE_MS: f64 = 1000.0;
const START: Seconds = 1_800_000_000;
const ROUND_SECONDS: Seconds = 60;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and stable forever.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A client sub-block: which node (network location) it really is, and its
/// share of the queries.
pub struct SimBlock {
    pub prefix: IpNet,
    pub node: usize,
    pub weight: f64,
}

/// Mirrors and client networks drawn from a matrix.
pub struct Scenario {
    pub mirrors: Vec<usize>,
    pub blocks: Vec<SimBlock>,
}

/// How the scenario is drawn.
pub struct ScenarioShape {
    pub mirror_count: usize,
    /// Client /16s; each mixes one to three nodes in contiguous ranges, so
    /// the engine has to split to tell them apart.
    pub networks: usize,
    pub blocks_per_network: usize,
    pub seed: u64,
    /// These nodes as mirrors instead of `mirror_count` drawn at random.
    pub mirrors: Option<Vec<usize>>,
}

impl Scenario {
    pub fn generate(matrix: &LatencyMatrix, shape: &ScenarioShape) -> Scenario {
        let mut rng = SplitMix64::new(shape.seed);
        let mut nodes: Vec<usize> = (0..matrix.len()).collect();
        shuffle(&mut nodes, &mut rng);
        let mirrors: Vec<usize> = match &shape.mirrors {
            Some(chosen) => chosen.clone(),
            None => nodes[..shape.mirror_count.min(nodes.len())].to_vec(),
        };
        let clients: Vec<usize> = nodes.into_iter().filter(|n| !mirrors.contains(n)).collect();
        let clients = &clients[..];
        let mut blocks = Vec::new();
        for network in 0..shape.networks {
            let base = u32::from(Ipv4Addr::new(11, 0, 0, 0)) + ((network as u32) << 16);
            let ranges = network_ranges(&mut rng, clients);
            let mut slots: Vec<u32> = (0..256).collect();
            shuffle(&mut slots, &mut rng);
            for slot in slots.into_iter().take(shape.blocks_per_network) {
                let node = ranges
                    .iter()
                    .find(|(end, _)| slot < *end)
                    .map_or(clients[0], |(_, n)| *n);
                let prefix = IpNet::V4(
                    Ipv4Net::new(Ipv4Addr::from(base + (slot << 8)), 24).unwrap_or_default(),
                );
                blocks.push(SimBlock {
                    prefix,
                    node,
                    weight: 0.0,
                });
            }
        }
        // Zipf-like query volume: the k-th busiest block gets 1/k of the top one.
        let mut order: Vec<usize> = (0..blocks.len()).collect();
        shuffle(&mut order, &mut rng);
        for (rank, i) in order.into_iter().enumerate() {
            blocks[i].weight = 1.0 / (rank + 1) as f64;
        }
        Scenario { mirrors, blocks }
    }
}

/// Splits a /16's 256 /24 slots into one to three contiguous ranges at /19
/// boundaries, each owned by a different client node: (end slot, node).
fn network_ranges(rng: &mut SplitMix64, clients: &[usize]) -> Vec<(u32, usize)> {
    let parts = match rng.below(10) {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    let mut cuts: Vec<u32> = (1..8).map(|c| c * 32).collect();
    shuffle(&mut cuts, rng);
    let mut ends: Vec<u32> = cuts.into_iter().take(parts - 1).collect();
    ends.push(256);
    ends.sort_unstable();
    ends.into_iter()
        .map(|end| (end, clients[rng.below(clients.len())]))
        .collect()
}

fn shuffle<T>(items: &mut [T], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// One round's outcome.
#[derive(Clone, Debug)]
pub struct Round {
    /// Simulated seconds since the start.
    pub time: Seconds,
    /// Query-weighted mean RTT of the answers divided by the oracle's.
    pub ratio: f64,
    /// Share of queries answered with the best mirror.
    pub best: f64,
    /// Share of queries answered with a mirror within 5 ms of the best.
    pub within_5ms: f64,
    /// Share of queries answered with a mirror within 10 ms of the best.
    pub within_10ms: f64,
    pub clusters: usize,
    /// Probes the mirrors were asked for this round.
    pub probes: usize,
    /// Sub-blocks whose answer differs from the previous round's.
    pub changed: usize,
    /// Share of queries given an exploration answer (a silent sub-block
    /// sent to a mirror it has no RTT from).
    pub explored: f64,
    /// The baselines on this round's matrix.
    pub baselines: Baselines,
}

/// Mean RTT of each baseline divided by the oracle's.
#[derive(Clone, Debug)]
pub struct Baselines {
    pub round_robin: f64,
    pub geo_nearest: Option<f64>,
    pub best_per_16: f64,
}

pub struct Report {
    pub oracle_ms: f64,
    pub rounds: Vec<Round>,
    pub baselines: Baselines,
}

pub struct RunOptions {
    pub rounds: usize,
    /// Relative noise on every probe answer: 0.1 = ±10 %.
    pub noise: f64,
    pub seed: u64,
    /// Simulated time between rounds.
    pub round_seconds: Seconds,
    /// The service's `measurements.max_age_s`.
    pub max_age_s: Seconds,
    /// Share of probe answers lost (posted as timeouts).
    pub timeouts: f64,
    /// From this round on, the routes of some client networks change.
    pub route_change: Option<RouteChange>,
    /// Share of sub-blocks that answer no active probe (every probe of
    /// theirs times out), as most addresses on the Internet do.
    pub silent: f64,
    /// Every mirror that served a sub-block in a round reports one
    /// access-log RTT for it, as an agent following its log does.
    pub passive: bool,
}

impl RunOptions {
    pub fn new(rounds: usize, noise: f64, seed: u64) -> RunOptions {
        RunOptions {
            rounds,
            noise,
            seed,
            round_seconds: ROUND_SECONDS,
            max_age_s: 3600,
            timeouts: 0.0,
            route_change: None,
            silent: 0.0,
            passive: false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct RouteChange {
    pub round: usize,
    /// Share of the client nodes whose routes change.
    pub share: f64,
}

/// Replays `scenario` for `options.rounds` rounds through a fresh engine.
pub fn run(
    matrix: &LatencyMatrix,
    scenario: &Scenario,
    options: &RunOptions,
) -> Result<Report, String> {
    let names: Vec<String> = (0..scenario.mirrors.len())
        .map(|i| format!("m{i}"))
        .collect();
    let (engine, handle) = engine_for(&names, options.max_age_s)?;
    let by_prefix: HashMap<IpNet, usize> =
        scenario.blocks.iter().map(|b| (b.prefix, b.node)).collect();
    let total: f64 = scenario.blocks.iter().map(|b| b.weight).sum();
    let mut rng = SplitMix64::new(options.seed ^ 0x5EED);
    // Drawn from a generator of their own, so that which sub-blocks are
    // silent depends on the seed and the share only.
    let mut silence = SplitMix64::new(options.seed ^ 0x51_1E47);
    let silent: HashMap<IpNet, bool> = scenario
        .blocks
        .iter()
        .map(|b| (b.prefix, silence.uniform(0.0, 1.0) < options.silent))
        .collect();
    let mut current = None::<LatencyMatrix>;
    let mut previous: Vec<Option<usize>> = vec![None; scenario.blocks.len()];
    let mut rounds = Vec::new();
    let mut first_oracle = None;
    for round in 0..options.rounds {
        if let Some(change) = options.route_change
            && change.round == round
        {
            let mut clients: Vec<usize> = scenario.blocks.iter().map(|b| b.node).collect();
            clients.sort_unstable();
            clients.dedup();
            shuffle(&mut clients, &mut rng);
            let changed = &clients[..(clients.len() as f64 * change.share).round() as usize];
            current = Some(matrix.with_route_changes(changed, &mut rng));
        }
        let m = current.as_ref().unwrap_or(matrix);
        let now = START + round as Seconds * options.round_seconds;
        let cost = |node: usize, mirror: usize| {
            m.rtt(node, scenario.mirrors[mirror])
                .unwrap_or(UNREACHABLE_MS)
        };
        let best: Vec<f64> = scenario
            .blocks
            .iter()
            .map(|b| {
                (0..names.len())
                    .map(|mirror| cost(b.node, mirror))
                    .fold(f64::INFINITY, f64::min)
            })
            .collect();
        let oracle_ms = weighted(scenario, &best) / total;
        first_oracle.get_or_insert(oracle_ms);
        let decisions: Vec<Option<Decision>> = scenario
            .blocks
            .iter()
            .map(|b| handle.decide(b.prefix, Family::V4))
            .collect();
        let chosen: Vec<Option<usize>> =
            decisions.iter().map(|d| d.and_then(|d| d.mirror)).collect();
        let answered: Vec<f64> = scenario
            .blocks
            .iter()
            .zip(&chosen)
            .map(|(b, c)| c.map_or(UNREACHABLE_MS, |mirror| cost(b.node, mirror)))
            .collect();
        let share = |ok: &dyn Fn(usize) -> bool| {
            (scenario
                .blocks
                .iter()
                .enumerate()
                .filter(|(i, _)| ok(*i))
                .map(|(_, b)| b.weight)
                .sum::<f64>()
                // An empty sum is -0.0, which would print as "-0.0".
                + 0.0)
                / total
        };
        let changed = chosen
            .iter()
            .zip(&previous)
            .filter(|(now, before)| before.is_some() && now != before)
            .count();
        let explored = share(&|i| decisions[i].is_some_and(|d| d.exploring));
        if options.passive {
            let served = scenario.blocks.iter().zip(&chosen);
            let reports: Vec<MeasurementRequest> = served
                .filter_map(|(b, c)| {
                    let mirror = (*c)?;
                    let rtt = m.rtt(b.node, scenario.mirrors[mirror])?;
                    let mut report = probe_answer(
                        &names[mirror],
                        b.prefix,
                        Some(rtt),
                        options.noise,
                        &mut rng,
                        now,
                    );
                    report.method = Some("passive".to_string());
                    Some(report)
                })
                .collect();
            engine.apply(&reports, now).map_err(|e| e.to_string())?;
        }
        previous = chosen;
        let mut probes = 0;
        for (mirror, name) in names.iter().enumerate() {
            let work = engine.probes(name, now, usize::MAX).unwrap_or_default();
            probes += work.len();
            let batch: Vec<MeasurementRequest> = work
                .iter()
                .filter_map(|p| by_prefix.get(&p.block).map(|node| (p, *node)))
                .map(|(p, node)| {
                    let lost = rng.uniform(0.0, 1.0) < options.timeouts
                        || silent.get(&p.block).copied().unwrap_or(false);
                    let rtt = if lost {
                        None
                    } else {
                        m.rtt(node, scenario.mirrors[mirror])
                    };
                    probe_answer(name, p.block, rtt, options.noise, &mut rng, now)
                })
                .collect();
            engine.apply(&batch, now).map_err(|e| e.to_string())?;
        }
        rounds.push(Round {
            time: now - START,
            ratio: weighted(scenario, &answered) / total / oracle_ms,
            best: share(&|i| answered[i] <= best[i]),
            within_5ms: share(&|i| answered[i] <= best[i] + 5.0),
            within_10ms: share(&|i| answered[i] <= best[i] + 10.0),
            clusters: engine.services().first().map_or(0, |s| s.clusters),
            probes,
            changed,
            explored,
            baselines: baselines(m, scenario, &cost, total, oracle_ms),
        });
    }
    let baselines = rounds
        .first()
        .map(|r| r.baselines.clone())
        .ok_or("no rounds")?;
    Ok(Report {
        oracle_ms: first_oracle.unwrap_or(0.0),
        rounds,
        baselines,
    })
}

fn probe_answer(
    mirror: &str,
    block: IpNet,
    rtt: Option<f64>,
    noise: f64,
    rng: &mut SplitMix64,
    now: Seconds,
) -> MeasurementRequest {
    let rtt_ms = rtt.map(|ms| (ms * (1.0 + rng.uniform(-noise, noise))).clamp(0.01, 60_000.0));
    MeasurementRequest {
        mirror: mirror.to_string(),
        client: block.to_string(),
        rtt_ms,
        timeout: rtt_ms.is_none(),
        method: Some("icmp".to_string()),
        time: Some(now),
    }
}

fn weighted(scenario: &Scenario, values: &[f64]) -> f64 {
    scenario
        .blocks
        .iter()
        .zip(values)
        .map(|(b, v)| b.weight * v)
        .sum()
}

fn baselines(
    matrix: &LatencyMatrix,
    scenario: &Scenario,
    cost: &dyn Fn(usize, usize) -> f64,
    total: f64,
    oracle: f64,
) -> Baselines {
    let mirrors = scenario.mirrors.len();
    let ratio = |values: Vec<f64>| weighted(scenario, &values) / total / oracle;
    let round_robin = ratio(
        scenario
            .blocks
            .iter()
            .map(|b| (0..mirrors).map(|m| cost(b.node, m)).sum::<f64>() / mirrors as f64)
            .collect(),
    );
    let geo_nearest = scenario
        .blocks
        .iter()
        .map(|b| {
            let here = matrix.coordinates[b.node]?;
            let nearest = (0..mirrors).min_by(|x, y| {
                let dx = matrix.coordinates[scenario.mirrors[*x]]
                    .map_or(f64::INFINITY, |c| great_circle_km(here, c));
                let dy = matrix.coordinates[scenario.mirrors[*y]]
                    .map_or(f64::INFINITY, |c| great_circle_km(here, c));
                dx.total_cmp(&dy)
            })?;
            Some(cost(b.node, nearest))
        })
        .collect::<Option<Vec<f64>>>()
        .map(ratio);
    let mut per_16: HashMap<IpNet, Vec<f64>> = HashMap::new();
    for b in &scenario.blocks {
        let sums = per_16
            .entry(supernet_16(b.prefix))
            .or_insert_with(|| vec![0.0; mirrors]);
        for (m, sum) in sums.iter_mut().enumerate() {
            *sum += b.weight * cost(b.node, m);
        }
    }
    let choice: HashMap<IpNet, usize> = per_16
        .into_iter()
        .map(|(net, sums)| {
            (
                net,
                (0..mirrors)
                    .min_by(|a, b| sums[*a].total_cmp(&sums[*b]))
                    .unwrap_or(0),
            )
        })
        .collect();
    let best_per_16 = ratio(
        scenario
            .blocks
            .iter()
            .map(|b| cost(b.node, choice[&supernet_16(b.prefix)]))
            .collect(),
    );
    Baselines {
        round_robin,
        geo_nearest,
        best_per_16,
    }
}

fn supernet_16(prefix: IpNet) -> IpNet {
    IpNet::new(prefix.addr(), 16)
        .map(|n| n.trunc())
        .unwrap_or(prefix)
}

/// An engine serving one service whose mirrors are `names`.
fn engine_for(names: &[String], max_age_s: Seconds) -> Result<(Engine, ServiceHandle), String> {
    let mirrors: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("      - {{name: {n}, ipv4: [198.51.100.{}]}}\n", i + 1))
        .collect();
    let text = format!(
        "origin: sim.test.\nsoa: {{mname: ns1, rname: h, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1}}\nrecords:\n  '': {{type: NS, value: ns1}}\n  ns1: {{type: A, value: 127.0.0.1}}\nservices:\n  www:\n    measurements: {{max_age_s: {max_age_s}}}\n    mirrors:\n{mirrors}"
    );
    let zone = zone::load_str(Path::new("simulation.yaml"), &text).map_err(|e| e.to_string())?;
    let engine = Engine::default();
    let handle = engine
        .bind(&ZoneSet::new(vec![Arc::new(zone)]))
        .into_iter()
        .flatten()
        .next()
        .ok_or("the simulation zone has no service")?;
    Ok((engine, handle))
}
