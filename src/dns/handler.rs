//! One request → one response, in wire bytes. Owns everything a response's
//! header and OPT record must say: flags, rcodes for bad requests (with the
//! question and an OPT wherever the request allows), EDNS version, size
//! and DO bit, the ECS echo, cookies, NSID, extended errors, TSIG refusal,
//! and truncation.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::tsig::{TSIG, TsigError, make_tsig_record};
use hickory_proto::rr::{DNSClass, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use ipnet::IpNet;

use super::cookie::{self, CookieSecret, ResponseCookie};
use super::edns::{self, Ecs, OPTION_COOKIE, OPTION_ECS, OPTION_EDE, OPTION_NSID};
use super::lookup::{Answer, Denial};
use super::request::Request;
use super::rrl::{Rrl, RrlConfig, Verdict};
use super::signed::{self, Freshness};
use super::wire::Opt;
use super::{Catalog, fast, wire};
use crate::dnssec::SignError;
use crate::steering::Decision;
use tracing::warn;

/// The EDNS UDP payload size we advertise (the DNS flag day 2020 value).
const OUR_UDP_PAYLOAD: u16 = 1232;
/// Without EDNS a UDP response is at most 512 bytes (RFC 1035 section 4.2.1).
const CLASSIC_UDP_PAYLOAD: u16 = 512;
const HEADER_LEN: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Answers requests from the catalog it holds; a reload swaps the catalog
/// atomically and each request keeps the snapshot it started with.
pub struct Handler {
    catalog: ArcSwap<Catalog>,
    stats: QueryStats,
    rrl: Rrl,
    /// TCP connections: open now, and refused (closed at once) over the limit.
    pub(super) tcp_open: AtomicU64,
    pub(super) tcp_refused: AtomicU64,
    /// `serve --nsid`: sent to requestors that ask (RFC 5001).
    nsid: Option<Box<[u8]>>,
    cookies: CookieSecret,
}

/// How a server answers beyond its zones: `serve`'s DNS options.
#[derive(Clone, Debug)]
pub struct Options {
    pub rrl: RrlConfig,
    /// Our name server identifier, at most [`MAX_NSID_LEN`] bytes.
    pub nsid: Option<Vec<u8>>,
    pub cookie_secret: CookieSecret,
}

/// The longest NSID we send: it rides in every response that asks for it,
/// 512-byte ones included.
pub const MAX_NSID_LEN: usize = 128;

/// Extended DNS Errors (RFC 8914) we send.
const EDE_NOT_AUTHORITATIVE: u16 = 20;
const EDE_NOT_SUPPORTED: u16 = 21;
const EDE_INVALID_QUERY_TYPE: u16 = 30;

/// The query types counted on their own; the rest count as "other".
const COUNTED_TYPES: [RecordType; 12] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::ANY,
    RecordType::CAA,
    RecordType::CNAME,
    RecordType::DS,
    RecordType::MX,
    RecordType::NS,
    RecordType::PTR,
    RecordType::SOA,
    RecordType::SRV,
    RecordType::TXT,
];
/// Rcodes up to BADVERS (16) counted on their own; higher ones as 17.
const COUNTED_RCODES: usize = 18;
/// RFC 1035, 2136 and 6891 mnemonics, as dig prints them.
const RCODE_NAMES: [&str; 17] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
    "BADVERS",
];

/// Queries by type and rcode, in plain atomics: a labelled metric family
/// would hash its labels on every query. One set of counters per shard, a
/// thread counting in its own, so that UDP threads on different cores do
/// not pass the counters' cache lines back and forth on every query.
pub struct QueryStats {
    shards: Vec<Vec<AtomicU64>>,
}

const STAT_SHARDS: usize = 8;
const STAT_SLOTS: usize = (COUNTED_TYPES.len() + 2) * COUNTED_RCODES;

impl Default for QueryStats {
    fn default() -> Self {
        let shard = || (0..STAT_SLOTS).map(|_| AtomicU64::new(0)).collect();
        QueryStats {
            shards: (0..STAT_SHARDS).map(|_| shard()).collect(),
        }
    }
}

/// This thread's shard: threads take them in turn as they first count.
fn stat_shard() -> usize {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static SHARD: usize = (NEXT.fetch_add(1, Ordering::Relaxed) as usize) % STAT_SHARDS;
    }
    SHARD.with(|s| *s)
}

impl QueryStats {
    fn record(&self, qtype: Option<RecordType>, rcode: ResponseCode) {
        let t = match qtype {
            None => COUNTED_TYPES.len() + 1,
            Some(q) => COUNTED_TYPES
                .iter()
                .position(|c| *c == q)
                .unwrap_or(COUNTED_TYPES.len()),
        };
        let r = usize::from(u16::from(rcode)).min(COUNTED_RCODES - 1);
        self.shards[stat_shard()][t * COUNTED_RCODES + r].fetch_add(1, Ordering::Relaxed);
    }

    /// Non-zero counts as (query type, rcode, count); types "other" and
    /// "none" (undecodable requests), rcodes by their mnemonic.
    pub fn snapshot(&self) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for i in 0..STAT_SLOTS {
            let n: u64 = self
                .shards
                .iter()
                .map(|shard| shard[i].load(Ordering::Relaxed))
                .sum();
            if n == 0 {
                continue;
            }
            let (t, r) = (i / COUNTED_RCODES, i % COUNTED_RCODES);
            let qtype = match COUNTED_TYPES.get(t) {
                Some(q) => q.to_string(),
                None if t == COUNTED_TYPES.len() => "other".to_string(),
                None => "none".to_string(),
            };
            let rcode = RCODE_NAMES.get(r).copied().unwrap_or("other").to_string();
            out.push((qtype, rcode, n));
        }
        out
    }
}

impl Handler {
    /// A handler with rate limiting as `rrl` says, no NSID and a cookie
    /// secret of its own.
    pub fn new(catalog: Catalog, rrl: RrlConfig) -> Self {
        Handler::with_options(
            catalog,
            Options {
                rrl,
                nsid: None,
                cookie_secret: CookieSecret::random(),
            },
        )
    }

    pub fn with_options(catalog: Catalog, options: Options) -> Self {
        let mut nsid = options.nsid;
        if let Some(n) = &mut nsid {
            n.truncate(MAX_NSID_LEN);
        }
        Handler {
            catalog: ArcSwap::from_pointee(catalog),
            stats: QueryStats::default(),
            tcp_open: AtomicU64::new(0),
            tcp_refused: AtomicU64::new(0),
            rrl: Rrl::new(options.rrl),
            nsid: nsid.map(Vec::into_boxed_slice),
            cookies: options.cookie_secret,
        }
    }

    /// Responses dropped and sent truncated by rate limiting.
    /// TCP connections open now, and those refused over the limit so far.
    pub fn tcp_counts(&self) -> (u64, u64) {
        (
            self.tcp_open.load(Ordering::Relaxed),
            self.tcp_refused.load(Ordering::Relaxed),
        )
    }

    pub fn rrl_counts(&self) -> (u64, u64) {
        (
            self.rrl.dropped.load(Ordering::Relaxed),
            self.rrl.slipped.load(Ordering::Relaxed),
        )
    }

    pub fn swap(&self, catalog: Catalog) {
        self.catalog.store(Arc::new(catalog));
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// The response to `request` from `source`, or `None` when nothing should
    /// be sent (not a query, too short to carry an ID, or rate limited).
    pub fn handle(&self, request: &[u8], source: IpAddr, transport: Transport) -> Option<Vec<u8>> {
        let mut response = Vec::new();
        let catalog = self.catalog.load();
        self.handle_with(&catalog, request, source, transport, &mut response)
            .then_some(response)
    }

    /// [`Handler::handle`] from a catalog snapshot the caller took (with
    /// [`Handler::catalog`]; a UDP thread takes one per batch of datagrams,
    /// not one per query), into a buffer the caller keeps between queries,
    /// so that answering from a template allocates nothing: `true` when
    /// `out` holds a response to send.
    pub fn handle_with(
        &self,
        catalog: &Catalog,
        request: &[u8],
        source: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        let mut key: wire::KeyBuffer = [0; 257];
        let query = wire::Query::parse(request, &mut key);
        let mut decided = None;
        if let Some(q) = &query {
            match self.answer_from_template(catalog, q, source, transport, out) {
                Templated::Done(send) => return send,
                Templated::Decided(d) => decided = Some(d),
                Templated::Unknown => {}
            }
        }
        let full = self.full_path(catalog, request, query.as_ref(), decided, source, transport);
        full.map(|response| *out = response).is_some()
    }

    /// The length of our NSID option (code and length included) in a
    /// response that asks for it; 0 without one.
    fn nsid_option_len(&self) -> usize {
        self.nsid.as_ref().map_or(0, |n| 4 + n.len())
    }

    /// Answers from a template, into `out`, when this thread has one for
    /// the query.
    fn answer_from_template(
        &self,
        catalog: &Catalog,
        query: &wire::Query,
        source: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Templated {
        let limit = response_limit(transport, query.edns_payload());
        let decide = |route| match route {
            fast::Route::Fixed => (None, 0, None),
            fast::Route::Steered {
                zone,
                service,
                family,
            } => {
                let client = client_of(query.ecs_client(), source);
                match catalog.steering[zone][service].decide_for(client, source, family) {
                    Some(d) => (d.mirror, d.scope, Some(d)),
                    None => (None, 0, None),
                }
            }
        };
        let cookie = query
            .cookie()
            .map(|c| self.cookies.respond(&c, source, cookie::now()));
        let extras = fast::Extras {
            cookie: cookie.as_ref().map(|c| &c.bytes),
            nsid_option_len: self.nsid_option_len(),
        };
        let denies_name = match fast::answer(catalog.generation, query, limit, decide, extras, out)
        {
            fast::Found::Written { denies_name } => denies_name,
            fast::Found::Missing(Some(decision)) => return Templated::Decided(decision),
            fast::Found::Missing(None) | fast::Found::Unknown => return Templated::Unknown,
        };
        let sent = Sent {
            qtype: Some(RecordType::from(query.qtype())),
            rcode: ResponseCode::from(0, out[3] & 0x0f),
            denies_name,
            source,
            rate_limited: transport == Transport::Udp && !cookie.is_some_and(|c| c.valid),
        };
        let verdict = self.count_and_limit(sent, || Some(query.lower_name().into()), out);
        Templated::Done(verdict != Verdict::Drop)
    }

    /// The one step every response takes on either path: it is counted,
    /// then rate limiting (UDP, without a valid server cookie) sends it,
    /// drops it, or slips it truncated (header, question and OPT, TC set)
    /// so that a real client retries over TCP. `lower_name` is the query
    /// name in lowercase wire form, asked for only when limiting applies.
    fn count_and_limit<'q>(
        &self,
        sent: Sent,
        lower_name: impl FnOnce() -> Option<Cow<'q, [u8]>>,
        response: &mut Vec<u8>,
    ) -> Verdict {
        self.stats.record(sent.qtype, sent.rcode);
        if !sent.rate_limited || !self.rrl.limits(sent.source) {
            return Verdict::Send;
        }
        let (Some(qtype), Some(name)) = (sent.qtype, lower_name()) else {
            return Verdict::Send;
        };
        // Compact denial answers NOERROR for a name that does not exist;
        // rate limiting still counts it with the NXDOMAINs (one bucket per
        // client network), or a flood of random names would pass.
        let limited_as = match sent.denies_name {
            true => ResponseCode::NXDomain,
            false => sent.rcode,
        };
        let verdict = self.rrl.check(sent.source, &name, qtype, limited_as);
        if verdict == Verdict::Truncate {
            wire::truncate(response);
        }
        verdict
    }

    /// Reads the request, answers from the catalog, encodes with hickory;
    /// keeps the response as a template when the query has the common shape.
    fn full_path(
        &self,
        catalog: &Catalog,
        raw: &[u8],
        query: Option<&wire::Query>,
        decided: Option<Decision>,
        source: IpAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let request = Request::read(raw)?;
        let Responded {
            mut response,
            limit,
            answered,
            cookie_valid,
        } = self.respond(catalog, &request, source, transport, decided);
        let question = request.question.as_ref();
        let sent = Sent {
            qtype: question.map(Query::query_type),
            rcode: response.metadata.response_code,
            denies_name: answered.is_some_and(|a| a.denies_name),
            source,
            rate_limited: transport == Transport::Udp && !cookie_valid,
        };
        let mut bytes = encode_within(&mut response, limit);
        let lower_name = || {
            let name = question?.name().to_lowercase().to_bytes().ok()?;
            Some(Cow::Owned(name))
        };
        let verdict = self.count_and_limit(sent, lower_name, &mut bytes);
        if verdict == Verdict::Drop {
            return None;
        }
        if verdict == Verdict::Send
            && let (Some(q), Some(answered)) = (query, answered)
        {
            fast::remember(
                catalog.generation,
                q,
                answered,
                &bytes,
                self.nsid_option_len(),
            );
        }
        Some(bytes)
    }

    /// Queries answered so far, by type and rcode.
    pub fn stats(&self) -> &QueryStats {
        &self.stats
    }

    /// The response to a request, checked in the order the RFCs give: the
    /// opcode, the message's form, TSIG, the EDNS version, the EDNS
    /// options, then the question.
    fn respond(
        &self,
        catalog: &Catalog,
        request: &Request,
        source: IpAddr,
        transport: Transport,
        decided: Option<Decision>,
    ) -> Responded {
        let header = &request.header.metadata;
        let mut response = Message::response(header.id, header.op_code);
        response.metadata.recursion_desired = header.recursion_desired;
        response.queries.extend(request.question.iter().cloned());
        let limit = response_limit(transport, request.opt.map(|o| o.payload));
        let mut responded = Responded {
            response,
            limit,
            answered: None,
            cookie_valid: false,
        };
        let mut opt = request.opt.map(OurOpt::new);
        // Options that read well are answered in every response with an
        // OPT, errors included (NSID and the cookie, as Knot does); ones
        // that do not get FORMERR below, after what takes precedence.
        let options = request.opt.map(|o| edns::read_options(o.rdata));
        let mut ecs = None;
        if let (Some(ours), Some(Ok(options))) = (&mut opt, options) {
            ecs = options.ecs;
            ours.ecs = ecs.map(|e| (e, 0));
            ours.nsid = options.nsid;
            if let Some(c) = options.cookie {
                let answer = self.cookies.respond(&c, source, cookie::now());
                ours.cookie = Some(answer);
                responded.cookie_valid = answer.valid;
            }
        }
        let error = |responded: &mut Responded, rcode, opt: Option<OurOpt>| {
            responded.response.metadata.response_code = rcode;
            if let Some(o) = opt {
                responded.response.set_edns(o.encode(self.nsid.as_deref()));
            }
        };
        // RFC 1035: NOTIMP for what we do not implement, whatever its
        // body; its flags beyond RD are not ours to copy (Knot gives rd only).
        if header.op_code != OpCode::Query {
            error(&mut responded, ResponseCode::NotImp, opt);
            return responded;
        }
        responded.response.metadata.checking_disabled = header.checking_disabled;
        if request.malformed.is_some() {
            error(&mut responded, ResponseCode::FormErr, opt);
            return responded;
        }
        if let Some(tsig) = &request.tsig {
            // RFC 8945 section 5.2: a TSIG that cannot be read is FORMERR;
            // any other is signed with a key we do not have (5.2.2).
            match &tsig.rdata {
                None => error(&mut responded, ResponseCode::FormErr, opt),
                Some(rdata) => {
                    error(&mut responded, ResponseCode::NotAuth, opt);
                    responded.response.signature = Some(Box::new(bad_key(tsig.key.clone(), rdata)));
                }
            }
            return responded;
        }
        if request.opt.is_some_and(|o| o.version > 0) {
            error(&mut responded, ResponseCode::BADVERS, opt);
            return responded;
        }
        if let Some(Err(_)) = options {
            error(&mut responded, ResponseCode::FormErr, opt);
            return responded;
        }
        if let Some((rcode, ede)) = precheck(request) {
            if let Some(o) = &mut opt {
                o.ede = ede;
            }
            error(&mut responded, rcode, opt);
            return responded;
        }
        let Some(query) = &request.question else {
            error(&mut responded, ResponseCode::FormErr, opt);
            return responded;
        };
        let client = client_of(ecs.and_then(|e| e.client()), source);
        let mut answer =
            catalog.lookup_decided(query.name(), query.query_type(), client, source, decided);
        let dnssec_ok = request.opt.is_some_and(|o| o.dnssec_ok);
        let asked = (query.name(), query.query_type());
        let freshness = match sign_if_asked(catalog, &mut answer, asked, dnssec_ok) {
            Ok(freshness) => freshness,
            Err(e) => {
                warn!("answering SERVFAIL: {e}");
                error(&mut responded, ResponseCode::ServFail, opt);
                return responded;
            }
        };
        responded.answered = template_worthy(&answer, freshness);
        let response = &mut responded.response;
        response.metadata.response_code = answer.rcode;
        response.metadata.authoritative = answer.authoritative;
        if let Some(o) = &mut opt {
            if let Some(e) = &mut o.ecs {
                e.1 = answer.steered_by.map_or(0, |s| s.scope);
            }
            if answer.rcode == ResponseCode::Refused {
                o.ede = Some(EDE_NOT_AUTHORITATIVE);
            }
        }
        response.answers = answer.answers;
        response.authorities = answer.authorities;
        response.additionals = answer.additionals;
        if let Some(o) = opt {
            response.set_edns(o.encode(self.nsid.as_deref()));
        }
        responded
    }
}

/// What counting and rate limiting need to know of a response.
#[derive(Clone, Copy)]
struct Sent {
    qtype: Option<RecordType>,
    rcode: ResponseCode,
    /// The answer says the name does not exist, whatever its rcode.
    denies_name: bool,
    source: IpAddr,
    /// UDP without a valid server cookie: rate limiting may apply.
    rate_limited: bool,
}

/// A response before encoding, the size it must fit in, how it came about
/// (for an answer worth keeping as a template), and whether the request
/// carried a valid server cookie.
struct Responded {
    response: Message,
    limit: usize,
    answered: Option<fast::Answered>,
    cookie_valid: bool,
}

/// What our OPT record says: the requestor's DO bit, and the options its
/// own asked for. Encoded with the COOKIE option first and the ECS echo
/// last, the layout the template path patches.
#[derive(Clone, Copy)]
struct OurOpt {
    dnssec_ok: bool,
    cookie: Option<ResponseCookie>,
    nsid: bool,
    ede: Option<u16>,
    /// The request's ECS and the scope to echo it with.
    ecs: Option<(Ecs, u8)>,
}

impl OurOpt {
    fn new(request: Opt) -> OurOpt {
        OurOpt {
            dnssec_ok: request.dnssec_ok,
            cookie: None,
            nsid: false,
            ede: None,
            ecs: None,
        }
    }

    fn encode(&self, nsid: Option<&[u8]>) -> Edns {
        let mut edns = Edns::new();
        edns.set_max_payload(OUR_UDP_PAYLOAD);
        edns.set_dnssec_ok(self.dnssec_ok);
        let options = edns.options_mut();
        if let Some(c) = &self.cookie {
            options.insert(EdnsOption::Unknown(OPTION_COOKIE, c.bytes.to_vec()));
        }
        if let (true, Some(id)) = (self.nsid, nsid) {
            options.insert(EdnsOption::Unknown(OPTION_NSID, id.to_vec()));
        }
        if let Some(code) = self.ede {
            // INFO-CODE, no EXTRA-TEXT.
            options.insert(EdnsOption::Unknown(OPTION_EDE, code.to_be_bytes().to_vec()));
        }
        if let Some((ecs, scope)) = &self.ecs {
            options.insert(EdnsOption::Unknown(OPTION_ECS, ecs.echo(*scope)));
        }
        edns
    }
}

/// The TSIG record of our answer to a request signed with a key we do not
/// have (RFC 8945 section 5.2.2): the request's key and algorithm, no MAC
/// (the response is unsigned, section 5.3.2), error BADKEY.
fn bad_key(key: hickory_proto::rr::Name, request: &TSIG) -> hickory_proto::rr::Record<TSIG> {
    let rdata = TSIG::new(
        request.algorithm.clone(),
        request.time,
        request.fudge,
        Vec::new(),
        request.oid,
        Some(TsigError::BadKey),
        Vec::new(),
    );
    make_tsig_record(key, rdata)
}

/// Signs `answer` when the query has DO and its zone is signed; returns
/// how long the signatures hold (`None`: unsigned, for ever).
fn sign_if_asked(
    catalog: &Catalog,
    answer: &mut Answer,
    asked: (&hickory_proto::rr::Name, RecordType),
    dnssec_ok: bool,
) -> Result<Option<Freshness>, SignError> {
    let Some(zone) = answer.zone.map(|i| &catalog.zones.zones()[i]) else {
        return Ok(None);
    };
    if !dnssec_ok || zone.signer().is_none() {
        return Ok(None);
    }
    signed::sign(answer, zone, asked, crate::dnssec::unix_now()).map(Some)
}

/// What the template path needs to know to reuse a response with this
/// answer: positive and negative answers only, not errors; a signed one
/// only while its signatures are fresh.
fn template_worthy(answer: &Answer, freshness: Option<Freshness>) -> Option<fast::Answered> {
    let denies_name = matches!(answer.denial, Some(Denial::Name(_)));
    if !matches!(answer.rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
        return None;
    }
    Some(match answer.steered_by {
        Some(s) => fast::Answered {
            route: fast::Route::Steered {
                zone: s.zone,
                service: s.service,
                family: s.family,
            },
            mirror: s.mirror,
            freshness,
            denies_name,
        },
        None => fast::Answered {
            route: fast::Route::Fixed,
            mirror: None,
            freshness,
            denies_name,
        },
    })
}

/// What the template path did with a query.
enum Templated {
    /// Answered: `true` to send the response in the buffer, `false` when
    /// rate limiting drops it.
    Done(bool),
    /// No template for the mirror steering picked: the full path must use
    /// this decision rather than make another.
    Decided(Decision),
    /// No template for the name.
    Unknown,
}

/// Questions answered before any lookup: the rcode, and the extended
/// error (RFC 8914) that says why.
fn precheck(request: &Request) -> Option<(ResponseCode, Option<u16>)> {
    let query: &Query = request.question.as_ref()?;
    if query.query_class() != DNSClass::IN {
        return Some((ResponseCode::Refused, Some(EDE_NOT_AUTHORITATIVE)));
    }
    match query.query_type() {
        // Zone transfers are not offered.
        RecordType::AXFR | RecordType::IXFR => {
            Some((ResponseCode::Refused, Some(EDE_NOT_SUPPORTED)))
        }
        RecordType::OPT => Some((ResponseCode::FormErr, None)),
        // A meta-type of compact denial, never a query's (RFC 9824 section 3.5).
        t if crate::dnssec::denial::is_nxname(t) => {
            Some((ResponseCode::FormErr, Some(EDE_INVALID_QUERY_TYPE)))
        }
        _ => None,
    }
}

/// The client a query speaks for: its ECS prefix when it gives one, else
/// the source address.
fn client_of(ecs: Option<IpNet>, source: IpAddr) -> IpNet {
    ecs.unwrap_or_else(|| IpNet::from(source.to_canonical()))
}

/// The most a response may hold: 512 bytes over UDP without EDNS, the
/// request's EDNS size (never less than 512) with it, 64 KiB over TCP.
fn response_limit(transport: Transport, edns_payload: Option<u16>) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => {
            usize::from(edns_payload.map_or(CLASSIC_UDP_PAYLOAD, |p| p.max(CLASSIC_UDP_PAYLOAD)))
        }
    }
}

/// Encodes `response`; when it does not fit in `limit` bytes, sends the
/// header, question and OPT with TC set instead ([`wire::truncate`]), so
/// the client retries over TCP. A response that cannot be encoded at all
/// is a SERVFAIL.
fn encode_within(response: &mut Message, limit: usize) -> Vec<u8> {
    match response.to_vec() {
        Ok(mut bytes) => {
            if bytes.len() > limit {
                wire::truncate(&mut bytes);
            }
            bytes
        }
        Err(_) => encode_bare(response.metadata.id, response.metadata.op_code),
    }
}

/// A SERVFAIL with only a header: for a response that cannot be encoded.
fn encode_bare(id: u16, op_code: OpCode) -> Vec<u8> {
    let message = Message::error_msg(id, op_code, ResponseCode::ServFail);
    let bytes = message.to_vec().unwrap_or_default();
    debug_assert!(bytes.len() == HEADER_LEN);
    bytes
}
