//! Passive measurements from a web server's access log: each line names a
//! client and the TCP RTT the kernel measured for its connection (nginx
//! `$remote_addr` first, `$tcpinfo_rtt` in microseconds last, e.g.
//! `log_format mirrordns '$remote_addr $time_iso8601 "$request" $status $tcpinfo_rtt';`).
//! Lines are aggregated per sub-block over a window and the median is posted.
//! The file is followed across rotation (a new inode) and truncation.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::memory::sub_block;

/// Client address and RTT in ms from one log line; `None` for lines that do
/// not have both (a request without a TCP RTT, a header, garbage).
pub fn parse_line(line: &str) -> Option<(IpAddr, f64)> {
    let mut fields = line.split_whitespace();
    let client: IpAddr = fields.next()?.parse().ok()?;
    let micros: f64 = fields.last()?.parse().ok()?;
    (micros.is_finite() && micros > 0.0).then_some((client, micros / 1000.0))
}

/// The client address a log line starts with, whether or not it has an RTT.
pub fn parse_client(line: &str) -> Option<IpAddr> {
    line.split_whitespace().next()?.parse().ok()
}

/// RTTs per sub-block within one window.
pub struct Aggregator {
    block_v4: u8,
    block_v6: u8,
    samples: HashMap<IpNet, Vec<f64>>,
}

impl Aggregator {
    pub fn new(block_v4: u8, block_v6: u8) -> Aggregator {
        Aggregator {
            block_v4,
            block_v6,
            samples: HashMap::new(),
        }
    }

    pub fn add(&mut self, client: IpAddr, rtt_ms: f64) {
        if let Some(block) = sub_block(client, self.block_v4, self.block_v6) {
            self.samples.entry(block).or_default().push(rtt_ms);
        }
    }

    /// The median RTT of every sub-block seen since the last call.
    pub fn drain_medians(&mut self) -> Vec<(IpNet, f64)> {
        let mut out: Vec<(IpNet, f64)> = self
            .samples
            .drain()
            .map(|(block, mut rtts)| {
                rtts.sort_by(f64::total_cmp);
                let mid = rtts.len() / 2;
                let median = if rtts.len().is_multiple_of(2) {
                    (rtts[mid - 1] + rtts[mid]) / 2.0
                } else {
                    rtts[mid]
                };
                (block, median)
            })
            .collect();
        out.sort_by_key(|(b, _)| *b);
        out
    }
}

/// Reads what was appended to a log since the last call.
pub struct Follower {
    path: PathBuf,
    file: Option<std::fs::File>,
    inode: u64,
    offset: u64,
    partial: String,
}

impl Follower {
    /// Starts at the end of the file: history is not replayed.
    pub fn new(path: &Path) -> Follower {
        let mut follower = Follower {
            path: path.to_path_buf(),
            file: None,
            inode: 0,
            offset: 0,
            partial: String::new(),
        };
        if let Ok(meta) = std::fs::metadata(path) {
            follower.inode = meta.ino();
            follower.offset = meta.len();
            follower.file = std::fs::File::open(path).ok();
        }
        follower
    }

    /// Complete new lines. After rotation (another inode at the path) or
    /// truncation, reading starts over at the beginning of the new file.
    pub fn read_lines(&mut self) -> io::Result<Vec<String>> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if self.file.is_none() || meta.ino() != self.inode || meta.len() < self.offset {
            self.file = Some(std::fs::File::open(&self.path)?);
            self.inode = meta.ino();
            self.offset = 0;
            self.partial.clear();
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let Some(end) = self.partial.rfind('\n') else {
            return Ok(Vec::new());
        };
        let complete: String = self.partial.drain(..=end).collect();
        Ok(complete.lines().map(str::to_string).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_address_first_and_rtt_microseconds_last() {
        assert_eq!(
            parse_line(r#"198.51.100.7 2026-11-28T01:00:00+00:00 "GET / HTTP/1.1" 200 12500"#),
            Some(("198.51.100.7".parse().unwrap(), 12.5))
        );
        assert_eq!(
            parse_line("2001:db8::7 - 900"),
            Some(("2001:db8::7".parse().unwrap(), 0.9))
        );
        assert_eq!(parse_line("not-an-address 1000"), None);
        assert_eq!(parse_line("198.51.100.7 -"), None);
        assert_eq!(parse_line(""), None);
        assert_eq!(
            parse_client("198.51.100.7 -"),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(parse_client("- 198.51.100.7"), None);
    }

    #[test]
    fn aggregates_the_median_per_sub_block() {
        let mut a = Aggregator::new(24, 48);
        for (client, rtt) in [
            ("198.51.100.7", 10.0),
            ("198.51.100.9", 30.0),
            ("198.51.100.200", 20.0),
            ("203.0.113.1", 5.0),
        ] {
            a.add(client.parse().unwrap(), rtt);
        }
        assert_eq!(
            a.drain_medians(),
            vec![
                ("198.51.100.0/24".parse().unwrap(), 20.0),
                ("203.0.113.0/24".parse().unwrap(), 5.0)
            ]
        );
        assert!(a.drain_medians().is_empty(), "a new window starts empty");
    }

    #[test]
    fn follows_appends_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        std::fs::write(&log, "old line 1\n").unwrap();
        let mut f = Follower::new(&log);
        assert!(
            f.read_lines().unwrap().is_empty(),
            "history is not replayed"
        );
        std::fs::write(&log, "old line 1\nnew 1\nhalf").unwrap();
        assert_eq!(f.read_lines().unwrap(), vec!["new 1"]);
        std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
        std::fs::write(&log, "rotated 1\n").unwrap();
        assert_eq!(f.read_lines().unwrap(), vec!["rotated 1"]);
        std::fs::write(&log, "t\n").unwrap();
        assert_eq!(
            f.read_lines().unwrap(),
            vec!["t"],
            "truncated and rewritten"
        );
    }
}
