//! Units as newtypes, where mixing them up is easy: decibels vs linear amplitude,
//! frames vs samples.

use std::time::Duration;

/// A level or gain in decibels (0 dB = unity).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Decibels(pub f32);

/// A linear amplitude factor (1.0 = unity).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Amplitude(pub f32);

impl Decibels {
    /// Unity gain.
    pub const ZERO: Decibels = Decibels(0.0);

    /// The linear factor for this gain; anything at or below -200 dB is silence.
    pub fn to_amplitude(self) -> Amplitude {
        if self.0 <= -200.0 {
            Amplitude(0.0)
        } else {
            Amplitude(10f32.powf(self.0 / 20.0))
        }
    }
}

impl Amplitude {
    /// Unity gain.
    pub const ONE: Amplitude = Amplitude(1.0);

    /// This factor in decibels; silence is negative infinity.
    pub fn to_decibels(self) -> Decibels {
        Decibels(20.0 * self.0.abs().log10())
    }
}

impl From<Decibels> for Amplitude {
    fn from(db: Decibels) -> Self {
        db.to_amplitude()
    }
}

/// A count of frames (one sample per channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Frames(pub u64);

impl Frames {
    /// The duration of this many frames at `rate` frames per second.
    pub fn duration(self, rate: u32) -> Duration {
        Duration::from_secs_f64(self.0 as f64 / f64::from(rate.max(1)))
    }

    /// The number of frames in `d` at `rate`, rounded to nearest.
    pub fn from_duration(d: Duration, rate: u32) -> Frames {
        Frames((d.as_secs_f64() * f64::from(rate)).round() as u64)
    }

    /// Interleaved sample count for `channels` channels.
    pub fn samples(self, channels: u16) -> usize {
        self.0 as usize * usize::from(channels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decibel_round_trip() {
        for db in [-60.0f32, -6.0, 0.0, 6.0] {
            let back = Decibels(db).to_amplitude().to_decibels().0;
            assert!((back - db).abs() < 1e-4, "{db} -> {back}");
        }
        assert!((Decibels(-6.0206).to_amplitude().0 - 0.5).abs() < 1e-4);
        assert_eq!(Decibels(-300.0).to_amplitude().0, 0.0);
    }

    #[test]
    fn frames_and_durations() {
        let f = Frames::from_duration(Duration::from_millis(500), 48_000);
        assert_eq!(f, Frames(24_000));
        assert_eq!(f.samples(2), 48_000);
        assert_eq!(f.duration(48_000), Duration::from_millis(500));
    }
}
