//! Bounded memory under a flood of client subnets (`serve --max-blocks`):
//! every ECS subnet a query names could become a sub-block, so an attacker
//! sending random subnets must not grow the table without bound, and a
//! learned cluster must keep its answer throughout.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use mirrordns::steering::{Engine, MeasurementRequest, ServiceHandle};
use mirrordns::zone::{Family, ZoneSet, load_str};

const ZONE: &str = "origin: flood.test.
soa: {mname: ns1, rname: h, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1}
records:
  '': {type: NS, value: ns1}
  ns1: {type: A, value: 127.0.0.1}
services:
  www:
    mirrors:
      - {name: fra, ipv4: [192.0.2.1]}
      - {name: nyc, ipv4: [192.0.2.2]}
";

fn engine(max_blocks: usize) -> (Engine, ServiceHandle) {
    let zone = load_str(Path::new("flood.yaml"), ZONE).unwrap();
    let engine = Engine::default();
    engine.set_max_blocks(max_blocks);
    let handle = engine
        .bind(&ZoneSet::new(vec![Arc::new(zone)]))
        .remove(0)
        .remove(0);
    (engine, handle)
}

fn blocks_held(engine: &Engine) -> usize {
    engine
        .clusters("www.flood.test", 0)
        .unwrap()
        .1
        .iter()
        .map(|c| c.blocks)
        .sum()
}

/// The i-th of 2^23 distinct /24s from 11.0.0.0 on, in scrambled order
/// (an odd multiplier is a bijection modulo 2^23); never 198.51.100.0/24.
fn random_block(i: u64) -> IpNet {
    let index = (i.wrapping_mul(0x9E37_79B1) & 0x7F_FFFF) as u32;
    let addr = Ipv4Addr::from(0x0B00_0000 + (index << 8));
    IpNet::new(addr.into(), 24).unwrap()
}

/// Floods `count` distinct /24s at a table capped at `cap` and checks the
/// cap and the learned answer along the way.
fn flood(count: u64, cap: usize) {
    let (engine, handle) = engine(cap);
    let measure = |mirror: &str, ms: f64| MeasurementRequest {
        mirror: mirror.into(),
        client: "198.51.100.0/24".into(),
        rtt_ms: Some(ms),
        ..Default::default()
    };
    engine
        .apply(
            &[measure("fra", 40.0), measure("nyc", 8.0)],
            mirrordns::steering::now(),
        )
        .unwrap();
    let learned: IpNet = "198.51.100.7/32".parse().unwrap();
    assert_eq!(handle.decide(learned, Family::V4).unwrap().mirror, Some(1));
    for i in 0..count {
        let d = handle.decide(random_block(i), Family::V4);
        assert!(
            d.is_some_and(|d| d.mirror.is_some()),
            "every flood query is still answered"
        );
        if i % (count / 20) == 0 {
            assert!(
                blocks_held(&engine) <= cap,
                "{} sub-blocks held after {i} queries, cap {cap}",
                blocks_held(&engine)
            );
            assert_eq!(
                handle.decide(learned, Family::V4).unwrap(),
                mirrordns::steering::Decision {
                    mirror: Some(1),
                    scope: 16
                }
            );
        }
    }
    assert!(blocks_held(&engine) <= cap);
    assert!(
        blocks_held(&engine) >= cap / 2,
        "eviction keeps most of the table"
    );
}

#[test]
fn a_flood_of_random_subnets_stays_under_the_cap_and_the_learned_answer_holds() {
    flood(200_000, 20_000);
}

/// The size: 5 million distinct /24s against the default cap of a
/// million. Minutes in a debug build: run with
/// `cargo test --release --test limits -- --ignored`.
#[test]
#[ignore = "long: 5 million queries"]
fn five_million_random_subnets_against_the_default_cap() {
    flood(5_000_000, mirrordns::steering::DEFAULT_MAX_BLOCKS);
}
