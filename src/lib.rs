//! jhack: a terminal soundboard and intercom.
//!
//! Layers (dependencies point downwards only):
//! - `cli` parses arguments and runs commands (the binary's side);
//! - `app` wires subsystems together (decoders feeding the engine, capture feeding files);
//! - `audio` (real-time engine), `media` (decode, resample, write files), `dsp` (pure signal code);
//! - `net` (peers over QUIC: identity, trust, triggers, verified blob transfer);
//! - `voice` (the intercom: codec, voice datagram, jitter buffer) and `sync` (the
//!   library's records across machines: clocks, merge, exchange), both plain state
//!   machines with no I/O;
//! - `library` (records and files, crash-safe), `tui` (the screen);
//! - `domain` holds plain types and units, with no I/O; `proto` the peer wire format.
//!
//! These docs are for the people working on jhack (`cargo doc --document-private-items`):
//! a module's overview links to the private parts it is made of.

#![allow(rustdoc::private_intra_doc_links)]

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
