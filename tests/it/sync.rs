//! Library sync between real processes: two homes, each `jhack serve` on loopback,
//! trusting each other as mirrors. Edits on either side appear on the other while both
//! run; edits made while apart converge when they meet again, conflicts resolved the
//! same way on both; `jhack sync` runs one sync to completion; a peer without the
//! permissions is refused with a clear message.

use crate::common;

use std::time::{Duration, Instant};

use common::peers::*;
use common::*;

/// How long a change may take to appear on the other side before the test fails
/// (the target is a fraction of a second; this is the guard).
const APPEAR: Duration = Duration::from_secs(5);

/// Waits until `f` holds; returns how long it took.
fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t0.elapsed()
}

/// (id, name, key, tags) of every sound, sorted by id.
fn records(p: &Peer) -> Vec<(String, String, Option<String>, Vec<String>)> {
    let mut v: Vec<_> = p
        .list()
        .into_iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_string(),
                s["name"].as_str().unwrap_or_default().to_string(),
                s["key"].as_str().map(str::to_string),
                s["tags"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

fn has(p: &Peer, name: &str) -> bool {
    p.list().iter().any(|s| s["name"] == name)
}

fn mirrors() -> (Peer, Peer) {
    let (a, b) = (Peer::new("A"), Peer::new("B"));
    for (x, y, name) in [(&a, &b, "bee"), (&b, &a, "ay")] {
        let addr = y.addr();
        ok(
            &x.jhack(&[
                "peer",
                "add",
                &y.id,
                &addr,
                "--name",
                name,
                "--allow",
                "read,write",
                "--sync",
                "mirror",
            ]),
            "jhack peer add --sync mirror",
        );
    }
    (a, b)
}

#[test]
fn mirrors_stay_in_sync_live_and_converge_after_editing_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let horn = sine_wav(dir.path(), "horn.wav", 440, 0.3, -6.0, 48_000, 1);
    let bell = sine_wav(dir.path(), "bell.wav", 660, 0.3, -6.0, 48_000, 1);
    let gong = sine_wav(dir.path(), "gong.wav", 220, 0.3, -6.0, 48_000, 1);
    let chime = sine_wav(dir.path(), "chime.wav", 880, 0.3, -6.0, 48_000, 1);
    let drum = sine_wav(dir.path(), "drum.wav", 110, 0.3, -6.0, 48_000, 1);
    let (a, b) = mirrors();
    let sa = a.serve(false, &[]);
    let sb = b.serve(false, &[]);
    // The starter packs are the same bytes on both: they meet as one library.
    until("the first sync", APPEAR, || records(&a) == records(&b));
    // Live: an import on A appears on B, remote there.
    let id = a.import(&horn, "horn");
    let took = until("horn on B", APPEAR, || has(&b, "horn"));
    eprintln!(
        "an import on A was listed on B {:.0} ms later",
        took.as_secs_f64() * 1e3
    );
    let on_b = b.sound("horn");
    assert_eq!(on_b["file"], "remote", "{on_b}");
    assert!(!b.blob(&id).exists());
    // An edit on B appears on A.
    ok(
        &b.jhack(&[
            "edit", "horn", "--name", "big horn", "--tag", "loud", "--key", "h",
        ]),
        "jhack edit on B",
    );
    let took = until("the rename on A", APPEAR, || has(&a, "big horn"));
    eprintln!(
        "an edit on B was listed on A {:.0} ms later",
        took.as_secs_f64() * 1e3
    );
    let m = a.sound("big horn");
    assert_eq!(m["key"], "h");
    assert_eq!(m["file"], "here", "A keeps its file");
    // Bound to a key, it is pinned on B: its file arrives without being played.
    let took = until("the pinned file on B", APPEAR, || {
        b.sound("big horn")["file"] == "here"
    });
    eprintln!(
        "a key bound on B fetched its file {:.0} ms later",
        took.as_secs_f64() * 1e3
    );
    assert!(b.blob(&id).exists());
    // A remote sound plays on demand, and is kept.
    let bell_id = a.import(&bell, "bell");
    until("bell on B", APPEAR, || has(&b, "bell"));
    assert_eq!(b.sound("bell")["file"], "remote");
    let o = b.jhack(&["play", "bell"]);
    ok(&o, "jhack play bell on B");
    until("bell kept on B", APPEAR, || {
        b.sound("bell")["file"] == "here"
    });
    assert!(b.blob(&bell_id).exists());
    // A delete on A disappears from B.
    ok(&a.jhack(&["rm", "big horn"]), "jhack rm on A");
    until("the delete on B", APPEAR, || !has(&b, "big horn"));
    assert_eq!(records(&a), records(&b));
    let _ = sa.stop();
    let _ = sb.stop();

    // Apart: both import, both claim the name "gong" and the key "g" for different
    // sounds, and one renames a sound the other re-tags.
    a.import(&gong, "gong");
    ok(&a.jhack(&["edit", "gong", "--key", "g"]), "edit");
    b.import(&chime, "gong");
    ok(&b.jhack(&["edit", "gong", "--key", "g"]), "edit");
    b.import(&drum, "drum");
    // A starter sound, on both sides.
    let starter = "airhorn";
    ok(
        &a.jhack(&["edit", starter, "--name", "renamed on A"]),
        "edit",
    );
    ok(&b.jhack(&["edit", starter, "--tag", "tagged-on-b"]), "edit");
    let sa = a.serve(false, &[]);
    let sb = b.serve(false, &[]);
    until("convergence", APPEAR * 2, || records(&a) == records(&b));
    let all = records(&a);
    let gongs: Vec<_> = all.iter().filter(|r| r.1.starts_with("gong")).collect();
    assert_eq!(gongs.len(), 2, "{all:?}");
    assert!(gongs.iter().any(|r| r.1 == "gong") && gongs.iter().any(|r| r.1.starts_with("gong~")));
    assert_eq!(
        gongs.iter().filter(|r| r.2.as_deref() == Some("g")).count(),
        1,
        "one keeps the key: {gongs:?}"
    );
    let renamed = all
        .iter()
        .find(|r| r.1 == "renamed on A")
        .expect("the rename");
    assert!(
        renamed.3.contains(&"tagged-on-b".to_string()),
        "{renamed:?}"
    );
    assert!(has(&a, "drum"));
    // The side that resolved the conflict told its person.
    let logs = format!("{}\n{}", sa.stop(), sb.stop());
    let told: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("two sounds were called \"gong\""))
        .collect();
    eprintln!("told: {told:?}");
    assert!(!told.is_empty(), "{logs}");
    a.check_clean();
    b.check_clean();
}

#[test]
fn jhack_sync_runs_one_sync_to_completion_and_refusals_are_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let horn = sine_wav(dir.path(), "horn.wav", 440, 0.3, -6.0, 48_000, 1);
    let bell = sine_wav(dir.path(), "bell.wav", 660, 0.3, -6.0, 48_000, 1);
    let (a, b) = mirrors();
    a.import(&horn, "horn");
    b.import(&bell, "bell");
    let sa = a.serve(false, &[]);
    // B has no serve: `jhack sync` brings A's sounds here and B's to A.
    let o = b.jhack(&["sync", "ay", "--json"]);
    ok(&o, "jhack sync ay");
    let summary: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    eprintln!("jhack sync: {summary}");
    assert_eq!(summary["in_sync"], true);
    assert!(summary["pulled"].as_u64().unwrap_or(0) >= 1);
    assert!(has(&b, "horn"));
    assert!(has(&a, "bell"), "A took B's sound in the same run");
    assert_eq!(records(&a), records(&b));
    // Nothing new: it still completes.
    ok(&b.jhack(&["sync", "ay"]), "jhack sync again");
    let _ = sa.stop();
    // A peer that may not write here is not merged from; one that may not read
    // there is refused by it, and both say why.
    ok(
        &b.jhack(&[
            "peer",
            "add",
            &a.id,
            &a.addr(),
            "--name",
            "ay",
            "--allow",
            "read",
        ]),
        "peer add",
    );
    let sa = a.serve(false, &[]);
    let o = b.jhack(&["sync", "ay"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = error_lines(&o);
    assert!(
        e.len() == 1 && e[0].contains("may not write to this library"),
        "{e:?}"
    );
    ok(
        &b.jhack(&[
            "peer",
            "add",
            &a.id,
            &a.addr(),
            "--name",
            "ay",
            "--allow",
            "write",
        ]),
        "peer add",
    );
    ok(
        &a.jhack(&[
            "peer",
            "add",
            &b.id,
            &b.addr(),
            "--name",
            "bee",
            "--allow",
            "write",
        ]),
        "peer add",
    );
    let o = b.jhack(&["sync", "ay"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = error_lines(&o);
    assert!(e.len() == 1 && e[0].contains("no read permission"), "{e:?}");
    let log = sa.stop();
    assert!(log.contains("may not use sync/1"), "{log}");
    a.check_clean();
    b.check_clean();
}
