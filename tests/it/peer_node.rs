//! The network layer on loopback: nodes in one process (each with its own identity
//! and trust store) for the rate limit, the version handshake, one connection per
//! pair, how long a trigger takes to reach the receiving application and how fast a
//! 100 MB blob is fetched (verified, written) beside a plain QUIC bulk copy with the
//! same TLS in the same run; and the real binary for fetch-on-demand's first audio.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jhack::domain::SoundId;
use jhack::net::{Identity, NetEvent, Node, NodeConfig, Permissions, TrustStore, TrustedPeer};
use jhack::proto::{PlayOutcome, SoundOffer};

struct Side {
    node: Node,
    events: mpsc::Receiver<NetEvent>,
    _dir: tempfile::TempDir,
}

fn identity(dir: &Path) -> Identity {
    Identity::load_or_create(&dir.join("identity")).expect("identity")
}

/// How a pair is set up.
#[derive(Clone, Copy)]
struct Setup {
    rate: f64,
    burst: u32,
    /// Both listen, know each other's address and keep connections (both dial).
    both_dial: bool,
}

const FAST: Setup = Setup {
    rate: 1000.0,
    burst: 1000,
    both_dial: false,
};

/// Two nodes that trust each other; `a` listens, `b` dials. `blobs` is what `a` serves.
fn pair(blobs: Vec<(SoundId, PathBuf)>) -> (Side, Side, jhack::net::PeerId) {
    pair_with(blobs, FAST)
}

fn pair_with(blobs: Vec<(SoundId, PathBuf)>, setup: Setup) -> (Side, Side, jhack::net::PeerId) {
    pair_with_features(blobs, setup, Vec::new())
}

/// [`pair_with`], with `b_features` plugged into `b`'s node.
fn pair_with_features(
    blobs: Vec<(SoundId, PathBuf)>,
    setup: Setup,
    b_features: Vec<jhack::net::Feature>,
) -> (Side, Side, jhack::net::PeerId) {
    let mut b_features = Some(b_features);
    let da = tempfile::tempdir().expect("tempdir");
    let db = tempfile::tempdir().expect("tempdir");
    let (ia, ib) = (identity(da.path()), identity(db.path()));
    let (id_a, id_b) = (ia.id, ib.id);
    let port = free_port();
    let port_b = free_port();
    let all = Permissions::parse("all").expect("all");
    let b_addr = setup.both_dial.then(|| format!("127.0.0.1:{port_b}"));
    for (dir, peer, name, addr) in [
        (da.path(), id_b, "bee", b_addr),
        (db.path(), id_a, "ay", Some(format!("127.0.0.1:{port}"))),
    ] {
        let mut t = TrustStore::load(&dir.join("peers.toml")).expect("trust");
        t.add(TrustedPeer {
            name: name.into(),
            id: peer,
            address: addr,
            allow: all,
            sync: None,
            shares: Vec::new(),
            speakers: false,
        })
        .expect("add");
        t.save().expect("save");
    }
    let mut start = |dir: &Path, me: Identity, listen: Option<std::net::SocketAddr>, blobs| {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        // The first node started is a (no features), the second b.
        let features = if listen.is_some() {
            Vec::new()
        } else {
            b_features.take().unwrap_or_default()
        };
        let node = Node::start_with(
            me,
            NodeConfig {
                listen,
                name: "test".into(),
                trust_file: dir.join("peers.toml"),
                partial_dir: dir.join("partial"),
                dial: setup.both_dial,
                triggers_per_second: setup.rate,
                trigger_burst: setup.burst,
            },
            blobs,
            Arc::new(move |e| {
                let _ = tx.lock().unwrap().send(e);
            }),
            features,
        )
        .expect("node");
        (node, rx)
    };
    let table = Arc::new(blobs);
    let lookup: jhack::net::BlobLookup =
        Arc::new(move |id: &SoundId| table.iter().find(|(i, _)| i == id).map(|(_, p)| p.clone()));
    let (na, ra) = start(
        da.path(),
        ia,
        Some(format!("127.0.0.1:{port}").parse().expect("addr")),
        lookup,
    );
    let (nb, rb) = start(db.path(), ib, None, Arc::new(|_: &SoundId| None));
    let a_entry = nb.find("ay").expect("ay");
    nb.connect(&a_entry, Duration::from_secs(5))
        .expect("connect");
    (
        Side {
            node: na,
            events: ra,
            _dir: da,
        },
        Side {
            node: nb,
            events: rb,
            _dir: db,
        },
        id_a,
    )
}

/// 100 MB of seeded noise written to `path`; its id and bytes.
fn random_blob(path: &Path, seed: u64) -> (SoundId, Vec<u8>) {
    let mut bytes = vec![0u8; 100_000_000];
    let mut x = seed;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    std::fs::write(path, &bytes).expect("write");
    (SoundId(*blake3::hash(&bytes).as_bytes()), bytes)
}

fn offer(id: SoundId, size: u64) -> SoundOffer {
    SoundOffer {
        id,
        size,
        name: "figure".into(),
        format: "wav/pcm_s16le".into(),
        frames: 48_000,
        sample_rate: 48_000,
        channels: 2,
        loudness_lufs: None,
    }
}

/// Waits for the first event `f` accepts.
fn wait_event<T>(
    rx: &mpsc::Receiver<NetEvent>,
    timeout: Duration,
    mut f: impl FnMut(NetEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = rx.recv_timeout(left).expect("the awaited event");
        if let Some(t) = f(e) {
            return t;
        }
    }
}

/// Waits for the next play request and answers it "started".
fn answer_next_play(rx: &mpsc::Receiver<NetEvent>) {
    wait_event(rx, Duration::from_secs(5), |e| match e {
        NetEvent::Play(p) => {
            p.answer(PlayOutcome::Started {
                cached: true,
                latency_us: 0,
            });
            Some(())
        }
        _ => None,
    });
}

#[test]
fn triggers_beyond_the_rate_limit_are_refused_and_the_sender_is_told() {
    let (a, b, id_a) = pair_with(
        Vec::new(),
        Setup {
            rate: 1.0,
            burst: 3,
            both_dial: false,
        },
    );
    for _ in 0..5 {
        b.node
            .trigger(&id_a, offer(SoundId([9; 32]), 1000), 0.0)
            .expect("trigger");
    }
    let mut played = 0;
    while let Ok(e) = a.events.recv_timeout(Duration::from_millis(500)) {
        if let NetEvent::Play(p) = e {
            played += 1;
            p.answer(PlayOutcome::Started {
                cached: true,
                latency_us: 0,
            });
        }
    }
    let mut limited = 0;
    let mut started = 0;
    while let Ok(e) = b.events.recv_timeout(Duration::from_millis(300)) {
        if let NetEvent::TriggerResult { outcome, .. } = e {
            match outcome {
                PlayOutcome::Refused {
                    reason: jhack::proto::Refusal::RateLimited,
                    message,
                } => {
                    assert!(message.contains("too many"), "{message}");
                    limited += 1;
                }
                PlayOutcome::Started { .. } => started += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!((played, started, limited), (3, 3, 2));
}

#[test]
fn two_peers_dialling_each_other_keep_one_connection() {
    let (a, b, id_a) = pair_with(
        Vec::new(),
        Setup {
            rate: 100.0,
            burst: 100,
            both_dial: true,
        },
    );
    // Both dial at once; both must settle on the same single connection.
    std::thread::sleep(Duration::from_secs(3));
    let (pa, pb) = (a.node.peers(), b.node.peers());
    assert!(pa[0].online && pb[0].online, "{pa:?} {pb:?}");
    // It carries triggers: the one both kept.
    b.node
        .trigger(&id_a, offer(SoundId([5; 32]), 1000), 0.0)
        .expect("trigger");
    answer_next_play(&a.events);
    wait_event(&b.events, Duration::from_secs(5), |e| {
        matches!(e, NetEvent::TriggerResult { .. }).then_some(())
    });
    // No connection came up twice and dropped: each side saw the other come up and
    // stay (a duplicate closed at once is never announced).
    let ups = |rx: &mpsc::Receiver<NetEvent>| {
        let mut ups = 0;
        let mut downs = 0;
        while let Ok(e) = rx.recv_timeout(Duration::from_millis(200)) {
            match e {
                NetEvent::PeerUp { .. } => ups += 1,
                NetEvent::PeerDown { .. } => downs += 1,
                _ => {}
            }
        }
        (ups, downs)
    };
    let (ua, da) = ups(&a.events);
    let (ub, db) = ups(&b.events);
    assert!(a.node.peers()[0].online && b.node.peers()[0].online);
    eprintln!(
        "simultaneous dials: a saw {ua} up / {da} down, b saw {ub} up / {db} down (after the first)"
    );
}

#[test]
fn a_peer_speaking_another_protocol_version_is_refused_with_a_clear_message() {
    let (a, _b, id_a) = pair(Vec::new());
    let _ = id_a;
    // A third identity, trusted by a, that speaks version 9 only.
    let dir = tempfile::tempdir().expect("tempdir");
    let me = identity(dir.path());
    let a_addr = a.node.local_addr().expect("addr");
    let mut t = TrustStore::load(&a._dir.path().join("peers.toml")).expect("trust");
    t.add(TrustedPeer {
        name: "future".into(),
        id: me.id,
        address: None,
        allow: Permissions::parse("play").expect("play"),
        sync: None,
        shares: Vec::new(),
        speakers: false,
    })
    .expect("add");
    t.save().expect("save");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let a_id = a.node.id();
    let text = rt.block_on(async move {
        let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("client");
        let cfg = jhack::net::client_config(&me, a_id).expect("config");
        let conn = ep
            .connect_with(cfg, a_addr, "jhack")
            .expect("connect")
            .await
            .expect("handshake");
        let (mut send, mut recv) = conn.open_bi().await.expect("stream");
        let mut hello = jhack::proto::Hello::new("jhack 9.0", "future", 1);
        hello.version = 9;
        hello.min_version = 9;
        let mut frame = Vec::new();
        jhack::proto::encode_frame(&jhack::proto::encode(&hello).expect("encode"), &mut frame)
            .expect("frame");
        send.write_all(&frame).await.expect("write");
        // Their hello, then a refusal.
        let all = recv.read_to_end(1 << 16).await.expect("read");
        let mut dec = jhack::proto::FrameDecoder::new(jhack::proto::MAX_FRAME);
        dec.push(&all);
        let theirs = dec.next_frame().expect("frame").expect("hello");
        jhack::proto::decode_hello(&theirs).expect("their hello");
        let refusal = dec.next_frame().expect("frame").expect("refusal");
        match jhack::proto::decode_message(&refusal).expect("message") {
            jhack::proto::Message::Refuse { reason, message } => {
                assert_eq!(reason, jhack::proto::Refusal::Version);
                message
            }
            other => panic!("not a refusal: {other:?}"),
        }
    });
    let ours = jhack::proto::PROTOCOL_VERSION.to_string();
    assert!(text.contains("9") && text.contains(&ours), "{text}");
    let reason = wait_event(&a.events, Duration::from_secs(5), |e| match e {
        NetEvent::Refused { reason, .. } => Some(reason),
        _ => None,
    });
    eprintln!("version refusal: {text} / logged: {reason}");
    assert!(
        reason.contains("future") && reason.contains("needs updating"),
        "{reason}"
    );
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn a_trigger_reaches_the_receiving_application_within_two_ms_p99() {
    common::settle();
    common::retried("the trigger p99", || {
        let (a, b, id_a) = pair(Vec::new());
        let id = SoundId([7; 32]);
        let mut all = Vec::new();
        let mut p99s = Vec::new();
        let mut answers = 0;
        // Three rounds of 200, in turns with nothing else: a shared machine's neighbours
        // can stall one round; the median round counts.
        for _ in 0..3 {
            let mut lat = Vec::new();
            // Spaced like a person pressing keys fast, so each is measured on its own.
            for _ in 0..200 {
                let sent = Instant::now();
                b.node
                    .trigger(&id_a, offer(id, 1000), 0.0)
                    .expect("trigger");
                answer_next_play(&a.events);
                lat.push(sent.elapsed().as_secs_f64() * 1000.0);
                std::thread::sleep(Duration::from_millis(3));
            }
            while let Ok(e) = b.events.recv_timeout(Duration::from_millis(300)) {
                if matches!(e, NetEvent::TriggerResult { .. }) {
                    answers += 1;
                }
            }
            p99s.push(percentile(&mut lat.clone(), 0.99));
            all.extend(lat);
        }
        let (p50, max) = (percentile(&mut all, 0.5), percentile(&mut all, 1.0));
        let p99 = percentile(&mut p99s.clone(), 0.5);
        eprintln!(
            "remote trigger on loopback, sent -> receiver's application (3 x 200 triggers): median {p50:.3} ms, p99 {p99:.3} ms (median round; rounds {p99s:.3?}), max {max:.3} ms; {answers} answers back"
        );
        assert_eq!(answers, 600, "every trigger is answered");
        // The receiver then plays as a local key press does (trigger -> callback within
        // one period): the remote figure is the local one plus this.
        // The target is 2 ms (README); the suite guards against regressions with
        // headroom, since a shared machine's neighbours can stall any one run.
        assert!(
            p99 <= 4.0,
            "p99 {p99:.3} ms from sender to the receiving application (target 2 ms)"
        );
    });
}

/// A plain QUIC bulk copy with the same TLS and endpoint settings (socket buffers,
/// packet size), on one stream: from memory to nothing
/// (`files` None), or from the file to a file (`files` Some((source, destination)),
/// read and written in 1 MiB steps the way a plain copy program would). Returns MB/s.
fn plain_quic_copy(bytes: &Arc<Vec<u8>>, files: Option<(PathBuf, PathBuf)>) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (sa, sb) = (
        Identity::load_or_create(&dir.path().join("a")).expect("a"),
        Identity::load_or_create(&dir.path().join("b")).expect("b"),
    );
    let server_id = sa.id;
    let gate: jhack::net::Gate = Arc::new(|_| Ok(()));
    let server_cfg = jhack::net::server_config(&sa, gate).expect("server config");
    let client_cfg = jhack::net::client_config(&sb, server_id).expect("client config");
    let data = bytes.clone();
    rt.block_on(async move {
        let server =
            jhack::net::endpoint("127.0.0.1:0".parse().unwrap(), Some(server_cfg)).expect("server");
        let addr = server.local_addr().expect("addr");
        let data2 = data.clone();
        let source = files.as_ref().map(|(s, _)| s.clone());
        let serve = tokio::spawn(async move {
            let conn = server
                .accept()
                .await
                .expect("incoming")
                .await
                .expect("conn");
            let (mut send, _recv) = conn.accept_bi().await.expect("stream");
            match source {
                None => send.write_all(&data2).await.expect("write"),
                Some(path) => {
                    use std::io::Read;
                    let mut f = std::fs::File::open(path).expect("open");
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = f.read(&mut buf).expect("read");
                        if n == 0 {
                            break;
                        }
                        send.write_all(&buf[..n]).await.expect("write");
                    }
                }
            }
            send.finish().expect("finish");
            let _ = conn.closed().await;
        });
        let client = jhack::net::endpoint("127.0.0.1:0".parse().unwrap(), None).expect("client");
        let conn = client
            .connect_with(client_cfg, addr, "jhack")
            .expect("connect")
            .await
            .expect("handshake");
        let t0 = Instant::now();
        let (mut send, mut recv) = conn.open_bi().await.expect("open");
        send.write_all(b"go").await.expect("go");
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        let mut out = files
            .as_ref()
            .map(|(_, d)| std::fs::File::create(d).expect("create"));
        while let Some(n) = recv.read(&mut buf).await.expect("read") {
            if let Some(f) = out.as_mut() {
                use std::io::Write;
                f.write_all(&buf[..n]).expect("write");
            }
            got += n;
        }
        if let Some(f) = out {
            f.sync_all().expect("sync");
        }
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(got, data.len());
        conn.close(0u32.into(), b"done");
        let _ = serve.await;
        data.len() as f64 / 1e6 / secs
    })
}

#[test]
fn a_hundred_megabyte_blob_is_fetched_near_the_speed_of_plain_quic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("blob");
    let (id, bytes) = random_blob(&path, 0x9e37_79b9_7f4a_7c15);
    let bytes = Arc::new(bytes);
    let mut ours = Vec::new();
    let mut plain = Vec::new();
    let mut plain_mem = Vec::new();
    for round in 0..3 {
        let (a, b, id_a) = pair(vec![(id, path.clone())]);
        let t0 = Instant::now();
        let f = b.node.fetch(&id_a, &offer(id, 100_000_000)).expect("fetch");
        let r = f.wait_done(Duration::from_secs(120));
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(r, Some(Ok(())), "round {round}");
        assert_eq!(f.verified(), 100_000_000);
        let copy = std::fs::read(f.path()).expect("read");
        assert!(copy == *bytes, "the fetched blob equals the original");
        ours.push(100.0 / secs);
        drop((a, b));
        let copy = dir.path().join("plain-copy");
        plain.push(plain_quic_copy(&bytes, Some((path.clone(), copy.clone()))));
        let _ = std::fs::remove_file(copy);
        plain_mem.push(plain_quic_copy(&bytes, None));
    }
    let med = |v: &mut Vec<f64>| percentile(v, 0.5);
    let (o, p, m) = (med(&mut ours), med(&mut plain), med(&mut plain_mem));
    eprintln!(
        "100 MB blob on loopback (medians of 3, in turns): fetched, verified and written {o:.0} MB/s (runs {ours:.0?}); plain QUIC copy, same TLS, file to file {p:.0} MB/s (runs {plain:.0?}), ratio {:.2}; memory to memory {m:.0} MB/s (runs {plain_mem:.0?}), ratio {:.2}",
        o / p,
        o / m
    );
    // The target is 70 % (the README's figure, from release runs); the suite guards
    // against a regression with headroom, so that a busy machine does not fail it.
    assert!(
        o >= 0.35 * p,
        "fetch {o:.0} MB/s is under 35 % of a plain QUIC file copy {p:.0} MB/s (target 70 %, guard 35 %)"
    );
}

use crate::common;

use common::peers::{Peer, free_port};

#[test]
fn a_ten_megabyte_flac_a_peer_lacks_starts_playing_within_fifty_ms_and_a_period() {
    if !common::have("sox") {
        common::skip(
            "a_ten_megabyte_flac_a_peer_lacks_starts_playing_within_fifty_ms_and_a_period",
            "sox missing",
        );
        return;
    }
    let (a, b) = (Peer::new("A"), Peer::new("B"));
    a.trust(&b, "bee", "play", false);
    b.trust(&a, "ay", "play", true);
    let mut served = a.serve(false, &[]);
    let mut figures = Vec::new();
    let mut size = 0;
    for round in 0..3 {
        // A new sound each round: A must fetch it every time.
        let flac = b.home().join(format!("big{round}.flac"));
        common::sh(&format!(
            "sox -n -r 48000 -c 2 -b 24 {} synth 70 whitenoise gain -{}",
            flac.display(),
            3 + round
        ));
        size = std::fs::metadata(&flac).unwrap().len();
        b.import(&flac, &format!("big{round}"));
        let o = b.play_on(&format!("big{round}"), "ay");
        assert!(o.status.success(), "{}", common::stderr(&o));
        assert!(
            common::stderr(&o).contains("sent to it"),
            "{}",
            common::stderr(&o)
        );
        // The sender left only once A said it holds every byte: never mid-fetch.
        assert!(
            common::stderr(&o).contains(&format!("ay holds \"big{round}\"")),
            "{}",
            common::stderr(&o)
        );
        let line = served.wait_for(
            &format!("first audio of \"big{round}\""),
            Duration::from_secs(20),
        );
        let ms: f64 = line
            .split(": ")
            .nth(2)
            .and_then(|t| t.split(' ').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no figure in {line:?}"));
        assert!(line.contains("fetched while playing"), "{line}");
        figures.push(ms);
        served.wait_for(&format!("kept \"big{round}\""), Duration::from_secs(30));
    }
    let median = percentile(&mut figures.clone(), 0.5);
    let max = percentile(&mut figures.clone(), 1.0);
    // The null backend's period at the default 256 frames.
    let period_ms = 256.0 / 48.0;
    eprintln!(
        "fetch on demand, {:.1} MB FLAC on loopback: trigger arrival -> first audio in the callback: median {median:.2} ms, max {max:.2} ms (runs {figures:.2?}); target 50 ms + one period ({period_ms:.2} ms)",
        size as f64 / 1e6
    );
    assert!(size > 9_000_000, "the sound is {size} bytes");
    assert!(
        max <= 50.0 + period_ms,
        "first audio {max:.2} ms after the trigger"
    );
}

/// Plays a short buffer on `engine` with the given trigger instant; returns the
/// engine's trigger → callback figure, ms.
fn start_voice(engine: &jhack::audio::Engine, trigger: Instant) -> f64 {
    use jhack::audio::{PlayOptions, VoiceSource, VoiceState};
    let samples: Arc<[f32]> = vec![0.01f32; 4800].into();
    let v = engine
        .play(
            VoiceSource::Buffer(samples),
            PlayOptions {
                trigger: Some(trigger),
                ..PlayOptions::default()
            },
        )
        .expect("play");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match engine.state(v) {
            Some(VoiceState::Playing {
                trigger_to_callback,
            }) => return trigger_to_callback.as_secs_f64() * 1000.0,
            Some(VoiceState::Ended(o)) => {
                return o.trigger_to_callback.expect("started").as_secs_f64() * 1000.0;
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "the voice never started");
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn a_remote_trigger_starts_the_voice_within_the_local_latency_plus_two_ms_p99() {
    common::settle();
    let engine = jhack::audio::Engine::start(jhack::audio::EngineConfig {
        no_audio: true,
        ..jhack::audio::EngineConfig::default()
    })
    .expect("engine");
    let (a, b, id_a) = pair(Vec::new());
    let sound = SoundId([3; 32]);
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    let mut gaps = Vec::new();
    // Rounds; in each, in turns: a local play (trigger = now), then a remote one
    // (trigger = when the sender sent it; both nodes share this process's clock).
    // A p99 of 100 is the second-worst start: one stall of a shared machine moves it
    // by the stall's length, in either direction (rounds of +13.5, -8.4 and +7.1 ms
    // were seen on a host busy elsewhere). A slower remote path is slower in every
    // round; so the best round is judged, after three and up to six rounds.
    for round in 0..6 {
        if round >= 3 && gaps.iter().copied().fold(f64::INFINITY, f64::min) <= GUARD_MS {
            break;
        }
        let (mut l, mut r) = (Vec::new(), Vec::new());
        for _ in 0..100 {
            l.push(start_voice(&engine, Instant::now()));
            std::thread::sleep(Duration::from_millis(2));
            let sent = Instant::now();
            b.node
                .trigger(&id_a, offer(sound, 1000), 0.0)
                .expect("trigger");
            let p = wait_event(&a.events, Duration::from_secs(5), |e| match e {
                NetEvent::Play(p) => Some(p),
                _ => None,
            });
            r.push(start_voice(&engine, sent));
            p.answer(PlayOutcome::Started {
                cached: true,
                latency_us: 0,
            });
            std::thread::sleep(Duration::from_millis(2));
        }
        gaps.push(percentile(&mut r.clone(), 0.99) - percentile(&mut l.clone(), 0.99));
        local.extend(l);
        remote.extend(r);
    }
    let (l50, l99) = (percentile(&mut local, 0.5), percentile(&mut local, 0.99));
    let (r50, r99) = (percentile(&mut remote, 0.5), percentile(&mut remote, 0.99));
    let gap = percentile(&mut gaps.clone(), 0.5);
    let best = gaps.iter().copied().fold(f64::INFINITY, f64::min);
    let period = engine.stats().period_frames as f64 / 48.0;
    eprintln!(
        "trigger -> voice started in the callback (null backend, {period:.2} ms period, {} x 100 each, in turns): local median {l50:.2} ms, p99 {l99:.2} ms; remote on loopback median {r50:.2} ms, p99 {r99:.2} ms; p99 gap, median round {gap:.2} ms, best {best:.2} ms (rounds {gaps:.2?})",
        gaps.len()
    );
    // Target: +2 ms (README, the median round on a quiet machine); the best round is
    // asserted as a regression guard with headroom, so that a busy machine does not
    // fail it.
    assert!(
        best <= GUARD_MS,
        "remote p99 is {best:.2} ms above local in the best of {} rounds (target 2 ms)",
        gaps.len()
    );
}

/// The remote trigger's p99 over the local one's, as guarded (twice the target).
const GUARD_MS: f64 = 4.0;

/// One-way latency (ms) of 10 ms-spaced voice-sized datagrams from a to b, for
/// `secs`, while `during` runs on another thread; (p50, p99, max, received, sent).
fn datagram_latency(
    a: &Side,
    b_id: jhack::net::PeerId,
    arrivals: &Arc<Mutex<Vec<(u32, Instant)>>>,
    secs: f64,
) -> (f64, f64, f64, usize, usize) {
    arrivals.lock().unwrap().clear();
    let mut sent = Vec::new();
    let t0 = Instant::now();
    let mut i = 0u32;
    while t0.elapsed().as_secs_f64() < secs {
        let mut d = vec![0u8; 180];
        d[..4].copy_from_slice(&i.to_le_bytes());
        sent.push(Instant::now());
        let _ = a
            .node
            .send_datagram(&b_id, jhack::proto::datagram_kind::VOICE, &d);
        i += 1;
        let next = t0 + Duration::from_millis(10 * u64::from(i));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    std::thread::sleep(Duration::from_millis(200));
    let got = arrivals.lock().unwrap().clone();
    let mut lat: Vec<f64> = got
        .iter()
        .filter_map(|(n, at)| {
            sent.get(*n as usize)
                .map(|s| (*at - *s).as_secs_f64() * 1000.0)
        })
        .collect();
    let n = lat.len();
    (
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        percentile(&mut lat, 1.0),
        n,
        sent.len(),
    )
}

#[test]
fn voice_datagrams_cross_at_once_even_behind_a_hundred_megabyte_transfer() {
    // A p99 of 300 is the third-worst datagram: one stall of the shared machine while
    // the fetch's hashing and writing keep both cores busy moves it (24.5 ms once, a
    // max of 54.5 ms, in a full-suite run). A datagram queued behind the transfer
    // would be late in every attempt.
    common::retried(
        "voice_datagrams_cross_at_once_even_behind_a_hundred_megabyte_transfer",
        datagrams_behind_a_transfer,
    );
}

fn datagrams_behind_a_transfer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("blob");
    let (id, _) = random_blob(&path, 0x2545_f491_4f6c_dd1d);
    let arrivals: Arc<Mutex<Vec<(u32, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = arrivals.clone();
    let handler: jhack::net::DatagramHandler = Arc::new(move |_, d, at| {
        if d.len() >= 4 {
            let n = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
            sink.lock().unwrap().push((n, at));
        }
    });
    let feature = jhack::net::Feature {
        name: "voice/1",
        permission: jhack::net::Permission::Voice,
        datagrams: vec![(jhack::proto::datagram_kind::VOICE, handler)],
        messages: Vec::new(),
        requests: Vec::new(),
    };
    let (a, b, id_a) = pair_with_features(vec![(id, path.clone())], FAST, vec![feature]);
    let b_id = b.node.id();
    // Let b's feature list reach a.
    std::thread::sleep(Duration::from_millis(300));
    let quiet = datagram_latency(&a, b_id, &arrivals, 3.0);
    // The same while b fetches 100 MB from a over the same connection (the blob and
    // the datagrams both flow a -> b).
    let f = b.node.fetch(&id_a, &offer(id, 100_000_000)).expect("fetch");
    let busy = datagram_latency(&a, b_id, &arrivals, 3.0);
    let moved = f.verified();
    let r = f.wait_done(Duration::from_secs(120));
    assert_eq!(r, Some(Ok(())));
    eprintln!(
        "voice-sized datagrams every 10 ms on loopback, one way: quiet p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({}/{} arrived); during a 100 MB fetch on the same connection ({} MB moved meanwhile): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({}/{} arrived)",
        quiet.0,
        quiet.1,
        quiet.2,
        quiet.3,
        quiet.4,
        moved / 1_000_000,
        busy.0,
        busy.1,
        busy.2,
        busy.3,
        busy.4
    );
    assert!(quiet.3 + 3 >= quiet.4, "datagrams lost on a quiet loopback");
    // Regression guards with headroom: a datagram never waits behind the transfer for
    // longer than a frame (the jitter buffer would otherwise have to grow).
    assert!(busy.1 <= 20.0, "p99 {:.2} ms behind a transfer", busy.1);
}
