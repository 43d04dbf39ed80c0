//! Why a media file could not be decoded or converted, as the user should read it.
//!
//! Every error names the file and gives a short lowercase reason ("truncated file",
//! "unsupported codec: g726"); the `Display` form is `<path>: <reason>`. Underlying
//! I/O errors are kept as `#[source]` and never repeated in the message. This file
//! must never import symphonia: callers match on these variants, not on a
//! dependency's error type.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::domain::AudioFormat;

/// A file could not be opened, decoded or converted.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Nothing exists at the path.
    #[error("{}: no such file", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The path is a directory.
    #[error("{}: is a directory", path.display())]
    IsDirectory {
        /// The file.
        path: PathBuf,
    },
    /// The path is a FIFO, socket or device; reading it could block forever.
    #[error("{}: not a regular file", path.display())]
    NotRegularFile {
        /// The file.
        path: PathBuf,
    },
    /// The file has no bytes at all.
    #[error("{}: empty file", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is larger than the decoder accepts.
    #[error("{}: file too large ({}, limit {})", path.display(), Bytes(*size), Bytes(*limit))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The decoded audio would exceed the in-memory limit.
    #[error("{}: decoded audio too large (limit {})", path.display(), Bytes(*limit))]
    DecodedTooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes of f32 samples.
        limit: u64,
    },
    /// Reading the file failed.
    #[error("{}: cannot read file", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No known container or codec signature was found.
    #[error("{}: not an audio file", path.display())]
    NotAudio {
        /// The file.
        path: PathBuf,
    },
    /// The file ends before its header says it should.
    #[error("{}: truncated file{}", path.display(), detail_suffix(detail))]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was expected, if known (e.g. "header claims 4.0 GiB of audio, file has 4.0 KiB").
        detail: Option<String>,
    },
    /// The container is recognised but the codec is not supported.
    #[error("{}: unsupported codec: {codec}", path.display())]
    UnsupportedCodec {
        /// The file.
        path: PathBuf,
        /// The codec's name or tag.
        codec: String,
    },
    /// The file uses a feature or layout that is not supported (e.g. 255 channels).
    #[error("{}: unsupported: {what}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        what: String,
    },
    /// The header is malformed (e.g. 0 channels, a 0 Hz sample rate).
    #[error("{}: invalid header: {what}", path.display())]
    InvalidHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The file was recognised but not a single frame of audio could be decoded.
    #[error("{}: no audio{}", path.display(), detail_suffix(detail))]
    NoAudio {
        /// The file.
        path: PathBuf,
        /// Why, if known.
        detail: Option<String>,
    },
    /// The stream kept failing to decode; decoding was abandoned.
    #[error("{}: corrupt audio data ({errors} undecodable packets in a row)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Consecutive packets that failed.
        errors: u32,
    },
    /// The decoder panicked; the panic was caught.
    #[error("{}: decoder crashed", path.display())]
    DecoderCrashed {
        /// The file.
        path: PathBuf,
    },
    /// The requested conversion is impossible (zero or out-of-range rate or channels).
    #[error("cannot convert {} to {}: {what}", Fmt(*from), Fmt(*to))]
    Convert {
        /// The source format.
        from: AudioFormat,
        /// The target format.
        to: AudioFormat,
        /// What is wrong.
        what: String,
    },
}

impl MediaError {
    /// The file this error is about; empty for conversion errors, which concern no file.
    pub fn path(&self) -> &Path {
        match self {
            Self::NotFound { path }
            | Self::IsDirectory { path }
            | Self::NotRegularFile { path }
            | Self::Empty { path }
            | Self::TooLarge { path, .. }
            | Self::DecodedTooLarge { path, .. }
            | Self::Io { path, .. }
            | Self::NotAudio { path }
            | Self::Truncated { path, .. }
            | Self::UnsupportedCodec { path, .. }
            | Self::Unsupported { path, .. }
            | Self::InvalidHeader { path, .. }
            | Self::NoAudio { path, .. }
            | Self::Corrupt { path, .. }
            | Self::DecoderCrashed { path } => path,
            Self::Convert { .. } => Path::new(""),
        }
    }

    /// The reason alone, without the path (e.g. "truncated file"); includes the I/O cause.
    pub fn reason(&self) -> String {
        let full = match self {
            Self::Io { source, .. } => format!("{self}: {source}"),
            _ => self.to_string(),
        };
        let prefix = format!("{}: ", self.path().display());
        match full.strip_prefix(&prefix) {
            Some(r) if !matches!(self, Self::Convert { .. }) => r.to_owned(),
            _ => full,
        }
    }

    /// Maps an I/O error met while opening or reading `path` to the matching variant.
    pub(crate) fn from_io(path: &Path, e: std::io::Error) -> MediaError {
        let path = path.to_path_buf();
        match e.kind() {
            std::io::ErrorKind::NotFound => Self::NotFound { path },
            std::io::ErrorKind::IsADirectory => Self::IsDirectory { path },
            std::io::ErrorKind::UnexpectedEof => Self::Truncated { path, detail: None },
            _ => Self::Io { path, source: e },
        }
    }
}

fn detail_suffix(detail: &Option<String>) -> String {
    match detail {
        Some(d) => format!(" ({d})"),
        None => String::new(),
    }
}

/// A byte count in binary units with one decimal ("5.1 GiB", "4.0 KiB", "512 B").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut div: u64 = 1024;
        let mut unit = 0;
        while self.0 / div >= 1024 && unit + 1 < UNITS.len() {
            div *= 1024;
            unit += 1;
        }
        // Exact multiples print without a decimal: "2 GiB", not "2.0 GiB".
        if self.0.is_multiple_of(div) {
            write!(f, "{} {}", self.0 / div, UNITS[unit])
        } else {
            write!(f, "{:.1} {}", self.0 as f64 / div as f64, UNITS[unit])
        }
    }
}

/// An audio format as "44100 Hz 2 ch".
struct Fmt(AudioFormat);

impl fmt::Display for Fmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz {} ch", self.0.sample_rate, self.0.channels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_path_then_reason() {
        let e = MediaError::TooLarge {
            path: "/x/a.wav".into(),
            size: 5_476_083_302,
            limit: 2 << 30,
        };
        assert_eq!(
            e.to_string(),
            "/x/a.wav: file too large (5.1 GiB, limit 2 GiB)"
        );
        assert_eq!(e.reason(), "file too large (5.1 GiB, limit 2 GiB)");
        assert_eq!(e.path(), Path::new("/x/a.wav"));
        let e = MediaError::UnsupportedCodec {
            path: "b.wav".into(),
            codec: "g726".into(),
        };
        assert_eq!(e.to_string(), "b.wav: unsupported codec: g726");
        let e = MediaError::Truncated {
            path: "c.flac".into(),
            detail: None,
        };
        assert_eq!(e.to_string(), "c.flac: truncated file");
        let e = MediaError::InvalidHeader {
            path: "d.wav".into(),
            what: "0 channels".into(),
        };
        assert_eq!(e.reason(), "invalid header: 0 channels");
    }

    #[test]
    fn io_errors_keep_their_source() {
        let e = MediaError::from_io(
            Path::new("p"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.to_string(), "p: cannot read file");
        assert!(std::error::Error::source(&e).is_some());
        assert!(e.reason().starts_with("cannot read file: "));
        let e = MediaError::from_io(
            Path::new("p"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.to_string(), "p: no such file");
    }

    #[test]
    fn byte_units() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(4096).to_string(), "4 KiB");
        assert_eq!(Bytes(4044).to_string(), "3.9 KiB");
        assert_eq!(Bytes(u64::from(u32::MAX)).to_string(), "4.0 GiB");
    }
}
