//! Compact denial of existence (RFC 9824): the one NSEC record a negative
//! answer carries, made for the query name on demand. Nothing is
//! precomputed and there is no chain to walk: every NSEC claims that the
//! query name exists and that nothing lies between it and its immediate
//! successor.
//!
//! What the answer path puts in the authority section (beside the SOA), for
//! a query with DO in a signed zone, each NSEC with its RRSIG
//! ([`super::ZoneSigner::denial`]) and the negative TTL (the lesser of the
//! SOA's TTL and its MINIMUM, RFC 9077):
//!
//! | answer | NSEC owner | next name | types |
//! |---|---|---|---|
//! | name does not exist (section 3.1) | QNAME | `\000.QNAME` | RRSIG NSEC NXNAME ([`nxname_nsec`]) |
//! | name exists, not the type (3.2) | QNAME | `\000.QNAME` | the types at the name, RRSIG, NSEC ([`nodata_nsec`]) |
//! | empty non-terminal (3.2) | QNAME | `\000.QNAME` | RRSIG NSEC ([`nodata_nsec`] with no types) |
//! | wildcard, no such type (3.3) | QNAME | `\000.QNAME` | the types at the wildcard, RRSIG, NSEC |
//! | referral without DS, or DS query at a cut (3.4) | the cut | `cut\000.parent` | NS (the types at the cut), RRSIG, NSEC ([`cut_nsec`]) |
//!
//! With DO, a name that does not exist is answered NOERROR, not NXDOMAIN
//! (section 3.1; the NXNAME type tells it apart); without DO the answer
//! stays NXDOMAIN, unchanged. A wildcard answer is signed as if the query
//! name existed (section 3.3: the RRSIG's labels are the query name's), so
//! it needs no NSEC. An explicit query for type NXNAME gets FORMERR
//! (section 3.5; [`is_nxname`]).
//!
//! Next names are lowercase, whatever the query's case: resolvers
//! randomise the case of their queries (0x20), and the NSEC's next name is
//! signed as written (RFC 6840 section 5.1), so one lowercase NSEC per name
//! keeps one cached signature per name.

use hickory_proto::dnssec::rdata::NSEC;
use hickory_proto::rr::{Name, RecordType};

/// The NXNAME meta-type (RFC 9824 section 2): in an NSEC's type bitmap, the
/// name does not exist.
pub const NXNAME: RecordType = RecordType::Unknown(128);

/// The types DNSSEC adds at a signed zone's apex (beside the zone's own).
pub const APEX_TYPES: [RecordType; 3] = [RecordType::DNSKEY, RecordType::CDS, RecordType::CDNSKEY];

/// Whether a query type is NXNAME, which gets FORMERR (RFC 9824 section 3.5).
pub fn is_nxname(qtype: RecordType) -> bool {
    u16::from(qtype) == 128
}

/// The NSEC for a name that does not exist (RFC 9824 section 3.1).
pub fn nxname_nsec(qname: &Name) -> NSEC {
    NSEC::new(
        successor(qname),
        [RecordType::RRSIG, RecordType::NSEC, NXNAME],
    )
}

/// The NSEC for a name that exists without the asked type, an empty
/// non-terminal (no `types`) or a wildcard without the type (the
/// wildcard's types) (RFC 9824 sections 3.2 and 3.3). `types` are the
/// RRset types at the name, DNSSEC's at the apex included ([`APEX_TYPES`]);
/// RRSIG and NSEC are added.
pub fn nodata_nsec(qname: &Name, types: impl IntoIterator<Item = RecordType>) -> NSEC {
    NSEC::new_cover_self(successor(qname), types)
}

/// The NSEC at a zone cut that has no DS: in a referral, the proof that the
/// child is unsigned; for a DS query at the cut, the NODATA proof (RFC 9824
/// section 3.4). Its next name stays out of the child zone (the cut's first
/// label with a zero octet appended). `types` are those at the cut in the
/// parent (NS); RRSIG and NSEC are added.
pub fn cut_nsec(cut: &Name, types: impl IntoIterator<Item = RecordType>) -> NSEC {
    NSEC::new_cover_self(cut_successor(cut), types)
}

/// The immediate successor of `name` in canonical order: `\000.name`
/// (RFC 9824 section 3.1), lowercase. Where that is too long, a name past
/// `name` and all its descendants (none of which can exist then).
pub fn successor(name: &Name) -> Name {
    let name = name.to_lowercase();
    if let Ok(next) = name.prepend_label(&[0u8][..]) {
        return next;
    }
    cut_successor(&name)
}

/// The first name past `name` and all names below it, lowercase: the first
/// label with a zero octet appended (`sub\000.example.`, RFC 9824 section
/// 3.4); where that is too long, the first label's last octet raised by one.
pub fn cut_successor(name: &Name) -> Name {
    let name = name.to_lowercase();
    let mut labels = name.iter();
    let Some(first) = labels.next() else {
        // The root has nothing past it in its own zone.
        return name;
    };
    let parent = name.base_name();
    let mut label = first.to_vec();
    label.push(0);
    if let Ok(next) = Name::from_labels([label.as_slice()]).and_then(|l| l.append_name(&parent)) {
        return next;
    }
    // Same length: raise the last octet below 0xff and drop what follows
    // it. Lowercase stays past the label, since only the raised octet
    // differs and lowercasing cannot lower it below the original.
    let mut label = first.to_vec();
    while let Some(last) = label.pop() {
        if last < 0xff {
            let raised = last + 1;
            // 'A'..='Z' would read as 'a'..='z': still past `last`, but
            // keep it plainly lowercase.
            label.push(raised.to_ascii_lowercase().max(raised));
            if let Ok(next) =
                Name::from_labels([label.as_slice()]).and_then(|l| l.append_name(&parent))
            {
                return next;
            }
            break;
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hickory_proto::dnssec::Verifier;
    use hickory_proto::dnssec::rdata::DNSSECRData;
    use hickory_proto::rr::{DNSClass, RData};
    use hickory_proto::serialize::binary::BinEncodable;

    use super::*;
    use crate::dnssec::keys::{KeyAlgorithm, ZoneKey};
    use crate::dnssec::sign::ZoneSigner;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn types(nsec: &NSEC) -> Vec<RecordType> {
        nsec.type_bit_maps().collect()
    }

    #[test]
    fn a_missing_name_gets_rrsig_nsec_nxname_and_its_immediate_successor() {
        let nsec = nxname_nsec(&name("a.example.com."));
        assert_eq!(nsec.next_domain_name().to_string(), "\\000.a.example.com.");
        assert_eq!(
            types(&nsec),
            vec![RecordType::RRSIG, RecordType::NSEC, NXNAME]
        );
        // Presentation as in RFC 9824 section 3.1 (hickory has no mnemonic
        // for type 128).
        assert!(
            nsec.to_string()
                .starts_with("\\000.a.example.com. RRSIG NSEC "),
            "{nsec}"
        );
        // The type bitmap: window 0, 17 octets, RRSIG (46), NSEC (47) and
        // NXNAME (128) set.
        let wire = nsec.to_bytes().unwrap();
        let bitmap = &wire[wire.len() - 19..];
        let mut expected = vec![0u8, 17];
        expected.extend_from_slice(&[0; 17]);
        expected[2 + 46 / 8] |= 0x80 >> (46 % 8);
        expected[2 + 47 / 8] |= 0x80 >> (47 % 8);
        expected[2 + 128 / 8] |= 0x80;
        assert_eq!(bitmap, expected.as_slice());
    }

    #[test]
    fn nodata_lists_the_types_at_the_name_and_an_empty_non_terminal_none() {
        let nsec = nodata_nsec(&name("www.example.com."), [RecordType::AAAA, RecordType::A]);
        assert_eq!(
            nsec.next_domain_name().to_string(),
            "\\000.www.example.com."
        );
        assert_eq!(
            types(&nsec),
            vec![
                RecordType::A,
                RecordType::AAAA,
                RecordType::RRSIG,
                RecordType::NSEC
            ]
        );
        let ent = nodata_nsec(&name("ent.example.com."), []);
        assert_eq!(types(&ent), vec![RecordType::RRSIG, RecordType::NSEC]);
        let apex = nodata_nsec(
            &name("example.com."),
            [RecordType::SOA, RecordType::NS]
                .into_iter()
                .chain(APEX_TYPES),
        );
        assert!(types(&apex).contains(&RecordType::DNSKEY));
        assert!(!types(&apex).contains(&NXNAME));
    }

    #[test]
    fn a_cut_without_ds_stays_out_of_the_child() {
        let nsec = cut_nsec(&name("Sub.Example.com."), [RecordType::NS]);
        assert_eq!(nsec.next_domain_name().to_string(), "sub\\000.example.com.");
        assert_eq!(
            types(&nsec),
            vec![RecordType::NS, RecordType::RRSIG, RecordType::NSEC]
        );
    }

    #[test]
    fn next_names_are_lowercase_whatever_the_query_case() {
        assert_eq!(
            nxname_nsec(&name("MiXeD.Example.COM."))
                .next_domain_name()
                .to_string(),
            "\\000.mixed.example.com."
        );
        assert_eq!(
            nxname_nsec(&name("MiXeD.Example.COM.")),
            nxname_nsec(&name("mixed.example.com."))
        );
    }

    /// Every successor sorts after the name and, where the name can have
    /// descendants, after them too (canonical order: hickory's Name Ord).
    #[test]
    fn successors_are_past_the_name_even_at_the_length_limit() {
        let label63 = "x".repeat(63);
        // A first label of `n` octets and three of 63: 193 + n + 1 octets.
        let long = |n: usize| name(&format!("{}.{label63}.{label63}.{label63}.", "y".repeat(n)));
        let room = long(59); // 253 octets: \000. still fits
        let tight = long(60); // 254: only one more octet
        let full = long(61); // 255: none
        assert!(room.prepend_label(&[0u8][..]).is_ok());
        assert!(tight.prepend_label(&[0u8][..]).is_err());
        for n in [
            name("a.example.com."),
            room.clone(),
            tight.clone(),
            full.clone(),
        ] {
            let next = successor(&n);
            assert!(next > n, "{next} > {n}");
            let cut = cut_successor(&n);
            assert!(cut > n, "{cut} > {n}");
            if let Ok(child) = n.prepend_label("zzz") {
                assert!(cut > child, "{cut} > {child}");
                assert!(next < child, "{next} < {child}");
            }
        }
        assert_eq!(successor(&room), room.prepend_label(&[0u8][..]).unwrap());
        let mut label = "y".repeat(60).into_bytes();
        label.push(0);
        assert_eq!(successor(&tight).iter().next().unwrap(), label.as_slice());
        // Not one octet more: the first label's last octet is raised.
        let next = successor(&full);
        assert_eq!(
            next.iter().next().unwrap(),
            format!("{}z", "y".repeat(60)).as_bytes()
        );
        // A 63-octet first label cannot take one more octet either.
        let wide = name(&format!("{label63}.example.com."));
        let next = cut_successor(&wide);
        assert_eq!(
            next.iter().next().unwrap(),
            format!("{}y", "x".repeat(62)).as_bytes()
        );
        assert!(next > wide);
    }

    #[test]
    fn nxname_queries_are_recognised() {
        assert!(is_nxname(RecordType::from(128)));
        assert!(!is_nxname(RecordType::A));
    }

    /// The NSECs sign and verify like any RRset, NXNAME bit included.
    #[test]
    fn denial_records_are_signed() {
        for algorithm in KeyAlgorithm::ALL {
            let signer = ZoneSigner::new(
                name("example.com."),
                Arc::new(ZoneKey::generate(algorithm).unwrap()),
            );
            let qname = name("Nope.example.com.");
            let ([nsec, rrsig], _) = signer
                .denial(&qname, nxname_nsec(&qname), 300, 1_800_000_000)
                .unwrap();
            assert_eq!(nsec.record_type(), RecordType::NSEC);
            assert_eq!(nsec.ttl, 300);
            assert_eq!(rrsig.name, qname);
            let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &rrsig.data else {
                panic!("{rrsig:?}");
            };
            assert_eq!(sig.input().type_covered, RecordType::NSEC);
            signer
                .dnskey()
                .verify_rrsig(&qname, DNSClass::IN, sig, [nsec].iter())
                .unwrap();
            // Another case of the same name: the same cached signature.
            let again = signer
                .denial(
                    &name("nope.EXAMPLE.com."),
                    nxname_nsec(&qname),
                    300,
                    1_800_000_001,
                )
                .unwrap();
            assert_eq!(again.0[1].data, rrsig.data);
            assert_eq!(signer.cache_stats().signed, 1);
        }
    }
}
