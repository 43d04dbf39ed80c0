//! The sound bank: library sounds decoded and converted to the engine's format ahead
//! of time, so a trigger only hands the mixer an `Arc` and the first sample is in
//! the next callback.
//!
//! A loader thread decodes what it is asked for, one sound at a time, into a
//! [`DecodedCache`] under a memory budget: sounds bound to keys are pinned (decoded at
//! start-up, never evicted); others are decoded on their first play (which streams
//! from the file meanwhile) and evicted least recently used first. A sound longer than
//! [`MAX_BANKED_SECONDS`] is never banked: it always streams, in bounded memory.
//! Decoding never happens on the caller's thread, and nothing here touches the
//! audio thread.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cache::{CacheStats, DecodedCache};
use crate::domain::{AudioFormat, SoundId};
use crate::guard::lock;
use crate::media::decode_file;

/// Longest sound held decoded in memory; longer ones stream from their file.
pub const MAX_BANKED_SECONDS: f64 = 60.0;

/// One sound for the loader.
#[derive(Debug, Clone)]
pub struct BankRequest {
    /// The sound.
    pub id: SoundId,
    /// Its blob file.
    pub path: PathBuf,
    /// Length in seconds, if known (longer than [`MAX_BANKED_SECONDS`]: not banked).
    pub seconds: Option<f64>,
    /// Whether it is bound to a key (never evicted).
    pub pinned: bool,
}

#[derive(Default)]
struct State {
    cache: Option<DecodedCache<SoundId>>,
    /// Queued or being decoded.
    pending: HashSet<SoundId>,
    /// Sounds that failed to decode, with the reason (not retried).
    failed: HashMap<SoundId, String>,
    /// Sounds that will always stream (too long, or too big for the budget).
    streamed: HashSet<SoundId>,
}

struct Shared {
    state: Mutex<State>,
    idle: Condvar,
}

/// Decoded sounds under a memory budget, filled by a loader thread.
pub struct SoundBank {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<BankRequest>>,
    thread: Option<JoinHandle<()>>,
}

impl SoundBank {
    /// A bank for sounds at `format` (the engine's), holding at most `budget_bytes`
    /// of samples (pinned sounds count, and stay even past it).
    pub fn new(format: AudioFormat, budget_bytes: usize) -> std::io::Result<SoundBank> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                cache: Some(DecodedCache::new(budget_bytes)),
                ..State::default()
            }),
            idle: Condvar::new(),
        });
        let (tx, rx) = mpsc::channel::<BankRequest>();
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("jhack-bank".into())
            .spawn(move || {
                for req in rx {
                    load(&worker, &req, format);
                    let mut st = lock(&worker.state);
                    st.pending.remove(&req.id);
                    if st.pending.is_empty() {
                        worker.idle.notify_all();
                    }
                }
            })?;
        Ok(SoundBank {
            shared,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Asks for a sound to be decoded (no-op when it is there, queued, failed, or
    /// known to stream). A pinned request pins a sound that is already banked.
    pub fn request(&self, req: BankRequest) {
        let mut st = lock(&self.shared.state);
        if req.pinned
            && let Some(c) = st.cache.as_mut()
        {
            c.pin(&req.id);
        }
        let known = st.cache.as_ref().is_some_and(|c| c.contains(&req.id))
            || st.pending.contains(&req.id)
            || st.failed.contains_key(&req.id)
            || st.streamed.contains(&req.id);
        if known {
            return;
        }
        if req.seconds.is_some_and(|s| s > MAX_BANKED_SECONDS) {
            st.streamed.insert(req.id);
            return;
        }
        st.pending.insert(req.id);
        drop(st);
        if let Some(tx) = &self.tx {
            let _ = tx.send(req);
        }
    }

    /// The decoded samples of `id`, when banked (counts as a use for eviction).
    pub fn get(&self, id: &SoundId) -> Option<Arc<[f32]>> {
        lock(&self.shared.state).cache.as_mut()?.get(id)
    }

    /// Whether `id` is banked.
    pub fn contains(&self, id: &SoundId) -> bool {
        lock(&self.shared.state)
            .cache
            .as_ref()
            .is_some_and(|c| c.contains(id))
    }

    /// Unpins a sound whose key was unbound (it may then be evicted).
    pub fn unpin(&self, id: &SoundId) {
        if let Some(c) = lock(&self.shared.state).cache.as_mut() {
            c.unpin(id);
        }
    }

    /// Forgets a sound (removed from the library, or changed).
    pub fn forget(&self, id: &SoundId) {
        let mut st = lock(&self.shared.state);
        if let Some(c) = st.cache.as_mut() {
            c.remove(id);
        }
        st.failed.remove(id);
        st.streamed.remove(id);
    }

    /// Why `id` could not be decoded, if it could not.
    pub fn failure(&self, id: &SoundId) -> Option<String> {
        lock(&self.shared.state).failed.get(id).cloned()
    }

    /// The cache's counters.
    pub fn stats(&self) -> CacheStats {
        lock(&self.shared.state)
            .cache
            .as_ref()
            .map(DecodedCache::stats)
            .unwrap_or_default()
    }

    /// Waits until nothing is queued or decoding; `false` on timeout.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.state);
        while !st.pending.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .shared
                .idle
                .wait_timeout(st, deadline - now)
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
        true
    }
}

impl Drop for SoundBank {
    fn drop(&mut self) {
        self.tx = None; // ends the loader's loop once the queue is done
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Decodes one request and files the result.
fn load(shared: &Shared, req: &BankRequest, format: AudioFormat) {
    let decoded = decode_file(&req.path, Some(format));
    let mut st = lock(&shared.state);
    let samples: Arc<[f32]> = match decoded {
        Ok(d) => {
            let secs = d.frames() as f64 / f64::from(format.sample_rate.max(1));
            if secs > MAX_BANKED_SECONDS {
                st.streamed.insert(req.id);
                return;
            }
            d.samples.into()
        }
        Err(e) => {
            tracing::warn!("{}: cannot be decoded: {}", req.id.short(), e.reason());
            st.failed.insert(req.id, e.reason());
            return;
        }
    };
    let Some(cache) = st.cache.as_mut() else {
        return;
    };
    let evicted = if req.pinned {
        cache.insert_pinned(req.id, samples)
    } else {
        match cache.insert(req.id, samples) {
            Ok(evicted) => evicted,
            Err(_) => {
                st.streamed.insert(req.id);
                return;
            }
        }
    };
    for id in evicted {
        tracing::debug!("bank: evicted {}", id.short());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(dir: &std::path::Path, name: &str, secs: f32, rate: u32) -> PathBuf {
        let path = dir.join(name);
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).expect("create");
        for i in 0..(secs * rate as f32) as u32 {
            let s = (i as f32 * 0.05).sin() * 8000.0;
            w.write_sample(s as i16).expect("write");
        }
        w.finalize().expect("finalize");
        path
    }

    fn req(n: u8, path: PathBuf, pinned: bool) -> BankRequest {
        BankRequest {
            id: SoundId([n; 32]),
            path,
            seconds: None,
            pinned,
        }
    }

    #[test]
    fn sounds_are_decoded_to_the_engine_format_in_the_background() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fmt = AudioFormat::new(48_000, 2);
        let bank = SoundBank::new(fmt, 64 << 20).expect("bank");
        bank.request(req(1, wav(dir.path(), "a.wav", 0.5, 44_100), true));
        assert!(bank.wait_idle(Duration::from_secs(20)));
        let s = bank.get(&SoundId([1; 32])).expect("banked");
        // 0.5 s at 48 kHz stereo, give or take the resampler's edge.
        assert!((s.len() as i64 - 48_000).abs() < 200, "{}", s.len());
        assert_eq!(bank.stats().pinned_entries, 1);
    }

    #[test]
    fn the_budget_evicts_the_least_recently_used_and_keeps_the_pinned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fmt = AudioFormat::new(48_000, 1);
        // Each sound: 0.25 s mono = 12,000 samples = 48,000 bytes; room for three,
        // the pinned one included.
        let bank = SoundBank::new(fmt, 150_000).expect("bank");
        let p = wav(dir.path(), "s.wav", 0.25, 48_000);
        bank.request(req(9, p.clone(), true));
        for n in 1..=2 {
            bank.request(req(n, p.clone(), false));
        }
        assert!(bank.wait_idle(Duration::from_secs(20)));
        assert!(
            bank.get(&SoundId([1; 32])).is_some(),
            "1 used: now the newest"
        );
        bank.request(req(3, p.clone(), false));
        assert!(bank.wait_idle(Duration::from_secs(20)));
        assert!(
            bank.contains(&SoundId([9; 32])),
            "pinned stays, past the budget"
        );
        assert!(bank.contains(&SoundId([1; 32])));
        assert!(
            !bank.contains(&SoundId([2; 32])),
            "least recently used goes"
        );
        assert!(bank.contains(&SoundId([3; 32])));
        assert!(bank.stats().bytes <= 150_000);
    }

    #[test]
    fn bad_files_and_long_sounds_are_not_banked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bank = SoundBank::new(AudioFormat::new(48_000, 2), 1 << 20).expect("bank");
        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"not audio at all").expect("write");
        bank.request(req(1, junk, true));
        let mut long = req(2, dir.path().join("never-read.wav"), false);
        long.seconds = Some(MAX_BANKED_SECONDS + 1.0);
        bank.request(long);
        assert!(bank.wait_idle(Duration::from_secs(20)));
        assert!(bank.failure(&SoundId([1; 32])).is_some());
        assert!(!bank.contains(&SoundId([2; 32])));
        assert_eq!(bank.failure(&SoundId([2; 32])), None, "never decoded");
    }
}
