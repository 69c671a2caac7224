//! `/metrics` in the Prometheus text format (prometheus-client encodes it).
//!
//! The hot paths count in plain atomics (the DNS handler per query type and
//! rcode, the steering tables per mirror); a scrape reads those and the
//! engine's state into a fresh registry and encodes it. The metric list is
//! in docs/METRICS.md.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::app::App;

/// Counters kept outside the DNS handler and the engine.
#[derive(Default)]
pub struct Counters {
    pub measurements_accepted: AtomicU64,
    pub measurements_rejected: AtomicU64,
    pub batches_rejected: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Unix time of the last successful load or reload.
    pub last_reload: AtomicU64,
    /// Shared-stream messages applied since start (`--nats`).
    pub stream_batches_applied: AtomicU64,
    /// The last shared-stream sequence this instance's state holds.
    pub stream_position: AtomicU64,
    /// The stream's last sequence when last seen, for the lag.
    pub stream_last: AtomicU64,
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Probe work counted per mirror at a scrape, at most this much.
const BACKLOG_LIMIT: usize = 100_000;

pub fn render(app: &App) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("mirrordns");
    let engine = app.engine();
    let now = crate::steering::now();

    let queries = Family::<Labels, Counter>::default();
    for (qtype, rcode, n) in app.handler().stats().snapshot() {
        queries
            .get_or_create(&labels(&[("qtype", &qtype), ("rcode", &rcode)]))
            .inc_by(n);
    }
    registry.register(
        "dns_queries",
        "DNS queries answered, by query type and rcode",
        queries,
    );

    let rrl = Family::<Labels, Counter>::default();
    let (dropped, slipped) = app.handler().rrl_counts();
    rrl.get_or_create(&labels(&[("action", "dropped")]))
        .inc_by(dropped);
    rrl.get_or_create(&labels(&[("action", "slipped")]))
        .inc_by(slipped);
    registry.register(
        "rrl_limited_responses",
        "UDP responses rate limited: dropped, or sent truncated (slip)",
        rrl,
    );

    let answers = Family::<Labels, Counter>::default();
    let failed_open = Family::<Labels, Counter>::default();
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

    let by_state = Family::<Labels, Counter>::default();
    let best = Family::<Labels, Counter>::default();
    let regret = Family::<Labels, Counter<f64, AtomicU64>>::default();
    let changes = Family::<Labels, Counter>::default();
    let explored = Family::<Labels, Counter>::default();
    for q in engine.quality() {
        let service = [("service", q.service.as_str())];
        by_state
            .get_or_create(&labels(&[service[0], ("state", "complete")]))
            .inc_by(q.complete);
        by_state
            .get_or_create(&labels(&[service[0], ("state", "learning")]))
            .inc_by(q.learning);
        best.get_or_create(&labels(&service)).inc_by(q.best);
        regret
            .get_or_create(&labels(&service))
            .inc_by(q.regret_us as f64 / 1e6);
        changes
            .get_or_create(&labels(&service))
            .inc_by(q.answer_changes);
        explored.get_or_create(&labels(&service)).inc_by(q.explored);
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

    let clusters = Family::<Labels, Gauge>::default();
    for s in engine.services() {
        let learning = (s.clusters - s.complete) as i64;
        clusters
            .get_or_create(&labels(&[("service", &s.name), ("state", "complete")]))
            .set(s.complete as i64);
        clusters
            .get_or_create(&labels(&[("service", &s.name), ("state", "learning")]))
            .set(learning);
    }
    registry.register(
        "clusters",
        "Clusters in the learned table, by service and state",
        clusters,
    );

    let c = app.counters();
    let measurements = Family::<Labels, Counter>::default();
    for (result, counter) in [
        ("accepted", &c.measurements_accepted),
        ("rejected", &c.measurements_rejected),
    ] {
        measurements
            .get_or_create(&labels(&[("result", result)]))
            .inc_by(counter.load(Ordering::Relaxed));
    }
    registry.register(
        "measurements",
        "Measurements posted, accepted or in rejected batches",
        measurements,
    );
    let batches_rejected = Counter::<u64>::default();
    batches_rejected.inc_by(c.batches_rejected.load(Ordering::Relaxed));
    registry.register(
        "measurement_batches_rejected",
        "Measurement batches refused whole",
        batches_rejected,
    );

    let backlog = Family::<Labels, Gauge>::default();
    let up = Family::<Labels, Gauge>::default();
    let drained = Family::<Labels, Gauge>::default();
    for m in engine.mirror_states() {
        let work = engine
            .probes(&m.name, now, BACKLOG_LIMIT)
            .map_or(0, |p| p.len());
        backlog
            .get_or_create(&labels(&[("mirror", &m.name)]))
            .set(work as i64);
        up.get_or_create(&labels(&[("mirror", &m.name)]))
            .set(i64::from(!m.down));
        drained
            .get_or_create(&labels(&[("mirror", &m.name)]))
            .set(i64::from(m.drained));
    }
    registry.register(
        "probe_backlog",
        "Sub-blocks waiting for a fresh measurement from the mirror",
        backlog,
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

    let load = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (mirror, l) in engine.reported_loads(now) {
        load.get_or_create(&labels(&[("mirror", &mirror)])).set(l);
    }
    registry.register(
        "mirror_reported_load",
        "Load the mirror's agent reported (1.0 = at capacity), while fresh",
        load,
    );

    let reloads = Family::<Labels, Counter>::default();
    for (result, counter) in [("ok", &c.reloads_ok), ("failed", &c.reloads_failed)] {
        reloads
            .get_or_create(&labels(&[("result", result)]))
            .inc_by(counter.load(Ordering::Relaxed));
    }
    registry.register("zone_reloads", "Zone reloads by result", reloads);
    let last = Gauge::<i64>::default();
    last.set(c.last_reload.load(Ordering::Relaxed) as i64);
    registry.register(
        "zone_last_reload_timestamp_seconds",
        "Unix time of the last successful zone load",
        last,
    );

    let applied = Counter::<u64>::default();
    applied.inc_by(c.stream_batches_applied.load(Ordering::Relaxed));
    registry.register(
        "stream_batches_applied",
        "Shared-stream messages consumed since start: applied, or skipped as unusable (--nats)",
        applied,
    );
    let position = c.stream_position.load(Ordering::Relaxed);
    let lag = Gauge::<i64>::default();
    lag.set(
        c.stream_last
            .load(Ordering::Relaxed)
            .saturating_sub(position) as i64,
    );
    registry.register(
        "stream_lag_messages",
        "Shared-stream messages stored but not yet applied here (--nats)",
        lag,
    );
    let at = Gauge::<i64>::default();
    at.set(position as i64);
    registry.register(
        "stream_position",
        "The last shared-stream sequence this instance's state holds (--nats)",
        at,
    );

    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}
