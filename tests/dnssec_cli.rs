//! `mirrordns dnssec keygen` and `mirrordns dnssec ds` (SPEC sections 1a and
//! 5), driving the real binary.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use hickory_proto::rr::Name;
use mirrordns::dnssec::ZoneKey;
use mirrordns::dnssec::keys::ds_of;

/// Runs `mirrordns dnssec ARGS...` in `dir`; exit code, stdout, stderr.
fn dnssec(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .current_dir(dir)
        .arg("dnssec")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The record lines (not comments) of the output.
fn records(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| !l.starts_with(';')).collect()
}

/// The RDATA of the output's `TYPE` record.
fn rdata<'a>(stdout: &'a str, rtype: &str) -> &'a str {
    let marker = format!(" IN {rtype} ");
    records(stdout)
        .into_iter()
        .find_map(|l| l.split_once(&marker).map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no {rtype} in {stdout:?}"))
}

const ZONE: &str = "origin: example.test.
ttl: 300
soa: {mname: ns1, rname: hostmaster, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60}
records:
  '': {type: NS, value: ns1}
  ns1: {type: A, value: 127.0.0.1}
";

#[test]
fn keygen_writes_a_private_key_file_and_prints_its_dnskey() {
    let dir = tempfile::tempdir().unwrap();
    for (algorithm, number) in [("ecdsap256sha256", "13"), ("ed25519", "15")] {
        let file = format!("{algorithm}.key");
        let (code, stdout, stderr) = dnssec(
            dir.path(),
            &["keygen", "--algorithm", algorithm, "--out", &file],
        );
        assert_eq!(code, 0, "{stderr}");
        let path = dir.path().join(&file);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dnskey = rdata(&stdout, "DNSKEY");
        assert!(dnskey.starts_with(&format!("257 3 {number} ")), "{stdout}");
        let key = ZoneKey::load(&path).unwrap();
        assert_eq!(key.dnskey().to_string(), dnskey);
        assert!(
            stdout.contains(&format!("key tag {}", key.key_tag())),
            "{stdout}"
        );
        // Never over an existing key.
        let before = fs::read(&path).unwrap();
        let (code, _, stderr) = dnssec(dir.path(), &["keygen", "--out", &file]);
        assert_eq!(code, 1);
        assert!(stderr.contains("exists; not overwritten"), "{stderr}");
        assert_eq!(fs::read(&path).unwrap(), before);
    }
    // The default is ECDSA P-256; --zone adds the DS.
    let (code, stdout, _) = dnssec(
        dir.path(),
        &["keygen", "--out", "default.key", "--zone", "example.test."],
    );
    assert_eq!(code, 0);
    assert!(rdata(&stdout, "DNSKEY").starts_with("257 3 13 "));
    assert!(rdata(&stdout, "DS").contains(" 13 2 "), "{stdout}");
    let (code, _, stderr) = dnssec(
        dir.path(),
        &["keygen", "--out", "x.key", "--algorithm", "rsasha1"],
    );
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn ds_prints_the_ds_and_dnskey_of_the_zones_key_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("keys")).unwrap();
    let (code, keygen, _) = dnssec(
        dir.path(),
        &[
            "keygen",
            "--out",
            "keys/example.test.key",
            "--zone",
            "example.test.",
        ],
    );
    assert_eq!(code, 0);
    fs::create_dir(dir.path().join("zones")).unwrap();
    // key_file is relative to the zone file's directory.
    fs::write(
        dir.path().join("zones/example.yaml"),
        format!(
            "{ZONE}dnssec: {{algorithm: ecdsap256sha256, key_file: ../keys/example.test.key}}\n"
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = dnssec(dir.path(), &["ds", "zones/example.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(records(&stdout).len(), 2, "{stdout}");
    assert!(stdout.contains("example.test. IN DS "), "{stdout}");
    assert_eq!(rdata(&stdout, "DNSKEY"), rdata(&keygen, "DNSKEY"));
    assert_eq!(rdata(&stdout, "DS"), rdata(&keygen, "DS"));
    let key = ZoneKey::load(&dir.path().join("keys/example.test.key")).unwrap();
    let zone = Name::from_ascii("example.test.").unwrap();
    assert_eq!(
        rdata(&stdout, "DS"),
        ds_of(key.dnskey(), &zone).unwrap().to_string()
    );
    // Nothing was generated in the state directory.
    assert!(!dir.path().join("state").exists());
    // Another instance given the same file prints the same.
    let (_, again, _) = dnssec(
        dir.path(),
        &["ds", "zones/example.yaml", "--state-dir", "other-state"],
    );
    assert_eq!(again, stdout);

    // BIND's dnssec-dsfromkey agrees.
    let zone_file = dir.path().join("dnskey.zone");
    fs::write(
        &zone_file,
        format!(
            "example.test. 3600 IN DNSKEY {}\n",
            rdata(&stdout, "DNSKEY")
        ),
    )
    .unwrap();
    let out = Command::new(common::program("dnssec-dsfromkey", "bind9-utils"))
        .args(["-2", "-f"])
        .arg(&zone_file)
        .arg("example.test.")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bind = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        bind.trim(),
        format!("example.test. IN DS {}", rdata(&stdout, "DS"))
    );
}

#[test]
fn without_a_key_file_the_key_is_generated_once_in_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("z.yaml"),
        format!("{ZONE}dnssec: {{algorithm: ed25519}}\n"),
    )
    .unwrap();
    let (code, first, stderr) = dnssec(dir.path(), &["ds", "z.yaml", "--state-dir", "st"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("generated the zone's key in st/keys/example.test.key"),
        "{stderr}"
    );
    assert!(rdata(&first, "DNSKEY").starts_with("257 3 15 "));
    let path = dir.path().join("st/keys/example.test.key");
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Kept: the next run (and so `serve`) reads the same key.
    let (code, second, stderr) = dnssec(dir.path(), &["ds", "z.yaml", "--state-dir", "st"]);
    assert_eq!(code, 0);
    assert!(!stderr.contains("generated"), "{stderr}");
    assert_eq!(second, first);
    // `dnssec: {}` defaults to ECDSA P-256 (in another state dir).
    fs::write(dir.path().join("d.yaml"), format!("{ZONE}dnssec: {{}}\n")).unwrap();
    let (code, stdout, _) = dnssec(dir.path(), &["ds", "d.yaml", "--state-dir", "st2"]);
    assert_eq!(code, 0);
    assert!(rdata(&stdout, "DNSKEY").starts_with("257 3 13 "));
    // Without an algorithm the kept key is used whatever it is ...
    let (code, stdout, _) = dnssec(dir.path(), &["ds", "d.yaml", "--state-dir", "st"]);
    assert_eq!(code, 0);
    assert_eq!(records(&stdout), records(&first));
    // ... but asking for another algorithm than the kept key's is refused.
    fs::write(
        dir.path().join("e.yaml"),
        format!("{ZONE}dnssec: {{algorithm: ecdsap256sha256}}\n"),
    )
    .unwrap();
    let (code, _, stderr) = dnssec(dir.path(), &["ds", "e.yaml", "--state-dir", "st"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("key rollover"), "{stderr}");
    assert_eq!(
        dnssec(dir.path(), &["ds", "z.yaml", "--state-dir", "st"]).1,
        first
    );
}

#[test]
fn an_unsigned_zone_or_a_bad_file_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("unsigned.yaml"), ZONE).unwrap();
    let (code, stdout, stderr) = dnssec(dir.path(), &["ds", "unsigned.yaml"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("unsigned.yaml: the zone has no dnssec:"),
        "{stderr}"
    );
    assert!(!dir.path().join("state").exists());

    // --key-file stands in for dnssec.key_file (with a warning here).
    dnssec(dir.path(), &["keygen", "--out", "k.key"]);
    let (code, stdout, stderr) =
        dnssec(dir.path(), &["ds", "unsigned.yaml", "--key-file", "k.key"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning"), "{stderr}");
    assert!(rdata(&stdout, "DS").contains(" 13 2 "));

    fs::write(
        dir.path().join("bad.key"),
        "algorithm: ed25519\nnot a key\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("bad.yaml"),
        format!("{ZONE}dnssec: {{key_file: bad.key}}\n"),
    )
    .unwrap();
    for (args, expected) in [
        (
            vec!["ds", "bad.yaml"],
            "bad.key:2: unexpected text (not quoted: a key file's lines may be secret)",
        ),
        (vec!["ds", "missing.yaml"], "missing.yaml: cannot read"),
        (
            vec!["ds", "bad.yaml", "--key-file", "nope.key"],
            "nope.key: cannot read the DNSSEC key file",
        ),
    ] {
        let (code, stdout, stderr) = dnssec(dir.path(), &args);
        assert_eq!(code, 1, "{args:?}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    fs::write(
        dir.path().join("typo.yaml"),
        format!("{ZONE}dnssec: {{keyfile: k.key}}\n"),
    )
    .unwrap();
    let (code, _, stderr) = dnssec(dir.path(), &["ds", "typo.yaml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("typo.yaml:7:19: unknown key `keyfile` in dnssec"),
        "{stderr}"
    );
}
