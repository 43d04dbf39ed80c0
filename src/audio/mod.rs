//! The real-time audio engine: mixer, voices, capture, devices, null backend and the
//! supervisor that keeps streams alive.
//!
//! Imports neither tokio, sled, quinn nor ratatui; only `device.rs` imports cpal. The
//! mixer and capture processor run on audio threads and follow the real-time rules:
//! no allocation, locks, blocking, I/O, logging or panics there.

pub mod capture;
pub mod command;
pub mod device;
pub mod engine;
pub mod gaps;
pub mod mixer;
pub mod null;
pub mod stats;
pub mod supervisor;
pub mod voice;

pub use capture::LostInput;
pub use device::{DeviceError, DeviceInfo, DeviceSpec, StreamInfo, list_devices};
pub use engine::{
    Engine, EngineConfig, EngineError, InputTap, PlayOptions, TapGuard, VoiceOutcome, VoiceState,
};
pub use mixer::{BLOCK_FRAMES, Mixer};
pub use stats::{StatsSnapshot, monotonic_ns};
pub use supervisor::EngineInfo;
pub use voice::{EndReason, VoiceId, VoiceSource};
