//! Times `GET /v1/services/{fqdn}/clusters` against a running server: the
//! pages the status page asks for (filtered, sorted, deep offsets) and the
//! whole table without parameters, each several times; prints the median,
//! the fastest and the slowest, and the size of the answer.
//!
//! ```sh
//! cargo build --release
//! target/release/mirrordns serve --zones examples/zones/page.test.yaml --state-dir /tmp/page-state \
//!   --listen 127.0.0.1:5456 --api 127.0.0.1:8056 &
//! cargo run --release --example ingest_load -- http://127.0.0.1:8056 "$(cat /tmp/page-state/api.token)" 1000000 4
//! cargo run --release --example clusters_page -- http://127.0.0.1:8056 www.page.test 20
//! ```
//! Arguments: API URL, service, repetitions per request.

use std::time::{Duration, Instant};

/// The requests timed: what the status page sends, and the whole table.
const PAGES: &[(&str, &str)] = &[
    ("first page, prefix order", "offset=0&limit=100&sort=prefix"),
    ("busiest first", "offset=0&limit=100&sort=-queries"),
    ("slowest answer first", "offset=0&limit=100&sort=-rtt"),
    ("by mirror, page 500", "offset=50000&limit=100&sort=mirror"),
    ("last page", "offset=124900&limit=100&sort=prefix"),
    ("prefix filter /16", "offset=0&limit=100&prefix=16.7.0.0/16"),
    (
        "prefix filter, an address",
        "offset=0&limit=100&prefix=16.7.8.9",
    ),
    (
        "mirror filter",
        "offset=0&limit=100&mirror=m3&sort=-queries",
    ),
    ("learning only (none)", "offset=0&limit=100&state=learning"),
    ("1,000 rows", "offset=0&limit=1000&sort=-rtt"),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, service, repeat] = &args[..] else {
        eprintln!("usage: clusters_page API_URL SERVICE REPETITIONS");
        std::process::exit(2);
    };
    let repeat: usize = repeat.parse().expect("REPETITIONS is a number");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("a client");
    let base = format!("{url}/v1/services/{service}/clusters");
    println!("| request | total | rows | bytes | median | fastest | slowest |");
    println!("|---|---|---|---|---|---|---|");
    for (what, query) in PAGES {
        time(&client, what, &format!("{base}?{query}"), repeat);
    }
    time(&client, "whole table, no parameters", &base, repeat.min(3));
}

fn time(client: &reqwest::blocking::Client, what: &str, url: &str, repeat: usize) {
    let mut took = Vec::new();
    let mut last = (String::new(), 0, 0);
    for _ in 0..repeat.max(1) {
        let started = Instant::now();
        let response = client.get(url).send().expect("server reachable");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        let body = response.bytes().expect("a body");
        took.push(started.elapsed());
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let rows = json["clusters"].as_array().map_or(0, Vec::len);
        let total = json["total"]
            .as_u64()
            .map_or("-".to_string(), |t| t.to_string());
        last = (total, rows, body.len());
    }
    took.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| {what} | {} | {} | {} | {} | {} | {} |",
        last.0,
        last.1,
        last.2,
        ms(took[took.len() / 2]),
        ms(took[0]),
        ms(took[took.len() - 1])
    );
}
