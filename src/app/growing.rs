//! A sound file that is still arriving from a peer, read as if it were whole: reads
//! wait until the bytes they need are verified, so a decoder can start on the first
//! group and play while the rest comes. Only verified bytes are ever read.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use crate::net::Fetch;

/// How long a read waits for data before the sound is given up.
const STALL: Duration = Duration::from_secs(10);

/// A reader over a [`Fetch`]'s partial file.
pub struct GrowingFile {
    fetch: Arc<Fetch>,
    file: std::fs::File,
    pos: u64,
}

impl GrowingFile {
    /// Opens the partial file of `fetch` (it exists once the fetch has started).
    pub fn open(fetch: Arc<Fetch>) -> std::io::Result<GrowingFile> {
        // The fetch creates the file as it starts; give it a moment.
        let mut tries = 0;
        let file = loop {
            match std::fs::File::open(fetch.path()) {
                Ok(f) => break f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 200 => {
                    match fetch.result() {
                        Some(Err(why)) => return Err(std::io::Error::other(why)),
                        // Complete, and its file already taken away (kept).
                        Some(Ok(())) => return Err(e),
                        None => {}
                    }
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        };
        Ok(GrowingFile {
            fetch,
            file,
            pos: 0,
        })
    }
}

impl Read for GrowingFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.fetch.size();
        if buf.is_empty() || self.pos >= size {
            return Ok(0);
        }
        let verified = self
            .fetch
            .wait_for(self.pos + 1, STALL)
            .map_err(std::io::Error::other)?;
        let n = (verified - self.pos).min(buf.len() as u64) as usize;
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for GrowingFile {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let size = self.fetch.size() as i128;
        let target = match to {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(d) => size + i128::from(d),
            SeekFrom::Current(d) => i128::from(self.pos) + i128::from(d),
        };
        if target < 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start",
            ));
        }
        self.pos = target.min(u64::MAX as i128) as u64;
        Ok(self.pos)
    }
}
