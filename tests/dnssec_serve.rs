//! Signed answers from the real server, checked as a user checks them
//! (SPEC section 1a): BIND's `delv` with the zone's key as trust anchor
//! validates every kind of answer, and unbound, a validating resolver with
//! ECS, returns the steered name with the AD bit for two client subnets
//! that get different mirrors. Both algorithms; restarts and two instances
//! keep one key; answers without DO are unchanged byte for byte.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use hickory_proto::op::{Edns, Message};
use hickory_proto::rr::{RData, Record, RecordType};
use serde_json::json;

const ALGORITHMS: [&str; 2] = ["ecdsap256sha256", "ed25519"];

/// A signed zone: apex records, a steered `www`, a CNAME to it, a wildcard,
/// an empty non-terminal (`_tcp`), a delegation with DS (`sec`) and one
/// without (`lab`). `dnssec` is the zone's `dnssec:` line, or none.
fn zone_text(dnssec: Option<&str>) -> String {
    let mut text = String::from(
        r#"origin: example.test.
ttl: 300
soa: {mname: ns1.example.test., rname: hostmaster.example.test., serial: 1,
      refresh: 3600, retry: 600, expire: 1209600, minimum: 60}
records:
  '':
    - {type: NS, values: [ns1.example.test.]}
    - {type: MX, values: [{preference: 10, exchange: mail.example.test.}]}
  ns1: {type: A, value: 127.0.0.1}
  mail: {type: A, value: 192.0.2.25}
  docs: {type: CNAME, value: www.example.test.}
  _https._tcp: {type: SRV, value: {priority: 10, weight: 5, port: 443, target: www.example.test.}}
  '*.users': {type: A, value: 192.0.2.80}
  lab: {type: NS, value: ns.lab.example.test.}
  ns.lab: {type: A, value: 192.0.2.53}
  sec:
    - {type: NS, value: ns.sec.example.test.}
    - {type: DS, value: {key_tag: 12345, algorithm: 13, digest_type: 2, digest: 2328E81CA946E65F04B899FB67C4C7FB6528028422019E070D34CD363CFFC597}}
  ns.sec: {type: A, value: 192.0.2.54}
services:
  www:
    ttl: 30
    mirrors:
      - {name: fra, ipv4: [192.0.2.1]}
      - {name: nyc, ipv4: [192.0.2.2]}
"#,
    );
    if let Some(dnssec) = dnssec {
        text.push_str(&format!("dnssec: {dnssec}\n"));
    }
    text
}

/// Writes a key of `algorithm` with `mirrordns dnssec keygen` into `dir`.
fn keygen(dir: &Path, algorithm: &str) {
    keygen_for(dir, "zone.key", algorithm, "example.test.");
}

/// Writes a key of `algorithm` for `zone` into `dir/file`; returns the DS
/// record's RDATA `keygen` prints for the parent.
fn keygen_for(dir: &Path, file: &str, algorithm: &str, zone: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .args([
            "dnssec",
            "keygen",
            "--algorithm",
            algorithm,
            "--zone",
            zone,
            "--out",
        ])
        .arg(dir.join(file))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let ds = stdout.lines().find_map(|l| l.split_once(" IN DS "));
    ds.map(|(_, rdata)| rdata.to_string()).unwrap_or_default()
}

/// A zone directory with a key file and the zone signed with it.
fn signed_zone_dir(algorithm: &str) -> tempfile::TempDir {
    let dir = zone_dir(&[(
        "example.test.yaml",
        &zone_text(Some(&format!(
            "{{algorithm: {algorithm}, key_file: zone.key}}"
        ))),
    )]);
    keygen(dir.path(), algorithm);
    dir
}

/// A query as a validating resolver sends it: EDNS with DO.
fn do_query(name: &str, rtype: RecordType) -> Message {
    let mut message = query(name, rtype);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    message.set_edns(edns);
    message
}

/// The zone's DNSKEY as the server answers it.
fn dnskey(s: &Server) -> String {
    let response = s.udp(&query("example.test.", RecordType::DNSKEY)).unwrap();
    match &response.answers[..] {
        [
            Record {
                data: RData::DNSSEC(key),
                ..
            },
        ] => key.to_string(),
        other => panic!("one DNSKEY expected: {other:?}"),
    }
}

#[test]
fn delv_validates_every_kind_of_answer() {
    program("delv", "bind9-dnsutils");
    for algorithm in ALGORITHMS {
        let dir = signed_zone_dir(algorithm);
        let s = Server::start(dir.path());
        let anchor = dnskey(&s);
        let positive = [
            ("example.test.", "MX", "mail.example.test."),
            ("example.test.", "NS", "ns1.example.test."),
            ("example.test.", "DNSKEY", "257 3"),
            ("example.test.", "CDS", "CDS"),
            ("example.test.", "CDNSKEY", "257 3"),
            ("www.example.test.", "A", "192.0.2."),
            ("docs.example.test.", "A", "CNAME"),
            ("_https._tcp.example.test.", "SRV", "443"),
            ("host.users.example.test.", "A", "192.0.2.80"),
            ("sec.example.test.", "DS", "12345 13 2"),
            // NSEC queries: the NSEC compact denial makes for the name.
            (
                "mail.example.test.",
                "NSEC",
                "\\000.mail.example.test. A RRSIG NSEC",
            ),
            ("nope.example.test.", "NSEC", "RRSIG NSEC TYPE128"),
        ];
        for (qname, qtype, expected) in positive {
            let out = delv(dir.path(), s.dns, &anchor, qname, qtype);
            assert!(
                out.contains("; fully validated") && out.contains(expected),
                "{algorithm} {qname} {qtype}: {out}"
            );
        }
        // NXDOMAIN (compact denial: NOERROR with NXNAME, type 128), NODATA,
        // an empty non-terminal, wildcard NODATA, and a cut without DS.
        let negative = [
            ("nope.example.test.", "A", true),
            ("deep.nope.example.test.", "TXT", true),
            ("mail.example.test.", "AAAA", false),
            ("www.example.test.", "AAAA", false),
            ("_tcp.example.test.", "TXT", false),
            ("host.users.example.test.", "TXT", false),
            ("lab.example.test.", "DS", false),
        ];
        for (qname, qtype, nxname) in negative {
            let out = delv(dir.path(), s.dns, &anchor, qname, qtype);
            assert!(
                out.contains("; negative response, fully validated")
                    && out.contains("TYPE128") == nxname,
                "{algorithm} {qname} {qtype}: {out}"
            );
        }
        // The control: another key validates nothing.
        let other = zone_dir(&[]);
        keygen(other.path(), algorithm);
        let text = std::fs::read_to_string(other.path().join("zone.key")).unwrap();
        let other_key = text
            .lines()
            .find_map(|l| l.strip_prefix("# DNSKEY "))
            .unwrap();
        let out = delv(dir.path(), s.dns, other_key, "www.example.test.", "A");
        assert!(!out.contains("fully validated"), "{out}");
    }
}

#[test]
fn referrals_carry_the_signed_ds_or_the_proof_there_is_none() {
    let dir = signed_zone_dir("ecdsap256sha256");
    let s = Server::start(dir.path());
    let signed_child = s
        .udp(&do_query("host.sec.example.test.", RecordType::A))
        .unwrap();
    assert!(!signed_child.metadata.authoritative);
    let ds_answer = s
        .udp(&do_query("sec.example.test.", RecordType::DS))
        .unwrap();
    let mut expected = answers(&ds_answer);
    expected.push("sec.example.test. 300 NS ns.sec.example.test.".to_string());
    let mut got = authorities(&signed_child);
    expected.sort();
    got.sort();
    // The DS and its RRSIG, as delv validated them, and the child's NS.
    assert_eq!(got, expected);
    assert_eq!(
        additionals(&signed_child),
        vec!["ns.sec.example.test. 300 A 192.0.2.54"]
    );
    let unsigned_child = s
        .udp(&do_query("host.lab.example.test.", RecordType::A))
        .unwrap();
    let no_ds = s
        .udp(&do_query("lab.example.test.", RecordType::DS))
        .unwrap();
    let proof: Vec<String> = authorities(&no_ds)
        .into_iter()
        .filter(|r| r.contains("NSEC"))
        .collect();
    assert_eq!(proof.len(), 2, "{no_ds:?}");
    for record in &proof {
        assert!(authorities(&unsigned_child).contains(record), "{record}");
    }
}

/// A query for RRSIG gets the signatures of the RRsets at the name, as
/// Knot and BIND give them (unsigned themselves); a NODATA would contradict
/// its own NSEC, which lists RRSIG.
#[test]
fn rrsig_queries_get_the_signatures_at_the_name() {
    let dir = signed_zone_dir("ecdsap256sha256");
    let s = Server::start(dir.path());
    let response = s
        .udp(&do_query("example.test.", RecordType::RRSIG))
        .unwrap();
    let mut covered: Vec<String> = answers(&response)
        .iter()
        .map(|r| r.split_whitespace().nth(3).unwrap().to_string())
        .collect();
    covered.sort();
    assert_eq!(
        covered,
        ["CDNSKEY", "CDS", "DNSKEY", "MX", "NS", "SOA"],
        "{response:?}"
    );
    assert!(response.authorities.is_empty());
}

#[test]
fn answers_without_do_are_unchanged_byte_for_byte() {
    let signed = signed_zone_dir("ecdsap256sha256");
    let unsigned = zone_dir(&[("example.test.yaml", &zone_text(None))]);
    let (a, b) = (Server::start(signed.path()), Server::start(unsigned.path()));
    let mut edns_without_do = query("mail.example.test.", RecordType::A);
    edns_without_do.set_edns(Edns::new());
    let queries = [
        query("example.test.", RecordType::MX),
        query("mail.example.test.", RecordType::A),
        query("nope.example.test.", RecordType::A),
        query("mail.example.test.", RecordType::AAAA),
        query("host.users.example.test.", RecordType::A),
        query("host.lab.example.test.", RecordType::A),
        query("sec.example.test.", RecordType::DS),
        query("docs.example.test.", RecordType::CNAME),
        edns_without_do,
    ];
    for q in queries {
        let bytes = q.to_vec().unwrap();
        // Twice: the full path, then the template.
        for _ in 0..2 {
            assert_eq!(a.udp_raw(&bytes), b.udp_raw(&bytes), "{q:?}");
        }
    }
    // The signed server's signatures, as /metrics counts them: the second
    // name that does not exist takes the SOA's signature from the cache.
    for name in [
        "mail.example.test.",
        "nope.example.test.",
        "nope2.example.test.",
    ] {
        a.udp(&do_query(name, RecordType::A)).unwrap();
    }
    let samples = metrics(&a);
    let zone = [("zone", "example.test.")];
    assert!(metric(&samples, "mirrordns_dnssec_signatures_made_total", &zone) >= 3.0);
    assert!(
        metric(
            &samples,
            "mirrordns_dnssec_signature_cache_hits_total",
            &zone
        ) >= 1.0
    );
    assert!(metric(&samples, "mirrordns_dnssec_signature_cache_entries", &zone) >= 3.0);
    let nxdomain = a.udp(&query("nope.example.test.", RecordType::A)).unwrap();
    assert_eq!(
        nxdomain.metadata.response_code.to_string(),
        "Non-Existent Domain"
    );
}

#[test]
fn a_restart_keeps_the_key_and_instances_with_one_key_file_agree() {
    program("delv", "bind9-dnsutils");
    // No key file: the key is made in the state directory, and kept.
    let zones = zone_dir(&[("example.test.yaml", &zone_text(Some("{}")))]);
    let state = tempfile::tempdir().unwrap();
    let first = Server::start_in(zones.path(), state.path(), &[], Some(TOKEN));
    let key = dnskey(&first);
    assert!(key.starts_with("257 3 13 "), "{key}");
    first.stop();
    let mut again = Server::start_in(zones.path(), state.path(), &[], Some(TOKEN));
    assert_eq!(dnskey(&again), key);
    // The key file deleted under a running server: a reload writes the
    // key it serves back, never a new one (the parent's DS names it).
    let key_file = state.path().join("keys/example.test.key");
    std::fs::remove_file(&key_file).unwrap();
    again.signal("-HUP");
    again.wait_for_log("written back", Duration::from_secs(10));
    assert!(key_file.exists());
    assert_eq!(dnskey(&again), key);
    // One key file, two instances: one DNSKEY, and each validates.
    let dir = signed_zone_dir("ed25519");
    let (ns1, ns2) = (Server::start(dir.path()), Server::start(dir.path()));
    let anchor = dnskey(&ns1);
    assert_eq!(dnskey(&ns2), anchor);
    for s in [&ns1, &ns2] {
        let out = delv(dir.path(), s.dns, &anchor, "www.example.test.", "A");
        assert!(out.contains("; fully validated"), "{out}");
    }
}

#[test]
fn check_reads_the_key_file_and_places_ds_records() {
    let dir = zone_dir(&[(
        "example.test.yaml",
        &zone_text(Some("{key_file: missing.key}"))
            .replace(
                "  mail: {type: A, value: 192.0.2.25}",
                &format!("  mail: [{{type: A, value: 192.0.2.25}}, {{type: DS, value: {{key_tag: 1, algorithm: 13, digest_type: 2, digest: {}}}}}]", "AB".repeat(32)),
            )
            .replace(
                "  ns1: {type: A, value: 127.0.0.1}",
                "  ns1: [{type: A, value: 127.0.0.1}, {type: DS, value: {key_tag: 1, algorithm: 13, digest_type: 2, digest: AB}}]",
            ),
    )]);
    let output = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let text = format!("{stdout}{stderr}");
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("digest: a digest of type 2 is 32 bytes"),
        "{text}"
    );
    assert!(
        text.contains("DS at mail.example.test. without NS"),
        "{text}"
    );
    let fixed = zone_dir(&[(
        "example.test.yaml",
        &zone_text(Some("{key_file: missing.key}")),
    )]);
    let output = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .arg("check")
        .arg(fixed.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        !output.status.success() && text.contains("missing.key"),
        "{text}"
    );
}

#[test]
fn check_refuses_what_cannot_be_signed() {
    let dir = zone_dir(&[(
        "example.test.yaml",
        &zone_text(Some("{key_file: zone.key}"))
            .replace(
                "    - {type: NS, values: [ns1.example.test.]}",
                "    - {type: NS, values: [ns1.example.test.]}\n    - {type: DS, value: {key_tag: 1, algorithm: 13, digest_type: 2, digest: '00'}}\n    - {type: DS, value: {key_tag: 2, algorithm: 13, digest_type: 1, digest: 0102030405060708090A0B0C0D0E0F1011121314}}",
            )
            .replace(
                "  '*.users': {type: A, value: 192.0.2.80}",
                "  '*.users': {type: A, value: 192.0.2.80}\n  '*.zone': {type: NS, value: ns1.example.test.}\n  mail2: [{type: NS, value: ns1.example.test.}, {type: DS, value: {key_tag: 1, algorithm: 13, digest_type: 9, digest: ''}}]",
            ),
    )]);
    keygen(dir.path(), "ecdsap256sha256");
    let output = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "{text}");
    for expected in [
        "digest: a digest of type 2 is 32 bytes",
        "digest: expected hex digits, found none",
        "NS at the wildcard *.zone.example.test.: a wildcard cannot delegate",
        "DS at the apex example.test.: a zone's own DS belongs in its parent zone",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
}

/// unbound on a loopback port, validating with the zone's key and sending
/// ECS to the server, which it reaches as a stub zone.
struct Unbound {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Unbound {
    fn start(server: &Server, anchor: &str) -> Unbound {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            r#"server:
  interface: 127.0.0.1
  port: {port}
  do-not-query-localhost: no
  chroot: ""
  username: ""
  directory: "{dir}"
  pidfile: "{dir}/unbound.pid"
  use-syslog: no
  logfile: ""
  module-config: "subnetcache validator iterator"
  send-client-subnet: 127.0.0.1
  trust-anchor: "example.test. DNSKEY {anchor}"
  local-zone: "test." nodefault
  qname-minimisation: no
  access-control: 127.0.0.0/8 allow
stub-zone:
  name: "example.test."
  stub-addr: 127.0.0.1@{server_port}
"#,
            dir = dir.path().display(),
            server_port = server.dns.port(),
        );
        let file = dir.path().join("unbound.conf");
        std::fs::write(&file, config).unwrap();
        let child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let unbound = Unbound {
            child,
            port,
            _dir: dir,
        };
        let up = eventually(Duration::from_secs(10), || {
            unbound.dig(&["example.test.", "SOA"]).contains("NOERROR")
        });
        assert!(up, "unbound did not answer");
        unbound
    }

    fn dig(&self, args: &[&str]) -> String {
        let output = Command::new("dig")
            .args(["@127.0.0.1", "-p", &self.port.to_string(), "+dnssec"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).to_string()
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child zone of example.test. with one host, signed with `key_file`
/// or not.
fn child_zone(origin: &str, host: &str, key_file: Option<&str>) -> String {
    let mut text = format!(
        "origin: {origin}\nsoa: {{mname: ns.{origin}, rname: hostmaster.{origin}, serial: 1, refresh: 3600, retry: 600, expire: 1209600, minimum: 60}}\nrecords:\n  '': {{type: NS, value: ns.{origin}}}\n  ns: {{type: A, value: 127.0.0.1}}\n  host: {{type: A, value: {host}}}\n"
    );
    if let Some(file) = key_file {
        text.push_str(&format!("dnssec: {{key_file: {file}}}\n"));
    }
    text
}

#[test]
fn unbound_validates_a_signed_child_through_the_parents_ds() {
    program("unbound", "unbound");
    // One server for the parent and both children, as a provider serves a
    // zone and its delegations; the parent's side answers the DS.
    let dir = zone_dir(&[]);
    keygen(dir.path(), "ecdsap256sha256");
    let child_ds = keygen_for(dir.path(), "child.key", "ed25519", "sec.example.test.");
    let fields: Vec<&str> = child_ds.split_whitespace().collect();
    let parent = zone_text(Some("{key_file: zone.key}"))
        .replace("value: 192.0.2.53}", "value: 127.0.0.1}")
        .replace("value: 192.0.2.54}", "value: 127.0.0.1}")
        .replace(
            "{key_tag: 12345, algorithm: 13, digest_type: 2, digest: 2328E81CA946E65F04B899FB67C4C7FB6528028422019E070D34CD363CFFC597}",
            &format!(
                "{{key_tag: {}, algorithm: {}, digest_type: {}, digest: {}}}",
                fields[0], fields[1], fields[2], fields[3]
            ),
        );
    for (file, text) in [
        ("example.test.yaml", parent),
        (
            "sec.example.test.yaml",
            child_zone("sec.example.test.", "192.0.2.60", Some("child.key")),
        ),
        (
            "lab.example.test.yaml",
            child_zone("lab.example.test.", "192.0.2.61", None),
        ),
    ] {
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    let s = Server::start(dir.path());
    let ds = s
        .udp(&do_query("sec.example.test.", RecordType::DS))
        .unwrap();
    assert!(
        answers(&ds).iter().any(|r| r.contains(" DS ")),
        "the parent's side answers the DS: {ds:?}"
    );
    let unbound = Unbound::start(&s, &dnskey(&s));
    let flags = |out: &str| {
        out.lines()
            .find(|l| l.starts_with(";; flags:"))
            .unwrap_or_default()
            .to_string()
    };
    let signed = unbound.dig(&["host.sec.example.test.", "A"]);
    assert!(flags(&signed).contains(" ad"), "{signed}");
    assert!(signed.contains("192.0.2.60"), "{signed}");
    // The parent proves lab has no DS: an insecure answer, not a failure.
    let unsigned = unbound.dig(&["host.lab.example.test.", "A"]);
    assert!(
        unsigned.contains("status: NOERROR") && unsigned.contains("192.0.2.61"),
        "{unsigned}"
    );
    assert!(!flags(&unsigned).contains(" ad"), "{unsigned}");
}

#[test]
fn unbound_validates_steered_answers_for_two_subnets() {
    program("unbound", "unbound");
    program("dig", "bind9-dnsutils");
    for algorithm in ALGORITHMS {
        let dir = signed_zone_dir(algorithm);
        let s = Server::start(dir.path());
        let (near_fra, near_nyc) = ("198.51.100.0/24", "203.0.113.0/24");
        for subnet in [near_fra, near_nyc] {
            s.udp(&ecs_query("www.example.test.", RecordType::A, subnet));
        }
        let rtt = |subnet: &str, fra: f64, nyc: f64| {
            json!([
                {"mirror": "fra", "client": subnet, "rtt_ms": fra},
                {"mirror": "nyc", "client": subnet, "rtt_ms": nyc},
            ])
        };
        let mut items = rtt(near_fra, 10.0, 90.0).as_array().unwrap().clone();
        items.extend(rtt(near_nyc, 90.0, 10.0).as_array().unwrap().clone());
        let (status, body) =
            s.post_json("/v1/measurements", &json!({ "measurements": items }), &[]);
        assert_eq!(status, 200, "{body}");
        let unbound = Unbound::start(&s, &dnskey(&s));
        for (subnet, mirror) in [(near_fra, "192.0.2.1"), (near_nyc, "192.0.2.2")] {
            let out = unbound.dig(&[&format!("+subnet={subnet}"), "www.example.test.", "A"]);
            let flags = out.lines().find(|l| l.starts_with(";; flags:")).unwrap();
            assert!(flags.contains(" ad"), "{algorithm} {subnet}: {out}");
            assert!(
                out.contains(&format!("www.example.test.\t30\tIN\tA\t{mirror}")),
                "{algorithm} {subnet}: {out}"
            );
        }
    }
}

/// Names that do not exist, sent fast from one source with DO: compact
/// denial answers them NOERROR, each with its own NSEC, but rate limiting
/// still counts them together as it counts NXDOMAINs (a flood of random
/// names would otherwise pass, each costing a signature).
#[test]
fn rate_limiting_counts_compact_denials_as_nxdomains() {
    let dir = signed_zone_dir("ecdsap256sha256");
    let s = Server::start_with(
        dir.path(),
        &[
            "--rrl-rate",
            "5",
            "--rrl-slip",
            "0",
            "--rrl-exempt",
            "127.90.0.0/16",
        ],
        Some(TOKEN),
    );
    let answered = |source: &str, dnssec_ok: bool| {
        let socket = std::net::UdpSocket::bind((source, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        for i in 0..200 {
            let name = format!("random-{i}-{dnssec_ok}.example.test.");
            let message = match dnssec_ok {
                true => do_query(&name, RecordType::A),
                false => query(&name, RecordType::A),
            };
            socket.send_to(&message.to_vec().unwrap(), s.dns).unwrap();
        }
        let mut buffer = [0u8; 1500];
        std::iter::from_fn(|| socket.recv_from(&mut buffer).ok()).count()
    };
    let plain = answered("127.43.0.1", false);
    let signed = answered("127.44.0.1", true);
    assert!(
        plain < 100,
        "NXDOMAINs are limited: {plain} of 200 answered"
    );
    assert!(
        signed <= plain + 5,
        "compact denials are limited as NXDOMAINs are: {signed} answered with DO, {plain} without"
    );
}
