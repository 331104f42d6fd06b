//! The PZ suite (scripts/): every non-AMQP script passes against the healthy simulator
//! (shortened), and the load scripts whose criteria the overloaded simulator breaks fail
//! for the documented reason. The AMQP scripts run against the real broker on 5672.

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

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The AMQP scripts against the real broker: the simulator's alert path publishes to
/// it (exchange `prisma`), as `volley run --sim` sets it up when a broker answers.
fn passes_with_broker(script: &str, scale: f64) -> RunReport {
    let mut config = SimConfig::preset("healthy").unwrap();
    config.amqp_url = Some(BROKER.to_string());
    let sim = SimHandle::start(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let (focus, alerts) = (sim.focus_url(), sim.alerts_url());
    let env = [("FOCUS_URL", focus.as_str()), ("ALERTS_URL", alerts.as_str()), ("AMQP_URL", BROKER)];
    let r = run_with(std::path::Path::new(&format!("scripts/{script}.rhai")), &env, scale);
    assert_eq!(r.exit, ExitCode::Passed, "{script}:\n{}", volley::report::summary::render(&r));
    assert!(r.skipped.is_none(), "{script} must run, not skip, with a broker: {:?}", r.skipped);
    r
}

#[test]
fn pz_14957_rabbitmq_capacity() {
    let r = passes_with_broker("alerts/pz_14957_rabbitmq_capacity", 0.05);
    let published = r.aggregate.query("amqp_published", &[]).unwrap();
    assert_eq!(published.stat(volley::metrics::Stat::Count, std::time::Duration::ZERO).unwrap(), Some(50.0));
}

#[test]
fn pz_14960_latency() {
    let r = passes_with_broker("alerts/pz_14960_latency", 0.2);
    assert!(
        r.checks.iter().any(|c| c.name == "alert observed on RabbitMQ" && c.passes >= 10 && c.fails == 0),
        "{:?}",
        r.checks
    );
}

#[test]
fn pz_14962_end_to_end() {
    passes_with_broker("alerts/pz_14962_end_to_end", 0.2);
}

#[test]
fn pz_14963_rabbitmq_performance() {
    passes_with_broker("alerts/pz_14963_rabbitmq_performance", 0.1);
}

#[test]
fn amqp_scripts_skip_without_a_broker() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("amqp://guest:guest@{closed}/%2f");
    let r = run("alerts/pz_14957_rabbitmq_capacity", "healthy", &[("AMQP_URL", url.as_str())], 0.05);
    assert_eq!(r.exit, ExitCode::Passed);
    assert!(r.skipped.as_deref().is_some_and(|s| s.contains("needs RabbitMQ")), "{:?}", r.skipped);
}
