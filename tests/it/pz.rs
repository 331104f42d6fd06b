//! The PZ suite (scripts/): every non-AMQP script passes against the healthy simulator
//! (shortened), and the load scripts whose criteria the overloaded simulator breaks fail
//! for the documented reason. AMQP scripts are tested where the broker is set up.

use crate::support::run_with;
use volley::engine::{ExitCode, RunReport};
use volley::sim::{SimConfig, SimHandle};

fn run(script: &str, preset: &str, extra: &[(&str, &str)], scale: f64) -> RunReport {
    let sim = SimHandle::start(SimConfig::preset(preset).unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let (focus, alerts) = (sim.focus_url(), sim.alerts_url());
    let mut env = vec![("FOCUS_URL", focus.as_str()), ("ALERTS_URL", alerts.as_str())];
    env.extend_from_slice(extra);
    run_with(std::path::Path::new(&format!("scripts/{script}.rhai")), &env, scale)
}

fn passes(script: &str, extra: &[(&str, &str)], scale: f64) -> RunReport {
    let r = run(script, "healthy", extra, scale);
    assert_eq!(r.exit, ExitCode::Passed, "{script}:\n{}", volley::report::summary::render(&r));
    assert!(r.phases.iter().all(|p| p.iterations >= 1), "{script}: a phase ran no iteration: {:?}", r.phases);
    r
}

/// The failed assertions' messages.
fn failed(r: &RunReport) -> Vec<String> {
    r.assertions.iter().filter(|a| !a.passed).map(|a| a.message.clone()).collect()
}

fn fails_on(script: &str, extra: &[(&str, &str)], scale: f64, message: &str) -> RunReport {
    let r = run(script, "overloaded", extra, scale);
    let summary = volley::report::summary::render(&r);
    assert_eq!(r.exit, ExitCode::Failed, "{script} should fail under overload:\n{summary}");
    assert!(failed(&r).iter().any(|m| m.contains(message)), "{script}: expected a failed {message:?}:\n{summary}");
    r
}

#[test]
fn pz_14953_high_volume() {
    let r = passes("alerts/pz_14953_high_volume", &[], 0.03);
    assert_eq!(r.phases[0].iterations, 30);
}

#[test]
fn pz_14954_sustained() {
    passes("alerts/pz_14954_sustained", &[], 0.01);
}

#[test]
fn pz_14955_burst() {
    passes("alerts/pz_14955_burst", &[], 0.1);
}

#[test]
fn pz_14956_mixed_types() {
    passes("alerts/pz_14956_mixed_types", &[], 0.1);
}

#[test]
fn pz_14958_response_time() {
    passes("alerts/pz_14958_response_time", &[], 0.5);
}

#[test]
fn pz_14959_throughput() {
    passes("alerts/pz_14959_throughput", &[], 0.02);
}

#[test]
fn pz_14961_resource_usage() {
    let r = passes("alerts/pz_14961_resource_usage", &[("SAMPLE_INTERVAL", "200ms")], 0.02);
    assert!(r.assertions.iter().any(|a| a.message.contains("memory growth") && a.passed));
}

#[test]
fn pz_14800_concurrent_jobs() {
    passes("focus/pz_14800_concurrent_jobs", &[], 1.0);
}

#[test]
fn pz_14801_sustained() {
    passes("focus/pz_14801_sustained", &[("INTERVAL", "500ms"), ("DURATION", "4s")], 1.0);
}

#[test]
fn pz_14802_peak_load() {
    passes("focus/pz_14802_peak_load", &[], 0.05);
}

#[test]
fn pz_14803_ramp_up() {
    passes("focus/pz_14803_ramp_up", &[], 0.05);
}

#[test]
fn pz_14804_spike() {
    passes("focus/pz_14804_spike", &[], 0.1);
}

#[test]
fn pz_14805_steady_state() {
    passes("focus/pz_14805_steady_state", &[], 0.02);
}

#[test]
fn pz_14806_recovery() {
    passes("focus/pz_14806_recovery", &[], 0.05);
}

#[test]
fn pz_14807_resource_exhaustion() {
    passes("focus/pz_14807_resource_exhaustion", &[], 0.05);
}

#[test]
fn pz_13770_configure_latency() {
    passes("focus/pz_13770_configure_latency", &[], 0.2);
}

#[test]
fn pz_13771_concurrent_tasks() {
    let r = passes("focus/pz_13771_concurrent_tasks", &[], 1.0);
    let steps = r.phases.iter().filter(|p| p.name.starts_with("max-")).count();
    assert_eq!(steps, 5, "every step is healthy on the healthy simulator: {:?}", r.phases);
}

// Under the overloaded preset (25 live jobs at most, 5 alerts/s, 40 requests in flight).

#[test]
fn overloaded_pz_14802_fails_on_its_success_rate() {
    fails_on("focus/pz_14802_peak_load", &[], 0.1, "peak: jobs created (success rate)");
}

#[test]
fn overloaded_pz_14806_does_not_recover_while_the_job_limit_holds() {
    fails_on("focus/pz_14806_recovery", &[], 0.1, "recovery: jobs created (success rate)");
}

#[test]
fn overloaded_pz_13770_fails_on_the_error_rate() {
    fails_on("focus/pz_13770_configure_latency", &[], 0.5, "error rate");
}

#[test]
fn overloaded_pz_14955_bursts_fail() {
    fails_on("alerts/pz_14955_burst", &[], 0.3, "overall success rate");
}

#[test]
fn overloaded_pz_14959_misses_the_throughput() {
    fails_on("alerts/pz_14959_throughput", &[], 0.03, "achieved throughput (alerts/s)");
}

#[test]
fn overloaded_pz_14807_counts_resource_errors_and_recovers() {
    let r = run("focus/pz_14807_resource_exhaustion", "overloaded", &[], 0.1);
    let summary = volley::report::summary::render(&r);
    assert_eq!(r.exit, ExitCode::Passed, "cleanup and health still pass:\n{summary}");
    let configure = r.requests.iter().find(|q| q.name == "configure").unwrap();
    assert!(configure.failures > 0, "503s expected (job limit, in-flight cap):\n{summary}");
    let errors = r.aggregate.query("resource_errors", &[]).unwrap();
    let n = errors.stat(volley::metrics::Stat::Count, std::time::Duration::ZERO).unwrap().unwrap();
    assert!(n > 0.0, "resource errors counted:\n{summary}");
}

#[test]
fn overloaded_pz_13771_finds_the_job_limit() {
    let r = run("focus/pz_13771_concurrent_tasks", "overloaded", &[], 1.0);
    let summary = volley::report::summary::render(&r);
    let steps: Vec<&str> = r.phases.iter().filter(|p| p.name.starts_with("max-")).map(|p| p.name.as_str()).collect();
    assert!(steps.len() < 5, "the search stops at the job limit (25): {steps:?}\n{summary}");
    assert!(!failed(&r).iter().any(|m| m.contains("maximum reliable")), "at least 10 is reliable:\n{summary}");
}
