//! Keeping a slow terminal from falling behind: the screen asks the terminal where
//! its cursor is (a probe) and times the answer, which can only come once the
//! terminal has taken in everything written before the question — the time the
//! screen's output waits on its way (an SSH link, a slow serial line). Like TCP's
//! acknowledgements, an answer also says how many bytes have arrived; the screen
//! keeps at most a window of bytes unanswered (halved when answers come slowly,
//! doubled when they come quickly), so its output queues for a fraction of a
//! second at most, and a key's frame goes out as soon as the terminal has caught
//! up. From the same times it lowers its frame rate and slows, then pauses, the
//! spectrogram (a scrolling picture repaints every cell), and tries it again
//! now and then.
//!
//! Plain state: bytes written, probe times and `now` in; yes/no and rates out. No
//! I/O.

use std::time::{Duration, Instant};

/// A probe out longer than this: the terminal is behind; nothing more is written.
pub const GATE: Duration = Duration::from_millis(250);
/// An answer slower than this makes the screen draw less.
const SLOW: Duration = Duration::from_millis(200);
/// Answers faster than this, several in a row, let it draw more again.
const FAST: Duration = Duration::from_millis(60);
/// How many fast answers in a row before drawing more.
const FAST_IN_A_ROW: u32 = 4;
/// How many before the spectrogram is tried again once paused.
const FAST_TO_RESUME: u32 = 50;
/// Probes that were never answered, with none ever answered, before deciding the
/// terminal does not answer them (probing stops; nothing is throttled).
const NEVER_ANSWERED: u32 = 3;
/// The slowest level.
const MAX_LEVEL: u8 = 4;
/// The level from which the spectrogram waits.
const PAUSED: u8 = 3;
/// Least time between two probes while the terminal is behind or was lately.
const PROBE_EVERY: Duration = Duration::from_millis(40);
/// Least time between two probes while it keeps up easily (probes cost a little
/// CPU and a few bytes each way).
const PROBE_CALM: Duration = Duration::from_millis(500);
/// The window of unanswered bytes: at start, least, most.
const WINDOW: (u64, u64, u64) = (2 * 1024, 512, 1024 * 1024);

/// The throttle. See the module documentation.
#[derive(Debug, Clone)]
pub struct Throttle {
    max_fps: f32,
    spectrogram_fps: f32,
    level: u8,
    fast: u32,
    /// The probe out: when it was sent, and the bytes written before it.
    out: Option<(Instant, u64)>,
    last_sent: Option<Instant>,
    /// When the level last went up (an unanswered probe raises it once per `SLOW`).
    raised: Option<Instant>,
    written: u64,
    acked: u64,
    window: u64,
    answered: u64,
    unanswered: u32,
    deaf: bool,
    last: Option<Duration>,
    worst: Duration,
}

impl Throttle {
    /// A throttle for a screen drawing at most `max_fps` frames a second, with a
    /// spectrogram of `spectrogram_fps`.
    pub fn new(max_fps: f32, spectrogram_fps: f32) -> Throttle {
        Throttle {
            max_fps: max_fps.max(1.0),
            spectrogram_fps: spectrogram_fps.max(1.0),
            level: 0,
            fast: 0,
            out: None,
            last_sent: None,
            raised: None,
            written: 0,
            acked: 0,
            window: WINDOW.0,
            answered: 0,
            unanswered: 0,
            deaf: false,
            last: None,
            worst: Duration::ZERO,
        }
    }

    /// `bytes` were written to the terminal.
    pub fn wrote(&mut self, bytes: u64) {
        self.written += bytes;
    }

    /// Whether a probe should be sent now: none is out, something was written
    /// since the last, not too soon after it, and the terminal answers probes.
    pub fn wants_probe(&self, now: Instant) -> bool {
        let in_flight = self.written.saturating_sub(self.acked);
        let calm =
            self.level == 0 && self.last.is_some_and(|r| r < FAST) && in_flight < self.window / 2;
        let every = if calm { PROBE_CALM } else { PROBE_EVERY };
        !self.deaf
            && self.out.is_none()
            && in_flight > 0
            && self
                .last_sent
                .is_none_or(|t| now.saturating_duration_since(t) >= every)
    }

    /// A probe was written at `at`, after everything written so far.
    pub fn sent(&mut self, at: Instant) {
        self.out = Some((at, self.written));
        self.last_sent = Some(at);
    }

    /// The probe was answered at `at` (`false`: it timed out).
    pub fn answered(&mut self, at: Instant, ok: bool) {
        let Some((sent, bytes)) = self.out.take() else {
            return;
        };
        if !ok {
            self.unanswered += 1;
            if self.answered == 0 && self.unanswered >= NEVER_ANSWERED {
                // A terminal that never answers: nothing can be known, nothing held.
                self.deaf = true;
                self.level = 0;
                self.acked = self.written;
            } else {
                self.slow(at, sent);
            }
            return;
        }
        self.answered += 1;
        self.acked = self.acked.max(bytes);
        let rtt = at.saturating_duration_since(sent);
        self.last = Some(rtt);
        self.worst = self.worst.max(rtt);
        if rtt > SLOW {
            self.slow(at, sent);
        } else if rtt < FAST {
            self.window = (self.window * 2).min(WINDOW.2);
            self.fast += 1;
            let needed = if self.level >= PAUSED {
                FAST_TO_RESUME
            } else {
                FAST_IN_A_ROW
            };
            if self.fast >= needed && self.level > 0 {
                self.level -= 1;
                self.fast = 0;
            }
        } else {
            self.fast = 0;
        }
    }

    /// A slow answer (or none): a smaller window and a higher level, unless the
    /// wait for this probe raised it already.
    fn slow(&mut self, now: Instant, sent: Instant) {
        self.window = (self.window / 2).max(WINDOW.1);
        if self.raised.is_none_or(|r| r <= sent) {
            self.raise(now);
        }
    }

    fn raise(&mut self, now: Instant) {
        self.fast = 0;
        self.level = (self.level + 1).min(MAX_LEVEL);
        self.raised = Some(now);
    }

    /// Time passes: a probe out for longer than `SLOW` raises the level once per
    /// `SLOW` without waiting for its answer.
    pub fn tick(&mut self, now: Instant) {
        if let Some((sent, _)) = self.out
            && now.saturating_duration_since(sent) > SLOW
            && self
                .raised
                .is_none_or(|r| r <= sent || now.saturating_duration_since(r) > SLOW)
        {
            self.raise(now);
        }
    }

    /// Whether a frame may be written now: not while a probe has been out longer
    /// than [`GATE`], nor while a window of bytes is unanswered (a frame is always
    /// allowed once everything before it was answered).
    pub fn may_draw(&self, now: Instant) -> bool {
        let late = self
            .out
            .is_some_and(|(s, _)| now.saturating_duration_since(s) > GATE);
        let in_flight = self.written.saturating_sub(self.acked);
        !late && (in_flight == 0 || in_flight < self.window)
    }

    /// The shortest time between two frames now.
    pub fn frame_interval(&self) -> Duration {
        let fps = match self.level {
            0 => self.max_fps,
            1 => self.max_fps / 2.0,
            2 => (self.max_fps / 4.0).max(4.0).min(self.max_fps),
            3 => 4.0f32.min(self.max_fps),
            _ => 2.0f32.min(self.max_fps),
        };
        Duration::from_secs_f32(1.0 / fps.max(1.0))
    }

    /// The spectrogram's frames a second now; `None`: it waits (it costs a whole
    /// picture of bytes each time it scrolls).
    pub fn spectrogram_fps(&self) -> Option<f32> {
        match self.level {
            0 => Some(self.spectrogram_fps),
            1 => Some((self.spectrogram_fps / 2.0).max(1.0)),
            2 => Some((self.spectrogram_fps / 4.0).max(1.0)),
            _ => None,
        }
    }

    /// What the status line says while throttled (`None`: at full rate).
    pub fn label(&self) -> Option<String> {
        if self.level == 0 {
            return None;
        }
        let fps = 1.0 / self.frame_interval().as_secs_f32();
        Some(match self.spectrogram_fps() {
            Some(_) => format!("slow terminal: {fps:.0} fps"),
            None => format!("slow terminal: {fps:.0} fps, spectrogram paused"),
        })
    }

    /// The level: 0 at full rate, up to 4.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// The last answer's time and the slowest so far.
    pub fn figures(&self) -> (Option<Duration>, Duration) {
        (self.last, self.worst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A terminal draining `rate` bytes a second behind a link of `delay` each
    /// way, driven by a screen that draws whenever the throttle lets it, each frame
    /// `frame_bytes(level)` long. Returns the longest any byte waited in the queue
    /// and the level at the end.
    fn simulate(
        rate: f64,
        delay: Duration,
        frame_bytes: impl Fn(u8) -> f64,
        secs: u64,
        seed: u64,
    ) -> (Duration, u8) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let t0 = Instant::now();
        let mut th = Throttle::new(30.0, 12.0);
        // When the queue will be empty (seconds after t0).
        let mut drained_at = 0.0f64;
        let mut worst = 0.0f64;
        let mut last_frame = -1.0f64;
        let mut probe_answer: Option<f64> = None;
        let step = 0.005;
        let mut t = 0.0;
        while t < secs as f64 {
            let now = t0 + Duration::from_secs_f64(t);
            th.tick(now);
            if let Some(a) = probe_answer
                && t >= a
            {
                th.answered(now, true);
                probe_answer = None;
            }
            let interval = th.frame_interval().as_secs_f64();
            if th.may_draw(now) && t - last_frame >= interval {
                // The frame waits for what is queued, then takes its own time.
                let start = drained_at.max(t);
                let bytes = frame_bytes(th.level()) * rng.gen_range(0.8..1.2);
                drained_at = start + bytes / rate;
                // Its last byte waited this long to reach the terminal.
                worst = worst.max(drained_at - t);
                th.wrote(bytes as u64);
                last_frame = t;
            }
            if th.wants_probe(now) {
                th.sent(now);
                // Answered once the queue has drained, plus the way there and back.
                let jitter = rng.gen_range(0.0..0.01);
                probe_answer = Some(drained_at.max(t) + 2.0 * delay.as_secs_f64() + jitter);
            }
            t += step;
        }
        (Duration::from_secs_f64(worst), th.level())
    }

    /// Bytes of a frame: a scrolling spectrogram repaints its whole picture.
    fn frame(level: u8) -> f64 {
        if level >= 3 { 300.0 } else { 6_000.0 }
    }

    #[test]
    fn on_a_64_kbit_link_output_never_queues_a_second_and_rates_drop() {
        for seed in 0..200 {
            let (worst, level) = simulate(8_000.0, ms(20), frame, 30, seed);
            assert!(worst < Duration::from_secs(1), "seed {seed}: {worst:?}");
            assert!(level >= 3, "seed {seed}: level {level}");
        }
    }

    #[test]
    fn a_fast_terminal_is_never_throttled() {
        for seed in 0..200 {
            let (worst, level) = simulate(10_000_000.0, ms(1), frame, 20, seed);
            assert_eq!(level, 0, "seed {seed}");
            assert!(worst < ms(10), "seed {seed}: {worst:?}");
        }
    }

    #[test]
    fn a_terminal_that_recovers_gets_its_rates_back() {
        let t0 = Instant::now();
        let mut th = Throttle::new(30.0, 12.0);
        let mut t = t0;
        for _ in 0..4 {
            th.sent(t);
            t += ms(600);
            th.answered(t, true);
        }
        assert_eq!(th.level(), 4);
        assert_eq!(th.spectrogram_fps(), None);
        assert!(
            th.label().is_some_and(|l| l.contains("paused")),
            "{:?}",
            th.label()
        );
        for _ in 0..(2 * FAST_TO_RESUME + 2 * FAST_IN_A_ROW) {
            th.sent(t);
            t += ms(5);
            th.answered(t, true);
        }
        assert_eq!(th.level(), 0);
        assert_eq!(th.label(), None);
        assert_eq!(th.frame_interval(), Duration::from_secs_f32(1.0 / 30.0));
        assert_eq!(th.figures(), (Some(ms(5)), ms(600)));
    }

    #[test]
    fn a_terminal_that_never_answers_is_left_alone() {
        let t0 = Instant::now();
        let mut th = Throttle::new(30.0, 12.0);
        for k in 0..3 {
            th.wrote(100);
            assert!(th.wants_probe(t0 + ms(2000 * k)));
            th.sent(t0 + ms(2000 * k));
            th.answered(t0 + ms(2000 * k + 2000), false);
        }
        th.wrote(100);
        assert!(!th.wants_probe(t0 + ms(7000)));
        assert_eq!(th.level(), 0);
        assert!(th.may_draw(t0 + ms(10_000)));
    }

    #[test]
    fn nothing_is_written_while_the_terminal_is_far_behind() {
        let t0 = Instant::now();
        let mut th = Throttle::new(30.0, 12.0);
        assert!(!th.wants_probe(t0), "nothing written, nothing to ask");
        th.wrote(100);
        th.sent(t0);
        assert!(th.may_draw(t0 + ms(100)));
        assert!(!th.may_draw(t0 + GATE + ms(1)));
        // An answer that never comes still slows the screen down, once per SLOW.
        th.tick(t0 + ms(210));
        assert_eq!(th.level(), 1);
        th.tick(t0 + ms(300));
        assert_eq!(th.level(), 1);
        th.tick(t0 + ms(420));
        assert_eq!(th.level(), 2);
        th.answered(t0 + ms(600), true);
        assert!(th.may_draw(t0 + ms(600)));
    }
}
