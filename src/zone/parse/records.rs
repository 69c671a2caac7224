//! The records of one owner name: each item's type, TTL and value, read
//! into the zone builder with every problem at its line and column.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::dnssec::rdata::{DNSSECRData, DS};
use hickory_proto::dnssec::{Algorithm, DigestType};
use hickory_proto::rr::rdata::{CAA, CNAME, MX, NS, PTR, SRV, TXT};
use hickory_proto::rr::{Name, RData, RecordType};

use super::super::build::ZoneBuilder;
use super::super::yaml::{Node, Value};
use super::{Context, Fields, describe, items};

/// RFC 1035 section 3.3: a character-string is at most 255 bytes. Longer TXT
/// strings are rejected rather than split silently, so what is served is
/// exactly what the operator wrote; a list of strings makes one record of
/// several character-strings.
const MAX_CHARACTER_STRING: usize = 255;
const RECORD_KEYS: &[&str] = &["type", "value", "values", "ttl"];
const DS_KEYS: &[&str] = &["key_tag", "algorithm", "digest_type", "digest"];

pub(super) fn owner_key(key: &Node) -> Option<String> {
    match &key.value {
        Value::String(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

pub(super) fn add_owner_records(
    cx: &mut Context<'_>,
    builder: &mut ZoneBuilder,
    key: &Node,
    value: &Node,
) {
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
    if digest.is_empty() {
        return Err("digest: expected hex digits, found none".to_string());
    }
    // The digest types IANA lists: SHA-1, SHA-256, GOST R 34.11-94,
    // SHA-384, GOST R 34.11-2012, SM3.
    let wanted = match digest_type {
        1 => Some(20),
        2 | 3 | 5 | 6 => Some(32),
        4 => Some(48),
        _ => None,
    };
    if let Some(len) = wanted.filter(|len| *len != digest.len()) {
        return Err(format!(
            "digest: a digest of type {digest_type} is {len} bytes ({} hex digits), found {}",
            len * 2,
            digest.len()
        ));
    }
    Ok(DNSSECRData::DS(DS::new(
        key_tag,
        Algorithm::from_u8(algorithm),
        DigestType::from(digest_type),
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
