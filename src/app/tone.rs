//! Test tones: a sine generator streamed into an engine voice, with short fades at both
//! ends so it starts and stops without clicks.

use std::f64::consts::TAU;
use std::time::Duration;

use crate::audio::{Engine, PlayOptions, VoiceId};
use crate::domain::AudioFormat;

use super::feeder::{self, Feed, FeedSizes};
use super::player::PlayError;

/// Fade at each end of a tone.
pub const TONE_FADE: Duration = Duration::from_millis(5);
const BLOCK_FRAMES: u64 = 1024;

/// A sine of `freq` Hz, peak `amplitude`, `duration` long, in `format`.
pub struct Sine {
    format: AudioFormat,
    freq: f64,
    amplitude: f32,
    total: u64,
    fade: u64,
    pos: u64,
}

impl Sine {
    /// A new generator.
    pub fn new(format: AudioFormat, freq: f64, amplitude: f32, duration: Duration) -> Self {
        let rate = f64::from(format.sample_rate);
        let total = (duration.as_secs_f64() * rate).round() as u64;
        let fade = ((TONE_FADE.as_secs_f64() * rate) as u64).min(total / 2);
        Self {
            format,
            freq,
            amplitude,
            total,
            fade,
            pos: 0,
        }
    }

    /// Appends up to one block; returns whether more follow.
    pub fn fill(&mut self, out: &mut Vec<f32>) -> bool {
        let end = (self.pos + BLOCK_FRAMES).min(self.total);
        let step = TAU * self.freq / f64::from(self.format.sample_rate);
        for i in self.pos..end {
            let env = if i < self.fade {
                i as f32 / self.fade as f32
            } else if i >= self.total - self.fade {
                (self.total - i) as f32 / self.fade.max(1) as f32
            } else {
                1.0
            };
            // Phase from the frame index keeps long tones exact (no accumulated drift).
            let s = ((step * i as f64) % TAU).sin() as f32 * self.amplitude * env;
            out.extend(std::iter::repeat_n(s, usize::from(self.format.channels)));
        }
        self.pos = end;
        self.pos < self.total
    }
}

/// A tone being played.
pub struct PlayingTone {
    /// The engine voice.
    pub id: VoiceId,
    _feed: Feed<std::convert::Infallible>,
}

/// Starts a tone on the engine.
pub fn play(
    engine: &Engine,
    freq: f64,
    amplitude: f32,
    duration: Duration,
) -> Result<PlayingTone, PlayError> {
    let mut sine = Sine::new(engine.format(), freq, amplitude, duration);
    let producer =
        move |out: &mut Vec<f32>| -> Result<bool, std::convert::Infallible> { Ok(sine.fill(out)) };
    let sizes = FeedSizes {
        ring_s: 0.5,
        prebuffer_s: 0.1,
    };
    let (source, feed) =
        feeder::spawn("jhack-tone", engine.format(), sizes, producer).map_err(PlayError::Thread)?;
    feed.wait_ready(Duration::from_secs(5));
    let id = engine.play(source, PlayOptions::default())?;
    Ok(PlayingTone { id, _feed: feed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::analysis::goertzel_amplitude;

    #[test]
    fn sine_has_the_right_length_level_and_fades() {
        let fmt = AudioFormat::new(48_000, 2);
        let mut s = Sine::new(fmt, 1000.0, 0.5, Duration::from_millis(500));
        let mut out = Vec::new();
        while s.fill(&mut out) {}
        assert_eq!(out.len(), 24_000 * 2);
        assert_eq!(out[0], 0.0);
        let left: Vec<f32> = out.iter().step_by(2).copied().collect();
        assert!((goertzel_amplitude(&left[2400..21600], 48_000, 1000.0) - 0.5).abs() < 0.01);
        assert!(left.last().unwrap().abs() < 0.01);
    }
}
