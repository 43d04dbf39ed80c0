//! The data callback on PipeWire's real-time data thread (`PW_STREAM_FLAG_RT_PROCESS`).
//!
//! Without that flag a stream's `process` event is forwarded to the worker's main loop,
//! which costs a playback stream a whole extra quantum (its buffer is filled one cycle
//! ahead) and lets a capture and a playback stream of one process run in either order.
//! With it, `process` runs inside the graph cycle on the data thread, while the stream's
//! other events (format, state, io) still arrive on the main loop. The listener built
//! by `add_local_listener_with_user_data` hands one `&mut` user data to every event, so
//! it cannot be used from two threads: `process` gets a hook and state of its own here,
//! and shares only atomics with the main-loop events.

use std::{ffi::c_void, mem, ptr::NonNull};

use pipewire::{self as pw, stream::Stream, stream::StreamRc};

/// What `process` owns: the stream it belongs to and the closure.
struct State<F> {
    stream: NonNull<pw::sys::pw_stream>,
    process: F,
}

/// A registered `process` hook; removed from the stream when dropped, before the
/// stream itself can go (it holds a reference to it).
pub(super) struct ProcessHook<F> {
    hook: Box<pw::spa::sys::spa_hook>,
    _events: Box<pw::sys::pw_stream_events>,
    _state: Box<State<F>>,
    _stream: StreamRc,
}

unsafe extern "C" fn on_process<F: FnMut(&Stream)>(data: *mut c_void) {
    // SAFETY: `data` is the `State<F>` registered with this hook, alive until the hook
    // is removed; only the data thread calls `process`, one call at a time.
    let state = unsafe { &mut *(data as *mut State<F>) };
    // SAFETY: `Stream` is a transparent wrapper around `pw_stream`, which outlives the
    // hook (`ProcessHook` holds a reference to it).
    let stream = unsafe { &*(state.stream.as_ptr() as *const Stream) };
    (state.process)(stream);
}

impl<F: FnMut(&Stream) + Send + 'static> ProcessHook<F> {
    /// Registers `process` as the stream's `process` event. The stream must be connected
    /// with `RT_PROCESS` for it to run on the data thread.
    pub(super) fn register(stream: &StreamRc, process: F) -> Self {
        // SAFETY: all-zero is a valid `pw_stream_events` (every callback `None`) and a
        // valid unlinked `spa_hook`.
        let mut events: Box<pw::sys::pw_stream_events> = Box::new(unsafe { mem::zeroed() });
        events.version = pw::sys::PW_VERSION_STREAM_EVENTS;
        events.process = Some(on_process::<F>);
        let mut hook: Box<pw::spa::sys::spa_hook> = Box::new(unsafe { mem::zeroed() });
        let raw = NonNull::new(stream.as_raw_ptr()).expect("a live stream");
        let mut state = Box::new(State {
            stream: raw,
            process,
        });
        // SAFETY: the hook, the events and the state are boxed (they do not move) and
        // outlive the registration, which `Drop` removes.
        unsafe {
            pw::sys::pw_stream_add_listener(
                raw.as_ptr(),
                &mut *hook,
                &*events,
                &mut *state as *mut State<F> as *mut c_void,
            );
        }
        Self {
            hook,
            _events: events,
            _state: state,
            _stream: stream.clone(),
        }
    }
}

impl<F> Drop for ProcessHook<F> {
    fn drop(&mut self) {
        // The stream is disconnected (or was never activated) before its worker drops
        // this, so the data thread is no longer in `process`.
        pw::spa::utils::hook::remove(*self.hook);
    }
}
