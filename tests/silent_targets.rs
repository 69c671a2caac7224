//! Steering where probe targets do not answer (SPEC section 2, "Silent
//! targets"), and the shape of the table that splits and merges leave,
//! seen through DNS answers and the API as an operator sees them.

mod common;

use std::collections::BTreeSet;

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

/// Two listed prefixes, one inside the other; everything else starts at /16.
const PREFIXES: &str = "10.20.0.0/14\n10.20.128.0/17\n";

const AAA: &str = "192.0.2.1";
const BBB: &str = "192.0.2.2";
const CCC: &str = "192.0.2.3";

fn server() -> (Server, tempfile::TempDir) {
    let zone = zone("silent.test.")
        .with("ttl: 30")
        .mirrors(&[
            "{name: aaa, ipv4: [192.0.2.1]}",
            "{name: bbb, ipv4: [192.0.2.2]}",
            "{name: ccc, ipv4: [192.0.2.3]}",
        ])
        .with("clusters: {prefixes: prefixes.txt}");
    let zones = zone_dir(&[
        ("silent.yaml", &zone.to_string()),
        ("prefixes.txt", PREFIXES),
    ]);
    (Server::start(zones.path()), zones)
}

/// One item of a measurement batch: an RTT in ms, or `None` for a timeout.
fn item(mirror: &str, block: &str, rtt: Option<f64>, method: &str) -> Value {
    match rtt {
        Some(ms) => json!({"mirror": mirror, "client": block, "rtt_ms": ms, "method": method}),
        None => json!({"mirror": mirror, "client": block, "timeout": true, "method": method}),
    }
}

/// Posts active probe results for `block`: (mirror, RTT or timeout).
fn probe(s: &Server, block: &str, results: &[(&str, Option<f64>)]) {
    let items: Vec<Value> = results
        .iter()
        .map(|(m, rtt)| item(m, block, *rtt, "tcp"))
        .collect();
    let (status, body) = s.post_json("/v1/measurements", &json!({ "measurements": items }), &[]);
    assert_eq!(status, 200, "{body}");
}

/// Posts access-log RTTs that `mirror`'s agent measured for `block`.
fn passive(s: &Server, mirror: &str, block: &str, ms: f64) {
    let items = vec![item(mirror, block, Some(ms), "passive")];
    let (status, body) = s.post_json("/v1/measurements", &json!({ "measurements": items }), &[]);
    assert_eq!(status, 200, "{body}");
}

/// The address and ECS scope `www` answers for `subnet`.
fn www(s: &Server, subnet: &str) -> (String, u8) {
    let r = s
        .udp(&ecs_query("www.silent.test.", RecordType::A, subnet))
        .unwrap();
    (addresses(&r)[0].clone(), ecs_echo(&r).unwrap().1)
}

fn clusters(s: &Server) -> Vec<Value> {
    let (status, body) = s.get("/v1/services/www.silent.test/clusters");
    assert_eq!(status, 200, "{body}");
    body["clusters"].as_array().unwrap().clone()
}

/// Each cluster as "prefix mirror": what the table decides, in one line each.
fn table(s: &Server) -> Vec<String> {
    clusters(s)
        .iter()
        .map(|c| format!("{} {}", c["prefix"].as_str().unwrap(), c["mirror"]))
        .collect()
}

fn assert_no_empty_cluster(s: &Server) {
    for c in clusters(s) {
        assert!(c["blocks"].as_u64().unwrap() > 0, "an empty cluster: {c}");
    }
}

fn explain(s: &Server, client: &str) -> Value {
    let (status, body) = s.get(&format!(
        "/v1/explain?service=www.silent.test&client={client}"
    ));
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn timeouts_from_every_mirror_leave_a_silent_network_learning_not_answered_by_name() {
    let (s, _z) = server();
    let block = "203.0.113.0/24";
    probe(&s, block, &[("aaa", None), ("bbb", None), ("ccc", None)]);
    let c = &clusters(&s)[0];
    assert_eq!(c["state"], "learning", "{c}");
    assert_eq!(c["rtt_ms"], json!({}), "its timeouts say nothing: {c}");
    let answered: BTreeSet<String> = (0..3).map(|_| www(&s, block).0).collect();
    assert_eq!(answered.len(), 3, "still round robin: {answered:?}");
    let why = explain(&s, "203.0.113.9");
    let reason = why["reason"].as_str().unwrap();
    assert!(reason.starts_with("learning"), "{reason}");
    assert!(!reason.contains("by name"), "{reason}");
    assert_eq!(why["silent"], true, "{why}");
}

#[test]
fn a_silent_sub_block_follows_its_cluster_and_its_timeouts_count_nowhere() {
    let (s, _z) = server();
    probe(
        &s,
        "10.80.1.0/24",
        &[
            ("aaa", Some(30.0)),
            ("bbb", Some(10.0)),
            ("ccc", Some(50.0)),
        ],
    );
    probe(
        &s,
        "10.80.2.0/24",
        &[("aaa", None), ("bbb", None), ("ccc", None)],
    );
    assert_eq!(www(&s, "10.80.2.0/24"), (BBB.to_string(), 16));
    let c = &clusters(&s)[0];
    assert_eq!(
        c["rtt_ms"],
        json!({"aaa": 30.0, "bbb": 10.0, "ccc": 50.0}),
        "{c}"
    );
    assert_eq!(table(&s), vec!["10.80.0.0/16 \"bbb\""]);
}

#[test]
fn a_timeout_counts_where_the_sub_block_answered_another_mirror() {
    let (s, _z) = server();
    probe(
        &s,
        "10.81.1.0/24",
        &[("aaa", None), ("bbb", Some(40.0)), ("ccc", Some(60.0))],
    );
    let c = &clusters(&s)[0];
    assert_eq!(c["rtt_ms"]["aaa"], "timeout", "{c}");
    assert_eq!(www(&s, "10.81.1.0/24").0, BBB);
}

/// Mirrors aaa and ccc run access-log agents; bbb does not.
#[test]
fn a_silent_sub_block_is_explored_with_mirrors_whose_agents_post_passive_rtts() {
    let (s, _z) = server();
    let measured = "10.90.1.0/24";
    let silent = "10.90.2.0/24";
    probe(
        &s,
        measured,
        &[
            ("aaa", Some(30.0)),
            ("bbb", Some(10.0)),
            ("ccc", Some(50.0)),
        ],
    );
    www(&s, silent); // a client of the silent sub-block asks
    probe(&s, silent, &[("aaa", None), ("bbb", None), ("ccc", None)]);
    assert_eq!(
        www(&s, silent),
        (BBB.to_string(), 16),
        "no agent posts passive RTTs yet: nothing is explored"
    );

    passive(&s, "aaa", measured, 31.0);
    passive(&s, "ccc", measured, 49.0);
    // aaa is next best for the cluster, so it is explored first, three
    // times, at the sub-block's own scope.
    assert_eq!(www(&s, silent), (AAA.to_string(), 24));
    let why = explain(&s, "10.90.2.7");
    assert_eq!(
        why["exploring"],
        json!({"mirror": "aaa", "answers": 1, "of": 3})
    );
    let reason = why["reason"].as_str().unwrap();
    assert!(reason.starts_with("exploring"), "{reason}");
    for _ in 0..2 {
        assert_eq!(www(&s, silent), (AAA.to_string(), 24));
    }
    assert_eq!(www(&s, silent), (BBB.to_string(), 16), "tries used up");
    assert_eq!(
        metric(
            &metrics(&s),
            "mirrordns_exploration_answers_total",
            &[("service", "www.silent.test.")]
        ),
        3.0
    );

    // aaa's access log brings the RTT back: ccc's turn.
    passive(&s, "aaa", silent, 5.0);
    assert_eq!(www(&s, silent), (CCC.to_string(), 24));
    assert_eq!(clusters(&s)[0]["exploring"], 1);
    // ccc's and bbb's come back too: the sub-block is measured now, and
    // aaa is clearly its fastest, so it is carved out with aaa (as the
    // largest prefix holding no other sub-block: 10.90.2.0/23).
    passive(&s, "ccc", silent, 45.0);
    passive(&s, "bbb", silent, 20.0);
    assert_eq!(www(&s, silent), (AAA.to_string(), 23));
    assert_eq!(www(&s, "10.90.1.0/24"), (BBB.to_string(), 23));
    assert!(clusters(&s).iter().all(|c| c["exploring"] == 0));
}

#[test]
fn a_split_leaves_no_empty_parent_and_folds_back_when_the_sub_blocks_agree_again() {
    let (s, _z) = server();
    let (low, high) = ("10.60.1.0/24", "10.60.200.0/24");
    for block in [low, high] {
        probe(
            &s,
            block,
            &[("aaa", Some(30.0)), ("bbb", Some(20.0)), ("ccc", None)],
        );
        probe(&s, block, &[("aaa", Some(10.0))]);
        probe(&s, block, &[("bbb", Some(9.0))]);
    }
    probe(
        &s,
        high,
        &[("aaa", Some(100.0)), ("bbb", Some(8.0)), ("ccc", None)],
    );
    probe(
        &s,
        high,
        &[
            ("aaa", Some(100.0)),
            ("bbb", Some(100.0)),
            ("ccc", Some(5.0)),
        ],
    );
    assert_no_empty_cluster(&s);
    assert_eq!(www(&s, high).0, CCC);
    assert!(www(&s, high).1 > 16, "split: {:?}", table(&s));

    probe(
        &s,
        high,
        &[("aaa", Some(10.0)), ("bbb", Some(9.0)), ("ccc", None)],
    );
    assert_no_empty_cluster(&s);
    assert_eq!(table(&s), vec!["10.60.0.0/16 \"bbb\""]);
    assert_eq!(www(&s, high), (BBB.to_string(), 16));
    assert_eq!(www(&s, low), (BBB.to_string(), 16));
}

#[test]
fn a_part_folds_back_when_only_the_sub_block_left_in_its_parent_changes() {
    let (s, _z) = server();
    let (low, high) = ("10.61.1.0/24", "10.61.200.0/24");
    probe(
        &s,
        low,
        &[
            ("aaa", Some(10.0)),
            ("bbb", Some(60.0)),
            ("ccc", Some(90.0)),
        ],
    );
    probe(
        &s,
        high,
        &[
            ("aaa", Some(90.0)),
            ("bbb", Some(60.0)),
            ("ccc", Some(10.0)),
        ],
    );
    assert_eq!(clusters(&s).len(), 2, "{:?}", table(&s));
    // Only the low sub-block's route changes, to agree with the high one.
    probe(
        &s,
        low,
        &[
            ("aaa", Some(90.0)),
            ("bbb", Some(60.0)),
            ("ccc", Some(10.5)),
        ],
    );
    assert_eq!(table(&s), vec!["10.61.0.0/16 \"ccc\""]);
    assert_eq!(www(&s, high), (CCC.to_string(), 16));
}

#[test]
fn a_listed_prefix_is_a_cluster_of_its_own_whatever_order_its_clients_come_in() {
    let orders = [
        ["10.20.5.0/24", "10.20.200.0/24"],
        ["10.20.200.0/24", "10.20.5.0/24"],
    ];
    let mut tables = Vec::new();
    for order in orders {
        let (s, _z) = server();
        for subnet in order {
            www(&s, subnet);
        }
        // Both scopes are /17: the /14's answer must not cover the /17.
        assert_eq!(www(&s, "10.20.200.0/24").1, 17, "order {order:?}");
        assert_eq!(www(&s, "10.20.5.0/24").1, 17, "order {order:?}");
        tables.push(table(&s));
    }
    assert_eq!(tables[0], tables[1]);
    assert_eq!(tables[0], vec!["10.20.0.0/14 null", "10.20.128.0/17 null"]);
}

#[test]
fn the_same_measurements_in_either_order_build_the_same_table() {
    let low = ("10.70.1.0/24", [Some(10.0), Some(50.0), Some(70.0)]);
    let high = ("10.70.200.0/24", [Some(50.0), Some(10.0), Some(70.0)]);
    let mut tables = Vec::new();
    for order in [[low, high], [high, low]] {
        let (s, _z) = server();
        for (block, [a, b, c]) in order {
            probe(&s, block, &[("aaa", a), ("bbb", b), ("ccc", c)]);
        }
        tables.push(table(&s));
        assert_eq!(www(&s, low.0).0, AAA);
        assert_eq!(www(&s, high.0).0, BBB);
    }
    assert_eq!(tables[0], tables[1]);
}

#[test]
fn a_part_without_measured_sub_blocks_answers_as_the_busiest_part_of_its_region() {
    let (s, _z) = server();
    let (west, east, quiet) = ("10.95.1.0/24", "10.95.100.0/24", "10.95.200.0/24");
    www(&s, quiet);
    for _ in 0..5 {
        www(&s, east);
    }
    www(&s, west);
    probe(
        &s,
        west,
        &[
            ("aaa", Some(10.0)),
            ("bbb", Some(30.0)),
            ("ccc", Some(100.0)),
        ],
    );
    probe(
        &s,
        east,
        &[
            ("aaa", Some(100.0)),
            ("bbb", Some(30.0)),
            ("ccc", Some(10.0)),
        ],
    );
    assert_eq!(www(&s, west).0, AAA);
    assert_eq!(www(&s, east).0, CCC);
    // The quiet sub-block was never measured: it answers as the east part,
    // which carries the most queries, not round robin and not by name.
    for _ in 0..3 {
        assert_eq!(www(&s, quiet), (CCC.to_string(), 17));
    }
    assert_no_empty_cluster(&s);
}
