//! A page of a service's cluster table, filtered and sorted
//! (`GET /v1/services/{fqdn}/clusters?offset=..&limit=..&prefix=..`), for
//! tables too large to send whole: a status page shows 100 rows of 100,000.
//!
//! One pass over the clusters reads what filtering and sorting need
//! (state, answered mirror, a number to sort by) without touching the
//! measurements; only the clusters of the page are then scored, which is
//! where the cost of a cluster's view lies (every sub-block's samples).

use std::sync::Arc;

use ipnet::IpNet;

use super::decision::Score;
use super::measurements::{MirrorId, Seconds};
use super::region::Inputs;
use super::table::{Cluster, cluster_scores};
use super::{ClusterView, Engine, normalize_name};

/// What a page of clusters holds: filters, order and window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterQuery {
    /// Clusters that hold this prefix (or address) or lie inside it.
    pub prefix: Option<IpNet>,
    /// `Some(true)`: complete clusters only; `Some(false)`: learning only.
    pub complete: Option<bool>,
    /// Clusters answered with this mirror; `Some(None)`: with none (learning).
    pub mirror: Option<Option<String>>,
    /// Clusters with (`true`) or without silent sub-blocks being explored.
    pub exploring: Option<bool>,
    pub sort: SortKey,
    pub descending: bool,
    pub offset: usize,
    pub limit: usize,
}

/// What a page is ordered by; ties are in prefix order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Prefix,
    /// Queries the cluster's sub-blocks brought.
    Queries,
    /// Sub-blocks held.
    Blocks,
    /// Silent sub-blocks being explored.
    Exploring,
    /// The answered mirror's name (learning clusters last).
    Mirror,
    /// Learning before complete.
    State,
    /// The answered mirror's latency as of the last decision (unknown last).
    Rtt,
}

impl SortKey {
    pub const NAMES: [(&'static str, SortKey); 7] = [
        ("prefix", SortKey::Prefix),
        ("queries", SortKey::Queries),
        ("blocks", SortKey::Blocks),
        ("exploring", SortKey::Exploring),
        ("mirror", SortKey::Mirror),
        ("state", SortKey::State),
        ("rtt", SortKey::Rtt),
    ];

    pub fn parse(text: &str) -> Option<SortKey> {
        SortKey::NAMES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, key)| *key)
    }
}

/// A page: the clusters that matched in all, and the window asked for.
#[derive(Clone, Debug)]
pub struct ClusterPage {
    pub service: String,
    /// Clusters that passed the filters.
    pub total: usize,
    pub clusters: Vec<ClusterView>,
}

/// A cluster that passed the filters, with its sort key.
struct Row<'a> {
    prefix: IpNet,
    cluster: &'a Cluster,
    key: f64,
}

impl Engine {
    /// The page `query` asks for of the service named `fqdn`.
    pub fn cluster_page(
        &self,
        fqdn: &str,
        query: &ClusterQuery,
        now: Seconds,
    ) -> Option<ClusterPage> {
        let table = Arc::clone(self.tables.lock().get(&normalize_name(fqdn))?);
        let config = Arc::clone(&table.config.read());
        let bindings = self.bindings.read();
        let name_of = |id: MirrorId| bindings.mirror_names.get(usize::from(id));
        // Mirror names in order, for sorting by name without comparing text.
        let mut by_name: Vec<(&String, MirrorId)> = config
            .mirror_ids
            .iter()
            .filter_map(|id| Some((name_of(*id)?, *id)))
            .collect();
        by_name.sort();
        let name_rank = |id: MirrorId| by_name.iter().position(|(_, m)| *m == id);
        let wanted_mirror: Option<Option<MirrorId>> = match &query.mirror {
            None => None,
            Some(None) => Some(None),
            // A name the service does not use matches nothing.
            Some(Some(name)) => Some(Some(
                by_name
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(MirrorId::MAX, |(_, id)| *id),
            )),
        };
        // The lock order of every other reader: measurements, then clusters.
        let store = self.store.read();
        let inputs = self.inputs(&config, &store, now);
        let clusters = table.clusters.read();
        let mut rows: Vec<Row> = Vec::new();
        for (prefix, cluster) in clusters.iter() {
            if let Some(p) = &query.prefix
                && !(p.contains(&prefix) || prefix.contains(p))
            {
                continue;
            }
            if query
                .complete
                .is_some_and(|want| want != cluster.is_complete())
            {
                continue;
            }
            let answered = self.answered(cluster);
            if wanted_mirror.is_some_and(|want| want != answered) {
                continue;
            }
            if query
                .exploring
                .is_some_and(|want| want != (cluster.blocks.exploring() > 0))
            {
                continue;
            }
            let key = match query.sort {
                SortKey::Prefix => 0.0,
                SortKey::Queries => cluster.blocks.queries() as f64,
                SortKey::Blocks => cluster.blocks.len() as f64,
                SortKey::Exploring => cluster.blocks.exploring() as f64,
                SortKey::Mirror => answered
                    .and_then(name_rank)
                    .map_or(f64::INFINITY, |r| r as f64),
                SortKey::State => f64::from(u8::from(cluster.is_complete())),
                SortKey::Rtt => answered
                    .and_then(|id| cluster.ranking.iter().position(|r| *r == id))
                    .and_then(|at| cluster.latency.get(at))
                    .map_or(f64::INFINITY, |ms| f64::from(*ms)),
            };
            rows.push(Row {
                prefix,
                cluster,
                key,
            });
        }
        let total = rows.len();
        let descending = query.descending;
        let order = |a: &Row, b: &Row| {
            let by_key = a.key.total_cmp(&b.key);
            let by_key = if descending { by_key.reverse() } else { by_key };
            by_key.then_with(|| a.prefix.cmp(&b.prefix))
        };
        let end = query.offset.saturating_add(query.limit).min(total);
        let start = query.offset.min(end);
        // Only the rows up to the page's end need to be in order.
        if end > 0 && end < total {
            rows.select_nth_unstable_by(end - 1, order);
            rows.truncate(end);
        }
        rows.sort_unstable_by(order);
        let views = rows[start..end]
            .iter()
            .map(|row| self.view(row.prefix, row.cluster, &bindings.mirror_names, &inputs))
            .collect();
        Some(ClusterPage {
            service: config.name.clone(),
            total,
            clusters: views,
        })
    }

    /// The mirror a client of `cluster` gets now: its load override or its
    /// best available mirror (none while learning).
    fn answered(&self, cluster: &Cluster) -> Option<MirrorId> {
        cluster
            .offload
            .iter()
            .chain(&cluster.ranking)
            .find(|id| self.status.is_available(**id))
            .copied()
    }

    /// A cluster as the API shows it.
    pub(super) fn view(
        &self,
        prefix: IpNet,
        cluster: &Cluster,
        names: &[String],
        inputs: &Inputs,
    ) -> ClusterView {
        let scores = cluster_scores(cluster, inputs);
        ClusterView {
            prefix,
            complete: cluster.is_complete(),
            mirror: self
                .answered(cluster)
                .and_then(|id| names.get(usize::from(id)).cloned()),
            offloaded: cluster.offload.is_some(),
            rtt: inputs
                .config
                .mirror_names
                .iter()
                .zip(scores)
                .filter(|(_, s)| *s != Score::Unknown)
                .map(|(n, s)| (n.clone(), s))
                .collect(),
            blocks: cluster.blocks.len(),
            queries: cluster.blocks.queries(),
            exploring: cluster.blocks.exploring(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steering::MeasurementRequest;
    use crate::zone::{ZoneSet, load_str};

    const NOW: Seconds = 1_800_000_000;

    /// A service of two mirrors, /24 clusters: 40 complete ones (fra the
    /// faster in even ones), and queried-only learning ones beside them.
    fn engine() -> Engine {
        let text = "origin: q.test.\nsoa: {mname: ns1, rname: h, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1}\nrecords:\n  '': {type: NS, value: ns1}\n  ns1: {type: A, value: 127.0.0.1}\nservices:\n  www:\n    clusters: {initial_v4: 24}\n    mirrors:\n      - {name: fra, ipv4: [192.0.2.1]}\n      - {name: nyc, ipv4: [192.0.2.2]}\n";
        let zone = load_str(std::path::Path::new("q.yaml"), text).unwrap();
        let engine = Engine::default();
        let handles = engine.bind(&ZoneSet::new(vec![Arc::new(zone)]));
        let batch: Vec<MeasurementRequest> = (0..40u32)
            .flat_map(|i| {
                let client = format!("10.0.{i}.0/24");
                let (fra, nyc) = if i % 2 == 0 {
                    (10.0, 50.0)
                } else {
                    (60.0, 20.0 + f64::from(i))
                };
                [("fra", fra), ("nyc", nyc)].map(|(m, ms)| MeasurementRequest {
                    mirror: m.to_string(),
                    client: client.clone(),
                    rtt_ms: Some(ms),
                    time: Some(NOW),
                    ..Default::default()
                })
            })
            .collect();
        engine.apply(&batch, NOW).unwrap();
        for i in 0..10u32 {
            let client: IpNet = format!("10.1.{i}.0/24").parse().unwrap();
            for _ in 0..=i {
                handles[0][0].decide(client, crate::zone::Family::V4);
            }
        }
        engine
    }

    fn page(engine: &Engine, query: ClusterQuery) -> (usize, Vec<String>) {
        let page = engine.cluster_page("www.q.test", &query, NOW).unwrap();
        let prefixes = page.clusters.iter().map(|c| c.prefix.to_string()).collect();
        (page.total, prefixes)
    }

    #[test]
    fn pages_filter_sort_and_window_the_table() {
        let e = engine();
        let all = ClusterQuery {
            limit: 1000,
            ..Default::default()
        };
        let (total, prefixes) = page(&e, all.clone());
        assert_eq!(total, 50);
        assert_eq!(prefixes[0], "10.0.0.0/24");
        assert_eq!(prefixes[40], "10.1.0.0/24", "prefix order, as numbers");
        let whole: Vec<String> = e
            .clusters("www.q.test.", NOW)
            .unwrap()
            .1
            .iter()
            .map(|c| c.prefix.to_string())
            .collect();
        assert_eq!(prefixes, whole, "the same clusters as the whole table");

        let window = ClusterQuery {
            offset: 38,
            limit: 4,
            ..all.clone()
        };
        assert_eq!(
            page(&e, window),
            (
                50,
                vec![
                    "10.0.38.0/24".into(),
                    "10.0.39.0/24".into(),
                    "10.1.0.0/24".into(),
                    "10.1.1.0/24".into()
                ]
            )
        );
        let past = ClusterQuery {
            offset: 60,
            limit: 4,
            ..all.clone()
        };
        assert_eq!(page(&e, past), (50, vec![]));

        let learning = ClusterQuery {
            complete: Some(false),
            ..all.clone()
        };
        assert_eq!(page(&e, learning).0, 10);
        let fra = ClusterQuery {
            mirror: Some(Some("fra".into())),
            ..all.clone()
        };
        assert_eq!(page(&e, fra).0, 20);
        let none = ClusterQuery {
            mirror: Some(None),
            ..all.clone()
        };
        assert_eq!(page(&e, none).0, 10);
        let unknown = ClusterQuery {
            mirror: Some(Some("nowhere".into())),
            ..all.clone()
        };
        assert_eq!(page(&e, unknown).0, 0);

        let inside = ClusterQuery {
            prefix: Some("10.1.0.0/16".parse().unwrap()),
            ..all.clone()
        };
        assert_eq!(page(&e, inside).0, 10);
        let holding = ClusterQuery {
            prefix: Some("10.0.7.9/32".parse().unwrap()),
            ..all.clone()
        };
        assert_eq!(page(&e, holding).1, ["10.0.7.0/24"]);

        let busiest = ClusterQuery {
            sort: SortKey::Queries,
            descending: true,
            limit: 3,
            ..all.clone()
        };
        assert_eq!(
            page(&e, busiest).1,
            ["10.1.9.0/24", "10.1.8.0/24", "10.1.7.0/24"]
        );
        let slowest = ClusterQuery {
            sort: SortKey::Rtt,
            descending: true,
            complete: Some(true),
            limit: 2,
            ..all.clone()
        };
        assert_eq!(
            page(&e, slowest).1,
            ["10.0.39.0/24", "10.0.37.0/24"],
            "nyc at 59 and 57 ms"
        );
        let by_mirror = ClusterQuery {
            sort: SortKey::Mirror,
            offset: 19,
            limit: 2,
            ..all
        };
        assert_eq!(
            page(&e, by_mirror).1,
            ["10.0.38.0/24", "10.0.1.0/24"],
            "fra's last, then nyc's first"
        );
    }
}
