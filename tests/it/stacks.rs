//! Issue 13: VU coroutine stacks share memory mappings (slabs with guard regions), so
//! many thousands of VUs take a few hundred mappings instead of two each.

use crate::support::{run, script};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use volley::engine::ExitCode;

fn mappings_of_this_process() -> usize {
    std::fs::read_to_string("/proc/self/maps").map(|m| m.lines().count()).unwrap_or(0)
}

#[test]
fn issue_13_twenty_five_thousand_sleeping_vus_take_few_mappings() {
    // 25,000: past this machine's open-files limit (20,000), which only warns (sleeping
    // VUs hold no socket); with one mapping pair a stack they would take 50,000. One
    // iteration each, counted exactly; its 5 s sleep keeps every VU alive until the
    // last one has started, even on a slow machine.
    let (_d, path) = script(
        r#"
        let p = phase("sleepers", #{ executor: "per-vu-iterations", vus: 25000, iterations: 1 }, || { sleep(5.0); });
        expect(p.vus_max, "== 25000", "every VU ran at once");
        expect(p.iterations, "== 25000", "every VU finished its iteration");
        expect(p.failed, "== 0", "no iteration failed");
        "#,
    );
    let before = mappings_of_this_process();
    let (done, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(before)));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(mappings_of_this_process(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let report = run(&path, "");
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(report.exit, ExitCode::Passed, "{}", volley::report::summary::render(&report));
    // 25,000 / 64 = 391 slabs. Other tests map memory at the same time: a generous
    // bound, still far below the 50,000 of one mapping pair a stack. A kernel without
    // guard regions (before Linux 6.13) takes the pair: the bound says so.
    let peak = peak.load(Ordering::Relaxed);
    let bound = if volley::executor::capacity::guard_regions() { 8_000 } else { 60_000 };
    assert!(peak.saturating_sub(before) < bound, "{before} mappings before the run, {peak} at its peak");
}
