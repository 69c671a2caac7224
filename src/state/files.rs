//! The two state files and their framing: a snapshot (the whole learned
//! table at one journal sequence number) and a journal of measurement
//! batches applied since. Both start with a magic and a format version;
//! every payload carries its length and a CRC-32, so damage is detected,
//! never applied.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::steering::{Accepted, Image, Seconds, SeenBlock};

pub const SNAPSHOT_MAGIC: &[u8; 8] = b"MDNSSNAP";
pub const JOURNAL_MAGIC: &[u8; 8] = b"MDNSJRNL";
/// Bumped whenever the encoding changes; an unknown version is set aside.
/// Journals are still version 1: the stream event was added as a new
/// variant at the end, which version 1 records never contain.
pub const JOURNAL_VERSION: u32 = 1;
/// Version 2 added the stream position; version 1 snapshots are still read.
pub const SNAPSHOT_VERSION: u32 = 2;
const HEADER_LEN: usize = 12;
/// A journal record larger than this is damage, not data (a batch is at
/// most 1 MiB of JSON, far less once encoded).
const MAX_RECORD: usize = 64 << 20;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last journal record the snapshot includes.
    pub seq: u64,
    /// The last shared-stream message it includes (0: none; see `crate::nats`).
    pub stream_seq: u64,
    pub image: Image,
}

/// A snapshot written before instances shared a stream.
#[derive(Deserialize)]
struct SnapshotV1 {
    seq: u64,
    image: Image,
}

/// One acknowledged change, applied as of `now`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub now: Seconds,
    pub event: Event,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    Measurements(Vec<Accepted>),
    Drain {
        mirror: String,
        drained: bool,
    },
    /// Measurements consumed from the shared stream, with the stream
    /// sequence of their message: journaled together, so the table and the
    /// stream position never disagree after a crash.
    StreamMeasurements {
        stream_seq: u64,
        items: Vec<Accepted>,
    },
    /// Sub-blocks that queries brought (appended last: older journals
    /// read as before).
    Seen(Vec<SeenBlock>),
}

fn header(magic: &[u8; 8], version: u32) -> Vec<u8> {
    let mut h = magic.to_vec();
    h.extend_from_slice(&version.to_le_bytes());
    h
}

/// The file's format version, if it is one of `readable`.
fn check_header(bytes: &[u8], magic: &[u8; 8], readable: &[u32]) -> Result<u32, String> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != magic {
        return Err("not a mirrordns state file (bad magic)".to_string());
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if !readable.contains(&version) {
        return Err(format!(
            "format version {version}, this mirrordns reads {readable:?}"
        ));
    }
    Ok(version)
}

/// `len` (u32), CRC-32 (u32), payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of the frame at the start of `bytes` and the frame's length;
/// `None` when the frame is short, longer than `max_len`, or its checksum
/// does not match.
fn unframe(bytes: &[u8], max_len: usize) -> Option<(&[u8], usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    if len > max_len {
        return None;
    }
    let payload = bytes.get(8..8 + len)?;
    (crc32fast::hash(payload) == crc).then_some((payload, 8 + len))
}

pub fn encode_snapshot(snapshot: &Snapshot) -> io::Result<Vec<u8>> {
    let payload = postcard::to_stdvec(snapshot).map_err(io::Error::other)?;
    if u32::try_from(payload.len()).is_err() {
        return Err(io::Error::other(
            "snapshot over 4 GiB: the frame length cannot hold it",
        ));
    }
    let mut out = header(SNAPSHOT_MAGIC, SNAPSHOT_VERSION);
    out.extend(frame(&payload));
    Ok(out)
}

pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, String> {
    let version = check_header(bytes, SNAPSHOT_MAGIC, &[1, SNAPSHOT_VERSION])?;
    // A snapshot is one frame as large as the table (tens of MiB for a
    // million sub-blocks): only the file's own length bounds it.
    let (payload, used) =
        unframe(&bytes[HEADER_LEN..], usize::MAX).ok_or("truncated, or checksum mismatch")?;
    if HEADER_LEN + used != bytes.len() {
        return Err(format!(
            "{} unexpected bytes after the snapshot",
            bytes.len() - HEADER_LEN - used
        ));
    }
    let undecodable = |e: postcard::Error| format!("undecodable: {e}");
    if version == 1 {
        let old: SnapshotV1 = postcard::from_bytes(payload).map_err(undecodable)?;
        return Ok(Snapshot {
            seq: old.seq,
            stream_seq: 0,
            image: old.image,
        });
    }
    postcard::from_bytes(payload).map_err(undecodable)
}

/// Writes `bytes` to `path` so that after a crash either the old file or the
/// whole new one is there: a temporary file, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_dir(path)
}

pub fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// What reading a journal found.
pub struct JournalRead {
    pub records: Vec<Record>,
    /// Where the last good record ends; the journal continues from here.
    pub good_len: u64,
    /// Why reading stopped before the end of the file, if it did.
    pub damage: Option<String>,
}

pub fn read_journal(bytes: &[u8]) -> JournalRead {
    if bytes.is_empty() {
        return JournalRead {
            records: Vec::new(),
            good_len: 0,
            damage: None,
        };
    }
    if let Err(e) = check_header(bytes, JOURNAL_MAGIC, &[JOURNAL_VERSION]) {
        return JournalRead {
            records: Vec::new(),
            good_len: 0,
            damage: Some(e),
        };
    }
    let mut records = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        let Some((payload, used)) = unframe(&bytes[at..], MAX_RECORD) else {
            return JournalRead {
                records,
                good_len: at as u64,
                damage: Some(format!(
                    "record at byte {at} is torn or damaged; {} bytes dropped",
                    bytes.len() - at
                )),
            };
        };
        match postcard::from_bytes::<Record>(payload) {
            Ok(r) => records.push(r),
            Err(e) => {
                return JournalRead {
                    records,
                    good_len: at as u64,
                    damage: Some(format!(
                        "record at byte {at} does not decode ({e}); {} bytes dropped",
                        bytes.len() - at
                    )),
                };
            }
        }
        at += used;
    }
    JournalRead {
        records,
        good_len: at as u64,
        damage: None,
    }
}

/// The journal being appended to.
pub struct JournalFile {
    file: File,
    pub len: u64,
}

impl JournalFile {
    /// Opens the journal at `path`, keeping its first `good_len` bytes (all of
    /// it, or up to the last good record), or starts a new one.
    pub fn open(path: &Path, good_len: u64) -> io::Result<JournalFile> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if good_len < HEADER_LEN as u64 {
            file.set_len(0)?;
            file.write_all(&header(JOURNAL_MAGIC, JOURNAL_VERSION))?;
            file.sync_all()?;
            sync_dir(path)?;
            return Ok(JournalFile {
                file,
                len: HEADER_LEN as u64,
            });
        }
        file.set_len(good_len)?;
        file.sync_all()?;
        let mut end = file;
        io::Seek::seek(&mut end, io::SeekFrom::End(0))?;
        Ok(JournalFile {
            file: end,
            len: good_len,
        })
    }

    /// Appends records and makes them durable with one fsync.
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let mut bytes = Vec::new();
        for r in records {
            let payload = postcard::to_stdvec(r).map_err(io::Error::other)?;
            bytes.extend(frame(&payload));
        }
        self.file.write_all(&bytes)?;
        self.file.sync_data()?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Empties the journal once a snapshot holds everything in it.
    pub fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(HEADER_LEN as u64)?;
        io::Seek::seek(&mut self.file, io::SeekFrom::End(0))?;
        self.file.sync_all()?;
        self.len = HEADER_LEN as u64;
        Ok(())
    }
}

pub fn read_all(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match File::open(path) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Keeps a damaged file for inspection beside the live one, as
/// `NAME.corrupt-<unix time>`, and says so in the log.
pub fn set_aside(path: &Path, reason: &str, copy: bool) -> PathBuf {
    let aside = PathBuf::from(format!(
        "{}.corrupt-{}",
        path.display(),
        crate::steering::now()
    ));
    let result = if copy {
        fs::copy(path, &aside).map(|_| ())
    } else {
        fs::rename(path, &aside)
    };
    match result {
        Ok(()) => {
            warn!(file = %path.display(), aside = %aside.display(), "damaged state file set aside: {reason}")
        }
        Err(e) => {
            warn!(file = %path.display(), error = %e, "damaged state file could not be set aside: {reason}")
        }
    }
    aside
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steering::{Measurement, Method, Rtt};

    fn record(seq: u64) -> Record {
        Record {
            seq,
            now: 1_800_000_000,
            event: Event::Measurements(vec![Accepted {
                mirror: "fra".to_string(),
                client: "198.51.100.0/24".parse().unwrap(),
                measurement: Measurement {
                    rtt: Rtt::Ms(12.5),
                    time: 1_800_000_000,
                    method: Method::Tcp,
                },
            }]),
        }
    }

    fn journal_bytes(records: &[Record]) -> Vec<u8> {
        let mut bytes = header(JOURNAL_MAGIC, JOURNAL_VERSION);
        for r in records {
            bytes.extend(frame(&postcard::to_stdvec(r).unwrap()));
        }
        bytes
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_good_record() {
        let bytes = journal_bytes(&[record(1), record(2), record(3)]);
        let whole = read_journal(&bytes);
        assert_eq!(whole.records.len(), 3);
        assert!(whole.damage.is_none());
        let torn = read_journal(&bytes[..bytes.len() - 5]);
        assert_eq!(torn.records, vec![record(1), record(2)]);
        assert!(torn.damage.is_some());
        assert_eq!(
            read_journal(&bytes[..torn.good_len as usize]).records.len(),
            2
        );
    }

    #[test]
    fn a_flipped_bit_is_caught_by_the_checksum() {
        let mut bytes = journal_bytes(&[record(1), record(2)]);
        let last = bytes.len() - 3;
        bytes[last] ^= 0x10;
        let read = read_journal(&bytes);
        assert_eq!(read.records, vec![record(1)]);
        assert!(read.damage.unwrap().contains("torn or damaged"));
    }

    #[test]
    fn a_snapshot_larger_than_any_journal_record_is_read_back() {
        let big = "m".repeat(1 << 20);
        let image = Image {
            mirrors: vec![big; MAX_RECORD / (1 << 20) + 2],
            ..Image::default()
        };
        let snapshot = Snapshot {
            seq: 1,
            stream_seq: 0,
            image,
        };
        let bytes = encode_snapshot(&snapshot).unwrap();
        assert!(bytes.len() > MAX_RECORD);
        assert_eq!(decode_snapshot(&bytes).unwrap(), snapshot);
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        let snapshot = Snapshot {
            seq: 7,
            stream_seq: 41,
            image: Image::default(),
        };
        let bytes = encode_snapshot(&snapshot).unwrap();
        assert_eq!(decode_snapshot(&bytes).unwrap(), snapshot);
        assert!(decode_snapshot(&bytes[..bytes.len() - 1]).is_err());
        assert!(
            decode_snapshot(&vec![0; bytes.len()])
                .unwrap_err()
                .contains("bad magic")
        );
    }

    #[test]
    fn a_version_1_snapshot_is_read_with_no_stream_position() {
        #[derive(Serialize)]
        struct V1 {
            seq: u64,
            image: Image,
        }
        let image = || Image {
            mirrors: vec!["fra".to_string()],
            ..Image::default()
        };
        let payload = postcard::to_stdvec(&V1 {
            seq: 9,
            image: image(),
        })
        .unwrap();
        let mut bytes = header(SNAPSHOT_MAGIC, 1);
        bytes.extend(frame(&payload));
        let read = decode_snapshot(&bytes).unwrap();
        assert_eq!((read.seq, read.stream_seq, read.image), (9, 0, image()));
    }
}
