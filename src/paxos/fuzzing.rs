//! Fuzz target body for the core (`fuzz/fuzz_targets/paxos_step.rs` wraps it;
//! `tests/fuzz_bodies.rs` runs it over seeded inputs on stable Rust).
//!
//! Arbitrary bytes drive one replica of three through ticks, proposals, read-index requests,
//! storage completions and messages (decoded from the bytes, or built from a few of them so
//! that ballots and slots stay near each other and the protocol gets deep). It must never
//! panic, and an independent oracle checks the durability rule from the outside: a Promise
//! may leave only once a completed persist holds a promise (or accept) at least that high,
//! and an Accepted only once completed persists hold every acknowledged slot at that ballot
//! or higher; applies come once per slot, in order.

use std::collections::{BTreeMap, VecDeque};

use super::codec::decode_message;
use super::{
    Action, Body, Command, Config, DurableState, Faults, Message, PersistToken, Replica,
    StoreRecord, Value,
};
use crate::types::{Ballot, NodeId, Slot};

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        a
    }
}

/// Runs the bytes against replica 1 of 3, with planted bugs `faults`. `Err` names the rule the
/// oracle saw broken.
pub fn replica_step(data: &[u8], faults: Faults) -> Result<(), String> {
    let peers = vec![NodeId(1), NodeId(2), NodeId(3)];
    let mut cfg = Config::new(NodeId(1), peers, 0x5eed);
    cfg.window_slots_max = 8;
    cfg.batch_commands_max = 2;
    let mut r = Replica::new(cfg, DurableState::default()).map_err(|e| e.to_string())?;
    r.set_faults(faults);
    let mut pending: VecDeque<(PersistToken, Vec<StoreRecord>)> = VecDeque::new();
    let mut durable_promise = Ballot::ZERO;
    let mut durable_accepts: BTreeMap<Slot, Ballot> = BTreeMap::new();
    let mut next_apply: Option<Slot> = None;
    let mut b = Bytes(data);
    let mut seq = 0u64;
    while let Some(op) = b.byte() {
        match op % 7 {
            0 => r.tick(),
            1 => {
                seq += 1;
                let _ = r.propose(Command {
                    client: 1,
                    seq,
                    payload: vec![op; usize::from(op % 5)],
                });
            }
            2 => {
                let _ = r.read_index(u64::from(op));
            }
            3 => {
                // Complete the oldest pending persists (in order, as the contract says).
                let k = 1 + usize::from(op / 7 % 3);
                let mut last = None;
                for _ in 0..k {
                    let Some((t, recs)) = pending.pop_front() else {
                        break;
                    };
                    for rec in recs {
                        match rec {
                            StoreRecord::Promise(p) => durable_promise = durable_promise.max(p),
                            StoreRecord::Accept(e) => {
                                durable_promise = durable_promise.max(e.ballot);
                                durable_accepts.insert(e.slot, e.ballot);
                            }
                            _ => {}
                        }
                    }
                    last = Some(t);
                }
                if let Some(t) = last {
                    r.persisted(t);
                }
            }
            4 => {
                let n = usize::from(b.byte().unwrap_or(0));
                let raw = b.take(n);
                if let Ok(mut m) = decode_message(raw) {
                    m.to = NodeId(1);
                    m.from = NodeId(2 + u32::from(op / 7 % 2));
                    r.step(m);
                }
            }
            _ => {
                let from = NodeId(2 + u32::from(op / 7 % 2));
                let x = b.take(3);
                let k = |i: usize| u64::from(x.get(i).copied().unwrap_or(0) % 8);
                let ballot = Ballot::new(k(0), NodeId(1 + (k(1) % 3) as u32));
                let slot = Slot(k(2));
                let body = match op / 7 % 6 {
                    0 => Body::Prepare { ballot, from: slot },
                    1 => Body::Accept {
                        ballot,
                        first: slot,
                        values: vec![Value::noop(); 1 + (k(1) % 3) as usize],
                        commit: Slot(k(1)),
                    },
                    2 => Body::Accepted {
                        ballot,
                        first: slot,
                        end: Slot(slot.0 + k(1)),
                    },
                    3 => Body::Promise {
                        ballot,
                        from: slot,
                        chosen: slot,
                        log_start: Slot(0),
                        entries: Vec::new(),
                    },
                    4 => Body::Heartbeat {
                        ballot,
                        commit: slot,
                        read_round: k(1),
                    },
                    _ => Body::PreVoteReply {
                        ballot,
                        granted: k(1) % 2 == 0,
                        promised: ballot,
                    },
                };
                r.step(Message {
                    from,
                    to: NodeId(1),
                    body,
                });
            }
        }
        for a in r.take_actions() {
            match a {
                Action::Persist { records, token } => pending.push_back((token, records)),
                Action::Send(m) => match m.body {
                    Body::Promise { ballot, .. } if ballot > durable_promise => {
                        return Err(format!(
                            "Promise {ballot} sent while the durable promise is {durable_promise}"
                        ));
                    }
                    Body::Accepted { ballot, first, end } => {
                        for s in first.0..end.0 {
                            if durable_accepts.get(&Slot(s)).is_none_or(|d| *d < ballot) {
                                return Err(format!(
                                    "Accepted slot {s} at {ballot} sent before it was durable"
                                ));
                            }
                        }
                    }
                    _ => {}
                },
                Action::Apply { slot, .. } => {
                    if next_apply.is_some_and(|n| n != slot) {
                        return Err(format!("applied slot {} out of order", slot.0));
                    }
                    next_apply = Some(Slot(slot.0 + 1));
                }
                _ => {}
            }
        }
    }
    Ok(())
}
