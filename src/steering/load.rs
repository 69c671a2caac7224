//! Moving clusters off mirrors that are over capacity (SPEC section 2 "Load",
//! claims 9, 20, 36, 44), and back when the load falls.
//!
//! A load tick measures each complete cluster's query rate since the last
//! tick and each mirror's load for the service: its answer rate over its
//! `capacity_qps`, or the load its agent reported (`POST /v1/load`), the
//! higher of the two. While a mirror is over 1.0, the clusters it answers
//! move to their next-best mirror with headroom, those that lose the least
//! latency (times their query rate) first, until it is under again. A moved
//! cluster returns when its best mirror would stay under [`RETURN_BELOW`]
//! with it back: the gap between the two thresholds is the hysteresis that
//! keeps clusters from bouncing.

use std::collections::HashMap;

use ipnet::IpNet;

use super::decision::Score;
use super::measurements::{MeasurementStore, MirrorId, Seconds};
use super::region::Inputs;
use super::status::MirrorStatus;
use super::table::{Clusters, ServiceConfig, cluster_scores};

/// A moved cluster returns only if its best mirror's load, with the cluster
/// back, stays below this.
pub const RETURN_BELOW: f64 = 0.8;
/// A reported load older than this is ignored.
pub const REPORT_TTL: Seconds = 120;

/// One cluster moved, for the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Move {
    pub service: String,
    pub cluster: IpNet,
    pub from: MirrorId,
    pub to: MirrorId,
    /// Back to its best mirror, rather than off an overloaded one.
    pub back: bool,
    pub qps: f64,
}

/// What a tick knows about one mirror of the service.
struct MirrorLoad {
    /// Answers per second the service sends it (projected as clusters move).
    rate: f64,
    /// Answers per second it can take for this service, if bounded.
    capacity: Option<f64>,
}

impl MirrorLoad {
    fn load(&self) -> f64 {
        match self.capacity {
            Some(c) if c > 0.0 => self.rate / c,
            Some(_) => f64::INFINITY,
            None => 0.0,
        }
    }

    fn load_with(&self, extra: f64) -> f64 {
        MirrorLoad {
            rate: self.rate + extra,
            capacity: self.capacity,
        }
        .load()
    }
}

/// The inputs of a tick that come from outside the service's table.
pub struct TickInputs<'a> {
    pub store: &'a MeasurementStore,
    pub status: &'a MirrorStatus,
    /// Fresh agent-reported load by mirror.
    pub reported: &'a HashMap<MirrorId, f64>,
    pub now: Seconds,
    pub elapsed: f64,
}

/// Runs one load tick over a service's clusters; returns the moves made.
pub fn rebalance(
    clusters: &mut Clusters,
    config: &ServiceConfig,
    inputs: &TickInputs<'_>,
) -> Vec<Move> {
    let rates = cluster_rates(clusters, inputs.elapsed);
    let limited = config.capacity_qps.iter().any(Option::is_some)
        || config
            .mirror_ids
            .iter()
            .any(|id| inputs.reported.contains_key(id));
    if !limited && clusters.iter().all(|(_, c)| c.offload.is_none()) {
        return Vec::new();
    }
    let assigned: HashMap<IpNet, MirrorId> = clusters
        .iter()
        .filter_map(|(p, c)| Some((p, assignment(c.offload, &c.ranking, inputs.status)?)))
        .collect();
    let mut loads = mirror_loads(config, &assigned, &rates, inputs.reported);
    let mut moves = move_back(clusters, config, &rates, &mut loads, inputs);
    moves.extend(move_off(
        clusters, config, &assigned, &rates, &mut loads, inputs,
    ));
    moves
}

/// Queries per second of every complete cluster since the last tick.
fn cluster_rates(clusters: &mut Clusters, elapsed: f64) -> HashMap<IpNet, f64> {
    let mut rates = HashMap::new();
    for (prefix, cluster) in clusters.iter_mut() {
        let queries = cluster.blocks.queries();
        let delta = queries.saturating_sub(cluster.queries_at_tick);
        cluster.queries_at_tick = queries;
        if cluster.is_complete() && elapsed > 0.0 {
            rates.insert(prefix, delta as f64 / elapsed);
        }
    }
    rates
}

/// The mirror a complete cluster answers now: its load-driven override, or
/// its best available mirror.
fn assignment(
    offload: Option<MirrorId>,
    ranking: &[MirrorId],
    status: &MirrorStatus,
) -> Option<MirrorId> {
    offload
        .iter()
        .chain(ranking)
        .copied()
        .find(|id| status.is_available(*id))
}

fn mirror_loads(
    config: &ServiceConfig,
    assigned: &HashMap<IpNet, MirrorId>,
    rates: &HashMap<IpNet, f64>,
    reported: &HashMap<MirrorId, f64>,
) -> HashMap<MirrorId, MirrorLoad> {
    config
        .mirror_ids
        .iter()
        .zip(&config.capacity_qps)
        .map(|(id, capacity)| {
            let rate: f64 = assigned
                .iter()
                .filter(|(_, m)| *m == id)
                .map(|(p, _)| rates.get(p).copied().unwrap_or(0.0))
                .sum();
            // A reported load says how full the mirror is; what it can take
            // from this service is then its current rate over that figure.
            // With no answers from us there is nothing to scale.
            let from_report = reported
                .get(id)
                .filter(|l| **l > 0.0 && rate > 0.0)
                .map(|l| rate / l);
            let capacity = match (capacity.map(|c| c as f64), from_report) {
                (Some(c), Some(r)) => Some(c.min(r)),
                (c, r) => c.or(r),
            };
            (*id, MirrorLoad { rate, capacity })
        })
        .collect()
}

/// Clusters moved earlier return to their best mirror when it has room.
fn move_back(
    clusters: &mut Clusters,
    config: &ServiceConfig,
    rates: &HashMap<IpNet, f64>,
    loads: &mut HashMap<MirrorId, MirrorLoad>,
    inputs: &TickInputs<'_>,
) -> Vec<Move> {
    let mut moves = Vec::new();
    for (prefix, cluster) in clusters.iter_mut() {
        let Some(from) = cluster.offload else {
            continue;
        };
        let Some(best) = assignment(None, &cluster.ranking, inputs.status) else {
            continue;
        };
        let rate = rates.get(&prefix).copied().unwrap_or(0.0);
        // An agent's report counts as long as it is fresh: while its mirror
        // says it is busy, nothing returns, whatever our own count says.
        let reported_ok = inputs.reported.get(&best).is_none_or(|l| *l < RETURN_BELOW);
        let room = reported_ok
            && loads
                .get(&best)
                .is_none_or(|l| l.load_with(rate) < RETURN_BELOW);
        if best == from || room {
            cluster.offload = None;
            if let Some(l) = loads.get_mut(&from) {
                l.rate -= rate;
            }
            if let Some(l) = loads.get_mut(&best) {
                l.rate += rate;
            }
            if best != from {
                moves.push(Move {
                    service: config.name.clone(),
                    cluster: prefix,
                    from,
                    to: best,
                    back: true,
                    qps: rate,
                });
            }
        }
    }
    moves
}

/// While a mirror is over capacity, moves its clusters to their next-best
/// mirror with headroom, the least latency lost times queries first.
fn move_off(
    clusters: &mut Clusters,
    config: &ServiceConfig,
    assigned: &HashMap<IpNet, MirrorId>,
    rates: &HashMap<IpNet, f64>,
    loads: &mut HashMap<MirrorId, MirrorLoad>,
    inputs: &TickInputs<'_>,
) -> Vec<Move> {
    let mut overloaded: Vec<MirrorId> = loads
        .iter()
        .filter(|(_, l)| l.load() > 1.0)
        .map(|(id, _)| *id)
        .collect();
    overloaded.sort_by_key(|id| config.local_index(*id));
    let mut moves = Vec::new();
    for from in overloaded {
        let mut candidates: Vec<(f64, IpNet, MirrorId, f64)> = Vec::new();
        for (prefix, mirror) in assigned {
            if *mirror != from {
                continue;
            }
            let Some(cluster) = clusters.get(prefix) else {
                continue;
            };
            let rate = rates.get(prefix).copied().unwrap_or(0.0);
            if rate <= 0.0 {
                continue;
            }
            let rules = Inputs {
                config,
                store: inputs.store,
                now: inputs.now,
                passive: 0,
                events: None,
            };
            let scores = cluster_scores(cluster, &rules);
            let score = |id: MirrorId| config.local_index(id).map_or(Score::Unknown, |l| scores[l]);
            let Score::Ms(here) = score(from) else {
                continue;
            };
            let target = cluster.ranking.iter().copied().find(|to| {
                *to != from
                    && inputs.status.is_available(*to)
                    && matches!(score(*to), Score::Ms(_))
                    && loads.get(to).is_none_or(|l| l.load_with(rate) <= 1.0)
            });
            if let Some(to) = target
                && let Score::Ms(there) = score(to)
            {
                candidates.push(((there - here).max(0.0) * rate, *prefix, to, rate));
            }
        }
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (_, prefix, to, rate) in candidates {
            if loads.get(&from).is_none_or(|l| l.load() <= 1.0) {
                break;
            }
            if loads.get(&to).is_some_and(|l| l.load_with(rate) > 1.0) {
                continue;
            }
            if let Some(cluster) = clusters.get_mut(&prefix) {
                cluster.offload = Some(to);
            }
            if let Some(l) = loads.get_mut(&from) {
                l.rate -= rate;
            }
            if let Some(l) = loads.get_mut(&to) {
                l.rate += rate;
            }
            moves.push(Move {
                service: config.name.clone(),
                cluster: prefix,
                from,
                to,
                back: false,
                qps: rate,
            });
        }
    }
    moves
}
