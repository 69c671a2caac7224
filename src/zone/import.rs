//! `mirrordns import FILE [--origin NAME]`: an RFC 1035 master file, as
//! BIND, Knot and NSD read it, printed as a zone in the YAML format of SPEC
//! section 6.
//!
//! The records are read by hickory-proto's zone file parser, one entry at a
//! time so that every problem names its line. Before an entry reaches it,
//! the entry is put on one line: parentheses across lines joined, comments
//! dropped, `\DDD` escapes in quoted strings turned into the characters they
//! stand for (hickory reads them wrongly), and a blank owner replaced by the
//! previous one. `$ORIGIN` and `$TTL` are followed here; `$INCLUDE` is
//! refused. A record of a type the YAML format cannot hold, of a class other
//! than IN, or a name the format cannot write, is an error at its line:
//! nothing is dropped silently.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::{Parser, parse_ttl};

use super::parse::parse_name_text;

/// The types the YAML format holds (SOA in `soa`, the others in `records`).
const CARRIED: &str = "SOA, NS, A, AAAA, CNAME, MX, TXT, SRV, CAA and PTR";

/// One entry of a master file: its first line and its text on one line.
struct Entry {
    line: usize,
    text: String,
    /// The entry began with a blank: its owner is the previous one.
    blank_owner: bool,
}

/// Splits a master file into entries, each on one line: comments dropped,
/// parentheses joined, `\DDD` in quoted strings decoded. An entry with a bad
/// escape is left out, its error (with the line) given instead.
fn entries(source: &str) -> (Vec<Entry>, Vec<(usize, String)>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut line = 1;
    let mut start_line = 1;
    let mut text = String::new();
    let mut depth = 0usize;
    let mut quoted = false;
    let mut chars = source.chars().peekable();
    let mut at_line_start = true;
    let mut blank_owner = false;
    // Errors before this entry began.
    let mut errors_before = 0;
    while let Some(c) = chars.next() {
        if at_line_start && depth == 0 && !quoted {
            start_line = line;
            errors_before = errors.len();
            blank_owner = c == ' ' || c == '\t';
            at_line_start = false;
        }
        match c {
            '\\' => {
                let mut digits = String::new();
                while digits.len() < 3 && chars.peek().is_some_and(char::is_ascii_digit) {
                    digits.extend(chars.next());
                }
                if digits.is_empty() {
                    text.push('\\');
                    if let Some(next) = chars.next() {
                        if next == '\n' {
                            line += 1;
                        }
                        text.push(next);
                    }
                    continue;
                }
                if !quoted {
                    text.push('\\');
                    text.push_str(&digits);
                    continue;
                }
                // A run of \DDD bytes in a quoted string: UTF-8 text, or an error.
                let mut bytes = Vec::new();
                let mut pending = Some(digits);
                while let Some(d) = pending.take() {
                    match d.parse::<u8>() {
                        Ok(b) if d.len() == 3 => bytes.push(b),
                        _ => {
                            errors.push((
                                line,
                                format!("bad escape \\{d}: \\DDD is a byte, 000 to 255"),
                            ));
                            break;
                        }
                    }
                    let mut look = chars.clone();
                    if look.next() == Some('\\') {
                        let next: String = look.take(3).collect();
                        if next.len() == 3 && next.bytes().all(|b| b.is_ascii_digit()) {
                            chars.next();
                            for _ in 0..3 {
                                chars.next();
                            }
                            pending = Some(next);
                        }
                    }
                }
                match String::from_utf8(bytes) {
                    Ok(s) => {
                        for ch in s.chars() {
                            if ch == '"' || ch == '\\' {
                                text.push('\\');
                            }
                            text.push(ch);
                        }
                    }
                    Err(_) => errors.push((
                        line,
                        "bytes that are not UTF-8 text cannot be carried: the YAML format holds text strings".to_string(),
                    )),
                }
            }
            '"' => {
                quoted = !quoted;
                text.push(c);
            }
            ';' if !quoted => {
                // A comment, to the end of the line.
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            '(' if !quoted => {
                depth += 1;
                text.push(' ');
            }
            ')' if !quoted => {
                if depth == 0 {
                    errors.push((line, "')' without '('".to_string()));
                } else {
                    depth -= 1;
                }
                text.push(' ');
            }
            '\n' => {
                line += 1;
                if depth > 0 || quoted {
                    text.push(if quoted { '\n' } else { ' ' });
                } else {
                    if !text.trim().is_empty() && errors.len() == errors_before {
                        out.push(Entry {
                            line: start_line,
                            text: std::mem::take(&mut text),
                            blank_owner,
                        });
                    }
                    text.clear();
                    at_line_start = true;
                }
            }
            '\r' if !quoted => {}
            _ => text.push(c),
        }
    }
    if depth > 0 || quoted {
        errors.push((
            start_line,
            "unclosed '(' or '\"' at the end of the file".to_string(),
        ));
    } else if !text.trim().is_empty() && errors.len() == errors_before {
        out.push(Entry {
            line: start_line,
            text,
            blank_owner,
        });
    }
    (out, errors)
}

/// A record read, with the line it came from.
struct Read {
    line: usize,
    record: Record,
}

/// Reads every record of the master file, and the entries that cannot be
/// read, with their lines.
fn read_records(source: &str, origin: Option<Name>) -> (Vec<Read>, Vec<(usize, String)>) {
    let (entries, mut errors) = entries(source);
    let mut origin = origin;
    let mut default_ttl: Option<u32> = None;
    let mut last_ttl: Option<u32> = None;
    let mut last_owner: Option<Name> = None;
    let mut records = Vec::new();
    for entry in entries {
        let text = entry.text.trim();
        if let Some(directive) = text.strip_prefix('$') {
            let mut words = directive.split_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            let argument = words.next();
            match (keyword.as_str(), argument) {
                ("ORIGIN", Some(name)) => match Name::parse(name, origin.as_ref()) {
                    Ok(name) => origin = Some(name),
                    Err(e) => errors.push((entry.line, format!("bad $ORIGIN {name}: {e}"))),
                },
                ("TTL", Some(ttl)) => match parse_ttl(ttl) {
                    Ok(ttl) => default_ttl = Some(ttl),
                    Err(e) => errors.push((entry.line, format!("bad $TTL {ttl}: {e}"))),
                },
                ("INCLUDE", _) => errors.push((
                    entry.line,
                    "$INCLUDE is not supported: import the included file with the right --origin, or inline it".to_string(),
                )),
                _ => errors.push((entry.line, format!("unknown or incomplete directive ${directive}"))),
            }
            continue;
        }
        let line = if entry.blank_owner {
            match &last_owner {
                Some(owner) => format!("{owner} {text}"),
                None => {
                    errors.push((
                        entry.line,
                        "a record with no owner, and none before it".to_string(),
                    ));
                    continue;
                }
            }
        } else {
            text.to_string()
        };
        // hickory's parser keeps $TTL, else the last TTL given, as the default.
        let mut input = String::with_capacity(line.len() + 24);
        if let Some(ttl) = default_ttl.or(last_ttl) {
            let _ = writeln!(input, "$TTL {ttl}");
        }
        input.push_str(&line);
        input.push('\n');
        let parsed = Parser::new(input, None, origin.clone()).parse();
        let read = match parsed {
            Ok((_, sets)) => sets
                .into_values()
                .flat_map(|set| set.records_without_rrsigs().cloned().collect::<Vec<_>>())
                .next(),
            Err(e) => {
                let message = e.to_string();
                let message = if message.contains("ttl not specified") {
                    "no TTL: give $TTL, or a TTL on the first record".to_string()
                } else {
                    message
                };
                errors.push((entry.line, message));
                continue;
            }
        };
        let Some(record) = read else {
            errors.push((entry.line, "no record read".to_string()));
            continue;
        };
        last_owner = Some(record.name.clone());
        if default_ttl.is_none() {
            last_ttl = Some(record.ttl);
        }
        records.push(Read {
            line: entry.line,
            record,
        });
    }
    (records, errors)
}

/// A name as the YAML format writes it: absolute with the trailing dot.
fn absolute(name: &Name) -> String {
    let mut text = name.to_ascii();
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// A YAML single-quoted scalar.
fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A YAML double-quoted scalar: every character as itself except the
/// quote, the backslash and control characters, which are escaped.
fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn text_of(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| {
        "bytes that are not UTF-8 text cannot be carried: the YAML format holds text strings"
            .to_string()
    })
}

/// The value of one record in the YAML format.
fn yaml_value(data: &RData) -> Result<String, String> {
    Ok(match data {
        RData::A(a) => single_quoted(&a.to_string()),
        RData::AAAA(a) => single_quoted(&a.to_string()),
        RData::NS(n) => single_quoted(&checked(&n.0)?),
        RData::CNAME(n) => single_quoted(&checked(&n.0)?),
        RData::PTR(n) => single_quoted(&checked(&n.0)?),
        RData::MX(mx) => format!(
            "{{preference: {}, exchange: {}}}",
            mx.preference,
            single_quoted(&checked(&mx.exchange)?)
        ),
        RData::SRV(srv) => format!(
            "{{priority: {}, weight: {}, port: {}, target: {}}}",
            srv.priority,
            srv.weight,
            srv.port,
            single_quoted(&checked(&srv.target)?)
        ),
        RData::TXT(txt) => {
            let strings = txt
                .txt_data
                .iter()
                .map(|s| text_of(s).map(double_quoted))
                .collect::<Result<Vec<_>, _>>()?;
            match strings.as_slice() {
                [one] => one.clone(),
                _ => format!("[{}]", strings.join(", ")),
            }
        }
        RData::CAA(caa) => {
            let flags = (u8::from(caa.issuer_critical) << 7) | caa.reserved_flags;
            format!(
                "{{flags: {flags}, tag: {}, value: {}}}",
                single_quoted(&caa.tag),
                double_quoted(text_of(&caa.value)?)
            )
        }
        other => return Err(cannot_carry(other.record_type())),
    })
}

fn cannot_carry(rtype: RecordType) -> String {
    format!("type {rtype} cannot be carried: the zone format holds {CARRIED}")
}

/// `name` as text, when the YAML format can write it (its names are letters,
/// digits, '-' and '_', and a leading `*`).
fn checked(name: &Name) -> Result<String, String> {
    let text = absolute(name);
    parse_name_text(&text, true)?;
    Ok(text)
}

/// The records of one owner, grouped by type and TTL in the order written.
struct Owner {
    key: String,
    sets: Vec<(RecordType, u32, Vec<String>)>,
}

/// Turns the master file `source` (read from `file`) into YAML; `origin`
/// is the zone's name when the file does not say it with `$ORIGIN`. The
/// errors name the file and the line.
pub fn import(file: &Path, source: &str, origin: Option<&str>) -> Result<String, Vec<String>> {
    let at = |line: usize, message: &str| format!("{}:{line}: {message}", file.display());
    let origin = match origin {
        Some(text) => match Name::parse(text, Some(&Name::root())) {
            Ok(name) => Some(name),
            Err(e) => return Err(vec![format!("bad --origin {text}: {e}")]),
        },
        None => None,
    };
    let (records, mut errors) = read_records(source, origin.clone());
    let soas: Vec<&Read> = records
        .iter()
        .filter(|r| r.record.record_type() == RecordType::SOA)
        .collect();
    let soa = match soas.as_slice() {
        [soa] => *soa,
        [] => {
            let mut all: Vec<String> = errors.iter().map(|(l, m)| at(*l, m)).collect();
            all.push(format!(
                "{}: no SOA record: a zone starts with one",
                file.display()
            ));
            return Err(all);
        }
        [_, second, ..] => {
            errors.push((second.line, "a second SOA record".to_string()));
            *second
        }
    };
    let apex = soa.record.name.clone();
    if let Some(origin) = &origin
        && *origin != apex
    {
        errors.push((
            soa.line,
            format!("the SOA is at {apex}, not at the --origin {origin}"),
        ));
    }
    let RData::SOA(soa_data) = &soa.record.data else {
        return Err(vec![at(soa.line, "an SOA record without SOA data")]);
    };
    let zone_ttl = soa.record.ttl;
    let mut owners: Vec<Owner> = Vec::new();
    let mut index: HashMap<Name, usize> = HashMap::new();
    for read in &records {
        let record = &read.record;
        let rtype = record.record_type();
        if rtype == RecordType::SOA {
            continue;
        }
        if record.dns_class != DNSClass::IN {
            errors.push((
                read.line,
                format!(
                    "class {} cannot be carried: a zone is of class IN",
                    record.dns_class
                ),
            ));
            continue;
        }
        if !apex.zone_of(&record.name) {
            errors.push((
                read.line,
                format!("{} is outside the zone {apex}", record.name),
            ));
            continue;
        }
        let key = match checked(&record.name) {
            Ok(_) => relative(&record.name, &apex),
            Err(e) => {
                errors.push((read.line, e));
                continue;
            }
        };
        let value = match yaml_value(&record.data) {
            Ok(v) => v,
            Err(e) => {
                errors.push((read.line, e));
                continue;
            }
        };
        let lower = record.name.to_lowercase();
        let i = *index.entry(lower).or_insert_with(|| {
            owners.push(Owner {
                key,
                sets: Vec::new(),
            });
            owners.len() - 1
        });
        let sets = &mut owners[i].sets;
        match sets
            .iter_mut()
            .find(|(t, ttl, _)| *t == rtype && *ttl == record.ttl)
        {
            Some((_, _, values)) => values.push(value),
            None => sets.push((rtype, record.ttl, vec![value])),
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|(line, _)| *line);
        return Err(errors.iter().map(|(l, m)| at(*l, m)).collect());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported by `mirrordns import` from {}.",
        file.display()
    );
    let _ = writeln!(out, "origin: {}", single_quoted(&absolute(&apex)));
    let _ = writeln!(out, "ttl: {zone_ttl}");
    let _ = writeln!(
        out,
        "soa: {{mname: {}, rname: {}, serial: {}, refresh: {}, retry: {}, expire: {}, minimum: {}}}",
        single_quoted(&absolute(&soa_data.mname)),
        single_quoted(&absolute(&soa_data.rname)),
        soa_data.serial,
        soa_data.refresh,
        soa_data.retry,
        soa_data.expire,
        soa_data.minimum
    );
    if owners.is_empty() {
        return Ok(out);
    }
    out.push_str("records:\n");
    for owner in &owners {
        let items: Vec<String> = owner
            .sets
            .iter()
            .map(|(rtype, ttl, values)| {
                let ttl = if *ttl == zone_ttl {
                    String::new()
                } else {
                    format!(", ttl: {ttl}")
                };
                match values.as_slice() {
                    [one] => format!("{{type: {rtype}, value: {one}{ttl}}}"),
                    _ => format!("{{type: {rtype}, values: [{}]{ttl}}}", values.join(", ")),
                }
            })
            .collect();
        let key = single_quoted(&owner.key);
        match items.as_slice() {
            [one] => {
                let _ = writeln!(out, "  {key}: {one}");
            }
            _ => {
                let _ = writeln!(out, "  {key}:");
                for item in &items {
                    let _ = writeln!(out, "    - {item}");
                }
            }
        }
    }
    Ok(out)
}

/// `name` relative to `apex` as the YAML format writes owners ('' for the apex).
fn relative(name: &Name, apex: &Name) -> String {
    let labels = name.num_labels().saturating_sub(apex.num_labels());
    let full = absolute(name);
    if labels == 0 {
        return String::new();
    }
    let keep: Vec<&str> = full
        .trim_end_matches('.')
        .split('.')
        .take(labels as usize)
        .collect();
    // A wildcard label counts in num_labels' complement: `*` is not counted.
    if name.is_wildcard() {
        let mut parts = vec!["*"];
        parts.extend(
            full.trim_end_matches('.')
                .split('.')
                .skip(1)
                .take(labels as usize),
        );
        return parts.join(".");
    }
    keep.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_join_parentheses_and_drop_comments() {
        let src = "$ORIGIN a.test.\n@ IN SOA ns h ( 1 ; serial\n  2 3 4 5 )\n\tTXT \"x;y\" ; c\n";
        let (got, errors) = entries(src);
        assert!(errors.is_empty());
        let lines: Vec<(usize, bool)> = got.iter().map(|e| (e.line, e.blank_owner)).collect();
        assert_eq!(lines, [(1, false), (2, false), (4, true)]);
        assert_eq!(
            got[1].text.split_whitespace().collect::<Vec<_>>().join(" "),
            "@ IN SOA ns h 1 2 3 4 5"
        );
        assert_eq!(got[2].text.trim(), "TXT \"x;y\"");
    }

    #[test]
    fn decimal_escapes_in_quotes_become_text() {
        let (got, _) = entries("x TXT \"\\065\\195\\169\\034\"\n");
        assert_eq!(got[0].text, "x TXT \"Aé\\\"\"");
        let (got, errors) = entries("x TXT \"\\255\"\ny A 192.0.2.1\n");
        assert_eq!(got.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 1);
    }

    #[test]
    fn relative_owners() {
        let apex = Name::from_ascii("a.test.").unwrap();
        for (name, rel) in [
            ("a.test.", ""),
            ("x.a.test.", "x"),
            ("y.x.a.test.", "y.x"),
            ("*.w.a.test.", "*.w"),
        ] {
            assert_eq!(relative(&Name::from_ascii(name).unwrap(), &apex), rel);
        }
    }
}
