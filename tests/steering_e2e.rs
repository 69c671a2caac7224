//! Steering seen from outside: DNS answers and ECS scopes before and after
//! measurements are posted to the API (SPEC sections 2 and 3).

mod common;

use std::collections::HashSet;

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

fn server() -> Server {
    Server::start(&fixture("steering"))
}

fn post_json(s: &Server, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut request = client.post(s.url(path)).json(body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn measure(s: &Server, items: Value) -> (u16, Value) {
    post_json(
        s,
        "/v1/measurements",
        &json!({ "measurements": items }),
        Some(TOKEN),
    )
}

/// The answer and ECS scope for `www` asked on behalf of `subnet`.
fn www(s: &Server, subnet: &str) -> (String, u8) {
    let r = s
        .udp(&ecs_query("www.steer.test.", RecordType::A, subnet))
        .unwrap();
    (addresses(&r)[0].clone(), ecs_echo(&r).unwrap().1)
}

fn clusters(s: &Server) -> Vec<Value> {
    let (status, body) = s.get("/v1/services/www.steer.test/clusters");
    assert_eq!(status, 200, "{body}");
    body["clusters"].as_array().unwrap().clone()
}

const FRA: &str = "192.0.2.1";
const NYC: &str = "192.0.2.2";

#[test]
fn a_new_cluster_gets_every_mirror_once_before_any_twice() {
    let s = server();
    let first: HashSet<String> = (0..3).map(|_| www(&s, "198.51.100.0/24").0).collect();
    assert_eq!(first.len(), 3, "{first:?}");
}

#[test]
fn probes_appear_for_the_blocks_queried_from() {
    let s = server();
    www(&s, "198.51.100.0/24");
    s.query("www.steer.test.", RecordType::A); // from the resolver 127.0.0.1
    let (status, body) = s.get("/v1/probes?mirror=fra");
    assert_eq!(status, 200);
    let probes = body["probes"].as_array().unwrap();
    assert!(
        probes.contains(&json!({"target": "198.51.100.0/24", "block": "198.51.100.0/24", "resolvers": ["127.0.0.1"]})),
        "{body}"
    );
    assert!(
        probes.contains(&json!({"target": "127.0.0.1", "block": "127.0.0.0/24"})),
        "{body}"
    );
    assert_eq!(s.get("/v1/probes?mirror=nowhere").0, 404);
    assert_eq!(s.get("/v1/probes").0, 400);
}

#[test]
fn after_measurements_every_client_of_the_cluster_gets_the_fastest_mirror() {
    let s = server();
    www(&s, "198.51.100.0/24");
    let (status, body) = measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 48.0},
            {"mirror": "nyc", "client": "198.51.100.7", "rtt_ms": 11.5, "method": "tcp"},
            {"mirror": "sin", "client": "198.51.100.0/24", "timeout": true, "time": "2020-01-01T00:00:00Z"},
        ]),
    );
    assert_eq!((status, body), (200, json!({"accepted": 3})));
    // sin's measurement is years old: not fresh, so the cluster still learns.
    assert_eq!(clusters(&s)[0]["state"], "learning");
    measure(
        &s,
        json!([{"mirror": "sin", "client": "198.51.100.0/24", "timeout": true}]),
    );
    for subnet in ["198.51.100.0/24", "198.51.7.0/24", "198.51.0.0/20"] {
        assert_eq!(www(&s, subnet), (NYC.to_string(), 16), "{subnet}");
    }
    let table = clusters(&s);
    assert_eq!(table.len(), 1);
    assert_eq!(table[0]["prefix"], "198.51.0.0/16");
    assert_eq!(table[0]["state"], "complete");
    assert_eq!(table[0]["mirror"], "nyc");
    assert_eq!(
        table[0]["rtt_ms"],
        json!({"fra": 48.0, "nyc": 11.5, "sin": "timeout"})
    );
    // Measurements are per site: `api` uses fra and nyc too and learned as well.
    let api = s
        .udp(&ecs_query(
            "api.steer.test.",
            RecordType::A,
            "198.51.100.0/24",
        ))
        .unwrap();
    assert_eq!(addresses(&api), vec!["192.0.2.12"]);
    // AAAA from the same measurements.
    let v6 = s
        .udp(&ecs_query(
            "www.steer.test.",
            RecordType::AAAA,
            "198.51.100.0/24",
        ))
        .unwrap();
    assert_eq!(addresses(&v6), vec!["2001:db8::2"]);
}

#[test]
fn two_blocks_of_one_16_that_disagree_get_their_own_answers_and_scopes() {
    let s = server();
    let (status, _) = measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.1.0/24", "rtt_ms": 10.0},
            {"mirror": "nyc", "client": "198.51.1.0/24", "rtt_ms": 90.0},
            {"mirror": "sin", "client": "198.51.1.0/24", "rtt_ms": 200.0},
            {"mirror": "fra", "client": "198.51.200.0/24", "rtt_ms": 95.0},
            {"mirror": "nyc", "client": "198.51.200.0/24", "rtt_ms": 9.0},
            {"mirror": "sin", "client": "198.51.200.0/24", "rtt_ms": 210.0},
        ]),
    );
    assert_eq!(status, 200);
    let (a, a_scope) = www(&s, "198.51.1.0/24");
    let (b, b_scope) = www(&s, "198.51.200.0/24");
    assert_eq!((a.as_str(), b.as_str()), (FRA, NYC));
    assert!(
        a_scope > 16 && b_scope > 16,
        "scopes {a_scope} and {b_scope}"
    );
    assert!(clusters(&s).len() >= 2);
}

#[test]
fn the_prefix_list_sets_cluster_lengths() {
    let s = server();
    assert_eq!(
        www(&s, "10.17.3.0/24").1,
        12,
        "inside 10.16.0.0/12 from prefixes.txt"
    );
    assert_eq!(
        www(&s, "10.200.3.0/24").1,
        16,
        "outside it: the initial /16"
    );
    let r = s
        .udp(&ecs_query(
            "www.steer.test.",
            RecordType::AAAA,
            "2001:db8:1ff::/48",
        ))
        .unwrap();
    assert_eq!(ecs_echo(&r).unwrap().1, 40);
    let prefixes: Vec<Value> = clusters(&s).iter().map(|c| c["prefix"].clone()).collect();
    assert!(prefixes.contains(&json!("10.16.0.0/12")), "{prefixes:?}");
}

#[test]
fn bad_batches_are_rejected_whole_with_the_reason() {
    let s = server();
    let good = json!({"mirror": "fra", "client": "203.0.113.0/24", "rtt_ms": 5.0});
    let cases = [
        (
            json!({"mirror": "lon", "client": "198.51.100.1", "rtt_ms": 5.0}),
            "unknown mirror",
        ),
        (
            json!({"mirror": "fra", "client": "198.51.100.1"}),
            "missing rtt_ms",
        ),
        (
            json!({"mirror": "fra", "client": "198.51.100.1", "rtt_ms": 0}),
            "not in (0",
        ),
        (
            json!({"mirror": "fra", "client": "198.51.100.1", "rtt_ms": 99999}),
            "not in (0",
        ),
        (
            json!({"mirror": "fra", "client": "banana", "rtt_ms": 5.0}),
            "not an address",
        ),
        (
            json!({"mirror": "fra", "client": "198.51.0.0/16", "rtt_ms": 5.0}),
            "shorter than the sub-block",
        ),
        (
            json!({"mirror": "fra", "client": "198.51.100.1", "rtt_ms": 5.0, "time": "2999-01-01T00:00:00Z"}),
            "future",
        ),
        (
            json!({"mirror": "fra", "client": "198.51.100.1", "rtt_ms": 5.0, "time": "yesterday"}),
            "RFC 3339",
        ),
        (
            json!({"mirror": "fra", "client": "198.51.100.1", "rtt_ms": "fast"}),
            "measurements[1]",
        ),
    ];
    for (bad, reason) in cases {
        let (status, body) = measure(&s, json!([good.clone(), bad]));
        assert_eq!(status, 400, "{body}");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains("measurements[1]") && message.contains(reason),
            "{message} lacks {reason}"
        );
    }
    let (status, body) = s.post("/v1/measurements", Some(TOKEN));
    assert_eq!(status, 400, "empty body: {body}");
    assert!(
        clusters(&s).is_empty(),
        "nothing of any rejected batch was applied"
    );
    // Without the token: 401, nothing applied.
    let (status, _) = post_json(
        &s,
        "/v1/measurements",
        &json!({"measurements": [good]}),
        None,
    );
    assert_eq!(status, 401);
    assert!(clusters(&s).is_empty());
}

#[test]
fn a_body_over_one_mebibyte_is_413() {
    let s = server();
    let item = json!({"mirror": "fra", "client": "198.51.100.1", "rtt_ms": 5.0});
    let huge: Vec<Value> = std::iter::repeat_n(item, 20_000).collect();
    let (status, _) = measure(&s, Value::Array(huge));
    assert_eq!(status, 413);
}

#[test]
fn services_list_their_mirrors_and_cluster_counts() {
    let s = server();
    www(&s, "198.51.100.0/24");
    let (status, body) = s.get("/v1/services");
    assert_eq!(status, 200);
    let www = body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "www.steer.test.")
        .unwrap()
        .clone();
    assert_eq!(www["zone"], "steer.test.");
    assert_eq!(www["mirrors"], json!(["fra", "nyc", "sin"]));
    assert_eq!(www["clusters"], 1);
    assert_eq!(www["learning"], 1);
    assert_eq!(
        s.get("/v1/services/www.steer.test./clusters").0,
        200,
        "with the final dot too"
    );
    assert_eq!(s.get("/v1/services/nope.steer.test/clusters").0, 404);
}

#[test]
fn a_reload_keeps_what_was_learned() {
    let s = server();
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 30.0},
            {"mirror": "nyc", "client": "198.51.100.0/24", "rtt_ms": 3.0},
            {"mirror": "sin", "client": "198.51.100.0/24", "rtt_ms": 300.0},
        ]),
    );
    assert_eq!(www(&s, "198.51.100.0/24").0, NYC);
    assert_eq!(s.post("/v1/reload", Some(TOKEN)).0, 200);
    assert_eq!(www(&s, "198.51.100.0/24"), (NYC.to_string(), 16));
    assert_eq!(clusters(&s)[0]["state"], "complete");
}

#[test]
fn the_table_command_prints_the_learned_clusters() {
    let s = server();
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 48.0},
            {"mirror": "nyc", "client": "198.51.100.0/24", "rtt_ms": 11.5},
            {"mirror": "sin", "client": "198.51.100.0/24", "timeout": true},
        ]),
    );
    www(&s, "198.51.100.0/24");
    let api = format!("http://{}", s.api);
    let run = |extra: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_mirrordns"))
            .args(["table", "www.steer.test", "--api", &api])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let text = run(&[]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "www.steer.test.");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        [
            "PREFIX",
            "STATE",
            "MIRROR",
            "fra",
            "ms",
            "nyc",
            "ms",
            "sin",
            "ms",
            "QUERIES",
            "EXPLORING"
        ]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        [
            "198.51.0.0/16",
            "complete",
            "nyc",
            "48.0",
            "11.5",
            "timeout",
            "1",
            "0"
        ]
    );
    let json: Value = serde_json::from_str(&run(&["--json"])).unwrap();
    assert_eq!(json["clusters"][0]["mirror"], "nyc");
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .args(["table", "nope.steer.test", "--api", &api])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no service"));
}

#[test]
fn explain_and_why_give_the_reason_for_an_answer() {
    let s = server();
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 20.0, "method": "icmp"},
            {"mirror": "nyc", "client": "198.51.100.0/24", "rtt_ms": 10.0, "method": "tcp"},
            {"mirror": "sin", "client": "198.51.100.0/24", "timeout": true},
        ]),
    );
    let (status, e) = s.get("/v1/explain?service=www.steer.test&client=198.51.100.7");
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["cluster"], "198.51.0.0/16");
    assert_eq!(e["state"], "complete");
    assert_eq!(e["mirror"], "nyc");
    assert_eq!(e["reason"], "complete; nyc fastest at 10 ms; fra 20 ms");
    let fra = e["mirrors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "fra")
        .unwrap();
    assert_eq!(
        (
            fra["rtt_ms"].clone(),
            fra["method"].clone(),
            fra["healthy"].clone()
        ),
        (json!(20.0), json!("icmp"), json!(true))
    );
    assert!(fra["age_s"].as_u64().is_some_and(|age| age < 60));
    assert_eq!(e["mirrors"][2]["rtt_ms"], "timeout");
    // fra becomes faster, but not by the margin: the answer stays.
    measure(
        &s,
        json!([{"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 9.5}]),
    );
    let (_, e) = s.get("/v1/explain?service=www.steer.test.&client=198.51.100.0/24");
    assert_eq!(e["mirror"], "nyc");
    assert_eq!(
        e["reason"],
        "complete; fra fastest at 10 ms; nyc 10 ms; no switch from nyc (10 ms): fra is not faster by more than 5 ms and 10 %"
    );
    let (_, none) = s.get("/v1/explain?service=www.steer.test&client=203.0.113.9");
    assert_eq!(none["state"], "none");
    assert!(
        none["reason"]
            .as_str()
            .unwrap()
            .starts_with("no cluster holds this client yet")
    );
    assert_eq!(
        s.get("/v1/explain?service=www.steer.test&client=banana").0,
        400
    );
    assert_eq!(s.get("/v1/explain?service=nope.test&client=1.2.3.4").0, 404);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .args([
            "why",
            "www.steer.test",
            "198.51.100.7",
            "--api",
            &format!("http://{}", s.api),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with("www.steer.test. for 198.51.100.7/32: complete; fra fastest"),
        "{text}"
    );
    let nyc: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("nyc"))
        .unwrap()
        .split_whitespace()
        .collect();
    // Columns: mirror, RTT, age in seconds, method, healthy, drained, load.
    assert_eq!(
        [nyc[0], nyc[1], nyc[2], nyc[4], nyc[5], nyc[6], nyc[7]],
        ["nyc", "10.0", "ms", "tcp", "true", "false", "-"],
        "{text}"
    );
    assert!(nyc[3].parse::<u64>().is_ok_and(|age| age < 60), "{text}");
}
