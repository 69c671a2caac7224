//! The engine's side of the protocol's messages: a received measurement
//! becomes a request to validate, probe work becomes the list agents read.

use ipnet::IpNet;

use super::{MeasurementRequest, Probe};
use crate::protocol::{Measurement, ProbeItem, ProbeWork};

impl From<Measurement> for MeasurementRequest {
    fn from(m: Measurement) -> MeasurementRequest {
        MeasurementRequest {
            mirror: m.mirror,
            client: m.client,
            rtt_ms: m.rtt_ms,
            timeout: m.timeout,
            method: m.method,
            time: m.time.map(|t| t.0),
        }
    }
}

/// The probe work agents read, from the API or from NATS.
pub fn probe_work(probes: &[Probe]) -> ProbeWork {
    ProbeWork {
        probes: probes.iter().map(probe_item).collect(),
    }
}

/// One probe; `resolvers` (the addresses seen asking with a subnet target,
/// which the agent tries before the subnet's first host) only when known.
fn probe_item(probe: &Probe) -> ProbeItem {
    ProbeItem {
        target: target_text(probe.target),
        block: probe.block.to_string(),
        resolvers: probe.resolvers.iter().map(ToString::to_string).collect(),
    }
}

/// A single address is written as an address, a subnet in CIDR form.
fn target_text(target: IpNet) -> String {
    if target.prefix_len() == target.max_prefix_len() {
        target.addr().to_string()
    } else {
        target.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(target: &str, resolvers: &[&str]) -> Probe {
        let target: IpNet = target.parse().unwrap();
        Probe {
            target,
            block: target,
            resolvers: resolvers.iter().map(|r| r.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn probe_work_writes_an_address_target_as_an_address() {
        let work = probe_work(&[
            probe("198.51.100.0/24", &["203.0.113.53", "2001:db8::53"]),
            probe("203.0.113.9/32", &[]),
        ]);
        assert_eq!(
            serde_json::to_value(&work).unwrap(),
            json!({"probes": [
                {"target": "198.51.100.0/24", "block": "198.51.100.0/24", "resolvers": ["203.0.113.53", "2001:db8::53"]},
                {"target": "203.0.113.9", "block": "203.0.113.9/32"},
            ]})
        );
    }
}
