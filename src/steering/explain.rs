//! Why a client gets its answer (`GET /v1/explain`, `mirrordns why`): the
//! deciding cluster, every mirror's latency, health, drain and load, and the
//! reason in one sentence. Read-only: explaining never creates a cluster.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ipnet::IpNet;

use super::decision::Score;
use super::measurements::{Method, Seconds};
use super::region::EXPLORE_TRIES;
use super::table::{Cluster, ServiceConfig, cluster_scores};
use super::{Engine, ServiceTable, normalize_name};
use crate::zone::{Family, SwitchMargin};

#[derive(Clone, Debug)]
pub struct Explanation {
    pub service: String,
    pub client: IpNet,
    /// The deciding cluster, if one holds the client.
    pub cluster: Option<IpNet>,
    pub complete: bool,
    /// The mirror a query for the client would get (IPv4 answers).
    pub mirror: Option<String>,
    pub offloaded: bool,
    /// The client's sub-block answered no mirror's active probe.
    pub silent: bool,
    /// The client's sub-block is being explored.
    pub exploring: Option<ExplorationFacts>,
    pub mirrors: Vec<MirrorFacts>,
    pub margin: SwitchMargin,
    pub reason: String,
}

/// A silent sub-block's exploration: answered with `mirror` so that its
/// access log measures the clients; `answers` of `of` given so far.
#[derive(Clone, Debug)]
pub struct ExplorationFacts {
    pub mirror: String,
    pub answers: u32,
    pub of: u32,
}

#[derive(Clone, Debug)]
pub struct MirrorFacts {
    pub name: String,
    /// The cluster's latency as the decision uses it.
    pub rtt: Score,
    /// The client's own sub-block: its latest measurement's age and method.
    pub age_s: Option<Seconds>,
    pub method: Option<Method>,
    pub healthy: bool,
    pub drained: bool,
    pub reported_load: Option<f64>,
}

impl Engine {
    pub fn explain(&self, service: &str, client: IpNet, now: Seconds) -> Option<Explanation> {
        let table: Arc<ServiceTable> =
            Arc::clone(self.tables.lock().get(&normalize_name(service))?);
        let config = Arc::clone(&table.config.read());
        let clusters = table.clusters.read();
        let found = clusters.longest_match(client.addr());
        let store = self.store.read();
        let inputs = self.inputs(&config, &store, now);
        let scores = found
            .map(|(_, c)| cluster_scores(c, &inputs))
            .unwrap_or_else(|| vec![Score::Unknown; config.mirror_ids.len()]);
        let block_prefix = config.block_of(&client);
        let block = store.get(&block_prefix);
        let silent = block.and_then(|b| b.answered_active()).is_none();
        let exploring = found
            .and_then(|(_, c)| c.exploration_of(&block_prefix))
            .map(|e| ExplorationFacts {
                mirror: config.mirror_names[usize::from(e.mirror)].clone(),
                answers: e.answered.load(Ordering::Relaxed),
                of: EXPLORE_TRIES,
            });
        let reported = self.fresh_reports(now);
        let mirrors: Vec<MirrorFacts> = config
            .mirror_ids
            .iter()
            .zip(&config.mirror_names)
            .zip(&scores)
            .map(|((id, name), score)| {
                let own = block.and_then(|b| b.get(*id));
                MirrorFacts {
                    name: name.clone(),
                    rtt: *score,
                    age_s: own.map(|m| now.saturating_sub(m.time)),
                    method: own.map(|m| m.method),
                    healthy: !self.status.is_down(*id),
                    drained: self.status.is_drained(*id),
                    reported_load: reported.get(id).copied(),
                }
            })
            .collect();
        let available = |name: &str| {
            mirrors
                .iter()
                .any(|m| m.name == name && m.healthy && !m.drained)
        };
        let answer = found.and_then(|(_, c)| {
            c.offload
                .iter()
                .chain(&c.ranking)
                .filter_map(|id| config.local_index(*id))
                .map(|l| config.mirror_names[l].clone())
                .find(|n| available(n))
        });
        let reason = match &exploring {
            Some(e) if e.answers < e.of => format!(
                "exploring: this sub-block answers no active probe, so its clients are sent to {} (answer {} of {}) for {}'s access log to measure them",
                e.mirror,
                e.answers + 1,
                e.of,
                e.mirror
            ),
            _ => reason(
                found.map(|(_, c)| c),
                &config,
                &mirrors,
                answer.as_deref(),
                &client,
            ),
        };
        Some(Explanation {
            service: config.name.clone(),
            client,
            cluster: found.map(|(p, _)| p),
            complete: found.is_some_and(|(_, c)| c.is_complete()),
            mirror: answer,
            offloaded: found.is_some_and(|(_, c)| c.offload.is_some()),
            silent,
            exploring,
            mirrors,
            margin: config.margin,
            reason,
        })
    }
}

fn ms(score: Score) -> String {
    match score {
        Score::Ms(v) => format!("{v:.0} ms"),
        Score::Timeout => "unreachable".to_string(),
        Score::Unknown => "not measured".to_string(),
    }
}

/// The one-sentence reason for the answer.
fn reason(
    cluster: Option<&Cluster>,
    config: &ServiceConfig,
    mirrors: &[MirrorFacts],
    answer: Option<&str>,
    client: &IpNet,
) -> String {
    let Some(cluster) = cluster else {
        let family = Family::of(client.addr());
        return format!(
            "no cluster holds this client yet: its first query creates one (at /{} unless the prefix list says otherwise) and is answered round robin",
            config.initial_len[super::table::family_index(family)]
        );
    };
    if mirrors.iter().all(|m| !m.healthy || m.drained) {
        return "every mirror is drained or down: answering with all of them (fail open)"
            .to_string();
    }
    if !cluster.is_complete() {
        let missing: Vec<&str> = mirrors
            .iter()
            .filter(|m| m.rtt == Score::Unknown)
            .map(|m| m.name.as_str())
            .collect();
        return format!(
            "learning: {} of {} mirrors measured (waiting for {}; a sub-block that answers no active probe is measured only through access logs); answered round robin",
            mirrors.len() - missing.len(),
            mirrors.len(),
            missing.join(", ")
        );
    }
    let mut by_latency: Vec<&MirrorFacts> = mirrors
        .iter()
        .filter(|m| matches!(m.rtt, Score::Ms(_)))
        .collect();
    by_latency.sort_by(|a, b| match (a.rtt, b.rtt) {
        (Score::Ms(x), Score::Ms(y)) => x.total_cmp(&y).then(a.name.cmp(&b.name)),
        _ => std::cmp::Ordering::Equal,
    });
    let Some(fastest) = by_latency.first() else {
        return format!(
            "complete, with no measured sub-block of its own: answering {} as the busiest cluster of its region does",
            answer.unwrap_or("?")
        );
    };
    let mut sentence = format!("complete; {} fastest at {}", fastest.name, ms(fastest.rtt));
    if let Some(second) = by_latency.get(1) {
        sentence.push_str(&format!("; {} {}", second.name, ms(second.rtt)));
    }
    let Some(answer) = answer else {
        return sentence;
    };
    if answer == fastest.name {
        return sentence;
    }
    let fastest_out = !fastest.healthy || fastest.drained;
    let answered = mirrors.iter().find(|m| m.name == answer);
    let because = if fastest_out {
        format!(
            "{} is {}, so {} answers",
            fastest.name,
            if fastest.drained { "drained" } else { "down" },
            answer
        )
    } else if cluster.offload.is_some() {
        format!("moved to {answer}: {} is over capacity", fastest.name)
    } else {
        format!(
            "no switch from {answer} ({}): {} is not faster by more than {} ms and {} %",
            answered.map_or("?".to_string(), |m| ms(m.rtt)),
            fastest.name,
            config.margin.ms,
            config.margin.percent
        )
    };
    format!("{sentence}; {because}")
}
