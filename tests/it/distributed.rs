//! Distributed runs (issue 17): agents on loopback, the coordinator's totals against the
//! server's counts and a single process, exact merged percentiles, an open-model rate
//! across agents, a lost agent, a lost coordinator, the token, and the manifests.

use crate::support;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn volley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volley"))
}

fn doc(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn hist(v: &serde_json::Value) -> hdrhistogram::Histogram<u64> {
    volley::report::json::decode_hdr(v.as_str().expect("an hdr_histogram")).unwrap()
}

/// The request row named `name` of a run document.
fn row<'a>(d: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    d["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no request row {name} in {}", d["requests"]))
}

/// A statistic of a metric in a run document (`count` of `iterations`).
fn stat(d: &serde_json::Value, metric: &str, name: &str) -> f64 {
    let stats = &d["metrics"][metric]["stats"];
    let found = match stats {
        serde_json::Value::Array(pairs) => pairs.iter().find(|p| p[0] == name).map(|p| p[1].clone()),
        serde_json::Value::Object(m) => m.get(name).cloned(),
        _ => None,
    };
    found.and_then(|v| v.as_f64()).unwrap_or_else(|| panic!("no {metric} {name} in {stats}"))
}

/// An agent process on a free loopback port; killed when dropped.
struct Agent {
    child: Child,
    addr: String,
}

impl Agent {
    fn start(token: &str, once: bool) -> Agent {
        let mut cmd = volley();
        cmd.args(["agent", "--listen", "127.0.0.1:0", "--workers", "1"]);
        if once {
            cmd.arg("--once");
        }
        let mut child = cmd.env("VOLLEY_TOKEN", token).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("volley agent: listening on ").expect(&line).to_string();
        Agent { child, addr }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MIX: &str = r#"
let base = env("BASE_URL");
let delays = [1, 3, 8, 20];
phase("mix", #{ executor: "shared-iterations", vus: 6, iterations: 240 }, || {
    http::get(`${base}/ok`, #{ name: "ok" });
    let ms = pick(delays);
    let r = http::get(`${base}/slow?ms=${ms}`, #{ name: "slow" });
    check(r, #{ "is 200": |r| r.status == 200 });
});
"#;

#[test]
fn three_local_agents_count_what_the_server_saw_and_what_one_process_counts() {
    let server = support::start();
    let (dir, script) = support::script(MIX);
    let (whole, parts, single) = (dir.path().join("whole.json"), dir.path().join("parts"), dir.path().join("one.json"));
    let out = volley()
        .args(["run", "--progress", "off", "--local-agents", "3"])
        .arg(&script)
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .arg(format!("--out=json={}", whole.display()))
        .arg("--agent-out")
        .arg(&parts)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for i in 1..=3 {
        assert!(text(&out).contains(&format!("agent {i}/3 (127.0.0.1:")), "{}", text(&out));
    }
    let d = doc(&whole);
    assert_eq!(server.count("/ok"), 240);
    assert_eq!(server.count("/slow"), 240);
    assert_eq!(row(&d, "ok")["count"], 240);
    assert_eq!(row(&d, "slow")["count"], 240);
    assert_eq!(stat(&d, "iterations", "count"), 240.0);
    assert_eq!(d["checks"][0]["passes"], 240, "{}", d["checks"]);

    // Every agent took part, and the parts add up to the whole, exactly.
    let mut merged: Option<hdrhistogram::Histogram<u64>> = None;
    let mut counts = Vec::new();
    for i in 1..=3 {
        let p = doc(&parts.join(format!("agent-{i}-of-3.json")));
        let slow = row(&p, "slow");
        counts.push(slow["count"].as_u64().unwrap());
        let h = hist(&slow["hdr_histogram"]);
        match merged.as_mut() {
            Some(m) => m.add(&h).unwrap(),
            None => merged = Some(h),
        }
    }
    assert!(counts.iter().all(|c| *c > 0), "every agent ran iterations: {counts:?}");
    assert_eq!(counts.iter().sum::<u64>(), 240);
    let whole_hist = hist(&row(&d, "slow")["hdr_histogram"]);
    let merged = merged.unwrap();
    assert_eq!(merged, whole_hist, "the coordinator's histogram is the agents' histograms merged");
    for q in [0.5, 0.95, 0.99] {
        assert_eq!(merged.value_at_quantile(q), whole_hist.value_at_quantile(q));
    }

    // `volley merge` of the agents' files gives the coordinator's numbers.
    let merged_file = dir.path().join("merged.json");
    let m = volley()
        .arg("merge")
        .args((1..=3).map(|i| parts.join(format!("agent-{i}-of-3.json"))))
        .arg(format!("--out=json={}", merged_file.display()))
        .output()
        .unwrap();
    assert_eq!(m.status.code(), Some(0), "{}", text(&m));
    let md = doc(&merged_file);
    for key in ["count", "p50", "p95", "p99", "max"] {
        assert_eq!(row(&md, "slow")[key], row(&d, "slow")[key], "{key}");
    }

    // A single process on the same script counts the same.
    let before = server.count("/slow");
    let one = volley()
        .args(["run", "--progress", "off"])
        .arg(&script)
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .arg(format!("--out=json={}", single.display()))
        .output()
        .unwrap();
    assert_eq!(one.status.code(), Some(0), "{}", text(&one));
    let s = doc(&single);
    assert_eq!(server.count("/slow") - before, 240);
    assert_eq!(row(&s, "slow")["count"], row(&d, "slow")["count"]);
    assert_eq!(stat(&s, "iterations", "count"), stat(&d, "iterations", "count"));
}

#[test]
fn an_open_rate_across_agents_starts_exactly_the_planned_arrivals() {
    // 2,000 iterations/s for 2 s over 3 agents: the union of their arrivals is the
    // single plan's 4,000, so the rate is exact, not within rounding of 3 rates.
    let (dir, script) = support::script(
        r#"
let hits = metrics::counter("hits");
let p = phase("open", #{ executor: "constant-arrival-rate", rate: 2000, duration: "2s", max_vus: 300 }, || {
    hits.add(1);
});
assert(p.iterations + p.dropped_iterations == 4000, `planned arrivals: ${p.iterations} + ${p.dropped_iterations}`);
"#,
    );
    let json = dir.path().join("open.json");
    let out = volley()
        .args(["run", "--progress", "off", "--local-agents", "3"])
        .arg(&script)
        .arg(format!("--out=json={}", json.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let d = doc(&json);
    let iterations = stat(&d, "iterations", "count");
    let dropped = d["phases"][0]["dropped_iterations"].as_f64().unwrap();
    assert_eq!(iterations + dropped, 4000.0);
    // The sum above is exact; how many arrivals found a free VU depends on the machine
    // (a loaded one may drop some), but most did.
    assert!(iterations >= 2000.0, "iterations {iterations}, dropped {dropped}");
    assert_eq!(stat(&d, "hits", "count"), iterations, "the custom metric counted on the agents");
}

const STEADY: &str = r#"
let base = env("BASE_URL");
phase("steady", #{ executor: "constant-vus", vus: 3, duration: env("FOR", "4s") }, || {
    http::get(`${base}/ok`, #{ name: "ok" });
    sleep(0.02);
});
"#;

/// A coordinator (token `tok`) on `agents`, writing `json`, running in the background.
fn coordinator(script: &Path, agents: &[&str], base: &str, json: &Path) -> Child {
    let mut cmd = volley();
    cmd.args(["run", "--progress", "off", "--token", "tok"]).arg(script);
    for a in agents {
        cmd.args(["--agent", a]);
    }
    cmd.args(["-e", &format!("BASE_URL={base}")])
        .arg(format!("--out=json={}", json.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// STEADY with its phase lasting `duration` (a script literal such as "20s").
fn steady_for(duration: &str) -> String {
    let default = "env(\"FOR\", \"4s\")";
    assert!(STEADY.contains(default), "STEADY no longer reads its duration as {default}");
    STEADY.replace(default, &format!("\"{duration}\""))
}

/// `n` agents (token `tok`) and a coordinator on them running STEADY for 20 s against
/// `server`, writing `name` in the returned temp dir. The tests stop an agent once the
/// load is running: 20 s leave room for a slow start, so that it lands inside the phase.
fn steady_on_agents(
    n: usize,
    server: &support::TestServer,
    name: &str,
) -> (tempfile::TempDir, std::path::PathBuf, Vec<Agent>, Child) {
    let (dir, script) = support::script(&steady_for("20s"));
    let json = dir.path().join(name);
    let agents: Vec<Agent> = (0..n).map(|_| Agent::start("tok", true)).collect();
    let addrs: Vec<&str> = agents.iter().map(|a| a.addr.as_str()).collect();
    let coordinator = coordinator(&script, &addrs, &server.base, &json);
    (dir, json, agents, coordinator)
}

fn wait_for_requests(server: &support::TestServer, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.count("/ok") < n {
        assert!(Instant::now() < deadline, "the load never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_agent_killed_mid_run_is_reported_and_the_run_completes() {
    let server = support::start();
    let (_dir, json, agents, coordinator) = steady_on_agents(3, &server, "lost.json");
    wait_for_requests(&server, 30);
    let mut agents = agents;
    let mut victim = agents.remove(1);
    victim.child.kill().unwrap();
    let out = coordinator.wait_with_output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("agent 2/3") && all.contains("lost during phase \"steady\""), "{all}");
    let d = doc(&json);
    let lost = d["phases"][0]["lost_agents"].as_array().expect("lost_agents in the JSON");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(d["warnings"].to_string().contains("lost during phase"), "{}", d["warnings"]);
    // The survivors' figures are complete; the lost agent's last second may be missing.
    let counted = row(&d, "ok")["count"].as_u64().unwrap();
    assert!(counted > 30 && counted <= server.count("/ok"), "{counted} vs {}", server.count("/ok"));
}

#[test]
fn a_lost_coordinator_stops_the_agents_load() {
    let server = support::start();
    let (_dir, script) = support::script(STEADY);
    let agent = Agent::start("tok", false);
    let mut coordinator = volley()
        .args(["run", "--progress", "off", "--token", "tok", "--agent", &agent.addr])
        .arg(&script)
        .args(["-e", &format!("BASE_URL={}", server.base), "-e", "FOR=60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_requests(&server, 20);
    coordinator.kill().unwrap();
    let _ = coordinator.wait();
    // The agent hears nothing for 3 s and stops: no orphan load.
    std::thread::sleep(Duration::from_secs(6));
    let settled = server.count("/ok");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(server.count("/ok"), settled, "the agent still makes load without its coordinator");
}

#[test]
fn a_wrong_token_is_refused_and_nothing_runs() {
    let server = support::start();
    let (_dir, script) = support::script(STEADY);
    let agent = Agent::start("right", false);
    let out = volley()
        .args(["run", "--progress", "off", "--token", "wrong", "--agent", &agent.addr])
        .arg(&script)
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("wrong token"), "{}", text(&out));
    assert_eq!(server.count("/ok"), 0);
    // No token at all is a usage error before anything is dialled.
    let out = volley()
        .args(["run", "--progress", "off", "--agent", &agent.addr])
        .arg(&script)
        .env_remove("VOLLEY_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--agent needs the agents' token"), "{}", text(&out));
}

#[test]
fn agents_that_never_answer_fail_the_run_naming_them() {
    let (_dir, script) = support::script(STEADY);
    let out = volley()
        .args(["run", "--progress", "off", "--token", "t", "--agent", "127.0.0.1:9", "--agent-wait", "1s"])
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("agent 1/1 (127.0.0.1:9): did not answer within"), "{}", text(&out));
}

#[test]
fn a_captured_value_that_cannot_travel_is_named() {
    let (_dir, script) = support::script(
        r#"
let started = timestamp();
phase("p", #{ executor: "per-vu-iterations", vus: 1, iterations: 1 }, || {
    print(started.elapsed);
});
"#,
    );
    let out = volley().args(["run", "--progress", "off", "--local-agents", "1"]).arg(&script).output().unwrap();
    assert_eq!(out.status.code(), Some(107), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("phase \"p\": its function: captured variable `started`: a timestamp cannot be sent to agents"),
        "{all}"
    );
}

#[test]
fn the_kubernetes_manifests_validate_against_the_schemas() {
    let Some(validate) = support::required_tool("kubernetes-validate") else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/focus/pz_14802_peak_load.rhai");
    let out = volley()
        .arg("k8s")
        .arg(&script)
        .args(["--agents", "3", "--image", "registry.example/volley:0.1", "--namespace", "perf"])
        .args(["--", "--out", "json=run.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let yaml = String::from_utf8(out.stdout).unwrap();
    for kind in ["kind: Secret", "kind: ConfigMap", "kind: Service", "kind: Job", "completionMode: Indexed"] {
        assert!(yaml.contains(kind), "{kind} missing:\n{yaml}");
    }
    let file = dir.path().join("volley.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let v = Command::new(validate).arg("--strict").arg(&file).output().unwrap();
    assert!(v.status.success(), "kubernetes-validate:\n{}", text(&v));
    assert_eq!(String::from_utf8_lossy(&v.stdout).matches("passed").count(), 6, "{}", text(&v));
}

#[test]
fn stop_phase_on_one_agent_stops_the_phase_on_every_agent() {
    let server = support::start();
    let (dir, script) = support::script(
        r#"
let base = env("BASE_URL");
let p = phase("breaker", #{ executor: "constant-vus", vus: 3, duration: "60s" }, || {
    http::get(`${base}/ok`, #{ name: "ok" });
    sleep(0.02);
    if vu_id() == 2 && vu_iteration() >= 10 { stop_phase("breaker open"); }
});
assert(p.stopped == "breaker open", `stopped: ${p.stopped}`);
assert(p.elapsed_s < 30, `the phase ran ${p.elapsed_s}s`);
"#,
    );
    let json = dir.path().join("stop.json");
    let started = Instant::now();
    let out = volley()
        .args(["run", "--progress", "off", "--local-agents", "3"])
        .arg(&script)
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .arg(format!("--out=json={}", json.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(45), "the other agents kept running");
    assert_eq!(doc(&json)["phases"][0]["stopped"], "breaker open");
}

#[test]
fn a_pz_script_on_three_agents_counts_what_the_simulator_served() {
    // PZ-14802 (peak load, an open model) with its stdlib modules shipped to the agents.
    let sim = volley::sim::SimHandle::start(
        volley::sim::SimConfig::preset("healthy").unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("pz.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/focus/pz_14802_peak_load.rhai");
    let out = volley()
        .args(["run", "--progress", "off", "--local-agents", "3", "--time-scale", "0.05"])
        .arg(&script)
        .args(["-e", &format!("FOCUS_URL={}", sim.focus_url()), "-e", &format!("ALERTS_URL={}", sim.alerts_url())])
        .arg(format!("--out=json={}", json.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("3 agents"), "{}", text(&out));
    let d = doc(&json);
    let stats = support::sim_stats(sim.local_addr());
    let served = stats["requests"]["by_endpoint"]["configure"]["total"].as_u64().unwrap();
    let counted: u64 = d["requests"].as_array().unwrap().iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert!(served > 0);
    assert_eq!(counted, served, "the coordinator's total is what the simulator served: {stats}");
    assert_eq!(stats["jobs"]["created"].as_u64(), Some(served), "{stats}");
}

#[test]
fn an_agent_that_starts_late_does_not_cost_the_one_that_joined_early() {
    // Pods start at different times: agent 1 joins at once, agent 2 five seconds later.
    let server = support::start();
    let (dir, script) = support::script(&steady_for("2s"));
    let json = dir.path().join("late.json");
    let early = Agent::start("tok", true);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let late_addr = format!("127.0.0.1:{port}");
    let coordinator = coordinator(&script, &[&early.addr, &late_addr], &server.base, &json);
    std::thread::sleep(Duration::from_secs(5));
    let _late = {
        let child = volley()
            .args(["agent", "--listen", &late_addr, "--workers", "1", "--once"])
            .env("VOLLEY_TOKEN", "tok")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&late_addr).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        Agent { child, addr: late_addr.clone() }
    };
    let out = coordinator.wait_with_output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("lost"), "no agent was lost: {all}");
    assert!(doc(&json)["phases"][0].get("lost_agents").is_none(), "{all}");
}

#[test]
fn an_agent_that_stops_its_own_load_is_reported_lost() {
    let server = support::start();
    let (_dir, json, agents, coordinator) = steady_on_agents(2, &server, "self.json");
    wait_for_requests(&server, 20);
    // Ctrl-C on agent 2 alone: it stops its load gracefully, which is still a loss.
    let pid = agents[1].child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = coordinator.wait_with_output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("agent 2/2") && all.contains("stopped its load itself"), "{all}");
    assert_eq!(doc(&json)["phases"][0]["lost_agents"].as_array().map(Vec::len), Some(1), "{all}");
}

#[test]
fn local_agents_end_with_a_killed_coordinator() {
    let server = support::start();
    let (_dir, script) = support::script(STEADY);
    let mut coordinator = volley()
        .args(["run", "--progress", "off", "--local-agents", "2"])
        .arg(&script)
        .args(["-e", &format!("BASE_URL={}", server.base), "-e", "FOR=60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_requests(&server, 20);
    let parent = coordinator.id();
    let children = || -> Vec<String> {
        let out = Command::new("pgrep").args(["-P", &parent.to_string()]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
    };
    let agents = children();
    assert_eq!(agents.len(), 2, "two agent processes: {agents:?}");
    coordinator.kill().unwrap();
    let _ = coordinator.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    let alive = |pid: &str| {
        Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
    };
    while agents.iter().any(|p| alive(p)) {
        assert!(Instant::now() < deadline, "local agents outlived their coordinator: {agents:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
