//! Fetching a whole library from a mirror (`jhack sync P --all`) against rsync, side
//! by side in one run: 1,000 sounds of 8–512 KiB (log-uniform, ~120 MB), served by
//! `jhack serve` on one home and by an rsync daemon from the same files; each round
//! fetches all of them into an empty place. jhack's bytes are encrypted (QUIC) and
//! verified against their ids as they arrive; rsync's daemon protocol is neither.
//! Then Syncthing (TLS, SHA-256 blocks, like jhack encrypted and verified) fetches
//! the same files the same number of times, when it is installed.
//!
//! The rsync target (jhack no slower: ratio of medians ≤ 1.0) is reported; here it is
//! met (0.52–0.97 in recent runs: rsync writes through the page cache, which costs
//! more on this virtual machine than jhack's direct writes; with warm memory the
//! two are about at parity, README). Its assertion is a regression guard with headroom
//! (≤ 2.5); against Syncthing, jhack must be no slower (today about a
//! quarter of its time). Skips loudly without rsync, and the Syncthing part without
//! Syncthing.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::peers::*;
use common::*;
use rand::{Rng, SeedableRng};

/// Sounds in the library.
const SOUNDS: usize = 1000;
/// Rounds of each.
const ROUNDS: usize = 3;

/// A mono 16-bit WAV of `bytes` bytes of noise (distinct per file).
fn noise_wav(path: &Path, bytes: usize, rng: &mut impl Rng) -> u64 {
    let data = (bytes.saturating_sub(44) / 2) * 2;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&((36 + data) as u32).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&96_000u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&(data as u32).to_le_bytes());
    f.write_all(&h).expect("write");
    let mut buf = vec![0u8; data];
    for s in buf.chunks_exact_mut(2) {
        let v: i16 = rng.gen_range(-8000..8000);
        s.copy_from_slice(&v.to_le_bytes());
    }
    f.write_all(&buf).expect("write");
    f.flush().expect("flush");
    (44 + data) as u64
}

/// UDP datagrams the kernel dropped because a socket's receive buffer was full
/// (`UdpRcvbufErrors` in `/proc/net/snmp`, this network namespace); `None` where
/// the file is not there.
fn udp_rcvbuf_drops() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let names: Vec<&str> = udp.next()?.split_whitespace().collect();
    let values: Vec<&str> = udp.next()?.split_whitespace().collect();
    let i = names.iter().position(|n| *n == "RcvbufErrors")?;
    values.get(i)?.parse().ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// An rsync daemon serving `dir` as module `m` on a free port.
struct Rsyncd {
    proc: Proc,
    port: u16,
}

fn rsyncd(conf_dir: &Path, dir: &Path) -> Rsyncd {
    let port = free_port();
    let conf = conf_dir.join("rsyncd.conf");
    std::fs::write(
        &conf,
        format!(
            "use chroot = false\nport = {port}\naddress = 127.0.0.1\npid file = {}\n[m]\npath = {}\nread only = true\n",
            conf_dir.join("rsyncd.pid").display(),
            dir.display()
        ),
    )
    .expect("conf");
    let mut c = Command::new("rsync");
    c.args(["--daemon", "--no-detach", "--config"]).arg(&conf);
    let proc = Proc::start("rsyncd", c);
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "rsyncd did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Rsyncd { proc, port }
}

/// One rsync of the whole module into the empty `dest`; its seconds.
fn rsync_round(rs: &Rsyncd, dest: &Path) -> f64 {
    let t0 = Instant::now();
    let o = Command::new("rsync")
        .arg("-a")
        .arg(format!("rsync://127.0.0.1:{}/m/", rs.port))
        .arg(dest)
        .output()
        .expect("rsync");
    let secs = t0.elapsed().as_secs_f64();
    assert!(o.status.success(), "rsync: {}", stderr(&o));
    settle_disk();
    secs
}

/// A temporary directory with an empty `sounds` folder in it, and a random source
/// seeded with `seed` to fill it.
fn sounds_dir(seed: u64) -> (tempfile::TempDir, std::path::PathBuf, rand::rngs::StdRng) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("sounds");
    std::fs::create_dir_all(&src).expect("dir");
    (dir, src, rand::rngs::StdRng::seed_from_u64(seed))
}

/// Writes every dirty page to disk (outside the timing): jhack makes what it fetched
/// durable with a filesystem sync, which would otherwise also write out the copy rsync
/// just left in memory.
fn settle_disk() {
    let _ = Command::new("sync").status();
}

#[test]
fn fetching_a_whole_library_is_no_slower_than_rsync() {
    if Command::new("rsync").arg("--version").output().is_err() {
        skip(
            "sync_files::fetching_a_whole_library_is_no_slower_than_rsync",
            "rsync is not installed (scripts/install-deps.sh --test installs it)",
        );
        return;
    }
    let (dir, src, mut rng) = sounds_dir(0x5eed);
    let mut total = 0u64;
    for i in 0..SOUNDS {
        // Log-uniform between 8 KiB and 512 KiB: ~120 MB for 1,000.
        let bytes = (8192.0 * 64f64.powf(rng.r#gen::<f64>())) as usize;
        total += noise_wav(&src.join(format!("s{i:04}.wav")), bytes, &mut rng);
    }
    eprintln!("{SOUNDS} sounds, {:.1} MB", total as f64 / 1e6);
    let a = Peer::new("A");
    let t0 = Instant::now();
    ok(
        &a.jhack(&["import", &src.to_string_lossy()]),
        "jhack import of the library",
    );
    eprintln!("imported in {:.1} s", t0.elapsed().as_secs_f64());
    let served = a.serve(false, &[]);
    let rs = rsyncd(dir.path(), &src);

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    settle_disk();
    // Every round's copies stay until the end: deleting a thousand files just before
    // the next tool creates a thousand more makes that tool pay for it (ext4 skips
    // recently deleted inodes one by one when it allocates, and the freed page cache
    // is the next writer's cheap memory), and that is the machine, not the tool. For
    // the same reason the two take turns at going first.
    let mut kept = Vec::new();
    for round in 0..ROUNDS {
        // jhack: a new machine mirroring A, every record and file. Its library is
        // made (with its starter sounds) before the clock starts, as rsync's
        // destination's parent exists before rsync's does.
        let b = Peer::new("B");
        a.mirror(&b, "bee");
        b.mirror(&a, "ay");
        ok(&b.jhack(&["list"]), "jhack list (a new library)");
        let rsync_first = round % 2 == 0;
        if rsync_first {
            theirs.push(rsync_round(&rs, &dir.path().join(format!("rsync-{round}"))));
        }
        let drops_before = udp_rcvbuf_drops();
        let t0 = Instant::now();
        let o = b.jhack(&["sync", "ay", "--all", "--json"]);
        let secs = t0.elapsed().as_secs_f64();
        ok(&o, "jhack sync --all");
        settle_disk();
        // With the kernel's default 208 KiB receive buffer, every such sync lost about
        // ninety datagrams, each halving QUIC's window. A guard with headroom: a busy
        // machine may stall a receiver long enough to lose a few.
        if let (Some(a), Some(z)) = (drops_before, udp_rcvbuf_drops()) {
            eprintln!(
                "round {round}: {} UDP datagrams dropped at a full receive buffer",
                z - a
            );
            // jhack asks for 4 MiB; only where the kernel grants that (within
            // `net.core.rmem_max`, or forced by a privileged process) is the guard
            // meaningful.
            if jhack::net::full_socket_buffers() {
                assert!(
                    z - a <= 20,
                    "{} datagrams dropped at a full socket receive buffer",
                    z - a
                );
            } else {
                eprintln!(
                    "NOTE: drops not guarded: this kernel grants less than a 4 MiB receive buffer"
                );
            }
        }
        let summary: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
        assert_eq!(summary["remote"], 0, "every file is here: {summary}");
        assert!(
            summary["files"]["done_files"].as_u64() >= Some(SOUNDS as u64),
            "{summary}"
        );
        ours.push(secs);
        if !rsync_first {
            theirs.push(rsync_round(&rs, &dir.path().join(format!("rsync-{round}"))));
        }
        eprintln!(
            "round {round} ({} first): rsync {:.2} s ({:.0} MB/s), jhack sync --all {:.2} s ({:.0} MB/s; files alone {:.2} s)",
            if rsync_first { "rsync" } else { "jhack" },
            theirs[round],
            total as f64 / 1e6 / theirs[round],
            secs,
            total as f64 / 1e6 / secs,
            summary["files_secs"].as_f64().unwrap_or(f64::NAN)
        );
        if round == 0 {
            b.check_clean();
        }
        // B's id leaves A's trust store with it.
        ok(&a.jhack(&["peer", "rm", "bee"]), "jhack peer rm");
        kept.push(b);
    }
    drop(rs.proc);
    let _ = served.stop();
    // Syncthing (encrypted and hashed, like jhack) on the same files, after every
    // rsync round (its folder marker would be one more thing for rsync to copy).
    let syncthing = if have("syncthing") {
        Some(syncthing_rounds(&src, dir.path()))
    } else {
        skip(
            "sync_files::fetching_a_whole_library_is_no_slower_than_rsync",
            "the Syncthing comparison: syncthing is not installed (scripts/install-deps.sh --test installs it)",
        );
        None
    };
    let ratio = median(ours.clone()) / median(theirs.clone());
    eprintln!(
        "whole-library fetch, median of {ROUNDS}: jhack {:.2} s, rsync {:.2} s: ratio {ratio:.2} (target <= 1.0)",
        median(ours.clone()),
        median(theirs)
    );
    assert!(
        ratio <= 2.5,
        "jhack is {ratio:.2}x rsync's time (guard 2.5)"
    );
    if let Some((resumed, started)) = syncthing {
        let vs = median(ours) / median(resumed.clone());
        eprintln!(
            "Syncthing, median of {ROUNDS}: {:.2} s from its resume to the folder complete ({:.2} s from its start): jhack / Syncthing {vs:.2}",
            median(resumed),
            median(started)
        );
        // A regression guard (today about 0.25): jhack no slower than Syncthing.
        assert!(vs <= 1.0, "jhack is {vs:.2}x Syncthing's time (guard 1.0)");
    }
}

/// Syncthing fetching the same files into an empty folder, [`ROUNDS`] times: a
/// sending device on `src` (scanned before any clock starts) and each round a new
/// receiving device, started paused. The seconds from its resume to the folder
/// complete (the sync itself, as jhack's includes its own start of ~15 ms), and from
/// its start less the pause (Syncthing's start measures its hashers and opens its
/// database, ~1 s).
fn syncthing_rounds(src: &Path, dir: &Path) -> (Vec<f64>, Vec<f64>) {
    use common::syncthing::Syncthing;
    let mut sender = Syncthing::new(&dir.join("st-send"));
    let (mut resumed, mut started) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let mut receiver = Syncthing::new(&dir.join(format!("st-receive-{round}")));
        let dest = dir.join(format!("syncthing-{round}"));
        // The sender learns of the new device (its index of the files is kept, so
        // it rescans only to confirm them).
        sender.stop();
        sender.configure(&receiver, src, "sendonly");
        sender.start(false);
        assert!(
            sender.wait_complete(SOUNDS as u64, Duration::from_secs(120)),
            "Syncthing did not finish scanning the library"
        );
        receiver.configure(&sender, &dest, "receiveonly");
        settle_disk();
        let t0 = Instant::now();
        receiver.start(true);
        let up = t0.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(500));
        let t1 = Instant::now();
        receiver.resume();
        assert!(
            receiver.wait_complete(SOUNDS as u64, Duration::from_secs(30)),
            "Syncthing did not complete round {round}: {:?}\nreceiver:\n{}\nsender:\n{}",
            receiver.status(),
            receiver.log_tail(),
            sender.log_tail()
        );
        let secs = t1.elapsed().as_secs_f64();
        let files = std::fs::read_dir(&dest)
            .map(|d| d.flatten().filter(|e| e.path().is_file()).count())
            .unwrap_or(0);
        assert_eq!(files, SOUNDS, "Syncthing's copy is whole");
        eprintln!(
            "Syncthing round {round}: {secs:.2} s from its resume, {:.2} s from its start",
            up + secs
        );
        resumed.push(secs);
        started.push(up + secs);
    }
    (resumed, started)
}

#[test]
fn kill_9_during_a_whole_library_fetch_loses_nothing_and_the_next_one_completes() {
    let (_dir, src, mut rng) = sounds_dir(0x6b11);
    for i in 0..460 {
        let bytes = (8192.0 * 64f64.powf(rng.r#gen::<f64>())) as usize;
        noise_wav(&src.join(format!("k{i:04}.wav")), bytes, &mut rng);
    }
    let (a, b) = (Peer::new("A"), Peer::new("B"));
    a.mirror(&b, "bee");
    b.mirror(&a, "ay");
    let files: Vec<String> = (0..460)
        .map(|i| {
            src.join(format!("k{i:04}.wav"))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut args = vec!["import"];
    args.extend(files[..60].iter().map(String::as_str));
    ok(&a.jhack(&args), "import");
    let mut sa = a.serve(false, &[]);
    let mut kills = 0;
    // Rounds until enough kills landed (a fetch that ends first is not killed).
    for round in 0..80 {
        if kills >= 24 {
            break;
        }
        // New sounds on A every round (through its serve), so every fetch has work.
        let mut args = vec!["import"];
        args.extend(
            files[60 + round * 5..65 + round * 5]
                .iter()
                .map(String::as_str),
        );
        ok(&a.jhack(&args), "import on A");
        let mut c = jhack(b.home());
        c.args(["sync", "ay", "--all"]);
        let mut sync = Proc::start("B (sync --all)", c);
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..300)));
        if round % 4 == 3 {
            // The serving side dies mid-transfer too.
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
    eprintln!("{kills} kills -9 during whole-library fetches, both libraries clean after each");
    assert!(kills >= 20, "only {kills} kills landed");
    let o = b.jhack(&["sync", "ay", "--all", "--json"]);
    ok(&o, "the fetch after the kills");
    let summary: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    assert_eq!(summary["remote"], 0, "every file is here: {summary}");
    let _ = sa.stop();
    // Every file here re-hashes to its id.
    b.check_clean();
    a.check_clean();
}

/// Small files come in batches, many on one stream. A byte flipped in transit in a
/// batch is caught by the blob's hash before anything of it is kept; that
/// file is fetched again alone, and every other file of the batch is kept as it
/// came.
#[test]
fn a_byte_flipped_in_a_batch_is_caught_and_that_file_fetched_again_alone() {
    if !cfg!(feature = "test-hooks") {
        skip(
            "sync_files::a_byte_flipped_in_a_batch_is_caught_and_that_file_fetched_again_alone",
            "built without the test-hooks feature (scripts/test.sh turns it on)",
        );
        return;
    }
    let (_dir, src, mut rng) = sounds_dir(0xf11b);
    // 40 files of 100–400 KB: two to seven groups each, all small enough to batch.
    for i in 0..40 {
        let bytes = rng.gen_range(100_000..400_000);
        noise_wav(&src.join(format!("f{i:02}.wav")), bytes, &mut rng);
    }
    let (a, b) = (Peer::new("A"), Peer::new("B"));
    a.mirror(&b, "bee");
    b.mirror(&a, "ay");
    ok(&a.jhack(&["import", &src.to_string_lossy()]), "import on A");
    // A flips one byte of the first group 1 it serves.
    let served = a.serve(false, &[("JHACK_TEST_CORRUPT_GROUP", "1")]);
    ok(&b.jhack(&["list"]), "a new library on B");
    let mut c = jhack(b.home());
    c.args(["sync", "ay", "--all", "--json"])
        .env("JHACK_LOG", "info");
    let o = run(c, Duration::from_secs(60));
    ok(&o, "jhack sync --all");
    let log = stderr(&o);
    let caught: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("failed verification in a batch: fetched again alone"))
        .collect();
    assert_eq!(caught.len(), 1, "one file was caught: {log}");
    let summary: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    assert_eq!(summary["remote"], 0, "every file is here: {summary}");
    assert_eq!(summary["files"]["failed"], 0, "{summary}");
    // Every file B keeps hashes to its id (the check verifies each blob).
    b.check_clean();
    let _ = served.stop();
}
