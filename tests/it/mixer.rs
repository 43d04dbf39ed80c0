//! The mixer on a hand-stepped renderer: gain, sample-accurate start, fades, stop-all,
//! voice capacity, the limiter, streams, and that rendering never allocates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use assert_no_alloc::{AllocDisabler, assert_no_alloc};
use jhack::audio::command::{Command, Event, Returned};
use jhack::audio::mixer::{CEILING, CallbackTiming, Mixer, MixerParams, MixerRings};
use jhack::audio::stats::EngineStats;
use jhack::audio::voice::Voice;
use jhack::audio::{BLOCK_FRAMES, EndReason, VoiceId, VoiceSource};
use jhack::domain::AudioFormat;

#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

const RATE: u32 = 48_000;

struct Rig {
    mixer: Mixer,
    cmd: rtrb::Producer<Command>,
    ret: rtrb::Consumer<Returned>,
    ev: rtrb::Consumer<Event>,
    stats: Arc<EngineStats>,
    params: Arc<MixerParams>,
    out: Vec<f32>,
}

fn rig(channels: u16, capacity: usize) -> Rig {
    let (cmd, cmd_rx) = rtrb::RingBuffer::new(256);
    let (ret_tx, ret) = rtrb::RingBuffer::new(capacity + 256);
    let (ev_tx, ev) = rtrb::RingBuffer::new(256);
    let stats = Arc::new(EngineStats::default());
    let params = Arc::new(MixerParams::default());
    let rings = MixerRings {
        commands: cmd_rx,
        returns: ret_tx,
        events: ev_tx,
        tap: None,
    };
    let mixer = Mixer::new(
        AudioFormat::new(RATE, channels),
        capacity,
        capacity + 256,
        rings,
        params.clone(),
        stats.clone(),
    );
    Rig {
        mixer,
        cmd,
        ret,
        ev,
        stats,
        params,
        out: Vec::new(),
    }
}

impl Rig {
    fn channels(&self) -> usize {
        usize::from(self.mixer.format().channels)
    }

    fn play(&mut self, id: u64, data: Vec<f32>, gain: f32) {
        let v = Voice::new(VoiceId(id), VoiceSource::Buffer(data.into()), gain);
        self.send(Command::Play(Box::new(v)));
    }

    fn play_at(&mut self, id: u64, data: Vec<f32>, frame: u64) {
        let v = Voice::new(VoiceId(id), VoiceSource::Buffer(data.into()), 1.0).start_at(frame);
        self.send(Command::Play(Box::new(v)));
    }

    fn send(&mut self, c: Command) {
        assert!(self.cmd.push(c).is_ok(), "command ring full");
    }

    /// Renders `frames` frames in callbacks of `period` frames, without allocating.
    fn render(&mut self, frames: usize, period: usize) -> Vec<f32> {
        let ch = self.channels();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        out.resize(frames * ch, f32::NAN);
        let mixer = &mut self.mixer;
        assert_no_alloc(|| {
            for chunk in out.chunks_mut(period * ch) {
                mixer.render(chunk, CallbackTiming::now());
            }
        });
        let result = out.clone();
        self.out = out;
        result
    }

    fn returned(&mut self) -> Vec<(u64, EndReason, u64)> {
        let mut v = Vec::new();
        while let Ok(r) = self.ret.pop() {
            v.push((r.voice.id().0, r.reason, r.voice.frames_played()));
        }
        v
    }
}

fn sine(freq: f32, amp: f32, frames: usize, channels: usize) -> Vec<f32> {
    (0..frames)
        .flat_map(|i| {
            std::iter::repeat_n(
                amp * (2.0 * std::f32::consts::PI * freq * i as f32 / RATE as f32).sin(),
                channels,
            )
        })
        .collect()
}

#[test]
fn silence_when_idle_and_output_is_fully_written() {
    let mut r = rig(2, 8);
    let out = r.render(1000, 100);
    assert!(out.iter().all(|&s| s == 0.0));
}

#[test]
fn gain_scales_a_voice_and_master_gain_applies() {
    let mut r = rig(2, 8);
    r.play(1, vec![0.5; 48_000 * 2], 0.5);
    let out = r.render(4800, 256);
    let steady = &out[(BLOCK_FRAMES * 4) * 2..4000 * 2];
    assert!(
        steady.iter().all(|&s| (s - 0.25).abs() < 1e-6),
        "{:?}",
        &steady[..4]
    );
    r.params.master_gain.store(0.5);
    let out = r.render(4800, 256);
    let steady = &out[1000 * 2..];
    assert!(steady.iter().all(|&s| (s - 0.125).abs() < 1e-6));
}

#[test]
fn gain_changes_are_smoothed() {
    let mut r = rig(1, 8);
    r.play(1, vec![0.5; 48_000], 1.0);
    r.render(1024, 256);
    r.send(Command::SetGain {
        id: VoiceId(1),
        gain: 0.0,
    });
    let out = r.render(1024, 256);
    let max_step = out
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max);
    assert!(
        max_step <= 0.5 / BLOCK_FRAMES as f32 + 1e-6,
        "step {max_step}"
    );
    assert!(out[900..].iter().all(|&s| s == 0.0));
}

#[test]
fn start_is_sample_accurate_whatever_the_callback_size() {
    for period in [1usize, 37, 64, 256, 480] {
        let mut r = rig(2, 8);
        let mut impulse = vec![0.0; 200 * 2];
        impulse[0] = 0.75;
        impulse[1] = -0.75;
        r.play(1, impulse.clone(), 1.0);
        r.play_at(2, impulse, 1000);
        let out = r.render(2000, period);
        let hits: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, s)| s.abs() > 0.1)
            .map(|(i, _)| i)
            .collect();
        let lat = BLOCK_FRAMES * 2;
        assert_eq!(
            hits,
            vec![lat, lat + 1, lat + 2000, lat + 2001],
            "period {period}"
        );
        assert_eq!(out[lat], 0.75);
        assert_eq!(out[lat + 1], -0.75);
    }
}

#[test]
fn started_events_carry_the_trigger_latency() {
    let mut r = rig(2, 8);
    r.play(7, vec![0.1; 2000], 1.0);
    r.render(256, 256);
    match r.ev.pop() {
        Ok(Event::Started {
            id,
            trigger_to_callback_ns,
            frame,
        }) => {
            assert_eq!(id, VoiceId(7));
            assert_eq!(frame, 0);
            assert!(trigger_to_callback_ns < 1_000_000_000);
        }
        other => panic!("no start event: {other:?}"),
    }
    assert!(r.stats.snapshot().last_trigger_ms >= 0.0);
}

#[test]
fn finished_voices_come_back_with_their_length() {
    let mut r = rig(2, 8);
    r.play(1, vec![0.2; 1000 * 2], 1.0);
    r.render(2000, 256);
    assert_eq!(r.returned(), vec![(1, EndReason::Finished, 1000)]);
    assert_eq!(r.stats.snapshot().voices_active, 0);
}

#[test]
fn stop_fades_out_without_a_click() {
    let mut r = rig(1, 8);
    r.play(1, vec![0.5; 48_000], 1.0);
    r.render(1024, 256);
    let fade = 384usize; // 8 ms
    r.send(Command::Stop {
        id: VoiceId(1),
        fade_frames: fade as u32,
    });
    let out = r.render(2048, 256);
    let max_step = out
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max);
    assert!(max_step <= 0.5 / fade as f32 * 1.01, "step {max_step}");
    let silent_from = out.iter().rposition(|&s| s != 0.0).map_or(0, |i| i + 1);
    assert!(
        silent_from <= fade + 2 * BLOCK_FRAMES,
        "still sounding at {silent_from}"
    );
    assert_eq!(
        r.returned(),
        vec![(1, EndReason::Stopped, 1024 + fade as u64)]
    );
}

#[test]
fn stop_all_fades_every_voice() {
    let mut r = rig(2, 16);
    for id in 0..10 {
        r.play(id, vec![0.05; 48_000 * 2], 1.0);
    }
    r.render(512, 256);
    assert_eq!(r.stats.snapshot().voices_active, 10);
    r.send(Command::StopAll { fade_frames: 384 });
    let out = r.render(2048, 256);
    assert!(out[1024 * 2..].iter().all(|&s| s == 0.0));
    let back = r.returned();
    assert_eq!(back.len(), 10);
    assert!(
        back.iter()
            .all(|(_, reason, _)| *reason == EndReason::Stopped)
    );
}

#[test]
fn a_play_beyond_capacity_is_refused_and_nothing_breaks() {
    let mut r = rig(2, 4);
    for id in 0..5 {
        r.play(id, vec![0.1; 48_000 * 2], 1.0);
    }
    let out = r.render(1024, 256);
    assert_eq!(r.returned(), vec![(4, EndReason::Refused, 0)]);
    let s = r.stats.snapshot();
    assert_eq!(s.voices_refused, 1);
    assert_eq!(s.voices_active, 4);
    assert!((out[800 * 2] - 0.4).abs() < 1e-5);
    // Once a slot frees up, a new play is accepted.
    r.send(Command::Stop {
        id: VoiceId(0),
        fade_frames: 16,
    });
    r.render(256, 256);
    r.play(9, vec![0.1; 4800], 1.0);
    r.render(256, 256);
    assert_eq!(r.stats.snapshot().voices_refused, 1);
}

#[test]
fn a_hundred_loud_voices_never_exceed_the_ceiling_or_crackle() {
    let mut r = rig(2, 128);
    for id in 0..100 {
        // Same phase: the worst case, a sum of 90 full-scale.
        r.play(id, sine(220.0 + (id % 3) as f32, 0.9, 48_000, 2), 1.0);
    }
    let out = r.render(48_000, 256);
    assert!(out.iter().all(|s| s.is_finite()));
    let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak <= CEILING + 1e-6, "peak {peak}");
    assert!(peak > 0.5 * CEILING, "over-limited: {peak}");
    // No discontinuities: a 220 Hz sine at the ceiling moves at most 2*pi*220/48000 per sample.
    let left: Vec<f32> = out.iter().step_by(2).copied().collect();
    let max_step = left
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max);
    let bound = 2.0 * std::f32::consts::PI * 223.0 / RATE as f32 * 1.5;
    assert!(max_step < bound, "step {max_step} > {bound}");
}

#[test]
fn streamed_voices_play_what_arrives_and_end_when_done() {
    let mut r = rig(2, 8);
    let (mut tx, rx) = rtrb::RingBuffer::new(4096);
    let done = Arc::new(AtomicBool::new(false));
    let v = Voice::new(
        VoiceId(3),
        VoiceSource::Stream {
            ring: rx,
            done: done.clone(),
            refill: 0,
            max_fill: 0,
        },
        1.0,
    );
    r.send(Command::Play(Box::new(v)));
    for _ in 0..1000 {
        tx.push(0.3).unwrap();
    }
    let out = r.render(1024, 256);
    assert!((out[BLOCK_FRAMES * 2 + 10] - 0.3).abs() < 1e-6);
    assert!(
        r.stats.snapshot().stream_starved > 0,
        "a dry stream is counted"
    );
    assert!(
        r.returned().is_empty(),
        "not done yet: keeps waiting for data"
    );
    done.store(true, Ordering::Release);
    r.render(256, 256);
    assert_eq!(r.returned(), vec![(3, EndReason::Finished, 500)]);
}

#[test]
fn odd_channel_counts_mix_correctly() {
    let mut r = rig(6, 8);
    let data: Vec<f32> = (0..600).map(|i| (i % 6) as f32 * 0.1).collect();
    r.play(1, data, 1.0);
    let out = r.render(256, 256);
    let frame = &out[BLOCK_FRAMES * 6..BLOCK_FRAMES * 6 + 6];
    for (c, s) in frame.iter().enumerate() {
        assert!((s - c as f32 * 0.1).abs() < 1e-6);
    }
}

#[test]
fn a_stream_with_a_jitter_margin_waits_for_it_before_and_after_running_dry() {
    let mut r = rig(1, 8);
    let (mut tx, rx) = rtrb::RingBuffer::new(4096);
    let done = Arc::new(AtomicBool::new(false));
    let source = VoiceSource::Stream {
        ring: rx,
        done: done.clone(),
        refill: 300,
        max_fill: 0,
    };
    r.send(Command::Play(Box::new(Voice::new(VoiceId(1), source, 1.0))));
    for _ in 0..200 {
        tx.push(0.5).unwrap();
    }
    let out = r.render(256, 256);
    assert!(
        out.iter().all(|&s| s == 0.0),
        "played before the margin filled"
    );
    for _ in 0..200 {
        tx.push(0.5).unwrap();
    }
    let out = r.render(512, 256);
    // 400 queued: plays all of it, then waits again for 300 before resuming.
    assert_eq!(out.iter().filter(|&&s| s == 0.5).count(), 400);
    for _ in 0..100 {
        tx.push(0.5).unwrap();
    }
    let out = r.render(256, 256);
    assert!(
        out.iter().all(|&s| s == 0.0),
        "resumed with less than the margin"
    );
    done.store(true, Ordering::Release);
    let out = r.render(256, 256);
    assert_eq!(
        out.iter().filter(|&&s| s == 0.5).count(),
        100,
        "the tail plays once the producer is done"
    );
}

#[test]
fn a_live_stream_past_its_bound_skips_the_oldest_audio_down_to_its_margin() {
    let mut r = rig(1, 8);
    let (mut tx, rx) = rtrb::RingBuffer::new(8192);
    let done = Arc::new(AtomicBool::new(false));
    let source = VoiceSource::Stream {
        ring: rx,
        done: done.clone(),
        refill: 256,
        max_fill: 1024,
    };
    r.send(Command::Play(Box::new(Voice::new(VoiceId(1), source, 1.0))));
    // A burst: 3000 samples counting up; the bound is 1024, so all but the newest
    // `refill` samples of the first block's view are skipped.
    for i in 1..=3000 {
        tx.push(i as f32 * 1e-4).unwrap();
    }
    let out = r.render(4 * BLOCK_FRAMES, BLOCK_FRAMES);
    let at = out.iter().position(|&s| s != 0.0).expect("plays");
    let first = (out[at] * 1e4).round() as i32;
    assert_eq!(first, 3000 - 256 + 1, "skipped down to the margin");
    // Within the bound nothing more is skipped: the samples follow on without a gap.
    for (j, s) in out[at..].iter().enumerate() {
        assert_eq!((s * 1e4).round() as i32, first + j as i32, "gap at {j}");
    }
    done.store(true, Ordering::Release);
    r.render(1024, 256);
    let back = r.returned();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].2, 256, "played exactly the margin");
}

#[test]
fn a_live_stream_whose_bound_is_below_its_margin_never_underflows() {
    // Regression: a bound below the margin (or below one block) made the skip
    // `have - max(refill, want)` wrap on the audio thread.
    for (refill, max_fill) in [(512, 100), (0, 8), (4096, 1)] {
        let mut r = rig(1, 8);
        let (mut tx, rx) = rtrb::RingBuffer::new(8192);
        let done = Arc::new(AtomicBool::new(false));
        let source = VoiceSource::Stream {
            ring: rx,
            done: done.clone(),
            refill,
            max_fill,
        };
        r.send(Command::Play(Box::new(Voice::new(VoiceId(1), source, 1.0))));
        for i in 1..=3000 {
            tx.push(i as f32 * 1e-4).unwrap();
        }
        let out = r.render(8 * BLOCK_FRAMES, BLOCK_FRAMES);
        assert!(out.iter().all(|s| s.is_finite()), "{refill}/{max_fill}");
        done.store(true, Ordering::Release);
        r.render(8192, 256);
    }
}

#[test]
fn capture_feeds_taps_and_never_allocates_attaching_overflowing_or_detaching() {
    use jhack::audio::capture::{InputProcessor, LostInput, MAX_TAPS, TapCommand, TapSink};
    use std::sync::atomic::AtomicU64;

    let stats = Arc::new(EngineStats::default());
    let (mut cmd_tx, cmd_rx) = rtrb::RingBuffer::new(16);
    let (ret_tx, mut ret_rx) = rtrb::RingBuffer::new(16 + MAX_TAPS);
    let mut proc = InputProcessor::new(1, 48_000, cmd_rx, ret_tx, stats.clone());
    // Two taps: one with room for everything, one that fills after 64 samples.
    let mut readers = Vec::new();
    for (id, len) in [(1u64, 4096usize), (2, 64)] {
        let (tx, rx) = rtrb::RingBuffer::new(len);
        let dropped = Arc::new(AtomicU64::new(0));
        let sink = Box::new(TapSink {
            id,
            ring: tx,
            channels: 1,
            dropped: dropped.clone(),
            lost: LostInput::Silence,
        });
        assert!(cmd_tx.push(TapCommand::Attach(sink)).is_ok());
        readers.push((rx, dropped));
    }
    let input: Vec<f32> = (0..48).map(|i| i as f32 / 48.0 - 0.5).collect();
    assert_no_alloc(|| {
        for _ in 0..4 {
            proc.process(&input);
        }
    });
    // The roomy tap got every block in order; the small one got one and counted the rest.
    let [(big, big_dropped), (small, small_dropped)] = &mut readers[..] else {
        unreachable!("two taps")
    };
    let got: Vec<f32> = std::iter::from_fn(|| big.pop().ok()).collect();
    assert_eq!(got.len(), 4 * input.len());
    assert_eq!(&got[..input.len()], &input[..]);
    assert_eq!(big_dropped.load(Ordering::Relaxed), 0);
    assert_eq!(small.slots(), input.len(), "one block fitted");
    assert_eq!(
        small_dropped.load(Ordering::Relaxed),
        3 * input.len() as u64
    );
    assert_eq!(
        stats.input_dropped.load(Ordering::Relaxed),
        3 * input.len() as u64
    );
    let peak = stats.in_peak.load();
    assert!((peak - 0.5).abs() < 1e-6, "input peak {peak}");
    // Detaching hands the tap back through the return ring, still without allocating.
    assert!(cmd_tx.push(TapCommand::Detach(2)).is_ok());
    assert_no_alloc(|| proc.process(&input));
    let back = ret_rx.pop().expect("detached tap returned");
    assert_eq!(back.id, 2);
    assert_eq!(
        std::iter::from_fn(|| big.pop().ok()).count(),
        input.len(),
        "the remaining tap is still fed"
    );
    drop(back);
}

#[test]
fn capture_fills_what_the_device_lost_with_silence_and_never_allocates() {
    use jhack::audio::capture::{InputProcessor, LostInput, MAX_TAPS, TapCommand, TapSink};
    use std::sync::atomic::AtomicU64;

    let stats = Arc::new(EngineStats::default());
    let (mut cmd_tx, cmd_rx) = rtrb::RingBuffer::new(16);
    let (ret_tx, _ret_rx) = rtrb::RingBuffer::new(16 + MAX_TAPS);
    let mut proc = InputProcessor::new(1, 48_000, cmd_rx, ret_tx, stats.clone());
    let mut attach = |id: u64, channels: usize, lost: LostInput| {
        let (ring, rx) = rtrb::RingBuffer::new(1 << 16);
        let dropped = Arc::new(AtomicU64::new(0));
        let sink = TapSink {
            id,
            ring,
            channels,
            dropped,
            lost,
        };
        assert!(cmd_tx.push(TapCommand::Attach(Box::new(sink))).is_ok());
        rx
    };
    let mut rx = attach(1, 2, LostInput::Silence);
    // A monitor's tap asks for nothing in place of what was lost.
    let mut monitor = attach(2, 1, LostInput::Nothing);
    // 256-frame blocks of 0.25, stamped 256 frames apart; block 20 never arrives.
    // Blocks 40-45 come a cycle late each (stamped with the next cycle), then block
    // 46 with block 45 in one cycle: nothing lost, only held back past the hold.
    let block = vec![0.25f32; 256];
    let at = |b: u64| 3_000_000_000 + b * 256 * 1_000_000_000 / 48_000;
    assert_no_alloc(|| {
        for b in (0..80u64).filter(|&b| b != 20) {
            let late = u64::from((40..46).contains(&b));
            proc.captured(at(b + late), 256);
            proc.process(&block);
        }
    });
    let got: Vec<f32> = std::iter::from_fn(|| rx.pop().ok()).collect();
    // 79 blocks, the lost one filled; the late run's fill taken back.
    assert_eq!(
        got.len(),
        80 * 256 * 2,
        "the device's 80 periods, in stereo"
    );
    let silent = got.iter().filter(|&&s| s == 0.0).count();
    assert_eq!(
        silent,
        2 * 256 * 2,
        "the lost block, and the late run's fill"
    );
    // The fill comes once the loss held (three blocks after it), before that block.
    let first = got.iter().position(|&s| s == 0.0).expect("a fill");
    assert_eq!(first, 22 * 256 * 2);
    let monitored: Vec<f32> = std::iter::from_fn(|| monitor.pop().ok()).collect();
    assert_eq!(monitored.len(), 79 * 256);
    assert!(
        monitored.iter().all(|&s| s == 0.25),
        "nothing filled or dropped"
    );
    assert_eq!(stats.input_losses.load(Ordering::Relaxed), 2);
    assert_eq!(stats.input_filled.load(Ordering::Relaxed), 512);
    assert_eq!(stats.input_taken_back.load(Ordering::Relaxed), 256);
}
