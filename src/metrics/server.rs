//! The server's own counters (kept outside the DNS handler and the engine)
//! and their families: measurements posted, zone reloads, the shared stream.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Labels, labels};

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

pub(super) fn register(registry: &mut Registry, counters: &Counters) {
    register_measurements(registry, counters);
    register_reloads(registry, counters);
    register_stream(registry, counters);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn counter(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

fn gauge(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

/// A counter family with one label taking each of `values`.
fn by_result(values: &[(&str, &AtomicU64)]) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    for (result, value) in values {
        family
            .get_or_create(&labels(&[("result", result)]))
            .inc_by(read(value));
    }
    family
}

fn register_measurements(registry: &mut Registry, c: &Counters) {
    registry.register(
        "measurements",
        "Measurements posted, accepted or in rejected batches",
        by_result(&[
            ("accepted", &c.measurements_accepted),
            ("rejected", &c.measurements_rejected),
        ]),
    );
    registry.register(
        "measurement_batches_rejected",
        "Measurement batches refused whole",
        counter(read(&c.batches_rejected)),
    );
}

fn register_reloads(registry: &mut Registry, c: &Counters) {
    registry.register(
        "zone_reloads",
        "Zone reloads by result",
        by_result(&[("ok", &c.reloads_ok), ("failed", &c.reloads_failed)]),
    );
    registry.register(
        "zone_last_reload_timestamp_seconds",
        "Unix time of the last successful zone load",
        gauge(read(&c.last_reload)),
    );
}

fn register_stream(registry: &mut Registry, c: &Counters) {
    let position = read(&c.stream_position);
    registry.register(
        "stream_batches_applied",
        "Shared-stream messages consumed since start: applied, or skipped as unusable (--nats)",
        counter(read(&c.stream_batches_applied)),
    );
    registry.register(
        "stream_lag_messages",
        "Shared-stream messages stored but not yet applied here (--nats)",
        gauge(read(&c.stream_last).saturating_sub(position)),
    );
    registry.register(
        "stream_position",
        "The last shared-stream sequence this instance's state holds (--nats)",
        gauge(position),
    );
}
