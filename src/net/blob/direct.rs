//! Writing a verified blob's bytes to its file past the page cache (`O_DIRECT`),
//! where the filesystem allows it.
//!
//! A fetched blob is written once, made durable before the library lists it as here
//! (one filesystem sync per batch), and seldom read soon after. Through the page
//! cache, every byte was copied into newly allocated cache pages and written back
//! again by that sync: on a whole-library fetch (1,000 files, 128 MB) the copy alone
//! was a third of the fetching side's CPU, more where the host had to back the fresh
//! pages first. Direct, the disk takes the bytes from our buffer, and the sync has
//! only the files' metadata and short tails left to write.
//!
//! Only whole 4 KiB blocks from a 4 KiB-aligned buffer go direct; the tail goes
//! through the page cache. Any refusal (a filesystem without direct I/O, such as
//! tmpfs; stricter alignment; a short write) sends the rest the buffered way, so this
//! never fails where a buffered write would not.
//!
//! Must never: leave a file in direct mode, or write anything but `buf` at its
//! offsets.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The alignment direct writes keep (in memory, in the file, and in length): a page,
/// which covers the logical block size of any disk we meet.
pub(super) const ALIGN: usize = 4096;

/// Writes all of `buf` at the start of `file`: whole aligned blocks direct where the
/// filesystem takes them, the rest buffered.
pub(super) fn write_blob(file: &File, buf: &[u8]) -> io::Result<()> {
    let body = if buf.as_ptr().align_offset(ALIGN) == 0 {
        buf.len() / ALIGN * ALIGN
    } else {
        0
    };
    let done = if body > 0 {
        write_direct(file, &buf[..body])?
    } else {
        0
    };
    file.write_all_at(&buf[done..], done as u64)
}

/// Writes as much of `body` (aligned, whole blocks) as the filesystem takes direct;
/// how many bytes that was. `Err` only when the file could not be put back in
/// buffered mode.
#[cfg(target_os = "linux")]
fn write_direct(file: &File, body: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor `file` keeps open for the call; F_GETFL and
    // F_SETFL take and return plain integers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_DIRECT) } != 0 {
        return Ok(0); // no direct I/O on this filesystem
    }
    let mut done = 0;
    while done < body.len() {
        match file.write_at(&body[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                if done % ALIGN != 0 {
                    break; // a short write off a block: the rest goes buffered
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break, // refused here (alignment, or a real error the buffered write will meet too)
        }
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(done)
}

#[cfg(not(target_os = "linux"))]
fn write_direct(_file: &File, _body: &[u8]) -> io::Result<usize> {
    Ok(0)
}

/// A buffer's start offset that puts the bytes after it on an [`ALIGN`] boundary
/// (the buffer needs room for it: [`ALIGN`] bytes more than its contents).
pub(super) fn aligned_start(buf: &[u8]) -> usize {
    buf.as_ptr().align_offset(ALIGN).min(ALIGN - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned(len: usize) -> (Vec<u8>, usize) {
        let mut buf = Vec::with_capacity(len + ALIGN);
        let start = aligned_start(&buf);
        buf.resize(start, 0);
        buf.extend((0..len).map(|i| (i * 7 + i / 4096) as u8));
        (buf, start)
    }

    fn is_direct(file: &File) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: F_GETFL on an open descriptor.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        flags & libc::O_DIRECT != 0
    }

    #[test]
    fn every_length_reads_back_whole_and_the_file_is_left_buffered() {
        let dir = tempfile::tempdir().expect("tempdir");
        for len in [0, 1, 4095, 4096, 4097, 65_536, 300_001, 1 << 20] {
            let (buf, start) = aligned(len);
            let path = dir.path().join(format!("b{len}"));
            let file = File::create(&path).expect("create");
            write_blob(&file, &buf[start..]).expect("write");
            assert!(!is_direct(&file), "{len}: left in direct mode");
            let back = std::fs::read(&path).expect("read");
            assert_eq!(back.len(), len);
            assert!(back == buf[start..], "{len}: other bytes read back");
        }
    }

    #[test]
    fn a_misaligned_buffer_is_written_buffered_and_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (buf, start) = aligned(100_000);
        let path = dir.path().join("m");
        let file = File::create(&path).expect("create");
        write_blob(&file, &buf[start + 1..]).expect("write");
        assert!(std::fs::read(&path).expect("read") == buf[start + 1..]);
    }

    #[test]
    fn a_filesystem_without_direct_io_gets_the_bytes_buffered() {
        // /dev/shm is tmpfs on Linux, which refuses O_DIRECT.
        let dir = tempfile::tempdir_in("/dev/shm").expect("a tempdir in /dev/shm");
        let (buf, start) = aligned(200_000);
        let path = dir.path().join("t");
        let file = File::create(&path).expect("create");
        write_blob(&file, &buf[start..]).expect("write");
        assert!(!is_direct(&file));
        assert!(std::fs::read(&path).expect("read") == buf[start..]);
    }

    #[test]
    fn the_start_leaves_room_within_one_block() {
        for cap in [1, 100, 4096, 1 << 20] {
            let buf: Vec<u8> = Vec::with_capacity(cap + ALIGN);
            let start = aligned_start(&buf);
            assert!(start < ALIGN);
            assert_eq!((buf.as_ptr() as usize + start) % ALIGN, 0);
        }
    }
}
