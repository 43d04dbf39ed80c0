//! One library's replica as a sans-IO state machine: the merged records, a change log
//! numbered by a local sequence (each sound appears once, at its latest change), a
//! cursor per peer (the last of its sequence numbers we hold), and a fingerprint of
//! the whole set. Local edits and peers' messages go in with the wall time; messages
//! to send and fixes to tell the user come out.
//!
//! Exchange, per pair, pulled by either side: `Ask { since }` is answered with the
//! changes after `since` in batches (`Changes`); the asker merges them and moves its
//! cursor. Reconnecting with nothing changed is one `Ask` and one empty `Changes`,
//! whatever the library's size. Each message carries the sender's fingerprint (the
//! XOR of its records' hashes): when an exchange has caught up but the fingerprints
//! still differ twice running with nothing new in between, the asker reconciles the
//! two sets range by range ([`super::reconcile`]), which repairs any divergence in a
//! few round trips whatever the library's size.
//!
//! Peers' records are checked before they are merged: a stamp too far ahead of our
//! clock is refused (and asked for again on the next full pass), so a peer cannot
//! claim the future. Never does I/O, never reads a clock, never panics.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::hlc::{Clock, Device, Stamp, TooFarAhead};
use super::names::{self, Fix};
use super::reconcile::{self, IdPrefix, Node};
use super::record::{Facts, Field, Record};
use crate::domain::SoundId;

/// Most records in one `Changes` message.
pub const BATCH: usize = 256;
/// Most records in the first answer to a peer that has nothing of ours yet (an ask
/// from 0): small, so that a new machine has its first sounds listed, and their
/// files on the way, after a few milliseconds rather than after a whole batch's
/// merge (256 records took 9 ms to answer and 9 more to merge).
pub const FIRST_BATCH: usize = 32;

/// What replicas say to each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    /// Send me your changes after your sequence number `since`.
    Ask {
        /// The last of your sequence numbers I hold.
        since: u64,
        /// My fingerprint.
        fingerprint: [u8; 32],
    },
    /// My changes after `since`, up to and including `upto`.
    Changes {
        /// What was asked for (0 when the asker's cursor was unknown here).
        since: u64,
        /// The last sequence number these cover.
        upto: u64,
        /// The records, each as it is now.
        records: Vec<Record>,
        /// More follow: ask again from `upto`.
        more: bool,
        /// My fingerprint.
        fingerprint: [u8; 32],
    },
    /// Repairing a divergence ([`super::reconcile`]): where our sets still differ,
    /// the records the other side lacks or holds otherwise, and the ids of those we
    /// want from it.
    Reconcile {
        /// Whether this answers a `Reconcile` (else the asker sends it).
        answer: bool,
        /// Trie nodes where the two still differ, as the sender sees them.
        nodes: Vec<Node>,
        /// The sender's versions of records that differ.
        records: Vec<Record>,
        /// Records the sender wants (by id prefix).
        want: Vec<IdPrefix>,
    },
}

impl Msg {
    /// The records it carries (none in an ask).
    pub fn records(&self) -> &[Record] {
        match self {
            Msg::Changes { records, .. } | Msg::Reconcile { records, .. } => records,
            Msg::Ask { .. } => &[],
        }
    }
}

/// What handling a message did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Records that changed here.
    pub changed: Vec<SoundId>,
    /// Records refused, and why.
    pub refused: Vec<(SoundId, TooFarAhead)>,
    /// Name and key conflicts resolved (to tell the user).
    pub fixes: Vec<Fix>,
    /// What to send back to the peer, if anything.
    pub reply: Option<Msg>,
}

/// What we know of one peer.
#[derive(Debug, Clone, Default)]
struct PeerState {
    /// The last of its sequence numbers we hold.
    cursor: u64,
    /// An exchange caught up with differing fingerprints, and our log's end then.
    mismatch_at: Option<u64>,
    /// The next message of a reconciliation we are running with it.
    pending: Option<Msg>,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Replica {
    clock: Clock,
    records: BTreeMap<SoundId, Record>,
    seq: u64,
    log: BTreeMap<u64, SoundId>,
    seq_of: HashMap<SoundId, u64>,
    fingerprint: [u8; 32],
    /// Each record's hash, by id (the fingerprint's parts, for reconciliation).
    hashes: BTreeMap<SoundId, [u8; 32]>,
    peers: HashMap<Device, PeerState>,
    /// Live records by name and by key, to find conflicts without a scan.
    by_name: HashMap<String, BTreeSet<SoundId>>,
    by_key: HashMap<String, BTreeSet<SoundId>>,
    /// Names and keys touched since conflicts were last resolved.
    touched: BTreeSet<(bool, String)>,
    /// Records and peers changed since the last [`Replica::take_dirty`].
    dirty: BTreeSet<SoundId>,
    dirty_peers: BTreeSet<Device>,
    /// Per peer, the records it gave us that we hold exactly as it gave them (their
    /// hashes): sending them back would only echo them. Kept in memory; after a
    /// restart each is echoed once more, which is harmless.
    echo: HashMap<Device, HashMap<SoundId, [u8; 32]>>,
}

/// What changed since the last [`Replica::take_dirty`]: what a store must write (in
/// one transaction) so that a replica restored from it is this one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dirty {
    /// Changed records, each with its sequence number.
    pub records: Vec<(u64, Record)>,
    /// Changed peer cursors.
    pub cursors: Vec<(Device, u64)>,
    /// The clock's latest stamp.
    pub clock: Stamp,
    /// The last local sequence number.
    pub seq: u64,
}

impl Dirty {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.cursors.is_empty()
    }
}

fn unindex(index: &mut HashMap<String, BTreeSet<SoundId>>, k: &str, id: &SoundId) {
    if let Some(set) = index.get_mut(k) {
        set.remove(id);
        if set.is_empty() {
            index.remove(k);
        }
    }
}

pub(super) fn xor(a: &mut [u8; 32], b: &[u8; 32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

impl Replica {
    /// An empty replica for `device`.
    pub fn new(device: Device) -> Replica {
        Replica {
            clock: Clock::new(device),
            records: BTreeMap::new(),
            seq: 0,
            log: BTreeMap::new(),
            seq_of: HashMap::new(),
            fingerprint: [0; 32],
            hashes: BTreeMap::new(),
            peers: HashMap::new(),
            by_name: HashMap::new(),
            by_key: HashMap::new(),
            touched: BTreeSet::new(),
            dirty: BTreeSet::new(),
            dirty_peers: BTreeSet::new(),
            echo: HashMap::new(),
        }
    }

    /// A replica as a store kept it: its clock's latest stamp, its last sequence
    /// number, its records with their sequence numbers, and its peers' cursors.
    pub fn restore(
        device: Device,
        clock: Stamp,
        seq: u64,
        records: impl IntoIterator<Item = (u64, Record)>,
        cursors: impl IntoIterator<Item = (Device, u64)>,
    ) -> Replica {
        let mut r = Replica::new(device);
        r.clock = Clock::resume(device, clock);
        for (at, record) in records {
            let id = record.id;
            if let Some(old) = r.seq_of.insert(id, at) {
                r.log.remove(&old);
            }
            r.log.insert(at, id);
            let h = record.hash();
            if let Some(old) = r.hashes.insert(id, h) {
                xor(&mut r.fingerprint, &old);
            }
            xor(&mut r.fingerprint, &h);
            r.seq = r.seq.max(at);
            r.records.insert(id, record);
        }
        r.seq = r.seq.max(seq);
        for record in r.records.values().filter(|x| x.live()) {
            r.by_name
                .entry(record.name.value.clone())
                .or_default()
                .insert(record.id);
            if let Some(k) = &record.key.value {
                r.by_key.entry(k.clone()).or_default().insert(record.id);
            }
        }
        for (peer, cursor) in cursors {
            r.peers.entry(peer).or_default().cursor = cursor;
        }
        r
    }

    /// Takes what changed since the last call (see [`Dirty`]).
    pub fn take_dirty(&mut self) -> Dirty {
        let records = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| Some((*self.seq_of.get(&id)?, self.records.get(&id)?.clone())))
            .collect();
        let cursors = std::mem::take(&mut self.dirty_peers)
            .into_iter()
            .map(|p| (p, self.cursor(p)))
            .collect();
        Dirty {
            records,
            cursors,
            clock: self.clock.last(),
            seq: self.seq,
        }
    }

    /// Whether no live record is called `name`.
    pub fn name_free(&self, name: &str) -> bool {
        !self.by_name.contains_key(name)
    }

    /// Its device.
    pub fn device(&self) -> Device {
        self.clock.device()
    }

    /// Every record, live or deleted.
    pub fn records(&self) -> &BTreeMap<SoundId, Record> {
        &self.records
    }

    /// The live record of `id`.
    pub fn get(&self, id: &SoundId) -> Option<&Record> {
        self.records.get(id).filter(|r| r.live())
    }

    /// The fingerprint of the whole set.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The last local sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The records changed after local sequence number `since`, each with the
    /// sequence number of its latest change, in that order.
    pub fn log_after(&self, since: u64) -> impl Iterator<Item = (u64, &Record)> + '_ {
        self.log
            .range(since.saturating_add(1)..)
            .filter_map(|(&seq, id)| Some((seq, self.records.get(id)?)))
    }

    /// The local sequence number of `id`'s latest change.
    pub fn seq_of(&self, id: &SoundId) -> Option<u64> {
        self.seq_of.get(id).copied()
    }

    /// The last of `peer`'s sequence numbers held here.
    pub fn cursor(&self, peer: Device) -> u64 {
        self.peers.get(&peer).map_or(0, |p| p.cursor)
    }

    /// Replaces (or inserts) a record and logs it under a new sequence number (its
    /// holders cut to the bound first: a peer's record may carry more).
    fn store(&mut self, mut r: Record) {
        r.prune_holders();
        if let Some(old) = self.records.get(&r.id) {
            if let Some(h) = self.hashes.get(&r.id) {
                xor(&mut self.fingerprint, h);
            }
            if old.live() {
                let (name, key) = (old.name.value.clone(), old.key.value.clone());
                unindex(&mut self.by_name, &name, &r.id);
                if let Some(k) = key {
                    unindex(&mut self.by_key, &k, &r.id);
                }
            }
        }
        if r.live() {
            self.by_name
                .entry(r.name.value.clone())
                .or_default()
                .insert(r.id);
            self.touched.insert((false, r.name.value.clone()));
            if let Some(k) = &r.key.value {
                self.by_key.entry(k.clone()).or_default().insert(r.id);
                self.touched.insert((true, k.clone()));
            }
        }
        let h = r.hash();
        xor(&mut self.fingerprint, &h);
        self.hashes.insert(r.id, h);
        self.seq += 1;
        if let Some(old) = self.seq_of.insert(r.id, self.seq) {
            self.log.remove(&old);
        }
        self.log.insert(self.seq, r.id);
        self.dirty.insert(r.id);
        self.records.insert(r.id, r);
    }

    /// Applies `f` to a copy of `id`'s record stamped now, stores it, and resolves
    /// conflicts. `None` when there is no such record.
    fn edit(
        &mut self,
        id: &SoundId,
        now_ms: u64,
        f: impl FnOnce(&mut Record, Stamp),
    ) -> Option<Vec<Fix>> {
        let mut r = self.records.get(id)?.clone();
        let at = self.clock.tick(now_ms);
        f(&mut r, at);
        self.store(r);
        Some(self.resolve(now_ms))
    }

    /// A sound imported here (or imported again after a delete).
    pub fn import(&mut self, id: SoundId, facts: Facts, name: &str, now_ms: u64) -> Vec<Fix> {
        let at = self.clock.tick(now_ms);
        let r = match self.records.get(&id) {
            Some(old) => {
                let mut r = old.clone();
                if !r.live() {
                    r.name = Field::new(name.to_string(), at);
                }
                r.deleted = Field::new(false, at);
                r
            }
            None => Record::new(id, facts, name, at),
        };
        self.store(r);
        self.resolve(now_ms)
    }

    /// A sound added here with everything a person gave it (name, key, gain, tags),
    /// all stamped now; a deleted record of the same bytes comes back with them.
    #[allow(clippy::too_many_arguments)]
    pub fn import_with(
        &mut self,
        id: SoundId,
        facts: Facts,
        name: &str,
        key: Option<&str>,
        gain_db: f32,
        tags: &[String],
        now_ms: u64,
    ) -> Vec<Fix> {
        let at = self.clock.tick(now_ms);
        let mut r = match self.records.get(&id) {
            Some(old) => old.clone(),
            None => Record::new(id, facts, name, at),
        };
        r.name = Field::new(name.to_string(), at);
        r.key = Field::new(key.map(str::to_string), at);
        r.gain_db = Field::new(gain_db, at);
        r.deleted = Field::new(false, at);
        for f in r.tags.values_mut() {
            if f.value {
                *f = Field::new(false, at);
            }
        }
        for t in tags {
            r.tags.insert(t.clone(), Field::new(true, at));
        }
        self.store(r);
        self.resolve(now_ms)
    }

    /// Renames a sound.
    pub fn rename(&mut self, id: &SoundId, name: &str, now_ms: u64) -> Option<Vec<Fix>> {
        self.edit(id, now_ms, |r, at| {
            r.name = Field::new(name.to_string(), at)
        })
    }

    /// Binds (or unbinds) a sound's key.
    pub fn bind(&mut self, id: &SoundId, key: Option<&str>, now_ms: u64) -> Option<Vec<Fix>> {
        self.edit(id, now_ms, |r, at| {
            r.key = Field::new(key.map(str::to_string), at)
        })
    }

    /// Sets a sound's gain.
    pub fn set_gain(&mut self, id: &SoundId, db: f32, now_ms: u64) -> Option<Vec<Fix>> {
        self.edit(id, now_ms, |r, at| r.gain_db = Field::new(db, at))
    }

    /// Turns a tag on or off.
    pub fn tag(&mut self, id: &SoundId, tag: &str, on: bool, now_ms: u64) -> Option<Vec<Fix>> {
        self.edit(id, now_ms, |r, at| {
            r.tags.insert(tag.to_string(), Field::new(on, at));
        })
    }

    /// Records whether this device holds the file of `id` now.
    pub fn set_holder(&mut self, id: &SoundId, on: bool, now_ms: u64) -> Option<Vec<Fix>> {
        let me = self.clock.device();
        if self
            .records
            .get(id)?
            .holders
            .get(&me)
            .is_some_and(|f| f.value == on)
        {
            return Some(Vec::new());
        }
        self.edit(id, now_ms, |r, at| {
            r.holders.insert(me, Field::new(on, at));
        })
    }

    /// Deletes a sound (its record stays, as a tombstone).
    pub fn delete(&mut self, id: &SoundId, now_ms: u64) -> Option<Vec<Fix>> {
        self.edit(id, now_ms, |r, at| r.deleted = Field::new(true, at))
    }

    /// Writes the fixes that make names and keys unique again, as local changes:
    /// only the names and keys touched since the last time are looked at.
    fn resolve(&mut self, now_ms: u64) -> Vec<Fix> {
        let mut all = Vec::new();
        while let Some(t) = self.touched.pop_first() {
            let fixes = {
                let (index, is_key) = match &t {
                    (true, k) => (self.by_key.get(k), true),
                    (false, n) => (self.by_name.get(n), false),
                };
                let claims: Vec<&Record> = index
                    .into_iter()
                    .flatten()
                    .filter_map(|id| self.records.get(id))
                    .collect();
                if is_key {
                    names::key_fixes(claims)
                } else {
                    let by_name = &self.by_name;
                    let mut reserved: Vec<String> = Vec::new();
                    names::name_fixes(claims, &mut |n| {
                        let taken = by_name.contains_key(n) || reserved.iter().any(|r| r == n);
                        reserved.push(n.to_string());
                        taken
                    })
                }
            };
            for fix in &fixes {
                let Some(mut r) = self.records.get(&fix.id()).cloned() else {
                    continue;
                };
                let at = self.clock.tick(now_ms);
                match fix {
                    Fix::Rename { to, .. } => r.name = Field::new(to.clone(), at),
                    Fix::Unbind { .. } => r.key = Field::new(None, at),
                }
                self.store(r);
            }
            all.extend(fixes);
        }
        all
    }

    /// What to send `peer` next: the next step of a reconciliation under way, or an
    /// ask for its changes.
    pub fn ask(&self, peer: Device) -> Msg {
        if let Some(m) = self.peers.get(&peer).and_then(|p| p.pending.clone()) {
            return m;
        }
        Msg::Ask {
            since: self.cursor(peer),
            fingerprint: self.fingerprint,
        }
    }

    /// Whether a reconciliation with `peer` is under way.
    pub fn reconciling(&self, peer: Device) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.pending.is_some())
    }

    /// Handles a message from `peer` at wall time `now_ms`.
    pub fn handle(&mut self, peer: Device, msg: Msg, now_ms: u64) -> Outcome {
        match msg {
            Msg::Ask { since, .. } => Outcome {
                reply: Some(self.changes_after(peer, since, self.seq)),
                ..Outcome::default()
            },
            Msg::Changes {
                since,
                upto,
                records,
                more,
                fingerprint,
            } => self.on_changes(peer, since, upto, records, more, fingerprint, now_ms),
            Msg::Reconcile {
                answer,
                nodes,
                records,
                want,
            } => self.on_reconcile(peer, answer, &nodes, records, &want, now_ms),
        }
    }

    /// Merges a peer's records, each checked against our clock first; returns what
    /// changed and what was refused (names and keys not yet resolved).
    fn merge_records(
        &mut self,
        peer: Device,
        records: Vec<Record>,
        now_ms: u64,
        out: &mut Outcome,
    ) {
        for r in records {
            if let Some(e) = r.stamps().find_map(|s| self.clock.check(s, now_ms).err()) {
                out.refused.push((r.id, e));
                continue;
            }
            let _ = self.clock.observe(r.latest(), now_ms);
            let theirs = r.hash();
            let id = r.id;
            let merged = match self.records.get(&r.id) {
                Some(mine) => {
                    let mut m = mine.clone();
                    m.merge(&r).then_some(m)
                }
                None => Some(r),
            };
            if let Some(m) = merged {
                out.changed.push(m.id);
                self.store(m);
            }
            // Held now exactly as the peer has it: not worth sending back.
            let echo = self.echo.entry(peer).or_default();
            if self.hashes.get(&id) == Some(&theirs) {
                echo.insert(id, theirs);
            } else {
                echo.remove(&id);
            }
        }
    }

    /// One step of a reconciliation: the other side's records merged, ours it wants
    /// given, and the nodes where we still differ sent back. The asker keeps its next
    /// message to send (none when nothing is left); the answerer replies at once.
    fn on_reconcile(
        &mut self,
        peer: Device,
        answer: bool,
        nodes: &[Node],
        records: Vec<Record>,
        want: &[IdPrefix],
        now_ms: u64,
    ) -> Outcome {
        let mut out = Outcome::default();
        // What it wants is what we held before merging its versions (a merge makes
        // both sides hold the same record, whichever went first).
        let mut give: Vec<SoundId> = want
            .iter()
            .flat_map(|p| reconcile::named(&self.hashes, p))
            .collect();
        self.merge_records(peer, records, now_ms, &mut out);
        if !out.changed.is_empty() {
            out.fixes = self.resolve(now_ms);
        }
        let step = reconcile::answer(&self.hashes, nodes);
        give.extend(step.give);
        give.sort_unstable();
        give.dedup();
        // At most a batch per message; what is left is found again by the next
        // comparison of fingerprints.
        let records: Vec<Record> = give
            .iter()
            .filter_map(|id| self.records.get(id).cloned())
            .take(BATCH)
            .collect();
        let mut want = step.want;
        want.truncate(4 * BATCH);
        let next = Msg::Reconcile {
            answer: !answer,
            nodes: step.nodes,
            records,
            want,
        };
        let empty = matches!(&next, Msg::Reconcile { nodes, records, want, .. }
            if nodes.is_empty() && records.is_empty() && want.is_empty());
        if answer {
            // We asked: the next step is ours to send, when there is one.
            self.peers.entry(peer).or_default().pending = (!empty).then_some(next);
        } else {
            out.reply = Some(next);
        }
        out
    }

    /// The first message of a reconciliation: our whole set as one node.
    fn reconcile_start(&self) -> Msg {
        Msg::Reconcile {
            answer: false,
            nodes: vec![reconcile::describe(&self.hashes, Vec::new())],
            records: Vec::new(),
            want: Vec::new(),
        }
    }

    /// The answer to `peer`'s ask from `since`, with our changes up to sequence
    /// number `upto` at most: a library answers only with changes that are on disk
    /// (a change answered and then lost in a crash would let its sequence number be
    /// given to another change, which the asker, its cursor past it, would never
    /// ask for). Changes after `upto` go in a later answer; until then the asker's
    /// cursor stops at `upto`.
    pub fn answer(&self, peer: Device, since: u64, upto: u64) -> Msg {
        self.changes_after(peer, since, upto.min(self.seq))
    }

    /// Our changes after `since` up to `limit` for `peer` (from the start when
    /// `since` is beyond our log: the asker's cursor is from before a reset here). A
    /// record held exactly as `peer` gave it is passed over (the cursor still moves
    /// past it): a peer that lost what it gave us still finds the difference by
    /// fingerprint, and reconciliation, which always sends, repairs it.
    fn changes_after(&self, peer: Device, since: u64, limit: u64) -> Msg {
        let since = if since > self.seq { 0 } else { since };
        let most = if since == 0 { FIRST_BATCH } else { BATCH };
        let echo = self.echo.get(&peer);
        let mut records = Vec::new();
        let mut upto = since;
        let mut more = false;
        for (&seq, id) in self
            .log
            .range(since + 1..)
            .take_while(|(s, _)| **s <= limit)
        {
            if records.len() == most {
                more = true;
                break;
            }
            let echoed = echo.is_some_and(|e| e.get(id) == self.hashes.get(id));
            if let Some(r) = self.records.get(id).filter(|_| !echoed) {
                records.push(r.clone());
            }
            upto = seq;
        }
        if !more {
            upto = limit.max(since);
        }
        Msg::Changes {
            since,
            upto,
            records,
            more,
            fingerprint: self.fingerprint,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_changes(
        &mut self,
        peer: Device,
        since: u64,
        upto: u64,
        records: Vec<Record>,
        more: bool,
        fingerprint: [u8; 32],
        now_ms: u64,
    ) -> Outcome {
        let mut out = Outcome::default();
        let state = self.peers.entry(peer).or_default().clone();
        // Only an answer that continues from our cursor (or restarts from 0) moves
        // it; a late duplicate of an old answer merges harmlessly and moves nothing.
        let continues = since <= state.cursor || since == 0;
        self.merge_records(peer, records, now_ms, &mut out);
        if !out.changed.is_empty() {
            out.fixes = self.resolve(now_ms);
        }
        self.dirty_peers.insert(peer);
        let p = self.peers.entry(peer).or_default();
        if continues && upto > p.cursor || since == 0 && upto != p.cursor {
            p.cursor = upto;
        }
        if more {
            out.reply = Some(Msg::Ask {
                since: p.cursor,
                fingerprint: self.fingerprint,
            });
        } else if fingerprint != self.fingerprint && out.refused.is_empty() {
            // Caught up, yet different: once may be the peer not having pulled from
            // us yet; twice with nothing new here means a divergence: reconcile.
            match p.mismatch_at {
                Some(at) if at == self.seq => {
                    p.mismatch_at = None;
                    let start = self.reconcile_start();
                    self.peers.entry(peer).or_default().pending = Some(start);
                }
                _ => p.mismatch_at = Some(self.seq),
            }
        } else {
            p.mismatch_at = None;
        }
        out
    }
}
