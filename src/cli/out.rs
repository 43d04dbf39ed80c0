//! What commands print on stdout. A reader that goes away (`jhack list | head -1`)
//! is not an error: the command stops quietly, as Unix tools do, instead of
//! panicking inside `println!`. SIGPIPE itself stays ignored, so a closed socket is
//! still an error the command can report.

use std::io::Write;

/// Writes one line to stdout; exits quietly (status 0) when stdout was closed.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("jhack: error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` for commands: see [`line()`].
macro_rules! outln {
    () => {
        $crate::cli::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}
