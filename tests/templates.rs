//! The template path (responses encoded once, reused with the query's ID,
//! flags, question, cookie and ECS patched in) answers every query exactly
//! as the full path (decode, look up, encode) does.
//!
//! Each case asks one server a query and then a variant of it (another ID,
//! case, RD/CD, cookie, ECS address in the same cluster): the variant takes the
//! template path. A fresh server, whose first query always takes the full
//! path, answers the variant too; both answers must be the same message.
//! Queries vary the DO bit, NSID (asked of a server with or without one)
//! and DNS Cookies: a client cookie alone, with a valid server cookie
//! (echoed as it came) or with a forged one (answered with a fresh one).
//! The zone is signed or not: signed answers to DO queries hold the same
//! RRSIGs and NSECs on both paths (the two servers share the zone's
//! signature cache, as the threads of one server do).

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::EdnsCode;
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, Record, RecordType};
use mirrordns::dns::{Catalog, CookieSecret, Handler, Options, RrlConfig, Transport};
use mirrordns::dnssec::{KeyAlgorithm, ZoneKey, ZoneSigner};
use mirrordns::steering::{Engine, MeasurementRequest};
use mirrordns::zone::{ZoneSet, load_str};
use proptest::prelude::*;

const ZONE: &str = include_str!("fixtures/zones/example.test.yaml");
const SOURCE: &str = "10.1.0.9";
const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";
const NSID: &[u8] = b"ns1.test";

fn secret() -> CookieSecret {
    CookieSecret::from_hex(SECRET).unwrap()
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// The signer of the zone when it is signed: one for every server.
fn signer() -> Arc<ZoneSigner> {
    static SIGNER: OnceLock<Arc<ZoneSigner>> = OnceLock::new();
    SIGNER
        .get_or_init(|| {
            let key = ZoneKey::generate(KeyAlgorithm::EcdsaP256Sha256).unwrap();
            Arc::new(ZoneSigner::new(
                Name::from_ascii("example.test.").unwrap(),
                Arc::new(key),
            ))
        })
        .clone()
}

/// A server whose client network 10.1.0.0/16 is learned (fra fastest) in
/// every cluster (`v4only` has /20s), so steered answers there do not
/// rotate between queries; with an NSID or without, signed or not.
fn server(nsid: bool, signed: bool) -> Handler {
    let mut zone = load_str(Path::new("example.test.yaml"), ZONE).unwrap();
    if signed {
        zone.set_signer(signer());
    }
    let zones = ZoneSet::new(vec![Arc::new(zone)]);
    let engine = Engine::default();
    let steering = engine.bind(&zones);
    let measurements: Vec<MeasurementRequest> = (0..16)
        .flat_map(|slash20| {
            [("fra", 10.0), ("nyc", 20.0), ("sin", 30.0)].map(|(mirror, ms)| MeasurementRequest {
                mirror: mirror.to_string(),
                client: format!("10.1.{}.0/24", slash20 * 16),
                rtt_ms: Some(ms),
                ..Default::default()
            })
        })
        .collect();
    engine
        .apply(&measurements, mirrordns::steering::now())
        .unwrap();
    let rrl = RrlConfig {
        rate: 0,
        slip: 2,
        exempt: Vec::new(),
    };
    // The engine lives on in the handles the catalog holds.
    let options = Options {
        rrl,
        nsid: nsid.then(|| NSID.to_vec()),
        cookie_secret: secret(),
    };
    Handler::with_options(Catalog::new(zones, steering), options)
}

/// The COOKIE option a query carries: its bytes, and whether its server
/// cookie is ours, valid and fresh (so that it comes back as it went).
#[derive(Clone, Debug)]
struct Cookie {
    bytes: Vec<u8>,
    echoed: bool,
}

/// A client cookie alone, with a server cookie of ours made a while ago,
/// or with a forged one (ours, for another client cookie).
fn cookie() -> impl Strategy<Value = Cookie> {
    let source: IpAddr = SOURCE.parse().unwrap();
    let server = move |client: &[u8; 8], age: u32| {
        secret().server_cookie(client, [0; 3], now() - age, source)
    };
    prop_oneof![
        any::<[u8; 8]>().prop_map(|c| Cookie {
            bytes: c.to_vec(),
            echoed: false
        }),
        (
            any::<[u8; 8]>(),
            prop::sample::select(vec![0u32, 5, 600, 2000])
        )
            .prop_map(move |(c, age)| Cookie {
                bytes: [&c[..], &server(&c, age)[..]].concat(),
                echoed: age < 1800,
            }),
        any::<[u8; 8]>().prop_map(move |c| Cookie {
            bytes: [&c[..], &server(&[0; 8], 0)[..]].concat(),
            echoed: false,
        }),
    ]
}

#[derive(Clone, Debug)]
struct Asked {
    name: String,
    qtype: RecordType,
    id: u16,
    rd: bool,
    cd: bool,
    /// Per letter of the name: upper case?
    case: Vec<bool>,
    /// `None`: no EDNS; else the payload size and an ECS (third octet, source length).
    edns: Option<(u16, Option<(u8, u8)>)>,
    /// With EDNS: the DO bit, NSID asked for, and an RFC 7873 cookie.
    dnssec_ok: bool,
    nsid: bool,
    cookie: Option<Cookie>,
}

impl Asked {
    fn wire(&self) -> Vec<u8> {
        let name: String = self
            .name
            .chars()
            .zip(self.case.iter().cycle())
            .map(|(c, upper)| if *upper { c.to_ascii_uppercase() } else { c })
            .collect();
        let mut m = Message::new(self.id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = self.rd;
        m.metadata.checking_disabled = self.cd;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), self.qtype));
        if let Some((payload, ecs)) = self.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(payload);
            if let Some((third, source)) = ecs {
                let subnet =
                    ClientSubnet::new(format!("10.1.{third}.0").parse().unwrap(), source, 0);
                edns.options_mut().insert(EdnsOption::Subnet(subnet));
            }
            edns.set_dnssec_ok(self.dnssec_ok);
            if self.nsid {
                edns.options_mut()
                    .insert(EdnsOption::Unknown(3, Vec::new()));
            }
            if let Some(c) = &self.cookie {
                edns.options_mut()
                    .insert(EdnsOption::Unknown(10, c.bytes.clone()));
            }
            m.set_edns(edns);
        }
        m.to_vec().unwrap()
    }
}

fn asked() -> impl Strategy<Value = Asked> {
    let names = prop::sample::select(vec![
        "example.test.",
        "www.example.test.",
        "WWW.example.test.",
        "v4only.example.test.",
        "docs.example.test.",
        "mail.example.test.",
        "chain.example.test.",
        "loop1.example.test.",
        "away.example.test.",
        "big.example.test.",
        "x.users.example.test.",
        "known.users.example.test.",
        "a.b.example.test.",
        "host.lab.example.test.",
        "nope.example.test.",
        "_https._tcp.example.test.",
        "example.com.",
    ]);
    let types = prop::sample::select(vec![
        RecordType::A,
        RecordType::AAAA,
        RecordType::MX,
        RecordType::TXT,
        RecordType::NS,
        RecordType::SOA,
        RecordType::ANY,
        RecordType::CNAME,
        RecordType::SRV,
        RecordType::CAA,
        RecordType::DS,
        RecordType::DNSKEY,
    ]);
    let edns = prop::option::of((
        prop::sample::select(vec![0u16, 512, 600, 1232, 4096]),
        prop::option::of((0u8..=255, prop::sample::select(vec![0u8, 16, 20, 24, 32]))),
    ));
    (
        names,
        types,
        any::<u16>(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(any::<bool>(), 1..6),
        edns,
        (any::<bool>(), any::<bool>(), prop::option::of(cookie())),
    )
        .prop_map(
            |(name, qtype, id, rd, cd, case, edns, (dnssec_ok, nsid, cookie))| Asked {
                name: name.to_string(),
                qtype,
                id,
                rd,
                cd,
                case,
                edns: edns
                    .map(|(payload, ecs)| (payload, ecs.map(|(third, s)| (masked(third, s), s)))),
                dnssec_ok,
                nsid,
                cookie,
            },
        )
}

/// The third octet with no bit set beyond a `source`-bit prefix.
fn masked(third: u8, source: u8) -> u8 {
    match source {
        0 | 16 => 0,
        20 => third & 0xf0,
        _ => third,
    }
}

/// The same question again from elsewhere in 10.1.0.0/16, with another ID,
/// case, flags and cookie.
fn variant(
    a: &Asked,
    id: u16,
    (rd, cd, cookie): (bool, bool, Option<Cookie>),
    case: Vec<bool>,
    third: u8,
) -> Asked {
    let edns = a
        .edns
        .map(|(payload, ecs)| (payload, ecs.map(|(_, s)| (masked(third, s), s))));
    Asked {
        id,
        rd,
        cd,
        case,
        edns,
        cookie,
        ..a.clone()
    }
}

/// The server cookie of a response: the client cookie asked with, then a
/// server cookie of ours for it (echoed when the query's was valid and
/// fresh, else made at the time of the answer).
fn check_cookie(asked: &Asked, response: &Message) -> Result<(), TestCaseError> {
    let option = response
        .edns
        .as_ref()
        .and_then(|e| e.option(EdnsCode::Cookie));
    let Some(cookie) = asked.cookie.as_ref().filter(|_| asked.edns.is_some()) else {
        prop_assert!(option.is_none(), "a cookie nobody asked for");
        return Ok(());
    };
    let Some(EdnsOption::Unknown(10, got)) = option else {
        return Err(TestCaseError::fail(format!("no cookie: {option:?}")));
    };
    let sent = &cookie.bytes;
    prop_assert_eq!(got.len(), 24);
    prop_assert_eq!(&got[..8], &sent[..8], "the client cookie");
    let timestamp = u32::from_be_bytes([got[12], got[13], got[14], got[15]]);
    let client: [u8; 8] = got[..8].try_into().unwrap();
    let ours = secret().server_cookie(&client, [0; 3], timestamp, SOURCE.parse().unwrap());
    prop_assert_eq!(&got[8..], &ours[..], "a server cookie of ours");
    if cookie.echoed {
        prop_assert_eq!(got, sent, "echoed");
    } else {
        prop_assert!(now().abs_diff(timestamp) <= 2, "made now");
    }
    Ok(())
}

/// The message with every owner name lowercased (answers may carry the
/// owner in the case of the question they point back to) and without its
/// cookie, which [`check_cookie`] has looked at.
fn normalized(bytes: &[u8]) -> Message {
    let mut m = Message::from_vec(bytes).unwrap();
    if let Some(e) = m.edns.as_mut() {
        e.options_mut().remove(EdnsCode::Cookie);
    }
    let lower = |records: &mut Vec<Record>| {
        for r in records.iter_mut() {
            r.name = r.name.to_lowercase();
        }
    };
    lower(&mut m.answers);
    lower(&mut m.authorities);
    lower(&mut m.additionals);
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 800, ..ProptestConfig::default() })]

    #[test]
    fn a_reused_response_is_the_one_the_full_path_gives(
        first in asked(),
        id in any::<u16>(),
        rd in any::<bool>(),
        cd in any::<bool>(),
        cookie in prop::option::weighted(0.75, cookie()),
        case in prop::collection::vec(any::<bool>(), 1..6),
        third in 0u8..=255,
        tcp in any::<bool>(),
        nsid in any::<bool>(),
        signed in any::<bool>(),
    ) {
        let transport = if tcp { Transport::Tcp } else { Transport::Udp };
        let source: IpAddr = SOURCE.parse().unwrap();
        let second = variant(&first, id, (rd, cd, cookie), case, third);
        let wire = second.wire();

        let warm = server(nsid, signed);
        warm.handle(&first.wire(), source, transport);
        let reused = warm.handle(&wire, source, transport);
        let fresh = server(nsid, signed).handle(&wire, source, transport);

        let (reused, fresh) = (reused.expect("an answer"), fresh.expect("an answer"));
        prop_assert_eq!(&reused[..2], &wire[..2], "the ID");
        let question_end = 12 + wire[12..].iter().position(|b| *b == 0).unwrap() + 5;
        prop_assert_eq!(&reused[12..question_end], &wire[12..question_end], "the question as asked");
        let (reused_m, fresh_m) = (Message::from_vec(&reused).unwrap(), Message::from_vec(&fresh).unwrap());
        check_cookie(&second, &reused_m)?;
        check_cookie(&second, &fresh_m)?;
        if let Some(edns) = &reused_m.edns {
            prop_assert_eq!(edns.flags().dnssec_ok, second.dnssec_ok, "the DO bit");
            let nsid_option = edns.option(EdnsCode::NSID).is_some();
            prop_assert_eq!(nsid_option, nsid && second.nsid, "NSID when asked of a server with one");
        }
        if signed && second.dnssec_ok && second.edns.is_some() && !reused_m.answers.is_empty() {
            let signatures = reused_m.answers.iter().filter(|r| r.record_type() == RecordType::RRSIG).count();
            prop_assert!(signatures > 0, "a signed answer: {:?}", reused_m.answers);
        }
        prop_assert_eq!(normalized(&reused), normalized(&fresh));
    }
}

/// A signed answer kept as a template is served only until its signatures
/// are due for refresh; then the full path signs again and the template is
/// replaced, so a reused answer never outlives its signatures.
#[test]
fn a_signed_template_is_replaced_when_its_signatures_are_due() {
    let key = ZoneKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let validity = mirrordns::dnssec::Validity {
        inception_skew: 0,
        min_lifetime: 2,
        jitter: 0,
        refresh_before: 1,
    };
    let signer = ZoneSigner::with_options(
        Name::from_ascii("example.test.").unwrap(),
        Arc::new(key),
        validity,
        1000,
    );
    let mut zone = load_str(Path::new("example.test.yaml"), ZONE).unwrap();
    zone.set_signer(Arc::new(signer));
    let zones = ZoneSet::new(vec![Arc::new(zone)]);
    let steering = Engine::default().bind(&zones);
    let no_rrl = RrlConfig {
        rate: 0,
        slip: 2,
        exempt: Vec::new(),
    };
    let handler = Handler::new(Catalog::new(zones, steering), no_rrl);
    let asked = Asked {
        name: "mail.example.test.".to_string(),
        qtype: RecordType::A,
        id: 7,
        rd: false,
        cd: false,
        case: vec![false],
        edns: Some((1232, None)),
        dnssec_ok: true,
        nsid: false,
        cookie: None,
    };
    let source: IpAddr = SOURCE.parse().unwrap();
    let expiration = || {
        let response = handler
            .handle(&asked.wire(), source, Transport::Udp)
            .unwrap();
        let message = Message::from_vec(&response).unwrap();
        let rrsig = message
            .answers
            .iter()
            .find(|r| r.record_type() == RecordType::RRSIG)
            .expect("an RRSIG")
            .data
            .to_string();
        rrsig.split_whitespace().nth(4).unwrap().to_string()
    };
    let first = expiration();
    assert_eq!(expiration(), first, "the template, while fresh");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while expiration() == first {
        assert!(std::time::Instant::now() < deadline, "never signed again");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
