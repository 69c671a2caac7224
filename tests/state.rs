//! Never lose what was learned (SPEC section 4): acknowledged batches survive
//! kill -9, restarts give the same answers, damaged state files are set
//! aside, and a second server cannot share the state directory.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

/// Every /24 is its own cluster, so each acknowledged batch shows as one.
fn zones() -> tempfile::TempDir {
    let zone = zone("state.test.")
        .with("clusters: {initial_v4: 24}")
        .with("measurements: {max_age_s: 600}");
    zone_dir(&[("state.yaml", &zone.to_string())])
}

fn start(zones: &Path, state: &Path) -> Server {
    Server::start_in(zones, state, &[], Some(TOKEN))
}

/// The /24 a batch number measures: 10.a.b.0/24.
fn block(n: u32) -> String {
    format!("10.{}.{}.0/24", (n >> 8) & 0xff, n & 0xff)
}

fn post(
    api: std::net::SocketAddr,
    client: &reqwest::blocking::Client,
    body: &Value,
) -> Option<u16> {
    client
        .post(format!("http://{api}/v1/measurements"))
        .bearer_auth(TOKEN)
        .json(body)
        .timeout(Duration::from_secs(5))
        .send()
        .ok()
        .map(|r| r.status().as_u16())
}

/// Batch `n`: fra and nyc measure block `n`, nyc faster when `n` is even.
fn batch(n: u32) -> Value {
    let (fra, nyc) = if n.is_multiple_of(2) {
        (40.0, 10.0)
    } else {
        (10.0, 40.0)
    };
    json!({"measurements": [
        {"mirror": "fra", "client": block(n), "rtt_ms": fra},
        {"mirror": "nyc", "client": block(n), "rtt_ms": nyc},
    ]})
}

fn clusters(s: &Server) -> Vec<Value> {
    s.get("/v1/services/www.state.test/clusters").1["clusters"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn complete_prefixes(s: &Server) -> BTreeSet<String> {
    clusters(s)
        .iter()
        .filter(|c| c["state"] == "complete")
        .map(|c| c["prefix"].as_str().unwrap().to_string())
        .collect()
}

/// What every client of `blocks` is answered, with the ECS scope.
fn answers_for(s: &Server, blocks: &[String]) -> Vec<(String, String, u8)> {
    blocks
        .iter()
        .map(|b| {
            let r = s
                .udp(&ecs_query("www.state.test.", RecordType::A, b))
                .unwrap();
            (b.clone(), addresses(&r).join(","), ecs_echo(&r).unwrap().1)
        })
        .collect()
}

#[test]
fn every_acknowledged_batch_survives_kill_9_at_any_moment() {
    let zones = zones();
    let state = tempfile::tempdir().unwrap();
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let next = Arc::new(Mutex::new(0u32));
    // Kill moments spread over the first second, where posting is busiest.
    for (round, kill_after_ms) in [120u64, 450, 75, 800].into_iter().enumerate() {
        let s = start(zones.path(), state.path());
        let before = complete_prefixes(&s);
        let expected: BTreeSet<String> = acknowledged
            .lock()
            .unwrap()
            .iter()
            .map(|n| block(*n))
            .collect();
        assert!(
            expected.is_subset(&before),
            "round {round}: lost {:?}",
            expected.difference(&before).collect::<Vec<_>>()
        );
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (api, stop, next, acknowledged) = (
                    s.api,
                    Arc::clone(&stop),
                    Arc::clone(&next),
                    Arc::clone(&acknowledged),
                );
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    while !stop.load(Ordering::Relaxed) {
                        let n = {
                            let mut next = next.lock().unwrap();
                            *next += 1;
                            *next
                        };
                        if post(api, &client, &batch(n)) == Some(200) {
                            acknowledged.lock().unwrap().insert(n);
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        s.signal("-KILL");
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        drop(s);
    }
    let s = start(zones.path(), state.path());
    let after = complete_prefixes(&s);
    let acknowledged = acknowledged.lock().unwrap();
    assert!(
        acknowledged.len() > 50,
        "the writers got only {} batches through",
        acknowledged.len()
    );
    let lost: Vec<String> = acknowledged
        .iter()
        .map(|n| block(*n))
        .filter(|b| !after.contains(b))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

#[test]
fn answers_are_the_same_after_a_clean_restart_and_after_kill_9() {
    let zones = zones();
    let state = tempfile::tempdir().unwrap();
    let s = start(zones.path(), state.path());
    for n in 0..40 {
        assert_eq!(
            post(s.api, &reqwest::blocking::Client::new(), &batch(n)),
            Some(200)
        );
    }
    let blocks: Vec<String> = (0..40).map(block).collect();
    let before = answers_for(&s, &blocks);
    assert!(
        before.iter().any(|(_, a, _)| a == "192.0.2.1")
            && before.iter().any(|(_, a, _)| a == "192.0.2.2")
    );
    s.stop();
    let s = start(zones.path(), state.path());
    assert_eq!(
        answers_for(&s, &blocks),
        before,
        "after a clean restart (from the snapshot)"
    );
    // More learning, then kill -9: the journal since the snapshot restores it.
    for n in 40..60 {
        assert_eq!(
            post(s.api, &reqwest::blocking::Client::new(), &batch(n)),
            Some(200)
        );
    }
    let blocks: Vec<String> = (0..60).map(block).collect();
    let before = answers_for(&s, &blocks);
    s.signal("-KILL");
    drop(s);
    let s = start(zones.path(), state.path());
    assert_eq!(
        answers_for(&s, &blocks),
        before,
        "after kill -9 (snapshot + journal)"
    );
}

#[test]
fn measurements_older_than_four_max_ages_are_compacted_away() {
    let zones = zones();
    let state = tempfile::tempdir().unwrap();
    let s = start(zones.path(), state.path());
    let old = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() - Duration::from_secs(3 * 3600),
    )
    .to_string();
    let body = json!({"measurements": [
        {"mirror": "fra", "client": "10.9.9.0/24", "rtt_ms": 5.0, "time": old},
        {"mirror": "fra", "client": "10.8.8.0/24", "rtt_ms": 6.0},
    ]});
    assert_eq!(
        post(s.api, &reqwest::blocking::Client::new(), &body),
        Some(200)
    );
    s.stop();
    let s = start(zones.path(), state.path());
    let rtt_of = |prefix: &str| {
        clusters(&s)
            .into_iter()
            .find(|c| c["prefix"] == prefix)
            .map(|c| c["rtt_ms"].clone())
    };
    assert_eq!(rtt_of("10.8.8.0/24"), Some(json!({"fra": 6.0})));
    assert_eq!(
        rtt_of("10.9.9.0/24"),
        Some(json!({})),
        "3 h old, max_age_s 600: dropped"
    );
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    Truncate,
    OverwriteMiddle,
    Zero,
}

fn damage(path: &Path, how: Damage) {
    let mut bytes = std::fs::read(path).unwrap();
    match how {
        Damage::Truncate => bytes.truncate(bytes.len() / 2),
        Damage::OverwriteMiddle => {
            let mid = bytes.len() / 2;
            for b in bytes.iter_mut().skip(mid.saturating_sub(8)).take(16) {
                *b = 0xA5;
            }
        }
        Damage::Zero => bytes.iter_mut().for_each(|b| *b = 0),
    }
    std::fs::write(path, bytes).unwrap();
}

fn set_aside_copies(state: &Path, name: &str) -> Vec<PathBuf> {
    std::fs::read_dir(state)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{name}.corrupt-"))
        })
        .collect()
}

/// A state dir with a snapshot (from a clean stop) and a journal of batches after it.
fn learned_state(zones: &Path) -> tempfile::TempDir {
    let state = tempfile::tempdir().unwrap();
    let client = reqwest::blocking::Client::new();
    let s = start(zones, state.path());
    for n in 0..20 {
        assert_eq!(post(s.api, &client, &batch(n)), Some(200));
    }
    s.stop();
    let s = start(zones, state.path());
    for n in 20..40 {
        assert_eq!(post(s.api, &client, &batch(n)), Some(200));
    }
    s.signal("-KILL");
    drop(s);
    state
}

#[test]
fn damaged_state_files_are_set_aside_and_the_server_starts_anyway() {
    let zones = zones();
    for file in ["snapshot", "journal", "api.token"] {
        for how in [Damage::Truncate, Damage::OverwriteMiddle, Damage::Zero] {
            let state = learned_state(zones.path());
            let path = state.path().join(file);
            if file == "api.token" {
                // The servers above took their token from the environment;
                // give this one a generated token file to damage.
                std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
            }
            assert!(path.exists(), "{file} was written");
            damage(&path, how);
            let mut s = Server::start_in(zones.path(), state.path(), &[], None);
            let r = s.query("ns1.state.test.", RecordType::A);
            assert_eq!(
                addresses(&r),
                vec!["127.0.0.1"],
                "{file} {how:?}: serves DNS"
            );
            // Half a token is still a well-formed token: nothing to detect.
            let detectable = file != "api.token" || !matches!(how, Damage::Truncate);
            if detectable {
                assert_eq!(
                    set_aside_copies(state.path(), file).len(),
                    1,
                    "{file} {how:?}: set aside"
                );
                s.wait_for_log("set aside", Duration::from_secs(5));
            }
            if file == "journal" {
                // Whatever the snapshot held is still there.
                let have = complete_prefixes(&s);
                assert!(
                    (0..20).all(|n| have.contains(&block(n))),
                    "{how:?}: snapshot data kept"
                );
            }
        }
    }
}

#[test]
fn a_second_server_on_the_same_state_dir_is_refused() {
    let zones = zones();
    let state = tempfile::tempdir().unwrap();
    let first = start(zones.path(), state.path());
    let output = serve_command(zones.path(), state.path(), &[])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&state.path().display().to_string()) && stderr.contains("in use"),
        "{stderr}"
    );
    // The first one is untouched.
    assert_eq!(
        addresses(&first.query("ns1.state.test.", RecordType::A)),
        vec!["127.0.0.1"]
    );
}

/// A cluster that only saw queries has probe work and nothing journaled by
/// an API call: the sub-blocks queries bring are journaled within a second,
/// so kill -9 keeps them.
#[test]
fn sub_blocks_that_only_saw_queries_survive_kill_9() {
    let zones = zones();
    let state = tempfile::tempdir().unwrap();
    let s = start(zones.path(), state.path());
    let subnets = ["198.51.100.0/24", "203.0.113.0/24"];
    for subnet in subnets {
        s.udp(&ecs_query("www.state.test.", RecordType::A, subnet))
            .unwrap();
    }
    let journal = state.path().join("journal");
    let empty = std::fs::metadata(&journal).map_or(0, |m| m.len());
    let journaled = eventually(Duration::from_secs(10), || {
        std::fs::metadata(&journal).is_ok_and(|m| m.len() > empty)
    });
    assert!(journaled, "the queried sub-blocks were never journaled");
    s.signal("-KILL");
    drop(s);

    let s = start(zones.path(), state.path());
    let prefixes: BTreeSet<String> = clusters(&s)
        .iter()
        .map(|c| c["prefix"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(prefixes, subnets.iter().map(|p| p.to_string()).collect());
    let (_, work) = s.get("/v1/probes?mirror=fra");
    let blocks: BTreeSet<&str> = work["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["block"].as_str().unwrap())
        .collect();
    assert_eq!(blocks, subnets.into_iter().collect(), "{work}");
}
