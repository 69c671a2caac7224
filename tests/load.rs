//! Load (SPEC section 2): clusters move off a mirror over its capacity, the
//! ones that lose the least latency first, and back when the load falls.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::json;

/// How often the server runs its load tick in these tests.
const LOAD_TICK: Duration = Duration::from_millis(1000);
const FRA: &str = "192.0.2.1";
const NYC: &str = "192.0.2.2";

fn start() -> (Server, tempfile::TempDir) {
    let zone = zone("load.test.").mirrors(&[
        "{name: fra, ipv4: [192.0.2.1], capacity_qps: 50}",
        "{name: nyc, ipv4: [192.0.2.2]}",
        "{name: sin, ipv4: [192.0.2.3]}",
    ]);
    let zones = zone_dir(&[("load.yaml", &zone.to_string())]);
    let tick_ms = LOAD_TICK.as_millis().to_string();
    let s = Server::start_with(zones.path(), &["--load-interval-ms", &tick_ms], Some(TOKEN));
    // Cluster 10.1/16 loses 2 ms on nyc, 10.2/16 loses 70 ms: both prefer fra.
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "10.1.1.0/24", "rtt_ms": 10.0},
            {"mirror": "nyc", "client": "10.1.1.0/24", "rtt_ms": 12.0},
            {"mirror": "sin", "client": "10.1.1.0/24", "rtt_ms": 100.0},
            {"mirror": "fra", "client": "10.2.1.0/24", "rtt_ms": 10.0},
            {"mirror": "nyc", "client": "10.2.1.0/24", "rtt_ms": 80.0},
            {"mirror": "sin", "client": "10.2.1.0/24", "rtt_ms": 100.0},
        ]),
    );
    (s, zones)
}

fn answer(s: &Server, subnet: &str) -> String {
    addresses(
        &s.udp(&ecs_query("www.load.test.", RecordType::A, subnet))
            .unwrap(),
    )
    .join(",")
}

/// Sends about `qps` queries per second from each subnet until `stop`.
fn traffic(
    dns: std::net::SocketAddr,
    subnets: &'static [&'static str],
    qps: u32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buffer = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            let round = Instant::now();
            for subnet in subnets {
                let q = ecs_query("www.load.test.", RecordType::A, subnet)
                    .to_vec()
                    .unwrap();
                socket.send_to(&q, dns).unwrap();
                let _ = socket.recv_from(&mut buffer);
            }
            std::thread::sleep(
                Duration::from_secs_f64(1.0 / f64::from(qps)).saturating_sub(round.elapsed()),
            );
        }
    })
}

fn wait_until(what: &str, s: &Server, done: impl FnMut() -> bool) {
    let happened = eventually(Duration::from_secs(20), done);
    assert!(happened, "timed out waiting: {what}\n{}", s.logs());
}

#[test]
fn over_capacity_moves_the_least_loss_cluster_first_and_it_returns() {
    let (mut s, _zones) = start();
    assert_eq!(
        (answer(&s, "10.1.1.0/24"), answer(&s, "10.2.1.0/24")),
        (FRA.to_string(), FRA.to_string())
    );
    // 40 + 40 queries/s against fra's 50: one cluster must go, the cheap one.
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(
        s.dns,
        &["10.1.1.0/24", "10.2.1.0/24"],
        40,
        Arc::clone(&stop),
    );
    wait_until("10.1/16 moves to nyc", &s, || {
        answer(&s, "10.1.1.0/24") == NYC
    });
    assert_eq!(answer(&s, "10.2.1.0/24"), FRA, "the 70 ms loser stays");
    let line = s.wait_for_log(
        "cluster moved off an overloaded mirror",
        Duration::from_secs(1),
    );
    assert!(
        line.contains("10.1.0.0/16") && line.contains("from=fra") && line.contains("to=nyc"),
        "{line}"
    );
    let (_, table) = s.get("/v1/services/www.load.test/clusters");
    let moved = table["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["prefix"] == "10.1.0.0/16")
        .unwrap()
        .clone();
    assert_eq!(
        (moved["mirror"].clone(), moved["offloaded"].clone()),
        (json!("nyc"), json!(true))
    );
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    wait_until("10.1/16 returns to fra", &s, || {
        answer(&s, "10.1.1.0/24") == FRA
    });
    s.wait_for_log(
        "cluster moved back to its best mirror",
        Duration::from_secs(1),
    );
}

#[test]
fn a_reported_load_over_one_moves_clusters_too() {
    let (s, _zones) = start();
    assert_eq!(
        s.post_json("/v1/load", &json!({"mirror": "fra", "load": "high"}), &[])
            .0,
        400
    );
    assert_eq!(
        s.post_json("/v1/load", &json!({"mirror": "fra", "load": -1}), &[])
            .0,
        400
    );
    assert_eq!(
        s.post_json("/v1/load", &json!({"mirror": "lon", "load": 0.5}), &[])
            .0,
        404
    );
    assert_eq!(s.post("/v1/load", None).0, 401);
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(s.dns, &["10.2.1.0/24"], 20, Arc::clone(&stop));
    // fra's agent says it is at 150 %: 10.2/16 must go (to nyc, 80 ms, its next best).
    assert_eq!(
        s.post_json("/v1/load", &json!({"mirror": "fra", "load": 1.5}), &[]),
        (200, json!({"mirror": "fra", "load": 1.5}))
    );
    wait_until("10.2/16 moves off fra", &s, || {
        answer(&s, "10.2.1.0/24") == NYC
    });
    // Two more load ticks, counted by /metrics: a bounce back would come
    // at the first.
    let ticks = || metric(&metrics(&s), "mirrordns_load_ticks_total", &[]);
    let before = ticks();
    wait_until("two load ticks", &s, || ticks() >= before + 2.0);
    assert_eq!(
        answer(&s, "10.2.1.0/24"),
        NYC,
        "no bouncing back while fra still reports 1.5"
    );
    assert_eq!(
        s.post_json("/v1/load", &json!({"mirror": "fra", "load": 0.2}), &[])
            .0,
        200
    );
    wait_until("10.2/16 returns", &s, || answer(&s, "10.2.1.0/24") == FRA);
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
}
