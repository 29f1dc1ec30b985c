//! A tiny in-memory cluster: every message is delivered, every persist completes at once.
//! Checks agreement and order end to end over the real replicas.

use std::collections::VecDeque;

use super::*;
use crate::paxos::Value;

struct Cluster {
    replicas: Vec<Replica>,
    net: VecDeque<Message>,
    applied: Vec<Vec<(Slot, Value)>>,
    /// Give every carried-out action back with `Replica::recycle` (messages as copies).
    recycle: bool,
}

impl Cluster {
    fn new(members: u32, tweak: impl Fn(&mut Config)) -> Cluster {
        let replicas = (1..=members)
            .map(|id| {
                let mut cfg = config(id, members);
                tweak(&mut cfg);
                Replica::new(cfg, DurableState::default()).expect("config")
            })
            .collect();
        Cluster {
            replicas,
            net: VecDeque::new(),
            applied: vec![Vec::new(); members as usize],
            recycle: false,
        }
    }

    /// Runs until no replica has anything to do and no message is in flight.
    fn pump(&mut self) {
        loop {
            let mut progress = false;
            for (i, r) in self.replicas.iter_mut().enumerate() {
                loop {
                    let actions = r.take_actions();
                    if actions.is_empty() {
                        break;
                    }
                    progress = true;
                    if self.recycle {
                        let mut done = actions;
                        for a in &done {
                            match a {
                                Action::Persist { token, .. } => r.persisted(*token),
                                Action::Send(m) => self.net.push_back(m.clone()),
                                Action::Apply { slot, value } => {
                                    self.applied[i].push((*slot, value.clone()));
                                }
                                _ => {}
                            }
                        }
                        r.recycle(&mut done);
                        assert!(done.is_empty());
                        continue;
                    }
                    for a in actions {
                        match a {
                            Action::Persist { token, .. } => r.persisted(token),
                            Action::Send(m) => self.net.push_back(m),
                            Action::Apply { slot, value } => self.applied[i].push((slot, value)),
                            _ => {}
                        }
                    }
                }
            }
            while let Some(m) = self.net.pop_front() {
                progress = true;
                let to = (m.to.0 - 1) as usize;
                self.replicas[to].step(m);
            }
            if !progress {
                return;
            }
        }
    }

    fn tick(&mut self) {
        for r in &mut self.replicas {
            r.tick();
        }
        self.pump();
    }

    fn leader(&self) -> Option<usize> {
        self.replicas.iter().position(|r| r.role() == Role::Leader)
    }
}

// Agreement and order (State machine replication): 1,000 proposals, pipelined and batched,
// are applied by every replica, in the same slot order, each exactly once.
#[test]
fn thousand_proposals_applied_in_the_same_order_everywhere() {
    thousand_proposals(false);
}

// The same with every carried-out action given back with `Replica::recycle`: the same
// outcome, the emptied lists are reused, and every value handle is accounted for (after
// compaction the only handles left are the test's own copies of the Applies).
#[test]
fn recycled_actions_change_nothing_and_release_every_handle() {
    let c = thousand_proposals(true);
    let mut c = c;
    for r in &mut c.replicas {
        let applied = r.applied();
        r.compact(applied);
        assert!(!r.spare_records.is_empty(), "persist record lists kept");
    }
    let leader = c.leader().unwrap_or(0);
    assert!(
        !c.replicas[leader].spare_values.is_empty(),
        "Accept value lists kept"
    );
    let all: Vec<&Value> = c.applied.iter().flatten().map(|(_, v)| v).collect();
    for v in &all {
        let sharing = all.iter().filter(|w| w.shares(v)).count();
        assert_eq!(v.handles(), sharing, "no handle leaked or lost");
    }
}

fn thousand_proposals(recycle: bool) -> Cluster {
    let mut c = Cluster::new(3, |cfg| {
        cfg.window_slots_max = 8;
        cfg.batch_commands_max = 16;
    });
    c.recycle = recycle;
    let mut ticks = 0;
    while c.leader().is_none() {
        c.tick();
        ticks += 1;
        assert!(ticks < 1000, "no leader elected");
    }
    let leader = c.leader().unwrap_or(0);
    for seq in 0..1000u64 {
        c.replicas[leader].propose(cmd(seq)).expect("leader");
        if seq % 37 == 0 {
            c.pump();
        }
    }
    c.pump();
    for _ in 0..10 {
        c.tick(); // heartbeats carry the final commit point to the followers
    }
    assert_eq!(c.leader(), Some(leader), "leadership stayed put");
    let commands = |applied: &Vec<(Slot, Value)>| -> Vec<u64> {
        applied
            .iter()
            .flat_map(|(_, v)| v.commands().iter().map(|c| c.seq))
            .collect()
    };
    let expected: Vec<u64> = (0..1000).collect();
    for i in 0..3 {
        assert_eq!(commands(&c.applied[i]), expected, "replica {i}");
        let slots: Vec<u64> = c.applied[i].iter().map(|(s, _)| s.0).collect();
        assert_eq!(
            slots,
            (0..slots.len() as u64).collect::<Vec<_>>(),
            "gapless slot order"
        );
        assert_eq!(c.applied[i], c.applied[0], "replicas agree slot by slot");
    }
    assert!(
        c.applied[0].len() < 1000,
        "commands were batched: {} slots",
        c.applied[0].len()
    );
    c
}

// Leader change under load: the old leader is cut off mid-stream; a new one takes over, and
// whatever any replica applied is a prefix of what every other replica applied.
#[test]
fn leader_failover_keeps_agreement() {
    let mut c = Cluster::new(3, |cfg| cfg.window_slots_max = 4);
    while c.leader().is_none() {
        c.tick();
    }
    let old = c.leader().unwrap_or(0);
    for seq in 0..20 {
        c.replicas[old].propose(cmd(seq)).expect("leader");
    }
    c.pump();
    // Partition the old leader away: it is neither ticked nor sent anything.
    let mut others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let mut ticks = 0;
    loop {
        for &i in &others {
            c.replicas[i].tick();
        }
        // Deliver only among the others.
        for &i in &others {
            let actions = c.replicas[i].take_actions();
            for a in actions {
                match a {
                    Action::Persist { token, .. } => c.replicas[i].persisted(token),
                    Action::Send(m) if (m.to.0 - 1) as usize != old => c.net.push_back(m),
                    Action::Apply { slot, value } => c.applied[i].push((slot, value)),
                    _ => {}
                }
            }
        }
        while let Some(m) = c.net.pop_front() {
            c.replicas[(m.to.0 - 1) as usize].step(m);
        }
        ticks += 1;
        if others.iter().any(|&i| c.replicas[i].role() == Role::Leader) || ticks > 2000 {
            break;
        }
    }
    let new = others
        .iter()
        .copied()
        .find(|&i| c.replicas[i].role() == Role::Leader)
        .expect("new leader");
    for seq in 100..110 {
        c.replicas[new].propose(cmd(seq)).expect("leader");
    }
    others.push(old);
    for _ in 0..60 {
        c.tick(); // the old leader rejoins and catches up
    }
    let longest = c
        .applied
        .iter()
        .max_by_key(|a| a.len())
        .cloned()
        .unwrap_or_default();
    for a in &c.applied {
        assert_eq!(
            a[..],
            longest[..a.len()],
            "applied logs are prefixes of each other"
        );
    }
    let seqs: Vec<u64> = longest
        .iter()
        .flat_map(|(_, v)| v.commands().iter().map(|c| c.seq))
        .collect();
    for seq in 100..110 {
        assert!(
            seqs.contains(&seq),
            "command {seq} from the new leader applied"
        );
    }
    assert!(
        c.applied.iter().all(|a| a.len() == longest.len()),
        "everyone caught up"
    );
}
