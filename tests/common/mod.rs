//! Test harness: runs the real `mirrordns` binary on ephemeral loopback ports
//! and talks to it as a user would, over DNS (UDP and TCP) and HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};

pub const TOKEN: &str = "test-token-0123456789";

/// A running `mirrordns serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub dns: SocketAddr,
    pub api: SocketAddr,
    pub state_dir: PathBuf,
    _temp_state: Option<tempfile::TempDir>,
    logs: Arc<Mutex<Vec<String>>>,
}

/// The zone fixtures shipped with the tests.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

impl Server {
    /// Serves the zones at `zones` (a file or directory) with the API token
    /// given through the environment.
    pub fn start(zones: &Path) -> Server {
        Server::start_with(zones, &[], Some(TOKEN))
    }

    pub fn start_with(zones: &Path, extra: &[&str], token: Option<&str>) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut server = Server::start_in(zones, temp.path(), extra, token);
        server._temp_state = Some(temp);
        server
    }

    /// Serves with the learned state kept in `state_dir`, which outlives the server.
    pub fn start_in(zones: &Path, state_dir: &Path, extra: &[&str], token: Option<&str>) -> Server {
        let mut command = serve_command(zones, state_dir, extra);
        if let Some(t) = token {
            command.env("MIRRORDNS_API_TOKEN", t);
        }
        let mut child = command.spawn().expect("spawn mirrordns");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut server = Server {
            child,
            dns: "0.0.0.0:0".parse().unwrap(),
            api: "0.0.0.0:0".parse().unwrap(),
            state_dir: state_dir.to_path_buf(),
            _temp_state: None,
            logs,
        };
        server.dns = server.wait_for_address("dns listening on ");
        server.api = server.wait_for_address("api listening on ");
        server
    }

    /// Waits for a log line containing `marker` ("dns listening on ", or
    /// "dns listening on [::1]" for one listener of several) and returns
    /// the first address in it from the marker on.
    pub fn wait_for_address(&mut self, marker: &str) -> SocketAddr {
        let found = self.wait_for_log(marker, Duration::from_secs(20));
        found[found.find(marker).unwrap()..]
            .split_whitespace()
            .find_map(|word| word.parse().ok())
            .expect("address in log")
    }

    /// Waits until a log line contains `text` and returns it.
    pub fn wait_for_log(&mut self, text: &str, timeout: Duration) -> String {
        let found = eventually_some(timeout, || {
            if let Some(line) = self.logs.lock().unwrap().iter().find(|l| l.contains(text)) {
                return Some(line.clone());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "server exited ({status}) before logging {text:?}:\n{}",
                    self.logs()
                );
            }
            None
        });
        found.unwrap_or_else(|| panic!("no log line with {text:?}:\n{}", self.logs()))
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        self.signal("-TERM");
        let stopped = eventually(Duration::from_secs(30), || !self.is_running());
        assert!(stopped, "server did not stop on SIGTERM:\n{}", self.logs());
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn query(&self, name: &str, rtype: RecordType) -> Message {
        self.udp(&query(name, rtype)).expect("an answer")
    }

    /// Sends `message` over UDP; `None` when no answer came within a second.
    pub fn udp(&self, message: &Message) -> Option<Message> {
        let bytes = self.udp_raw(&message.to_vec().unwrap())?;
        Some(Message::from_vec(&bytes).expect("a well-formed response"))
    }

    pub fn udp_raw(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        socket.send_to(bytes, self.dns).unwrap();
        let mut buffer = vec![0u8; 65535];
        let (len, _) = socket.recv_from(&mut buffer).ok()?;
        buffer.truncate(len);
        Some(buffer)
    }

    pub fn tcp(&self, message: &Message) -> Message {
        let mut stream = TcpStream::connect(self.dns).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let bytes = message.to_vec().unwrap();
        stream
            .write_all(&(bytes.len() as u16).to_be_bytes())
            .unwrap();
        stream.write_all(&bytes).unwrap();
        read_tcp_message(&mut stream)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.api, path)
    }

    /// POSTs to the API with the test token; returns status and body.
    pub fn post(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let client = reqwest::blocking::Client::new();
        let mut request = client.post(self.url(path));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().expect("api request");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(serde_json::Value::Null))
    }

    /// POSTs `body` as JSON with the test token and any extra headers.
    pub fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut request = reqwest::blocking::Client::new()
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().expect("api request");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(serde_json::Value::Null))
    }

    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = reqwest::blocking::get(self.url(path)).expect("api request");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(serde_json::Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mirrordns serve` on ephemeral loopback ports with `state_dir`.
pub fn serve_command(zones: &Path, state_dir: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mirrordns"));
    command
        .arg("serve")
        .arg("--zones")
        .arg(zones)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(state_dir)
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("MIRRORDNS_API_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

pub fn read_tcp_message(stream: &mut TcpStream) -> Message {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    Message::from_vec(&body).unwrap()
}

/// A plain query, no EDNS, recursion not desired (as `dig +norec`).
pub fn query(name: &str, rtype: RecordType) -> Message {
    let mut message = Message::new(0x1234, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    message
}

/// A query with EDNS and the given UDP payload size.
pub fn edns_query(name: &str, rtype: RecordType, payload: u16) -> Message {
    let mut message = query(name, rtype);
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    message.set_edns(edns);
    message
}

/// A query carrying an ECS option for `subnet` (e.g. "10.2.3.0/24").
pub fn ecs_query(name: &str, rtype: RecordType, subnet: &str) -> Message {
    let mut message = edns_query(name, rtype, 1232);
    let ecs: ClientSubnet = subnet.parse().unwrap();
    message
        .edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Subnet(ecs));
    message
}

/// The ECS option echoed in a response: (source prefix, scope prefix).
pub fn ecs_echo(response: &Message) -> Option<(u8, u8)> {
    let edns = response.edns.as_ref()?;
    match edns.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.source_prefix(), s.scope_prefix())),
        _ => None,
    }
}

/// The answer section as presentation text, e.g. `["www.example.test. 30 A 192.0.2.1"]`.
pub fn answers(response: &Message) -> Vec<String> {
    response.answers.iter().map(record_text).collect()
}

pub fn authorities(response: &Message) -> Vec<String> {
    response.authorities.iter().map(record_text).collect()
}

pub fn additionals(response: &Message) -> Vec<String> {
    response.additionals.iter().map(record_text).collect()
}

fn record_text(r: &hickory_proto::rr::Record) -> String {
    format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data)
}

/// The A or AAAA addresses of the answer section.
pub fn addresses(response: &Message) -> Vec<String> {
    response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            RData::AAAA(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

/// A TCP port nobody listens on now (loopback), for a server to take or a
/// probe to be refused by.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A zone for tests at `origin` (such as "agent.test."): SOA, NS, `ns1` and
/// one service, `www`, served by `fra` (192.0.2.1) and `nyc` (192.0.2.2).
/// Its methods change the service; `to_string()` gives the YAML.
pub fn zone(origin: &str) -> TestZone {
    TestZone {
        origin: origin.to_string(),
        mirrors: vec![
            "{name: fra, ipv4: [192.0.2.1]}".to_string(),
            "{name: nyc, ipv4: [192.0.2.2]}".to_string(),
        ],
        settings: Vec::new(),
    }
}

pub struct TestZone {
    origin: String,
    mirrors: Vec<String>,
    settings: Vec<String>,
}

impl TestZone {
    /// `www` served by these mirrors instead, each a YAML flow mapping such
    /// as `{name: sin, ipv4: [192.0.2.3]}`.
    pub fn mirrors(mut self, mirrors: &[&str]) -> TestZone {
        self.mirrors = mirrors.iter().map(|m| m.to_string()).collect();
        self
    }

    /// One more setting of `www`, a line of YAML such as `ttl: 30`.
    pub fn with(mut self, setting: &str) -> TestZone {
        self.settings.push(setting.to_string());
        self
    }
}

impl std::fmt::Display for TestZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "origin: {}", self.origin)?;
        writeln!(
            f,
            "soa: {{mname: ns1, rname: h, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1}}"
        )?;
        writeln!(f, "records:")?;
        writeln!(f, "  '': {{type: NS, value: ns1}}")?;
        writeln!(f, "  ns1: {{type: A, value: 127.0.0.1}}")?;
        writeln!(f, "services:")?;
        writeln!(f, "  www:")?;
        for setting in &self.settings {
            writeln!(f, "    {setting}")?;
        }
        writeln!(f, "    mirrors:")?;
        for mirror in &self.mirrors {
            writeln!(f, "      - {mirror}")?;
        }
        Ok(())
    }
}

/// Writes `text` as a zone file in a fresh directory and returns both.
pub fn zone_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// Posts `items` as one measurement batch; the server must take it.
pub fn measure(s: &Server, items: serde_json::Value) {
    let batch = serde_json::json!({ "measurements": items });
    let (status, body) = s.post_json("/v1/measurements", &batch, &[]);
    assert_eq!(status, 200, "{body}");
}

/// Samples of `/metrics`, parsed as Prometheus text: (name, labels, value).
pub fn metrics(s: &Server) -> Vec<(String, std::collections::BTreeMap<String, String>, f64)> {
    let text = reqwest::blocking::get(s.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    assert!(!scrape.samples.is_empty());
    scrape
        .samples
        .into_iter()
        .map(|sample| {
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            let labels = sample
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (sample.metric, labels, value)
        })
        .collect()
}

pub fn metric(
    samples: &[(String, std::collections::BTreeMap<String, String>, f64)],
    name: &str,
    want: &[(&str, &str)],
) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .sum()
}

/// Polls `condition` until it holds or `timeout` passes; whether it held.
pub fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    eventually_some(timeout, || condition().then_some(())).is_some()
}

/// Polls `probe` until it gives a value or `timeout` passes; the value, or
/// `None` when time ran out. Polls often at first, for what is nearly there,
/// then every 100 ms, so that a long wait does not load the server it
/// watches (a poll is often a query).
pub fn eventually_some<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// `knotd` serving one master file on a loopback port; killed when dropped.
pub struct Knot {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of `program`, which Debian's `package` installs; a test that
/// needs a missing program fails here, naming the package, rather than
/// passing without having run. Daemons live in `sbin`, which a user's PATH
/// may lack, and Debian keeps chromedriver beside Chromium.
pub fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/lib/chromium"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is missing: install Debian's {package} (scripts/test does)")
        })
}

/// Knot DNS's server, from Debian's `knot`.
pub fn knotd() -> PathBuf {
    program("knotd", "knot")
}

impl Knot {
    /// Starts `knotd` serving `zone_file` as `origin`, with `server_extra`
    /// (lines such as `    nsid: x\n`) in its `server:` section; returns
    /// once it answers the origin's SOA.
    pub fn start(zone_file: &Path, origin: &str, server_extra: &str) -> Knot {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::copy(zone_file, dir.path().join("zone")).unwrap();
        let config = format!(
            "server:\n    listen: 127.0.0.1@{port}\n    rundir: {dir}\n{server_extra}\
             database:\n    storage: {dir}\n\
             template:\n  - id: default\n    storage: {dir}\n    zonefile-sync: -1\n    journal-content: none\n\
             zone:\n  - domain: {origin}\n    file: zone\n\
             log:\n  - target: stderr\n    any: error\n",
            dir = dir.path().display()
        );
        let conf = dir.path().join("knot.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(knotd())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start knotd");
        let knot = Knot {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            _dir: dir,
        };
        let probe = query(origin, RecordType::SOA).to_vec().unwrap();
        let answered = eventually(Duration::from_secs(20), || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            socket.send_to(&probe, knot.addr).unwrap();
            socket.recv_from(&mut [0u8; 512]).is_ok()
        });
        assert!(answered, "knotd did not answer");
        knot
    }
}

/// One HTTP/1.1 request read off `stream`, as a fake API server in a test
/// takes it: the request line and the body (by its Content-Length).
pub fn read_http_request(stream: &TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((request, body))
}

/// Answers a fake API's request with `status` ("200 OK") and a JSON body,
/// then the connection closes.
pub fn write_json_response(
    mut stream: &TcpStream,
    status: &str,
    body: &serde_json::Value,
) -> std::io::Result<()> {
    let body = body.to_string();
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// BIND's `delv` asking the server at `dns` for `qname qtype`, with
/// `anchor` (a DNSKEY's RDATA: flags, protocol, algorithm, key) as the
/// trust anchor of example.test., written into `dir`: stdout and stderr.
pub fn delv(dir: &Path, dns: SocketAddr, anchor: &str, qname: &str, qtype: &str) -> String {
    let anchors = dir.join("anchors.conf");
    let fields: Vec<&str> = anchor.splitn(4, ' ').collect();
    std::fs::write(
        &anchors,
        format!(
            "trust-anchors {{ example.test. static-key {} {} {} \"{}\"; }};\n",
            fields[0], fields[1], fields[2], fields[3]
        ),
    )
    .unwrap();
    let output = Command::new(program("delv", "bind9-dnsutils"))
        .arg(format!("@{}", dns.ip()))
        .args(["-p", &dns.port().to_string(), "-a"])
        .arg(&anchors)
        .args(["+root=example.test.", qname, qtype])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
