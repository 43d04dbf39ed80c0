//! Library speed, through the library API and through the `jhack` binary:
//! 1. importing 1,000 small WAVs (0.2–1 s, 48 kHz 16-bit mono, all different);
//! 2. importing about 100 MB of FLAC (10 files of 72–81 s, 48 kHz 24-bit stereo noise);
//! 3. listing a library of 10,000 sounds (`Library::open` + `list()`, `jhack list`,
//!    `jhack list --json`), against a target of 200 ms.
//!
//! Imports go into a fresh library each run; runs of the API and of the binary take
//! turns, so their ratios compare like with like on a shared machine. The source files
//! are in the page cache (they were just written); the library is on the same disk, so
//! every import pays its fsyncs. The binary is `target/release/jhack`: run
//! `cargo build --release` first, or its figures are skipped. MB = 10^6 bytes.
//! `cargo bench --bench library`; one to three minutes, most of it fsync-bound imports.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use jhack::app::import::{ImportOptions, Imported, analyse, import_file};
use jhack::home::Home;
use jhack::library::Library;
use jhack::media::Decoder;

/// Small WAVs imported per run.
const SMALL_FILES: usize = 1_000;
/// Runs of each import measurement.
const IMPORT_RUNS: usize = 5;
/// FLAC files (about 10 MB each).
const FLAC_FILES: usize = 10;
/// Sounds in the library that is listed.
const LIST_SOUNDS: usize = 10_000;
/// Runs of each list measurement.
const LIST_RUNS: usize = 21;
/// What `jhack list` should stay under.
const LIST_TARGET: Duration = Duration::from_millis(200);

fn main() {
    let work = match tempfile::Builder::new()
        .prefix("jhack-bench-library-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot create a temporary directory: {e}");
            return;
        }
    };
    let bin = find_binary();
    println!("load average at start: {}", load_average());
    let start = Instant::now();
    small_wavs(work.path(), bin.as_deref());
    flac(work.path(), bin.as_deref());
    list(work.path(), bin.as_deref());
    println!(
        "\ntotal {:.0} s; load average at the end: {}",
        start.elapsed().as_secs_f64(),
        load_average()
    );
}

/// The 1, 5 and 15 minute load averages (the machine may be shared).
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".into(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// `target/release/jhack`, when it has been built; warns when sources are newer.
fn find_binary() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("target/release/jhack");
    let Ok(built) = fs::metadata(&bin).and_then(|m| m.modified()) else {
        println!(
            "binary figures skipped: {} not found (run `cargo build --release` first)",
            bin.display()
        );
        return None;
    };
    let newer = walkdir::WalkDir::new(root.join("src"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| e.metadata().ok().and_then(|m| m.modified().ok()) > Some(built))
        .count();
    let age = SystemTime::now()
        .duration_since(built)
        .unwrap_or_default()
        .as_secs();
    println!(
        "binary: {} (built {} min ago{})",
        bin.display(),
        age / 60,
        if newer > 0 {
            format!("; {newer} source files are newer: rebuild for current figures")
        } else {
            String::new()
        }
    );
    Some(bin)
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The median of `num[i] / den[i]` over runs made side by side.
fn paired_ratio(num: &[Duration], den: &[Duration]) -> f64 {
    let mut r: Vec<f64> = num
        .iter()
        .zip(den)
        .map(|(n, d)| secs(*n) / secs(*d))
        .collect();
    r.sort_by(f64::total_cmp);
    r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

/// The home's library directory and lock file; creates the home, as `jhack` does
/// before opening its library.
fn library_paths(home: &Path) -> (PathBuf, PathBuf) {
    let h = Home::at(home);
    if let Err(e) = h.create() {
        eprintln!("{e}");
    }
    (h.library_dir(), h.lock_file())
}

/// Sounds in the library of `home`.
fn library_len(home: &Path) -> usize {
    let (dir, lock) = library_paths(home);
    Library::open(&dir, &lock).map_or(0, |l| l.len())
}

/// Imports every file of `files` into a new library in `home` through the API; the
/// time covers opening the library, the imports and closing it.
fn import_api(home: &Path, files: &[PathBuf]) -> Result<Duration, String> {
    let (dir, lock) = library_paths(home);
    let opts = ImportOptions::default();
    let t = Instant::now();
    let lib = Library::open(&dir, &lock).map_err(|e| e.to_string())?;
    for f in files {
        match import_file(&lib, f, &opts) {
            Ok(Imported::New(_)) => {}
            Ok(Imported::AlreadyPresent(m)) => {
                return Err(format!("{}: already present as {}", f.display(), m.name));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    drop(lib);
    Ok(t.elapsed())
}

/// Runs the binary with `args` (after `--home home`), output discarded; the wall time
/// of the whole process.
fn run_binary(bin: &Path, home: &Path, args: &[&str]) -> Result<Duration, String> {
    let t = Instant::now();
    let out = Command::new(bin)
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let took = t.elapsed();
    if out.status.success() {
        Ok(took)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "jhack {} failed ({}): {}",
            args.join(" "),
            out.status,
            err.lines().take(5).collect::<Vec<_>>().join(" | ")
        ))
    }
}

/// Imports `src_dir` into a new library in `home` with the binary; checks the count.
/// The library is made first by an untimed `jhack list` (a first run, which also adds
/// the starter sounds), so the timed process imports `src_dir` only.
fn import_binary(bin: &Path, home: &Path, src_dir: &Path, n: usize) -> Result<Duration, String> {
    run_binary(bin, home, &["list"])?;
    let before = library_len(home);
    let src = src_dir.to_str().ok_or("non-UTF-8 path")?;
    let t = run_binary(bin, home, &["import", src])?;
    let got = library_len(home).saturating_sub(before);
    if got != n {
        return Err(format!("the binary imported {got} sounds, not {n}"));
    }
    Ok(t)
}

fn total_size(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|f| fs::metadata(f).map_or(0, |m| m.len()))
        .sum()
}

/// A tiny deterministic noise source (xorshift), in -1..1.
struct Noise(u64);

impl Noise {
    fn new(seed: u64) -> Noise {
        Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// A 48 kHz 16-bit mono WAV of `frames` frames: a tone whose pitch depends on `i`,
/// plus a little noise seeded by `i`, so no two files are alike.
fn write_wav(path: &Path, i: usize, frames: usize) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    let mut noise = Noise::new(i as u64 + 1);
    let freq = 110.0 + 3.7 * (i % 4_000) as f32;
    for n in 0..frames {
        let t = n as f32 / 48_000.0;
        let s = 0.3 * (std::f32::consts::TAU * freq * t).sin() + 0.05 * noise.next();
        w.write_sample((s * 32_767.0) as i16)?;
    }
    w.finalize()
}

/// What one import run takes in.
struct Batch {
    files: usize,
    bytes: u64,
    /// Seconds of audio, when a multiple of real time is wanted.
    audio_s: Option<f64>,
}

/// Prints one line of import figures (from the median run, with the range of all
/// runs); returns the median.
fn import_line(what: &str, runs: &[Duration], batch: &Batch) -> Duration {
    let d = median(runs);
    let lo = runs.iter().min().copied().unwrap_or_default();
    let hi = runs.iter().max().copied().unwrap_or_default();
    let rt = batch.audio_s.map_or_else(String::new, |a| {
        format!("  {:>5.0}x real time", a / secs(d))
    });
    println!(
        "  {what:<34} {:>6.2} s ({:.2}-{:.2})  {:>5.0} files/s  {:>6.1} MB/s{rt}",
        d.as_secs_f64(),
        lo.as_secs_f64(),
        hi.as_secs_f64(),
        batch.files as f64 / secs(d),
        batch.bytes as f64 / 1e6 / secs(d)
    );
    d
}

fn small_wavs(work: &Path, bin: Option<&Path>) {
    let src = work.join("wavs");
    if let Err(e) = fs::create_dir_all(&src) {
        eprintln!("{}: {e}", src.display());
        return;
    }
    let mut files = Vec::with_capacity(SMALL_FILES);
    let mut frames_total = 0;
    for i in 0..SMALL_FILES {
        // 0.2–1.0 s, in a scrambled order.
        let frames = 9_600 + (i * 7_919 % SMALL_FILES) * 38_400 / SMALL_FILES;
        let path = src.join(format!("w{i:04}.wav"));
        if let Err(e) = write_wav(&path, i, frames) {
            eprintln!("{}: {e}", path.display());
            return;
        }
        files.push(path);
        frames_total += frames;
    }
    let bytes = total_size(&files);
    let audio_s = frames_total as f64 / 48_000.0;
    println!(
        "\n1. import {SMALL_FILES} small WAVs (0.2-1 s, 48 kHz 16-bit mono): {:.1} MB, {:.0} s of audio; median of {IMPORT_RUNS} runs",
        bytes as f64 / 1e6,
        audio_s
    );
    let shm = tempfile::tempdir_in("/dev/shm").ok();
    let (mut api, mut binary, mut tmpfs) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..IMPORT_RUNS {
        let home = work.join(format!("wav-api-{run}"));
        match import_api(&home, &files) {
            Ok(d) => api.push(d),
            Err(e) => println!("  API import failed: {e}"),
        }
        let _ = fs::remove_dir_all(&home);
        if let Some(bin) = bin {
            let home = work.join(format!("wav-bin-{run}"));
            match import_binary(bin, &home, &src, SMALL_FILES) {
                Ok(d) => binary.push(d),
                Err(e) => println!("  binary import failed: {e}"),
            }
            let _ = fs::remove_dir_all(&home);
        }
        if let Some(shm) = &shm {
            let home = shm.path().join(format!("wav-{run}"));
            match import_api(&home, &files) {
                Ok(d) => tmpfs.push(d),
                Err(e) => println!("  API import on tmpfs failed: {e}"),
            }
            let _ = fs::remove_dir_all(&home);
        }
    }
    if api.is_empty() {
        return;
    }
    let batch = Batch {
        files: SMALL_FILES,
        bytes,
        audio_s: Some(audio_s),
    };
    let a = import_line("API (open + import_file each)", &api, &batch);
    println!("  {:<34} {:.2} ms per file", "", ms(a) / SMALL_FILES as f64);
    if !binary.is_empty() {
        import_line("binary `jhack import DIR`", &binary, &batch);
        println!(
            "  {:<34} binary / API time: {:.2} (median of the runs' ratios)",
            "",
            paired_ratio(&binary, &api)
        );
    }
    if !tmpfs.is_empty() {
        import_line("API, library on tmpfs (no fsync)", &tmpfs, &batch);
        println!(
            "  {:<34} disk / tmpfs time: {:.1} (the difference is mostly fsync)",
            "",
            paired_ratio(&api, &tmpfs)
        );
    }
    let _ = fs::remove_dir_all(&src);
}

fn sox_pink(path: &Path, seconds: u32, volume: f32) -> bool {
    Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "2", "-b", "24"])
        .arg(path)
        .args(["synth", &seconds.to_string(), "pinknoise"])
        .args(["vol", &volume.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn flac(work: &Path, bin: Option<&Path>) {
    let src = work.join("flac");
    if let Err(e) = fs::create_dir_all(&src) {
        eprintln!("{}: {e}", src.display());
        return;
    }
    let mut files = Vec::new();
    for i in 0..FLAC_FILES {
        let path = src.join(format!("f{i:02}.flac"));
        // Lengths and levels differ, and sox seeds its noise afresh each time.
        if !sox_pink(&path, 72 + i as u32, 0.9 - 0.02 * i as f32) {
            println!(
                "\n2. FLAC import skipped: sox cannot make {}",
                path.display()
            );
            return;
        }
        files.push(path);
    }
    let bytes = total_size(&files);
    let mut audio_s = 0.0;
    let analysis = Instant::now();
    for f in &files {
        match analyse(f) {
            Ok(a) => audio_s += a.frames as f64 / f64::from(a.sample_rate),
            Err(e) => {
                println!("\n2. FLAC import skipped: {}: {e}", f.display());
                return;
            }
        }
    }
    let mut analyse_only = vec![analysis.elapsed()];
    println!(
        "\n2. import {FLAC_FILES} FLACs (48 kHz 24-bit stereo pink noise): {:.1} MB, {:.0} s of audio; median of {IMPORT_RUNS} runs",
        bytes as f64 / 1e6,
        audio_s
    );
    let (mut api, mut binary, mut decode) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..IMPORT_RUNS {
        let home = work.join(format!("flac-api-{run}"));
        match import_api(&home, &files) {
            Ok(d) => api.push(d),
            Err(e) => println!("  API import failed: {e}"),
        }
        let _ = fs::remove_dir_all(&home);
        if let Some(bin) = bin {
            let home = work.join(format!("flac-bin-{run}"));
            match import_binary(bin, &home, &src, FLAC_FILES) {
                Ok(d) => binary.push(d),
                Err(e) => println!("  binary import failed: {e}"),
            }
            let _ = fs::remove_dir_all(&home);
        }
        let t = Instant::now();
        for f in &files {
            std::hint::black_box(analyse(f).map(|a| a.frames).unwrap_or_default());
        }
        analyse_only.push(t.elapsed());
        let t = Instant::now();
        for f in &files {
            std::hint::black_box(decode_only(f));
        }
        decode.push(t.elapsed());
    }
    let t = Instant::now();
    for f in &files {
        let _ = fs::File::open(f).and_then(|mut r| io::copy(&mut r, &mut blake3::Hasher::new()));
    }
    let hash_only = t.elapsed();
    if !api.is_empty() {
        let batch = Batch {
            files: FLAC_FILES,
            bytes,
            audio_s: Some(audio_s),
        };
        let a = import_line("API (open + import_file each)", &api, &batch);
        if !binary.is_empty() {
            import_line("binary `jhack import DIR`", &binary, &batch);
            println!(
                "  {:<34} binary / API time: {:.2} (median of the runs' ratios)",
                "",
                paired_ratio(&binary, &api)
            );
        }
        let d = import_line("of which: decode + loudness", &analyse_only, &batch);
        let dec = median(&decode);
        println!(
            "  {:<34} {:.0} % of the API import time (decode alone {:.0} ms, {:.0}x real time); reading + BLAKE3 alone: {:.0} ms",
            "",
            100.0 * secs(d) / secs(a),
            ms(dec),
            audio_s / secs(dec),
            ms(hash_only)
        );
    }
    let _ = fs::remove_dir_all(&src);
}

/// Decodes `path` block by block, as `analyse` does, without measuring loudness;
/// returns the samples decoded.
fn decode_only(path: &Path) -> usize {
    let Ok(mut dec) = Decoder::open(path) else {
        return 0;
    };
    let mut block = Vec::with_capacity(1 << 16);
    let mut samples = 0;
    loop {
        block.clear();
        match dec.next_block(&mut block) {
            Ok(0) | Err(_) => return samples,
            Ok(_) => samples += block.len(),
        }
    }
}

/// A 5–10 ms WAV, different for every `i`.
fn tiny_wav(path: &Path, i: usize) -> Result<(), hound::Error> {
    write_wav(path, i, 240 + i % 240)
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

/// Builds a library of `LIST_SOUNDS` sounds in `home`: tiny distinct WAVs imported
/// through `import_file` (as `jhack import` does), into a library on tmpfs where the
/// fsyncs cost nothing, then copied to `home`. Without tmpfs it is built in place.
fn build_big_library(work: &Path, home: &Path) -> Result<Duration, String> {
    let t = Instant::now();
    let shm = tempfile::tempdir_in("/dev/shm").ok();
    let base = shm.as_ref().map_or(work, |d| d.path());
    let src = base.join("tiny");
    let build_home = if shm.is_some() {
        base.join("home")
    } else {
        home.to_path_buf()
    };
    fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    let (dir, lock) = library_paths(&build_home);
    let lib = Library::open(&dir, &lock).map_err(|e| e.to_string())?;
    for i in 0..LIST_SOUNDS {
        let path = src.join(format!("tiny-{i:05}.wav"));
        tiny_wav(&path, i).map_err(|e| e.to_string())?;
        let opts = ImportOptions {
            // Names not in id order, of a few shapes; some tags; keys 1-9.
            name: Some(match i % 3 {
                0 => format!("Sound {}", i * 7_919 % LIST_SOUNDS),
                1 => format!("clip_{:05}_take", i * 104_729 % LIST_SOUNDS),
                _ => format!("fx-{}-{}", ["door", "horn", "bell", "wind"][i % 4], i),
            }),
            tags: match i % 4 {
                0 => vec![],
                1 => vec!["bench".into()],
                _ => vec!["bench".into(), format!("group{}", i % 17)],
            },
            key: (i < 9).then(|| (i + 1).to_string()),
            gain_db: (i % 7) as f32 - 3.0,
        };
        match import_file(&lib, &path, &opts) {
            Ok(Imported::New(_)) => {}
            Ok(Imported::AlreadyPresent(m)) => {
                return Err(format!("{}: already present as {}", path.display(), m.name));
            }
            Err(e) => return Err(e.to_string()),
        }
        let _ = fs::remove_file(&path);
    }
    drop(lib);
    if shm.is_some() {
        copy_dir(&build_home, home).map_err(|e| e.to_string())?;
    }
    Ok(t.elapsed())
}

fn list(work: &Path, bin: Option<&Path>) {
    let home = work.join("list-home");
    let built = match build_big_library(work, &home) {
        Ok(d) => d,
        Err(e) => {
            println!("\n3. list skipped: the library could not be built: {e}");
            return;
        }
    };
    let (dir, lock) = library_paths(&home);
    let db_bytes: u64 = walkdir::WalkDir::new(dir.join("meta"))
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    // What the commands print, once, untimed. The first run of the binary also
    // finishes a new library's setup (the starter sounds may join the 10,000).
    let mut printed = Vec::new();
    if let Some(bin) = bin {
        for args in [&["list"][..], &["list", "--json"]] {
            let out = Command::new(bin)
                .arg("--home")
                .arg(&home)
                .args(args)
                .stderr(Stdio::null())
                .output();
            printed.push(match out {
                Ok(o) if o.status.success() => format!(
                    "  `jhack {}` prints {} lines, {:.2} MB",
                    args.join(" "),
                    o.stdout.split(|&b| b == b'\n').count() - 1,
                    o.stdout.len() as f64 / 1e6
                ),
                Ok(o) => format!(
                    "  `jhack {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => format!("  {}: {e}", bin.display()),
            });
        }
    }
    let n = library_len(&home);
    println!(
        "\n3. list a library of {n} sounds (built by import_file in {:.0} s; metadata database {:.1} MB); median of {LIST_RUNS} runs",
        built.as_secs_f64(),
        db_bytes as f64 / 1e6
    );
    if n < LIST_SOUNDS {
        println!("  skipped: expected {LIST_SOUNDS} sounds");
        return;
    }
    for line in printed {
        println!("{line}");
    }
    let (mut open, mut listed, mut close, mut api) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut table, mut json, mut version) = (Vec::new(), Vec::new(), Vec::new());
    let mut failed = None;
    for _ in 0..LIST_RUNS {
        let t = Instant::now();
        let lib = match Library::open(&dir, &lock) {
            Ok(l) => l,
            Err(e) => {
                println!("  cannot open the library: {e}");
                return;
            }
        };
        let opened = t.elapsed();
        let sounds = lib.list();
        let done = t.elapsed();
        drop(lib);
        let closed = t.elapsed();
        match sounds {
            Ok(s) if s.len() == n => {}
            Ok(s) => failed = Some(format!("list() returned {} sounds", s.len())),
            Err(e) => failed = Some(e.to_string()),
        }
        open.push(opened);
        listed.push(done - opened);
        close.push(closed - done);
        api.push(closed);
        if let Some(bin) = bin {
            for (args, into) in [
                (&["list"][..], &mut table),
                (&["list", "--json"], &mut json),
                (&["--version"], &mut version),
            ] {
                match run_binary(bin, &home, args) {
                    Ok(d) => into.push(d),
                    Err(e) => failed = Some(e),
                }
            }
        }
    }
    if let Some(e) = failed {
        println!("  failed: {e}");
    }
    let line = |what: &str, runs: &[Duration], extra: String| {
        let d = median(runs);
        let worst = runs.iter().max().copied().unwrap_or_default();
        println!(
            "  {what:<40} {:>6.1} ms (max {:>5.1})  {}{extra}",
            ms(d),
            ms(worst),
            if d < LIST_TARGET {
                "under the 200 ms target"
            } else {
                "OVER the 200 ms target"
            }
        );
    };
    line("API Library::open + list() + close", &api, String::new());
    println!(
        "  {:<40} {:>6.1} ms open, {:.1} ms list(), {:.1} ms close",
        "  of which",
        ms(median(&open)),
        ms(median(&listed)),
        ms(median(&close))
    );
    if bin.is_none() || version.is_empty() {
        return;
    }
    let v = median(&version);
    for (what, runs) in [
        ("binary `jhack list > /dev/null`", &table),
        ("binary `jhack list --json > /dev/null`", &json),
    ] {
        line(
            what,
            runs,
            format!(
                "; {:.1}x the API time, {:.1} ms over a bare process",
                paired_ratio(runs, &api),
                ms(median(runs).saturating_sub(v))
            ),
        );
    }
    println!(
        "  {:<40} {:>6.1} ms  (process start and exit alone)",
        "binary `jhack --version`",
        ms(v)
    );
}
