//! Media files: decoding (symphonia, plus the opus crate for Ogg Opus), conversion to
//! the engine's rate and channels (rubato), and WAV/RF64 writing.
//!
//! The only module that imports symphonia. Never used from the audio callback.
