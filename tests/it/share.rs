//! Sharing with another person, between real processes: alice offers the sounds she
//! tags `fx` to bob (`jhack share fx --with bob`), bob subscribes. Bob sees them
//! under her name and follows her changes live, plays, pins and copies them, is
//! refused when he edits one; when alice withdraws the share they leave bob's list
//! and her machine no longer serves their files to him. A peer without `read` is
//! refused with a clear message.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::peers::*;
use common::*;

/// How long a change may take to appear on the other side before the test fails.
const APPEAR: Duration = Duration::from_secs(5);

fn names(p: &Peer) -> Vec<String> {
    p.list()
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect()
}

fn listed(p: &Peer, name: &str) -> bool {
    names(p).iter().any(|n| n == name)
}

/// Fetches `hex` from `owner` as `who` (its identity, a node of its own) and gives
/// the result: `Ok` when every byte arrived, else why not.
fn fetch_as(who: &Peer, hex: &str, size: u64) -> Result<(), String> {
    use jhack::net::{Identity, Node, NodeConfig};
    let home = jhack::home::Home::at(who.home());
    let me = Identity::load_or_create(&home.identity_dir()).expect("identity");
    let node = Node::start(
        me,
        NodeConfig {
            listen: None,
            name: "bob".into(),
            trust_file: home.trust_file(),
            partial_dir: who.home().join("probe-partial"),
            dial: false,
            triggers_per_second: 100.0,
            trigger_burst: 100,
        },
        Arc::new(|_: &jhack::domain::SoundId| None),
        Arc::new(|_| {}),
    )
    .expect("node");
    let found = node.find("alice").expect("alice is trusted");
    node.connect(&found, Duration::from_secs(10))
        .expect("connect to alice");
    let mut id = [0u8; 32];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    let offer = jhack::proto::SoundOffer {
        id: jhack::domain::SoundId(id),
        size,
        name: "probe".into(),
        format: "wav/pcm_s16le".into(),
        frames: 1,
        sample_rate: 48_000,
        channels: 1,
        loudness_lufs: None,
    };
    let f = node.fetch(&found.id, &offer).map_err(|e| e.to_string())?;
    let r = f
        .wait_done(Duration::from_secs(10))
        .unwrap_or(Err(jhack::net::FetchError::Stalled(10)));
    node.shutdown();
    r.map_err(|e| e.to_string())
}

#[test]
fn a_shared_tag_is_seen_followed_played_and_copied_by_a_subscriber_and_withdrawn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let horn = sine_wav(dir.path(), "horn.wav", 440, 0.3, -6.0, 48_000, 1);
    let bell = sine_wav(dir.path(), "bell.wav", 660, 0.3, -6.0, 48_000, 1);
    let secret = sine_wav(dir.path(), "secret.wav", 220, 0.3, -6.0, 48_000, 1);
    let late = sine_wav(dir.path(), "late.wav", 880, 0.3, -6.0, 48_000, 1);
    let (alice, bob) = (Peer::new("alice"), Peer::new("bob"));
    // Alice lets bob read; bob subscribes to alice (and lets her do nothing).
    alice.trust(&bob, "bob", "read", false);
    ok(
        &bob.jhack(&[
            "peer",
            "add",
            &alice.id,
            &alice.addr(),
            "--name",
            "alice",
            "--allow",
            "none",
            "--sync",
            "subscribe",
        ]),
        "jhack peer add --sync subscribe",
    );
    let horn_id = alice.import(&horn, "horn");
    alice.import(&bell, "bell");
    let secret_id = alice.import(&secret, "secret");
    for s in ["horn", "bell"] {
        ok(&alice.jhack(&["edit", s, "--tag", "fx"]), "tag fx");
    }
    let o = alice.jhack(&["share", "fx", "--with", "bob"]);
    ok(&o, "jhack share");
    assert!(
        stdout(&o).contains("shared the sounds tagged fx with bob"),
        "{}",
        stdout(&o)
    );
    let o = alice.jhack(&["peer", "list"]);
    assert!(stdout(&o).contains("shared: fx"), "{}", stdout(&o));

    let sa = alice.serve(false, &[]);
    let sb = bob.serve(false, &[]);
    // Bob sees her shared sounds under her name, and only those.
    until("alice's sounds on bob", APPEAR, || {
        listed(&bob, "alice/horn") && listed(&bob, "alice/bell")
    });
    let all = names(&bob);
    assert!(!all.iter().any(|n| n.contains("secret")), "{all:?}");
    let h = bob.sound("alice/horn");
    assert_eq!(h["owner"], "alice", "{h}");
    assert_eq!(h["file"], "remote", "{h}");
    assert_eq!(h["tags"], serde_json::json!(["fx"]));
    // `jhack list --peer` asks alice what she offers now.
    let o = bob.jhack(&["list", "--peer", "alice", "--json"]);
    ok(&o, "jhack list --peer");
    let offer: Vec<serde_json::Value> = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    let mut offered: Vec<&str> = offer.iter().filter_map(|s| s["name"].as_str()).collect();
    offered.sort_unstable();
    assert_eq!(offered, ["bell", "horn"]);

    // Live: a sound alice tags fx appears on bob's list.
    alice.import(&late, "late");
    let t0 = Instant::now();
    ok(&alice.jhack(&["edit", "late", "--tag", "fx"]), "tag late");
    until("late on bob", APPEAR, || listed(&bob, "alice/late"));
    eprintln!(
        "a sound tagged fx by alice was listed by bob {:.0} ms later",
        t0.elapsed().as_secs_f64() * 1e3
    );
    // A rename follows.
    ok(&alice.jhack(&["edit", "late", "--name", "later"]), "rename");
    until("the rename on bob", APPEAR, || listed(&bob, "alice/later"));

    // Bob plays one: it streams from alice and is kept.
    ok(&bob.jhack(&["play", "alice/horn"]), "jhack play alice/horn");
    until("horn kept on bob", APPEAR, || {
        bob.sound("alice/horn")["file"] == "here"
    });
    assert!(bob.blob(&horn_id).exists());
    // It stays hers: editing or removing it is refused, with the way out.
    let o = bob.jhack(&["edit", "alice/horn", "--name", "mine"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("stays theirs") && e.contains("jhack copy"),
        "{e}"
    );
    let o = bob.jhack(&["rm", "alice/horn"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(listed(&bob, "alice/horn"));
    // Pinned, its file arrives without being played.
    ok(&bob.jhack(&["pin", "alice/bell"]), "jhack pin alice/bell");
    until("the pinned bell on bob", APPEAR, || {
        bob.sound("alice/bell")["file"] == "here"
    });
    // Copied, it is his: listed under his own name, no owner, editable.
    let o = bob.jhack(&["copy", "alice/later", "--name", "my late"]);
    ok(&o, "jhack copy");
    let mine = bob.sound("my late");
    assert!(mine["owner"].is_null(), "{mine}");
    assert_eq!(mine["file"], "here");
    ok(
        &bob.jhack(&["edit", "my late", "--tag", "bob"]),
        "edit the copy",
    );
    // Nothing of bob's went to alice.
    assert!(!listed(&alice, "my late"));
    // His check verifies the shared files he keeps too (his serve stopped a moment:
    // check opens the library itself).
    let _ = sb.stop();
    let o = bob.jhack(&["check"]);
    ok(&o, "jhack check on bob");
    assert!(
        stdout(&o).contains("2 files of sounds shared with you"),
        "{}",
        stdout(&o)
    );
    let sb = bob.serve(false, &[]);

    // Withdrawn: the shared sounds leave bob's list (his copy stays his).
    let o = alice.jhack(&["unshare", "fx", "--with", "bob"]);
    ok(&o, "jhack unshare");
    let took = until("the withdrawal on bob", APPEAR, || {
        !names(&bob).iter().any(|n| n.starts_with("alice/"))
    });
    eprintln!(
        "a withdrawn share left bob's list {:.0} ms later",
        took.as_secs_f64() * 1e3
    );
    assert!(listed(&bob, "my late"));
    // The files of what is no longer shared go with it (his copy stays).
    until("the withdrawn files gone", APPEAR, || {
        !bob.blob(&horn_id).exists()
    });
    let o = bob.jhack(&["list", "--peer", "alice"]);
    ok(&o, "jhack list --peer after the withdrawal");
    assert!(
        stdout(&o).contains("alice shares nothing with you"),
        "{}",
        stdout(&o)
    );
    let _ = sb.stop();
    // Her machine no longer serves bob what it once shared, nor what it never did.
    let size = std::fs::metadata(alice.blob(&horn_id)).expect("horn").len();
    let r = fetch_as(&bob, &horn_id, size);
    assert!(
        r.as_ref().is_err_and(|e| e.contains("does not share")),
        "{r:?}"
    );
    let size = std::fs::metadata(alice.blob(&secret_id))
        .expect("secret")
        .len();
    assert!(fetch_as(&bob, &secret_id, size).is_err());
    let _ = sa.stop();
    alice.check_clean();
    bob.check_clean();
    let o = bob.jhack(&["check"]);
    assert!(!stdout(&o).contains("belong to no sound"), "{}", stdout(&o));
}

#[test]
fn a_peer_without_read_is_refused_with_a_clear_message() {
    let (alice, carol) = (Peer::new("alice"), Peer::new("carol"));
    alice.trust(&carol, "carol", "play", false);
    ok(
        &alice.jhack(&["share", "fx", "--with", "carol"]),
        "jhack share",
    );
    carol.trust(&alice, "alice", "none", true);
    let sa = alice.serve(false, &[]);
    let o = carol.jhack(&["list", "--peer", "alice"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let e = stderr(&o);
    eprintln!("{e}");
    assert!(e.contains("alice") && e.contains("read"), "{e}");
    assert_eq!(error_lines(&o).len(), 1, "one error line: {e}");
    let _ = sa.stop();
}
