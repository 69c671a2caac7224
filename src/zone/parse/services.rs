//! The `services:` of a zone file: mirrors with their addresses and health
//! checks, cluster lengths, the prefix list, measurements and the switch
//! margin.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, Record};
use ipnet::IpNet;

use super::super::error::{Position, ZoneError};
use super::super::yaml::{Node, Value};
use super::super::{ClusterConfig, HealthCheck, HealthProbe, Mirror, Service, SwitchMargin};
use super::records::owner_key;
use super::{Context, Fields, describe};

/// The steering engine tracks a cluster's mirrors in a 64-bit set.
const MAX_MIRRORS: usize = 64;
const SERVICE_KEYS: &[&str] = &[
    "ttl",
    "mirrors",
    "clusters",
    "measurements",
    "switch_margin",
];
const MIRROR_KEYS: &[&str] = &["name", "ipv4", "ipv6", "capacity_qps", "health"];
const HEALTH_KEYS: &[&str] = &[
    "tcp_port",
    "url",
    "address",
    "interval_s",
    "timeout_ms",
    "rise",
    "fall",
];
const CLUSTER_KEYS: &[&str] = &[
    "initial_v4",
    "initial_v6",
    "block_v4",
    "block_v6",
    "prefixes",
];

/// Reads one service; `None` when its name or its mirrors cannot be read at
/// all (reported). A service with errors inside is still returned, so that
/// the checks between names run too; the errors reject the zone.
pub(super) fn build_service(
    cx: &mut Context<'_>,
    key: &Node,
    value: &Node,
) -> Option<(Service, Option<Position>)> {
    let Some(text) = owner_key(key) else {
        cx.error(
            key.position,
            format!("a service must be a name, found {}", describe(key)),
        );
        return None;
    };
    let path = value.position;
    let name = match cx.owner(&text) {
        Ok(n) if n.is_wildcard() => {
            cx.error(path, "a service cannot be a wildcard name");
            return None;
        }
        Ok(n) => n,
        Err(e) => {
            cx.error(path, e);
            return None;
        }
    };
    let what = format!("service {name}");
    let fields = cx.fields(&what, value, SERVICE_KEYS)?;
    let ttl = cx.optional::<u32>(&fields, "ttl").unwrap_or(cx.default_ttl);
    let mirrors = build_mirrors(cx, &fields, &name, ttl);
    let clusters = build_clusters(cx, &fields);
    let mut max_age_at = fields.at("measurements");
    let max_age_s = match fields.get("measurements") {
        Some(value) => cx
            .fields("measurements", value, &["max_age_s"])
            .and_then(|m| {
                max_age_at = m.at("max_age_s");
                cx.optional::<u64>(&m, "max_age_s")
            }),
        None => None,
    }
    .unwrap_or(3600);
    if max_age_s == 0 {
        cx.error(max_age_at, "max_age_s must be at least 1");
    }
    let switch_margin = build_switch_margin(cx, &fields);
    let position = Some(path);
    let mirrors = mirrors?;
    Some((
        Service {
            name,
            ttl,
            mirrors,
            clusters,
            max_age_s,
            switch_margin,
        },
        position,
    ))
}

fn build_switch_margin(cx: &mut Context<'_>, service: &Fields<'_>) -> SwitchMargin {
    let Some(value) = service.get("switch_margin") else {
        return SwitchMargin::default();
    };
    let path = value.position;
    let Some(fields) = cx.fields("switch_margin", value, &["ms", "percent"]) else {
        return SwitchMargin::default();
    };
    let ms = cx.required::<f64>(&fields, "ms");
    let percent = cx.required::<f64>(&fields, "percent");
    let (Some(ms), Some(percent)) = (ms, percent) else {
        return SwitchMargin::default();
    };
    if ms >= 0.0 && percent >= 0.0 && ms.is_finite() && percent.is_finite() {
        SwitchMargin { ms, percent }
    } else {
        cx.error(
            path,
            "switch_margin ms and percent must be finite and not negative",
        );
        SwitchMargin::default()
    }
}

fn build_mirrors(
    cx: &mut Context<'_>,
    service: &Fields<'_>,
    name: &Name,
    ttl: u32,
) -> Option<Vec<Mirror>> {
    let path = service.at("mirrors");
    let raw = match service.raw("mirrors").map(|n| &n.value) {
        None => {
            cx.error(
                service.at,
                format!("service {name}: missing `mirrors` (a list of mirrors)"),
            );
            return None;
        }
        Some(Value::Sequence(raw)) if raw.is_empty() => {
            cx.error(path, format!("service {name} has no mirrors"));
            return None;
        }
        Some(Value::Sequence(raw)) => raw,
        Some(_) => {
            let other = service.raw("mirrors")?;
            cx.error(
                path,
                format!(
                    "mirrors: expected a list of mirrors, found {}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    if raw.len() > MAX_MIRRORS {
        cx.error(
            service.at,
            format!(
                "service {name} has {} mirrors; at most {MAX_MIRRORS} are supported",
                raw.len()
            ),
        );
        return None;
    }
    let mut mirrors: Vec<Mirror> = Vec::new();
    for value in raw {
        let mpath = value.position;
        let Some(fields) = cx.fields("a mirror", value, MIRROR_KEYS) else {
            continue;
        };
        let mirror_name = cx.required::<String>(&fields, "name").unwrap_or_default();
        if fields.raw("name").is_some() && !valid_mirror_name(&mirror_name) {
            cx.error(
                fields.at("name"),
                format!(
                    "bad mirror name {mirror_name:?}: use lower-case letters, digits, '-' and '_'"
                ),
            );
        }
        if mirrors.iter().any(|other| other.name == mirror_name) && !mirror_name.is_empty() {
            cx.error(
                fields.at("name"),
                format!("duplicate mirror {mirror_name:?} in service {name}"),
            );
        }
        let ipv4_texts = cx.strings(&fields, "ipv4");
        let ipv6_texts = cx.strings(&fields, "ipv6");
        let ipv4 = addresses::<Ipv4Addr>(cx, &ipv4_texts, "IPv4");
        let ipv6 = addresses::<Ipv6Addr>(cx, &ipv6_texts, "IPv6");
        let none_given = |key: &str| match fields.get(key).map(|n| &n.value) {
            None => true,
            Some(Value::Sequence(items)) => items.is_empty(),
            Some(_) => false,
        };
        if none_given("ipv4") && none_given("ipv6") {
            cx.error(
                mpath,
                format!("mirror {mirror_name:?} has no ipv4 or ipv6 address"),
            );
        }
        let capacity_qps = cx.optional::<u64>(&fields, "capacity_qps");
        let health = match fields.get("health") {
            Some(value) => build_health(cx, value, &ipv4, &ipv6),
            None => None,
        };
        let a_records = ipv4
            .iter()
            .map(|a| Record::from_rdata(name.clone(), ttl, RData::A((*a).into())))
            .collect();
        let aaaa_records = ipv6
            .iter()
            .map(|a| Record::from_rdata(name.clone(), ttl, RData::AAAA((*a).into())))
            .collect();
        mirrors.push(Mirror {
            name: mirror_name,
            ipv4,
            ipv6,
            capacity_qps,
            health,
            a_records,
            aaaa_records,
        });
    }
    Some(mirrors)
}

fn valid_mirror_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn addresses<T: std::str::FromStr>(
    cx: &mut Context<'_>,
    texts: &[(Position, String)],
    family: &str,
) -> Vec<T> {
    let mut out = Vec::new();
    for (at, text) in texts {
        match text.parse() {
            Ok(a) => out.push(a),
            Err(_) => cx.error(
                *at,
                format!("bad address {text:?}: not an {family} address"),
            ),
        }
    }
    out
}

/// Documentation ranges (RFC 5737, RFC 3849) are answered but never contacted.
fn is_documentation(addr: IpAddr) -> bool {
    const NETS: [&str; 4] = [
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
    ];
    NETS.iter()
        .filter_map(|n| n.parse::<IpNet>().ok())
        .any(|n| n.contains(&addr))
}

/// The host of an `http://` URL when it is an IP address (`http://192.0.2.1:8080/`,
/// `http://[2001:db8::1]/`); `None` for a host name.
fn url_address(url: &str) -> Option<IpAddr> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(bracketed),
        None => host_port.split(':').next().unwrap_or(host_port),
    };
    host.parse().ok()
}

fn build_health(
    cx: &mut Context<'_>,
    value: &Node,
    ipv4: &[Ipv4Addr],
    ipv6: &[Ipv6Addr],
) -> Option<HealthCheck> {
    let path = value.position;
    let fields = cx.fields("health", value, HEALTH_KEYS)?;
    let tcp_port = cx.optional::<u16>(&fields, "tcp_port");
    let url = cx.optional::<String>(&fields, "url");
    let address = cx.optional::<String>(&fields, "address");
    let interval_s = cx.optional::<u64>(&fields, "interval_s").unwrap_or(10);
    let timeout_ms = cx.optional::<u64>(&fields, "timeout_ms").unwrap_or(1000);
    let rise = cx.optional::<u32>(&fields, "rise").unwrap_or(2);
    let fall = cx.optional::<u32>(&fields, "fall").unwrap_or(3);
    if interval_s == 0 || timeout_ms == 0 || rise == 0 || fall == 0 {
        cx.error(
            path,
            "interval_s, timeout_ms, rise and fall must be at least 1",
        );
    }
    let probe = match (tcp_port, url) {
        (Some(port), None) => {
            let address = match address {
                Some(text) => match text.parse::<IpAddr>() {
                    Ok(a) => a,
                    Err(_) => {
                        cx.error(fields.at("address"), format!("bad address {text:?}"));
                        return None;
                    }
                },
                None => ipv4
                    .first()
                    .map(|a| IpAddr::V4(*a))
                    .or(ipv6.first().map(|a| IpAddr::V6(*a)))?,
            };
            if is_documentation(address) {
                cx.error(path, format!("health check address {address} is a documentation address, which is answered but never contacted: give `address`"));
                return None;
            }
            HealthProbe::Tcp { address, port }
        }
        (None, Some(url)) if url.starts_with("http://") => {
            if let Some(address) = url_address(&url).filter(|a| is_documentation(*a)) {
                cx.error(
                    fields.at("url"),
                    format!("health url {url:?} is on the documentation address {address}, which is answered but never contacted: give a url on an address the mirror can be reached at"),
                );
                return None;
            }
            HealthProbe::Http { url }
        }
        (None, Some(url)) => {
            cx.error(
                fields.at("url"),
                format!("health url {url:?} must start with http:// (https checks are not supported yet)"),
            );
            return None;
        }
        _ => {
            let has_port = fields.get("tcp_port").is_some();
            let has_url = fields.get("url").is_some();
            // A bad tcp_port or url is reported already.
            if has_port == has_url {
                cx.error(path, "a health check has either `tcp_port` or `url`");
            }
            return None;
        }
    };
    Some(HealthCheck {
        probe,
        interval_s,
        timeout_ms,
        rise,
        fall,
    })
}

fn build_clusters(cx: &mut Context<'_>, service: &Fields<'_>) -> ClusterConfig {
    let defaults = ClusterConfig::default();
    let Some(value) = service.get("clusters") else {
        return defaults;
    };
    let cpath = value.position;
    let Some(fields) = cx.fields("clusters", value, CLUSTER_KEYS) else {
        return defaults;
    };
    let config = ClusterConfig {
        initial_v4: cx
            .optional(&fields, "initial_v4")
            .unwrap_or(defaults.initial_v4),
        initial_v6: cx
            .optional(&fields, "initial_v6")
            .unwrap_or(defaults.initial_v6),
        block_v4: cx
            .optional(&fields, "block_v4")
            .unwrap_or(defaults.block_v4),
        block_v6: cx
            .optional(&fields, "block_v6")
            .unwrap_or(defaults.block_v6),
        prefixes: defaults.prefixes,
    };
    if config.block_v4 > 32 || config.initial_v4 > config.block_v4 {
        cx.error(
            cpath,
            format!(
                "IPv4 lengths must satisfy initial_v4 ({}) <= block_v4 ({}) <= 32",
                config.initial_v4, config.block_v4
            ),
        );
    }
    if config.block_v6 > 128 || config.initial_v6 > config.block_v6 {
        cx.error(
            cpath,
            format!(
                "IPv6 lengths must satisfy initial_v6 ({}) <= block_v6 ({}) <= 128",
                config.initial_v6, config.block_v6
            ),
        );
    }
    let Some(file) = cx.optional::<String>(&fields, "prefixes") else {
        return config;
    };
    let full = cx.file.parent().unwrap_or(Path::new(".")).join(&file);
    match load_prefixes(&full) {
        Ok(prefixes) => ClusterConfig {
            prefixes: Arc::new(prefixes),
            ..config
        },
        Err(e) => {
            cx.diagnostics.errors.push(e);
            config
        }
    }
}

/// Reads a prefix list: one CIDR per line, `#` comments and blank lines allowed.
pub fn load_prefixes(path: &Path) -> Result<Vec<IpNet>, ZoneError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ZoneError::new(path, None, format!("cannot read prefix list: {e}")))?;
    let mut prefixes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        match content.parse::<IpNet>() {
            Ok(net) => prefixes.push(net.trunc()),
            Err(_) => {
                let position = Some(Position {
                    line: i + 1,
                    column: 1,
                });
                return Err(ZoneError::new(
                    path,
                    position,
                    format!("bad prefix {content:?}: expected CIDR such as 198.51.100.0/24"),
                ));
            }
        }
    }
    Ok(prefixes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts_that_are_addresses() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(url_address("http://192.0.2.7/health"), Some(v4));
        assert_eq!(url_address("http://192.0.2.7:8080"), Some(v4));
        assert_eq!(url_address("http://user:pw@192.0.2.7:80/x"), Some(v4));
        assert_eq!(url_address("http://[2001:db8::1]:8080/"), Some(v6));
        assert_eq!(url_address("http://mirror.example.test/health"), None);
    }
}
