//! Zone reload (SIGHUP and `POST /v1/reload`) and the control API's token
//! handling, as an operator uses them.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

fn zone(address: &str) -> String {
    format!(
        "origin: reload.test.
soa: {{mname: ns1, rname: hostmaster, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60}}
records:
  '': {{type: NS, value: ns1}}
  ns1: {{type: A, value: 127.0.0.1}}
  host: {{type: A, value: {address}}}
services:
  www: {{mirrors: [{{name: fra, ipv4: [192.0.2.1]}}, {{name: nyc, ipv4: [192.0.2.2]}}]}}
"
    )
}

fn host(s: &Server) -> Vec<String> {
    addresses(&s.query("host.reload.test.", RecordType::A))
}

#[test]
fn health_is_open_to_everyone() {
    let s = Server::start(&fixture("zones"));
    let (status, body) = s.get("/v1/health");
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[test]
fn api_reload_swaps_in_the_new_zone() {
    let dir = zone_dir(&[("reload.yaml", &zone("192.0.2.10"))]);
    let s = Server::start(dir.path());
    assert_eq!(host(&s), vec!["192.0.2.10"]);
    std::fs::write(dir.path().join("reload.yaml"), zone("192.0.2.11")).unwrap();
    let (status, body) = s.post("/v1/reload", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["zones"], 1);
    assert_eq!(host(&s), vec!["192.0.2.11"]);
}

#[test]
fn api_reload_of_a_bad_file_is_400_with_the_position_and_keeps_serving() {
    let dir = zone_dir(&[("reload.yaml", &zone("192.0.2.10"))]);
    let s = Server::start(dir.path());
    std::fs::write(dir.path().join("reload.yaml"), zone("192.0.2.300")).unwrap();
    let (status, body) = s.post("/v1/reload", Some(TOKEN));
    assert_eq!(status, 400);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("reload.yaml:6:26: bad address 192.0.2.300"),
        "{message}"
    );
    assert_eq!(host(&s), vec!["192.0.2.10"], "the old zone keeps serving");
}

#[test]
fn writes_without_the_right_token_get_401_and_change_nothing() {
    let dir = zone_dir(&[("reload.yaml", &zone("192.0.2.10"))]);
    let s = Server::start(dir.path());
    std::fs::write(dir.path().join("reload.yaml"), zone("192.0.2.11")).unwrap();
    assert_eq!(s.post("/v1/reload", None).0, 401);
    assert_eq!(s.post("/v1/reload", Some("wrong-token")).0, 401);
    assert_eq!(host(&s), vec!["192.0.2.10"]);
}

#[test]
fn sighup_reloads_and_a_bad_file_is_logged_with_its_position() {
    let dir = zone_dir(&[("reload.yaml", &zone("192.0.2.10"))]);
    let mut s = Server::start(dir.path());
    std::fs::write(dir.path().join("reload.yaml"), zone("192.0.2.12")).unwrap();
    s.signal("-HUP");
    s.wait_for_log("zones reloaded", Duration::from_secs(10));
    assert_eq!(host(&s), vec!["192.0.2.12"]);

    std::fs::write(dir.path().join("reload.yaml"), zone("not-an-address")).unwrap();
    s.signal("-HUP");
    let line = s.wait_for_log("reload rejected", Duration::from_secs(10));
    assert!(line.contains("old zones keep serving"), "{line}");
    s.wait_for_log("reload.yaml:6:26: bad address", Duration::from_secs(5));
    assert_eq!(host(&s), vec!["192.0.2.12"]);
    assert!(s.is_running());
}

#[test]
fn files_added_to_or_removed_from_the_zones_directory_take_effect_on_reload() {
    let dir = zone_dir(&[("reload.yaml", &zone("192.0.2.10"))]);
    let s = Server::start(dir.path());
    let child = "origin: other.test.\nsoa: {mname: ns1, rname: h, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1}\nrecords:\n  '': {type: NS, value: ns1}\n  ns1: {type: A, value: 127.0.0.1}\n";
    assert_eq!(
        s.query("ns1.other.test.", RecordType::A)
            .metadata
            .response_code,
        ResponseCode::Refused
    );
    std::fs::write(dir.path().join("other.yaml"), child).unwrap();
    assert_eq!(s.post("/v1/reload", Some(TOKEN)).0, 200);
    assert_eq!(
        addresses(&s.query("ns1.other.test.", RecordType::A)),
        vec!["127.0.0.1"]
    );
    std::fs::remove_file(dir.path().join("reload.yaml")).unwrap();
    assert_eq!(s.post("/v1/reload", Some(TOKEN)).0, 200);
    assert_eq!(
        s.query("host.reload.test.", RecordType::A)
            .metadata
            .response_code,
        ResponseCode::Refused
    );
}

#[test]
fn a_query_sees_the_old_zone_or_the_new_one_never_a_mix() {
    let v1 = "origin: mix.test.\nsoa: {mname: ns1, rname: h, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1}\nrecords:\n  '': {type: NS, value: ns1}\n  ns1: {type: A, value: 127.0.0.1}\n  x: {type: CNAME, value: y}\n  y: {type: A, value: 192.0.2.1}\n";
    let v2 = "origin: mix.test.\nsoa: {mname: ns1, rname: h, serial: 2, refresh: 1, retry: 1, expire: 1, minimum: 1}\nrecords:\n  '': {type: NS, value: ns1}\n  ns1: {type: A, value: 127.0.0.1}\n  x: {type: CNAME, value: z}\n  z: {type: A, value: 192.0.2.2}\n";
    let dir = zone_dir(&[("mix.yaml", v1)]);
    let s = Server::start(dir.path());
    let mut seen_new = false;
    for round in 0..20 {
        std::fs::write(
            dir.path().join("mix.yaml"),
            if round % 2 == 0 { v2 } else { v1 },
        )
        .unwrap();
        assert_eq!(s.post("/v1/reload", Some(TOKEN)).0, 200);
        for _ in 0..10 {
            let r = s.query("x.mix.test.", RecordType::A);
            let a = answers(&r);
            let old = a
                == [
                    "x.mix.test. 3600 CNAME y.mix.test.",
                    "y.mix.test. 3600 A 192.0.2.1",
                ];
            let new = a
                == [
                    "x.mix.test. 3600 CNAME z.mix.test.",
                    "z.mix.test. 3600 A 192.0.2.2",
                ];
            assert!(old || new, "mixed answer {a:?}");
            seen_new |= new;
        }
    }
    assert!(seen_new);
}

#[test]
fn without_a_token_option_one_is_generated_in_the_state_dir_with_mode_0600() {
    let s = Server::start_with(&fixture("zones"), &[], None);
    let path = s.state_dir.join("api.token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert!(token.len() >= 32);
    assert_eq!(s.post("/v1/reload", Some(&token)).0, 200);
    assert_eq!(s.post("/v1/reload", Some(TOKEN)).0, 401);
}

#[test]
fn the_token_file_option_sets_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let s = Server::start_with(
        &fixture("zones"),
        &["--api-token-file", file.to_str().unwrap()],
        None,
    );
    assert_eq!(s.post("/v1/reload", Some("from-a-file")).0, 200);
    assert_eq!(s.post("/v1/reload", Some(TOKEN)).0, 401);
}

#[test]
fn a_bad_zone_at_start_is_a_clear_error_and_exit_code() {
    let dir = zone_dir(&[("reload.yaml", &zone("192.0.2.999"))]);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            "--zones",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("reload.yaml:6:26: bad address 192.0.2.999"),
        "{stderr}"
    );
}
