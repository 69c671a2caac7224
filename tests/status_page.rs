//! The status page (`GET /ui`) in a real browser: headless Chromium driven
//! over WebDriver (chromedriver on a loopback port, through fantoccini),
//! against the real server fed through DNS and the API.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs
//! them). With `MIRRORDNS_SCREENSHOTS=DIR` the tests also save the
//! screenshots of docs/ there.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

/// A chromedriver and the headless Chromium it drives, both ended on drop.
struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    driver_url: String,
    session: String,
    trap: Trap,
    _profile: tempfile::TempDir,
}

/// Where Chromium is told to send whatever it would not fetch from
/// loopback: every request that reaches it is recorded and refused, so a
/// request off this machine fails the test instead of leaving.
struct Trap {
    seen: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl Trap {
    fn start() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                sink.lock().unwrap().push(line.trim().to_string());
                let _ = (&stream).write_all(
                    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Trap { seen, port }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let driver = Command::new(program("chromedriver", "chromium-driver"))
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs");
        let driver_url = format!("http://127.0.0.1:{port}");
        assert!(
            eventually(Duration::from_secs(20), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "chromedriver did not listen on {driver_url}"
        );
        let profile = tempfile::tempdir().unwrap();
        let trap = Trap::start();
        let args = [
            "--headless".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-quic".to_string(),
            "--no-first-run".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--disable-dev-shm-usage".to_string(),
            // Fewer of the browser's own calls home (the trap gets the rest).
            "--disable-default-apps".to_string(),
            "--disable-domain-reliability".to_string(),
            "--disable-client-side-phishing-detection".to_string(),
            "--disable-search-engine-choice-screen".to_string(),
            "--no-default-browser-check".to_string(),
            "--no-pings".to_string(),
            "--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter,Translate,NetworkTimeServiceQuerying,SignInProfileCreation".to_string(),
            "--window-size=1400,1800".to_string(),
            format!("--proxy-server=http://127.0.0.1:{}", trap.port),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"args": args, "binary": program("chromium", "chromium")},
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&driver_url),
            )
            .expect("a Chromium session");
        let session = runtime
            .block_on(client.session_id())
            .unwrap()
            .expect("a session id");
        Browser {
            runtime,
            client: Some(client),
            driver,
            driver_url,
            session,
            trap,
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, url: &str) {
        self.runtime.block_on(self.client().goto(url)).unwrap();
    }

    /// Runs `script` (a function body) in the page and returns its value.
    fn js(&self, script: &str) -> Value {
        self.runtime
            .block_on(self.client().execute(script, Vec::new()))
            .unwrap()
    }

    /// The text of the first element matching `css`, if there is one.
    fn text(&self, css: &str) -> Option<String> {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : null;",
            json!(css)
        );
        self.js(&script).as_str().map(str::to_string)
    }

    fn click(&self, css: &str) {
        let element = self
            .runtime
            .block_on(self.client().find(Locator::Css(css)))
            .unwrap();
        self.runtime.block_on(element.click()).unwrap();
    }

    /// Types `keys` into the element matching `css`, as a keyboard would.
    fn type_into(&self, css: &str, keys: &str) {
        let element = self
            .runtime
            .block_on(self.client().find(Locator::Css(css)))
            .unwrap();
        self.runtime.block_on(element.send_keys(keys)).unwrap();
    }

    /// Waits for the page's next successful poll of the API: it stamps the
    /// body's `data-updated` after each.
    fn wait_for_poll(&self) {
        let stamp = || self.js("return document.body.dataset.updated || null;");
        let before = stamp();
        let polled = eventually(Duration::from_secs(10), || stamp() != before);
        assert!(polled, "the page did not poll the API again");
    }

    /// Waits until `text(css)` satisfies `check`; panics with what it last saw.
    fn wait_text(&self, css: &str, timeout: Duration, check: impl Fn(&str) -> bool) -> String {
        let mut last = None;
        let held = eventually(timeout, || {
            last = self.text(css);
            last.as_deref().is_some_and(&check)
        });
        assert!(held, "{css}: last saw {last:?}");
        last.unwrap_or_default()
    }

    /// The browser's log of `kind` ("browser": the console; "performance":
    /// the DevTools events, requests among them), through chromedriver.
    fn log(&self, kind: &str) -> Vec<Value> {
        let url = format!("{}/session/{}/se/log", self.driver_url, self.session);
        let body: Value = reqwest::blocking::Client::new()
            .post(url)
            .json(&json!({ "type": kind }))
            .send()
            .unwrap()
            .json()
            .unwrap();
        body["value"].as_array().cloned().unwrap_or_default()
    }

    /// Console messages of level SEVERE (errors, failed loads) so far.
    fn console_errors(&self) -> Vec<String> {
        self.log("browser")
            .iter()
            .filter(|m| m["level"] == "SEVERE")
            .map(|m| m["message"].to_string())
            .collect()
    }

    /// Every URL the page requested so far.
    fn requested_urls(&self) -> Vec<String> {
        self.log("performance")
            .iter()
            .filter_map(|entry| {
                let message: Value = serde_json::from_str(entry["message"].as_str()?).ok()?;
                (message["message"]["method"] == "Network.requestWillBeSent").then(|| {
                    message["message"]["params"]["request"]["url"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
            })
            .collect()
    }

    fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("MIRRORDNS_SCREENSHOTS") else {
            return;
        };
        let png = self.runtime.block_on(self.client().screenshot()).unwrap();
        std::fs::write(PathBuf::from(dir).join(name), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn only_loopback(urls: &[String], api: &str) {
    assert!(!urls.is_empty(), "the performance log shows requests");
    for url in urls {
        // chrome:, about: and data: URLs are the browser's own, never fetched.
        let own = ["chrome:", "about:", "data:"]
            .iter()
            .any(|s| url.starts_with(s));
        assert!(
            url.starts_with(&format!("http://{api}/")) || own,
            "a request off the API's loopback origin: {url}"
        );
    }
}

#[test]
fn the_page_shows_what_was_learned_follows_a_switch_and_drains_with_its_buttons() {
    let s = Server::start(&fixture("steering"));
    // A client network asks through DNS, then agents measure it: nyc is nearest.
    let r = s
        .udp(&ecs_query(
            "www.steer.test.",
            RecordType::A,
            "198.51.100.0/24",
        ))
        .unwrap();
    assert_eq!(addresses(&r).len(), 1);
    s.udp(&ecs_query(
        "www.steer.test.",
        RecordType::A,
        "203.0.113.0/24",
    ))
    .unwrap();
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 48.0},
            {"mirror": "nyc", "client": "198.51.100.0/24", "rtt_ms": 11.5, "method": "tcp"},
            {"mirror": "sin", "client": "198.51.100.0/24", "timeout": true},
        ]),
    );
    let browser = Browser::start();
    let api = s.api.to_string();
    browser.goto(&s.url("/ui"));
    browser.js("window.loadedOnce = true; return null;");

    // Services, mirrors and the clusters the server learned.
    let services = browser.wait_text("#services", Duration::from_secs(10), |t| {
        t.contains("www.steer.test.") && t.contains("api.steer.test.")
    });
    for mirror in ["fra", "nyc", "sin"] {
        assert!(services.contains(mirror), "{services}");
    }
    // The first service is api; www is chosen as an operator would.
    browser.wait_text("#clusters-caption", Duration::from_secs(5), |t| {
        t.contains("api.steer.test.")
    });
    browser.js(
        "const s = document.getElementById('f-service'); s.value = 'www.steer.test.'; \
         s.dispatchEvent(new Event('change')); return null;",
    );
    let row = r#"#clusters-body tr[data-prefix="198.51.0.0/16"]"#;
    let mirror_cell = format!("{row} td.mirror");
    browser.wait_text(&mirror_cell, Duration::from_secs(10), |t| t == "nyc");
    let state = browser.text(&format!("{row} td.state")).unwrap();
    assert_eq!(state, "complete", "state as text, not colour only");
    let learning = r#"#clusters-body tr[data-prefix="203.0.0.0/16"] td.state"#;
    assert_eq!(
        browser.text(learning).as_deref(),
        Some("learning"),
        "{:?}",
        browser.text("#clusters-body")
    );
    let rtts = browser.text(row).unwrap();
    assert!(
        rtts.contains("48 ms") && rtts.contains("11.5 ms") && rtts.contains("timeout"),
        "{rtts}"
    );
    assert_eq!(
        browser.js("return document.querySelectorAll('#clusters thead th[scope=col]').length"),
        json!(10),
        "prefix, state, mirror, answer RTT, three mirrors' RTTs, queries, sub-blocks, exploring"
    );
    browser.wait_text("#chart-decided", Duration::from_secs(5), |t| {
        t.contains("since start")
    });

    // A switch: fra becomes much faster; the page follows without a reload.
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 3.0},
            {"mirror": "nyc", "client": "198.51.100.0/24", "rtt_ms": 40.0},
        ]),
    );
    browser.wait_text(&mirror_cell, Duration::from_secs(10), |t| t == "fra");
    let switch = browser.wait_text(
        r#"#events-body tr[data-kind="switch"]"#,
        Duration::from_secs(10),
        |t| t.contains("198.51.0.0/16"),
    );
    assert!(switch.contains("nyc (40 ms) → fra (3 ms)"), "{switch}");
    assert_eq!(
        browser.js("return window.loadedOnce === true"),
        json!(true),
        "no reload"
    );

    // Nothing went wrong and nothing left loopback so far.
    assert_eq!(browser.console_errors(), Vec::<String>::new());
    only_loopback(&browser.requested_urls(), &api);
    browser.screenshot("status-page.png");

    // Drain fra from the keyboard: the page asks for the token once.
    let drain = r#".service[data-service="www.steer.test."] button[data-mirror="fra"]"#;
    browser.js(&format!(
        "document.querySelector({}).focus(); return null;",
        json!(drain)
    ));
    browser.type_into(drain, "\u{E007}");
    browser.wait_text("#token-dialog", Duration::from_secs(5), |_| true);
    assert_eq!(
        browser.js("return document.getElementById('token-dialog').open"),
        json!(true)
    );
    browser.type_into("#token-input", &format!("{TOKEN}\u{E007}"));
    let drained_cell =
        r#".service[data-service="www.steer.test."] tr[data-mirror="fra"] td.drained"#;
    browser.wait_text(drained_cell, Duration::from_secs(10), |t| t == "drained");
    assert_eq!(
        s.get("/v1/services").1["mirror_state"]["fra"]["drained"],
        true
    );
    // Its clusters go to the next best at once.
    browser.wait_text(&mirror_cell, Duration::from_secs(10), |t| t == "nyc");
    browser.wait_text(
        r#"#events-body tr[data-kind="drain"]"#,
        Duration::from_secs(10),
        |t| t.contains("fra drained"),
    );
    // Undrain with the mouse: no second token prompt.
    browser.click(drain);
    browser.wait_text(drained_cell, Duration::from_secs(10), |t| t == "in service");
    assert_eq!(
        browser.js("return document.getElementById('token-dialog').open"),
        json!(false)
    );
    assert_eq!(
        s.get("/v1/services").1["mirror_state"]["fra"]["drained"],
        false
    );
    browser.wait_text(&mirror_cell, Duration::from_secs(10), |t| t == "fra");

    // A wrong token: the API's error is shown and nothing changes.
    browser.js("sessionStorage.clear(); return null;");
    browser.click(drain);
    browser.type_into("#token-input", "not-the-token\u{E007}");
    let error = browser.wait_text("#error", Duration::from_secs(10), |t| !t.is_empty());
    assert!(error.contains("missing or wrong bearer token"), "{error}");
    assert_eq!(
        s.get("/v1/services").1["mirror_state"]["fra"]["drained"],
        false
    );
    browser.wait_text(drained_cell, Duration::from_secs(5), |t| t == "in service");
    browser.wait_for_poll();
    assert!(
        browser
            .text("#error")
            .is_some_and(|t| t.contains("wrong bearer token")),
        "the error stays after the next poll"
    );
    eprintln!(
        "the browser's own requests, refused by the trap: {:?}",
        browser.trap.requests()
    );
}

#[test]
fn five_thousand_clusters_render_sort_and_filter_within_two_seconds() {
    // Clusters start at /24, so that every measured /24 is one.
    let flat = zone("flat.test.").with("clusters: {initial_v4: 24}");
    let zones = zone_dir(&[("flat.yaml", &flat.to_string())]);
    let s = Server::start(zones.path());
    for batch in 0..10u32 {
        let items: Vec<Value> = (batch * 500..(batch + 1) * 500)
            .flat_map(|i| {
                let client = format!("10.{}.{}.0/24", i / 256, i % 256);
                let fra = 5.0 + f64::from(i % 97);
                [
                    json!({"mirror": "fra", "client": client, "rtt_ms": fra}),
                    json!({"mirror": "nyc", "client": client, "rtt_ms": 50.0}),
                ]
            })
            .collect();
        measure(&s, Value::Array(items));
    }
    for _ in 0..5 {
        s.udp(&ecs_query("www.flat.test.", RecordType::A, "10.19.7.0/24"))
            .unwrap();
    }
    let browser = Browser::start();
    let started = Instant::now();
    browser.goto(&s.url("/ui"));
    browser.wait_text("#range", Duration::from_secs(5), |t| t.contains("of 5,000"));
    let rendered = started.elapsed();
    assert_eq!(
        browser.js("return document.querySelectorAll('#clusters-body tr').length"),
        json!(100)
    );

    let started = Instant::now();
    browser.type_into("#f-prefix", "10.19.7");
    let range = browser.wait_text("#range", Duration::from_secs(5), |t| t.ends_with("of 1"));
    let filtered = started.elapsed();
    assert_eq!(range, "Clusters 1–1 of 1");
    assert!(
        browser
            .text("#clusters-body tr[data-prefix=\"10.19.7.0/24\"]")
            .is_some()
    );

    browser.js("document.getElementById('f-prefix').value = ''; document.getElementById('filters').requestSubmit(); return null;");
    browser.wait_text("#range", Duration::from_secs(5), |t| t.contains("of 5,000"));
    let started = Instant::now();
    browser.click("button[data-sort=queries]");
    browser.wait_text("#clusters-body tr th.prefix", Duration::from_secs(5), |t| {
        t == "10.19.7.0/24"
    });
    let sorted = started.elapsed();
    assert_eq!(
        browser.js("return document.querySelector('th[aria-sort=descending]').textContent"),
        json!("Queries")
    );
    browser.click("#next");
    browser.wait_text("#range", Duration::from_secs(5), |t| {
        t.starts_with("Clusters 101–200")
    });
    browser.js("window.scrollTo(0, 0); return null;");
    browser.screenshot("status-page-5000.png");

    eprintln!(
        "5,000 clusters: shown {rendered:?} after the page was opened, filtered in {filtered:?}, sorted in {sorted:?}"
    );
    // The page polls every 2 s; a filter or sort is fetched at once.
    for (what, took) in [("filter", filtered), ("sort", sorted)] {
        assert!(took < Duration::from_secs(2), "{what} took {took:?}");
    }
    assert!(
        rendered < Duration::from_secs(4),
        "first render took {rendered:?}"
    );
    assert_eq!(browser.console_errors(), Vec::<String>::new());
    only_loopback(&browser.requested_urls(), &s.api.to_string());
    eprintln!(
        "the browser's own requests, refused by the trap: {:?}",
        browser.trap.requests()
    );
}

/// The screenshots of docs/ and the README: a few minutes' worth of a
/// small deployment (three mirrors, one with a capacity, clusters that
/// switch, split and explore, a drain), played in 40 s.
///
/// `MIRRORDNS_SCREENSHOTS=docs cargo test --test status_page -- --ignored`
#[test]
#[ignore = "takes 40 s; run it to renew the screenshots of docs/"]
fn screenshots_for_the_docs() {
    const DEMO: &str = "origin: example.test.
soa: {mname: ns1, rname: hostmaster, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60}
records:
  '': {type: NS, value: ns1}
  ns1: {type: A, value: 127.0.0.1}
services:
  www:
    mirrors:
      - {name: fra, ipv4: [192.0.2.1], capacity_qps: 40}
      - {name: nyc, ipv4: [192.0.2.2]}
      - {name: sin, ipv4: [192.0.2.3]}
  downloads:
    mirrors:
      - {name: fra, ipv4: [192.0.2.11]}
      - {name: sin, ipv4: [192.0.2.13]}
";
    let zones = zone_dir(&[("example.test.yaml", DEMO)]);
    let s = Server::start_with(zones.path(), &["--load-interval-ms", "2000"], Some(TOKEN));
    // 24 client networks: 18 measured (a /16 each, some with a /24 that
    // prefers another mirror), 6 only asking.
    let rtt = |net: u32, mirror: usize| -> f64 {
        let base = [
            [12.0, 85.0, 190.0],
            [95.0, 9.0, 170.0],
            [160.0, 180.0, 14.0],
        ][net as usize % 3];
        base[mirror] + f64::from(net % 7) * 3.0
    };
    let mirrors = ["fra", "nyc", "sin"];
    let measure_net = |net: u32, shift: f64| {
        let mut items = Vec::new();
        for block in 0..3u32 {
            let client = format!("100.{}.{}.0/24", 64 + net, block * 40);
            for (m, name) in mirrors.iter().enumerate() {
                let odd = block == 2 && net % 4 == 1 && m == 2;
                let ms = if odd { 6.0 } else { rtt(net, m) } + if m == 0 { shift } else { 0.0 };
                items
                    .push(json!({"mirror": name, "client": client, "rtt_ms": ms, "method": "tcp"}));
            }
        }
        measure(&s, Value::Array(items));
    };
    for net in 0..18 {
        measure_net(net, 0.0);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (dns, stop) = (s.dns, Arc::clone(&stop));
        std::thread::spawn(move || {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buffer = [0u8; 1500];
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let net = n % 24;
                let name = if n.is_multiple_of(5) {
                    "downloads.example.test."
                } else {
                    "www.example.test."
                };
                let subnet = format!("100.{}.{}.0/24", 64 + net, (n / 24 % 3) * 40);
                let query = ecs_query(name, RecordType::A, &subnet).to_vec().unwrap();
                socket.send_to(&query, dns).unwrap();
                let _ = socket.recv_from(&mut buffer);
                n += 1;
                std::thread::sleep(Duration::from_millis(8));
            }
        })
    };
    let browser = Browser::start();
    browser
        .runtime
        .block_on(browser.client().set_window_size(1400, 2300))
        .unwrap();
    browser.goto(&s.url("/ui"));
    let select = "const s = document.getElementById('f-service'); s.value = 'www.example.test.'; \
                  s.dispatchEvent(new Event('change')); return null;";
    browser.wait_text("#f-service", Duration::from_secs(5), |t| t.contains("www"));
    browser.js(select);
    for second in 0..40 {
        std::thread::sleep(Duration::from_secs(1));
        match second {
            // fra gets slower for three networks: they switch.
            8 => (0..9).step_by(3).for_each(|net| measure_net(net, 120.0)),
            14 => assert_eq!(s.post("/v1/mirrors/sin/drain", Some(TOKEN)).0, 200),
            22 => assert_eq!(s.post("/v1/mirrors/sin/undrain", Some(TOKEN)).0, 200),
            26 => assert_eq!(s.post("/v1/reload", Some(TOKEN)).0, 200),
            _ => {}
        }
    }
    browser.js("window.scrollTo(0, 0); document.activeElement.blur(); return null;");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(browser.console_errors(), Vec::<String>::new());
    browser.screenshot("status-page.png");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.join().unwrap();
}
