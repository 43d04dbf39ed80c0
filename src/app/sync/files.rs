//! Fetching every file of a library from a mirror (`jhack sync P --all`): after the
//! records are in sync, each sound listed here whose file is elsewhere is fetched from
//! the peer, several at once, verified as it arrives (the blob transfer's group
//! hashes), and taken into the library in batches — moved into place, one commit for
//! the batch — so a thousand small files cost a thousand transfers, not a thousand
//! commits.
//!
//! Must never: keep a byte that was not verified (only a finished fetch is taken), or
//! run on the owner's thread (it waits on the network).

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::domain::{SoundId, SoundMeta};
use crate::library::Library;
use crate::net::{Fetch, Node, PeerId};

/// Transfers running at once.
const IN_FLIGHT: usize = 48;
/// Small files asked for on one stream (see [`Node::fetch_batch_in_background`])...
const BATCH_FILES: usize = 16;
/// ...and at most this many bytes of them.
const BATCH_BYTES: u64 = 4 << 20;
/// Files handed to the keeper at a time; it commits them with whatever else
/// finished while its last commit ran.
const BATCH: usize = 128;

/// How a whole-library fetch stands (and, at the end, what it did).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FilesProgress {
    /// Files wanted (listed here, file elsewhere).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files here now.
    pub done_files: u64,
    /// Bytes verified so far.
    pub done_bytes: u64,
    /// Files that could not be fetched.
    pub failed: u64,
}

/// Fetches from `peer` every file of a sound listed in `lib` that is not here, and
/// keeps them for good; `progress` is told as it goes. `Err` only when nothing could
/// be done at all; files that failed are counted (and the first reason returned in
/// the summary's standing by the caller's log).
///
/// With `arriving`, records are still being merged while this runs (the records'
/// sync on another thread, until it sets the flag): the library is listed again as
/// transfers free up, so files start to flow with the first records, not after the
/// last.
pub fn fetch_all(
    lib: &Library,
    node: &Node,
    peer: &PeerId,
    progress: &dyn Fn(&FilesProgress),
    arriving: Option<&AtomicBool>,
) -> Result<(FilesProgress, Option<String>), String> {
    let mut wanted = Wanted {
        lib,
        arriving,
        seen: HashSet::new(),
        listed: None,
        settled: false,
    };
    let mut p = FilesProgress::default();
    let mut first_error = None;
    let mut queue = VecDeque::new();
    // The first listing: a library that cannot be listed ends this at once.
    wanted.refill(&mut queue, &mut p)?;
    // Batches are kept on a thread of their own while the next transfers run.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<Done>>();
    let kept = std::thread::scope(|scope| {
        let keeper = scope.spawn(move || {
            let mut kept = 0u64;
            let mut errors = Vec::new();
            let (mut busy, mut batches) = (Duration::ZERO, 0);
            while let Ok(mut batch) = rx.recv() {
                // Whatever else finished meanwhile joins this commit: a keeper
                // behind the transfers commits less often, not later.
                while let Ok(more) = rx.try_recv() {
                    batch.extend(more);
                }
                let t = Instant::now();
                match keep(lib, batch) {
                    Ok(n) => kept += n,
                    Err(e) => errors.push(e),
                }
                busy += t.elapsed();
                batches += 1;
            }
            tracing::debug!(
                "sync: {kept} files kept in {batches} batches, {:.1} ms keeping",
                busy.as_secs_f64() * 1e3
            );
            (kept, errors)
        });
        transfer(
            node,
            peer,
            &mut wanted,
            queue,
            &mut p,
            &mut first_error,
            &tx,
            progress,
        );
        drop(tx);
        tracing::debug!("sync: the last transfer ended");
        keeper
            .join()
            .unwrap_or((0, vec!["the keeping thread failed".into()]))
    });
    let (kept, errors) = kept;
    p.failed += p.done_files.saturating_sub(kept);
    p.done_files = kept;
    if let Some(e) = errors.into_iter().next() {
        first_error.get_or_insert(e);
    }
    progress(&p);
    Ok((p, first_error))
}

/// While records arrive, the library is listed again when a commit changed it, at
/// most this often.
const RELIST: Duration = Duration::from_millis(1);

/// The sounds listed here whose file is not, each handed out once.
struct Wanted<'a> {
    lib: &'a Library,
    /// Set while records are still being merged (cleared by the records' sync).
    arriving: Option<&'a AtomicBool>,
    seen: HashSet<SoundId>,
    /// When the library was last listed, and its last committed change then.
    listed: Option<(Instant, u64)>,
    /// Listed after the last record arrived: nothing more will come.
    settled: bool,
}

impl Wanted<'_> {
    /// Whether the library should be listed again now (`low`: transfers are free):
    /// once more after the last record arrived, and before that when a commit changed
    /// it since the last listing (checked without listing: a listing of a thousand
    /// sounds every few milliseconds was work for nothing between commits).
    fn due(&self, low: bool) -> bool {
        !self.settled
            && (!self.still_arriving()
                || (low
                    && self.listed.is_none_or(|(t, at)| {
                        t.elapsed() >= RELIST && at != self.lib.sync_committed()
                    })))
    }

    fn still_arriving(&self) -> bool {
        self.arriving.is_some_and(|a| a.load(Ordering::Acquire))
    }

    /// Lists the library and queues what is new; counts it in `p`.
    fn refill(
        &mut self,
        queue: &mut VecDeque<SoundMeta>,
        p: &mut FilesProgress,
    ) -> Result<(), String> {
        // Read before listing: a record merged before the flag fell is in this list,
        // and so is one committed before this number was read.
        let last = !self.still_arriving();
        let committed = self.lib.sync_committed();
        let listed = self.lib.list().map_err(|e| crate::domain::chain(&e))?;
        self.listed = Some((Instant::now(), committed));
        self.settled = last;
        for m in listed {
            // Each sound is looked at once: queued, or its file already here.
            if self.seen.insert(m.id) && !self.lib.has_file(&m.id) {
                p.files += 1;
                p.bytes += m.size;
                queue.push_back(m);
            }
        }
        Ok(())
    }
}

/// A finished transfer: the sound, its verified file, and the fetch (whose files are
/// cleaned up once kept).
type Done = (SoundId, PathBuf, Arc<Fetch>);

/// Runs the transfers, [`IN_FLIGHT`] at once, handing finished ones to the keeper in
/// batches; counts what arrived in `p.done_files` (the keeper's count replaces it).
#[allow(clippy::too_many_arguments)]
fn transfer(
    node: &Node,
    peer: &PeerId,
    wanted: &mut Wanted<'_>,
    mut queue: VecDeque<SoundMeta>,
    p: &mut FilesProgress,
    first_error: &mut Option<String>,
    keeper: &std::sync::mpsc::Sender<Vec<Done>>,
    progress: &dyn Fn(&FilesProgress),
) {
    let mut running: Vec<(SoundMeta, Arc<Fetch>)> = Vec::new();
    let mut done: Vec<Done> = Vec::new();
    let mut told = Instant::now();
    progress(p);
    loop {
        if wanted.due(queue.len() < IN_FLIGHT)
            && let Err(e) = wanted.refill(&mut queue, p)
        {
            // Whatever was listed before still runs; nothing more is asked.
            first_error.get_or_insert(e);
            wanted.settled = true;
        }
        if wanted.settled && queue.is_empty() && running.is_empty() {
            if !done.is_empty() {
                let _ = keeper.send(std::mem::take(&mut done));
            }
            break;
        }
        while running.len() < IN_FLIGHT && !queue.is_empty() {
            let metas = next_batch(&mut queue, IN_FLIGHT - running.len());
            let offers: Vec<_> = metas.iter().map(crate::app::peers::offer_of).collect();
            match node.fetch_batch_in_background(peer, &offers) {
                Ok(fetches) => running.extend(metas.into_iter().zip(fetches)),
                Err(e) => {
                    p.failed += metas.len() as u64;
                    if let Some(m) = metas.first() {
                        first_error.get_or_insert(format!(
                            "{}: {}",
                            m.name,
                            crate::domain::chain(&e)
                        ));
                    }
                }
            }
        }
        let mut finished = false;
        let mut i = 0;
        while i < running.len() {
            let Some(r) = running[i].1.result() else {
                i += 1;
                continue;
            };
            finished = true;
            let (m, f) = running.swap_remove(i);
            match r {
                Ok(()) => {
                    p.done_bytes += m.size;
                    p.done_files += 1;
                    done.push((m.id, f.path().to_path_buf(), f));
                }
                Err(e) => {
                    p.failed += 1;
                    f.discard_files();
                    first_error.get_or_insert(format!("{}: {e}", m.name));
                }
            }
        }
        let over = wanted.settled && running.is_empty() && queue.is_empty();
        if done.len() >= BATCH || (over && !done.is_empty()) {
            let _ = keeper.send(std::mem::take(&mut done));
        }
        if told.elapsed() >= Duration::from_millis(100) {
            progress(p);
            told = Instant::now();
        }
        if !finished && !over {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The next sounds to ask for together, at most `room`: small ones, up to
/// [`BATCH_FILES`] and [`BATCH_BYTES`]; a large one alone.
fn next_batch(queue: &mut VecDeque<SoundMeta>, room: usize) -> Vec<SoundMeta> {
    let small = |m: &SoundMeta| m.size > 0 && m.size <= crate::net::BATCH_BLOB_MAX;
    let mut batch: Vec<SoundMeta> = Vec::new();
    let mut bytes = 0;
    while let Some(m) = queue.front() {
        let fits = batch.is_empty()
            || (small(m) && batch.len() < BATCH_FILES.min(room) && bytes + m.size <= BATCH_BYTES);
        if !fits {
            break;
        }
        let Some(m) = queue.pop_front() else {
            break;
        };
        bytes += m.size;
        let alone = !small(&m);
        batch.push(m);
        if alone {
            break;
        }
    }
    batch
}

/// Takes a batch of finished transfers into the library; returns how many are here
/// now, or why none are.
fn keep(lib: &Library, batch: Vec<Done>) -> Result<u64, String> {
    let files: Vec<(SoundId, PathBuf)> = batch.iter().map(|(id, p, _)| (*id, p.clone())).collect();
    let kept = lib
        .adopt_fetched(&files, true)
        .map(|k| k.len() as u64)
        .map_err(|e| format!("keeping fetched files: {}", crate::domain::chain(&e)));
    for (_, _, f) in batch {
        f.discard_files();
    }
    kept
}
