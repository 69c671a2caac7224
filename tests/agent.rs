//! `mirrordns agent` against a real server, on loopback only: probe work in,
//! measurements out, by TCP connect, ICMP echo and a passive access log.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const ZONE: &str = "origin: agent.test.
soa: {mname: ns1, rname: h, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1}
records:
  '': {type: NS, value: ns1}
  ns1: {type: A, value: 127.0.0.1}
services:
  www:
    mirrors:
      - {name: fra, ipv4: [192.0.2.1]}
      - {name: nyc, ipv4: [192.0.2.2]}
";

struct Agent {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(server: &Server, mirror: &str, extra: &[&str]) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
            .args([
                "agent",
                "--server",
                &format!("http://{}", server.api),
                "--mirror",
                mirror,
            ])
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
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server() -> (Server, tempfile::TempDir) {
    let zones = zone_dir(&[("agent.yaml", ZONE)]);
    (Server::start(zones.path()), zones)
}

/// The measured RTT of `mirror` for the cluster holding `prefix`, once there is one.
fn wait_for_rtt(s: &Server, prefix: &str, mirror: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = s.get("/v1/services/www.agent.test/clusters");
        let found = body["clusters"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["prefix"] == prefix))
            .map(|c| c["rtt_ms"][mirror].clone())
            .filter(|v| !v.is_null());
        if let Some(v) = found {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no {mirror} measurement for {prefix}: {body}\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(c);
        }
    }
    (socket, fillers, addr)
}

#[test]
fn a_silent_target_is_posted_as_a_timeout() {
    let (s, _zones) = server();
    s.query("www.agent.test.", RecordType::A);
    let (_socket, _fillers, addr) = black_hole();
    let port = addr.port().to_string();
    let agent = Agent::start(&s, "nyc", &["--method", "tcp", "--probe-port", &port]);
    let nyc = wait_for_rtt(&s, "127.0.0.0/16", "nyc");
    assert_eq!(nyc, "timeout", "{}", agent.logs());
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
    std::thread::sleep(Duration::from_millis(600));
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
