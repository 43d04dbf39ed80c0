//! The `jhack` binary: everything happens in `jhack::cli`.

/// The allocator: mimalloc for small blocks, the C library's for large ones (see
/// `jhack::alloc`). The audio callback allocates nothing either way.
#[global_allocator]
static ALLOCATOR: jhack::alloc::Allocator = jhack::alloc::Allocator;

fn main() {
    no_huge_pages();
    leave(jhack::cli::main())
}

/// Ends the process with `status` once what it printed is out, without the C
/// library's exit handlers. Everything jhack keeps is on disk by then (each commit
/// is flushed as it is made, and the command has closed its library, node and
/// terminal), while mimalloc's handler handed every arena page back to the kernel
/// one call at a time: about 600 calls after a whole-library fetch, for memory the
/// kernel takes back at once as the process ends.
fn leave(status: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process at once; nothing of ours runs after it.
    unsafe { libc::_exit(i32::from(status)) }
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
