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

fn measure(s: &Server, items: Value) {
    let response = reqwest::blocking::Client::new()
        .post(s.url("/v1/measurements"))
        .bearer_auth(TOKEN)
        .json(&json!({ "measurements": items }))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

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
