//! Memory of a learned table: a million /24 sub-blocks, each measured by
//! eight mirrors, then the resident set size of this process.
//!
//! Run: `cargo run --release --example table_memory` (target: 256 MiB).
//! By default the /24s of a /16 mostly agree (one in sixteen is routed
//! elsewhere), as networks do; `-- adversarial` makes every /24 prefer
//! another mirror than its neighbour, so the table splits to the bone.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use mirrordns::steering::{Engine, MeasurementRequest};
use mirrordns::zone::{ZoneSet, load_str};

const BLOCKS: usize = 1_000_000;
const MIRRORS: usize = 8;

fn rss_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The RTT from mirror `m` to block `b` in the chosen pattern.
fn rtt(b: usize, m: usize, adversarial: bool) -> f64 {
    let network = if adversarial || b % 16 == 5 {
        b
    } else {
        b / 256
    };
    10.0 + ((network * 7 + m * 13) % 200) as f64
}

fn main() {
    let adversarial = std::env::args().any(|a| a == "adversarial");
    let mirrors: String = (0..MIRRORS)
        .map(|i| format!("      - {{name: m{i}, ipv4: [198.51.100.{}]}}\n", i + 1))
        .collect();
    let text = format!(
        "origin: m.test.\nsoa: {{mname: ns1, rname: h, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1}}\nrecords:\n  '': {{type: NS, value: ns1}}\n  ns1: {{type: A, value: 127.0.0.1}}\nservices:\n  www:\n    mirrors:\n{mirrors}"
    );
    let zone = load_str(Path::new("memory.yaml"), &text).expect("valid zone");
    let engine = Engine::default();
    engine.bind(&ZoneSet::new(vec![Arc::new(zone)]));
    let before = rss_mib("VmRSS:");
    let started = std::time::Instant::now();
    let now = 1_800_000_000;
    let mut batch = Vec::with_capacity(1000);
    for b in 0..BLOCKS {
        let block = Ipv4Addr::from(0x1000_0000u32 + ((b as u32) << 8));
        for m in 0..MIRRORS {
            batch.push(MeasurementRequest {
                mirror: format!("m{m}"),
                client: format!("{block}/24"),
                rtt_ms: Some(rtt(b, m, adversarial)),
                time: Some(now),
                ..Default::default()
            });
            if batch.len() == 1000 {
                engine.apply(&batch, now).expect("valid batch");
                batch.clear();
            }
        }
    }
    let services = engine.services();
    println!(
        "{BLOCKS} sub-blocks x {MIRRORS} mirrors in {} clusters, applied in {:.1} s ({:.0} measurements/s)",
        services[0].clusters,
        started.elapsed().as_secs_f64(),
        (BLOCKS * MIRRORS) as f64 / started.elapsed().as_secs_f64()
    );
    println!(
        "RSS {:.0} MiB (before the table {:.0} MiB, peak {:.0} MiB)",
        rss_mib("VmRSS:"),
        before,
        rss_mib("VmHWM:")
    );
}
