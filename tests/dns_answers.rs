//! What a resolver or `dig` sees from the server: records, rcodes, flags,
//! sections, EDNS, ECS and truncation (SPEC section 1 and the answers of section 2).

mod common;

use std::collections::HashSet;

use common::*;
use hickory_proto::op::{Edns, ResponseCode};
use hickory_proto::rr::RecordType;

fn server() -> Server {
    Server::start(&fixture("zones"))
}

#[test]
fn answers_each_static_record_type_authoritatively() {
    let s = server();
    let cases: &[(&str, RecordType, &str)] = &[
        (
            "mail.example.test.",
            RecordType::A,
            "mail.example.test. 300 A 192.0.2.25",
        ),
        (
            "mail.example.test.",
            RecordType::AAAA,
            "mail.example.test. 300 AAAA 2001:db8::25",
        ),
        (
            "example.test.",
            RecordType::MX,
            "example.test. 300 MX 10 mail.example.test.",
        ),
        (
            "example.test.",
            RecordType::TXT,
            "example.test. 300 TXT v=spf1 mx -all",
        ),
        (
            "example.test.",
            RecordType::CAA,
            "example.test. 300 CAA 0 issue \"letsencrypt.org\"",
        ),
        (
            "_https._tcp.example.test.",
            RecordType::SRV,
            "_https._tcp.example.test. 300 SRV 10 5 443 api.example.test.",
        ),
        (
            "25.2.0.192.in-addr.example.test.",
            RecordType::PTR,
            "25.2.0.192.in-addr.example.test. 300 PTR mail.example.test.",
        ),
        (
            "txt.example.test.",
            RecordType::TXT,
            "txt.example.test. 300 TXT first stringsecond string",
        ),
        (
            "example.test.",
            RecordType::SOA,
            "example.test. 300 SOA ns1.example.test. hostmaster.example.test. 2026112801 3600 600 1209600 120",
        ),
    ];
    for (name, rtype, expected) in cases {
        let r = s.query(name, *rtype);
        assert_eq!(
            r.metadata.response_code,
            ResponseCode::NoError,
            "{name} {rtype}"
        );
        assert!(
            r.metadata.authoritative,
            "{name} {rtype} must be authoritative"
        );
        assert_eq!(answers(&r), vec![expected.to_string()], "{name} {rtype}");
        assert_eq!(r.queries[0].name().to_string(), *name, "question echoed");
    }
}

#[test]
fn answers_over_ipv6_as_over_ipv4() {
    let mut s = Server::start_with(&fixture("zones"), &["--listen", "[::1]:0"], None);
    let v6 = s.wait_for_address("dns listening on [::1]");
    let socket = std::net::UdpSocket::bind("[::1]:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    let asked = query("mail.example.test.", RecordType::A);
    for _ in 0..3 {
        // The first answer goes the full way, the later ones from a template.
        socket.send_to(&asked.to_vec().unwrap(), v6).unwrap();
        let mut buffer = [0u8; 1232];
        let (len, from) = socket.recv_from(&mut buffer).expect("an answer over IPv6");
        assert_eq!(from, v6);
        let answer = hickory_proto::op::Message::from_vec(&buffer[..len]).unwrap();
        assert_eq!(answer.id, asked.id);
        assert_eq!(answers(&answer), ["mail.example.test. 300 A 192.0.2.25"]);
    }
}

#[test]
fn apex_ns_comes_with_glue_and_mx_with_addresses() {
    let s = server();
    let r = s.query("example.test.", RecordType::NS);
    assert_eq!(answers(&r).len(), 2);
    let extra = additionals(&r);
    assert!(
        extra.contains(&"ns1.example.test. 300 A 127.0.0.1".to_string()),
        "{extra:?}"
    );
    assert!(
        extra.contains(&"ns1.example.test. 300 AAAA ::1".to_string()),
        "{extra:?}"
    );
    assert!(
        extra.contains(&"ns2.example.test. 300 A 127.0.0.2".to_string()),
        "{extra:?}"
    );
    let mx = s.query("example.test.", RecordType::MX);
    assert!(additionals(&mx).contains(&"mail.example.test. 300 A 192.0.2.25".to_string()));
}

#[test]
fn missing_name_is_nxdomain_with_soa_and_negative_ttl() {
    let s = server();
    let r = s.query("nothing-here.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(r.metadata.authoritative);
    assert!(r.answers.is_empty());
    // RFC 2308: the negative TTL is min(SOA TTL, SOA MINIMUM) = 120.
    let soa = authorities(&r);
    assert_eq!(soa.len(), 1);
    assert!(soa[0].starts_with("example.test. 120 SOA "), "{soa:?}");
}

#[test]
fn existing_name_without_the_type_is_nodata() {
    let s = server();
    let r = s.query("mail.example.test.", RecordType::MX);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    assert!(r.answers.is_empty());
    assert!(authorities(&r)[0].contains(" SOA "));
}

#[test]
fn empty_non_terminals_are_nodata_not_nxdomain() {
    let s = server();
    for name in ["a.b.example.test.", "b.example.test."] {
        let r = s.query(name, RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(r.answers.is_empty(), "{name}");
        assert!(authorities(&r)[0].contains(" SOA "), "{name}");
    }
    let deep = s.query("deep.a.b.example.test.", RecordType::A);
    assert_eq!(addresses(&deep), vec!["192.0.2.90"]);
}

#[test]
fn cname_chains_inside_the_zone_are_followed() {
    let s = server();
    let r = s.query("chain.example.test.", RecordType::A);
    assert_eq!(
        answers(&r),
        vec![
            "chain.example.test. 300 CNAME status.example.test.",
            "status.example.test. 300 CNAME api.example.test.",
            "api.example.test. 300 A 192.0.2.20",
        ]
    );
    let asked_for_cname = s.query("chain.example.test.", RecordType::CNAME);
    assert_eq!(
        answers(&asked_for_cname),
        vec!["chain.example.test. 300 CNAME status.example.test."]
    );
}

#[test]
fn cname_to_a_service_gets_a_steered_answer_with_the_service_ttl() {
    let s = server();
    let r = s.query("docs.example.test.", RecordType::A);
    let a = answers(&r);
    assert_eq!(a[0], "docs.example.test. 60 CNAME www.example.test.");
    assert!(a[1].starts_with("www.example.test. 30 A 192.0.2."), "{a:?}");
}

#[test]
fn cname_loops_and_targets_outside_the_zone_stop_without_error() {
    let s = server();
    let looped = s.query("loop1.example.test.", RecordType::A);
    assert_eq!(looped.metadata.response_code, ResponseCode::NoError);
    assert!(!looped.answers.is_empty() && looped.answers.len() <= 10);
    let away = s.query("away.example.test.", RecordType::A);
    assert_eq!(
        answers(&away),
        vec!["away.example.test. 300 CNAME www.elsewhere.example."]
    );
}

#[test]
fn wildcards_synthesise_the_asked_name_per_rfc4592() {
    let s = server();
    let r = s.query("Alice.users.example.test.", RecordType::A);
    assert_eq!(
        answers(&r),
        vec!["Alice.users.example.test. 300 A 192.0.2.80"]
    );
    let txt = s.query("bob.users.example.test.", RecordType::TXT);
    assert_eq!(
        answers(&txt),
        vec!["bob.users.example.test. 300 TXT wildcard"]
    );
    // A name that exists is not covered by the wildcard.
    let known = s.query("known.users.example.test.", RecordType::TXT);
    assert!(known.answers.is_empty());
    assert_eq!(known.metadata.response_code, ResponseCode::NoError);
    // Below an existing name the wildcard does not apply (closest encloser is not `users`).
    let below = s.query("x.known.users.example.test.", RecordType::A);
    assert_eq!(below.metadata.response_code, ResponseCode::NXDomain);
    // The wildcard matches more than one label.
    let deep = s.query("a.b.users.example.test.", RecordType::A);
    assert_eq!(addresses(&deep), vec!["192.0.2.80"]);
    let nodata = s.query("carol.users.example.test.", RecordType::MX);
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
}

#[test]
fn delegations_get_referrals_with_glue() {
    let s = server();
    for name in ["lab.example.test.", "host.lab.example.test."] {
        let r = s.query(name, RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(!r.metadata.authoritative, "a referral is not authoritative");
        assert!(r.answers.is_empty());
        assert_eq!(
            authorities(&r),
            vec!["lab.example.test. 300 NS ns.lab.example.test."]
        );
        assert_eq!(
            additionals(&r),
            vec!["ns.lab.example.test. 300 A 192.0.2.53"]
        );
    }
    // DS belongs to the parent side of the cut.
    let ds = s.query("lab.example.test.", RecordType::DS);
    assert!(ds.metadata.authoritative);
    assert!(authorities(&ds)[0].contains(" SOA "));
}

#[test]
fn a_child_zone_we_also_serve_answers_instead_of_the_referral() {
    let s = server();
    let r = s.query("host.sub.example.test.", RecordType::A);
    assert!(r.metadata.authoritative);
    assert_eq!(
        answers(&r),
        vec!["host.sub.example.test. 600 A 192.0.2.100"]
    );
    let missing = s.query("nope.sub.example.test.", RecordType::A);
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert!(authorities(&missing)[0].starts_with("sub.example.test. 60 SOA"));
}

#[test]
fn names_outside_every_zone_are_refused() {
    let s = server();
    let r = s.query("www.example.com.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert!(!r.metadata.authoritative);
    assert!(r.answers.is_empty());
}

#[test]
fn any_is_answered_minimally_per_rfc8482() {
    let s = server();
    let r = s.query("example.test.", RecordType::ANY);
    assert_eq!(answers(&r), vec!["example.test. 300 HINFO RFC8482 "]);
}

#[test]
fn other_opcodes_get_notimp_and_other_classes_refused() {
    let s = server();
    let mut notify = query("example.test.", RecordType::SOA);
    notify.metadata.op_code = hickory_proto::op::OpCode::Notify;
    let r = s.udp(&notify).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    let mut chaos = query("example.test.", RecordType::TXT);
    chaos.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    assert_eq!(
        s.udp(&chaos).unwrap().metadata.response_code,
        ResponseCode::Refused
    );
    let axfr = s.udp(&query("example.test.", RecordType::AXFR)).unwrap();
    assert_eq!(axfr.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn header_flags_echo_the_id_and_rd_and_never_claim_recursion() {
    let s = server();
    let mut q = query("mail.example.test.", RecordType::A);
    q.metadata.recursion_desired = true;
    let r = s.udp(&q).unwrap();
    assert_eq!(r.metadata.id, 0x1234);
    assert!(r.metadata.recursion_desired);
    assert!(!r.metadata.recursion_available);
    assert!(!r.metadata.truncation);
}

#[test]
fn question_case_is_preserved() {
    let s = server();
    let r = s.query("MaIl.ExAmPlE.TeSt.", RecordType::A);
    assert_eq!(r.queries[0].name().to_string(), "MaIl.ExAmPlE.TeSt.");
    assert_eq!(addresses(&r), vec!["192.0.2.25"]);
}

#[test]
fn edns_is_answered_with_our_opt_and_badvers_for_version_1() {
    let s = server();
    let r = s
        .udp(&edns_query("mail.example.test.", RecordType::A, 1232))
        .unwrap();
    assert_eq!(r.edns.as_ref().map(|e| e.version()), Some(0));
    let plain = s.query("mail.example.test.", RecordType::A);
    assert!(
        plain.edns.is_none(),
        "no OPT in the response without one in the request"
    );
    let mut v1 = edns_query("mail.example.test.", RecordType::A, 1232);
    v1.edns.as_mut().unwrap().set_version(1);
    let r = s.udp(&v1).unwrap();
    // BADVERS is extended rcode 16 (hickory decodes 16 as its alias BADSIG).
    assert_eq!(u16::from(r.metadata.response_code), 16);
    assert_eq!(r.edns.as_ref().map(|e| e.version()), Some(0));
    assert!(r.answers.is_empty());
}

#[test]
fn large_answers_set_tc_over_udp_and_come_whole_over_tcp() {
    let s = server();
    let small = s.udp(&query("big.example.test.", RecordType::TXT)).unwrap();
    assert!(
        small.metadata.truncation,
        "12 long TXT records do not fit in 512 bytes"
    );
    assert!(small.answers.is_empty());
    let with_edns = s
        .udp(&edns_query("big.example.test.", RecordType::TXT, 512))
        .unwrap();
    assert!(with_edns.metadata.truncation);
    assert!(
        with_edns.edns.is_some(),
        "the OPT record is kept in a truncated response"
    );
    let large = s
        .udp(&edns_query("big.example.test.", RecordType::TXT, 4096))
        .unwrap();
    assert!(!large.metadata.truncation);
    assert_eq!(large.answers.len(), 12);
    let tcp = s.tcp(&query("big.example.test.", RecordType::TXT));
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 12);
}

#[test]
fn tcp_answers_pipelined_queries_on_one_connection() {
    use std::io::Write;
    let s = server();
    let mut stream = std::net::TcpStream::connect(s.dns).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    for name in ["mail.example.test.", "api.example.test."] {
        let bytes = query(name, RecordType::A).to_vec().unwrap();
        stream
            .write_all(&(bytes.len() as u16).to_be_bytes())
            .unwrap();
        stream.write_all(&bytes).unwrap();
    }
    let first = read_tcp_message(&mut stream);
    let second = read_tcp_message(&mut stream);
    assert_eq!(addresses(&first), vec!["192.0.2.25"]);
    assert_eq!(addresses(&second), vec!["192.0.2.20"]);
}

#[test]
fn round_robin_gives_every_mirror_once_before_any_twice() {
    let s = server();
    let seen: Vec<String> = (0..3)
        .flat_map(|_| addresses(&s.query("www.example.test.", RecordType::A)))
        .collect();
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), 3, "three queries, three mirrors: {seen:?}");
    let more: HashSet<String> = (0..6)
        .flat_map(|_| addresses(&s.query("www.example.test.", RecordType::A)))
        .collect();
    assert_eq!(
        more,
        ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let r = s.query("www.example.test.", RecordType::A);
    assert_eq!(r.answers[0].ttl, 30, "the service TTL");
    assert!(r.metadata.authoritative);
}

#[test]
fn aaaa_skips_mirrors_without_ipv6_and_a_v4_only_service_is_nodata() {
    let s = server();
    let v6: HashSet<String> = (0..6)
        .flat_map(|_| addresses(&s.query("www.example.test.", RecordType::AAAA)))
        .collect();
    assert_eq!(
        v6,
        ["2001:db8::1", "2001:db8::2"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let r = s.query("v4only.example.test.", RecordType::AAAA);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert!(authorities(&r)[0].contains(" SOA "));
    let txt = s.query("v4only.example.test.", RecordType::TXT);
    assert_eq!(
        answers(&txt),
        vec!["v4only.example.test. 300 TXT a service with TXT beside it"]
    );
}

#[test]
fn ecs_is_echoed_with_the_cluster_scope_for_services_and_zero_for_static_data() {
    let s = server();
    let steered = s
        .udp(&ecs_query(
            "www.example.test.",
            RecordType::A,
            "10.2.3.0/24",
        ))
        .unwrap();
    assert_eq!(
        ecs_echo(&steered),
        Some((24, 16)),
        "default IPv4 cluster /16"
    );
    let steered6 = s
        .udp(&ecs_query(
            "www.example.test.",
            RecordType::AAAA,
            "2001:db8:1::/48",
        ))
        .unwrap();
    assert_eq!(
        ecs_echo(&steered6),
        Some((48, 32)),
        "default IPv6 cluster /32"
    );
    let configured = s
        .udp(&ecs_query(
            "v4only.example.test.",
            RecordType::A,
            "10.2.3.0/24",
        ))
        .unwrap();
    assert_eq!(
        ecs_echo(&configured),
        Some((24, 20)),
        "clusters.initial_v4 = 20"
    );
    let fixed = s
        .udp(&ecs_query(
            "mail.example.test.",
            RecordType::A,
            "10.2.3.0/24",
        ))
        .unwrap();
    assert_eq!(ecs_echo(&fixed), Some((24, 0)));
    let nx = s
        .udp(&ecs_query(
            "nope.example.test.",
            RecordType::A,
            "10.2.3.0/24",
        ))
        .unwrap();
    assert_eq!(ecs_echo(&nx), Some((24, 0)));
    let no_source = s
        .udp(&ecs_query("www.example.test.", RecordType::A, "0.0.0.0/0"))
        .unwrap();
    assert_eq!(
        ecs_echo(&no_source),
        Some((0, 0)),
        "source 0: the resolver's address decides"
    );
    let plain = s
        .udp(&edns_query("www.example.test.", RecordType::A, 1232))
        .unwrap();
    assert_eq!(ecs_echo(&plain), None, "no ECS asked, none echoed");
}

/// A raw query for `www.example.test. A` with an OPT record whose only option
/// is the ECS option `ecs` (family, source, scope, address bytes).
fn raw_ecs_query(ecs: &[u8]) -> Vec<u8> {
    let mut q = query("www.example.test.", RecordType::A);
    q.set_edns(Edns::new());
    let mut bytes = q.to_vec().unwrap();
    // The OPT record is last and has empty RDATA: patch in one option.
    let rdlen_at = bytes.len() - 2;
    let option_len = ecs.len() as u16;
    let rdlen = 4 + option_len;
    bytes[rdlen_at..].copy_from_slice(&rdlen.to_be_bytes());
    bytes.extend_from_slice(&8u16.to_be_bytes());
    bytes.extend_from_slice(&option_len.to_be_bytes());
    bytes.extend_from_slice(ecs);
    bytes
}

#[test]
fn malformed_ecs_gets_formerr() {
    let s = server();
    let cases: &[(&str, &[u8])] = &[
        ("IPv4 source prefix over 32", &[0, 1, 33, 0, 10, 0, 0, 0, 0]),
        (
            "IPv6 source prefix over 128",
            &[
                0, 2, 129, 0, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        ("extra address bytes", &[0, 1, 16, 0, 10, 2, 3, 0]),
        ("too few address bytes", &[0, 1, 24, 0, 10, 2]),
        ("bits set beyond the source prefix", &[0, 1, 15, 0, 10, 3]),
        ("address bits beyond a /20", &[0, 1, 20, 0, 10, 2, 0xff]),
        ("unknown family", &[0, 9, 8, 0, 10]),
    ];
    for (what, ecs) in cases {
        let bytes = raw_ecs_query(ecs);
        let reply = s
            .udp_raw(&bytes)
            .unwrap_or_else(|| panic!("{what}: no reply"));
        let r = hickory_proto::op::Message::from_vec(&reply).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr, "{what}");
        assert_eq!(r.metadata.id, 0x1234, "{what}");
    }
    // A well-formed option through the same path is answered.
    let good = s.udp_raw(&raw_ecs_query(&[0, 1, 24, 0, 10, 2, 3])).unwrap();
    let r = hickory_proto::op::Message::from_vec(&good).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ecs_echo(&r), Some((24, 16)));
}

#[test]
fn garbage_packets_never_stop_the_server() {
    let mut s = server();
    let valid = query("mail.example.test.", RecordType::A).to_vec().unwrap();
    let mut packets: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x12],
        vec![0xff; 11],
        vec![0xff; 12],
        vec![0; 512],
        valid[..valid.len() - 3].to_vec(),
    ];
    // A compression pointer that points at itself.
    let mut looped = valid[..12].to_vec();
    looped.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    packets.push(looped);
    // A question count far beyond what is there.
    let mut counts = valid.clone();
    counts[4..6].copy_from_slice(&[0xff, 0xff]);
    packets.push(counts);
    // Deterministic pseudo-random bytes.
    let mut seed: u32 = 12345;
    for len in [12usize, 20, 40, 100, 300] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (seed >> 16) as u8
            })
            .collect();
        packets.push(bytes);
    }
    for p in &packets {
        if let Some(reply) = s.udp_raw(p) {
            // Whatever comes back is a well-formed DNS message.
            hickory_proto::op::Message::from_vec(&reply).expect("well-formed reply");
        }
    }
    let truncated_reply = s
        .udp_raw(&valid[..valid.len() - 3])
        .map(|r| hickory_proto::op::Message::from_vec(&r).unwrap());
    assert_eq!(
        truncated_reply.map(|r| r.metadata.response_code),
        Some(ResponseCode::FormErr)
    );
    assert!(s.is_running());
    assert_eq!(
        addresses(&s.query("mail.example.test.", RecordType::A)),
        vec!["192.0.2.25"]
    );
}

#[test]
fn several_udp_threads_share_the_port_and_all_answer() {
    let s = Server::start_with(&fixture("zones"), &["--udp-threads", "3"], Some(TOKEN));
    // Each query from a socket of its own: the kernel spreads them over the
    // three sockets by source port.
    for _ in 0..60 {
        assert_eq!(
            addresses(&s.query("mail.example.test.", RecordType::A)),
            vec!["192.0.2.25"]
        );
    }
    let tcp = s.tcp(&query("mail.example.test.", RecordType::A));
    assert_eq!(addresses(&tcp), vec!["192.0.2.25"]);
}
