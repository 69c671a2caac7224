//! The steering engine's families: answers per mirror, steering quality,
//! measurement ages, clusters, and each mirror's state and probe backlog.

use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Labels, labels};
use crate::steering::{Engine, Seconds};

/// Probe work counted per mirror, at most this much.
const BACKLOG_LIMIT: usize = 100_000;
/// The backlog is counted again after this many seconds, not at every
/// scrape: counting walks every cluster of every service once per mirror.
const BACKLOG_MAX_AGE: Seconds = 30;

type CounterFamily = Family<Labels, Counter>;
type GaugeFamily = Family<Labels, Gauge>;

pub(super) fn register(
    registry: &mut Registry,
    engine: &Engine,
    backlog: &BacklogCache,
    now: Seconds,
) {
    register_answers(registry, engine);
    register_quality(registry, engine);
    register_ages(registry, engine, now);
    register_clusters(registry, engine);
    register_mirrors(registry, engine, backlog, now);
    register_load_ticks(registry, engine);
}

fn register_load_ticks(registry: &mut Registry, engine: &Engine) {
    let ticks = Counter::<u64>::default();
    ticks.inc_by(engine.load_ticks());
    registry.register(
        "load_ticks",
        "Load ticks run (moves off overloaded mirrors and back), moves or not",
        ticks,
    );
}

fn register_answers(registry: &mut Registry, engine: &Engine) {
    let answers = CounterFamily::default();
    let failed_open = CounterFamily::default();
    for count in engine.answer_counts() {
        for (mirror, n) in &count.by_mirror {
            answers
                .get_or_create(&labels(&[("service", &count.service), ("mirror", mirror)]))
                .inc_by(*n);
        }
        failed_open
            .get_or_create(&labels(&[("service", &count.service)]))
            .inc_by(count.failed_open);
    }
    registry.register(
        "steered_answers",
        "Steered answers given, by service and mirror",
        answers,
    );
    registry.register(
        "failed_open_answers",
        "Answers with every mirror because none was available",
        failed_open,
    );
}

fn register_quality(registry: &mut Registry, engine: &Engine) {
    let by_state = CounterFamily::default();
    let best = CounterFamily::default();
    let regret = Family::<Labels, Counter<f64, AtomicU64>>::default();
    let changes = CounterFamily::default();
    let explored = CounterFamily::default();
    for q in engine.quality() {
        let service = labels(&[("service", &q.service)]);
        let in_state = |state| labels(&[("service", &q.service), ("state", state)]);
        by_state
            .get_or_create(&in_state("complete"))
            .inc_by(q.complete);
        by_state
            .get_or_create(&in_state("learning"))
            .inc_by(q.learning);
        best.get_or_create(&service).inc_by(q.best);
        regret
            .get_or_create(&service)
            .inc_by(q.regret_us as f64 / 1e6);
        changes.get_or_create(&service).inc_by(q.answer_changes);
        explored.get_or_create(&service).inc_by(q.explored);
    }
    registry.register(
        "cluster_answers",
        "Steered answers by the state of the deciding cluster",
        by_state,
    );
    registry.register(
        "best_mirror_answers",
        "Answers of complete clusters with their measured-fastest mirror",
        best,
    );
    registry.register(
        "latency_regret_seconds",
        "Sum over answers of complete clusters of (answered mirror's RTT - fastest mirror's RTT)",
        regret,
    );
    registry.register(
        "answer_changes",
        "Times a complete cluster's best mirror changed (flaps)",
        changes,
    );
    registry.register(
        "exploration_answers",
        "Answers that sent a silent sub-block to a mirror it has no RTT from, so that the mirror's access log measures it",
        explored,
    );
}

fn register_ages(registry: &mut Registry, engine: &Engine, now: Seconds) {
    let ages = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (mirror, mean, max) in engine.measurement_ages(now) {
        ages.get_or_create(&labels(&[("mirror", &mirror), ("stat", "mean")]))
            .set(mean);
        ages.get_or_create(&labels(&[("mirror", &mirror), ("stat", "max")]))
            .set(max as f64);
    }
    registry.register(
        "measurement_age_seconds",
        "Age of the stored measurements per mirror, mean and max",
        ages,
    );
}

fn register_clusters(registry: &mut Registry, engine: &Engine) {
    let clusters = GaugeFamily::default();
    for s in engine.services() {
        let in_state = |state| labels(&[("service", &s.name), ("state", state)]);
        clusters
            .get_or_create(&in_state("complete"))
            .set(s.complete as i64);
        clusters
            .get_or_create(&in_state("learning"))
            .set((s.clusters - s.complete) as i64);
    }
    registry.register(
        "clusters",
        "Clusters in the learned table, by service and state",
        clusters,
    );
}

fn register_mirrors(
    registry: &mut Registry,
    engine: &Engine,
    backlog: &BacklogCache,
    now: Seconds,
) {
    let backlogs = GaugeFamily::default();
    for (mirror, work) in backlog.counts(engine, now) {
        backlogs
            .get_or_create(&labels(&[("mirror", &mirror)]))
            .set(work as i64);
    }
    let up = GaugeFamily::default();
    let drained = GaugeFamily::default();
    for m in engine.mirror_states() {
        let mirror = labels(&[("mirror", &m.name)]);
        up.get_or_create(&mirror).set(i64::from(!m.down));
        drained.get_or_create(&mirror).set(i64::from(m.drained));
    }
    let load = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (mirror, l) in engine.reported_loads(now) {
        load.get_or_create(&labels(&[("mirror", &mirror)])).set(l);
    }
    registry.register(
        "probe_backlog",
        "Sub-blocks waiting for a fresh measurement from the mirror",
        backlogs,
    );
    registry.register(
        "mirror_healthy",
        "1 while the mirror's health checks pass (or it has none)",
        up,
    );
    registry.register(
        "mirror_drained",
        "1 while an operator has the mirror drained",
        drained,
    );
    registry.register(
        "mirror_reported_load",
        "Load the mirror's agent reported (1.0 = at capacity), while fresh",
        load,
    );
}

/// Sub-blocks waiting per mirror.
type Backlog = Vec<(String, usize)>;

/// The probe backlog per mirror as last counted, and when.
#[derive(Default)]
pub(super) struct BacklogCache {
    counted: Mutex<Option<(Seconds, Backlog)>>,
}

impl BacklogCache {
    /// The counts, counted again when older than [`BACKLOG_MAX_AGE`].
    fn counts(&self, engine: &Engine, now: Seconds) -> Backlog {
        let mut counted = self.counted.lock();
        match &*counted {
            Some((at, counts)) if now.saturating_sub(*at) < BACKLOG_MAX_AGE => counts.clone(),
            _ => {
                let counts = count_backlog(engine, now);
                *counted = Some((now, counts.clone()));
                counts
            }
        }
    }
}

fn count_backlog(engine: &Engine, now: Seconds) -> Backlog {
    engine
        .mirror_states()
        .into_iter()
        .map(|m| {
            let work = engine
                .probes(&m.name, now, BACKLOG_LIMIT)
                .map_or(0, |p| p.len());
            (m.name, work)
        })
        .collect()
}
