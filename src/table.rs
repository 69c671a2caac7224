//! `mirrordns table` and `mirrordns why`: a running server's learned table
//! and its reasons, as an operator reads them (the API's JSON underneath).

use serde_json::Value;

pub struct Table {
    pub json: Value,
    mirrors: Vec<String>,
}

fn get(url: String) -> Result<Value, String> {
    let response = reqwest::blocking::get(&url).map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let body: Value = response.json().map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "{url}: {status}: {}",
            body["error"].as_str().unwrap_or_default()
        ));
    }
    Ok(body)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// The API's base URL: `--api` takes a URL or, as `serve --api` prints
/// it, a bare `host:port`, which is plain HTTP.
fn base_url(api: &str) -> String {
    let api = api.trim_end_matches('/');
    if api.contains("://") {
        api.to_string()
    } else {
        format!("http://{api}")
    }
}

/// The explanation of `client`'s answer, readable.
pub fn why(api: &str, service: &str, client: &str) -> Result<String, String> {
    let api = base_url(api);
    let e = get(format!(
        "{api}/v1/explain?service={service}&client={client}"
    ))?;
    let mut out = format!(
        "{} for {}: {}\ncluster {} ({}), answer {}\n",
        text(&e["service"]),
        text(&e["client"]),
        text(&e["reason"]),
        text(&e["cluster"]),
        text(&e["state"]),
        text(&e["mirror"])
    );
    out.push_str(&format!(
        "{:<12} {:>10} {:>8} {:>8} {:>8} {:>8} {:>6}\n",
        "MIRROR", "RTT", "AGE_S", "METHOD", "HEALTHY", "DRAINED", "LOAD"
    ));
    for m in e["mirrors"].as_array().into_iter().flatten() {
        let rtt = match &m["rtt_ms"] {
            Value::Number(n) => format!("{:.1} ms", n.as_f64().unwrap_or_default()),
            other => text(other),
        };
        out.push_str(&format!(
            "{:<12} {:>10} {:>8} {:>8} {:>8} {:>8} {:>6}\n",
            text(&m["name"]),
            rtt,
            text(&m["age_s"]),
            text(&m["method"]),
            text(&m["healthy"]),
            text(&m["drained"]),
            text(&m["reported_load"])
        ));
    }
    out.push_str(&format!(
        "switch margin: {} ms and {} %\n",
        e["margin"]["ms"], e["margin"]["percent"]
    ));
    Ok(out)
}

/// Fetches the clusters of `service` and its mirror list from the API at `api`.
pub fn fetch(api: &str, service: &str) -> Result<Table, String> {
    let api = base_url(api);
    let json = get(format!("{api}/v1/services/{service}/clusters"))?;
    let name = json["service"].as_str().unwrap_or(service).to_string();
    let services = get(format!("{api}/v1/services"))?;
    let mirrors = services["services"]
        .as_array()
        .and_then(|list| list.iter().find(|s| s["name"] == name.as_str()))
        .and_then(|s| s["mirrors"].as_array())
        .map(|m| {
            m.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Table { json, mirrors })
}

impl Table {
    /// One line per cluster: prefix, state, answer, RTT per mirror, queries,
    /// silent sub-blocks being explored.
    pub fn render(&self) -> String {
        let mut header = vec![
            "PREFIX".to_string(),
            "STATE".to_string(),
            "MIRROR".to_string(),
        ];
        header.extend(self.mirrors.iter().map(|m| format!("{m} ms")));
        header.push("QUERIES".to_string());
        header.push("EXPLORING".to_string());
        let mut rows = vec![header];
        for c in self.json["clusters"].as_array().into_iter().flatten() {
            let mut row = vec![
                c["prefix"].as_str().unwrap_or("?").to_string(),
                c["state"].as_str().unwrap_or("?").to_string(),
                c["mirror"].as_str().unwrap_or("-").to_string(),
            ];
            row.extend(self.mirrors.iter().map(|m| match &c["rtt_ms"][m] {
                Value::Number(n) => format!("{:.1}", n.as_f64().unwrap_or_default()),
                Value::String(s) => s.clone(),
                _ => "-".to_string(),
            }));
            row.push(c["queries"].to_string());
            row.push(c["exploring"].as_u64().unwrap_or(0).to_string());
            rows.push(row);
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
            .collect();
        let mut out = format!("{}\n", self.json["service"].as_str().unwrap_or_default());
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}
