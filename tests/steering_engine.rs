//! The steering engine through its library interface: the rules of SPEC
//! section 2 as properties that must hold for any measurements.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use mirrordns::steering::{ClusterView, Engine, MeasurementRequest, ServiceHandle};
use mirrordns::zone::{Family, ZoneSet, load_str};
use proptest::prelude::*;

const MIRRORS: [&str; 4] = ["ams", "fra", "nyc", "sin"];
const NOW: u64 = 1_800_000_000;

fn zone(margin_ms: f64, margin_pct: f64) -> String {
    common::zone("t.test.")
        .mirrors(&[
            "{name: ams, ipv4: [192.0.2.1], ipv6: ['2001:db8::1']}",
            "{name: fra, ipv4: [192.0.2.2], ipv6: ['2001:db8::2']}",
            "{name: nyc, ipv4: [192.0.2.3]}",
            "{name: sin, ipv4: [192.0.2.4], ipv6: ['2001:db8::4']}",
        ])
        .with(&format!(
            "switch_margin: {{ms: {margin_ms}, percent: {margin_pct}}}"
        ))
        .to_string()
}

fn engine(margin_ms: f64, margin_pct: f64) -> (Engine, ServiceHandle) {
    let z = load_str(Path::new("t.yaml"), &zone(margin_ms, margin_pct)).expect("valid zone");
    let zones = ZoneSet::new(vec![Arc::new(z)]);
    let engine = Engine::default();
    let handle = engine.bind(&zones).remove(0).remove(0);
    (engine, handle)
}

fn rtt(mirror: &str, client: &str, ms: f64) -> MeasurementRequest {
    MeasurementRequest {
        mirror: mirror.into(),
        client: client.into(),
        rtt_ms: Some(ms),
        time: Some(NOW),
        ..Default::default()
    }
}

fn timeout(mirror: &str, client: &str) -> MeasurementRequest {
    MeasurementRequest {
        mirror: mirror.into(),
        client: client.into(),
        timeout: true,
        time: Some(NOW),
        ..Default::default()
    }
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn answer(handle: &ServiceHandle, client: &str) -> (&'static str, u8) {
    let d = handle.decide(net(client), Family::V4).unwrap();
    (MIRRORS[d.mirror.expect("a mirror is available")], d.scope)
}

fn table(engine: &Engine) -> Vec<ClusterView> {
    engine.clusters("www.t.test", NOW).unwrap().1
}

/// One block's RTTs from each mirror (None = timeout).
fn measure_block(block: &str, rtts: &[Option<f64>]) -> Vec<MeasurementRequest> {
    MIRRORS
        .iter()
        .zip(rtts)
        .map(|(m, r)| match r {
            Some(ms) => rtt(m, block, *ms),
            None => timeout(m, block),
        })
        .collect()
}

#[test]
fn a_new_cluster_is_answered_round_robin_every_mirror_once_first() {
    let (_, handle) = engine(5.0, 10.0);
    let first: BTreeSet<&str> = (0..4)
        .map(|_| answer(&handle, "198.51.100.7/32").0)
        .collect();
    assert_eq!(
        first.len(),
        4,
        "four queries reach four different mirrors: {first:?}"
    );
    // Another cluster starts its own round.
    let other: BTreeSet<&str> = (0..4)
        .map(|_| answer(&handle, "203.0.113.9/32").0)
        .collect();
    assert_eq!(other.len(), 4);
    assert_eq!(answer(&handle, "198.51.100.7/32").1, 16);
}

#[test]
fn complete_when_every_mirror_measured_then_the_fastest_answers() {
    let (engine, handle) = engine(5.0, 10.0);
    let mut batch = measure_block("198.51.100.0/24", &[Some(40.0), Some(12.0), Some(90.0)]);
    engine.apply(&batch, NOW).unwrap();
    assert!(!table(&engine)[0].complete, "sin has not measured yet");
    batch = vec![rtt("sin", "198.51.100.0/24", 200.0)];
    engine.apply(&batch, NOW).unwrap();
    let t = table(&engine);
    assert!(t[0].complete);
    assert_eq!(t[0].mirror.as_deref(), Some("fra"));
    // Every client of the /16 gets fra, with scope 16.
    for client in ["198.51.100.7/32", "198.51.7.0/24", "198.51.255.255/32"] {
        assert_eq!(answer(&handle, client), ("fra", 16), "{client}");
    }
}

#[test]
fn aaaa_comes_from_the_best_mirror_with_ipv6() {
    let (engine, handle) = engine(5.0, 10.0);
    engine
        .apply(
            &measure_block(
                "198.51.100.0/24",
                &[Some(40.0), Some(30.0), Some(5.0), Some(60.0)],
            ),
            NOW,
        )
        .unwrap();
    assert_eq!(answer(&handle, "198.51.100.1/32").0, "nyc");
    let v6 = handle.decide(net("198.51.100.1/32"), Family::V6).unwrap();
    assert_eq!(
        MIRRORS[v6.mirror.unwrap()],
        "fra",
        "nyc has no IPv6; fra is next best"
    );
}

#[test]
fn sub_blocks_that_disagree_split_the_cluster() {
    let (engine, handle) = engine(5.0, 10.0);
    let mut batch = measure_block(
        "198.51.1.0/24",
        &[Some(10.0), Some(50.0), Some(90.0), Some(150.0)],
    );
    batch.extend(measure_block(
        "198.51.2.0/24",
        &[Some(11.0), Some(52.0), Some(95.0), Some(150.0)],
    ));
    batch.extend(measure_block(
        "198.51.200.0/24",
        &[Some(90.0), Some(80.0), Some(10.0), Some(150.0)],
    ));
    engine.apply(&batch, NOW).unwrap();
    let (near, near_scope) = answer(&handle, "198.51.1.9/32");
    let (far, far_scope) = answer(&handle, "198.51.200.9/32");
    assert_eq!((near, far), ("ams", "nyc"));
    assert!(
        near_scope > 16 || far_scope > 16,
        "at least one side carved out: {near_scope} {far_scope}"
    );
    assert!(far_scope > 16, "the odd /24 has its own cluster");
    for c in table(&engine) {
        assert!(
            c.prefix.prefix_len() <= 24,
            "never below the sub-block: {}",
            c.prefix
        );
    }
}

#[test]
fn siblings_that_agree_again_merge_back() {
    let (engine, handle) = engine(5.0, 10.0);
    let mut batch = measure_block(
        "198.51.1.0/24",
        &[Some(10.0), Some(50.0), Some(90.0), Some(150.0)],
    );
    batch.extend(measure_block(
        "198.51.200.0/24",
        &[Some(90.0), Some(80.0), Some(10.0), Some(150.0)],
    ));
    engine.apply(&batch, NOW).unwrap();
    assert!(table(&engine).len() > 1);
    // The route changes: the far block now also prefers ams, at a similar latency.
    let later = NOW + 10;
    let back: Vec<_> = measure_block(
        "198.51.200.0/24",
        &[Some(10.5), Some(50.0), Some(90.0), Some(150.0)],
    )
    .into_iter()
    .map(|mut m| {
        m.time = Some(later);
        m
    })
    .collect();
    engine.apply(&back, later).unwrap();
    assert_eq!(answer(&handle, "198.51.200.9/32").0, "ams");
    assert_eq!(
        engine.clusters("www.t.test", later).unwrap().1.len(),
        1,
        "folded back into one /16"
    );
}

#[test]
fn a_batch_with_one_bad_item_applies_nothing() {
    let (engine, _) = engine(5.0, 10.0);
    let cases: Vec<(MeasurementRequest, &str)> = vec![
        (rtt("lon", "198.51.100.1", 5.0), "unknown mirror"),
        (rtt("fra", "198.51.100.300", 5.0), "not an address"),
        (
            rtt("fra", "198.51.0.0/16", 5.0),
            "shorter than the sub-block",
        ),
        (rtt("fra", "198.51.100.1", 0.0), "not in (0"),
        (rtt("fra", "198.51.100.1", -3.0), "not in (0"),
        (rtt("fra", "198.51.100.1", 60_001.0), "not in (0"),
        (
            MeasurementRequest {
                mirror: "fra".into(),
                client: "198.51.100.1".into(),
                ..Default::default()
            },
            "missing rtt_ms",
        ),
        (
            MeasurementRequest {
                time: Some(NOW + 3600),
                ..rtt("fra", "198.51.100.1", 5.0)
            },
            "in the future",
        ),
        (
            MeasurementRequest {
                method: Some("carrier-pigeon".into()),
                ..rtt("fra", "198.51.100.1", 5.0)
            },
            "unknown method",
        ),
    ];
    for (bad, reason) in cases {
        let batch = vec![rtt("ams", "203.0.113.0/24", 9.0), bad];
        let error = engine.apply(&batch, NOW).unwrap_err();
        assert_eq!(error.index, 1);
        assert!(
            error.reason.contains(reason),
            "{} should say {reason:?}",
            error.reason
        );
    }
    assert!(
        table(&engine).is_empty(),
        "nothing of any rejected batch was applied"
    );
}

#[test]
fn stale_measurements_keep_the_answer_and_ask_for_new_probes() {
    let (engine, handle) = engine(5.0, 10.0);
    engine
        .apply(
            &measure_block(
                "198.51.100.0/24",
                &[Some(40.0), Some(12.0), Some(90.0), Some(60.0)],
            ),
            NOW,
        )
        .unwrap();
    assert!(
        engine.probes("fra", NOW, 100).unwrap().is_empty(),
        "fresh: nothing to probe"
    );
    let later = NOW + 3601;
    let probes = engine.probes("fra", later, 100).unwrap();
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0].block, net("198.51.100.0/24"));
    assert_eq!(
        answer(&handle, "198.51.100.9/32").0,
        "fra",
        "a stale complete cluster keeps its answer"
    );
}

#[test]
fn probe_work_lists_seen_targets_per_block_for_mirrors_lacking_them() {
    let (engine, handle) = engine(5.0, 10.0);
    handle.decide(net("198.51.100.7/32"), Family::V4);
    handle.decide(net("198.51.100.9/32"), Family::V4);
    handle.decide(net("203.0.113.0/24"), Family::V4);
    let probes = engine.probes("fra", NOW, 100).unwrap();
    let listed: Vec<(String, String)> = probes
        .iter()
        .map(|p| (p.target.to_string(), p.block.to_string()))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("198.51.100.7/32".to_string(), "198.51.100.0/24".to_string()),
            ("203.0.113.0/24".to_string(), "203.0.113.0/24".to_string()),
        ]
    );
    engine
        .apply(&[rtt("fra", "198.51.100.7", 10.0)], NOW)
        .unwrap();
    assert_eq!(engine.probes("fra", NOW, 100).unwrap().len(), 1);
    assert_eq!(engine.probes("ams", NOW, 100).unwrap().len(), 2);
    assert_eq!(
        engine.probes("ams", NOW, 1).unwrap().len(),
        1,
        "bounded by the limit"
    );
    assert!(engine.probes("lon", NOW, 100).is_none());
}

/// RTTs of the four mirrors for one block: some may time out.
fn rtts() -> impl Strategy<Value = Vec<Option<f64>>> {
    prop::collection::vec(
        prop_oneof![4 => (1.0f64..500.0).prop_map(Some), 1 => Just(None)],
        4,
    )
}

fn argmin(rtts: &[Option<f64>]) -> Option<usize> {
    (0..rtts.len())
        .filter(|i| rtts[*i].is_some())
        .min_by(|a, b| {
            rtts[*a]
                .partial_cmp(&rtts[*b])
                .unwrap()
                .then(MIRRORS[*a].cmp(MIRRORS[*b]))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_complete_cluster_answers_the_argmin_and_never_an_unreachable_mirror(r in rtts()) {
        let (engine, handle) = engine(0.0, 0.0);
        engine.apply(&measure_block("198.51.100.0/24", &r), NOW).unwrap();
        let (mirror, _) = answer(&handle, "198.51.100.1/32");
        match argmin(&r) {
            Some(best) => prop_assert_eq!(mirror, MIRRORS[best]),
            None => prop_assert!(MIRRORS.contains(&mirror), "all unreachable: any mirror (fail open)"),
        }
    }

    #[test]
    fn every_measured_block_is_in_exactly_one_cluster_never_below_the_sub_block(
        blocks in prop::collection::vec((0u8..4, 0u8..=255, rtts()), 1..12)
    ) {
        let (engine, handle) = engine(5.0, 10.0);
        let mut batch = Vec::new();
        let mut distinct = BTreeSet::new();
        for (b, c, r) in &blocks {
            let block = format!("10.{b}.{c}.0/24");
            distinct.insert(block.clone());
            batch.extend(measure_block(&block, r));
        }
        engine.apply(&batch, NOW).unwrap();
        let t = table(&engine);
        prop_assert_eq!(t.iter().map(|c| c.blocks).sum::<usize>(), distinct.len());
        for c in &t {
            prop_assert!(c.prefix.prefix_len() <= 24);
        }
        for block in &distinct {
            let addr = net(block);
            let d = handle.decide(addr, Family::V4).unwrap();
            let deciding = t.iter().filter(|c| c.prefix.contains(&addr)).max_by_key(|c| c.prefix.prefix_len()).unwrap();
            prop_assert!(d.scope >= deciding.prefix.prefix_len());
            // The scope never covers a client that another cluster answers.
            let scope = IpNet::new(addr.addr(), d.scope).unwrap().trunc();
            let covered = t.iter().find(|c| c.prefix != deciding.prefix && scope.contains(&c.prefix));
            prop_assert!(covered.is_none(), "{} answered with scope {} covering {:?}", block, scope, covered.map(|c| c.prefix));
        }
    }

    #[test]
    fn the_same_batches_give_the_same_table_on_two_engines(
        batches in prop::collection::vec(prop::collection::vec((0u8..3, 0u8..=255, rtts()), 1..5), 1..4)
    ) {
        let (a, _) = engine(5.0, 10.0);
        let (b, _) = engine(5.0, 10.0);
        for batch in &batches {
            let requests: Vec<_> = batch.iter().flat_map(|(x, y, r)| measure_block(&format!("10.{x}.{y}.0/24"), r)).collect();
            a.apply(&requests, NOW).unwrap();
            b.apply(&requests, NOW).unwrap();
        }
        let view = |e: &Engine| -> Vec<String> {
            table(e).iter().map(|c| format!("{} {:?} {} {:?}", c.prefix, c.mirror, c.blocks, c.rtt)).collect()
        };
        prop_assert_eq!(view(&a), view(&b));
    }

    #[test]
    fn instances_queried_differently_answer_complete_clusters_alike(
        batches in prop::collection::vec(prop::collection::vec((0u8..3, 0u8..=255, rtts()), 1..5), 1..4),
        queried in prop::collection::vec((0u8..3, 0u8..=255), 0..8)
    ) {
        // Two instances of one stream: `a` also answered resolvers (which
        // creates clusters before anything is measured), `b` did not.
        let (a, a_handle) = engine(5.0, 10.0);
        let (b, b_handle) = engine(5.0, 10.0);
        for (x, y) in &queried {
            a_handle.decide(net(&format!("10.{x}.{y}.1/32")), Family::V4);
        }
        for batch in &batches {
            let requests: Vec<_> = batch.iter().flat_map(|(x, y, r)| measure_block(&format!("10.{x}.{y}.0/24"), r)).collect();
            a.apply(&requests, NOW).unwrap();
            b.apply(&requests, NOW).unwrap();
        }
        // A cluster of only queried sub-blocks exists where queries came
        // (answering as its region's busiest cluster): compare the measured.
        let complete = |e: &Engine| -> Vec<String> {
            table(e).iter().filter(|c| c.complete && !c.rtt.is_empty()).map(|c| format!("{} {:?} {:?}", c.prefix, c.mirror, c.rtt)).collect()
        };
        prop_assert_eq!(complete(&a), complete(&b));
        for (x, y, _) in batches.iter().flatten() {
            let client = net(&format!("10.{x}.{y}.7/32"));
            let (da, db) = (a_handle.decide(client, Family::V4), b_handle.decide(client, Family::V4));
            let table_a = table(&a);
            let deciding = table_a.iter().filter(|c| c.prefix.contains(&client)).max_by_key(|c| c.prefix.prefix_len());
            if deciding.is_some_and(|c| c.complete) {
                prop_assert_eq!(da.map(|d| (d.mirror, d.scope)), db.map(|d| (d.mirror, d.scope)), "client {}", client);
            }
        }
    }

    #[test]
    fn noise_within_the_margin_never_changes_a_complete_answer(
        base in prop::collection::vec(20.0f64..300.0, 4),
        noise in prop::collection::vec(prop::collection::vec(-0.04f64..0.04, 4), 1..8)
    ) {
        // Margin 10 %: noise of at most 4 % either way moves two RTTs apart by
        // less than 10 % of the slower one, so no switch may happen.
        let (engine, handle) = engine(0.0, 10.0);
        let start: Vec<Option<f64>> = base.iter().map(|b| Some(*b)).collect();
        engine.apply(&measure_block("198.51.100.0/24", &start), NOW).unwrap();
        let first = answer(&handle, "198.51.100.1/32").0;
        for (round, n) in noise.iter().enumerate() {
            let time = NOW + 1 + round as u64;
            let noisy: Vec<MeasurementRequest> = MIRRORS
                .iter()
                .zip(base.iter().zip(n))
                .map(|(m, (b, e))| MeasurementRequest { time: Some(time), ..rtt(m, "198.51.100.0/24", b * (1.0 + e)) })
                .collect();
            engine.apply(&noisy, time).unwrap();
            prop_assert_eq!(answer(&handle, "198.51.100.1/32").0, first);
        }
    }
}

/// An engine whose service lists 10.0.0.0/14 and 10.1.128.0/17 as prefixes
/// (clusters elsewhere start at /16), with no switching margin: then the
/// only history an answer may keep, hysteresis, has nothing to keep.
fn listed_engine() -> (Engine, ServiceHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.txt"), "10.0.0.0/14\n10.1.128.0/17\n").unwrap();
    let text = zone(0.0, 0.0) + "    clusters: {prefixes: p.txt}\n";
    let z = load_str(&dir.path().join("t.yaml"), &text).expect("valid zone");
    let engine = Engine::default();
    let handle = engine
        .bind(&ZoneSet::new(vec![Arc::new(z)]))
        .remove(0)
        .remove(0);
    (engine, handle, dir)
}

/// Something the engine is told: a query from a client, or one mirror's
/// measurement of one sub-block.
#[derive(Clone, Debug)]
enum Event {
    Query(String),
    Measure(MeasurementRequest),
}

/// Queries and measurements over a listed /14 with a listed /17 inside it
/// and a plain /16 beside it; each (sub-block, mirror) measured once, some
/// sub-blocks silent (every probe of theirs times out).
fn events() -> impl Strategy<Value = Vec<Event>> {
    let block = (prop_oneof![Just(0u8), Just(1), Just(2), Just(9)], 0u8..=255);
    let measured = prop::collection::vec((block.clone(), rtts(), any::<bool>()), 1..10);
    let queried = prop::collection::vec(block, 0..6);
    (measured, queried).prop_map(|(measured, queried)| {
        let mut seen = BTreeSet::new();
        let mut events = Vec::new();
        for ((x, y), r, silent) in measured {
            let block = format!("10.{x}.{y}.0/24");
            if !seen.insert(block.clone()) {
                continue;
            }
            let r = if silent { vec![None; 4] } else { r };
            events.extend(measure_block(&block, &r).into_iter().map(Event::Measure));
        }
        events.extend(
            queried
                .into_iter()
                .map(|(x, y)| Event::Query(format!("10.{x}.{y}.1/32"))),
        );
        events
    })
}

fn replay(events: &[Event]) -> (Engine, ServiceHandle, tempfile::TempDir) {
    let (engine, handle, dir) = listed_engine();
    for event in events {
        match event {
            Event::Query(client) => {
                handle.decide(net(client), Family::V4);
            }
            Event::Measure(m) => {
                engine.apply(std::slice::from_ref(m), NOW).unwrap();
            }
        }
        assert!(
            table(&engine).iter().all(|c| c.blocks > 0),
            "an empty cluster after {event:?}"
        );
    }
    (engine, handle, dir)
}

/// The table as the API shows it. A cluster with no measured sub-block of
/// its own borrows the answer of its region's busiest cluster as of the
/// last measurement, so its mirror is left out.
fn shape(engine: &Engine) -> Vec<String> {
    table(engine)
        .iter()
        .map(|c| {
            let mirror = if c.rtt.is_empty() {
                None
            } else {
                c.mirror.clone()
            };
            format!(
                "{} {} {} {:?} {:?}",
                c.prefix, c.complete, c.blocks, mirror, c.rtt
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_table_is_a_function_of_the_queries_and_measurements_not_their_order(
        events in events(),
        seed in any::<u64>(),
    ) {
        let mut shuffled = events.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let (a, _, _da) = replay(&events);
        let (b, _, _db) = replay(&shuffled);
        prop_assert_eq!(shape(&a), shape(&b));
    }

    #[test]
    fn a_split_whose_halves_agree_again_folds_back(
        near in prop::collection::vec(5.0f64..300.0, 4),
        // Each far RTT is a route change away from the near one (1.5 times
        // or more), so measuring the near RTTs there replaces them whole.
        factors in prop::collection::vec(prop_oneof![0.1f64..0.6, 1.6f64..4.0], 4),
    ) {
        let far: Vec<f64> = near.iter().zip(&factors).map(|(n, f)| n * f).collect();
        let (engine, handle) = engine(5.0, 10.0);
        let as_rtts = |v: &[f64]| v.iter().map(|ms| Some(*ms)).collect::<Vec<_>>();
        engine.apply(&measure_block("10.5.1.0/24", &as_rtts(&near)), NOW).unwrap();
        engine.apply(&measure_block("10.5.200.0/24", &as_rtts(&far)), NOW).unwrap();
        // The far sub-block's routes change to match the near one's.
        let later = NOW + 60;
        let same: Vec<MeasurementRequest> = measure_block("10.5.200.0/24", &as_rtts(&near))
            .into_iter()
            .map(|m| MeasurementRequest { time: Some(later), ..m })
            .collect();
        engine.apply(&same, later).unwrap();
        let t = engine.clusters("www.t.test", later).unwrap().1;
        prop_assert_eq!(t.len(), 1, "{:?}", t.iter().map(|c| c.prefix).collect::<Vec<_>>());
        prop_assert_eq!(answer(&handle, "10.5.200.9/32").1, 16);
    }
}

#[test]
fn an_explored_mirror_that_brings_no_rtt_back_counts_as_unreachable_for_the_sub_block() {
    let (engine, handle) = engine(5.0, 10.0);
    let passive = |mirror: &str, client: &str, ms: f64, time: u64| MeasurementRequest {
        method: Some("passive".into()),
        time: Some(time),
        ..rtt(mirror, client, ms)
    };
    engine
        .apply(
            &measure_block(
                "198.51.1.0/24",
                &[Some(30.0), Some(10.0), Some(50.0), Some(70.0)],
            ),
            NOW,
        )
        .unwrap();
    handle.decide(net("198.51.2.0/24"), Family::V4);
    engine
        .apply(&measure_block("198.51.2.0/24", &[None; 4]), NOW)
        .unwrap();
    // Only ams runs an access-log agent.
    engine
        .apply(&[passive("ams", "198.51.1.0/24", 30.0, NOW)], NOW)
        .unwrap();
    for _ in 0..3 {
        assert_eq!(answer(&handle, "198.51.2.0/24"), ("ams", 24));
    }
    assert_eq!(
        answer(&handle, "198.51.2.0/24"),
        ("fra", 16),
        "tries used up"
    );
    // Whatever arrives before the patience runs out, ams is not judged yet.
    let soon = NOW + 60;
    engine
        .apply(&[passive("ams", "198.51.1.0/24", 30.0, soon)], soon)
        .unwrap();
    let view = engine
        .explain("www.t.test", net("198.51.2.7/32"), soon)
        .unwrap();
    assert!(view.exploring.is_some(), "{view:?}");
    let late = NOW + 600;
    engine
        .apply(&[passive("ams", "198.51.1.0/24", 30.0, late)], late)
        .unwrap();
    let view = engine
        .explain("www.t.test", net("198.51.2.7/32"), late)
        .unwrap();
    assert!(
        view.exploring.is_none(),
        "nothing left to explore: {view:?}"
    );
    assert_eq!(answer(&handle, "198.51.2.0/24"), ("fra", 16));
}
