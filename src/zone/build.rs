//! Records and services as read, each with where it was written → a [`Zone`]:
//! RRsets, empty non-terminals, zone cuts, and the rules between records of
//! one name (a CNAME alone, one TTL per RRset, no duplicate record, no address
//! records beside a service). Nothing here knows the file format: any reader
//! that gives names, records and positions builds a zone with it.
//!
//! Each record is encoded to wire form as it is added, so building holds
//! the zone's bytes and a few words per record, never general record
//! structures; [`ZoneBuilder::finish`] lays them out in the compact store.

/// foldhash, not SipHash: the keys are the zone's own names, and a load
/// hashes each several times.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::compact::{self, NodeData, RRsetData, Store};
use super::error::{Diagnostics, Position};
use super::{Service, Zone};

/// A record as added: its owner, type, TTL (`None`: the zone's default,
/// known only when the whole file is read), RDATA in `rdata`, and where it
/// was written.
struct Entry {
    owner: u32,
    rtype: RecordType,
    ttl: Option<u32>,
    data: u32,
    len: u16,
    position: Position,
    /// Where the record's mapping starts (`{type: ..., value: ...}`).
    item: Position,
}

/// Where the records of each name were written, for findings about the
/// zone as a whole (validation sees names, not the file).
#[derive(Default)]
pub(super) struct Located {
    owners: HashMap<Vec<u8>, u32>,
    /// Every record's type and position, owner by owner, in file order.
    written: Vec<(RecordType, Position)>,
    /// Owner `o`'s records are `written[starts[o]..starts[o + 1]]`.
    starts: Vec<u32>,
}

impl Located {
    /// The first record of `name` of type `rtype` (any type when `None`, or
    /// when it has none of that type) as written in the file.
    pub fn first(&self, name: &Name, rtype: Option<RecordType>) -> Option<Position> {
        let owner = *self.owners.get(&compact::key(&LowerName::new(name)))?;
        let start = *self.starts.get(owner as usize)? as usize;
        let end = *self.starts.get(owner as usize + 1)? as usize;
        let list = self.written.get(start..end)?;
        list.iter()
            .find(|(t, _)| rtype.is_none_or(|r| r == *t))
            .or(list.first())
            .map(|(_, p)| *p)
    }
}

/// Collects the records and services of one zone, then builds it.
pub(super) struct ZoneBuilder {
    origin: Name,
    /// Owner names in wire form, as written, one after the other.
    names: Vec<u8>,
    /// Each owner's name in `names`, in the order first seen.
    owners: Vec<(u32, u8)>,
    /// Lowercase wire name -> owner number.
    index: HashMap<Vec<u8>, u32>,
    entries: Vec<Entry>,
    rdata: Vec<u8>,
    services: Vec<Arc<Service>>,
    service_names: HashMap<Vec<u8>, (usize, Option<Position>)>,
}

impl ZoneBuilder {
    pub fn new(origin: Name) -> Self {
        ZoneBuilder {
            origin,
            names: Vec::new(),
            owners: Vec::new(),
            index: HashMap::default(),
            entries: Vec::new(),
            rdata: Vec::new(),
            services: Vec::new(),
            service_names: HashMap::default(),
        }
    }

    /// The owner number of `name`, added when new.
    fn owner(&mut self, name: &Name) -> u32 {
        let mut buf = [0u8; compact::MAX_NAME];
        let len = compact::lower_wire(name, &mut buf).unwrap_or(0);
        if let Some(&i) = self.index.get(&buf[..len]) {
            return i;
        }
        let key = buf[..len].to_vec();
        let i = self.owners.len() as u32;
        let wire = compact::wire(name);
        self.owners
            .push((self.names.len() as u32, wire.len().min(255) as u8));
        self.names.extend_from_slice(&wire);
        self.index.insert(key, i);
        i
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
        let owner = self.owner(owner);
        let start = self.rdata.len();
        if !compact::encode_rdata(&data, &mut self.rdata) || self.rdata.len() - start > 65535 {
            self.rdata.truncate(start);
            return;
        }
        self.entries.push(Entry {
            owner,
            rtype: data.record_type(),
            ttl,
            data: start as u32,
            len: (self.rdata.len() - start) as u16,
            position,
            item,
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
        let key = compact::key(&LowerName::new(&service.name));
        if let Some((_, first)) = self.service_names.get(&key) {
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
            .insert(key, (self.services.len(), position));
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
        let apex = self.owner(&origin);
        let origin_wire = compact::wire(&origin).len();
        // Every owner's entries, in file order.
        // The entries owner by owner, in file order (a counting sort).
        let mut starts = vec![0u32; self.owners.len() + 1];
        for e in &self.entries {
            starts[e.owner as usize + 1] += 1;
        }
        for o in 0..self.owners.len() {
            starts[o + 1] += starts[o];
        }
        let mut order = vec![0u32; self.entries.len()];
        let mut next = starts.clone();
        for (i, e) in self.entries.iter().enumerate() {
            order[next[e.owner as usize] as usize] = i as u32;
            next[e.owner as usize] += 1;
        }
        drop(next);
        let mut store = Store::default();
        let mut located = Located {
            owners: HashMap::default(),
            written: order
                .iter()
                .map(|&i| {
                    (
                        self.entries[i as usize].rtype,
                        self.entries[i as usize].item,
                    )
                })
                .collect(),
            starts: Vec::new(),
        };
        let mut entries: Vec<&Entry> = Vec::new();
        let mut types: Vec<(RecordType, u32, Position)> = Vec::new();
        let mut seen: Vec<&[u8]> = Vec::new();
        let services: HashMap<u32, (usize, Option<Position>)> = self
            .service_names
            .iter()
            .map(|(key, value)| (key, *value))
            .filter_map(|(key, value)| self.index.get(key).map(|i| (*i, value)))
            .collect();
        for owner in 0..self.owners.len() as u32 {
            let (name_at, name_len) = self.owners[owner as usize];
            let wire = &self.names[name_at as usize..name_at as usize + usize::from(name_len)];
            // For messages only: most owners never need their name as text.
            let owner_name = || Name::read(&mut BinDecoder::new(wire)).unwrap_or_default();
            let list = &order[starts[owner as usize] as usize..starts[owner as usize + 1] as usize];
            entries.clear();
            entries.extend(list.iter().map(|&i| &self.entries[i as usize]));
            let service = services.get(&owner).map(|(_, p)| *p);
            check_node(diagnostics, &owner_name, owner == apex, &entries, service);
            let mut node = NodeData::new(name_at, name_len);
            node.first = store.rrsets.len() as u32;
            // RRsets in the order their types are first written.
            types.clear();
            for e in &entries {
                let ttl = e.ttl.unwrap_or(default_ttl);
                match types.iter().find(|(t, _, _)| *t == e.rtype) {
                    Some((_, first_ttl, first_at)) if *first_ttl != ttl => diagnostics.error(
                        Some(e.position),
                        format!(
                            "TTL {ttl} differs from {first_ttl} of the other {} records at {}{}; an RRset has one TTL",
                            e.rtype,
                            owner_name(),
                            defined_at(Some(*first_at), " (defined at ", ")")
                        ),
                    ),
                    Some(_) => {}
                    None => types.push((e.rtype, ttl, e.position)),
                }
            }
            for (rtype, ttl, _) in &types {
                let data = store.rdata.len() as u32;
                seen.clear();
                for e in entries.iter().filter(|e| e.rtype == *rtype) {
                    let bytes = &self.rdata[e.data as usize..e.data as usize + usize::from(e.len)];
                    if seen.contains(&bytes) {
                        diagnostics.error(
                            Some(e.position),
                            format!("duplicate {rtype} record at {}", owner_name()),
                        );
                        continue;
                    }
                    seen.push(bytes);
                    store.rdata.extend_from_slice(&e.len.to_be_bytes());
                    store.rdata.extend_from_slice(bytes);
                }
                store.rrsets.push(RRsetData {
                    rtype: u16::from(*rtype),
                    records: seen.len().min(usize::from(u16::MAX)) as u16,
                    ttl: *ttl,
                    data,
                });
            }
            if owner == apex {
                let data = store.rdata.len() as u32;
                let mut bytes = Vec::new();
                if compact::encode_rdata(&soa.data, &mut bytes) {
                    store
                        .rdata
                        .extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                    store.rdata.extend_from_slice(&bytes);
                    store.rrsets.push(RRsetData {
                        rtype: u16::from(RecordType::SOA),
                        records: 1,
                        ttl: soa.ttl,
                        data,
                    });
                }
            }
            node.count = (store.rrsets.len() as u32 - node.first) as u16;
            node.delegation = owner != apex && types.iter().any(|(t, _, _)| *t == RecordType::NS);
            if let Some((index, _)) = services.get(&owner) {
                node.set_service(*index);
            }
            store.nodes.push(node);
        }
        located.starts = starts;
        drop((order, entries, seen));
        self.entries = Vec::new();
        self.rdata = Vec::new();
        // Services at names with no records are nodes of their own.
        let mut names = std::mem::take(&mut self.names);
        let mut index = std::mem::take(&mut self.index);
        for (key, (service, _)) in &self.service_names {
            let i = match index.get(key) {
                Some(&i) => i,
                None => {
                    let i = store.nodes.len() as u32;
                    store
                        .nodes
                        .push(NodeData::new(names.len() as u32, key.len() as u8));
                    names.extend_from_slice(key);
                    index.insert(key.clone(), i);
                    i
                }
            };
            store.nodes[i as usize].set_service(*service);
        }
        // Empty non-terminals: every name between an owner and the origin.
        let mut i = 0;
        while i < store.nodes.len() {
            let node = store.nodes[i];
            let wire =
                names[node.name as usize..node.name as usize + usize::from(node.name_len)].to_vec();
            let mut rest = compact::parent(&wire);
            while let Some(ancestor) = rest {
                let at = wire.len() - ancestor.len();
                if ancestor.len() <= origin_wire {
                    break;
                }
                let mut key = ancestor.to_vec();
                key.make_ascii_lowercase();
                if index.contains_key(&key) {
                    break;
                }
                index.insert(key, store.nodes.len() as u32);
                store
                    .nodes
                    .push(NodeData::new(node.name + at as u32, ancestor.len() as u8));
                rest = compact::parent(ancestor);
            }
            i += 1;
        }
        located.owners = index;
        store.names = names;
        store.build_index();
        let has_delegations = store.nodes.iter().any(|n| n.delegation);
        let has_wildcards = store
            .nodes
            .iter()
            .any(|n| store.name_of(n).starts_with(b"\x01*"));
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
            store,
            origin_wire,
            has_delegations,
            has_wildcards,
            services: self.services,
            dnssec: None,
            signer: None,
            _release: compact::ReleaseOnDrop,
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

/// The rules between the records of one name: a CNAME alone (and never at
/// the apex), a DS only at a delegation, no address record or CNAME beside
/// a service.
fn check_node(
    diagnostics: &mut Diagnostics,
    owner: &dyn Fn() -> Name,
    is_apex: bool,
    entries: &[&Entry],
    service: Option<Option<Position>>,
) {
    let cnames = entries
        .iter()
        .filter(|e| e.rtype == RecordType::CNAME)
        .count();
    if cnames > 0 {
        for e in entries {
            if is_apex && e.rtype == RecordType::CNAME {
                diagnostics.error(
                    Some(e.position),
                    format!(
                        "CNAME at the zone apex {} (the apex has SOA and NS)",
                        owner()
                    ),
                );
            } else if e.rtype != RecordType::CNAME {
                diagnostics.error(Some(e.position), format!("CNAME beside other data at {}: a CNAME must be the only record at its name ({} found)", owner(), e.rtype));
            }
        }
        if cnames > 1 {
            let position = entries.first().map(|e| e.position);
            diagnostics.error(position, format!("more than one CNAME at {}", owner()));
        }
    }
    let has_ns = entries.iter().any(|e| e.rtype == RecordType::NS);
    for e in entries.iter().filter(|e| e.rtype == RecordType::DS) {
        if is_apex {
            diagnostics.error(
                Some(e.position),
                format!(
                    "DS at the apex {}: a zone's own DS belongs in its parent zone (`mirrordns dnssec ds` prints it); here DS records go at delegations",
                    owner()
                ),
            );
        } else if !has_ns {
            diagnostics.error(
                Some(e.position),
                format!(
                    "DS at {} without NS: a DS record belongs at a delegation, beside the child zone's NS records",
                    owner()
                ),
            );
        }
    }
    if let Some(service_position) = service {
        for e in entries {
            if matches!(
                e.rtype,
                RecordType::A | RecordType::AAAA | RecordType::CNAME
            ) {
                diagnostics.error(
                    Some(e.position),
                    format!(
                        "{} record at {} clashes with the service of the same name{}",
                        e.rtype,
                        owner(),
                        defined_at(service_position, " (defined at ", ")")
                    ),
                );
            }
        }
    }
}
