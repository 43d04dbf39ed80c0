//! Plain types shared by every layer: units, audio formats, sound metadata, and the
//! one-line form of errors.
//!
//! Nothing here does I/O or depends on any other module of the crate.

mod errors;
mod format;
mod sound;
mod units;

pub use errors::chain;
pub use format::AudioFormat;
pub use sound::{Origin, SoundId, SoundMeta, duration_text};
pub use units::{Amplitude, Decibels, Frames};
