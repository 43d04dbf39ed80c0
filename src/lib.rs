//! jhack: a terminal soundboard and intercom.
//!
//! Layers (dependencies point downwards only):
//! - `cli` parses arguments and runs commands (the binary's side);
//! - `app` wires subsystems together (decoders feeding the engine, capture feeding files);
//! - `audio` (real-time engine), `media` (decode, resample, write files), `dsp` (pure signal code);
//! - `net` (peers over QUIC: identity, trust, triggers, verified blob transfer);
//! - `domain` holds plain types and units, with no I/O; `proto` the peer wire format.

pub mod alloc;
pub mod app;
pub mod audio;
pub mod cache;
pub mod cli;
pub mod config;
pub mod domain;
pub mod dsp;
pub mod guard;
pub mod home;
pub mod library;
pub mod media;
pub mod net;
pub mod proto;
pub mod sync;
pub mod tui;
pub mod voice;

/// The unit tests' allocator, as the binary's (`main.rs`), so figures measured in
/// process are the program's. (The integration tests keep their own: one of them
/// proves that rendering allocates nothing.)
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;
