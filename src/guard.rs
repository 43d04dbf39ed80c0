//! Locking that outlives a panic: a mutex whose holder panicked still hands out its
//! data. Every shared state in jhack is updated in single steps (a map insert, a
//! value replaced), so a holder that panicked leaves nothing half-done that matters,
//! and one failed thread must not take the others down with it.
//!
//! Never used on the audio thread, which takes no locks at all.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the data of a panicked holder.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
