//! Peers over the real network stack: real `jhack serve` and `jhack play --peer`
//! processes, each with a home of its own, talking QUIC on loopback UDP ports. What
//! one peer triggers is checked on the other's log (its stderr), library and — with
//! the virtual audio stack — speaker; refusals, garbage on the wire, a transfer killed
//! halfway and a byte flipped in transit are each checked end to end.
//!
//! Every process a test starts is held by a guard that kills it on drop, so a failing
//! test leaves nothing running; every wait has a timeout.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::peers::*;
use common::*;

/// How long an expected log line may take.
const LINE: Duration = Duration::from_secs(15);
/// Bytes of one verified group of a blob transfer.
const GROUP: u64 = 64 * 1024;

/// The number just before `unit` in `line` ("3.21 ms" → 3.21).
fn number_before(line: &str, unit: &str) -> f64 {
    let head = line
        .split(unit)
        .next()
        .unwrap_or_else(|| panic!("no {unit:?} in {line:?}"));
    head.split_whitespace()
        .last()
        .and_then(|w| w.trim_start_matches('(').parse().ok())
        .unwrap_or_else(|| panic!("no number before {unit:?} in {line:?}"))
}

fn same_bytes(a: &Path, b: &Path) {
    let x = std::fs::read(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let y = std::fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert_eq!(
        x.len(),
        y.len(),
        "{} and {} differ in size",
        a.display(),
        b.display()
    );
    if let Some(i) = x.iter().zip(&y).position(|(p, q)| p != q) {
        panic!(
            "{} and {} differ first at byte {i}",
            a.display(),
            b.display()
        );
    }
}

/// The numbers of the fetch's summary line: (size, resumed, received, repaired).
fn fetched_figures(log: &str, short: &str) -> (u64, u64, u64, u64) {
    let line = log
        .lines()
        .find(|l| l.contains(&format!("fetched {short} from ")))
        .unwrap_or_else(|| panic!("no fetched line for {short}:\n{log}"));
    let n = |unit: &str| number_before(line, unit) as u64;
    (
        n(" bytes verified"),
        n(" resumed from disk"),
        n(" received"),
        n(" groups repaired"),
    )
}

// ---------------------------------------------------------------- tests

#[test]
fn a_trusted_peer_plays_a_sound_the_other_already_has() {
    let Some(_audio) = audio_stack("a_trusted_peer_plays_a_sound_the_other_already_has") else {
        return;
    };
    let a = Peer::new("A");
    let b = Peer::new("B");
    a.trust(&b, "bee", "play", false);
    b.trust(&a, "a", "play", true);
    let mut sa = a.serve(true, &[]);
    assert!(
        !sa.stderr().contains("null backend"),
        "A did not open the virtual device:\n{}",
        sa.stderr()
    );
    let mon = Monitor::start();
    let sent = unix_us();
    let o = b.play_on("airhorn", "a");
    // Listen for the whole window the sound must start in.
    let window = Duration::from_secs(2);
    let spent = Duration::from_micros((unix_us() - sent) as u64);
    std::thread::sleep(window.saturating_sub(spent) + Duration::from_millis(100));
    let (captured, arrivals) = mon.stop_timed();
    ok(&o, "play airhorn --peer a");
    let e = stderr(&o);
    assert!(e.contains("\"airhorn\" playing on a"), "{e}");
    assert!(!e.contains("sent to it"), "A already had airhorn: {e}");
    let heard = onset_unix_us(&captured, &arrivals, 0.01)
        .expect("nothing above -40 dBFS reached the speaker");
    let after_ms = (heard - sent as f64) / 1000.0;
    assert!(
        after_ms > 0.0,
        "sound on the speaker before the command ran"
    );
    assert!(
        after_ms < 2000.0,
        "heard only {after_ms:.0} ms after the command started"
    );
    let loudest = peak(&captured);
    sa.wait_for("bee played \"airhorn\" here", LINE);
    let first = sa.wait_for("first audio of \"airhorn\" from bee: ", LINE);
    assert!(first.ends_with("(cached)"), "{first}");
    let ms = number_before(&first, " ms after its trigger arrived");
    eprintln!(
        "peer trigger: first audio {ms:.2} ms after the trigger arrived (A's engine); \
         `jhack play --peer` start -> speaker {after_ms:.1} ms (process start and connect included); peak {:.1} dBFS",
        db(loudest)
    );
    assert!((0.0..500.0).contains(&ms), "{first}");
    let log = sa.stop();
    assert!(!log.contains("fetching"), "{log}");
}

#[test]
fn a_missing_sound_is_fetched_verified_played_and_kept() {
    let a = Peer::new("A");
    let b = Peer::new("B");
    a.trust(&b, "bee", "play", false);
    b.trust(&a, "a", "play", true);
    let src = b.home().join("glide.flac");
    sh(&format!(
        "sox -n -r 44100 -c 2 -b 16 {} synth 5 sine 200-4000 synth 5 pinknoise mix gain -9",
        src.display()
    ));
    let hex = b.import(&src, "glide");
    let mut sa = a.serve(false, &[]);

    let o = b.play_on("glide", "a");
    ok(&o, "play glide --peer a");
    assert!(
        stderr(&o).contains("\"glide\" playing on a (sent to it)"),
        "{}",
        stderr(&o)
    );
    let fetching = sa.wait_for("bee played \"glide\" here: fetching it (", LINE);
    let kept = sa.wait_for("kept \"glide\" from bee (", LINE);
    assert!(kept.contains("every byte verified"), "{kept}");
    let first = sa.wait_for("first audio of \"glide\" from bee: ", LINE);
    assert!(first.ends_with("(fetched while playing)"), "{first}");
    eprintln!("{fetching}\n{kept}\n{first}");

    // Now A has it: a second trigger plays from A's library, nothing is sent.
    let o = b.play_on("glide", "a");
    ok(&o, "second play glide --peer a");
    assert!(
        stderr(&o).contains("\"glide\" playing on a"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("sent to it"), "{}", stderr(&o));
    sa.wait_count("bee played \"glide\" here", 2, LINE);
    sa.wait_count("first audio of \"glide\" from bee: ", 2, LINE);

    // Sounds so small they arrive whole (and are kept) before they start.
    let ticks = b.home().join("ticks");
    std::fs::create_dir(&ticks).unwrap();
    let names: Vec<String> = (1..=6).map(|i| format!("tick{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        sine_wav(
            &ticks,
            &format!("{n}.wav"),
            500 + 100 * i as u32,
            0.05,
            -6.0,
            48_000,
            1,
        );
    }
    ok(
        &b.jhack(&["import", &ticks.to_string_lossy()]),
        "import ticks",
    );
    let mut args = vec!["play"];
    args.extend(names.iter().map(String::as_str));
    args.extend(["--peer", "a"]);
    let o = b.jhack(&args);
    ok(&o, "play tick1..tick6 --peer a");
    for n in &names {
        assert!(
            stderr(&o).contains(&format!("\"{n}\" playing on a (sent to it)")),
            "{}",
            stderr(&o)
        );
        sa.wait_for(&format!("kept \"{n}\" from bee"), LINE);
        let first = sa.wait_for(&format!("first audio of \"{n}\" from bee: "), LINE);
        assert!(first.ends_with("(fetched while playing)"), "{first}");
    }
    let log = sa.stop();
    assert!(!log.contains("could not be played"), "{log}");
    for n in &names {
        assert_eq!(a.sound(n)["origin"], "remote");
    }
    let played: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("bee played \"glide\" here"))
        .collect();
    assert_eq!(played.len(), 2, "{log}");
    assert!(played[0].contains("fetching"), "{log}");
    // The activity log in A's home has the same, each line with its time.
    let activity = std::fs::read_to_string(a.home().join("peers.log")).expect("peers.log");
    let line = activity
        .lines()
        .find(|l| l.contains("bee played \"glide\" here: fetching"))
        .unwrap_or_else(|| panic!("{activity}"));
    assert!(line.starts_with("20") && line.contains("Z "), "{line}");
    assert!(played[1].ends_with("bee played \"glide\" here"), "{log}");
    assert!(
        log.lines()
            .filter(|l| l.contains("first audio of \"glide\""))
            .nth(1)
            .is_some_and(|l| l.ends_with("(cached)")),
        "{log}"
    );
    let fetches = log
        .lines()
        .filter(|l| l.contains(&format!("fetched {} from bee: ", &hex[..12])))
        .count();
    assert_eq!(fetches, 1, "fetched {fetches} times:\n{log}");

    let kept = a.sound("glide");
    assert_eq!(kept["origin"], "remote", "{kept}");
    assert_eq!(kept["id"], hex.as_str(), "{kept}");
    assert_eq!(
        kept["size"],
        std::fs::metadata(&src).unwrap().len(),
        "{kept}"
    );
    same_bytes(&a.blob(&hex), &src);
    assert!(
        !a.partial(&hex).exists(),
        "the partial file was left behind"
    );
    a.check_clean();
}

#[test]
fn strangers_and_impostors_are_refused_and_nothing_plays() {
    let a = Peer::new("A");
    let b = Peer::new("B");
    let c = Peer::new("C");
    let d = Peer::new("D");
    a.trust(&b, "bee", "play", true);
    c.trust(&a, "a", "play", true);
    d.trust(&a, "a", "play", true);
    // D, another key, takes B's address (B itself is not running): it dials A from
    // there, and A's dials to B's address reach it.
    let sd = d.serve_on(b.port, false, &[]);
    let mut sa = a.serve(false, &[]);

    // A stranger: refused at the handshake, with the way to trust it.
    let o = c.play_on("airhorn", "a");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let errors = error_lines(&o);
    assert_eq!(errors.len(), 1, "{}", stderr(&o));
    assert!(errors[0].contains("a is offline"), "{}", errors[0]);
    assert!(errors[0].contains("refused this jhack"), "{}", errors[0]);
    let refusal = sa.wait_for(
        &format!("refused unknown peer {} from 127.0.0.1:", c.id),
        LINE,
    );
    assert!(
        refusal.contains(&format!(
            "; to trust it: jhack peer add {} 127.0.0.1:",
            c.id
        )),
        "{refusal}"
    );

    // The impostor, both ways.
    let by_addr = format!(
        "refused {} from 127.0.0.1:{}: it uses the address of the trusted peer \"bee\" with another key",
        d.id, b.port
    );
    sa.wait_for(&by_addr, LINE);
    let by_key = format!(
        "refused 127.0.0.1:{}: it presented the key of {}, not of the trusted {}",
        b.port, d.id, b.id
    );
    sa.wait_for(&by_key, LINE);
    // A refusal by key is not mistaken on D's side for a connection.
    assert!(!sd.stderr().contains("a is online"), "{}", sd.stderr());

    // The impostor's key cannot take B's name either.
    let o = a.jhack(&["peer", "add", &d.id, &b.addr(), "--name", "bee"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("another peer is already called 'bee'"),
        "{}",
        stderr(&o)
    );
    let o = a.jhack(&["peer", "list", "--json"]);
    ok(&o, "peer list");
    let peers: Vec<serde_json::Value> = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(peers[0]["id"], b.id.as_str());
    assert_eq!(peers[0]["online"], false, "{peers:?}");

    let log = sa.stop();
    assert!(!log.contains(" played \""), "something played:\n{log}");
    assert!(!log.contains("is online"), "someone connected:\n{log}");
    drop(sd);
}

#[test]
fn a_peer_without_play_permission_gets_a_clear_refusal() {
    let a = Peer::new("A");
    let b = Peer::new("B");
    a.trust(&b, "bee", "none", false);
    b.trust(&a, "a", "play", true);
    let mut sa = a.serve(false, &[]);
    for (n, allow) in ["none", "read"].into_iter().enumerate() {
        if allow != "none" {
            a.trust(&b, "bee", allow, false);
        }
        let o = b.play_on("airhorn", "a");
        assert_eq!(o.status.code(), Some(2), "{allow}: {}", stderr(&o));
        let errors = error_lines(&o);
        assert_eq!(errors.len(), 1, "{}", stderr(&o));
        assert!(
            errors[0].contains("a refused \"airhorn\": bee may not play sounds on ")
                && errors[0].ends_with("(no play permission)"),
            "{}",
            errors[0]
        );
        sa.wait_count("refused \"airhorn\" from bee: ", n + 1, LINE);
    }
    let log = sa.stop();
    assert!(!log.contains(" played \""), "something played:\n{log}");
}

/// What A answered one garbage connection with.
#[derive(Debug)]
enum Closed {
    /// A closed it with this code and reason.
    ByA(u64, String),
    /// Something else ended it (shown in failure messages).
    Other(#[allow(dead_code)] String),
    /// Still open after the wait.
    Open,
}

async fn closed_within(conn: &quinn::Connection, wait: Duration) -> Closed {
    match tokio::time::timeout(wait, conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(c)) => Closed::ByA(
            c.error_code.into_inner(),
            String::from_utf8_lossy(&c.reason).into_owned(),
        ),
        Ok(other) => Closed::Other(other.to_string()),
        Err(_) => Closed::Open,
    }
}

/// xorshift64*: repeatable garbage.
struct Garbage(u64);

impl Garbage {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    jhack::proto::encode_frame(payload, &mut out).expect("frame");
    out
}

async fn connect(
    endpoint: &quinn::Endpoint,
    config: &quinn::ClientConfig,
    addr: std::net::SocketAddr,
) -> quinn::Connection {
    endpoint
        .connect_with(config.clone(), addr, "jhack")
        .expect("connect")
        .await
        .expect("handshake with A")
}

fn hello_frame() -> Vec<u8> {
    let hello = jhack::proto::Hello::new("jhack-test 0", "raw", 42);
    frame(&jhack::proto::encode(&hello).expect("hello"))
}

#[test]
fn garbage_closes_only_that_connection() {
    let a = Peer::new("A");
    let b = Peer::new("B");
    a.trust(&b, "bee", "play", false);
    b.trust(&a, "a", "play", true);
    let raw_dir = tempfile::tempdir().expect("tempdir");
    let me =
        jhack::net::Identity::load_or_create(&raw_dir.path().join("identity")).expect("identity");
    let my_id = me.id.to_string();
    ok(
        &a.jhack(&["peer", "add", &my_id, "--name", "raw", "--allow", "play"]),
        "peer add raw",
    );
    let mut sa = a.serve(false, &[]);
    let a_id: jhack::net::PeerId = a.id.parse().expect("A's id");
    let addr: std::net::SocketAddr = a.addr().parse().unwrap();
    let seed = unix_us() as u64 | 1;
    eprintln!("garbage seed {seed}");
    let mut g = Garbage(seed);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sa_ref = &mut sa;
    let raw_client = async {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("endpoint");
        let config = jhack::net::client_config(&me, a_id).expect("client config");
        let wait = Duration::from_secs(4);
        // (what it sends on the control stream, the reason A must close with)
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("random bytes", g.bytes(3000), "bad hello"),
            (
                "a length of 0xFFFFFFFF",
                vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
                "bad hello",
            ),
            (
                "a truncated frame",
                [&[0, 0, 0, 200][..], &g.bytes(50)].concat(),
                "bad hello",
            ),
            (
                "a hello, then garbage frames",
                [hello_frame(), frame(&[0xff; 12]), frame(&g.bytes(40))].concat(),
                "malformed message",
            ),
        ];
        for (what, bytes, reason) in cases {
            let conn = connect(&endpoint, &config, addr).await;
            let (mut send, _recv) = conn.open_bi().await.expect("open_bi");
            send.write_all(&bytes).await.expect("write");
            let _ = send.finish();
            let t = Instant::now();
            match closed_within(&conn, wait).await {
                Closed::ByA(1, r) if r == reason => {}
                other => panic!("after {what}: {other:?} (wanted A to close with {reason:?})"),
            }
            eprintln!(
                "{what}: closed by A in {:.1} ms",
                t.elapsed().as_secs_f64() * 1e3
            );
            assert!(sa_ref.exited().is_none(), "A died after {what}");
        }

        // A blob stream of garbage after a proper hello.
        let conn = connect(&endpoint, &config, addr).await;
        let (mut send, mut recv) = conn.open_bi().await.expect("open_bi");
        send.write_all(&hello_frame()).await.expect("hello");
        let mut len = [0u8; 4];
        recv.read_exact(&mut len).await.expect("A's hello");
        let mut theirs = vec![0u8; u32::from_be_bytes(len) as usize];
        recv.read_exact(&mut theirs).await.expect("A's hello");
        let hello = jhack::proto::decode_hello(&theirs).expect("A says hello");
        assert_eq!(hello.magic, jhack::proto::MAGIC);
        // What a newer peer may send is skipped, never fatal: a message type, a stream
        // kind and datagram kinds this jhack does not know.
        let mut unknown = postcard::to_allocvec(&(jhack::proto::MESSAGE_KINDS + 5)).unwrap();
        unknown.extend_from_slice(&g.bytes(30));
        send.write_all(&frame(&unknown))
            .await
            .expect("unknown message");
        let (mut us, mut ur) = conn.open_bi().await.expect("unknown stream");
        us.write_all(&[0x77, 0x77, 1, 2, 3]).await.expect("write");
        let mut sink = [0u8; 16];
        let reset = tokio::time::timeout(wait, ur.read(&mut sink)).await;
        assert!(
            matches!(reset, Ok(Err(quinn::ReadError::Reset(_)))),
            "an unknown stream kind is reset: {reset:?}"
        );
        for k in [0u8, 0x42, 0xff] {
            let mut d = vec![k];
            d.extend_from_slice(&g.bytes(40));
            let _ = conn.send_datagram(d.into());
        }
        let ping = jhack::proto::encode(&jhack::proto::Message::Ping { nonce: 77 }).unwrap();
        send.write_all(&frame(&ping)).await.expect("ping");
        let mut dec = jhack::proto::FrameDecoder::new(jhack::proto::MAX_FRAME);
        let mut features = None;
        let pong = tokio::time::timeout(wait, async {
            let mut buf = [0u8; 4096];
            loop {
                while let Some(f) = dec.next_frame().expect("frames from A") {
                    match jhack::proto::decode_message(&f).expect("a message from A") {
                        jhack::proto::Message::Pong { nonce: 77 } => return,
                        jhack::proto::Message::Features { names } => features = Some(names),
                        _ => {}
                    }
                }
                let n = recv
                    .read(&mut buf)
                    .await
                    .expect("A's control stream")
                    .expect("open");
                dec.push(&buf[..n]);
            }
        })
        .await;
        assert!(
            pong.is_ok(),
            "A still answers after an unknown message, stream kind and datagrams"
        );
        assert!(
            features.is_some_and(|f| f.iter().any(|n| n == "blob/1")),
            "A announces its features first"
        );
        assert!(conn.close_reason().is_none(), "the connection survived");
        eprintln!("unknown message, stream kind and datagrams: skipped, connection kept");

        let (mut fs, _fr) = conn.open_bi().await.expect("blob stream");
        fs.write_all(&jhack::proto::StreamKind::BLOB.to_bytes())
            .await
            .expect("write");
        fs.write_all(&frame(&g.bytes(60))).await.expect("write");
        let _ = fs.finish();
        let t = Instant::now();
        match closed_within(&conn, wait).await {
            Closed::ByA(1, r) if r == "malformed request" => {}
            other => panic!("after a garbage blob request: {other:?}"),
        }
        eprintln!(
            "garbage blob request: closed by A in {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        assert!(
            sa_ref.exited().is_none(),
            "A died after a garbage blob request"
        );

        // The hammer: many connections of random garbage, a batch at a time.
        let t = Instant::now();
        let mut closed = 0;
        for _ in 0..10 {
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let n = 1 + (g.bytes(1)[0] as usize) * 4;
                let bytes = g.bytes(n);
                let conn = endpoint
                    .connect_with(config.clone(), addr, "jhack")
                    .expect("connect");
                tasks.push(tokio::spawn(async move {
                    let conn = conn.await.map_err(|e| e.to_string())?;
                    let (mut send, _recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
                    send.write_all(&bytes).await.map_err(|e| e.to_string())?;
                    let _ = send.finish();
                    Ok::<Closed, String>(closed_within(&conn, wait).await)
                }));
            }
            for t in tasks {
                match t.await.expect("task") {
                    Ok(Closed::ByA(1, r)) if r == "bad hello" => closed += 1,
                    other => panic!("a garbage connection: {other:?}"),
                }
            }
        }
        let secs = t.elapsed().as_secs_f64();
        assert!(sa_ref.exited().is_none(), "A died under the hammer");
        endpoint.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        (closed, secs)
    };
    // Nothing in there may hang the test (a peer that never answers, say).
    let hammered = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), raw_client)
            .await
            .expect("the raw client took over a minute")
    });
    drop(rt);
    eprintln!(
        "hammer: {} garbage connections closed by A in {:.2} s",
        hammered.0, hammered.1
    );
    assert_eq!(hammered.0, 200);
    assert!(sa.exited().is_none(), "A died:\n{}", sa.stderr());

    // A still serves its real peers.
    let o = b.play_on("airhorn", "a");
    ok(&o, "play airhorn --peer a after the garbage");
    assert!(
        stderr(&o).contains("\"airhorn\" playing on a"),
        "{}",
        stderr(&o)
    );
    sa.wait_for("bee played \"airhorn\" here", LINE);
    let o = a.jhack(&["peer", "list", "--json"]);
    ok(&o, "peer list");
    let log = sa.stop();
    assert!(log.contains("malformed"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_transfer_killed_halfway_resumes_without_fetching_again_what_was_verified() {
    if !cfg!(feature = "test-hooks") {
        skip(
            "a_transfer_killed_halfway_resumes_without_fetching_again_what_was_verified",
            "built without the test-hooks feature (scripts/test.sh turns it on)",
        );
        return;
    }
    let a = Peer::new("A");
    let b = Peer::new("B");
    a.trust(&b, "bee", "play", false);
    b.trust(&a, "a", "play", true);
    let src = b.home().join("noise.wav");
    sh(&format!(
        "sox -n -r 48000 -c 2 -b 24 {} synth 35 whitenoise gain -12",
        src.display()
    ));
    let size = std::fs::metadata(&src).unwrap().len();
    let hex = b.import(&src, "noise");
    let short = &hex[..12];
    let mut sa = a.serve(false, &[]);
    let mut sb = b.play_on_bg(
        "noise",
        "a",
        &[("JHACK_TEST_SEND_BYTES_PER_SEC", "2000000")],
    );

    // Kill A halfway through.
    let part = a.partial(&hex);
    let deadline = Instant::now() + Duration::from_secs(30);
    let at_kill = loop {
        let have = std::fs::metadata(&part).map_or(0, |m| m.len());
        if have * 100 >= size * 45 {
            sa.kill9();
            break std::fs::metadata(&part).map_or(0, |m| m.len());
        }
        assert!(
            sb.exited().is_none(),
            "B's play ended early:\n{}",
            sb.stderr()
        );
        assert!(
            Instant::now() < deadline,
            "the transfer did not get halfway ({have} of {size} bytes):\n{}",
            sa.stderr()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        at_kill * 100 >= size * 30 && at_kill * 100 <= size * 70,
        "killed at {at_kill} of {size} bytes"
    );
    let first_log = sa.stderr();
    assert!(
        first_log.contains("bee played \"noise\" here: fetching it"),
        "{first_log}"
    );
    assert!(!first_log.contains("kept \"noise\""), "{first_log}");
    drop(sa);
    sb.kill9();
    drop(sb);

    // Again, at full speed: only what was not verified comes over the network.
    let mut sa = a.serve(false, &[]);
    let o = b.play_on("noise", "a");
    ok(&o, "play noise --peer a (again)");
    assert!(
        stderr(&o).contains("\"noise\" playing on a (sent to it)"),
        "{}",
        stderr(&o)
    );
    let resuming = sa.wait_for(&format!("resuming {short} from bee: "), LINE);
    let resumed = number_before(&resuming, " bytes already verified") as u64;
    sa.wait_for("kept \"noise\" from bee", LINE);
    let log = sa.stop();
    let (total, from_disk, received, repaired) = fetched_figures(&log, short);
    eprintln!(
        "killed at {at_kill} of {size} bytes; {resuming}; then {received} received, {from_disk} from disk"
    );
    assert_eq!(total, size);
    assert!(
        resumed > 0 && resumed <= at_kill,
        "{resuming} (killed at {at_kill})"
    );
    assert!(
        at_kill - resumed < 2 * GROUP,
        "lost {} bytes",
        at_kill - resumed
    );
    assert_eq!(from_disk, resumed);
    assert!(received < size, "{received} received of {size}");
    assert!(
        (size - resumed).abs_diff(received) <= GROUP,
        "{received} received, {} missing",
        size - resumed
    );
    assert_eq!(repaired, 0);
    same_bytes(&a.blob(&hex), &src);
    assert!(!part.exists(), "the partial file was left behind");
    a.check_clean();
}

#[test]
fn a_byte_flipped_in_transit_is_detected_and_fetched_again() {
    if !cfg!(feature = "test-hooks") {
        skip(
            "a_byte_flipped_in_transit_is_detected_and_fetched_again",
            "built without the test-hooks feature (scripts/test.sh turns it on)",
        );
        return;
    }
    let a = Peer::new("A");
    let b = Peer::new("B");
    a.trust(&b, "bee", "play", false);
    b.trust(&a, "a", "play", true);
    let src = b.home().join("hiss.wav");
    sh(&format!(
        "sox -n -r 48000 -c 2 -b 16 {} synth 5.5 whitenoise gain -12",
        src.display()
    ));
    let size = std::fs::metadata(&src).unwrap().len();
    assert!(size > 10 * GROUP);
    let hex = b.import(&src, "hiss");
    let short = &hex[..12];
    let mut sa = a.serve(false, &[]);
    let mut c = jhack(b.home());
    c.args(["play", "hiss", "--peer", "a"])
        .env("JHACK_TEST_CORRUPT_GROUP", "3");
    let o = run(c, COMMAND);
    ok(&o, "play hiss --peer a");
    let bad = sa.wait_for(
        &format!("group 3 of {short} from bee failed verification: discarded, asking again"),
        LINE,
    );
    sa.wait_for("kept \"hiss\" from bee", LINE);
    let log = sa.stop();
    let (total, _, received, repaired) = fetched_figures(&log, short);
    eprintln!("{bad}; {received} bytes received for {total}, {repaired} group repaired");
    assert_eq!(total, size);
    assert_eq!(repaired, 1);
    assert!(log.matches("failed verification").count() == 1, "{log}");
    same_bytes(&a.blob(&hex), &src);
    a.check_clean();
}

#[test]
fn peer_list_shows_online_state_and_round_trip() {
    let a = Peer::new("A");
    let b = Peer::new("B");
    a.trust(&b, "bee", "play", true);
    b.trust(&a, "a", "play", true);
    let sa = a.serve(false, &[]);
    let sb = b.serve(false, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let bee = loop {
        let o = a.jhack(&["peer", "list", "--json"]);
        ok(&o, "peer list --json");
        let peers: Vec<serde_json::Value> =
            serde_json::from_str(stdout(&o).trim()).expect("peer list JSON");
        assert_eq!(peers.len(), 1, "{peers:?}");
        let bee = peers[0].clone();
        assert_eq!(bee["name"], "bee");
        assert_eq!(bee["id"], b.id.as_str());
        if bee["online"] == true && bee["rtt_ms"].is_number() {
            break bee;
        }
        assert!(
            Instant::now() < deadline,
            "B never showed online with a round trip: {bee}\n{}",
            sa.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let rtt = bee["rtt_ms"].as_f64().unwrap();
    eprintln!("A sees bee: {bee}");
    assert!(rtt > 0.0 && rtt < 1000.0, "{bee}");
    assert_eq!(bee["address"], b.addr().as_str());
    // The table says the same.
    let o = a.jhack(&["peer", "list"]);
    ok(&o, "peer list");
    assert!(stdout(&o).contains("online, "), "{}", stdout(&o));
    // And once B stops, A sees it go.
    let b_log = sb.stop();
    assert!(b_log.contains("a is online"), "{b_log}");
    let mut sa = sa;
    sa.wait_for("bee went offline", LINE);
    let o = a.jhack(&["peer", "list", "--json"]);
    let peers: Vec<serde_json::Value> = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(peers[0]["online"], false, "{peers:?}");
    sa.stop();
}

#[test]
fn a_file_played_on_a_peer_is_imported_first_and_sent() {
    let a = Peer::new("A");
    let b = Peer::new("B");
    a.trust(&b, "bee", "play", false);
    b.trust(&a, "a", "play", true);
    let file = b.home().join("outside.flac");
    sh(&format!(
        "sox -n -r 44100 -c 1 {} synth 1.5 sine 523 gain -6",
        file.display()
    ));
    let mut sa = a.serve(false, &[]);
    let o = b.play_on(file.to_str().expect("utf-8 path"), "a");
    ok(&o, "play FILE --peer a");
    let err = stderr(&o);
    assert!(
        err.contains("imported") && err.contains("\"outside\""),
        "{err}"
    );
    assert!(
        err.contains("\"outside\" playing on a (sent to it)"),
        "{err}"
    );
    sa.wait_for("kept \"outside\" from bee", LINE);
    drop(sa);
    // It is in B's library now (that is how peers fetch it), and the same bytes in A's.
    assert_eq!(b.sound("outside")["origin"], "local");
    assert_eq!(a.sound("outside")["origin"], "remote");
}

#[test]
fn through_a_running_jhack_a_play_on_a_peer_connects_first_and_imports_a_file() {
    let a = Peer::new("A");
    let b = Peer::new("B");
    a.trust(&b, "bee", "play", true);
    b.trust(&a, "a", "play", true);
    let file = b.home().join("through.wav");
    sh(&format!(
        "sox -n -r 48000 -c 2 -b 16 {} synth 0.8 sine 660 gain -6",
        file.display()
    ));
    // B's serve owns B's home; A is not up yet, so B cannot be connected to it.
    let sb = b.serve(false, &[]);
    let mut sa = a.serve(false, &[]);
    // Straight away: B's running jhack dials A if it must, imports the file, plays.
    let o = b.play_on(file.to_str().expect("utf-8 path"), "a");
    ok(&o, "play FILE --peer a through B's serve");
    assert!(stderr(&o).contains("playing on a"), "{}", stderr(&o));
    sa.wait_for("kept \"through\" from bee", LINE);
    // A peer nobody can reach: a clear error, status 2.
    drop(sa);
    std::thread::sleep(Duration::from_millis(300));
    let o = b.play_on("airhorn", "a");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("offline"), "{}", stderr(&o));
    let log = sb.stop();
    assert!(log.contains("by a command"), "{log}");
}

#[test]
fn strangers_refused_at_the_same_time_are_each_named_with_their_own_address() {
    // Two strangers keep dialling A (a serve each, A's address trusted there): every
    // refusal A reports pairs an id with the address that id came from, however the
    // handshakes interleave.
    let a = Peer::new("A");
    let (c, d) = (Peer::new("C"), Peer::new("D"));
    c.trust(&a, "a", "play", true);
    d.trust(&a, "a", "play", true);
    let mut sa = a.serve(false, &[]);
    let sc = c.serve(false, &[]);
    let sd = d.serve(false, &[]);
    for p in [&c, &d] {
        sa.wait_for(
            &format!("refused unknown peer {} from {};", p.id, p.addr()),
            Duration::from_secs(15),
        );
    }
    drop((sc, sd));
    let log = sa.stop();
    let mut seen = 0;
    for line in log.lines().filter(|l| l.contains("refused unknown peer")) {
        seen += 1;
        let right = [&c, &d]
            .iter()
            .any(|p| line.contains(&format!("{} from {};", p.id, p.addr())));
        assert!(right, "a refusal names the wrong address: {line}");
    }
    eprintln!("{seen} refusals, each with its own address");
}

#[test]
fn through_a_tunnel_trust_and_permissions_hold_end_to_end() {
    // A stream-carried route (here a plain pipe to `jhack tunnel-end`, as SSH would
    // carry it): B reaches A only through it. What A allows B is what B gets; a
    // stranger using the same tunnel is refused as anywhere.
    let (a, b, c) = (Peer::new("A"), Peer::new("B"), Peer::new("C"));
    a.trust(&b, "bee", "play", false);
    let t = free_port();
    let via = format!("127.0.0.1:{t}");
    for (x, name) in [(&b, "a"), (&c, "a")] {
        ok(
            &x.jhack(&[
                "peer", "add", &a.id, &via, "--name", name, "--allow", "play",
            ]),
            "jhack peer add (through the tunnel)",
        );
    }
    let mut sa = a.serve(false, &[]);
    let end = format!(
        "{} --home {} tunnel-end --to {}",
        env!("CARGO_BIN_EXE_jhack"),
        a.home().display(),
        a.addr()
    );
    let mut cmd = common::jhack(b.home());
    cmd.args(["tunnel", "--listen", &via, "--", "sh", "-c", &end]);
    let mut tunnel = Proc::start("B (tunnel)", cmd);
    tunnel.wait_for("peers reach the far end through", LINE);
    // B plays on A through the tunnel.
    let o = b.play_on("airhorn", "a");
    ok(&o, "a play through the tunnel");
    sa.wait_for("bee played \"airhorn\" here", LINE);
    // A stranger through the same tunnel is refused at the handshake.
    let o = c.play_on("airhorn", "a");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(error_lines(&o).len(), 1, "{}", stderr(&o));
    let short: String = c.id.chars().take(9).collect();
    sa.wait_for(&short, LINE);
    let log = sa.stop();
    assert_eq!(
        log.matches(" played \"").count(),
        1,
        "only bee's play played:\n{log}"
    );
    drop(tunnel);
}
