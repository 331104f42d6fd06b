//! `volley watch PATH [run options]`: run, then re-run on every save of the scripts, their
//! directory, or a stdlib module. A save during a run stops it gracefully first. Errors
//! in a script print their diagnostic and the watcher waits for the next save; after each
//! run it prints the change of key figures since the previous one. With `--dashboard` one
//! page follows every re-run, the previous run's figures beside the new ones.

use super::run::{self, RunArgs};
use crate::engine;
use crate::metrics::{Sink, Stat};
use crate::report::suite::ScriptResult;
use notify_debouncer_full::notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Options of `volley watch`: the same as `volley run`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Run options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The figures compared from one run to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// p95 of every HTTP request, ms.
    pub p95_ms: Option<f64>,
    /// Share of logical requests that succeeded.
    pub success: Option<f64>,
    /// Requests per second.
    pub rps: f64,
}

impl Figures {
    /// Figures of a run's results.
    pub fn of(results: &[ScriptResult]) -> Figures {
        let mut latency: Option<Sink> = None;
        let (mut requests, mut logical, mut failed, mut secs) = (0u64, 0u64, 0u64, 0f64);
        for r in results.iter().filter_map(|r| r.report.as_ref()) {
            if let Some(s) = r.aggregate.query("http_req_duration", &[]) {
                match &mut latency {
                    Some(acc) => acc.merge(&s),
                    None => latency = Some(s),
                }
            }
            requests += r.requests.iter().map(|q| q.count).sum::<u64>();
            logical += r.requests.iter().map(|q| q.logical).sum::<u64>();
            failed += r.requests.iter().map(|q| q.failures).sum::<u64>();
            secs += r.elapsed.as_secs_f64();
        }
        Figures {
            p95_ms: latency.and_then(|s| s.stat(Stat::Percentile(95.0), Duration::ZERO).ok().flatten()),
            success: (logical > 0).then(|| (logical - failed) as f64 / logical as f64),
            rps: if secs > 0.0 { requests as f64 / secs } else { 0.0 },
        }
    }

    /// "p95 12.1 → 15.3 ms (+3.2), success 100.0% → 98.0%, req/s 50.0 → 48.2".
    pub fn delta(&self, before: &Figures) -> String {
        let mut parts = Vec::new();
        if let (Some(a), Some(b)) = (before.p95_ms, self.p95_ms) {
            parts.push(format!("p95 {a:.1} → {b:.1} ms ({:+.1})", b - a));
        }
        if let (Some(a), Some(b)) = (before.success, self.success) {
            parts.push(format!("success {:.1}% → {:.1}%", a * 100.0, b * 100.0));
        }
        parts.push(format!("req/s {:.1} → {:.1}", before.rps, self.rps));
        parts.join(", ")
    }
}

/// The directories to watch: each path (or its directory), and the stdlib it imports from.
fn watch_dirs(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for p in paths {
        let script_like = if p.is_dir() { p.join("x.rhai") } else { p.clone() };
        for d in crate::script::module_dirs(&script_like) {
            let d = std::fs::canonicalize(&d).unwrap_or(d);
            if d.is_dir() && !dirs.iter().any(|known| d.starts_with(known)) {
                dirs.retain(|known| !known.starts_with(&d));
                dirs.push(d);
            }
        }
    }
    dirs
}

/// A write, create, rename or removal; not a read (each run reads the scripts, which
/// would otherwise trigger the next run) nor a metadata change.
fn is_save(kind: &notify_debouncer_full::notify::EventKind) -> bool {
    use notify_debouncer_full::notify::EventKind as K;
    use notify_debouncer_full::notify::event::ModifyKind as M;
    matches!(kind, K::Create(_) | K::Remove(_) | K::Modify(M::Data(_) | M::Name(_) | M::Any | M::Other))
}

fn relevant(path: &Path) -> bool {
    path.extension().is_some_and(|e| matches!(e.to_str(), Some("rhai" | "csv" | "json" | "toml")))
}

/// Runs `volley watch`.
pub fn execute(args: WatchArgs) -> i32 {
    // A script not written yet is waited for, in a directory that exists.
    let nowhere = |p: &&PathBuf| !p.exists() && p.parent().is_some_and(|d| !d.as_os_str().is_empty() && !d.is_dir());
    if let Some(p) = args.run.paths.iter().find(nowhere) {
        eprintln!(
            "error: no such file or directory: {}; hint: `volley watch` waits for a script to be created only in a directory that exists",
            p.display()
        );
        return 2;
    }
    run::install_signal_handler();
    run::raise_nofile();
    let (_sim, env) = match run::prepare_env(&args.run) {
        Ok(v) => v,
        Err(code) => return code,
    };
    // One dashboard for every re-run: the page stays open across saves.
    let dashboard = match run::start_dashboard(&args.run) {
        Ok(d) => d.map(std::sync::Arc::new),
        Err(code) => return code,
    };
    let (tx, rx) = mpsc::channel::<Instant>();
    let debouncer = new_debouncer(Duration::from_millis(150), None, move |res: DebounceEventResult| {
        if let Ok(events) = res
            && let Some(e) = events.iter().find(|e| is_save(&e.kind) && e.paths.iter().any(|p| relevant(p)))
        {
            let _ = tx.send(e.time);
        }
    });
    let mut debouncer = match debouncer {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot watch files: {e}");
            return 2;
        }
    };
    let dirs = watch_dirs(&args.run.paths);
    for d in &dirs {
        if let Err(e) = debouncer.watch(d, RecursiveMode::Recursive) {
            eprintln!("error: cannot watch {}: {e}", d.display());
            return 2;
        }
    }
    if dirs.is_empty() {
        eprintln!("error: nothing to watch: no directory of the paths given exists");
        return 2;
    }
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    eprintln!("volley watch: watching {} (Ctrl-C to quit)", shown.join(", "));
    let mut previous: Option<Figures> = None;
    loop {
        let (run_args, run_env) = (args.run.clone(), env.clone());
        // Each re-run is a new run with its own stop handle.
        let stop = std::sync::Arc::new(crate::script::context::Stop::default());
        run::set_signal_target(Some(stop.clone()));
        let run_stop = stop.clone();
        let run_dashboard = dashboard.clone();
        let handle = std::thread::spawn(move || {
            let scripts = run::select(&run_args)?;
            run::run_scripts(&run_args, scripts, &run_env, &run_stop, run_dashboard.as_deref())
        });
        // A save during the run stops it gracefully; the re-run follows.
        let mut pending: Option<Instant> = None;
        while !handle.is_finished() {
            if let Ok(t) = rx.recv_timeout(Duration::from_millis(50)) {
                pending.get_or_insert(t);
                stop.interrupt();
            }
        }
        let outcome = handle.join();
        run::set_signal_target(None);
        if run::stop_requested() {
            return engine::ExitCode::Interrupted.code();
        }
        match outcome {
            Ok(Ok(outcome)) if pending.is_none() => {
                let figures = Figures::of(&outcome.results);
                match &previous {
                    Some(before) => eprintln!("volley watch: since the previous run: {}", figures.delta(before)),
                    None => eprintln!("volley watch: first run done"),
                }
                previous = Some(figures);
            }
            Ok(Ok(_)) => eprintln!("volley watch: run stopped by a change"),
            Ok(Err(_)) => eprintln!("volley watch: fix the script and save; waiting"),
            Err(_) => eprintln!("volley watch: the run ended abnormally; waiting for the next save"),
        }
        let saved = match pending {
            Some(t) => t,
            None => loop {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(t) => break t,
                    Err(mpsc::RecvTimeoutError::Timeout) if run::stop_requested() => {
                        return engine::ExitCode::Interrupted.code();
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return 2,
                }
            },
        };
        while rx.try_recv().is_ok() {}
        eprintln!("volley watch: change saved; re-running ({} ms after the save)", saved.elapsed().as_millis());
    }
}
