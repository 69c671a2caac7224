//! YAML text → the records, services and SOA of a zone, each with the line
//! and column it was written at; [`super::build`] makes the zone of them and
//! [`super::validate`] checks it whole. Only this file and `yaml.rs` know
//! that the format is YAML.
//!
//! A file is read to the end whatever it holds: a missing or bad top-level
//! key, an unknown or duplicate key, is one error among the others, and every
//! message speaks of the zone format (`serial: expected a whole number from 0
//! to 4294967295`), never of the parser's types.
//!
//! Records are built as the parser reads them, owner by owner, so that no
//! tree of the whole file is ever held: only the zone being built grows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use hickory_proto::dnssec::rdata::{DNSSECRData, DS};
use hickory_proto::dnssec::{Algorithm, DigestType};
use hickory_proto::rr::rdata::{CAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::IpNet;

use super::build::{Located, ZoneBuilder};
use super::error::{Diagnostics, Position, Severity, ZoneError};
use super::validate::{self, Finding, Subject};
use super::yaml::{self, Node, Value};
use super::{
    ClusterConfig, DnssecSettings, HealthCheck, HealthProbe, Mirror, Service, SwitchMargin, Zone,
};
use crate::dnssec::KeyAlgorithm;

const DEFAULT_TTL: u32 = 3600;
/// The steering engine tracks a cluster's mirrors in a 64-bit set.
const MAX_MIRRORS: usize = 64;
/// RFC 1035 section 3.3: a character-string is at most 255 bytes. Longer TXT
/// strings are rejected rather than split silently, so what is served is
/// exactly what the operator wrote; a list of strings makes one record of
/// several character-strings.
const MAX_CHARACTER_STRING: usize = 255;

const ZONE_KEYS: &[&str] = &["origin", "ttl", "soa", "records", "services", "dnssec"];
const DNSSEC_KEYS: &[&str] = &["algorithm", "key_file"];
const DS_KEYS: &[&str] = &["key_tag", "algorithm", "digest_type", "digest"];
const SOA_KEYS: &[&str] = &[
    "mname", "rname", "serial", "refresh", "retry", "expire", "minimum",
];
const RECORD_KEYS: &[&str] = &["type", "value", "values", "ttl"];
const SERVICE_KEYS: &[&str] = &[
    "ttl",
    "mirrors",
    "clusters",
    "measurements",
    "switch_margin",
];
const MIRROR_KEYS: &[&str] = &["name", "ipv4", "ipv6", "capacity_qps", "health"];
const HEALTH_KEYS: &[&str] = &[
    "tcp_port",
    "url",
    "address",
    "interval_s",
    "timeout_ms",
    "rise",
    "fall",
];
const CLUSTER_KEYS: &[&str] = &[
    "initial_v4",
    "initial_v6",
    "block_v4",
    "block_v6",
    "prefixes",
];

/// The file as a whole.
const FILE_START: Position = Position { line: 1, column: 1 };

/// What reading one file gave: the zone when it has no error, and the origin
/// whenever it could be read (so that two files with one origin are found
/// even when one of them has errors).
pub(super) struct Parsed {
    pub origin: Option<Name>,
    pub zone: Option<Zone>,
    pub errors: Vec<ZoneError>,
    pub warnings: Vec<ZoneError>,
}

/// Collects errors with positions while one file is read.
struct Context<'a> {
    file: &'a Path,
    /// The origin; the root while it is unknown (missing or bad), so that
    /// relative names can still be checked for their form.
    origin: Name,
    default_ttl: u32,
    diagnostics: Diagnostics,
}

/// One YAML mapping, read key by key.
struct Fields<'v> {
    at: Position,
    what: &'v str,
    node: &'v Node,
}

impl<'v> Fields<'v> {
    /// The value at `key`; a key written with no value (`ttl:`) counts as absent.
    fn get(&self, key: &str) -> Option<&'v Node> {
        self.node.get(key).filter(|v| !v.is_null())
    }

    /// The value at `key`, even one written with no value.
    fn raw(&self, key: &str) -> Option<&'v Node> {
        self.node.get(key)
    }

    /// Where the value at `key` is, else where the mapping is.
    fn at(&self, key: &str) -> Position {
        self.node.get(key).map_or(self.at, |v| v.position)
    }
}

/// A value read from the file as one of the format's kinds of value.
trait FromYaml: Sized {
    /// What the format wants, for messages: "a whole number from 0 to 255".
    const EXPECTED: &'static str;
    fn from_yaml(value: &Node) -> Option<Self>;
}

macro_rules! whole_number {
    ($t:ty, $expected:literal) => {
        impl FromYaml for $t {
            const EXPECTED: &'static str = $expected;
            fn from_yaml(value: &Node) -> Option<Self> {
                value.as_u64().and_then(|n| <$t>::try_from(n).ok())
            }
        }
    };
}

whole_number!(u8, "a whole number from 0 to 255");
whole_number!(u16, "a whole number from 0 to 65535");
whole_number!(u32, "a whole number from 0 to 4294967295");
whole_number!(u64, "a whole number, 0 or more");

/// SOA timers: RFC 1035 calls them 32-bit, hickory keeps them signed.
struct Seconds(i32);

impl FromYaml for Seconds {
    const EXPECTED: &'static str = "a whole number of seconds from 0 to 2147483647";
    fn from_yaml(value: &Node) -> Option<Self> {
        value
            .as_u64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Seconds)
    }
}

impl FromYaml for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_yaml(value: &Node) -> Option<Self> {
        value.as_f64()
    }
}

impl FromYaml for String {
    const EXPECTED: &'static str = "a string";
    fn from_yaml(value: &Node) -> Option<Self> {
        value.as_str().map(str::to_string)
    }
}

/// What a value is, for "found ..." in messages.
fn describe(value: &Node) -> String {
    match &value.value {
        Value::Null => "nothing".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::String(s) if s.chars().count() > 40 => {
            format!("{:?}...", s.chars().take(40).collect::<String>())
        }
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
    }
}

fn key_text(key: &Node) -> String {
    match &key.value {
        Value::String(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        _ => describe(key),
    }
}

fn known_keys(known: &[&str]) -> String {
    known.join(", ")
}

impl Context<'_> {
    fn error(&mut self, at: Position, message: impl Into<String>) {
        self.diagnostics.error(Some(at), message);
    }

    /// `value` as a mapping of the `known` keys: anything else is reported
    /// (a misspelt `tll:` must not pass silently).
    fn fields<'v>(&mut self, what: &'v str, value: &'v Node, known: &[&str]) -> Option<Fields<'v>> {
        let Value::Mapping(entries) = &value.value else {
            self.error(
                value.position,
                format!(
                    "{what}: expected a mapping of {}, found {}",
                    known_keys(known),
                    describe(value)
                ),
            );
            return None;
        };
        for (key, item) in entries {
            let known_key = key.as_str().is_some_and(|k| known.contains(&k));
            if !known_key {
                let text = key_text(key);
                self.error(
                    item.position,
                    format!(
                        "unknown key `{text}` in {what} (known: {})",
                        known_keys(known)
                    ),
                );
            }
        }
        Some(Fields {
            at: value.position,
            what,
            node: value,
        })
    }

    /// Reads `value` (the value of `key`) as a `T`.
    fn read<T: FromYaml>(&mut self, key: &str, value: &Node) -> Option<T> {
        let read = T::from_yaml(value);
        if read.is_none() {
            self.error(
                value.position,
                format!("{key}: expected {}, found {}", T::EXPECTED, describe(value)),
            );
        }
        read
    }

    fn required<T: FromYaml>(&mut self, fields: &Fields<'_>, key: &str) -> Option<T> {
        match fields.raw(key) {
            Some(value) => self.read(key, value),
            None => {
                let message = format!("{}: missing `{key}` ({})", fields.what, T::EXPECTED);
                self.error(fields.at, message);
                None
            }
        }
    }

    /// `None` when the key is absent, or present but bad (which is reported).
    fn optional<T: FromYaml>(&mut self, fields: &Fields<'_>, key: &str) -> Option<T> {
        let value = fields.get(key)?;
        self.read(key, value)
    }

    /// A list of strings (`ipv4: [192.0.2.1]`); a single string is not a list.
    fn strings(&mut self, fields: &Fields<'_>, key: &str) -> Vec<(Position, String)> {
        match fields.get(key) {
            None => Vec::new(),
            Some(Node {
                value: Value::Sequence(items),
                ..
            }) => items
                .iter()
                .filter_map(|item| {
                    let text: String = self.read(key, item)?;
                    Some((item.position, text))
                })
                .collect(),
            Some(other) => {
                self.error(
                    other.position,
                    format!(
                        "{key}: expected a list of strings, found {}",
                        describe(other)
                    ),
                );
                Vec::new()
            }
        }
    }
}

/// Reads one file while the parser goes: the records of each owner are
/// built as soon as the origin is known (it nearly always comes first), and
/// kept for the end only when it is not.
struct Reader<'a> {
    cx: Context<'a>,
    builder: Option<ZoneBuilder>,
    pending: Vec<(Node, Node)>,
}

impl yaml::Handler for Reader<'_> {
    fn top_entry(&mut self, key: &Node, value: &Node) {
        if key.as_str() == Some("origin")
            && self.builder.is_none()
            && let Some(origin) = value.as_str().and_then(|t| parse_origin(t).ok())
        {
            self.cx.origin = origin.clone();
            self.builder = Some(ZoneBuilder::new(origin));
            for (key, value) in std::mem::take(&mut self.pending) {
                yaml::Handler::record(self, &key, &value);
            }
        }
    }

    fn record(&mut self, key: &Node, value: &Node) {
        match &mut self.builder {
            Some(builder) => add_owner_records(&mut self.cx, builder, key, value),
            None => self.pending.push((key.clone(), value.clone())),
        }
    }
}

/// Reads, builds and validates one zone file.
pub(super) fn parse_zone(file: &Path, source: &str) -> Parsed {
    let mut reader = Reader {
        cx: Context {
            file,
            origin: Name::root(),
            default_ttl: DEFAULT_TTL,
            diagnostics: Diagnostics::new(file),
        },
        builder: None,
        pending: Vec::new(),
    };
    let document = match yaml::parse_threaded(source, &mut reader) {
        Ok(document) => document,
        Err(e) => {
            // What was read before the syntax error is not reported: the
            // file is fixed first.
            let mut diagnostics = Diagnostics::new(file);
            diagnostics.error(e.position, format!("not valid YAML: {}", e.message));
            return Parsed {
                origin: None,
                zone: None,
                errors: diagnostics.errors,
                warnings: Vec::new(),
            };
        }
    };
    for d in &document.duplicates {
        reader.cx.error(
            d.position,
            format!(
                "duplicate key `{}` (first at line {}): give each key once; {}",
                d.key,
                d.first.line,
                if d.both_read {
                    "the records of both are read"
                } else {
                    "the later value is the one read"
                }
            ),
        );
    }
    let (origin, zone) = read_zone(&mut reader, document.root.as_ref());
    let mut errors = reader.cx.diagnostics.errors;
    // The order of the file, so an operator reads them top to bottom.
    errors.sort_by_key(|e| e.position);
    let mut warnings = reader.cx.diagnostics.warnings;
    warnings.sort_by_key(|e| e.position);
    Parsed {
        origin,
        zone: zone.filter(|_| errors.is_empty()),
        errors,
        warnings,
    }
}

fn read_zone(reader: &mut Reader<'_>, root: Option<&Node>) -> (Option<Name>, Option<Zone>) {
    let cx = &mut reader.cx;
    let Some(root) = root.filter(|r| !r.is_null()) else {
        cx.error(
            FILE_START,
            "the file is empty: a zone has origin, soa and records (SPEC section 6)",
        );
        return (None, None);
    };
    let Some(top) = cx.fields("the zone", root, ZONE_KEYS) else {
        return (None, None);
    };
    let origin = match top.raw("origin") {
        Some(value) => {
            cx.read::<String>("origin", value)
                .and_then(|text| match parse_origin(&text) {
                    Ok(origin) => Some(origin),
                    Err(message) => {
                        cx.error(value.position, message);
                        None
                    }
                })
        }
        None => {
            cx.error(
                FILE_START,
                "the zone: missing `origin` (the zone's apex, an absolute name such as example.test.)",
            );
            None
        }
    };
    if let Some(ttl) = cx.optional::<u32>(&top, "ttl") {
        cx.default_ttl = ttl;
    }
    let soa = match top.raw("soa") {
        Some(value) => build_soa(cx, value),
        None => {
            cx.error(
                FILE_START,
                format!(
                    "the zone: missing `soa` (a mapping of {})",
                    known_keys(SOA_KEYS)
                ),
            );
            None
        }
    };
    // The records not built while the file was read (no origin then).
    let mut builder = match reader.builder.take() {
        Some(builder) => builder,
        None => ZoneBuilder::new(reader.cx.origin.clone()),
    };
    let cx = &mut reader.cx;
    for (key, value) in std::mem::take(&mut reader.pending) {
        add_owner_records(cx, &mut builder, &key, &value);
    }
    // `records` itself is empty here: its entries went to the builder.
    let _ = mapping_of(cx, &top, "records");
    let mut service_positions = Vec::new();
    if let Some(services) = mapping_of(cx, &top, "services") {
        for (key, value) in services {
            if let Some((service, position)) = build_service(cx, key, value)
                && builder.add_service(&mut cx.diagnostics, service, position)
            {
                service_positions.push(position);
            }
        }
    }
    // Without the origin, names cannot be placed in a zone: the records were
    // checked one by one, the zone as a whole cannot be.
    let Some(origin) = origin else {
        return (None, None);
    };
    let soa = soa.unwrap_or_else(|| {
        // Reported already; the zone is still built to check the rest.
        let soa = SOA::new(origin.clone(), origin.clone(), 0, 0, 0, 0, 0);
        Record::from_rdata(origin.clone(), cx.default_ttl, RData::SOA(soa))
    });
    let dnssec = top.raw("dnssec").and_then(|value| build_dnssec(cx, value));
    let soa_position = top.raw("soa").map(|s| s.position);
    let (mut zone, located) = builder.finish(&mut cx.diagnostics, soa, cx.default_ttl);
    zone.dnssec = dnssec;
    let findings = validate::validate(&zone);
    report(cx, findings, &located, soa_position, &service_positions);
    (Some(origin), Some(zone))
}

/// The entries of the mapping under an optional top-level key (`records`,
/// `services`).
fn mapping_of<'v>(cx: &mut Context<'_>, top: &Fields<'v>, key: &str) -> Option<&'v [(Node, Node)]> {
    let node = top.get(key)?;
    match &node.value {
        Value::Mapping(entries) => Some(entries),
        _ => {
            cx.error(
                node.position,
                format!(
                    "{key}: expected a mapping of names, found {}",
                    describe(node)
                ),
            );
            None
        }
    }
}

/// Turns the zone-level findings into errors and warnings at their place.
fn report(
    cx: &mut Context<'_>,
    findings: Vec<Finding>,
    located: &Located,
    soa_position: Option<Position>,
    service_positions: &[Option<Position>],
) {
    for finding in findings {
        let position = match &finding.subject {
            Subject::Records(names) => names.iter().filter_map(|(n, t)| located.first(n, *t)).min(),
            Subject::Apex => located
                .first(&cx.origin, Some(RecordType::NS))
                .or(soa_position),
            Subject::Service(i) => service_positions.get(*i).copied().flatten(),
        };
        match finding.severity {
            Severity::Error => cx.diagnostics.error(position, finding.message),
            Severity::Warning => cx.diagnostics.warn(position, finding.message),
        }
    }
}

/// One item or a list of them.
fn items(value: &Node) -> Vec<&Node> {
    match &value.value {
        Value::Sequence(items) => items.iter().collect(),
        _ => vec![value],
    }
}

pub(super) fn parse_origin(text: &str) -> Result<Name, String> {
    if !text.ends_with('.') {
        return Err(format!("origin {text:?} must be absolute (end with '.')"));
    }
    parse_name_text(text, false)
}

/// Checks the presentation form of a name: labels of letters, digits, '-' and
/// '_' (for SRV and DMARC-style owners), 1 to 63 bytes; `*` only as the
/// leftmost label of an owner.
pub(super) fn parse_name_text(text: &str, allow_wildcard: bool) -> Result<Name, String> {
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

    /// A name-valued field (`mname`, `exchange`, `target`), checked.
    fn name_field(&mut self, fields: &Fields<'_>, key: &str) -> Option<Name> {
        let text: String = self.required(fields, key)?;
        match self.name(&text, false) {
            Ok(name) => Some(name),
            Err(e) => {
                self.error(fields.at(key), e);
                None
            }
        }
    }
}

/// `dnssec:` (`dnssec: {}` or a bare `dnssec:` signs with the defaults);
/// `None` after an error.
fn build_dnssec(cx: &mut Context<'_>, value: &Node) -> Option<DnssecSettings> {
    if value.is_null() {
        return Some(DnssecSettings::default());
    }
    let fields = cx.fields("dnssec", value, DNSSEC_KEYS)?;
    let algorithm = match cx.optional::<String>(&fields, "algorithm") {
        None => None,
        Some(text) => match text.parse::<KeyAlgorithm>() {
            Ok(algorithm) => Some(algorithm),
            Err(message) => {
                cx.error(fields.at("algorithm"), message);
                return None;
            }
        },
    };
    let key_file = match cx.optional::<String>(&fields, "key_file") {
        Some(path) if path.is_empty() => {
            cx.error(
                fields.at("key_file"),
                "key_file: expected a path, found \"\"",
            );
            return None;
        }
        Some(path) => Some(cx.file.parent().unwrap_or(Path::new("")).join(path)),
        None => None,
    };
    Some(DnssecSettings {
        algorithm,
        key_file,
    })
}

fn build_soa(cx: &mut Context<'_>, value: &Node) -> Option<Record> {
    let fields = cx.fields("soa", value, SOA_KEYS)?;
    let mname = cx.name_field(&fields, "mname");
    let rname = cx.name_field(&fields, "rname");
    let serial = cx.required::<u32>(&fields, "serial");
    let refresh = cx.required::<Seconds>(&fields, "refresh");
    let retry = cx.required::<Seconds>(&fields, "retry");
    let expire = cx.required::<Seconds>(&fields, "expire");
    let minimum = cx.required::<u32>(&fields, "minimum");
    let soa = SOA::new(
        mname?, rname?, serial?, refresh?.0, retry?.0, expire?.0, minimum?,
    );
    Some(Record::from_rdata(
        cx.origin.clone(),
        cx.default_ttl,
        RData::SOA(soa),
    ))
}

fn owner_key(key: &Node) -> Option<String> {
    match &key.value {
        Value::String(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn add_owner_records(cx: &mut Context<'_>, builder: &mut ZoneBuilder, key: &Node, value: &Node) {
    let Some(owner_text) = owner_key(key) else {
        cx.error(
            key.position,
            format!("a record owner must be a name, found {}", describe(key)),
        );
        return;
    };
    let owner = match cx.owner(&owner_text) {
        Ok(o) => o,
        Err(e) => return cx.error(value.position, e),
    };
    let what = format!("the record of {owner}");
    for item in items(value) {
        let Some(fields) = cx.fields(&what, item, RECORD_KEYS) else {
            continue;
        };
        build_records(cx, builder, &fields, &owner);
    }
}

/// Builds the records of one mapping (`value` or `values`) into `builder`.
fn build_records(
    cx: &mut Context<'_>,
    builder: &mut ZoneBuilder,
    fields: &Fields<'_>,
    owner: &Name,
) {
    let ttl = cx.optional::<u32>(fields, "ttl");
    let type_text: Option<String> = cx.required(fields, "type");
    let Some(type_text) = type_text else {
        return;
    };
    let Some(rtype) = known_type(&type_text) else {
        cx.error(
            fields.at("type"),
            format!("unknown record type {type_text:?} (known: A, AAAA, CNAME, NS, MX, TXT, SRV, CAA, PTR; SOA goes in the top-level `soa`)"),
        );
        return;
    };
    let values: Vec<&Node> = match (fields.get("value"), fields.get("values")) {
        (Some(v), None) => vec![v],
        (
            None,
            Some(Node {
                value: Value::Sequence(vs),
                ..
            }),
        ) if !vs.is_empty() => vs.iter().collect(),
        (
            None,
            Some(
                node @ Node {
                    value: Value::Sequence(_),
                    ..
                },
            ),
        ) => {
            cx.error(
                node.position,
                format!("{rtype} record at {owner} has an empty `values` list"),
            );
            return;
        }
        (None, Some(other)) => {
            cx.error(
                other.position,
                format!(
                    "values: expected a list (use `value` for one), found {}",
                    describe(other)
                ),
            );
            return;
        }
        (Some(_), Some(_)) => {
            cx.error(fields.at, "a record has `value` or `values`, not both");
            return;
        }
        (None, None) => {
            cx.error(
                fields.at,
                format!("{rtype} record at {owner} has no `value` or `values`"),
            );
            return;
        }
    };
    for value in values {
        if let Some(data) = rdata(cx, rtype, value) {
            builder.add_record(owner, ttl, data, value.position, fields.at);
        }
    }
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
        "DS" => RecordType::DS,
        _ => return None,
    };
    Some(t)
}

/// One record's data; errors are reported where they are.
fn rdata(cx: &mut Context<'_>, rtype: RecordType, value: &Node) -> Option<RData> {
    let simple = |cx: &mut Context<'_>, result: Result<RData, String>| match result {
        Ok(data) => Some(data),
        Err(message) => {
            cx.error(value.position, message);
            None
        }
    };
    match rtype {
        RecordType::A => {
            let data = scalar(value).and_then(|text| {
                text.parse::<Ipv4Addr>()
                    .map(|a| RData::A(a.into()))
                    .map_err(|_| bad_address(&text, "IPv4"))
            });
            simple(cx, data)
        }
        RecordType::AAAA => {
            let data = scalar(value).and_then(|text| {
                text.parse::<Ipv6Addr>()
                    .map(|a| RData::AAAA(a.into()))
                    .map_err(|_| bad_address(&text, "IPv6"))
            });
            simple(cx, data)
        }
        RecordType::CNAME | RecordType::NS | RecordType::PTR => {
            let data =
                scalar(value)
                    .and_then(|text| cx.name(&text, false))
                    .map(|name| match rtype {
                        RecordType::CNAME => RData::CNAME(CNAME(name)),
                        RecordType::NS => RData::NS(NS(name)),
                        _ => RData::PTR(PTR(name)),
                    });
            simple(cx, data)
        }
        RecordType::MX => {
            let fields = cx.fields("an MX value", value, &["preference", "exchange"])?;
            let preference = cx.required::<u16>(&fields, "preference");
            let exchange = cx.name_field(&fields, "exchange");
            Some(RData::MX(MX::new(preference?, exchange?)))
        }
        RecordType::SRV => {
            let fields = cx.fields(
                "an SRV value",
                value,
                &["priority", "weight", "port", "target"],
            )?;
            let priority = cx.required::<u16>(&fields, "priority");
            let weight = cx.required::<u16>(&fields, "weight");
            let port = cx.required::<u16>(&fields, "port");
            let target = cx.name_field(&fields, "target");
            Some(RData::SRV(SRV::new(priority?, weight?, port?, target?)))
        }
        RecordType::TXT => {
            let data = txt(value).map(RData::TXT);
            simple(cx, data)
        }
        RecordType::CAA => {
            let fields = cx.fields("a CAA value", value, &["flags", "tag", "value"])?;
            let flags = cx.required::<u8>(&fields, "flags");
            let tag = cx.required::<String>(&fields, "tag");
            let caa_value = cx.required::<String>(&fields, "value");
            let data = caa(flags?, tag?, caa_value?).map(RData::CAA);
            simple(cx, data)
        }
        RecordType::DS => {
            let fields = cx.fields("a DS value", value, DS_KEYS)?;
            let key_tag = cx.required::<u16>(&fields, "key_tag");
            let algorithm = cx.required::<u8>(&fields, "algorithm");
            let digest_type = cx.required::<u8>(&fields, "digest_type");
            let digest = cx.required::<String>(&fields, "digest");
            let data = ds(key_tag?, algorithm?, digest_type?, &digest?).map(RData::DNSSEC);
            simple(cx, data)
        }
        other => simple(cx, Err(format!("record type {other} is not supported"))),
    }
}

/// A DS record (RFC 4034 section 5) as `mirrordns dnssec ds` or
/// `dnssec-dsfromkey` prints it: the digest in hex, spaces allowed.
fn ds(key_tag: u16, algorithm: u8, digest_type: u8, digest: &str) -> Result<DNSSECRData, String> {
    let hex: String = digest
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let digest = data_encoding::HEXUPPER
        .decode(hex.as_bytes())
        .map_err(|_| format!("digest: expected hex digits, found {digest:?}"))?;
    let digest_type = DigestType::from(digest_type);
    let wanted = match digest_type {
        DigestType::SHA1 => Some(20),
        DigestType::SHA256 => Some(32),
        DigestType::SHA384 => Some(48),
        _ => None,
    };
    if let Some(len) = wanted.filter(|len| *len != digest.len()) {
        return Err(format!(
            "digest: a digest of type {} is {len} bytes ({} hex digits), found {}",
            u8::from(digest_type),
            len * 2,
            digest.len()
        ));
    }
    Ok(DNSSECRData::DS(DS::new(
        key_tag,
        Algorithm::from_u8(algorithm),
        digest_type,
        digest,
    )))
}

fn scalar(value: &Node) -> Result<String, String> {
    match &value.value {
        Value::String(s) => Ok(s.clone()),
        Value::Int(n) => Ok(n.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!(
            "expected a single value (a string), found {}",
            describe(value)
        )),
    }
}

fn bad_address(text: &str, family: &str) -> String {
    format!("bad address {text}: not an {family} address")
}

fn txt(value: &Node) -> Result<TXT, String> {
    let strings: Vec<String> = match &value.value {
        Value::Sequence(items) => items.iter().map(scalar).collect::<Result<_, _>>()?,
        _ => vec![scalar(value)?],
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

fn caa(flags: u8, tag: String, value: String) -> Result<CAA, String> {
    let tag_ok =
        !tag.is_empty() && tag.len() <= 15 && tag.bytes().all(|b| b.is_ascii_alphanumeric());
    if !tag_ok {
        return Err(format!("bad CAA tag {tag:?}: 1 to 15 letters or digits"));
    }
    // hickory builds CAA from typed parts; set the raw tag and value so any
    // tag (issue, issuewild, iodef, or a future one) is served as written.
    let mut caa = CAA::new_issue(flags & 0x80 != 0, None, Vec::new());
    caa.reserved_flags = flags & 0x7f;
    caa.tag = tag;
    caa.value = value.into_bytes();
    Ok(caa)
}

/// Reads one service; `None` when its name or its mirrors cannot be read at
/// all (reported). A service with errors inside is still returned, so that
/// the checks between names run too; the errors reject the zone.
fn build_service(
    cx: &mut Context<'_>,
    key: &Node,
    value: &Node,
) -> Option<(Service, Option<Position>)> {
    let Some(text) = owner_key(key) else {
        cx.error(
            key.position,
            format!("a service must be a name, found {}", describe(key)),
        );
        return None;
    };
    let path = value.position;
    let name = match cx.owner(&text) {
        Ok(n) if n.is_wildcard() => {
            cx.error(path, "a service cannot be a wildcard name");
            return None;
        }
        Ok(n) => n,
        Err(e) => {
            cx.error(path, e);
            return None;
        }
    };
    let what = format!("service {name}");
    let fields = cx.fields(&what, value, SERVICE_KEYS)?;
    let ttl = cx.optional::<u32>(&fields, "ttl").unwrap_or(cx.default_ttl);
    let mirrors = build_mirrors(cx, &fields, &name, ttl);
    let clusters = build_clusters(cx, &fields);
    let mut max_age_at = fields.at("measurements");
    let max_age_s = match fields.get("measurements") {
        Some(value) => cx
            .fields("measurements", value, &["max_age_s"])
            .and_then(|m| {
                max_age_at = m.at("max_age_s");
                cx.optional::<u64>(&m, "max_age_s")
            }),
        None => None,
    }
    .unwrap_or(3600);
    if max_age_s == 0 {
        cx.error(max_age_at, "max_age_s must be at least 1");
    }
    let switch_margin = build_switch_margin(cx, &fields);
    let position = Some(path);
    let mirrors = mirrors?;
    Some((
        Service {
            name,
            ttl,
            mirrors,
            clusters,
            max_age_s,
            switch_margin,
        },
        position,
    ))
}

fn build_switch_margin(cx: &mut Context<'_>, service: &Fields<'_>) -> SwitchMargin {
    let Some(value) = service.get("switch_margin") else {
        return SwitchMargin::default();
    };
    let path = value.position;
    let Some(fields) = cx.fields("switch_margin", value, &["ms", "percent"]) else {
        return SwitchMargin::default();
    };
    let ms = cx.required::<f64>(&fields, "ms");
    let percent = cx.required::<f64>(&fields, "percent");
    let (Some(ms), Some(percent)) = (ms, percent) else {
        return SwitchMargin::default();
    };
    if ms >= 0.0 && percent >= 0.0 && ms.is_finite() && percent.is_finite() {
        SwitchMargin { ms, percent }
    } else {
        cx.error(
            path,
            "switch_margin ms and percent must be finite and not negative",
        );
        SwitchMargin::default()
    }
}

fn build_mirrors(
    cx: &mut Context<'_>,
    service: &Fields<'_>,
    name: &Name,
    ttl: u32,
) -> Option<Vec<Mirror>> {
    let path = service.at("mirrors");
    let raw = match service.raw("mirrors").map(|n| &n.value) {
        None => {
            cx.error(
                service.at,
                format!("service {name}: missing `mirrors` (a list of mirrors)"),
            );
            return None;
        }
        Some(Value::Sequence(raw)) if raw.is_empty() => {
            cx.error(path, format!("service {name} has no mirrors"));
            return None;
        }
        Some(Value::Sequence(raw)) => raw,
        Some(_) => {
            let other = service.raw("mirrors")?;
            cx.error(
                path,
                format!(
                    "mirrors: expected a list of mirrors, found {}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    if raw.len() > MAX_MIRRORS {
        cx.error(
            service.at,
            format!(
                "service {name} has {} mirrors; at most {MAX_MIRRORS} are supported",
                raw.len()
            ),
        );
        return None;
    }
    let mut mirrors: Vec<Mirror> = Vec::new();
    for value in raw {
        let mpath = value.position;
        let Some(fields) = cx.fields("a mirror", value, MIRROR_KEYS) else {
            continue;
        };
        let mirror_name = cx.required::<String>(&fields, "name").unwrap_or_default();
        if fields.raw("name").is_some() && !valid_mirror_name(&mirror_name) {
            cx.error(
                fields.at("name"),
                format!(
                    "bad mirror name {mirror_name:?}: use lower-case letters, digits, '-' and '_'"
                ),
            );
        }
        if mirrors.iter().any(|other| other.name == mirror_name) && !mirror_name.is_empty() {
            cx.error(
                fields.at("name"),
                format!("duplicate mirror {mirror_name:?} in service {name}"),
            );
        }
        let ipv4_texts = cx.strings(&fields, "ipv4");
        let ipv6_texts = cx.strings(&fields, "ipv6");
        let ipv4 = addresses::<Ipv4Addr>(cx, &ipv4_texts, "IPv4");
        let ipv6 = addresses::<Ipv6Addr>(cx, &ipv6_texts, "IPv6");
        let none_given = |key: &str| match fields.get(key).map(|n| &n.value) {
            None => true,
            Some(Value::Sequence(items)) => items.is_empty(),
            Some(_) => false,
        };
        if none_given("ipv4") && none_given("ipv6") {
            cx.error(
                mpath,
                format!("mirror {mirror_name:?} has no ipv4 or ipv6 address"),
            );
        }
        let capacity_qps = cx.optional::<u64>(&fields, "capacity_qps");
        let health = match fields.get("health") {
            Some(value) => build_health(cx, value, &ipv4, &ipv6),
            None => None,
        };
        let a_records = ipv4
            .iter()
            .map(|a| Record::from_rdata(name.clone(), ttl, RData::A((*a).into())))
            .collect();
        let aaaa_records = ipv6
            .iter()
            .map(|a| Record::from_rdata(name.clone(), ttl, RData::AAAA((*a).into())))
            .collect();
        mirrors.push(Mirror {
            name: mirror_name,
            ipv4,
            ipv6,
            capacity_qps,
            health,
            a_records,
            aaaa_records,
        });
    }
    Some(mirrors)
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
    texts: &[(Position, String)],
    family: &str,
) -> Vec<T> {
    let mut out = Vec::new();
    for (at, text) in texts {
        match text.parse() {
            Ok(a) => out.push(a),
            Err(_) => cx.error(
                *at,
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

/// The host of an `http://` URL when it is an IP address (`http://192.0.2.1:8080/`,
/// `http://[2001:db8::1]/`); `None` for a host name.
fn url_address(url: &str) -> Option<IpAddr> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(bracketed),
        None => host_port.split(':').next().unwrap_or(host_port),
    };
    host.parse().ok()
}

fn build_health(
    cx: &mut Context<'_>,
    value: &Node,
    ipv4: &[Ipv4Addr],
    ipv6: &[Ipv6Addr],
) -> Option<HealthCheck> {
    let path = value.position;
    let fields = cx.fields("health", value, HEALTH_KEYS)?;
    let tcp_port = cx.optional::<u16>(&fields, "tcp_port");
    let url = cx.optional::<String>(&fields, "url");
    let address = cx.optional::<String>(&fields, "address");
    let interval_s = cx.optional::<u64>(&fields, "interval_s").unwrap_or(10);
    let timeout_ms = cx.optional::<u64>(&fields, "timeout_ms").unwrap_or(1000);
    let rise = cx.optional::<u32>(&fields, "rise").unwrap_or(2);
    let fall = cx.optional::<u32>(&fields, "fall").unwrap_or(3);
    if interval_s == 0 || timeout_ms == 0 || rise == 0 || fall == 0 {
        cx.error(
            path,
            "interval_s, timeout_ms, rise and fall must be at least 1",
        );
    }
    let probe = match (tcp_port, url) {
        (Some(port), None) => {
            let address = match address {
                Some(text) => match text.parse::<IpAddr>() {
                    Ok(a) => a,
                    Err(_) => {
                        cx.error(fields.at("address"), format!("bad address {text:?}"));
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
        (None, Some(url)) if url.starts_with("http://") => {
            if let Some(address) = url_address(&url).filter(|a| is_documentation(*a)) {
                cx.error(
                    fields.at("url"),
                    format!("health url {url:?} is on the documentation address {address}, which is answered but never contacted: give a url on an address the mirror can be reached at"),
                );
                return None;
            }
            HealthProbe::Http { url }
        }
        (None, Some(url)) => {
            cx.error(
                fields.at("url"),
                format!("health url {url:?} must start with http:// (https checks are not supported yet)"),
            );
            return None;
        }
        _ => {
            let has_port = fields.get("tcp_port").is_some();
            let has_url = fields.get("url").is_some();
            // A bad tcp_port or url is reported already.
            if has_port == has_url {
                cx.error(path, "a health check has either `tcp_port` or `url`");
            }
            return None;
        }
    };
    Some(HealthCheck {
        probe,
        interval_s,
        timeout_ms,
        rise,
        fall,
    })
}

fn build_clusters(cx: &mut Context<'_>, service: &Fields<'_>) -> ClusterConfig {
    let defaults = ClusterConfig::default();
    let Some(value) = service.get("clusters") else {
        return defaults;
    };
    let cpath = value.position;
    let Some(fields) = cx.fields("clusters", value, CLUSTER_KEYS) else {
        return defaults;
    };
    let config = ClusterConfig {
        initial_v4: cx
            .optional(&fields, "initial_v4")
            .unwrap_or(defaults.initial_v4),
        initial_v6: cx
            .optional(&fields, "initial_v6")
            .unwrap_or(defaults.initial_v6),
        block_v4: cx
            .optional(&fields, "block_v4")
            .unwrap_or(defaults.block_v4),
        block_v6: cx
            .optional(&fields, "block_v6")
            .unwrap_or(defaults.block_v6),
        prefixes: defaults.prefixes,
    };
    if config.block_v4 > 32 || config.initial_v4 > config.block_v4 {
        cx.error(
            cpath,
            format!(
                "IPv4 lengths must satisfy initial_v4 ({}) <= block_v4 ({}) <= 32",
                config.initial_v4, config.block_v4
            ),
        );
    }
    if config.block_v6 > 128 || config.initial_v6 > config.block_v6 {
        cx.error(
            cpath,
            format!(
                "IPv6 lengths must satisfy initial_v6 ({}) <= block_v6 ({}) <= 128",
                config.initial_v6, config.block_v6
            ),
        );
    }
    let Some(file) = cx.optional::<String>(&fields, "prefixes") else {
        return config;
    };
    let full = cx.file.parent().unwrap_or(Path::new(".")).join(&file);
    match load_prefixes(&full) {
        Ok(prefixes) => ClusterConfig {
            prefixes: Arc::new(prefixes),
            ..config
        },
        Err(e) => {
            cx.diagnostics.errors.push(e);
            config
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts_that_are_addresses() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(url_address("http://192.0.2.7/health"), Some(v4));
        assert_eq!(url_address("http://192.0.2.7:8080"), Some(v4));
        assert_eq!(url_address("http://user:pw@192.0.2.7:80/x"), Some(v4));
        assert_eq!(url_address("http://[2001:db8::1]:8080/"), Some(v6));
        assert_eq!(url_address("http://mirror.example.test/health"), None);
    }
}
