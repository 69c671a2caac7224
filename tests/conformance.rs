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

use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::tsig::{TSIG, TsigAlgorithm, TsigError, make_tsig_record};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

const COOKIE: u16 = 10;
const NSID: u16 = 3;
const EDE: u16 = 15;

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

/// The data of option `code` in the response's OPT record.
fn option(m: &Message, code: u16) -> Option<Vec<u8>> {
    match m.edns.as_ref()?.option(EdnsCode::from(code))? {
        EdnsOption::Unknown(_, data) => Some(data.clone()),
        EdnsOption::NSID(payload) => Some(payload.as_ref().to_vec()),
        _ => None,
    }
}

/// A query with EDNS, the DO bit as given, and these options.
fn with_options(
    name: &str,
    rtype: RecordType,
    dnssec_ok: bool,
    options: &[(u16, &[u8])],
) -> Message {
    let mut m = edns_query(name, rtype, 1232);
    let edns = m.edns.as_mut().unwrap();
    edns.set_dnssec_ok(dnssec_ok);
    for (code, data) in options {
        edns.options_mut()
            .insert(EdnsOption::Unknown(*code, data.to_vec()));
    }
    m
}

/// dig's header flags, in its order.
fn flags(m: &Message) -> String {
    let md = &m.metadata;
    [
        ("qr", true),
        ("aa", md.authoritative),
        ("tc", md.truncation),
        ("rd", md.recursion_desired),
        ("ra", md.recursion_available),
        ("ad", md.authentic_data),
        ("cd", md.checking_disabled),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(f, _)| *f)
    .collect::<Vec<_>>()
    .join(" ")
}

fn dnssec_ok(m: &Message) -> bool {
    m.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok)
}

#[test]
fn the_do_bit_is_copied_into_the_response_opt() {
    let s = server();
    for (name, rtype, rcode) in [
        ("mail.example.test.", RecordType::A, ResponseCode::NoError),
        ("www.example.test.", RecordType::A, ResponseCode::NoError),
        ("nope.example.test.", RecordType::A, ResponseCode::NXDomain),
        ("example.com.", RecordType::A, ResponseCode::Refused),
    ] {
        // dig +dnssec
        let r = udp_twice(&s, &with_options(name, rtype, true, &[]));
        assert_eq!(r.metadata.response_code, rcode, "{name}");
        assert!(dnssec_ok(&r), "{name}: flags: do");
        let tcp = s.tcp(&with_options(name, rtype, true, &[]));
        assert!(dnssec_ok(&tcp), "{name} over TCP");
        // and without it, none.
        let r = udp_twice(&s, &with_options(name, rtype, false, &[]));
        assert!(!dnssec_ok(&r), "{name}: no do asked, none given");
    }
}

fn tsig_query(rd: bool) -> Message {
    let mut m = edns_query("mail.example.test.", RecordType::A, 1232);
    m.metadata.recursion_desired = rd;
    m.metadata.checking_disabled = true;
    let tsig = TSIG::new(
        TsigAlgorithm::HmacSha256,
        1_796_625_606,
        300,
        vec![0xab; 32],
        m.metadata.id,
        None,
        Vec::new(),
    );
    m.signature = Some(Box::new(make_tsig_record(
        Name::from_ascii("nokey.").unwrap(),
        tsig,
    )));
    m
}

#[test]
fn a_tsig_signed_query_gets_notauth_with_tsig_error_badkey() {
    let s = server();
    for rd in [false, true] {
        for r in [s.udp(&tsig_query(rd)).unwrap(), s.tcp(&tsig_query(rd))] {
            // dig: status: NOTAUTH; TSIG PSEUDOSECTION: nokey. 0 ANY TSIG
            // hmac-sha256. 1796625606 300 0 4660 BADKEY 0
            assert_eq!(r.metadata.response_code, ResponseCode::NotAuth);
            assert_eq!(flags(&r), if rd { "qr rd cd" } else { "qr cd" });
            assert!(r.answers.is_empty() && r.authorities.is_empty());
            assert_eq!(r.queries.len(), 1, "the question");
            assert!(r.edns.is_some(), "an OPT");
            // hickory (with its DNSSEC support) reads the TSIG that closes
            // the additional section into the message's signature.
            let tsig = r.signature.as_deref().expect("a TSIG record last");
            assert!(r.additionals.is_empty());
            assert_eq!(tsig.name.to_string(), "nokey.");
            assert_eq!(tsig.ttl, 0);
            assert_eq!(tsig.dns_class, hickory_proto::rr::DNSClass::ANY);
            let t = &tsig.data;
            assert_eq!(t.error, Some(TsigError::BadKey));
            assert_eq!(t.algorithm, TsigAlgorithm::HmacSha256);
            assert!(t.mac.is_empty(), "unsigned (RFC 8945 section 5.3.2)");
            assert_eq!((t.time, t.fudge, t.oid), (1_796_625_606, 300, 0x1234));
        }
    }
}

/// A query for `mail.example.test. A` with RD set and, after the question,
/// `additional` records (raw) counted in ARCOUNT.
fn raw_query(additional: &[&[u8]]) -> Vec<u8> {
    let mut q = query("mail.example.test.", RecordType::A);
    q.metadata.recursion_desired = true;
    let mut bytes = q.to_vec().unwrap();
    bytes[11] = additional.len() as u8;
    for r in additional {
        bytes.extend_from_slice(r);
    }
    bytes
}

/// An OPT record with the DO bit and one option.
fn raw_opt(owner: &[u8], code: u16, data: &[u8]) -> Vec<u8> {
    let mut opt = owner.to_vec();
    opt.extend_from_slice(&[0, 41, 0x04, 0xd0, 0, 0, 0x80, 0]);
    opt.extend_from_slice(&(4 + data.len() as u16).to_be_bytes());
    opt.extend_from_slice(&code.to_be_bytes());
    opt.extend_from_slice(&(data.len() as u16).to_be_bytes());
    opt.extend_from_slice(data);
    opt
}

#[test]
fn every_error_response_keeps_the_question_the_opt_and_rd() {
    let s = server();
    let cases: Vec<(&str, Vec<u8>, ResponseCode)> = vec![
        (
            "ECS prefix over 32",
            raw_query(&[&raw_opt(&[0], 8, &[0, 1, 33, 0, 10, 0, 0, 0, 0])]),
            ResponseCode::FormErr,
        ),
        (
            "ECS of an unknown family",
            raw_query(&[&raw_opt(&[0], 8, &[0, 9, 8, 0, 10])]),
            ResponseCode::FormErr,
        ),
        (
            "ECS short of address bytes",
            raw_query(&[&raw_opt(&[0], 8, &[0, 1, 24, 0, 10, 2])]),
            ResponseCode::FormErr,
        ),
        (
            "ECS with extra address bytes",
            raw_query(&[&raw_opt(&[0], 8, &[0, 1, 16, 0, 10, 2, 3, 0])]),
            ResponseCode::FormErr,
        ),
        (
            "a cookie of 5 bytes",
            raw_query(&[&raw_opt(&[0], COOKIE, &[1, 2, 3, 4, 5])]),
            ResponseCode::FormErr,
        ),
        (
            "an option past the end of the OPT",
            raw_query(&[&{
                let mut o = raw_opt(&[0], 12, &[0; 4]);
                let at = o.len() - 5;
                o[at] = 9;
                o
            }]),
            ResponseCode::FormErr,
        ),
        (
            "two OPT records",
            raw_query(&[&raw_opt(&[0], 12, &[]), &raw_opt(&[0], 12, &[])]),
            ResponseCode::FormErr,
        ),
        (
            "an OPT owned by foo.",
            raw_query(&[&raw_opt(&[3, b'f', b'o', b'o', 0], 12, &[])]),
            ResponseCode::FormErr,
        ),
        (
            "bytes after the OPT",
            {
                let mut q = raw_query(&[&raw_opt(&[0], 12, &[])]);
                q.extend_from_slice(&[0, 0]);
                q
            },
            ResponseCode::FormErr,
        ),
        (
            "a question of type OPT",
            {
                let mut q = raw_query(&[&raw_opt(&[0], 12, &[])]);
                let at = 12 + 19;
                q[at..at + 2].copy_from_slice(&41u16.to_be_bytes());
                q
            },
            ResponseCode::FormErr,
        ),
        (
            "a name outside every zone",
            {
                let mut m = edns_query("www.example.com.", RecordType::A, 1232);
                m.metadata.recursion_desired = true;
                m.edns.as_mut().unwrap().set_dnssec_ok(true);
                m.to_vec().unwrap()
            },
            ResponseCode::Refused,
        ),
        (
            "a zone transfer",
            {
                let mut m = edns_query("example.test.", RecordType::AXFR, 1232);
                m.metadata.recursion_desired = true;
                m.edns.as_mut().unwrap().set_dnssec_ok(true);
                m.to_vec().unwrap()
            },
            ResponseCode::Refused,
        ),
        (
            "a NOTIFY",
            {
                let mut q = raw_query(&[&raw_opt(&[0], 12, &[])]);
                q[2] |= 4 << 3;
                q
            },
            ResponseCode::NotImp,
        ),
        (
            "a signed query",
            {
                let mut m = tsig_query(true);
                m.metadata.checking_disabled = false;
                m.edns.as_mut().unwrap().set_dnssec_ok(true);
                m.to_vec().unwrap()
            },
            ResponseCode::NotAuth,
        ),
    ];
    for (what, bytes, rcode) in cases {
        let question = Query::read(&mut BinDecoder::new(&bytes[12..])).unwrap();
        for r in [s.udp_raw(&bytes), Some(tcp_raw(&s, &bytes))] {
            let r = Message::from_vec(&r.unwrap_or_else(|| panic!("{what}: no answer")))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(r.metadata.response_code, rcode, "{what}");
            assert_eq!(r.metadata.id, 0x1234, "{what}");
            assert!(r.metadata.recursion_desired, "{what}: RD copied");
            assert!(!r.metadata.authoritative, "{what}: no AA");
            assert_eq!(
                r.queries,
                std::slice::from_ref(&question),
                "{what}: the question as asked"
            );
            let edns = r.edns.as_ref().unwrap_or_else(|| panic!("{what}: no OPT"));
            assert_eq!(edns.version(), 0, "{what}");
            assert!(edns.flags().dnssec_ok, "{what}: the DO bit");
            assert!(r.answers.is_empty(), "{what}");
        }
    }
    // A query with no question still gets its OPT back.
    let mut none = raw_query(&[&raw_opt(&[0], 12, &[])]);
    none[5] = 0;
    none.drain(12..12 + 23);
    let r = Message::from_vec(&s.udp_raw(&none).unwrap()).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    assert!(r.queries.is_empty() && r.edns.is_some() && r.metadata.recursion_desired);
}

/// `bytes` over TCP: the raw response.
fn tcp_raw(s: &Server, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(s.dns).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    body
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

#[test]
fn notimp_copies_rd_and_nothing_else() {
    let s = server();
    for opcode in [OpCode::Update, OpCode::Unknown(3), OpCode::Unknown(15)] {
        for edns in [false, true] {
            let mut m = if edns {
                edns_query("mail.example.test.", RecordType::A, 1232)
            } else {
                query("mail.example.test.", RecordType::A)
            };
            m.metadata.op_code = opcode;
            m.metadata.recursion_desired = true;
            m.metadata.checking_disabled = true;
            m.metadata.authentic_data = true;
            let r = s.udp(&m).expect("an answer");
            // dig: opcode: RESERVED3, status: NOTIMP; flags: qr rd
            assert_eq!(r.metadata.response_code, ResponseCode::NotImp, "{opcode}");
            assert_eq!(r.metadata.op_code, opcode);
            assert_eq!(flags(&r), "qr rd", "{opcode}");
            assert_eq!(r.queries.len(), 1, "{opcode}: the question");
            assert_eq!(r.edns.is_some(), edns, "{opcode}: an OPT as asked");
        }
    }
}

#[test]
fn dns_cookies_are_given_kept_and_renewed_never_badcookie() {
    let s = server();
    let client = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];
    // dig +cookie: a client cookie gets a server cookie back.
    let first = s
        .udp(&with_options(
            "mail.example.test.",
            RecordType::A,
            false,
            &[(COOKIE, &client)],
        ))
        .unwrap();
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&first), ["192.0.2.25"]);
    let cookie = option(&first, COOKIE).expect("a COOKIE option");
    assert_eq!(
        cookie.len(),
        24,
        "client cookie and a 16-byte server cookie"
    );
    assert_eq!(&cookie[..8], &client);
    assert_eq!(cookie[8], 1, "RFC 9018 version 1");
    assert_eq!(&cookie[9..12], &[0, 0, 0], "reserved");
    // The whole cookie sent back is ours and fresh: it comes back unchanged,
    // from the full path, the template path and over TCP.
    let again = with_options(
        "mail.example.test.",
        RecordType::A,
        false,
        &[(COOKIE, &cookie)],
    );
    for r in [
        s.udp(&again).unwrap(),
        s.udp(&again).unwrap(),
        s.tcp(&again),
    ] {
        assert_eq!(option(&r, COOKIE), Some(cookie.clone()));
        assert_eq!(addresses(&r), ["192.0.2.25"]);
    }
    // A server cookie that is not ours is answered as a client cookie
    // alone: a normal answer with a fresh server cookie, over UDP and TCP.
    let mut forged = cookie.clone();
    forged[20] ^= 0xff;
    let bad = with_options(
        "mail.example.test.",
        RecordType::A,
        false,
        &[(COOKIE, &forged)],
    );
    for r in [s.udp(&bad).unwrap(), s.tcp(&bad)] {
        assert_eq!(
            r.metadata.response_code,
            ResponseCode::NoError,
            "never BADCOOKIE"
        );
        assert_eq!(addresses(&r), ["192.0.2.25"]);
        let fresh = option(&r, COOKIE).unwrap();
        assert_eq!(&fresh[..8], &client);
        assert_ne!(fresh, forged);
    }
    // Other answers carry it too: steered, NXDOMAIN, REFUSED.
    for name in ["www.example.test.", "nope.example.test.", "example.com."] {
        let r = s
            .udp(&with_options(
                name,
                RecordType::A,
                true,
                &[(COOKIE, &client)],
            ))
            .unwrap();
        assert_eq!(
            option(&r, COOKIE).map(|c| c[..8].to_vec()),
            Some(client.to_vec()),
            "{name}"
        );
        assert!(dnssec_ok(&r), "{name}");
    }
    // No cookie asked, none given.
    let plain = s
        .udp(&edns_query("mail.example.test.", RecordType::A, 1232))
        .unwrap();
    assert_eq!(option(&plain, COOKIE), None);
}

/// Sends `count` queries for `mail.example.test. A` with `cookie` (if any)
/// at once and counts the answers.
fn answered(s: &Server, cookie: Option<&[u8]>, count: usize) -> usize {
    let options: Vec<(u16, &[u8])> = cookie.iter().map(|c| (COOKIE, *c)).collect();
    let q = with_options("mail.example.test.", RecordType::A, false, &options);
    let bytes = q.to_vec().unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for _ in 0..count {
        socket.send_to(&bytes, s.dns).unwrap();
    }
    let mut got = 0;
    let mut buffer = [0u8; 1500];
    while socket.recv_from(&mut buffer).is_ok() {
        got += 1;
    }
    got
}

/// The server cookie `s` gives the client cookie `client`.
fn learn_cookie(s: &Server, client: &[u8]) -> Vec<u8> {
    let r = s
        .udp(&with_options(
            "mail.example.test.",
            RecordType::A,
            false,
            &[(COOKIE, client)],
        ))
        .unwrap();
    option(&r, COOKIE).unwrap()
}

/// Rate limiting that loopback is not exempt from: one answer per second,
/// the rest dropped.
const STRICT_RRL: [&str; 6] = [
    "--rrl-rate",
    "1",
    "--rrl-slip",
    "0",
    "--rrl-exempt",
    "192.0.2.0/24",
];

#[test]
fn a_valid_server_cookie_exempts_the_client_from_rate_limiting() {
    let s = Server::start_with(&fixture("zones"), &STRICT_RRL, None);
    let cookie = learn_cookie(&s, &[7; 8]);
    assert_eq!(
        answered(&s, Some(&cookie), 20),
        20,
        "a valid cookie: every answer"
    );
    assert!(answered(&s, None, 20) <= 3, "no cookie: limited");
    assert!(
        answered(&s, Some(&[7; 8]), 20) <= 3,
        "a client cookie alone: limited"
    );
    let mut forged = cookie.clone();
    forged[23] ^= 1;
    assert!(
        answered(&s, Some(&forged), 20) <= 3,
        "a bad server cookie: limited"
    );
}

#[test]
fn instances_sharing_a_cookie_secret_accept_each_others_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cookie.secret");
    std::fs::write(&secret, "e5e973e5a6b2a43f48e7dc849e37bfcf\n").unwrap();
    let secret_arg = secret.to_str().unwrap();
    let mut args = STRICT_RRL.to_vec();
    args.extend(["--cookie-secret-file", secret_arg]);
    let ns1 = Server::start_with(&fixture("zones"), &args, None);
    let ns2 = Server::start_with(&fixture("zones"), &args, None);
    let from_ns1 = learn_cookie(&ns1, &[9; 8]);
    assert_eq!(
        answered(&ns2, Some(&from_ns1), 20),
        20,
        "ns2 takes ns1's cookie"
    );
    // A server with a secret of its own does not.
    let ns3 = Server::start_with(&fixture("zones"), &STRICT_RRL, None);
    assert!(answered(&ns3, Some(&from_ns1), 20) <= 3);
    // A secret file that is not 32 hex digits stops the server at start.
    std::fs::write(&secret, "not hex").unwrap();
    let state = tempfile::tempdir().unwrap();
    let status = serve_command(
        &fixture("zones"),
        state.path(),
        &["--cookie-secret-file", secret_arg],
    )
    .status()
    .unwrap();
    assert!(!status.success());
}

#[test]
fn the_generated_cookie_secret_is_kept_in_the_state_dir() {
    use std::os::unix::fs::PermissionsExt;
    let state = tempfile::tempdir().unwrap();
    let first = Server::start_in(&fixture("zones"), state.path(), &STRICT_RRL, None);
    let cookie = learn_cookie(&first, &[5; 8]);
    first.stop();
    let file = state.path().join("cookie.secret");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.trim().len(), 32);
    // After a restart the cookie it gave is still valid.
    let second = Server::start_in(&fixture("zones"), state.path(), &STRICT_RRL, None);
    assert_eq!(answered(&second, Some(&cookie), 20), 20);
}

#[test]
fn nsid_is_sent_to_those_who_ask() {
    let s = Server::start_with(&fixture("zones"), &["--nsid", "ns1.fra"], None);
    for (name, rtype) in [
        ("mail.example.test.", RecordType::A),
        ("www.example.test.", RecordType::A),
        ("nope.example.test.", RecordType::TXT),
        ("example.com.", RecordType::A),
    ] {
        // dig +nsid
        let r = udp_twice(&s, &with_options(name, rtype, false, &[(NSID, &[])]));
        assert_eq!(option(&r, NSID).as_deref(), Some(&b"ns1.fra"[..]), "{name}");
        let r = udp_twice(&s, &edns_query(name, rtype, 1232));
        assert_eq!(option(&r, NSID), None, "{name}: not asked");
    }
    let r = s.tcp(&with_options(
        "mail.example.test.",
        RecordType::A,
        true,
        &[(NSID, &[])],
    ));
    assert_eq!(option(&r, NSID).as_deref(), Some(&b"ns1.fra"[..]));
    // Error responses carry it too (as Knot's do): NOTIMP, NOTAUTH, BADVERS.
    let mut notify = with_options("mail.example.test.", RecordType::SOA, false, &[(NSID, &[])]);
    notify.metadata.op_code = OpCode::Notify;
    let mut signed = tsig_query(false);
    signed
        .edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Unknown(NSID, Vec::new()));
    let mut version_1 = with_options("mail.example.test.", RecordType::A, false, &[(NSID, &[])]);
    version_1.edns.as_mut().unwrap().set_version(1);
    for (m, rcode) in [(notify, 4u16), (signed, 9), (version_1, 16)] {
        let r = s.udp(&m).unwrap();
        assert_eq!(u16::from(r.metadata.response_code), rcode);
        assert_eq!(
            option(&r, NSID).as_deref(),
            Some(&b"ns1.fra"[..]),
            "rcode {rcode}"
        );
    }
    // Without --nsid nothing is sent.
    let plain = server();
    let r = plain
        .udp(&with_options(
            "mail.example.test.",
            RecordType::A,
            false,
            &[(NSID, &[])],
        ))
        .unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(option(&r, NSID), None);
}

#[test]
fn refused_carries_extended_error_not_authoritative() {
    let s = server();
    let r = udp_twice(&s, &edns_query("www.example.com.", RecordType::A, 1232));
    // dig: status: REFUSED; EDE: 20 (Not Authoritative)
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert_eq!(option(&r, EDE), Some(vec![0, 20]));
    let mut chaos = edns_query("version.bind.", RecordType::TXT, 1232);
    chaos.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    let r = s.udp(&chaos).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert_eq!(option(&r, EDE), Some(vec![0, 20]));
    let r = s
        .udp(&edns_query("example.test.", RecordType::AXFR, 1232))
        .unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert_eq!(option(&r, EDE), Some(vec![0, 21]), "Not Supported");
    // Answers carry none, and without EDNS there is no OPT to carry one.
    let r = udp_twice(&s, &edns_query("mail.example.test.", RecordType::A, 1232));
    assert_eq!(option(&r, EDE), None);
    let r = s.udp(&query("www.example.com.", RecordType::A)).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert!(r.edns.is_none());
}

#[test]
fn opt_options_come_together_on_both_paths() {
    let s = Server::start_with(&fixture("zones"), &["--nsid", "ns2"], None);
    let client = [3u8; 8];
    let mut q = with_options(
        "mail.example.test.",
        RecordType::A,
        true,
        &[(NSID, &[]), (COOKIE, &client), (12, &[0, 0, 0])],
    );
    q.edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Subnet("10.2.3.0/24".parse().unwrap()));
    let r = udp_twice(&s, &q);
    assert!(dnssec_ok(&r));
    assert_eq!(option(&r, NSID).as_deref(), Some(&b"ns2"[..]));
    assert_eq!(
        option(&r, COOKIE).map(|c| c[..8].to_vec()),
        Some(client.to_vec())
    );
    assert_eq!(ecs_echo(&r), Some((24, 0)));
    assert_eq!(option(&r, 12), None, "padding is not echoed");
}
