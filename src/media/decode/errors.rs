//! How symphonia errors and format-limit problems become [`MediaError`]s, with
//! symphonia's "module: message" text tidied for display.
//!
//! Classification only: never decides whether a packet is skipped or a stream ends
//! (the decode loop does, per context), never touches a file, never drops the path.

use std::path::Path;

use symphonia::core::errors::Error as SymError;

use crate::media::error::MediaError;
use crate::media::guard::FormatProblem;

/// A format outside the limits, as an error about `path`.
pub(super) fn format_error(path: &Path, p: FormatProblem) -> MediaError {
    let path = path.to_path_buf();
    match p {
        FormatProblem::Invalid(what) => MediaError::InvalidHeader { path, what },
        FormatProblem::Unsupported(what) => MediaError::Unsupported { path, what },
    }
}

/// Maps a symphonia error met while opening (or a fatal one while reading).
pub(super) fn open_error(path: &Path, e: SymError) -> MediaError {
    let p = path.to_path_buf();
    match e {
        SymError::IoError(e) => MediaError::from_io(path, e),
        SymError::Unsupported(msg) if msg.contains("no suitable format reader") => {
            MediaError::NotAudio { path: p }
        }
        SymError::Unsupported(msg) => MediaError::Unsupported {
            path: p,
            what: strip_prefix(msg),
        },
        SymError::DecodeError(msg) => MediaError::InvalidHeader {
            path: p,
            what: strip_prefix(msg),
        },
        SymError::LimitError(msg) => MediaError::Unsupported {
            path: p,
            what: format!("limit reached: {msg}"),
        },
        other => MediaError::InvalidHeader {
            path: p,
            what: other.to_string(),
        },
    }
}

/// "wav: malformed fmt chunk" -> "malformed fmt chunk (wav)".
pub(super) fn strip_prefix(msg: &str) -> String {
    match msg.split_once(": ") {
        Some((module, rest)) if !module.contains(' ') || module.ends_with(')') => {
            format!("{rest} ({module})")
        }
        _ => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symphonia_messages_are_tidied() {
        assert_eq!(
            strip_prefix("wav: malformed fmt chunk"),
            "malformed fmt chunk (wav)"
        );
        assert_eq!(
            strip_prefix("core (probe): no suitable format reader found"),
            "no suitable format reader found (core (probe))"
        );
        assert_eq!(strip_prefix("plain message"), "plain message");
    }
}
