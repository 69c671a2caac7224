//! YAML text → validated [`Zone`]: every rule of SPEC section 6, each error
//! naming the file, line and column.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::rdata::{CAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::error::{Position, ZoneError, ZoneErrors};
use super::positions::PositionIndex;
use super::{
    ClusterConfig, HealthCheck, HealthProbe, Mirror, Node, RRset, Service, SwitchMargin, Zone,
};

const DEFAULT_TTL: u32 = 3600;
/// The steering engine tracks a cluster's mirrors in a 64-bit set.
const MAX_MIRRORS: usize = 64;
/// RFC 1035 section 3.3: a character-string is at most 255 bytes. Longer TXT
/// strings are rejected rather than split silently, so what is served is
/// exactly what the operator wrote; a list of strings makes one record of
/// several character-strings.
const MAX_CHARACTER_STRING: usize = 255;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    origin: String,
    ttl: Option<u32>,
    soa: RawSoa,
    #[serde(default)]
    records: Mapping,
    #[serde(default)]
    services: Mapping,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSoa {
    mname: String,
    rname: String,
    serial: u32,
    refresh: i32,
    retry: i32,
    expire: i32,
    minimum: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    #[serde(rename = "type")]
    record_type: String,
    value: Option<Value>,
    values: Option<Vec<Value>>,
    ttl: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    ttl: Option<u32>,
    mirrors: Vec<RawMirror>,
    #[serde(default)]
    clusters: RawClusters,
    #[serde(default)]
    measurements: RawMeasurements,
    switch_margin: Option<RawMargin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    name: String,
    #[serde(default)]
    ipv4: Vec<String>,
    #[serde(default)]
    ipv6: Vec<String>,
    capacity_qps: Option<u64>,
    health: Option<RawHealth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    tcp_port: Option<u16>,
    url: Option<String>,
    address: Option<String>,
    interval_s: Option<u64>,
    timeout_ms: Option<u64>,
    rise: Option<u32>,
    fall: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawClusters {
    initial_v4: Option<u8>,
    initial_v6: Option<u8>,
    block_v4: Option<u8>,
    block_v6: Option<u8>,
    prefixes: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMeasurements {
    max_age_s: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMargin {
    ms: f64,
    percent: f64,
}

/// Collects errors with positions while one file is converted.
struct Context<'a> {
    file: &'a Path,
    index: PositionIndex,
    origin: Name,
    default_ttl: u32,
    errors: Vec<ZoneError>,
}

impl Context<'_> {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        let position = self.index.find(path);
        self.errors
            .push(ZoneError::new(self.file, position, message));
    }

    /// Deserialises a sub-tree, reporting serde's complaint at the sub-tree's position.
    fn typed<T: DeserializeOwned>(&mut self, path: &str, value: &Value) -> Option<T> {
        match serde_yaml::from_value(value.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(path, e.to_string());
                None
            }
        }
    }
}

pub(super) fn parse_zone(file: &Path, source: &str) -> Result<Zone, ZoneErrors> {
    let raw: RawZone = serde_yaml::from_str(source).map_err(|e| {
        let position = e.location().map(|l| Position {
            line: l.line(),
            column: l.column(),
        });
        ZoneErrors(vec![ZoneError::new(file, position, e.to_string())])
    })?;
    let index = PositionIndex::build(source);
    let origin = match parse_origin(&raw.origin) {
        Ok(o) => o,
        Err(message) => {
            let position = index.find("origin");
            return Err(ZoneErrors(vec![ZoneError::new(file, position, message)]));
        }
    };
    let mut cx = Context {
        file,
        index,
        origin,
        default_ttl: raw.ttl.unwrap_or(DEFAULT_TTL),
        errors: Vec::new(),
    };
    let soa = build_soa(&mut cx, &raw.soa);
    let mut builder = NodesBuilder::default();
    for (key, value) in &raw.records {
        add_owner_records(&mut cx, &mut builder, key, value);
    }
    let mut services = Vec::new();
    for (key, value) in &raw.services {
        if let Some(service) = build_service(&mut cx, &mut builder, key, value) {
            services.push(Arc::new(service));
        }
    }
    let zone = soa.and_then(|soa| builder.finish(&mut cx, soa, services));
    match zone {
        Some(zone) if cx.errors.is_empty() => Ok(zone),
        _ => Err(ZoneErrors(cx.errors)),
    }
}

fn parse_origin(text: &str) -> Result<Name, String> {
    if !text.ends_with('.') {
        return Err(format!("origin {text:?} must be absolute (end with '.')"));
    }
    parse_name_text(text, false)
}

/// Checks the presentation form of a name: labels of letters, digits, '-' and
/// '_' (for SRV and DMARC-style owners), 1 to 63 bytes; `*` only as the
/// leftmost label of an owner.
fn parse_name_text(text: &str, allow_wildcard: bool) -> Result<Name, String> {
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    if !trimmed.is_empty() {
        for (i, label) in trimmed.split('.').enumerate() {
            if label == "*" && i == 0 && allow_wildcard {
                continue;
            }
            let valid_chars = label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if label.is_empty() || label.len() > 63 || !valid_chars {
                return Err(format!(
                    "bad name {text:?}: label {label:?} is not a valid DNS label"
                ));
            }
        }
    }
    Name::from_ascii(text).map_err(|e| format!("bad name {text:?}: {e}"))
}

impl Context<'_> {
    /// A name written in the zone: absolute with a trailing dot, else relative
    /// to the origin; '' and '@' are the origin itself.
    fn name(&self, text: &str, allow_wildcard: bool) -> Result<Name, String> {
        if text.is_empty() || text == "@" {
            return Ok(self.origin.clone());
        }
        let name = parse_name_text(text, allow_wildcard)?;
        if name.is_fqdn() {
            return Ok(name);
        }
        name.append_domain(&self.origin)
            .map_err(|e| format!("bad name {text:?}: {e}"))
    }

    fn owner(&self, text: &str) -> Result<Name, String> {
        let name = self.name(text, true)?;
        if !self.origin.zone_of(&name) {
            return Err(format!(
                "owner {name} is outside the origin {}",
                self.origin
            ));
        }
        Ok(name)
    }
}

fn build_soa(cx: &mut Context<'_>, raw: &RawSoa) -> Option<Record> {
    let mname = cx.name(&raw.mname, false);
    let rname = cx.name(&raw.rname, false);
    match (mname, rname) {
        (Ok(mname), Ok(rname)) => {
            let soa = SOA::new(
                mname,
                rname,
                raw.serial,
                raw.refresh,
                raw.retry,
                raw.expire,
                raw.minimum,
            );
            Some(Record::from_rdata(
                cx.origin.clone(),
                cx.default_ttl,
                RData::SOA(soa),
            ))
        }
        (Err(e), _) => {
            cx.error("soa/mname", e);
            None
        }
        (_, Err(e)) => {
            cx.error("soa/rname", e);
            None
        }
    }
}

/// A record as written, remembered with its path for errors found later
/// (CNAME beside other data, clashes with services).
struct Entry {
    path: String,
    record: Record,
}

#[derive(Default)]
struct NodesBuilder {
    owners: Vec<Name>,
    entries: HashMap<Name, Vec<Entry>>,
    services: HashMap<Name, (usize, String)>,
}

fn owner_key(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn add_owner_records(cx: &mut Context<'_>, builder: &mut NodesBuilder, key: &Value, value: &Value) {
    let Some(owner_text) = owner_key(key) else {
        cx.error("records", "a record owner must be a name");
        return;
    };
    let path = format!("records/{owner_text}");
    let owner = match cx.owner(&owner_text) {
        Ok(o) => o,
        Err(e) => return cx.error(&path, e),
    };
    let items: Vec<(String, &Value)> = match value {
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{path}/{i}"), v))
            .collect(),
        other => vec![(path.clone(), other)],
    };
    for (item_path, item) in items {
        let Some(raw) = cx.typed::<RawRecord>(&item_path, item) else {
            continue;
        };
        for record in build_records(cx, &item_path, &owner, &raw) {
            builder.add(owner.clone(), record);
        }
    }
}

impl NodesBuilder {
    fn add(&mut self, owner: Name, entry: Entry) {
        let list = self.entries.entry(owner.clone()).or_default();
        if list.is_empty() {
            self.owners.push(owner);
        }
        list.push(entry);
    }

    fn finish(
        mut self,
        cx: &mut Context<'_>,
        soa: Record,
        services: Vec<Arc<Service>>,
    ) -> Option<Zone> {
        let origin = cx.origin.clone();
        self.check_apex(cx);
        self.add(
            origin.clone(),
            Entry {
                path: "soa".to_string(),
                record: soa.clone(),
            },
        );
        let mut nodes: HashMap<LowerName, Node> = HashMap::new();
        for owner in &self.owners {
            let entries = self.entries.remove(owner).unwrap_or_default();
            let node = build_node(cx, owner, &origin, entries, self.services.get(owner));
            insert_with_ancestors(&mut nodes, owner, &origin, node);
        }
        for (name, (index, _)) in &self.services {
            insert_with_ancestors(
                &mut nodes,
                name,
                &origin,
                Node {
                    service: Some(*index),
                    ..Node::default()
                },
            );
        }
        check_occluded_services(cx, &nodes, &self.services, &origin);
        let has_delegations = nodes.values().any(|n| n.delegation);
        let has_wildcards = nodes.keys().any(|n| n.is_wildcard());
        let minimum = match &soa.data {
            RData::SOA(s) => s.minimum,
            _ => cx.default_ttl,
        };
        let mut negative_soa = soa.clone();
        negative_soa.ttl = soa.ttl.min(minimum);
        Some(Zone {
            origin,
            file: cx.file.to_path_buf(),
            soa,
            negative_soa,
            default_ttl: cx.default_ttl,
            nodes,
            has_delegations,
            has_wildcards,
            services,
        })
    }

    fn check_apex(&self, cx: &mut Context<'_>) {
        let has_ns = self.entries.get(&cx.origin).is_some_and(|list| {
            list.iter()
                .any(|e| e.record.record_type() == RecordType::NS)
        });
        if !has_ns {
            let origin = cx.origin.clone();
            cx.error(
                "records",
                format!("missing NS records at the apex of {origin}"),
            );
        }
    }
}

fn insert_with_ancestors(
    nodes: &mut HashMap<LowerName, Node>,
    owner: &Name,
    origin: &Name,
    node: Node,
) {
    let key = LowerName::new(owner);
    match nodes.get_mut(&key) {
        Some(existing) if node.service.is_some() => existing.service = node.service,
        Some(existing) => {
            *existing = Node {
                service: existing.service,
                ..node
            }
        }
        None => {
            nodes.insert(key, node);
        }
    }
    let mut ancestor = owner.base_name();
    while ancestor.num_labels() > origin.num_labels() {
        nodes.entry(LowerName::new(&ancestor)).or_default();
        ancestor = ancestor.base_name();
    }
}

fn build_node(
    cx: &mut Context<'_>,
    owner: &Name,
    origin: &Name,
    entries: Vec<Entry>,
    service: Option<&(usize, String)>,
) -> Node {
    let is_apex = owner == origin;
    let has_cname = entries
        .iter()
        .any(|e| e.record.record_type() == RecordType::CNAME);
    if has_cname {
        for e in &entries {
            let rtype = e.record.record_type();
            if is_apex && rtype == RecordType::CNAME {
                cx.error(
                    &e.path,
                    format!("CNAME at the zone apex {owner} (the apex has SOA and NS)"),
                );
            } else if rtype != RecordType::CNAME {
                cx.error(&e.path, format!("CNAME beside other data at {owner}: a CNAME must be the only record at its name ({rtype} found)"));
            }
        }
        if entries
            .iter()
            .filter(|e| e.record.record_type() == RecordType::CNAME)
            .count()
            > 1
        {
            cx.error(&entries[0].path, format!("more than one CNAME at {owner}"));
        }
    }
    if let Some((_, service_path)) = service {
        for e in &entries {
            let rtype = e.record.record_type();
            if matches!(rtype, RecordType::A | RecordType::AAAA | RecordType::CNAME) {
                cx.error(
                    &e.path,
                    format!("{rtype} record at {owner} clashes with the service of the same name (defined at {})", position_text(cx, service_path)),
                );
            }
        }
    }
    let mut rrsets: Vec<RRset> = Vec::new();
    let mut first_paths: HashMap<RecordType, (String, u32)> = HashMap::new();
    for entry in entries {
        let rtype = entry.record.record_type();
        let (first_path, ttl) = first_paths
            .entry(rtype)
            .or_insert((entry.path.clone(), entry.record.ttl))
            .clone();
        if ttl != entry.record.ttl {
            cx.error(&entry.path, format!("TTL {} differs from {ttl} of the other {rtype} records at {owner} (defined at {}); an RRset has one TTL", entry.record.ttl, position_text(cx, &first_path)));
        }
        match rrsets.iter_mut().find(|r| r.record_type == rtype) {
            Some(set) if set.records.iter().any(|r| r.data == entry.record.data) => {
                cx.error(&entry.path, format!("duplicate {rtype} record at {owner}"));
            }
            Some(set) => set.records.push(entry.record),
            None => rrsets.push(RRset {
                record_type: rtype,
                records: vec![entry.record],
            }),
        }
    }
    let delegation = !is_apex && rrsets.iter().any(|r| r.record_type == RecordType::NS);
    Node {
        rrsets,
        service: None,
        delegation,
    }
}

fn position_text(cx: &Context<'_>, path: &str) -> String {
    match cx.index.find(path) {
        Some(p) => format!("line {}", p.line),
        None => path.to_string(),
    }
}

/// A service at or below a zone cut would never be answered (the referral wins).
fn check_occluded_services(
    cx: &mut Context<'_>,
    nodes: &HashMap<LowerName, Node>,
    services: &HashMap<Name, (usize, String)>,
    origin: &Name,
) {
    for (name, (_, path)) in services {
        let mut current = name.clone();
        while current.num_labels() > origin.num_labels() {
            if nodes
                .get(&LowerName::new(&current))
                .is_some_and(|n| n.delegation)
            {
                cx.error(path, format!("service {name} is at or below the delegation {current} and would never be answered"));
                break;
            }
            current = current.base_name();
        }
    }
}

fn build_records(cx: &mut Context<'_>, path: &str, owner: &Name, raw: &RawRecord) -> Vec<Entry> {
    let Some(rtype) = known_type(&raw.record_type) else {
        cx.error(
            &format!("{path}/type"),
            format!("unknown record type {:?} (known: A, AAAA, CNAME, NS, MX, TXT, SRV, CAA, PTR; SOA goes in the top-level `soa`)", raw.record_type),
        );
        return Vec::new();
    };
    let values: Vec<(String, &Value)> = match (&raw.value, &raw.values) {
        (Some(v), None) => vec![(format!("{path}/value"), v)],
        (None, Some(vs)) if !vs.is_empty() => vs
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{path}/values/{i}"), v))
            .collect(),
        (Some(_), Some(_)) => {
            cx.error(path, "a record has `value` or `values`, not both");
            return Vec::new();
        }
        _ => {
            cx.error(
                path,
                format!("{rtype} record at {owner} has no `value` or `values`"),
            );
            return Vec::new();
        }
    };
    let ttl = raw.ttl.unwrap_or(cx.default_ttl);
    let mut out = Vec::new();
    for (value_path, value) in values {
        match rdata(cx, rtype, value) {
            Ok(data) => out.push(Entry {
                path: value_path,
                record: Record::from_rdata(owner.clone(), ttl, data),
            }),
            Err(message) => cx.error(&value_path, message),
        }
    }
    out
}

fn known_type(text: &str) -> Option<RecordType> {
    let t = match text.to_ascii_uppercase().as_str() {
        "A" => RecordType::A,
        "AAAA" => RecordType::AAAA,
        "CNAME" => RecordType::CNAME,
        "NS" => RecordType::NS,
        "MX" => RecordType::MX,
        "TXT" => RecordType::TXT,
        "SRV" => RecordType::SRV,
        "CAA" => RecordType::CAA,
        "PTR" => RecordType::PTR,
        _ => return None,
    };
    Some(t)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMx {
    preference: u16,
    exchange: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSrv {
    priority: u16,
    weight: u16,
    port: u16,
    target: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaa {
    flags: u8,
    tag: String,
    value: String,
}

fn rdata(cx: &Context<'_>, rtype: RecordType, value: &Value) -> Result<RData, String> {
    let data = match rtype {
        RecordType::A => RData::A(
            scalar(value)?
                .parse::<Ipv4Addr>()
                .map_err(|_| bad_address(value, "IPv4"))?
                .into(),
        ),
        RecordType::AAAA => RData::AAAA(
            scalar(value)?
                .parse::<Ipv6Addr>()
                .map_err(|_| bad_address(value, "IPv6"))?
                .into(),
        ),
        RecordType::CNAME => RData::CNAME(CNAME(cx.name(&scalar(value)?, false)?)),
        RecordType::NS => RData::NS(NS(cx.name(&scalar(value)?, false)?)),
        RecordType::PTR => RData::PTR(PTR(cx.name(&scalar(value)?, false)?)),
        RecordType::MX => {
            let mx: RawMx = from_value(value)?;
            RData::MX(MX::new(mx.preference, cx.name(&mx.exchange, false)?))
        }
        RecordType::SRV => {
            let srv: RawSrv = from_value(value)?;
            RData::SRV(SRV::new(
                srv.priority,
                srv.weight,
                srv.port,
                cx.name(&srv.target, false)?,
            ))
        }
        RecordType::TXT => RData::TXT(txt(value)?),
        RecordType::CAA => RData::CAA(caa(from_value(value)?)?),
        other => return Err(format!("record type {other} is not supported")),
    };
    Ok(data)
}

fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    serde_yaml::from_value(value.clone()).map_err(|e| e.to_string())
}

fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err("expected a single value (a string)".to_string()),
    }
}

fn bad_address(value: &Value, family: &str) -> String {
    format!("bad address {}: not an {family} address", yaml_text(value))
}

fn yaml_text(value: &Value) -> String {
    serde_yaml::to_string(value)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn txt(value: &Value) -> Result<TXT, String> {
    let strings: Vec<String> = match value {
        Value::Sequence(items) => items.iter().map(scalar).collect::<Result<_, _>>()?,
        other => vec![scalar(other)?],
    };
    for s in &strings {
        if s.len() > MAX_CHARACTER_STRING {
            return Err(format!(
                "TXT string of {} bytes is over the limit of {MAX_CHARACTER_STRING}: split it into a list of strings (one record of several character-strings)",
                s.len()
            ));
        }
    }
    Ok(TXT::new(strings))
}

fn caa(raw: RawCaa) -> Result<CAA, String> {
    let tag_ok = !raw.tag.is_empty()
        && raw.tag.len() <= 15
        && raw.tag.bytes().all(|b| b.is_ascii_alphanumeric());
    if !tag_ok {
        return Err(format!(
            "bad CAA tag {:?}: 1 to 15 letters or digits",
            raw.tag
        ));
    }
    // hickory builds CAA from typed parts; set the raw tag and value so any
    // tag (issue, issuewild, iodef, or a future one) is served as written.
    let mut caa = CAA::new_issue(raw.flags & 0x80 != 0, None, Vec::new());
    caa.reserved_flags = raw.flags & 0x7f;
    caa.tag = raw.tag;
    caa.value = raw.value.into_bytes();
    Ok(caa)
}

fn build_service(
    cx: &mut Context<'_>,
    builder: &mut NodesBuilder,
    key: &Value,
    value: &Value,
) -> Option<Service> {
    let text = owner_key(key)?;
    let path = format!("services/{text}");
    let name = match cx.owner(&text) {
        Ok(n) if n.is_wildcard() => {
            cx.error(&path, "a service cannot be a wildcard name");
            return None;
        }
        Ok(n) => n,
        Err(e) => {
            cx.error(&path, e);
            return None;
        }
    };
    let raw: RawService = cx.typed(&path, value)?;
    let mirrors = build_mirrors(
        cx,
        &path,
        &name,
        raw.ttl.unwrap_or(cx.default_ttl),
        &raw.mirrors,
    )?;
    let clusters = build_clusters(cx, &path, raw.clusters)?;
    let max_age_s = raw.measurements.max_age_s.unwrap_or(3600);
    if max_age_s == 0 {
        cx.error(
            &format!("{path}/measurements/max_age_s"),
            "max_age_s must be at least 1",
        );
    }
    let switch_margin = match raw.switch_margin {
        Some(m) if m.ms >= 0.0 && m.percent >= 0.0 && m.ms.is_finite() && m.percent.is_finite() => {
            SwitchMargin {
                ms: m.ms,
                percent: m.percent,
            }
        }
        Some(_) => {
            cx.error(
                &format!("{path}/switch_margin"),
                "switch_margin ms and percent must be finite and not negative",
            );
            return None;
        }
        None => SwitchMargin::default(),
    };
    let index = builder.services.len();
    builder.services.insert(name.clone(), (index, path));
    Some(Service {
        name,
        ttl: raw.ttl.unwrap_or(cx.default_ttl),
        mirrors,
        clusters,
        max_age_s,
        switch_margin,
    })
}

fn build_mirrors(
    cx: &mut Context<'_>,
    path: &str,
    name: &Name,
    ttl: u32,
    raw: &[RawMirror],
) -> Option<Vec<Mirror>> {
    if raw.is_empty() {
        cx.error(path, format!("service {name} has no mirrors"));
        return None;
    }
    if raw.len() > MAX_MIRRORS {
        cx.error(
            path,
            format!(
                "service {name} has {} mirrors; at most {MAX_MIRRORS} are supported",
                raw.len()
            ),
        );
        return None;
    }
    let errors_before = cx.errors.len();
    let mut mirrors: Vec<Mirror> = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        let mpath = format!("{path}/mirrors/{i}");
        if !valid_mirror_name(&m.name) {
            cx.error(
                &format!("{mpath}/name"),
                format!(
                    "bad mirror name {:?}: use lower-case letters, digits, '-' and '_'",
                    m.name
                ),
            );
        }
        if mirrors.iter().any(|other| other.name == m.name) {
            cx.error(
                &format!("{mpath}/name"),
                format!("duplicate mirror {:?} in service {name}", m.name),
            );
        }
        let ipv4 = addresses::<Ipv4Addr>(cx, &format!("{mpath}/ipv4"), &m.ipv4, "IPv4");
        let ipv6 = addresses::<Ipv6Addr>(cx, &format!("{mpath}/ipv6"), &m.ipv6, "IPv6");
        if ipv4.is_empty() && ipv6.is_empty() && m.ipv4.is_empty() && m.ipv6.is_empty() {
            cx.error(
                &mpath,
                format!("mirror {:?} has no ipv4 or ipv6 address", m.name),
            );
        }
        let health = m
            .health
            .as_ref()
            .and_then(|h| build_health(cx, &format!("{mpath}/health"), h, &ipv4, &ipv6));
        let a_records = ipv4
            .iter()
            .map(|a| Record::from_rdata(name.clone(), ttl, RData::A((*a).into())))
            .collect();
        let aaaa_records = ipv6
            .iter()
            .map(|a| Record::from_rdata(name.clone(), ttl, RData::AAAA((*a).into())))
            .collect();
        mirrors.push(Mirror {
            name: m.name.clone(),
            ipv4,
            ipv6,
            capacity_qps: m.capacity_qps,
            health,
            a_records,
            aaaa_records,
        });
    }
    (cx.errors.len() == errors_before).then_some(mirrors)
}

fn valid_mirror_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn addresses<T: std::str::FromStr>(
    cx: &mut Context<'_>,
    path: &str,
    texts: &[String],
    family: &str,
) -> Vec<T> {
    let mut out = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        match text.parse() {
            Ok(a) => out.push(a),
            Err(_) => cx.error(
                &format!("{path}/{i}"),
                format!("bad address {text:?}: not an {family} address"),
            ),
        }
    }
    out
}

/// Documentation ranges (RFC 5737, RFC 3849) are answered but never contacted.
fn is_documentation(addr: IpAddr) -> bool {
    const NETS: [&str; 4] = [
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
    ];
    NETS.iter()
        .filter_map(|n| n.parse::<IpNet>().ok())
        .any(|n| n.contains(&addr))
}

fn build_health(
    cx: &mut Context<'_>,
    path: &str,
    raw: &RawHealth,
    ipv4: &[Ipv4Addr],
    ipv6: &[Ipv6Addr],
) -> Option<HealthCheck> {
    let probe = match (raw.tcp_port, &raw.url) {
        (Some(port), None) => {
            let address = match &raw.address {
                Some(text) => match text.parse::<IpAddr>() {
                    Ok(a) => a,
                    Err(_) => {
                        cx.error(&format!("{path}/address"), format!("bad address {text:?}"));
                        return None;
                    }
                },
                None => ipv4
                    .first()
                    .map(|a| IpAddr::V4(*a))
                    .or(ipv6.first().map(|a| IpAddr::V6(*a)))?,
            };
            if is_documentation(address) {
                cx.error(path, format!("health check address {address} is a documentation address, which is answered but never contacted: give `address`"));
                return None;
            }
            HealthProbe::Tcp { address, port }
        }
        (None, Some(url)) if url.starts_with("http://") => HealthProbe::Http { url: url.clone() },
        (None, Some(url)) => {
            cx.error(
                &format!("{path}/url"),
                format!("health url {url:?} must start with http:// (https checks are not supported yet)"),
            );
            return None;
        }
        _ => {
            cx.error(path, "a health check has either `tcp_port` or `url`");
            return None;
        }
    };
    let check = HealthCheck {
        probe,
        interval_s: raw.interval_s.unwrap_or(10),
        timeout_ms: raw.timeout_ms.unwrap_or(1000),
        rise: raw.rise.unwrap_or(2),
        fall: raw.fall.unwrap_or(3),
    };
    if check.interval_s == 0 || check.timeout_ms == 0 || check.rise == 0 || check.fall == 0 {
        cx.error(
            path,
            "interval_s, timeout_ms, rise and fall must be at least 1",
        );
        return None;
    }
    Some(check)
}

fn build_clusters(cx: &mut Context<'_>, path: &str, raw: RawClusters) -> Option<ClusterConfig> {
    let defaults = ClusterConfig::default();
    let config = ClusterConfig {
        initial_v4: raw.initial_v4.unwrap_or(defaults.initial_v4),
        initial_v6: raw.initial_v6.unwrap_or(defaults.initial_v6),
        block_v4: raw.block_v4.unwrap_or(defaults.block_v4),
        block_v6: raw.block_v6.unwrap_or(defaults.block_v6),
        prefixes: defaults.prefixes,
    };
    let cpath = format!("{path}/clusters");
    if config.block_v4 > 32 || config.initial_v4 > config.block_v4 {
        cx.error(
            &cpath,
            format!(
                "IPv4 lengths must satisfy initial_v4 ({}) <= block_v4 ({}) <= 32",
                config.initial_v4, config.block_v4
            ),
        );
        return None;
    }
    if config.block_v6 > 128 || config.initial_v6 > config.block_v6 {
        cx.error(
            &cpath,
            format!(
                "IPv6 lengths must satisfy initial_v6 ({}) <= block_v6 ({}) <= 128",
                config.initial_v6, config.block_v6
            ),
        );
        return None;
    }
    let Some(file) = raw.prefixes else {
        return Some(config);
    };
    let full = cx.file.parent().unwrap_or(Path::new(".")).join(&file);
    match load_prefixes(&full) {
        Ok(prefixes) => Some(ClusterConfig {
            prefixes: Arc::new(prefixes),
            ..config
        }),
        Err(e) => {
            cx.errors.push(e);
            None
        }
    }
}

/// Reads a prefix list: one CIDR per line, `#` comments and blank lines allowed.
pub fn load_prefixes(path: &Path) -> Result<Vec<IpNet>, ZoneError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ZoneError::new(path, None, format!("cannot read prefix list: {e}")))?;
    let mut prefixes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        match content.parse::<IpNet>() {
            Ok(net) => prefixes.push(net.trunc()),
            Err(_) => {
                let position = Some(Position {
                    line: i + 1,
                    column: 1,
                });
                return Err(ZoneError::new(
                    path,
                    position,
                    format!("bad prefix {content:?}: expected CIDR such as 198.51.100.0/24"),
                ));
            }
        }
    }
    Ok(prefixes)
}
