//! The binary: exit codes, usage errors, and Ctrl-C still printing the summary.

use crate::support::{self, script};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn volley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volley"))
}

#[test]
fn exit_codes_follow_the_documented_table() {
    let server = support::start();
    let cases = [
        ("let r = http::get(`${env(\"BASE_URL\")}/ok`);\nthreshold(\"http_reqs\", \"count == 1\");\n", 0),
        ("threshold(\"http_reqs\", \"count > 1000\");\nhttp::get(`${env(\"BASE_URL\")}/ok`);\n", 99),
        ("let x = ;\n", 107),
    ];
    for (text, expected) in cases {
        let (_d, path) = script(text);
        let out = volley()
            .args(["run", "--progress", "off"])
            .arg(&path)
            .args(["-e", &format!("BASE_URL={}", server.base)])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{text}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = volley().args(["run", "--time-scale", "0", "x.rhai"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected a number > 0"));
    let out = volley().args(["run", "-e", "NOEQUALS", "x.rhai"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = volley().args(["run", "no/such/file.rhai"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file or directory: no/such/file.rhai"));
}

#[test]
fn ctrl_c_stops_gracefully_and_prints_the_summary() {
    let server = support::start();
    let (_d, path) = script(
        "let base = env(\"BASE_URL\");\nphase(\"long\", #{ executor: \"constant-vus\", vus: 5, duration: \"60s\" }, || { http::get(`${base}/ok`); sleep(\"50ms\"); });\nprint(\"after\");\n",
    );
    let mut run = volley();
    run.args(["run", "--progress", "off"]).arg(&path).args(["-e", &format!("BASE_URL={}", server.base)]);
    // Signalled once the VUs are looping, however long the start took.
    let (out, took) = signalled(&mut run, SIGINT, |_| server.count("/ok") > 10);
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("result: INTERRUPTED"), "{stdout}");
    assert!(stdout.contains("GET /ok"), "the summary keeps the results so far: {stdout}");
    assert!(!stdout.contains("after"), "the script does not go on after Ctrl-C");
    assert!(server.count("/ok") > 10);
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

/// Starts `command`, sends it `signal` as soon as `ready(pid)` holds (polled; the test
/// fails if it does not within 30 s), and waits for it: what it printed and how long it
/// took to end after the signal.
fn signalled(command: &mut Command, signal: i32, ready: impl Fn(u32) -> bool) -> (std::process::Output, Duration) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(child.id()) {
        let exited = child.try_wait().unwrap().is_some();
        if exited || Instant::now() > deadline {
            if !exited {
                // SAFETY: plain libc call on a child we own.
                unsafe { libc_kill(child.id() as i32, SIGKILL) };
            }
            let out = child.wait_with_output().unwrap();
            panic!(
                "the child {} before it was ready for the signal\n{}{}",
                if exited { "exited" } else { "was not ready within 30 s" },
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    // SAFETY: plain libc call on a child we own.
    unsafe { libc_kill(child.id() as i32, signal) };
    let out = child.wait_with_output().unwrap();
    (out, started.elapsed())
}

/// Whether process `pid` catches `signal` (its bit in `SigCgt` of /proc/PID/status).
fn catches(pid: u32, signal: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

/// CPU time process `pid` has used, in clock ticks (utime + stime of /proc/PID/stat).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(14) + field(15)
}

#[test]
fn endless_loops_are_stopped_with_a_clear_message() {
    for (text, who, at) in [
        (
            "let i = 0;\nloop { i += 1; }\n",
            "the script's top level ran script code for 500ms without waiting",
            // Where in the loop it was when stopped.
            "scenario.rhai:2:",
        ),
        (
            "phase(\"spin\", #{ executor: \"shared-iterations\" }, || {\n    let n = 0;\n    while n >= 0 { n += 1; }\n});\n",
            "VU 1 ran script code for 500ms without waiting",
            "scenario.rhai:3:5",
        ),
    ] {
        let (_d, path) = script(text);
        let started = Instant::now();
        let out =
            volley().args(["run", "--progress", "off"]).arg(&path).env("VOLLEY_BUSY_LIMIT", "500ms").output().unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(107), "{all}");
        assert!(all.contains(who), "{all}");
        assert!(all.contains("a loop that never waits blocks its worker"), "{all}");
        // Inside a VU, Rhai hands the error up without its position: the one loop is
        // pointed at.
        assert!(all.contains(at), "{all}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

/// A module whose top level never ends: `run` and `check` stop it after the busy limit,
/// naming the module; Ctrl-C (one signal) stops `run` at once.
#[test]
fn a_module_top_level_that_never_ends_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spin.rhai"), "let i = 0;\nloop { i += 1; }\nfn h() { 1 }\n").unwrap();
    let path = dir.path().join("main.rhai");
    std::fs::write(&path, "import \"spin\" as s;\nprint(s::h());\n").unwrap();
    for command in ["run", "check"] {
        let started = Instant::now();
        let out = volley().arg(command).arg(&path).env("VOLLEY_BUSY_LIMIT", "500ms").output().unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(started.elapsed() < Duration::from_secs(30), "{command} took {:?}", started.elapsed());
        assert!(all.contains("a module's top level ran script code for 500ms without waiting"), "{command}: {all}");
        assert!(all.contains("spin"), "{command} names the module: {all}");
        assert_ne!(out.status.code(), Some(0), "{command}: {all}");
    }
    // With a busy limit of 2 minutes, only the signal can end it within 30 s. Signalled
    // once the handler is installed and the process has spun for a while (half a second
    // of CPU time, at the usual 100 ticks a second), however long the start took.
    let (out, took) = signalled(
        volley().args(["run", "--progress", "off"]).arg(&path).env("VOLLEY_BUSY_LIMIT", "120s"),
        SIGTERM,
        |pid| catches(pid, SIGTERM) && cpu_ticks(pid) >= 50,
    );
    assert!(took < Duration::from_secs(30), "took {took:?} to stop");
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A report path that cannot be written is refused before the run, with what is wrong.
#[test]
fn unwritable_report_paths_are_refused_before_the_run() {
    let (dir, path) = script("print(\"ran\");\n");
    let file = dir.path().join("taken.csv");
    std::fs::write(&file, "x").unwrap();
    let under_file = file.join("run.json");
    for (flag, target, said) in [
        ("--out", format!("json={}", under_file.display()), format!("{} is a file, not a directory", file.display())),
        ("--junit", dir.path().display().to_string(), "it is a directory".to_string()),
        ("--json", under_file.display().to_string(), "is a file, not a directory".to_string()),
    ] {
        let out = volley().args(["run", "--progress", "off"]).arg(&path).args([flag, &target]).output().unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{flag} {target}: {all}");
        assert!(all.contains(&said), "{flag} {target}: {all}");
        assert!(!all.contains("ran"), "refused before the script ran: {all}");
    }
    // A directory that does not exist yet is made, and the run writes there.
    let nested = dir.path().join("a/b/junit.xml");
    let out = volley().args(["run", "--progress", "off"]).arg(&path).arg("--junit").arg(&nested).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(&nested).unwrap().contains("<testsuite"));
    assert_eq!(std::fs::read_dir(nested.parent().unwrap()).unwrap().count(), 1, "no probe file is left behind");
    // CSV's target is a prefix: a directory of that name is no obstacle.
    let prefix = dir.path().join("a");
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(&path)
        .args(["--out", &format!("csv={}", prefix.display())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("a_stats.csv").exists());
}
