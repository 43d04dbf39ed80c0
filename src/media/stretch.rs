//! A live voice's rate converter whose ratio moves a little from call to call: the
//! jitter buffer asks each frame to be stretched by up to a fraction of a percent (to
//! hold its depth and follow the drift between two sound cards), and the output may
//! run at another rate than the 48 kHz of the codec. rubato's asynchronous resampler
//! with polynomial interpolation (a few samples of delay, no FFT block) does both.
//!
//! Runs on a worker thread; allocates only while its buffers grow to their largest.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Adjustable, Async, FixedAsync, PolynomialDegree, Resampler, Resizable};

/// Most input frames per call (a 20 ms frame at 48 kHz); longer input is split.
const MAX_CHUNK: usize = 960;
/// The widest stretch allowed either way, relative.
const MAX_RELATIVE: f64 = 1.03;

/// See the module documentation.
pub struct Stretcher {
    r: Async<f32>,
    base: f64,
    channels: usize,
    scratch: Vec<f32>,
}

impl Stretcher {
    /// Converts `channels`-channel audio from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32, channels: u16) -> Result<Stretcher, String> {
        let base = f64::from(to) / f64::from(from.max(1));
        let channels = usize::from(channels.max(1));
        let r = Async::<f32>::new_poly(
            base,
            MAX_RELATIVE,
            PolynomialDegree::Septic,
            MAX_CHUNK,
            channels,
            FixedAsync::Input,
        )
        .map_err(|e| e.to_string())?;
        let scratch = vec![0.0; r.output_frames_max() * channels];
        Ok(Stretcher {
            r,
            base,
            channels,
            scratch,
        })
    }

    /// Converts `input` (interleaved), stretched by `ratio` (1.0 ± a little), and
    /// appends the result to `out`.
    pub fn process(&mut self, input: &[f32], ratio: f64, out: &mut Vec<f32>) {
        let ratio = ratio.clamp(1.0 / MAX_RELATIVE, MAX_RELATIVE);
        let _ = self.r.set_resample_ratio(self.base * ratio, true);
        for chunk in input.chunks(MAX_CHUNK * self.channels) {
            let frames = chunk.len() / self.channels;
            if frames == 0 {
                continue;
            }
            if self.r.set_chunk_size(frames).is_err() {
                continue;
            }
            let out_frames = self.scratch.len() / self.channels;
            let done = match (
                InterleavedSlice::new(chunk, self.channels, frames),
                InterleavedSlice::new_mut(&mut self.scratch, self.channels, out_frames),
            ) {
                (Ok(i), Ok(mut o)) => self.r.process_into_buffer(&i, &mut o, None),
                _ => continue,
            };
            if let Ok((_, produced)) = done {
                out.extend_from_slice(&self.scratch[..produced * self.channels]);
            }
        }
    }

    /// The delay it adds, in output frames.
    pub fn delay(&self) -> usize {
        self.r.output_delay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stretch_changes_the_length_by_its_ratio() {
        let mut s = Stretcher::new(48_000, 48_000, 1).unwrap();
        let frame = vec![0.1f32; 480];
        let mut out = Vec::new();
        for _ in 0..1000 {
            s.process(&frame, 1.005, &mut out);
        }
        let got = out.len() as f64 / 480_000.0;
        assert!((got - 1.005).abs() < 0.0005, "stretched by {got}");
        let mut s = Stretcher::new(48_000, 44_100, 2).unwrap();
        let mut out = Vec::new();
        for _ in 0..100 {
            s.process(&vec![0.0f32; 960], 1.0, &mut out);
        }
        let got = out.len() as f64 / 2.0 / 48_000.0;
        assert!((got - 0.91875).abs() < 0.001, "{got}");
    }
}
