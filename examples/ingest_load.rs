//! Durable ingest through the API: posts batches of 1,000 measurements from
//! several threads to a running server and reports measurements per second
//! acknowledged (each 200 means journaled, fsynced and applied).
//!
//! ```sh
//! mirrordns serve --zones examples/zones/load.test.yaml --state-dir /tmp/load-state &
//! cargo run --release --example ingest_load -- http://127.0.0.1:8053 "$(cat /tmp/load-state/api.token)" 1000000 4
//! ```
//! Arguments: API URL, token, sub-blocks to measure (each by 8 mirrors), threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

const MIRRORS: usize = 8;
const BATCH: usize = 1000;

/// Batch `n`: 125 sub-blocks measured by all eight mirrors.
fn batch(n: usize) -> Value {
    let per_batch = BATCH / MIRRORS;
    let items: Vec<Value> = (n * per_batch..(n + 1) * per_batch)
        .flat_map(|b| {
            let block = std::net::Ipv4Addr::from(0x1000_0000u32 + ((b as u32) << 8));
            (0..MIRRORS).map(move |m| json!({"mirror": format!("m{m}"), "client": format!("{block}/24"), "rtt_ms": 10 + (b / 256 * 7 + m * 13) % 200}))
        })
        .collect();
    json!({ "measurements": items })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, token, blocks, threads] = &args[..] else {
        eprintln!("usage: ingest_load API_URL TOKEN SUB_BLOCKS THREADS");
        std::process::exit(2);
    };
    let batches = blocks.parse::<usize>().expect("SUB_BLOCKS is a number") * MIRRORS / BATCH;
    let threads: usize = threads.parse().expect("THREADS is a number");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (url, token, next) = (url.clone(), token.clone(), Arc::clone(&next));
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= batches {
                        return;
                    }
                    let body = serde_json::to_vec(&batch(n)).expect("encodes");
                    let response = client
                        .post(format!("{url}/v1/measurements"))
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .expect("server reachable");
                    assert_eq!(
                        response.status().as_u16(),
                        200,
                        "{}",
                        response.text().unwrap_or_default()
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker finished");
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} measurements in {batches} batches of {BATCH} over {threads} threads: {seconds:.1} s, {:.0} measurements/s acknowledged",
        batches * BATCH,
        (batches * BATCH) as f64 / seconds
    );
}
