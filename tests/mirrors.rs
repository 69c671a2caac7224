//! Protecting mirrors: operator drain and undrain, health checks the server
//! runs itself, and failing open when every mirror is out (SPEC section 2,
//! "Health").

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

const FRA: &str = "192.0.2.1";
const NYC: &str = "192.0.2.2";
const SIN: &str = "192.0.2.3";

/// The steering fixture's cluster 198.51.0.0/16 learned: nyc, then fra, then sin.
fn learned(s: &Server) {
    measure(
        s,
        json!([
            {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 30.0},
            {"mirror": "nyc", "client": "198.51.100.0/24", "rtt_ms": 10.0},
            {"mirror": "sin", "client": "198.51.100.0/24", "rtt_ms": 90.0},
        ]),
    );
}

fn www(s: &Server) -> Vec<String> {
    addresses(
        &s.udp(&ecs_query(
            "www.steer.test.",
            RecordType::A,
            "198.51.100.0/24",
        ))
        .unwrap(),
    )
}

fn post(s: &Server, path: &str) -> (u16, Value) {
    s.post(path, Some(TOKEN))
}

#[test]
fn a_drained_mirror_gets_no_answers_and_its_clusters_use_the_next_best() {
    let s = Server::start(&fixture("steering"));
    learned(&s);
    assert_eq!(www(&s), vec![NYC]);
    assert_eq!(
        post(&s, "/v1/mirrors/nyc/drain"),
        (200, json!({"mirror": "nyc", "drained": true}))
    );
    assert_eq!(www(&s), vec![FRA], "the next best at once");
    let (_, services) = s.get("/v1/services");
    assert_eq!(
        services["mirror_state"]["nyc"],
        json!({"drained": true, "healthy": true})
    );
    // A new cluster learning round robin skips the drained mirror too.
    let fresh: HashSet<String> = (0..6)
        .flat_map(|_| {
            addresses(
                &s.udp(&ecs_query(
                    "www.steer.test.",
                    RecordType::A,
                    "203.0.113.0/24",
                ))
                .unwrap(),
            )
        })
        .collect();
    assert_eq!(fresh, [FRA, SIN].iter().map(|a| a.to_string()).collect());
    assert_eq!(post(&s, "/v1/mirrors/nyc/undrain").0, 200);
    assert_eq!(www(&s), vec![NYC], "back when undrained");
}

#[test]
fn drain_needs_the_token_and_a_known_mirror() {
    let s = Server::start(&fixture("steering"));
    assert_eq!(s.post("/v1/mirrors/nyc/drain", None).0, 401);
    assert_eq!(post(&s, "/v1/mirrors/lon/drain").0, 404);
    let (_, services) = s.get("/v1/services");
    assert_eq!(services["mirror_state"]["nyc"]["drained"], false);
}

#[test]
fn with_every_mirror_drained_the_service_fails_open() {
    let mut s = Server::start(&fixture("steering"));
    learned(&s);
    for m in ["fra", "nyc", "sin"] {
        assert_eq!(post(&s, &format!("/v1/mirrors/{m}/drain")).0, 200);
    }
    let r = s
        .udp(&ecs_query(
            "www.steer.test.",
            RecordType::A,
            "198.51.100.0/24",
        ))
        .unwrap();
    let mut all = addresses(&r);
    all.sort();
    assert_eq!(all, vec![FRA, NYC, SIN], "all mirrors rather than none");
    assert_eq!(
        ecs_echo(&r).unwrap().1,
        0,
        "the answer does not depend on the client"
    );
    // `api` only has fra and nyc: both drained, so both answer.
    let api = s
        .udp(&ecs_query(
            "api.steer.test.",
            RecordType::A,
            "198.51.100.0/24",
        ))
        .unwrap();
    assert_eq!(addresses(&api).len(), 2);
    s.wait_for_log(
        "answering with all of them (fail open)",
        Duration::from_secs(5),
    );
}

#[test]
fn a_drain_survives_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let s = Server::start_in(&fixture("steering"), state.path(), &[], Some(TOKEN));
    learned(&s);
    assert_eq!(post(&s, "/v1/mirrors/nyc/drain").0, 200);
    s.signal("-KILL");
    drop(s);
    let s = Server::start_in(&fixture("steering"), state.path(), &[], Some(TOKEN));
    assert_eq!(www(&s), vec![FRA]);
    assert_eq!(
        s.get("/v1/services").1["mirror_state"]["nyc"]["drained"],
        true
    );
}

/// A zone whose `fra` is health-checked by `health` (a YAML flow mapping).
fn checked_zone(health: &str) -> tempfile::TempDir {
    let fra = format!("{{name: fra, ipv4: [192.0.2.1], health: {health}}}");
    let zone = zone("checked.test.").mirrors(&[&fra, "{name: nyc, ipv4: [192.0.2.2]}"]);
    zone_dir(&[("checked.yaml", &zone.to_string())])
}

fn checked_www(s: &Server) -> Vec<String> {
    addresses(
        &s.udp(&ecs_query(
            "www.checked.test.",
            RecordType::A,
            "198.51.100.0/24",
        ))
        .unwrap(),
    )
}

/// Waits until `www` answers `expected`, for at most 15 s.
fn wait_for_answer(s: &Server, expected: &str) {
    let answered = eventually(Duration::from_secs(15), || checked_www(s) == [expected]);
    assert!(answered, "www never answered {expected}:\n{}", s.logs());
}

fn learn_fra_fastest(s: &Server) {
    measure(
        s,
        json!([
            {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 10.0},
            {"mirror": "nyc", "client": "198.51.100.0/24", "rtt_ms": 50.0},
        ]),
    );
}

#[test]
fn a_tcp_health_check_takes_a_mirror_out_after_fall_failures_and_back_after_rise() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let zones = checked_zone(&format!(
        "{{tcp_port: {port}, address: 127.0.0.1, interval_s: 1, timeout_ms: 300, rise: 2, fall: 2}}"
    ));
    let mut s = Server::start(zones.path());
    learn_fra_fastest(&s);
    assert_eq!(checked_www(&s), vec![FRA]);
    drop(listener); // connections are now refused
    wait_for_answer(&s, NYC);
    s.wait_for_log("health check down", Duration::from_secs(1));
    assert_eq!(
        s.get("/v1/services").1["mirror_state"]["fra"]["healthy"],
        false
    );
    let _back = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    wait_for_answer(&s, FRA);
    s.wait_for_log("health check up", Duration::from_secs(1));
}

#[test]
fn an_http_health_check_wants_2xx() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&healthy);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let status = if flag.load(Ordering::Relaxed) {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    let zones = checked_zone(&format!(
        "{{url: 'http://127.0.0.1:{port}/health', interval_s: 1, timeout_ms: 500, rise: 1, fall: 1}}"
    ));
    let s = Server::start(zones.path());
    learn_fra_fastest(&s);
    assert_eq!(checked_www(&s), vec![FRA]);
    healthy.store(false, Ordering::Relaxed);
    wait_for_answer(&s, NYC);
    healthy.store(true, Ordering::Relaxed);
    wait_for_answer(&s, FRA);
}

#[test]
fn metrics_count_what_the_server_did() {
    let s = Server::start(&fixture("steering"));
    learned(&s);
    for _ in 0..5 {
        www(&s);
    }
    s.query("nothing.steer.test.", RecordType::TXT);
    assert_eq!(post(&s, "/v1/mirrors/sin/drain").0, 200);
    let bad = reqwest::blocking::Client::new()
        .post(s.url("/v1/measurements"))
        .bearer_auth(TOKEN)
        .json(&json!({"measurements": [{"mirror": "fra", "client": "198.51.100.1", "rtt_ms": 1.0}, {"mirror": "x", "client": "1.2.3.4", "rtt_ms": 1.0}]}))
        .send()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let m = metrics(&s);
    assert_eq!(
        metric(
            &m,
            "mirrordns_dns_queries_total",
            &[("qtype", "A"), ("rcode", "NOERROR")]
        ),
        5.0
    );
    assert_eq!(
        metric(
            &m,
            "mirrordns_dns_queries_total",
            &[("qtype", "TXT"), ("rcode", "NXDOMAIN")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "mirrordns_steered_answers_total",
            &[("service", "www.steer.test."), ("mirror", "nyc")]
        ),
        5.0
    );
    assert_eq!(
        metric(
            &m,
            "mirrordns_clusters",
            &[("service", "www.steer.test."), ("state", "complete")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "mirrordns_measurements_total",
            &[("result", "accepted")]
        ),
        3.0
    );
    assert_eq!(
        metric(
            &m,
            "mirrordns_measurements_total",
            &[("result", "rejected")]
        ),
        2.0
    );
    assert_eq!(
        metric(&m, "mirrordns_mirror_drained", &[("mirror", "sin")]),
        1.0
    );
    assert_eq!(
        metric(&m, "mirrordns_mirror_healthy", &[("mirror", "sin")]),
        1.0
    );
    assert_eq!(
        metric(&m, "mirrordns_probe_backlog", &[("mirror", "fra")]),
        0.0
    );
    assert_eq!(s.post("/v1/load", Some(TOKEN)).0, 400);
    let report = reqwest::blocking::Client::new()
        .post(s.url("/v1/load"))
        .bearer_auth(TOKEN)
        .json(&json!({"mirror": "nyc", "load": 0.75}))
        .send()
        .unwrap();
    assert_eq!(report.status().as_u16(), 200);
    assert_eq!(
        metric(
            &metrics(&s),
            "mirrordns_mirror_reported_load",
            &[("mirror", "nyc")]
        ),
        0.75
    );
    assert_eq!(s.post("/v1/reload", Some(TOKEN)).0, 200);
    let m = metrics(&s);
    assert_eq!(
        metric(&m, "mirrordns_zone_reloads_total", &[("result", "ok")]),
        1.0
    );
    assert!(metric(&m, "mirrordns_zone_last_reload_timestamp_seconds", &[]) > 1.7e9);
}

#[test]
fn quality_metrics_agree_with_the_answers_given() {
    let s = Server::start(&fixture("steering"));
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 20.0},
            {"mirror": "nyc", "client": "198.51.100.0/24", "rtt_ms": 10.0},
            {"mirror": "sin", "client": "198.51.100.0/24", "timeout": true},
        ]),
    );
    for _ in 0..4 {
        assert_eq!(www(&s), vec![NYC]);
    }
    // fra gets faster, not by the margin: nyc keeps answering, 0.5 ms slower.
    measure(
        &s,
        json!([{"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 9.5}]),
    );
    for _ in 0..2 {
        assert_eq!(www(&s), vec![NYC]);
    }
    addresses(
        &s.udp(&ecs_query(
            "www.steer.test.",
            RecordType::A,
            "203.0.113.0/24",
        ))
        .unwrap(),
    );
    let m = metrics(&s);
    let www_service = ("service", "www.steer.test.");
    assert_eq!(
        metric(
            &m,
            "mirrordns_cluster_answers_total",
            &[www_service, ("state", "complete")]
        ),
        6.0
    );
    assert_eq!(
        metric(
            &m,
            "mirrordns_cluster_answers_total",
            &[www_service, ("state", "learning")]
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "mirrordns_best_mirror_answers_total", &[www_service]),
        4.0
    );
    let regret = metric(&m, "mirrordns_latency_regret_seconds_total", &[www_service]);
    assert!(
        (regret - 0.001).abs() < 1e-6,
        "two answers 0.5 ms slower than the fastest: {regret}"
    );
    assert_eq!(
        metric(&m, "mirrordns_answer_changes_total", &[www_service]),
        0.0
    );
    assert!(
        metric(
            &m,
            "mirrordns_measurement_age_seconds",
            &[("mirror", "fra"), ("stat", "max")]
        ) < 60.0
    );
}
