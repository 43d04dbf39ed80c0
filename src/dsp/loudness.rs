//! Integrated loudness (EBU R128 / ITU-R BS.1770), measured block by block so a
//! file of any length is measured in constant memory.
//!
//! A mono sound is measured as dual mono: it is played on both channels of a stereo
//! output, so this is the loudness a listener hears, and it matches a stereo file of
//! the same signal in both channels. Not for the audio callback (it allocates when
//! built).

use ebur128::{Channel, EbuR128, Mode};

/// Measures the integrated loudness of interleaved f32 audio fed in blocks.
pub struct LoudnessMeter {
    inner: Option<EbuR128>,
    channels: usize,
}

impl LoudnessMeter {
    /// A meter for `channels` channels at `sample_rate`. Formats the measurement
    /// cannot handle (no channels, absurd rates) give a meter that reports `None`.
    pub fn new(channels: u16, sample_rate: u32) -> Self {
        let mut inner = EbuR128::new(u32::from(channels), sample_rate, Mode::I).ok();
        if channels == 1
            && let Some(m) = inner.as_mut()
            && m.set_channel(0, Channel::DualMono).is_err()
        {
            inner = None;
        }
        Self {
            inner,
            channels: usize::from(channels.max(1)),
        }
    }

    /// Adds interleaved samples (whole frames).
    pub fn add(&mut self, samples: &[f32]) {
        let whole = samples.len() / self.channels * self.channels;
        if let Some(m) = self.inner.as_mut()
            && m.add_frames_f32(&samples[..whole]).is_err()
        {
            self.inner = None;
        }
    }

    /// The integrated loudness in LUFS so far; `None` for silence, sounds shorter than
    /// one 400 ms gating block, or an unmeasurable format.
    pub fn integrated(&self) -> Option<f32> {
        let l = self.inner.as_ref()?.loudness_global().ok()?;
        (l.is_finite() && l > -70.0).then_some(l as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(amp: f32, channels: usize, secs: f32) -> Vec<f32> {
        let n = (48_000.0 * secs) as usize;
        (0..n)
            .flat_map(|i| {
                let s = amp * (2.0 * std::f32::consts::PI * 997.0 * i as f32 / 48_000.0).sin();
                std::iter::repeat_n(s, channels)
            })
            .collect()
    }

    #[test]
    fn a_full_scale_sine_measures_minus_three_lufs_per_channel() {
        let mut m = LoudnessMeter::new(2, 48_000);
        for block in sine(1.0, 2, 3.0).chunks(4096) {
            m.add(block);
        }
        // -3.01 LUFS from each channel; two channels sum to 0 LUFS.
        let l = m.integrated().expect("measured");
        assert!(l.abs() < 0.2, "{l}");
        let mut one = LoudnessMeter::new(3, 48_000);
        let only_left: Vec<f32> = sine(1.0, 1, 3.0)
            .iter()
            .flat_map(|&s| [s, 0.0, 0.0])
            .collect();
        one.add(&only_left);
        let l = one.integrated().expect("measured");
        assert!((l - -3.01).abs() < 0.2, "{l}");
    }

    #[test]
    fn mono_matches_the_same_signal_in_stereo_and_levels_scale() {
        let mut mono = LoudnessMeter::new(1, 48_000);
        mono.add(&sine(0.5, 1, 2.0));
        let mut stereo = LoudnessMeter::new(2, 48_000);
        stereo.add(&sine(0.5, 2, 2.0));
        let (a, b) = (
            mono.integrated().expect("mono"),
            stereo.integrated().expect("stereo"),
        );
        assert!((a - b).abs() < 0.1, "{a} vs {b}");
        let mut quiet = LoudnessMeter::new(2, 48_000);
        quiet.add(&sine(0.05, 2, 2.0));
        let q = quiet.integrated().expect("quiet");
        assert!((b - q - 20.0).abs() < 0.2, "{b} vs {q}");
    }

    #[test]
    fn silence_and_tiny_sounds_have_no_loudness() {
        let mut m = LoudnessMeter::new(2, 48_000);
        m.add(&vec![0.0; 96_000]);
        assert_eq!(m.integrated(), None);
        let mut short = LoudnessMeter::new(2, 48_000);
        short.add(&sine(0.5, 2, 0.1));
        assert_eq!(short.integrated(), None);
        assert_eq!(LoudnessMeter::new(0, 48_000).integrated(), None);
    }
}
