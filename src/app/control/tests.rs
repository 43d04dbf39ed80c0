use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::protocol::{decode, decode_request, encode};
use super::*;
use crate::domain::{Origin, SoundId, SoundMeta};

const WAIT: Duration = Duration::from_secs(5);

fn sample_meta() -> SoundMeta {
    SoundMeta {
        id: SoundId([7; 32]),
        name: "airhorn".into(),
        tags: vec!["fx".into()],
        key: Some("a".into()),
        gain_db: -1.5,
        frames: 48_000,
        sample_rate: 48_000,
        channels: 2,
        format: "wav/pcm_s16le".into(),
        size: 192_044,
        added_ms: 1_700_000_000_000,
        loudness_lufs: Some(-14.0),
        last_played_ms: None,
        origin: Origin::Local,
    }
}

/// Answers every request at once, the way the owner would.
fn answer(req: Request) -> Response {
    match req {
        Request::Play { target, gain_db } => Response::Ok {
            message: format!("playing {target} at {gain_db} dB"),
        },
        Request::Stop => Response::Ok {
            message: "stopped".into(),
        },
        Request::Import { paths, .. } => {
            let (bad, good): (Vec<_>, Vec<_>) = paths
                .iter()
                .partition(|p| p.extension().is_some_and(|e| e == "txt"));
            Response::Imported {
                imported: good.len(),
                already_present: 0,
                failed: bad
                    .iter()
                    .map(|p| format!("{}: not audio", p.display()))
                    .collect(),
            }
        }
        Request::List => Response::Sounds {
            sounds: vec![sample_meta()],
            not_here: vec![],
            pinned: vec![],
            owners: Vec::new(),
        },
        Request::Peers => Response::Peers { peers: vec![] },
        Request::PlayOn { target, peers, .. } => Response::Ok {
            message: format!("playing {target} on {}", peers.join(", ")),
        },
        Request::Ping => Response::Pong {
            pid: std::process::id(),
        },
        Request::Edit { name, .. } => Response::Sound {
            sound: SoundMeta {
                name: name.unwrap_or_else(|| "airhorn".into()),
                ..sample_meta()
            },
        },
        Request::Remove { target } => Response::Ok {
            message: format!("removed {target}"),
        },
        Request::Pin { target, on } => Response::Ok {
            message: format!("pinned {target}: {on}"),
        },
        Request::Browse { peer } => Response::Offer {
            peer,
            sounds: Vec::new(),
        },
        Request::Copy { target, .. } => Response::Ok {
            message: format!("copied {target}"),
        },
        Request::Sync { peer, .. } => Response::Synced {
            files: None,
            status: crate::app::sync::PeerSync {
                peer,
                in_sync: true,
                ..Default::default()
            },
        },
        Request::Engine => Response::Recorded { take: None },
        Request::RecordStop => Response::Recorded {
            take: Some("recording-1.wav".into()),
        },
        Request::Switch { .. }
        | Request::RecordStart
        | Request::RecordSave { .. }
        | Request::RecordDiscard { .. }
        | Request::Talk { .. } => Response::Ok {
            message: "done".into(),
        },
    }
}

/// A handler thread answering with [`answer`]; it ends when the server and its
/// connections are gone.
fn fake_handler() -> mpsc::Sender<Call> {
    let (tx, rx) = mpsc::channel::<Call>();
    std::thread::spawn(move || {
        for (req, reply) in rx {
            let _ = reply.send(answer(req));
        }
    });
    tx
}

fn fast_limits() -> Limits {
    Limits {
        read_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_secs(1),
        reply_timeout: Duration::from_secs(1),
        import_timeout: Duration::from_secs(1),
        max_connections: 4,
        ..Limits::default()
    }
}

fn start(dir: &Path) -> (ControlServer, PathBuf) {
    start_with(dir, fast_limits())
}

fn start_with(dir: &Path, limits: Limits) -> (ControlServer, PathBuf) {
    let path = dir.join("jhack.sock");
    let server = ControlServer::bind_with(&path, fake_handler(), limits).expect("bind");
    (server, path)
}

fn ping(path: &Path) {
    let reply = request(path, &Request::Ping, WAIT).expect("ping");
    assert_eq!(
        reply,
        Response::Pong {
            pid: std::process::id()
        }
    );
}

/// Sends raw bytes, closes the writing side, and returns every reply line until the
/// server closes (a reset after the server stopped reading counts as closing).
fn raw(path: &Path, bytes: &[u8]) -> Vec<Response> {
    let mut stream = UnixStream::connect(path).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    read_replies(&mut stream)
}

fn read_replies(stream: &mut UnixStream) -> Vec<Response> {
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| decode::<Response>(l).expect("a reply line"))
        .collect()
}

fn error_status(resp: &Response) -> u8 {
    match resp {
        Response::Error { status, .. } => *status,
        other => panic!("not an error: {other:?}"),
    }
}

#[test]
fn every_request_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, path) = start(dir.path());
    let cases = [
        (
            Request::Play {
                target: "airhorn".into(),
                gain_db: -3.0,
            },
            Response::Ok {
                message: "playing airhorn at -3 dB".into(),
            },
        ),
        (
            Request::Stop,
            Response::Ok {
                message: "stopped".into(),
            },
        ),
        (
            Request::Import {
                paths: vec!["/abs/a.wav".into(), "/abs/b.txt".into()],
                name: Some("a".into()),
                tags: vec!["fx".into()],
                key: Some("q".into()),
                gain_db: 2.0,
            },
            Response::Imported {
                imported: 1,
                already_present: 0,
                failed: vec!["/abs/b.txt: not audio".into()],
            },
        ),
        (
            Request::List,
            Response::Sounds {
                sounds: vec![sample_meta()],
                not_here: vec![],
                pinned: vec![],
                owners: Vec::new(),
            },
        ),
        (
            Request::Ping,
            Response::Pong {
                pid: std::process::id(),
            },
        ),
    ];
    for (req, want) in cases {
        assert_eq!(request(&path, &req, WAIT).expect("reply"), want, "{req:?}");
    }
}

#[test]
fn json_shapes_are_as_documented() {
    let reqs = [
        (
            r#"{"v":1,"type":"play","target":"airhorn","gain_db":-3.0}"#,
            Request::Play {
                target: "airhorn".into(),
                gain_db: -3.0,
            },
        ),
        (
            r#"{"v":1,"type":"play","target":"airhorn"}"#,
            Request::Play {
                target: "airhorn".into(),
                gain_db: 0.0,
            },
        ),
        (r#"{"v":1,"type":"stop"}"#, Request::Stop),
        (
            r#"{"v":1,"type":"import","paths":["/abs/a.wav"],"name":null,"tags":["fx"],"key":"a","gain_db":0.0}"#,
            Request::Import {
                paths: vec!["/abs/a.wav".into()],
                name: None,
                tags: vec!["fx".into()],
                key: Some("a".into()),
                gain_db: 0.0,
            },
        ),
        (
            r#"{"v":1,"type":"import","paths":["/abs/a.wav"]}"#,
            Request::Import {
                paths: vec!["/abs/a.wav".into()],
                name: None,
                tags: vec![],
                key: None,
                gain_db: 0.0,
            },
        ),
        (r#"{"type":"list","v":1}"#, Request::List),
        (r#"{"v":1,"type":"ping"}"#, Request::Ping),
    ];
    for (text, want) in reqs {
        assert_eq!(decode_request(text.as_bytes()).expect(text), want);
        let line = encode(&want).expect("encode");
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(
            decode_request(&line[..line.len() - 1]).expect("again"),
            want
        );
    }
    let value = |r: &Response| -> serde_json::Value {
        serde_json::from_slice(&encode(r).expect("encode")).expect("json")
    };
    assert_eq!(
        value(&Response::Ok {
            message: "m".into()
        }),
        serde_json::json!({"v": 1, "type": "ok", "message": "m"})
    );
    assert_eq!(
        value(&Response::Imported {
            imported: 1,
            already_present: 2,
            failed: vec!["/x: bad".into()]
        }),
        serde_json::json!({"v": 1, "type": "imported", "imported": 1, "already_present": 2, "failed": ["/x: bad"]})
    );
    assert_eq!(
        value(&Response::bad_input("no")),
        serde_json::json!({"v": 1, "type": "error", "message": "no", "status": 2})
    );
    assert_eq!(
        value(&Response::failure("no")),
        serde_json::json!({"v": 1, "type": "error", "message": "no", "status": 1})
    );
    assert_eq!(
        value(&Response::Pong { pid: 9 }),
        serde_json::json!({"v": 1, "type": "pong", "pid": 9})
    );
    let sounds = value(&Response::Sounds {
        sounds: vec![sample_meta()],
        not_here: vec![],
        pinned: vec![],
        owners: Vec::new(),
    });
    assert_eq!(sounds["type"], "sounds");
    assert_eq!(sounds["sounds"][0]["name"], "airhorn");
}

#[test]
fn the_socket_is_private_and_nothing_else_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, path) = start(dir.path());
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("jhack.sock")]);
}

#[test]
fn a_stale_socket_is_replaced_and_other_files_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jhack.sock");
    drop(UnixListener::bind(&path).expect("stale"));
    assert!(path.exists(), "the stale file stays behind");
    assert!(matches!(
        request(&path, &Request::Ping, WAIT),
        Err(ControlError::NoServer { .. })
    ));
    let server = ControlServer::bind_with(&path, fake_handler(), fast_limits()).expect("bind");
    ping(&path);
    drop(server);

    std::fs::write(&path, b"not a socket").expect("write");
    let err = ControlServer::bind_with(&path, fake_handler(), fast_limits()).expect_err("file");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), b"not a socket");
}

#[test]
fn bad_requests_get_an_error_and_lose_their_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, path) = start(dir.path());
    let ping_line = r#"{"v":1,"type":"ping"}"#;
    let cases: Vec<(Vec<u8>, u8)> = vec![
        (b"garbage".to_vec(), 2),
        (b"\n".to_vec(), 2),
        (b"[1,2,3]".to_vec(), 2),
        (br#"{"type":"ping"}"#.to_vec(), 2),
        (br#"{"v":2,"type":"ping"}"#.to_vec(), 1),
        (br#"{"v":"1","type":"ping"}"#.to_vec(), 1),
        (br#"{"v":1,"type":"dance"}"#.to_vec(), 2),
        (br#"{"v":1}"#.to_vec(), 2),
        (br#"{"v":1,"type":"ping","extra":true}"#.to_vec(), 2),
        (br#"{"v":1,"type":"play"}"#.to_vec(), 2),
        (br#"{"v":1,"type":"play","target":"  "}"#.to_vec(), 2),
        (
            br#"{"v":1,"type":"play","target":"x","gain_db":1e39}"#.to_vec(),
            2,
        ),
        (
            br#"{"v":1,"type":"play","target":"x","gain_db":"loud"}"#.to_vec(),
            2,
        ),
        (br#"{"v":1,"type":"import","paths":[]}"#.to_vec(), 2),
        (
            br#"{"v":1,"type":"import","paths":["rel.wav"]}"#.to_vec(),
            2,
        ),
        (vec![0xff, 0xfe, 0x00, b'{'], 2),
        ("[".repeat(10_000).into_bytes(), 2),
        (vec![b'a'; MAX_REQUEST_LINE + 1], 2),
    ];
    for (bytes, status) in cases {
        // A good request after the bad one on the same connection is never served.
        let mut sent = bytes.clone();
        sent.push(b'\n');
        sent.extend_from_slice(ping_line.as_bytes());
        sent.push(b'\n');
        let replies = raw(&path, &sent);
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
        assert_eq!(replies.len(), 1, "{shown}: {replies:?}");
        assert_eq!(error_status(&replies[0]), status, "{shown}: {replies:?}");
        ping(&path);
    }
}

#[test]
fn an_oversized_line_is_refused_before_it_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, path) = start(dir.path());
    let mut stream = UnixStream::connect(&path).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.set_write_timeout(Some(WAIT)).expect("timeout");
    // More than the limit, with no newline and the connection left open.
    let _ = stream.write_all(&vec![b' '; MAX_REQUEST_LINE + 10]);
    let replies = read_replies(&mut stream);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(error_status(&replies[0]), 2);
    ping(&path);
}

#[test]
fn several_requests_share_a_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, path) = start(dir.path());
    let replies = raw(
        &path,
        b"{\"v\":1,\"type\":\"ping\"}\n{\"v\":1,\"type\":\"stop\"}\n{\"v\":1,\"type\":\"ping\"}",
    );
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert!(matches!(replies[1], Response::Ok { .. }));
    assert!(matches!(replies[2], Response::Pong { .. }));
}

#[test]
fn a_silent_client_is_dropped_without_holding_up_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits {
        read_timeout: Duration::from_secs(1),
        ..fast_limits()
    };
    let (_server, path) = start_with(dir.path(), limits.clone());
    let mut silent = UnixStream::connect(&path).expect("connect");
    silent.set_read_timeout(Some(WAIT)).expect("timeout");
    let started = Instant::now();
    ping(&path);
    assert!(started.elapsed() < limits.read_timeout, "served meanwhile");
    // Half a line, then nothing.
    silent.write_all(br#"{"v":1,"#).expect("write");
    let replies = read_replies(&mut silent);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(error_status(&replies[0]), 2);
    assert!(started.elapsed() >= limits.read_timeout);
    ping(&path);
}

#[test]
fn connections_beyond_the_cap_are_refused_until_others_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits {
        read_timeout: Duration::from_secs(2),
        ..fast_limits()
    };
    let (_server, path) = start_with(dir.path(), limits.clone());
    // Accepted in order: these take every slot before the ping below arrives.
    let mut silent: Vec<_> = (0..limits.max_connections)
        .map(|_| UnixStream::connect(&path).expect("connect"))
        .collect();
    match request(&path, &Request::Ping, WAIT).expect("a reply") {
        Response::Error { message, status } => {
            assert_eq!(status, 1);
            assert!(message.contains("busy"), "{message}");
        }
        other => panic!("not refused: {other:?}"),
    }
    for s in &mut silent {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        assert_eq!(read_replies(s).len(), 1);
    }
    drop(silent);
    let until = Instant::now() + WAIT;
    loop {
        match request(&path, &Request::Ping, WAIT).expect("a reply") {
            Response::Pong { .. } => break,
            other => assert!(Instant::now() < until, "still refused: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_owner_that_does_not_answer_gives_errors_not_hangs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jhack.sock");
    let (tx, rx) = mpsc::channel::<Call>();
    let limits = Limits {
        reply_timeout: Duration::from_millis(200),
        ..fast_limits()
    };
    let server = ControlServer::bind_with(&path, tx, limits).expect("bind");
    // Keeps the requests (and their reply senders) without answering.
    let keeper = std::thread::spawn(move || rx.iter().take(2).collect::<Vec<_>>());
    let reply = request(&path, &Request::Stop, WAIT).expect("a reply");
    assert!(
        matches!(&reply, Response::Error { status: 1, message } if message.contains("no reply")),
        "{reply:?}"
    );
    assert!(
        matches!(
            request(&path, &Request::Stop, Duration::from_millis(50)),
            Err(ControlError::Timeout { .. })
        ),
        "the client's own timeout"
    );
    // The owner goes away: its receiver is dropped.
    drop(keeper.join().expect("keeper"));
    let until = Instant::now() + WAIT;
    loop {
        let reply = request(&path, &Request::Ping, WAIT).expect("a reply");
        let Response::Error { status, message } = &reply else {
            panic!("{reply:?}");
        };
        assert_eq!(*status, 1);
        if message.contains("shutting down") {
            break;
        }
        // The dropped request above may still be waiting out its timeout.
        assert!(Instant::now() < until, "{reply:?}");
    }
    drop(server);
}

#[test]
fn dropping_the_server_removes_the_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, path) = start(dir.path());
    ping(&path);
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(1), "drop is prompt");
    assert!(!path.exists());
    assert!(matches!(
        request(&path, &Request::Ping, WAIT),
        Err(ControlError::NoServer { .. })
    ));
    // And the home can be served again.
    let (_server, path) = start(dir.path());
    ping(&path);
}

#[test]
fn a_replaced_socket_file_is_not_removed_on_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, path) = start(dir.path());
    std::fs::remove_file(&path).expect("remove");
    std::fs::write(&path, b"someone else's").expect("write");
    drop(server);
    assert_eq!(std::fs::read(&path).expect("read"), b"someone else's");
}

#[test]
fn a_path_that_is_not_utf8_cannot_be_sent() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, path) = start(dir.path());
    let odd = PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/\xff.wav"));
    let req = Request::Import {
        paths: vec![odd],
        name: None,
        tags: vec![],
        key: None,
        gain_db: 0.0,
    };
    assert!(matches!(
        request(&path, &req, WAIT),
        Err(ControlError::BadRequest { .. })
    ));
}

/// A small xorshift generator: deterministic, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random bytes, or a valid request with random damage.
fn fuzz_input(rng: &mut XorShift) -> Vec<u8> {
    const SEEDS: [&str; 6] = [
        r#"{"v":1,"type":"play","target":"airhorn","gain_db":-3.0}"#,
        r#"{"v":1,"type":"stop"}"#,
        r#"{"v":1,"type":"import","paths":["/a.wav","/b.txt"],"name":null,"tags":["x"],"key":"k","gain_db":0.0}"#,
        r#"{"v":1,"type":"list"}"#,
        r#"{"v":1,"type":"ping"}"#,
        r#"{"v":1,"type":"play","target":"\u00e9\ud83d\ude00","gain_db":1e38}"#,
    ];
    const ALPHABET: &[u8] = b"{}[]\":,\\ \n0123456789.-eEtrufalsnvpy";
    if rng.below(3) == 0 {
        let len = rng.below(300);
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut bytes = SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec();
    for _ in 0..=rng.below(6) {
        let at = rng.below(bytes.len() + 1);
        let byte = if rng.below(2) == 0 {
            ALPHABET[rng.below(ALPHABET.len())]
        } else {
            rng.next() as u8
        };
        match rng.below(4) {
            0 if at < bytes.len() => bytes[at] = byte,
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            2 => bytes.truncate(at),
            _ => bytes.insert(at, byte),
        }
    }
    bytes
}

#[test]
fn random_bytes_never_break_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, path) = start(dir.path());
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut answered = 0;
    for i in 0..1_500 {
        let input = fuzz_input(&mut rng);
        let replies = raw(&path, &input);
        answered += replies.len();
        for r in &replies {
            if let Response::Error { status, .. } = r {
                assert!(matches!(status, 1 | 2), "{r:?}");
            }
        }
        if i % 100 == 0 {
            ping(&path);
        }
    }
    assert!(answered >= 1_000, "{answered}");
    ping(&path);
    assert_eq!(server.panics(), 0);
}

#[test]
fn a_path_near_the_socket_address_limit_still_binds_privately() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Short enough for a socket address (107 bytes), too long for the staging one.
    let base = dir.path().as_os_str().len();
    assert!(base < 90, "{}", dir.path().display());
    let parent = dir.path().join("d".repeat(105 - base - 1));
    std::fs::create_dir(&parent).expect("mkdir");
    let path = parent.join("s");
    assert_eq!(path.as_os_str().len(), 107);
    let _server = ControlServer::bind_with(&path, fake_handler(), fast_limits()).expect("bind");
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert_eq!(std::fs::read_dir(&parent).expect("dir").count(), 1);
    ping(&path);
}
