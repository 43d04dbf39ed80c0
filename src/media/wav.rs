//! Streaming WAV writer for recordings: 32-bit float samples, switching to RF64 when
//! the file outgrows the 4 GiB limit of RIFF.
//!
//! Used by the recorder's worker thread, which drains the capture ring into a
//! [`WavWriter`]. It does file I/O (and an fsync at the end), so it must never be
//! called from the audio callback or anything the callback calls.
//!
//! The file is valid at every moment that matters:
//! - at creation the header of an empty file is written straight away;
//! - every second of audio the buffered samples are written out and the header is
//!   rewritten with the current sizes, so a process killed outright (`kill -9`)
//!   leaves a readable file holding everything up to the last update;
//! - [`WavWriter::finalize`] writes the rest, the final header, and fsyncs the file
//!   (and its directory); dropping a writer without finalizing still writes the
//!   header for what reached the file, but does not fsync.
//!
//! Format: plain `WAVE_FORMAT_IEEE_FLOAT` (format tag 3, `cbSize` 0) with a `fact`
//! chunk, which hound, ffmpeg, sox and symphonia all read. Right after `WAVE` a
//! 36-byte `JUNK` chunk is reserved (EBU Tech 3306); when the sizes no longer fit in
//! 32 bits the header is rewritten as RF64: `RIFF` becomes `RF64`, the `JUNK` chunk
//! becomes `ds64` with the 64-bit RIFF size, data size and sample count, and the
//! 32-bit size fields become `0xFFFFFFFF`.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes before the first sample: RIFF header (12), JUNK/ds64 (36), fmt (26),
/// fact (12), data chunk header (8).
const HEADER_LEN: u64 = 94;
/// Size of the JUNK / ds64 chunk body.
const DS64_LEN: u32 = 28;
/// Bytes per sample (32-bit float).
const SAMPLE_BYTES: u64 = 4;
/// The size a 32-bit field says when the real size is in `ds64`.
const RF64_SIZE: u32 = u32::MAX;
/// Data bytes above which the RIFF size (file length − 8) no longer fits in a u32.
const RF64_THRESHOLD: u64 = u32::MAX as u64 - (HEADER_LEN - 8);
/// Samples converted to bytes per `write_all` (a stack buffer, no allocation).
const CHUNK_SAMPLES: usize = 1024;

/// Why a WAV file could not be written.
///
/// `Display` is `<path>: <reason>` ("/x/y.wav: cannot write file"); the underlying
/// I/O error is the `source` and is not repeated in the message, so a one-line
/// report of the chain reads "/x/y.wav: cannot write file: No space left on device".
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Creating, writing or syncing the file failed.
    #[error("{}: {}", path.display(), op.as_str())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: WavOp,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The sample rate or channel count cannot be written as WAV.
    #[error("{}: {reason}", path.display())]
    InvalidFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. "0 channels".
        reason: String,
    },
    /// A write did not hold a whole number of frames.
    #[error("{}: {samples} samples is not a whole number of {channels}-channel frames", path.display())]
    PartialFrame {
        /// The file.
        path: PathBuf,
        /// Samples passed to `write`.
        samples: usize,
        /// Channels of the file.
        channels: u16,
    },
}

impl WavError {
    /// The file concerned.
    pub fn path(&self) -> &Path {
        match self {
            WavError::Io { path, .. }
            | WavError::InvalidFormat { path, .. }
            | WavError::PartialFrame { path, .. } => path,
        }
    }
}

/// What the writer was doing when an I/O error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavOp {
    /// Creating (or truncating) the file.
    Create,
    /// Writing samples or the header.
    Write,
    /// Flushing the finished file to disk (fsync).
    Sync,
}

impl WavOp {
    fn as_str(self) -> &'static str {
        match self {
            WavOp::Create => "cannot create file",
            WavOp::Write => "cannot write file",
            WavOp::Sync => "cannot sync file to disk",
        }
    }
}

/// Writes a WAV (RF64 past 4 GiB) file of 32-bit float samples as they arrive.
///
/// Not for the audio callback: see the module documentation.
#[derive(Debug)]
pub struct WavWriter {
    out: BufWriter<File>,
    path: PathBuf,
    sample_rate: u32,
    channels: u16,
    /// Frames passed to `write` (buffered or in the file).
    frames: u64,
    /// Frames covered by the header in the file.
    header_frames: u64,
    /// Data bytes above which the header is RF64.
    rf64_threshold: u64,
    /// Once RF64, always RF64.
    rf64: bool,
    /// Set by `finalize`, so that `Drop` does nothing more.
    finished: bool,
}

impl WavWriter {
    /// Creates (or truncates) `path` and writes the header of an empty file, so the
    /// file is a valid WAV from the start.
    pub fn create(
        path: impl AsRef<Path>,
        sample_rate: u32,
        channels: u16,
    ) -> Result<Self, WavError> {
        let path = path.as_ref().to_path_buf();
        let invalid = |reason: String| WavError::InvalidFormat {
            path: path.clone(),
            reason,
        };
        if channels == 0 {
            return Err(invalid("0 channels".into()));
        }
        if sample_rate == 0 {
            return Err(invalid("sample rate 0".into()));
        }
        // block align (u16) and byte rate (u32) must fit their header fields.
        if u64::from(channels) * SAMPLE_BYTES > u64::from(u16::MAX) {
            return Err(invalid(format!("too many channels for WAV ({channels})")));
        }
        if u64::from(sample_rate) * u64::from(channels) * SAMPLE_BYTES > u64::from(u32::MAX) {
            return Err(invalid(format!(
                "sample rate too high for WAV ({sample_rate} Hz × {channels} channels)"
            )));
        }
        let file = File::create(&path).map_err(|source| WavError::Io {
            path: path.clone(),
            op: WavOp::Create,
            source,
        })?;
        let mut w = WavWriter {
            out: BufWriter::with_capacity(1 << 16, file),
            path,
            sample_rate,
            channels,
            frames: 0,
            header_frames: 0,
            rf64_threshold: RF64_THRESHOLD,
            rf64: false,
            finished: false,
        };
        w.write_header(0).map_err(|e| w.io(WavOp::Write, e))?;
        Ok(w)
    }

    /// Lowers the data size (bytes) past which the header becomes RF64, so tests can
    /// exercise RF64 without writing 4 GiB. The default is the RIFF limit.
    pub fn set_rf64_threshold_for_test(&mut self, bytes: u64) {
        self.rf64_threshold = bytes.min(RF64_THRESHOLD);
    }

    /// Appends interleaved samples (a whole number of frames). Every second of audio
    /// the data is written out and the header updated.
    pub fn write(&mut self, interleaved: &[f32]) -> Result<(), WavError> {
        let ch = usize::from(self.channels);
        if !interleaved.len().is_multiple_of(ch) {
            return Err(WavError::PartialFrame {
                path: self.path.clone(),
                samples: interleaved.len(),
                channels: self.channels,
            });
        }
        let mut rest = interleaved;
        while !rest.is_empty() {
            // Up to the next one-second boundary, so a long write still updates the
            // header every second.
            let until_update = u64::from(self.sample_rate) - (self.frames - self.header_frames);
            let frames = ((rest.len() / ch) as u64).min(until_update) as usize;
            let (now, later) = rest.split_at(frames * ch);
            self.write_samples(now)
                .map_err(|e| self.io(WavOp::Write, e))?;
            self.frames += frames as u64;
            rest = later;
            if self.frames - self.header_frames >= u64::from(self.sample_rate) {
                self.update_header().map_err(|e| self.io(WavOp::Write, e))?;
            }
        }
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Whether the header is (or has become) RF64.
    pub fn is_rf64(&self) -> bool {
        self.rf64
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes what is buffered and the final header, fsyncs the file and its
    /// directory, and returns the number of frames in the file.
    pub fn finalize(mut self) -> Result<u64, WavError> {
        self.finished = true;
        self.update_header().map_err(|e| self.io(WavOp::Write, e))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|e| self.io(WavOp::Sync, e))?;
        sync_parent_dir(&self.path);
        Ok(self.frames)
    }

    fn io(&self, op: WavOp, source: io::Error) -> WavError {
        WavError::Io {
            path: self.path.clone(),
            op,
            source,
        }
    }

    fn write_samples(&mut self, samples: &[f32]) -> io::Result<()> {
        let mut buf = [0u8; CHUNK_SAMPLES * SAMPLE_BYTES as usize];
        for chunk in samples.chunks(CHUNK_SAMPLES) {
            for (dst, s) in buf.chunks_exact_mut(SAMPLE_BYTES as usize).zip(chunk) {
                dst.copy_from_slice(&s.to_le_bytes());
            }
            self.out
                .write_all(&buf[..chunk.len() * SAMPLE_BYTES as usize])?;
        }
        Ok(())
    }

    /// Writes out the buffered samples, then a header covering all of them. The
    /// header never claims more than the file holds.
    fn update_header(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.write_header(self.frames)?;
        self.header_frames = self.frames;
        Ok(())
    }

    /// Writes the header for `frames` frames at the start of the file (one write),
    /// then returns to the end. The buffer must be empty.
    fn write_header(&mut self, frames: u64) -> io::Result<()> {
        let header = self.header(frames);
        let file = self.out.get_mut();
        let written = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&header));
        // Back to the end even when the header write failed, so that later samples
        // never land on top of earlier ones.
        let back = file.seek(SeekFrom::End(0));
        written?;
        back?;
        Ok(())
    }

    /// The header for `frames` frames; switches to RF64 for good once the data
    /// passes the threshold.
    fn header(&mut self, frames: u64) -> [u8; HEADER_LEN as usize] {
        let block_align = self.channels * SAMPLE_BYTES as u16;
        let data_bytes = frames * u64::from(block_align);
        if data_bytes > self.rf64_threshold {
            self.rf64 = true;
        }
        let riff_size = HEADER_LEN - 8 + data_bytes;
        let small = |v: u64| {
            if self.rf64 {
                RF64_SIZE
            } else {
                u32::try_from(v).unwrap_or(RF64_SIZE)
            }
        };
        let mut h = Vec::with_capacity(HEADER_LEN as usize);
        h.extend_from_slice(if self.rf64 { b"RF64" } else { b"RIFF" });
        h.extend_from_slice(&small(riff_size).to_le_bytes());
        h.extend_from_slice(b"WAVE");
        // JUNK (reserved room) or ds64.
        if self.rf64 {
            h.extend_from_slice(b"ds64");
            h.extend_from_slice(&DS64_LEN.to_le_bytes());
            h.extend_from_slice(&riff_size.to_le_bytes());
            h.extend_from_slice(&data_bytes.to_le_bytes());
            h.extend_from_slice(&frames.to_le_bytes()); // sample count (fact)
            h.extend_from_slice(&0u32.to_le_bytes()); // table length
        } else {
            h.extend_from_slice(b"JUNK");
            h.extend_from_slice(&DS64_LEN.to_le_bytes());
            h.extend_from_slice(&[0; DS64_LEN as usize]);
        }
        // fmt: WAVE_FORMAT_IEEE_FLOAT, WAVEFORMATEX with cbSize 0.
        h.extend_from_slice(b"fmt ");
        h.extend_from_slice(&18u32.to_le_bytes());
        h.extend_from_slice(&3u16.to_le_bytes());
        h.extend_from_slice(&self.channels.to_le_bytes());
        h.extend_from_slice(&self.sample_rate.to_le_bytes());
        h.extend_from_slice(&(self.sample_rate * u32::from(block_align)).to_le_bytes());
        h.extend_from_slice(&block_align.to_le_bytes());
        h.extend_from_slice(&32u16.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        // fact: sample frames (required for non-PCM formats).
        h.extend_from_slice(b"fact");
        h.extend_from_slice(&4u32.to_le_bytes());
        h.extend_from_slice(&small(frames).to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&small(data_bytes).to_le_bytes());
        let mut out = [0u8; HEADER_LEN as usize];
        out.copy_from_slice(&h);
        out
    }
}

impl Drop for WavWriter {
    /// Best effort, without fsync: a header for the frames that reached the file
    /// (e.g. when the recorder thread stops on an error).
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if self.update_header().is_ok() {
            return;
        }
        // The flush failed (disk full?): describe only whole frames the file holds.
        let block = u64::from(self.channels) * SAMPLE_BYTES;
        if let Ok(meta) = self.out.get_ref().metadata() {
            let on_disk = meta.len().saturating_sub(HEADER_LEN) / block;
            let frames = on_disk.min(self.frames);
            let header = self.header(frames);
            let file = self.out.get_mut();
            if file.seek(SeekFrom::Start(0)).is_ok() {
                let _ = file.write_all(&header);
            }
            // The BufWriter retries its buffer when dropped: at the end, not here.
            let _ = file.seek(SeekFrom::End(0));
        }
    }
}

/// Makes the file's directory entry durable too (best effort).
fn sync_parent_dir(path: &Path) {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A unique path in the temp dir, removed on drop.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(name: &str) -> TempPath {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("jhack-wav-{}-{n}-{name}", std::process::id()));
            TempPath(p)
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Deterministic test signal: a sweep plus awkward values (tiny, negative zero,
    /// beyond ±1), so a bit-exact comparison means something.
    fn signal(frames: usize, channels: u16) -> Vec<f32> {
        let mut v = Vec::with_capacity(frames * usize::from(channels));
        for i in 0..frames {
            for c in 0..channels {
                let x = match i % 97 {
                    0 => -0.0,
                    1 => f32::MIN_POSITIVE / 8.0, // subnormal
                    2 => 1.5,
                    3 => -1.0,
                    _ => ((i as f32) * 0.01 * f32::from(c + 1)).sin() * 0.9,
                };
                v.push(x);
            }
        }
        v
    }

    fn read_hound(path: &Path) -> (hound::WavSpec, Vec<f32>) {
        let mut r = hound::WavReader::open(path).expect("hound opens the file");
        let spec = r.spec();
        let s = r.samples::<f32>().map(|s| s.expect("sample")).collect();
        (spec, s)
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn le_u32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn le_u64(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    fn have(tool: &str) -> bool {
        Command::new(tool).arg("-version").output().is_ok()
            || Command::new(tool).arg("--version").output().is_ok()
    }

    #[test]
    fn a_file_reads_back_bit_exactly_with_hound() {
        let t = TempPath::new("exact.wav");
        let input = signal(48_000 * 2 + 123, 2);
        let mut w = WavWriter::create(&t.0, 48_000, 2).unwrap();
        // Odd-sized writes, including an empty one.
        for piece in input.chunks(2 * 777) {
            w.write(piece).unwrap();
        }
        w.write(&[]).unwrap();
        assert_eq!(w.frames(), 48_000 * 2 + 123);
        assert_eq!(w.finalize().unwrap(), 48_000 * 2 + 123);
        let (spec, back) = read_hound(&t.0);
        assert_eq!(spec.channels, 2);
        assert_eq!(spec.sample_rate, 48_000);
        assert_eq!(spec.bits_per_sample, 32);
        assert_eq!(spec.sample_format, hound::SampleFormat::Float);
        assert_eq!(bits(&back), bits(&input));
    }

    #[test]
    fn the_header_is_riff_with_a_junk_reserve_and_exact_sizes() {
        let t = TempPath::new("header.wav");
        let mut w = WavWriter::create(&t.0, 44_100, 3).unwrap();
        w.write(&signal(1000, 3)).unwrap();
        w.finalize().unwrap();
        let b = std::fs::read(&t.0).unwrap();
        let data = 1000 * 3 * 4;
        assert_eq!(b.len() as u64, HEADER_LEN + data);
        assert_eq!(&b[0..4], b"RIFF");
        assert_eq!(le_u32(&b, 4) as usize, b.len() - 8);
        assert_eq!(&b[8..12], b"WAVE");
        assert_eq!(&b[12..16], b"JUNK");
        assert_eq!(le_u32(&b, 16), 28);
        assert!(b[20..48].iter().all(|&x| x == 0));
        assert_eq!(&b[48..52], b"fmt ");
        assert_eq!(le_u32(&b, 52), 18);
        assert_eq!(u16::from_le_bytes([b[56], b[57]]), 3, "IEEE float");
        assert_eq!(u16::from_le_bytes([b[58], b[59]]), 3, "channels");
        assert_eq!(le_u32(&b, 60), 44_100);
        assert_eq!(le_u32(&b, 64), 44_100 * 12);
        assert_eq!(u16::from_le_bytes([b[68], b[69]]), 12, "block align");
        assert_eq!(u16::from_le_bytes([b[70], b[71]]), 32, "bits");
        assert_eq!(&b[74..78], b"fact");
        assert_eq!(le_u32(&b, 82), 1000);
        assert_eq!(&b[86..90], b"data");
        assert_eq!(le_u32(&b, 90) as u64, data);
    }

    #[test]
    fn an_empty_file_is_valid_from_creation() {
        let t = TempPath::new("empty.wav");
        let w = WavWriter::create(&t.0, 48_000, 1).unwrap();
        // Before anything is written or finalized.
        let (spec, s) = read_hound(&t.0);
        assert_eq!((spec.channels, s.len()), (1, 0));
        assert_eq!(w.finalize().unwrap(), 0);
        assert_eq!(read_hound(&t.0).1.len(), 0);
    }

    #[test]
    fn a_killed_writer_leaves_everything_up_to_the_last_second() {
        let t = TempPath::new("killed.wav");
        let rate = 8_000;
        let input = signal(rate * 5 / 2, 2); // 2.5 s
        let mut w = WavWriter::create(&t.0, rate as u32, 2).unwrap();
        for piece in input.chunks(2 * 100) {
            w.write(piece).unwrap();
        }
        // Like kill -9: no finalize, no Drop; what reached the file stays.
        std::mem::forget(w);
        let (_, back) = read_hound(&t.0);
        assert_eq!(back.len(), 2 * rate * 2, "the header covers the first 2 s");
        assert_eq!(bits(&back), bits(&input[..back.len()]));
    }

    #[test]
    fn one_long_write_still_updates_the_header_every_second() {
        let t = TempPath::new("long.wav");
        let input = signal(3_500, 1);
        let mut w = WavWriter::create(&t.0, 1_000, 1).unwrap();
        w.write(&input).unwrap();
        std::mem::forget(w);
        assert_eq!(read_hound(&t.0).1.len(), 3_000);
    }

    #[test]
    fn dropping_without_finalize_keeps_every_frame() {
        let t = TempPath::new("dropped.wav");
        let input = signal(1_234, 2);
        let mut w = WavWriter::create(&t.0, 48_000, 2).unwrap();
        w.write(&input).unwrap();
        drop(w);
        assert_eq!(bits(&read_hound(&t.0).1), bits(&input));
    }

    #[test]
    fn past_the_threshold_the_header_becomes_rf64() {
        let t = TempPath::new("rf64.wav");
        let rate = 48_000u32;
        let frames = 150_000usize; // 1.2 MB of stereo f32
        let input = signal(frames, 2);
        let mut w = WavWriter::create(&t.0, rate, 2).unwrap();
        w.set_rf64_threshold_for_test(1 << 20);
        for piece in input.chunks(2 * 4800) {
            w.write(piece).unwrap();
        }
        assert!(w.is_rf64(), "crossed 1 MiB at a header update");
        assert_eq!(w.finalize().unwrap(), frames as u64);

        let b = std::fs::read(&t.0).unwrap();
        let data = (frames * 2 * 4) as u64;
        assert_eq!(b.len() as u64, HEADER_LEN + data);
        assert_eq!(&b[0..4], b"RF64");
        assert_eq!(le_u32(&b, 4), u32::MAX);
        assert_eq!(&b[8..12], b"WAVE");
        assert_eq!(&b[12..16], b"ds64");
        assert_eq!(le_u32(&b, 16), 28);
        assert_eq!(le_u64(&b, 20), b.len() as u64 - 8, "riff size");
        assert_eq!(le_u64(&b, 28), data, "data size");
        assert_eq!(le_u64(&b, 36), frames as u64, "sample count");
        assert_eq!(le_u32(&b, 44), 0, "table length");
        assert_eq!(&b[74..78], b"fact");
        assert_eq!(le_u32(&b, 82), u32::MAX);
        assert_eq!(&b[86..90], b"data");
        assert_eq!(le_u32(&b, 90), u32::MAX);

        // Real readers: ffprobe's sample count, ffmpeg's samples, sox's length.
        if !have("ffprobe") || !have("ffmpeg") {
            eprintln!(
                "skipped the ffmpeg part of past_the_threshold_the_header_becomes_rf64: ffmpeg missing"
            );
            return;
        }
        let o = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=format_name:stream=codec_name,channels,sample_rate,duration_ts",
            ])
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(&t.0)
            .output()
            .unwrap();
        let probe = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "ffprobe: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for want in [
            "codec_name=pcm_f32le",
            "channels=2",
            "sample_rate=48000",
            "duration_ts=150000",
            "format_name=wav",
        ] {
            assert!(
                probe.lines().any(|l| l == want),
                "ffprobe said {probe:?}, want {want}"
            );
        }
        let o = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&t.0)
            .args(["-f", "f32le", "-c:a", "pcm_f32le", "-"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ffmpeg: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let back: Vec<u32> = o
            .stdout
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(
            back,
            bits(&input),
            "ffmpeg decodes the RF64 file bit-exactly"
        );

        if have("sox") {
            let o = Command::new("sox")
                .arg("--i")
                .arg("-s")
                .arg(&t.0)
                .output()
                .unwrap();
            let s = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success(),
                "sox: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(s.trim(), "150000", "sox's sample count");
        }
    }

    #[test]
    fn below_the_threshold_the_header_stays_riff() {
        let t = TempPath::new("riff.wav");
        let mut w = WavWriter::create(&t.0, 1_000, 1).unwrap();
        w.set_rf64_threshold_for_test(1 << 20);
        w.write(&signal(5_000, 1)).unwrap();
        assert!(!w.is_rf64());
        w.finalize().unwrap();
        assert_eq!(&std::fs::read(&t.0).unwrap()[0..4], b"RIFF");
    }

    #[test]
    fn bad_formats_and_partial_frames_are_refused() {
        let t = TempPath::new("bad.wav");
        let e = WavWriter::create(&t.0, 48_000, 0).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: 0 channels", t.0.display()));
        assert!(matches!(
            WavWriter::create(&t.0, 0, 2),
            Err(WavError::InvalidFormat { .. })
        ));
        assert!(matches!(
            WavWriter::create(&t.0, 48_000, u16::MAX),
            Err(WavError::InvalidFormat { .. })
        ));
        let mut w = WavWriter::create(&t.0, 48_000, 2).unwrap();
        let e = w.write(&[0.0; 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: 3 samples is not a whole number of 2-channel frames",
                t.0.display()
            )
        );
        assert_eq!(e.path(), t.0.as_path());
        assert_eq!(w.finalize().unwrap(), 0);
    }

    /// The error and its sources on one line, as the CLI reports them.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            s = format!("{s}: {c}");
            cur = c.source();
        }
        s
    }

    #[test]
    fn io_errors_name_the_path_and_the_reason() {
        let dir =
            std::env::temp_dir().join(format!("jhack-wav-{}-no-such-dir", std::process::id()));
        let p = dir.join("x.wav");
        let e = WavWriter::create(&p, 48_000, 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: cannot create file", p.display())
        );
        assert_eq!(e.path(), p.as_path());
        let io = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .expect("io source");
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert!(chain(&e).starts_with(&format!(
            "{}: cannot create file: No such file or directory",
            p.display()
        )));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_reported_as_such() {
        // /dev/full accepts opening and fails every write with ENOSPC.
        if !Path::new("/dev/full").exists() {
            return;
        }
        let e = WavWriter::create("/dev/full", 48_000, 2).unwrap_err();
        assert_eq!(e.to_string(), "/dev/full: cannot write file");
        assert!(
            matches!(&e, WavError::Io { op: WavOp::Write, source, .. } if source.kind() == io::ErrorKind::StorageFull)
        );
        assert!(
            chain(&e).starts_with("/dev/full: cannot write file: No space left on device"),
            "{}",
            chain(&e)
        );
    }
}
