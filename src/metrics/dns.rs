//! The DNS front end's families: queries by type and rcode, responses
//! rate limited, TCP connections, and the signature caches of signed zones.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Labels, labels};
use crate::dns::Handler;

pub(super) fn register(registry: &mut Registry, handler: &Handler) {
    register_queries(registry, handler);
    register_rate_limited(registry, handler);
    register_tcp(registry, handler);
    register_signatures(registry, handler);
}

fn register_tcp(registry: &mut Registry, handler: &Handler) {
    let (open, refused) = handler.tcp_counts();
    let connections = Gauge::<i64>::default();
    connections.set(i64::try_from(open).unwrap_or(i64::MAX));
    registry.register(
        "dns_tcp_connections",
        "DNS TCP connections open now",
        connections,
    );
    let refusals = Counter::<u64>::default();
    refusals.inc_by(refused);
    registry.register(
        "dns_tcp_refused_connections",
        "DNS TCP connections closed at once because --tcp-max-connections were open",
        refusals,
    );
}

fn register_queries(registry: &mut Registry, handler: &Handler) {
    let queries = Family::<Labels, Counter>::default();
    for (qtype, rcode, n) in handler.stats().snapshot() {
        queries
            .get_or_create(&labels(&[("qtype", &qtype), ("rcode", &rcode)]))
            .inc_by(n);
    }
    registry.register(
        "dns_queries",
        "DNS queries answered, by query type and rcode",
        queries,
    );
}

fn register_rate_limited(registry: &mut Registry, handler: &Handler) {
    let rrl = Family::<Labels, Counter>::default();
    let (dropped, slipped) = handler.rrl_counts();
    rrl.get_or_create(&labels(&[("action", "dropped")]))
        .inc_by(dropped);
    rrl.get_or_create(&labels(&[("action", "slipped")]))
        .inc_by(slipped);
    registry.register(
        "rrl_limited_responses",
        "UDP responses rate limited: dropped, or sent truncated (slip)",
        rrl,
    );
}

/// Per signed zone: signatures made (cold: a first answer, a refresh, an
/// RRset changed by a reload), signatures served from the cache, and the
/// cache's size. A zone whose key changes starts counting afresh.
fn register_signatures(registry: &mut Registry, handler: &Handler) {
    let made = Family::<Labels, Counter>::default();
    let hits = Family::<Labels, Counter>::default();
    let entries = Family::<Labels, Gauge>::default();
    for zone in handler.catalog().zones.zones() {
        let Some(signer) = zone.signer() else {
            continue;
        };
        let stats = signer.cache_stats();
        let zone = labels(&[("zone", &zone.origin.to_string())]);
        made.get_or_create(&zone).inc_by(stats.signed);
        hits.get_or_create(&zone).inc_by(stats.hits);
        entries
            .get_or_create(&zone)
            .set(i64::try_from(stats.entries).unwrap_or(i64::MAX));
    }
    registry.register(
        "dnssec_signatures_made",
        "RRSIGs made by signed zones (first answers, refreshes, changed RRsets)",
        made,
    );
    registry.register(
        "dnssec_signature_cache_hits",
        "RRSIGs of signed zones served from the signature cache",
        hits,
    );
    registry.register(
        "dnssec_signature_cache_entries",
        "Signatures a signed zone's cache holds",
        entries,
    );
}
