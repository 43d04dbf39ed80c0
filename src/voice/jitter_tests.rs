//! Tests of the jitter buffer: its push and pull rules driven by hand, scenario tests
//! on the simulated network of `sim` (ten simulated minutes where it matters), and a
//! property test over thousands of random scenarios with hostile packets. Scenario
//! tests print their key figures: see them with `--nocapture`.
//!
//! Must never: read a clock or use unseeded randomness (every run is repeatable).

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::voice::jitter::{Action, Incoming, JitterBuffer, JitterConfig, PushOutcome, Reject};
use crate::voice::sim::{self, Dtx, Jitter, Loss, Report, Restart, Scenario};

/// Ten simulated minutes.
const LONG_S: f64 = 600.0;
/// Time allowed for the buffer to settle before its depth is judged (s).
const SETTLE_S: f64 = 20.0;
/// The clean network's jitter (µs): a LAN.
const CLEAN_JITTER_US: f64 = 1_000.0;

// --- helpers ---

fn show(name: &str, r: &Report, from_s: f64, to_s: f64) {
    let (mean, p95, max) = r.depth_ms(from_s, to_s);
    eprintln!(
        "{name}: depth mean {mean:.2} / p95 {p95:.2} / max {max:.2} ms, target {:.2} ms; late {:.3} %; \
         unrecovered {:.3} %; lost {}, concealed {}, silence {}, grown {}, shrunk {}, \
         repaired red/fec {}/{}, duplicates {}; skew {:.0} ppm",
        r.target_ms(from_s, to_s),
        r.late_pct(),
        r.unrecovered_pct(),
        r.stats.lost,
        r.stats.concealed,
        r.stats.silence_frames,
        r.stats.inserted_to_grow,
        r.stats.dropped_to_shrink,
        r.stats.repaired_redundancy,
        r.stats.repaired_fec,
        r.stats.duplicates,
        r.stats.skew_ppm,
    );
}

fn assert_sound(name: &str, r: &Report) {
    assert!(
        r.violations.is_empty(),
        "{name}: {:?}",
        &r.violations[..r.violations.len().min(5)]
    );
}

/// A LAN: 20 ms base delay, up to 1 ms of jitter, nothing else.
fn clean(frame: u32, seconds: f64, seed: u64) -> Scenario {
    Scenario::new(frame, seconds, seed).with_jitter(CLEAN_JITTER_US)
}

/// The clean network's mean depth for 10 ms frames (ms).
fn clean_depth_ms() -> f64 {
    let r = sim::run(&clean(480, 120.0, 1));
    r.depth_ms(SETTLE_S, 120.0).0
}

/// A frame as the parser hands it over; the payload is its seq.
fn frame(stream: u32, seq: u64, ts: u64, primary: bool) -> Incoming {
    Incoming {
        stream,
        seq,
        ts,
        samples: 480,
        payload: Bytes::from(seq.to_le_bytes().to_vec()),
        primary,
    }
}

fn payload_seq(payload: &Bytes) -> u64 {
    u64::from_le_bytes(payload.as_ref().try_into().unwrap_or_default())
}

/// What one pull played, in short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Played {
    Seq(u64),
    Fec(u64),
    Conceal { fade: bool },
    Silence,
    Idle,
}

fn short(action: &Action) -> Played {
    match action {
        Action::Decode { payload, .. } => Played::Seq(payload_seq(payload)),
        Action::DecodeFec { payload, .. } => Played::Fec(payload_seq(payload)),
        Action::Conceal { fade_out, .. } => Played::Conceal { fade: *fade_out },
        Action::Silence { .. } => Played::Silence,
        Action::Idle => Played::Idle,
    }
}

/// How many samples a pull plays (an idle pull: the sound card's 10 ms period).
fn pulled_samples(action: &Action) -> u32 {
    match action {
        Action::Decode { samples, .. }
        | Action::DecodeFec { samples, .. }
        | Action::Conceal { samples, .. }
        | Action::Silence { samples } => *samples,
        Action::Idle => 480,
    }
}

/// Drives a buffer by hand: `arrivals` (time, frame) in time order, and a sound card
/// pulling from `first_pull_us` until `end_us`, each pull lasting its frame × ratio.
fn drive(
    cfg: JitterConfig,
    arrivals: Vec<(u64, Incoming)>,
    first_pull_us: u64,
    end_us: u64,
) -> (JitterBuffer, Vec<Played>) {
    let mut jb = JitterBuffer::new(cfg);
    let mut played = Vec::new();
    let mut arrivals = arrivals.into_iter().peekable();
    let mut pull_at = first_pull_us as f64;
    while pull_at < end_us as f64 {
        while let Some((at, incoming)) = arrivals.next_if(|(at, _)| (*at as f64) <= pull_at) {
            jb.push(at, incoming);
        }
        let pull = jb.pull(pull_at as u64);
        let samples = pulled_samples(&pull.action);
        played.push(short(&pull.action));
        pull_at += f64::from(samples) * 1e6 / 48_000.0 * pull.ratio;
    }
    (jb, played)
}

/// Frame `k` of a 10 ms stream: sent at k × 10 ms, arriving 20 ms later.
fn on_time(k: u64) -> (u64, Incoming) {
    (
        k * 10_000 + 20_000,
        frame(7, 100 + k, 5_000 + k * 480, true),
    )
}

/// The plays from the first frame on, idle and lead-in dropped.
fn from_first(played: &[Played]) -> Vec<Played> {
    played
        .iter()
        .copied()
        .skip_while(|p| !matches!(p, Played::Seq(_)))
        .collect()
}

// --- push and pull rules ---

#[test]
fn first_frame_plays_at_its_arrival_plus_target() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    assert_eq!(jb.pull(0).action, Action::Idle);
    assert_eq!(
        jb.push(20_000, frame(1, 0, 0, true)),
        PushOutcome::NewStream
    );
    // Target on a fresh stream: the 1 ms margin. The first pull, at the arrival,
    // plays a lead-in of 1 ms of silence; the frame follows, 1 ms after its arrival.
    let lead_in = jb.pull(20_000);
    assert_eq!(lead_in.action, Action::Silence { samples: 48 });
    assert_eq!(lead_in.ratio, 1.0);
    let first = jb.pull(21_000);
    assert!(
        matches!(first.action, Action::Decode { samples: 480, .. }),
        "{first:?}"
    );
    assert!(
        (jb.stats().depth_us - 1_000.0).abs() < 1.0,
        "{:?}",
        jb.stats()
    );
}

#[test]
fn clean_stream_plays_every_frame_in_order() {
    let arrivals = (0..300).map(on_time).collect();
    let (jb, played) = drive(JitterConfig::default(), arrivals, 15_000, 3_000_000);
    let seqs: Vec<u64> = played
        .iter()
        .filter_map(|p| {
            if let Played::Seq(s) = p {
                Some(*s)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(seqs, (100..100 + seqs.len() as u64).collect::<Vec<_>>());
    assert!(seqs.len() >= 290, "{}", seqs.len());
    let stats = jb.stats();
    assert_eq!(
        (stats.late, stats.concealed, stats.lost, stats.duplicates),
        (0, 0, 0, 0)
    );
}

#[test]
fn silence_gap_plays_silence_and_seq_gap_conceals_with_fade() {
    let mut arrivals: Vec<(u64, Incoming)> = (0..10).map(on_time).collect();
    // DTX: seq 110 is the frame at ts slot 30 (slots 10..30 never sent).
    arrivals.push((30 * 10_000 + 20_000, frame(7, 110, 5_000 + 30 * 480, true)));
    // Then seqs 111..=115 at slots 31..=35, with 112 lost.
    for k in 31..36u64 {
        if k != 32 {
            arrivals.push((k * 10_000 + 20_000, frame(7, 80 + k, 5_000 + k * 480, true)));
        }
    }
    let (jb, played) = drive(JitterConfig::default(), arrivals, 15_000, 400_000);
    let played = from_first(&played);
    // Slots 0..10 decoded; slots 10..13: nothing received after yet, so it may be
    // loss: conceal three times, the last fading out; then silence, and silence
    // again once seq 110 shows the gap was DTX.
    assert_eq!(
        &played[..10],
        &(100..110).map(Played::Seq).collect::<Vec<_>>()[..]
    );
    assert_eq!(
        &played[10..13],
        &[
            Played::Conceal { fade: false },
            Played::Conceal { fade: false },
            Played::Conceal { fade: true }
        ]
    );
    assert!(
        played[13..30].iter().all(|p| *p == Played::Silence),
        "{:?}",
        &played[13..30]
    );
    // The lost seq 112 (slot 32) is concealed, without a fade.
    assert_eq!(
        &played[30..36],
        &[
            Played::Seq(110),
            Played::Seq(111),
            Played::Conceal { fade: false },
            Played::Seq(113),
            Played::Seq(114),
            Played::Seq(115)
        ]
    );
    assert_eq!(jb.stats().lost, 0, "not judged yet: too few later seqs");
}

#[test]
fn fec_recovers_a_missing_frame_from_the_next_packet() {
    // Deep enough for the next packet to be here when the missing frame is due (the
    // repair horizon, which a lossy network would have switched on).
    let cfg = JitterConfig {
        fec: true,
        min_target_us: 15_000,
        ..JitterConfig::default()
    };
    let arrivals = (0..20).filter(|&k| k != 5).map(on_time).collect();
    let (jb, played) = drive(cfg, arrivals, 15_000, 220_000);
    let played = from_first(&played);
    assert_eq!(
        &played[4..7],
        &[Played::Seq(104), Played::Fec(106), Played::Seq(106)]
    );
    assert_eq!(jb.stats().repaired_fec, 1);
    assert_eq!(jb.stats().concealed, 0);
}

#[test]
fn redundant_copy_fills_a_hole_and_duplicates_are_not_played_twice() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    assert_eq!(
        jb.push(20_000, frame(3, 10, 0, true)),
        PushOutcome::NewStream
    );
    // Datagram 12 carries copies of 11 (lost) and 10 (already here).
    assert_eq!(
        jb.push(40_000, frame(3, 12, 960, true)),
        PushOutcome::Accepted
    );
    assert_eq!(
        jb.push(40_000, frame(3, 11, 480, false)),
        PushOutcome::Repaired
    );
    assert_eq!(
        jb.push(40_000, frame(3, 10, 0, false)),
        PushOutcome::Duplicate
    );
    assert_eq!(
        jb.push(41_000, frame(3, 12, 960, true)),
        PushOutcome::Duplicate
    );
    let mut seqs = Vec::new();
    let mut t = 41_000;
    for _ in 0..4 {
        if let Action::Decode { payload, .. } = jb.pull(t).action {
            seqs.push(payload_seq(&payload));
        }
        t += 10_000;
    }
    assert_eq!(seqs, [10, 11, 12]);
    let stats = jb.stats();
    assert_eq!(
        (stats.decoded, stats.repaired_redundancy, stats.duplicates),
        (2, 1, 1)
    );
}

#[test]
fn late_packets_are_counted_and_deepen_the_buffer() {
    // From frame 50 on, every other frame is 30 ms late.
    let mut arrivals: Vec<(u64, Incoming)> = (0..400)
        .map(|k| {
            if k >= 50 && k % 2 == 0 {
                (on_time(k).0 + 30_000, on_time(k).1)
            } else {
                on_time(k)
            }
        })
        .collect();
    arrivals.sort_by_key(|a| a.0);
    let (jb, played) = drive(JitterConfig::default(), arrivals, 15_000, 4_000_000);
    let stats = jb.stats();
    assert!(stats.late > 0 && stats.late < 10, "{stats:?}");
    assert!(stats.target_us > 30_000.0, "{stats:?}");
    assert!(stats.inserted_to_grow > 0, "{stats:?}");
    // Once grown, nothing more is lost.
    let tail = &played[played.len() - 100..];
    assert!(tail.iter().all(|p| matches!(p, Played::Seq(_))), "{tail:?}");
}

#[test]
fn goes_idle_after_a_long_absence_and_restarts_at_the_target() {
    let mut arrivals: Vec<(u64, Incoming)> = (0..50).map(on_time).collect();
    // The same stream comes back 3 s later (seq contiguous, ts 3 s on).
    arrivals.extend((350..400).map(|k| {
        (
            k * 10_000 + 20_000,
            frame(7, 100 + k - 300, 5_000 + k * 480, true),
        )
    }));
    let (jb, played) = drive(JitterConfig::default(), arrivals, 15_000, 4_200_000);
    let first_back = played
        .iter()
        .position(|p| *p == Played::Seq(150))
        .unwrap_or(usize::MAX);
    assert!(played[..first_back].contains(&Played::Idle));
    assert!(
        played[first_back..]
            .iter()
            .take(50)
            .all(|p| matches!(p, Played::Seq(_)))
    );
    // It restarts at the first pull after the target is reached: at most a pull
    // period (a frame) deeper, drained by the ratio since.
    let excess = jb.stats().depth_us - jb.stats().target_us;
    assert!((0.0..10_000.0).contains(&excess), "{:?}", jb.stats());
}

#[test]
fn each_absurd_packet_is_rejected_with_its_reason() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let (t, ts) = (1_000_000, 480_000);
    assert_eq!(jb.push(t, frame(1, 100, ts, true)), PushOutcome::NewStream);
    let with = |f: fn(&mut Incoming)| {
        let mut incoming = frame(1, 101, ts + 480, true);
        f(&mut incoming);
        incoming
    };
    let cases: [(Incoming, Reject); 7] = [
        (with(|i| i.payload = Bytes::new()), Reject::EmptyPayload),
        (
            with(|i| i.payload = Bytes::from(vec![1; 1501])),
            Reject::OversizedPayload,
        ),
        (with(|i| i.samples = 100), Reject::BadFrameSize),
        (with(|i| i.ts += 4 * 48_000), Reject::TsAhead),
        (
            with(|i| (i.seq, i.ts) = (50, 480_000 - 4 * 48_000)),
            Reject::TsBehind,
        ),
        (with(|i| i.seq += 1_000), Reject::SeqTsMismatch),
        (with(|i| (i.seq, i.ts) = (101, 480_240)), Reject::Overlap),
    ];
    for (incoming, reason) in cases {
        assert_eq!(
            jb.push(t, incoming),
            PushOutcome::Rejected(reason),
            "{}",
            reason.as_str()
        );
    }
    assert_eq!(jb.push(t, frame(2, 0, 0, true)), PushOutcome::NewStream);
    assert_eq!(
        jb.push(t, frame(1, 101, ts + 480, true)),
        PushOutcome::Rejected(Reject::OldStream)
    );
    let stats = jb.stats();
    assert_eq!(stats.rejected, 8);
    for reason in Reject::ALL {
        let expected = u64::from(reason != Reject::BufferFull);
        assert_eq!(
            stats.rejected_by[reason.index()],
            expected,
            "{}",
            reason.as_str()
        );
    }
}

#[test]
fn a_full_buffer_rejects_what_is_older_than_all_it_holds() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let cap = jb.capacity() as u64;
    for k in 0..cap + 5 {
        jb.push(1_000_000, frame(1, 1_000 + k, 480_000 + k * 480, true));
        assert!(jb.buffered() <= jb.capacity());
    }
    assert_eq!(jb.stats().dropped_overflow, 5);
    assert_eq!(
        jb.push(1_000_000, frame(1, 999, 479_520, true)),
        PushOutcome::Rejected(Reject::BufferFull)
    );
}

#[test]
fn consistent_rejections_mean_the_sender_restarted_its_clock() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    jb.push(1_000_000, frame(1, 10, 0, true));
    // The same stream id, its ts suddenly an hour on: absurd, until it persists.
    let jump = 3_600 * 48_000;
    for k in 0..15 {
        let outcome = jb.push(
            1_010_000 + k * 10_000,
            frame(1, 11 + k, jump + k * 480, true),
        );
        assert_eq!(outcome, PushOutcome::Rejected(Reject::TsAhead));
    }
    assert_eq!(
        jb.push(1_160_000, frame(1, 26, jump + 15 * 480, true)),
        PushOutcome::NewStream
    );
    assert_eq!(
        jb.push(1_170_000, frame(1, 27, jump + 16 * 480, true)),
        PushOutcome::Accepted
    );
}

#[test]
fn stream_id_switching_every_packet_stays_bounded() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut jb = JitterBuffer::new(JitterConfig::default());
    for k in 0..20_000u64 {
        let incoming = frame(rng.r#gen(), rng.r#gen(), rng.r#gen(), rng.r#gen());
        assert_eq!(jb.push(k * 1_000, incoming), PushOutcome::NewStream);
        let pull = jb.pull(k * 1_000 + 500);
        assert!((pull.ratio - 1.0).abs() <= 0.005);
        assert!(jb.buffered() <= 1);
    }
    assert_eq!(jb.stats().new_streams, 20_000);
}

#[test]
fn absurd_configuration_is_made_sane() {
    let cfg = JitterConfig {
        sample_rate: 0,
        frame_samples: 7,
        percentile: f64::NAN,
        window_us: 0,
        margin_us: u64::MAX,
        min_target_us: u64::MAX,
        max_target_us: 0,
        max_stretch: f64::INFINITY,
        repair_frames: 9,
        fec: true,
        max_conceal: u32::MAX,
        repair_loss_threshold: -1.0,
        idle_after_us: 0,
    };
    let mut jb = JitterBuffer::new(cfg);
    let sane = jb.config().clone();
    assert_eq!(
        (sane.sample_rate, sane.frame_samples, sane.repair_frames),
        (48_000, 480, 2)
    );
    assert!(sane.min_target_us <= sane.max_target_us && sane.max_stretch <= 0.05);
    jb.push(0, frame(1, 0, 0, true));
    for k in 0..100 {
        let _ = jb.pull(k * 10_000);
    }
}

// --- scenarios ---

#[test]
fn clean_network_settles_just_above_its_jitter() {
    for (frame, seconds) in [(480, LONG_S), (120, 60.0), (240, 60.0), (960, 60.0)] {
        let r = sim::run(&clean(frame, seconds, 11));
        show(
            &format!("clean, {frame}-sample frames, jitter 1 ms"),
            &r,
            SETTLE_S,
            seconds,
        );
        assert_sound("clean", &r);
        let (mean, p95, _) = r.depth_ms(SETTLE_S, seconds);
        // The network's jitter is 1 ms: the depth is at most 2 ms above it.
        assert!(mean <= 3.0 && p95 <= 3.0, "{frame}: {mean} / {p95}");
        let s = &r.stats;
        assert_eq!(
            (s.late, s.concealed, s.inserted_to_grow),
            (0, 0, 0),
            "{frame}: {s:?}"
        );
        assert!(s.silence_frames <= 1, "only the lead-in: {s:?}");
        assert_eq!(r.unrecovered, 0);
    }
}

#[test]
fn jitter_of_20ms_costs_its_jitter_and_is_forgotten_after() {
    let clean = clean_depth_ms();
    let mut s = Scenario::new(480, LONG_S + 60.0, 12);
    s.net.jitter = vec![
        (0.0, Jitter::Uniform { max_us: 20_000.0 }),
        (
            LONG_S,
            Jitter::Uniform {
                max_us: CLEAN_JITTER_US,
            },
        ),
    ];
    let r = sim::run(&s);
    show("uniform jitter 0-20 ms", &r, SETTLE_S, LONG_S);
    assert_sound("jitter", &r);
    let (mean, p95, _) = r.depth_ms(SETTLE_S, LONG_S);
    assert!(r.late_pct() <= 1.0, "late {} %", r.late_pct());
    assert!(
        mean <= clean + 25.0 && p95 <= clean + 25.0,
        "{mean} / {p95} vs clean {clean}"
    );
    let settled = r.settled_at(LONG_S, clean, 5.0).map(|t| t - LONG_S);
    eprintln!(
        "  clean depth {clean:.2} ms; back within 5 ms of it {settled:?} s after the jitter stopped"
    );
    assert!(settled.is_some_and(|t| t <= 30.0), "{settled:?}");
}

#[test]
fn heavy_tailed_jitter_is_covered_to_its_percentile() {
    let mut s = clean(480, LONG_S, 13);
    s.net.jitter = vec![(
        0.0,
        Jitter::Pareto {
            scale_us: 2_000.0,
            shape: 2.0,
            cap_us: 300_000.0,
        },
    )];
    let r = sim::run(&s);
    show("Pareto jitter (2 ms, shape 2)", &r, SETTLE_S, LONG_S);
    assert_sound("pareto", &r);
    // The target covers the 97th percentile plus 1 ms: about 3 % may be late.
    assert!(r.late_pct() <= 3.0, "late {} %", r.late_pct());
    assert!(r.depth_ms(SETTLE_S, LONG_S).1 <= 40.0);
}

/// Ten minutes of random loss with `copies` redundant copies per datagram.
fn lossy(loss: f64, copies: u32, seed: u64) -> Report {
    let mut s = clean(480, LONG_S, seed).with_jitter(5_000.0);
    s.net.loss = Loss::Random(loss);
    s.redundancy = copies;
    s.cfg.repair_frames = copies.max(1);
    let r = sim::run(&s);
    show(
        &format!("loss {:.0} %, {copies} copies, jitter 5 ms", loss * 100.0),
        &r,
        SETTLE_S,
        LONG_S,
    );
    assert_sound("loss", &r);
    r
}

#[test]
fn loss_waits_one_fixed_repair_horizon_and_is_repaired() {
    let none = lossy(0.0, 1, 14);
    let five = lossy(0.05, 1, 14);
    let twenty = lossy(0.2, 1, 14);
    let twenty_two = lossy(0.2, 2, 14);
    let target = |r: &Report| r.target_ms(SETTLE_S, LONG_S);
    // A clean network waits for no repair; loss adds one frame, the same at 5 and 20 %.
    assert!(
        (target(&five) - target(&none) - 10.0).abs() < 1.0,
        "{} vs {}",
        target(&five),
        target(&none)
    );
    assert!(
        (target(&twenty) - target(&five)).abs() < 0.5,
        "{} vs {}",
        target(&twenty),
        target(&five)
    );
    assert!((target(&twenty_two) - target(&none) - 20.0).abs() < 1.0);
    assert_eq!(none.unrecovered, 0);
    assert!(five.unrecovered_pct() <= 0.5, "{}", five.unrecovered_pct());
    // With one copy a frame is lost when its datagram and the next both are: p² = 4 %
    // is the floor; 0.25 % is three standard deviations over 60 000 frames.
    assert!(
        twenty.unrecovered_pct() <= 4.25,
        "{}",
        twenty.unrecovered_pct()
    );
    assert!(
        twenty_two.unrecovered_pct() <= 1.0,
        "{}",
        twenty_two.unrecovered_pct()
    );
    for r in [&five, &twenty, &twenty_two] {
        assert!(r.late_pct() <= 0.1, "{}", r.late_pct());
    }
}

#[test]
fn burst_losses_lose_what_the_copies_cannot_cover() {
    for copies in [1, 2] {
        let mut s = clean(480, LONG_S, 15).with_jitter(5_000.0);
        s.net.loss = Loss::Bursts3(0.01);
        s.redundancy = copies;
        s.cfg.repair_frames = copies;
        let r = sim::run(&s);
        show(
            &format!("bursts of 3, {copies} copies"),
            &r,
            SETTLE_S,
            LONG_S,
        );
        assert_sound("bursts", &r);
        // Of each burst of three, the copies in the next datagram restore `copies`.
        let floor = r.dropped * (3 - u64::from(copies)) / 3;
        assert!(
            r.unrecovered <= floor + r.expected / 1000,
            "{} vs {floor}",
            r.unrecovered
        );
    }
    let mut s = clean(480, LONG_S, 16).with_jitter(5_000.0);
    s.net.loss = Loss::Gilbert {
        to_bad: 0.01,
        to_good: 0.3,
        loss_in_bad: 0.5,
    };
    s.redundancy = 2;
    s.cfg.repair_frames = 2;
    let r = sim::run(&s);
    show("Gilbert-Elliott loss, 2 copies", &r, SETTLE_S, LONG_S);
    assert_sound("gilbert", &r);
    assert!(r.unrecovered_pct() <= 0.5, "{}", r.unrecovered_pct());
}

#[test]
fn fec_profile_repairs_isolated_losses() {
    let mut s = clean(960, LONG_S, 17).with_jitter(5_000.0);
    s.net.loss = Loss::Random(0.05);
    s.cfg.fec = true;
    s.cfg.repair_frames = 1;
    let r = sim::run(&s);
    show("loss 5 %, Opus FEC, 20 ms frames", &r, SETTLE_S, LONG_S);
    assert_sound("fec", &r);
    assert!(r.stats.repaired_fec > 0);
    assert!(r.unrecovered_pct() <= 0.5, "{}", r.unrecovered_pct());
}

#[test]
fn reordering_and_duplicates_are_harmless() {
    let mut s = clean(480, LONG_S, 18).with_jitter(5_000.0);
    s.net.reorder = 0.02;
    s.net.reorder_frames = 3;
    s.net.duplicate = 0.05;
    let r = sim::run(&s);
    show(
        "reorder 2 % by 1-3 frames, duplicate 5 %",
        &r,
        SETTLE_S,
        LONG_S,
    );
    assert_sound("reorder", &r);
    // Every duplicate is seen as one and none is played twice (the audit checks).
    assert_eq!(r.stats.duplicates, r.duplicated);
    // Nothing is concealed but what a late (reordered) packet forced, and the frames
    // inserted to grow after it.
    let forced = r.stats.late + r.stats.inserted_to_grow;
    assert!(
        r.stats.concealed <= forced,
        "{} concealed, {} late",
        r.stats.concealed,
        r.stats.late
    );
    // Only held-back datagrams come late: 2 % of them is below the 97th percentile, so
    // the buffer does not grow by the reordering depth to save them.
    assert!(r.stats.late <= r.reordered);
    assert!(r.depth_ms(SETTLE_S, LONG_S).1 <= 8.0);
}

#[test]
fn clock_drift_is_absorbed_both_ways() {
    for (sender_ppm, card_ppm) in [
        (1000.0, 0.0),
        (-1000.0, 0.0),
        (0.0, 1000.0),
        (0.0, -1000.0),
        (1000.0, -1000.0),
        (-1000.0, 1000.0),
    ] {
        let mut s = clean(480, LONG_S, 19);
        s.sender_ppm = sender_ppm;
        s.card_ppm = card_ppm;
        let r = sim::run(&s);
        let error = r.max_error_ms(SETTLE_S, LONG_S);
        show(
            &format!("drift: sender {sender_ppm:+} ppm, card {card_ppm:+} ppm"),
            &r,
            SETTLE_S,
            LONG_S,
        );
        eprintln!("  largest |depth - target| after {SETTLE_S} s: {error:.2} ms");
        assert_sound("drift", &r);
        assert!(error <= 2.0, "{error}");
        // Steady state: the integral has learnt the drift.
        let steady = r.depth_ms(60.0, LONG_S).0 - r.target_ms(60.0, LONG_S);
        eprintln!("  mean depth - target after 60 s: {steady:+.3} ms");
        assert!(steady.abs() < 0.5, "{steady}");
        let st = &r.stats;
        assert_eq!(
            (
                st.late,
                st.concealed,
                st.inserted_to_grow,
                st.dropped_overflow
            ),
            (0, 0, 0, 0),
            "{st:?}"
        );
        assert!((st.skew_ppm - sender_ppm).abs() < 20.0, "{}", st.skew_ppm);
    }
}

#[test]
fn sender_restarts_and_outages_recover_within_a_second() {
    let mut s = clean(480, 120.0, 20).with_jitter(5_000.0);
    s.restarts = vec![
        Restart {
            at_s: 20.0,
            gap_s: 5.0,
            new_stream: false,
        },
        Restart {
            at_s: 40.0,
            gap_s: 0.5,
            new_stream: true,
        },
        Restart {
            at_s: 80.0,
            gap_s: 0.0,
            new_stream: true,
        },
    ];
    s.net.outages = vec![(60.0, 62.0)];
    let r = sim::run(&s);
    show(
        "restarts (same stream, new stream twice) and a 2 s outage",
        &r,
        SETTLE_S,
        120.0,
    );
    eprintln!("  recovery (s): {:?}", r.recovery_s);
    assert_sound("restarts", &r);
    assert_eq!(r.recovery_s.len(), 4);
    assert!(
        r.recovery_s.iter().all(|t| t.is_some_and(|t| t < 1.0)),
        "{:?}",
        r.recovery_s
    );
    assert_eq!(r.stats.new_streams, 3);
    // Only the outage's frames are missing (and any that came late).
    assert!(
        r.unrecovered <= r.dropped + r.stats.late,
        "{} vs {}",
        r.unrecovered,
        r.dropped
    );
}

#[test]
fn silence_gaps_play_silence_and_the_buffer_shrinks_in_them() {
    let talk = Dtx {
        talk_s: (0.5, 3.0),
        silence_s: (0.3, 2.0),
    };
    let mut s = clean(480, LONG_S, 21);
    s.dtx = Some(talk);
    let r = sim::run(&s);
    show("DTX, clean", &r, SETTLE_S, LONG_S);
    assert_sound("dtx", &r);
    // Only the end of each talk spurt is concealed (nothing says yet it is not loss).
    assert!(
        r.stats.concealed <= 3 * r.silences,
        "{} for {} silences",
        r.stats.concealed,
        r.silences
    );
    assert!(r.stats.silence_frames > 10 * r.stats.concealed);
    assert_eq!((r.unrecovered, r.stats.late), (0, 0));

    // Jitter for a minute, then calm: the excess goes in the silences (kept shorter
    // than the idle timeout, after which playout would restart at the target anyway).
    let mut s = Scenario::new(480, 120.0, 22);
    s.dtx = Some(Dtx {
        talk_s: (0.5, 3.0),
        silence_s: (0.3, 0.9),
    });
    s.net.jitter = vec![
        (0.0, Jitter::Uniform { max_us: 40_000.0 }),
        (
            60.0,
            Jitter::Uniform {
                max_us: CLEAN_JITTER_US,
            },
        ),
    ];
    let r = sim::run(&s);
    show("DTX, 40 ms jitter then calm", &r, 70.0, 120.0);
    assert_sound("dtx shrink", &r);
    assert!(r.stats.dropped_to_shrink > 0);
    let settled = r.settled_at(60.0, clean_depth_ms(), 5.0).map(|t| t - 60.0);
    eprintln!(
        "  dropped {} silent frames; settled {settled:?} s after the jitter stopped",
        r.stats.dropped_to_shrink
    );
    assert!(settled.is_some_and(|t| t <= 30.0));
    // No frame of speech was dropped: all that was not played had come late.
    assert!(
        r.unrecovered <= r.stats.late,
        "{} vs {}",
        r.unrecovered,
        r.stats.late
    );
}

#[test]
fn a_stalled_output_skips_ahead_instead_of_lagging() {
    let mut s = clean(480, 60.0, 23);
    s.stalls = vec![(20.0, 23.0)];
    let r = sim::run(&s);
    show("output stalled 3 s", &r, 30.0, 60.0);
    assert_sound("stall", &r);
    assert!(r.stats.dropped_overflow > 0);
    // It skips to the frame at or just above the target (at most a frame deeper), and
    // the ratio drains the rest within seconds.
    assert!(
        r.max_error_ms(23.1, 30.0) <= 10.0,
        "{}",
        r.max_error_ms(23.1, 30.0)
    );
    assert!(
        r.max_error_ms(30.0, 60.0) <= 1.0,
        "{}",
        r.max_error_ms(30.0, 60.0)
    );
}

#[test]
fn random_scenarios_with_hostile_packets_keep_every_invariant() {
    let mut broken = Vec::new();
    let (mut pulls, mut rejected, mut played) = (0, 0, 0);
    for seed in 0..2_000 {
        let s = sim::random_scenario(seed, 3.0);
        let r = sim::run(&s);
        pulls += r.pulls;
        rejected += r.stats.rejected;
        played += r.played;
        if !r.violations.is_empty() {
            broken.push((seed, r.violations[0].clone()));
        }
        let capacity = JitterBuffer::new(s.cfg.clone()).capacity();
        assert!(r.max_buffered <= capacity, "seed {seed}");
    }
    eprintln!(
        "2000 random scenarios: {pulls} pulls, {played} frames played, {rejected} packets rejected"
    );
    assert!(
        broken.is_empty(),
        "{} broken, first: {:?}",
        broken.len(),
        &broken[..broken.len().min(3)]
    );
}

#[test]
fn an_output_pulling_frames_in_batches_is_held_by_its_last_pull() {
    for (frame, batch) in [(480u32, 2u32), (240, 4), (120, 8)] {
        let mut s = clean(frame, 120.0, 24);
        s.batch = batch;
        s.sender_ppm = 1000.0;
        let r = sim::run(&s);
        let period_ms = f64::from(frame * batch) / 48.0;
        show(
            &format!("{batch} frames of {frame} samples per pull, drift 1000 ppm"),
            &r,
            SETTLE_S,
            120.0,
        );
        assert_sound("batch", &r);
        let st = &r.stats;
        assert_eq!(st.late, 0, "{st:?}");
        // Playout starts with the first pull of a batch at the target, so the rest of
        // that batch finds the buffer short once: at most one insertion, at the start.
        assert!(st.concealed <= 1 && st.inserted_to_grow <= 1, "{st:?}");
        // The first pull of a batch needs the batch's worth more than the last.
        let (mean, _, max) = r.depth_ms(SETTLE_S, 120.0);
        let target = r.target_ms(SETTLE_S, 120.0);
        assert!(
            max <= target + period_ms + 0.5,
            "{max} vs {target} + {period_ms}"
        );
        assert!(mean <= target + period_ms / 2.0 + 0.5, "{mean}");
    }
}

#[test]
fn a_small_deficit_grows_the_buffer_by_the_deficit_not_a_frame() {
    // 10 ms frames on time for 3 s, then every frame 3 ms later: once the late ones
    // pass the percentile the target rises by about 3 ms, and the buffer grows by
    // that, in Opus's 2.5 ms grain (here 5 ms), not by a whole 10 ms frame.
    let arrivals = (0..600u64).map(|k| {
        let (at, incoming) = on_time(k);
        (if k >= 300 { at + 3_000 } else { at }, incoming)
    });
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut arrivals = arrivals.peekable();
    let mut pull_at = 15_000.0f64;
    let mut grows = Vec::new();
    while pull_at < 6_000_000.0 {
        while let Some((at, incoming)) = arrivals.next_if(|(at, _)| (*at as f64) <= pull_at) {
            jb.push(at, incoming);
        }
        let before = jb.stats().inserted_to_grow;
        let pull = jb.pull(pull_at as u64);
        let samples = pulled_samples(&pull.action);
        if jb.stats().inserted_to_grow > before {
            grows.push(samples);
        }
        pull_at += f64::from(samples) * 1e6 / 48_000.0 * pull.ratio;
    }
    assert!(!grows.is_empty(), "the buffer never grew");
    assert!(
        grows.iter().all(|&s| s % 120 == 0 && s < 480),
        "grown by {grows:?} samples"
    );
    let grown_us: u32 = grows.iter().sum::<u32>() * 1_000 / 48;
    assert!(
        (2_500..=7_500).contains(&grown_us),
        "grown by {grown_us} µs in all ({grows:?})"
    );
}
