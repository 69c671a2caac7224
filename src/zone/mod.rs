//! Zones: the YAML file format (SPEC section 6), its validation, and the
//! immutable in-memory zone that the DNS front end answers from.
//!
//! A [`ZoneSet`] is one consistent snapshot of every loaded zone; a reload
//! builds a new one and swaps it in whole, so a query never sees a mix.
//!
//! Loading goes in three steps: `parse` reads the YAML (`yaml` gives every
//! value with its line and column), `build` makes the zone of the records it
//! read, and `validate` checks the zone whole (apex NS, CNAME loops, glue,
//! data below cuts). [`load_set`] adds the checks between files and reads
//! the signing key of every zone with `dnssec:`; `serve` and `check` both
//! load through it.

mod build;
mod check;
mod compact;
mod error;
mod import;
mod parse;
mod validate;
mod yaml;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name, Record, RecordType};
use ipnet::IpNet;

use crate::dnssec::{KeyAlgorithm, ZoneSigner, keys};

pub use check::check;
pub use error::{Position, Severity, ZoneError, ZoneErrors};
pub use import::import;

/// One authoritative zone, validated; read-only until it is dropped.
#[derive(Debug)]
pub struct Zone {
    pub origin: Name,
    pub file: PathBuf,
    /// The SOA record, with the TTL used for negative answers (RFC 2308: the
    /// lesser of the SOA's own TTL and its MINIMUM).
    pub soa: Record,
    pub negative_soa: Record,
    pub default_ttl: u32,
    store: compact::Store,
    /// The origin's length in wire form: names this long or shorter are
    /// not below it.
    origin_wire: usize,
    has_delegations: bool,
    has_wildcards: bool,
    pub services: Vec<Arc<Service>>,
    /// `dnssec:`: the zone is signed (SPEC section 1a).
    pub dnssec: Option<DnssecSettings>,
    /// The key and signature cache of a signed zone, once its key is read.
    signer: Option<Arc<ZoneSigner>>,
    /// Last, so that it is dropped after the store.
    _release: compact::ReleaseOnDrop,
}

/// A zone file's `dnssec:` (SPEC section 6): the zone is signed online.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnssecSettings {
    /// `None`: the key's own algorithm; a new key is ECDSA P-256.
    pub algorithm: Option<KeyAlgorithm>,
    /// Resolved against the zone file's directory; `None`: the key kept
    /// in `STATE_DIR/keys/`.
    pub key_file: Option<PathBuf>,
}

/// Everything at one owner name, as stored. A node with no RRsets and no
/// service is an empty non-terminal: it exists (NODATA, not NXDOMAIN)
/// because names below it do.
#[derive(Clone, Copy, Debug)]
pub struct Node<'z> {
    zone: &'z Zone,
    index: u32,
    /// Index into [`Zone::services`] when this name is steered.
    pub service: Option<usize>,
    /// NS records here, below the apex: a zone cut.
    pub delegation: bool,
}

/// The records of one type at one name, decoded for an answer.
#[derive(Debug)]
pub struct RRset {
    pub record_type: RecordType,
    pub records: Vec<Record>,
}

impl<'z> Node<'z> {
    fn new(zone: &'z Zone, index: u32) -> Self {
        Node {
            zone,
            index,
            service: zone.store.service(index),
            delegation: zone.store.node(index).delegation,
        }
    }

    /// The records of `record_type` here, if any.
    pub fn rrset(&self, record_type: RecordType) -> Option<RRset> {
        let code = u16::from(record_type);
        let set = self
            .zone
            .store
            .rrsets_of(self.index)
            .iter()
            .find(|s| s.rtype == code)?;
        let owner = self.name();
        Some(RRset {
            record_type,
            records: self.zone.store.records(&owner, set),
        })
    }

    /// Whether there are records of `record_type` here (without decoding them).
    pub fn has(&self, record_type: RecordType) -> bool {
        let code = u16::from(record_type);
        self.zone
            .store
            .rrsets_of(self.index)
            .iter()
            .any(|s| s.rtype == code)
    }

    /// The types of the RRsets here, in the order first written.
    pub fn types(&self) -> impl Iterator<Item = RecordType> + 'z {
        self.zone
            .store
            .rrsets_of(self.index)
            .iter()
            .map(|s| RecordType::from(s.rtype))
    }

    /// The owner name, as written.
    pub fn name(&self) -> Name {
        self.zone.store.owner(self.index).unwrap_or_default()
    }

    pub fn is_empty_non_terminal(&self) -> bool {
        self.zone.store.node(self.index).count == 0 && self.service.is_none()
    }
}

/// A steered name: its mirrors and how the steering engine should treat it.
#[derive(Debug)]
pub struct Service {
    /// Absolute name, e.g. `www.example.test.`
    pub name: Name,
    pub ttl: u32,
    pub mirrors: Vec<Mirror>,
    pub clusters: ClusterConfig,
    pub max_age_s: u64,
    pub switch_margin: SwitchMargin,
}

impl Service {
    /// The answer records for `mirror` in the asked family (empty when the
    /// mirror has no address of that family).
    pub fn records(&self, mirror: usize, family: Family) -> &[Record] {
        let m = &self.mirrors[mirror];
        match family {
            Family::V4 => &m.a_records,
            Family::V6 => &m.aaaa_records,
        }
    }

    pub fn has_family(&self, family: Family) -> bool {
        (0..self.mirrors.len()).any(|m| !self.records(m, family).is_empty())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

#[derive(Debug)]
pub struct Mirror {
    pub name: String,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    pub capacity_qps: Option<u64>,
    pub health: Option<HealthCheck>,
    /// The answer RRsets, built once at load so answering only copies them.
    a_records: Vec<Record>,
    aaaa_records: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub probe: HealthProbe,
    pub interval_s: u64,
    pub timeout_ms: u64,
    pub rise: u32,
    pub fall: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HealthProbe {
    Tcp { address: IpAddr, port: u16 },
    Http { url: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub initial_v4: u8,
    pub initial_v6: u8,
    pub block_v4: u8,
    pub block_v6: u8,
    /// Operator-supplied prefixes (e.g. BGP announcements) that set the length
    /// of a new cluster; empty when none were given.
    pub prefixes: Arc<Vec<IpNet>>,
}

impl ClusterConfig {
    pub fn initial(&self, family: Family) -> u8 {
        match family {
            Family::V4 => self.initial_v4,
            Family::V6 => self.initial_v6,
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            initial_v4: 16,
            initial_v6: 32,
            block_v4: 24,
            block_v6: 48,
            prefixes: Arc::new(Vec::new()),
        }
    }
}

/// Switch a complete cluster only when the new mirror is faster by more than
/// both the absolute and the relative margin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwitchMargin {
    pub ms: f64,
    pub percent: f64,
}

impl Default for SwitchMargin {
    fn default() -> Self {
        SwitchMargin {
            ms: 5.0,
            percent: 10.0,
        }
    }
}

/// What a name resolves to inside one zone, before any wire encoding.
pub enum Found<'z> {
    /// The name exists here (possibly as an empty non-terminal).
    Node(Node<'z>),
    /// The name does not exist but a wildcard covers it.
    Wildcard(Node<'z>),
    /// The name is at or below a zone cut: refer to the child's NS set.
    /// `cut` is the delegation's node (its DS too, when it has one).
    Referral {
        ns: RRset,
        cut: Node<'z>,
    },
    NxDomain,
}

impl Zone {
    /// The signer of a signed zone whose key has been read.
    pub fn signer(&self) -> Option<&Arc<ZoneSigner>> {
        self.signer.as_ref()
    }

    /// Whether `node` is the zone's apex.
    pub fn is_apex(&self, node: &Node) -> bool {
        self.store.name_of(self.store.node(node.index)).len() == self.origin_wire
    }

    /// Signs the zone's answers with `signer` from now on.
    pub fn set_signer(&mut self, signer: Arc<ZoneSigner>) {
        self.signer = Some(signer);
    }

    /// Resolves `name` (which must be at or below the origin) per RFC 1034
    /// section 4.3.2, with RFC 4592 wildcards.
    pub fn find(&self, name: &LowerName) -> Found<'_> {
        let mut buf = [0u8; compact::MAX_NAME];
        let Some(len) = compact::lower_wire(name, &mut buf) else {
            return Found::NxDomain;
        };
        let wire = &buf[..len];
        if self.has_delegations
            && let Some(cut) = self.cut_at_or_above(wire, true)
        {
            let cut = Node::new(self, cut);
            return match cut.rrset(RecordType::NS) {
                Some(ns) => Found::Referral { ns, cut },
                None => Found::NxDomain,
            };
        }
        if let Some(i) = self.store.find(wire) {
            return Found::Node(Node::new(self, i));
        }
        if self.has_wildcards
            && let Some(i) = self.find_wildcard(wire)
        {
            return Found::Wildcard(Node::new(self, i));
        }
        Found::NxDomain
    }

    /// The node at exactly `name`, if the zone has one (below zone cuts too).
    pub fn node(&self, name: &LowerName) -> Option<Node<'_>> {
        let mut buf = [0u8; compact::MAX_NAME];
        let len = compact::lower_wire(name, &mut buf)?;
        self.store.find(&buf[..len]).map(|i| Node::new(self, i))
    }

    /// Every node, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = Node<'_>> {
        (0..self.store.nodes.len() as u32).map(|i| Node::new(self, i))
    }

    /// Bytes the zone's names and records take.
    pub fn stored_bytes(&self) -> usize {
        self.store.bytes()
    }

    fn origin_wire_len(&self) -> usize {
        self.origin_wire
    }

    /// The highest zone cut between the origin (exclusive) and the wire
    /// name (inclusive when `inclusive`).
    fn cut_at_or_above(&self, wire: &[u8], inclusive: bool) -> Option<u32> {
        let origin_len = self.origin_wire_len();
        let mut highest = None;
        let mut current = if inclusive {
            Some(wire)
        } else {
            compact::parent(wire)
        };
        while let Some(name) = current {
            if name.len() <= origin_len {
                break;
            }
            if let Some(i) = self.store.find(name)
                && self.store.node(i).delegation
            {
                highest = Some(i);
            }
            current = compact::parent(name);
        }
        highest
    }

    /// RFC 4592: the source of synthesis is `*.` + the closest encloser, and
    /// only when the closest encloser is not the name itself.
    fn find_wildcard(&self, wire: &[u8]) -> Option<u32> {
        let origin_len = self.origin_wire_len();
        let mut encloser = compact::parent(wire)?;
        while self.store.find(encloser).is_none() {
            if encloser.len() <= origin_len {
                return None;
            }
            encloser = compact::parent(encloser)?;
        }
        let mut buf = [0u8; compact::MAX_NAME];
        let len = 2 + encloser.len();
        if len > compact::MAX_NAME {
            return None;
        }
        buf[0] = 1;
        buf[1] = b'*';
        buf[2..len].copy_from_slice(encloser);
        self.store.find(&buf[..len])
    }
}

/// Every loaded zone, longest origin first so a child zone wins over its parent.
#[derive(Debug, Default)]
pub struct ZoneSet {
    zones: Vec<Arc<Zone>>,
}

impl ZoneSet {
    pub fn new(mut zones: Vec<Arc<Zone>>) -> Self {
        zones.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        ZoneSet { zones }
    }

    /// The zone that answers `qtype` at `name`, with its index in
    /// [`Self::zones`]: the most specific that holds
    /// it, except for a DS at a child zone's apex, which the parent's side
    /// of the cut answers when the parent is loaded too (RFC 4035 section
    /// 3.1.4.1).
    pub fn zone_answering(&self, name: &Name, qtype: RecordType) -> Option<(usize, &Arc<Zone>)> {
        let mut holding = self
            .zones
            .iter()
            .enumerate()
            .filter(|(_, z)| z.origin.zone_of(name));
        let most_specific = holding.next()?;
        if qtype == RecordType::DS && most_specific.1.origin == *name {
            return holding.next().or(Some(most_specific));
        }
        Some(most_specific)
    }

    pub fn zones(&self) -> &[Arc<Zone>] {
        &self.zones
    }

    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.zones.iter().flat_map(|z| z.services.iter())
    }
}

/// One zone file of a set, as loaded.
#[derive(Debug)]
pub struct FileReport {
    pub file: PathBuf,
    /// The zone, when the file has no error (another file with the same
    /// origin is an error of the later file).
    pub zone: Option<Arc<Zone>>,
    pub errors: Vec<ZoneError>,
    pub warnings: Vec<ZoneError>,
}

/// What loading a set of zone files and directories found: every file with
/// its errors and warnings, and the problems of the set itself.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub files: Vec<FileReport>,
    /// Paths that cannot be read or listed.
    pub errors: Vec<ZoneError>,
    /// Directories without a zone file (`*.yaml`, `*.yml`).
    pub empty_directories: Vec<PathBuf>,
}

impl LoadReport {
    /// Whether any file or path has an error (which rejects the whole set).
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.files.iter().any(|f| !f.errors.is_empty())
    }

    /// The set when nothing has an error, with every warning (empty
    /// directories included); else every error.
    pub fn into_result(self) -> Result<(ZoneSet, Vec<ZoneError>), ZoneErrors> {
        if self.has_errors() {
            let mut errors = self.errors;
            for file in self.files {
                errors.extend(file.errors);
            }
            return Err(ZoneErrors(errors));
        }
        let mut warnings: Vec<ZoneError> = self
            .empty_directories
            .iter()
            .map(|dir| ZoneError::warning(dir, None, EMPTY_DIRECTORY))
            .collect();
        let mut zones = Vec::new();
        for file in self.files {
            warnings.extend(file.warnings);
            zones.extend(file.zone);
        }
        Ok((ZoneSet::new(zones), warnings))
    }
}

/// What an empty zone directory is told.
pub const EMPTY_DIRECTORY: &str = "no zone files (*.yaml) in this directory";

/// Where the zones with `dnssec:` get their keys while loading.
#[derive(Clone, Copy)]
pub enum Keys<'a> {
    /// `check`: key files are read (one that cannot be is an error); keys
    /// kept in a state directory are neither read nor made.
    FilesOnly,
    /// `serve`: the key file, else the key kept in `state_dir` (made there
    /// the first time). A zone of `previous` signed with the same key keeps
    /// its signer, so a reload keeps every signature that still holds.
    Serve {
        state_dir: &'a Path,
        previous: Option<&'a ZoneSet>,
    },
}

/// Loads and validates every zone in `paths` (files, or directories of
/// `*.yaml`) and the set as a whole: two files with one origin are an error.
/// `serve` (at start and on every reload) and `check` both load through here,
/// so `check` rejects exactly what `serve` rejects; [`Keys`] says where
/// signing keys come from.
pub fn load_set(paths: &[PathBuf], keys: Keys<'_>) -> LoadReport {
    let mut report = LoadReport::default();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for path in paths {
        match zone_files(path) {
            Ok(found) if found.is_empty() => report.empty_directories.push(path.clone()),
            Ok(found) => {
                for file in found {
                    // The same file named twice (`zones/ zones/a.yaml`) is one file.
                    let canonical = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
                    if seen.insert(canonical) {
                        files.push(file);
                    }
                }
            }
            Err(e) => report.errors.push(e),
        }
    }
    let mut origins: HashMap<Name, PathBuf> = HashMap::new();
    for file in files {
        let parsed = match std::fs::read_to_string(&file) {
            Ok(source) => parse::parse_zone(&file, &source),
            Err(e) => parse::Parsed {
                origin: None,
                zone: None,
                errors: vec![ZoneError::new(&file, None, format!("cannot read: {e}"))],
                warnings: Vec::new(),
            },
        };
        let mut errors = parsed.errors;
        if let Some(origin) = parsed.origin {
            match origins.get(&origin) {
                Some(other) => errors.push(ZoneError::new(
                    &file,
                    None,
                    format!(
                        "zone {origin} is also loaded from {}: one origin, one file",
                        other.display()
                    ),
                )),
                None => {
                    origins.insert(origin, file.clone());
                }
            }
        }
        let mut zone = parsed.zone.filter(|_| errors.is_empty());
        if let Some(z) = &mut zone
            && let Err(e) = attach_signer(z, keys)
        {
            errors.push(ZoneError::new(&file, None, e));
            zone = None;
        }
        let zone = zone.map(Arc::new);
        report.files.push(FileReport {
            file,
            zone,
            errors,
            warnings: parsed.warnings,
        });
    }
    // What the parses held (and the zones that failed) is free now.
    compact::release_free_memory();
    report
}

/// Reads the key of a zone with `dnssec:` as `keys` says, and gives the
/// zone its signer: the previous one when the key is the same.
fn attach_signer(zone: &mut Zone, keys: Keys<'_>) -> Result<(), String> {
    let Some(settings) = &zone.dnssec else {
        return Ok(());
    };
    let serving = match keys {
        Keys::Serve {
            previous: Some(previous),
            ..
        } => previous
            .zones()
            .iter()
            .filter(|z| z.origin == zone.origin)
            .find_map(|z| z.signer().cloned()),
        _ => None,
    };
    if let (Keys::Serve { state_dir, .. }, None, Some(serving)) =
        (keys, &settings.key_file, &serving)
    {
        keys::keep_serving_key(state_dir, &zone.origin, serving.key())
            .map_err(|e| format!("dnssec: {e}"))?;
    }
    let key = match (keys, &settings.key_file) {
        (Keys::FilesOnly, None) => return Ok(()),
        (Keys::FilesOnly, Some(file)) => {
            keys::zone_key(Some(file), Path::new(""), &zone.origin, settings.algorithm)
        }
        (Keys::Serve { state_dir, .. }, file) => {
            keys::zone_key(file.as_deref(), state_dir, &zone.origin, settings.algorithm)
        }
    }
    .map_err(|e| format!("dnssec: {e}"))?;
    let kept = serving.filter(|s| s.dnskey() == key.dnskey());
    let origin = zone.origin.clone();
    zone.set_signer(kept.unwrap_or_else(|| Arc::new(ZoneSigner::new(origin, Arc::new(key)))));
    Ok(())
}

/// Loads and validates every zone in `paths` (files, or directories of
/// `*.yaml`), reading key files but making no key; any error in any file
/// rejects the whole set. Warnings are dropped: see [`load_set`] for them.
pub fn load_paths(paths: &[PathBuf]) -> Result<ZoneSet, ZoneErrors> {
    load_set(paths, Keys::FilesOnly)
        .into_result()
        .map(|(zones, _)| zones)
}

/// Loads and validates one zone file (warnings are dropped).
pub fn load_file(path: &Path) -> Result<Zone, ZoneErrors> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        ZoneErrors(vec![ZoneError::new(
            path,
            None,
            format!("cannot read: {e}"),
        )])
    })?;
    load_str(path, &source)
}

/// Validates zone text as if read from `path` (which names it in errors and
/// anchors relative prefix-list paths); warnings are dropped.
pub fn load_str(path: &Path, source: &str) -> Result<Zone, ZoneErrors> {
    let parsed = parse::parse_zone(path, source);
    match parsed.zone {
        Some(zone) if parsed.errors.is_empty() => Ok(zone),
        _ => Err(ZoneErrors(parsed.errors)),
    }
}

fn zone_files(path: &Path) -> Result<Vec<PathBuf>, ZoneError> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| ZoneError::new(path, None, format!("cannot read: {e}")))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| ZoneError::new(path, None, format!("cannot list: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
                && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}
