//! One request → one response, in wire bytes. Owns everything a response's
//! header and OPT record must say: flags, rcodes for bad requests, EDNS
//! version and size, the ECS echo, and truncation.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable};
use ipnet::IpNet;

use super::lookup::Answer;
use super::rrl::{Rrl, RrlConfig, Verdict};
use super::{Catalog, fast};
use crate::steering::Decision;

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
}

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

/// What the request's OPT record asked for, as far as the response needs it.
struct RequestEdns {
    max_payload: u16,
    subnet: Option<ClientSubnet>,
}

impl Handler {
    pub fn new(catalog: Catalog, rrl: RrlConfig) -> Self {
        Handler {
            catalog: ArcSwap::from_pointee(catalog),
            stats: QueryStats::default(),
            rrl: Rrl::new(rrl),
        }
    }

    /// Responses dropped and sent truncated by rate limiting.
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
        let query = fast::Query::parse(request);
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

    /// Answers from a template, into `out`, when this thread has one for
    /// the query.
    fn answer_from_template(
        &self,
        catalog: &Catalog,
        query: &fast::Query,
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
        match fast::answer(catalog.generation, query, limit, decide, out) {
            fast::Found::Written => {}
            fast::Found::Missing(Some(decision)) => return Templated::Decided(decision),
            fast::Found::Missing(None) | fast::Found::Unknown => return Templated::Unknown,
        }
        let qtype = RecordType::from(query.qtype());
        let rcode = ResponseCode::from(0, out[3] & 0x0f);
        self.stats.record(Some(qtype), rcode);
        let verdict = match transport {
            Transport::Udp => self.rrl.check(source, query.lower_name(), qtype, rcode),
            Transport::Tcp => Verdict::Send,
        };
        Templated::Done(match verdict {
            Verdict::Send => true,
            Verdict::Drop => false,
            Verdict::Truncate => {
                fast::truncate(out, query);
                true
            }
        })
    }

    /// Decodes the request with hickory, answers from the catalog, encodes;
    /// keeps the response as a template when the query has the common shape.
    fn full_path(
        &self,
        catalog: &Catalog,
        request: &[u8],
        query: Option<&fast::Query>,
        decided: Option<Decision>,
        source: IpAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let header = Header::read(&mut BinDecoder::new(request)).ok()?;
        if header.metadata.message_type != MessageType::Query {
            return None;
        }
        let message = match Message::from_vec(request) {
            Ok(m) => m,
            Err(_) => {
                self.stats.record(None, ResponseCode::FormErr);
                return encode_bare(
                    header.metadata.id,
                    header.metadata.op_code,
                    ResponseCode::FormErr,
                );
            }
        };
        let (mut response, limit, answered) =
            self.respond(catalog, &message, request, source, transport, decided);
        let qtype = message.queries.first().map(|q| q.query_type());
        self.stats.record(qtype, response.metadata.response_code);
        let mut verdict = Verdict::Send;
        if transport == Transport::Udp
            && self.rrl.limits(source)
            && let Some(q) = message.queries.first()
        {
            let name = q.name().to_lowercase().to_bytes().unwrap_or_default();
            verdict = self.rrl.check(
                source,
                &name,
                q.query_type(),
                response.metadata.response_code,
            );
            match verdict {
                Verdict::Send => {}
                Verdict::Drop => return None,
                Verdict::Truncate => {
                    // The slip: nothing but TC, so a real client retries over TCP.
                    response.answers.clear();
                    response.authorities.clear();
                    response.additionals.clear();
                    response.metadata.truncation = true;
                }
            }
        }
        let bytes = encode_within(response, limit);
        if verdict == Verdict::Send
            && let (Some(q), Some(answered)) = (query, answered)
        {
            fast::remember(catalog.generation, q, answered, &bytes);
        }
        Some(bytes)
    }

    /// Queries answered so far, by type and rcode.
    pub fn stats(&self) -> &QueryStats {
        &self.stats
    }

    /// The response, the size it must fit in, and, for an answer worth
    /// keeping as a template, how it came about.
    fn respond(
        &self,
        catalog: &Catalog,
        request: &Message,
        raw: &[u8],
        source: IpAddr,
        transport: Transport,
        decided: Option<Decision>,
    ) -> (Message, usize, Option<fast::Answered>) {
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.checking_disabled = request.metadata.checking_disabled;
        response.add_queries(request.queries.iter().cloned());

        let edns = match request
            .edns
            .as_ref()
            .map(|e| check_edns(e, raw))
            .transpose()
        {
            Ok(e) => e,
            Err(rcode) => {
                let payload = request.edns.as_ref().map(|_| OUR_UDP_PAYLOAD);
                return (
                    error_response(response, rcode, payload),
                    usize::from(CLASSIC_UDP_PAYLOAD),
                    None,
                );
            }
        };
        let limit = response_limit(transport, edns.as_ref().map(|e| e.max_payload));
        if let Some(rcode) = precheck(request) {
            response.metadata.response_code = rcode;
            set_opt(&mut response, edns.as_ref(), None);
            return (response, limit, None);
        }
        let query = &request.queries[0];
        let ecs = edns.as_ref().and_then(|e| e.subnet).and_then(ecs_prefix);
        let client = client_of(ecs, source);
        let answer =
            catalog.lookup_decided(query.name(), query.query_type(), client, source, decided);
        let answered = template_worthy(&answer);
        apply(&mut response, answer, edns.as_ref());
        (response, limit, answered)
    }
}

/// What the template path needs to know to reuse a response with this
/// answer: positive and negative answers only, not errors.
fn template_worthy(answer: &Answer) -> Option<fast::Answered> {
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
        },
        None => fast::Answered {
            route: fast::Route::Fixed,
            mirror: None,
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

/// Request problems answered before any lookup.
fn precheck(request: &Message) -> Option<ResponseCode> {
    if request.metadata.op_code != OpCode::Query {
        return Some(ResponseCode::NotImp);
    }
    if request.queries.len() != 1 || !request.answers.is_empty() || !request.authorities.is_empty()
    {
        return Some(ResponseCode::FormErr);
    }
    let query: &Query = &request.queries[0];
    if query.query_class() != DNSClass::IN {
        return Some(ResponseCode::Refused);
    }
    match query.query_type() {
        // Zone transfers are not offered.
        RecordType::AXFR | RecordType::IXFR => Some(ResponseCode::Refused),
        RecordType::OPT => Some(ResponseCode::FormErr),
        _ => None,
    }
}

/// RFC 6891 version check and RFC 7871 section 7.1.1 ECS validation.
fn check_edns(edns: &Edns, raw: &[u8]) -> Result<RequestEdns, ResponseCode> {
    if edns.version() > 0 {
        return Err(ResponseCode::BADVERS);
    }
    let subnet = match edns.option(EdnsCode::Subnet) {
        Some(EdnsOption::Subnet(s)) => Some(*s),
        Some(_) => return Err(ResponseCode::FormErr),
        None => None,
    };
    if let Some(s) = subnet {
        valid_subnet(&s)
            .then_some(())
            .ok_or(ResponseCode::FormErr)?;
        // hickory reads only the address bytes the prefix needs; extra bytes
        // show as an OPT RDATA longer than the options it decoded.
        if opt_rdata_len(raw) != Some(options_len(edns)) {
            return Err(ResponseCode::FormErr);
        }
    }
    Ok(RequestEdns {
        max_payload: edns.max_payload(),
        subnet,
    })
}

/// The source prefix fits the family, and no address bit is set beyond it.
fn valid_subnet(subnet: &ClientSubnet) -> bool {
    match IpNet::new(subnet.addr(), subnet.source_prefix()) {
        Ok(net) => net.trunc().addr() == subnet.addr(),
        Err(_) => false,
    }
}

fn options_len(edns: &Edns) -> usize {
    edns.options()
        .as_ref()
        .iter()
        .map(|(_, o)| 4 + usize::from(o.len()))
        .sum()
}

/// The RDLENGTH of the request's OPT record (the message already decoded).
fn opt_rdata_len(raw: &[u8]) -> Option<usize> {
    opt_rdata_len_of_plain_query(raw).or_else(|| opt_rdata_len_by_walking(raw))
}

/// The shape of nearly every query (one question, then the OPT as the only
/// other record, nothing after it): the OPT's RDLENGTH sits right after the
/// question, reached by skipping its labels. Decoding the message a second
/// time cost a third of an ECS query.
fn opt_rdata_len_of_plain_query(raw: &[u8]) -> Option<usize> {
    const ONE_QUESTION_ONE_ADDITIONAL: [u8; 8] = [0, 1, 0, 0, 0, 0, 0, 1];
    if raw.get(4..12)? != ONE_QUESTION_ONE_ADDITIONAL {
        return None;
    }
    let mut at = 12;
    loop {
        let label = usize::from(*raw.get(at)?);
        at += 1;
        match label {
            0 => break,
            1..=63 => at += label,
            _ => return None,
        }
    }
    at += 4; // QTYPE, QCLASS
    let owner_is_root = *raw.get(at)? == 0;
    let is_opt = raw.get(at + 1..at + 3)? == u16::from(RecordType::OPT).to_be_bytes();
    let rdlength = usize::from(u16::from_be_bytes([*raw.get(at + 9)?, *raw.get(at + 10)?]));
    (owner_is_root && is_opt && at + 11 + rdlength == raw.len()).then_some(rdlength)
}

/// Any other shape: walk the message with hickory's decoder up to the OPT.
fn opt_rdata_len_by_walking(raw: &[u8]) -> Option<usize> {
    let mut decoder = BinDecoder::new(raw);
    let header = Header::read(&mut decoder).ok()?;
    for _ in 0..header.counts.queries {
        Query::read(&mut decoder).ok()?;
    }
    let records = header.counts.answers as usize
        + header.counts.authorities as usize
        + header.counts.additionals as usize;
    for _ in 0..records {
        let start = decoder.index();
        let record = hickory_proto::rr::Record::read(&mut decoder).ok()?;
        if record.record_type() == RecordType::OPT {
            // Owner "." is one byte; TYPE, CLASS, TTL and RDLENGTH are ten.
            return (decoder.index() - start).checked_sub(11);
        }
    }
    None
}

/// The client a query speaks for: its ECS prefix when it gives one, else
/// the source address.
fn client_of(ecs: Option<IpNet>, source: IpAddr) -> IpNet {
    ecs.unwrap_or_else(|| IpNet::from(source.to_canonical()))
}

/// The prefix an ECS option names; `None` for source prefix 0, which means
/// "use the resolver's address" (RFC 7871).
fn ecs_prefix(subnet: ClientSubnet) -> Option<IpNet> {
    if subnet.source_prefix() == 0 {
        return None;
    }
    IpNet::new(subnet.addr(), subnet.source_prefix()).ok()
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

fn apply(response: &mut Message, answer: Answer, edns: Option<&RequestEdns>) {
    response.metadata.response_code = answer.rcode;
    response.metadata.authoritative = answer.authoritative;
    response.answers = answer.answers;
    response.authorities = answer.authorities;
    response.additionals = answer.additionals;
    set_opt(response, edns, answer.steered_by.map(|s| s.scope));
}

/// Adds our OPT record when the request had one, echoing ECS with `scope`
/// (0 when the answer does not depend on the client).
fn set_opt(response: &mut Message, edns: Option<&RequestEdns>, scope: Option<u8>) {
    let Some(request) = edns else { return };
    let mut ours = Edns::new();
    ours.set_max_payload(OUR_UDP_PAYLOAD);
    if let Some(subnet) = request.subnet {
        let mut echo = subnet;
        echo.set_scope_prefix(if subnet.source_prefix() == 0 {
            0
        } else {
            scope.unwrap_or(0)
        });
        ours.options_mut().insert(EdnsOption::Subnet(echo));
    }
    response.set_edns(ours);
}

fn error_response(mut response: Message, rcode: ResponseCode, payload: Option<u16>) -> Message {
    response.metadata.response_code = rcode;
    if let Some(p) = payload {
        let mut ours = Edns::new();
        ours.set_max_payload(p);
        response.set_edns(ours);
    }
    response
}

/// Encodes `response`; when it does not fit in `limit` bytes, sends the
/// header, question and OPT with TC set instead, so the client retries over TCP.
fn encode_within(mut response: Message, limit: usize) -> Vec<u8> {
    if let Ok(bytes) = response.to_vec()
        && bytes.len() <= limit
    {
        return bytes;
    }
    response.answers.clear();
    response.authorities.clear();
    response.additionals.clear();
    response.metadata.truncation = true;
    match response.to_vec() {
        Ok(bytes) => bytes,
        Err(_) => encode_bare(
            response.metadata.id,
            response.metadata.op_code,
            ResponseCode::ServFail,
        )
        .unwrap_or_default(),
    }
}

/// A response with only a header: for requests whose body cannot be decoded.
fn encode_bare(id: u16, op_code: OpCode, rcode: ResponseCode) -> Option<Vec<u8>> {
    let message = Message::error_msg(id, op_code, rcode);
    let bytes = message.to_vec().ok()?;
    debug_assert!(bytes.len() == HEADER_LEN);
    Some(bytes)
}
