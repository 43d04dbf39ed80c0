//! The offer and the view with simulated time: an owner changing its library and
//! what it shares at random, a subscriber pulling through a network that loses,
//! duplicates and reorders answers; once the network heals the view is exactly the
//! owner's offer.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::sync::hlc::Device;

fn facts(i: u32) -> Facts {
    Facts {
        frames: 1000 + u64::from(i),
        sample_rate: 48_000,
        channels: 1,
        format: "wav".into(),
        size: 4000,
        loudness_lufs: None,
    }
}

fn id(i: u32) -> SoundId {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&i.to_be_bytes());
    SoundId(b)
}

fn tags(t: &[&str]) -> BTreeSet<String> {
    t.iter().map(|s| s.to_string()).collect()
}

/// What the view must hold: the owner's live offered sounds.
fn expected(owner: &Replica, shared: &BTreeSet<String>) -> BTreeMap<SoundId, Offered> {
    owner
        .records()
        .values()
        .filter(|r| r.live() && offered(r, shared))
        .map(|r| (r.id, Offered::of(r, owner.seq_of(&r.id).unwrap_or(0))))
        .collect()
}

/// Asks and answers over a perfect network until the view says it is done.
fn settle(owner: &Replica, shared: &BTreeSet<String>, view: &mut View) -> usize {
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 10_000, "no end to the exchange");
        let a = answer(owner, shared, &view.ask()).expect("an answer");
        let change = view
            .handle(decode(&encode(&a)).expect("decodes"))
            .expect("taken");
        if !change.again {
            return rounds;
        }
    }
}

fn random_edit(rng: &mut StdRng, owner: &mut Replica, now: &mut u64, n: u32) {
    *now += rng.gen_range(1..50);
    let i = rng.gen_range(0..n);
    let sid = id(i);
    let known = owner.records().contains_key(&sid);
    let words = ["fx", "voice", "loud", "party"];
    match rng.gen_range(0..10) {
        0..=2 if !known || rng.gen_bool(0.3) => {
            let name = format!("s{}", rng.gen_range(0..n));
            owner.import(sid, facts(i), &name, *now);
        }
        0..=3 => {
            let t = words[rng.gen_range(0..words.len())];
            owner.tag(&sid, t, rng.gen_bool(0.6), *now);
        }
        4..=5 => {
            owner.rename(&sid, &format!("n{}", rng.gen_range(0..1000)), *now);
        }
        6 => {
            owner.set_gain(&sid, rng.gen_range(-12.0..6.0), *now);
        }
        7 => {
            owner.delete(&sid, *now);
        }
        _ => {
            owner.bind(&sid, Some(&format!("{}", rng.gen_range(0..9))), *now);
        }
    }
}

#[test]
fn a_view_follows_the_offer_through_loss_duplication_and_reordering() {
    let all = ["fx", "voice", "loud", "party"];
    for seed in 0..300u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut owner = Replica::new(Device(1));
        let mut view = View::default();
        let mut shared = tags(&["fx"]);
        let mut now = 1_000u64;
        let n = rng.gen_range(5..60);
        // Answers in flight: delivered later, maybe twice, maybe out of order.
        let mut flight: Vec<ShareMsg> = Vec::new();
        for _ in 0..rng.gen_range(50..400) {
            match rng.gen_range(0..10) {
                0..=4 => random_edit(&mut rng, &mut owner, &mut now, n),
                5 => {
                    // The owner shares another tag, or withdraws one.
                    let t = all[rng.gen_range(0..all.len())].to_string();
                    if !shared.remove(&t) {
                        shared.insert(t);
                    }
                }
                _ => {
                    if let Some(a) = answer(&owner, &shared, &view.ask()) {
                        flight.push(a.clone());
                        if rng.gen_bool(0.1) {
                            flight.push(a);
                        }
                    }
                    while !flight.is_empty() && rng.gen_bool(0.7) {
                        let k = rng.gen_range(0..flight.len());
                        let m = flight.swap_remove(k);
                        if rng.gen_bool(0.15) {
                            continue; // lost
                        }
                        view.handle(m).expect("an honest owner's answer");
                    }
                }
            }
        }
        // Late answers arrive after the healing starts, too.
        for m in flight.drain(..) {
            view.handle(m).expect("taken");
        }
        settle(&owner, &shared, &mut view);
        assert_eq!(*view.sounds(), expected(&owner, &shared), "seed {seed}");
        assert_eq!(
            view.fingerprint(),
            fingerprint(&owner, &shared),
            "seed {seed}"
        );
        assert!(!view.in_full_pass());
    }
}

#[test]
fn reconnecting_with_nothing_changed_is_one_empty_answer() {
    let mut owner = Replica::new(Device(1));
    for i in 0..2000 {
        owner.import(id(i), facts(i), &format!("s{i}"), 10 + u64::from(i));
        if i % 2 == 0 {
            owner.tag(&id(i), "fx", true, 10 + u64::from(i));
        }
    }
    let shared = tags(&["fx"]);
    let mut view = View::default();
    settle(&owner, &shared, &mut view);
    assert_eq!(view.sounds().len(), 1000);
    let a = answer(&owner, &shared, &view.ask()).expect("answer");
    let bytes = encode(&a).len() + encode(&view.ask()).len();
    let change = view.handle(a).expect("taken");
    assert!(!change.again && !change.changed());
    assert!(bytes < 200, "{bytes} bytes for nothing new");
}

#[test]
fn removals_untagging_and_a_withdrawn_share_empty_the_view() {
    let mut owner = Replica::new(Device(1));
    for i in 0..600 {
        owner.import(id(i), facts(i), &format!("s{i}"), 10);
        owner.tag(&id(i), "fx", true, 11);
    }
    let mut shared = tags(&["fx"]);
    let mut view = View::default();
    settle(&owner, &shared, &mut view);
    assert_eq!(view.sounds().len(), 600);
    // A delete travels as a removal, without a full pass.
    owner.delete(&id(3), 20);
    let a = answer(&owner, &shared, &view.ask()).expect("answer");
    let change = view.handle(a).expect("taken");
    assert_eq!(change.removed, vec![id(3)]);
    assert!(!change.again);
    // A tag taken off is found by the fingerprint; a full pass (three pages) drops it.
    owner.tag(&id(4), "fx", false, 21);
    let rounds = settle(&owner, &shared, &mut view);
    assert_eq!(
        rounds,
        1 + 3,
        "the ask that finds the difference, then three pages"
    );
    assert!(!view.sounds().contains_key(&id(4)));
    assert_eq!(view.sounds().len(), 598);
    shared.clear();
    settle(&owner, &shared, &mut view);
    assert!(view.sounds().is_empty());
    assert_eq!(view.fingerprint(), [0; 32]);
}

#[test]
fn a_late_answer_never_undoes_a_newer_one() {
    let mut owner = Replica::new(Device(1));
    owner.import(id(1), facts(1), "old", 10);
    owner.tag(&id(1), "fx", true, 11);
    let shared = tags(&["fx"]);
    let mut view = View::default();
    let early = answer(&owner, &shared, &view.ask()).expect("answer");
    view.handle(early.clone()).expect("taken");
    owner.rename(&id(1), "new", 12);
    settle(&owner, &shared, &mut view);
    view.handle(early).expect("taken");
    assert_eq!(view.sounds()[&id(1)].name, "new");
}

#[test]
fn a_lying_owner_is_bounded() {
    let s = |i: u32| Offered {
        id: id(i),
        seq: u64::from(i),
        facts: facts(i),
        name: format!("s{i}"),
        gain_db: 0.0,
        tags: vec!["fx".into()],
        deleted: false,
    };
    let offer = |sounds: Vec<Offered>| ShareMsg::Offer {
        since: 0,
        upto: 1,
        sounds,
        more: false,
        full: false,
        fingerprint: [0; 32],
    };
    let many = offer((0..BATCH as u32 + 1).map(s).collect());
    assert!(decode(&encode(&many)).is_err());
    let mut nan = s(1);
    nan.gain_db = f32::NAN;
    assert!(decode(&encode(&offer(vec![nan]))).is_err());
    let mut long = s(2);
    long.name = "x".repeat(MAX_TEXT + 1);
    assert!(decode(&encode(&offer(vec![long]))).is_err());
    // An endless offer stops at the view's bound.
    let mut view = View::default();
    let mut refused = false;
    for page in 0..(MAX_VIEW / BATCH + 2) as u32 {
        let sounds = (0..BATCH as u32)
            .map(|i| s(page * BATCH as u32 + i))
            .collect();
        let m = ShareMsg::Offer {
            since: view.cursor(),
            upto: u64::from(page) + 1,
            sounds,
            more: true,
            full: false,
            fingerprint: [0; 32],
        };
        if view.handle(m).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused);
    assert!(view.sounds().len() <= MAX_VIEW);
    // Random bytes never panic.
    let mut rng = StdRng::seed_from_u64(3);
    let good = encode(&offer((0..10).map(s).collect()));
    for _ in 0..20_000 {
        let mut b = good.clone();
        for _ in 0..rng.gen_range(1..6) {
            let k = rng.gen_range(0..b.len());
            b[k] = rng.r#gen();
        }
        b.truncate(rng.gen_range(0..=b.len()));
        if let Ok(m) = decode(&b) {
            let _ = View::default().handle(m);
        }
    }
}
