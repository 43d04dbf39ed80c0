//! When a talker transmits: push-to-talk (while held), a latch (toggled), or voice
//! activity (the frame's level above a threshold, held open for a hang time so words
//! are not clipped between syllables). Pure: levels and time in, on/off out.

/// How a talker's microphone opens.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TalkMode {
    /// Open while the talk key is held (or latched, where key releases are not told).
    PushToTalk,
    /// Always open (the `--open` microphone); DTX still sends almost nothing in silence.
    Open,
    /// Open while the level is above `threshold_db` and for `hang_ms` after.
    Activity {
        /// Opening level, dBFS (RMS of a frame).
        threshold_db: f32,
        /// How long it stays open after the level falls, ms.
        hang_ms: u32,
    },
}

impl TalkMode {
    /// Voice activity with its usual settings: −45 dBFS, 300 ms.
    pub const VAD: TalkMode = TalkMode::Activity {
        threshold_db: -45.0,
        hang_ms: 300,
    };
}

/// The gate's state for one talker.
#[derive(Debug, Clone)]
pub struct Gate {
    mode: TalkMode,
    pressed: bool,
    open_until_us: u64,
}

impl Gate {
    /// A closed gate in `mode`.
    pub fn new(mode: TalkMode) -> Gate {
        Gate {
            mode,
            pressed: false,
            open_until_us: 0,
        }
    }

    /// The mode.
    pub fn mode(&self) -> TalkMode {
        self.mode
    }

    /// The talk key went down (`true`) or up.
    pub fn press(&mut self, down: bool) {
        self.pressed = down;
    }

    /// Toggles the latch (a talk key on a terminal that does not report releases).
    pub fn toggle(&mut self) {
        self.pressed = !self.pressed;
    }

    /// Whether the talk key is down (or latched).
    pub fn pressed(&self) -> bool {
        self.pressed
    }

    /// Whether the frame with RMS level `level_db` (dBFS) captured at `now_us` goes out.
    pub fn transmit(&mut self, level_db: f32, now_us: u64) -> bool {
        match self.mode {
            TalkMode::PushToTalk => self.pressed,
            TalkMode::Open => true,
            TalkMode::Activity {
                threshold_db,
                hang_ms,
            } => {
                if level_db >= threshold_db {
                    self.open_until_us = now_us + u64::from(hang_ms) * 1000;
                }
                now_us < self.open_until_us
            }
        }
    }
}

/// RMS level of `samples` in dBFS (−120 for silence).
pub fn level_db(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return -120.0;
    }
    let ms = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    if ms <= 1e-12 {
        -120.0
    } else {
        10.0 * ms.log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_to_talk_and_latch() {
        let mut g = Gate::new(TalkMode::PushToTalk);
        assert!(!g.transmit(0.0, 0));
        g.press(true);
        assert!(g.transmit(-100.0, 10));
        g.press(false);
        assert!(!g.transmit(0.0, 20));
        g.toggle();
        assert!(g.transmit(0.0, 30) && g.pressed());
        g.toggle();
        assert!(!g.transmit(0.0, 40));
        assert!(Gate::new(TalkMode::Open).transmit(-120.0, 0));
    }

    #[test]
    fn activity_opens_on_level_and_hangs() {
        let mut g = Gate::new(TalkMode::VAD);
        assert!(!g.transmit(-60.0, 0));
        assert!(g.transmit(-20.0, 10_000));
        assert!(g.transmit(-70.0, 300_000));
        assert!(!g.transmit(-70.0, 310_001));
    }

    #[test]
    fn levels() {
        assert_eq!(level_db(&[]), -120.0);
        assert_eq!(level_db(&[0.0; 10]), -120.0);
        assert!((level_db(&[1.0, -1.0]) - 0.0).abs() < 1e-4);
        assert!((level_db(&[0.1; 8]) + 20.0).abs() < 1e-3);
    }
}
