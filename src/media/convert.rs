//! Streaming conversion of interleaved f32 audio to another rate and channel count.
//!
//! Resampling uses rubato's FFT resampler (band-limited, synchronous: the output length
//! is exactly the input length times the rate ratio), falling back to its windowed-sinc
//! resampler for rate pairs whose FFT block would be huge (e.g. 44101 to 48000). The
//! resampler's latency is compensated, so the output starts at the input's first frame
//! and [`Converter::finish`] makes the total exactly `round(in_frames * to / from)`.
//! Channels are mapped with [`map_channels`] before resampling when that reduces the
//! channel count, after it otherwise, so the resampler runs on as few channels as possible.
//!
//! Runs on worker threads, never on the audio callback: it may allocate while it grows
//! its buffers, but reuses them afterwards and never allocates per sample. It must
//! never panic on any input length, and never import symphonia.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, FixedSync, Indexing, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

use super::channels::map_channels;
use super::error::MediaError;
use super::guard::{FormatProblem, check_format};
use crate::domain::AudioFormat;

/// Target input frames per FFT block for files; the real block is a multiple of the
/// rate pair's minimum block (`rate / gcd`) near this. Large blocks give a cutoff close
/// to Nyquist; the latency (one block plus half a block) does not matter for files
/// because it is compensated.
const FFT_BLOCK: usize = 2048;

/// Target FFT block for live streams ([`Converter::low_latency`]), in milliseconds of
/// input, so the added latency is about 10 ms instead of 70.
const LIVE_BLOCK_MS: u32 = 5;

/// Rate pairs whose minimum block (`rate / gcd`) exceeds this on either side use the
/// sinc resampler instead of the FFT one, to bound memory. Every pair of rates up to
/// 96 kHz stays on the FFT path, whose latency is a whole number of frames and so is
/// compensated exactly; the sinc path can be off by a fraction of a frame.
const MAX_FFT_MIN_BLOCK: usize = 96_000;

/// Input frames per call of the sinc resampler.
const SINC_CHUNK: usize = 1024;

/// Converts a stream from one [`AudioFormat`] to another, block by block.
pub struct Converter {
    from: AudioFormat,
    to: AudioFormat,
    /// Channels the resampler runs at (the smaller of the two counts).
    work_ch: usize,
    /// Whether channels are mapped before resampling (downmix) rather than after.
    map_first: bool,
    /// `None` when the rates are equal: only channels are mapped.
    resampler: Option<Box<dyn Resampler<f32>>>,
    /// Input frames per resampler call.
    chunk: usize,
    /// Input at `work_ch` channels waiting for a full chunk.
    pending: Vec<f32>,
    /// Input mapped to `work_ch` channels (reused).
    mapped: Vec<f32>,
    /// Resampler output at `work_ch` channels (reused).
    scratch: Vec<f32>,
    /// Output frames of resampler latency still to drop.
    delay_left: usize,
    /// The latency in output frames, dropped at the start of every stream.
    delay: usize,
    in_frames: u64,
    out_frames: u64,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("resampling", &self.resampler.is_some())
            .field("chunk", &self.chunk)
            .field("delay", &self.delay)
            .finish()
    }
}

impl Converter {
    /// A converter from `from` to `to`. Fails if either format is outside the limits
    /// of [`guard::check_format`](super::guard::check_format).
    ///
    /// Tuned for files: large blocks, the best quality; output comes in bursts of about
    /// 2048 input frames. For live audio (the monitor), use [`low_latency`](Self::low_latency).
    pub fn new(from: AudioFormat, to: AudioFormat) -> Result<Converter, MediaError> {
        Self::with_block(from, to, FFT_BLOCK)
    }

    /// A converter for live streams: blocks of about 256 input frames, so resampling
    /// adds about 10 ms of latency (at 44.1 to 48 kHz) rather than about 70, at the cost
    /// of a cutoff a little further below Nyquist. Same lengths and alignment as `new`.
    pub fn low_latency(from: AudioFormat, to: AudioFormat) -> Result<Converter, MediaError> {
        let block = (from.sample_rate / (1000 / LIVE_BLOCK_MS)).max(32) as usize;
        Self::with_block(from, to, block)
    }

    fn with_block(
        from: AudioFormat,
        to: AudioFormat,
        block: usize,
    ) -> Result<Converter, MediaError> {
        for f in [from, to] {
            check_format(f).map_err(|p| MediaError::Convert {
                from,
                to,
                what: match p {
                    FormatProblem::Invalid(s) | FormatProblem::Unsupported(s) => s,
                },
            })?;
        }
        let (fc, tc) = (usize::from(from.channels), usize::from(to.channels));
        let work_ch = fc.min(tc);
        let (resampler, chunk): (Option<Box<dyn Resampler<f32>>>, usize) =
            if from.sample_rate == to.sample_rate {
                (None, 0)
            } else {
                make_resampler(from.sample_rate, to.sample_rate, work_ch, block)
                    .map_err(|what| MediaError::Convert { from, to, what })?
            };
        let (scratch_len, delay) = match &resampler {
            Some(r) => (r.output_frames_max() * work_ch, r.output_delay()),
            None => (0, 0),
        };
        Ok(Converter {
            from,
            to,
            work_ch,
            map_first: tc < fc,
            resampler,
            chunk,
            pending: Vec::with_capacity(chunk * work_ch),
            mapped: Vec::new(),
            scratch: vec![0.0; scratch_len],
            delay_left: delay,
            delay,
            in_frames: 0,
            out_frames: 0,
        })
    }

    /// The input format.
    pub fn from(&self) -> AudioFormat {
        self.from
    }

    /// The output format.
    pub fn to(&self) -> AudioFormat {
        self.to
    }

    /// Whether this converter changes anything at all.
    pub fn is_identity(&self) -> bool {
        self.from == self.to
    }

    /// Output frames a stream of `in_frames` input frames converts to (what
    /// [`finish`](Self::finish) guarantees): `round(in_frames * to_rate / from_rate)`.
    pub fn output_frames_for(&self, in_frames: u64) -> u64 {
        scale(in_frames, self.from.sample_rate, self.to.sample_rate)
    }

    /// Converts interleaved `input` (in the `from` format) and appends whatever output
    /// is ready, interleaved in the `to` format. A trailing partial frame is ignored.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let fc = usize::from(self.from.channels);
        let frames = input.len() / fc;
        let input = &input[..frames * fc];
        self.in_frames += frames as u64;
        if self.resampler.is_none() {
            map_channels(input, self.from.channels, self.to.channels, out);
            self.out_frames += frames as u64;
            return;
        }
        let mut mapped = std::mem::take(&mut self.mapped);
        let src: &[f32] = if self.map_first {
            mapped.clear();
            map_channels(input, self.from.channels, self.work_ch as u16, &mut mapped);
            &mapped
        } else {
            input
        };
        self.feed(src, out);
        self.mapped = mapped;
    }

    /// Flushes the resampler's tail: appends the remaining output so that the stream's
    /// total is exactly [`output_frames_for`](Self::output_frames_for) its input. The
    /// converter is then ready for a new stream.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        let target = self.output_frames_for(self.in_frames);
        if self.resampler.is_some() {
            let wc = self.work_ch;
            let pending = std::mem::take(&mut self.pending);
            let mut partial = pending.len() / wc;
            // Zero-padded calls until the delayed tail is out; bounded in case the
            // resampler ever stops producing (it cannot, but never spin).
            let mut calls = 0;
            while self.out_frames < target && calls < 64 + self.delay / self.chunk.max(1) {
                self.run(&pending, Some(partial), target, out);
                partial = 0;
                calls += 1;
            }
            self.pending = pending;
            self.pending.clear();
            if let Some(r) = self.resampler.as_mut() {
                r.reset();
            }
        }
        // Pad with silence if the resampler somehow fell short (never with the FFT one).
        if self.out_frames < target {
            let missing = (target - self.out_frames) as usize;
            out.extend(std::iter::repeat_n(
                0.0,
                missing * usize::from(self.to.channels),
            ));
        }
        self.delay_left = self.delay;
        self.in_frames = 0;
        self.out_frames = 0;
    }

    /// Feeds input at `work_ch` channels through the resampler, chunk by chunk.
    fn feed(&mut self, mut src: &[f32], out: &mut Vec<f32>) {
        let block = self.chunk * self.work_ch;
        let cap = self.output_frames_for(self.in_frames);
        if !self.pending.is_empty() {
            let take = (block - self.pending.len()).min(src.len());
            self.pending.extend_from_slice(&src[..take]);
            src = &src[take..];
            if self.pending.len() == block {
                let pending = std::mem::take(&mut self.pending);
                self.run(&pending, None, cap, out);
                self.pending = pending;
                self.pending.clear();
            }
        }
        while src.len() >= block {
            self.run(&src[..block], None, cap, out);
            src = &src[block..];
        }
        self.pending.extend_from_slice(src);
    }

    /// One resampler call on `chunk` (interleaved, `work_ch`), emitting at most up to
    /// `cap` total output frames.
    fn run(&mut self, chunk: &[f32], partial: Option<usize>, cap: u64, out: &mut Vec<f32>) {
        let wc = self.work_ch;
        let Some(resampler) = self.resampler.as_mut() else {
            return;
        };
        let in_frames = chunk.len() / wc;
        let out_frames = self.scratch.len() / wc;
        let result = match (
            InterleavedSlice::new(chunk, wc, in_frames),
            InterleavedSlice::new_mut(&mut self.scratch, wc, out_frames),
        ) {
            (Ok(input), Ok(mut output)) => {
                let indexing = partial.map(|n| Indexing::new().partial_len(n));
                resampler
                    .process_into_buffer(&input, &mut output, indexing.as_ref())
                    .map_err(|e| e.to_string())
            }
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        };
        let produced = match result {
            Ok((_, produced)) => produced,
            Err(e) => {
                // Buffer sizes are derived from the resampler itself; this is a bug, not bad input.
                tracing::error!("resampler failed: {e}");
                debug_assert!(false, "resampler failed: {e}");
                return;
            }
        };
        let skip = self.delay_left.min(produced);
        self.delay_left -= skip;
        let room = cap.saturating_sub(self.out_frames) as usize;
        let n = (produced - skip).min(room);
        let slice = &self.scratch[skip * wc..(skip + n) * wc];
        if self.map_first || wc == usize::from(self.to.channels) {
            out.extend_from_slice(slice);
        } else {
            map_channels(slice, wc as u16, self.to.channels, out);
        }
        self.out_frames += n as u64;
    }
}

/// `round(frames * to / from)` without overflow.
fn scale(frames: u64, from: u32, to: u32) -> u64 {
    let from = u128::from(from.max(1));
    ((u128::from(frames) * u128::from(to) * 2 + from) / (2 * from)) as u64
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

type Made = (Option<Box<dyn Resampler<f32>>>, usize);

/// The resampler for a rate pair and its input chunk size.
fn make_resampler(from: u32, to: u32, channels: usize, block: usize) -> Result<Made, String> {
    let (from, to) = (from as usize, to as usize);
    if from.max(to) > 256 * from.min(to) {
        return Err("rate ratio beyond 256:1".into());
    }
    let g = gcd(from, to);
    let (min_in, min_out) = (from / g, to / g);
    if min_in <= MAX_FFT_MIN_BLOCK && min_out <= MAX_FFT_MIN_BLOCK {
        // Blocks of k minimum blocks, about `block` input frames; an even output block
        // keeps the latency (half a block) a whole number of frames on both sides.
        let mut k = (block / min_in).max(1);
        if (k * min_out) % 2 == 1 || (k * min_in) % 2 == 1 {
            k *= 2;
        }
        let chunk = k * min_in;
        let r = rubato::Fft::<f32>::new_custom(
            from,
            to,
            chunk,
            1,
            channels,
            WindowFunction::BlackmanHarris2,
            FixedSync::Input,
        )
        .map_err(|e| e.to_string())?;
        Ok((Some(Box::new(r)), chunk))
    } else {
        let params = SincInterpolationParameters::new(256, WindowFunction::BlackmanHarris2)
            .oversampling_factor(256)
            .interpolation(SincInterpolationType::Cubic);
        let r = Async::<f32>::new_sinc(
            to as f64 / from as f64,
            1.0,
            &params,
            SINC_CHUNK,
            channels,
            FixedAsync::Input,
        )
        .map_err(|e| e.to_string())?;
        Ok((Some(Box::new(r)), SINC_CHUNK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, channels: u16, freq: f64, frames: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(frames * usize::from(channels));
        for n in 0..frames {
            let s =
                (2.0 * std::f64::consts::PI * freq * n as f64 / f64::from(rate)).sin() as f32 * 0.5;
            v.extend(std::iter::repeat_n(s, usize::from(channels)));
        }
        v
    }

    /// Converts `input` in pieces of `piece` frames, then finishes.
    fn convert(from: AudioFormat, to: AudioFormat, input: &[f32], piece: usize) -> Vec<f32> {
        let mut c = Converter::new(from, to).unwrap();
        let mut out = Vec::new();
        for p in input.chunks(piece * usize::from(from.channels)) {
            c.process(p, &mut out);
        }
        c.finish(&mut out);
        out
    }

    /// Frequency of the strongest peak by Goertzel scan around `near` (±5 %, 1 Hz steps).
    fn peak_freq(x: &[f32], channels: usize, rate: u32, near: f64) -> f64 {
        let mono: Vec<f64> = x.iter().step_by(channels).map(|&s| f64::from(s)).collect();
        let mut best = (0.0, 0.0);
        let mut f = near * 0.95;
        while f <= near * 1.05 {
            let w = 2.0 * std::f64::consts::PI * f / f64::from(rate);
            let (mut s1, mut s2) = (0.0, 0.0);
            for &v in &mono {
                let s0 = v + 2.0 * w.cos() * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            let p = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
            if p > best.1 {
                best = (f, p);
            }
            f += 1.0;
        }
        best.0
    }

    #[test]
    fn lengths_are_exact_for_common_pairs() {
        for (fr, tr) in [
            (44_100, 48_000),
            (48_000, 44_100),
            (22_050, 48_000),
            (8_000, 48_000),
            (96_000, 48_000),
            (44_101, 48_000),
        ] {
            for frames in [0usize, 1, 100, 4_410, 44_100, 100_003] {
                for piece in [7usize, 1000, 1 << 20] {
                    let from = AudioFormat::new(fr, 2);
                    let to = AudioFormat::new(tr, 2);
                    let out = convert(from, to, &vec![0.1; frames * 2], piece);
                    let want = scale(frames as u64, fr, tr) as usize;
                    assert_eq!(
                        out.len(),
                        want * 2,
                        "{fr}->{tr}, {frames} frames in pieces of {piece}"
                    );
                }
            }
        }
    }

    #[test]
    fn frequency_and_level_are_preserved() {
        let from = AudioFormat::new(44_100, 1);
        let to = AudioFormat::new(48_000, 2);
        let x = sine(44_100, 1, 1000.0, 44_100);
        let y = convert(from, to, &x, 4096);
        assert_eq!(y.len(), 48_000 * 2);
        let f = peak_freq(&y[9600..], 2, 48_000, 1000.0);
        assert!((f - 1000.0).abs() <= 1.0, "{f}");
        let rms = (y[4800..43_200].iter().map(|s| s * s).sum::<f32>() / (43_200.0 - 4800.0)).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.005, "{rms}");
    }

    #[test]
    fn latency_is_compensated() {
        // A sine resampled must line up with the same sine generated at the target rate.
        for (fr, tr) in [
            (44_100u32, 48_000u32),
            (48_000, 44_100),
            (16_000, 48_000),
            (44_101, 48_000),
        ] {
            let x = sine(fr, 1, 440.0, fr as usize);
            let y = convert(AudioFormat::new(fr, 1), AudioFormat::new(tr, 1), &x, 1000);
            let want = sine(tr, 1, 440.0, tr as usize);
            let (a, b) = (tr as usize / 10, tr as usize * 9 / 10);
            let err: f32 = y[a..b]
                .iter()
                .zip(&want[a..b])
                .map(|(p, q)| (p - q) * (p - q))
                .sum();
            let sig: f32 = want[a..b].iter().map(|q| q * q).sum();
            let snr = 10.0 * (sig / err).log10();
            assert!(snr > 60.0, "{fr}->{tr}: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn the_sinc_fallback_keeps_length_and_pitch() {
        // 767999 and 44100 share no factor: the FFT block would be 767999 frames.
        let (fr, tr) = (767_999u32, 44_100u32);
        let x = sine(fr, 1, 1000.0, fr as usize / 2);
        let y = convert(AudioFormat::new(fr, 1), AudioFormat::new(tr, 1), &x, 10_000);
        assert_eq!(y.len() as u64, scale(x.len() as u64, fr, tr));
        let f = peak_freq(&y, 1, tr, 1000.0);
        assert!((f - 1000.0).abs() <= 2.0, "{f}");
    }

    #[test]
    fn low_latency_keeps_lengths_and_alignment() {
        for (fr, tr) in [(44_100u32, 48_000u32), (48_000, 44_100), (16_000, 48_000)] {
            let x = sine(fr, 1, 440.0, fr as usize);
            let mut c =
                Converter::low_latency(AudioFormat::new(fr, 1), AudioFormat::new(tr, 1)).unwrap();
            let mut y = Vec::new();
            // Fed in device-sized periods, output must come out period by period.
            let mut max_backlog = 0;
            for (i, p) in x.chunks(256).enumerate() {
                c.process(p, &mut y);
                let want = scale(((i + 1) * 256).min(x.len()) as u64, fr, tr) as i64;
                max_backlog = max_backlog.max(want - y.len() as i64);
            }
            c.finish(&mut y);
            assert_eq!(y.len() as u64, scale(x.len() as u64, fr, tr));
            let want = sine(tr, 1, 440.0, tr as usize);
            let (a, b) = (tr as usize / 10, tr as usize * 9 / 10);
            let err: f32 = y[a..b]
                .iter()
                .zip(&want[a..b])
                .map(|(p, q)| (p - q) * (p - q))
                .sum();
            let sig: f32 = want[a..b].iter().map(|q| q * q).sum();
            let snr = 10.0 * (sig / err).log10();
            assert!(snr > 60.0, "{fr}->{tr}: SNR {snr:.1} dB");
            // Backlog: at most one block plus the latency, about 15 ms.
            assert!(
                max_backlog < tr as i64 * 15 / 1000,
                "{fr}->{tr}: backlog {max_backlog} frames"
            );
        }
    }

    #[test]
    fn channels_only_and_identity() {
        let x = sine(48_000, 2, 440.0, 1000);
        let y = convert(
            AudioFormat::new(48_000, 2),
            AudioFormat::new(48_000, 2),
            &x,
            333,
        );
        assert_eq!(x, y);
        let y = convert(
            AudioFormat::new(48_000, 2),
            AudioFormat::new(48_000, 1),
            &x,
            333,
        );
        assert_eq!(y.len(), 1000);
        assert!((y[10] - x[20]).abs() < 1e-6);
    }

    #[test]
    fn downmix_then_resample() {
        let x = sine(48_000, 6, 440.0, 48_000);
        let y = convert(
            AudioFormat::new(48_000, 6),
            AudioFormat::new(44_100, 2),
            &x,
            512,
        );
        assert_eq!(y.len(), 44_100 * 2);
        let f = peak_freq(&y, 2, 44_100, 440.0);
        assert!((f - 440.0).abs() <= 1.0, "{f}");
    }

    #[test]
    fn reusable_after_finish() {
        let from = AudioFormat::new(44_100, 2);
        let to = AudioFormat::new(48_000, 2);
        let mut c = Converter::new(from, to).unwrap();
        let x = sine(44_100, 2, 440.0, 10_000);
        let mut a = Vec::new();
        c.process(&x, &mut a);
        c.finish(&mut a);
        let mut b = Vec::new();
        c.process(&x, &mut b);
        c.finish(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn bad_formats_are_errors() {
        let ok = AudioFormat::new(48_000, 2);
        for bad in [
            AudioFormat::new(0, 2),
            AudioFormat::new(48_000, 0),
            AudioFormat::new(48_000, 33),
            AudioFormat::new(1_000_000, 2),
        ] {
            let e = Converter::new(bad, ok).unwrap_err();
            assert!(matches!(e, MediaError::Convert { .. }), "{e}");
            assert!(Converter::new(ok, bad).is_err());
        }
        // Extreme but valid pairs construct.
        assert!(Converter::new(AudioFormat::new(3_000, 1), AudioFormat::new(768_000, 1)).is_ok());
        assert!(Converter::new(AudioFormat::new(767_999, 2), AudioFormat::new(44_100, 2)).is_ok());
        // Beyond 256:1 the ratio itself is refused.
        assert!(Converter::new(AudioFormat::new(1, 1), AudioFormat::new(768_000, 1)).is_err());
    }

    #[test]
    fn scale_rounds() {
        assert_eq!(scale(44_100, 44_100, 48_000), 48_000);
        assert_eq!(scale(1, 44_100, 48_000), 1);
        assert_eq!(scale(3, 48_000, 44_100), 3);
        assert!(scale(u64::MAX / 2, 1, 768_000) > 0);
    }
}
