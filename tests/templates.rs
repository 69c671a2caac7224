//! The template path (responses encoded once, reused with the query's ID,
//! flags, question and ECS patched in) answers every query exactly as the
//! full path (decode, look up, encode) does.
//!
//! Each case asks one server a query and then a variant of it (another ID,
//! case, RD/CD, cookie, ECS address in the same cluster): the variant takes the
//! template path. A fresh server, whose first query always takes the full
//! path, answers the variant too; both answers must be the same message.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, Record, RecordType};
use mirrordns::dns::{Catalog, Handler, RrlConfig, Transport};
use mirrordns::steering::{Engine, MeasurementRequest};
use mirrordns::zone::{ZoneSet, load_str};
use proptest::prelude::*;

const ZONE: &str = include_str!("fixtures/zones/example.test.yaml");
const SOURCE: &str = "10.1.0.9";

/// A server whose client network 10.1.0.0/16 is learned (fra fastest) in
/// every cluster (`v4only` has /20s), so steered answers there do not
/// rotate between queries.
fn server() -> Handler {
    let zone = load_str(Path::new("example.test.yaml"), ZONE).unwrap();
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
    Handler::new(Catalog::new(zones, steering), rrl)
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
    /// With EDNS, an RFC 7873 client cookie too (ignored by the answer).
    cookie: bool,
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
            if self.cookie {
                edns.options_mut()
                    .insert(EdnsOption::Unknown(10, vec![0x5a; 8]));
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
        any::<bool>(),
    )
        .prop_map(|(name, qtype, id, rd, cd, case, edns, cookie)| Asked {
            name: name.to_string(),
            qtype,
            id,
            rd,
            cd,
            case,
            edns: edns.map(|(payload, ecs)| (payload, ecs.map(|(third, s)| (masked(third, s), s)))),
            cookie,
        })
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
    (rd, cd, cookie): (bool, bool, bool),
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

/// The message with every owner name lowercased: answers may carry the
/// owner in the case of the question they point back to.
fn normalized(bytes: &[u8]) -> Message {
    let mut m = Message::from_vec(bytes).unwrap();
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
        cookie in any::<bool>(),
        case in prop::collection::vec(any::<bool>(), 1..6),
        third in 0u8..=255,
        tcp in any::<bool>(),
    ) {
        let transport = if tcp { Transport::Tcp } else { Transport::Udp };
        let source: IpAddr = SOURCE.parse().unwrap();
        let second = variant(&first, id, (rd, cd, cookie), case, third);

        let warm = server();
        warm.handle(&first.wire(), source, transport);
        let reused = warm.handle(&second.wire(), source, transport);
        let fresh = server().handle(&second.wire(), source, transport);

        let (reused, fresh) = (reused.expect("an answer"), fresh.expect("an answer"));
        prop_assert_eq!(&reused[..2], &second.wire()[..2], "the ID");
        let question_end = 12 + second.wire()[12..].iter().position(|b| *b == 0).unwrap() + 5;
        prop_assert_eq!(&reused[12..question_end], &second.wire()[12..question_end], "the question as asked");
        prop_assert_eq!(normalized(&reused), normalized(&fresh));
    }
}
