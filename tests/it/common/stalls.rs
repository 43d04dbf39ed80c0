//! A probe of the machine itself: one real-time thread per CPU that asks to wake every
//! millisecond and notes each time it woke late by more than [`STALL`]. A thread at
//! real-time priority on an otherwise quiet CPU wakes within tens of microseconds; a
//! late wake means the CPU itself was taken away (a virtual machine's vCPU preempted
//! by its host) or the kernel held it, and every audio thread on that CPU, jhack's and
//! the sound server's, stalled with it. Tests use it to tell a dropout jhack caused
//! from one the machine caused, by time (`CLOCK_MONOTONIC`, the clock jhack stamps
//! its starvations with).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A wake this late counts as a stall (a few percent of a 5.3 ms period would be
/// noise; this is over a third of it).
const STALL: f64 = 2.0;

/// One late wake: the CPU was not available from (about) `from_ms` to `to_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    /// The wake asked for, `CLOCK_MONOTONIC` ms.
    pub from_ms: f64,
    /// The wake that came, `CLOCK_MONOTONIC` ms.
    pub to_ms: f64,
}

impl Stall {
    /// How long the CPU was away, ms.
    pub fn ms(&self) -> f64 {
        self.to_ms - self.from_ms
    }
}

/// The running probe.
pub struct StallProbe {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Stall>>>,
    /// Whether its threads got real-time priority (as root or with `RLIMIT_RTPRIO`).
    pub realtime: bool,
}

fn now_ms() -> f64 {
    jhack::audio::monotonic_ns() as f64 / 1e6
}

fn sleep_until_ms(t: f64) {
    let ts = libc::timespec {
        tv_sec: (t / 1000.0) as libc::time_t,
        tv_nsec: ((t % 1000.0) * 1e6) as libc::c_long,
    };
    // SAFETY: a valid absolute time on CLOCK_MONOTONIC; no remaining-time pointer is
    // needed with TIMER_ABSTIME. An interrupted sleep only wakes early.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &raw const ts,
            std::ptr::null_mut(),
        );
    }
}

/// Pins the calling thread to `cpu` and asks for SCHED_FIFO at the priority PipeWire's
/// data threads use; returns whether the priority was granted.
fn pin_and_raise(cpu: usize) -> bool {
    // SAFETY: plain calls on the current thread (pid 0) with initialised arguments.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set);
        let param = libc::sched_param { sched_priority: 88 };
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &raw const param) == 0
    }
}

impl StallProbe {
    /// Starts one probe thread per CPU.
    pub fn start() -> StallProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (granted_tx, granted_rx) = std::sync::mpsc::channel();
        let threads = (0..cpus)
            .map(|cpu| {
                let stop = stop.clone();
                let granted_tx = granted_tx.clone();
                std::thread::spawn(move || {
                    let _ = granted_tx.send(pin_and_raise(cpu));
                    drop(granted_tx);
                    let mut stalls = Vec::new();
                    let mut next = now_ms().ceil() + 1.0;
                    while !stop.load(Ordering::Relaxed) {
                        sleep_until_ms(next);
                        let woke = now_ms();
                        if woke - next > STALL {
                            stalls.push(Stall {
                                from_ms: next,
                                to_ms: woke,
                            });
                        }
                        next = (next + 1.0).max(woke.floor() + 1.0);
                    }
                    stalls
                })
            })
            .collect();
        drop(granted_tx);
        let realtime = granted_rx.iter().take(cpus).all(|g| g);
        StallProbe {
            stop,
            threads,
            realtime,
        }
    }

    /// Stops the probe; returns every stall seen, in time order.
    pub fn stop(self) -> Vec<Stall> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<Stall> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_default())
            .collect();
        all.sort_by(|a, b| a.from_ms.total_cmp(&b.from_ms));
        all
    }
}

/// Whether a dropout that began at `t_ms` falls in or just after `stall`: the stalled
/// CPU held a callback from shortly before the missed wake (up to `before_ms`) until
/// it ran again, and the output noticed the missing input within `after_ms` of that.
pub fn explains(stall: &Stall, t_ms: f64, before_ms: f64, after_ms: f64) -> bool {
    t_ms >= stall.from_ms - before_ms && t_ms <= stall.to_ms + after_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropout_is_explained_only_near_a_stall() {
        let s = Stall {
            from_ms: 1000.0,
            to_ms: 1009.0,
        };
        assert!((s.ms() - 9.0).abs() < 1e-9);
        assert!(explains(&s, 1005.0, 2.0, 16.0));
        assert!(explains(&s, 1020.0, 2.0, 16.0));
        assert!(!explains(&s, 1030.0, 2.0, 16.0));
        assert!(!explains(&s, 990.0, 2.0, 16.0));
    }

    #[test]
    fn a_probe_that_sleeps_through_nothing_sees_no_long_stall() {
        let p = StallProbe::start();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let stalls = p.stop();
        // A shared machine may take a CPU away for a moment; it does not take it for
        // the whole 50 ms.
        assert!(stalls.iter().all(|s| s.ms() < 50.0), "{stalls:?}");
    }
}
