//! A zone file's DNSSEC settings, read on their own: the zone's `origin`
//! and its `dnssec:` mapping (SPEC section 6), for `mirrordns dnssec ds`.
//!
//! Until the zone loader (`src/zone`) reads `dnssec:` itself, this reads
//! just those two keys with the YAML parser the zone loader uses
//! (libyaml-safer), leaving the rest of the file to it:
//!
//! ```yaml
//! origin: example.test.
//! dnssec: {algorithm: ecdsap256sha256, key_file: keys/example.test.key}
//! ```
//!
//! `dnssec: {}` (or `dnssec:` with nothing) signs with the defaults: an
//! ECDSA P-256 key generated in `STATE_DIR/keys/`. A relative `key_file`
//! is relative to the zone file's directory, as `prefixes` is.

use std::fs;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;
use libyaml_safer::{Document, Node, NodeData, Parser};

use super::keys::KeyAlgorithm;

/// The keys `dnssec:` may hold.
pub const DNSSEC_KEYS: [&str; 2] = ["algorithm", "key_file"];

/// What a zone file says about signing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneDnssec {
    pub origin: Name,
    /// `None`: the file has no `dnssec:`, the zone is served unsigned.
    pub dnssec: Option<DnssecSettings>,
}

/// The `dnssec:` mapping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnssecSettings {
    pub algorithm: Option<KeyAlgorithm>,
    /// Resolved against the zone file's directory.
    pub key_file: Option<PathBuf>,
}

/// Reads `path`'s origin and `dnssec:`; errors name the file (and the line
/// and column where there is one).
pub fn read(path: &Path) -> Result<ZoneDnssec, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    parse(path, &text)
}

/// [`read`] of text already read; `path` is for messages and for
/// resolving a relative `key_file`.
pub fn parse(path: &Path, text: &str) -> Result<ZoneDnssec, String> {
    let file = path.display();
    let mut parser = Parser::new();
    let mut input = text.as_bytes();
    parser.set_input_string(&mut input);
    let document = Document::load(&mut parser).map_err(|e| format!("{file}: {e}"))?;
    let at = |node: &Node| {
        format!(
            "{file}:{}:{}",
            node.start_mark.line + 1,
            node.start_mark.column + 1
        )
    };
    let root = document
        .nodes
        .first()
        .ok_or_else(|| format!("{file}: empty file: no origin"))?;
    let entries = mapping(&document, root)
        .ok_or_else(|| format!("{}: the zone file is not a mapping", at(root)))?;
    let origin_node = entries
        .iter()
        .find(|(k, _)| scalar(k) == Some("origin"))
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("{file}: no origin"))?;
    let origin_text =
        scalar(origin_node).ok_or_else(|| format!("{}: origin must be a name", at(origin_node)))?;
    if !origin_text.ends_with('.') {
        return Err(format!(
            "{}: origin {origin_text:?} must be absolute (end with '.')",
            at(origin_node)
        ));
    }
    let origin = Name::from_ascii(origin_text)
        .map_err(|e| format!("{}: origin {origin_text:?}: {e}", at(origin_node)))?;
    let Some(dnssec_node) = entries
        .iter()
        .find(|(k, _)| scalar(k) == Some("dnssec"))
        .map(|(_, v)| *v)
    else {
        return Ok(ZoneDnssec {
            origin,
            dnssec: None,
        });
    };
    let mut settings = DnssecSettings::default();
    if is_null(dnssec_node) {
        return Ok(ZoneDnssec {
            origin,
            dnssec: Some(settings),
        });
    }
    let fields = mapping(&document, dnssec_node).ok_or_else(|| {
        format!(
            "{}: dnssec must be a mapping, e.g. {{key_file: PATH}}",
            at(dnssec_node)
        )
    })?;
    for (key, value) in fields {
        match scalar(key) {
            Some("algorithm") => {
                let text = scalar(value)
                    .ok_or_else(|| format!("{}: algorithm must be a name", at(value)))?;
                settings.algorithm = Some(
                    text.parse()
                        .map_err(|e: String| format!("{}: {e}", at(value)))?,
                );
            }
            Some("key_file") => {
                let text = scalar(value)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| format!("{}: key_file must be a path", at(value)))?;
                let base = path.parent().unwrap_or(Path::new(""));
                settings.key_file = Some(base.join(text));
            }
            other => {
                return Err(format!(
                    "{}: unknown key {:?} in dnssec (known: {})",
                    at(key),
                    other.unwrap_or("?"),
                    DNSSEC_KEYS.join(", ")
                ));
            }
        }
    }
    Ok(ZoneDnssec {
        origin,
        dnssec: Some(settings),
    })
}

fn scalar(node: &Node) -> Option<&str> {
    match &node.data {
        NodeData::Scalar { value, .. } => Some(value),
        _ => None,
    }
}

fn is_null(node: &Node) -> bool {
    matches!(
        &node.data,
        NodeData::Scalar { value, style: libyaml_safer::ScalarStyle::Plain }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL")
    )
}

/// The (key, value) pairs of a mapping node.
fn mapping<'d>(document: &'d Document, node: &'d Node) -> Option<Vec<(&'d Node, &'d Node)>> {
    let NodeData::Mapping { pairs, .. } = &node.data else {
        return None;
    };
    let get = |i: i32| {
        usize::try_from(i - 1)
            .ok()
            .and_then(|i| document.nodes.get(i))
    };
    pairs
        .iter()
        .map(|pair| Some((get(pair.key)?, get(pair.value)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> ZoneDnssec {
        parse(Path::new("zones/example.yaml"), text).unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse(Path::new("zones/example.yaml"), text).unwrap_err()
    }

    #[test]
    fn reads_origin_and_dnssec() {
        let z = parse_ok(
            "origin: example.test.\nttl: 300\nrecords:\n  www: {type: A, value: 192.0.2.1}\n\
             dnssec: {algorithm: ed25519, key_file: keys/example.test.key}\n",
        );
        assert_eq!(z.origin, Name::from_ascii("example.test.").unwrap());
        assert_eq!(
            z.dnssec,
            Some(DnssecSettings {
                algorithm: Some(KeyAlgorithm::Ed25519),
                key_file: Some(PathBuf::from("zones/keys/example.test.key")),
            })
        );
        let absolute = parse_ok("origin: example.test.\ndnssec:\n  key_file: /etc/k.key\n");
        assert_eq!(
            absolute.dnssec.unwrap().key_file,
            Some(PathBuf::from("/etc/k.key"))
        );
    }

    #[test]
    fn empty_dnssec_means_defaults_and_none_means_unsigned() {
        for text in [
            "origin: example.test.\ndnssec: {}\n",
            "origin: example.test.\ndnssec:\n",
            "origin: example.test.\ndnssec: ~\n",
        ] {
            assert_eq!(
                parse_ok(text).dnssec,
                Some(DnssecSettings::default()),
                "{text}"
            );
        }
        assert_eq!(parse_ok("origin: example.test.\n").dnssec, None);
    }

    #[test]
    fn aliases_are_followed() {
        let z = parse_ok("x: &k {key_file: a.key}\norigin: example.test.\ndnssec: *k\n");
        assert_eq!(
            z.dnssec.unwrap().key_file,
            Some(PathBuf::from("zones/a.key"))
        );
    }

    #[test]
    fn errors_name_file_line_and_column() {
        for (text, expected) in [
            ("", "zones/example.yaml: empty file"),
            (
                "- a\n",
                "zones/example.yaml:1:1: the zone file is not a mapping",
            ),
            ("ttl: 3\n", "zones/example.yaml: no origin"),
            (
                "origin: example.test\n",
                "zones/example.yaml:1:9: origin \"example.test\" must be absolute",
            ),
            (
                "origin: [a]\n",
                "zones/example.yaml:1:9: origin must be a name",
            ),
            (
                "origin: example.test.\ndnssec: {algorithm: rsasha256}\n",
                "zones/example.yaml:2:21: unknown DNSSEC algorithm",
            ),
            (
                "origin: example.test.\ndnssec: {keyfile: a}\n",
                "zones/example.yaml:2:10: unknown key \"keyfile\" in dnssec (known: algorithm, key_file)",
            ),
            (
                "origin: example.test.\ndnssec: yes\n",
                "zones/example.yaml:2:9: dnssec must be a mapping",
            ),
            (
                "origin: example.test.\ndnssec: {key_file: ''}\n",
                "zones/example.yaml:2:20: key_file must be a path",
            ),
            ("origin: [\n", "zones/example.yaml: "),
        ] {
            let e = parse_err(text);
            assert!(
                e.starts_with(expected),
                "{text:?}: {e:?} should start with {expected:?}"
            );
        }
    }
}
