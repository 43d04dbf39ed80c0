//! Pure signal processing on slices of f32: the limiter, level meters and tone analysis.
//!
//! Everything here is allocation-free after construction and safe to call from the
//! audio callback; nothing here knows about devices, files or threads.

pub mod analysis;
pub mod limiter;
pub mod meter;

pub use limiter::Limiter;
pub use meter::LevelMeter;
