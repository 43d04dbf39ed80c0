//! Library sync's logic, as plain state machines with no I/O: hybrid logical clocks
//! ([`hlc`]), a sound's replicated record and its per-field merge ([`record`]),
//! unique names and keys after every merge ([`names`]), and a replica with its change
//! log, peer cursors and fingerprint exchanging with peers ([`replica`]), a part of it
//! offered to another person and their read-only view of it ([`share`]), and its
//! messages decoded within bounds ([`wire`]). Tested with
//! simulated networks of several replicas: random concurrent edits, partitions,
//! loss, duplication, reordering and clock skew.
//!
//! Must never: do I/O, read a clock, spawn threads, or panic on anything a peer sends.
//! Moving the messages is the network's job; storing the records the library's.

pub mod hlc;
pub mod names;
pub mod reconcile;
pub mod record;
pub mod replica;
pub mod share;
pub mod wire;

#[cfg(test)]
mod sim_tests;
