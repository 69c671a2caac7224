//! `mirrordns agent` against a real server, on loopback only: probe work in,
//! measurements out, by TCP connect, ICMP echo and a passive access log; and
//! against a stand-in for the probe API where the work needs what the real
//! server does not hand out yet (resolver addresses with a subnet).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

struct Agent {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(server: &Server, mirror: &str, extra: &[&str]) -> Agent {
        Agent::start_at(&format!("http://{}", server.api), mirror, extra)
    }

    /// An agent of `mirror` taking its work from the API at `url`.
    fn start_at(url: &str, mirror: &str, extra: &[&str]) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
            .args(["agent", "--server", url, "--mirror", mirror])
            .args(["--interval-s", "1", "--timeout-ms", "400"])
            .args(extra)
            .env("MIRRORDNS_API_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Agent { child, logs }
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `text`.
    fn wait_for_log(&self, text: &str) {
        let logged = eventually(Duration::from_secs(20), || {
            self.logs.lock().unwrap().iter().any(|l| l.contains(text))
        });
        assert!(logged, "no log line with {text:?}:\n{}", self.logs());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server() -> (Server, tempfile::TempDir) {
    let zones = zone_dir(&[("agent.yaml", &zone("agent.test.").to_string())]);
    (Server::start(zones.path()), zones)
}

/// The measured RTT of `mirror` for the cluster holding `prefix`, once there is one.
fn wait_for_rtt(s: &Server, prefix: &str, mirror: &str) -> Value {
    let rtt = || {
        let (_, body) = s.get("/v1/services/www.agent.test/clusters");
        body["clusters"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["prefix"] == prefix))
            .map(|c| c["rtt_ms"][mirror].clone())
            .filter(|v| !v.is_null())
    };
    eventually_some(Duration::from_secs(20), rtt).unwrap_or_else(|| {
        let (_, body) = s.get("/v1/services/www.agent.test/clusters");
        panic!("no {mirror} measurement for {prefix}: {body}\n{}", s.logs())
    })
}

#[test]
fn tcp_probes_fill_the_table_and_a_reset_counts_as_a_reply() {
    let (s, _zones) = server();
    s.query("www.agent.test.", RecordType::A); // the resolver 127.0.0.1 becomes probe work
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = listener.local_addr().unwrap().port().to_string();
    let closed_port = free_port().to_string();
    let _fra = Agent::start(&s, "fra", &["--method", "tcp", "--probe-port", &open_port]);
    let _nyc = Agent::start(
        &s,
        "nyc",
        &["--method", "tcp", "--probe-port", &closed_port],
    );
    let fra = wait_for_rtt(&s, "127.0.0.0/16", "fra");
    let nyc = wait_for_rtt(&s, "127.0.0.0/16", "nyc");
    assert!(
        fra.as_f64().is_some_and(|ms| ms > 0.0 && ms < 400.0),
        "fra {fra}"
    );
    assert!(
        nyc.as_f64().is_some_and(|ms| ms > 0.0 && ms < 400.0),
        "a reset is an RTT: nyc {nyc}"
    );
    let (_, body) = s.get("/v1/services/www.agent.test/clusters");
    assert_eq!(body["clusters"][0]["state"], "complete");
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so
/// a connect gets no answer at all, as from a black hole.
fn black_hole() -> (socket2::Socket, Vec<TcpStream>, SocketAddr) {
    black_hole_at("127.0.0.1:0".parse().unwrap()).unwrap()
}

/// A black hole at `at` (a loopback address; port 0 for any free one).
fn black_hole_at(at: SocketAddr) -> std::io::Result<(socket2::Socket, Vec<TcpStream>, SocketAddr)> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&at.into())?;
    socket.listen(0)?;
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(c);
        }
    }
    Ok((socket, fillers, addr))
}

/// A timeout counts only where the sub-block answered another mirror's
/// probe (SPEC section 2, "Silent targets"): fra's probe is answered first.
#[test]
fn a_target_that_answers_one_mirror_and_not_the_other_is_a_timeout_there() {
    let (s, _zones) = server();
    s.query("www.agent.test.", RecordType::A);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = listener.local_addr().unwrap().port().to_string();
    let _fra = Agent::start(&s, "fra", &["--method", "tcp", "--probe-port", &open_port]);
    assert!(wait_for_rtt(&s, "127.0.0.0/16", "fra").as_f64().is_some());
    let (_socket, _fillers, addr) = black_hole();
    let port = addr.port().to_string();
    let agent = Agent::start(&s, "nyc", &["--method", "tcp", "--probe-port", &port]);
    let nyc = wait_for_rtt(&s, "127.0.0.0/16", "nyc");
    assert_eq!(nyc, "timeout", "{}", agent.logs());
}

#[test]
fn a_silent_address_is_posted_as_a_timeout_naming_it() {
    let hosts = hosts(&["127.77.12.1"], &[]);
    let work = json!({"probes": [{"target": "127.77.12.1", "block": "127.77.12.0/24"}]});
    let api = FakeApi::start(vec![work]);
    let agent = tcp_agent(&api, &hosts, &[]);
    let measured = api.wait_for("127.77.12.0/24", 1, &agent);
    assert_eq!(measured[0]["timeout"], true, "{measured:?}");
    assert_eq!(measured[0]["address"], "127.77.12.1", "{measured:?}");
}

#[test]
fn icmp_echo_where_allowed_or_tcp_with_a_log_line() {
    let (s, _zones) = server();
    s.query("www.agent.test.", RecordType::A);
    let port = free_port().to_string();
    let agent = Agent::start(&s, "fra", &["--method", "icmp", "--probe-port", &port]);
    let fra = wait_for_rtt(&s, "127.0.0.0/16", "fra");
    assert!(fra.as_f64().is_some_and(|ms| ms > 0.0), "fra {fra}");
    let logs = agent.logs();
    assert!(
        logs.contains("method=\"icmp\"")
            || logs.contains("method=icmp")
            || logs.contains("ICMP echo is not allowed"),
        "{logs}"
    );
}

#[test]
fn passive_mode_posts_the_median_per_block_and_survives_rotation() {
    let (s, _zones) = server();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, "198.51.100.1 - \"GET / HTTP/1.1\" 200 99000000\n").unwrap(); // history: ignored
    let log_arg = log.display().to_string();
    let agent = Agent::start(
        &s,
        "fra",
        &[
            "--method",
            "tcp",
            "--access-log",
            &log_arg,
            "--passive-window-s",
            "1",
            "--probe-port",
            &free_port().to_string(),
        ],
    );
    // The agent starts reading at the end of the log before it says so:
    // the line already there is history.
    agent.wait_for_log("following the access log");
    let append = |text: &str| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    append(
        "198.51.100.7 - \"GET / HTTP/1.1\" 200 12000\n198.51.100.8 - \"GET / HTTP/1.1\" 200 20000\n198.51.100.9 - \"GET / HTTP/1.1\" 200 14000\n",
    );
    assert_eq!(
        wait_for_rtt(&s, "198.51.0.0/16", "fra"),
        14.0,
        "{}",
        agent.logs()
    );
    // Rotation: the log is moved away and a new one written.
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    std::fs::write(&log, "203.0.113.5 - \"GET / HTTP/1.1\" 200 7000\n").unwrap();
    assert_eq!(
        wait_for_rtt(&s, "203.0.0.0/16", "fra"),
        7.0,
        "{}",
        agent.logs()
    );
}

#[test]
fn a_server_that_is_down_does_not_stop_the_others() {
    let (s, _zones) = server();
    s.query("www.agent.test.", RecordType::A);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let agent = Agent::start(
        &s,
        "fra",
        &["--method", "tcp", "--probe-port", &port, "--server", &dead],
    );
    let fra = wait_for_rtt(&s, "127.0.0.0/16", "fra");
    assert!(fra.as_f64().is_some());
    assert!(
        agent.logs().contains("cannot fetch probe work"),
        "{}",
        agent.logs()
    );
}

/// A stand-in for the probe API of `mirrordns serve`: hands out `work` one
/// list per fetch (the last one again and again) and keeps every
/// measurement posted, so a test sees what the agent says, `address`
/// included (the real server checks that field and drops it).
struct FakeApi {
    url: String,
    posted: Arc<Mutex<Vec<Value>>>,
}

impl FakeApi {
    fn start(work: Vec<Value>) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let posted = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&posted);
        std::thread::spawn(move || {
            let mut fetches = 0;
            for stream in listener.incoming().map_while(Result::ok) {
                let _ = fake_api_answer(stream, &work, &mut fetches, &sink);
            }
        });
        FakeApi { url, posted }
    }

    /// The measurements posted for `block` by TCP probes so far.
    fn measured(&self, block: &str) -> Vec<Value> {
        self.posted
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["client"] == block && m["method"] == "tcp")
            .cloned()
            .collect()
    }

    /// The measurements posted for `block` by TCP probes, once `count` are in.
    fn wait_for(&self, block: &str, count: usize, agent: &Agent) -> Vec<Value> {
        let enough = || Some(self.measured(block)).filter(|found| found.len() >= count);
        eventually_some(Duration::from_secs(20), enough).unwrap_or_else(|| {
            let found = self.measured(block);
            panic!(
                "{} of {count} measurements for {block}: {found:?}\n{}",
                found.len(),
                agent.logs()
            )
        })
    }
}

/// Answers one HTTP/1.1 request, then closes the connection.
fn fake_api_answer(
    stream: TcpStream,
    work: &[Value],
    fetches: &mut usize,
    posted: &Mutex<Vec<Value>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let (request, body) = read_http_request(&stream)?;
    let answer = if request.starts_with("GET /v1/probes") {
        let list = work[(*fetches).min(work.len() - 1)].clone();
        *fetches += 1;
        list
    } else {
        let batch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let items = batch["measurements"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let accepted = items.len();
        posted.lock().unwrap().extend(items);
        json!({ "accepted": accepted })
    };
    write_json_response(&stream, "200 OK", &answer)
}

/// Loopback hosts on one TCP port: `silent` ones that answer nothing (black
/// holes) and `answering` ones that accept. Any other address of 127/8
/// refuses, which is a reply too, so tests only let the agent try these.
struct Hosts {
    port: u16,
    _holes: Vec<(socket2::Socket, Vec<TcpStream>, SocketAddr)>,
    _listeners: Vec<TcpListener>,
}

fn hosts(silent: &[&str], answering: &[&str]) -> Hosts {
    // The port is free at the first address; retry in the rare case that it
    // is taken at another.
    for _ in 0..10 {
        if let Some(h) = try_hosts(silent, answering) {
            return h;
        }
    }
    panic!("no common port for {silent:?} and {answering:?}");
}

fn try_hosts(silent: &[&str], answering: &[&str]) -> Option<Hosts> {
    let at = |host: &str, port: u16| SocketAddr::new(host.parse().unwrap(), port);
    let (first, rest) = silent.split_first()?;
    let hole = black_hole_at(at(first, 0)).ok()?;
    let port = hole.2.port();
    let mut holes = vec![hole];
    for host in rest {
        holes.push(black_hole_at(at(host, port)).ok()?);
    }
    let listeners = answering
        .iter()
        .map(|host| TcpListener::bind(at(host, port)).ok())
        .collect::<Option<Vec<_>>>()?;
    Some(Hosts {
        port,
        _holes: holes,
        _listeners: listeners,
    })
}

fn tcp_agent(api: &FakeApi, hosts: &Hosts, extra: &[&str]) -> Agent {
    let port = hosts.port.to_string();
    let mut args = vec!["--method", "tcp", "--probe-port", &port];
    args.extend_from_slice(extra);
    Agent::start_at(&api.url, "fra", &args)
}

#[test]
fn a_subnet_whose_first_host_is_silent_is_measured_at_a_resolver_and_remembered() {
    // .1, the first host, and the first resolver answer nothing; .53 does.
    let hosts = hosts(&["127.77.9.1", "127.77.9.2"], &["127.77.9.53"]);
    let with_resolvers = json!({"probes": [{
        "target": "127.77.9.0/24",
        "block": "127.77.9.0/24",
        "resolvers": ["127.77.9.2", "127.77.9.53"],
    }]});
    // Later rounds name no resolver: only the remembered address can answer.
    let without = json!({"probes": [{"target": "127.77.9.0/24", "block": "127.77.9.0/24"}]});
    let api = FakeApi::start(vec![with_resolvers, without]);
    let agent = tcp_agent(&api, &hosts, &[]);
    let measured = api.wait_for("127.77.9.0/24", 3, &agent);
    for m in &measured {
        assert!(
            m["rtt_ms"]
                .as_f64()
                .is_some_and(|ms| ms > 0.0 && ms < 400.0),
            "{measured:?}"
        );
        assert_eq!(m["address"], "127.77.9.53", "{measured:?}");
        assert_eq!(m.get("timeout"), None, "{measured:?}");
    }
}

#[test]
fn a_subnet_where_no_try_answers_is_a_timeout_without_an_address() {
    let hosts = hosts(&["127.77.10.1", "127.77.10.2"], &[]);
    let work = json!({"probes": [
        {"target": "127.77.10.0/24", "block": "127.77.10.0/24", "resolvers": ["127.77.10.2"]},
    ]});
    let api = FakeApi::start(vec![work]);
    let agent = tcp_agent(&api, &hosts, &[]);
    let measured = api.wait_for("127.77.10.0/24", 1, &agent);
    assert_eq!(measured[0]["timeout"], true, "{measured:?}");
    assert_eq!(measured[0].get("address"), None, "{measured:?}");
}

#[test]
fn a_client_from_the_access_log_stands_for_its_silent_sub_block() {
    let hosts = hosts(&["127.77.11.1"], &["127.77.11.53"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let work = json!({"probes": [{"target": "127.77.11.0/24", "block": "127.77.11.0/24"}]});
    let api = FakeApi::start(vec![work]);
    let log_arg = log.display().to_string();
    let agent = tcp_agent(&api, &hosts, &["--access-log", &log_arg]);
    // Before the client shows up the block is silent: the first host only.
    let first = api.wait_for("127.77.11.0/24", 1, &agent);
    assert_eq!(first[0]["timeout"], true, "{first:?}");
    // A request without an RTT still shows a host that exists.
    let line = "127.77.11.53 - \"GET / HTTP/1.1\" 200 -\n";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .unwrap();
    let at_the_client = || {
        api.measured("127.77.11.0/24")
            .into_iter()
            .find(|m| m["address"] == "127.77.11.53")
    };
    let Some(m) = eventually_some(Duration::from_secs(20), at_the_client) else {
        let measured = api.measured("127.77.11.0/24");
        panic!("{measured:?}\n{}", agent.logs());
    };
    assert!(m["rtt_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{m}");
}

#[test]
fn the_server_checks_the_measured_address_and_takes_a_good_one() {
    let (s, _zones) = server();
    s.query("www.agent.test.", RecordType::A);
    let item = |address: &str| json!({"measurements": [{"mirror": "fra", "client": "127.0.0.1", "rtt_ms": 5.0, "method": "tcp", "address": address}]});
    let (status, body) = s.post_json("/v1/measurements", &item("127.0.0.300"), &[]);
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("address"), "{body}");
    let (status, body) = s.post_json("/v1/measurements", &item("127.0.0.1"), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(wait_for_rtt(&s, "127.0.0.0/16", "fra"), 5.0);
}
