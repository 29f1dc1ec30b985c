//! Tests of the whole replica: the exact actions emitted for each protocol case
//! (`actions.rs`), and a 3-replica in-memory pump (`pump.rs`).

mod actions;
mod pump;
mod snapshot;

use crate::types::{Ballot, NodeId, Slot};

use super::{
    Action, Body, Command, Config, DurableState, Message, PersistToken, Replica, Role, StoreRecord,
};

pub(crate) fn n(id: u32) -> NodeId {
    NodeId(id)
}

pub(crate) fn config(id: u32, members: u32) -> Config {
    Config {
        id: n(id),
        peers: (1..=members).map(n).collect(),
        election_timeout_ticks_min: 10,
        election_timeout_ticks_max: 20,
        heartbeat_ticks: 2,
        window_slots_max: 4,
        window_bytes_max: 1 << 20,
        batch_commands_max: 1,
        batch_bytes_max: 1 << 20,
        seed: u64::from(id) * 7919,
    }
}

pub(crate) fn replica(id: u32, members: u32) -> Replica {
    Replica::new(config(id, members), DurableState::default()).expect("valid config")
}

pub(crate) fn cmd(seq: u64) -> Command {
    Command {
        client: 1,
        seq,
        payload: vec![seq as u8; 4],
    }
}

pub(crate) fn msg(from: u32, to: u32, body: Body) -> Message {
    Message {
        from: n(from),
        to: n(to),
        body,
    }
}

pub(crate) fn send(from: u32, to: u32, body: Body) -> Action {
    Action::Send(msg(from, to, body))
}

pub(crate) fn persist(token: u64, records: Vec<StoreRecord>) -> Action {
    Action::Persist {
        records,
        token: PersistToken(token),
    }
}

/// Ticks `r` until it starts a pre-vote; returns the pre-vote ballot.
pub(crate) fn tick_until_prevote(r: &mut Replica) -> Ballot {
    for _ in 0..1000 {
        r.tick();
        if r.role() == Role::PreCandidate {
            let actions = r.take_actions();
            for a in actions {
                if let Action::Send(Message {
                    body: Body::PreVote { ballot, .. },
                    ..
                }) = a
                {
                    return ballot;
                }
            }
        }
    }
    panic!("no pre-vote started");
}

/// Makes replica `r` (id `id`, in a cluster of `members`) leader with empty promises; returns
/// its ballot. Token 1 is its promise.
pub(crate) fn elect(r: &mut Replica, id: u32, members: u32) -> Ballot {
    let pv = tick_until_prevote(r);
    let peers: Vec<u32> = (1..=members).filter(|&p| p != id).collect();
    for &p in &peers {
        r.step(msg(
            p,
            id,
            Body::PreVoteReply {
                ballot: pv,
                granted: true,
                promised: Ballot::ZERO,
            },
        ));
    }
    let _ = r.take_actions();
    let ballot = r.promised();
    r.persisted(PersistToken(1));
    for &p in &peers {
        r.step(msg(
            p,
            id,
            Body::Promise {
                ballot,
                from: Slot(0),
                chosen: Slot(0),
                log_start: Slot(0),
                entries: vec![],
            },
        ));
    }
    assert_eq!(r.role(), Role::Leader);
    let _ = r.take_actions();
    ballot
}
