//! Short-time spectrum analysis for a live spectrogram: [`SpectrumAnalyser`] turns a
//! stream of mono samples into frames of dBFS magnitudes per linear FFT bin (Hann
//! window, real FFT), and [`LogBands`] maps such a frame to logarithmically spaced
//! bands for display, with the band edges and centres to label a frequency axis.
//!
//! Both are allocation-free after construction; they never lock, block or panic on
//! any input, and never return NaN or infinite values (non-finite samples count as
//! silence; readings are clamped to [`FLOOR_DB`]..=[`MAX_DB`]). A frame costs an FFT,
//! so this belongs on a worker thread, not in the audio callback. Nothing here knows
//! about threads, devices or terminals.
//!
//! # Calibration
//!
//! The window is scaled by `2 / Σw`, so a sine of amplitude `A` centred on a bin reads
//! `20·log10(A)` dBFS there: a full-scale sine reads 0 dB at its bin. A sine between two
//! bins reads up to 1.4 dB lower (the Hann window's scalloping loss) and shows in the
//! neighbouring bins about 6 dB down. The DC and Nyquist bins are halved, so a constant
//! offset `A` also reads `20·log10(A)`. Broadband signals spread over all bins: white
//! noise of RMS `σ` reads about `20·log10(σ) − 10·log10(fft_size / 6)` per bin, 25 dB
//! below its RMS at 2048 points. Silence reads exactly [`FLOOR_DB`].

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// The lowest reading (silence); every dB value here is at least this.
pub const FLOOR_DB: f32 = -120.0;
/// The highest reading; only signals far above full scale get there.
pub const MAX_DB: f32 = 40.0;
/// The power that [`FLOOR_DB`] stands for.
const FLOOR_POWER: f32 = 1e-12;

/// The smallest FFT size accepted; smaller requests are raised to it.
pub const MIN_FFT_SIZE: usize = 16;
/// The largest FFT size accepted; larger requests are lowered to it.
pub const MAX_FFT_SIZE: usize = 1 << 16;

/// The FFT size actually used for a requested one: even, within
/// [`MIN_FFT_SIZE`]..=[`MAX_FFT_SIZE`].
pub fn effective_fft_size(requested: usize) -> usize {
    let n = requested.clamp(MIN_FFT_SIZE, MAX_FFT_SIZE);
    n + n % 2
}

/// The hop (samples between frames) that gives `frames_per_second` frames at
/// `sample_rate`; at least 1.
pub fn hop_for_rate(sample_rate: u32, frames_per_second: f32) -> usize {
    let fps = if frames_per_second.is_finite() && frames_per_second > 0.0 {
        frames_per_second
    } else {
        1.0
    };
    ((sample_rate.max(1) as f32 / fps).round() as usize).max(1)
}

/// Power (linear) to dB, clamped to [`FLOOR_DB`]..=[`MAX_DB`]; NaN reads as the floor.
pub fn power_to_db(power: f32) -> f32 {
    if power > FLOOR_POWER {
        (10.0 * power.log10()).min(MAX_DB)
    } else {
        FLOOR_DB
    }
}

/// dB to power (linear); the inverse of [`power_to_db`] within its range.
pub fn db_to_power(db: f32) -> f32 {
    10f32.powf(db * 0.1)
}

/// A sliding Hann-windowed FFT over mono samples, producing a frame of dBFS
/// magnitudes per bin (`fft_size / 2 + 1` of them, bin `k` at `k · sample_rate /
/// fft_size` Hz) every `hop` samples. See the module docs for the calibration.
pub struct SpectrumAnalyser {
    sample_rate: u32,
    fft: Arc<dyn RealToComplex<f32>>,
    /// Hann window scaled by `2 / Σw`.
    window: Vec<f32>,
    /// The latest `fft_size` samples; the oldest is at `pos`.
    history: Vec<f32>,
    pos: usize,
    hop: usize,
    /// Samples still to arrive before the next frame.
    until_frame: usize,
    frames: u64,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    db: Vec<f32>,
}

impl std::fmt::Debug for SpectrumAnalyser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpectrumAnalyser")
            .field("sample_rate", &self.sample_rate)
            .field("fft_size", &self.fft_size())
            .field("hop", &self.hop)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl SpectrumAnalyser {
    /// An analyser of `fft_size` points (made even and kept within
    /// [`MIN_FFT_SIZE`]..=[`MAX_FFT_SIZE`]; 2048 is a good choice at 44.1–48 kHz: 23 Hz
    /// bins, 43 ms windows) with a hop of half the FFT size. A zero `sample_rate` is
    /// taken as 1.
    pub fn new(sample_rate: u32, fft_size: usize) -> Self {
        let n = effective_fft_size(fft_size);
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        let hann = |i: usize| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
        let sum: f64 = (0..n).map(hann).sum();
        let window = (0..n).map(|i| (hann(i) * 2.0 / sum) as f32).collect();
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Self {
            sample_rate: sample_rate.max(1),
            fft,
            window,
            history: vec![0.0; n],
            pos: 0,
            hop: n / 2,
            until_frame: n / 2,
            frames: 0,
            input: vec![0.0; n],
            db: vec![FLOOR_DB; spectrum.len()],
            spectrum,
            scratch,
        }
    }

    /// The same analyser with a hop giving about `frames_per_second` frames.
    pub fn with_frame_rate(mut self, frames_per_second: f32) -> Self {
        self.set_frame_rate(frames_per_second);
        self
    }

    /// Sets the hop to give about `frames_per_second` frames (see [`hop_for_rate`]).
    pub fn set_frame_rate(&mut self, frames_per_second: f32) {
        self.set_hop(hop_for_rate(self.sample_rate, frames_per_second));
    }

    /// Sets the number of samples between frames (at least 1). A hop longer than the
    /// FFT size skips the samples between windows.
    pub fn set_hop(&mut self, hop: usize) {
        let hop = hop.max(1);
        let done = self.hop.saturating_sub(self.until_frame);
        self.hop = hop;
        self.until_frame = hop.saturating_sub(done).max(1);
    }

    /// Forgets all samples (the next frames start from silence) and the frame count.
    pub fn reset(&mut self) {
        self.history.fill(0.0);
        self.pos = 0;
        self.until_frame = self.hop;
        self.frames = 0;
        self.db.fill(FLOOR_DB);
    }

    /// Feeds samples, calling `on_frame` with each frame (dBFS per bin) completed on
    /// the way; returns how many were.
    pub fn push_with(&mut self, samples: &[f32], mut on_frame: impl FnMut(&[f32])) -> usize {
        let mut rest = samples;
        let mut made = 0;
        while !rest.is_empty() {
            let take = rest.len().min(self.until_frame);
            self.write(&rest[..take]);
            rest = &rest[take..];
            self.until_frame -= take;
            if self.until_frame == 0 {
                self.until_frame = self.hop;
                self.analyse();
                made += 1;
                on_frame(&self.db);
            }
        }
        made
    }

    /// Feeds samples; returns how many frames were completed (the latest is
    /// [`SpectrumAnalyser::frame`]).
    pub fn push(&mut self, samples: &[f32]) -> usize {
        self.push_with(samples, |_| {})
    }

    /// The latest frame: dBFS per bin, [`FLOOR_DB`] everywhere before the first.
    pub fn frame(&self) -> &[f32] {
        &self.db
    }

    /// Frames produced since construction or [`SpectrumAnalyser::reset`].
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The sample rate the bins are labelled with.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The FFT size in use.
    pub fn fft_size(&self) -> usize {
        self.window.len()
    }

    /// The number of bins in a frame: `fft_size / 2 + 1`.
    pub fn bins(&self) -> usize {
        self.db.len()
    }

    /// The spacing of the bins in Hz.
    pub fn bin_hz(&self) -> f32 {
        self.sample_rate as f32 / self.fft_size() as f32
    }

    /// Samples between frames.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// Frames per second of audio.
    pub fn frame_rate(&self) -> f32 {
        self.sample_rate as f32 / self.hop as f32
    }

    /// Appends samples to the history ring (non-finite ones as silence).
    fn write(&mut self, samples: &[f32]) {
        let n = self.history.len();
        // Only the last `n` samples can still be in the window.
        let samples = &samples[samples.len().saturating_sub(n)..];
        let mut rest = samples;
        while !rest.is_empty() {
            let room = n - self.pos;
            let take = rest.len().min(room);
            for (dst, &s) in self.history[self.pos..self.pos + take]
                .iter_mut()
                .zip(&rest[..take])
            {
                *dst = if s.is_finite() { s } else { 0.0 };
            }
            self.pos = (self.pos + take) % n;
            rest = &rest[take..];
        }
    }

    fn analyse(&mut self) {
        self.frames += 1;
        let (newer, older) = self.history.split_at(self.pos);
        for ((dst, &s), &w) in self
            .input
            .iter_mut()
            .zip(older.iter().chain(newer))
            .zip(&self.window)
        {
            *dst = s * w;
        }
        // The buffers were sized by the plan itself, so this cannot fail; should it
        // ever, the frame reads as silence rather than stale data.
        if self
            .fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .is_err()
        {
            self.db.fill(FLOOR_DB);
            return;
        }
        let last = self.spectrum.len() - 1;
        for (k, (db, c)) in self.db.iter_mut().zip(&self.spectrum).enumerate() {
            let p = c.norm_sqr();
            // DC and Nyquist have no mirror image: halve their amplitude.
            let p = if k == 0 || k == last { p * 0.25 } else { p };
            *db = power_to_db(p);
        }
    }
}

/// How [`LogBands`] combines the bins a band spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BandReduce {
    /// The highest reading in the band: a tone reads its level in any band width,
    /// while broadband noise reads higher in wide bands (about +7 dB over 100 bins).
    /// What spectrograms usually show.
    #[default]
    Peak,
    /// The mean power over the band: white noise reads flat across bands, while a
    /// tone in a band of `w` bins reads about `10·log10(w / 1.5)` dB below its level.
    PowerMean,
}

/// Maps a frame of linear bins (as from [`SpectrumAnalyser`]) to `bands`
/// logarithmically spaced bands between `f_min` and `f_max`.
///
/// The spectrum is read as a curve through the bin centres, linear in dB between them
/// (in power for [`BandReduce::PowerMean`]); a band reads that curve's maximum (or
/// mean) over its frequency span. So a band narrower than a bin is interpolated from
/// its neighbours, with no gaps or repeated values, and a band spanning many bins
/// takes them all into account. With [`BandReduce::Peak`], each local maximum also
/// stands for the peak between bins that a parabola through it and its neighbours (in
/// dB) finds: that undoes most of the window's scalloping loss, so a tone reads its
/// level within about ±0.5 dB wherever it falls between bins, in the band holding its
/// frequency even when bands are narrower than bins.
#[derive(Debug, Clone, PartialEq)]
pub struct LogBands {
    edges: Vec<f32>,
    /// Each band's span in fractional bins, clamped to the frame.
    spans: Vec<(f32, f32)>,
    bins: usize,
    bin_hz: f32,
    sample_rate: u32,
    fft_size: usize,
    reduce: BandReduce,
}

impl LogBands {
    /// A mapper for frames of an analyser at `sample_rate` and `fft_size`, with
    /// [`BandReduce::Peak`]. Out-of-range requests are adjusted, never refused:
    /// `bands` is at least 1, `f_max` is at most the Nyquist frequency (and is the
    /// Nyquist frequency when not finite), `f_min` at least 1 Hz (1 Hz when not
    /// finite) and, when not below `f_max`, half of it.
    pub fn new(bands: usize, f_min: f32, f_max: f32, sample_rate: u32, fft_size: usize) -> Self {
        let sample_rate = sample_rate.max(1);
        let fft_size = effective_fft_size(fft_size);
        let bins = fft_size / 2 + 1;
        let bin_hz = sample_rate as f32 / fft_size as f32;
        let nyquist = sample_rate as f32 / 2.0;
        let f_max = if f_max.is_finite() {
            f_max.clamp(1.0, nyquist.max(1.0))
        } else {
            nyquist
        };
        let f_min = if f_min.is_finite() {
            f_min.max(1.0)
        } else {
            1.0
        };
        let f_min = if f_min < f_max { f_min } else { f_max / 2.0 };
        let bands = bands.max(1);
        let ratio = f64::from(f_max) / f64::from(f_min);
        let mut edges: Vec<f32> = (0..=bands)
            .map(|j| (f64::from(f_min) * ratio.powf(j as f64 / bands as f64)) as f32)
            .collect();
        // Exact ends, whatever the rounding of the powers.
        edges[0] = f_min;
        edges[bands] = f_max;
        let top = (bins - 1) as f32;
        let spans = edges
            .windows(2)
            .map(|e| {
                let a = (e[0] / bin_hz).clamp(0.0, top);
                let b = (e[1] / bin_hz).clamp(a, top);
                (a, b)
            })
            .collect();
        Self {
            edges,
            spans,
            bins,
            bin_hz,
            sample_rate,
            fft_size,
            reduce: BandReduce::Peak,
        }
    }

    /// The same bands combining bins by `reduce`.
    pub fn with_reduce(mut self, reduce: BandReduce) -> Self {
        self.reduce = reduce;
        self
    }

    /// How bins are combined.
    pub fn reduce(&self) -> BandReduce {
        self.reduce
    }

    /// The number of bands.
    pub fn bands(&self) -> usize {
        self.spans.len()
    }

    /// The lower end of the first band, Hz.
    pub fn f_min(&self) -> f32 {
        self.edges[0]
    }

    /// The upper end of the last band, Hz.
    pub fn f_max(&self) -> f32 {
        self.edges[self.edges.len() - 1]
    }

    /// Whether this maps frames of an analyser at `sample_rate` and `fft_size` (a new
    /// mapper is needed when the source's rate changes).
    pub fn matches(&self, sample_rate: u32, fft_size: usize) -> bool {
        self.sample_rate == sample_rate.max(1) && self.fft_size == effective_fft_size(fft_size)
    }

    /// The band edges in Hz, ascending: `bands() + 1` of them, band `i` spanning
    /// `edges[i]..edges[i + 1]`.
    pub fn band_edges(&self) -> &[f32] {
        &self.edges
    }

    /// The geometric centre of band `i` in Hz (`i` is clamped to the last band).
    pub fn band_center(&self, i: usize) -> f32 {
        let i = i.min(self.bands() - 1);
        (self.edges[i] * self.edges[i + 1]).sqrt()
    }

    /// The band containing `hz`, or `None` outside `f_min..=f_max`.
    pub fn band_of(&self, hz: f32) -> Option<usize> {
        self.position_of(hz)
            .map(|p| (p as usize).min(self.bands() - 1))
    }

    /// Where `hz` lies on the band axis, from 0.0 (`f_min`) to `bands()` (`f_max`), for
    /// placing axis labels; `None` outside the range.
    pub fn position_of(&self, hz: f32) -> Option<f32> {
        if !(hz >= self.f_min() && hz <= self.f_max()) {
            return None;
        }
        let t = (hz / self.f_min()).ln() / (self.f_max() / self.f_min()).ln();
        Some((t * self.bands() as f32).clamp(0.0, self.bands() as f32))
    }

    /// Maps a frame of dB bins to dB bands: fills `out[..bands()]` (a shorter `out`
    /// gets the first bands only). A frame of another length than this mapper expects
    /// is read as far as it goes; an empty one reads as silence.
    pub fn map(&self, bins_db: &[f32], out: &mut [f32]) {
        if bins_db.is_empty() {
            out.iter_mut()
                .take(self.bands())
                .for_each(|o| *o = FLOOR_DB);
            return;
        }
        let top = (bins_db.len().min(self.bins) - 1) as f32;
        for (o, &(a, b)) in out.iter_mut().zip(&self.spans) {
            let (a, b) = (a.min(top), b.min(top));
            let v = match self.reduce {
                BandReduce::Peak => peak(bins_db, a, b),
                BandReduce::PowerMean => power_mean(bins_db, a, b),
            };
            *o = v.clamp(FLOOR_DB, MAX_DB);
        }
    }
}

/// The value at fractional bin `x` (within the slice), linear between bins, of the
/// bins read through `f`. `bins` is never empty ([`LogBands::map`] checks).
fn lerp_at(bins: &[f32], x: f32, f: impl Fn(f32) -> f32) -> f32 {
    let i = x as usize;
    let t = x - i as f32;
    match (bins.get(i), bins.get(i + 1)) {
        (Some(&lo), Some(&hi)) if t > 0.0 => f(lo) * (1.0 - t) + f(hi) * t,
        (Some(&lo), _) => f(lo),
        _ => f(bins[bins.len() - 1]),
    }
}

/// The bins strictly inside `a..b`.
fn inner(bins: &[f32], a: f32, b: f32) -> &[f32] {
    let lo = (a.floor() as usize + 1).min(bins.len());
    let hi = (b.ceil() as usize).clamp(lo, bins.len());
    &bins[lo..hi]
}

fn finite(db: f32) -> f32 {
    if db.is_finite() { db } else { FLOOR_DB }
}

fn peak(bins: &[f32], a: f32, b: f32) -> f32 {
    let ends = lerp_at(bins, a, finite).max(lerp_at(bins, b, finite));
    let m = inner(bins, a, b)
        .iter()
        .fold(ends, |m, &v| m.max(finite(v)));
    // Refined peaks lie within half a bin of their bin.
    let lo = (a + 0.5).floor() as usize;
    let hi = ((b + 0.5).floor() as usize).min(bins.len().saturating_sub(1));
    (lo.max(1)..=hi).fold(m, |m, k| match refined_peak(bins, k) {
        Some((x, v)) if x >= a && x <= b => m.max(v),
        _ => m,
    })
}

/// The most a Hann-windowed tone's true peak can exceed its highest bin (its scalloping
/// loss halfway between bins, 1.42 dB), bounding the refinement.
const MAX_SCALLOP_DB: f32 = 1.5;

/// When bin `k` is a local maximum, the position (fractional bin) and level of the
/// peak it stands for, by a parabola through it and its neighbours in dB.
fn refined_peak(bins: &[f32], k: usize) -> Option<(f32, f32)> {
    let (l, c, r) = (
        finite(*bins.get(k.checked_sub(1)?)?),
        finite(*bins.get(k)?),
        finite(*bins.get(k + 1)?),
    );
    if c < l || c < r || c <= FLOOR_DB {
        return None;
    }
    let curve = l - 2.0 * c + r;
    if curve > -1e-6 {
        return Some((k as f32, c));
    }
    let p = (0.5 * (l - r) / curve).clamp(-0.5, 0.5);
    let v = c - 0.25 * (l - r) * p;
    Some((k as f32 + p, v.min(c + MAX_SCALLOP_DB)))
}

fn power_mean(bins: &[f32], a: f32, b: f32) -> f32 {
    let power = |db: f32| db_to_power(finite(db));
    let width = b - a;
    if width < 1e-4 {
        return power_to_db(lerp_at(bins, (a + b) * 0.5, power));
    }
    // Trapezoids between the band's ends and the bin centres inside it: the exact
    // integral of the piecewise-linear power curve.
    let first = a.floor() as usize + 1;
    let (mut x0, mut p0) = (a, lerp_at(bins, a, power));
    let mut area = 0.0;
    for (k, &v) in inner(bins, a, b).iter().enumerate() {
        let (x1, p1) = ((first + k) as f32, power(v));
        area += (p0 + p1) * 0.5 * (x1 - x0);
        (x0, p0) = (x1, p1);
    }
    let p1 = lerp_at(bins, b, power);
    area += (p0 + p1) * 0.5 * (b - x0);
    power_to_db(area / width)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const N: usize = 2048;

    fn sine(freq: f32, amp: f32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let t = i as f64 / f64::from(RATE);
                amp * (2.0 * std::f64::consts::PI * f64::from(freq) * t).sin() as f32
            })
            .collect()
    }

    /// Uniform white noise in -0.5..0.5 (RMS 1/√12) from a xorshift generator.
    fn noise(len: usize) -> Vec<f32> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// The last frame after a second of `signal`.
    fn frame_of(signal: &[f32]) -> Vec<f32> {
        let mut a = SpectrumAnalyser::new(RATE, N);
        assert!(a.push(signal) > 0);
        a.frame().to_vec()
    }

    fn bands_of(frame: &[f32], bands: &LogBands) -> Vec<f32> {
        let mut out = vec![0.0; bands.bands()];
        bands.map(frame, &mut out);
        out
    }

    fn argmax(v: &[f32]) -> usize {
        (0..v.len())
            .max_by(|&i, &j| v[i].total_cmp(&v[j]))
            .unwrap_or(0)
    }

    #[test]
    fn full_scale_sine_on_a_bin_reads_zero_db() {
        let bin_hz = RATE as f32 / N as f32;
        let f = frame_of(&sine(40.0 * bin_hz, 1.0, RATE as usize));
        assert_eq!(argmax(&f), 40);
        assert!(f[40].abs() < 0.05, "{}", f[40]);
        let f = frame_of(&sine(40.0 * bin_hz, 0.1, RATE as usize));
        assert!((f[40] + 20.0).abs() < 0.05, "{}", f[40]);
        // Far from the tone the Hann sidelobes are far down.
        assert!(f[200] < -100.0, "{}", f[200]);
    }

    #[test]
    fn dc_reads_its_level() {
        let f = frame_of(&vec![0.5; RATE as usize]);
        assert!((f[0] - 20.0 * 0.5f32.log10()).abs() < 0.05, "{}", f[0]);
    }

    #[test]
    fn sine_at_1k_peaks_in_its_band_at_its_level() {
        for amp in [1.0f32, 0.25] {
            let f = frame_of(&sine(1000.0, amp, RATE as usize));
            let level = 20.0 * amp.log10();
            for bands in [24, 64, 160, 512] {
                let lb = LogBands::new(bands, 20.0, 20_000.0, RATE, N);
                let b = bands_of(&f, &lb);
                let at = lb.band_of(1000.0).unwrap();
                assert_eq!(argmax(&b), at, "{bands} bands");
                assert!((b[at] - level).abs() < 1.0, "{bands} bands: {}", b[at]);
            }
        }
    }

    #[test]
    fn tones_between_bins_read_their_level_in_peak_bands() {
        let bin_hz = RATE as f32 / N as f32;
        let coarse = LogBands::new(40, 20.0, 20_000.0, RATE, N);
        let fine = LogBands::new(600, 20.0, 20_000.0, RATE, N);
        for tenth in 0..=10 {
            let hz = (40.0 + tenth as f32 / 10.0) * bin_hz;
            let f = frame_of(&sine(hz, 0.5, RATE as usize));
            for lb in [&coarse, &fine] {
                let b = bands_of(&f, lb);
                let at = argmax(&b);
                assert!(at.abs_diff(lb.band_of(hz).unwrap()) <= 1, "{hz} Hz");
                assert!((b[at] + 6.02).abs() < 0.5, "{hz} Hz: {}", b[at]);
            }
        }
    }

    #[test]
    fn frames_come_every_hop() {
        let mut a = SpectrumAnalyser::new(RATE, N);
        assert_eq!(a.hop(), N / 2);
        assert_eq!(a.push(&vec![0.0; N / 2 - 1]), 0);
        assert_eq!(a.push(&[0.0]), 1);
        let mut seen = 0;
        assert_eq!(
            a.push_with(&vec![0.0; 10 * N], |f| {
                assert_eq!(f.len(), N / 2 + 1);
                seen += 1;
            }),
            20
        );
        assert_eq!(seen, 20);
        assert_eq!(a.frames(), 21);
        let mut a = a.with_frame_rate(30.0);
        assert_eq!(a.hop(), 1600);
        assert!((a.frame_rate() - 30.0).abs() < 1e-3);
        // Pieces of any size give the same frames as one slice.
        let s = sine(3000.0, 0.5, RATE as usize);
        let mut b = SpectrumAnalyser::new(RATE, N).with_frame_rate(30.0);
        a.reset();
        for piece in s.chunks(37) {
            a.push(piece);
        }
        b.push(&s);
        assert_eq!(a.frames(), b.frames());
        assert_eq!(a.frames(), 30);
        for (x, y) in a.frame().iter().zip(b.frame()) {
            assert!((x - y).abs() < 1e-3);
        }
    }

    #[test]
    fn hop_longer_than_the_window() {
        let mut a = SpectrumAnalyser::new(RATE, 256).with_frame_rate(10.0);
        assert_eq!(a.hop(), 4800);
        assert_eq!(a.push(&sine(3000.0, 1.0, RATE as usize)), 10);
        let bin = (3000.0 / a.bin_hz()).round() as usize;
        assert_eq!(argmax(a.frame()), bin);
        assert!(a.frame()[bin].abs() < 1.5);
    }

    #[test]
    fn silence_and_garbage_read_at_the_floor() {
        let f = frame_of(&vec![0.0; RATE as usize]);
        assert!(f.iter().all(|&v| v == FLOOR_DB));
        let mut junk = vec![f32::NAN; 4096];
        junk.extend(vec![f32::INFINITY; 4096]);
        junk.extend(vec![f32::NEG_INFINITY; 4096]);
        let f = frame_of(&junk);
        assert!(f.iter().all(|&v| v == FLOOR_DB));
        let f = frame_of(&vec![1e30; 4096]);
        assert!(
            f.iter()
                .all(|v| v.is_finite() && (FLOOR_DB..=MAX_DB).contains(v))
        );
        // Before any frame, the frame is silence.
        assert!(
            SpectrumAnalyser::new(RATE, N)
                .frame()
                .iter()
                .all(|&v| v == FLOOR_DB)
        );
        for reduce in [BandReduce::Peak, BandReduce::PowerMean] {
            let lb = LogBands::new(100, 20.0, 20_000.0, RATE, N).with_reduce(reduce);
            let silent = bands_of(&vec![FLOOR_DB; N / 2 + 1], &lb);
            assert!(
                silent.iter().all(|&v| (v - FLOOR_DB).abs() < 1e-3),
                "{silent:?}"
            );
            let nan = bands_of(&vec![f32::NAN; N / 2 + 1], &lb);
            assert!(nan.iter().all(|&v| (v - FLOOR_DB).abs() < 1e-3));
            assert!(bands_of(&[], &lb).iter().all(|&v| v == FLOOR_DB));
            // A frame shorter than expected is read as far as it goes.
            assert!(bands_of(&[0.0; 10], &lb).iter().all(|v| v.is_finite()));
        }
    }

    /// Band levels of white noise, power-averaged over the frames of ten seconds.
    fn noise_bands(reduce: BandReduce) -> Vec<f32> {
        let lb = LogBands::new(40, 40.0, 20_000.0, RATE, N).with_reduce(reduce);
        let mut a = SpectrumAnalyser::new(RATE, N);
        let mut sum = vec![0.0f64; lb.bands()];
        let mut out = vec![0.0; lb.bands()];
        let frames = a.push_with(&noise(10 * RATE as usize), |f| {
            lb.map(f, &mut out);
            for (s, &v) in sum.iter_mut().zip(&out) {
                *s += f64::from(db_to_power(v));
            }
        });
        sum.iter()
            .map(|&s| power_to_db((s / frames as f64) as f32))
            .collect()
    }

    #[test]
    fn white_noise_is_flat_in_power_mean_bands() {
        let b = noise_bands(BandReduce::PowerMean);
        // RMS 1/√12 over 2048 bins: 10·log10(1/12 · 6/2048) = −36.1 dB per bin.
        for (i, &v) in b.iter().enumerate() {
            assert!((v + 36.1).abs() < 1.5, "band {i}: {v} in {b:?}");
        }
    }

    #[test]
    fn white_noise_in_peak_bands_rises_with_band_width_only() {
        let mean = noise_bands(BandReduce::PowerMean);
        let peak = noise_bands(BandReduce::Peak);
        for (i, (&p, &m)) in peak.iter().zip(&mean).enumerate() {
            assert!(p >= m - 0.5 && p < m + 10.0, "band {i}: {p} vs {m}");
        }
        let spread = peak.iter().fold(f32::MIN, |a, &b| a.max(b))
            - peak.iter().fold(f32::MAX, |a, &b| a.min(b));
        assert!(spread < 10.0, "{peak:?}");
    }

    #[test]
    fn narrow_bands_interpolate_without_gaps_or_repeats() {
        // 400 bands over 20 Hz–20 kHz: every band below ~1.4 kHz is narrower than a bin.
        let lb = LogBands::new(400, 20.0, 20_000.0, RATE, N);
        let f = frame_of(&noise(RATE as usize));
        let b = bands_of(&f, &lb);
        let low = lb.band_of(1000.0).unwrap();
        for i in 1..low {
            assert!(b[i] > FLOOR_DB && b[i] != b[i - 1], "band {i}: {}", b[i]);
        }
        // A 200 Hz tone shows as a smooth lobe peaking at its level.
        let f = frame_of(&sine(200.0, 0.5, RATE as usize));
        for reduce in [BandReduce::Peak, BandReduce::PowerMean] {
            let b = bands_of(&f, &lb.clone().with_reduce(reduce));
            let at = argmax(&b);
            // Mean bands peak at the nearest bin (8.5 bins: 4 bands off), below the
            // tone's level by the window's scalloping; peak bands find the tone.
            let (off, tol) = match reduce {
                BandReduce::Peak => (1, 0.5),
                BandReduce::PowerMean => (4, 1.5),
            };
            assert!(at.abs_diff(lb.band_of(200.0).unwrap()) <= off, "{reduce:?}");
            assert!((b[at] + 6.02).abs() < tol, "{reduce:?}: {}", b[at]);
            for i in at - 8..at + 8 {
                assert!(b[i] != b[i + 1], "{reduce:?} band {i}");
            }
        }
    }

    #[test]
    fn edges_and_centres() {
        let lb = LogBands::new(30, 20.0, 20_000.0, RATE, N);
        let e = lb.band_edges();
        assert_eq!(e.len(), 31);
        assert_eq!((e[0], e[30]), (20.0, 20_000.0));
        assert!(e.windows(2).all(|w| w[0] < w[1]));
        // Each band spans a tenth of a decade.
        assert!((lb.band_center(0) - 20.0 * 10f32.powf(0.05)).abs() < 0.01);
        assert!((lb.band_center(10) - 200.0 * 10f32.powf(0.05)).abs() < 0.1);
        assert_eq!(lb.band_center(99), lb.band_center(29));
        assert_eq!(lb.band_of(20.0), Some(0));
        assert_eq!(lb.band_of(20_000.0), Some(29));
        assert_eq!(lb.band_of(1000.0), Some(16));
        assert_eq!(lb.band_of(19.9), None);
        assert_eq!(lb.band_of(20_001.0), None);
        assert_eq!(lb.band_of(f32::NAN), None);
        assert!((lb.position_of(200.0).unwrap() - 10.0).abs() < 1e-3);
        assert!((lb.position_of(2000.0).unwrap() - 20.0).abs() < 1e-3);
        assert!(lb.matches(RATE, N) && !lb.matches(44_100, N) && !lb.matches(RATE, 1024));
    }

    #[test]
    fn tones_at_the_range_ends() {
        let lb = LogBands::new(48, 50.0, 16_000.0, RATE, N);
        let b = bands_of(&frame_of(&sine(15_500.0, 0.5, RATE as usize)), &lb);
        assert_eq!(argmax(&b), 47);
        assert!((b[47] + 6.02).abs() < 1.5, "{}", b[47]);
        let b = bands_of(&frame_of(&sine(55.0, 0.5, RATE as usize)), &lb);
        assert_eq!(argmax(&b), 0);
        assert!((b[0] + 6.02).abs() < 1.5, "{}", b[0]);
        // The ends of the whole spectrum: DC and Nyquist.
        let lb = LogBands::new(10, 1.0, 24_000.0, RATE, N);
        let b = bands_of(&frame_of(&noise(RATE as usize)), &lb);
        assert!(b.iter().all(|&v| v > -60.0 && v < 0.0), "{b:?}");
    }

    #[test]
    fn odd_requests_are_adjusted() {
        let lb = LogBands::new(0, 0.0, 1e9, RATE, N);
        assert_eq!(lb.bands(), 1);
        assert_eq!((lb.f_min(), lb.f_max()), (1.0, 24_000.0));
        let lb = LogBands::new(10, 5000.0, 1000.0, RATE, N);
        assert_eq!((lb.f_min(), lb.f_max()), (500.0, 1000.0));
        let lb = LogBands::new(10, f32::NAN, f32::INFINITY, RATE, N);
        assert_eq!((lb.f_min(), lb.f_max()), (1.0, 24_000.0));
        let lb = LogBands::new(10, -5.0, -1.0, RATE, N);
        assert!(lb.f_min() > 0.0 && lb.f_min() < lb.f_max());
        let f = frame_of(&sine(1000.0, 0.5, RATE as usize));
        assert!(bands_of(&f, &lb).iter().all(|v| v.is_finite()));
        assert_eq!(effective_fft_size(0), MIN_FFT_SIZE);
        assert_eq!(effective_fft_size(1001), 1002);
        assert_eq!(SpectrumAnalyser::new(0, 7).fft_size(), MIN_FFT_SIZE);
        assert_eq!(hop_for_rate(RATE, 0.0), RATE as usize);
        assert_eq!(hop_for_rate(RATE, f32::NAN), RATE as usize);
    }

    #[test]
    fn changing_the_range() {
        let f = frame_of(&sine(2000.0, 0.5, RATE as usize));
        let wide = LogBands::new(7, 1000.0, 4000.0, RATE, N);
        let b = bands_of(&f, &wide);
        assert_eq!(argmax(&b), 3);
        assert!((b[3] + 6.02).abs() < 1.0);
        let below = LogBands::new(8, 100.0, 500.0, RATE, N);
        assert!(bands_of(&f, &below).iter().all(|&v| v < -80.0));
        let above = LogBands::new(8, 5000.0, 20_000.0, RATE, N);
        assert!(bands_of(&f, &above).iter().all(|&v| v < -80.0));
        // Same range, other band counts: the tone stays in the band holding 2 kHz.
        for n in [1, 2, 3, 17, 200] {
            let lb = LogBands::new(n, 1000.0, 4000.0, RATE, N);
            let b = bands_of(&f, &lb);
            assert_eq!(argmax(&b), lb.band_of(2000.0).unwrap(), "{n}");
        }
    }

    #[test]
    fn other_rates_and_sizes() {
        for (rate, n) in [(44_100u32, 2048usize), (96_000, 4096), (8000, 256)] {
            let mut a = SpectrumAnalyser::new(rate, n);
            let s: Vec<f32> = (0..rate as usize)
                .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / rate as f32).sin())
                .collect();
            a.push(&s);
            let lb = LogBands::new(32, 50.0, rate as f32 / 2.0, rate, n);
            let b = bands_of(a.frame(), &lb);
            let at = lb.band_of(1000.0).unwrap();
            assert_eq!(argmax(&b), at, "{rate}");
            assert!(b[at].abs() < 0.5, "{rate}: {}", b[at]);
        }
    }
}
