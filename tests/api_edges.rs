//! The control API's edges as a client meets them (SPEC section 3): every
//! error is JSON `{"error": ...}`, unknown fields are refused by name, the
//! bearer scheme is matched in any case, `/metrics` says which format it
//! sends, `--api` takes `host:port`, and an agent with a wrong token stops.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

/// The status, the Content-Type and the body read as JSON.
fn read(response: Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.json().unwrap_or(Value::Null);
    (status, content_type, body)
}

/// Asserts a JSON error with `status` and returns its message.
fn error_of(answer: (u16, String, Value), status: u16) -> String {
    let (got, content_type, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(content_type, "application/json", "{body}");
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
        .to_string()
}

fn drained(s: &Server, mirror: &str) -> bool {
    let (_, services) = s.get("/v1/services");
    services["mirror_state"][mirror]["drained"] == true
}

#[test]
fn an_unknown_path_is_a_json_404_naming_it() {
    let s = Server::start(&fixture("zones"));
    let answer = read(reqwest::blocking::get(s.url("/v1/nothing")).unwrap());
    assert_eq!(error_of(answer, 404), "no such path /v1/nothing");
}

#[test]
fn get_on_a_write_is_a_json_405_whatever_the_token() {
    let s = Server::start(&fixture("zones"));
    let response = reqwest::blocking::get(s.url("/v1/mirrors/fra/drain")).unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    let message = error_of(read(response), 405);
    assert_eq!(
        message,
        "GET is not allowed on /v1/mirrors/fra/drain (allowed: POST)"
    );
    let with_token = Client::new()
        .get(s.url("/v1/reload"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    error_of(read(with_token), 405);
    assert!(!drained(&s, "fra"));
}

#[test]
fn a_missing_or_wrong_token_is_a_json_401_and_changes_nothing() {
    let s = Server::start(&fixture("zones"));
    let none = Client::new()
        .post(s.url("/v1/mirrors/fra/drain"))
        .send()
        .unwrap();
    assert_eq!(error_of(read(none), 401), "missing or wrong bearer token");
    let wrong = Client::new()
        .post(s.url("/v1/mirrors/fra/drain"))
        .header("Authorization", "bearer wrong-token")
        .send()
        .unwrap();
    error_of(read(wrong), 401);
    assert!(!drained(&s, "fra"));
}

#[test]
fn the_bearer_scheme_is_matched_in_any_case() {
    let s = Server::start(&fixture("zones"));
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let response = Client::new()
            .post(s.url("/v1/mirrors/fra/drain"))
            .header("Authorization", format!("{scheme} {TOKEN}"))
            .send()
            .unwrap();
        let (status, _, body) = read(response);
        assert_eq!(status, 200, "{scheme}: {body}");
        assert_eq!(body, json!({"mirror": "fra", "drained": true}));
    }
    assert!(drained(&s, "fra"));
}

#[test]
fn a_body_over_the_limit_is_a_json_413() {
    let s = Server::start(&fixture("zones"));
    let response = Client::new()
        .post(s.url("/v1/measurements"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .unwrap();
    assert_eq!(
        error_of(read(response), 413),
        "request body larger than 1048576 bytes"
    );
}

#[test]
fn an_unknown_field_in_a_measurement_is_a_400_naming_it_and_nothing_is_applied() {
    let s = Server::start(&fixture("zones"));
    let batch = json!({"measurements": [
        {"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 12.0},
        {"mirror": "nyc", "client": "198.51.100.0/24", "rtt_ms": 30.0, "rtt_us": 30000},
    ]});
    let (status, body) = s.post_json("/v1/measurements", &batch, &[]);
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("measurements[1]: unknown field `rtt_us`"),
        "{message}"
    );
    let (_, table) = s.get("/v1/services/www.example.test/clusters");
    let measured = table["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["rtt_ms"].as_object().is_some_and(|r| !r.is_empty()))
        .count();
    assert_eq!(measured, 0, "{table}");
    let samples = metrics(&s);
    assert_eq!(
        metric(
            &samples,
            "mirrordns_measurement_batches_rejected_total",
            &[]
        ),
        1.0
    );
}

#[test]
fn an_unknown_field_in_a_batch_or_a_load_report_is_a_400_naming_it() {
    let s = Server::start(&fixture("zones"));
    let (status, body) = s.post_json(
        "/v1/measurements",
        &json!({"measurements": [], "agent": "fra-1"}),
        &[],
    );
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `agent`"),
        "{body}"
    );
    let (status, body) = s.post_json(
        "/v1/load",
        &json!({"mirror": "fra", "load": 0.5, "capacity": 100}),
        &[],
    );
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `capacity`"),
        "{body}"
    );
}

#[test]
fn an_empty_batch_is_accepted_and_stores_nothing() {
    let s = Server::start(&fixture("zones"));
    let (status, body) = s.post_json("/v1/measurements", &json!({"measurements": []}), &[]);
    assert_eq!((status, body), (200, json!({"accepted": 0})));
}

#[test]
fn metrics_are_the_text_format_unless_openmetrics_is_asked_for() {
    let s = Server::start(&fixture("zones"));
    let plain = reqwest::blocking::get(s.url("/metrics")).unwrap();
    assert_eq!(
        plain.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = plain.text().unwrap();
    assert!(
        text.contains("# TYPE mirrordns_zone_reloads_total counter"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");

    // What Prometheus sends.
    let accept = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    let open = Client::new()
        .get(s.url("/metrics"))
        .header("accept", accept)
        .send()
        .unwrap();
    assert_eq!(
        open.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(open.text().unwrap().ends_with("# EOF\n"));
}

/// `mirrordns ARGS...`: whether it succeeded, stdout and stderr.
fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn why_and_table_take_the_api_as_host_and_port() {
    let s = Server::start(&fixture("zones"));
    let api = s.api.to_string();
    let (ok, out, err) = run(&["table", "www.example.test", "--api", &api]);
    assert!(ok, "{err}");
    assert!(out.starts_with("www.example.test.\n"), "{out}");
    let (ok, out, err) = run(&["why", "www.example.test", "198.51.100.7", "--api", &api]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("www.example.test. for 198.51.100.7"),
        "{out}"
    );
}

/// `mirrordns agent` for mirror fra, measuring by TCP connect, with `token`.
fn agent(server: &str, token: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .args(["agent", "--server", server, "--mirror", "fra"])
        .args([
            "--method",
            "tcp",
            "--interval-s",
            "1",
            "--timeout-ms",
            "400",
        ])
        .args(["--probe-port", &free_port().to_string()])
        .env("MIRRORDNS_API_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits up to ten seconds for `agent` to stop; its success and its log.
fn stopped(mut agent: Child) -> Option<(bool, String)> {
    let exited = eventually(Duration::from_secs(10), || {
        agent.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = agent.kill();
    }
    let output = agent.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).to_string();
    exited.then_some((output.status.success(), log))
}

#[test]
fn an_agent_with_a_wrong_token_stops_at_start_saying_why() {
    let s = Server::start(&fixture("zones"));
    let server = format!("http://{}", s.api);
    let (success, log) = stopped(agent(&server, "wrong-token")).expect("the agent kept running");
    assert!(!success);
    assert!(
        log.contains(&format!("{server} refused the API token (401)")),
        "{log}"
    );
}

/// A server whose token changed after the agent started: it takes the
/// empty batch that checks the token and refuses every batch after it.
fn server_refusing_batches() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let _ = answer_refusing_batches(stream);
        }
    });
    url
}

/// Answers one HTTP/1.1 request, then closes the connection.
fn answer_refusing_batches(stream: TcpStream) -> std::io::Result<()> {
    let (request, body) = read_http_request(&stream)?;
    let batch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, answer) = if request.starts_with("GET /v1/probes") {
        (
            "200 OK",
            json!({"probes": [{"target": "127.0.0.1", "block": "127.0.0.0/16"}]}),
        )
    } else if batch["measurements"] == json!([]) {
        ("200 OK", json!({"accepted": 0}))
    } else {
        (
            "401 Unauthorized",
            json!({"error": "missing or wrong bearer token"}),
        )
    };
    write_json_response(&stream, status, &answer)
}

#[test]
fn an_agent_refused_later_stops_saying_why() {
    let server = server_refusing_batches();
    let (success, log) = stopped(agent(&server, TOKEN)).expect("the agent kept running");
    assert!(!success);
    assert!(
        log.contains(&format!("{server} refused the API token (401)")),
        "{log}"
    );
}
