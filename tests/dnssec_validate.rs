//! The DNSSEC building blocks against a real validator: BIND's `delv`, with
//! the zone's key as trust anchor, validates answers made of
//! `mirrordns::dnssec` signatures and compact-denial NSECs (RFC 9824).
//!
//! The answers come from a small fixed responder in this file, not from the
//! server's answer path (`tests/dnssec_serve.rs` checks that): this checks
//! the building blocks alone, the signatures, the NSEC records with NXNAME
//! and the apex key records, as a validator reads them.

mod common;

use std::net::UdpSocket;
use std::str::FromStr;
use std::sync::Arc;
use std::thread;

use common::delv;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::{A, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use mirrordns::dnssec::{KeyAlgorithm, ZoneKey, ZoneSigner, nodata_nsec, nxname_nsec, unix_now};

const TTL: u32 = 300;
const NEGATIVE_TTL: u32 = 60;

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

/// A zone: apex SOA, NS, DNSKEY, CDS, CDNSKEY; ns1 and www with A records;
/// a.ent (so ent is an empty non-terminal); a wildcard *.wild.
struct Zone {
    signer: ZoneSigner,
    rrsets: Vec<(Name, RecordType, Vec<RData>)>,
    soa: RData,
}

impl Zone {
    fn new(algorithm: KeyAlgorithm) -> Zone {
        let origin = name("example.test.");
        let signer = ZoneSigner::new(
            origin.clone(),
            Arc::new(ZoneKey::generate(algorithm).unwrap()),
        );
        let soa = RData::SOA(SOA::new(
            name("ns1.example.test."),
            name("hostmaster.example.test."),
            1,
            3600,
            600,
            86400,
            NEGATIVE_TTL,
        ));
        let a = |ip: [u8; 4]| RData::A(A::from(std::net::Ipv4Addr::from(ip)));
        let rrsets = vec![
            (origin.clone(), RecordType::SOA, vec![soa.clone()]),
            (
                origin.clone(),
                RecordType::NS,
                vec![RData::NS(NS(name("ns1.example.test.")))],
            ),
            (
                origin.clone(),
                RecordType::DNSKEY,
                vec![signer.dnskey_rdata()],
            ),
            (
                origin.clone(),
                RecordType::CDS,
                vec![signer.cds_rdata().unwrap()],
            ),
            (
                origin.clone(),
                RecordType::CDNSKEY,
                vec![signer.cdnskey_rdata()],
            ),
            (
                name("ns1.example.test."),
                RecordType::A,
                vec![a([127, 0, 0, 1])],
            ),
            (
                name("www.example.test."),
                RecordType::A,
                vec![a([192, 0, 2, 1]), a([192, 0, 2, 2])],
            ),
            (
                name("a.ent.example.test."),
                RecordType::A,
                vec![a([192, 0, 2, 5])],
            ),
            (
                name("*.wild.example.test."),
                RecordType::A,
                vec![a([192, 0, 2, 7])],
            ),
        ];
        Zone {
            signer,
            rrsets,
            soa,
        }
    }

    /// Records and their RRSIG, signed at `owner` (the query name).
    fn signed(&self, owner: &Name, rtype: RecordType, rdatas: &[RData], ttl: u32) -> Vec<Record> {
        let now = unix_now();
        let sig = self
            .signer
            .signature(owner, rtype, ttl, rdatas, now)
            .unwrap();
        let mut out: Vec<Record> = rdatas
            .iter()
            .map(|r| Record::from_rdata(owner.clone(), ttl, r.clone()))
            .collect();
        out.push(sig.record(owner, ttl));
        out
    }

    fn types_at(&self, owner: &Name) -> Vec<RecordType> {
        self.rrsets
            .iter()
            .filter(|(n, _, _)| n == owner)
            .map(|(_, t, _)| *t)
            .collect()
    }

    /// Answer and authority for a query with DO, as RFC 9824 has them.
    fn answer(&self, qname: &Name, qtype: RecordType) -> (Vec<Record>, Vec<Record>) {
        let now = unix_now();
        let origin = self.signer.zone().clone();
        if let Some((_, _, rdatas)) = self
            .rrsets
            .iter()
            .find(|(n, t, _)| n == qname && *t == qtype)
        {
            return (self.signed(qname, qtype, rdatas, TTL), vec![]);
        }
        // A name exists when it or a name below it has data.
        let exists = self.rrsets.iter().any(|(n, _, _)| qname.zone_of(n));
        let wildcard = name("*.wild.example.test.");
        let nsec = if exists {
            nodata_nsec(qname, self.types_at(qname))
        } else if wildcard.base_name().zone_of(qname) {
            // Wildcard data is signed at the query name (section 3.3).
            if let Some((_, _, rdatas)) = self
                .rrsets
                .iter()
                .find(|(n, t, _)| *n == wildcard && *t == qtype)
            {
                return (self.signed(qname, qtype, rdatas, TTL), vec![]);
            }
            nodata_nsec(qname, self.types_at(&wildcard))
        } else {
            nxname_nsec(qname)
        };
        let mut authority = self.signed(
            &origin,
            RecordType::SOA,
            std::slice::from_ref(&self.soa),
            NEGATIVE_TTL,
        );
        authority.extend(
            self.signer
                .denial(qname, nsec, NEGATIVE_TTL, now)
                .unwrap()
                .0,
        );
        (vec![], authority)
    }
}

/// Serves `zone` on a loopback UDP port until the process ends.
fn serve(zone: Arc<Zone>) -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            let mut response = Message::response(query.metadata.id, query.metadata.op_code);
            response.metadata.recursion_desired = query.metadata.recursion_desired;
            response.metadata.authoritative = true;
            response.queries = query.queries.clone();
            match query.queries.first() {
                Some(q) if zone.signer.zone().zone_of(q.name()) => {
                    let (answers, authorities) = zone.answer(q.name(), q.query_type());
                    response.answers = answers;
                    response.authorities = authorities;
                }
                _ => response.metadata.response_code = ResponseCode::Refused,
            }
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            edns.set_dnssec_ok(true);
            response.set_edns(edns);
            if let Ok(bytes) = response.to_vec() {
                let _ = socket.send_to(&bytes, from);
            }
        }
    });
    port
}

#[test]
fn delv_validates_signed_answers_and_compact_denials() {
    common::program("delv", "bind9-dnsutils");
    let dir = tempfile::tempdir().unwrap();
    for algorithm in KeyAlgorithm::ALL {
        let zone = Arc::new(Zone::new(algorithm));
        let anchor = zone.signer.dnskey().to_string();
        let port = serve(zone.clone());
        let positive = [
            ("www.example.test.", "A", "192.0.2.2"),
            ("example.test.", "DNSKEY", "257 3"),
            ("example.test.", "CDS", "CDS"),
            ("example.test.", "CDNSKEY", "257 3"),
            ("example.test.", "NS", "ns1.example.test."),
            ("host.wild.example.test.", "A", "192.0.2.7"),
            ("a.b.wild.example.test.", "A", "192.0.2.7"),
        ];
        for (qname, qtype, expected) in positive {
            let out = delv(
                dir.path(),
                ([127, 0, 0, 1], port).into(),
                &anchor,
                qname,
                qtype,
            );
            assert!(
                out.contains("; fully validated") && out.contains(expected),
                "{algorithm} {qname} {qtype}: {out}"
            );
        }
        // NODATA, an empty non-terminal, wildcard NODATA, and names that do
        // not exist (NOERROR with NXNAME, type 128, RFC 9824 section 3.1).
        let negative = [
            ("www.example.test.", "AAAA", false),
            ("ent.example.test.", "A", false),
            ("host.wild.example.test.", "TXT", false),
            ("nope.example.test.", "A", true),
            ("deep.nope.example.test.", "MX", true),
        ];
        for (qname, qtype, nxname) in negative {
            let out = delv(
                dir.path(),
                ([127, 0, 0, 1], port).into(),
                &anchor,
                qname,
                qtype,
            );
            assert!(
                out.contains("; negative response, fully validated")
                    && out.contains(&format!("NSEC \\000.{qname} "))
                    && out.contains("TYPE128") == nxname,
                "{algorithm} {qname} {qtype}: {out}"
            );
        }
        // The control: another key as trust anchor validates nothing.
        let other = ZoneKey::generate(algorithm).unwrap().dnskey().to_string();
        let out = delv(
            dir.path(),
            ([127, 0, 0, 1], port).into(),
            &other,
            "www.example.test.",
            "A",
        );
        assert!(
            !out.contains("fully validated") && out.contains("resolution failed"),
            "{out}"
        );
    }
}
