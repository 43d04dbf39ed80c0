//! A look-ahead peak limiter for the mix bus.
//!
//! The mix is delayed by one block. For each block, the gain ramps linearly from the
//! previous gain to a target no higher than what both the delayed block and the
//! incoming block allow, so the output never exceeds the ceiling, gain changes are
//! always smooth (no clicks) and recovery follows an exponential release.
//! It never allocates after `new` and never panics on any input (NaN and infinities
//! are treated as silence).

/// Peak limiter with a one-block look-ahead.
pub struct Limiter {
    channels: usize,
    block_frames: usize,
    ceiling: f32,
    release_coeff: f32,
    gain: f32,
    delayed: Vec<f32>,
    delayed_peak: f32,
    /// Lowest gain applied since the last `take_min_gain`, for metering.
    min_gain: f32,
}

impl Limiter {
    /// A limiter for blocks of `block_frames` frames of `channels` interleaved channels.
    ///
    /// `ceiling` is the highest absolute output value; `release_s` the time for the
    /// gain to recover about 63 % of the way back to unity.
    pub fn new(
        channels: usize,
        block_frames: usize,
        sample_rate: u32,
        ceiling: f32,
        release_s: f32,
    ) -> Self {
        let blocks_per_second = sample_rate as f32 / block_frames as f32;
        let release_coeff = 1.0 - (-1.0 / (release_s.max(1e-3) * blocks_per_second)).exp();
        Self {
            channels: channels.max(1),
            block_frames,
            ceiling,
            release_coeff,
            gain: 1.0,
            delayed: vec![0.0; block_frames * channels.max(1)],
            delayed_peak: 0.0,
            min_gain: 1.0,
        }
    }

    /// The latency the limiter adds, in frames.
    pub fn latency_frames(&self) -> usize {
        self.block_frames
    }

    /// The ceiling, as a linear peak value.
    pub fn ceiling(&self) -> f32 {
        self.ceiling
    }

    /// Lowest gain applied since the last call (1.0 = no limiting), and resets it.
    pub fn take_min_gain(&mut self) -> f32 {
        std::mem::replace(&mut self.min_gain, 1.0)
    }

    /// Processes one block in place: `block` (exactly `block_frames * channels` samples)
    /// goes in, and the previous block, limited, comes out in its place.
    pub fn process(&mut self, block: &mut [f32]) {
        debug_assert_eq!(block.len(), self.delayed.len());
        let n = block.len().min(self.delayed.len());
        let block = &mut block[..n];
        let mut incoming_peak = 0.0f32;
        for s in block.iter_mut() {
            if !s.is_finite() {
                *s = 0.0;
            }
            incoming_peak = incoming_peak.max(s.abs());
        }
        let allowed = |peak: f32| {
            if peak > self.ceiling {
                self.ceiling / peak
            } else {
                1.0
            }
        };
        let released = self.gain + (1.0 - self.gain) * self.release_coeff;
        let target = released
            .min(allowed(incoming_peak))
            .min(allowed(self.delayed_peak));
        let start = self.gain;
        let frames = n / self.channels;
        let step = (target - start) / frames.max(1) as f32;
        for (f, (frame_in, frame_out)) in block
            .chunks_exact_mut(self.channels)
            .zip(self.delayed.chunks_exact_mut(self.channels))
            .enumerate()
        {
            let g = start + step * (f + 1) as f32;
            for (x, d) in frame_in.iter_mut().zip(frame_out.iter_mut()) {
                let out = (*d * g).clamp(-self.ceiling, self.ceiling);
                *d = *x;
                *x = out;
            }
        }
        self.gain = target;
        self.min_gain = self.min_gain.min(target).min(start);
        self.delayed_peak = incoming_peak;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lim: &mut Limiter, input: &[f32], block: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for chunk in input.chunks(block) {
            let mut b = chunk.to_vec();
            b.resize(block, 0.0);
            lim.process(&mut b);
            out.extend_from_slice(&b);
        }
        out
    }

    #[test]
    fn quiet_signal_passes_unchanged_after_one_block_delay() {
        let mut lim = Limiter::new(1, 32, 48_000, 0.95, 0.1);
        let input: Vec<f32> = (0..320).map(|i| 0.5 * (i as f32 * 0.1).sin()).collect();
        let out = run(&mut lim, &input, 32);
        assert_eq!(&out[32..320], &input[..288]);
        assert!(out[..32].iter().all(|&s| s == 0.0));
    }

    #[test]
    fn loud_signal_never_exceeds_the_ceiling_and_ramps_smoothly() {
        let mut lim = Limiter::new(2, 32, 48_000, 0.9, 0.05);
        // Silence, then a sudden burst at +30 dB (40 whole periods, so the input itself
        // starts and ends at zero), then silence again.
        let mut input = vec![0.0f32; 64 * 2];
        input.extend((0..4800).flat_map(|i| {
            let s = 30.0 * (i as f32 * std::f32::consts::TAU / 120.0).sin();
            [s, -s]
        }));
        input.extend(vec![0.0f32; 4800 * 2]);
        let out = run(&mut lim, &input, 64);
        let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(peak <= 0.9 + 1e-6, "peak {peak}");
        assert!(peak > 0.8, "limiter too aggressive: {peak}");
        // Smooth: the gain never jumps, so consecutive output samples differ by at most
        // what the input slope allows (30 * 2pi / 120 = 1.57 per sample before gain, ~0.047 after).
        let left: Vec<f32> = out.iter().step_by(2).copied().collect();
        let max_jump = left
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        assert!(max_jump < 0.1, "jump {max_jump}");
    }

    #[test]
    fn gain_recovers_after_release() {
        let mut lim = Limiter::new(1, 32, 48_000, 0.9, 0.05);
        let mut input = vec![5.0f32; 320];
        input.extend(vec![0.1f32; 48_000]);
        let out = run(&mut lim, &input, 32);
        assert!((out.last().copied().unwrap_or(0.0) - 0.1).abs() < 1e-3);
        assert!(lim.take_min_gain() < 0.2);
        assert_eq!(lim.take_min_gain(), 1.0);
    }

    #[test]
    fn non_finite_input_becomes_silence() {
        let mut lim = Limiter::new(1, 4, 48_000, 0.9, 0.05);
        let mut b = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.5];
        lim.process(&mut b);
        let mut b2 = [0.0; 4];
        lim.process(&mut b2);
        assert_eq!(b2, [0.0, 0.0, 0.0, 0.5]);
    }
}
