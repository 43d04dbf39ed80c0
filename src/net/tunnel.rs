//! Peer datagrams carried over a byte stream, for when only SSH gets through: each
//! UDP datagram becomes a frame (two bytes of length, big-endian, then the bytes) on
//! the stream, and each frame a datagram again at the other end. What travels is
//! QUIC's own encrypted packets, so the two jhacks still verify each other end to
//! end: the tunnel sees nothing and can grant nothing.
//!
//! `jhack tunnel` runs on the laptop: it listens on a local UDP port (the address the
//! laptop's `peers.toml` gives for the server) and runs the SSH command whose remote
//! end is `jhack tunnel-end`, which relays to the server's own UDP port.
//!
//! Plain threads and blocking I/O; a malformed stream ends the tunnel with one line.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest datagram carried (QUIC's packets are far smaller).
pub const MAX_DATAGRAM: usize = 65_535;

/// Writes one datagram as a frame.
pub fn write_frame(w: &mut impl Write, datagram: &[u8]) -> io::Result<()> {
    let len = u16::try_from(datagram.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a datagram over 64 KiB"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(datagram)?;
    w.flush()
}

/// Reads one frame into `buf`; `Ok(None)` at the stream's end.
pub fn read_frame<'a>(r: &mut impl Read, buf: &'a mut [u8]) -> io::Result<Option<&'a [u8]>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = usize::from(u16::from_be_bytes(len));
    if n > buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a frame larger than the buffer",
        ));
    }
    r.read_exact(&mut buf[..n])?;
    Ok(Some(&buf[..n]))
}

/// Relays between `socket` and the stream (`input`, `output`) until the stream ends:
/// datagrams from the stream go to `to` (or, when `None`, to whoever last sent one
/// to `socket`); datagrams arriving on `socket` go to the stream. Returns why it
/// ended.
pub fn relay(
    socket: UdpSocket,
    to: Option<SocketAddr>,
    mut input: impl Read + Send + 'static,
    output: impl Write + Send + 'static,
) -> io::Result<()> {
    let socket = Arc::new(socket);
    let peer: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(to));
    let out = Arc::new(Mutex::new(output));
    {
        let (socket, peer, out) = (socket.clone(), peer.clone(), out.clone());
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        std::thread::Builder::new()
            .name("jhack-tunnel-up".into())
            .spawn(move || {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                loop {
                    match socket.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            if to.is_none() {
                                *crate::guard::lock(&peer) = Some(from);
                            } else if Some(from) != to {
                                continue; // only the server's own port is relayed
                            }
                            let mut w = crate::guard::lock(&out);
                            if write_frame(&mut *w, &buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => return,
                    }
                }
            })?;
    }
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Some(frame) = read_frame(&mut input, &mut buf)? else {
            return Ok(());
        };
        let dest = *crate::guard::lock(&peer);
        if let Some(dest) = dest {
            // A datagram that cannot be sent is lost, as on any network.
            let _ = socket.send_to(frame, dest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_cut_stream_ends_cleanly() {
        let mut stream = Vec::new();
        for d in [&b"hello"[..], &[], &[7u8; 1500]] {
            write_frame(&mut stream, d).expect("write");
        }
        let mut r = io::Cursor::new(stream.clone());
        let mut buf = vec![0u8; MAX_DATAGRAM];
        assert_eq!(read_frame(&mut r, &mut buf).unwrap(), Some(&b"hello"[..]));
        assert_eq!(read_frame(&mut r, &mut buf).unwrap(), Some(&[][..]));
        assert_eq!(
            read_frame(&mut r, &mut buf).unwrap().map(<[u8]>::len),
            Some(1500)
        );
        assert_eq!(read_frame(&mut r, &mut buf).unwrap(), None);
        // Cut in the middle of a frame: an error, not a short datagram.
        let mut cut = io::Cursor::new(stream[..4].to_vec());
        assert!(read_frame(&mut cut, &mut buf).is_err());
        assert!(write_frame(&mut Vec::new(), &vec![0u8; 70_000]).is_err());
    }

    #[test]
    fn datagrams_cross_a_stream_both_ways() {
        // server <-> end-relay <-stream-> near-relay <-> client, all on loopback.
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let end = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let near = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let near_addr = near.local_addr().expect("addr");
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (a_r, a_w) = os_pipe();
        let (b_r, b_w) = os_pipe();
        let server_addr = server.local_addr().expect("addr");
        std::thread::spawn(move || relay(end, Some(server_addr), a_r, b_w));
        std::thread::spawn(move || relay(near, None, b_r, a_w));
        client.send_to(b"ping", near_addr).expect("send");
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).expect("ping arrives");
        assert_eq!(&buf[..n], b"ping");
        server.send_to(b"pong", from).expect("send");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (n, _) = client.recv_from(&mut buf).expect("pong arrives");
        assert_eq!(&buf[..n], b"pong");
    }

    /// A unidirectional in-process byte stream.
    fn os_pipe() -> (impl Read + Send + 'static, impl Write + Send + 'static) {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        struct R(std::sync::mpsc::Receiver<Vec<u8>>, Vec<u8>);
        impl Read for R {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                while self.1.is_empty() {
                    match self.0.recv() {
                        Ok(v) => self.1 = v,
                        Err(_) => return Ok(0),
                    }
                }
                let n = buf.len().min(self.1.len());
                buf[..n].copy_from_slice(&self.1[..n]);
                self.1.drain(..n);
                Ok(n)
            }
        }
        struct W(std::sync::mpsc::Sender<Vec<u8>>);
        impl Write for W {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0
                    .send(buf.to_vec())
                    .map_err(|_| io::ErrorKind::BrokenPipe)?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        (R(rx, Vec::new()), W(tx))
    }
}
