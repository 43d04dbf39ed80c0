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

/// `x` trusts `y` (at its address, as `name`) for `what` only, keeping the relation.
fn allow(x: &Peer, y: &Peer, name: &str, what: &str) {
    let addr = y.addr();
    ok(
        &x.jhack(&["peer", "add", &y.id, &addr, "--name", name, "--allow", what]),
        "jhack peer add",
    );
}

fn mirrors() -> (Peer, Peer) {
    let (a, b) = (Peer::new("A"), Peer::new("B"));
    a.mirror(&b, "bee");
    b.mirror(&a, "ay");
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
    let pin_me = sine_wav(dir.path(), "pin.wav", 330, 0.3, -6.0, 48_000, 1);
    let (a, b) = mirrors();
    let sa = a.serve(false, &[]);
    let sb = b.serve(false, &[]);
    // The starter packs are the same bytes on both: they meet as one library.
    until("the first sync", APPEAR, || records(&a) == records(&b));
    until("peer list saying so", APPEAR, || {
        stdout(&b.jhack(&["peer", "list"])).contains("mirror: in sync")
    });
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
    // Pinned by hand: its file arrives without being played, and stays pinned.
    let pin_id = a.import(&pin_me, "pin me");
    until("pin me on B", APPEAR, || has(&b, "pin me"));
    let o = b.jhack(&["pin", "pin me"]);
    ok(&o, "jhack pin");
    assert!(stdout(&o).contains("pinned pin me"), "{}", stdout(&o));
    until("the pinned file on B", APPEAR, || {
        b.sound("pin me")["file"] == "here"
    });
    assert!(b.blob(&pin_id).exists());
    assert_eq!(b.sound("pin me")["pinned"], true);
    ok(&b.jhack(&["unpin", "pin me"]), "jhack unpin");
    assert_eq!(b.sound("pin me")["pinned"], false);
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
    // A's library took it in the same run; its running screen or serve lists it as
    // soon as its loop has heard (milliseconds: the live test measures that lag).
    until("A lists B's sound", Duration::from_secs(2), || {
        has(&a, "bell")
    });
    assert_eq!(records(&a), records(&b));
    // Nothing new: it still completes.
    ok(&b.jhack(&["sync", "ay"]), "jhack sync again");
    let _ = sa.stop();
    // A peer that may not write here is not merged from; one that may not read
    // there is refused by it, and both say why.
    allow(&b, &a, "ay", "read");
    let sa = a.serve(false, &[]);
    let o = b.jhack(&["sync", "ay"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = error_lines(&o);
    assert!(
        e.len() == 1 && e[0].contains("may not write to this library"),
        "{e:?}"
    );
    allow(&b, &a, "ay", "write");
    allow(&a, &b, "bee", "write");
    let o = b.jhack(&["sync", "ay"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = error_lines(&o);
    assert!(e.len() == 1 && e[0].contains("no read permission"), "{e:?}");
    let log = sa.stop();
    assert!(log.contains("may not use sync/1"), "{log}");
    a.check_clean();
    b.check_clean();
}

/// `count` short WAVs of distinct noise in `dir`.
fn noise_wavs(dir: &std::path::Path, count: u32) {
    std::fs::create_dir_all(dir).expect("dir");
    let mut x: u32 = 0x9e37_79b9;
    for i in 0..count {
        let frames = 2400u32;
        let mut bytes = wav_header(1, 48_000, 16, frames * 2);
        for _ in 0..frames {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            bytes.extend_from_slice(&((x >> 20) as i16 - 2048).to_le_bytes());
        }
        std::fs::write(dir.join(format!("n{i:04}.wav")), bytes).expect("write");
    }
}

#[test]
fn kill_9_on_either_side_during_a_sync_loses_nothing_and_the_next_sync_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let many = dir.path().join("many");
    noise_wavs(&many, 1400);
    let first: Vec<_> = (0..600)
        .map(|i| many.join(format!("n{i:04}.wav")))
        .collect();
    let (a, b) = mirrors();
    let mut args: Vec<String> = vec!["import".into()];
    args.extend(first.iter().map(|p| p.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&a.jhack(&args), "import 600 sounds");
    let mut sa = a.serve(false, &[]);
    // A seeded spread of moments, from just after start to well into the sync.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |max: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % max
    };
    let mut kills = 0;
    for round in 0..40 {
        // Something new on A each round (through its serve), so every sync has work.
        let f = many.join(format!("n{:04}.wav", 600 + round * 20));
        ok(&a.jhack(&["import", &f.to_string_lossy()]), "import on A");
        let mut c = jhack(b.home());
        c.args(["sync", "ay"]);
        let mut sync = Proc::start("B (sync)", c);
        let wait = next(90);
        std::thread::sleep(Duration::from_millis(wait));
        if round % 4 == 3 {
            // The other side: kill A's serve mid-sync, check it, start it again.
            sa.kill9();
            kills += 1;
            a.check_clean();
            sa = a.serve(false, &[]);
        }
        if sync.exited().is_none() {
            sync.kill9();
            kills += 1;
        }
        b.check_clean();
    }
    eprintln!("{kills} kills -9 during syncs, every library checked clean after each");
    assert!(kills >= 20, "only {kills} kills landed");
    let o = b.jhack(&["sync", "ay", "--json"]);
    ok(&o, "the sync after the kills");
    eprintln!("the sync after the kills: {}", stdout(&o).trim());
    assert_eq!(records(&a), records(&b));
    let noise = b
        .list()
        .iter()
        .filter(|s| {
            s["name"].as_str().is_some_and(|n| {
                n.len() == 5 && n.starts_with('n') && n[1..].chars().all(|c| c.is_ascii_digit())
            })
        })
        .count();
    assert_eq!(noise, 600 + 40, "every sound imported on A is listed on B");
    let _ = sa.stop();
    a.check_clean();
    b.check_clean();
}

/// One request on a home's control socket; the reply as JSON.
fn ask_socket(home: &std::path::Path, request: serde_json::Value) -> serde_json::Value {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(home.join("jhack.sock")).expect("socket");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut line = serde_json::to_vec(&request).expect("json");
    line.push(b'\n');
    s.write_all(&line).expect("write");
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).expect("read");
    serde_json::from_str(&reply).expect("reply JSON")
}

#[test]
fn an_edit_on_one_mirror_is_listed_on_the_other_within_a_fraction_of_a_second() {
    let (a, b) = mirrors();
    let _sa = a.serve(false, &[]);
    let _sb = b.serve(false, &[]);
    until("the first sync", APPEAR, || records(&a) == records(&b));
    // Steady state: both sides have taken each other's merged records (right after
    // the first sync they are still exchanging them for a moment).
    for p in [&a, &b] {
        until("in sync", APPEAR, || {
            stdout(&p.jhack(&["peer", "list"])).contains("mirror: in sync")
        });
    }
    // The sound's name now (an attempt that failed renamed it part of the way).
    let mut from = "airhorn".to_string();
    let mut attempt = 0;
    common::retried("live propagation", || {
        attempt += 1;
        let mut took = Vec::new();
        for i in 0..30 {
            let name = format!("airhorn {attempt}.{i}");
            let t0 = Instant::now();
            let r = ask_socket(
                a.home(),
                serde_json::json!({"v": 1, "type": "edit", "target": from, "name": name}),
            );
            assert_eq!(r["type"], "sound", "{r}");
            from = name.clone();
            loop {
                let list = ask_socket(b.home(), serde_json::json!({"v": 1, "type": "list"}));
                let seen = list["sounds"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|s| s["name"] == name.as_str()));
                if seen {
                    break;
                }
                assert!(t0.elapsed() < APPEAR, "{name} never reached B");
                std::thread::sleep(Duration::from_millis(1));
            }
            took.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        let slow: Vec<String> = took
            .iter()
            .enumerate()
            .filter(|(_, t)| **t > 20.0)
            .map(|(i, t)| format!("#{i} {t:.0} ms"))
            .collect();
        took.sort_by(f64::total_cmp);
        let (p50, p99) = (took[took.len() / 2], took[took.len() - 1]);
        eprintln!("slower than 20 ms: {slow:?}");
        eprintln!(
            "an edit on A listed on B (30 edits, each through A's socket, seen through B's): median {p50:.1} ms, p99 (max) {p99:.1} ms (target 100 ms p99)"
        );
        // A regression guard at twice the target (README); the target is the figure.
        assert!(p99 <= 200.0, "p99 {p99:.1} ms");
    });
    // A sound imported on A: from the import's answer until B lists it and plays it
    // (streamed from A while its file arrives).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut took = Vec::new();
    for i in 0..10 {
        let f = sine_wav(
            dir.path(),
            &format!("new{i}.wav"),
            300 + 40 * i,
            0.2,
            -12.0,
            48_000,
            1,
        );
        let name = format!("new {i}");
        let r = ask_socket(
            a.home(),
            serde_json::json!({"v": 1, "type": "import", "paths": [f], "name": name,
                "tags": [], "key": null, "gain_db": 0.0}),
        );
        assert_eq!(r["type"], "imported", "{r}");
        let t0 = Instant::now();
        loop {
            let r = ask_socket(
                b.home(),
                serde_json::json!({"v": 1, "type": "play", "target": name, "gain_db": 0.0}),
            );
            if r["type"] == "ok" {
                break;
            }
            assert!(t0.elapsed() < APPEAR, "{name} never played on B: {r}");
            std::thread::sleep(Duration::from_millis(1));
        }
        took.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    took.sort_by(f64::total_cmp);
    let (p50, max) = (took[took.len() / 2], took[took.len() - 1]);
    eprintln!(
        "an import on A playing on B (10 imports through A's socket, plays through B's): median {p50:.1} ms, slowest {max:.1} ms (target 100 ms)"
    );
    assert!(max <= 200.0, "slowest {max:.1} ms");
}

#[test]
fn a_mirror_all_machine_fetches_and_keeps_every_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = mirrors();
    // B holds the whole library: it keeps every file of what A has.
    let addr = a.addr();
    ok(
        &b.jhack(&["peer", "add", &a.id, &addr, "--sync", "mirror-all"]),
        "jhack peer add --sync mirror-all",
    );
    // Updating a peer keeps what was not given again.
    let peers = stdout(&b.jhack(&["peer", "list"]));
    assert!(
        peers.contains("ay ") && peers.contains("read,write"),
        "{peers}"
    );
    let _sa = a.serve(false, &[]);
    let _sb = b.serve(false, &[]);
    let mut ids = Vec::new();
    for (i, f) in [220, 330, 440].into_iter().enumerate() {
        let wav = sine_wav(dir.path(), &format!("s{i}.wav"), f, 0.3, -6.0, 48_000, 1);
        ids.push(a.import(&wav, &format!("sound {i}")));
    }
    let took = until("every file on B", APPEAR * 2, || {
        let list = b.list();
        (0..3).all(|i| {
            list.iter()
                .any(|s| s["name"] == format!("sound {i}").as_str() && s["file"] == "here")
        })
    });
    eprintln!(
        "3 sounds imported on A: every file on the mirror-all machine {:.0} ms later",
        took.as_secs_f64() * 1e3
    );
    for id in &ids {
        assert!(b.blob(id).exists());
    }
    // Kept for good there: not a remote sound of the cache.
    assert_eq!(b.sound("sound 0")["origin"], "local");
    let peers = stdout(&b.jhack(&["peer", "list"]));
    assert!(peers.contains("mirror-all"), "{peers}");
}

/// The remote sounds' disk budget drops a file only while a mirror this machine
/// knows holds it: a mirror's word counts once it has told its library's device
/// number, and stops counting when it is no longer a mirror here (removed from
/// `peers.toml`, or wiped with a new library). A removed mirror's old word never
/// costs the last copy this machine knows of.
#[test]
fn a_file_makes_room_only_while_a_known_mirror_holds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 6 s of 48 kHz 16-bit mono: 576 KB each; B keeps 1 MiB of remote sounds, room
    // for one of the two.
    let bell = sine_wav(dir.path(), "bell.wav", 660, 6.0, -6.0, 48_000, 1);
    let gong = sine_wav(dir.path(), "gong.wav", 220, 6.0, -6.0, 48_000, 1);
    let (a, b, c) = (Peer::new("A"), Peer::new("B"), Peer::new("C"));
    a.mirror(&b, "bee");
    b.mirror(&a, "ay");
    c.mirror(&b, "bee");
    b.mirror(&c, "cee");
    std::fs::write(b.home().join("config.toml"), "[cache]\nremote_mb = 1\n").expect("config");
    let sa = a.serve(false, &[]);
    let mut sb = b.serve(false, &[]);
    let sc = c.serve(false, &[]);
    // B plays A's bell: fetched, kept (it fits).
    let bell_id = a.import(&bell, "bell");
    until("bell on B", APPEAR, || has(&b, "bell"));
    ok(&b.jhack(&["play", "bell"]), "jhack play bell on B");
    until("bell kept on B", APPEAR, || {
        b.sound("bell")["file"] == "here"
    });
    // A is no longer B's mirror: its word that it holds the bell counts no more.
    ok(&b.jhack(&["peer", "rm", "ay"]), "jhack peer rm on B");
    sb.wait_for("is no longer a mirror", APPEAR);
    // B plays C's gong: kept, and the two no longer fit. The gong goes (C, a known
    // mirror, holds it); the bell stays (nobody B knows holds it now).
    let gong_id = c.import(&gong, "gong");
    until("gong on B", APPEAR, || has(&b, "gong"));
    ok(&b.jhack(&["play", "gong"]), "jhack play gong on B");
    sb.wait_for("removed the remote sound \"gong\"", APPEAR);
    assert_eq!(b.sound("gong")["file"], "remote");
    assert!(!b.blob(&gong_id).exists(), "the gong's file made room");
    assert_eq!(b.sound("bell")["file"], "here");
    assert!(b.blob(&bell_id).exists(), "the last copy B knows of stays");
    let logs = format!("{}\n{}\n{}", sa.stop(), sb.stop(), sc.stop());
    assert!(
        !logs.contains("removed the remote sound \"bell\""),
        "{logs}"
    );
    b.check_clean();
}
