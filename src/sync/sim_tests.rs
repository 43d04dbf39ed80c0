//! Several replicas on a simulated network: seeded random edits (imports, re-imports,
//! renames into each other's names, key bindings, gains, tags, deletes, a device
//! gaining or dropping a file) while the
//! network drops, duplicates, reorders and partitions; each replica's clock is off by
//! up to half the believed skew. After the network heals every replica must hold the
//! same records, names and keys must be unique among live sounds, and no imported
//! sound may be missing. Each replica's changes go to a simulated disk after every
//! step ([`Replica::take_dirty`]); now and then a replica crashes and comes back from
//! that disk ([`Replica::restore`]), which must change nothing.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::hlc::{Device, MAX_SKEW_MS, Stamp};
use super::record::{Facts, Record};
use super::replica::{Msg, Replica};
use crate::domain::SoundId;

/// What a store keeps of one replica.
#[derive(Default)]
struct Disk {
    records: BTreeMap<SoundId, (u64, Record)>,
    cursors: BTreeMap<Device, u64>,
    clock: Stamp,
    seq: u64,
}

impl Disk {
    fn save(&mut self, r: &mut Replica) {
        let d = r.take_dirty();
        for (seq, rec) in d.records {
            self.records.insert(rec.id, (seq, rec));
        }
        self.cursors.extend(d.cursors);
        self.clock = d.clock;
        self.seq = d.seq;
    }

    fn restore(&self, device: Device) -> Replica {
        Replica::restore(
            device,
            self.clock,
            self.seq,
            self.records.values().cloned(),
            self.cursors.iter().map(|(d, c)| (*d, *c)),
        )
    }
}

struct Net {
    /// (deliver at, from, to, message)
    queue: Vec<(u64, usize, usize, Msg)>,
    loss: f64,
    dup: f64,
    max_delay: u64,
}

fn facts(size: u64) -> Facts {
    Facts {
        frames: size,
        sample_rate: 48_000,
        channels: 1,
        format: "wav/pcm_s16le".into(),
        size,
        loudness_lufs: None,
    }
}

const NAMES: [&str; 6] = ["horn", "ding", "clap", "boom", "bell", "whoosh"];
const KEYS: [&str; 4] = ["1", "2", "3", "a"];

/// Runs one seeded scenario; returns (messages delivered, fixes made).
fn scenario(seed: u64, replicas: usize, steps: usize) -> (usize, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut r: Vec<Replica> = (0..replicas)
        .map(|i| Replica::new(Device(i as u64 + 1)))
        .collect();
    let skew: Vec<i64> = (0..replicas)
        .map(|_| rng.gen_range(-(MAX_SKEW_MS as i64) / 2..=(MAX_SKEW_MS as i64) / 2))
        .collect();
    let mut net = Net {
        queue: Vec::new(),
        loss: rng.gen_range(0.0..0.3),
        dup: rng.gen_range(0.0..0.2),
        max_delay: rng.gen_range(1..200),
    };
    let mut imported: BTreeSet<SoundId> = BTreeSet::new();
    let mut deleted_ever: BTreeSet<SoundId> = BTreeSet::new();
    let mut now: u64 = 1_700_000_000_000;
    let mut partitioned = vec![false; replicas];
    let mut delivered = 0;
    let mut fixes = 0;
    let mut disks: Vec<Disk> = (0..replicas).map(|_| Disk::default()).collect();
    let wall = |now: u64, i: usize| (now as i64 + skew[i]) as u64;
    let ids: Vec<SoundId> = (0..12u8)
        .map(|b| SoundId([b.wrapping_mul(37).wrapping_add(1); 32]))
        .collect();
    for _ in 0..steps {
        now += rng.gen_range(1..50);
        for (d, x) in disks.iter_mut().zip(r.iter_mut()) {
            d.save(x);
        }
        // A crash: the replica comes back from its disk, unchanged.
        if rng.gen_bool(0.01) {
            let i = rng.gen_range(0..replicas);
            let back = disks[i].restore(r[i].device());
            assert_eq!(
                back.records(),
                r[i].records(),
                "seed {seed}: restored records"
            );
            assert_eq!(back.fingerprint(), r[i].fingerprint(), "seed {seed}");
            assert_eq!(back.seq(), r[i].seq(), "seed {seed}");
            for j in 0..replicas {
                let dj = r[j].device();
                assert_eq!(back.cursor(dj), r[i].cursor(dj), "seed {seed}");
            }
            assert_eq!(back.ask(Device(99)), r[i].ask(Device(99)), "seed {seed}");
            r[i] = back;
        }
        // Partitions come and go.
        if rng.gen_bool(0.02) {
            let i = rng.gen_range(0..replicas);
            partitioned[i] = !partitioned[i];
        }
        match rng.gen_range(0..10) {
            // A local edit.
            0..=4 => {
                let i = rng.gen_range(0..replicas);
                let t = wall(now, i);
                let id = ids[rng.gen_range(0..ids.len())];
                let name = NAMES[rng.gen_range(0..NAMES.len())];
                let known = r[i].get(&id).is_some();
                let f = match rng.gen_range(0..8) {
                    0 | 1 => {
                        imported.insert(id);
                        Some(r[i].import(id, facts(u64::from(id.0[0])), name, t))
                    }
                    2 if known => r[i].rename(&id, name, t),
                    3 if known => {
                        let key = KEYS[rng.gen_range(0..KEYS.len())];
                        r[i].bind(&id, rng.gen_bool(0.8).then_some(key), t)
                    }
                    4 if known => r[i].set_gain(&id, rng.gen_range(-12.0..6.0), t),
                    5 if known => r[i].tag(&id, NAMES[rng.gen_range(0..3)], rng.gen_bool(0.6), t),
                    6 if known => {
                        deleted_ever.insert(id);
                        r[i].delete(&id, t)
                    }
                    7 if known => r[i].set_holder(&id, rng.gen_bool(0.5), t),
                    _ => None,
                };
                fixes += f.map_or(0, |f| f.len());
            }
            // A pull.
            5..=7 => {
                let i = rng.gen_range(0..replicas);
                let j = (i + rng.gen_range(1..replicas)) % replicas;
                let m = r[i].ask(r[j].device());
                send(&mut net, &mut rng, now, i, j, m);
            }
            // Deliveries.
            _ => {
                net.queue.sort_by_key(|q| q.0);
                // Reordering: deliver any due message, not only the first.
                let due: Vec<usize> = (0..net.queue.len())
                    .filter(|&k| net.queue[k].0 <= now)
                    .collect();
                if !due.is_empty() {
                    let k = due[rng.gen_range(0..due.len())];
                    let (_, from, to, m) = net.queue.remove(k);
                    if partitioned[from] || partitioned[to] {
                        continue;
                    }
                    delivered += 1;
                    let dev = r[from].device();
                    let out = r[to].handle(dev, m, wall(now, to));
                    fixes += out.fixes.len();
                    assert!(
                        out.refused.is_empty(),
                        "seed {seed}: an honest stamp was refused"
                    );
                    if let Some(reply) = out.reply {
                        send(&mut net, &mut rng, now, to, from, reply);
                    }
                }
            }
        }
    }
    // Heal: a reliable network, every pair pulls until nothing moves.
    net.queue.clear();
    for round in 0.. {
        assert!(round < 200, "seed {seed}: no convergence after 200 rounds");
        let before: Vec<[u8; 32]> = r.iter().map(Replica::fingerprint).collect();
        for i in 0..replicas {
            for j in 0..replicas {
                if i == j {
                    continue;
                }
                now += 1;
                let mut m = r[i].ask(r[j].device());
                // Ask, answer, and follow the answer's "more" until done.
                loop {
                    let di = r[i].device();
                    let reply = r[j].handle(di, m, wall(now, j)).reply;
                    let Some(reply) = reply else { break };
                    let dj = r[j].device();
                    let out = r[i].handle(dj, reply, wall(now, i));
                    delivered += 2;
                    fixes += out.fixes.len();
                    match out.reply {
                        Some(next) => m = next,
                        None => break,
                    }
                }
            }
        }
        let after: Vec<[u8; 32]> = r.iter().map(Replica::fingerprint).collect();
        if after == before && after.iter().all(|f| *f == after[0]) {
            break;
        }
    }
    // Every replica holds the same records.
    for k in 1..replicas {
        assert_eq!(
            r[k].records(),
            r[0].records(),
            "seed {seed}: replica {k} differs"
        );
    }
    // Unique names and keys among the live.
    let live: Vec<_> = r[0].records().values().filter(|x| x.live()).collect();
    let mut names = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for x in &live {
        assert!(
            names.insert(x.name.value.clone(), x.id).is_none(),
            "seed {seed}: name {} twice",
            x.name.value
        );
        if let Some(k) = &x.key.value {
            assert!(
                keys.insert(k.clone(), x.id).is_none(),
                "seed {seed}: key {k} twice"
            );
        }
    }
    // Nothing lost: every sound imported is there, live unless it was deleted.
    for id in &imported {
        let rec = r[0]
            .records()
            .get(id)
            .unwrap_or_else(|| panic!("seed {seed}: a sound vanished"));
        assert!(
            rec.live() || deleted_ever.contains(id),
            "seed {seed}: deleted without a delete"
        );
    }
    (delivered, fixes)
}

fn send(net: &mut Net, rng: &mut StdRng, now: u64, from: usize, to: usize, m: Msg) {
    if rng.gen_bool(net.loss) {
        return;
    }
    let copies = if rng.gen_bool(net.dup) { 2 } else { 1 };
    for _ in 0..copies {
        let at = now + rng.gen_range(0..net.max_delay);
        net.queue.push((at, from, to, m.clone()));
    }
}

#[test]
fn thousands_of_random_concurrent_edits_converge_on_every_replica() {
    let mut delivered = 0;
    let mut fixes = 0;
    for seed in 0..300 {
        let replicas = 2 + (seed % 3) as usize;
        let (d, f) = scenario(seed, replicas, 400);
        delivered += d;
        fixes += f;
    }
    eprintln!(
        "300 scenarios, 2–4 replicas, 400 steps each: {delivered} messages delivered, {fixes} name/key conflicts fixed"
    );
    assert!(
        fixes > 0,
        "the scenarios never made a conflict: they test too little"
    );
}

#[test]
fn a_stamp_a_year_ahead_is_refused_and_the_rest_of_the_batch_is_merged() {
    let mut a = Replica::new(Device(1));
    let mut liar = Replica::new(Device(2));
    let now = 1_700_000_000_000u64;
    let year = 365 * 24 * 3600 * 1000;
    // Its clock jumps a year ahead after one honest change (and stays there: every
    // later change of its is as far ahead).
    liar.import(SoundId([2; 32]), facts(2), "present", now);
    liar.import(SoundId([1; 32]), facts(1), "future", now + year);
    let ask = a.ask(liar.device());
    let reply = liar.handle(a.device(), ask, now).reply.expect("an answer");
    let out = a.handle(liar.device(), reply, now);
    assert_eq!(out.refused.len(), 1);
    assert_eq!(out.refused[0].0, SoundId([1; 32]));
    assert!(a.get(&SoundId([2; 32])).is_some());
    assert!(a.get(&SoundId([1; 32])).is_none());
    // Our clock did not jump a year.
    let fixes = a.import(SoundId([3; 32]), facts(3), "mine", now);
    assert!(fixes.is_empty());
    assert!(a.records()[&SoundId([3; 32])].name.at.wall_ms < now + MAX_SKEW_MS);
}

#[test]
fn reconnecting_with_nothing_changed_is_one_empty_exchange_whatever_the_size() {
    for n in [1_000u32, 100_000] {
        let mut a = Replica::new(Device(1));
        let mut b = Replica::new(Device(2));
        let now = 1_700_000_000_000u64;
        for i in 0..n {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            a.import(SoundId(id), facts(1), &format!("s{i}"), now);
        }
        // The first sync moves everything, in batches.
        let mut m = b.ask(a.device());
        loop {
            let reply = a.handle(b.device(), m, now).reply.expect("answer");
            match b.handle(a.device(), reply, now).reply {
                Some(next) => m = next,
                None => break,
            }
        }
        assert_eq!(b.fingerprint(), a.fingerprint());
        // Reconnect: one ask, one empty answer.
        let ask = b.ask(a.device());
        let reply = a
            .handle(b.device(), ask.clone(), now)
            .reply
            .expect("answer");
        let sizes = (
            postcard::to_allocvec(&ask).unwrap().len(),
            postcard::to_allocvec(&reply).unwrap().len(),
        );
        match &reply {
            Msg::Changes { records, more, .. } => assert!(records.is_empty() && !more),
            m => panic!("{m:?}"),
        }
        assert!(b.handle(a.device(), reply, now).reply.is_none());
        eprintln!(
            "{n} sounds, nothing changed: ask {} B, answer {} B, one round trip",
            sizes.0, sizes.1
        );
        assert!(sizes.0 <= 1024 && sizes.1 <= 1024);
    }
}

/// Pulls everything `from` has for `to` (asks until caught up); the records moved.
fn pull(to: &mut Replica, from: &mut Replica, now: u64) -> usize {
    let mut moved = 0;
    let mut m = to.ask(from.device());
    loop {
        let reply = from.handle(to.device(), m, now).reply.expect("answer");
        if let Msg::Changes { records, .. } | Msg::Reconcile { records, .. } = &reply {
            moved += records.len();
        }
        match to.handle(from.device(), reply, now).reply {
            Some(next) => m = next,
            None => return moved,
        }
    }
}

#[test]
fn records_a_peer_gave_are_not_echoed_back_and_a_peer_that_lost_them_is_repaired() {
    let now = 1_700_000_000_000u64;
    let mut a = Replica::new(Device(1));
    let mut b = Replica::new(Device(2));
    for i in 0..1000u32 {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&i.to_le_bytes());
        a.import(SoundId(id), facts(1), &format!("s{i}"), now);
    }
    assert_eq!(pull(&mut b, &mut a, now), 1000);
    // B's log now holds A's records; A asking B gets none of them back.
    assert_eq!(pull(&mut a, &mut b, now), 0, "nothing echoed");
    assert_eq!(a.fingerprint(), b.fingerprint());
    // A record B changes afterwards does go to A.
    let mut first = [0u8; 32];
    first[..4].copy_from_slice(&0u32.to_le_bytes());
    b.rename(&SoundId(first), "renamed", now + 1);
    assert_eq!(pull(&mut a, &mut b, now + 2), 1);
    assert_eq!(a.fingerprint(), b.fingerprint());
    // A loses everything (a new replica answering for the same device): the
    // records B passes over as echoes are found by fingerprint and repaired.
    let mut a2 = Replica::new(Device(1));
    let mut rounds = 0;
    while a2.fingerprint() != b.fingerprint() {
        pull(&mut a2, &mut b, now + 3);
        rounds += 1;
        assert!(rounds < 40, "not repaired: {} records", a2.records().len());
    }
    eprintln!("a lost replica repaired in {rounds} exchanges");
    assert_eq!(a2.records().len(), 1000);
}

#[test]
fn a_divergence_among_a_hundred_thousand_records_is_repaired_in_three_round_trips() {
    let now = 1_700_000_000_000u64;
    let id = |i: u32| SoundId(*blake3::hash(&i.to_le_bytes()).as_bytes());
    let mut a = Replica::new(Device(1));
    for i in 0..100_000u32 {
        a.import(id(i), facts(1), &format!("s{i}"), now);
    }
    let _ = a.take_dirty();
    // B holds the same records and believes it has all of A's changes, but ten
    // records differ behind the logs' backs (a restored backup, a bug): three it
    // renamed later, three A renamed later, four only it has.
    let mut saved: BTreeMap<SoundId, (u64, Record)> = a
        .records()
        .values()
        .map(|r| (r.id, (a.seq_of(&r.id).unwrap_or(0), r.clone())))
        .collect();
    let later = |r: &mut Record, device: u64, name: &str| {
        r.name.value = name.to_string();
        r.name.at = Stamp {
            wall_ms: now + 1000,
            counter: 0,
            device: Device(device),
        };
    };
    for i in 0..3 {
        let (_, r) = saved.get_mut(&id(i)).expect("record");
        later(r, 2, &format!("renamed on b {i}"));
    }
    for i in 3..6 {
        let mut r = a.records()[&id(i)].clone();
        later(&mut r, 1, &format!("renamed on a {i}"));
        let seq = a.seq();
        // Written into A as if restored: no log entry B would be told about.
        let mut disk: Vec<(u64, Record)> = a
            .records()
            .values()
            .map(|x| (a.seq_of(&x.id).unwrap_or(0), x.clone()))
            .collect();
        for (_, x) in disk.iter_mut().filter(|(_, x)| x.id == r.id) {
            *x = r.clone();
        }
        a = Replica::restore(
            Device(1),
            Stamp {
                wall_ms: now + 1000,
                counter: 1,
                device: Device(1),
            },
            seq,
            disk,
            [],
        );
    }
    for i in 0..4u32 {
        let r = Record::new(
            id(200_000 + i),
            facts(1),
            &format!("only on b {i}"),
            Stamp {
                wall_ms: now,
                counter: 0,
                device: Device(2),
            },
        );
        saved.insert(r.id, (1, r));
    }
    let mut b = Replica::restore(
        Device(2),
        Stamp {
            wall_ms: now + 1000,
            counter: 1,
            device: Device(2),
        },
        a.seq(),
        saved.into_values(),
        [(Device(1), a.seq())],
    );
    assert_ne!(a.fingerprint(), b.fingerprint());
    // B pulls: caught up twice with differing fingerprints, then reconciles.
    let mut round_trips = 0;
    let mut bytes = 0;
    for _ in 0..2 {
        let ask = b.ask(a.device());
        let reply = a.handle(b.device(), ask, now + 2000).reply.expect("answer");
        b.handle(a.device(), reply, now + 2000);
    }
    assert!(
        b.reconciling(a.device()),
        "a divergence starts a reconciliation"
    );
    while b.reconciling(a.device()) {
        round_trips += 1;
        assert!(round_trips <= 10, "no end to the reconciliation");
        let m = b.ask(a.device());
        bytes += postcard::to_allocvec(&m).map_or(0, |v| v.len());
        let reply = a.handle(b.device(), m, now + 2000).reply.expect("answer");
        bytes += postcard::to_allocvec(&reply).map_or(0, |v| v.len());
        b.handle(a.device(), reply, now + 2000);
    }
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.records(), b.records());
    assert_eq!(a.records()[&id(0)].name.value, "renamed on b 0");
    assert_eq!(a.records()[&id(4)].name.value, "renamed on a 4");
    assert!(a.records().contains_key(&id(200_003)));
    eprintln!(
        "100,000 sounds, 10 differences: reconciled in {round_trips} round trips, {bytes} bytes"
    );
    assert!(round_trips <= 3, "{round_trips} round trips");
    assert!(bytes <= 16 * 1024, "{bytes} bytes");
}

#[test]
fn an_answer_goes_only_as_far_as_the_disk_and_the_rest_follows() {
    let now = 1_700_000_000_000u64;
    let mut a = Replica::new(Device(1));
    let mut b = Replica::new(Device(2));
    let id = |i: u8| SoundId([i; 32]);
    for i in 1..=5 {
        a.import(id(i), facts(u64::from(i)), &format!("s{i}"), now);
    }
    let durable = a.seq();
    // Two more changes, not yet on disk.
    a.import(id(6), facts(6), "s6", now);
    a.rename(&id(1), "renamed", now);
    assert!(a.seq() > durable);
    let ask = b.ask(a.device());
    let Msg::Ask { since, .. } = ask else {
        panic!("{ask:?}")
    };
    let reply = a.answer(b.device(), since, durable);
    match &reply {
        Msg::Changes {
            records,
            upto,
            more,
            ..
        } => {
            assert_eq!(*upto, durable, "the cursor stops at the disk");
            assert!(!more);
            assert!(records.iter().all(|r| r.id != id(6)), "s6 is not on disk");
            assert!(
                records.iter().all(|r| r.name.value != "renamed"),
                "the rename is not on disk"
            );
        }
        m => panic!("{m:?}"),
    }
    let _ = b.handle(a.device(), reply, now);
    assert_eq!(b.cursor(a.device()), durable);
    // Once on disk, the next asks bring the rest.
    pull(&mut b, &mut a, now);
    assert_eq!(b.cursor(a.device()), a.seq());
    assert_eq!(b.fingerprint(), a.fingerprint());
    assert_eq!(
        b.get(&id(1)).map(|r| r.name.value.clone()).as_deref(),
        Some("renamed")
    );
}

/// A peer with nothing of ours gets a short first answer (its first sounds listed
/// soon), then full ones; every record arrives once and the cursors meet.
#[test]
fn a_first_answer_is_short_and_the_rest_come_in_full_batches() {
    use crate::sync::replica::{BATCH, FIRST_BATCH};
    let now = 1_700_000_000_000u64;
    let mut a = Replica::new(Device(1));
    let mut b = Replica::new(Device(2));
    let total = FIRST_BATCH + BATCH + 7;
    for i in 0..total {
        let mut raw = [0u8; 32];
        raw[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
        a.import(SoundId(raw), facts(i as u64 + 1), &format!("s{i}"), now);
    }
    let mut sizes = Vec::new();
    let mut ask = b.ask(a.device());
    for _ in 0..10 {
        let Msg::Ask { since, .. } = ask else {
            panic!("{ask:?}")
        };
        let reply = a.answer(b.device(), since, a.seq());
        let Msg::Changes { records, more, .. } = &reply else {
            panic!("{reply:?}")
        };
        sizes.push(records.len());
        let more = *more;
        let out = b.handle(a.device(), reply, now);
        match out.reply {
            Some(next) if more => ask = next,
            _ => break,
        }
    }
    assert_eq!(sizes, [FIRST_BATCH, BATCH, 7]);
    assert_eq!(b.cursor(a.device()), a.seq());
    assert_eq!(b.fingerprint(), a.fingerprint());
}
