//! Latency matrices: the real WonderNetwork city-to-city RTTs, or a
//! synthetic one generated from a seed.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;

use super::SplitMix64;

/// RTTs between named nodes; a pair may be unmeasured.
pub struct LatencyMatrix {
    pub names: Vec<String>,
    /// Latitude and longitude in degrees, where the data set has them.
    pub coordinates: Vec<Option<(f64, f64)>>,
    rtt: Vec<Vec<Option<f64>>>,
}

impl LatencyMatrix {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The RTT from `a` to `b` in ms; the reverse direction stands in for a
    /// missing one (the data set's directions agree to 0.1 %).
    pub fn rtt(&self, a: usize, b: usize) -> Option<f64> {
        self.rtt[a][b].or(self.rtt[b][a])
    }

    /// Loads a data set of `shared/data/latency/`: a WonderNetwork directory
    /// (`pings-*.csv`), a RIPE Atlas country directory or file
    /// (`country_rtt_stat.csv[.gz]`), or a square matrix file (one row of
    /// whitespace-separated RTTs per line, as the PlanetLab and Seattle
    /// slices; `seconds` when its values are in seconds; 0 = not measured).
    pub fn load(path: &Path, seconds: bool) -> io::Result<LatencyMatrix> {
        if path.is_dir() {
            if find_file(path, "pings-").is_ok() {
                return LatencyMatrix::load_wondernetwork(path);
            }
            let ripe = ["country_rtt_stat.csv.gz", "country_rtt_stat.csv"]
                .iter()
                .map(|f| path.join(f))
                .find(|p| p.exists());
            return match ripe {
                Some(file) => LatencyMatrix::load_country_pairs(&file),
                None => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}: no data set found", path.display()),
                )),
            };
        }
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("country_rtt_stat"))
        {
            return LatencyMatrix::load_country_pairs(path);
        }
        LatencyMatrix::load_square(path, if seconds { 1000.0 } else { 1.0 })
    }

    /// RIPE Atlas country pairs (`cty1,cty2,rtt_cnt,rtt_avg,...`, upper
    /// triangle, read as symmetric); countries have no coordinates.
    pub fn load_country_pairs(path: &Path) -> io::Result<LatencyMatrix> {
        let text = read_text(path)?;
        let mut pairs: Vec<(String, String, f64)> = Vec::new();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            if let (Some(a), Some(b), Some(Ok(avg))) =
                (f.first(), f.get(1), f.get(3).map(|v| v.parse::<f64>()))
                && a != b
                && avg > 0.0
            {
                pairs.push((a.to_string(), b.to_string(), avg));
            }
        }
        let mut names: Vec<String> = pairs
            .iter()
            .flat_map(|(a, b, _)| [a.clone(), b.clone()])
            .collect();
        names.sort();
        names.dedup();
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut rtt = vec![vec![None; names.len()]; names.len()];
        for (a, b, avg) in &pairs {
            let (i, j) = (index[a.as_str()], index[b.as_str()]);
            rtt[i][j] = Some(*avg);
            rtt[j][i] = Some(*avg);
        }
        Ok(LatencyMatrix {
            coordinates: vec![None; names.len()],
            names,
            rtt,
        })
    }

    /// A square matrix, row i holding the RTTs from node i; `scale` converts
    /// to milliseconds; 0 or negative means not measured.
    pub fn load_square(path: &Path, scale: f64) -> io::Result<LatencyMatrix> {
        let text = read_text(path)?;
        let rows: Vec<Vec<f64>> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.split_whitespace()
                    .map(|v| v.parse::<f64>().unwrap_or(0.0))
                    .collect()
            })
            .collect();
        let n = rows.len();
        if n == 0 || rows.iter().any(|r| r.len() != n) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a square matrix", path.display()),
            ));
        }
        let rtt = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.iter()
                    .enumerate()
                    .map(|(j, v)| {
                        if i == j {
                            Some(0.5)
                        } else {
                            (*v > 0.0).then_some(v * scale)
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(LatencyMatrix {
            names: (0..n).map(|i| format!("node{i}")).collect(),
            coordinates: vec![None; n],
            rtt,
        })
    }

    /// A copy in which the routes of `nodes` changed: their RTT to every other
    /// node scaled by a factor drawn from [0.5, 2).
    pub fn with_route_changes(&self, nodes: &[usize], rng: &mut SplitMix64) -> LatencyMatrix {
        let mut rtt = self.rtt.clone();
        for &a in nodes {
            let others: Vec<usize> = (0..self.len()).filter(|b| *b != a).collect();
            for b in others {
                let factor = rng.uniform(0.5, 2.0);
                if let Some(ms) = self.rtt(a, b) {
                    rtt[a][b] = Some(ms * factor);
                    rtt[b][a] = Some(ms * factor);
                }
            }
        }
        LatencyMatrix {
            names: self.names.clone(),
            coordinates: self.coordinates.clone(),
            rtt,
        }
    }

    /// Loads `pings-*.csv` and `servers-*.csv` of the WonderNetwork data set
    /// (see `shared/data/latency/SOURCE.txt`); nodes without a server entry
    /// or with fewer than half their pairs measured are left out.
    pub fn load_wondernetwork(dir: &Path) -> io::Result<LatencyMatrix> {
        let pings = find_file(dir, "pings-")?;
        let servers = find_file(dir, "servers-")?;
        let mut places: HashMap<u32, (String, (f64, f64))> = HashMap::new();
        for line in std::fs::read_to_string(servers)?.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 10 {
                continue;
            }
            if let (Ok(id), Ok(lat), Ok(lon)) = (f[0].parse(), f[8].parse(), f[9].parse()) {
                places.insert(id, (f[1].to_string(), (lat, lon)));
            }
        }
        let mut pairs: HashMap<(u32, u32), f64> = HashMap::new();
        for line in std::fs::read_to_string(pings)?.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 4 {
                continue;
            }
            if let (Ok(a), Ok(b), Ok(avg)) = (f[0].parse(), f[1].parse(), f[3].parse::<f64>())
                && a != b
                && avg > 0.0
            {
                pairs.insert((a, b), avg);
            }
        }
        let mut all: Vec<u32> = places.keys().copied().collect();
        all.sort_unstable();
        let measured = |id: u32| {
            all.iter()
                .filter(|o| pairs.contains_key(&(id, **o)) || pairs.contains_key(&(**o, id)))
                .count()
        };
        let ids: Vec<u32> = all
            .iter()
            .copied()
            .filter(|id| measured(*id) >= all.len() / 2)
            .collect();
        let rtt = ids
            .iter()
            .map(|a| {
                ids.iter()
                    .map(|b| {
                        if a == b {
                            Some(0.5)
                        } else {
                            pairs.get(&(*a, *b)).copied()
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(LatencyMatrix {
            names: ids.iter().map(|id| places[id].0.clone()).collect(),
            coordinates: ids.iter().map(|id| Some(places[id].1)).collect(),
            rtt,
        })
    }

    /// `nodes` points on a sphere; RTT grows with great-circle distance (light
    /// in fibre, 1 ms per 100 km there and back) times a per-pair detour
    /// factor, plus a per-node access delay. The detours make geography a
    /// good guess but not the truth, as on the Internet.
    pub fn synthetic(nodes: usize, seed: u64) -> LatencyMatrix {
        let mut rng = SplitMix64::new(seed);
        let coordinates: Vec<(f64, f64)> = (0..nodes)
            .map(|_| (rng.uniform(-60.0, 70.0), rng.uniform(-180.0, 180.0)))
            .collect();
        let access: Vec<f64> = (0..nodes).map(|_| rng.uniform(0.5, 8.0)).collect();
        let mut rtt = vec![vec![Some(0.5); nodes]; nodes];
        for a in 0..nodes {
            for b in a + 1..nodes {
                let km = great_circle_km(coordinates[a], coordinates[b]);
                let ms = access[a] + access[b] + km / 100.0 * rng.uniform(1.2, 2.5);
                rtt[a][b] = Some(ms);
                rtt[b][a] = Some(ms);
            }
        }
        LatencyMatrix {
            names: (0..nodes).map(|i| format!("node{i}")).collect(),
            coordinates: coordinates.into_iter().map(Some).collect(),
            rtt,
        }
    }
}

pub fn great_circle_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

/// A file's text, gunzipped when its name ends in `.gz`.
fn read_text(path: &Path) -> io::Result<String> {
    let bytes = std::fs::read(path)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text)?;
        return Ok(text);
    }
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn find_file(dir: &Path, prefix: &str) -> io::Result<std::path::PathBuf> {
    std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".csv"))
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no {prefix}*.csv in {}", dir.display()),
            )
        })
}
