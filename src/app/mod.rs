//! Orchestration: the only place that wires subsystems together — decoders and
//! generators feeding engine voices, the engine's input feeding WAV files and the
//! output (monitor).
//!
//! Everything here runs on ordinary threads; it hands the engine ready-to-play
//! samples and never touches the audio thread's data directly.

pub mod activity;
pub mod attach;
pub mod bank;
pub mod call;
pub mod control;
pub mod feeder;
pub mod growing;
pub mod import;
pub mod instance;
pub mod peers;
pub mod player;
pub mod recorder;
pub mod requests;
pub mod spectrum;
pub mod spectrum_feed;
pub mod ssh;
pub mod starter;
pub mod sync;
pub mod tone;
pub mod wire;
