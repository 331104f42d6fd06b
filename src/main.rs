//! The `volley` binary: parse the command line, run, map the result to an exit code.

use clap::Parser;

/// mimalloc: the per-request allocations of HTTP and metrics cost half as much as with glibc.
#[global_allocator]
static GLOBAL: volley::allocator::MiMalloc = volley::allocator::MiMalloc;

/// mimalloc's `arena_eager_commit` option (its number in mimalloc 3's `mi_option_t`).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commits mimalloc's arena memory as it is used, not in advance: eagerly committed
/// (and, on Linux, transparently huge-paged) arenas added ~13 KB of RSS per VU at
/// 10,000 VUs. Runs as a constructor, before the Rust runtime's first allocation makes
/// the first arena (setting it in `main` is too late). It must not allocate.
extern "C" fn configure_allocator() {
    // SAFETY: sets an allocator option; no allocation has happened yet.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

fn main() {
    volley::script::fix_hashing();
    let cli = volley::cli::Cli::parse();
    std::process::exit(volley::cli::execute(cli));
}
