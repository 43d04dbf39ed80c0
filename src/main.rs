//! The `jhack` binary: everything happens in `jhack::cli`.

/// The allocator: mimalloc for small blocks, the C library's for large ones (see
/// `jhack::alloc`). The audio callback allocates nothing either way.
#[global_allocator]
static ALLOCATOR: jhack::alloc::Allocator = jhack::alloc::Allocator;

fn main() -> std::process::ExitCode {
    no_huge_pages();
    jhack::cli::main()
}

/// Turns transparent huge pages off for this process. mimalloc asks for them on
/// its arenas (`MADV_HUGEPAGE`), so the first touch of each fresh 2 MiB region
/// faults in and zeroes all of it, however little is used: a whole-library fetch,
/// whose transfers and pool threads touch many fresh regions, spent 0.5–0.8 s of
/// system time in it against 0.3 s without (measured side by side). jhack's heap is
/// small and short-lived; it gains nothing from huge pages. Best effort: an old
/// kernel that refuses the call keeps its default.
fn no_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and touches no memory
    // of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
