//! The `jhack` binary: everything happens in `jhack::cli`.

/// The allocator: mimalloc. The library's store (sled) allocates and frees a great
/// many small nodes, and glibc's malloc spent about a third of a metadata sync in
/// its own bookkeeping. The audio callback allocates nothing either way.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    jhack::cli::main()
}
