//! Every script in examples/ runs (shortened) against the real simulator and passes.

use crate::support::run_with;
use volley::engine::ExitCode;
use volley::sim::{SimConfig, SimHandle};

fn sim(config: SimConfig) -> SimHandle {
    SimHandle::start(config, "127.0.0.1:0".parse().unwrap()).unwrap()
}

fn run_example(name: &str, sim: &SimHandle, extra: &[(&str, &str)], scale: f64) -> volley::engine::RunReport {
    let (focus, alerts) = (sim.focus_url(), sim.alerts_url());
    let mut env = vec![("FOCUS_URL", focus.as_str()), ("ALERTS_URL", alerts.as_str())];
    env.extend_from_slice(extra);
    let report = run_with(std::path::Path::new(&format!("examples/{name}.rhai")), &env, scale);
    assert_eq!(report.exit, ExitCode::Passed, "{name}:\n{}", volley::report::summary::render(&report));
    report
}

#[test]
fn hello() {
    let s = sim(SimConfig::default());
    let r = run_example("hello", &s, &[], 1.0);
    assert_eq!(r.requests[0].count, 1);
}

#[test]
fn closed_model() {
    let s = sim(SimConfig::default());
    let r = run_example("closed_model", &s, &[("VUS", "5"), ("DURATION", "2s")], 1.0);
    assert!(r.requests.iter().any(|q| q.name == "configure" && q.count >= 5));
}

#[test]
fn open_ramp() {
    let s = sim(SimConfig::default());
    let r = run_example("open_ramp", &s, &[], 0.1);
    assert_eq!(r.phases[0].executor, "ramping-arrival-rate");
    assert!(r.phases[0].iterations >= 40, "{:?}", r.phases[0]);
}

#[test]
fn phases() {
    let s = sim(SimConfig::default());
    let r = run_example("phases", &s, &[("PAUSE", "500ms")], 0.1);
    let names: Vec<&str> = r.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["load", "after"]);
}

#[test]
fn retry_429_against_a_tight_rate_limit() {
    let mut config = SimConfig::default();
    config.limits.push_rate_per_s = 10.0;
    config.limits.push_burst = 5;
    let s = sim(config);
    let r = run_example("retry_429", &s, &[("RATE", "20"), ("DURATION", "1s")], 1.0);
    let attempts = r.aggregate.query("retry_attempts", &[]).unwrap();
    let max = attempts.stat(volley::metrics::Stat::Max, std::time::Duration::ZERO).unwrap().unwrap();
    assert!(max > 1.0, "the rate limit should have forced retries");
    let push = r.requests.iter().find(|q| q.name == "push-to-rabbit").unwrap();
    assert!(push.count > push.logical, "attempts on the wire exceed logical requests: {push:?}");
    assert_eq!(push.failures, 0);
}
