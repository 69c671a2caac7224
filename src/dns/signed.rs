//! DNSSEC in one answer (SPEC section 1a): for a query with DO to a signed
//! zone, the RRSIG of every authoritative RRset and the one NSEC of compact
//! denial (RFC 9824) for what the answer denies. Signatures come from the
//! zone's signature cache ([`crate::dnssec::ZoneSigner`]), so an RRset is
//! signed once and its signature reused until it is due for refresh; this
//! only says which RRsets get one (RFC 4035 section 3.1).
//!
//! - Answer section: every RRset, at the owner it is served with (a
//!   wildcard expansion is signed at the query name, RFC 9824 section 3.3,
//!   so it needs no proof beside it).
//! - Authority section: the SOA and DS, never a delegation's NS (the
//!   child's, not ours to sign), then the NSEC of the denial with its RRSIG.
//! - Additional section: in-zone addresses, never glue below a cut.
//! - A name that does not exist is answered NOERROR with an NSEC listing
//!   NXNAME (RFC 9824 section 3.1); without DO it stays NXDOMAIN.
//! - A query for NSEC or RRSIG is answered with them, made on demand.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::lookup::{Answer, Denial};
use crate::dnssec::{SignError, SignedRrsig, ZoneSigner, cut_nsec, nodata_nsec, nxname_nsec};
use crate::zone::{Found, Zone};

/// When the signatures in an answer may be served: from the latest
/// inception until the earliest refresh (seconds since the epoch). A
/// response kept for reuse is good exactly as long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    pub not_before: u64,
    pub until: u64,
}

impl Freshness {
    const ALWAYS: Freshness = Freshness {
        not_before: 0,
        until: u64::MAX,
    };

    pub fn holds_at(&self, now: u64) -> bool {
        self.not_before <= now && now < self.until
    }

    fn narrow(&mut self, signature: &SignedRrsig) {
        self.not_before = self.not_before.max(signature.inception);
        self.until = self.until.min(signature.refresh_at);
    }
}

/// Adds the signatures and the denial proof to `answer` to `qname` and
/// `qtype`, from `zone` (the zone that answered, which has a signer);
/// returns how long they hold.
pub fn sign(
    answer: &mut Answer,
    zone: &Zone,
    (qname, qtype): (&Name, RecordType),
    now: u64,
) -> Result<Freshness, SignError> {
    let Some(signer) = zone.signer() else {
        return Ok(Freshness::ALWAYS);
    };
    let mut freshness = Freshness::ALWAYS;
    answer_dnssec_types(answer, zone, (qname, qtype), now, &mut freshness)?;
    let mut sign_section = |records: &mut Vec<Record>, keep: &dyn Fn(&Record) -> bool| {
        let signatures = signatures(signer, records, keep, now, &mut freshness)?;
        records.extend(signatures);
        Ok::<(), SignError>(())
    };
    sign_section(&mut answer.answers, &|_| true)?;
    sign_section(&mut answer.authorities, &|r| {
        r.record_type() != RecordType::NS || r.name == zone.origin
    })?;
    sign_section(&mut answer.additionals, &|r| {
        !matches!(zone.find(&LowerName::new(&r.name)), Found::Referral { .. })
    })?;
    if let Some(denial) = &answer.denial {
        let records = denial_nsec(signer, zone, denial, now, &mut freshness)?;
        answer.authorities.extend(records);
        if answer.rcode == ResponseCode::NXDomain {
            answer.rcode = ResponseCode::NoError;
        }
    }
    Ok(freshness)
}

/// The NSEC of compact denial for `denial`, and its RRSIG.
fn denial_nsec(
    signer: &ZoneSigner,
    zone: &Zone,
    denial: &Denial,
    now: u64,
    freshness: &mut Freshness,
) -> Result<[Record; 2], SignError> {
    let (owner, nsec) = match denial {
        Denial::Name(name) => (name, nxname_nsec(name)),
        Denial::Types(name, types) => (name, nodata_nsec(name, types.iter().copied())),
        Denial::Ds(cut) => (cut, cut_nsec(cut, [RecordType::NS])),
    };
    let (records, signed) =
        signer.denial(&owner.to_lowercase(), nsec, zone.negative_soa.ttl, now)?;
    freshness.narrow(&signed);
    Ok(records)
}

/// A query for NSEC or RRSIG at a name the zone has nothing of that type
/// for: in a signed zone both exist there (made on demand), so the answer
/// holds them. A NODATA would contradict its own NSEC, which lists both
/// types, and validators reject it.
///
/// - NSEC: the NSEC compact denial makes for the name, with its RRSIG.
/// - RRSIG: the signature of each RRset at the name (the RRSIGs
///   themselves unsigned, RFC 4035 section 2.2). A steered name's
///   addresses depend on the client and are left out.
fn answer_dnssec_types(
    answer: &mut Answer,
    zone: &Zone,
    (qname, qtype): (&Name, RecordType),
    now: u64,
    freshness: &mut Freshness,
) -> Result<(), SignError> {
    let Some(signer) = zone.signer() else {
        return Ok(());
    };
    let at_qname = match &answer.denial {
        Some(Denial::Name(name) | Denial::Types(name, _)) => name == qname,
        _ => false,
    };
    if !at_qname || !answer.answers.is_empty() {
        return Ok(());
    }
    let records = match (qtype, &answer.denial) {
        (RecordType::NSEC, Some(denial)) => {
            denial_nsec(signer, zone, denial, now, freshness)?.to_vec()
        }
        (RecordType::RRSIG, Some(Denial::Types(name, _))) => {
            signatures_at(signer, zone, name, now, freshness)?
        }
        _ => return Ok(()),
    };
    if records.is_empty() {
        return Ok(());
    }
    answer.answers = records;
    answer.authorities.clear();
    answer.denial = None;
    answer.rcode = ResponseCode::NoError;
    Ok(())
}

/// The RRSIG of every RRset at `name` (as a wildcard expands to it).
fn signatures_at(
    signer: &ZoneSigner,
    zone: &Zone,
    name: &Name,
    now: u64,
    freshness: &mut Freshness,
) -> Result<Vec<Record>, SignError> {
    let node = match zone.find(&LowerName::new(name)) {
        Found::Node(node) | Found::Wildcard(node) => node,
        _ => return Ok(Vec::new()),
    };
    let mut rrsets: Vec<(RecordType, u32, Vec<RData>)> = node
        .types()
        .filter_map(|t| node.rrset(t))
        .filter_map(|set| {
            let ttl = set.records.first()?.ttl;
            let rdatas = set.records.into_iter().map(|r| r.data).collect();
            Some((set.record_type, ttl, rdatas))
        })
        .collect();
    if zone.is_apex(&node) {
        for rtype in crate::dnssec::denial::APEX_TYPES {
            rrsets.extend(
                signer
                    .apex_rdata(rtype)
                    .map(|r| (rtype, zone.soa.ttl, vec![r])),
            );
        }
    }
    let owner = name.to_lowercase();
    rrsets
        .iter()
        .map(|(rtype, ttl, rdatas)| {
            let signed = signer.signature(&owner, *rtype, *ttl, rdatas, now)?;
            freshness.narrow(&signed);
            Ok(signed.record(name, *ttl))
        })
        .collect()
}

/// The RRSIG records of the RRsets of `records` that `keep` accepts.
fn signatures(
    signer: &ZoneSigner,
    records: &[Record],
    keep: &dyn Fn(&Record) -> bool,
    now: u64,
    freshness: &mut Freshness,
) -> Result<Vec<Record>, SignError> {
    let mut rrsigs = Vec::new();
    // RRSIGs are never signed themselves (RFC 4035 section 2.2).
    let signable = |set: &Vec<&Record>| set[0].record_type() != RecordType::RRSIG && keep(set[0]);
    for rrset in rrsets(records).into_iter().filter(signable) {
        let first = rrset[0];
        let owner = first.name.to_lowercase();
        let signed = signer.signature(
            &owner,
            first.record_type(),
            first.ttl,
            rrset.iter().map(|r| &r.data),
            now,
        )?;
        freshness.narrow(&signed);
        rrsigs.push(signed.record(&first.name, first.ttl));
    }
    Ok(rrsigs)
}

/// The records grouped into RRsets (same owner, whatever its case, and
/// type), in the order each RRset first appears.
fn rrsets(records: &[Record]) -> Vec<Vec<&Record>> {
    let mut sets: Vec<Vec<&Record>> = Vec::new();
    for record in records {
        // Names compare without regard to case.
        let same = |set: &&mut Vec<&Record>| {
            set[0].record_type() == record.record_type() && set[0].name == record.name
        };
        match sets.iter_mut().find(same) {
            Some(set) => set.push(record),
            None => sets.push(vec![record]),
        }
    }
    sets
}
