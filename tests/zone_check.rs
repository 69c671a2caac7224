//! `mirrordns check`: every validation rule of SPEC section 6, each error
//! naming the file, line and column, as `named-checkzone` would.

mod common;

use std::path::Path;
use std::process::Command;

use common::zone_dir;

const HEAD: &str = "origin: example.test.
soa: {mname: ns1, rname: hostmaster, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60}
records:
  '': {type: NS, value: ns1}
  ns1: {type: A, value: 127.0.0.1}
";

/// Runs `mirrordns check` on the files; returns exit code, stdout and stderr.
fn check(paths: &[&Path]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .arg("check")
        .args(paths)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Checks a zone made of `HEAD` plus `tail` and expects exactly one error at
/// `line:col` containing `message`.
fn expect_error(tail: &str, line: usize, column: usize, message: &str) {
    let dir = zone_dir(&[("z.yaml", &format!("{HEAD}{tail}"))]);
    let file = dir.path().join("z.yaml");
    let (code, _, stderr) = check(&[&file]);
    assert_eq!(code, 1, "{tail:?} must be rejected");
    let expected = format!("{}:{line}:{column}: ", file.display());
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&expected) && l.contains(message)),
        "expected {expected}...{message}\ngot:\n{stderr}"
    );
}

#[test]
fn a_valid_zone_passes_and_exits_zero() {
    let (code, stdout, _) = check(&[Path::new("zones/example.test.yaml")]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("ok (zone example.test., 1 services)"),
        "{stdout}"
    );
}

#[test]
fn unknown_type() {
    expect_error(
        "  x: {type: FOO, value: y}\n",
        6,
        13,
        "unknown record type \"FOO\"",
    );
}

#[test]
fn bad_address() {
    expect_error(
        "  x: {type: A, value: 10.0.0.256}\n",
        6,
        23,
        "bad address 10.0.0.256",
    );
    expect_error(
        "  x: {type: AAAA, value: 10.0.0.1}\n",
        6,
        26,
        "not an IPv6 address",
    );
}

#[test]
fn bad_name() {
    expect_error(
        "  'a b': {type: A, value: 192.0.2.1}\n",
        6,
        10,
        "bad name \"a b\"",
    );
    expect_error(
        "  x: {type: CNAME, value: a..b}\n",
        6,
        27,
        "bad name \"a..b\"",
    );
}

#[test]
fn owner_outside_the_origin() {
    expect_error(
        "  www.example.com.: {type: A, value: 192.0.2.1}\n",
        6,
        21,
        "outside the origin",
    );
}

#[test]
fn cname_beside_other_data() {
    expect_error(
        "  x:\n    - {type: CNAME, value: ns1}\n    - {type: TXT, value: hi}\n",
        8,
        26,
        "CNAME beside other data",
    );
}

#[test]
fn duplicate_mirror() {
    let tail = "services:\n  www:\n    mirrors:\n      - {name: fra, ipv4: [192.0.2.1]}\n      - {name: fra, ipv4: [192.0.2.2]}\n";
    expect_error(tail, 10, 16, "duplicate mirror \"fra\"");
}

#[test]
fn service_clashing_with_address_records() {
    let tail = "  www: {type: A, value: 192.0.2.9}\nservices:\n  www: {mirrors: [{name: fra, ipv4: [192.0.2.1]}]}\n";
    expect_error(tail, 6, 25, "clashes with the service");
    let cname = "  www: {type: CNAME, value: ns1}\nservices:\n  www: {mirrors: [{name: fra, ipv4: [192.0.2.1]}]}\n";
    expect_error(cname, 6, 29, "clashes with the service");
}

#[test]
fn txt_strings_over_255_bytes_are_rejected() {
    let long = "x".repeat(256);
    expect_error(
        &format!("  t: {{type: TXT, value: {long}}}\n"),
        6,
        25,
        "TXT string of 256 bytes",
    );
}

#[test]
fn missing_soa_or_ns() {
    let dir = zone_dir(&[
        (
            "no-soa.yaml",
            "origin: a.test.\nrecords:\n  '': {type: NS, value: ns1}\n",
        ),
        (
            "no-ns.yaml",
            "origin: b.test.\nsoa: {mname: ns1, rname: h, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1}\nrecords:\n  ns1: {type: A, value: 127.0.0.1}\n",
        ),
    ]);
    let (code, _, stderr) = check(&[
        &dir.path().join("no-soa.yaml"),
        &dir.path().join("no-ns.yaml"),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no-soa.yaml:1:1: missing field `soa`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no-ns.yaml:4:6: missing NS records at the apex of b.test."),
        "{stderr}"
    );
}

#[test]
fn yaml_syntax_errors_and_unknown_fields_have_positions() {
    expect_error(
        "  x: {type: A, value: [192.0.2.1}\n",
        6,
        33,
        "did not find expected",
    );
    expect_error(
        "  x: {type: A, vaule: 192.0.2.1}\n",
        6,
        6,
        "unknown field `vaule`",
    );
}

#[test]
fn documentation_addresses_are_never_health_checked() {
    let tail = "services:\n  www:\n    mirrors:\n      - {name: fra, ipv4: [192.0.2.1], health: {tcp_port: 443}}\n";
    expect_error(tail, 9, 48, "documentation address");
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let dir = zone_dir(&[(
        "z.yaml",
        &format!("{HEAD}  a: {{type: A, value: nope}}\n  b: {{type: BOGUS, value: x}}\n"),
    )]);
    let (code, _, stderr) = check(&[&dir.path().join("z.yaml")]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr.lines().filter(|l| l.contains("z.yaml:")).count(),
        2,
        "{stderr}"
    );
}
