//! Plain types shared by every layer: units, audio formats and sound metadata.
//!
//! Nothing here does I/O or depends on any other module of the crate.

mod format;
mod sound;
mod units;

pub use format::AudioFormat;
pub use sound::{Origin, SoundId, SoundMeta};
pub use units::{Amplitude, Decibels, Frames};
