//! RFC conformance as a resolver, `dig` or genreport sees it, through the
//! real binary on loopback (issue 17): the DO bit, TSIG refused with
//! BADKEY, error responses that keep the question and the OPT, ANY at a
//! CNAME and at an empty non-terminal, CNAME chains into a delegation,
//! NOTIMP flags, DNS Cookies, NSID and Extended DNS Errors.
//!
//! Each query is asked twice where it could be answered from a template:
//! the first answer comes from the full path, the second from the
//! template path, and both must say the same.

mod common;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::EdnsCode;

fn server() -> Server {
    Server::start(&fixture("zones"))
}

/// Sends `message` over UDP twice (full path, then template path) and
/// returns the first answer after checking the second says the same
/// (server cookies aside: they are made per query). A steered name
/// (round robin while nothing is measured) is asked once.
fn udp_twice(s: &Server, message: &Message) -> Message {
    let first = s.udp(message).expect("an answer");
    if message.queries[0].name().to_ascii().starts_with("www.") {
        return first;
    }
    let second = s.udp(message).expect("an answer");
    assert_eq!(
        without_cookie(first.clone()),
        without_cookie(second),
        "the template path answers as the full path"
    );
    first
}

fn without_cookie(mut m: Message) -> Message {
    if let Some(e) = m.edns.as_mut() {
        e.options_mut().remove(EdnsCode::Cookie);
    }
    m
}

#[test]
fn any_at_a_cname_answers_the_cname() {
    let s = server();
    for q in [
        query("docs.example.test.", RecordType::ANY),
        edns_query("docs.example.test.", RecordType::ANY, 1232),
    ] {
        let r = udp_twice(&s, &q);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.metadata.authoritative);
        assert_eq!(
            answers(&r),
            ["docs.example.test. 60 CNAME www.example.test."],
            "the CNAME, not a synthesized HINFO, and not followed"
        );
    }
    // Where data exists, still one HINFO (RFC 8482 section 4.2).
    let r = udp_twice(&s, &query("mail.example.test.", RecordType::ANY));
    assert_eq!(answers(&r), ["mail.example.test. 300 HINFO RFC8482 "]);
}

#[test]
fn any_at_an_empty_non_terminal_is_nodata() {
    let s = server();
    for name in ["b.example.test.", "a.b.example.test."] {
        let r = udp_twice(&s, &query(name, RecordType::ANY));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(r.metadata.authoritative, "{name}");
        assert!(r.answers.is_empty(), "{name}: {:?}", answers(&r));
        let soa = authorities(&r);
        assert_eq!(soa.len(), 1, "{name}");
        assert!(soa[0].starts_with("example.test. 120 SOA "), "{soa:?}");
    }
}

const DELEGATING_ZONE: &str = "\
origin: cut.test.
ttl: 300
soa: {mname: ns1.cut.test., rname: hostmaster.cut.test., serial: 1,
      refresh: 3600, retry: 600, expire: 1209600, minimum: 120}
records:
  '': {type: NS, value: ns1.cut.test.}
  ns1: {type: A, value: 192.0.2.1}
  child: {type: NS, values: [ns.child.cut.test., ns.elsewhere.example.]}
  ns.child: [{type: A, value: 192.0.2.53}, {type: AAAA, value: '2001:db8::53'}]
  into: {type: CNAME, value: host.child.cut.test.}
  at: {type: CNAME, value: child.cut.test.}
  twice: {type: CNAME, value: into.cut.test.}
";

#[test]
fn a_cname_chain_into_a_delegation_ends_with_the_referral() {
    let dir = zone_dir(&[("cut.test.yaml", DELEGATING_ZONE)]);
    let s = Server::start(dir.path());
    let referral = [
        "child.cut.test. 300 NS ns.child.cut.test.",
        "child.cut.test. 300 NS ns.elsewhere.example.",
    ];
    let glue = [
        "ns.child.cut.test. 300 A 192.0.2.53",
        "ns.child.cut.test. 300 AAAA 2001:db8::53",
    ];
    for (name, chain) in [
        (
            "into.cut.test.",
            &["into.cut.test. 300 CNAME host.child.cut.test."][..],
        ),
        ("at.cut.test.", &["at.cut.test. 300 CNAME child.cut.test."]),
        (
            "twice.cut.test.",
            &[
                "twice.cut.test. 300 CNAME into.cut.test.",
                "into.cut.test. 300 CNAME host.child.cut.test.",
            ],
        ),
    ] {
        for q in [
            query(name, RecordType::A),
            edns_query(name, RecordType::AAAA, 1232),
        ] {
            let r = udp_twice(&s, &q);
            assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
            assert!(r.metadata.authoritative, "{name}: the CNAMEs are ours");
            assert_eq!(answers(&r), chain, "{name}");
            assert_eq!(authorities(&r), referral, "{name}: the referral");
            assert_eq!(additionals(&r), glue, "{name}: its glue");
        }
    }
    // A direct query below the cut is still a plain referral.
    let r = udp_twice(&s, &query("host.child.cut.test.", RecordType::A));
    assert!(!r.metadata.authoritative && r.answers.is_empty());
    assert_eq!(authorities(&r), referral);
}
