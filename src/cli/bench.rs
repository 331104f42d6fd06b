//! `volley bench SCRIPT`: times the script's `fn bench()` over warm-up and measured
//! rounds, prints pytest-benchmark statistics per request name, saves the result to
//! `.volley/benchmarks/NNNN.json` and with `--compare` fails beyond the margin.

use super::compare::LimitArgs;
use crate::bench::{self, BenchDoc, Benchmark, Stats};
use crate::engine::{self, ExitCode};
use crate::metrics::Sink;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Options of `volley bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A script defining `fn bench()`: one round (its top level runs once, before).
    pub script: PathBuf,
    /// Script variables (`env("KEY")`).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = super::run::parse_key_value)]
    pub env: Vec<(String, String)>,
    /// Measured rounds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rounds: u64,
    /// Rounds run first and not measured (connections, caches, JIT on the other side).
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Where results are saved.
    #[arg(long, value_name = "DIR", default_value = ".volley/benchmarks")]
    pub storage: PathBuf,
    /// Do not save this result.
    #[arg(long)]
    pub no_save: bool,
    /// Compare with the latest saved result (no FILE, or `latest`) or with FILE; exit 99
    /// when worse by the rules of `volley compare`.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "latest")]
    pub compare: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

fn merged(report: &engine::RunReport, metric: &str) -> BTreeMap<String, Sink> {
    let mut out: BTreeMap<String, Sink> = BTreeMap::new();
    for (tags, sink) in report.aggregate.series_of(metric) {
        if tags.get("phase") != Some("bench") {
            continue;
        }
        let name = if metric == "iteration_duration" {
            "bench()".to_string()
        } else {
            format!("{} {}", tags.get("method").unwrap_or("?"), tags.get("name").unwrap_or("?"))
        };
        match out.get_mut(&name) {
            Some(acc) => acc.merge(sink),
            None => {
                out.insert(name, sink.clone());
            }
        }
    }
    out
}

fn benchmarks(report: &engine::RunReport) -> Vec<Benchmark> {
    let mut out = Vec::new();
    for metric in ["iteration_duration", "http_req_duration"] {
        for (name, sink) in merged(report, metric) {
            let Sink::Trend(t) = &sink else { continue };
            let Some(stats) = Stats::from_hdr(&t.hist, Some((t.min, t.max, t.sum))) else { continue };
            out.push(Benchmark { name, stats, hdr_histogram: crate::report::json::hdr_base64(&sink) });
        }
    }
    out
}

fn baseline(args: &BenchArgs) -> Result<Option<(PathBuf, BenchDoc)>, String> {
    let Some(given) = &args.compare else { return Ok(None) };
    let path = if given == "latest" {
        match bench::history(&args.storage).pop() {
            Some(p) => p,
            None => return Err(format!("--compare: no saved result in {} yet", args.storage.display())),
        }
    } else {
        PathBuf::from(given)
    };
    bench::read(&path).map(|d| Some((path, d)))
}

/// Runs `volley bench`.
pub fn execute(args: BenchArgs) -> i32 {
    match bench_run(&args) {
        Ok(code) => code,
        Err((message, code)) => {
            eprintln!("{message}");
            code.code()
        }
    }
}

fn bench_run(args: &BenchArgs) -> Result<i32, (String, ExitCode)> {
    let usage = |m: String| (format!("error: {m}"), ExitCode::Usage);
    let text = std::fs::read_to_string(&args.script)
        .map_err(|e| usage(format!("cannot read {}: {e}", args.script.display())))?;
    if !text.contains("fn bench(") {
        return Err(usage(format!(
            "{} defines no `fn bench()`\nhint: put one round in `fn bench() {{ ... }}`; its top level runs once, before",
            args.script.display()
        )));
    }
    // Read the baseline first: a bad --compare file costs no rounds.
    let base = baseline(args).map_err(usage)?;
    let dir = args.script.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stem = args.script.file_stem().and_then(|s| s.to_str()).unwrap_or("bench");
    let wrapper = dir.join(format!(".{stem}.bench.rhai"));
    std::fs::write(&wrapper, bench::wrapper(&text, args.warmup, args.rounds))
        .map_err(|e| usage(format!("cannot write {}: {e}", wrapper.display())))?;
    let config = engine::RunConfig {
        env: args.env.iter().cloned().collect(),
        progress: engine::progress::ProgressMode::Off,
        ..engine::RunConfig::new(&wrapper)
    };
    let started = time::OffsetDateTime::now_utc();
    let outcome = engine::run(&config);
    let _ = std::fs::remove_file(&wrapper);
    let unwrap_name = |s: &str| s.replace(&wrapper.display().to_string(), &args.script.display().to_string());
    let report = outcome.map_err(|f| (unwrap_name(&f.rendered), f.exit))?;
    if let Some(e) = &report.script_error {
        return Err((unwrap_name(e), ExitCode::ScriptError));
    }
    let doc = BenchDoc {
        schema: bench::SCHEMA.into(),
        script: args.script.display().to_string(),
        started_at: started.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        warmup: args.warmup,
        rounds: args.rounds,
        benchmarks: benchmarks(&report),
    };
    if report.iteration_errors.iter().map(|e| e.count).sum::<u64>() > 0 {
        for e in &report.iteration_errors {
            eprintln!("{} (x{})", unwrap_name(&e.rendered), e.count);
        }
        return Err(("error: rounds failed with script errors; nothing saved".into(), ExitCode::ScriptError));
    }
    print!("{}", bench::render(&doc));
    if !args.no_save {
        let path = bench::next_file(&args.storage);
        let saved = std::fs::create_dir_all(&args.storage)
            .and_then(|()| std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"));
        saved.map_err(|e| usage(format!("cannot save {}: {e}", path.display())))?;
        println!("saved {}", path.display());
    }
    let Some((base_path, base)) = base else { return Ok(ExitCode::Passed.code()) };
    let limits = args.limits.limits();
    let mut rows = Vec::new();
    for b in &doc.benchmarks {
        let Some(a) = base.benchmarks.iter().find(|a| a.name == b.name) else { continue };
        let decode = |x: &Benchmark| x.hdr_histogram.as_deref().and_then(|t| crate::report::json::decode_hdr(t).ok());
        if let (Some(ha), Some(hb)) = (decode(a), decode(b)) {
            rows.extend(crate::report::compare::compare_histograms(&b.name, &ha, &hb, limits));
        }
    }
    let c = crate::report::compare::Comparison { kind: "bench", rows, tests: Vec::new(), limits };
    print!("\n{}", crate::report::compare::render(&c, &base_path.display().to_string(), "this run"));
    Ok(if c.regressed() { ExitCode::Failed.code() } else { ExitCode::Passed.code() })
}
