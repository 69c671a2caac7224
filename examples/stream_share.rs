//! Sharing through NATS JetStream, measured (docs/MULTI-NODE.md has the
//! numbers and the whole command sequence):
//!
//! 1. Throughput: publishes BATCHES batches of 1,000 measurements to the
//!    stream, as agents do, and reports how soon each instance has applied
//!    all of them (its `mirrordns_stream_position`), as measurements/s.
//! 2. Latency: ROUNDS times, publishes a batch that makes a new client
//!    network prefer another mirror, and times until every instance answers
//!    it with that mirror over DNS; reports p50 and p99.
//!
//! ```sh
//! cargo run --release --example stream_share -- nats://127.0.0.1:4222 \
//!     http://127.0.0.1:8061=127.0.0.1:5361,http://127.0.0.1:8062=127.0.0.1:5362 200 200
//! ```
//! Instances serve `examples/zones/load.test.yaml` with `--nats` on an empty stream.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::{Value, json};

const MIRRORS: usize = 8;
const BLOCKS_PER_BATCH: usize = 125;

struct Instance {
    api: String,
    dns: SocketAddr,
}

fn measurement(mirror: usize, block: Ipv4Addr, rtt_ms: usize) -> Value {
    json!({"mirror": format!("m{mirror}"), "client": format!("{block}/24"), "rtt_ms": rtt_ms})
}

/// Batch `n`: 125 sub-blocks of 16.0.0.0/8 and up, measured by all eight mirrors.
fn batch(n: usize) -> Value {
    let items: Vec<Value> = (n * BLOCKS_PER_BATCH..(n + 1) * BLOCKS_PER_BATCH)
        .flat_map(|b| {
            let block = Ipv4Addr::from(0x1000_0000u32 + ((b as u32) << 8));
            (0..MIRRORS).map(move |m| measurement(m, block, 10 + (b / 256 * 7 + m * 13) % 200))
        })
        .collect();
    json!({ "measurements": items })
}

/// Round `i`: a network of its own (10.i.0.0/24) where mirror i % 8 is fastest.
fn flip(i: usize) -> (Value, Ipv4Addr, Ipv4Addr) {
    let block = Ipv4Addr::new(10, i as u8, 0, 0);
    let best = i % MIRRORS;
    let items: Vec<Value> = (0..MIRRORS)
        .map(|m| measurement(m, block, if m == best { 5 } else { 50 }))
        .collect();
    let answer = Ipv4Addr::new(198, 51, 100, best as u8 + 1);
    (json!({ "measurements": items }), block, answer)
}

async fn publish(js: &async_nats::jetstream::Context, body: &Value, id: String) {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", id.as_str());
    let body = serde_json::to_vec(body).expect("encodes");
    js.publish_with_headers("mirrordns.measurements", headers, body.into())
        .await
        .expect("published")
        .await
        .expect("acknowledged");
}

async fn stream_position(http: &reqwest::Client, api: &str) -> u64 {
    let Ok(response) = http.get(format!("{api}/metrics")).send().await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("mirrordns_stream_position "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn answer(dns: SocketAddr, block: Ipv4Addr) -> Option<Ipv4Addr> {
    let mut message = Message::query();
    message.add_query(Query::query(
        Name::from_ascii("www.load.test.").unwrap(),
        RecordType::A,
    ));
    let mut edns = Edns::new();
    let subnet: ClientSubnet = format!("{block}/24").parse().unwrap();
    edns.options_mut().insert(EdnsOption::Subnet(subnet));
    message.edns = Some(edns);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok()?;
    socket.send_to(&message.to_vec().ok()?, dns).await.ok()?;
    let mut buffer = vec![0u8; 4096];
    let len = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buffer))
        .await
        .ok()?
        .ok()?;
    let response = Message::from_vec(&buffer[..len]).ok()?;
    response.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0),
        _ => None,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, instances, batches, rounds] = &args[..] else {
        eprintln!("usage: stream_share NATS_URL API=DNS[,API=DNS...] BATCHES ROUNDS");
        std::process::exit(2);
    };
    let instances: Vec<Instance> = instances
        .split(',')
        .map(|pair| {
            let (api, dns) = pair.split_once('=').expect("API=DNS");
            Instance {
                api: api.to_string(),
                dns: dns.parse().expect("DNS is ADDRESS:PORT"),
            }
        })
        .collect();
    let batches: usize = batches.parse().expect("BATCHES is a number");
    let rounds: usize = rounds.parse().expect("ROUNDS is a number");
    let client = async_nats::connect(url.as_str())
        .await
        .expect("NATS reachable");
    let js = async_nats::jetstream::new(client);
    let http = reqwest::Client::new();

    let started = Instant::now();
    for n in 0..batches {
        publish(&js, &batch(n), format!("share-{n}")).await;
    }
    let published = started.elapsed().as_secs_f64();
    println!(
        "published {} measurements in {batches} batches in {published:.2} s",
        batches * 1000
    );
    for instance in &instances {
        while stream_position(&http, &instance.api).await < batches as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{}: all applied after {seconds:.2} s: {:.0} measurements/s",
            instance.api,
            (batches * 1000) as f64 / seconds
        );
    }

    let mut latencies = Vec::new();
    for i in 0..rounds {
        let (body, block, wanted) = flip(i);
        let sent = Instant::now();
        publish(&js, &body, format!("flip-{i}")).await;
        for instance in &instances {
            while answer(instance.dns, block).await != Some(wanted) {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "publish to the new answer on all {} instances, {rounds} rounds: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        instances.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
}
