//! One connection to one trusted peer: the version handshake on the control stream
//! and the feature lists, then its reader (dispatching what the peer sends), its
//! writer, its pinger (round trip time, and dropping a peer that is no longer
//! trusted), the acceptor of the streams the peer opens and the reader of its
//! datagrams — the last three routed by kind through the node's [`Router`].
//!
//! A malformed frame or known message closes this connection only, with one log line
//! naming the peer; a message, stream or datagram of a kind this build does not know
//! is skipped (logged once), never fatal. Nothing a peer sends can stop the node or
//! reach the application unchecked (permissions and rate limits are applied here).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::events::{InboundPlay, NetEvent};
use super::framed::{FrameReader, ReadFailure, write_frame};
use super::limit::TokenBucket;
use super::peer_id::PeerId;
use super::router::Router;
use super::shared::{Shared, lock};
use super::tls;
use crate::domain::SoundId;
use crate::proto::{
    self, Decoded, Hello, MAGIC, MIN_PROTOCOL_VERSION, Message, PROTOCOL_VERSION, PlayOutcome,
    Refusal, StreamKind,
};

/// Close codes of a connection.
pub(crate) mod code {
    /// Closed normally.
    pub const BYE: u32 = 0;
    /// The peer sent something malformed.
    pub const PROTOCOL: u32 = 1;
    /// Another connection to the same peer was kept.
    pub const DUPLICATE: u32 = 2;
    /// Incompatible protocol versions.
    pub const VERSION: u32 = 3;
    /// The peer is no longer trusted.
    pub const UNTRUSTED: u32 = 4;
}

/// The reason a leaving node closes its connections with (code [`code::BYE`]).
pub(crate) const LEAVING: &[u8] = b"bye";

/// How long a peer has to say hello after the handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the round trip is measured.
const PING_EVERY: Duration = Duration::from_secs(2);
/// Pings a peer may leave unanswered before it counts as gone (QUIC's own idle
/// timeout is longer: this notices a peer that died within seconds).
const PINGS_MISSED: u32 = 3;
/// How long a peer's trigger may wait for the application's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a peer has to send the kind header of a stream it opened.
const STREAM_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Datagrams one peer may send per second on average (a group call of 2.5 ms frames
/// is 400 a second per talker), and at once.
const DATAGRAMS_PER_SECOND: f64 = 1000.0;
const DATAGRAM_BURST: u32 = 250;
/// A refusal of a feature is told to the peer at most this often.
const DENY_EVERY: Duration = Duration::from_secs(5);
/// Stream reset code: a stream kind this side does not serve.
pub(crate) const UNKNOWN_STREAM: u32 = 2;

/// A live connection to a trusted peer.
pub(crate) struct Link {
    pub(crate) id: PeerId,
    pub(crate) name: String,
    pub(crate) conn: quinn::Connection,
    /// Who dialled: decides which of two simultaneous connections is kept.
    pub(crate) dialer: PeerId,
    /// The peer's process (its hello's session): a new one replaces an old link.
    pub(crate) remote_session: u64,
    tx: mpsc::UnboundedSender<Message>,
    rtt_us: AtomicU64,
    offered: Mutex<HashSet<SoundId>>,
    bucket: Mutex<TokenBucket>,
    ping: Mutex<Option<(u64, Instant)>>,
    /// When the peer last answered a ping (or the link came up).
    pong_at: Mutex<Instant>,
    transfers: AtomicU32,
    /// The protocol version both sides settled on.
    pub(crate) version: u16,
    /// The features the peer announced.
    features: Mutex<Vec<String>>,
    datagram_bucket: Mutex<TokenBucket>,
    /// Datagrams dropped: unknown kind, not allowed, or over the rate.
    datagrams_dropped: AtomicU64,
    /// When each refused feature was last told to the peer.
    denied: Mutex<Vec<(&'static str, Instant)>>,
    /// Unknown kinds already logged (each once).
    unknown_logged: Mutex<HashSet<(u8, u64)>>,
}

impl Link {
    /// Queues a message to the peer (dropped when the connection is gone).
    pub(crate) fn send(&self, m: Message) {
        let _ = self.tx.send(m);
    }

    /// Records that we offered `id` to this peer (it may then fetch it).
    pub(crate) fn offer(&self, id: SoundId) {
        lock(&self.offered).insert(id);
    }

    /// Whether we offered `id` to this peer.
    pub(crate) fn was_offered(&self, id: &SoundId) -> bool {
        lock(&self.offered).contains(id)
    }

    /// The last measured round trip.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        match self.rtt_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Blob transfers running on this link.
    pub(crate) fn transfers(&self) -> u32 {
        self.transfers.load(Ordering::Relaxed)
    }

    /// Counts a transfer while the guard lives.
    pub(crate) fn transfer(self: &Arc<Self>) -> TransferGuard {
        self.transfers.fetch_add(1, Ordering::Relaxed);
        TransferGuard(self.clone())
    }

    /// Whether the peer announced `feature`.
    pub(crate) fn speaks(&self, feature: &str) -> bool {
        lock(&self.features).iter().any(|f| f == feature)
    }

    /// Datagrams from this peer dropped so far.
    pub(crate) fn datagrams_dropped(&self) -> u64 {
        self.datagrams_dropped.load(Ordering::Relaxed)
    }

    /// Logs an unknown kind the first time it is seen on this link.
    fn unknown_once(&self, space: u8, kind: u64, what: &str) {
        if self.first_time((space, kind)) {
            tracing::info!(
                "{} sent a {what} of kind {kind} that this jhack does not know: skipped",
                self.name
            );
        }
    }

    /// Whether `key` is seen for the first time on this link. Bounded: a peer cycling
    /// through kinds cannot grow the set past 64 (it is then silent).
    fn first_time(&self, key: (u8, u64)) -> bool {
        let mut logged = lock(&self.unknown_logged);
        logged.len() < 64 && logged.insert(key)
    }

    /// Tells the peer (at most every few seconds per feature) that it may not use
    /// `feature` here, and logs it once per telling.
    fn deny(&self, feature: &'static str, permission: &str, my_name: &str) {
        let now = Instant::now();
        {
            let mut denied = lock(&self.denied);
            match denied.iter_mut().find(|(f, _)| *f == feature) {
                Some((_, at)) if now.duration_since(*at) < DENY_EVERY => return,
                Some((_, at)) => *at = now,
                None => denied.push((feature, now)),
            }
        }
        let message = format!(
            "{} may not use {feature} on {my_name} (no {permission} permission)",
            self.name
        );
        tracing::warn!("refused: {message}");
        self.send(Message::Denied {
            feature: feature.to_owned(),
            message,
        });
    }
}

/// Counts one running transfer of a link.
pub(crate) struct TransferGuard(Arc<Link>);

impl Drop for TransferGuard {
    fn drop(&mut self) {
        self.0.transfers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves "host:port".
async fn resolve(addr: &str) -> Result<SocketAddr, String> {
    let mut found = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?;
    found
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))
}

/// Dials `id` at `addr` and sets the connection up.
pub(crate) async fn dial(shared: Arc<Shared>, id: PeerId, addr: &str) -> Result<Arc<Link>, String> {
    let sock = resolve(addr).await?;
    let (cfg, refusal) = tls::client_config_reporting(&shared.me, id).map_err(|e| e.to_string())?;
    let connecting = shared
        .endpoint
        .connect_with(cfg, sock, tls::SERVER_NAME)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let conn = match connecting.await {
        Ok(c) => c,
        Err(e) => {
            let refusal = lock(&refusal).take();
            let why = describe_dial_error(&e, &shared.me.id, addr, refusal);
            if matches!(e, quinn::ConnectionError::TransportError(_)) {
                // Our side refused the peer's certificate: an impostor at that address.
                shared.emit(NetEvent::Refused {
                    id: Some(id),
                    addr: Some(sock),
                    reason: why.clone(),
                });
                tracing::warn!("{why}");
            }
            return Err(why);
        }
    };
    // TLS 1.3 lets the server check our certificate after our side of the handshake
    // is done: its refusal arrives as the connection closing under the first stream.
    let me = shared.me.id;
    let refused_us = |e: String| match conn.close_reason() {
        Some(c) if peer_refused_us(&c) => describe_dial_error(&c, &me, addr, None),
        _ => e,
    };
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| refused_us(format!("{addr}: {e}")))?;
    establish(shared, conn.clone(), send, recv, true)
        .await
        .map_err(refused_us)
}

/// Whether the peer closed the connection in the handshake: it refused our key.
fn peer_refused_us(e: &quinn::ConnectionError) -> bool {
    // TLS alerts travel as QUIC's CRYPTO_ERROR codes, 0x100 + the alert (RFC 9001 4.8).
    matches!(e, quinn::ConnectionError::ConnectionClosed(c)
        if (0x100..0x200).contains(&u64::from(c.error_code)))
}

/// Words for a failed dial; `refusal` is why our side refused the peer's
/// certificate, when it did.
fn describe_dial_error(
    e: &quinn::ConnectionError,
    me: &PeerId,
    addr: &str,
    refusal: Option<String>,
) -> String {
    use quinn::ConnectionError as C;
    match e {
        C::TransportError(t) => format!(
            "refused {addr}: {}",
            refusal.unwrap_or_else(|| t.reason.clone())
        ),
        C::ConnectionClosed(_) if peer_refused_us(e) => format!(
            "{addr} refused this jhack ({me}); on that machine: jhack peer add {me} <this address>"
        ),
        C::TimedOut => format!("no answer from {addr}"),
        other => format!("{addr}: {other}"),
    }
}

/// Sets up a connection a peer dialled.
pub(crate) async fn accepted(shared: Arc<Shared>, conn: quinn::Connection) {
    let addr = conn.remote_address();
    let streams = tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi()).await;
    let (send, recv) = match streams {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!("a connection from {addr} ended before its hello: {e}");
            return;
        }
        Err(_) => {
            conn.close(quinn::VarInt::from_u32(code::PROTOCOL), b"no hello");
            tracing::info!("a connection from {addr} sent no hello; closed");
            return;
        }
    };
    if let Err(e) = establish(shared, conn, send, recv, false).await {
        tracing::warn!("a connection from {addr} was closed: {e}");
    }
}

/// The version handshake, then the link's tasks.
async fn establish(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    dialer: bool,
) -> Result<Arc<Link>, String> {
    let addr = conn.remote_address();
    let close = |code: u32, why: &str| conn.close(quinn::VarInt::from_u32(code), why.as_bytes());
    let Some(id) = tls::remote_id(&conn) else {
        close(code::UNTRUSTED, "no certificate");
        return Err("no certificate".into());
    };
    let Some(trusted) = shared.trusted(&id) else {
        close(code::UNTRUSTED, "not trusted");
        return Err(format!("{id} is not trusted"));
    };
    let mine = proto::encode(&Hello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        min_version: MIN_PROTOCOL_VERSION,
        software: format!("jhack {}", env!("CARGO_PKG_VERSION")),
        name: shared.name.clone(),
        session: shared.session,
    })
    .map_err(|e| e.to_string())?;
    let mut reader = FrameReader::new(recv);
    if dialer {
        write_frame(&mut send, &mine).await?;
    }
    let frame = match tokio::time::timeout(HELLO_TIMEOUT, reader.next()).await {
        Ok(Ok(Some(f))) => f,
        Ok(Ok(None)) => return Err(format!("{} closed before its hello", trusted.name)),
        Ok(Err(ReadFailure::Malformed(e))) => {
            close(code::PROTOCOL, "bad hello");
            return Err(format!("{}: {e}", trusted.name));
        }
        Ok(Err(ReadFailure::Stream(e))) => return Err(format!("{}: {e}", trusted.name)),
        Err(_) => {
            close(code::PROTOCOL, "no hello");
            return Err(format!("{} sent no hello", trusted.name));
        }
    };
    let theirs = match proto::decode_hello(&frame) {
        Ok(h) => h,
        Err(e) => {
            close(code::PROTOCOL, "bad hello");
            return Err(format!("{}: {e}", trusted.name));
        }
    };
    if !dialer {
        write_frame(&mut send, &mine).await?;
    }
    let version = match proto::negotiate(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, &theirs) {
        Ok(v) => v,
        Err(e) => {
            return Err(
                refuse_version(&shared, &conn, &mut send, &trusted.name, id, &theirs, e).await,
            );
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    // The first message on the stream: the features we speak.
    let _ = tx.send(Message::Features {
        names: shared.router.names(),
    });
    let link = Arc::new(Link {
        id,
        name: trusted.name.clone(),
        conn: conn.clone(),
        dialer: if dialer { shared.me.id } else { id },
        remote_session: theirs.session,
        tx,
        rtt_us: AtomicU64::new(0),
        offered: Mutex::new(HashSet::new()),
        bucket: Mutex::new(TokenBucket::new(
            shared.triggers_per_second,
            shared.trigger_burst,
        )),
        ping: Mutex::new(None),
        pong_at: Mutex::new(Instant::now()),
        transfers: AtomicU32::new(0),
        version,
        features: Mutex::new(Vec::new()),
        datagram_bucket: Mutex::new(TokenBucket::new(DATAGRAMS_PER_SECOND, DATAGRAM_BURST)),
        datagrams_dropped: AtomicU64::new(0),
        denied: Mutex::new(Vec::new()),
        unknown_logged: Mutex::new(HashSet::new()),
    });
    register(&shared, &link)?;
    tracing::info!(
        "connected to {} ({}) at {addr}, protocol {version}",
        link.name,
        id.short()
    );
    shared.emit(NetEvent::PeerUp {
        id,
        name: link.name.clone(),
        addr,
    });
    tokio::spawn(writer(send, rx));
    tokio::spawn(pinger(shared.clone(), link.clone()));
    tokio::spawn(streams(shared.clone(), link.clone()));
    tokio::spawn(datagrams(shared.clone(), link.clone()));
    tokio::spawn(read_loop(shared, link.clone(), reader));
    Ok(link)
}

/// Tells a peer with no protocol version in common why, and closes; returns the
/// reason for the caller's error.
async fn refuse_version(
    shared: &Shared,
    conn: &quinn::Connection,
    send: &mut quinn::SendStream,
    name: &str,
    id: PeerId,
    theirs: &Hello,
    e: proto::ProtoError,
) -> String {
    let addr = conn.remote_address();
    {
        let text = e.to_string();
        if let Ok(bytes) = proto::encode(&Message::Refuse {
            reason: Refusal::Version,
            message: text.clone(),
        }) {
            let _ = write_frame(send, &bytes).await;
            let _ = send.finish();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        conn.close(
            quinn::VarInt::from_u32(code::VERSION),
            b"incompatible version",
        );
        let reason = format!("{name} ({}): {text}", theirs.software);
        shared.emit(NetEvent::Refused {
            id: Some(id),
            addr: Some(addr),
            reason: reason.clone(),
        });
        reason
    }
}

/// Keeps one connection per peer. Two connections from the same peer process (both
/// sides dialled at once) keep the one dialled by the smaller id — both sides decide
/// alike; a connection from a new process of the peer replaces the old one.
fn register(shared: &Shared, link: &Arc<Link>) -> Result<(), String> {
    let mut links = lock(&shared.links);
    if let Some(old) = links.get(&link.id)
        && old.conn.close_reason().is_none()
    {
        if old.remote_session == link.remote_session && old.dialer != link.dialer {
            if old.dialer < link.dialer {
                link.conn
                    .close(quinn::VarInt::from_u32(code::DUPLICATE), b"duplicate");
                return Err(format!("{}: already connected", link.name));
            }
            old.conn
                .close(quinn::VarInt::from_u32(code::DUPLICATE), b"duplicate");
        } else {
            old.conn.close(
                quinn::VarInt::from_u32(code::DUPLICATE),
                b"replaced by a newer connection",
            );
        }
    }
    links.insert(link.id, link.clone());
    Ok(())
}

/// Forgets `link` unless it was replaced; true when it was the registered one.
fn unregister(shared: &Shared, link: &Arc<Link>) -> bool {
    let mut links = lock(&shared.links);
    match links.get(&link.id) {
        Some(l) if Arc::ptr_eq(l, link) => {
            links.remove(&link.id);
            true
        }
        _ => false,
    }
}

async fn writer(mut send: quinn::SendStream, mut rx: mpsc::UnboundedReceiver<Message>) {
    while let Some(m) = rx.recv().await {
        let bye = matches!(m, Message::Bye);
        let Ok(bytes) = proto::encode(&m) else {
            continue;
        };
        if write_frame(&mut send, &bytes).await.is_err() {
            return;
        }
        if bye {
            let _ = send.finish();
            return;
        }
    }
}

async fn pinger(shared: Arc<Shared>, link: Arc<Link>) {
    let mut nonce: u64 = 0;
    loop {
        if link.conn.close_reason().is_some() {
            return;
        }
        if shared.trusted(&link.id).is_none() {
            tracing::info!("{} is no longer trusted: disconnected", link.name);
            link.conn.close(
                quinn::VarInt::from_u32(code::UNTRUSTED),
                b"no longer trusted",
            );
            return;
        }
        if lock(&link.pong_at).elapsed() > PING_EVERY * PINGS_MISSED {
            tracing::info!("{} answers no pings: disconnected", link.name);
            link.conn
                .close(quinn::VarInt::from_u32(code::BYE), b"no answer to pings");
            return;
        }
        nonce = nonce.wrapping_add(1);
        *lock(&link.ping) = Some((nonce, Instant::now()));
        link.send(Message::Ping { nonce });
        tokio::time::sleep(PING_EVERY).await;
    }
}

/// Accepts the streams the peer opens: each starts with its kind, routed to the
/// handler registered for it; an unknown kind resets that stream only.
async fn streams(shared: Arc<Shared>, link: Arc<Link>) {
    while let Ok((mut send, mut recv)) = link.conn.accept_bi().await {
        let shared = shared.clone();
        let link = link.clone();
        tokio::spawn(async move {
            let mut header = [0u8; 2];
            match tokio::time::timeout(STREAM_HEADER_TIMEOUT, recv.read_exact(&mut header)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return tracing::debug!("a stream from {} ended: {e}", link.name),
                Err(_) => {
                    let _ = send.reset(quinn::VarInt::from_u32(UNKNOWN_STREAM));
                    return;
                }
            }
            let kind = StreamKind::from_bytes(header);
            let Some(route) = shared.router.stream(kind) else {
                link.unknown_once(0, kind.0.into(), "stream");
                let _ = recv.stop(quinn::VarInt::from_u32(UNKNOWN_STREAM));
                let _ = send.reset(quinn::VarInt::from_u32(UNKNOWN_STREAM));
                return;
            };
            if let Some(p) = route.permission
                && !shared
                    .trusted(&link.id)
                    .is_some_and(|t| p.granted(&t.allow))
            {
                link.deny(route.feature, p.name(), &shared.name);
                let _ = recv.stop(quinn::VarInt::from_u32(UNKNOWN_STREAM));
                let _ = send.reset(quinn::VarInt::from_u32(UNKNOWN_STREAM));
                return;
            }
            (route.handler)(shared.clone(), link, send, recv).await;
        });
    }
}

/// Reads the peer's datagrams: each starts with its kind; it goes straight to the
/// feature's handler (never through the application's event queue) when the peer
/// may use the feature and is within its rate; anything else is dropped and
/// counted.
async fn datagrams(shared: Arc<Shared>, link: Arc<Link>) {
    while let Ok(d) = link.conn.read_datagram().await {
        let at = Instant::now();
        route_datagram(&shared.router, &shared, &link, d, at);
    }
}

fn route_datagram(router: &Router, shared: &Shared, link: &Link, mut d: bytes::Bytes, at: Instant) {
    let drop = || {
        link.datagrams_dropped.fetch_add(1, Ordering::Relaxed);
    };
    if d.is_empty() {
        return drop();
    }
    let kind = d[0];
    let Some(route) = router.datagram(kind) else {
        link.unknown_once(1, kind.into(), "datagram");
        return drop();
    };
    if !lock(&link.datagram_bucket).take(at) {
        if link.first_time((3, 0)) {
            tracing::warn!(
                "{} sends more than {DATAGRAMS_PER_SECOND} datagrams a second: the excess is dropped",
                link.name
            );
        }
        return drop();
    }
    if let Some(p) = route.permission
        && !shared
            .trusted(&link.id)
            .is_some_and(|t| p.granted(&t.allow))
    {
        link.deny(route.feature, p.name(), &shared.name);
        return drop();
    }
    let payload = d.split_off(1);
    (route.handler)(&link.id, payload, at);
}

/// A feature message from the peer, to the feature that registered its kind.
fn route_message(shared: &Shared, link: &Link, kind: u16, body: &[u8]) {
    let Some(route) = shared.router.message(kind) else {
        link.unknown_once(2, kind.into(), "feature message");
        return;
    };
    if let Some(p) = route.permission
        && !shared
            .trusted(&link.id)
            .is_some_and(|t| p.granted(&t.allow))
    {
        return link.deny(route.feature, p.name(), &shared.name);
    }
    (route.handler)(&link.id, body);
}

async fn read_loop(shared: Arc<Shared>, link: Arc<Link>, mut reader: FrameReader) {
    let reason = loop {
        let frame = tokio::select! {
            f = reader.next() => f,
            e = link.conn.closed() => break closed_reason(&e),
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break "it closed the connection".to_string(),
            // A stream fails with the connection ("connection lost"): say why it ended.
            Err(ReadFailure::Stream(e)) => {
                break link.conn.close_reason().map_or(e, |c| closed_reason(&c));
            }
            Err(ReadFailure::Malformed(e)) => break malformed(&link, &e),
        };
        let message = match proto::decode_message_lenient(&frame) {
            Ok(Decoded::Known(m)) => m,
            Ok(Decoded::Unknown(kind)) => {
                link.unknown_once(4, kind, "message");
                continue;
            }
            Err(e) => break malformed(&link, &e.to_string()),
        };
        match message {
            Message::Ping { nonce } => link.send(Message::Pong { nonce }),
            Message::Pong { nonce } => {
                if let Some((n, at)) = *lock(&link.ping)
                    && n == nonce
                {
                    let us = at.elapsed().as_micros().clamp(1, u128::from(u64::MAX)) as u64;
                    link.rtt_us.store(us, Ordering::Relaxed);
                    *lock(&link.pong_at) = Instant::now();
                }
            }
            Message::Play(request) => on_play(&shared, &link, request),
            Message::PlayReply { trigger, outcome } => shared.emit(NetEvent::TriggerResult {
                trigger,
                peer: link.id,
                outcome,
            }),
            Message::Refuse { message, .. } => break format!("it refused: {message}"),
            Message::Bye => break "it said goodbye".to_string(),
            Message::Features { names } => {
                tracing::debug!("{} speaks {}", link.name, names.join(", "));
                *lock(&link.features) = names;
                shared.emit(NetEvent::Features { id: link.id });
            }
            Message::Feature { kind, body } => route_message(&shared, &link, kind, &body),
            Message::Fetched { id, error } => shared.emit(NetEvent::PeerFetched {
                id: link.id,
                sound: id,
                error,
            }),
            Message::Denied { feature, message } => {
                // Said by whoever asked (a notice on the screen, the one error line of
                // a command), not here as well.
                tracing::debug!("{} refused {feature}: {message}", link.name);
                shared.emit(NetEvent::Denied {
                    id: link.id,
                    name: link.name.clone(),
                    feature,
                    message,
                });
            }
        }
    };
    if link.conn.close_reason().is_none() {
        link.conn.close(quinn::VarInt::from_u32(code::BYE), b"done");
    }
    if unregister(&shared, &link) {
        tracing::info!("{} disconnected: {reason}", link.name);
        shared.emit(NetEvent::PeerDown {
            id: link.id,
            name: link.name.clone(),
            reason,
        });
    }
}

fn closed_reason(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => {
            let text = String::from_utf8_lossy(&c.reason).into_owned();
            // A node that leaves closes with this after its goodbye, which the close
            // may overtake (the peer need not read a stream's last bytes once the
            // connection is closed): it is the same goodbye.
            if c.error_code == quinn::VarInt::from_u32(code::BYE) && &c.reason[..] == LEAVING {
                "it said goodbye".into()
            } else if text.is_empty() {
                "closed".into()
            } else {
                text
            }
        }
        quinn::ConnectionError::TimedOut => "no answer (timed out)".into(),
        other => other.to_string(),
    }
}

fn malformed(link: &Link, e: &str) -> String {
    tracing::warn!(
        "closing the connection to {} ({}): malformed input: {e}",
        link.name,
        link.id.short()
    );
    link.conn.close(
        quinn::VarInt::from_u32(code::PROTOCOL),
        b"malformed message",
    );
    format!("malformed input: {e}")
}

/// A peer asks us to play: permission, rate limit, then the application decides.
fn on_play(shared: &Arc<Shared>, link: &Arc<Link>, request: proto::PlayRequest) {
    let trigger = request.trigger;
    let refuse = |reason: Refusal, message: String| {
        shared.emit(NetEvent::PlayRefused {
            name: link.name.clone(),
            sound: request.sound.name.clone(),
            reason: message.clone(),
        });
        link.send(Message::PlayReply {
            trigger,
            outcome: PlayOutcome::Refused { reason, message },
        });
    };
    let allowed = shared.trusted(&link.id).is_some_and(|t| t.allow.play);
    if !allowed {
        return refuse(
            Refusal::NotAllowed,
            format!(
                "{} may not play sounds on {} (no play permission)",
                link.name, shared.name
            ),
        );
    }
    if !lock(&link.bucket).take(Instant::now()) {
        return refuse(
            Refusal::RateLimited,
            format!(
                "too many triggers: at most {} a second",
                shared.triggers_per_second
            ),
        );
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    shared.emit(NetEvent::Play(InboundPlay {
        from: link.id,
        from_name: link.name.clone(),
        request,
        received: Instant::now(),
        reply: tx,
    }));
    let link = link.clone();
    tokio::spawn(async move {
        let outcome = match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(o)) => o,
            Ok(Err(_)) => PlayOutcome::Failed {
                message: "the sound could not be played".into(),
            },
            Err(_) => PlayOutcome::Failed {
                message: "no answer in time".into(),
            },
        };
        link.send(Message::PlayReply { trigger, outcome });
    });
}
