//! The `jhack` binary: everything happens in `jhack::cli`.

fn main() -> std::process::ExitCode {
    jhack::cli::main()
}
