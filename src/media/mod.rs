//! Media files: decoding (symphonia, plus the opus crate for Ogg Opus), conversion to
//! the engine's rate and channels (rubato), and WAV/RF64 writing.
//!
//! The only module that imports symphonia. Never used from the audio callback.
//!
//! - [`Decoder`] streams one file as interleaved f32 at its native format;
//!   [`decode_file`] decodes a whole file (for preloading), optionally converted.
//! - [`Converter`] resamples and maps channels, block by block, without added delay.
//! - [`map_channels`] up- and down-mixes interleaved audio (ITU downmix for 5.1/7.1).
//! - [`guard`] holds the limits for untrusted files and catches decoder panics.
//! - [`MediaError`] says which file failed and why, in one line.
//!
//! Bad input (missing, empty, truncated, corrupt, huge, not audio, unsupported) always
//! ends in a [`MediaError`], never a panic or a hang.

mod channels;
mod convert;
mod decode;
mod error;
pub mod guard;
mod opus_codec;
pub mod stretch;
pub mod wav;

pub use channels::map_channels;
pub use convert::Converter;
pub use decode::{Decoded, Decoder, ReadSeek, SourceInfo, decode_file};
pub use error::MediaError;
