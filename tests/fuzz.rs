//! Hostile input never crashes the server: property-based fuzzing of the
//! request path (wire bytes in, wire bytes out, steering and signing in
//! between, the zone signed and half the seed queries with DO), the
//! zone loader and the measurement parser, and a corpus of hostile packets
//! in `tests/fixtures/hostile/`. Bounded: a few thousand cases each.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use mirrordns::dns::{Catalog, Handler, RrlConfig, Transport};
use mirrordns::dnssec::{KeyAlgorithm, ZoneKey, ZoneSigner};
use mirrordns::steering::Engine;
use mirrordns::zone::{ZoneSet, load_str};
use proptest::prelude::*;

const ZONE: &str = include_str!("fixtures/zones/example.test.yaml");

/// One server for every case: building it per case would spend the fuzzing
/// time loading the zone.
static SERVER: LazyLock<(Handler, Engine)> = LazyLock::new(build);

fn handler() -> &'static (Handler, Engine) {
    &SERVER
}

/// The zone is signed: a request with DO takes the signing path too.
fn build() -> (Handler, Engine) {
    let mut zone = load_str(Path::new("example.test.yaml"), ZONE).unwrap();
    let key = ZoneKey::generate(KeyAlgorithm::EcdsaP256Sha256).unwrap();
    zone.set_signer(Arc::new(ZoneSigner::new(
        zone.origin.clone(),
        Arc::new(key),
    )));
    let zones = ZoneSet::new(vec![Arc::new(zone)]);
    let engine = Engine::default();
    let steering = engine.bind(&zones);
    let rrl = RrlConfig {
        rate: 0,
        slip: 2,
        exempt: Vec::new(),
    };
    (Handler::new(Catalog::new(zones, steering), rrl), engine)
}

/// The reply, if any, is a well-formed DNS message with the request's ID.
fn check_reply(request: &[u8], reply: Option<Vec<u8>>) -> Result<(), TestCaseError> {
    if let Some(reply) = reply {
        let message = Message::from_vec(&reply)
            .map_err(|e| TestCaseError::fail(format!("malformed reply: {e}")))?;
        prop_assert_eq!(message.metadata.message_type, MessageType::Response);
        if request.len() >= 2 {
            prop_assert_eq!(
                message.metadata.id,
                u16::from_be_bytes([request[0], request[1]])
            );
        }
    }
    Ok(())
}

fn valid_queries() -> Vec<Vec<u8>> {
    let names = [
        "www.example.test.",
        "mail.example.test.",
        "a.users.example.test.",
        "nope.example.test.",
        "x.lab.example.test.",
        "example.com.",
    ];
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        for rtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::TXT,
            RecordType::ANY,
            RecordType::NSEC,
            RecordType::RRSIG,
            RecordType::DS,
        ] {
            let mut m = Message::new(i as u16, MessageType::Query, OpCode::Query);
            m.add_query(Query::query(Name::from_ascii(n).unwrap(), rtype));
            let mut edns = Edns::new();
            edns.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(
                    "10.2.3.0".parse().unwrap(),
                    24,
                    0,
                )));
            // Every other query with DO: the mutations start from signed
            // answers too.
            edns.set_dnssec_ok(out.len() % 2 == 0);
            m.set_edns(edns);
            out.push(m.to_vec().unwrap());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_crash_the_request_path(bytes in prop::collection::vec(any::<u8>(), 0..600), v6 in any::<bool>()) {
        let (h, _) = handler();
        let source: IpAddr = if v6 { "2001:db8::9".parse().unwrap() } else { "198.51.100.9".parse().unwrap() };
        for transport in [Transport::Udp, Transport::Tcp] {
            check_reply(&bytes, h.handle(&bytes, source, transport))?;
        }
    }

    #[test]
    fn mutated_queries_never_crash_the_request_path(
        which in 0usize..24,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (h, _) = handler();
        let mut bytes = valid_queries()[which].clone();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        check_reply(&bytes, h.handle(&bytes, "198.51.100.9".parse().unwrap(), Transport::Udp))?;
    }

    #[test]
    fn mutated_zone_files_never_crash_the_loader(
        edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![b' ', b'\n', b':', b'{', b'}', b'[', b']', b'-', b'\'', b'"', b'.', b'*', b'0', b'a', b'#', b',', 0xff])), 1..6)
    ) {
        let mut bytes = ZONE.as_bytes().to_vec();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let text = String::from_utf8_lossy(&bytes);
        // Whatever it says, it says it without panicking, and errors have positions.
        if let Err(errors) = load_str(Path::new("fuzzed.yaml"), &text) {
            prop_assert!(!errors.0.is_empty());
        }
    }

    #[test]
    fn arbitrary_text_never_crashes_the_loader(text in "[ -~\n]{0,400}") {
        let _ = load_str(Path::new("random.yaml"), &text);
    }

    #[test]
    fn arbitrary_measurement_bodies_never_crash_the_parser(
        body in prop_oneof![
            "[ -~]{0,300}".prop_map(String::into_bytes),
            prop::collection::vec(("[a-z]{0,6}", "[0-9./:a-f]{0,20}", prop::option::of(-1e6f64..1e6), any::<bool>()), 0..20).prop_map(|items| {
                let list: Vec<String> = items.iter().map(|(m, c, rtt, timeout)| {
                    format!("{{\"mirror\":\"{m}\",\"client\":\"{c}\",\"rtt_ms\":{},\"timeout\":{timeout}}}", rtt.map_or("null".to_string(), |r| r.to_string()))
                }).collect();
                format!("{{\"measurements\":[{}]}}", list.join(",")).into_bytes()
            }),
        ]
    ) {
        let (_, engine) = handler();
        if let Ok(batch) = mirrordns::protocol::parse_batch(&body) {
            let batch: Vec<_> = batch.into_iter().map(mirrordns::steering::MeasurementRequest::from).collect();
            let _ = engine.validate(&batch, mirrordns::steering::now());
        }
    }
}

#[test]
fn the_hostile_corpus_gets_well_formed_replies_or_none() {
    let (h, _) = handler();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let hex = std::fs::read_to_string(&path).unwrap();
        let bytes: Vec<u8> = (0..hex.trim().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex.trim()[i..i + 2], 16).unwrap())
            .collect();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let reply = h.handle(&bytes, "198.51.100.9".parse().unwrap(), Transport::Udp);
        if let Some(r) = &reply {
            let message =
                Message::from_vec(r).unwrap_or_else(|e| panic!("{name}: malformed reply: {e}"));
            const FORMERR: [&str; 4] = [
                "opt-rdlength-beyond-end",
                "two-opts",
                "opt-in-answer-section",
                "two-questions",
            ];
            let expect_formerr = name.starts_with("ecs-") || FORMERR.contains(&name.as_str());
            if expect_formerr {
                assert_eq!(
                    message.metadata.response_code,
                    ResponseCode::FormErr,
                    "{name}"
                );
            }
        }
        if name == "response-bit-set" || name == "header-only-truncated" {
            assert!(
                reply.is_none(),
                "{name}: no reply to a response or to less than a header"
            );
        }
        seen += 1;
    }
    assert!(seen >= 25, "the corpus is there: {seen} files");
}
