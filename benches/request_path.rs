//! The whole request path in-process, wire bytes in to wire bytes out, so
//! regressions show without a network: a static name, a steered name
//! without ECS, and a steered name with ECS from a learned cluster, all
//! answered from templates after their first query; and the full path
//! (decode, look up, encode), which a query asking for NSID takes.
//!
//! Run: `cargo bench --bench request_path`.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use mirrordns::dns::{Catalog, Handler, RrlConfig, Transport};
use mirrordns::steering::{Engine, MeasurementRequest};
use mirrordns::zone::{ZoneSet, load_file};

fn query(name: &str, option: Option<EdnsOption>) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    if let Some(option) = option {
        let mut edns = Edns::new();
        edns.options_mut().insert(option);
        m.set_edns(edns);
    }
    m.to_vec().unwrap()
}

fn ecs(subnet: &str) -> Option<EdnsOption> {
    let subnet: ClientSubnet = subnet.parse().unwrap();
    Some(EdnsOption::Subnet(subnet))
}

/// An RFC 5001 NSID request: an option hickory decodes, so the template
/// path leaves the query to the full path.
fn nsid() -> Option<EdnsOption> {
    Some(EdnsOption::Unknown(3, Vec::new()))
}

fn request_path(c: &mut Criterion) {
    let zone = load_file(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/zones/example.test.yaml"
    )))
    .unwrap();
    let zone = Arc::new(zone);
    let engine = Engine::default();
    let handler_with = |rrl| {
        let zones = ZoneSet::new(vec![Arc::clone(&zone)]);
        let steering = engine.bind(&zones);
        Handler::new(Catalog::new(zones, steering), rrl)
    };
    let handler = handler_with(RrlConfig {
        rate: 0,
        slip: 2,
        exempt: Vec::new(),
    });
    // Rate limiting as production runs it (on, only loopback exempt), at a
    // rate this benchmark never reaches: every answer takes a token.
    let rate_limited = handler_with(RrlConfig {
        rate: u32::MAX,
        slip: 2,
        exempt: RrlConfig::default_exempt(),
    });
    let learned: Vec<MeasurementRequest> = [("fra", 30.0), ("nyc", 10.0), ("sin", 90.0)]
        .iter()
        .flat_map(|(m, ms)| {
            ["10.2.3.0/24", "198.51.100.0/24"].map(|client| MeasurementRequest {
                mirror: m.to_string(),
                client: client.to_string(),
                rtt_ms: Some(*ms),
                ..Default::default()
            })
        })
        .collect();
    engine.apply(&learned, mirrordns::steering::now()).unwrap();
    let source: IpAddr = "198.51.100.9".parse().unwrap();
    let steered_ecs = query("www.example.test.", ecs("10.2.3.0/24"));
    let cases = [
        ("static_a", query("mail.example.test.", None)),
        ("steered_no_ecs", query("www.example.test.", None)),
        ("steered_ecs", steered_ecs.clone()),
        ("full_path_static_a", query("mail.example.test.", nsid())),
    ];
    let mut group = c.benchmark_group("request_path");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in &cases {
        assert!(handler.handle(bytes, source, Transport::Udp).is_some());
        group.bench_function(*name, |b| {
            b.iter(|| black_box(handler.handle(black_box(bytes), source, Transport::Udp)))
        });
    }
    assert!(
        rate_limited
            .handle(&steered_ecs, source, Transport::Udp)
            .is_some()
    );
    group.bench_function("steered_ecs_rate_limited", |b| {
        b.iter(|| black_box(rate_limited.handle(black_box(&steered_ecs), source, Transport::Udp)))
    });
    group.finish();
}

criterion_group!(benches, request_path);
criterion_main!(benches);
