//! Plain types shared by every layer: units and audio formats.
//!
//! Nothing here does I/O or depends on any other module of the crate.

mod format;
mod units;

pub use format::AudioFormat;
pub use units::{Amplitude, Decibels, Frames};
