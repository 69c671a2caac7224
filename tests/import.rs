//! `mirrordns import`: an RFC 1035 master file becomes a YAML zone that
//! answers as Knot answers the original. The round trip imports
//! `tests/fixtures/import/rt.test.zone`, serves the YAML, starts `knotd` on
//! the master file, and asks both every type at every name (and names that
//! do not exist, wildcards, names below a delegation): rcode, AA and every
//! section must agree. Knot comes from Debian's `knot` package
//! (`scripts/test` installs it; without `knotd` the round trip fails). What
//! the YAML format cannot hold is an error at its line.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::{Record, RecordType};

const ORIGIN: &str = "rt.test.";

/// Runs `mirrordns import`; returns exit code, stdout and stderr.
fn import(file: &Path, extra: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .arg("import")
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn ask(addr: SocketAddr, name: &str, rtype: RecordType) -> Option<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    // EDNS with a large payload, so no answer is truncated on either side.
    let bytes = edns_query(name, rtype, 4096).to_vec().unwrap();
    socket.send_to(&bytes, addr).unwrap();
    let mut buffer = vec![0u8; 65535];
    let (len, _) = socket.recv_from(&mut buffer).ok()?;
    Message::from_vec(&buffer[..len]).ok()
}

/// What must agree: rcode, AA, and each section as sorted presentation text.
fn summary(m: &Message) -> String {
    let section = |records: &[Record]| {
        let mut lines: Vec<String> = records
            .iter()
            .filter(|r| r.record_type() != RecordType::OPT)
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r.name.to_lowercase(),
                    r.ttl,
                    r.record_type(),
                    r.data
                )
            })
            .collect();
        lines.sort();
        lines.join("\n    ")
    };
    format!(
        "{:?} aa={}\n  answer:\n    {}\n  authority:\n    {}\n  additional:\n    {}",
        m.metadata.response_code,
        m.metadata.authoritative,
        section(&m.answers),
        section(&m.authorities),
        section(&m.additionals)
    )
}

#[test]
fn a_master_file_imported_answers_as_knot_answers_it() {
    let fixture = fixture("import/rt.test.zone");
    let (code, yaml, stderr) = import(&fixture, &[]);
    assert_eq!(code, 0, "{stderr}");
    let dir = zone_dir(&[("rt.test.yaml", &yaml)]);
    let server = Server::start(&dir.path().join("rt.test.yaml"));
    let knot = Knot::start(&fixture, ORIGIN, "");
    let names = [
        "rt.test.",
        "ns1.rt.test.",
        "ns2.rt.test.",
        "mail.rt.test.",
        "MAIL2.rt.test.",
        "www.rt.test.",
        "web.rt.test.",
        "alias.rt.test.",
        "txt.rt.test.",
        "esc.rt.test.",
        "long.rt.test.",
        "_sip._udp.rt.test.",
        "_sip._tcp.rt.test.",
        "sip.rt.test.",
        "any.wild.rt.test.",
        "a.b.wild.rt.test.",
        "wild.rt.test.",
        "deep.a.b.c.rt.test.",
        "a.b.c.rt.test.",
        "c.rt.test.",
        "25.2.0.192.in-addr.rt.test.",
        "lab.rt.test.",
        "ns.lab.rt.test.",
        "www.lab.rt.test.",
        "sub.rt.test.",
        "x.sub.rt.test.",
        "short.sub.rt.test.",
        "nothing.rt.test.",
        "nothing.sub.rt.test.",
    ];
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::NS,
        RecordType::MX,
        RecordType::TXT,
        RecordType::CNAME,
        RecordType::SRV,
        RecordType::CAA,
        RecordType::PTR,
        RecordType::SOA,
    ];
    let mut differences = Vec::new();
    let mut asked = 0;
    let mut answered = 0;
    for name in names {
        for rtype in types {
            let ours = ask(server.dns, name, rtype).expect("mirrordns answers");
            let theirs = ask(knot.addr, name, rtype).expect("knot answers");
            asked += 1;
            answered += usize::from(!theirs.answers.is_empty());
            let (ours, theirs) = (summary(&ours), summary(&theirs));
            if ours != theirs {
                differences.push(format!(
                    "{name} {rtype}\n mirrordns: {ours}\n knot:      {theirs}"
                ));
            }
        }
    }
    assert!(
        answered > 30,
        "Knot served the zone: {answered} answers with data"
    );
    assert!(
        differences.is_empty(),
        "{} of {asked} answers differ:\n{}",
        differences.len(),
        differences.join("\n\n")
    );
}

#[test]
fn the_imported_zone_passes_check() {
    let (code, yaml, stderr) = import(&fixture("import/rt.test.zone"), &[]);
    assert_eq!(code, 0, "{stderr}");
    let dir = zone_dir(&[("rt.test.yaml", &yaml)]);
    let output = Command::new(env!("CARGO_BIN_EXE_mirrordns"))
        .arg("check")
        .arg(dir.path().join("rt.test.yaml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Escapes come through as text; strings keep their boundaries.
    assert!(
        yaml.contains(r#"'esc': {type: TXT, value: "ABC café ; not a comment"}"#),
        "{yaml}"
    );
    assert!(
        yaml.contains(r#"["a \"quoted\" word", "and a back\\slash", "plain"]"#),
        "{yaml}"
    );
    assert!(
        yaml.contains("'short.sub': {type: A, value: '192.0.2.121', ttl: 60}"),
        "{yaml}"
    );
}

#[test]
fn what_the_format_cannot_hold_is_an_error_at_its_line() {
    let zone = "$ORIGIN e.test.
$TTL 60
@ SOA ns h 1 2 3 4 5
@ NS ns
ns A 127.0.0.1
h HINFO \"cpu\" \"os\"
bad A 1.2.3
out.other. A 192.0.2.1
x CH A 192.0.2.2
ok TXT \"\\255\"
";
    let dir = zone_dir(&[("e.zone", zone)]);
    let file = dir.path().join("e.zone");
    let (code, stdout, stderr) = import(&file, &[]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "nothing printed on an error: {stdout}");
    let lines: Vec<String> = stderr
        .lines()
        .map(|l| l.replace(&format!("{}:", file.display()), ""))
        .collect();
    // Every problem, not only the first, each at its line.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("6: type HINFO cannot be carried")),
        "{stderr}"
    );
    assert!(lines.iter().any(|l| l.starts_with("7: ")), "{stderr}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("8: out.other. is outside the zone e.test.")),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("9: class CH cannot be carried")),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("10: bytes that are not UTF-8")),
        "{stderr}"
    );
}

#[test]
fn the_origin_comes_from_the_command_line_when_the_file_has_none() {
    let zone = "$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 127.0.0.1\n";
    let dir = zone_dir(&[("o.zone", zone)]);
    let file = dir.path().join("o.zone");
    let (code, yaml, stderr) = import(&file, &["--origin", "o.test."]);
    assert_eq!(code, 0, "{stderr}");
    assert!(yaml.contains("origin: 'o.test.'"), "{yaml}");
    assert!(
        yaml.contains("'ns': {type: A, value: '127.0.0.1'}"),
        "{yaml}"
    );
    let (code, _, stderr) = import(&file, &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(":2: "),
        "the first record that needs an origin: {stderr}"
    );
}
