//! Tone analysis used by tests and diagnostics: Goertzel power at one frequency, the
//! dominant frequency of a signal, onset detection and normalised cross-correlation.

/// Power of `freq` in `samples` (mono) relative to the signal, via the Goertzel
/// algorithm: returns the amplitude of that frequency component (a full-scale sine
/// gives about 1.0).
pub fn goertzel_amplitude(samples: &[f32], sample_rate: u32, freq: f32) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * f64::from(freq) / f64::from(sample_rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    (2.0 * power.max(0.0).sqrt() / samples.len() as f64) as f32
}

/// The frequency (Hz, 1 Hz resolution between `lo` and `hi`) with the largest Goertzel
/// amplitude, refined by a coarse-to-fine search.
pub fn dominant_frequency(samples: &[f32], sample_rate: u32, lo: f32, hi: f32) -> f32 {
    let mut best = (lo, 0.0f32);
    let mut f = lo;
    while f <= hi {
        let a = goertzel_amplitude(samples, sample_rate, f);
        if a > best.1 {
            best = (f, a);
        }
        f += 10.0;
    }
    let centre = best.0;
    let mut f = (centre - 10.0).max(lo);
    while f <= (centre + 10.0).min(hi) {
        let a = goertzel_amplitude(samples, sample_rate, f);
        if a > best.1 {
            best = (f, a);
        }
        f += 1.0;
    }
    best.0
}

/// Index of the first sample whose absolute value reaches `threshold`.
pub fn onset(samples: &[f32], threshold: f32) -> Option<usize> {
    samples.iter().position(|s| s.abs() >= threshold)
}

/// Normalised cross-correlation of `a` and `b` at the best lag in `-max_lag..=max_lag`
/// (positive lag: `b` is late). Returns (lag, correlation in -1..=1).
pub fn best_correlation(a: &[f32], b: &[f32], max_lag: usize) -> (isize, f32) {
    let mut best = (0isize, -1.0f32);
    let max_lag = max_lag as isize;
    for lag in -max_lag..=max_lag {
        let (mut dot, mut ea, mut eb) = (0.0f64, 0.0f64, 0.0f64);
        for (i, &x) in a.iter().enumerate() {
            let j = i as isize + lag;
            if j < 0 || j as usize >= b.len() {
                continue;
            }
            let y = b[j as usize];
            dot += f64::from(x) * f64::from(y);
            ea += f64::from(x) * f64::from(x);
            eb += f64::from(y) * f64::from(y);
        }
        if ea > 0.0 && eb > 0.0 {
            let c = (dot / (ea.sqrt() * eb.sqrt())) as f32;
            if c > best.1 {
                best = (lag, c);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, amp: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 48_000.0).sin())
            .collect()
    }

    #[test]
    fn goertzel_finds_amplitude_and_frequency() {
        let s = sine(440.0, 0.5, 48_000);
        assert!((goertzel_amplitude(&s, 48_000, 440.0) - 0.5).abs() < 0.01);
        assert!(goertzel_amplitude(&s, 48_000, 1000.0) < 0.01);
        assert_eq!(dominant_frequency(&s, 48_000, 100.0, 4000.0), 440.0);
    }

    #[test]
    fn onset_and_correlation() {
        let mut s = vec![0.0; 100];
        s.extend(sine(1000.0, 0.8, 1000));
        assert!(onset(&s, 0.1).is_some_and(|i| (100..110).contains(&i)));
        let a = sine(700.0, 1.0, 2000);
        let mut b = vec![0.0; 37];
        b.extend_from_slice(&a);
        let (lag, c) = best_correlation(&a[..1500], &b, 50);
        assert_eq!(lag, 37);
        assert!(c > 0.999);
    }
}
