//! Encoded responses reused across queries: the lean path for the shape
//! nearly every query has (one question; no EDNS, or EDNS 0 with at most an
//! ECS option).
//!
//! The first query of a name, type and shape goes the full way (hickory
//! decodes, the catalog answers, hickory encodes); its response bytes become
//! a template. A later query gets a copy with exactly what the full path
//! copies from a request patched in: the ID, the RD and CD flags, the
//! question as asked (its case), and the ECS address and scope. For a steered
//! name the steering decision is still made per query; there is one template
//! per mirror it can pick. Anything else goes the full way, as does any
//! template that does not fit the response size limit. A property test holds
//! both paths to the same answers.
//!
//! Templates live per thread (each UDP socket has its own), so answering
//! takes no lock; a reload starts them afresh.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::zone::Family;

const HEADER_LEN: usize = 12;
const MAX_NAME_LEN: usize = 255;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
const OPTION_ECS: u16 = 8;
/// An OPT record without options: owner, TYPE, CLASS, TTL, RDLENGTH.
const OPT_FIXED_LEN: usize = 11;
/// Names (with their type) and template bytes kept per thread; past either
/// the cache starts over, so a flood of random names and query shapes costs
/// some memory for a moment, never for good.
const MAX_NAMES: usize = 16_384;
const MAX_TEMPLATE_BYTES: usize = 16 << 20;
/// Templates per name: mirrors × query shapes seen.
const MAX_TEMPLATES_PER_NAME: usize = 64;

/// The ECS option of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ecs {
    family: u16,
    source: u8,
    addr: [u8; 16],
}

impl Ecs {
    fn addr_len(&self) -> usize {
        usize::from(self.source).div_ceil(8)
    }

    /// The client it speaks for; `None` for source prefix 0 ("use the
    /// resolver's address", RFC 7871).
    fn client(&self) -> Option<IpNet> {
        if self.source == 0 {
            return None;
        }
        let addr = match self.family {
            1 => IpAddr::V4(Ipv4Addr::new(
                self.addr[0],
                self.addr[1],
                self.addr[2],
                self.addr[3],
            )),
            _ => IpAddr::V6(Ipv6Addr::from(self.addr)),
        };
        IpNet::new(addr, self.source).ok()
    }
}

/// What a response's OPT record must look like: the part of a query's
/// shape that changes the response's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    NoEdns,
    Edns,
    Ecs { family: u16, source: u8 },
}

/// A query of the common shape, read without decoding it into records.
pub struct Query<'a> {
    raw: &'a [u8],
    /// Where the question's name ends (it starts at the header's end).
    name_end: usize,
    /// The name in lowercase wire form, then the query type: the cache key.
    key: [u8; MAX_NAME_LEN + 2],
    key_len: usize,
    qtype: u16,
    edns_payload: Option<u16>,
    ecs: Option<Ecs>,
}

impl<'a> Query<'a> {
    /// `None` for anything but one question of class IN with no records but
    /// an optional OPT (version 0, no option but one valid ECS), no name
    /// compression, nothing after it; and for the types answered specially
    /// (zone transfers, OPT).
    pub fn parse(raw: &'a [u8]) -> Option<Query<'a>> {
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
        let mut key = [0u8; MAX_NAME_LEN + 2];
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
            key,
            key_len: name_len + 2,
            qtype,
            edns_payload: None,
            ecs: None,
        };
        if additional == 1 {
            let (payload, ecs) = read_opt(raw, at)?;
            query.edns_payload = Some(payload);
            query.ecs = ecs;
        } else if at != raw.len() {
            return None;
        }
        Some(query)
    }

    pub fn qtype(&self) -> u16 {
        self.qtype
    }

    /// The name in lowercase wire form.
    pub fn lower_name(&self) -> &[u8] {
        &self.key[..self.key_len - 2]
    }

    fn shape(&self) -> Shape {
        match (self.edns_payload, self.ecs) {
            (None, _) => Shape::NoEdns,
            (Some(_), None) => Shape::Edns,
            (Some(_), Some(e)) => Shape::Ecs {
                family: e.family,
                source: e.source,
            },
        }
    }

    /// The ECS client, if the query names one.
    pub fn ecs_client(&self) -> Option<IpNet> {
        self.ecs.and_then(|e| e.client())
    }

    /// The UDP payload size the query's OPT record offers, if it has one.
    pub fn edns_payload(&self) -> Option<u16> {
        self.edns_payload
    }

    fn question_end(&self) -> usize {
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

/// The OPT record at `at`, which must end the message: its UDP payload size
/// and ECS option.
fn read_opt(raw: &[u8], at: usize) -> Option<(u16, Option<Ecs>)> {
    let fixed = raw.get(at..at + OPT_FIXED_LEN)?;
    let owner_is_root = fixed[0] == 0;
    let is_opt = fixed[1..3] == TYPE_OPT.to_be_bytes();
    let version = fixed[6];
    if !owner_is_root || !is_opt || version != 0 {
        return None;
    }
    let payload = u16::from_be_bytes([fixed[3], fixed[4]]);
    let rdlength = usize::from(u16::from_be_bytes([fixed[9], fixed[10]]));
    let rdata = raw.get(at + OPT_FIXED_LEN..)?;
    if rdata.len() != rdlength {
        return None;
    }
    Some((payload, read_options(rdata)?))
}

/// The options, of which only ECS matters to the answer. Others (a cookie,
/// padding) are neither echoed nor checked by the full path, so they are
/// only skipped; but NSID and DAU, which hickory decodes and may refuse,
/// and any option twice, leave the query to the full path.
fn read_options(mut rdata: &[u8]) -> Option<Option<Ecs>> {
    const NSID: u16 = 3;
    const DAU: u16 = 5;
    /// More options than this go the full way (no allocation here).
    const MAX_OPTIONS: usize = 8;
    let mut ecs = None;
    let mut seen = [0u16; MAX_OPTIONS];
    let mut count = 0;
    while !rdata.is_empty() {
        let [code_hi, code_lo, len_hi, len_lo, rest @ ..] = rdata else {
            return None;
        };
        let code = u16::from_be_bytes([*code_hi, *code_lo]);
        let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
        let body = rest.get(..len)?;
        rdata = &rest[len..];
        if count == MAX_OPTIONS || seen[..count].contains(&code) || matches!(code, NSID | DAU) {
            return None;
        }
        seen[count] = code;
        count += 1;
        if code == OPTION_ECS {
            ecs = Some(read_ecs(body)?);
        }
    }
    Some(ecs)
}

/// A well-formed ECS option body (RFC 7871 section 6): address bytes as many
/// as the source prefix needs, no bit set beyond it.
fn read_ecs(body: &[u8]) -> Option<Ecs> {
    let [family_hi, family_lo, source, _scope, addr @ ..] = body else {
        return None;
    };
    let family = u16::from_be_bytes([*family_hi, *family_lo]);
    let max_source = match family {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if *source > max_source {
        return None;
    }
    let mut ecs = Ecs {
        family,
        source: *source,
        addr: [0; 16],
    };
    if addr.len() != ecs.addr_len() {
        return None;
    }
    let spare_bits = ecs.addr_len() * 8 - usize::from(*source);
    if let Some(last) = addr.last()
        && last & ((1u16 << spare_bits) - 1) as u8 != 0
    {
        return None;
    }
    ecs.addr[..addr.len()].copy_from_slice(addr);
    Some(ecs)
}

/// How the answer for a name and type comes about, for one catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The same for every client.
    Fixed,
    /// Decided per client by a service: the zone's and service's indices.
    Steered {
        zone: usize,
        service: usize,
        family: Family,
    },
}

/// What answered a query: how (for the next time) and, when steered, with
/// which mirror (`None`: every mirror, failing open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answered {
    pub route: Route,
    pub mirror: Option<usize>,
}

struct Template {
    mirror: Option<usize>,
    shape: Shape,
    bytes: Box<[u8]>,
}

struct NameEntry {
    route: Route,
    templates: Vec<Template>,
}

#[derive(Default)]
struct Cache {
    generation: u64,
    /// foldhash, not SipHash: the key is hashed on every query, and the
    /// cache starts over when full, so a flood of colliding names gains
    /// nothing lasting.
    names: HashMap<Box<[u8]>, NameEntry, foldhash::fast::RandomState>,
    /// Template bytes held.
    bytes: usize,
}

impl Cache {
    fn clear(&mut self) {
        self.names.clear();
        self.bytes = 0;
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::default();
}

/// Runs `f` on this thread's templates for catalog `generation`.
fn with_cache<T>(generation: u64, f: impl FnOnce(&mut Cache) -> T) -> T {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.generation != generation {
            cache.generation = generation;
            cache.clear();
        }
        f(&mut cache)
    })
}

/// What this thread's templates gave for a query.
pub enum Found<D> {
    /// The response, patched for the query, is in the caller's buffer.
    Written,
    /// The name is known but no template fits this answer (another mirror,
    /// or too large for the limit); `decide` said this.
    Missing(Option<D>),
    /// No template for the name and type yet.
    Unknown,
}

/// One look at this thread's templates: `decide` gets the route of the
/// query's name and says which mirror answers and with what ECS scope (and
/// anything the caller wants back on a miss); the response is the template
/// for that answer, patched into `out`, if it fits in `limit` bytes.
pub fn answer<D>(
    generation: u64,
    query: &Query,
    limit: usize,
    decide: impl FnOnce(Route) -> (Option<usize>, u8, Option<D>),
    out: &mut Vec<u8>,
) -> Found<D> {
    let shape = query.shape();
    with_cache(generation, |cache| {
        let Some(entry) = cache.names.get(&query.key[..query.key_len]) else {
            return Found::Unknown;
        };
        let (mirror, scope, decided) = decide(entry.route);
        let template = entry
            .templates
            .iter()
            .find(|t| t.mirror == mirror && t.shape == shape && t.bytes.len() <= limit);
        match template {
            Some(t) => {
                patch(&t.bytes, query, scope, out);
                Found::Written
            }
            None => Found::Missing(decided),
        }
    })
}

/// The template with this query's ID, RD and CD flags, question, and ECS
/// address and scope, into `bytes` (whose allocation is reused).
fn patch(template: &[u8], query: &Query, scope: u8, bytes: &mut Vec<u8>) {
    bytes.clear();
    bytes.extend_from_slice(template);
    bytes[..2].copy_from_slice(&query.raw[..2]);
    const RD: u8 = 0x01;
    const CD: u8 = 0x10;
    bytes[2] = (bytes[2] & !RD) | (query.raw[2] & RD);
    bytes[3] = (bytes[3] & !CD) | (query.raw[3] & CD);
    let question = HEADER_LEN..query.question_end();
    bytes[question.clone()].copy_from_slice(&query.raw[question]);
    if let Some(ecs) = query.ecs {
        let addr_len = ecs.addr_len();
        let addr_at = bytes.len() - addr_len;
        bytes[addr_at..].copy_from_slice(&ecs.addr[..addr_len]);
        bytes[addr_at - 1] = if ecs.source == 0 { 0 } else { scope };
    }
}

/// Cuts `response` to what the rate limiter's slip sends: header and
/// question, OPT kept, TC set, nothing else.
pub fn truncate(response: &mut Vec<u8>, query: &Query) {
    let opt_len = opt_len(query.shape());
    let question_end = query.question_end();
    let opt_at = response.len() - opt_len;
    response.copy_within(opt_at.., question_end);
    response.truncate(question_end + opt_len);
    response[2] |= 0x02;
    response[6..12].copy_from_slice(&[0, 0, 0, 0, 0, u8::from(opt_len > 0)]);
}

/// The length of our OPT record for a query of `shape` (0: none).
fn opt_len(shape: Shape) -> usize {
    match shape {
        Shape::NoEdns => 0,
        Shape::Edns => OPT_FIXED_LEN,
        Shape::Ecs { source, .. } => OPT_FIXED_LEN + 8 + usize::from(source).div_ceil(8),
    }
}

/// Keeps the full path's `response` to `query` as a template, if it has the
/// layout patching relies on: the question as asked right after the header,
/// and the OPT, when there is one, last, with the ECS echo at its end.
pub fn remember(generation: u64, query: &Query, answered: Answered, response: &[u8]) {
    if !has_patchable_layout(query, response) {
        return;
    }
    with_cache(generation, |cache| {
        if cache.names.len() >= MAX_NAMES || cache.bytes + response.len() > MAX_TEMPLATE_BYTES {
            cache.clear();
        }
        let entry = cache
            .names
            .entry(query.key[..query.key_len].into())
            .or_insert_with(|| NameEntry {
                route: answered.route,
                templates: Vec::new(),
            });
        let shape = query.shape();
        let known = entry
            .templates
            .iter()
            .any(|t| t.mirror == answered.mirror && t.shape == shape);
        if entry.route != answered.route || known || entry.templates.len() >= MAX_TEMPLATES_PER_NAME
        {
            return;
        }
        entry.templates.push(Template {
            mirror: answered.mirror,
            shape,
            bytes: response.into(),
        });
        cache.bytes += response.len();
    });
}

fn has_patchable_layout(query: &Query, response: &[u8]) -> bool {
    let question = HEADER_LEN..query.question_end();
    let opt_len = opt_len(query.shape());
    let same_question = response.get(question.clone()) == query.raw.get(question);
    let counts = response.get(4..6) == Some(&[0, 1]);
    let truncated = response.get(2).is_none_or(|f| f & 0x02 != 0);
    if !same_question || !counts || truncated || response.len() < query.question_end() + opt_len {
        return false;
    }
    let opt = &response[response.len() - opt_len..];
    let opt_is_last = opt_len == 0 || opt[..3] == [0, 0, 41];
    let Some(ecs) = query.ecs else {
        return opt_is_last;
    };
    let option = &opt[OPT_FIXED_LEN..];
    opt_is_last
        && option[..2] == OPTION_ECS.to_be_bytes()
        && option[4..6] == ecs.family.to_be_bytes()
        && option[6] == ecs.source
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(ecs_rdata: Option<&[u8]>) -> Vec<u8> {
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
        let q = Query::parse(&raw).unwrap();
        assert_eq!(q.lower_name(), b"\x03www\x01t\x00");
        assert_eq!(q.qtype(), 1);
        assert_eq!(q.shape(), Shape::NoEdns);
        assert_eq!(q.edns_payload(), None);
    }

    #[test]
    fn reads_an_ecs_option_and_refuses_malformed_ones() {
        let good = [0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100];
        let raw = query(Some(&good));
        let q = Query::parse(&raw).unwrap();
        assert_eq!(q.ecs_client(), Some("198.51.100.0/24".parse().unwrap()));
        assert_eq!(q.edns_payload(), Some(1232));
        for bad in [
            &[0, 8, 0, 8, 0, 1, 24, 0, 198, 51, 100, 0][..], // an address byte too many
            &[0, 8, 0, 7, 0, 1, 23, 0, 198, 51, 101],        // a bit beyond the prefix
            &[0, 8, 0, 7, 0, 3, 24, 0, 198, 51, 100],        // no such family
            &[0, 8, 0, 8, 0, 1, 24, 0, 198, 51, 100],        // longer than its option
            &[0, 3, 0, 0],                                   // NSID: hickory decodes it
            &[0, 10, 0, 0, 0, 10, 0, 0],                     // an option twice
        ] {
            assert!(Query::parse(&query(Some(bad))).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_cookie_beside_the_ecs_option_is_skipped() {
        let with_cookie = [
            0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, // a client cookie
            0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100,
        ];
        let raw = query(Some(&with_cookie));
        let q = Query::parse(&raw).unwrap();
        assert_eq!(q.ecs_client(), Some("198.51.100.0/24".parse().unwrap()));
        assert_eq!(
            q.shape(),
            Shape::Ecs {
                family: 1,
                source: 24
            }
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
        for raw in [compressed, two_questions, response, trailing] {
            assert!(Query::parse(&raw).is_none());
        }
    }
}
