//! QUIC transport settings shared by both sides of a peer connection: how soon a
//! silent peer counts as gone, how often an idle connection is kept alive, and the
//! flow-control windows that let one blob stream fill a fast link.
//!
//! Settings only; nothing here opens sockets.

use std::sync::Arc;
use std::time::Duration;

/// A connection with no packets for this long is closed (the peer is offline).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Keep-alive packets are sent this often on an otherwise idle connection.
pub const KEEP_ALIVE: Duration = Duration::from_secs(4);

/// Bytes one stream may have in flight: a 100 MB blob on a fast link is limited by
/// this over the round trip, not by the disk or the hashing.
const STREAM_WINDOW: u32 = 8 << 20;

/// Bytes of datagrams QUIC may queue: a few voice frames. When the path is
/// congested the oldest are dropped, so voice is never sent late (quinn's default
/// of 1 MiB would be over a minute of stale voice).
pub const DATAGRAM_QUEUE_BYTES: usize = 1600;

/// The transport configuration of every peer connection.
pub fn config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    // Both values are far below the protocol's limits, so the conversions never fail.
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        t.max_idle_timeout(Some(idle));
    }
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.stream_receive_window(quinn::VarInt::from_u32(STREAM_WINDOW));
    t.send_window(u64::from(STREAM_WINDOW) * 4);
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(64));
    t.datagram_send_buffer_size(DATAGRAM_QUEUE_BYTES);
    Arc::new(t)
}
