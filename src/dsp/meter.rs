//! Peak and RMS level measurement over a block of interleaved samples.

/// Accumulates peak and mean square over any number of samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct LevelMeter {
    peak: f32,
    sum_sq: f64,
    count: u64,
}

impl LevelMeter {
    /// Adds samples to the measurement.
    pub fn add(&mut self, samples: &[f32]) {
        for &s in samples {
            let a = s.abs();
            if a > self.peak {
                self.peak = a;
            }
            self.sum_sq += f64::from(s) * f64::from(s);
        }
        self.count += samples.len() as u64;
    }

    /// Highest absolute sample seen.
    pub fn peak(&self) -> f32 {
        self.peak
    }

    /// Root mean square of everything seen (0 when empty).
    pub fn rms(&self) -> f32 {
        if self.count == 0 {
            0.0
        } else {
            (self.sum_sq / self.count as f64).sqrt() as f32
        }
    }

    /// Returns (peak, rms) and starts a new measurement.
    pub fn take(&mut self) -> (f32, f32) {
        let r = (self.peak(), self.rms());
        *self = Self::default();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_levels() {
        let mut m = LevelMeter::default();
        let s: Vec<f32> = (0..48_000)
            .map(|i| 0.5 * (i as f32 * 2.0 * std::f32::consts::PI * 1000.0 / 48_000.0).sin())
            .collect();
        m.add(&s);
        assert!((m.peak() - 0.5).abs() < 1e-3);
        assert!((m.rms() - 0.5 / 2f32.sqrt()).abs() < 1e-3);
        m.take();
        assert_eq!(m.rms(), 0.0);
    }
}
