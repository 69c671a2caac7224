//! Records and services as read, each with where it was written → a [`Zone`]:
//! RRsets, empty non-terminals, zone cuts, and the rules between records of
//! one name (a CNAME alone, one TTL per RRset, no duplicate record, no address
//! records beside a service). Nothing here knows the file format: any reader
//! that gives names, records and positions builds a zone with it.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::error::{Diagnostics, Position};
use super::{Node, RRset, Service, Zone};

/// A record as written, remembered with its position for errors found when
/// its name is complete (CNAME beside other data, clashes with services).
struct Entry {
    position: Option<Position>,
    /// Where the record's mapping starts (`{type: ..., value: ...}`).
    item: Position,
    record: Record,
    /// The record gave its own TTL; else it takes the zone's default, known
    /// only when the whole file is read.
    explicit_ttl: bool,
}

/// Where the records of each name were written, for findings about the
/// zone as a whole (validation sees names, not the file).
#[derive(Default)]
pub(super) struct Located {
    written: HashMap<LowerName, Vec<(RecordType, Option<Position>)>>,
}

impl Located {
    /// The first record of `name` of type `rtype` (any type when `None`, or
    /// when it has none of that type) as written in the file.
    pub fn first(&self, name: &Name, rtype: Option<RecordType>) -> Option<Position> {
        let list = self.written.get(&LowerName::new(name))?;
        list.iter()
            .find(|(t, _)| rtype.is_none_or(|r| r == *t))
            .or(list.first())
            .and_then(|(_, p)| *p)
    }
}

/// Collects the records and services of one zone, then builds it.
pub(super) struct ZoneBuilder {
    origin: Name,
    owners: Vec<Name>,
    entries: HashMap<Name, Vec<Entry>>,
    services: Vec<Arc<Service>>,
    service_names: HashMap<Name, (usize, Option<Position>)>,
}

impl ZoneBuilder {
    pub fn new(origin: Name) -> Self {
        ZoneBuilder {
            origin,
            owners: Vec::new(),
            entries: HashMap::new(),
            services: Vec::new(),
            service_names: HashMap::new(),
        }
    }

    /// Adds a record of `owner` (`ttl` is `None` for the zone's default),
    /// its value written at `position` in the record at `item`.
    pub fn add_record(
        &mut self,
        owner: &Name,
        ttl: Option<u32>,
        data: RData,
        position: Position,
        item: Position,
    ) {
        let record = Record::from_rdata(owner.clone(), ttl.unwrap_or(0), data);
        let list = self.entries.entry(owner.clone()).or_default();
        if list.is_empty() {
            self.owners.push(owner.clone());
        }
        list.push(Entry {
            position: Some(position),
            item,
            record,
            explicit_ttl: ttl.is_some(),
        });
    }

    /// Adds a steered name, as the next of [`Zone::services`]; the same name
    /// twice (written once relative and once absolute) is an error, and the
    /// second is not added (false).
    pub fn add_service(
        &mut self,
        diagnostics: &mut Diagnostics,
        service: Service,
        position: Option<Position>,
    ) -> bool {
        if let Some((_, first)) = self.service_names.get(&service.name) {
            diagnostics.error(
                position,
                format!(
                    "service {} is defined twice{}",
                    service.name,
                    defined_at(*first, " (first at ", ")")
                ),
            );
            return false;
        }
        self.service_names
            .insert(service.name.clone(), (self.services.len(), position));
        self.services.push(Arc::new(service));
        true
    }

    /// Builds the zone with `soa` at its apex; errors between records go to
    /// `diagnostics` (the zone is built anyway, so that the zone-level checks
    /// still run and report everything at once).
    pub fn finish(
        mut self,
        diagnostics: &mut Diagnostics,
        soa: Record,
        default_ttl: u32,
    ) -> (Zone, Located) {
        let origin = self.origin.clone();
        let mut nodes: HashMap<LowerName, Node> = HashMap::new();
        let mut located = Located::default();
        for owner in &self.owners {
            let mut entries = self.entries.remove(owner).unwrap_or_default();
            for e in &mut entries {
                if !e.explicit_ttl {
                    e.record.ttl = default_ttl;
                }
            }
            located.written.insert(
                LowerName::new(owner),
                entries
                    .iter()
                    .map(|e| (e.record.record_type(), Some(e.item)))
                    .collect(),
            );
            let service = self.service_names.get(owner).map(|(_, p)| *p);
            let node = build_node(diagnostics, owner, &origin, entries, service);
            insert_with_ancestors(&mut nodes, owner, &origin, node);
        }
        for (name, (index, _)) in &self.service_names {
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
        let apex = nodes.entry(LowerName::new(&origin)).or_default();
        apex.rrsets.push(RRset {
            record_type: RecordType::SOA,
            records: vec![soa.clone()],
        });
        let has_delegations = nodes.values().any(|n| n.delegation);
        let has_wildcards = nodes.keys().any(|n| n.is_wildcard());
        let minimum = match &soa.data {
            RData::SOA(s) => s.minimum,
            _ => default_ttl,
        };
        let mut negative_soa = soa.clone();
        negative_soa.ttl = soa.ttl.min(minimum);
        let zone = Zone {
            origin,
            file: diagnostics.file.clone(),
            soa,
            negative_soa,
            default_ttl,
            nodes,
            has_delegations,
            has_wildcards,
            services: self.services,
        };
        (zone, located)
    }
}

/// " (defined at line 8)" style references to another place in the file.
pub(super) fn defined_at(position: Option<Position>, before: &str, after: &str) -> String {
    match position {
        Some(p) => format!("{before}line {}{after}", p.line),
        None => String::new(),
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
    diagnostics: &mut Diagnostics,
    owner: &Name,
    origin: &Name,
    entries: Vec<Entry>,
    service: Option<Option<Position>>,
) -> Node {
    let is_apex = owner == origin;
    let cnames = entries
        .iter()
        .filter(|e| e.record.record_type() == RecordType::CNAME)
        .count();
    if cnames > 0 {
        for e in &entries {
            let rtype = e.record.record_type();
            if is_apex && rtype == RecordType::CNAME {
                diagnostics.error(
                    e.position,
                    format!("CNAME at the zone apex {owner} (the apex has SOA and NS)"),
                );
            } else if rtype != RecordType::CNAME {
                diagnostics.error(e.position, format!("CNAME beside other data at {owner}: a CNAME must be the only record at its name ({rtype} found)"));
            }
        }
        if cnames > 1 {
            let position = entries.first().and_then(|e| e.position);
            diagnostics.error(position, format!("more than one CNAME at {owner}"));
        }
    }
    if let Some(service_position) = service {
        for e in &entries {
            let rtype = e.record.record_type();
            if matches!(rtype, RecordType::A | RecordType::AAAA | RecordType::CNAME) {
                diagnostics.error(
                    e.position,
                    format!(
                        "{rtype} record at {owner} clashes with the service of the same name{}",
                        defined_at(service_position, " (defined at ", ")")
                    ),
                );
            }
        }
    }
    let mut rrsets: Vec<RRset> = Vec::new();
    let mut first_seen: HashMap<RecordType, (Option<Position>, u32)> = HashMap::new();
    for entry in entries {
        let rtype = entry.record.record_type();
        let (first_position, ttl) = *first_seen
            .entry(rtype)
            .or_insert((entry.position, entry.record.ttl));
        if ttl != entry.record.ttl {
            diagnostics.error(
                entry.position,
                format!(
                    "TTL {} differs from {ttl} of the other {rtype} records at {owner}{}; an RRset has one TTL",
                    entry.record.ttl,
                    defined_at(first_position, " (defined at ", ")")
                ),
            );
        }
        match rrsets.iter_mut().find(|r| r.record_type == rtype) {
            Some(set) if set.records.iter().any(|r| r.data == entry.record.data) => {
                diagnostics.error(
                    entry.position,
                    format!("duplicate {rtype} record at {owner}"),
                );
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
