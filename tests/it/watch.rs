//! `volley watch`: edit -> re-run -> broken edit -> diagnostic -> fixed edit -> re-run,
//! and `volley check`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Waits until a line of the child's output contains `needle` (bounded).
fn wait_for(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            let hit = line.contains(needle);
            seen.push(line);
            if hit {
                return;
            }
        }
    }
    panic!("no line containing {needle:?} within 20 s; output so far:\n{}", seen.join("\n"));
}

fn save(path: &std::path::Path, text: &str) {
    // Editors save by writing a temporary file and renaming it over the original.
    let tmp = path.with_extension("rhai.tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn watch_reruns_on_save_and_survives_a_broken_edit() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("scenario.rhai");
    let body = |v: u32| {
        format!(
            "print(\"version {v}\");\nphase(\"p\", #{{ executor: \"shared-iterations\", vus: 2, iterations: 4 }}, || {{ sleep(\"5ms\"); }});\n"
        )
    };
    std::fs::write(&script, body(1)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["watch", "--progress", "off"])
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut seen = Vec::new();
    wait_for(&rx, "first run done", &mut seen);
    assert!(seen.iter().any(|l| l == "version 1"));

    save(&script, &body(2));
    wait_for(&rx, "version 2", &mut seen);
    wait_for(&rx, "since the previous run", &mut seen);

    save(&script, "print(\"version 3\")\nphase(\n");
    wait_for(&rx, "error: syntax error", &mut seen);
    wait_for(&rx, "waiting", &mut seen);

    save(&script, &body(4));
    wait_for(&rx, "version 4", &mut seen);
    wait_for(&rx, "result: PASSED", &mut seen);
    let _ = child.kill();
    let _ = child.wait();
    assert!(!seen.iter().any(|l| l.contains("version 3")), "the broken script never ran");
}

#[test]
fn check_reports_every_problem_in_every_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_volley")).args(["check", "tests/fixtures/check"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(107), "{text}");
    let text: String = text.lines().filter(|l| !l.starts_with("checked ")).collect::<Vec<_>>().join("\n");
    insta::assert_snapshot!("check_fixtures", text);
    let out = Command::new(env!("CARGO_BIN_EXE_volley")).args(["check", "scripts", "examples"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn list_functions_documents_every_function_with_an_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_volley")).args(["check", "--list-functions"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for f in ["http::post(", "amqp::publish(", "phase(", "retry(", "threshold(", "metrics::trend(", "resources::start("]
    {
        let entry = text.split("\n\n").find(|e| e.starts_with(f)).unwrap_or_else(|| panic!("{f} missing"));
        assert!(entry.contains("```rhai"), "{f} has no example:\n{entry}");
    }
}

/// `volley watch` on a path whose directory does not exist ends at once (exit 2),
/// naming it, rather than waiting for a file it cannot see.
#[test]
fn watch_refuses_a_path_in_a_directory_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nodir/x.rhai");
    let mut child = Command::new(env!("CARGO_BIN_EXE_volley"))
        .arg("watch")
        .arg(&missing)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("volley watch kept waiting on {}", missing.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no such file or directory") && err.contains("nodir"), "{err}");
}
