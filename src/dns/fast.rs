//! Encoded responses reused across queries: the lean path for the shape
//! nearly every query has (one question; no EDNS, or EDNS 0 with options
//! that are well formed).
//!
//! The first query of a name, type and shape goes the full way (decoded,
//! answered from the catalog, encoded by hickory); its response bytes
//! become a template. A later query gets a copy with exactly what the full
//! path copies from a request patched in: the ID, the RD and CD flags, the
//! question as asked (its case), the COOKIE option (the client's cookie and
//! our server cookie, made per query), and the ECS address and scope. The
//! DO bit and whether NSID was asked are part of the shape, so they have
//! templates of their own. For a steered name the steering decision is
//! still made per query; there is one template per mirror it can pick.
//! Anything else goes the full way, as does any template that does not fit
//! the response size limit. A property test holds both paths to the same
//! answers.
//!
//! A signed response (DO, in a signed zone) holds its RRSIGs; it is served
//! only between the latest inception and the earliest refresh time of the
//! signatures in it, so a template never outlives its signatures and a
//! clock that jumps either way sends the query the full way, which signs
//! afresh (or takes the fresh signature from the zone's cache) and
//! replaces the template.
//!
//! Templates live per thread (each UDP socket has its own), so answering
//! takes no lock; a reload starts them afresh.

use std::cell::RefCell;
use std::collections::HashMap;

use super::cookie::RESPONSE_COOKIE_LEN;
use super::edns::{OPTION_COOKIE, OPTION_ECS};
use super::signed::Freshness;
use super::wire::{HEADER_LEN, OPT_FIXED_LEN, Query};
use crate::zone::Family;

/// Our COOKIE option: code, length, client and server cookie.
const COOKIE_OPTION_LEN: usize = 4 + RESPONSE_COOKIE_LEN;
/// Names (with their type) and template bytes kept per thread; past either
/// the cache starts over, so a flood of random names and query shapes costs
/// some memory for a moment, never for good.
const MAX_NAMES: usize = 16_384;
const MAX_TEMPLATE_BYTES: usize = 16 << 20;
/// Templates per name: mirrors × query shapes seen.
const MAX_TEMPLATES_PER_NAME: usize = 64;

/// What a response's OPT record must look like: the part of a query's
/// shape that changes the response's bytes beyond what is patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    NoEdns,
    Edns {
        dnssec_ok: bool,
        cookie: bool,
        nsid: bool,
        /// The ECS option's family and source prefix length.
        ecs: Option<(u16, u8)>,
    },
}

/// The shape of a query's response.
fn shape(query: &Query) -> Shape {
    match query.edns() {
        None => Shape::NoEdns,
        Some(e) => Shape::Edns {
            dnssec_ok: e.opt.dnssec_ok,
            cookie: e.options.cookie.is_some(),
            nsid: e.options.nsid,
            ecs: e.options.ecs.map(|ecs| (ecs.family, ecs.source)),
        },
    }
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
    /// For a signed answer, when its signatures may be served.
    pub freshness: Option<Freshness>,
    /// The name does not exist, though compact denial answers NOERROR:
    /// rate limiting counts it with the NXDOMAINs.
    pub denies_name: bool,
}

struct Template {
    mirror: Option<usize>,
    shape: Shape,
    bytes: Box<[u8]>,
    /// A signed response is served only while its signatures are fresh;
    /// then the full path signs (or takes from the cache) and replaces it.
    freshness: Option<Freshness>,
    denies_name: bool,
}

impl Template {
    fn fresh(&self) -> bool {
        self.freshness
            .is_none_or(|f| f.holds_at(crate::dnssec::unix_now()))
    }
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
    /// The response, patched for the query, is in the caller's buffer;
    /// `denies_name` as [`Answered::denies_name`].
    Written { denies_name: bool },
    /// The name is known but no template fits this answer (another mirror,
    /// or too large for the limit); `decide` said this.
    Missing(Option<D>),
    /// No template for the name and type yet.
    Unknown,
}

/// What the server adds to a response beyond what the query's options
/// decide, and what it patches in per query.
#[derive(Clone, Copy)]
pub struct Extras<'c> {
    /// The COOKIE option's data for this response, when the query has one.
    pub cookie: Option<&'c [u8; RESPONSE_COOKIE_LEN]>,
    /// Our NSID option's length (code and length included), 0 with none
    /// configured: a query asking for it gets it.
    pub nsid_option_len: usize,
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
    extras: Extras,
    out: &mut Vec<u8>,
) -> Found<D> {
    let shape = shape(query);
    with_cache(generation, |cache| {
        let Some(entry) = cache.names.get(query.key()) else {
            return Found::Unknown;
        };
        let (mirror, scope, decided) = decide(entry.route);
        let template = entry.templates.iter().find(|t| {
            t.mirror == mirror && t.shape == shape && t.bytes.len() <= limit && t.fresh()
        });
        match template {
            Some(t) => {
                patch(&t.bytes, query, scope, extras, out);
                Found::Written {
                    denies_name: t.denies_name,
                }
            }
            None => Found::Missing(decided),
        }
    })
}

/// The template with this query's ID, RD and CD flags, question, cookie,
/// and ECS address and scope, into `bytes` (whose allocation is reused).
fn patch(template: &[u8], query: &Query, scope: u8, extras: Extras, bytes: &mut Vec<u8>) {
    bytes.clear();
    bytes.extend_from_slice(template);
    bytes[..2].copy_from_slice(&query.raw()[..2]);
    const RD: u8 = 0x01;
    const CD: u8 = 0x10;
    bytes[2] = (bytes[2] & !RD) | (query.raw()[2] & RD);
    bytes[3] = (bytes[3] & !CD) | (query.raw()[3] & CD);
    let question = HEADER_LEN..query.question_end();
    bytes[question.clone()].copy_from_slice(&query.raw()[question]);
    if let Some(cookie) = extras.cookie {
        let at = bytes.len() - opt_len(shape(query), extras.nsid_option_len) + OPT_FIXED_LEN + 4;
        bytes[at..at + RESPONSE_COOKIE_LEN].copy_from_slice(cookie);
    }
    if let Some(ecs) = query.edns().and_then(|e| e.options.ecs) {
        let addr_len = ecs.addr_len();
        let addr_at = bytes.len() - addr_len;
        bytes[addr_at..].copy_from_slice(&ecs.addr[..addr_len]);
        bytes[addr_at - 1] = if ecs.source == 0 { 0 } else { scope };
    }
}

/// The length of our OPT record for a query of `shape` (0: none): the
/// COOKIE option first, then NSID, then the ECS echo last.
fn opt_len(shape: Shape, nsid_option_len: usize) -> usize {
    match shape {
        Shape::NoEdns => 0,
        Shape::Edns {
            cookie, nsid, ecs, ..
        } => {
            OPT_FIXED_LEN
                + if cookie { COOKIE_OPTION_LEN } else { 0 }
                + if nsid { nsid_option_len } else { 0 }
                + ecs.map_or(0, |(_, source)| 8 + usize::from(source).div_ceil(8))
        }
    }
}

/// Keeps the full path's `response` to `query` as a template, if it has the
/// layout patching relies on: the question as asked right after the header,
/// and the OPT, when there is one, last, with the COOKIE option first and
/// the ECS echo at its end.
pub fn remember(
    generation: u64,
    query: &Query,
    answered: Answered,
    response: &[u8],
    nsid_option_len: usize,
) {
    if !has_patchable_layout(query, response, nsid_option_len) {
        return;
    }
    with_cache(generation, |cache| {
        if cache.names.len() >= MAX_NAMES || cache.bytes + response.len() > MAX_TEMPLATE_BYTES {
            cache.clear();
        }
        let entry = cache
            .names
            .entry(query.key().into())
            .or_insert_with(|| NameEntry {
                route: answered.route,
                templates: Vec::new(),
            });
        let shape = shape(query);
        let template = Template {
            mirror: answered.mirror,
            shape,
            bytes: response.into(),
            freshness: answered.freshness,
            denies_name: answered.denies_name,
        };
        let full = entry.route != answered.route || entry.templates.len() >= MAX_TEMPLATES_PER_NAME;
        let known = entry
            .templates
            .iter_mut()
            .find(|t| t.mirror == answered.mirror && t.shape == shape);
        match known {
            // A signed template past its freshness is replaced by the new one.
            Some(old) if old.freshness.is_some() => {
                cache.bytes = cache.bytes + template.bytes.len() - old.bytes.len();
                *old = template;
            }
            Some(_) => {}
            None if full => {}
            None => {
                cache.bytes += template.bytes.len();
                entry.templates.push(template);
            }
        }
    });
}

fn has_patchable_layout(query: &Query, response: &[u8], nsid_option_len: usize) -> bool {
    let question = HEADER_LEN..query.question_end();
    let shape = shape(query);
    let opt_len = opt_len(shape, nsid_option_len);
    let same_question = response.get(question.clone()) == query.raw().get(question);
    let counts = response.get(4..6) == Some(&[0, 1]);
    let truncated = response.get(2).is_none_or(|f| f & 0x02 != 0);
    if !same_question || !counts || truncated || response.len() < query.question_end() + opt_len {
        return false;
    }
    let opt = &response[response.len() - opt_len..];
    let Shape::Edns { cookie, ecs, .. } = shape else {
        return true;
    };
    let rdlength = u16::from_be_bytes([opt[9], opt[10]]);
    let opt_is_last = opt[..3] == [0, 0, 41] && usize::from(rdlength) == opt_len - OPT_FIXED_LEN;
    let cookie_first = !cookie
        || opt[OPT_FIXED_LEN..OPT_FIXED_LEN + 4]
            == [0, OPTION_COOKIE as u8, 0, RESPONSE_COOKIE_LEN as u8];
    let ecs_last = ecs.is_none_or(|(family, source)| {
        let option = &opt[opt_len - 8 - usize::from(source).div_ceil(8)..];
        option[..2] == OPTION_ECS.to_be_bytes()
            && option[4..6] == family.to_be_bytes()
            && option[6] == source
    });
    opt_is_last && cookie_first && ecs_last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::tests::query;

    #[test]
    fn a_cookie_nsid_and_the_do_bit_are_part_of_the_shape() {
        let options = [
            0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, // a client cookie
            0, 3, 0, 0, // NSID asked for
            0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100,
        ];
        let mut raw = query(Some(&options));
        let expected = Shape::Edns {
            dnssec_ok: false,
            cookie: true,
            nsid: true,
            ecs: Some((1, 24)),
        };
        let mut key = [0; 257];
        assert_eq!(shape(&Query::parse(&raw, &mut key).unwrap()), expected);
        assert_eq!(opt_len(expected, 4 + 5), 11 + 28 + 9 + 11);
        assert_eq!(opt_len(expected, 0), 11 + 28 + 11);
        let do_at = raw.len() - options.len() - 4;
        raw[do_at] = 0x80;
        assert!(matches!(
            shape(&Query::parse(&raw, &mut key).unwrap()),
            Shape::Edns {
                dnssec_ok: true,
                ..
            }
        ));
    }
}
