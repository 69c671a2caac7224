//! Several `mirrordns serve` instances sharing what they learn through one
//! nats-server with JetStream (docs/MULTI-NODE.md), on loopback only. The
//! nats-server binary comes from Debian's package (`scripts/test` installs
//! it).

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

const SERVICE: &str = "www.multi.test.";
const CONVERGE: Duration = Duration::from_secs(30);

/// A nats-server with JetStream on loopback, its store in a temporary
/// directory that outlives restarts; killed when dropped.
struct Nats {
    child: Option<Child>,
    port: u16,
    monitor: u16,
    store: tempfile::TempDir,
}

impl Nats {
    fn start() -> Nats {
        Nats::start_with("")
    }

    /// With `extra` lines added to the server's configuration file.
    fn start_with(extra: &str) -> Nats {
        let mut nats = Nats {
            child: None,
            port: free_port(),
            monitor: free_port(),
            store: tempfile::tempdir().unwrap(),
        };
        let config = format!(
            "listen: 127.0.0.1:{}\nhttp: 127.0.0.1:{}\njetstream {{ store_dir: {:?} }}\n{extra}\n",
            nats.port,
            nats.monitor,
            nats.store.path().join("js")
        );
        std::fs::write(nats.config(), config).unwrap();
        nats.restart();
        nats
    }

    fn config(&self) -> std::path::PathBuf {
        self.store.path().join("nats.conf")
    }

    fn restart(&mut self) {
        let child = Command::new(program("nats-server", "nats-server"))
            .arg("-c")
            .arg(self.config())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs");
        self.child = Some(child);
        let listening = eventually(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(listening, "nats-server did not start");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Messages stored in the measurement stream, from the monitoring port.
    fn stored_batches(&self) -> u64 {
        let url = format!("http://127.0.0.1:{}/jsz?streams=true", self.monitor);
        let jsz: Value = reqwest::blocking::get(url).unwrap().json().unwrap();
        jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
            .filter(|s| s["name"] == "mirrordns")
            .map(|s| s["state"]["messages"].as_u64().unwrap_or(0))
            .sum()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn zones() -> tempfile::TempDir {
    zone_dir(&[("multi.yaml", &zone("multi.test.").to_string())])
}

/// An instance sharing through `nats`, its state in `state_dir`, once it
/// follows the stream.
fn instance(zones: &Path, state_dir: &Path, nats: &Nats) -> Server {
    let url = nats.url();
    let extra = ["--nats", &url, "--nats-probe-interval-s", "1"];
    let mut s = Server::start_in(zones, state_dir, &extra, Some(TOKEN));
    s.wait_for_log(
        "following the shared measurement stream",
        Duration::from_secs(15),
    );
    s
}

/// The learned table as every instance should hold it: what this instance
/// alone counted (queries) left out.
fn table(s: &Server) -> Vec<Value> {
    let (_, body) = s.get(&format!("/v1/services/{SERVICE}/clusters"));
    let mut clusters = body["clusters"].as_array().cloned().unwrap_or_default();
    for c in &mut clusters {
        c.as_object_mut().unwrap().remove("queries");
    }
    clusters
}

/// Waits until every instance holds the same table and `done` holds for
/// it; returns that table.
fn converged(instances: &[&Server], done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let tables = || -> Vec<Vec<Value>> { instances.iter().map(|s| table(s)).collect() };
    let agreed = eventually_some(CONVERGE, || {
        let tables = tables();
        let same = tables.iter().all(|t| *t == tables[0]);
        (same && done(&tables[0])).then(|| tables[0].clone())
    });
    agreed.unwrap_or_else(|| {
        let shown: Vec<String> = tables()
            .iter()
            .map(|t| serde_json::to_string(t).unwrap())
            .collect();
        panic!("instances did not converge:\n{}", shown.join("\n"))
    })
}

fn cluster<'a>(table: &'a [Value], prefix: &str) -> Option<&'a Value> {
    table.iter().find(|c| c["prefix"] == prefix)
}

fn rtt(table: &[Value], prefix: &str, mirror: &str) -> Option<f64> {
    cluster(table, prefix)?["rtt_ms"][mirror].as_f64()
}

/// The addresses `s` answers for a client in `subnet`.
fn answer(s: &Server, subnet: &str) -> Vec<String> {
    let response = s
        .udp(&ecs_query(SERVICE, RecordType::A, subnet))
        .expect("an answer");
    addresses(&response)
}

fn batch(items: &[(&str, &str, f64)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(mirror, client, ms)| json!({"mirror": mirror, "client": client, "rtt_ms": ms}))
        .collect();
    json!({ "measurements": items })
}

fn post(s: &Server, body: &Value) -> u16 {
    s.post_json("/v1/measurements", body, &[]).0
}

/// `mirrordns agent --nats` for `mirror`, probing loopback targets by TCP
/// connect to `port`; killed when dropped.
struct Agent(Child);

impl Agent {
    fn start(nats: &Nats, mirror: &str, port: u16) -> Agent {
        let child = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
            .args(["agent", "--nats", &nats.url(), "--mirror", mirror])
            .args(["--method", "tcp", "--probe-port", &port.to_string()])
            .args(["--timeout-ms", "400"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Agent(child)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn three_instances_and_two_agents_learn_one_table_and_answer_alike() {
    let nats = Nats::start();
    let zones = zones();
    let states: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let servers: Vec<Server> = states
        .iter()
        .map(|d| instance(zones.path(), d.path(), &nats))
        .collect();
    // Resolvers reach different instances: ns1 sees four client networks,
    // ns2 two others, ns3 none. All of them are loopback, so the agents'
    // probes never leave the machine.
    let networks: Vec<String> = (1..=6).map(|n| format!("127.{n}.0.0/16")).collect();
    for n in 1..=4 {
        for block in 0..2 {
            answer(&servers[0], &format!("127.{n}.{block}.0/24"));
        }
    }
    for n in 5..=6 {
        answer(&servers[1], &format!("127.{n}.0.0/24"));
    }
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let _fra = Agent::start(&nats, "fra", open.local_addr().unwrap().port());
    let _nyc = Agent::start(&nats, "nyc", free_port()); // refused: a reset is a reply
    let all: Vec<&Server> = servers.iter().collect();
    let table = converged(&all, |t| {
        networks.iter().all(|n| {
            cluster(t, n).is_some_and(|c| c["state"] == "complete" && c["mirror"].is_string())
        })
    });
    for network in &networks {
        let c = cluster(&table, network).unwrap();
        let expected = if c["mirror"] == "fra" {
            "192.0.2.1"
        } else {
            "192.0.2.2"
        };
        let client = network.replace(".0.0/16", ".0.0/24");
        for s in &servers {
            assert_eq!(answer(s, &client), [expected], "{network} on {}", s.dns);
        }
    }
}

#[test]
fn a_killed_instance_catches_up_and_a_late_one_converges_with_each_batch_applied_once() {
    let nats = Nats::start();
    let zones = zones();
    let (state_a, state_b, state_c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = instance(zones.path(), state_a.path(), &nats);
    let b = instance(zones.path(), state_b.path(), &nats);
    // Slowly rising RTTs: each is averaged with the last, so a batch lost
    // or applied twice would leave a different number.
    let rtt_of = |i: usize| 10.0 + i as f64 * 0.5;
    let post_batch = |i: usize| {
        let body = batch(&[
            ("fra", "127.9.0.0/24", rtt_of(i)),
            ("nyc", "127.9.0.0/24", 40.0),
        ]);
        assert_eq!(post(&a, &body), 200);
    };
    (0..10).for_each(post_batch);
    b.signal("-KILL");
    drop(b);
    (10..30).for_each(post_batch);
    let expected = (1..30).fold(rtt_of(0), |avg, i| avg + 0.5 * (rtt_of(i) - avg));
    let b = instance(zones.path(), state_b.path(), &nats);
    let resumed_after = resumed_from(&b) - 1.0;
    let applied_all =
        |t: &[Value]| rtt(t, "127.9.0.0/16", "fra").is_some_and(|ms| (ms - expected).abs() < 0.01);
    converged(&[&a, &b], applied_all);
    // The 30 batches are 30 stream messages: what the killed instance had
    // stored before, plus what it consumed after, is each of them once.
    assert!(resumed_after < 30.0, "b resumed after {resumed_after}");
    let consumed_since = stream_metric(&b, "mirrordns_stream_batches_applied_total");
    assert_eq!(resumed_after + consumed_since, 30.0);
    assert_eq!(stream_metric(&b, "mirrordns_stream_position"), 30.0);

    let c = instance(zones.path(), state_c.path(), &nats);
    converged(&[&a, &b, &c], applied_all);
    assert_eq!(
        stream_metric(&c, "mirrordns_stream_batches_applied_total"),
        30.0
    );
}

/// The first stream sequence the instance asked for at start, from its log.
fn resumed_from(s: &Server) -> f64 {
    let logs = s.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("following the shared measurement stream"))
        .expect("the follower's start line");
    let from = line.split("from=").nth(1).expect("from=N");
    from.split_whitespace().next().unwrap().parse().unwrap()
}

fn stream_metric(s: &Server, name: &str) -> f64 {
    metric(&metrics(s), name, &[])
}

#[test]
fn without_nats_instances_answer_from_what_they_learned_and_converge_after() {
    let mut nats = Nats::start();
    let zones = zones();
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = instance(zones.path(), state_a.path(), &nats);
    let b = instance(zones.path(), state_b.path(), &nats);
    let client = "127.9.0.0/24";
    let fra_best = batch(&[("fra", client, 10.0), ("nyc", client, 50.0)]);
    assert_eq!(post(&a, &fra_best), 200);
    converged(&[&a, &b], |t| {
        cluster(t, "127.9.0.0/16").is_some_and(|c| c["mirror"] == "fra")
    });

    nats.kill();
    for s in [&a, &b] {
        assert_eq!(answer(s, client), ["192.0.2.1"]);
    }
    let nyc_best = batch(&[("fra", client, 90.0), ("nyc", client, 20.0)]);
    assert_eq!(post(&b, &nyc_best), 503, "not stored while NATS is away");

    nats.restart();
    let resumed = eventually(CONVERGE, || post(&b, &nyc_best) == 200);
    assert!(resumed, "publishing did not resume");
    converged(&[&a, &b], |t| {
        cluster(t, "127.9.0.0/16").is_some_and(|c| c["mirror"] == "nyc")
    });
    for s in [&a, &b] {
        assert_eq!(answer(s, client), ["192.0.2.2"]);
    }
}

#[test]
fn a_rejected_batch_is_never_published_and_a_retried_one_is_stored_once() {
    let nats = Nats::start();
    let zones = zones();
    let state = tempfile::tempdir().unwrap();
    let s = instance(zones.path(), state.path(), &nats);
    let bad = batch(&[("fra", "127.9.0.0/24", 10.0), ("lon", "127.9.0.0/24", 5.0)]);
    let (status, body) = s.post_json("/v1/measurements", &bad, &[]);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("lon"), "{body}");
    assert_eq!(nats.stored_batches(), 0);

    let good = batch(&[("fra", "127.9.0.0/24", 10.0), ("nyc", "127.9.0.0/24", 30.0)]);
    let retry = [("Nats-Msg-Id", "agent-7-batch-1")];
    assert_eq!(s.post_json("/v1/measurements", &good, &retry).0, 200);
    assert_eq!(s.post_json("/v1/measurements", &good, &retry).0, 200);
    assert_eq!(nats.stored_batches(), 1);
    converged(&[&s], |t| rtt(t, "127.9.0.0/16", "fra") == Some(10.0));
}

#[test]
fn a_drain_reaches_every_instance_including_one_started_later() {
    let nats = Nats::start();
    let zones = zones();
    let states: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = instance(zones.path(), states[0].path(), &nats);
    let b = instance(zones.path(), states[1].path(), &nats);
    let client = "127.9.0.0/24";
    assert_eq!(
        post(&a, &batch(&[("fra", client, 10.0), ("nyc", client, 50.0)])),
        200
    );
    let (status, _) = b.post_json("/v1/mirrors/fra/drain", &json!({}), &[]);
    assert_eq!(status, 200);
    let c = instance(zones.path(), states[2].path(), &nats);
    let everywhere = eventually(CONVERGE, || {
        [&a, &b, &c]
            .iter()
            .all(|s| answer(s, client) == ["192.0.2.2"])
    });
    assert!(
        everywhere,
        "drain not applied everywhere: {:?}",
        [&a, &b, &c].map(|s| answer(s, client))
    );
}

#[test]
fn a_batch_larger_than_nats_takes_is_refused_with_413_not_retried_for_ever() {
    let nats = Nats::start_with("max_payload: 8192");
    let zones = zones();
    let state = tempfile::tempdir().unwrap();
    let s = instance(zones.path(), state.path(), &nats);
    let items: Vec<(&str, String, f64)> = (0..200)
        .map(|i| ("fra", format!("127.9.{i}.0/24"), 10.0))
        .collect();
    let items: Vec<(&str, &str, f64)> =
        items.iter().map(|(m, c, r)| (*m, c.as_str(), *r)).collect();
    let (status, body) = s.post_json("/v1/measurements", &batch(&items), &[]);
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("max_payload"),
        "{body}"
    );
    assert_eq!(post(&s, &batch(&items[..20])), 200);
    assert_eq!(nats.stored_batches(), 1);
}
