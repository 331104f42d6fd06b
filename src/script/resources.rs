//! `resources::*`: resource sampling during a run (PZ-14961). A background thread samples,
//! with `sysinfo`, the load generator itself (this process), optionally a named target
//! process on the same host, and the host's network interfaces, each apart (host-wide
//! counters: every process's traffic; on loopback each byte is both sent and received);
//! `stop()` returns the time series and a summary and records them as gauges so
//! thresholds can judge them.
//! May import `context` (to record gauges) and `crate::metrics`.

use super::context;
use super::opts::Opts;
use crate::metrics::MetricKind;
use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map, NativeCallContext};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sysinfo::{Networks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// One sample of the time series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub t_s: f64,
    /// Generator CPU, % of one core (can exceed 100 on several cores).
    pub cpu_percent: f64,
    /// Generator resident memory (MB).
    pub memory_mb: f64,
    /// Target process CPU and memory, when it was found.
    pub target: Option<(f64, f64)>,
    /// Host bytes sent and received since the sampler started (all interfaces).
    pub bytes_sent: u64,
    /// See `bytes_sent`.
    pub bytes_received: u64,
    /// The same per interface, by name (sorted): `(name, sent, received)`.
    pub interfaces: Vec<(String, u64, u64)>,
}

/// The longest sampling interval: longer ones are mistakes (and would overflow an instant).
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// What the sampling thread owns.
struct Probe {
    system: System,
    networks: Networks,
    me: Pid,
    target: Option<String>,
    target_pid: Option<Pid>,
    net_base: Vec<(String, u64, u64)>,
    started: Instant,
}

/// Bytes sent and received so far per interface, sorted by name.
fn net_by_interface(networks: &Networks) -> Vec<(String, u64, u64)> {
    let mut v: Vec<_> =
        networks.iter().map(|(name, n)| (name.clone(), n.total_transmitted(), n.total_received())).collect();
    v.sort();
    v
}

const MB: f64 = 1024.0 * 1024.0;

impl Probe {
    fn new(target: Option<String>) -> Result<Probe, String> {
        let me = sysinfo::get_current_pid().map_err(|e| format!("cannot find this process: {e}"))?;
        let networks = Networks::new_with_refreshed_list();
        let net_base = net_by_interface(&networks);
        let mut probe =
            Probe { system: System::new(), networks, me, target, target_pid: None, net_base, started: Instant::now() };
        probe.refresh();
        Ok(probe)
    }

    /// Refreshes this process and the target (found by pid or by name on first use).
    fn refresh(&mut self) {
        let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
        if self.target.is_some() && self.target_pid.is_none() {
            self.system.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
            self.target_pid = self.find_target();
        }
        let mut pids: Vec<Pid> = std::iter::once(self.me).chain(self.target_pid).collect();
        pids.dedup(); // the target may be this process; a repeated pid is not found at all

        self.system.refresh_processes_specifics(ProcessesToUpdate::Some(&pids), true, kind);
        self.networks.refresh(true);
    }

    fn find_target(&self) -> Option<Pid> {
        let name = self.target.as_deref()?;
        if let Ok(n) = name.parse::<usize>() {
            let pid = Pid::from(n);
            return self.system.process(pid).map(|_| pid);
        }
        let mut found: Vec<Pid> = self
            .system
            .processes_by_exact_name(name.as_ref())
            .filter(|p| p.pid() != self.me)
            .map(|p| p.pid())
            .collect();
        found.sort();
        found.first().copied()
    }

    fn sample(&mut self) -> Sample {
        self.refresh();
        let base = |name: &str| self.net_base.iter().find(|b| b.0 == name).map(|b| (b.1, b.2)).unwrap_or((0, 0));
        let interfaces: Vec<(String, u64, u64)> = net_by_interface(&self.networks)
            .into_iter()
            .map(|(name, sent, received)| {
                let (s0, r0) = base(&name);
                (name, sent.saturating_sub(s0), received.saturating_sub(r0))
            })
            .collect();
        let proc_stats =
            |pid: Pid| self.system.process(pid).map(|p| (f64::from(p.cpu_usage()), p.memory() as f64 / MB));
        let (cpu_percent, memory_mb) = proc_stats(self.me).unwrap_or_default();
        Sample {
            t_s: self.started.elapsed().as_secs_f64(),
            cpu_percent,
            memory_mb,
            target: self.target_pid.and_then(proc_stats),
            bytes_sent: interfaces.iter().map(|i| i.1).sum(),
            bytes_received: interfaces.iter().map(|i| i.2).sum(),
            interfaces,
        }
    }
}

struct Inner {
    samples: Mutex<Vec<Sample>>,
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<Probe>>>,
    target: Option<String>,
}

/// A running sampler, returned by `resources::start`.
#[derive(Clone)]
pub struct Sampler(Arc<Inner>);

impl Sampler {
    /// Starts sampling every `interval` (at most [`MAX_INTERVAL`]) in a background thread.
    pub fn start(interval: Duration, target: Option<String>) -> Result<Sampler, String> {
        if interval > MAX_INTERVAL {
            return Err(format!(
                "`interval` must be at most 1h, got {}s; hint: the series needs several samples in the window, e.g. \"1s\"",
                interval.as_secs()
            ));
        }
        let mut probe = Probe::new(target.clone())?;
        let inner = Arc::new(Inner {
            samples: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
            target,
        });
        let shared = inner.clone();
        let handle = std::thread::Builder::new()
            .name("volley-resources".into())
            .spawn(move || {
                // CPU % needs two refreshes: the first sample comes one interval after start.
                let tick = Duration::from_millis(10).min(interval);
                let mut next = Instant::now() + interval;
                while !shared.stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        let s = probe.sample();
                        shared.samples.lock().unwrap_or_else(|e| e.into_inner()).push(s);
                        next += interval;
                    }
                    std::thread::sleep(tick);
                }
                probe
            })
            .map_err(|e| format!("cannot start the sampling thread: {e}"))?;
        *inner.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(Sampler(inner))
    }

    /// Stops the thread, takes a last sample, and returns the whole series. A panic of
    /// the sampling thread (a bug) comes back with the samples taken before it.
    pub fn finish(&self) -> (Vec<Sample>, Option<Box<dyn std::any::Any + Send>>) {
        self.0.stop.store(true, Ordering::Relaxed);
        let handle = self.0.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut samples = std::mem::take(&mut *self.0.samples.lock().unwrap_or_else(|e| e.into_inner()));
        match handle.map(|h| h.join()) {
            Some(Ok(mut probe)) => {
                samples.push(probe.sample());
                (samples, None)
            }
            Some(Err(panic)) => (samples, Some(panic)),
            None => (samples, None),
        }
    }
}

/// Summary statistics of the samples: `(avg, max)` of a value.
fn avg_max(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count().max(1) as f64;
    (values.clone().sum::<f64>() / n, values.fold(0.0, f64::max))
}

/// The result map `stop()` returns.
pub fn summarize(samples: &[Sample], target: Option<&str>) -> Map {
    let mut out = Map::new();
    let series: Array = samples
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("t_s".into(), s.t_s.into());
            m.insert("cpu_percent".into(), s.cpu_percent.into());
            m.insert("memory_mb".into(), s.memory_mb.into());
            if let Some((cpu, mem)) = s.target {
                m.insert("target_cpu_percent".into(), cpu.into());
                m.insert("target_memory_mb".into(), mem.into());
            }
            m.insert("bytes_sent".into(), Dynamic::from_int(s.bytes_sent as i64));
            m.insert("bytes_received".into(), Dynamic::from_int(s.bytes_received as i64));
            m.insert("interfaces".into(), interfaces_map(&s.interfaces).into());
            Dynamic::from_map(m)
        })
        .collect();
    let (cpu_avg, cpu_max) = avg_max(samples.iter().map(|s| s.cpu_percent));
    let mem_start = samples.first().map(|s| s.memory_mb).unwrap_or(0.0);
    let (_, mem_max) = avg_max(samples.iter().map(|s| s.memory_mb));
    let mut generator = Map::new();
    generator.insert("cpu_avg".into(), cpu_avg.into());
    generator.insert("cpu_max".into(), cpu_max.into());
    generator.insert("mem_start_mb".into(), mem_start.into());
    generator.insert("mem_max_mb".into(), mem_max.into());
    generator.insert("mem_growth_mb".into(), (mem_max - mem_start).max(0.0).into());
    out.insert("generator".into(), generator.into());
    let target_value = match target {
        None => Dynamic::UNIT,
        Some(name) => {
            let seen: Vec<(f64, f64)> = samples.iter().filter_map(|s| s.target).collect();
            let mut t = Map::new();
            t.insert("process".into(), name.into());
            t.insert("found".into(), (!seen.is_empty()).into());
            if seen.is_empty() {
                t.insert("error".into(), format!("no process {name:?} on this host").into());
            } else {
                let (cpu_avg, cpu_max) = avg_max(seen.iter().map(|s| s.0));
                let (_, mem_max) = avg_max(seen.iter().map(|s| s.1));
                t.insert("cpu_avg".into(), cpu_avg.into());
                t.insert("cpu_max".into(), cpu_max.into());
                t.insert("mem_start_mb".into(), seen[0].1.into());
                t.insert("mem_max_mb".into(), mem_max.into());
                t.insert("mem_growth_mb".into(), (mem_max - seen[0].1).max(0.0).into());
            }
            t.into()
        }
    };
    out.insert("target".into(), target_value);
    let last = samples.last().cloned().unwrap_or_default();
    let mut net = Map::new();
    net.insert("bytes_sent".into(), Dynamic::from_int(last.bytes_sent as i64));
    net.insert("bytes_received".into(), Dynamic::from_int(last.bytes_received as i64));
    net.insert("interfaces".into(), interfaces_map(&last.interfaces).into());
    net.insert("scope".into(), NET_SCOPE.into());
    out.insert("net".into(), net.into());
    out.insert("window_s".into(), last.t_s.into());
    out.insert("samples".into(), series.into());
    out
}

/// What the network figures count, for the report.
pub const NET_SCOPE: &str = "host-wide bytes per interface since the sampler started (every process on the host; \
on loopback each byte is counted as sent and as received); bytes_sent/bytes_received sum all interfaces";

/// `#{ "eth0": #{ bytes_sent, bytes_received }, ... }`.
fn interfaces_map(interfaces: &[(String, u64, u64)]) -> Map {
    interfaces
        .iter()
        .map(|(name, sent, received)| {
            let mut m = Map::new();
            m.insert("bytes_sent".into(), Dynamic::from_int(*sent as i64));
            m.insert("bytes_received".into(), Dynamic::from_int(*received as i64));
            (name.as_str().into(), Dynamic::from_map(m))
        })
        .collect()
}

/// Records every sample as gauges (`generator_cpu_percent`, `generator_memory_mb`,
/// `target_cpu_percent`, `target_memory_mb`, `net_bytes_sent`, `net_bytes_received`) and
/// the summary as `generator_cpu_avg`, `generator_memory_growth_mb`, and for a found
/// target `target_cpu_avg`, `target_memory_growth_mb`.
fn record(samples: &[Sample], summary: &Map) -> Result<(), Box<EvalAltResult>> {
    let thread = context::thread()?;
    let tags = context::vu_tags([])?;
    let gauge = |name: &str| context::define(name, MetricKind::Gauge);
    let (cpu, mem, tcpu, tmem) = (
        gauge("generator_cpu_percent")?,
        gauge("generator_memory_mb")?,
        gauge("target_cpu_percent")?,
        gauge("target_memory_mb")?,
    );
    let (sent, received) = (gauge("net_bytes_sent")?, gauge("net_bytes_received")?);
    for s in samples {
        thread.record(&cpu, &tags, s.cpu_percent);
        thread.record(&mem, &tags, s.memory_mb);
        if let Some((c, m)) = s.target {
            thread.record(&tcpu, &tags, c);
            thread.record(&tmem, &tags, m);
        }
        thread.record(&sent, &tags, s.bytes_sent as f64);
        thread.record(&received, &tags, s.bytes_received as f64);
    }
    for process in ["generator", "target"] {
        let Some(p) = summary.get(process).and_then(|p| p.read_lock::<Map>().map(|m| m.clone())) else { continue };
        for (suffix, key) in [("cpu_avg", "cpu_avg"), ("memory_growth_mb", "mem_growth_mb")] {
            if let Some(v) = p.get(key).and_then(|v| v.as_float().ok()) {
                thread.record(&gauge(&format!("{process}_{suffix}"))?, &tags, v);
            }
        }
    }
    Ok(())
}

/// The `resources` module.
#[export_module]
pub mod resources_api {
    use super::*;

    /// Starts sampling CPU %, memory and network in the background. Options: `interval`
    /// (default "1s", from 10ms to 1h), `process` (a target process on this host, by
    /// name or pid; "" or absent for none). A missing target is reported by `stop()`,
    /// not raised.
    /// ```rhai
    /// let sampler = resources::start(#{ interval: "1s", process: "focus-server" });
    /// ```
    #[rhai_fn(name = "start", return_raw)]
    pub fn start(ctx: NativeCallContext, options: Map) -> Result<Sampler, Box<EvalAltResult>> {
        let run = || -> Result<Sampler, Box<EvalAltResult>> {
            let o = Opts::new(&options, "resources::start", &["interval", "process"])?;
            let interval = o.duration("interval")?.unwrap_or(Duration::from_secs(1));
            if interval < Duration::from_millis(10) {
                return Err(format!("resources::start: `interval` must be at least 10ms, got {interval:?}; hint: CPU % needs a window, e.g. \"1s\"").into());
            }
            let process = options.get("process").map(|p| p.to_string()).filter(|p| !p.is_empty() && p != "()");
            Sampler::start(interval, process).map_err(|e| format!("resources::start: {e}").into())
        };
        run().map_err(|e| crate::script::at(&ctx, e))
    }

    /// Starts sampling the generator only, every second.
    /// ```rhai
    /// let sampler = resources::start();
    /// ```
    #[rhai_fn(name = "start", return_raw)]
    pub fn start_default(ctx: NativeCallContext) -> Result<Sampler, Box<EvalAltResult>> {
        start(ctx, Map::new())
    }

    /// Stops the sampler and returns `#{ samples, generator: #{ cpu_avg, cpu_max,
    /// mem_start_mb, mem_max_mb, mem_growth_mb }, target: #{ process, found, ... } or (),
    /// net: #{ bytes_sent, bytes_received, interfaces: #{ NAME: #{ bytes_sent,
    /// bytes_received } }, scope }, window_s }` (network counters are host-wide, per
    /// interface; `scope` says so in words); also records the gauges
    /// `generator_cpu_percent`, `generator_memory_mb`, `target_cpu_percent`,
    /// `target_memory_mb`, `net_bytes_sent`, `net_bytes_received`, `generator_cpu_avg`
    /// and `generator_memory_growth_mb` (and `target_cpu_avg`, `target_memory_growth_mb`
    /// for a found target) for thresholds. CPU is % of one core.
    /// ```rhai
    /// let res = sampler.stop();
    /// expect(res.generator.mem_growth_mb, "< 500", "memory growth (MB)");
    /// ```
    #[rhai_fn(global, name = "stop", return_raw)]
    pub fn stop(ctx: NativeCallContext, sampler: &mut Sampler) -> Result<Map, Box<EvalAltResult>> {
        let (samples, panic) = sampler.finish();
        if let Some(panic) = panic {
            let shared = context::thread().map_err(|e| crate::script::at(&ctx, e))?.shared.clone();
            shared.record_internal_error("the resources sampler", panic.as_ref());
        }
        let summary = summarize(&samples, sampler.0.target.as_deref());
        record(&samples, &summary).map_err(|e| crate::script::at(&ctx, e))?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process_and_reports_a_missing_target() {
        let sampler = Sampler::start(Duration::from_millis(20), Some("no-such-process-volley".into())).unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        // At least 120 ms (the window below), then until the thread took two samples
        // (`finish` adds the third), however slowly it is scheduled.
        std::thread::sleep(Duration::from_millis(120));
        let deadline = Instant::now() + Duration::from_secs(10);
        while sampler.0.samples.lock().unwrap().len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (samples, panic) = sampler.finish();
        assert!(panic.is_none());
        assert!(samples.len() >= 3, "{samples:?}");
        assert!(samples.iter().all(|s| s.memory_mb > 1.0), "{samples:?}");
        assert!(samples.windows(2).all(|w| w[0].t_s <= w[1].t_s));
        let summary = summarize(&samples, Some("no-such-process-volley"));
        let target = summary["target"].read_lock::<Map>().unwrap().clone();
        assert!(!target["found"].as_bool().unwrap());
        assert!(target["error"].to_string().contains("no-such-process-volley"));
        assert!(summary["window_s"].as_float().unwrap() >= 0.1);
    }

    #[test]
    fn a_panicking_sampling_thread_is_reported_not_lost() {
        let handle = std::thread::Builder::new()
            .spawn(|| -> Probe { panic!("overflow when adding duration to instant") })
            .unwrap();
        let inner = Arc::new(Inner {
            samples: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            thread: Mutex::new(Some(handle)),
            target: None,
        });
        let (samples, panic) = Sampler(inner).finish();
        assert!(samples.is_empty());
        let what = crate::engine::panic_text(panic.expect("the panic comes back").as_ref());
        assert!(what.contains("overflow when adding duration"), "{what}");
    }

    #[test]
    fn finds_a_target_by_pid() {
        let me = std::process::id().to_string();
        let sampler = Sampler::start(Duration::from_millis(20), Some(me.clone())).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        let (samples, panic) = sampler.finish();
        assert!(panic.is_none());
        assert!(samples.iter().any(|s| s.target.is_some()), "{samples:?}");
        let summary = summarize(&samples, Some(&me));
        let target = summary["target"].read_lock::<Map>().unwrap().clone();
        assert!(target["found"].as_bool().unwrap());
        assert!(target["mem_max_mb"].as_float().unwrap() > 1.0);
    }

    #[test]
    fn summary_of_a_series() {
        let s = |t_s, cpu, mem| Sample { t_s, cpu_percent: cpu, memory_mb: mem, bytes_sent: 10, ..Default::default() };
        let summary = summarize(&[s(1.0, 10.0, 100.0), s(2.0, 30.0, 150.0), s(3.0, 20.0, 120.0)], None);
        let g = summary["generator"].read_lock::<Map>().unwrap().clone();
        assert_eq!(g["cpu_avg"].as_float().unwrap(), 20.0);
        assert_eq!(g["cpu_max"].as_float().unwrap(), 30.0);
        assert_eq!(g["mem_growth_mb"].as_float().unwrap(), 50.0);
        assert!(summary["target"].is_unit());
        assert_eq!(summary["window_s"].as_float().unwrap(), 3.0);
    }

    #[test]
    fn network_is_counted_per_interface() {
        let s = Sample {
            t_s: 1.0,
            bytes_sent: 30,
            bytes_received: 50,
            interfaces: vec![("eth0".into(), 10, 30), ("lo".into(), 20, 20)],
            ..Default::default()
        };
        let summary = summarize(&[s], None);
        let net = summary["net"].read_lock::<Map>().unwrap().clone();
        let ifs = net["interfaces"].read_lock::<Map>().unwrap().clone();
        let eth0 = ifs["eth0"].read_lock::<Map>().unwrap().clone();
        assert_eq!((eth0["bytes_sent"].as_int().unwrap(), eth0["bytes_received"].as_int().unwrap()), (10, 30));
        assert_eq!(net["bytes_sent"].as_int().unwrap(), 30);
        assert!(net["scope"].to_string().contains("per interface"));
    }

    #[test]
    fn an_interval_too_long_is_an_error_not_a_panic() {
        let e = Sampler::start(Duration::from_secs(i64::MAX as u64), None).err().unwrap();
        assert!(e.contains("at most 1h") && e.contains("9223372036854775807s"), "{e}");
    }
}
