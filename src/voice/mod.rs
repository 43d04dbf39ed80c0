//! The intercom's logic: the Opus codec ([`codec`], the only importer of `opus` for
//! calls), the voice datagram ([`packet`]), the adaptive jitter buffer ([`jitter`],
//! with its delay statistics in [`lateness`]), when a talker transmits ([`gate`]) and
//! what a listener reports back ([`report`]).
//!
//! All of it is plain state machines: samples, bytes and `now` in, frames and actions
//! out. Nothing here does I/O, reads a clock, spawns a thread or touches the engine or
//! the network; `app` wires it between the engine's input tap, the node's datagrams
//! and a live voice in the mixer.

pub mod codec;
pub mod gate;
pub mod jitter;
pub mod lateness;
pub mod packet;
pub mod report;

#[cfg(test)]
mod jitter_tests;
#[cfg(test)]
mod sim;
