//! Signing RRsets online, and the cache that keeps every signature until it
//! is due for refresh.
//!
//! A [`ZoneSigner`] holds a zone's key and a [`SignatureCache`]. Asking it
//! for the RRSIG of an RRset either returns the cached one or signs now:
//!
//! - **Validity.** Inception one hour in the past (validators whose clocks
//!   are behind still accept it); expiration 7 to 14 days ahead, the part
//!   above 7 days a deterministic function of the RRset, so signatures made
//!   together (at a start, a reload) do not all expire together.
//! - **Refresh.** A cached signature is used until 2 days before it
//!   expires, then replaced by a new one. It is checked against the clock
//!   on every use: a clock that jumps forward never gets an expired (or
//!   nearly expired) signature, and one that jumps back before a
//!   signature's inception gets a new signature.
//! - **Key.** The cache is keyed by owner, type and a 128-bit keyed hash of
//!   the RRset's canonical form (TTL and every RDATA), so a changed RRset
//!   is signed afresh.
//!
//! Signing follows RFC 4034 section 3.1.8.1 with hickory-proto's signed
//! data (TBS) and the key from ring; nothing cryptographic is done here.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::dnssec::TBS;
use hickory_proto::dnssec::rdata::{CDNSKEY, CDS, DNSKEY, DNSSECRData, NSEC, RRSIG, SigInput};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType, SerialNumber};
use hickory_proto::serialize::binary::{
    BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict,
};
use parking_lot::Mutex;
use siphasher::sip128::{Hasher128, SipHasher13};

use super::keys::ZoneKey;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// How long signatures are valid and when they are made anew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Inception this far before the time of signing.
    pub inception_skew: u64,
    /// Expiration at least this far after the time of signing ...
    pub min_lifetime: u64,
    /// ... plus a deterministic share of this, per RRset.
    pub jitter: u64,
    /// A signature is replaced once it is this close to its expiration.
    pub refresh_before: u64,
}

impl Default for Validity {
    fn default() -> Self {
        Validity {
            inception_skew: HOUR,
            min_lifetime: 7 * DAY,
            jitter: 7 * DAY,
            refresh_before: 2 * DAY,
        }
    }
}

/// Signatures kept per zone by default; past it, stale ones go first, then
/// some at random (a flood of names that do not exist signs NSECs, each
/// kept for a while, never for good).
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;

/// An RRSIG with the times that decide whether it may still be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRrsig {
    pub rrsig: RRSIG,
    /// Seconds since the epoch: the signature's inception ...
    pub inception: u64,
    /// ... its expiration ...
    pub expiration: u64,
    /// ... and when it is due to be replaced (well before expiration).
    pub refresh_at: u64,
}

impl SignedRrsig {
    /// Whether it may be served at `now`: after its inception and before
    /// it is due for refresh (so never expired). A cached answer that holds
    /// this signature is good until `refresh_at` too.
    pub fn is_fresh(&self, now: u64) -> bool {
        now >= self.inception && now < self.refresh_at
    }

    /// The RRSIG record for an answer: `owner` is the RRset's owner as
    /// served, `ttl` the RRset's TTL (RFC 4034 section 3: the RRSIG's TTL
    /// is the covered RRset's).
    pub fn record(&self, owner: &Name, ttl: u32) -> Record {
        Record::from_rdata(
            owner.clone(),
            ttl,
            RData::DNSSEC(DNSSECRData::RRSIG(self.rrsig.clone())),
        )
    }
}

/// An RRset that could not be signed (a malformed record, which the zone
/// loader should have refused).
#[derive(Debug, thiserror::Error)]
#[error("cannot sign {owner} {record_type}: {message}")]
pub struct SignError {
    pub owner: String,
    pub record_type: RecordType,
    pub message: String,
}

/// Cache counters, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    /// Signatures served from the cache.
    pub hits: u64,
    /// Signatures made (cache misses and refreshes).
    pub signed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    owner: LowerName,
    record_type: RecordType,
    rrset: u128,
}

/// Signatures by RRset, shared by every thread answering for the zone.
pub struct SignatureCache {
    entries: Mutex<HashMap<CacheKey, Arc<SignedRrsig>>>,
    capacity: usize,
    /// Random per cache: nobody outside can aim two RRsets at one key.
    hash_keys: (u64, u64),
    hits: AtomicU64,
    signed: AtomicU64,
}

impl SignatureCache {
    pub fn new(capacity: usize) -> Self {
        SignatureCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            hash_keys: (rand::random(), rand::random()),
            hits: AtomicU64::new(0),
            signed: AtomicU64::new(0),
        }
    }

    fn get(&self, key: &CacheKey, now: u64) -> Option<Arc<SignedRrsig>> {
        let found = self
            .entries
            .lock()
            .get(key)
            .filter(|s| s.is_fresh(now))
            .cloned();
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    fn insert(&self, key: CacheKey, signed: Arc<SignedRrsig>, now: u64) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, s| s.is_fresh(now));
            if entries.len() >= self.capacity {
                // Iteration order is random (RandomState): drop an eighth.
                let drop = (self.capacity / 8).max(1);
                let victims: Vec<CacheKey> = entries.keys().take(drop).cloned().collect();
                for victim in victims {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(key, signed);
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.lock().len(),
            hits: self.hits.load(Ordering::Relaxed),
            signed: self.signed.load(Ordering::Relaxed),
        }
    }

    /// Forgets every signature (a new key, say).
    pub fn clear(&self) {
        self.entries.lock().clear();
    }
}

/// An RRset in canonical form (RFC 4034 section 6): RDATAs with the names
/// that canonical form lowercases lowercased, sorted, without duplicates.
struct CanonicalRrset {
    /// Canonical RDATA bytes, sorted and deduplicated, beside the record
    /// data decoded back from them.
    rdatas: Vec<(Vec<u8>, RData)>,
}

impl CanonicalRrset {
    fn new<'a>(
        record_type: RecordType,
        rdatas: impl IntoIterator<Item = &'a RData>,
    ) -> Result<Self, String> {
        let mut out = Vec::new();
        for rdata in rdatas {
            if rdata.record_type() != record_type {
                return Err(format!(
                    "a {} record in the {record_type} RRset",
                    rdata.record_type()
                ));
            }
            let mut bytes = Vec::new();
            {
                let mut encoder = BinEncoder::new(&mut bytes);
                encoder.set_canonical_form(true);
                encoder.set_name_encoding(NameEncoding::Uncompressed);
                rdata.emit(&mut encoder).map_err(|e| e.to_string())?;
            }
            let len = u16::try_from(bytes.len()).map_err(|_| "RDATA over 65535 bytes")?;
            // Decoded back, names come out lowercased as canonical form
            // has them, so hickory's sort (by RDATA bytes) is the
            // canonical order of RFC 4034 section 6.3.
            let canonical = RData::read(
                &mut BinDecoder::new(&bytes),
                record_type,
                Restrict::new(len),
            )
            .map_err(|e| e.to_string())?;
            out.push((bytes, canonical));
        }
        if out.is_empty() {
            return Err("an empty RRset".to_string());
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        Ok(CanonicalRrset { rdatas: out })
    }

    /// A 128-bit hash of the RRset (and of its owner, when given; the
    /// cache keys the owner beside it).
    fn hash(
        &self,
        keys: (u64, u64),
        owner: Option<&Name>,
        record_type: RecordType,
        ttl: u32,
    ) -> u128 {
        let mut h = SipHasher13::new_with_keys(keys.0, keys.1);
        if let Some(owner) = owner {
            h.write(owner.to_lowercase().to_ascii().as_bytes());
        }
        h.write_u16(u16::from(record_type));
        h.write_u32(ttl);
        h.write_usize(self.rdatas.len());
        for (bytes, _) in &self.rdatas {
            h.write_usize(bytes.len());
            h.write(bytes);
        }
        h.finish128().as_u128()
    }
}

/// Fixed keys for the expiration jitter, so that every instance (and every
/// run) gives an RRset the same share of the jitter.
const JITTER_KEYS: (u64, u64) = (0x6d69_7272_6f72_646e, 0x7364_6e73_7365_6321);

/// Signs a zone's RRsets with its key, through a signature cache.
pub struct ZoneSigner {
    zone: Name,
    key: Arc<ZoneKey>,
    validity: Validity,
    cache: SignatureCache,
}

impl std::fmt::Debug for ZoneSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneSigner")
            .field("zone", &self.zone)
            .field("key_tag", &self.key.key_tag())
            .field("cache", &self.cache_stats())
            .finish()
    }
}

impl ZoneSigner {
    pub fn new(zone: Name, key: Arc<ZoneKey>) -> Self {
        ZoneSigner::with_options(zone, key, Validity::default(), DEFAULT_CACHE_CAPACITY)
    }

    pub fn with_options(
        zone: Name,
        key: Arc<ZoneKey>,
        validity: Validity,
        cache_capacity: usize,
    ) -> Self {
        ZoneSigner {
            zone,
            key,
            validity,
            cache: SignatureCache::new(cache_capacity),
        }
    }

    /// The zone's apex: the RRSIGs' signer name and the DNSKEY's owner.
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    pub fn key(&self) -> &ZoneKey {
        &self.key
    }

    pub fn validity(&self) -> Validity {
        self.validity
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The RRSIG of an RRset from the cache, signed now if there is none
    /// fresh at `now` (seconds since the epoch).
    ///
    /// `owner` is the name the RRSIG covers: the query name for a wildcard
    /// expansion under compact denial (RFC 9824 section 3.3: labels equal
    /// to the query name's), the wildcard itself (`*.x`) for a signature
    /// with fewer labels. `ttl` is the RRset's TTL in the zone (the RRSIG's
    /// Original TTL).
    pub fn signature<'a>(
        &self,
        owner: &Name,
        record_type: RecordType,
        ttl: u32,
        rdatas: impl IntoIterator<Item = &'a RData>,
        now: u64,
    ) -> Result<Arc<SignedRrsig>, SignError> {
        let rrset = CanonicalRrset::new(record_type, rdatas)
            .map_err(|message| sign_error(owner, record_type, message))?;
        let key = CacheKey {
            owner: LowerName::new(owner),
            record_type,
            rrset: rrset.hash(self.cache.hash_keys, None, record_type, ttl),
        };
        if let Some(found) = self.cache.get(&key, now) {
            return Ok(found);
        }
        let signed = Arc::new(self.sign_canonical(owner, record_type, ttl, &rrset, now)?);
        self.cache.insert(key, signed.clone(), now);
        Ok(signed)
    }

    /// Signs an RRset now, bypassing the cache.
    pub fn sign<'a>(
        &self,
        owner: &Name,
        record_type: RecordType,
        ttl: u32,
        rdatas: impl IntoIterator<Item = &'a RData>,
        now: u64,
    ) -> Result<SignedRrsig, SignError> {
        let rrset = CanonicalRrset::new(record_type, rdatas)
            .map_err(|message| sign_error(owner, record_type, message))?;
        self.sign_canonical(owner, record_type, ttl, &rrset, now)
    }

    fn sign_canonical(
        &self,
        owner: &Name,
        record_type: RecordType,
        ttl: u32,
        rrset: &CanonicalRrset,
        now: u64,
    ) -> Result<SignedRrsig, SignError> {
        let v = self.validity;
        let jitter = match v.jitter {
            0 => 0,
            j => (rrset.hash(JITTER_KEYS, Some(owner), record_type, ttl) % u128::from(j)) as u64,
        };
        let inception = now.saturating_sub(v.inception_skew);
        let expiration = now + v.min_lifetime + jitter;
        let refresh_at = expiration.saturating_sub(v.refresh_before).max(now);
        let input = SigInput {
            type_covered: record_type,
            algorithm: self.key.algorithm().to_hickory(),
            num_labels: owner.num_labels(),
            original_ttl: ttl,
            // RFC 4034 section 3.1.5: seconds modulo 2^32, serial arithmetic.
            sig_expiration: SerialNumber::new(expiration as u32),
            sig_inception: SerialNumber::new(inception as u32),
            key_tag: self.key.key_tag(),
            signer_name: self.zone.clone(),
        };
        let records: Vec<Record> = rrset
            .rdatas
            .iter()
            .map(|(_, rdata)| Record::from_rdata(owner.clone(), ttl, rdata.clone()))
            .collect();
        let tbs = TBS::from_input(owner, DNSClass::IN, &input, records.iter())
            .map_err(|e| sign_error(owner, record_type, e.to_string()))?;
        let signature = self
            .key
            .sign(&tbs)
            .map_err(|e| sign_error(owner, record_type, e))?;
        self.cache.signed.fetch_add(1, Ordering::Relaxed);
        Ok(SignedRrsig {
            rrsig: RRSIG::from_sig(input, signature),
            inception,
            expiration,
            refresh_at,
        })
    }

    /// An NSEC record (compact denial, see [`super::denial`]) and its
    /// RRSIG, for the authority section of a negative answer, with the
    /// signature's times (an answer holding it is good as long). `ttl` is
    /// the negative TTL: the lesser of the SOA's TTL and its MINIMUM (RFC
    /// 9077).
    pub fn denial(
        &self,
        owner: &Name,
        nsec: NSEC,
        ttl: u32,
        now: u64,
    ) -> Result<([Record; 2], Arc<SignedRrsig>), SignError> {
        let rdata = RData::DNSSEC(DNSSECRData::NSEC(nsec));
        let signed = self.signature(owner, RecordType::NSEC, ttl, [&rdata], now)?;
        let rrsig = signed.record(owner, ttl);
        Ok((
            [Record::from_rdata(owner.clone(), ttl, rdata), rrsig],
            signed,
        ))
    }

    /// The apex RRset of a type DNSSEC adds ([`super::denial::APEX_TYPES`]).
    pub fn apex_rdata(&self, record_type: RecordType) -> Option<RData> {
        match record_type {
            RecordType::DNSKEY => Some(self.dnskey_rdata()),
            RecordType::CDS => self.cds_rdata().ok(),
            RecordType::CDNSKEY => Some(self.cdnskey_rdata()),
            _ => None,
        }
    }

    /// The apex DNSKEY RRset (the one key).
    pub fn dnskey_rdata(&self) -> RData {
        RData::DNSSEC(DNSSECRData::DNSKEY(self.key.dnskey().clone()))
    }

    /// The apex CDS RRset (RFC 7344), SHA-256.
    pub fn cds_rdata(&self) -> Result<RData, SignError> {
        let cds: CDS = self
            .key
            .cds(&self.zone)
            .map_err(|e| sign_error(&self.zone, RecordType::CDS, e))?;
        Ok(RData::DNSSEC(DNSSECRData::CDS(cds)))
    }

    /// The apex CDNSKEY RRset (RFC 7344).
    pub fn cdnskey_rdata(&self) -> RData {
        let cdnskey: CDNSKEY = self.key.cdnskey();
        RData::DNSSEC(DNSSECRData::CDNSKEY(cdnskey))
    }

    /// The DNSKEY record data, for checks against a trust anchor.
    pub fn dnskey(&self) -> &DNSKEY {
        self.key.dnskey()
    }
}

fn sign_error(owner: &Name, record_type: RecordType, message: String) -> SignError {
    SignError {
        owner: owner.to_string(),
        record_type,
        message,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::str::FromStr;

    use hickory_proto::dnssec::Verifier;
    use hickory_proto::rr::rdata::{A, MX, NS};

    use super::*;
    use crate::dnssec::keys::KeyAlgorithm;
    use crate::dnssec::keys::tests::{fixed_p256_key, rfc8080_key};

    const NOW: u64 = 1_800_000_000;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    fn signer(key: ZoneKey) -> ZoneSigner {
        ZoneSigner::new(name("example.test."), Arc::new(key))
    }

    fn a(ip: [u8; 4]) -> RData {
        RData::A(A(Ipv4Addr::from(ip)))
    }

    /// Verifies with hickory's verifier, as a validator would: the RRSIG
    /// over the records as served (any order, any case).
    fn verify(signer: &ZoneSigner, signed: &SignedRrsig, records: &[Record]) {
        let owner = &records[0].name;
        signer
            .dnskey()
            .verify_rrsig(owner, DNSClass::IN, &signed.rrsig, records.iter())
            .unwrap();
    }

    fn records(owner: &str, ttl: u32, rdatas: &[RData]) -> Vec<Record> {
        rdatas
            .iter()
            .map(|r| Record::from_rdata(name(owner), ttl, r.clone()))
            .collect()
    }

    #[test]
    fn signs_rrsets_that_verify_with_both_algorithms() {
        for algorithm in KeyAlgorithm::ALL {
            let s = signer(ZoneKey::generate(algorithm).unwrap());
            let rdatas = [a([192, 0, 2, 2]), a([192, 0, 2, 1]), a([192, 0, 2, 3])];
            let signed = s
                .sign(&name("www.example.test."), RecordType::A, 300, &rdatas, NOW)
                .unwrap();
            let input = signed.rrsig.input();
            assert_eq!(input.type_covered, RecordType::A);
            assert_eq!(u8::from(input.algorithm), algorithm.number());
            assert_eq!(input.num_labels, 3);
            assert_eq!(input.original_ttl, 300);
            assert_eq!(input.key_tag, s.key().key_tag());
            assert_eq!(input.signer_name, name("example.test."));
            verify(&s, &signed, &records("www.example.test.", 300, &rdatas));
            // The validator reorders and may see another case: still good.
            let mut served = records("WWW.Example.test.", 300, &rdatas);
            served.reverse();
            verify(&s, &signed, &served);
            // A changed RRset does not verify.
            let other = records("www.example.test.", 300, &[a([192, 0, 2, 9])]);
            assert!(
                s.dnskey()
                    .verify_rrsig(
                        &name("www.example.test."),
                        DNSClass::IN,
                        &signed.rrsig,
                        other.iter()
                    )
                    .is_err()
            );
        }
    }

    #[test]
    fn names_inside_rdata_are_signed_in_canonical_form() {
        let s = signer(ZoneKey::generate(KeyAlgorithm::EcdsaP256Sha256).unwrap());
        // Upper case sorts before lower case byte-wise, after it in
        // canonical order: the RRSIG must cover the canonical order.
        let rdatas = [
            RData::NS(NS(name("B.ns.example."))),
            RData::NS(NS(name("a.ns.example."))),
        ];
        let signed = s
            .sign(
                &name("sub.example.test."),
                RecordType::NS,
                3600,
                &rdatas,
                NOW,
            )
            .unwrap();
        verify(&s, &signed, &records("sub.example.test.", 3600, &rdatas));
        let lower = [
            RData::NS(NS(name("b.ns.example."))),
            RData::NS(NS(name("a.ns.example."))),
        ];
        verify(&s, &signed, &records("sub.example.test.", 3600, &lower));
    }

    /// RFC 8080 section 6.1: Ed25519 is deterministic, so signing the RFC's
    /// MX RRset with its key and times gives the RFC's signature.
    #[test]
    fn ed25519_signature_matches_rfc_8080() {
        let (inception, expiration) = (1_438_207_200, 1_440_021_600);
        // Signing "at" the expiration with no lifetime and the whole
        // validity as skew gives the RFC's two times.
        let s = ZoneSigner::with_options(
            name("example.com."),
            Arc::new(rfc8080_key()),
            Validity {
                inception_skew: expiration - inception,
                min_lifetime: 0,
                jitter: 0,
                refresh_before: 0,
            },
            16,
        );
        let mx = RData::MX(MX::new(10, name("mail.example.com.")));
        let signed = s
            .sign(
                &name("example.com."),
                RecordType::MX,
                3600,
                [&mx],
                expiration,
            )
            .unwrap();
        assert_eq!(
            u64::from(signed.rrsig.input().sig_inception.get()),
            inception
        );
        assert_eq!(
            u64::from(signed.rrsig.input().sig_expiration.get()),
            expiration
        );
        assert_eq!(
            crate::dnssec::keys::tests::base64(signed.rrsig.sig()),
            "oL9krJun7xfBOIWcGHi7mag5/hdZrKWw15jPGrHpjQeRAvTdszaPD+QLs3fx8A4M3e23mRZ9VrbpMngwcrqNAg=="
        );
    }

    #[test]
    fn a_fixed_p256_key_signs_what_it_verifies() {
        let s = signer(fixed_p256_key());
        let rdatas = [a([192, 0, 2, 1])];
        let signed = s
            .sign(
                &name("www.example.test."),
                RecordType::A,
                3600,
                &rdatas,
                NOW,
            )
            .unwrap();
        verify(&s, &signed, &records("www.example.test.", 3600, &rdatas));
    }

    #[test]
    fn validity_starts_an_hour_back_and_lasts_one_to_two_weeks_with_jitter() {
        let s = signer(ZoneKey::generate(KeyAlgorithm::Ed25519).unwrap());
        let mut expirations = std::collections::HashSet::new();
        for i in 0..50u8 {
            let rdatas = [a([192, 0, 2, i])];
            let owner = name("www.example.test.");
            let signed = s.sign(&owner, RecordType::A, 300, &rdatas, NOW).unwrap();
            assert_eq!(signed.inception, NOW - 3600);
            assert_eq!(
                u64::from(signed.rrsig.input().sig_inception.get()),
                NOW - 3600
            );
            assert!(signed.expiration >= NOW + 7 * DAY);
            assert!(signed.expiration < NOW + 14 * DAY);
            assert_eq!(
                u64::from(signed.rrsig.input().sig_expiration.get()),
                signed.expiration
            );
            assert_eq!(signed.refresh_at, signed.expiration - 2 * DAY);
            // Deterministic per RRset: signing again later keeps the share.
            let later = s
                .sign(&owner, RecordType::A, 300, &rdatas, NOW + 100)
                .unwrap();
            assert_eq!(later.expiration, signed.expiration + 100);
            expirations.insert(signed.expiration);
        }
        assert!(expirations.len() > 40, "{}", expirations.len());
    }

    #[test]
    fn the_cache_reuses_signatures_until_the_refresh_window() {
        let s = signer(ZoneKey::generate(KeyAlgorithm::EcdsaP256Sha256).unwrap());
        let owner = name("www.example.test.");
        let rdatas = [a([192, 0, 2, 1]), a([192, 0, 2, 2])];
        let first = s
            .signature(&owner, RecordType::A, 30, &rdatas, NOW)
            .unwrap();
        // The same RRset in another order and owner case: the same RRSIG.
        let reordered = [a([192, 0, 2, 2]), a([192, 0, 2, 1])];
        let again = s
            .signature(
                &name("WWW.example.test."),
                RecordType::A,
                30,
                &reordered,
                NOW + 10,
            )
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(
            s.cache_stats(),
            CacheStats {
                entries: 1,
                hits: 1,
                signed: 1
            }
        );
        // Another TTL or another address is another RRset.
        let ttl = s
            .signature(&owner, RecordType::A, 60, &rdatas, NOW)
            .unwrap();
        assert_ne!(ttl.rrsig, first.rrsig);
        let other = s
            .signature(&owner, RecordType::A, 30, &[a([192, 0, 2, 1])], NOW)
            .unwrap();
        assert_ne!(other.rrsig, first.rrsig);
        assert_eq!(s.cache_stats().signed, 3);
        // Until just before the refresh window: reused.
        let before = s
            .signature(&owner, RecordType::A, 30, &rdatas, first.refresh_at - 1)
            .unwrap();
        assert!(Arc::ptr_eq(&first, &before));
        // In the window: signed anew, valid from then on.
        let at = first.refresh_at;
        let refreshed = s.signature(&owner, RecordType::A, 30, &rdatas, at).unwrap();
        assert!(!Arc::ptr_eq(&first, &refreshed));
        assert_eq!(refreshed.inception, at - 3600);
        assert!(refreshed.expiration >= at + 7 * DAY);
        verify(&s, &refreshed, &records("www.example.test.", 30, &rdatas));
        // And that one is reused in turn.
        let next = s
            .signature(&owner, RecordType::A, 30, &rdatas, at + 1)
            .unwrap();
        assert!(Arc::ptr_eq(&refreshed, &next));
    }

    #[test]
    fn a_clock_jump_never_serves_an_expired_or_not_yet_valid_signature() {
        let s = signer(ZoneKey::generate(KeyAlgorithm::Ed25519).unwrap());
        let owner = name("www.example.test.");
        let rdatas = [a([192, 0, 2, 1])];
        let first = s
            .signature(&owner, RecordType::A, 30, &rdatas, NOW)
            .unwrap();
        // A year forward: long expired; a new signature.
        let jump = NOW + 365 * DAY;
        let forward = s
            .signature(&owner, RecordType::A, 30, &rdatas, jump)
            .unwrap();
        assert!(forward.expiration > jump + 7 * DAY - 1);
        assert!(forward.inception <= jump);
        // Back to before its inception: not served, a new one.
        let back = NOW - 2 * 3600;
        let earlier = s
            .signature(&owner, RecordType::A, 30, &rdatas, back)
            .unwrap();
        assert!(earlier.inception <= back && back < earlier.expiration);
        assert!(!Arc::ptr_eq(&earlier, &first));
        // Within the hour of skew a jump back keeps the signature.
        let slight = s
            .signature(&owner, RecordType::A, 30, &rdatas, back + 1)
            .unwrap();
        assert!(Arc::ptr_eq(&earlier, &slight));
        for t in [NOW, jump, back, back + 3600, back + 7 * DAY] {
            let got = s.signature(&owner, RecordType::A, 30, &rdatas, t).unwrap();
            assert!(got.inception <= t && t < got.expiration, "{t}");
            assert!(got.is_fresh(t));
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let s = ZoneSigner::with_options(
            name("example.test."),
            Arc::new(ZoneKey::generate(KeyAlgorithm::Ed25519).unwrap()),
            Validity::default(),
            64,
        );
        for i in 0..500u32 {
            let owner = name(&format!("n{i}.example.test."));
            s.signature(&owner, RecordType::A, 30, &[a([192, 0, 2, 1])], NOW)
                .unwrap();
            assert!(s.cache_stats().entries <= 64);
        }
        assert_eq!(s.cache_stats().signed, 500);
    }

    #[test]
    fn wildcard_owners_sign_with_fewer_labels() {
        let s = signer(ZoneKey::generate(KeyAlgorithm::EcdsaP256Sha256).unwrap());
        let rdatas = [a([192, 0, 2, 7])];
        let signed = s
            .sign(
                &name("*.wild.example.test."),
                RecordType::A,
                60,
                &rdatas,
                NOW,
            )
            .unwrap();
        assert_eq!(signed.rrsig.input().num_labels, 3);
        // It covers any expansion (the validator rebuilds the owner).
        verify(
            &s,
            &signed,
            &records("host.wild.example.test.", 60, &rdatas),
        );
    }

    #[test]
    fn bad_rrsets_are_errors() {
        let s = signer(ZoneKey::generate(KeyAlgorithm::Ed25519).unwrap());
        let owner = name("www.example.test.");
        let e = s
            .sign(&owner, RecordType::AAAA, 30, &[a([192, 0, 2, 1])], NOW)
            .unwrap_err();
        assert!(
            e.to_string().contains("a A record in the AAAA RRset"),
            "{e}"
        );
        let empty: [RData; 0] = [];
        assert!(s.sign(&owner, RecordType::A, 30, &empty, NOW).is_err());
    }

    #[test]
    fn a_signature_and_the_record_it_makes() {
        let s = signer(ZoneKey::generate(KeyAlgorithm::EcdsaP256Sha256).unwrap());
        let rdatas = [a([192, 0, 2, 25])];
        let rrset = records("mail.example.test.", 300, &rdatas);
        let signed = s
            .signature(
                &name("mail.example.test."),
                RecordType::A,
                300,
                &rdatas,
                NOW,
            )
            .unwrap();
        let record = signed.record(&name("mail.example.test."), 300);
        assert_eq!(record.record_type(), RecordType::RRSIG);
        assert_eq!(record.ttl, 300);
        verify(&s, &signed, &rrset);
        // The apex keys sign like any RRset.
        let dnskey = s.dnskey_rdata();
        let signed = s
            .signature(
                &name("example.test."),
                RecordType::DNSKEY,
                3600,
                [&dnskey],
                NOW,
            )
            .unwrap();
        verify(&s, &signed, &records("example.test.", 3600, &[dnskey]));
        let cds = s.cds_rdata().unwrap();
        let cdnskey = s.cdnskey_rdata();
        for rdata in [cds, cdnskey] {
            let rtype = rdata.record_type();
            let signed = s
                .signature(&name("example.test."), rtype, 3600, [&rdata], NOW)
                .unwrap();
            verify(&s, &signed, &records("example.test.", 3600, &[rdata]));
        }
    }
}
