//! Durable learned state in `--state-dir` (SPEC section 4).
//!
//! - `files`: the snapshot and journal formats and their framing.
//!
//! Why a journal plus snapshots of our own format rather than an embedded
//! store: the engine already holds the whole table in memory, so the disk
//! only has to make acknowledged batches durable (one sequential append and
//! one fsync per group of batches: the cheapest durable write there is) and
//! restart fast (one sequential read of a snapshot, then the short journal
//! since). An embedded B-tree store would pay random writes per measurement
//! for lookups we never make from disk.
//!
//! One writer thread owns the files. A batch is validated by the caller, then
//! handed to the writer, which appends every batch waiting at that moment,
//! fsyncs once (group commit), applies them to the engine in journal order,
//! and only then lets their callers answer 200. Now and then, and at
//! shutdown, it writes a snapshot (compacting measurements older than
//! `max_age_s` × [`COMPACT_AFTER_MAX_AGES`]) and empties the journal.

mod files;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::steering::{Accepted, Engine, Seconds};
pub use files::set_aside;
use files::{Event, JournalFile, Record, Snapshot};

/// Measurements older than this many `max_age_s` are dropped at snapshots:
/// a cluster keeps answering from stale measurements while they are
/// re-probed, so a few periods are kept, but not forever.
pub const COMPACT_AFTER_MAX_AGES: u64 = 4;
/// A snapshot is written when the journal grows past this...
const SNAPSHOT_AFTER_BYTES: u64 = 64 << 20;
/// ...or this long after the last one, if anything was journaled since.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(600);
/// How often the sub-blocks that queries brought are journaled: what a
/// crash may lose of them (their measurements are journaled before the 200).
const SEEN_EVERY: Duration = Duration::from_secs(1);

const SNAPSHOT: &str = "snapshot";
const JOURNAL: &str = "journal";
const LOCK: &str = "lock";
const INSTANCE_ID: &str = "instance-id";

/// The state directory, locked against a second server for as long as this lives.
pub struct StateDir {
    path: PathBuf,
    _lock: File,
}

/// What recovery found, for the log.
#[derive(Debug, Default)]
pub struct Recovery {
    pub snapshot_seq: Option<u64>,
    pub replayed: usize,
    /// The last shared-stream message the restored table includes (0: none).
    pub stream_seq: u64,
    pub set_aside: Vec<PathBuf>,
}

impl StateDir {
    /// Creates the directory if needed and takes its lock; a second server on
    /// the same directory gets an error naming it.
    pub fn open(path: &Path) -> io::Result<StateDir> {
        fs::create_dir_all(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create state dir {}: {e}", path.display()),
            )
        })?;
        let lock_path = path.join(LOCK);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open {}: {e}", lock_path.display()),
                )
            })?;
        if lock.try_lock().is_err() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "state dir {} is in use by another mirrordns (its lock file is held)",
                    path.display()
                ),
            ));
        }
        Ok(StateDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A name for this instance that lasts as long as its state: made up at
    /// the first start, then read back. It names the instance's consumer of
    /// the shared stream, so a restart finds its own consumer again.
    pub fn instance_id(&self) -> io::Result<String> {
        let path = self.path.join(INSTANCE_ID);
        if let Ok(id) = fs::read_to_string(&path) {
            let id = id.trim();
            if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Ok(id.to_string());
            }
        }
        let id = format!("{:016x}", rand::random::<u64>());
        files::write_atomically(&path, id.as_bytes())?;
        Ok(id)
    }

    /// Loads the snapshot and replays the journal into `engine` (already bound
    /// to the zones), setting aside whatever is damaged; then starts the
    /// writer. Damage never stops the server: it starts with what it can read.
    pub fn recover(self, engine: Arc<Engine>) -> io::Result<(Journal, Recovery)> {
        let mut recovery = Recovery::default();
        let snapshot_path = self.path.join(SNAPSHOT);
        let mut seq = 0;
        match files::read_all(&snapshot_path) {
            Ok(None) => {}
            Ok(Some(bytes)) => match files::decode_snapshot(&bytes) {
                Ok(snapshot) => {
                    seq = snapshot.seq;
                    recovery.stream_seq = snapshot.stream_seq;
                    recovery.snapshot_seq = Some(snapshot.seq);
                    engine.import(snapshot.image);
                }
                Err(reason) => {
                    recovery
                        .set_aside
                        .push(files::set_aside(&snapshot_path, &reason, false))
                }
            },
            Err(e) => {
                recovery
                    .set_aside
                    .push(files::set_aside(&snapshot_path, &e.to_string(), false))
            }
        }
        let journal_path = self.path.join(JOURNAL);
        let bytes = match files::read_all(&journal_path) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => {
                recovery
                    .set_aside
                    .push(files::set_aside(&journal_path, &e.to_string(), false));
                Vec::new()
            }
        };
        let read = files::read_journal(&bytes);
        if let Some(reason) = &read.damage {
            // Keep the damaged journal whole for inspection; continue from
            // its last good record.
            recovery
                .set_aside
                .push(files::set_aside(&journal_path, reason, true));
        }
        let covered = seq;
        for record in read.records.into_iter().filter(|r| r.seq > covered) {
            if let Some(stream_seq) = apply(&engine, &record.event, record.now) {
                recovery.stream_seq = stream_seq;
            }
            seq = record.seq;
            recovery.replayed += 1;
        }
        let journal = JournalFile::open(&journal_path, read.good_len)?;
        let writer = Writer {
            dir: self,
            engine,
            journal,
            seq,
            stream_seq: recovery.stream_seq,
            last_snapshot: Instant::now(),
            dirty: false,
        };
        Ok((Journal::start(writer)?, recovery))
    }
}

/// Applies one journaled change to the engine; returns the shared-stream
/// position it brings the state to, if it came from the stream.
fn apply(engine: &Engine, event: &Event, now: Seconds) -> Option<u64> {
    match event {
        Event::Measurements(items) => engine.apply_accepted(items, now),
        Event::Drain { mirror, drained } => {
            engine.set_drained(mirror, *drained);
        }
        Event::StreamMeasurements { stream_seq, items } => {
            engine.apply_accepted(items, now);
            return Some(*stream_seq);
        }
        Event::Seen(blocks) => engine.restore_seen(blocks),
    }
    None
}

enum Job {
    Change {
        event: Event,
        now: Seconds,
        done: oneshot::Sender<io::Result<()>>,
    },
    Snapshot {
        done: oneshot::Sender<io::Result<()>>,
    },
}

/// The way to the writer thread.
#[derive(Clone)]
pub struct Journal {
    jobs: mpsc::Sender<Job>,
}

impl Journal {
    fn start(mut writer: Writer) -> io::Result<Journal> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("state-writer".to_string())
            .spawn(move || writer.run(queue))?;
        Ok(Journal { jobs })
    }

    /// Journals `items`, makes them durable, applies them; returns once all
    /// three are done.
    pub async fn commit(&self, items: Vec<Accepted>, now: Seconds) -> io::Result<()> {
        self.change(Event::Measurements(items), now).await
    }

    /// [`Journal::commit`] for a batch consumed from the shared stream at
    /// `stream_seq`, which is made durable with it. The batch is handed to
    /// the writer before this returns, so batches are journaled in the order
    /// they were submitted; the receiver says when it is durable and applied.
    /// Submitting several before waiting lets one fsync cover them all.
    pub fn submit_from_stream(
        &self,
        items: Vec<Accepted>,
        now: Seconds,
        stream_seq: u64,
    ) -> io::Result<oneshot::Receiver<io::Result<()>>> {
        let (done, finished) = oneshot::channel();
        let event = Event::StreamMeasurements { stream_seq, items };
        self.send(Job::Change { event, now, done })?;
        Ok(finished)
    }

    /// Journals a drain or undrain, then applies it.
    pub async fn drain(&self, mirror: &str, drained: bool) -> io::Result<()> {
        let event = Event::Drain {
            mirror: mirror.to_string(),
            drained,
        };
        self.change(event, crate::steering::now()).await
    }

    async fn change(&self, event: Event, now: Seconds) -> io::Result<()> {
        let (done, finished) = oneshot::channel();
        self.send(Job::Change { event, now, done })?;
        finished.await.map_err(|_| gone())?
    }

    /// Writes a snapshot now (at shutdown, so the next start reads no journal).
    pub async fn snapshot(&self) -> io::Result<()> {
        let (done, finished) = oneshot::channel();
        self.send(Job::Snapshot { done })?;
        finished.await.map_err(|_| gone())?
    }

    fn send(&self, job: Job) -> io::Result<()> {
        self.jobs.send(job).map_err(|_| gone())
    }
}

fn gone() -> io::Error {
    io::Error::other("the state writer has stopped")
}

struct Writer {
    dir: StateDir,
    engine: Arc<Engine>,
    journal: JournalFile,
    seq: u64,
    stream_seq: u64,
    last_snapshot: Instant,
    dirty: bool,
}

impl Writer {
    fn run(&mut self, queue: mpsc::Receiver<Job>) {
        let mut seen_due = Instant::now() + SEEN_EVERY;
        loop {
            let first = match queue.recv_timeout(seen_due.saturating_duration_since(Instant::now()))
            {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            if Instant::now() >= seen_due {
                self.journal_seen();
                seen_due = Instant::now() + SEEN_EVERY;
            }
            let mut batches = Vec::new();
            let mut snapshots = Vec::new();
            for job in first.into_iter().chain(queue.try_iter()) {
                match job {
                    Job::Change { event, now, done } => batches.push((event, now, done)),
                    Job::Snapshot { done } => snapshots.push(done),
                }
            }
            if !batches.is_empty() {
                self.commit(batches);
            }
            let due = self.dirty
                && (self.journal.len > SNAPSHOT_AFTER_BYTES
                    || self.last_snapshot.elapsed() > SNAPSHOT_EVERY);
            if due || !snapshots.is_empty() {
                let result = self.snapshot();
                if let Err(e) = &result {
                    error!(error = %e, "snapshot failed; the journal keeps everything");
                }
                for done in snapshots {
                    let _ = done.send(
                        result
                            .as_ref()
                            .map(|_| ())
                            .map_err(|e| io::Error::new(e.kind(), e.to_string())),
                    );
                }
            }
        }
    }

    /// Journals the sub-blocks queries brought since the last time; they are
    /// in the engine already.
    fn journal_seen(&mut self) {
        let seen = self.engine.take_seen();
        if seen.is_empty() {
            return;
        }
        let record = Record {
            seq: self.seq + 1,
            now: crate::steering::now(),
            event: Event::Seen(seen),
        };
        match self.journal.append(std::slice::from_ref(&record)) {
            Ok(()) => {
                self.seq += 1;
                self.dirty = true;
            }
            Err(e) => {
                warn!(error = %e, "cannot journal the sub-blocks queries brought; a snapshot keeps them")
            }
        }
    }

    /// Group commit: one append and one fsync for every batch waiting.
    fn commit(&mut self, batches: Vec<(Event, Seconds, oneshot::Sender<io::Result<()>>)>) {
        let first_seq = self.seq + 1;
        let records: Vec<Record> = batches
            .iter()
            .enumerate()
            .map(|(i, (event, now, _))| Record {
                seq: first_seq + i as u64,
                now: *now,
                event: event.clone(),
            })
            .collect();
        if let Err(e) = self.journal.append(&records) {
            error!(error = %e, "journal write failed; batches refused");
            for (_, _, done) in batches {
                let _ = done.send(Err(io::Error::new(
                    e.kind(),
                    format!("journal write failed: {e}"),
                )));
            }
            return;
        }
        self.seq += records.len() as u64;
        self.dirty = true;
        for (event, now, done) in batches {
            if let Some(stream_seq) = apply(&self.engine, &event, now) {
                self.stream_seq = stream_seq;
            }
            let _ = done.send(Ok(()));
        }
    }

    fn snapshot(&mut self) -> io::Result<()> {
        let started = Instant::now();
        let cutoff = crate::steering::now().saturating_sub(
            self.engine
                .longest_max_age()
                .saturating_mul(COMPACT_AFTER_MAX_AGES),
        );
        self.engine.compact(cutoff);
        let snapshot = Snapshot {
            seq: self.seq,
            stream_seq: self.stream_seq,
            image: self.engine.export(cutoff),
        };
        let bytes = files::encode_snapshot(&snapshot)?;
        files::write_atomically(&self.dir.path.join(SNAPSHOT), &bytes)?;
        // The snapshot holds every journaled record now; a crash before this
        // point replays them onto it, skipped by sequence number.
        self.journal.restart()?;
        self.last_snapshot = Instant::now();
        self.dirty = false;
        info!(
            seq = self.seq,
            bytes = bytes.len(),
            millis = started.elapsed().as_millis() as u64,
            "snapshot written"
        );
        Ok(())
    }
}

/// Logs what recovery did.
pub fn log_recovery(dir: &Path, recovery: &Recovery) {
    match recovery.snapshot_seq {
        Some(seq) => {
            info!(dir = %dir.display(), seq, replayed = recovery.replayed, stream_seq = recovery.stream_seq, "learned state restored")
        }
        None if recovery.replayed > 0 => {
            info!(dir = %dir.display(), replayed = recovery.replayed, "learned state restored from the journal")
        }
        None => info!(dir = %dir.display(), "no learned state yet"),
    }
    for path in &recovery.set_aside {
        warn!(file = %path.display(), "a damaged state file was set aside; the server started with what it could read");
    }
}
