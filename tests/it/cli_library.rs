//! The sound library through the real binary: importing folders of good and bad
//! files, names, keys, tags and gains, editing and removing, `jhack check` finding
//! damage, the home lock, and an import killed with SIGKILL again and again without
//! ever leaving the library inconsistent. Runs on the null backend; no sound server.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The names of the starter pack every new library gets.
const STARTER: [&str; 12] = [
    "airhorn",
    "rimshot",
    "ding",
    "buzzer",
    "success",
    "drumroll",
    "whoosh",
    "clap",
    "countdown",
    "nice",
    "hello-there",
    "ready",
];

/// One row of `jhack list --json`.
#[derive(Debug, Clone, serde::Deserialize)]
struct Listed {
    id: String,
    name: String,
    key: Option<String>,
    tags: Vec<String>,
    gain_db: f32,
    size: u64,
}

/// Runs `jhack --home HOME ARGS...` to completion.
fn jh(home: &Path, args: &[&str]) -> Output {
    let mut c = jhack(home);
    c.args(args);
    run(c, TIMEOUT)
}

/// `jhack import PATHS... EXTRA...`.
fn import(home: &Path, paths: &[&Path], extra: &[&str]) -> Output {
    let mut c = jhack(home);
    c.arg("import").args(paths).args(extra);
    run(c, TIMEOUT)
}

fn status(o: &Output) -> Option<i32> {
    o.status.code()
}

fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    )
}

/// The library as `jhack list --json` shows it.
fn list(home: &Path) -> Vec<Listed> {
    let o = jh(home, &["list", "--json"]);
    assert_eq!(status(&o), Some(0), "list: {}", describe(&o));
    serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("list --json is not valid JSON ({e}): {}", stdout(&o)))
}

/// The sounds that are not from the starter pack, by name.
fn own_sounds(home: &Path) -> BTreeMap<String, Listed> {
    list(home)
        .into_iter()
        .filter(|s| !s.tags.iter().any(|t| t == "starter"))
        .map(|s| (s.name.clone(), s))
        .collect()
}

fn hash_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn file_hash(path: &Path) -> String {
    hash_hex(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn blob_path(home: &Path, id: &str) -> PathBuf {
    home.join("library/blobs").join(&id[..2]).join(id)
}

/// Every file under `dir` whose name starts with `prefix`.
fn files_named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_named(&p, prefix));
        } else if e.file_name().to_string_lossy().starts_with(prefix) {
            out.push(p);
        }
    }
    out
}

fn mkdir(p: &Path) -> PathBuf {
    std::fs::create_dir_all(p).unwrap();
    p.to_path_buf()
}

/// A deterministic pseudo-random byte string.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    (0..n).map(|_| r.next() as u8).collect()
}

/// xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A sine MP3 or Ogg made with ffmpeg (the codec follows the extension).
fn ffmpeg_sine(path: &Path, freq: u32, secs: f64) -> PathBuf {
    sh(&format!(
        "ffmpeg -v error -f lavfi -i sine=frequency={freq}:duration={secs}:sample_rate=44100 -ac 2 -b:a 128k {}",
        path.display()
    ));
    path.to_path_buf()
}

/// A 16-bit sine WAV as bytes.
fn wav_bytes(rate: u32, channels: u16, freq: f32, frames: usize) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cur = std::io::Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
        for i in 0..frames {
            let x = (std::f32::consts::TAU * freq * i as f32 / rate as f32).sin() * 0.4;
            for _ in 0..channels {
                w.write_sample((x * 32767.0) as i16).unwrap();
            }
        }
        w.finalize().unwrap();
    }
    cur.into_inner()
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    if let Some(dir) = path.parent() {
        mkdir(dir);
    }
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// The stderr lines of an output.
fn err_lines(o: &Output) -> Vec<String> {
    stderr(o).lines().map(str::to_string).collect()
}

/// Asserts `o` failed with `code` and exactly one stderr line starting with
/// `jhack: error: ` and containing every one of `has`.
fn assert_one_error(o: &Output, code: i32, has: &[&str]) {
    assert_eq!(status(o), Some(code), "{}", describe(o));
    let lines = err_lines(o);
    assert_eq!(lines.len(), 1, "want one error line: {}", describe(o));
    assert!(lines[0].starts_with("jhack: error: "), "{}", lines[0]);
    for h in has {
        assert!(
            lines[0].contains(h),
            "{:?} does not mention {h:?}",
            lines[0]
        );
    }
    assert!(!stderr(o).contains("panicked"), "{}", describe(o));
}

#[test]
fn importing_a_mixed_folder() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let src = mkdir(&t.path().join("src"));

    // Good files, in several formats and folders.
    let beep = sine_wav(&src, "beep.wav", 440, 0.4, -6.0, 44_100, 1);
    let chime = sine_wav(
        &mkdir(&src.join("nested/deeper")),
        "chime.flac",
        660,
        0.5,
        -6.0,
        48_000,
        2,
    );
    let song = ffmpeg_sine(&mkdir(&src.join("music")).join("song.mp3"), 550, 0.6);
    let pad = ffmpeg_sine(&src.join("music/pad.ogg"), 330, 0.5);
    // The same bytes as beep.wav, under another name, walked after it.
    let copy = src.join("zz-copies/beep-again.wav");
    write(&copy, &std::fs::read(&beep).unwrap());
    // Bad files.
    let corrupt = write(&src.join("broken/corrupt.wav"), &noise(30_000, 7));
    let flac = std::fs::read(&chime).unwrap();
    let truncated = write(&src.join("broken/truncated.flac"), &flac[..100]);
    let words = write(
        &src.join("music/words.mp3"),
        "These are words, not music.\n".repeat(300).as_bytes(),
    );
    let png = src.join("cover.png");
    sh(&format!(
        "ffmpeg -v error -f lavfi -i testsrc=size=64x64:rate=1 -frames:v 1 {}",
        png.display()
    ));
    let notes = write(&src.join("notes.txt"), b"recorded on a tuesday\n");
    // Hidden entries are skipped: a bad hidden file and a good file in a hidden folder.
    write(&src.join(".DS_Store"), &noise(6_000, 9));
    write(
        &src.join("music/.hidden/secret.wav"),
        &wav_bytes(48_000, 1, 1000.0, 4_800),
    );

    let o = import(&home, &[&src], &[]);
    assert_eq!(status(&o), Some(2), "{}", describe(&o));
    let summary = stdout(&o);
    assert_eq!(
        summary.lines().last(),
        Some("imported 4, already present 1, failed 5"),
        "{}",
        describe(&o)
    );
    let bad = [&corrupt, &truncated, &words, &png, &notes];
    let lines = err_lines(&o);
    assert_eq!(lines.len(), bad.len(), "one line per bad file: {lines:#?}");
    for b in bad {
        let prefix = format!("jhack: error: {}: ", b.display());
        let line = lines
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no error line for {}: {lines:#?}", b.display()));
        let reason = line[prefix.len()..].to_lowercase();
        assert!(
            [
                "not an audio file",
                "truncated",
                "invalid",
                "unsupported",
                "no audio"
            ]
            .iter()
            .any(|r| reason.contains(r)),
            "{}: reason {reason:?}",
            b.display()
        );
    }

    let all = list(&home);
    let starter: BTreeSet<&str> = all
        .iter()
        .filter(|s| s.tags == ["starter"])
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(starter, STARTER.into_iter().collect(), "the starter pack");
    assert_eq!(all.len(), STARTER.len() + 4, "{all:#?}");
    let own = own_sounds(&home);
    let want: BTreeMap<String, String> = [
        ("beep", &beep),
        ("chime", &chime),
        ("song", &song),
        ("pad", &pad),
    ]
    .into_iter()
    .map(|(n, p)| (n.to_string(), file_hash(p)))
    .collect();
    let got: BTreeMap<String, String> =
        own.iter().map(|(n, s)| (n.clone(), s.id.clone())).collect();
    assert_eq!(got, want, "names are file stems, ids the files' hashes");
    for s in own.values() {
        let blob = std::fs::read(blob_path(&home, &s.id)).unwrap();
        assert_eq!(hash_hex(&blob), s.id);
        assert_eq!(blob.len() as u64, s.size);
        assert!(s.tags.is_empty() && s.key.is_none() && s.gain_db == 0.0);
    }

    // Again: everything good is already there; the bad files fail again.
    let o = import(&home, &[&src], &[]);
    assert_eq!(status(&o), Some(2), "{}", describe(&o));
    assert_eq!(
        stdout(&o).lines().last(),
        Some("imported 0, already present 5, failed 5"),
        "{}",
        describe(&o)
    );
    assert!(
        stdout(&o).contains(&format!("already present: {} is beep", copy.display())),
        "{}",
        describe(&o)
    );
    assert_eq!(err_lines(&o).len(), bad.len(), "{}", describe(&o));
    assert_eq!(list(&home).len(), STARTER.len() + 4);
    let o = jh(&home, &["check"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    assert!(!stdout(&o).contains("note:"), "{}", describe(&o));
}

#[test]
fn the_same_name_gets_a_numbered_suffix() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let src = mkdir(&t.path().join("src"));
    let a = write(&src.join("a/beep.wav"), &wav_bytes(48_000, 1, 400.0, 9_600));
    let b = write(&src.join("b/beep.wav"), &wav_bytes(48_000, 1, 500.0, 9_600));
    let c = write(&src.join("c/beep.wav"), &wav_bytes(48_000, 1, 600.0, 9_600));
    let horn = write(
        &t.path().join("other/airhorn.wav"),
        &wav_bytes(44_100, 2, 700.0, 8_820),
    );
    let o = import(&home, &[&src, &horn], &[]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    assert_eq!(
        stdout(&o).lines().last(),
        Some("imported 4, already present 0, failed 0")
    );
    let named = write(&t.path().join("x.wav"), &wav_bytes(48_000, 1, 800.0, 9_600));
    let o = import(&home, &[&named], &["--name", "beep"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));

    let by_id: HashMap<String, String> = list(&home).into_iter().map(|s| (s.id, s.name)).collect();
    for (file, name) in [
        (&a, "beep"),
        (&b, "beep-2"),
        (&c, "beep-3"),
        (&named, "beep-4"),
        (&horn, "airhorn-2"),
    ] {
        assert_eq!(
            by_id.get(&file_hash(file)).map(String::as_str),
            Some(name),
            "{}",
            file.display()
        );
    }
    assert!(
        by_id.values().any(|n| n == "airhorn"),
        "the starter airhorn"
    );
    assert_eq!(by_id.len(), STARTER.len() + 5);
}

#[test]
fn name_key_and_tag_options() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let one = write(
        &t.path().join("one.wav"),
        &wav_bytes(48_000, 2, 300.0, 9_600),
    );
    let two = write(
        &t.path().join("two.wav"),
        &wav_bytes(48_000, 2, 350.0, 9_600),
    );
    let three = write(
        &t.path().join("three.wav"),
        &wav_bytes(48_000, 1, 375.0, 9_600),
    );

    let o = import(
        &home,
        &[&one],
        &[
            "--name", "Big Horn", "--key", "F5", "--tag", "Loud", "--tag", "fx", "--gain", "-6",
        ],
    );
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    let own = own_sounds(&home);
    let s = own.get("Big Horn").unwrap_or_else(|| panic!("{own:#?}"));
    assert_eq!(s.id, file_hash(&one));
    assert_eq!(s.key.as_deref(), Some("f5"));
    assert_eq!(s.tags, ["fx", "loud"]);
    assert_eq!(s.gain_db, -6.0);

    // --name and --key name one sound.
    for opt in [["--name", "pair"], ["--key", "f6"]] {
        let o = import(&home, &[&two, &three], &opt);
        assert_one_error(&o, 2, &["2 files"]);
    }
    // A key already bound, to a starter sound and to the one just imported.
    for (key, holder) in [("1", "airhorn"), ("f5", "Big Horn")] {
        let o = import(&home, &[&two], &["--key", key]);
        assert_eq!(status(&o), Some(2), "{}", describe(&o));
        let lines = err_lines(&o);
        assert_eq!(lines.len(), 1, "{}", describe(&o));
        assert!(
            lines[0].starts_with(&format!("jhack: error: {}: ", two.display()))
                && lines[0].contains(&format!("key {key} is bound to {holder}")),
            "{}",
            lines[0]
        );
        assert_eq!(
            stdout(&o).lines().last(),
            Some("imported 0, already present 0, failed 1")
        );
    }
    // Not a key; a gain out of range.
    let o = import(&home, &[&two], &["--key", "notakey"]);
    assert_eq!(status(&o), Some(2), "{}", describe(&o));
    assert!(stderr(&o).contains("not a key"), "{}", describe(&o));
    let o = import(&home, &[&two], &["--gain", "100"]);
    assert_one_error(&o, 2, &["--gain"]);
    // Nothing of the refused imports was stored.
    assert_eq!(own_sounds(&home).len(), 1);
    let o = jh(&home, &["check"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    assert!(!stdout(&o).contains("note:"), "{}", describe(&o));

    // --tag and --gain apply to every file; names are the stems.
    let o = import(&home, &[&two, &three], &["--tag", "Pair", "--gain", "3.5"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    let own = own_sounds(&home);
    for n in ["two", "three"] {
        let s = &own[n];
        assert_eq!(
            (s.tags.as_slice(), s.gain_db, s.key.as_deref()),
            (&["pair".to_string()][..], 3.5, None)
        );
    }
}

#[test]
fn edit_and_rm() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let src = mkdir(&t.path().join("src"));
    let beep = write(&src.join("beep.wav"), &wav_bytes(48_000, 1, 440.0, 12_000));
    let chime = write(&src.join("chime.wav"), &wav_bytes(44_100, 2, 660.0, 11_025));
    // Two files whose ids share their first four hex digits.
    let mut seen: HashMap<String, Vec<u8>> = HashMap::new();
    let (twin_a, twin_b) = (0..100_000u32)
        .find_map(|i| {
            let bytes = wav_bytes(8_000, 1, 200.0 + i as f32 * 0.25, 400);
            let prefix = hash_hex(&bytes)[..4].to_string();
            seen.insert(prefix, bytes.clone())
                .map(|other| (other, bytes))
        })
        .expect("two ids with a common prefix");
    write(&src.join("twins/a.wav"), &twin_a);
    write(&src.join("twins/b.wav"), &twin_b);
    let o = import(&home, &[&src], &[]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    let beep_id = file_hash(&beep);
    let chime_id = file_hash(&chime);

    let edit = |args: &[&str]| {
        let mut a = vec!["edit"];
        a.extend_from_slice(args);
        jh(&home, &a)
    };
    let o = edit(&["beep", "--name", "Beeper"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    assert_eq!(
        stdout(&o).trim(),
        format!("Beeper ({}): key -, gain +0.0 dB, tags -", &beep_id[..12])
    );
    // By id prefix (any case).
    let o = edit(&[&beep_id[..6].to_uppercase(), "--key", "b"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    let o = edit(&[
        "Beeper", "--gain", "-3.5", "--tag", "Short", "--tag", "alert",
    ]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    let s = own_sounds(&home)["Beeper"].clone();
    assert_eq!(s.id, beep_id);
    assert_eq!(
        (s.key.as_deref(), s.gain_db, s.tags.as_slice()),
        (Some("b"), -3.5, &["alert".to_string(), "short".into()][..])
    );
    let o = edit(&[&beep_id[..4], "--untag", "SHORT", "--no-key"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    let s = own_sounds(&home)["Beeper"].clone();
    assert_eq!((s.key, s.tags), (None, vec!["alert".to_string()]));
    assert!(!own_sounds(&home).contains_key("beep"));

    // Refused edits change nothing.
    let o = edit(&["Beeper", "--key", "1"]);
    assert_one_error(&o, 2, &["Beeper", "key 1 is bound to airhorn"]);
    let o = edit(&["Beeper", "--name", "chime"]);
    assert_one_error(&o, 2, &["Beeper", "\"chime\" is taken"]);
    let o = edit(&["Beeper", "--gain", "99"]);
    assert_one_error(&o, 2, &["out of range"]);
    let o = edit(&["Beeper"]);
    assert_one_error(&o, 2, &["nothing to change"]);
    let o = edit(&["nosuch", "--gain", "1"]);
    assert_one_error(
        &o,
        2,
        &["nosuch: no sound with that name or id in the library"],
    );
    // Three hex digits are too few to be an id prefix.
    let o = edit(&[&beep_id[..3], "--gain", "1"]);
    assert_one_error(&o, 2, &["no sound with that name or id"]);
    let (a_id, b_id) = (hash_hex(&twin_a), hash_hex(&twin_b));
    let o = edit(&[&a_id[..4], "--gain", "1"]);
    assert_one_error(&o, 2, &["ambiguous", &a_id[..12], &b_id[..12]]);
    let s = own_sounds(&home)["Beeper"].clone();
    assert_eq!((s.gain_db, s.key), (-3.5, None));
    assert!(own_sounds(&home).values().all(|s| s.gain_db != 1.0));
    // A longer prefix tells the twins apart.
    let long = a_id
        .chars()
        .zip(b_id.chars())
        .take_while(|(x, y)| x == y)
        .count()
        + 1;
    let o = edit(&[&a_id[..long], "--gain", "1"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    assert_eq!(own_sounds(&home)["a"].gain_db, 1.0);

    // rm by name and by id prefix: the record and the blob go, nothing else.
    let before = list(&home).len();
    assert!(blob_path(&home, &beep_id).is_file());
    let o = jh(&home, &["rm", "Beeper"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    assert_eq!(
        stdout(&o).trim(),
        format!("removed Beeper ({})", &beep_id[..12])
    );
    assert!(!blob_path(&home, &beep_id).exists());
    let o = jh(&home, &["rm", &chime_id[..8]]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    assert!(!blob_path(&home, &chime_id).exists());
    let after = list(&home);
    assert_eq!(after.len(), before - 2);
    assert!(after.iter().all(|s| s.id != beep_id && s.id != chime_id));
    for s in &after {
        assert!(blob_path(&home, &s.id).is_file(), "{}", s.name);
    }
    let o = jh(&home, &["rm", "Beeper"]);
    assert_one_error(&o, 2, &["Beeper: no sound with that name or id"]);
    let o = jh(&home, &["check"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    assert_eq!(
        stdout(&o).lines().collect::<Vec<_>>(),
        [format!(
            "checked {} sounds ({:.1} MB): all intact",
            after.len(),
            after.iter().map(|s| s.size).sum::<u64>() as f64 / 1e6
        )],
        "{}",
        describe(&o)
    );
    // Importing a removed file brings it back.
    let o = import(&home, &[&beep], &[]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    assert_eq!(own_sounds(&home)["beep"].id, beep_id);
}

#[test]
fn check_finds_corruption() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let src = mkdir(&t.path().join("src"));
    write(&src.join("beep.wav"), &wav_bytes(48_000, 1, 440.0, 12_000));
    sine_wav(&src, "chime.flac", 660, 0.5, -6.0, 48_000, 2);
    write(&src.join("hum.wav"), &wav_bytes(44_100, 2, 120.0, 22_050));
    let o = import(&home, &[&src], &[]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    let o = jh(&home, &["check"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));

    let own = own_sounds(&home);
    let (beep, chime) = (&own["beep"].id, &own["chime"].id);
    let flipped = blob_path(&home, beep);
    let mut bytes = std::fs::read(&flipped).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&flipped, &bytes).unwrap();
    std::fs::remove_file(blob_path(&home, chime)).unwrap();

    let o = jh(&home, &["check"]);
    assert_eq!(status(&o), Some(1), "{}", describe(&o));
    let out = stdout(&o);
    let problems: Vec<&str> = out.lines().filter(|l| l.starts_with("problem:")).collect();
    assert_eq!(problems.len(), 2, "{}", describe(&o));
    assert!(
        problems.contains(
            &format!(
                "problem: beep ({}): the sound's file does not match its id (corrupt)",
                &beep[..12]
            )
            .as_str()
        ),
        "{problems:#?}"
    );
    assert!(
        problems.contains(
            &format!(
                "problem: chime ({}): the sound's file is missing",
                &chime[..12]
            )
            .as_str()
        ),
        "{problems:#?}"
    );
    let intact = STARTER.len() + 1;
    assert_eq!(
        err_lines(&o),
        [format!(
            "jhack: error: 2 problems in the library ({intact} sounds intact)"
        )],
        "{}",
        describe(&o)
    );
    // Listing still works: check reports, it repairs nothing.
    assert_eq!(list(&home).len(), STARTER.len() + 3);
}

/// A folder of `wavs` distinct WAVs (rates, channels and sample formats varied, 50–500
/// KB each), `flacs` distinct FLACs and `copies` byte copies of some of the WAVs.
/// Returns the number of files and the set of their contents' hashes.
fn crash_fixtures(
    dir: &Path,
    wavs: usize,
    flacs: usize,
    copies: usize,
) -> (usize, BTreeSet<String>) {
    let mut files = Vec::new();
    for i in 0..wavs {
        let rate = [22_050, 32_000, 44_100, 48_000][i % 4];
        let channels = 1 + (i % 2) as u16;
        let (bits, format) = match i % 3 {
            0 => (16, hound::SampleFormat::Int),
            1 => (24, hound::SampleFormat::Int),
            _ => (32, hound::SampleFormat::Float),
        };
        let bytes_per_frame = usize::from(channels) * bits as usize / 8;
        let size = 50_000 + (i * 37_337) % 450_000;
        let frames = size / bytes_per_frame;
        let freq = 110.0 + 13.0 * i as f32;
        let path = mkdir(&dir.join(format!("set-{}", i % 7))).join(format!("tone-{i:03}.wav"));
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for n in 0..frames {
            let x = (std::f32::consts::TAU * freq * n as f32 / rate as f32).sin()
                * (0.2 + 0.6 * n as f32 / frames as f32);
            for _ in 0..channels {
                match format {
                    hound::SampleFormat::Float => w.write_sample(x).unwrap(),
                    hound::SampleFormat::Int => {
                        let scale = ((1i32 << (bits - 1)) - 1) as f32;
                        w.write_sample((x * scale) as i32).unwrap();
                    }
                }
            }
        }
        w.finalize().unwrap();
        files.push(path);
    }
    let flac_dir = mkdir(&dir.join("flac"));
    for i in 0..flacs {
        let path = flac_dir.join(format!("noise-{i:02}.flac"));
        sh(&format!(
            "sox -n -r 44100 -c 2 -b 16 {} synth {} pinknoise sine {} gain -8",
            path.display(),
            0.5 + 0.25 * i as f64,
            200 + 50 * i
        ));
        files.push(path);
    }
    let copy_dir = mkdir(&dir.join("copies"));
    for i in 0..copies {
        let from = &files[i * 3];
        let to = copy_dir.join(format!("copy-{i}.wav"));
        std::fs::copy(from, &to).unwrap();
        files.push(to);
    }
    let hashes = files.iter().map(|f| file_hash(f)).collect();
    (files.len(), hashes)
}

/// Checks a library after a crash: `check` passes, and every listed sound's blob is
/// there and hashes to its id. Returns the listed sounds.
fn assert_consistent(home: &Path, round: &str) -> Vec<Listed> {
    let o = jh(home, &["check"]);
    assert_eq!(
        status(&o),
        Some(0),
        "{round}: check after the kill: {}",
        describe(&o)
    );
    assert!(
        stdout(&o).lines().all(|l| !l.starts_with("problem:")),
        "{round}: {}",
        describe(&o)
    );
    let listed = list(home);
    for s in &listed {
        let path = blob_path(home, &s.id);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{round}: {} ({}) is listed but its blob {} cannot be read: {e}",
                s.name,
                s.id,
                path.display()
            )
        });
        assert_eq!(hash_hex(&bytes), s.id, "{round}: the blob of {}", s.name);
        assert_eq!(
            bytes.len() as u64,
            s.size,
            "{round}: the size of {}",
            s.name
        );
    }
    let temps = files_named(&home.join("library/blobs"), ".tmp-");
    assert!(
        temps.is_empty(),
        "{round}: temporary files left after the library was opened: {temps:?}"
    );
    listed
}

/// How many blob files are in place under `blobs` (temporary files not counted).
fn blob_count(blobs: &Path) -> usize {
    let Ok(shards) = std::fs::read_dir(blobs) else {
        return 0;
    };
    shards
        .flatten()
        .filter(|s| s.path().is_dir())
        .filter_map(|s| std::fs::read_dir(s.path()).ok())
        .map(|files| {
            files
                .flatten()
                .filter(|f| f.file_name().len() == 64)
                .count()
        })
        .sum()
}

/// Waits until `blobs` holds at least `n` blobs, the child has exited, or `limit`.
fn wait_for_blobs(blobs: &Path, n: usize, child: &mut std::process::Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while blob_count(blobs) < n
        && child.try_wait().expect("try_wait").is_none()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn sigkill_during_import_never_corrupts_the_library() {
    let started = Instant::now();
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let blobs = home.join("library/blobs");
    let src = mkdir(&t.path().join("src"));
    let (files, distinct) = crash_fixtures(&src, 150, 8, 6);
    let starter_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds");
    let known: BTreeSet<String> = std::fs::read_dir(&starter_dir)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".txt"))
        .map(|e| file_hash(&e.path()))
        .chain(distinct.iter().cloned())
        .collect();
    let total = distinct.len() + STARTER.len();
    assert_eq!(known.len(), total);
    eprintln!(
        "{files} files ({} distinct) made in {:.1} s",
        distinct.len(),
        started.elapsed().as_secs_f64()
    );

    let seed = std::env::var("JHACK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| (unix_us() as u64) | 1);
    eprintln!("seed {seed} (JHACK_TEST_SEED={seed} repeats the choices)");
    let mut rng = Rng(seed);

    // Most kills land a random few milliseconds after the import has put a random
    // number (1-6) of new blobs in place, so they fall in every step of adding a
    // sound, from the new library's starter pack on; the others after a random
    // delay from the start, in the walk over files already there. A few more once
    // everything is in.
    let mut ever_listed: BTreeSet<String> = BTreeSet::new();
    let (mut kills, mut mid_import, mut after_complete) = (0, 0, 0);
    while ever_listed.len() < total || kills < 25 || after_complete < 3 {
        assert!(kills < 150, "{kills} kills and the import is not done yet");
        let complete = ever_listed.len() == total;
        let before = blob_count(&blobs);
        let mut child = jhack(&home)
            .arg("import")
            .arg(&src)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn import");
        let when = if !complete && rng.below(8) != 0 {
            let k = 1 + rng.below(6) as usize;
            let jitter = rng.below(11);
            wait_for_blobs(&blobs, before + k, &mut child, Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(jitter));
            format!("{jitter} ms after {k} new blobs")
        } else {
            let delay = rng.below(150);
            std::thread::sleep(Duration::from_millis(delay));
            format!("after {delay} ms")
        };
        let finished = child.try_wait().expect("try_wait").is_some();
        child.kill().expect("SIGKILL");
        let st = child.wait().expect("wait");
        kills += 1;
        if finished {
            assert_eq!(st.code(), Some(0), "an import that was not killed failed");
        } else if complete {
            after_complete += 1;
        } else {
            mid_import += 1;
        }
        let round = format!("kill {kills}, {when} (seed {seed})");
        let listed = assert_consistent(&home, &round);
        let ids: BTreeSet<String> = listed.iter().map(|s| s.id.clone()).collect();
        let lost: Vec<&String> = ever_listed.difference(&ids).collect();
        assert!(
            lost.is_empty(),
            "{round}: listed sounds disappeared: {lost:?}"
        );
        let strange: Vec<&String> = ids.difference(&known).collect();
        assert!(
            strange.is_empty(),
            "{round}: sounds of no file: {strange:?}"
        );
        assert_eq!(ids.len(), listed.len(), "{round}: an id listed twice");
        let names: BTreeSet<&str> = listed.iter().map(|s| s.name.as_str()).collect();
        for s in STARTER {
            assert!(
                names.contains(s),
                "{round}: the starter sound {s} is missing"
            );
        }
        eprintln!(
            "{round}: {}, {} sounds listed",
            if finished { "had finished" } else { "killed" },
            listed.len()
        );
        ever_listed = ids;
    }
    // At least 25 kills in all; on a loaded machine fewer of them land while sounds
    // are being added (the rest hit start-up, the duplicate checks or a finished run).
    assert!(
        mid_import >= 10,
        "only {mid_import} of {kills} kills interrupted an import that was adding sounds"
    );

    let o = import(&home, &[&src], &[]);
    assert_eq!(status(&o), Some(0), "the final import: {}", describe(&o));
    assert_eq!(
        stdout(&o).lines().last(),
        Some(format!("imported 0, already present {files}, failed 0").as_str()),
        "{}",
        describe(&o)
    );
    let listed = assert_consistent(&home, "after the final import");
    assert_eq!(listed.len(), total, "every file once, and the starter pack");
    let o = jh(&home, &["check"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    assert_eq!(
        stdout(&o).lines().count(),
        1,
        "no problems, no stray blobs: {}",
        describe(&o)
    );
    eprintln!(
        "{kills} kills ({mid_import} while adding sounds, {after_complete} after), {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_second_process_on_the_same_home_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let long = sine_wav(t.path(), "long.wav", 440, 3.0, -12.0, 48_000, 2);
    let short = sine_wav(t.path(), "short.wav", 880, 0.2, -12.0, 48_000, 1);
    let o = import(&home, &[&long], &[]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));

    let mut player = jhack(&home)
        .args(["--no-audio", "play", "long"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn play");
    let pid = player.id();
    let lock = home.join("jhack.lock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .starts_with(&format!("pid {pid}:"))
    {
        assert!(
            Instant::now() < deadline && player.try_wait().unwrap().is_none(),
            "the player never took the home lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    for args in [&["list"][..], &["check"], &["import", "whatever.wav"]] {
        let o = jh(&home, args);
        assert_eq!(status(&o), Some(1), "{args:?}: {}", describe(&o));
        let lines = err_lines(&o);
        assert_eq!(lines.len(), 1, "{args:?}: {}", describe(&o));
        let want = format!(
            "jhack: error: {} is in use by another jhack (pid {pid}: ",
            home.display()
        );
        assert!(lines[0].starts_with(&want), "{:?} vs {want:?}", lines[0]);
    }
    // Playing a file needs no library, so it is not refused.
    let mut c = jhack(&home);
    c.args(["--no-audio", "play"]).arg(&short);
    let o = run(c, TIMEOUT);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    assert!(
        player.try_wait().unwrap().is_none(),
        "the player ended before the others were refused; the machine is too slow for this test"
    );

    let o = player.wait_with_output().unwrap();
    assert_eq!(status(&o), Some(0), "the player: {}", describe(&o));
    let o = jh(&home, &["list"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
    assert!(stdout(&o).contains("long"), "{}", describe(&o));
}

#[test]
fn playing_an_unknown_sound_or_missing_file() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let o = jh(&home, &["play", "nosuch", "--no-audio"]);
    assert_one_error(
        &o,
        2,
        &["jhack: error: nosuch: no sound with that name or id in the library"],
    );
    let mut c = jhack(&home);
    c.args(["play", "missing.wav", "--no-audio"])
        .current_dir(t.path());
    let o = run(c, TIMEOUT);
    assert_one_error(&o, 2, &["jhack: error: missing.wav: no such file"]);
    let missing = t.path().join("sub/missing.wav");
    let mut c = jhack(&home);
    c.arg("play").arg(&missing).arg("--no-audio");
    let o = run(c, TIMEOUT);
    assert_one_error(
        &o,
        2,
        &[&format!(
            "jhack: error: {}: no such file",
            missing.display()
        )],
    );
    // A known sound plays.
    let o = jh(&home, &["play", "clap", "--no-audio"]);
    assert_eq!(status(&o), Some(0), "{}", describe(&o));
}

#[test]
fn a_reader_that_goes_away_ends_a_listing_quietly() {
    // `jhack list | head -1` and the like: the reader closes the pipe after one line;
    // jhack stops without a panic or an error line.
    let h = tempfile::tempdir().expect("tempdir");
    for args in [&["list"][..], &["id"][..], &["list", "--json"][..]] {
        let mut c = jhack(h.path());
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn");
        drop(child.stdout.take()); // the reader is gone before the first line
        let o = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("error"), "{args:?}: {err}");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    }
}
