//! Every metric of a run summarised from its description (kind, unit, protocol), not
//! from its name: the one place the summary, `volley.run/1`, CSV, Markdown and HTML
//! read built-in, protocol and custom metrics alike.

use crate::engine::RunReport;
use crate::metrics::{MetricKind, Sink, Stat};
use std::time::Duration;

/// One metric's figures over the whole run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MetricSummary {
    /// The metric's name.
    #[serde(skip)]
    pub name: String,
    /// counter, gauge, rate or trend.
    pub kind: String,
    /// `ms`, `B` or empty (a rate is a share, 0 to 1).
    pub unit: String,
    /// The protocol that records it (`http`, `amqp`, `core`, `custom`, ...).
    pub protocol: String,
    /// What it is.
    pub description: String,
    /// The statistics, in display order: a counter's `count` and `rate` (per second);
    /// a rate's `rate` (0..1), `trues` and `total`; a gauge's `value`, `min`, `max`;
    /// a trend's `count`, `avg`, `min`, `p50`, `p90`, `p95`, `p99`, `p99.9`, `max`.
    #[serde(with = "ordered_map")]
    pub stats: Vec<(String, f64)>,
    /// A trend's HDR histogram (values x1000, V2 deflate, base64), for exact merging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdr_histogram: Option<String>,
}

impl MetricSummary {
    /// A statistic by name.
    pub fn stat(&self, name: &str) -> Option<f64> {
        self.stats.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// The figures as one line of text (`count 600  10/s`, `3.33% (5 of 150)`).
    pub fn line(&self) -> String {
        let unit = self.unit.as_str();
        let n = crate::script::core::fmt_num;
        if self.kind == "rate" {
            let (t, total) = (self.stat("trues").unwrap_or(0.0), self.stat("total").unwrap_or(0.0));
            return match self.stat("rate") {
                Some(r) => format!("{:.2}% ({} of {})", 100.0 * r, n(t), n(total)),
                None => "no samples".to_string(),
            };
        }
        self.stats
            .iter()
            .map(|(k, x)| match (self.kind.as_str(), k.as_str()) {
                ("counter", "count") => format!("count {}", fmt_value(*x, unit)),
                ("counter", "rate") => format!("{}/s", fmt_value(*x, unit)),
                (_, "count") => format!("count {}", n(*x)),
                _ => format!("{k} {}", fmt_value(*x, unit)),
            })
            .collect::<Vec<_>>()
            .join("  ")
    }
}

/// Statistics are written as a JSON object, in display order.
mod ordered_map {
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(stats: &[(String, f64)], s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(stats.len()))?;
        for (k, v) in stats {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
        Ok(std::collections::BTreeMap::<String, f64>::deserialize(d)?.into_iter().collect())
    }
}

fn fmt_value(x: f64, unit: &str) -> String {
    match unit {
        "ms" if x >= 10_000.0 => format!("{:.1}s", x / 1000.0),
        "ms" if x >= 100.0 => format!("{x:.0}ms"),
        "ms" => format!("{x:.2}ms"),
        "B" if x >= 1e9 => format!("{:.2} GB", x / 1e9),
        "B" if x >= 1e6 => format!("{:.2} MB", x / 1e6),
        "B" if x >= 1e3 => format!("{:.2} kB", x / 1e3),
        "B" => format!("{x:.0} B"),
        _ => crate::script::core::fmt_num((x * 1000.0).round() / 1000.0),
    }
}

fn stats_of(sink: &Sink, elapsed: Duration) -> Vec<(String, f64)> {
    let get = |s: Stat| sink.stat(s, elapsed).ok().flatten();
    let mut out = Vec::new();
    let mut push = |k: &str, v: Option<f64>| {
        if let Some(v) = v {
            out.push((k.to_string(), v));
        }
    };
    match sink {
        Sink::Counter(_) => {
            push("count", get(Stat::Count));
            push("rate", get(Stat::Rate));
        }
        Sink::Rate(r) => {
            push("rate", get(Stat::Rate));
            push("trues", Some(r.trues as f64));
            push("total", Some(r.total as f64));
        }
        Sink::Gauge(_) => {
            push("value", get(Stat::Value));
            push("min", get(Stat::Min));
            push("max", get(Stat::Max));
        }
        Sink::Trend(_) => {
            push("count", get(Stat::Count));
            push("avg", get(Stat::Avg));
            push("min", get(Stat::Min));
            for (k, p) in [("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99.9", 99.9)] {
                push(k, get(Stat::Percentile(p)));
            }
            push("max", get(Stat::Max));
        }
    }
    out
}

fn empty_stats(kind: MetricKind) -> Vec<(String, f64)> {
    match kind {
        MetricKind::Counter => vec![("count".into(), 0.0), ("rate".into(), 0.0)],
        MetricKind::Rate => vec![("trues".into(), 0.0), ("total".into(), 0.0)],
        MetricKind::Trend => vec![("count".into(), 0.0)],
        MetricKind::Gauge => Vec::new(),
    }
}

/// Every metric that recorded something, and every custom metric the script defined
/// (with zero counts when it recorded nothing), in description order.
pub fn summarise(report: &RunReport) -> Vec<MetricSummary> {
    let agg = &report.aggregate;
    let mut out = Vec::new();
    for d in &report.metrics {
        let name = d.metric.name.to_string();
        let sink = agg.query(&name, &[]);
        let stats = match &sink {
            Some(s) if !s.is_empty() || matches!(s, Sink::Rate(_) | Sink::Counter(_)) => stats_of(s, report.elapsed),
            _ if d.protocol == "custom" => empty_stats(d.metric.kind),
            _ => continue,
        };
        out.push(MetricSummary {
            name,
            kind: d.metric.kind.as_str().to_string(),
            unit: d.unit.to_string(),
            protocol: d.protocol.to_string(),
            description: d.doc.to_string(),
            stats,
            hdr_histogram: sink.as_ref().and_then(super::json::hdr_base64),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recorded_metric_is_summarised_by_kind() {
        let report = crate::report::fixture::report();
        let all = summarise(&report);
        let names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["http_reqs", "http_req_duration", "http_req_failed", "vus"]);
        let reqs = &all[0];
        assert_eq!(reqs.stat("count"), Some(150.0));
        assert_eq!(reqs.line(), "count 150  15/s");
        let failed = &all[2];
        assert_eq!(failed.line(), "3.33% (5 of 150)");
        assert!(all[1].hdr_histogram.is_some());
        assert_eq!(all[1].stat("count"), Some(150.0));
    }
}
