//! The jitter buffer's drift and depth controller: a PI controller of the
//! time-stretch ratio acting on an envelope (the shallowest recent depth), so the
//! buffer shrinks slowly toward its target, grows fast, and follows the drift
//! between the two sound cards' clocks within `max_stretch`.

use super::{ENVELOPE_RISE_US_PER_S, INTEGRAL_BAND_US, KI, KP_GROW, KP_SHRINK};

/// The PI controller of the stretch ratio, acting on an envelope of the depth error.
#[derive(Debug, Default)]
pub(super) struct Control {
    pub(super) integral: f64,
    pub(super) envelope_us: Option<f64>,
    pub(super) last_us: Option<u64>,
}

/// What the controller decided at one pull.
#[derive(Debug, Clone, Copy)]
pub(super) struct Steer {
    pub(super) ratio: f64,
    /// The controlled error: the shallowest recent depth − target (µs).
    pub(super) envelope_us: f64,
}

impl Control {
    /// Forgets the envelope (playout stopped or restarts); the integral, which tracks
    /// the clocks, is kept.
    pub(super) fn pause(&mut self) {
        self.envelope_us = None;
        self.last_us = None;
    }

    /// The ratio for a depth error of `err_us` (depth − target) at `now_us`.
    pub(super) fn update(&mut self, now_us: u64, err_us: f64, max_stretch: f64) -> Steer {
        let dt = self
            .last_us
            .map_or(0.0, |last| now_us.saturating_sub(last) as f64 / 1e6)
            .min(0.1);
        self.last_us = Some(now_us);
        let envelope_us = self
            .envelope_us
            .map_or(err_us, |e| err_us.min(e + ENVELOPE_RISE_US_PER_S * dt));
        self.envelope_us = Some(envelope_us);
        let err = envelope_us / 1e6;
        if envelope_us.abs() < INTEGRAL_BAND_US {
            self.integral = (self.integral + KI * err * dt).clamp(-max_stretch, max_stretch);
        }
        let gain = if err < 0.0 { KP_GROW } else { KP_SHRINK };
        let ratio = (1.0 - gain * err - self.integral).clamp(1.0 - max_stretch, 1.0 + max_stretch);
        Steer { ratio, envelope_us }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_stretches_toward_the_target_within_bounds() {
        let mut control = Control::default();
        let deep = control.update(0, 20_000.0, 0.005);
        assert_eq!(deep.ratio, 0.995);
        let shallow = control.update(10_000, -800.0, 0.005);
        assert!(
            shallow.envelope_us == -800.0 && shallow.ratio > 1.003,
            "{shallow:?}"
        );
        // The envelope rises at most 10 ms per second.
        let rising = control.update(110_000, 5_000.0, 0.005);
        assert!((rising.envelope_us - 200.0).abs() < 1e-6, "{rising:?}");
    }
}
