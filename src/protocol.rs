//! The JSON messages servers, agents and the shared streams exchange (SPEC
//! section 3): measurement batches, load reports, probe work and drains.
//!
//! This module is their one owner: the API, the stream follower and the
//! agent all read and write them through these types. The field names are a
//! contract with agents and instances of every version: fields are added,
//! never renamed.
//!
//! What a server takes (a batch, a load report, a drain) refuses unknown
//! fields, so a typo is a 400 that names it rather than a value silently
//! ignored. Probe work, which servers send to agents, is read leniently: a
//! newer server may add a field that an older agent does not know.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// Load figures outside this range are refused (1.0 is at capacity).
pub const LOAD_RANGE: std::ops::RangeInclusive<f64> = 0.0..=1000.0;

/// `POST /v1/measurements`, and a message of the measurement stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MeasurementBatch {
    pub measurements: Vec<Measurement>,
}

/// One measurement: a mirror's RTT to a client (an address, or a prefix at
/// least as long as the sub-block), or a timeout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    pub mirror: String,
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub timeout: bool,
    /// `tcp`, `icmp` or `passive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// When it was measured; absent means when the server received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    /// The host an agent measured for a subnet: checked, not stored.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "ip_address"
    )]
    pub address: Option<IpAddr>,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// A time in whole seconds since 1970, written in RFC 3339.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp(pub u64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = UNIX_EPOCH + Duration::from_secs(self.0);
        write!(f, "{}", humantime::format_rfc3339_seconds(time))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let time = humantime::parse_rfc3339_weak(&text)
            .map_err(|e| de::Error::custom(format!("time {text:?} is not RFC 3339 ({e})")))?;
        time.duration_since(UNIX_EPOCH)
            .map(|since| Timestamp(since.as_secs()))
            .map_err(|_| de::Error::custom(format!("time {text:?} is before 1970")))
    }
}

/// An agent's `address` must be an IP address: anything else says the agent
/// is broken, and a 400 says so where a silent drop would not.
fn ip_address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<IpAddr>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    text.parse()
        .map(Some)
        .map_err(|_| de::Error::custom(format!("address {text:?} is not an IP address")))
}

/// The outer object of a batch; its items are read one by one so that an
/// error names the item.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    measurements: Vec<serde_json::Value>,
}

/// Reads a measurement batch; the error is the 400's reason and names the
/// item (`measurements[3]: ...`) and the field.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Measurement>, String> {
    let batch: RawBatch = serde_json::from_slice(body)
        .map_err(|e| format!("expected {{\"measurements\": [...]}}: {e}"))?;
    batch
        .measurements
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value(item).map_err(|e| format!("measurements[{i}]: {e}"))
        })
        .collect()
}

/// `POST /v1/load` and a load message of the stream: an agent's load figure
/// for its mirror, 1.0 at capacity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadReport {
    pub mirror: String,
    pub load: f64,
}

/// Reads a load report, refusing a figure outside [`LOAD_RANGE`].
pub fn parse_load(body: &[u8]) -> Result<LoadReport, String> {
    let report: LoadReport = serde_json::from_slice(body)
        .map_err(|e| format!("expected {{\"mirror\": NAME, \"load\": NUMBER}}: {e}"))?;
    if !report.load.is_finite() || !LOAD_RANGE.contains(&report.load) {
        return Err(format!(
            "load {} is not in [{}, {}]",
            report.load,
            LOAD_RANGE.start(),
            LOAD_RANGE.end()
        ));
    }
    Ok(report)
}

/// A drain or undrain of one mirror, as the drain stream keeps it (the
/// mirror is in the subject).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drain {
    pub drained: bool,
}

/// `GET /v1/probes` and a message of `<stream>.probes.<mirror>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeWork {
    pub probes: Vec<ProbeItem>,
}

/// One target to measure, and the sub-block its result is for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeItem {
    /// An address, or a subnet in CIDR form for the agent to find a host in.
    pub target: String,
    pub block: String,
    /// For a subnet target, resolver addresses seen asking with it, which
    /// the agent tries first. Kept as text so that one bad address skips
    /// that address, not the whole list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolvers: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unknown_field_is_refused_with_its_name_and_item() {
        let body = br#"{"measurements": [{"mirror": "fra", "client": "198.51.100.7", "rtt_ms": 5},
            {"mirror": "fra", "client": "198.51.100.8", "rtt": 5}]}"#;
        let error = parse_batch(body).unwrap_err();
        assert!(
            error.starts_with("measurements[1]: unknown field `rtt`"),
            "{error}"
        );
        let outer = parse_batch(br#"{"measurements": [], "agent": "x"}"#).unwrap_err();
        assert!(outer.contains("unknown field `agent`"), "{outer}");
        let load = parse_load(br#"{"mirror": "fra", "load": 0.5, "at": 1}"#).unwrap_err();
        assert!(load.contains("unknown field `at`"), "{load}");
    }

    #[test]
    fn a_measured_address_and_a_time_are_checked() {
        let good =
            br#"{"measurements": [{"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 5,
            "address": "198.51.100.7", "time": "2026-11-27T12:00:00Z"}]}"#;
        let batch = parse_batch(good).unwrap();
        assert_eq!(batch[0].address, Some("198.51.100.7".parse().unwrap()));
        assert_eq!(batch[0].time, Some(Timestamp(1_795_780_800)));
        let bad = br#"{"measurements": [{"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 5, "address": "198.51.100.300"}]}"#;
        let error = parse_batch(bad).unwrap_err();
        assert!(
            error.starts_with("measurements[0]: address \"198.51.100.300\" is not an IP address"),
            "{error}"
        );
        let not_text = br#"{"measurements": [{"mirror": "fra", "client": "198.51.100.0/24", "timeout": true, "address": 7}]}"#;
        assert!(parse_batch(not_text).is_err());
        let late = br#"{"measurements": [{"mirror": "fra", "client": "198.51.100.7", "timeout": true, "time": "yesterday"}]}"#;
        assert!(parse_batch(late).unwrap_err().contains("is not RFC 3339"));
    }

    #[test]
    fn a_measurement_is_written_with_only_the_fields_it_has() {
        let answered = Measurement {
            mirror: "fra".into(),
            client: "198.51.100.0/24".into(),
            rtt_ms: Some(12.5),
            method: Some("tcp".into()),
            address: Some("198.51.100.7".parse().unwrap()),
            ..Measurement::default()
        };
        assert_eq!(
            serde_json::to_value(&answered).unwrap(),
            json!({"mirror": "fra", "client": "198.51.100.0/24", "rtt_ms": 12.5, "method": "tcp", "address": "198.51.100.7"})
        );
        let silent = Measurement {
            mirror: "fra".into(),
            client: "198.51.100.0/24".into(),
            timeout: true,
            time: Some(Timestamp(1_795_780_800)),
            ..Measurement::default()
        };
        let written = serde_json::to_vec(&MeasurementBatch {
            measurements: vec![silent.clone()],
        })
        .unwrap();
        assert_eq!(parse_batch(&written).unwrap(), [silent]);
    }

    #[test]
    fn a_load_outside_its_range_is_refused() {
        assert_eq!(
            parse_load(br#"{"mirror": "fra", "load": 0.93}"#).unwrap(),
            LoadReport {
                mirror: "fra".into(),
                load: 0.93
            }
        );
        let error = parse_load(br#"{"mirror": "fra", "load": 1001}"#).unwrap_err();
        assert_eq!(error, "load 1001 is not in [0, 1000]");
    }

    #[test]
    fn probe_work_lists_resolvers_only_when_there_are_some_and_reads_new_fields() {
        let work = ProbeWork {
            probes: vec![
                ProbeItem {
                    target: "198.51.100.0/24".into(),
                    block: "198.51.100.0/24".into(),
                    resolvers: vec!["203.0.113.53".into()],
                },
                ProbeItem {
                    target: "203.0.113.9".into(),
                    block: "203.0.113.0/24".into(),
                    resolvers: Vec::new(),
                },
            ],
        };
        assert_eq!(
            serde_json::to_value(&work).unwrap(),
            json!({"probes": [
                {"target": "198.51.100.0/24", "block": "198.51.100.0/24", "resolvers": ["203.0.113.53"]},
                {"target": "203.0.113.9", "block": "203.0.113.0/24"},
            ]})
        );
        let newer: ProbeWork = serde_json::from_value(json!({"probes": [
            {"target": "203.0.113.9", "block": "203.0.113.0/24", "new_field": 1},
        ]}))
        .unwrap();
        assert!(newer.probes[0].resolvers.is_empty());
    }
}
