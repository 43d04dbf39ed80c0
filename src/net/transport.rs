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

/// The largest UDP payload this side accepts, and the ceiling its path-MTU discovery
/// probes towards (RFC 8899: a lost probe only ends the search, and the path keeps
/// its last good size). On an Ethernet path discovery settles near its 1,500-byte
/// MTU, as quinn's default ceiling would; on loopback (MTU 64 KiB) and jumbo-frame
/// LANs it finds larger packets, which cut a bulk transfer's per-packet cost
/// (encryption calls, headers, acknowledgements, system calls): a whole-library
/// fetch on loopback took 20,400 packets at 6,500 bytes and 2,300 at this size.
/// Offloaded sends of several such packets are cut to the kernel's 64 KiB by
/// [`super::socket`]. Within quinn's bound (65,527).
pub const MAX_UDP_PAYLOAD: u16 = super::socket::MAX_SEND as u16;

/// The longest a peer is asked to delay an acknowledgement (see [`config`]).
const ACK_DELAY: Duration = Duration::from_millis(1);

/// The socket buffers asked for, each way. The kernel's default receive buffer
/// (208 KiB) overflows when a peer sends a window's worth at once on a fast path:
/// those datagrams are dropped before QUIC sees them, and each loss halves the
/// congestion window. 4 MiB holds a stream window's burst; the kernel clamps it to
/// `net.core.rmem_max` / `wmem_max` (said once at debug level when it does).
const SOCKET_BUFFER: usize = 4 << 20;

/// Sizes a peer socket's buffers (see [`SOCKET_BUFFER`]); returns the receive
/// buffer granted. A privileged process (`CAP_NET_ADMIN`) may go past
/// `net.core.rmem_max` / `wmem_max` and does; any other gets what those allow.
fn size_buffers(socket: &std::net::UdpSocket) -> usize {
    use std::os::fd::AsRawFd;
    let s = socket2::SockRef::from(socket);
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    let want = libc::c_int::try_from(SOCKET_BUFFER).unwrap_or(libc::c_int::MAX);
    for option in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: the descriptor is the socket's, open for the call; the value is a
        // c_int that outlives it, and its size is passed. A refusal (EPERM) only
        // leaves the size set above.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&raw const want).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    // Linux reports twice what it grants (it counts its own overhead).
    let got = s.recv_buffer_size().unwrap_or(0) / 2;
    if got < SOCKET_BUFFER {
        tracing::debug!(
            "the UDP receive buffer is {got} bytes, not the {SOCKET_BUFFER} asked for (net.core.rmem_max)"
        );
    }
    got
}

/// Whether this process gets the full [`SOCKET_BUFFER`] on a peer socket (sized
/// the way the node sizes its own, on a throwaway socket).
pub fn full_socket_buffers() -> bool {
    std::net::UdpSocket::bind("127.0.0.1:0").is_ok_and(|s| size_buffers(&s) >= SOCKET_BUFFER)
}

/// The endpoint settings: the largest packet this side takes in.
fn endpoint_config() -> quinn::EndpointConfig {
    let mut e = quinn::EndpointConfig::default();
    // Within quinn's bounds (1,200–65,527), so it never fails.
    let _ = e.max_udp_payload_size(MAX_UDP_PAYLOAD);
    e
}

/// A QUIC endpoint on `addr` with these settings (socket buffers, largest packet),
/// accepting connections when `server` is given. Needs a tokio runtime.
pub fn endpoint(
    addr: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(addr)?;
    let _ = size_buffers(&socket);
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for the endpoint"))?;
    let socket = Arc::new(super::socket::SplitSends::new(
        runtime.wrap_udp_socket(socket)?,
    ));
    quinn::Endpoint::new_with_abstract_socket(endpoint_config(), server, socket, runtime)
}

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
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD);
    t.mtu_discovery_config(Some(mtu));
    // The peer acknowledges a lone packet within a millisecond (QUIC's
    // acknowledgement-frequency extension, both ends jhack), not QUIC's default
    // 25 ms: a receiver holding one unacknowledged packet waited that long before
    // saying so, and a sender whose congestion window was spent waited with it —
    // the first answer of a sync took 28 ms instead of 2 in half the runs on
    // loopback. A busy stream is still acknowledged every other packet; only a
    // last odd packet is acknowledged sooner.
    let mut acks = quinn::AckFrequencyConfig::default();
    acks.max_ack_delay(Some(ACK_DELAY));
    t.ack_frequency_config(Some(acks));
    Arc::new(t)
}
