//! The zone's names and RRsets in a few flat arrays, read-only once built:
//! a name table (owner names in wire form, one after the other), one small
//! fixed-size entry per node, one per RRset, and every record's RDATA
//! pre-encoded in wire form (names uncompressed) in one byte array. An
//! open-addressing index of node numbers finds a name. A record costs its
//! wire bytes plus a share of its RRset's 12 bytes; a name, its wire bytes
//! plus 16 bytes and 8 of index.
//!
//! Answering decodes the RRset it needs into hickory records; nothing else
//! of the zone is ever turned back into general structures.

use std::hash::BuildHasher;

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict,
};

/// Names longer than this are not names (RFC 1035 section 2.3.4).
pub(super) const MAX_NAME: usize = 255;
const NO_SERVICE: u16 = u16::MAX;

#[derive(Clone, Copy, Debug)]
pub(super) struct NodeData {
    /// Offset of the owner name (wire form, case as written) in `names`.
    pub name: u32,
    pub name_len: u8,
    pub delegation: bool,
    pub service: u16,
    /// The node's RRsets: `rrsets[first..first + count]`.
    pub first: u32,
    pub count: u16,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct RRsetData {
    pub rtype: u16,
    pub records: u16,
    pub ttl: u32,
    /// Offset in `rdata` of the first record: each is a 2-byte length, then
    /// its RDATA.
    pub data: u32,
}

/// The whole store of one zone.
#[derive(Debug, Default)]
pub(super) struct Store {
    pub names: Vec<u8>,
    pub nodes: Vec<NodeData>,
    pub rrsets: Vec<RRsetData>,
    pub rdata: Vec<u8>,
    /// Open addressing with linear probing: node number + 1, 0 for empty.
    index: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

/// `name` in lowercase wire form into `buf`; the length written.
pub(super) fn lower_wire(name: &Name, buf: &mut [u8; MAX_NAME]) -> Option<usize> {
    let mut at = 0;
    for label in name.iter() {
        let end = at + 1 + label.len();
        if end >= MAX_NAME {
            return None;
        }
        buf[at] = label.len() as u8;
        buf[at + 1..end].copy_from_slice(label);
        buf[at + 1..end].make_ascii_lowercase();
        at = end;
    }
    buf[at] = 0;
    Some(at + 1)
}

/// The wire form of `name` as written (uncompressed).
pub(super) fn wire(name: &Name) -> Vec<u8> {
    let mut buf = Vec::with_capacity(name.len() + 2);
    let mut encoder = BinEncoder::new(&mut buf);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    // A name that was parsed always encodes.
    let _ = name.emit(&mut encoder);
    buf
}

/// RDATA in wire form, names uncompressed and as written, appended to `out`.
pub(super) fn encode_rdata(data: &RData, out: &mut Vec<u8>) -> bool {
    // The encoder writes from the start of its buffer: a buffer of its own.
    let mut buf = Vec::with_capacity(64);
    let mut encoder = BinEncoder::new(&mut buf);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    let ok = data.emit(&mut encoder).is_ok();
    out.extend_from_slice(&buf);
    ok
}

/// The parent of a wire name: the name without its first label.
pub(super) fn parent(wire: &[u8]) -> Option<&[u8]> {
    let first = usize::from(*wire.first()?);
    if first == 0 {
        return None;
    }
    wire.get(1 + first..)
}

impl Store {
    fn hash(&self, wire: &[u8]) -> u64 {
        // Length octets are below 64: lowercasing leaves them alone.
        let mut lower = [0u8; MAX_NAME];
        let lower = &mut lower[..wire.len().min(MAX_NAME)];
        lower.copy_from_slice(&wire[..lower.len()]);
        lower.make_ascii_lowercase();
        self.hasher.hash_one(&*lower)
    }

    pub fn name_of(&self, node: &NodeData) -> &[u8] {
        let start = node.name as usize;
        &self.names[start..start + usize::from(node.name_len)]
    }

    /// Builds the index over `nodes` (names must be distinct ignoring case).
    pub fn build_index(&mut self) {
        let size = (self.nodes.len() * 2).next_power_of_two().max(16);
        self.index = vec![0; size];
        let mask = size - 1;
        for i in 0..self.nodes.len() {
            let h = self.hash(self.name_of(&self.nodes[i])) as usize;
            let mut slot = h & mask;
            while self.index[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            self.index[slot] = i as u32 + 1;
        }
        self.names.shrink_to_fit();
        self.nodes.shrink_to_fit();
        self.rrsets.shrink_to_fit();
        self.rdata.shrink_to_fit();
    }

    /// The node of the wire name `wire` (any case).
    pub fn find(&self, wire: &[u8]) -> Option<u32> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut slot = self.hash(wire) as usize & mask;
        loop {
            let entry = self.index[slot];
            if entry == 0 {
                return None;
            }
            let node = &self.nodes[entry as usize - 1];
            if self.name_of(node).eq_ignore_ascii_case(wire) {
                return Some(entry - 1);
            }
            slot = (slot + 1) & mask;
        }
    }

    pub fn node(&self, i: u32) -> &NodeData {
        &self.nodes[i as usize]
    }

    pub fn service(&self, i: u32) -> Option<usize> {
        let s = self.node(i).service;
        (s != NO_SERVICE).then_some(usize::from(s))
    }

    pub fn rrsets_of(&self, i: u32) -> &[RRsetData] {
        let node = self.node(i);
        let first = node.first as usize;
        &self.rrsets[first..first + usize::from(node.count)]
    }

    pub fn owner(&self, i: u32) -> Option<Name> {
        Name::read(&mut BinDecoder::new(self.name_of(self.node(i)))).ok()
    }

    /// The RDATA of each record of `set`, in wire form.
    pub fn rdata_of<'s>(&'s self, set: &RRsetData) -> impl Iterator<Item = &'s [u8]> + 's {
        let mut at = set.data as usize;
        (0..set.records).filter_map(move |_| {
            let len = usize::from(u16::from_be_bytes([
                *self.rdata.get(at)?,
                *self.rdata.get(at + 1)?,
            ]));
            let bytes = self.rdata.get(at + 2..at + 2 + len)?;
            at += 2 + len;
            Some(bytes)
        })
    }

    /// The records of `set`, owned by `owner`.
    pub fn records(&self, owner: &Name, set: &RRsetData) -> Vec<Record> {
        let rtype = RecordType::from(set.rtype);
        self.rdata_of(set)
            .filter_map(|bytes| {
                let mut decoder = BinDecoder::new(bytes);
                let data =
                    RData::read(&mut decoder, rtype, Restrict::new(bytes.len() as u16)).ok()?;
                Some(Record::from_rdata(owner.clone(), set.ttl, data))
            })
            .collect()
    }

    /// Bytes held, for logs and benchmarks.
    pub fn bytes(&self) -> usize {
        self.names.capacity()
            + self.nodes.capacity() * std::mem::size_of::<NodeData>()
            + self.rrsets.capacity() * std::mem::size_of::<RRsetData>()
            + self.rdata.capacity()
            + self.index.capacity() * 4
    }
}

/// Gives the heap memory that is free back to the system. glibc keeps
/// freed memory for the next allocation, so without this a reload (which
/// frees a whole zone and every transient of a parse) would leave the
/// process as large as its peak for good. Called after a load, good or
/// failed, and when a zone is dropped.
pub(super) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer; it only walks glibc's own arenas
    // under their locks, as malloc and free do.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The last field of a [`super::Zone`]: dropped after the zone's store, it
/// gives the store's memory back (see [`release_free_memory`]).
#[derive(Debug, Default)]
pub(super) struct ReleaseOnDrop;

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        release_free_memory();
    }
}

impl NodeData {
    pub fn new(name: u32, name_len: u8) -> Self {
        NodeData {
            name,
            name_len,
            delegation: false,
            service: NO_SERVICE,
            first: 0,
            count: 0,
        }
    }

    pub fn set_service(&mut self, index: usize) {
        self.service = u16::try_from(index).unwrap_or(NO_SERVICE);
    }
}

/// A lowercase key for `name`, for maps while building.
pub(super) fn key(name: &LowerName) -> Vec<u8> {
    let mut buf = [0u8; MAX_NAME];
    match lower_wire(name, &mut buf) {
        Some(len) => buf[..len].to_vec(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_in_any_case_and_walks_parents() {
        let mut store = Store::default();
        for (i, n) in ["a.test.", "WWW.a.test.", "x.y.a.test."].iter().enumerate() {
            let w = wire(&Name::from_ascii(n).unwrap());
            store
                .nodes
                .push(NodeData::new(store.names.len() as u32, w.len() as u8));
            store.names.extend_from_slice(&w);
            assert_eq!(store.nodes.len(), i + 1);
        }
        store.build_index();
        let q = wire(&Name::from_ascii("www.A.test.").unwrap());
        assert_eq!(store.find(&q), Some(1));
        let deep = wire(&Name::from_ascii("x.y.a.test.").unwrap());
        assert_eq!(store.find(&deep), Some(2));
        assert_eq!(store.find(parent(&deep).unwrap()), None);
        assert_eq!(store.find(parent(parent(&deep).unwrap()).unwrap()), Some(0));
        assert_eq!(store.owner(1).unwrap().to_string(), "WWW.a.test.");
    }
}
