//! The hand-written reading of DNS wire bytes, in one place, and the one
//! rule for truncating a response.
//!
//! - [`Query`]: a query of the common shape (one question, an optional OPT
//!   last), read without decoding it into records: the template path's key
//!   and everything a template is patched with. The full path reads
//!   requests with hickory ([`super::request`]) and the OPT record's fields
//!   with this module's [`Opt::new`], the options of both with
//!   [`super::edns::read_options`], so the two paths agree on what a query
//!   says.
//! - [`truncate`]: what a response becomes when it is not sent whole
//!   (larger than the requestor takes, or slipped by rate limiting): its
//!   header, question and OPT, with TC set, so that the client asks again
//!   over TCP (RFC 2181 section 9, RFC 6891 section 7).

use ipnet::IpNet;

use super::edns::{self, FLAG_DO, RequestCookie, RequestOptions};

pub const HEADER_LEN: usize = 12;
const MAX_NAME_LEN: usize = 255;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// An OPT record without options: owner, TYPE, CLASS, TTL, RDLENGTH.
pub const OPT_FIXED_LEN: usize = 11;
const FLAG_TC: u8 = 0x02;

/// A request's OPT record (RFC 6891 section 6.1.3): the UDP payload size
/// the requestor takes, the EDNS version, the DO bit, and its options.
#[derive(Clone, Copy, Debug)]
pub struct Opt<'a> {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    pub rdata: &'a [u8],
}

impl<'a> Opt<'a> {
    /// From the record's CLASS (the payload size), TTL (extended RCODE,
    /// version, flags) and RDATA.
    pub fn new(class: u16, ttl: u32, rdata: &'a [u8]) -> Opt<'a> {
        Opt {
            payload: class,
            version: (ttl >> 16) as u8,
            dnssec_ok: ttl as u16 & FLAG_DO != 0,
            rdata,
        }
    }
}

/// A query's OPT record with its options read.
#[derive(Clone, Copy)]
pub struct QueryEdns<'a> {
    pub opt: Opt<'a>,
    pub options: RequestOptions,
}

/// Where a query's key (its lowercase name, then its type) is written: the
/// caller's, so that the query itself stays small to move.
pub type KeyBuffer = [u8; MAX_NAME_LEN + 2];

/// A query of the common shape, read without decoding it into records.
pub struct Query<'a> {
    raw: &'a [u8],
    /// Where the question's name ends (it starts at the header's end).
    name_end: usize,
    /// The name in lowercase wire form, then the query type: the cache key.
    key: &'a [u8],
    qtype: u16,
    edns: Option<QueryEdns<'a>>,
}

impl<'a> Query<'a> {
    /// `None` for anything but one question of class IN with no records but
    /// an optional OPT (version 0, well-formed options), no name
    /// compression, nothing after it; and for the types answered specially
    /// (zone transfers, OPT). The key is written into `key`.
    pub fn parse(raw: &'a [u8], key: &'a mut KeyBuffer) -> Option<Query<'a>> {
        let flags = raw.get(2)?;
        let is_query = flags & 0x80 == 0;
        let opcode_query = (flags >> 3) & 0x0f == 0;
        let counts = raw.get(4..12)?;
        let additional = match counts {
            [0, 1, 0, 0, 0, 0, 0, n @ (0 | 1)] => *n,
            _ => return None,
        };
        if !is_query || !opcode_query {
            return None;
        }
        let name_len = name_len(&raw[HEADER_LEN..])?;
        let name_end = HEADER_LEN + name_len;
        let name = &mut key[..name_len];
        name.copy_from_slice(&raw[HEADER_LEN..name_end]);
        // Length octets are below 64, so lowercasing leaves them alone.
        name.make_ascii_lowercase();
        let qtype = read_u16(raw, name_end)?;
        if read_u16(raw, name_end + 2)? != CLASS_IN || matches!(qtype, TYPE_OPT | 251 | 252) {
            return None;
        }
        let at = name_end + 4;
        key[name_len..name_len + 2].copy_from_slice(&qtype.to_be_bytes());
        let mut query = Query {
            raw,
            name_end,
            key: &key[..name_len + 2],
            qtype,
            edns: None,
        };
        if additional == 1 {
            query.edns = Some(read_last_opt(raw, at)?);
        } else if at != raw.len() {
            return None;
        }
        Some(query)
    }

    /// The message as received.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn qtype(&self) -> u16 {
        self.qtype
    }

    /// The name in lowercase wire form.
    pub fn lower_name(&self) -> &[u8] {
        &self.key[..self.key.len() - 2]
    }

    /// The lowercase name, then the type: what a template is found by.
    pub fn key(&self) -> &[u8] {
        self.key
    }

    pub fn edns(&self) -> Option<QueryEdns<'a>> {
        self.edns
    }

    /// The ECS client, if the query names one.
    pub fn ecs_client(&self) -> Option<IpNet> {
        self.edns
            .and_then(|e| e.options.ecs)
            .and_then(|ecs| ecs.client())
    }

    /// The query's COOKIE option, if it has one.
    pub fn cookie(&self) -> Option<RequestCookie> {
        self.edns.and_then(|e| e.options.cookie)
    }

    /// The UDP payload size the query's OPT record offers, if it has one.
    pub fn edns_payload(&self) -> Option<u16> {
        self.edns.map(|e| e.opt.payload)
    }

    /// Where the question ends: the header and the question are the first
    /// bytes of a response too.
    pub fn question_end(&self) -> usize {
        self.name_end + 4
    }
}

/// The length of the uncompressed name `wire` starts with, root label
/// included; `None` past 255 bytes, for a compression pointer, or when the
/// name runs off the end.
fn name_len(wire: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let label = usize::from(*wire.get(at)?);
        if label > 63 {
            return None;
        }
        at += 1 + label;
        if at > MAX_NAME_LEN {
            return None;
        }
        if label == 0 {
            return Some(at);
        }
    }
}

fn read_u16(raw: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*raw.get(at)?, *raw.get(at + 1)?]))
}

fn read_u32(raw: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(raw.get(at..at + 4)?.try_into().ok()?))
}

/// The OPT record at `at`, which must end the message, with its options
/// (read as the full path reads them: any it would answer with FORMERR
/// leave the query to it). Version 0 only.
fn read_last_opt(raw: &[u8], at: usize) -> Option<QueryEdns<'_>> {
    let fixed = raw.get(at..at + OPT_FIXED_LEN)?;
    let owner_is_root = fixed[0] == 0;
    let is_opt = read_u16(fixed, 1)? == TYPE_OPT;
    let opt = Opt::new(
        read_u16(fixed, 3)?,
        read_u32(fixed, 5)?,
        raw.get(at + OPT_FIXED_LEN..)?,
    );
    let rdlength = usize::from(read_u16(fixed, 9)?);
    if !owner_is_root || !is_opt || opt.version != 0 || opt.rdata.len() != rdlength {
        return None;
    }
    Some(QueryEdns {
        opt,
        options: edns::read_options(opt.rdata).ok()?,
    })
}

/// Cuts an encoded response to its header, question and OPT record, and
/// sets TC. Leaves it as it is when it cannot be read (never the case for
/// what we encoded).
pub fn truncate(response: &mut Vec<u8>) {
    if let Some(kept) = header_question_opt(response) {
        *response = kept;
    }
}

fn header_question_opt(response: &[u8]) -> Option<Vec<u8>> {
    let count = |at| read_u16(response, at).map(usize::from);
    let (questions, records) = (count(4)?, count(6)? + count(8)? + count(10)?);
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        at = skip_name(response, at)? + 4;
    }
    let question_end = at;
    let mut opt = None;
    for _ in 0..records {
        let start = at;
        let fixed = skip_name(response, at)?;
        let end = fixed + 10 + usize::from(read_u16(response, fixed + 8)?);
        if read_u16(response, fixed)? == TYPE_OPT {
            opt = Some(start..end);
        }
        at = end;
    }
    let mut kept = response.get(..question_end)?.to_vec();
    kept[2] |= FLAG_TC;
    kept[6..12].copy_from_slice(&[0, 0, 0, 0, 0, u8::from(opt.is_some())]);
    if let Some(range) = opt {
        kept.extend_from_slice(response.get(range)?);
    }
    Some(kept)
}

/// Where the name (perhaps compressed) at `at` ends.
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let label = *message.get(at)?;
        match label {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l < 64 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A query for `WwW.t. A`, with an OPT holding `ecs_rdata` as its
    /// options when given (the templates' tests use it too).
    pub(in crate::dns) fn query(ecs_rdata: Option<&[u8]>) -> Vec<u8> {
        let mut raw = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0];
        raw.push(u8::from(ecs_rdata.is_some()));
        raw.extend_from_slice(&[3, b'W', b'w', b'W', 1, b't', 0, 0, 1, 0, 1]);
        if let Some(rdata) = ecs_rdata {
            raw.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0]);
            raw.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            raw.extend_from_slice(rdata);
        }
        raw
    }

    #[test]
    fn reads_the_name_lowercased_with_its_type_as_the_key() {
        let raw = query(None);
        let mut key = [0; 257];
        let q = Query::parse(&raw, &mut key).unwrap();
        assert_eq!(q.lower_name(), b"\x03www\x01t\x00");
        assert_eq!(q.key(), b"\x03www\x01t\x00\x00\x01");
        assert_eq!(q.qtype(), 1);
        assert!(q.edns().is_none());
        assert_eq!(q.edns_payload(), None);
    }

    #[test]
    fn reads_an_ecs_option_and_refuses_malformed_ones() {
        let good = [0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100];
        let raw = query(Some(&good));
        let mut key = [0; 257];
        let q = Query::parse(&raw, &mut key).unwrap();
        assert_eq!(q.ecs_client(), Some("198.51.100.0/24".parse().unwrap()));
        assert_eq!(q.edns_payload(), Some(1232));
        for bad in [
            &[0, 8, 0, 8, 0, 1, 24, 0, 198, 51, 100, 0][..], // an address byte too many
            &[0, 8, 0, 7, 0, 1, 23, 0, 198, 51, 101],        // a bit beyond the prefix
            &[0, 8, 0, 7, 0, 3, 24, 0, 198, 51, 100],        // no such family
            &[0, 8, 0, 8, 0, 1, 24, 0, 198, 51, 100],        // longer than its option
            &[0, 10, 0, 5, 1, 2, 3, 4, 5],                   // a cookie too short
            &[0, 8, 0, 4, 0, 1, 0, 0, 0, 8, 0, 4, 0, 1, 0, 0], // ECS twice
        ] {
            assert!(
                Query::parse(&query(Some(bad)), &mut [0; 257]).is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn reads_the_do_bit_and_the_options() {
        let options = [
            0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, // a client cookie
            0, 3, 0, 0, // NSID asked for
            0, 12, 0, 2, 0, 0, // padding, skipped
            0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100,
        ];
        let mut raw = query(Some(&options));
        let mut key = [0; 257];
        let q = Query::parse(&raw, &mut key).unwrap();
        assert_eq!(q.ecs_client(), Some("198.51.100.0/24".parse().unwrap()));
        assert_eq!(q.cookie().unwrap().client, [1, 2, 3, 4, 5, 6, 7, 8]);
        let edns = q.edns().unwrap();
        assert!(edns.options.nsid && !edns.opt.dnssec_ok);
        let do_at = raw.len() - options.len() - 4;
        raw[do_at] = 0x80;
        assert!(
            Query::parse(&raw, &mut [0; 257])
                .unwrap()
                .edns()
                .unwrap()
                .opt
                .dnssec_ok
        );
    }

    #[test]
    fn anything_but_the_common_shape_goes_the_full_way() {
        let mut compressed = query(None);
        compressed[12] = 0xc0;
        let mut two_questions = query(None);
        two_questions[5] = 2;
        let mut response = query(None);
        response[2] |= 0x80;
        let mut trailing = query(None);
        trailing.push(0);
        let mut version_1 = query(Some(&[]));
        let at = version_1.len() - 5;
        version_1[at] = 1;
        for raw in [compressed, two_questions, response, trailing, version_1] {
            assert!(Query::parse(&raw, &mut [0; 257]).is_none());
        }
    }

    #[test]
    fn truncation_keeps_the_header_question_and_opt() {
        use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as Question};
        use hickory_proto::rr::rdata::A;
        use hickory_proto::rr::{Name, RData, Record, RecordType};
        let name = Name::from_ascii("www.example.test.").unwrap();
        let mut m = Message::new(9, MessageType::Response, OpCode::Query);
        m.add_query(Question::query(name.clone(), RecordType::A));
        for i in 0..3 {
            let a = RData::A(A::new(192, 0, 2, i));
            m.add_answer(Record::from_rdata(name.clone(), 30, a.clone()));
            m.add_additional(Record::from_rdata(name.clone(), 30, a));
        }
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true);
        m.set_edns(edns);
        let mut bytes = m.to_vec().unwrap();
        truncate(&mut bytes);
        let cut = Message::from_vec(&bytes).unwrap();
        assert!(cut.metadata.truncation);
        assert_eq!(cut.queries, m.queries);
        assert!(cut.answers.is_empty() && cut.additionals.is_empty());
        assert!(cut.edns.unwrap().flags().dnssec_ok);
        let mut without_edns = Message::new(9, MessageType::Response, OpCode::Query);
        without_edns.add_query(Question::query(name, RecordType::A));
        let mut bytes = without_edns.to_vec().unwrap();
        truncate(&mut bytes);
        let cut = Message::from_vec(&bytes).unwrap();
        assert!(cut.metadata.truncation && cut.edns.is_none());
    }
}
