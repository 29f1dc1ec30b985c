//! `Replica::install_snapshot`: a follower that lacks compacted slots takes a peer's snapshot
//! as a core input and continues from the log, without a restart.

use super::*;
use crate::paxos::Value;

fn batch(seq: u64) -> Value {
    Value::new(vec![cmd(seq)])
}

/// A follower that missed slots 0..4 (the leader compacted them) installs a snapshot at 4,
/// then accepts and applies slot 4 from the leader's next Accept.
#[test]
fn a_lagging_follower_installs_a_snapshot_then_applies_from_the_log() {
    let mut r = replica(2, 3);
    let b1 = Ballot::new(1, n(1));
    // The leader's heartbeat says slots 0..4 are chosen; the follower holds none of them.
    r.step(msg(
        1,
        2,
        Body::Heartbeat {
            ballot: b1,
            commit: Slot(4),
            read_round: 0,
        },
    ));
    let _ = r.take_actions();
    assert_eq!(r.chosen(), Slot(0), "chosen is learned only for held slots");
    // Before the install the follower applies nothing.
    assert!(r.install_snapshot(Slot(4)));
    assert_eq!(
        (r.applied(), r.chosen(), r.log_start()),
        (Slot(4), Slot(4), Slot(4))
    );
    assert!(
        !r.install_snapshot(Slot(3)),
        "an older snapshot changes nothing"
    );
    assert!(
        !r.install_snapshot(Slot(4)),
        "the same snapshot changes nothing"
    );
    // The leader's next Accept for slot 4, committing it.
    let v4 = batch(5);
    r.step(msg(
        1,
        2,
        Body::Accept {
            ballot: b1,
            first: Slot(4),
            values: vec![v4.clone()],
            commit: Slot(4),
        },
    ));
    let actions = r.take_actions();
    assert!(
        matches!(&actions[..], [Action::Persist { records, .. }] if records.iter().any(|rec| matches!(rec, StoreRecord::Accept(e) if e.slot == Slot(4)))),
        "{actions:?}"
    );
    r.persisted(PersistToken(r_last_token(&actions)));
    let _ = r.take_actions();
    r.step(msg(
        1,
        2,
        Body::Heartbeat {
            ballot: b1,
            commit: Slot(5),
            read_round: 0,
        },
    ));
    let actions = r.take_actions();
    let applied: Vec<(Slot, Value)> = actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Apply { slot, value } => Some((slot, value)),
            _ => None,
        })
        .collect();
    assert_eq!(applied, vec![(Slot(4), v4)]);
    assert_eq!(r.applied(), Slot(5));
}

fn r_last_token(actions: &[Action]) -> u64 {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Persist { token, .. } => Some(token.0),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// A leader never installs a peer's snapshot; a candidate steps down to install one.
#[test]
fn a_leader_refuses_and_a_candidate_steps_down() {
    let mut leader = replica(1, 3);
    elect(&mut leader, 1, 3);
    assert!(!leader.install_snapshot(Slot(10)));
    assert_eq!(leader.role(), Role::Leader);
    assert_eq!(leader.applied(), Slot(0));

    let mut c = replica(2, 3);
    let _ = tick_until_prevote(&mut c);
    assert_eq!(c.role(), Role::PreCandidate);
    assert!(c.install_snapshot(Slot(3)));
    assert_eq!(c.role(), Role::Follower);
    assert_eq!((c.applied(), c.chosen()), (Slot(3), Slot(3)));
}
