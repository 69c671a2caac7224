//! The DNS front end's families: queries by type and rcode, and responses
//! rate limited.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{Labels, labels};
use crate::dns::Handler;

pub(super) fn register(registry: &mut Registry, handler: &Handler) {
    register_queries(registry, handler);
    register_rate_limited(registry, handler);
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
