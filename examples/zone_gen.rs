//! A large zone of a realistic mix, written twice with the same data: as a
//! mirrordns YAML zone (SPEC section 6) and as an RFC 1035 master file for
//! Knot, NSD or BIND. The seed is fixed, so every run writes the same files.
//!
//! ```sh
//! cargo run --release --example zone_gen -- [RECORDS] [ORIGIN] [DIR] [SEED]
//! # defaults: 200000 big.test. . 1  ->  ./big.test.yaml and ./big.test.zone
//! ```
//!
//! The mix, per record: A (about 40 %, some names with several), AAAA,
//! CNAME (to names that have addresses, never a loop), MX, TXT of one to
//! three strings (some with quotes and backslashes), SRV, CAA, wildcards,
//! and delegations with in-bailiwick glue; owner names of one to four
//! labels. Addresses are from the benchmarking range 198.18.0.0/15 and the
//! documentation prefix 2001:db8::/32: answered, never contacted.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// SplitMix64: small, fixed, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "api", "app", "cdn", "db", "dev", "edge", "mail", "mx", "ns", "ops", "prod", "shop", "stage",
    "static", "vpn", "web", "img", "auth", "git", "wiki", "blog", "eu", "us", "ap", "lb", "k8s",
];

/// One record as both formats write it.
struct Rec {
    owner: String,
    /// The YAML record mapping (without the owner).
    yaml: String,
    /// The master file line (without the owner).
    master: String,
}

struct Gen {
    rng: Rng,
    origin: String,
    records: Vec<Rec>,
    /// Names with address records: CNAME, MX and SRV targets.
    hosts: Vec<String>,
    serial: u64,
}

impl Gen {
    fn push(&mut self, owner: &str, yaml: String, master: String) {
        self.records.push(Rec {
            owner: owner.to_string(),
            yaml,
            master,
        });
    }

    fn label(&mut self, i: usize) -> String {
        let word = WORDS[self.rng.below(WORDS.len() as u64) as usize];
        format!("{word}{i}")
    }

    /// An owner of one to four labels, unique by `i`.
    fn owner(&mut self, i: usize) -> String {
        let depth = match self.rng.below(10) {
            0..=4 => 1,
            5..=7 => 2,
            8 => 3,
            _ => 4,
        };
        let mut name = self.label(i);
        for _ in 1..depth {
            let parent = WORDS[self.rng.below(WORDS.len() as u64) as usize];
            let n = self.rng.below(50);
            name = format!("{name}.{parent}{n}");
        }
        name
    }

    fn v4(&mut self) -> String {
        let n = self.rng.below(1 << 17);
        format!("198.{}.{}.{}", 18 + (n >> 16), (n >> 8) & 0xff, n & 0xff)
    }

    fn v6(&mut self) -> String {
        format!(
            "2001:db8:{:x}:{:x}::{:x}",
            self.rng.below(0x10000),
            self.rng.below(0x10000),
            self.rng.below(0x10000) + 1
        )
    }

    fn host(&mut self) -> String {
        let i = self.rng.below(self.hosts.len() as u64) as usize;
        self.hosts[i].clone()
    }

    fn absolute(&self, relative: &str) -> String {
        format!("{relative}.{}", self.origin)
    }

    fn a(&mut self, owner: &str, count: usize) {
        for _ in 0..count {
            let addr = self.v4();
            self.push(
                owner,
                format!("{{type: A, value: {addr}}}"),
                format!("A {addr}"),
            );
        }
    }

    fn aaaa(&mut self, owner: &str) {
        let addr = self.v6();
        self.push(
            owner,
            format!("{{type: AAAA, value: \"{addr}\"}}"),
            format!("AAAA {addr}"),
        );
    }

    fn txt(&mut self, owner: &str) {
        let count = 1 + self.rng.below(3) as usize;
        let mut yaml = Vec::new();
        let mut master = Vec::new();
        for k in 0..count {
            let token = self.rng.next();
            // Some strings carry a quote or a backslash: both formats escape them.
            let text = match (k, token % 7) {
                (0, 0) => format!("v=spf1 include:_spf{} -all", token % 100),
                (_, 1) => format!("say \"hi\" {}", token % 1000),
                (_, 2) => format!("path C:\\x{}", token % 1000),
                _ => format!("site-verification={token:016x}"),
            };
            // YAML's double-quoted strings and master files escape alike.
            let quoted = format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
            yaml.push(quoted.clone());
            master.push(quoted);
        }
        let value = if count == 1 {
            yaml.remove(0)
        } else {
            format!("[{}]", yaml.join(", "))
        };
        self.push(
            owner,
            format!("{{type: TXT, value: {value}}}"),
            format!("TXT {}", master.join(" ")),
        );
    }

    fn write(&self, dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
        let base = self.origin.trim_end_matches('.');
        let yaml_path = dir.join(format!("{base}.yaml"));
        let zone_path = dir.join(format!("{base}.zone"));
        let o = &self.origin;
        let mut yaml = String::new();
        let _ = writeln!(
            yaml,
            "# Generated by examples/zone_gen.rs: {} records.",
            self.records.len() + 1
        );
        let _ = writeln!(
            yaml,
            "origin: {o}\nttl: 3600\nsoa: {{mname: ns1.{o}, rname: hostmaster.{o}, serial: {}, refresh: 3600, retry: 600, expire: 1209600, minimum: 300}}\nrecords:",
            self.serial
        );
        let mut master = String::new();
        let _ = writeln!(
            master,
            "; Generated by examples/zone_gen.rs: {} records.\n$ORIGIN {o}\n$TTL 3600\n@ IN SOA ns1 hostmaster (\n    {} ; serial\n    3600 600 1209600 300 )",
            self.records.len() + 1,
            self.serial
        );
        // Records of one owner are adjacent: group them, first seen first.
        let mut order: Vec<&str> = Vec::new();
        let mut by_owner: std::collections::HashMap<&str, Vec<&Rec>> = Default::default();
        for r in &self.records {
            let list = by_owner.entry(&r.owner).or_default();
            if list.is_empty() {
                order.push(&r.owner);
            }
            list.push(r);
        }
        for owner in order {
            let list = &by_owner[owner];
            let key = if owner.is_empty() { "''" } else { owner };
            let key = if key.starts_with('*') {
                format!("'{key}'")
            } else {
                key.to_string()
            };
            if list.len() == 1 {
                let _ = writeln!(yaml, "  {key}: {}", list[0].yaml);
            } else {
                let _ = writeln!(yaml, "  {key}:");
                for r in list {
                    let _ = writeln!(yaml, "    - {}", r.yaml);
                }
            }
            let master_owner = if owner.is_empty() { "@" } else { owner };
            for (i, r) in list.iter().enumerate() {
                let shown = if i == 0 { master_owner } else { "" };
                let _ = writeln!(master, "{shown}\t{}", r.master);
            }
        }
        std::fs::File::create(&yaml_path)?.write_all(yaml.as_bytes())?;
        std::fs::File::create(&zone_path)?.write_all(master.as_bytes())?;
        Ok((yaml_path, zone_path))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target: usize = args.first().map_or(Ok(200_000), |a| a.parse())?;
    let origin = args.get(1).cloned().unwrap_or_else(|| "big.test.".into());
    let dir = PathBuf::from(args.get(2).cloned().unwrap_or_else(|| ".".into()));
    let seed: u64 = args.get(3).map_or(Ok(1), |a| a.parse())?;
    if !origin.ends_with('.') {
        return Err("the origin must end with '.'".into());
    }
    let mut g = Gen {
        rng: Rng(seed),
        origin,
        records: Vec::new(),
        hosts: Vec::new(),
        serial: 2026120701,
    };
    // The apex: SOA (written by `write`), NS with glue, MX, TXT, CAA.
    let ns = [g.absolute("ns1"), g.absolute("ns2")];
    for n in &ns {
        g.push("", format!("{{type: NS, value: {n}}}"), format!("NS {n}"));
    }
    g.a("ns1", 1);
    g.aaaa("ns1");
    g.a("ns2", 1);
    g.a("mail", 2);
    g.hosts.extend(["ns1".to_string(), "mail".to_string()]);
    let mail = g.absolute("mail");
    g.push(
        "",
        format!("{{type: MX, value: {{preference: 10, exchange: {mail}}}}}"),
        format!("MX 10 {mail}"),
    );
    g.txt("");
    g.push(
        "",
        "{type: CAA, value: {flags: 0, tag: issue, value: \"letsencrypt.org\"}}".into(),
        "CAA 0 issue \"letsencrypt.org\"".into(),
    );
    let mut i = 0;
    while g.records.len() + 1 < target {
        i += 1;
        let owner = g.owner(i);
        match g.rng.below(100) {
            0..=39 => {
                let count = if g.rng.below(10) == 0 { 3 } else { 1 };
                g.a(&owner, count);
                g.hosts.push(owner);
            }
            40..=51 => {
                g.a(&owner, 1);
                g.aaaa(&owner);
                g.hosts.push(owner);
            }
            52..=61 => {
                let target = g.host();
                let target = g.absolute(&target);
                g.push(
                    &owner,
                    format!("{{type: CNAME, value: {target}}}"),
                    format!("CNAME {target}"),
                );
            }
            62..=67 => {
                let host = g.host();
                let exchange = g.absolute(&host);
                let preference = 10 * (1 + g.rng.below(5));
                g.push(
                    &owner,
                    format!(
                        "{{type: MX, value: {{preference: {preference}, exchange: {exchange}}}}}"
                    ),
                    format!("MX {preference} {exchange}"),
                );
            }
            68..=77 => g.txt(&owner),
            78..=83 => {
                let host = g.host();
                let target = g.absolute(&host);
                let port = 1024 + g.rng.below(60000);
                let owner = format!("_svc{i}._tcp");
                g.push(
                    &owner,
                    format!("{{type: SRV, value: {{priority: 10, weight: 5, port: {port}, target: {target}}}}}"),
                    format!("SRV 10 5 {port} {target}"),
                );
            }
            84..=86 => {
                let ca = ["letsencrypt.org", "pki.goog", "sectigo.com"][g.rng.below(3) as usize];
                g.push(
                    &owner,
                    format!("{{type: CAA, value: {{flags: 0, tag: issue, value: \"{ca}\"}}}}"),
                    format!("CAA 0 issue \"{ca}\""),
                );
                g.a(&owner, 1);
            }
            87..=88 => {
                let owner = format!("*.w{i}");
                g.a(&owner, 1);
            }
            _ => {
                // A delegation with two in-bailiwick name servers and their glue.
                let child = format!("d{i}");
                for n in ["ns1", "ns2"] {
                    let target = g.absolute(&format!("{n}.{child}"));
                    g.push(
                        &child,
                        format!("{{type: NS, value: {target}}}"),
                        format!("NS {target}"),
                    );
                }
                g.a(&format!("ns1.{child}"), 1);
                g.a(&format!("ns2.{child}"), 1);
            }
        }
    }
    let (yaml, zone) = g.write(&dir)?;
    println!(
        "{} records (SOA included) -> {} and {}",
        g.records.len() + 1,
        yaml.display(),
        zone.display()
    );
    Ok(())
}
