//! What this machine can hold: before a phase starts (and in `volley check`), the VUs a
//! profile may need at once are compared with the limits that would otherwise fail
//! mid-run — coroutine stacks against `vm.max_map_count`, memory against what is
//! available — and sockets against the open-files limit, a warning only
//! ([`warnings`]: a VU that does not connect holds none). [`check`] is a pure function of the demand
//! and the [`Limits`], so it is tested without touching the machine;
//! [`Limits::of_this_machine`] reads them (Linux `/proc`, `getrlimit`, and whether the
//! kernel has guard regions, [`guard_regions`]).
//!
//! Imports only `rlimit`, `libc` and the executor types.

use super::{Executor, OptionError};

/// VU stacks that share one memory mapping (a slab, `engine::stack`) when the kernel
/// has guard regions: 64 stacks of 512 KiB (plus a guard page each) are 33 MiB of
/// address space a mapping, of which only touched pages use memory.
pub const STACKS_PER_SLAB: u64 = 64;
/// Memory mappings one VU costs without guard regions: its coroutine stack is one
/// mapping plus its guard page, which the kernel keeps as a second mapping. With guard
/// regions a VU costs 1/[`STACKS_PER_SLAB`] of a mapping (see [`stack_maps`]).
pub const MAPS_PER_VU: u64 = 2;
/// Open files one VU may cost: its connection (one per VU on the HTTP fast path).
pub const FILES_PER_VU: u64 = 1;
/// Resident memory budgeted per VU. Measured (debug build, peak RSS, constant-vus):
/// 5,000 VUs sleeping took 139 MiB against 44 MiB for 200, ~20 KiB a VU; 3,000 VUs each
/// holding a kept-alive HTTP connection to the in-process simulator took 336 MiB against
/// 81 MiB for 200, ~93 KiB a VU counting both ends of the connection. Release build,
/// slab stacks: 50,000 VUs sleeping peaked at 552 MiB, ~11 KiB a VU. 64 KiB budgets
/// the client's share; the check is a guard against absurd counts, not a forecast.
pub const BYTES_PER_VU: u64 = 64 * 1024;
/// Mappings the process itself uses (binary, libraries, thread stacks, allocator arenas)
/// before any VU exists; measured at ~300 on Linux, kept generous: it also covers each
/// worker's last, partly used slab.
pub const RESERVED_MAPS: u64 = 2_000;
/// Descriptors kept for everything that is not a VU socket (outputs, the broker,
/// resolver, std streams).
pub const RESERVED_FILES: u64 = 256;

/// The machine limits a phase is checked against; `None` when unknown on this platform
/// (then that limit is not checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// `/proc/sys/vm/max_map_count`.
    pub max_map_count: Option<u64>,
    /// The hard RLIMIT_NOFILE (`volley run` raises the soft limit to it).
    pub open_files: Option<u64>,
    /// `MemAvailable` in bytes.
    pub memory_bytes: Option<u64>,
    /// Whether VU stacks share mappings ([`STACKS_PER_SLAB`] to one), which needs the
    /// kernel's guard regions; otherwise each costs [`MAPS_PER_VU`].
    pub shared_stack_maps: bool,
}

impl Limits {
    /// Reads the limits of the machine this runs on.
    pub fn of_this_machine() -> Limits {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let max_map_count = read("/proc/sys/vm/max_map_count").and_then(|t| t.trim().parse().ok());
        let open_files = rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(_, hard)| hard)
            .filter(|hard| *hard != rlimit::INFINITY);
        let memory_bytes = read("/proc/meminfo").and_then(|t| mem_available(&t));
        Limits { max_map_count, open_files, memory_bytes, shared_stack_maps: guard_regions() }
    }
}

/// Whether this kernel can turn a page inside a mapping into a guard page without
/// splitting the mapping (`madvise(MADV_GUARD_INSTALL)`, Linux 6.13+), which is what
/// lets many VU stacks share one mapping safely. Probed once on a scratch mapping.
pub fn guard_regions() -> bool {
    static PROBED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROBED.get_or_init(probe_guard_regions)
}

/// The `madvise` advice that installs guard regions, Linux 6.13+ (uapi
/// `asm-generic/mman-common.h`, the same value on every architecture); `libc` does not
/// name it yet.
pub const MADV_GUARD_INSTALL: libc::c_int = 102;

#[cfg(target_os = "linux")]
fn probe_guard_regions() -> bool {
    // SAFETY: a scratch anonymous mapping of two pages, advised, then unmapped; nothing
    // else refers to it.
    unsafe {
        let page = usize::try_from(libc::sysconf(libc::_SC_PAGESIZE)).unwrap_or(4096);
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        let addr = libc::mmap(std::ptr::null_mut(), 2 * page, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0);
        if addr == libc::MAP_FAILED {
            return false;
        }
        let installed = libc::madvise(addr, page, MADV_GUARD_INSTALL) == 0;
        libc::munmap(addr, 2 * page);
        installed
    }
}

#[cfg(not(target_os = "linux"))]
fn probe_guard_regions() -> bool {
    false
}

/// Memory mappings the stacks of `vus` VUs at once take.
pub fn stack_maps(vus: u64, shared: bool) -> u64 {
    if shared { vus.div_ceil(STACKS_PER_SLAB) } else { vus.saturating_mul(MAPS_PER_VU) }
}

/// The most VUs whose stacks fit in `maps` mappings.
fn vus_in_maps(maps: u64, shared: bool) -> u64 {
    if shared { maps.saturating_mul(STACKS_PER_SLAB) } else { maps / MAPS_PER_VU }
}

/// `MemAvailable` from the text of `/proc/meminfo`, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The most VUs `executor` may hold at once, and the option that sets that number (as a
/// key path root, so `volley check` can point at it). Open models create VUs only as
/// arrivals need them: their `max_vus` counts when the script set it; when it is the
/// default (twice the pre-allocated VUs), the pre-allocated count does, which is what
/// the peak rate needs at one second per iteration (an absurd rate is still refused).
pub fn vu_demand(executor: &Executor, opts: &serde_json::Map<String, serde_json::Value>) -> (u64, &'static str) {
    let explicit_max = ["max_vus", "maxVUs"].into_iter().find(|k| opts.contains_key(*k));
    let open = |max_vus: u64, pre_allocated_vus: u64| match explicit_max {
        Some(key) => (max_vus, key),
        None if opts.contains_key("pre_allocated_vus") => (pre_allocated_vus, "pre_allocated_vus"),
        None if opts.contains_key("preAllocatedVUs") => (pre_allocated_vus, "preAllocatedVUs"),
        None if opts.contains_key("stages") => (pre_allocated_vus, "stages"),
        None => (pre_allocated_vus, "rate"),
    };
    match executor {
        Executor::SharedIterations(e) => (e.vus, "vus"),
        Executor::PerVuIterations(e) => (e.vus, "vus"),
        Executor::ConstantVus(e) => (e.vus, "vus"),
        Executor::RampingVus(e) => (e.plan().max_vus, "stages"),
        Executor::ConstantArrivalRate(e) => open(e.max_vus, e.pre_allocated_vus),
        Executor::RampingArrivalRate(e) => open(e.max_vus, e.pre_allocated_vus),
        Executor::Bursts(e) => (e.size, "size"),
    }
}

/// The VU count written as a literal in options that could not all be read (some values
/// are only known at run time): the largest of `vus`, `max_vus`, `pre_allocated_vus`,
/// `size`, `start_vus` and the stages' targets, with its key. For `volley check`.
pub fn literal_demand(opts: &serde_json::Map<String, serde_json::Value>) -> Option<(u64, &'static str)> {
    const KEYS: [&str; 5] = ["vus", "max_vus", "pre_allocated_vus", "size", "start_vus"];
    let whole = |v: &serde_json::Value| v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64));
    let direct = KEYS.iter().filter_map(|k| opts.get(*k).and_then(whole).map(|n| (n, *k)));
    let staged = opts
        .get("stages")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
        .filter_map(|stage| stage.get("target").and_then(whole))
        .map(|n| (n, "stages"));
    direct.chain(staged).max_by_key(|(n, _)| *n)
}

/// Every limit `vus` VUs at once would exceed, each naming the limit and how to raise
/// it; empty when they fit. `key` is the option that asked for them.
pub fn check(vus: u64, key: &str, limits: &Limits) -> Vec<OptionError> {
    let mut errors = Vec::new();
    if let Some(max_map_count) = limits.max_map_count {
        let shared = limits.shared_stack_maps;
        let fit = vus_in_maps(max_map_count.saturating_sub(RESERVED_MAPS), shared);
        if vus > fit {
            let how = if shared {
                format!("{STACKS_PER_SLAB} stacks to a mapping")
            } else {
                format!("{MAPS_PER_VU} a stack: this kernel has no guard regions")
            };
            errors.push(OptionError::new(
                key,
                format!(
                    "{vus} VUs need {} memory mappings for their stacks ({how}), but vm.max_map_count is {max_map_count} (room for {fit} VUs)",
                    stack_maps(vus, shared)
                ),
                Some(map_count_hint(vus, shared)),
            ));
        }
    }
    if let Some(memory) = limits.memory_bytes {
        let fit = memory / BYTES_PER_VU;
        if vus > fit {
            errors.push(OptionError::new(
                key,
                format!(
                    "{vus} VUs need about {} of memory ({} KiB each), but {} is available (room for {fit} VUs)",
                    format_bytes(vus.saturating_mul(BYTES_PER_VU)),
                    BYTES_PER_VU / 1024,
                    format_bytes(memory)
                ),
                Some("lower the VU count, or split the load across machines".to_string()),
            ));
        }
    }
    errors
}

/// What `vus` VUs at once may run into without being refused: sockets past the
/// open-files limit. A VU holds a socket only while it is connected (a sleeping or
/// computing VU holds none), so this is a warning, not an error; a connection refused
/// for it fails its request, counted by kind.
pub fn warnings(vus: u64, limits: &Limits) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(open_files) = limits.open_files {
        let fit = open_files.saturating_sub(RESERVED_FILES) / FILES_PER_VU;
        if vus > fit {
            out.push(format!(
                "{vus} VUs, but the open-files limit (RLIMIT_NOFILE, hard) is {open_files}: past about {fit} VUs connected at once, new connections fail (\"too many open files\", counted with the failed requests); hint: if the VUs connect, raise the hard open-files limit (nofile in /etc/security/limits.conf, LimitNOFILE= for a systemd service, --ulimit nofile= for a container) or lower the VU count"
            ));
        }
    }
    out
}

/// How to make room for `vus` stacks. The kernel keeps `vm.max_map_count` in an `int`.
fn map_count_hint(vus: u64, shared: bool) -> String {
    let needed = stack_maps(vus, shared).saturating_add(RESERVED_MAPS).max(262_144);
    if needed > i32::MAX as u64 {
        "lower the VU count: no vm.max_map_count can hold that many stacks".to_string()
    } else if shared {
        format!("raise the limit (sudo sysctl -w vm.max_map_count={needed}) or lower the VU count")
    } else {
        format!(
            "raise the limit (sudo sysctl -w vm.max_map_count={needed}), lower the VU count, or run on Linux 6.13+ ({STACKS_PER_SLAB} stacks share a mapping)"
        )
    }
}

fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        max_map_count: Some(65_530),
        open_files: Some(20_000),
        memory_bytes: Some(8 * 1024 * 1024 * 1024),
        shared_stack_maps: false,
    };

    #[test]
    fn what_fits_passes() {
        assert!(check(1, "vus", &SMALL).is_empty());
        assert!(check(10_000, "vus", &SMALL).is_empty());
        assert!(check(u64::MAX, "vus", &Limits::default()).is_empty(), "unknown limits are not checked");
    }

    #[test]
    fn stacks_are_checked_against_max_map_count() {
        // Without guard regions: (65530 - 2000) / 2 = 31765 VUs fit.
        let limits = Limits { max_map_count: Some(65_530), ..Limits::default() };
        assert!(check(31_765, "vus", &limits).is_empty());
        let errors = check(50_000, "vus", &limits);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "vus: 50000 VUs need 100000 memory mappings for their stacks (2 a stack: this kernel has no guard regions), but vm.max_map_count is 65530 (room for 31765 VUs)"
        );
        assert_eq!(
            errors[0].hint.as_deref(),
            Some(
                "raise the limit (sudo sysctl -w vm.max_map_count=262144), lower the VU count, or run on Linux 6.13+ (64 stacks share a mapping)"
            )
        );
    }

    #[test]
    fn slab_stacks_need_one_mapping_per_64_vus() {
        assert_eq!(stack_maps(0, true), 0);
        assert_eq!(stack_maps(1, true), 1);
        assert_eq!(stack_maps(64, true), 1);
        assert_eq!(stack_maps(65, true), 2);
        assert_eq!(stack_maps(50_000, true), 782);
        assert_eq!(stack_maps(50_000, false), 100_000);
        assert_eq!(stack_maps(u64::MAX, false), u64::MAX, "saturates");
        // With guard regions: 50,000 VUs fit a default vm.max_map_count with room to
        // spare, (65530 - 2000) * 64 = 4,065,920 VUs.
        let limits = Limits { max_map_count: Some(65_530), shared_stack_maps: true, ..Limits::default() };
        assert!(check(50_000, "vus", &limits).is_empty());
        assert!(check(4_065_920, "vus", &limits).is_empty());
        let errors = check(4_065_921, "vus", &limits);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "vus: 4065921 VUs need 63531 memory mappings for their stacks (64 stacks to a mapping), but vm.max_map_count is 65530 (room for 4065920 VUs)"
        );
        assert_eq!(
            errors[0].hint.as_deref(),
            Some("raise the limit (sudo sysctl -w vm.max_map_count=262144) or lower the VU count")
        );
        let errors = check(u64::MAX, "vus", &limits);
        assert_eq!(
            errors[0].hint.as_deref(),
            Some("lower the VU count: no vm.max_map_count can hold that many stacks")
        );
    }

    #[test]
    fn sockets_past_the_open_files_limit_are_a_warning_not_a_refusal() {
        let limits = Limits { open_files: Some(1024), ..Limits::default() };
        assert!(warnings(768, &limits).is_empty());
        assert!(check(50_000, "vus", &limits).is_empty(), "sleeping VUs hold no socket");
        let w = warnings(769, &limits);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("769 VUs, but the open-files limit (RLIMIT_NOFILE, hard) is 1024: past about 768 VUs"),
            "{}",
            w[0]
        );
        assert!(w[0].contains("LimitNOFILE"));
    }

    #[test]
    fn memory_is_checked_against_what_is_available() {
        let limits = Limits { memory_bytes: Some(1024 * 1024 * 1024), ..Limits::default() };
        assert!(check(16_384, "size", &limits).is_empty());
        let errors = check(16_385, "size", &limits);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "size: 16385 VUs need about 1.0 GiB of memory (64 KiB each), but 1.0 GiB is available (room for 16384 VUs)"
        );
    }

    #[test]
    fn an_absurd_count_names_every_limit_without_overflow() {
        // Stacks and memory refuse it; sockets warn.
        let errors = check(4_294_967_296, "vus", &SMALL);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(
            errors[0].hint.as_deref(),
            Some("lower the VU count: no vm.max_map_count can hold that many stacks")
        );
        assert_eq!(warnings(4_294_967_296, &SMALL).len(), 1);
        let errors = check(u64::MAX, "vus", &SMALL);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(warnings(u64::MAX, &SMALL).len(), 1);
    }

    #[test]
    fn literal_counts_are_found_when_other_options_are_dynamic() {
        let opts = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert_eq!(literal_demand(&opts(serde_json::json!({"vus": 4294967296u64}))), Some((4_294_967_296, "vus")));
        let staged = serde_json::json!({"stages": [{"target": 5}, {"target": 70000}], "start_vus": 3});
        assert_eq!(literal_demand(&opts(staged)), Some((70_000, "stages")));
        assert_eq!(literal_demand(&opts(serde_json::json!({"rate": 10}))), None);
    }

    #[test]
    fn meminfo_is_read_in_bytes() {
        let text = "MemTotal:       32000000 kB\nMemFree:  100 kB\nMemAvailable:   23771308 kB\n";
        assert_eq!(mem_available(text), Some(23_771_308 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn the_demand_names_the_option_that_sets_it() {
        let opts = |v: serde_json::Value| v.as_object().unwrap().clone();
        let demand = |v: serde_json::Value| {
            let o = opts(v);
            vu_demand(&Executor::from_options(&o).unwrap(), &o)
        };
        assert_eq!(
            demand(serde_json::json!({"executor": "ramping-vus", "stages": [{"duration": "1s", "target": 7}]})),
            (7, "stages")
        );
        assert_eq!(demand(serde_json::json!({"executor": "bursts", "bursts": 2, "size": 9})), (9, "size"));
        // Open models: an explicit cap counts; a defaulted one does not (VUs are created
        // as arrivals need them), the rate does.
        let car = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"executor": "constant-arrival-rate", "rate": 10000, "duration": "1s"});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            demand(v)
        };
        assert_eq!(car(serde_json::json!({})), (10_000, "rate"));
        assert_eq!(car(serde_json::json!({"maxVUs": 50_000})), (50_000, "maxVUs"));
        assert_eq!(car(serde_json::json!({"pre_allocated_vus": 20})), (20, "pre_allocated_vus"));
    }
}
