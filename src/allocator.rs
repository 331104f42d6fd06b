//! The process's allocator: mimalloc, asked the way a C program asks it.
//!
//! The `mimalloc` crate's `GlobalAlloc` passes every request to `mi_malloc_aligned`.
//! In mimalloc 3 that call only stays on the fast path while the size class's free list
//! has a block; when it is empty (often, under load), a size that is not a power of two
//! takes the over-allocating generic path: a larger block, an interior pointer, and
//! about 300 instructions instead of about 20 (callgrind, `benches/http_loop.rhai`: 3.4
//! such calls per request). Ordinary alignments need none of that: every mimalloc block
//! is word-aligned, and blocks whose size is a multiple of 16 are 16-aligned (bins are
//! 16-grained above 64 bytes and each page's first block is 16-aligned), so those
//! requests go to plain `mi_malloc`, as Rust's `System` allocator does with `malloc`.
//! Larger alignments keep mimalloc's aligned functions.

use libmimalloc_sys as mi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// mimalloc as the global allocator (see the module's documentation).
pub struct MiMalloc;

/// Whether a plain (unaligned) mimalloc call meets `align` for a block of `size` bytes.
#[inline]
fn plain(size: usize, align: usize) -> bool {
    // MI_INTPTR_SIZE: the smallest block is a word; MI_MAX_ALIGN_SIZE: 16.
    align <= size_of::<usize>() || (align <= 16 && size.is_multiple_of(16))
}

// SAFETY: every function forwards to mimalloc, whose allocations meet the layout: plain
// calls only where `plain` holds (see the module's documentation), aligned ones
// elsewhere; `mi_free` and `mi_realloc*` accept blocks from either.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: FFI calls with a size and a power-of-two alignment.
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's contract).
        unsafe {
            if plain(new_size, layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size up to a few pages, at every alignment up to 4 KiB, many blocks at once
    /// (so free lists empty and refill), plain and zeroed, then grown and shrunk: each
    /// block meets its alignment, zeroed ones read zero, and contents survive `realloc`.
    #[test]
    fn blocks_meet_their_alignment_through_alloc_zero_and_realloc() {
        let a = MiMalloc;
        let mut sizes: Vec<usize> = (1..=256).collect();
        sizes.extend((264..=4096).step_by(24));
        sizes.extend([5_000, 16_384, 65_536, 300_000, 1 << 20]);
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for &size in &sizes {
                let layout = Layout::from_size_align(size, align).unwrap();
                let mut blocks = Vec::new();
                for i in 0..8 {
                    // SAFETY: non-zero size; the blocks are freed below with their layout.
                    let p = unsafe { if i % 2 == 0 { a.alloc(layout) } else { a.alloc_zeroed(layout) } };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    if i % 2 == 1 {
                        // SAFETY: `p` holds `size` bytes.
                        assert!(unsafe { std::slice::from_raw_parts(p, size) }.iter().all(|&b| b == 0));
                    }
                    // SAFETY: as above.
                    unsafe { p.write_bytes(0xA5, size) };
                    blocks.push(p);
                }
                for (i, p) in blocks.into_iter().enumerate() {
                    let new_size = if i % 2 == 0 { size * 3 + 8 } else { size.div_ceil(2) };
                    // SAFETY: `p` is live with `layout`; the new size is non-zero.
                    let q = unsafe { a.realloc(p, layout, new_size) };
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0, "realloc {size} -> {new_size} align {align}");
                    let kept = size.min(new_size);
                    // SAFETY: `q` holds at least `kept` bytes.
                    assert!(unsafe { std::slice::from_raw_parts(q, kept) }.iter().all(|&b| b == 0xA5));
                    // SAFETY: `q` is live with this layout.
                    unsafe { a.dealloc(q, Layout::from_size_align(new_size, align).unwrap()) };
                }
            }
        }
    }

    #[test]
    fn plain_only_where_a_block_is_aligned_anyway() {
        assert!(plain(3, 1) && plain(24, 8) && plain(8, 8) && plain(48, 16) && plain(4096, 16));
        assert!(!plain(24, 16) && !plain(40, 16) && !plain(64, 32) && !plain(4096, 4096));
    }
}
