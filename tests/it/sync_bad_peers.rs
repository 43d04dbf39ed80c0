//! Library sync against a peer that lies: a node of our own making answers the real
//! sync service's asks with garbage, with more records than a batch, with a message
//! larger than any allowed, and with stamps a year ahead. Each is refused with one
//! clear reason (the peer's sync standing), and the library keeps every sound it had
//! and takes nothing it should not.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jhack::app::sync::{PeerSync, SyncNews, SyncService};
use jhack::domain::SoundId;
use jhack::library::Library;
use jhack::net::request::RequestHandler;
use jhack::net::{
    Feature, Identity, Node, NodeConfig, PeerId, Permission, Permissions, SyncRelation, TrustStore,
    TrustedPeer,
};
use jhack::proto::StreamKind;
use jhack::sync::hlc::{Device, Stamp};
use jhack::sync::record::{Facts, Record};
use jhack::sync::replica::{BATCH, Msg};
use jhack::sync::wire;

use crate::common::peers::free_port;

/// What the lying peer answers every ask with.
type Answer = Arc<Mutex<Box<dyn Fn() -> Vec<u8> + Send>>>;

fn node(dir: &Path, me: Identity, listen: Option<u16>, features: Vec<Feature>) -> Node {
    Node::start_with(
        me,
        NodeConfig {
            listen: listen.map(|p| format!("127.0.0.1:{p}").parse().expect("addr")),
            name: "test".into(),
            trust_file: dir.join("peers.toml"),
            partial_dir: dir.join("partial"),
            dial: listen.is_none(),
            triggers_per_second: 100.0,
            trigger_burst: 100,
        },
        Arc::new(|_: &SoundId| None),
        Arc::new(|_| {}),
        features,
    )
    .expect("node")
}

fn trust(dir: &Path, peer: PeerId, addr: Option<String>, sync: Option<SyncRelation>) {
    let mut t = TrustStore::load(&dir.join("peers.toml")).expect("trust");
    t.add(TrustedPeer {
        name: "liar".into(),
        id: peer,
        address: addr,
        allow: Permissions::parse("read,write").expect("perms"),
        sync,
        shares: Vec::new(),
        speakers: false,
    })
    .expect("add");
    t.save().expect("save");
}

fn record(n: u32, wall_ms: u64) -> Record {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&n.to_be_bytes());
    let facts = Facts {
        frames: 48_000,
        sample_rate: 48_000,
        channels: 1,
        format: "wav/pcm_s16le".into(),
        size: 96_044,
        loudness_lufs: None,
    };
    let at = Stamp {
        wall_ms,
        counter: 0,
        device: Device(99),
    };
    Record::new(SoundId(id), facts, &format!("lie {n}"), at)
}

fn changes(records: Vec<Record>) -> Vec<u8> {
    let upto = records.len() as u64;
    wire::encode(&Msg::Changes {
        since: 0,
        upto,
        records,
        more: false,
        fingerprint: [7; 32],
    })
}

fn now_ms() -> u64 {
    jhack::library::now_ms()
}

/// Waits until the liar's standing satisfies `f`.
fn standing(service: &SyncService, liar: &PeerId, what: &str, f: impl Fn(&PeerSync) -> bool) {
    let t0 = Instant::now();
    loop {
        if let Some(s) = service.status_of(liar)
            && f(&s)
        {
            eprintln!("{what}: {s:?}");
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{what}: the standing is {:?}",
            service.status_of(liar)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_lying_peer_is_refused_with_a_reason_and_the_library_keeps_what_it_had() {
    let (dh, dl) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let (me, them) = (
        Identity::load_or_create(&dh.path().join("identity")).expect("identity"),
        Identity::load_or_create(&dl.path().join("identity")).expect("identity"),
    );
    let port = free_port();
    trust(
        dh.path(),
        them.id,
        Some(format!("127.0.0.1:{port}")),
        Some(SyncRelation::Mirror),
    );
    trust(dl.path(), me.id, None, None);
    let liar_id = them.id;
    // The liar: a node that answers every sync ask with whatever is set now.
    let answer: Answer = Arc::new(Mutex::new(Box::new(|| b"not a sync message".to_vec())));
    let asks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handler: RequestHandler = {
        let answer = answer.clone();
        let asks = asks.clone();
        Arc::new(move |_, _, reply| {
            asks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let bytes = (answer.lock().unwrap())();
            let _ = reply.send(bytes);
        })
    };
    let lies = Feature {
        name: "sync/1",
        permission: Permission::Read,
        datagrams: Vec::new(),
        messages: Vec::new(),
        requests: vec![(StreamKind::SYNC, handler)],
    };
    let _liar = node(dl.path(), them, Some(port), vec![lies]);
    // The honest side: a library with one sound, the real sync service.
    let lib = Arc::new(
        Library::open(&dh.path().join("library"), &dh.path().join("lock")).expect("library"),
    );
    let temp = lib.stage_bytes(&[5u8; 4000], Some("wav")).expect("stage");
    lib.add(
        temp,
        jhack::library::NewSound {
            name: "mine".into(),
            tags: vec![],
            key: Some("1".into()),
            gain_db: 0.0,
            frames: 1000,
            sample_rate: 48_000,
            channels: 1,
            format: "wav/pcm_s16le".into(),
            loudness_lufs: None,
            origin: jhack::domain::Origin::Local,
        },
    )
    .expect("add");
    let news: Arc<Mutex<Vec<SyncNews>>> = Arc::default();
    let sink = {
        let news = news.clone();
        Arc::new(move |n| news.lock().unwrap().push(n))
    };
    let (mut service, features) = SyncService::new(lib.clone(), sink).expect("service");
    let honest = Arc::new(node(dh.path(), me, None, features));
    service.attach(honest.clone()).expect("attach");
    let listed = |lib: &Library| lib.list().expect("list").len();

    // Garbage.
    standing(&service, &liar_id, "garbage", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("malformed sync message"))
    });
    assert_eq!(listed(&lib), 1);

    // More records than a batch.
    *answer.lock().unwrap() =
        Box::new(|| changes((0..BATCH as u32 + 1).map(|n| record(n, now_ms())).collect()));
    standing(&service, &liar_id, "too many records", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("more than one batch"))
    });
    assert_eq!(listed(&lib), 1);

    // An answer larger than any message may be: refused while it is read.
    *answer.lock().unwrap() = Box::new(|| vec![0u8; wire::MAX_MESSAGE + 1]);
    standing(&service, &liar_id, "oversized", |s| {
        s.last_error.as_deref().is_some_and(|e| e.contains("liar"))
            && s.last_error
                .as_deref()
                .is_some_and(|e| !e.contains("more than one batch"))
    });
    assert_eq!(listed(&lib), 1);

    // A stamp a year ahead is refused; the honest record beside it is taken.
    let year = 365 * 24 * 3600 * 1000;
    *answer.lock().unwrap() =
        Box::new(move || changes(vec![record(1, now_ms() + year), record(2, now_ms())]));
    standing(&service, &liar_id, "a year ahead", |s| {
        s.last_error.is_none() && s.pulled >= 2
    });
    let names: Vec<String> = lib
        .list()
        .expect("list")
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(names.contains(&"lie 2".to_string()), "{names:?}");
    assert!(!names.contains(&"lie 1".to_string()), "{names:?}");
    assert!(names.contains(&"mine".to_string()));
    let told: Vec<String> = news
        .lock()
        .unwrap()
        .iter()
        .flat_map(|n| n.notes.clone())
        .collect();
    assert!(
        told.iter()
            .any(|t| t.contains("ahead of this machine's clock")),
        "{told:?}"
    );
    eprintln!("told: {:?}", told.first());
    // It answers at once with the same records every time: not asked in a loop.
    let before = asks.load(std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(3));
    let asked = asks.load(std::sync::atomic::Ordering::Relaxed) - before;
    eprintln!("asks in 3 s of a peer that never holds them: {asked}");
    assert!(asked <= 8, "{asked} asks in 3 s");
    // The sound taken from the liar is remote here (no file), and the library is sound.
    let report = lib.check().expect("check");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.remote, 1);
    drop(service);
}

#[test]
fn a_lying_owner_of_shared_sounds_is_refused_with_a_reason_and_nothing_is_kept() {
    use jhack::sync::share::{self, Offered, ShareMsg};
    let (dh, dl) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let (me, them) = (
        Identity::load_or_create(&dh.path().join("identity")).expect("identity"),
        Identity::load_or_create(&dl.path().join("identity")).expect("identity"),
    );
    let port = free_port();
    trust(
        dh.path(),
        them.id,
        Some(format!("127.0.0.1:{port}")),
        Some(SyncRelation::Subscribe),
    );
    trust(dl.path(), me.id, None, None);
    let liar_id = them.id;
    let answer: Answer = Arc::new(Mutex::new(Box::new(|| b"not a share message".to_vec())));
    let asks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handler: RequestHandler = {
        let (answer, asks) = (answer.clone(), asks.clone());
        Arc::new(move |_, _, reply| {
            asks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = reply.send((answer.lock().unwrap())());
        })
    };
    let lies = Feature {
        name: "share/1",
        permission: Permission::Read,
        datagrams: Vec::new(),
        messages: Vec::new(),
        requests: vec![(StreamKind::SHARE, handler)],
    };
    let _liar = node(dl.path(), them, Some(port), vec![lies]);
    let lib = Arc::new(
        Library::open(&dh.path().join("library"), &dh.path().join("lock")).expect("library"),
    );
    let (mut service, features) = SyncService::new(lib.clone(), Arc::new(|_| {})).expect("service");
    let honest = Arc::new(node(dh.path(), me, None, features));
    service.attach(honest.clone()).expect("attach");
    let shared = |lib: &Library| lib.shared_sounds().expect("shared").len();
    let offered = |n: u32, gain_db: f32| {
        let r = record(n, now_ms());
        Offered {
            id: r.id,
            seq: u64::from(n) + 1,
            facts: r.facts,
            name: format!("offered {n}"),
            gain_db,
            tags: vec!["fx".into()],
            deleted: false,
        }
    };
    let offer = move |sounds: Vec<Offered>| {
        share::encode(&ShareMsg::Offer {
            since: 0,
            upto: 10,
            sounds,
            more: false,
            full: false,
            fingerprint: [0; 32],
        })
    };

    // Garbage.
    standing(&service, &liar_id, "garbage", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("malformed share message"))
    });
    assert_eq!(shared(&lib), 0);
    // A number that is not one.
    *answer.lock().unwrap() = Box::new(move || offer(vec![offered(1, f32::NAN)]));
    standing(&service, &liar_id, "not a number", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("not finite"))
    });
    assert_eq!(shared(&lib), 0);
    // More sounds than a batch.
    *answer.lock().unwrap() =
        Box::new(move || offer((0..BATCH as u32 + 1).map(|n| offered(n, 0.0)).collect()));
    standing(&service, &liar_id, "too many", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("more than one batch"))
    });
    assert_eq!(shared(&lib), 0);
    // Then an honest offer is taken, and the failures did not make it ask in a loop.
    *answer.lock().unwrap() = Box::new(move || offer(vec![offered(7, -3.0)]));
    let t0 = Instant::now();
    while shared(&lib) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the honest offer was not taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = lib.shared_sounds().expect("shared");
    assert_eq!(s[0].sound.name, "offered 7");
    let n = asks.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{n} asks in {:.1} s of lies", t0.elapsed().as_secs_f64());
    assert!(n < 60, "{n} asks: the follower spun");
    assert!(lib.check().expect("check").is_clean());
}
