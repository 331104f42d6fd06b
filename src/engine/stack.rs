//! VU coroutine stacks, carved out of large memory mappings ("slabs") so that tens of
//! thousands of VUs fit under the default `vm.max_map_count` (65,530).
//!
//! corosensei's `DefaultStack` maps every stack on its own and protects its lowest page:
//! two kernel mappings (VMAs) a stack, which capped a run at ~31,000 VUs. Here one
//! `mmap` (read/write, `MAP_NORESERVE`: only touched pages use memory) holds
//! [`STACKS_PER_SLAB`] stacks of [`STACK_SIZE`] usable bytes, each above its own guard
//! page.
//!
//! # Why an overflow cannot corrupt a neighbour
//! A guard page made with `mprotect` would split the slab into two VMAs per stack,
//! which is what we are avoiding. Linux 6.13 added guard *regions*
//! (`madvise(MADV_GUARD_INSTALL)`): the page-table entries of a range are marked so
//! that any access raises `SIGSEGV`, without splitting the VMA (only `munmap` or
//! `MADV_GUARD_REMOVE` clears them, and we never advise a guard page otherwise). Every
//! stack's lowest page is such a guard, so a VU that overflows its stack faults on its
//! own guard page before it writes a byte of the stack below it, exactly as with
//! `DefaultStack`: the process dies with `SIGSEGV` (Rust's handler ignores faults
//! outside a thread's own guard and the default action then applies). Rust code probes
//! every page of a large frame (stack probes), so a frame cannot jump the guard; C code
//! in dependencies is in the same position as on any one-guard-page stack. The tests
//! read every guard page and overflow a stack in a forked child, which must die of
//! `SIGSEGV`.
//!
//! On a kernel without guard regions (probed once, [`capacity::guard_regions`]) each
//! stack gets its own mapping with an `mprotect`ed guard page, as `DefaultStack` did,
//! and `volley` refuses VU counts whose mappings would not fit (see
//! [`capacity::check`]). There is deliberately no unguarded mode: Rhai's limits
//! ([`crate::script::MAX_CALL_LEVELS`], expression depth) bound script recursion, but
//! not what natives running on the VU stack use (JSON, regexes, TLS, compression), so
//! a bound on script depth alone would not make an unguarded neighbour safe.
//!
//! # Memory
//! A stack returns to its pool when its coroutine is dropped (completed or
//! interrupted), so no slot is ever lost. The pool hands out the most recently
//! returned stacks first (their pages are resident and in cache); beyond
//! [`KEEP_WARM`] idle stacks, a returned stack's pages are given back to the kernel
//! (`MADV_DONTNEED`), so a phase that once needed 50,000 VUs does not keep their
//! stack memory through a later phase that needs 50.
//!
//! Pools are per worker thread (coroutines never change threads), hence `Rc`.
//! Imports `corosensei`, `libc` and [`capacity`] (the probe, the advice, the slab size).

use crate::executor::capacity::{self, MADV_GUARD_INSTALL, STACKS_PER_SLAB};
use corosensei::stack::valgrind::ValgrindStackRegistration;
use corosensei::stack::{Stack, StackPointer};
use std::cell::RefCell;
use std::io;
use std::rc::Rc;

/// Usable size of a VU stack. Only touched pages use memory (8.4 KiB a VU waiting in a
/// `sleep`: 411 MiB of slabs at 50,000 VUs, release build); 512 KiB
/// leaves room for [`crate::script::MAX_CALL_LEVELS`] levels at ~6 KB each.
pub const STACK_SIZE: usize = 512 * 1024;

/// Idle stacks per worker whose pages stay resident; the rest are released to the
/// kernel when they return to the pool. 256 stacks at ~16 KiB touched is 4 MiB.
pub const KEEP_WARM: usize = 256;

/// How stacks are guarded against overflow (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Many stacks per mapping, each above a guard region (Linux >= 6.13).
    Region,
    /// One stack per mapping, above an `mprotect`ed page (two mappings a stack).
    Protect,
}

impl Guard {
    /// The best guard this kernel offers.
    pub fn of_this_machine() -> Guard {
        if capacity::guard_regions() { Guard::Region } else { Guard::Protect }
    }

    fn stacks_per_slab(self) -> usize {
        match self {
            Guard::Region => STACKS_PER_SLAB as usize,
            Guard::Protect => 1,
        }
    }
}

/// One mapping holding `stacks` stack slots, lowest page of each a guard.
struct Slab {
    addr: *mut u8,
    len: usize,
    /// Tells valgrind (if it runs us) where each stack is; no-ops otherwise.
    valgrind: Vec<ValgrindStackRegistration>,
}

impl Slab {
    fn new(stacks: usize, slot_len: usize, page: usize, guard: Guard) -> io::Result<Slab> {
        let len = stacks.checked_mul(slot_len).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // From here the mapping is owned (and unmapped on an early return).
        let mut slab = Slab { addr: addr.cast(), len, valgrind: Vec::with_capacity(stacks) };
        for i in 0..stacks {
            // SAFETY: `i * slot_len + page <= len`: the slot's lowest page, inside the mapping.
            let bottom = unsafe { slab.addr.add(i * slot_len) };
            let made = match guard {
                // SAFETY: advice on our own mapping; turns one page into a guard.
                Guard::Region => unsafe { libc::madvise(bottom.cast(), page, MADV_GUARD_INSTALL) },
                // SAFETY: as above, by protection (splits the mapping; one slot per slab).
                Guard::Protect => unsafe { libc::mprotect(bottom.cast(), page, libc::PROT_NONE) },
            };
            if made != 0 {
                return Err(io::Error::last_os_error());
            }
            slab.valgrind.push(ValgrindStackRegistration::new(bottom, slot_len));
        }
        Ok(slab)
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        self.valgrind.clear();
        // SAFETY: our mapping; every stack in it has returned (the pool owns the slabs
        // and each `VuStack` keeps the pool alive).
        let ret = unsafe { libc::munmap(self.addr.cast(), self.len) };
        debug_assert_eq!(ret, 0, "munmap of a stack slab");
    }
}

struct Inner {
    guard: Guard,
    page: usize,
    /// Bytes from one slot to the next: the guard page plus [`STACK_SIZE`].
    slot_len: usize,
    slabs: RefCell<Vec<Slab>>,
    /// Idle slots (their lowest address) whose pages may be resident, most recent last.
    warm: RefCell<Vec<usize>>,
    /// Idle slots holding no memory.
    cold: RefCell<Vec<usize>>,
}

/// A worker's coroutine stacks: hands out [`VuStack`]s, which come back by themselves
/// when dropped.
pub struct StackPool {
    inner: Rc<Inner>,
}

impl Default for StackPool {
    fn default() -> Self {
        StackPool::new(Guard::of_this_machine())
    }
}

impl StackPool {
    /// An empty pool guarding its stacks with `guard`.
    pub fn new(guard: Guard) -> StackPool {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        StackPool {
            inner: Rc::new(Inner {
                guard,
                page,
                slot_len: STACK_SIZE + page,
                slabs: RefCell::default(),
                warm: RefCell::default(),
                cold: RefCell::default(),
            }),
        }
    }

    /// A stack: an idle one, or one of a new slab when none is idle (the error is the
    /// kernel's, e.g. out of mappings or address space).
    pub fn take(&self) -> io::Result<VuStack> {
        let inner = &self.inner;
        let idle = inner.warm.borrow_mut().pop().or_else(|| inner.cold.borrow_mut().pop());
        let bottom = match idle {
            Some(bottom) => bottom,
            None => {
                let stacks = inner.guard.stacks_per_slab();
                let slab = Slab::new(stacks, inner.slot_len, inner.page, inner.guard)?;
                let first = slab.addr as usize;
                inner.slabs.borrow_mut().push(slab);
                // Highest slots last, so they are handed out from the top down.
                inner.cold.borrow_mut().extend((1..stacks).map(|i| first + i * inner.slot_len));
                first
            }
        };
        Ok(VuStack { bottom, pool: inner.clone() })
    }

    /// Stacks that exist (idle or in use).
    pub fn capacity(&self) -> usize {
        self.inner.slabs.borrow().len() * self.inner.guard.stacks_per_slab()
    }

    /// Idle stacks: (resident, released).
    pub fn idle(&self) -> (usize, usize) {
        (self.inner.warm.borrow().len(), self.inner.cold.borrow().len())
    }

    /// Memory mappings the pool's slabs use (at most; the kernel may merge neighbours).
    pub fn mappings(&self) -> usize {
        let per_slab = match self.inner.guard {
            Guard::Region => 1,
            Guard::Protect => 2,
        };
        self.inner.slabs.borrow().len() * per_slab
    }
}

/// One coroutine stack of a [`StackPool`]; returns to it when dropped.
pub struct VuStack {
    /// Lowest address of the slot (its guard page).
    bottom: usize,
    pool: Rc<Inner>,
}

impl Drop for VuStack {
    fn drop(&mut self) {
        let pool = &self.pool;
        let mut warm = pool.warm.borrow_mut();
        if warm.len() < KEEP_WARM {
            warm.push(self.bottom);
            return;
        }
        drop(warm);
        // Give the pages back; the guard page stays (and guard regions survive this).
        let usable = (self.bottom + pool.page) as *mut libc::c_void;
        // SAFETY: the slot's usable range, inside a live slab; no coroutine runs on it
        // (the one that did has been dropped or has completed).
        unsafe { libc::madvise(usable, STACK_SIZE, libc::MADV_DONTNEED) };
        pool.cold.borrow_mut().push(self.bottom);
    }
}

// SAFETY: `base` and `limit` bound a slot of a slab that lives as long as `self.pool`
// (so as long as this stack), 16-byte aligned (page-aligned slots, page-sized guards),
// with a guard page at the bottom (module doc) and STACK_SIZE >= MIN_STACK_SIZE usable bytes.
unsafe impl Stack for VuStack {
    #[inline]
    fn base(&self) -> StackPointer {
        StackPointer::new(self.bottom + self.pool.slot_len).expect("a mapped address is not null")
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        StackPointer::new(self.bottom).expect("a mapped address is not null")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corosensei::{Coroutine, CoroutineResult};

    /// Slabs where this kernel has guard regions, one stack a mapping elsewhere.
    fn pool() -> StackPool {
        StackPool::default()
    }

    fn mappings_of_this_process() -> usize {
        std::fs::read_to_string("/proc/self/maps").map(|m| m.lines().count()).unwrap_or(0)
    }

    #[test]
    fn stacks_are_distinct_aligned_and_reused() {
        let pool = pool();
        let per_slab = pool.inner.guard.stacks_per_slab();
        let stacks: Vec<VuStack> = (0..200).map(|_| pool.take().unwrap()).collect();
        assert_eq!(pool.capacity(), 200usize.div_ceil(per_slab) * per_slab);
        let mut ranges: Vec<(usize, usize)> = stacks.iter().map(|s| (s.limit().get(), s.base().get())).collect();
        for &(limit, base) in &ranges {
            assert_eq!(base - limit, STACK_SIZE + pool.inner.page, "usable size plus one guard page");
            assert_eq!(limit % pool.inner.page, 0);
            assert_eq!(base % corosensei::stack::STACK_ALIGNMENT, 0);
        }
        ranges.sort();
        assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "no two stacks overlap");

        drop(stacks);
        assert_eq!(pool.idle().0 + pool.idle().1, pool.capacity(), "every stack came back");
        let again: Vec<VuStack> = (0..200).map(|_| pool.take().unwrap()).collect();
        assert_eq!(pool.capacity(), 200usize.div_ceil(per_slab) * per_slab, "reused, not allocated");
        drop(again);
    }

    #[test]
    fn idle_stacks_beyond_the_warm_ones_are_released() {
        let pool = pool();
        let count = KEEP_WARM + 100;
        let stacks: Vec<VuStack> = (0..count).map(|_| pool.take().unwrap()).collect();
        for s in &stacks {
            // Touch the top of each stack, as a coroutine would.
            // SAFETY: the highest word of the slot's usable range, not in use.
            unsafe { ((s.base().get() - 8) as *mut u64).write_volatile(7) };
        }
        drop(stacks);
        let (warm, cold) = pool.idle();
        assert_eq!(warm, KEEP_WARM);
        assert_eq!(cold, pool.capacity() - KEEP_WARM);
        // A released stack reads back as zero pages; a warm one kept its data.
        let cold_top = *pool.inner.cold.borrow().last().unwrap() + pool.inner.slot_len - 8;
        let warm_top = *pool.inner.warm.borrow().last().unwrap() + pool.inner.slot_len - 8;
        // SAFETY: idle slots of a live slab.
        unsafe {
            assert_eq!((cold_top as *const u64).read_volatile(), 0);
            assert_eq!((warm_top as *const u64).read_volatile(), 7);
        }
    }

    #[test]
    fn slabs_share_one_mapping_among_many_stacks() {
        if !capacity::guard_regions() {
            eprintln!("skipped: this kernel has no guard regions (one mapping pair a stack)");
            return;
        }
        let pool = StackPool::new(Guard::Region);
        let before = mappings_of_this_process();
        let stacks: Vec<VuStack> = (0..64 * 20).map(|_| pool.take().unwrap()).collect();
        let after = mappings_of_this_process();
        assert_eq!(pool.mappings(), 20);
        // Other tests map and unmap concurrently: a generous bound, far below the 2,560
        // mappings that 1,280 DefaultStacks take.
        assert!(after.saturating_sub(before) <= 20 + 100, "{before} -> {after} mappings");
        drop(stacks);
    }

    #[test]
    fn a_coroutine_runs_on_a_slab_stack_and_returns_it() {
        let pool = pool();
        let stack = pool.take().unwrap();
        let (limit, base) = (stack.limit().get(), stack.base().get());
        let mut co = Coroutine::with_stack(stack, |y: &corosensei::Yielder<u32, usize>, input: u32| {
            let local = 0u8;
            y.suspend(std::ptr::addr_of!(local) as usize);
            input * 2
        });
        match co.resume(21) {
            CoroutineResult::Yield(addr) => assert!(addr > limit && addr < base, "the coroutine runs on the stack"),
            CoroutineResult::Return(_) => panic!("expected a suspension"),
        }
        assert!(matches!(co.resume(0), CoroutineResult::Return(42)));
        drop(co);
        assert_eq!(pool.idle(), (1, pool.capacity() - 1), "the stack is back in the pool, warm");
    }

    #[test]
    fn rhai_recursion_to_the_call_limit_fits_a_slab_stack() {
        let pool = pool();
        // Neighbours on both sides, filled with a pattern the recursion must not touch.
        let below = pool.take().unwrap();
        let stack = pool.take().unwrap();
        let above = pool.take().unwrap();
        let fill = |s: &VuStack, byte: u8| {
            let start = s.limit().get() + pool.inner.page;
            // SAFETY: the usable range of a stack nothing runs on.
            unsafe { std::ptr::write_bytes(start as *mut u8, byte, STACK_SIZE) };
        };
        let intact = |s: &VuStack, byte: u8| {
            let start = s.limit().get() + pool.inner.page;
            // SAFETY: as above.
            unsafe { std::slice::from_raw_parts(start as *const u8, STACK_SIZE) }.iter().all(|b| *b == byte)
        };
        fill(&below, 0xAB);
        fill(&above, 0xCD);

        let engine = crate::script::build_engine();
        let script = |n: usize| format!("fn f(n) {{ if n == 0 {{ 0 }} else {{ 1 + f(n - 1) }} }} f({n})");
        let deepest = crate::script::MAX_CALL_LEVELS - 1;
        let (ok, too_deep) = (script(deepest), script(crate::script::MAX_CALL_LEVELS + 5));
        let mut co = Coroutine::with_stack(stack, move |_: &corosensei::Yielder<(), ()>, ()| {
            (engine.eval::<i64>(&ok), engine.eval::<i64>(&too_deep))
        });
        let CoroutineResult::Return((ok, too_deep)) = co.resume(()) else { panic!("no suspension expected") };
        assert_eq!(ok.unwrap(), deepest as i64);
        assert!(
            matches!(*too_deep.unwrap_err(), rhai::EvalAltResult::ErrorStackOverflow(_)),
            "Rhai's own limit stops deeper recursion"
        );
        drop(co);
        assert!(intact(&below, 0xAB) && intact(&above, 0xCD), "the neighbouring stacks are untouched");
    }

    /// Recurses until the stack runs out (the optimiser cannot see the end).
    fn exhaust(depth: u64) -> u64 {
        let frame = std::hint::black_box([depth; 32]);
        if std::hint::black_box(depth) == u64::MAX { frame[0] } else { exhaust(depth + 1) + frame[1] }
    }

    /// Overflows a stack in a forked child and returns how the child ended.
    fn overflow_in_child(stack: VuStack) -> libc::c_int {
        let mut co = Coroutine::with_stack(stack, |_: &corosensei::Yielder<(), ()>, ()| exhaust(0));
        // SAFETY: the child only runs the coroutine (no allocation, no locks) and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let _ = co.resume(());
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        std::mem::forget(co); // never resumed here: nothing to unwind
        status
    }

    /// Reads one byte at `addr` in a forked child and returns how the child ended.
    fn read_in_child(addr: usize) -> libc::c_int {
        // SAFETY: the child only reads one byte and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: a mapped address; whether reading it faults is the question.
            unsafe {
                std::ptr::read_volatile(addr as *const u8);
                libc::_exit(0)
            };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        status
    }

    fn segfaulted(status: libc::c_int) -> bool {
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV
    }

    #[test]
    fn every_guard_page_faults_and_the_stack_above_it_does_not() {
        let pool = pool();
        let stacks: Vec<VuStack> = (0..3).map(|_| pool.take().unwrap()).collect();
        for s in &stacks {
            let (guard, first_usable) = (s.limit().get(), s.limit().get() + pool.inner.page);
            assert!(segfaulted(read_in_child(guard + pool.inner.page - 1)), "the guard page faults");
            assert_eq!(read_in_child(first_usable), 0, "the stack's lowest usable byte reads");
        }
        // Released stacks keep their guards.
        let many: Vec<VuStack> = (0..KEEP_WARM + 2).map(|_| pool.take().unwrap()).collect();
        drop(many);
        let cold = *pool.inner.cold.borrow().last().unwrap();
        assert!(segfaulted(read_in_child(cold)), "the guard page of a released stack faults");
    }

    #[test]
    fn an_overflow_hits_the_guard_page_not_the_neighbour() {
        let pool = pool();
        let stacks: Vec<VuStack> = (0..3).map(|_| pool.take().unwrap()).collect();
        let mut stacks = stacks.into_iter();
        let (_below, middle, _above) = (stacks.next().unwrap(), stacks.next().unwrap(), stacks.next().unwrap());
        // The guard pages themselves are tested above; this shows an overflowing
        // coroutine ends the process rather than running on.
        let status = overflow_in_child(middle);
        assert!(segfaulted(status), "the child died of SIGSEGV at the guard (status {status:#x})");

        // Guards survive releasing a stack's pages.
        let many: Vec<VuStack> = (0..KEEP_WARM + 2).map(|_| pool.take().unwrap()).collect();
        drop(many);
        assert!(pool.idle().1 > 0);
        let cold = pool.inner.cold.borrow_mut().pop().unwrap();
        let status = overflow_in_child(VuStack { bottom: cold, pool: pool.inner.clone() });
        assert!(segfaulted(status), "status {status:#x}");
    }
}
