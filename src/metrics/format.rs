//! Which exposition format a scrape gets: OpenMetrics when the scraper's
//! `Accept` prefers it (as Prometheus asks), else the Prometheus text format
//! 0.0.4, the one every scraper reads.

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
