//! Loudness normalisation: the gain that brings a sound to the target loudness.

/// The gain in dB that brings a sound measured at `loudness_lufs` (integrated, EBU
/// R128) to `target_lufs`.
///
/// - An unknown loudness (`None`, or not finite, as for a silent sound) gives 0 dB.
/// - A boost never exceeds `max_gain_db` (a negative cap is read as 0: no boost),
///   so a quiet recording's noise is not raised without bound.
/// - A cut is never capped: a loud sound is always brought down to the target.
pub fn normalization_gain_db(
    loudness_lufs: Option<f32>,
    target_lufs: f32,
    max_gain_db: f32,
) -> f32 {
    let Some(loudness) = loudness_lufs.filter(|l| l.is_finite()) else {
        return 0.0;
    };
    let gain = target_lufs - loudness;
    if gain > 0.0 {
        gain.min(max_gain_db.max(0.0))
    } else {
        gain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn unknown_loudness_is_left_alone() {
        assert_eq!(normalization_gain_db(None, -16.0, 12.0), 0.0);
        assert_eq!(
            normalization_gain_db(Some(f32::NEG_INFINITY), -16.0, 12.0),
            0.0
        );
        assert_eq!(normalization_gain_db(Some(f32::NAN), -16.0, 12.0), 0.0);
    }

    #[test]
    fn quiet_sounds_are_raised_up_to_the_cap() {
        assert!(close(normalization_gain_db(Some(-20.0), -16.0, 12.0), 4.0));
        assert!(close(normalization_gain_db(Some(-28.0), -16.0, 12.0), 12.0));
        assert!(close(normalization_gain_db(Some(-40.0), -16.0, 12.0), 12.0));
        assert!(close(normalization_gain_db(Some(-40.0), -16.0, 0.0), 0.0));
        assert!(close(normalization_gain_db(Some(-40.0), -16.0, -3.0), 0.0));
    }

    #[test]
    fn loud_sounds_are_cut_without_cap() {
        assert!(close(normalization_gain_db(Some(-6.0), -16.0, 12.0), -10.0));
        assert!(close(normalization_gain_db(Some(10.0), -16.0, 0.0), -26.0));
        assert!(close(normalization_gain_db(Some(-16.0), -16.0, 12.0), 0.0));
    }

    #[test]
    fn two_levels_of_one_tone_meet_at_the_target() {
        // The loudness test in numbers: the same tone at -6 and -20 dB.
        let loud = -6.0 - 3.0;
        let quiet = -20.0 - 3.0;
        let a = loud + normalization_gain_db(Some(loud), -16.0, 12.0);
        let b = quiet + normalization_gain_db(Some(quiet), -16.0, 12.0);
        assert!(close(a, b) && close(a, -16.0), "{a} vs {b}");
    }
}
