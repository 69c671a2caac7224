//! `mirrordns check`: every validation rule of SPEC section 6, each error
//! naming the file, line and column, as `named-checkzone` would; it rejects
//! what `serve` rejects and warns where Knot and BIND warn.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Server, eventually_some, serve_command, zone_dir};

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
        stderr.contains("no-soa.yaml:1:1: the zone: missing `soa`"),
        "{stderr}"
    );
    // At the SOA (line 2), not at the unrelated ns1 record of line 4.
    assert!(
        stderr.contains("no-ns.yaml:2:6: missing NS records at the apex of b.test."),
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
        23,
        "unknown key `vaule` in the record of x.example.test. (known: type, value, values, ttl)",
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

/// The lines of `stderr` that report a problem of `file` (file:line:col: ...).
fn problems(stderr: &str, file: &Path) -> Vec<String> {
    let prefix = format!("{}:", file.display());
    stderr
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l[prefix.len()..].to_string())
        .collect()
}

/// Runs `mirrordns serve --zones zones` and returns its exit code and logs
/// when it stops by itself within 20 seconds; `None` when it is still serving
/// (then it is killed).
fn serve_exit(zones: &Path) -> Option<(i32, String)> {
    let state = tempfile::tempdir().unwrap();
    let mut child = serve_command(zones, state.path(), &[]).spawn().unwrap();
    let Some(status) = eventually_some(Duration::from_secs(20), || child.try_wait().unwrap())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    Some((status.code().unwrap_or(-1), logs))
}

const LOOPS: &str = "  c1: {type: CNAME, value: c2}
  c2: {type: CNAME, value: c1.example.test.}
  a: {type: CNAME, value: b}
  b: {type: CNAME, value: c}
  c: {type: CNAME, value: a}
  into: {type: CNAME, value: c1}
  '*.w': {type: CNAME, value: x.w}
  fine: {type: CNAME, value: ns1}
";

#[test]
fn a_cname_loop_is_a_zone_error() {
    let dir = zone_dir(&[("z.yaml", &format!("{HEAD}{LOOPS}"))]);
    let file = dir.path().join("z.yaml");
    let (code, stdout, stderr) = check(&[&file]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let found = problems(&stderr, &file);
    let loops: Vec<&String> = found.iter().filter(|l| l.contains("CNAME loop")).collect();
    assert_eq!(
        loops.len(),
        3,
        "each loop once, none for `into` or `fine`:\n{stderr}"
    );
    assert!(
        found.contains(&"6:7: CNAME loop: c1.example.test. -> c2.example.test. -> c1.example.test.; a chain of CNAMEs must end at a name with data".to_string()),
        "{stderr}"
    );
    assert!(
        found.iter().any(|l| l.starts_with("8:6: CNAME loop: a.example.test. -> b.example.test. -> c.example.test. -> a.example.test.")),
        "a longer loop, at its first CNAME:\n{stderr}"
    );
    assert!(
        found.iter().any(|l| l.starts_with("12:10: CNAME loop: *.w.example.test. -> x.w.example.test. (the wildcard *.w.example.test.)")),
        "a wildcard that answers its own target:\n{stderr}"
    );
}

#[test]
fn serve_refuses_what_check_refuses_a_cname_loop() {
    let dir = zone_dir(&[(
        "z.yaml",
        &format!("{HEAD}  c1: {{type: CNAME, value: c2}}\n  c2: {{type: CNAME, value: c1}}\n"),
    )]);
    let (code, _, stderr) = check(&[dir.path()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("CNAME loop"), "{stderr}");
    let (code, logs) = serve_exit(dir.path()).expect("serve must refuse the zone, not serve it");
    assert_ne!(code, 0);
    let expected = format!(
        "{}:6:7: CNAME loop: c1.example.test. -> c2.example.test. -> c1.example.test.",
        dir.path().join("z.yaml").display()
    );
    assert!(logs.contains(&expected), "{logs}");
}

#[test]
fn two_files_with_one_origin_are_refused_by_check_as_by_serve() {
    let dir = zone_dir(&[("a.yaml", HEAD), ("b.yaml", HEAD)]);
    let (code, stdout, stderr) = check(&[dir.path()]);
    assert_eq!(code, 1, "{stdout}");
    let expected = format!(
        "{}: zone example.test. is also loaded from {}",
        dir.path().join("b.yaml").display(),
        dir.path().join("a.yaml").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    // The same when the files are named one by one.
    let (code, _, stderr) = check(&[&dir.path().join("a.yaml"), &dir.path().join("b.yaml")]);
    assert_eq!(code, 1);
    assert!(stderr.contains(&expected), "{stderr}");
    let (code, logs) = serve_exit(dir.path()).expect("serve refuses them too");
    assert_ne!(code, 0);
    assert!(logs.contains(&expected), "{logs}");
}

#[test]
fn check_of_a_directory_checks_its_yaml_files() {
    let other = HEAD.replace("example.test.", "other.test.");
    let dir = zone_dir(&[
        ("a.yaml", HEAD),
        ("b.yaml", &other),
        ("notes.txt", "not a zone"),
    ]);
    let (code, stdout, stderr) = check(&[dir.path()]);
    assert_eq!(code, 0, "{stderr}");
    let ok: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        ok,
        [
            format!(
                "{}: ok (zone example.test., 0 services)",
                dir.path().join("a.yaml").display()
            ),
            format!(
                "{}: ok (zone other.test., 0 services)",
                dir.path().join("b.yaml").display()
            ),
        ],
        "{stderr}"
    );
    // A directory and a file in it: one file, checked once.
    let (code, stdout, _) = check(&[dir.path(), &dir.path().join("a.yaml")]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
}

#[test]
fn an_empty_directory_is_an_error_for_check_and_a_warning_for_serve() {
    let dir = zone_dir(&[("README", "zones go here")]);
    let (code, _, stderr) = check(&[dir.path()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "{}: no zone files (*.yaml) in this directory",
            dir.path().display()
        )),
        "{stderr}"
    );
    let mut server = Server::start(dir.path());
    let line = server.wait_for_log("serving nothing", Duration::from_secs(10));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("every query is answered REFUSED"), "{line}");
}

#[test]
fn top_level_errors_do_not_hide_the_others() {
    let zone = "origin: example.test.
ttl: soon
soa: {mname: ns1, rname: hostmaster, refresh: 3600, retry: 600, expire: 86400, minimum: 60}
colour: blue
records:
  '': {type: NS, value: ns1}
  ns1: {type: A, value: 127.0.0.1}
  ns1: {type: AAAA, value: '::1'}
  x: {type: A, value: 10.0.0.256}
";
    let dir = zone_dir(&[("z.yaml", zone)]);
    let file = dir.path().join("z.yaml");
    let (code, _, stderr) = check(&[&file]);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&stderr, &file),
        [
            "2:6: ttl: expected a whole number from 0 to 4294967295, found \"soon\"",
            "3:6: soa: missing `serial` (a whole number from 0 to 4294967295)",
            "4:9: unknown key `colour` in the zone (known: origin, ttl, soa, records, services, dnssec)",
            "8:3: duplicate key `ns1` (first at line 7): give each key once; the records of both are read",
            "9:23: bad address 10.0.0.256: not an IPv4 address",
        ],
        "{stderr}"
    );
}

#[test]
fn missing_glue_and_data_below_a_cut_are_warnings() {
    let tail = "  '': {type: NS, values: [ns1, ns2]}
  lab: [{type: NS, value: ns.lab}, {type: TXT, value: at the cut}]
  www.lab: {type: A, value: 192.0.2.7}
  glued: {type: NS, value: ns.glued}
  ns.glued: {type: A, value: 192.0.2.8}
";
    let zone = HEAD.replace("  '': {type: NS, value: ns1}\n", "");
    let dir = zone_dir(&[("z.yaml", &format!("{zone}{tail}"))]);
    let file = dir.path().join("z.yaml");
    let (code, stdout, stderr) = check(&[&file]);
    assert_eq!(code, 0, "warnings alone pass:\n{stderr}");
    assert_eq!(
        stdout.trim(),
        format!(
            "{}: ok (zone example.test., 0 services, 4 warnings)",
            file.display()
        )
    );
    assert_eq!(
        problems(&stderr, &file),
        [
            "5:7: warning: NS target ns2.example.test. of example.test. has no A or AAAA record in the zone (missing glue)",
            "6:9: warning: NS target ns.lab.example.test. of the delegation lab.example.test. has no A or AAAA record in the zone (missing glue): resolvers cannot reach the child zone's servers",
            "6:36: warning: TXT at the delegation lab.example.test. is never answered (queries there get the referral); only NS and DS records belong at a zone cut",
            "7:12: warning: A at www.lab.example.test. is below the delegation lab.example.test. and never answered (queries there get the referral); only glue, the A and AAAA records of NS targets, belongs below a zone cut",
        ],
        "{stderr}"
    );
    assert!(
        stderr.contains("0 errors, 4 warnings in 1 zone file"),
        "{stderr}"
    );
}

#[test]
fn missing_ns_at_the_apex_points_at_the_apex() {
    let zone = "origin: c.test.
soa: {mname: ns1, rname: h, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1}
records:
  ns1: {type: A, value: 127.0.0.1}
  '@': {type: TXT, value: hello}
";
    let dir = zone_dir(&[("z.yaml", zone)]);
    let file = dir.path().join("z.yaml");
    let (code, _, stderr) = check(&[&file]);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&stderr, &file),
        [
            "5:8: missing NS records at the apex of c.test.: list the zone's name servers under records, as `'': {type: NS, values: [...]}`"
        ],
        "at the apex's records, not at ns1:\n{stderr}"
    );
}

#[test]
fn messages_speak_of_the_zone_format_not_of_the_parser() {
    let zone = "origin: example.test.
soa: {mname: ns1, rname: hostmaster, serial: -1, refresh: 1.5, retry: [1], expire: 1, minimum: 1}
records:
  '': {type: NS, value: ns1}
  ns1: {type: A, value: 127.0.0.1}
  mx: {type: MX, value: {preference: 70000, exchange: mail}}
  srv: {type: SRV, value: {priority: 1, weight: x, port: 80}}
  caa: {type: CAA, value: {flags: 0, tag: issue}}
  t: {type: TXT, value: {a: b}}
  v: {type: A, values: 192.0.2.1}
services:
  www: {mirrors: [{name: fra, ipv4: 192.0.2.1}], clusters: {block_v4: x}, switch_margin: {ms: fast, percent: 1}}
";
    let dir = zone_dir(&[("z.yaml", zone)]);
    let file = dir.path().join("z.yaml");
    let (code, _, stderr) = check(&[&file]);
    assert_eq!(code, 1);
    for leak in [
        "u32",
        "u16",
        "u8",
        "RawZone",
        "struct",
        "invalid type",
        "i32",
        "f64",
        "sequence",
    ] {
        assert!(!stderr.contains(leak), "{leak:?} leaked:\n{stderr}");
    }
    assert_eq!(
        problems(&stderr, &file),
        [
            "2:46: serial: expected a whole number from 0 to 4294967295, found -1",
            "2:59: refresh: expected a whole number of seconds from 0 to 2147483647, found 1.5",
            "2:71: retry: expected a whole number of seconds from 0 to 2147483647, found a list",
            "6:38: preference: expected a whole number from 0 to 65535, found 70000",
            "7:27: an SRV value: missing `target` (a string)",
            "7:49: weight: expected a whole number from 0 to 65535, found \"x\"",
            "8:27: a CAA value: missing `value` (a string)",
            "9:25: expected a single value (a string), found a mapping",
            "10:24: values: expected a list (use `value` for one), found \"192.0.2.1\"",
            "12:37: ipv4: expected a list of strings, found \"192.0.2.1\"",
            "12:71: block_v4: expected a whole number from 0 to 255, found \"x\"",
            "12:95: ms: expected a number, found \"fast\"",
        ],
        "{stderr}"
    );
}

#[test]
fn health_urls_on_documentation_addresses_are_refused() {
    let tail = "services:
  www:
    mirrors:
      - {name: fra, ipv4: [192.0.2.1], health: {url: 'http://192.0.2.1:8080/health'}}
      - {name: nyc, ipv6: ['2001:db8::2'], health: {url: 'http://[2001:db8::2]/'}}
      - {name: sin, ipv4: [192.0.2.3], health: {url: 'http://127.0.0.1:8080/health'}}
";
    expect_error(
        tail,
        9,
        54,
        "health url \"http://192.0.2.1:8080/health\" is on the documentation address 192.0.2.1, which is answered but never contacted",
    );
    expect_error(tail, 10, 58, "documentation address 2001:db8::2");
}

#[test]
fn an_ns_target_that_is_a_cname_is_a_warning() {
    let tail = "  alias: {type: CNAME, value: ns1}\n  lab: {type: NS, value: alias}\n";
    let dir = zone_dir(&[("z.yaml", &format!("{HEAD}{tail}"))]);
    let file = dir.path().join("z.yaml");
    let (code, _, stderr) = check(&[&file]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        problems(&stderr, &file),
        [
            "7:8: warning: NS target alias.example.test. of lab.example.test. is an alias (CNAME); RFC 2181 section 10.3 wants the name of a host with A or AAAA records"
        ],
        "{stderr}"
    );
}

#[test]
fn check_help_says_what_fails_and_what_warns() {
    let output = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .args(["check", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("exit 1"), "{help}");
    assert!(help.contains("missing glue"), "{help}");
    assert!(help.contains("exit 0"), "{help}");
}
