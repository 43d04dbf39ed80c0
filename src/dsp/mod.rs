//! Pure signal processing on slices of f32: the limiter, level and loudness meters,
//! tone analysis and the spectrum analyser.
//!
//! The limiter and level meters are allocation-free after construction and safe to
//! call from the audio callback; loudness, analysis and spectrum are for worker
//! threads and tests. Nothing here knows about devices, files or threads.

pub mod analysis;
pub mod limiter;
pub mod loudness;
pub mod meter;
pub mod spectrum;

pub use limiter::Limiter;
pub use loudness::LoudnessMeter;
pub use meter::LevelMeter;
pub use spectrum::{BandReduce, LogBands, SpectrumAnalyser};
