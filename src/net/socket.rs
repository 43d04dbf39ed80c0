//! The UDP socket under QUIC: quinn's own, with each segmentation-offload send cut to
//! what the kernel takes in one call.
//!
//! QUIC packets may be as large as the path carries ([`super::transport`]): on
//! loopback and jumbo-frame LANs far more than Ethernet's 1,500 bytes, which cuts a
//! bulk transfer's per-packet work (encryption calls, headers, acknowledgements,
//! system calls). quinn hands the socket up to ten packets in one offloaded send,
//! and Linux refuses a send of more than 64 KiB (`EMSGSIZE`, which quinn counts as
//! loss); so a send that would be larger goes as several, each of as many whole
//! packets as fit. On an Ethernet path nothing changes: ten packets fit in one send.
//!
//! Receiving: quinn sizes each of its receive slots for the largest packet times the
//! packets the kernel may coalesce into one receive. The kernel coalesces at most
//! 64 KiB, so with large packets two packets' room is already more than a receive
//! holds (and the buffer is 4 MiB rather than hundreds).
//!
//! Must never: reorder, alter or duplicate a packet; a send cut short by a full
//! socket buffer loses the rest, as the network would.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// The most bytes one send may carry (the kernel's limit for a UDP send, less the
/// headers it adds).
pub const MAX_SEND: usize = 65_000;

/// Packets' room per receive slot (see the module documentation).
const RECEIVE_SEGMENTS: usize = 2;

/// quinn's socket, with sends cut to [`MAX_SEND`].
pub(super) struct SplitSends {
    inner: Arc<dyn AsyncUdpSocket>,
}

impl SplitSends {
    pub(super) fn new(inner: Arc<dyn AsyncUdpSocket>) -> SplitSends {
        SplitSends { inner }
    }
}

impl fmt::Debug for SplitSends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitSends")
            .field("inner", &self.inner)
            .finish()
    }
}

/// The pieces `t` goes out as: each at most [`MAX_SEND`] bytes of whole packets
/// (a packet larger than that alone).
fn pieces<'a>(t: &'a Transmit<'a>) -> impl Iterator<Item = Transmit<'a>> + 'a {
    let seg = t.segment_size.unwrap_or(t.contents.len()).max(1);
    let per = (MAX_SEND / seg).max(1) * seg;
    t.contents.chunks(per).map(move |contents| Transmit {
        destination: t.destination,
        ecn: t.ecn,
        contents,
        segment_size: t.segment_size.filter(|s| contents.len() > *s),
        src_ip: t.src_ip,
    })
}

impl AsyncUdpSocket for SplitSends {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        if transmit.contents.len() <= MAX_SEND || transmit.segment_size.is_none() {
            return self.inner.try_send(transmit);
        }
        for (i, piece) in pieces(transmit).enumerate() {
            match self.inner.try_send(&piece) {
                Ok(()) => {}
                // Nothing sent yet: quinn waits for the socket and tries it all again.
                Err(e) if i == 0 => return Err(e),
                // Some packets are out: the rest are lost, as on a full link.
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments().min(RECEIVE_SEGMENTS)
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transmit(contents: &[u8], seg: Option<usize>) -> Transmit<'_> {
        Transmit {
            destination: "127.0.0.1:9".parse().expect("addr"),
            ecn: None,
            contents,
            segment_size: seg,
            src_ip: None,
        }
    }

    #[test]
    fn a_large_send_is_cut_at_packet_boundaries_within_the_limit() {
        let data: Vec<u8> = (0..10 * 20_000 + 7_000).map(|i| i as u8).collect();
        let t = transmit(&data, Some(20_000));
        let parts: Vec<Transmit> = pieces(&t).collect();
        let mut joined = Vec::new();
        for p in &parts {
            assert!(p.contents.len() <= MAX_SEND, "{}", p.contents.len());
            joined.extend_from_slice(p.contents);
        }
        assert_eq!(joined, data, "every byte once, in order");
        // Three packets per send; the last send two packets, the short one last.
        let sizes: Vec<(usize, Option<usize>)> = parts
            .iter()
            .map(|p| (p.contents.len(), p.segment_size))
            .collect();
        assert_eq!(
            sizes,
            [
                (60_000, Some(20_000)),
                (60_000, Some(20_000)),
                (60_000, Some(20_000)),
                (27_000, Some(20_000))
            ]
        );
        // A lone last packet is sent as one datagram.
        let t = transmit(&data[..67_000], Some(20_000));
        let last = pieces(&t).last().expect("pieces");
        assert_eq!((last.contents.len(), last.segment_size), (7_000, None));
    }

    #[test]
    fn packets_as_large_as_a_send_go_one_per_send() {
        let data = vec![1u8; 3 * 60_000];
        let t = transmit(&data, Some(60_000));
        let parts: Vec<Transmit> = pieces(&t).collect();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.segment_size.is_none()));
    }

    #[test]
    fn ethernet_sized_packets_stay_in_one_send() {
        let data = vec![1u8; 10 * 1_452];
        let t = transmit(&data, Some(1_452));
        let parts: Vec<Transmit> = pieces(&t).collect();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].segment_size, Some(1_452));
    }
}
