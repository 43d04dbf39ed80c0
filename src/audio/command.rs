//! Messages between the engine's control side and the mixer on the audio thread.
//!
//! Every message travels through a bounded lock-free SPSC ring; nothing here allocates
//! when sent or received (voices are boxed on the control side before sending).

use super::voice::{EndReason, Voice, VoiceId};

/// Control side → mixer.
pub enum Command {
    /// Start a voice (or refuse it when every slot is taken).
    Play(Box<Voice>),
    /// Fade a voice out over the given number of frames, then end it.
    Stop {
        /// The voice to stop.
        id: VoiceId,
        /// Fade length in frames.
        fade_frames: u32,
    },
    /// Fade every voice out.
    StopAll {
        /// Fade length in frames.
        fade_frames: u32,
    },
    /// Change a voice's linear gain (smoothed over one block).
    SetGain {
        /// The voice.
        id: VoiceId,
        /// New linear gain.
        gain: f32,
    },
}

/// Mixer → control side: a voice that is done, to be dropped off the audio thread.
pub struct Returned {
    /// The voice, with its counters.
    pub voice: Box<Voice>,
    /// Why it came back.
    pub reason: EndReason,
}

/// Mixer → control side: things worth knowing that carry no owned data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// A voice produced its first frame.
    Started {
        /// The voice.
        id: VoiceId,
        /// Time from the play command to the callback that started it, in nanoseconds.
        trigger_to_callback_ns: u64,
        /// Engine frame of its first sample (before the limiter's look-ahead).
        frame: u64,
    },
}
