//! YAML text → the records, services and SOA of a zone, each with the line
//! and column it was written at; [`super::build`] makes the zone of them and
//! [`super::validate`] checks it whole. Only this module and `yaml.rs` know
//! that the format is YAML. This file reads the top level (origin, ttl,
//! soa, dnssec) and holds what the parts share (the context that collects
//! errors, reading typed values); `records` reads owner names' records and
//! `services` the steered names.
//!
//! A file is read to the end whatever it holds: a missing or bad top-level
//! key, an unknown or duplicate key, is one error among the others, and every
//! message speaks of the zone format (`serial: expected a whole number from 0
//! to 4294967295`), never of the parser's types.
//!
//! Records are built as the parser reads them, owner by owner, so that no
//! tree of the whole file is ever held: only the zone being built grows.

mod records;
mod services;

use std::path::Path;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::build::{Located, ZoneBuilder};
use super::error::{Diagnostics, Position, Severity, ZoneError};
use super::validate::{self, Finding, Subject};
use super::yaml::{self, Node, Value};
use super::{DnssecSettings, Zone};
use crate::dnssec::KeyAlgorithm;
use records::add_owner_records;
use services::build_service;

const DEFAULT_TTL: u32 = 3600;

const ZONE_KEYS: &[&str] = &["origin", "ttl", "soa", "records", "services", "dnssec"];
const DNSSEC_KEYS: &[&str] = &["algorithm", "key_file"];
const SOA_KEYS: &[&str] = &[
    "mname", "rname", "serial", "refresh", "retry", "expire", "minimum",
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
