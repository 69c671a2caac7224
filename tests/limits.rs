//! Bounded memory under a flood of client subnets (`serve --max-blocks`):
//! every ECS subnet a query names could become a sub-block, so an attacker
//! sending random subnets must not grow the table without bound, and a
//! learned cluster must keep its answer throughout.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use mirrordns::steering::{Engine, MeasurementRequest, ServiceHandle};
use mirrordns::zone::{Family, ZoneSet, load_str};

fn engine(max_blocks: usize) -> (Engine, ServiceHandle) {
    let zone = load_str(
        Path::new("flood.yaml"),
        &common::zone("flood.test.").to_string(),
    )
    .unwrap();
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
                    scope: 16,
                    exploring: false,
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

mod rrl {
    use std::net::UdpSocket;
    use std::time::Duration;

    use super::common::*;
    use hickory_proto::op::Message;
    use hickory_proto::rr::RecordType;

    /// Sends `count` queries for ns1 from `source` in bursts of 50; returns
    /// the replies: (full answers, truncated ones).
    fn burst(server: &Server, source: &str, count: usize, pause: Duration) -> (usize, usize) {
        let query = query("ns1.example.test.", RecordType::A);
        burst_of(server, &query, source, count, pause)
    }

    /// [`burst`] with `query`; a truncated reply must be the slip: the
    /// question, TC, the OPT record if the query had one, and nothing else.
    fn burst_of(
        server: &Server,
        query: &Message,
        source: &str,
        count: usize,
        pause: Duration,
    ) -> (usize, usize) {
        let socket = UdpSocket::bind((source, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let asked = query.queries.clone();
        let with_edns = query.edns.is_some();
        let query = query.to_vec().unwrap();
        let (mut full, mut truncated) = (0, 0);
        let mut buffer = [0u8; 1500];
        for _ in 0..count / 50 {
            for _ in 0..50 {
                socket.send_to(&query, server.dns).unwrap();
                std::thread::sleep(pause);
            }
            while let Ok((len, _)) = socket.recv_from(&mut buffer) {
                let reply = Message::from_vec(&buffer[..len]).unwrap();
                if reply.metadata.truncation {
                    assert!(reply.answers.is_empty() && reply.authorities.is_empty());
                    assert_eq!(reply.queries, asked);
                    assert_eq!(reply.edns.is_some(), with_edns);
                    truncated += 1;
                } else {
                    full += 1;
                }
            }
        }
        (full, truncated)
    }

    #[test]
    fn a_flooding_source_gets_drops_and_slips_others_are_answered() {
        let s = Server::start_with(
            &fixture("zones"),
            &["--rrl-rate", "200", "--rrl-exempt", "127.90.0.0/16"],
            Some(TOKEN),
        );
        // About 10,000 queries a second from one source for a fifth of a second.
        let (full, truncated) = burst(&s, "127.40.0.1", 2000, Duration::from_micros(100));
        assert!(
            (200..1000).contains(&full),
            "200/s with a burst of 200 in the bucket: {full} answered"
        );
        assert!(
            truncated > 100,
            "every second limited response slips as TC: {truncated}"
        );
        assert!(full + truncated < 2000, "the rest is dropped");
        // A source at a normal rate is answered in full.
        assert_eq!(
            burst(&s, "127.41.0.1", 100, Duration::from_millis(2)),
            (100, 0)
        );
        // A client with EDNS and ECS is slipped the same way.
        let ecs = ecs_query("www.example.test.", RecordType::A, "10.1.0.0/24");
        let (_, truncated) = burst_of(&s, &ecs, "127.42.0.1", 2000, Duration::from_micros(100));
        assert!(truncated > 100, "{truncated} slipped");
        // An exempt source is never limited.
        assert_eq!(
            burst(&s, "127.90.0.1", 2000, Duration::from_micros(100)),
            (2000, 0)
        );
        let text = reqwest::blocking::get(s.url("/metrics"))
            .unwrap()
            .text()
            .unwrap();
        assert!(
            text.contains("mirrordns_rrl_limited_responses_total{action=\"slipped\"}"),
            "{text}"
        );
    }
}

mod tcp {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use super::common::*;
    use hickory_proto::rr::RecordType;

    /// Whether the server closed `stream` (a read returns end of file).
    fn closed(stream: &mut TcpStream) -> bool {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut byte = [0u8; 1];
        matches!(stream.read(&mut byte), Ok(0) | Err(_))
    }

    #[test]
    fn a_thousand_idle_connections_are_closed_and_do_not_block_a_new_client() {
        let s = Server::start_with(
            &fixture("zones"),
            &["--tcp-idle-timeout-ms", "1500"],
            Some(TOKEN),
        );
        let mut idle: Vec<TcpStream> = (0..1000)
            .map(|_| TcpStream::connect(s.dns).unwrap())
            .collect();
        // A new client is answered while the thousand sit there.
        let r = s.tcp(&query("mail.example.test.", RecordType::A));
        assert_eq!(addresses(&r), vec!["192.0.2.25"]);
        let started = Instant::now();
        for stream in idle.iter_mut().step_by(97) {
            assert!(closed(stream), "an idle connection was left open");
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_slowloris_client_is_cut() {
        let s = Server::start_with(
            &fixture("zones"),
            &["--tcp-idle-timeout-ms", "1000"],
            Some(TOKEN),
        );
        let bytes = query("mail.example.test.", RecordType::A).to_vec().unwrap();
        let mut stream = TcpStream::connect(s.dns).unwrap();
        stream
            .write_all(&(bytes.len() as u16).to_be_bytes())
            .unwrap();
        // One byte every 300 ms: each arrives well within the idle timeout,
        // but the request as a whole does not.
        let started = Instant::now();
        let mut cut = false;
        for b in &bytes {
            std::thread::sleep(Duration::from_millis(300));
            if stream.write_all(&[*b]).is_err() {
                cut = true;
                break;
            }
            if started.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        assert!(
            cut || closed(&mut stream),
            "the trickling client still holds its connection"
        );
        assert!(started.elapsed() < Duration::from_secs(8));
    }

    #[test]
    fn connections_over_the_limit_are_closed_at_once() {
        let s = Server::start_with(
            &fixture("zones"),
            &["--tcp-max-connections", "5"],
            Some(TOKEN),
        );
        let _held: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(s.dns).unwrap()).collect();
        let open = || metric(&metrics(&s), "mirrordns_dns_tcp_connections", &[]);
        assert!(
            eventually(Duration::from_secs(10), || open() == 5.0),
            "the server holds the five connections"
        );
        let mut sixth = TcpStream::connect(s.dns).unwrap();
        assert!(closed(&mut sixth));
        let refused = metric(
            &metrics(&s),
            "mirrordns_dns_tcp_refused_connections_total",
            &[],
        );
        assert_eq!(refused, 1.0);
        // UDP is not affected.
        assert_eq!(
            addresses(&s.query("mail.example.test.", RecordType::A)),
            vec!["192.0.2.25"]
        );
    }
}

mod api {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::common::*;
    use hickory_proto::rr::RecordType;

    #[test]
    fn a_flood_of_bad_batches_does_not_slow_dns_answers() {
        let s = Server::start(&fixture("zones"));
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let flooders: Vec<_> = (0..8)
            .map(|_| {
                let (url, stop, refused) = (
                    s.url("/v1/measurements"),
                    Arc::clone(&stop),
                    Arc::clone(&refused),
                );
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let bad = format!(
                        "{{\"measurements\": [{}]}}",
                        vec!["{\"mirror\": \"nowhere\", \"client\": \"x\"}"; 2000].join(",")
                    );
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(r) = client
                            .post(&url)
                            .bearer_auth(TOKEN)
                            .body(bad.clone())
                            .send()
                            && r.status().as_u16() == 400
                        {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        // The flood is on once the API has refused some of it.
        assert!(eventually(Duration::from_secs(10), || {
            refused.load(Ordering::Relaxed) >= 10
        }));
        let mut slowest = Duration::ZERO;
        for _ in 0..300 {
            let started = Instant::now();
            let r = s.query("mail.example.test.", RecordType::A);
            slowest = slowest.max(started.elapsed());
            assert_eq!(addresses(&r), vec!["192.0.2.25"]);
        }
        stop.store(true, Ordering::Relaxed);
        for f in flooders {
            f.join().unwrap();
        }
        assert!(refused.load(Ordering::Relaxed) > 10, "the flood ran");
        assert!(
            slowest < Duration::from_millis(250),
            "slowest DNS answer under the flood: {slowest:?}"
        );
    }
}
