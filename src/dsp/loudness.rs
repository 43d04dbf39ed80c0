//! Integrated loudness (EBU R128 / ITU-R BS.1770), measured block by block so a
//! file of any length is measured in constant memory.
//!
//! A sound shorter than one 400 ms gating block (a click, a clap) has no integrated
//! loudness by the standard; it is measured as if it repeated, which is its loudness
//! while it sounds. A mono sound is measured as dual mono: it is played on both channels of a stereo
//! output, so this is the loudness a listener hears, and it matches a stereo file of
//! the same signal in both channels. Not for the audio callback (it allocates when
//! built).

use ebur128::{Channel, EbuR128, Mode};

/// Frames kept to measure sounds shorter than a gating block: 400 ms at 192 kHz.
const SHORT_KEEP_FRAMES: usize = 76_800;

/// Measures the integrated loudness of interleaved f32 audio fed in blocks.
pub struct LoudnessMeter {
    inner: Option<EbuR128>,
    channels: u16,
    sample_rate: u32,
    /// The first samples, while there are fewer than a gating block's worth.
    head: Vec<f32>,
    frames: u64,
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
            channels,
            sample_rate,
            head: Vec::new(),
            frames: 0,
        }
    }

    fn gating_block_frames(&self) -> u64 {
        u64::from(self.sample_rate) * 2 / 5
    }

    /// Adds interleaved samples (whole frames).
    pub fn add(&mut self, samples: &[f32]) {
        let ch = usize::from(self.channels.max(1));
        let whole = samples.len() / ch * ch;
        if self.frames < self.gating_block_frames() {
            let room = SHORT_KEEP_FRAMES * ch - self.head.len().min(SHORT_KEEP_FRAMES * ch);
            self.head.extend_from_slice(&samples[..whole.min(room)]);
        }
        self.frames += (whole / ch) as u64;
        if let Some(m) = self.inner.as_mut()
            && m.add_frames_f32(&samples[..whole]).is_err()
        {
            self.inner = None;
        }
    }

    /// The integrated loudness in LUFS so far; `None` for silence (below -70 LUFS),
    /// an empty sound, or an unmeasurable format.
    pub fn integrated(&self) -> Option<f32> {
        let l = if self.frames >= self.gating_block_frames() {
            self.inner.as_ref()?.loudness_global().ok()?
        } else {
            self.short_loudness()?
        };
        (l.is_finite() && l > -70.0).then_some(l as f32)
    }

    /// A short sound repeated to fill two gating blocks, measured.
    fn short_loudness(&self) -> Option<f64> {
        if self.head.is_empty() {
            return None;
        }
        let mut m = LoudnessMeter::new(self.channels, self.sample_rate);
        m.frames = self.gating_block_frames(); // measure directly, keep no head
        let target = 2 * self.gating_block_frames() as usize * usize::from(self.channels.max(1));
        let mut fed = 0;
        while fed < target {
            m.inner.as_mut()?.add_frames_f32(&self.head).ok()?;
            fed += self.head.len();
        }
        m.inner.as_ref()?.loudness_global().ok()
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
    fn silence_has_no_loudness_and_short_sounds_measure_as_while_they_sound() {
        let mut m = LoudnessMeter::new(2, 48_000);
        m.add(&vec![0.0; 96_000]);
        assert_eq!(m.integrated(), None);
        assert_eq!(LoudnessMeter::new(2, 48_000).integrated(), None);
        assert_eq!(LoudnessMeter::new(0, 48_000).integrated(), None);
        let mut long = LoudnessMeter::new(2, 48_000);
        long.add(&sine(0.5, 2, 2.0));
        let mut short = LoudnessMeter::new(2, 48_000);
        short.add(&sine(0.5, 2, 0.1));
        let (l, s) = (
            long.integrated().expect("long"),
            short.integrated().expect("short"),
        );
        assert!((l - s).abs() < 0.5, "{l} vs {s}");
    }
}
