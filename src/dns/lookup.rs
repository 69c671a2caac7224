//! Resolving one question against the loaded zones: RFC 1034 section 4.3.2
//! for an authoritative server, with RFC 4592 wildcards, RFC 8482 ANY, and
//! steered service names. Produces sections, not wire bytes, and says what a
//! negative answer denies, for [`super::signed`] to prove in a signed zone.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::HINFO;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use ipnet::IpNet;
use std::net::IpAddr;

use super::Catalog;
use crate::steering::Decision;
use crate::zone::{Family, Found, Node, Zone};

/// The sections of an answer and what the header and ECS option must say.
#[derive(Debug, Default)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// The service that decided the answer; `None` means the answer does
    /// not depend on the client (ECS scope 0).
    pub steered_by: Option<SteeredBy>,
    /// The zone answered from (an index into the catalog's zones).
    pub zone: Option<usize>,
    /// What the answer denies, which a signed answer proves.
    pub denial: Option<Denial>,
}

/// What a negative answer (or a referral) says does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The name does not exist.
    Name(Name),
    /// The name exists with these types (and no others).
    Types(Name, Vec<RecordType>),
    /// The zone cut has no DS: the child is unsigned.
    Ds(Name),
}

/// The service behind a steered answer (indices into the catalog), its
/// pick (a mirror, or `None` for all of them, failing open) and the ECS
/// scope prefix length the answer holds for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SteeredBy {
    pub zone: usize,
    pub service: usize,
    pub family: Family,
    pub mirror: Option<usize>,
    pub scope: u8,
}

/// How many CNAMEs are followed inside a zone before giving up on a loop.
const MAX_CNAME_HOPS: usize = 8;

impl Catalog {
    /// Answers `qname`/`qtype` for `client` (the ECS prefix or the source address).
    pub fn lookup(&self, qname: &Name, qtype: RecordType, client: IpNet) -> Answer {
        self.lookup_decided(qname, qtype, client, client.addr(), None)
    }

    /// [`Catalog::lookup`] with the steering decision for the service the
    /// name leads to already made (by the template path, which must not make
    /// it twice: learning clusters rotate their mirrors per decision).
    pub fn lookup_decided(
        &self,
        qname: &Name,
        qtype: RecordType,
        client: IpNet,
        resolver: IpAddr,
        decided: Option<Decision>,
    ) -> Answer {
        let Some((zone_index, zone)) = self.zones.zone_answering(qname, qtype) else {
            return Answer {
                rcode: ResponseCode::Refused,
                ..Answer::default()
            };
        };
        let mut answer = Answer {
            authoritative: true,
            zone: Some(zone_index),
            ..Answer::default()
        };
        let mut name = qname.clone();
        for hop in 0..=MAX_CNAME_HOPS {
            let lower = LowerName::new(&name);
            let next = match zone.find(&lower) {
                Found::Referral { ns, cut }
                    if qtype == RecordType::DS && ns.records[0].name == name =>
                {
                    // DS lives on the parent side of the cut: ours to answer.
                    match cut.rrset(RecordType::DS) {
                        Some(ds) => answer.answers.extend(ds.records),
                        None => {
                            nodata(zone, &mut answer);
                            answer.denial = Some(Denial::Ds(name.clone()));
                        }
                    }
                    None
                }
                Found::Referral { ns, cut } => {
                    match cut.rrset(RecordType::DS) {
                        Some(ds) => answer.authorities.extend(ds.records),
                        None => answer.denial = Some(Denial::Ds(ns.records[0].name.clone())),
                    }
                    if hop == 0 {
                        referral(zone, &ns.records, &mut answer);
                    } else {
                        // RFC 1034 section 4.3.2 step 3b: a CNAME chain into
                        // a delegation ends with its referral; the CNAMEs
                        // before it stay authoritative.
                        add_referral(zone, &ns.records, &mut answer);
                    }
                    None
                }
                Found::NxDomain => {
                    answer.rcode = ResponseCode::NXDomain;
                    answer.authorities.push(zone.negative_soa.clone());
                    answer.denial = Some(Denial::Name(name.clone()));
                    None
                }
                Found::Node(node) | Found::Wildcard(node) => {
                    let steer = Steer {
                        client,
                        resolver,
                        decided,
                    };
                    self.answer_node(zone_index, zone, &node, &name, qtype, steer, &mut answer)
                }
            };
            match next {
                Some(target) if zone.origin.zone_of(&target) => name = target,
                _ => break,
            }
        }
        answer
    }

    /// Fills `answer` from one node; returns a CNAME target to follow.
    #[allow(clippy::too_many_arguments)]
    fn answer_node(
        &self,
        zone_index: usize,
        zone: &Zone,
        node: &Node,
        owner: &Name,
        qtype: RecordType,
        steer: Steer,
        answer: &mut Answer,
    ) -> Option<Name> {
        if qtype == RecordType::ANY {
            // RFC 8482 answers only where data exists: a CNAME is answered
            // as itself (section 4.1; not followed, as Knot and BIND do),
            // an empty non-terminal is NODATA, anything else one HINFO.
            if let Some(cname) = node.rrset(RecordType::CNAME) {
                answer.answers.push(with_owner(&cname.records[0], owner));
            } else if node.is_empty_non_terminal() {
                nodata(zone, answer);
                answer.denial = Some(Denial::Types(owner.clone(), Vec::new()));
            } else {
                answer.answers.push(rfc8482_hinfo(owner, zone.default_ttl));
            }
            return None;
        }
        if let (Some(service_index), Some(family)) = (node.service, family_of(qtype)) {
            let answered_before = answer.answers.len();
            self.answer_service(zone_index, zone, service_index, family, steer, answer);
            if answer.answers.len() == answered_before {
                answer.denial = Some(Denial::Types(owner.clone(), types_at(zone, node)));
            }
            return None;
        }
        if let Some(signer) = zone.signer()
            && zone.is_apex(node)
            && let Some(rdata) = signer.apex_rdata(qtype)
        {
            answer
                .answers
                .push(Record::from_rdata(owner.clone(), zone.soa.ttl, rdata));
            return None;
        }
        if qtype != RecordType::CNAME
            && let Some(cname) = node.rrset(RecordType::CNAME)
        {
            let record = with_owner(&cname.records[0], owner);
            let target = match &record.data {
                RData::CNAME(c) => c.0.clone(),
                _ => return None,
            };
            answer.answers.push(record);
            return Some(target);
        }
        match node.rrset(qtype) {
            Some(set) => {
                answer
                    .answers
                    .extend(set.records.iter().map(|r| with_owner(r, owner)));
                add_target_addresses(zone, &set.records, &mut answer.additionals);
            }
            None => {
                nodata(zone, answer);
                answer.denial = Some(Denial::Types(owner.clone(), types_at(zone, node)));
            }
        }
        None
    }

    fn answer_service(
        &self,
        zone_index: usize,
        zone: &Zone,
        service_index: usize,
        family: Family,
        steer: Steer,
        answer: &mut Answer,
    ) {
        let service = &zone.services[service_index];
        let handle = &self.steering[zone_index][service_index];
        match steer
            .decided
            .or_else(|| handle.decide_for(steer.client, steer.resolver, family))
        {
            Some(decision) => {
                match decision.mirror {
                    Some(mirror) => answer
                        .answers
                        .extend_from_slice(service.records(mirror, family)),
                    // Fail open: every mirror is drained or down.
                    None => (0..service.mirrors.len())
                        .for_each(|m| answer.answers.extend_from_slice(service.records(m, family))),
                }
                answer.steered_by = Some(SteeredBy {
                    zone: zone_index,
                    service: service_index,
                    family,
                    mirror: decision.mirror,
                    scope: decision.scope,
                });
            }
            None => nodata(zone, answer),
        }
    }
}

/// Who a steered answer is for, or the decision already made for them.
#[derive(Clone, Copy)]
struct Steer {
    client: IpNet,
    /// The query's source, for an ECS client a resolver that asks for it.
    resolver: IpAddr,
    decided: Option<Decision>,
}

fn family_of(qtype: RecordType) -> Option<Family> {
    match qtype {
        RecordType::A => Some(Family::V4),
        RecordType::AAAA => Some(Family::V6),
        _ => None,
    }
}

/// The types a node has, as its NSEC lists them: its RRsets, a service's
/// address families, and DNSSEC's own at the apex of a signed zone.
fn types_at(zone: &Zone, node: &Node) -> Vec<RecordType> {
    let mut types: Vec<RecordType> = node.types().collect();
    if let Some(service) = node.service.map(|s| &zone.services[s]) {
        for (family, rtype) in [(Family::V4, RecordType::A), (Family::V6, RecordType::AAAA)] {
            if service.has_family(family) {
                types.push(rtype);
            }
        }
    }
    if zone.signer().is_some() && zone.is_apex(node) {
        types.extend(crate::dnssec::denial::APEX_TYPES);
    }
    types
}

fn nodata(zone: &Zone, answer: &mut Answer) {
    answer.authorities.push(zone.negative_soa.clone());
}

/// A referral: not authoritative, the child's NS set in authority, glue in additional.
fn referral(zone: &Zone, ns: &[Record], answer: &mut Answer) {
    answer.authoritative = false;
    add_referral(zone, ns, answer);
}

/// The child's NS set in authority and its glue in additional.
fn add_referral(zone: &Zone, ns: &[Record], answer: &mut Answer) {
    answer.authorities.extend_from_slice(ns);
    add_target_addresses(zone, ns, &mut answer.additionals);
}

/// RFC 8482 section 4.2: answer ANY with one synthesised HINFO record.
fn rfc8482_hinfo(owner: &Name, ttl: u32) -> Record {
    Record::from_rdata(
        owner.clone(),
        ttl,
        RData::HINFO(HINFO::new("RFC8482".to_string(), String::new())),
    )
}

/// Wildcard answers carry the asked name as owner (RFC 4592 section 3.3.1).
fn with_owner(record: &Record, owner: &Name) -> Record {
    let mut r = record.clone();
    if r.name != *owner {
        r.name = owner.clone();
    }
    r
}

/// In-zone addresses of NS, MX and SRV targets (glue and additional section processing).
fn add_target_addresses(zone: &Zone, records: &[Record], additionals: &mut Vec<Record>) {
    for record in records {
        let target = match &record.data {
            RData::NS(ns) => &ns.0,
            RData::MX(mx) => &mx.exchange,
            RData::SRV(srv) => &srv.target,
            _ => continue,
        };
        if !zone.origin.zone_of(target) {
            continue;
        }
        if let Some(node) = zone.node(&LowerName::new(target)) {
            for rtype in [RecordType::A, RecordType::AAAA] {
                if let Some(set) = node.rrset(rtype) {
                    additionals.extend(set.records.iter().cloned());
                }
            }
        }
    }
}
