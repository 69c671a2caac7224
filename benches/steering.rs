//! Steering engine costs (issue targets: 5 M decisions/s on one core with a
//! million clusters; 200 k measurements/s applied in batches of 1,000), and
//! the prefix-trie lookup it is built on beside a hash-per-length lookup.
//!
//! Run: `cargo bench --bench steering` (numbers in docs/BENCHMARKS.md).

use std::collections::HashMap;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net};
use mirrordns::steering::{Engine, MeasurementRequest, ServiceHandle};
use mirrordns::zone::{Family, ZoneSet, load_str};
use prefix_trie::PrefixMap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

const MIRRORS: usize = 8;
const NOW: u64 = 1_800_000_000;

fn engine(initial_v4: u8) -> (Engine, ServiceHandle) {
    let mirrors: String = (0..MIRRORS)
        .map(|i| {
            let n = i + 1;
            format!("      - {{name: m{i}, ipv4: [198.51.100.{n}], ipv6: ['2001:db8:ff::{n}']}}\n")
        })
        .collect();
    let text = format!(
        "origin: b.test.\nsoa: {{mname: ns1, rname: h, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1}}\nrecords:\n  '': {{type: NS, value: ns1}}\n  ns1: {{type: A, value: 127.0.0.1}}\nservices:\n  www:\n    clusters: {{initial_v4: {initial_v4}}}\n    mirrors:\n{mirrors}"
    );
    let zone = load_str(Path::new("bench.yaml"), &text).unwrap();
    let engine = Engine::default();
    let handle = engine
        .bind(&ZoneSet::new(vec![Arc::new(zone)]))
        .remove(0)
        .remove(0);
    (engine, handle)
}

/// The i-th /24 of 16.0.0.0 upwards.
fn block(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x1000_0000u32 + ((i as u32) << 8))
}

/// Measurements of `blocks` sub-blocks from every mirror, in batches of 1,000.
fn batches(blocks: std::ops::Range<usize>) -> Vec<Vec<MeasurementRequest>> {
    let all: Vec<MeasurementRequest> = blocks
        .flat_map(|b| {
            (0..MIRRORS).map(move |m| MeasurementRequest {
                mirror: format!("m{m}"),
                client: format!("{}/24", block(b)),
                rtt_ms: Some(10.0 + ((b * 7 + m * 13) % 200) as f64),
                time: Some(NOW),
                ..Default::default()
            })
        })
        .collect();
    all.chunks(1000).map(<[_]>::to_vec).collect()
}

fn decide(c: &mut Criterion) {
    const CLUSTERS: usize = 1_000_000;
    let (engine, handle) = engine(24);
    for batch in batches(0..CLUSTERS) {
        engine.apply(&batch, NOW).unwrap();
    }
    let clients: Vec<IpNet> = (0..4096)
        .map(|i| IpNet::from(std::net::IpAddr::V4(block(i * 241 % CLUSTERS))))
        .collect();
    bench_decisions(c, "complete_cluster_of_1m", &handle, &clients);
}

/// Times one decision an iteration, for each of `clients` in turn.
fn bench_decisions(c: &mut Criterion, name: &str, handle: &ServiceHandle, clients: &[IpNet]) {
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) % clients.len();
            black_box(handle.decide(clients[i], Family::of(clients[i].addr())))
        })
    });
    group.finish();
}

/// Many ECS subnets in few clusters, as `www-ecs-many` of the wire
/// benchmark: 256 /16 clusters holding 80 known /24 sub-blocks each and
/// one IPv6 /32 holding 7,000 /48s, asked in an order that defeats the
/// cache, so finding the sub-block costs what it costs a server whose
/// cache the network stack keeps cold.
fn decide_many_sub_blocks(c: &mut Criterion) {
    let (_engine, handle) = engine(16);
    let v4 = (0..256u32).flat_map(|cluster| {
        (0..80u32).map(move |b| {
            let addr = Ipv4Addr::from(0x0a00_0000 | cluster << 16 | (b * 3) << 8 | 1);
            IpNet::new(addr.into(), 24).unwrap().trunc()
        })
    });
    let v6 = (0..7000u128).map(|b| {
        let addr = std::net::Ipv6Addr::from(0x2001_0db8u128 << 96 | (b * 9) << 80);
        IpNet::new(addr.into(), 48).unwrap()
    });
    let mut clients: Vec<IpNet> = v4.chain(v6).collect();
    for client in &clients {
        handle.decide(*client, Family::of(client.addr()));
    }
    clients.shuffle(&mut StdRng::seed_from_u64(7));
    bench_decisions(c, "ecs_27k_sub_blocks_in_257_clusters", &handle, &clients);
}

fn ingest(c: &mut Criterion) {
    let (engine, _) = engine(16);
    let warm = batches(0..100_000);
    for batch in &warm {
        engine.apply(batch, NOW).unwrap();
    }
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(1000));
    let mut i = 0;
    group.bench_function("batch_of_1000_into_100k_blocks", |b| {
        b.iter(|| {
            i = (i + 1) % warm.len();
            engine.apply(&warm[i], NOW).unwrap()
        })
    });
    group.finish();
}

/// The trie crate against the obvious alternative: one hash map per prefix
/// length, probed from the longest length down.
fn longest_match(c: &mut Criterion) {
    let mut trie: PrefixMap<Ipv4Net, u32> = PrefixMap::new();
    let mut by_len: Vec<HashMap<u32, u32>> = vec![HashMap::new(); 33];
    for i in 0..1_000_000usize {
        let (len, addr) = if i % 10 == 0 {
            (16, block(i) & Ipv4Addr::new(255, 255, 0, 0))
        } else {
            (24, block(i))
        };
        trie.insert(Ipv4Net::new(addr, len).unwrap(), i as u32);
        by_len[len as usize].insert(u32::from(addr), i as u32);
    }
    let probes: Vec<Ipv4Addr> = (0..4096)
        .map(|i| Ipv4Addr::from(u32::from(block(i * 241)) | 7))
        .collect();
    let mut group = c.benchmark_group("longest_match_1m");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("prefix_trie", |b| {
        b.iter(|| {
            i = (i + 1) % probes.len();
            black_box(trie.get_lpm(&Ipv4Net::from(probes[i])))
        })
    });
    group.bench_function("hash_per_length", |b| {
        b.iter(|| {
            i = (i + 1) % probes.len();
            let a = u32::from(probes[i]);
            black_box((0..=32u32).rev().find_map(|len| {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                by_len[len as usize].get(&(a & mask))
            }))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    decide,
    decide_many_sub_blocks,
    ingest,
    longest_match
);
criterion_main!(benches);
