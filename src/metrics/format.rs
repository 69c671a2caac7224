//! Which exposition format a scrape gets: OpenMetrics when the scraper's
//! `Accept` prefers it (as Prometheus asks), else the Prometheus text format
//! 0.0.4, the one every scraper reads. prometheus-client encodes only
//! OpenMetrics; the 0.0.4 text differs from it in two lines per counter and
//! the closing `# EOF`, so it is derived from it here.

/// The formats `/metrics` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4: no `# EOF` line.
    Text,
    /// OpenMetrics 1.0.0, ending in `# EOF`.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format of highest quality among those an `Accept` header lists
    /// and this server writes; the earlier on a tie, as listed. Without a
    /// usable choice, the text format.
    pub fn negotiate(accept: &str) -> Format {
        let mut best: Option<(Format, f32)> = None;
        for range in accept.split(',') {
            let Some((format, quality)) = offered(range) else {
                continue;
            };
            if quality > 0.0 && best.is_none_or(|(_, q)| quality > q) {
                best = Some((format, quality));
            }
        }
        best.map_or(Format::Text, |(format, _)| format)
    }
}

/// The text format 0.0.4 of what prometheus-client encoded (OpenMetrics
/// without its `# EOF`): there a counter's `# HELP` and `# TYPE` name the
/// family without `_total`, while in 0.0.4 they name the samples, which
/// end in `_total`.
pub(super) fn counters_named_as_samples(encoded: &str) -> String {
    let counters: Vec<&str> = encoded
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(encoded.len() + counters.len() * 12);
    for line in encoded.lines() {
        match family_line(line).filter(|(_, name, _)| counters.contains(name)) {
            Some((kind, name, rest)) => {
                text.push_str(&format!("# {kind} {name}_total{rest}"));
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

/// A `# HELP` or `# TYPE` line as its kind, the family's name and the rest.
fn family_line(line: &str) -> Option<(&str, &str, &str)> {
    let (kind, named) = line
        .strip_prefix("# HELP ")
        .map(|rest| ("HELP", rest))
        .or_else(|| line.strip_prefix("# TYPE ").map(|rest| ("TYPE", rest)))?;
    let end = named.find(' ').unwrap_or(named.len());
    Some((kind, &named[..end], &named[end..]))
}

/// The format a media range names, if this server writes it, and its `q`.
fn offered(range: &str) -> Option<(Format, f32)> {
    let mut parts = range.split(';').map(str::trim);
    let media_type = parts.next()?.to_ascii_lowercase();
    let mut quality = 1.0;
    let mut version = None;
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "q" => quality = value.trim().parse().ok()?,
            "version" => version = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let format = match media_type.as_str() {
        "application/openmetrics-text" => match version.as_deref() {
            None | Some("1.0.0") | Some("0.0.1") => Format::OpenMetrics,
            Some(_) => return None,
        },
        "text/plain" | "text/*" | "*/*" => Format::Text,
        _ => return None,
    };
    Some((format, quality))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_a_counter_as_its_samples() {
        let encoded = "# HELP x_queries Queries.\n# TYPE x_queries counter\nx_queries_total{a=\"b\"} 3\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n";
        assert_eq!(
            counters_named_as_samples(encoded),
            "# HELP x_queries_total Queries.\n# TYPE x_queries_total counter\nx_queries_total{a=\"b\"} 3\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n"
        );
    }

    #[test]
    fn prometheus_gets_openmetrics_and_others_the_text_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::negotiate(prometheus), Format::OpenMetrics);
        assert_eq!(Format::negotiate(""), Format::Text);
        assert_eq!(Format::negotiate("*/*"), Format::Text);
        assert_eq!(
            Format::negotiate("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,application/openmetrics-text;version=1.0.0;q=0.6"
            ),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate("application/json"), Format::Text);
        assert_eq!(
            Format::negotiate("application/openmetrics-text;q=0"),
            Format::Text
        );
    }
}
