//! `GET /v1/events`, `GET /v1/quality` and the paged clusters endpoint, as
//! the status page and an operator's scripts use them (SPEC section 3).

mod common;

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

fn events(s: &Server, since: u64) -> Value {
    let (status, body) = s.get(&format!("/v1/events?since={since}"));
    assert_eq!(status, 200, "{body}");
    body
}

fn kinds(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn events_record_switches_splits_merges_drains_and_reloads_in_order() {
    let s = Server::start(&fixture("steering"));
    let start = events(&s, 0);
    assert_eq!(start["events"], json!([]));
    assert_eq!(
        (
            start["first"].clone(),
            start["last"].clone(),
            start["missed"].clone()
        ),
        (json!(0), json!(0), json!(0))
    );

    // A complete cluster, then a switch: nyc was nearest, now fra is.
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 48.0},
            {"mirror": "nyc", "client": "198.51.100.0/24", "rtt_ms": 11.5, "method": "tcp"},
            {"mirror": "sin", "client": "198.51.100.0/24", "timeout": true},
        ]),
    );
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 3.0},
            {"mirror": "nyc", "client": "198.51.100.0/24", "rtt_ms": 40.0},
        ]),
    );
    let body = events(&s, 0);
    let switch = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "switch" && e["service"] == "www.steer.test.")
        .cloned()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(switch["cluster"], "198.51.0.0/16");
    assert_eq!(switch["from"], json!({"mirror": "nyc", "rtt_ms": 40.0}));
    assert_eq!(switch["to"], json!({"mirror": "fra", "rtt_ms": 3.0}));
    assert!(
        switch["seq"].as_u64().unwrap() >= 1 && switch["time"].as_u64().unwrap() > 1_700_000_000
    );

    // A sub-block far from the rest of its /16 is split off, and merged back.
    let last = body["last"].as_u64().unwrap();
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.200.0/24", "rtt_ms": 90.0, "method": "tcp"},
            {"mirror": "nyc", "client": "198.51.200.0/24", "rtt_ms": 4.0},
            {"mirror": "sin", "client": "198.51.200.0/24", "rtt_ms": 80.0},
        ]),
    );
    let split = events(&s, last);
    let found = split["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "split" && e["service"] == "www.steer.test.")
        .cloned()
        .unwrap_or_else(|| panic!("{split}"));
    assert_eq!(found["region"], "198.51.0.0/16");
    assert!(
        found["added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("198.51.")),
        "{found}"
    );
    assert_eq!(
        found["added_total"],
        found["added"].as_array().unwrap().len()
    );
    let clusters = s.get("/v1/services/www.steer.test/clusters").1;
    assert!(
        clusters["clusters"].as_array().unwrap().len() >= 2,
        "{clusters}"
    );
    let last = split["last"].as_u64().unwrap();
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.200.0/24", "rtt_ms": 3.0},
            {"mirror": "nyc", "client": "198.51.200.0/24", "rtt_ms": 40.0},
            {"mirror": "sin", "client": "198.51.200.0/24", "rtt_ms": 80.0},
        ]),
    );
    let merge = events(&s, last);
    assert!(kinds(&merge).contains(&"merge".to_string()), "{merge}");

    // Drains and undrains, and a drain that changes nothing records nothing.
    let last = merge["last"].as_u64().unwrap();
    assert_eq!(s.post("/v1/mirrors/sin/drain", Some(TOKEN)).0, 200);
    assert_eq!(s.post("/v1/mirrors/sin/drain", Some(TOKEN)).0, 200);
    assert_eq!(s.post("/v1/mirrors/sin/undrain", Some(TOKEN)).0, 200);
    assert_eq!(s.post("/v1/reload", Some(TOKEN)).0, 200);
    let tail = events(&s, last);
    let items: Vec<Value> = tail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let map = e.as_object_mut().unwrap();
            map.remove("seq");
            map.remove("time");
            e
        })
        .collect();
    assert_eq!(
        items,
        [
            json!({"kind": "drain", "mirror": "sin", "drained": true}),
            json!({"kind": "drain", "mirror": "sin", "drained": false}),
            json!({"kind": "reload", "trigger": "api", "ok": true, "zones": 1, "services": 2}),
        ]
    );
    let seqs: Vec<u64> = tail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (last + 1..=last + 3).collect::<Vec<_>>(),
        "oldest first, numbered in order"
    );

    // limit, and the errors.
    let one = s.get(&format!("/v1/events?since={last}&limit=1")).1;
    assert_eq!(one["events"].as_array().unwrap().len(), 1);
    assert_eq!(one["events"][0]["seq"], last + 1);
    for bad in [
        "/v1/events?since=-1",
        "/v1/events?since=x",
        "/v1/events?limit=1.5",
        "/v1/events?from=3",
    ] {
        let (status, body) = s.get(bad);
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
}

#[test]
fn a_reader_behind_the_ring_is_told_how_many_events_it_missed() {
    let s = Server::start(&fixture("steering"));
    // Each drain and undrain is an event: 2,100 round trips, 4,200 events.
    let client = reqwest::blocking::Client::new();
    for i in 0..4200 {
        let path = if i % 2 == 0 { "drain" } else { "undrain" };
        let response = client
            .post(s.url(&format!("/v1/mirrors/fra/{path}")))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let body = events(&s, 10);
    assert_eq!(body["capacity"], 4096);
    assert_eq!(body["last"], 4200);
    assert_eq!(body["first"], 4200 - 4096 + 1);
    assert_eq!(body["missed"], 4200 - 4096 - 10);
    assert_eq!(body["events"].as_array().unwrap().len(), 4096);
    assert_eq!(body["events"][0]["seq"], 105);
    assert_eq!(events(&s, 4199)["missed"], 0);
}

#[test]
fn the_clusters_endpoint_pages_filters_and_sorts_and_keeps_its_shape_without_parameters() {
    let s = Server::start(&fixture("steering"));
    // Three complete /16 clusters (fra, nyc, sin nearest) and a learning one.
    for (i, best) in ["fra", "nyc", "sin"].iter().enumerate() {
        let client = format!("198.{}.0.0/24", 51 + i);
        let items: Vec<Value> = ["fra", "nyc", "sin"]
            .iter()
            .map(|m| json!({"mirror": m, "client": client, "rtt_ms": if m == best { 5.0 } else { 50.0 + i as f64 }, "method": "tcp"}))
            .collect();
        measure(&s, Value::Array(items));
    }
    for _ in 0..3 {
        s.udp(&ecs_query(
            "www.steer.test.",
            RecordType::A,
            "203.0.113.0/24",
        ))
        .unwrap();
    }
    s.udp(&ecs_query(
        "www.steer.test.",
        RecordType::A,
        "198.52.0.0/24",
    ))
    .unwrap();

    let (status, whole) = s.get("/v1/services/www.steer.test/clusters");
    assert_eq!(status, 200);
    let keys: Vec<&String> = whole.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["service", "clusters"],
        "today's shape without parameters"
    );
    assert_eq!(whole["clusters"].as_array().unwrap().len(), 4);

    let page = |query: &str| {
        let (status, body) = s.get(&format!("/v1/services/www.steer.test./clusters?{query}"));
        assert_eq!(status, 200, "{query}: {body}");
        let prefixes: Vec<String> = body["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["prefix"].as_str().unwrap().to_string())
            .collect();
        (body["total"].as_u64().unwrap(), prefixes, body)
    };
    let (total, prefixes, body) = page("offset=1&limit=2");
    assert_eq!(total, 4);
    assert_eq!(prefixes, ["198.52.0.0/16", "198.53.0.0/16"]);
    assert_eq!(
        (body["offset"].clone(), body["limit"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(
        body["clusters"][0], whole["clusters"][1],
        "the same rows as the whole table"
    );
    assert_eq!(page("state=learning").1, ["203.0.0.0/16"]);
    assert_eq!(page("state=complete").0, 3);
    assert_eq!(page("mirror=nyc").1, ["198.52.0.0/16"]);
    assert_eq!(page("mirror=none").1, ["203.0.0.0/16"]);
    assert_eq!(page("mirror=nowhere").0, 0);
    assert_eq!(page("prefix=198.53.7.7").1, ["198.53.0.0/16"]);
    assert_eq!(page("prefix=198.0.0.0/8").0, 3);
    assert_eq!(
        page("sort=-queries&limit=2").1,
        ["203.0.0.0/16", "198.52.0.0/16"]
    );
    assert_eq!(
        page("sort=mirror").1,
        [
            "198.51.0.0/16",
            "198.52.0.0/16",
            "198.53.0.0/16",
            "203.0.0.0/16"
        ]
    );
    assert_eq!(page("sort=-rtt&state=complete").1[0], "198.51.0.0/16");
    assert_eq!(page("exploring=true").0, 0);
    assert_eq!(page("offset=10").1, Vec::<String>::new());

    for bad in [
        "limit=ten",
        "limit=10001",
        "offset=-1",
        "state=done",
        "sort=fastest",
        "sort=-",
        "prefix=198.51",
        "exploring=yes",
        "mirror=",
        "colour=red",
        "limit=1&limit=2",
    ] {
        let (status, body) = s.get(&format!("/v1/services/www.steer.test/clusters?{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {body}"
        );
    }
    assert_eq!(s.get("/v1/services/nothing.test/clusters?limit=1").0, 404);
}

#[test]
fn quality_and_services_carry_what_the_status_page_draws() {
    let s = Server::start(&fixture("steering"));
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 48.0},
            {"mirror": "nyc", "client": "198.51.100.0/24", "rtt_ms": 11.5, "method": "tcp"},
            {"mirror": "sin", "client": "198.51.100.0/24", "timeout": true},
        ]),
    );
    for _ in 0..4 {
        s.udp(&ecs_query(
            "www.steer.test.",
            RecordType::A,
            "198.51.100.0/24",
        ))
        .unwrap();
    }
    let (status, body) = s.get("/v1/quality");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["interval_s"], 10);
    let www = &body["now"]["services"]["www.steer.test."];
    assert_eq!(www["complete"], 4, "{body}");
    assert_eq!(www["best"], 4);
    assert_eq!(www["answers"], json!({"nyc": 4}));
    assert!(
        body["history"].as_array().is_some_and(|h| !h.is_empty()),
        "sampled at start"
    );
    let later = s.get("/v1/quality?since=99999999999").1;
    assert_eq!(later["history"], json!([]));
    assert_eq!(s.get("/v1/quality?since=soon").0, 400);

    let services = s.get("/v1/services").1;
    let www = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "www.steer.test.")
        .unwrap()
        .clone();
    assert_eq!(www["answers"], json!({"fra": 0, "nyc": 4, "sin": 0}));
    assert_eq!(
        www["capacity_qps"],
        json!({"fra": null, "nyc": null, "sin": null})
    );
    assert_eq!(www["failed_open"], 0);
    assert_eq!(
        services["mirror_state"]["fra"],
        json!({"drained": false, "healthy": true})
    );
}

#[test]
fn the_status_page_and_its_files_are_served_from_the_binary() {
    let s = Server::start(&fixture("steering"));
    for (path, kind, needle) in [
        ("/ui", "text/html", "<table id=\"clusters\">"),
        ("/ui/app.js", "text/javascript", "/v1/events"),
        ("/ui/style.css", "text/css", "prefers-color-scheme"),
    ] {
        let response = reqwest::blocking::get(s.url(path)).unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
            "{policy}"
        );
        let text = response.text().unwrap();
        assert!(text.contains(needle), "{path}");
        assert!(
            !text.contains("https://") && !text.contains("http://"),
            "{path} names no other origin"
        );
    }
}

#[test]
fn events_record_load_moves_and_health_changes() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fra = format!(
        "{{name: fra, ipv4: [192.0.2.1], health: {{tcp_port: {port}, address: 127.0.0.1, interval_s: 1, timeout_ms: 300, rise: 1, fall: 1}}}}"
    );
    let zone = zone("moves.test.").mirrors(&[&fra, "{name: nyc, ipv4: [192.0.2.2]}"]);
    let zones = zone_dir(&[("moves.yaml", &zone.to_string())]);
    let s = Server::start_with(zones.path(), &["--load-interval-ms", "500"], Some(TOKEN));
    measure(
        &s,
        json!([
            {"mirror": "fra", "client": "10.2.1.0/24", "rtt_ms": 10.0},
            {"mirror": "nyc", "client": "10.2.1.0/24", "rtt_ms": 80.0},
        ]),
    );
    let find = |kind: &str| {
        let body = events(&s, 0);
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .cloned()
            .collect::<Vec<Value>>()
    };
    // Queries keep coming while fra's agent reports 150 %: the cluster moves.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (dns, stop) = (s.dns, std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(std::time::Duration::from_millis(200)))
                .unwrap();
            let query = ecs_query("www.moves.test.", RecordType::A, "10.2.1.0/24")
                .to_vec()
                .unwrap();
            let mut buffer = [0u8; 1500];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                socket.send_to(&query, dns).unwrap();
                let _ = socket.recv_from(&mut buffer);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let (status, _) = s.post_json("/v1/load", &json!({"mirror": "fra", "load": 1.5}), &[]);
    assert_eq!(status, 200);
    let wait = std::time::Duration::from_secs(15);
    assert!(
        eventually(wait, || !find("load_move").is_empty()),
        "{}",
        events(&s, 0)
    );
    let moved = &find("load_move")[0];
    assert_eq!(
        (
            moved["service"].clone(),
            moved["cluster"].clone(),
            moved["from"].clone(),
            moved["to"].clone(),
            moved["back"].clone()
        ),
        (
            json!("www.moves.test."),
            json!("10.2.0.0/16"),
            json!("fra"),
            json!("nyc"),
            json!(false)
        )
    );
    assert!(moved["qps"].as_f64().unwrap() > 0.0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.join().unwrap();

    // fra's health check fails, then passes again.
    drop(listener);
    assert!(
        eventually(wait, || !find("health").is_empty()),
        "{}",
        events(&s, 0)
    );
    assert_eq!(find("health")[0]["mirror"], "fra");
    assert_eq!(find("health")[0]["healthy"], false);
    let _back = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    assert!(
        eventually(wait, || find("health").len() >= 2),
        "{}",
        events(&s, 0)
    );
    assert_eq!(find("health")[1]["healthy"], true);
}
