//! A worker thread that feeds a streamed voice: it asks a producer for samples (already
//! in the engine's format) and pushes them into the voice's ring, sleeping while the
//! ring is full. Memory stays bounded by the ring, whatever the length of the sound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::audio::VoiceSource;
use crate::domain::AudioFormat;

/// Produces the next samples into the given buffer; `Ok(false)` at the end.
pub trait Produce: Send + 'static {
    /// The producer's error.
    type Error: Send + 'static;
    /// Appends samples (interleaved, engine format) to `out`; returns whether more follow.
    fn produce(&mut self, out: &mut Vec<f32>) -> Result<bool, Self::Error>;
}

impl<E: Send + 'static, F: FnMut(&mut Vec<f32>) -> Result<bool, E> + Send + 'static> Produce for F {
    type Error = E;
    fn produce(&mut self, out: &mut Vec<f32>) -> Result<bool, E> {
        self(out)
    }
}

/// Sizes of a feed, in seconds of audio.
#[derive(Debug, Clone, Copy)]
pub struct FeedSizes {
    /// Ring length.
    pub ring_s: f64,
    /// Audio to have queued before the voice should start.
    pub prebuffer_s: f64,
}

impl Default for FeedSizes {
    fn default() -> Self {
        Self {
            ring_s: 1.0,
            prebuffer_s: 0.25,
        }
    }
}

/// The control end of a running feed.
pub struct Feed<E> {
    cancel: Arc<AtomicBool>,
    ready: mpsc::Receiver<()>,
    thread: Option<JoinHandle<Result<u64, E>>>,
}

impl<E> Feed<E> {
    /// Waits until the prebuffer is filled (or the producer ended), up to `timeout`.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        self.ready.recv_timeout(timeout).is_ok()
    }

    /// Asks the worker to stop early.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }

    /// Waits for the worker; returns samples fed or the producer's error.
    pub fn join(mut self) -> Option<Result<u64, E>> {
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl<E> Drop for Feed<E> {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a feed: returns the voice source to play and the worker's handle.
pub fn spawn<P: Produce>(
    name: &str,
    format: AudioFormat,
    sizes: FeedSizes,
    mut producer: P,
) -> std::io::Result<(VoiceSource, Feed<P::Error>)> {
    let channels = usize::from(format.channels.max(1));
    let frames = |s: f64| ((s * f64::from(format.sample_rate)) as usize).max(64);
    let ring_len = frames(sizes.ring_s) * channels;
    let prebuffer = (frames(sizes.prebuffer_s) * channels).min(ring_len);
    let (mut tx, rx) = rtrb::RingBuffer::<f32>::new(ring_len);
    let done = Arc::new(AtomicBool::new(false));
    let cancel = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_w, cancel_w) = (done.clone(), cancel.clone());
    // Sleep about an eighth of the ring when it is full: refills stay far ahead of the reader.
    let nap = Duration::from_secs_f64((sizes.ring_s / 8.0).clamp(0.001, 0.02));
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut pending: Vec<f32> = Vec::with_capacity(16_384);
            let mut off = 0usize;
            let mut fed = 0u64;
            let mut more = true;
            let mut signalled = false;
            let result = loop {
                if cancel_w.load(Ordering::Acquire) {
                    break Ok(fed);
                }
                if off == pending.len() {
                    pending.clear();
                    off = 0;
                    if more {
                        match producer.produce(&mut pending) {
                            Ok(m) => more = m,
                            Err(e) => break Err(e),
                        }
                    } else {
                        break Ok(fed);
                    }
                }
                let n = tx.slots().min(pending.len() - off);
                if n > 0
                    && let Ok(chunk) = tx.write_chunk_uninit(n)
                {
                    chunk.fill_from_iter(pending[off..off + n].iter().copied());
                    off += n;
                    fed += n as u64;
                }
                if !signalled
                    && (ring_len - tx.slots() >= prebuffer || (!more && off == pending.len()))
                {
                    signalled = true;
                    let _ = ready_tx.send(());
                }
                if off < pending.len() && tx.slots() == 0 {
                    std::thread::sleep(nap);
                }
            };
            done_w.store(true, Ordering::Release);
            if !signalled {
                let _ = ready_tx.send(());
            }
            result
        })?;
    let feed = Feed {
        cancel,
        ready: ready_rx,
        thread: Some(thread),
    };
    Ok((
        VoiceSource::Stream {
            ring: rx,
            done,
            refill: 0,
            max_fill: 0,
        },
        feed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_everything_then_marks_done() {
        let fmt = AudioFormat::new(1000, 2);
        let mut left = 10u32;
        let producer = move |out: &mut Vec<f32>| -> Result<bool, ()> {
            out.extend(std::iter::repeat_n(1.0, 100));
            left -= 1;
            Ok(left > 0)
        };
        let (src, feed) = spawn(
            "t",
            fmt,
            FeedSizes {
                ring_s: 0.1,
                prebuffer_s: 0.01,
            },
            producer,
        )
        .unwrap();
        let VoiceSource::Stream { mut ring, done, .. } = src else {
            panic!()
        };
        assert!(feed.wait_ready(Duration::from_secs(5)));
        let mut got = 0;
        while !(done.load(Ordering::Acquire) && ring.is_empty()) {
            while ring.pop().is_ok() {
                got += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(got, 1000);
        assert_eq!(feed.join(), Some(Ok(1000)));
    }

    #[test]
    fn producer_error_ends_the_stream() {
        let fmt = AudioFormat::new(1000, 1);
        let producer = |_: &mut Vec<f32>| -> Result<bool, &'static str> { Err("broken") };
        let (src, feed) = spawn("t", fmt, FeedSizes::default(), producer).unwrap();
        assert!(feed.wait_ready(Duration::from_secs(5)));
        let VoiceSource::Stream { done, .. } = src else {
            panic!()
        };
        assert_eq!(feed.join(), Some(Err("broken")));
        assert!(done.load(Ordering::Acquire));
    }
}
