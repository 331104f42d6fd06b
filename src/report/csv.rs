//! `--out csv=PREFIX`: Locust's three files, `PREFIX_stats.csv` (per request name and
//! an `Aggregated` row), `PREFIX_failures.csv` (by name and error kind) and
//! `PREFIX_stats_history.csv` (one row per second of the run), with Locust's column
//! names so existing spreadsheets and scripts read them.

use super::{Output, RunMeta};
use crate::engine::RunReport;
use crate::metrics::{Sink, Stat};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

const PCT: &[(f64, &str)] = &[
    (50.0, "50%"),
    (66.0, "66%"),
    (75.0, "75%"),
    (80.0, "80%"),
    (90.0, "90%"),
    (95.0, "95%"),
    (98.0, "98%"),
    (99.0, "99%"),
    (99.9, "99.9%"),
    (100.0, "100%"),
];

/// Quotes a field when it needs it (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn num(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    if r.fract() == 0.0 { format!("{r:.0}") } else { format!("{r}") }
}

/// `PREFIX_stats.csv`.
pub fn stats(report: &RunReport) -> String {
    let mut out = String::from(
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
         Min Response Time,Max Response Time,Requests/s,Failures/s",
    );
    for (_, h) in PCT {
        write!(out, ",{h}").ok();
    }
    out.push('\n');
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let mut row = |kind: &str, name: &str, count: u64, failures: u64, sink: Option<&Sink>| {
        let get = |st: Stat| sink.and_then(|s| s.stat(st, Duration::ZERO).ok().flatten()).map(num);
        let na = || "N/A".to_string();
        write!(
            out,
            "{},{},{count},{failures},{},{},{},{},{},{}",
            field(kind),
            field(name),
            get(Stat::Percentile(50.0)).unwrap_or_else(na),
            get(Stat::Avg).unwrap_or_else(na),
            get(Stat::Min).unwrap_or_else(na),
            get(Stat::Max).unwrap_or_else(na),
            num(count as f64 / secs),
            num(failures as f64 / secs),
        )
        .ok();
        for (p, _) in PCT {
            write!(out, ",{}", get(Stat::Percentile(*p)).unwrap_or_else(na)).ok();
        }
        out.push('\n');
    };
    let durations = super::request_durations(&report.aggregate);
    for r in &report.requests {
        row(&r.method, &r.name, r.count, r.failures, durations.get(&(r.name.clone(), r.method.clone())));
    }
    let all = report.aggregate.query("http_req_duration", &[]);
    let (count, failures) = report.requests.iter().fold((0, 0), |(c, f), r| (c + r.count, f + r.failures));
    row("", "Aggregated", count, failures, all.as_ref());
    out
}

/// `PREFIX_failures.csv`.
pub fn failures(report: &RunReport) -> String {
    let mut out = String::from("Method,Name,Error,Occurrences\n");
    for r in report.requests.iter().filter(|r| r.failures > 0) {
        let filters = [("name".to_string(), r.name.clone()), ("method".to_string(), r.method.clone())];
        for (kind, n) in crate::engine::judge::failure_kinds(&report.aggregate, &filters) {
            writeln!(out, "{},{},{},{n}", field(&r.method), field(&r.name), field(&kind)).ok();
        }
    }
    out
}

/// `PREFIX_stats_history.csv`: Unix timestamp at the end of each second, all requests.
pub fn history(report: &RunReport) -> String {
    let mut out = String::from(
        "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,95%,99%,Total Request Count,Total Failure Count\n",
    );
    let start = report.started_at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let (mut total, mut failed) = (0u64, 0u64);
    let mut prev_t = 0.0;
    for row in report.aggregate.history() {
        total += row.requests;
        failed += row.failures;
        let span = (row.t_s - prev_t).max(1e-3);
        prev_t = row.t_s;
        let p = |v: Option<f64>| v.map(num).unwrap_or_else(|| "N/A".into());
        writeln!(
            out,
            "{},{},,Aggregated,{},{},{},{},{},{total},{failed}",
            (start + row.t_s).round() as u64,
            row.vus,
            num(row.requests as f64 / span),
            num(row.failures as f64 / span),
            p(row.p50_ms),
            p(row.p95_ms),
            p(row.p99_ms),
        )
        .ok();
    }
    out
}

/// `PREFIX_metrics.csv`: every metric of the run (built-in, protocol, custom), one
/// statistic a row.
pub fn metrics(report: &RunReport) -> String {
    let mut out = String::from("Metric,Kind,Unit,Protocol,Statistic,Value\n");
    for m in super::metrics::summarise(report) {
        for (stat, v) in &m.stats {
            writeln!(
                out,
                "{},{},{},{},{},{}",
                field(&m.name),
                m.kind,
                field(&m.unit),
                field(&m.protocol),
                stat,
                num(*v)
            )
            .ok();
        }
    }
    out
}

/// `PREFIX_groups.csv` / `PREFIX_tasks.csv`: results per group or per weighted task.
pub fn breakdown(report: &RunReport, tag: &str) -> String {
    let rows = if tag == "group" { &report.groups } else { &report.tasks };
    let header: Vec<String> = super::breakdown_header(tag).iter().map(|h| h.to_string()).collect();
    let mut out = header.join(",") + "\n";
    for row in super::breakdown_cells(rows, tag) {
        let row: Vec<String> = row.iter().map(|c| field(c.trim_end_matches("ms").trim_end_matches('%'))).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// `PREFIX_run.csv` (written when the load was set from outside the script or a
/// threshold stopped the run): one `Key,Value` row each for the verdict, the load
/// level, overrides and seed, and the threshold that stopped the run.
pub fn run_facts(report: &RunReport) -> String {
    let mut out = String::from("Key,Value\n");
    let mut put = |k: &str, v: String| {
        writeln!(out, "{k},{}", field(&v)).ok();
    };
    put("verdict", super::verdict_word(report).to_string());
    put("exit_code", report.exit.code().to_string());
    if let Some(l) = &report.level {
        put("level", l.clone());
    }
    if let Some(o) = &report.overrides {
        put("overrides", o.clone());
    }
    if let Some(s) = report.seed {
        put("seed", s.to_string());
    }
    if let Some(a) = &report.aborted {
        put("stopped_by", format!("{} {}", a.selector, a.condition));
        put("stopped_at_s", num(a.at_s));
        put("stopped_observed", a.observed.map(num).unwrap_or_default());
        put("stopped_origin", a.origin.clone());
    }
    out
}

/// `--out csv=PREFIX`.
pub struct CsvOutput {
    /// `results/run` writes `results/run_stats.csv` and the others.
    pub prefix: PathBuf,
}

impl Output for CsvOutput {
    fn finish(&self, report: &RunReport, _meta: &RunMeta) -> Result<Vec<String>, String> {
        let mut written = Vec::new();
        for (suffix, text) in [
            ("_stats.csv", stats(report)),
            ("_failures.csv", failures(report)),
            ("_stats_history.csv", history(report)),
            ("_metrics.csv", metrics(report)),
        ]
        .into_iter()
        .chain((!report.groups.is_empty()).then(|| ("_groups.csv", breakdown(report, "group"))))
        .chain((!report.tasks.is_empty()).then(|| ("_tasks.csv", breakdown(report, "task"))))
        .chain(
            (report.aborted.is_some() || super::load_line(report).is_some()).then(|| ("_run.csv", run_facts(report))),
        ) {
            let mut name = self.prefix.as_os_str().to_owned();
            name.push(suffix);
            let path = PathBuf::from(name);
            super::write_file(&path, &text)?;
            written.push(path.display().to_string());
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn stats_and_failures_use_locust_columns() {
        let report = fixture::report();
        insta::assert_snapshot!("csv_stats", stats(&report));
        insta::assert_snapshot!("csv_failures", failures(&report));
        let h = history(&report);
        let lines: Vec<&str> = h.lines().collect();
        // One row per second of the 10 s run; the totals run up to the run's totals.
        assert_eq!(lines.len(), 11, "{h}");
        assert!(lines[1].ends_with(",150,5"), "{h}");
        assert!(lines[10].ends_with(",150,5"), "{h}");
        assert!(lines[1].starts_with("18000000"), "{h}");
        let m = metrics(&report);
        assert!(m.starts_with("Metric,Kind,Unit,Protocol,Statistic,Value\nhttp_reqs,counter,,http,count,150\n"), "{m}");
    }

    #[test]
    fn fields_with_commas_are_quoted() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\", ok"), "\"say \"\"hi\"\", ok\"");
    }
}
