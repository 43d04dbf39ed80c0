//! Channel mapping of interleaved f32 audio: up- and down-mixing between channel counts.
//!
//! Channel order is WAVE/SMPTE (FL FR FC LFE BL BR SL SR), which is what the decoders
//! produce. Every mix is normalised so that it never clips (the coefficients feeding an
//! output sum to at most 1). This code runs on worker threads and in the recorder; it
//! must never allocate once `out` has capacity, never panic on odd input lengths, and
//! never import symphonia.

use super::guard::MAX_CHANNELS;

/// -3 dB, the ITU-R BS.775 coefficient for centre and surround channels.
const M3DB: f32 = std::f32::consts::FRAC_1_SQRT_2;

const MAX: usize = MAX_CHANNELS as usize;

/// Maps interleaved `input` with `from` channels to `to` channels, appending to `out`.
///
/// - Same count: copied unchanged.
/// - Mono to N: the mono signal is duplicated into every channel.
/// - N to mono: the plain mean of all channels (5.1 and 7.1 go through the stereo
///   downmix first, so the LFE is dropped). A mean preserves the level of correlated
///   content and can never clip; uncorrelated channels lose 3 dB per halving of the
///   channel count.
/// - 3 (L R C), 4 (quad), 5 (5.0), 6 (5.1), 7 (6.1) and 8 (7.1) to stereo: ITU-R BS.775
///   coefficients (L + 0.707 C + 0.707 Ls, with back and side surrounds both at
///   0.707, a back centre at 0.5 to both), LFE dropped, then scaled by the inverse
///   of the coefficient sum so that a full-scale signal on every channel stays within
///   full scale. This is also what ffmpeg's default downmix produces.
/// - Stereo to more channels: L and R to the front pair, the others silent.
/// - Anything else: channel `i` is added to output `i % to` and each output is divided
///   by the number of channels it received (downmix), or the first `from` outputs get
///   the input and the rest are silent (upmix).
///
/// A trailing partial frame in `input` is ignored. `from` or `to` of 0 appends nothing.
/// Allocation-free when `out` has room for `input.len() / from * to` more samples.
pub fn map_channels(input: &[f32], from: u16, to: u16, out: &mut Vec<f32>) {
    if from == 0 || to == 0 {
        return;
    }
    let (fc, tc) = (usize::from(from), usize::from(to));
    let frames = input.len() / fc;
    let input = &input[..frames * fc];
    if from == to {
        out.extend_from_slice(input);
        return;
    }
    out.reserve(frames * tc);
    match (from, to) {
        (1, _) => {
            for &s in input {
                out.extend(std::iter::repeat_n(s, tc));
            }
        }
        (2, 1) => {
            out.extend(input.chunks_exact(2).map(|f| 0.5 * (f[0] + f[1])));
        }
        _ if fc <= MAX && tc <= MAX => {
            let mut m = [0.0f32; MAX * MAX];
            matrix(fc, tc, &mut m);
            // Rows of the matrix: one per output channel, `fc` coefficients each.
            let rows = &m[..fc * tc];
            for frame in input.chunks_exact(fc) {
                out.extend(
                    rows.chunks_exact(fc)
                        .map(|row| row.iter().zip(frame).map(|(c, s)| c * s).sum::<f32>()),
                );
            }
        }
        _ => fold(input, fc, tc, out),
    }
}

/// Fills `m` (row-major, `tc` rows of `fc`) with the mixing coefficients.
fn matrix(fc: usize, tc: usize, m: &mut [f32]) {
    let mut set = |o: usize, i: usize, c: f32| m[o * fc + i] = c;
    match (fc, tc) {
        (_, 2) if (3..=8).contains(&fc) => {
            // Per input channel: (gain to left, gain to right).
            let gains: &[(f32, f32)] = match fc {
                3 => &[(1.0, 0.0), (0.0, 1.0), (M3DB, M3DB)],
                4 => &[(1.0, 0.0), (0.0, 1.0), (M3DB, 0.0), (0.0, M3DB)],
                5 => &[
                    (1.0, 0.0),
                    (0.0, 1.0),
                    (M3DB, M3DB),
                    (M3DB, 0.0),
                    (0.0, M3DB),
                ],
                6 => &[
                    (1.0, 0.0),
                    (0.0, 1.0),
                    (M3DB, M3DB),
                    (0.0, 0.0),
                    (M3DB, 0.0),
                    (0.0, M3DB),
                ],
                7 => &[
                    (1.0, 0.0),
                    (0.0, 1.0),
                    (M3DB, M3DB),
                    (0.0, 0.0),
                    (0.5, 0.5),
                    (M3DB, 0.0),
                    (0.0, M3DB),
                ],
                _ => &[
                    (1.0, 0.0),
                    (0.0, 1.0),
                    (M3DB, M3DB),
                    (0.0, 0.0),
                    (M3DB, 0.0),
                    (0.0, M3DB),
                    (M3DB, 0.0),
                    (0.0, M3DB),
                ],
            };
            let norm = 1.0 / gains.iter().map(|g| g.0).sum::<f32>();
            for (i, &(l, r)) in gains.iter().enumerate() {
                set(0, i, l * norm);
                set(1, i, r * norm);
            }
        }
        (_, 1) if (3..=8).contains(&fc) => {
            // Through the stereo downmix: mono = (L + R) / 2.
            let mut st = [0.0f32; 2 * MAX];
            matrix(fc, 2, &mut st);
            for i in 0..fc {
                set(0, i, 0.5 * (st[i] + st[fc + i]));
            }
        }
        (_, 1) => {
            for i in 0..fc {
                set(0, i, 1.0 / fc as f32);
            }
        }
        (2, _) => {
            set(0, 0, 1.0);
            set(1, 1, 1.0);
        }
        _ if fc > tc => {
            for i in 0..fc {
                let o = i % tc;
                // Outputs below `fc % tc` receive one channel more than the others.
                let n = fc / tc + usize::from(o < fc % tc);
                set(o, i, 1.0 / n as f32);
            }
        }
        _ => {
            for i in 0..fc {
                set(i, i, 1.0);
            }
        }
    }
}

/// The generic fold for channel counts beyond the matrix size (never produced by the
/// decoders, which cap channels at [`MAX_CHANNELS`]).
fn fold(input: &[f32], fc: usize, tc: usize, out: &mut Vec<f32>) {
    for frame in input.chunks_exact(fc) {
        let start = out.len();
        out.extend(std::iter::repeat_n(0.0, tc));
        let dst = &mut out[start..];
        if fc > tc {
            for (i, &s) in frame.iter().enumerate() {
                dst[i % tc] += s;
            }
            for (o, d) in dst.iter_mut().enumerate() {
                *d /= (fc / tc + usize::from(o < fc % tc)) as f32;
            }
        } else {
            dst[..fc].copy_from_slice(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(input: &[f32], from: u16, to: u16) -> Vec<f32> {
        let mut out = Vec::new();
        map_channels(input, from, to, &mut out);
        out
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn identity_and_mono() {
        close(&map(&[0.1, 0.2, 0.3, 0.4], 2, 2), &[0.1, 0.2, 0.3, 0.4]);
        close(&map(&[0.5, -0.25], 1, 2), &[0.5, 0.5, -0.25, -0.25]);
        close(&map(&[0.5], 1, 6), &[0.5; 6]);
        close(&map(&[1.0, 0.0, 0.2, 0.4], 2, 1), &[0.5, 0.3]);
    }

    #[test]
    fn surround_to_stereo_uses_itu_coefficients() {
        // 5.1: FL FR FC LFE BL BR.
        let n = 1.0 / (1.0 + 2.0 * M3DB);
        close(&map(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], 6, 2), &[n, 0.0]);
        close(
            &map(&[0.0, 0.0, 1.0, 0.0, 0.0, 0.0], 6, 2),
            &[M3DB * n, M3DB * n],
        );
        close(&map(&[0.0, 0.0, 0.0, 1.0, 0.0, 0.0], 6, 2), &[0.0, 0.0]);
        close(
            &map(&[0.0, 0.0, 0.0, 0.0, 0.0, 1.0], 6, 2),
            &[0.0, M3DB * n],
        );
        // 7.1: side and back surrounds both at -3 dB.
        let n8 = 1.0 / (1.0 + 3.0 * M3DB);
        close(
            &map(&[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0], 8, 2),
            &[2.0 * M3DB * n8, 0.0],
        );
    }

    #[test]
    fn downmixes_never_clip() {
        for from in 2..=MAX_CHANNELS {
            for to in 1..from {
                let full = vec![1.0f32; usize::from(from)];
                let neg = vec![-1.0f32; usize::from(from)];
                for frame in [full, neg] {
                    for s in map(&frame, from, to) {
                        assert!(s.abs() <= 1.0 + 1e-6, "{from}->{to}: {s}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_full_scale_surround_signal_stays_full_scale_in_stereo() {
        for from in [3u16, 4, 5, 6, 7, 8] {
            let mut frame = vec![1.0f32; usize::from(from)];
            if from >= 6 {
                frame[3] = 0.0; // LFE is dropped anyway.
            }
            let st = map(&frame, from, 2);
            close(&st, &[1.0, 1.0]);
        }
    }

    #[test]
    fn generic_fold_and_upmix() {
        // 4 -> 3 is not a named layout: channel 3 folds onto output 0, averaged.
        close(&map(&[0.2, 0.4, 0.6, 0.8], 4, 3), &[0.5, 0.4, 0.6]);
        close(&map(&[0.2, 0.4, 0.6], 3, 4), &[0.2, 0.4, 0.6, 0.0]);
        close(&map(&[0.2, 0.4], 2, 6), &[0.2, 0.4, 0.0, 0.0, 0.0, 0.0]);
        // Beyond the matrix size: the fold path.
        let big: Vec<f32> = (0..40).map(|i| i as f32 / 40.0).collect();
        let out = map(&big, 40, 2);
        let even: f32 = (0..40).step_by(2).map(|i| i as f32 / 40.0).sum::<f32>() / 20.0;
        assert!((out[0] - even).abs() < 1e-6);
        assert_eq!(map(&big, 40, 50).len(), 50);
    }

    #[test]
    fn odd_lengths_and_zero_counts_are_harmless() {
        assert_eq!(map(&[0.1, 0.2, 0.3], 2, 1).len(), 1);
        assert!(map(&[0.1], 0, 2).is_empty());
        assert!(map(&[0.1], 2, 0).is_empty());
        assert!(map(&[], 6, 2).is_empty());
    }

    #[test]
    fn appends_without_allocating_when_capacity_suffices() {
        let input = vec![0.25f32; 6 * 256];
        let mut out = Vec::with_capacity(2 * 256 + 3);
        out.extend_from_slice(&[9.0, 9.0, 9.0]);
        let ptr = out.as_ptr();
        map_channels(&input, 6, 2, &mut out);
        assert_eq!(out.as_ptr(), ptr);
        assert_eq!(out.len(), 3 + 512);
        assert_eq!(&out[..3], &[9.0, 9.0, 9.0]);
    }
}
