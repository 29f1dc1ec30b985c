//! The exact actions a replica emits for each protocol case. Each test names the rule it pins.

use super::*;
use crate::paxos::{Entry, Faults, NotLeader, Value};

fn entry(slot: u64, ballot: Ballot, value: &Value) -> Entry {
    Entry {
        slot: Slot(slot),
        ballot,
        value: value.clone(),
    }
}

fn batch(seqs: &[u64]) -> Value {
    Value::new(seqs.iter().map(|&s| cmd(s)).collect())
}

// Election: a pre-vote (no state change, no persist), then Phase 1a to every peer with our own
// promise persisted in parallel; leadership only once our promise is durable AND a majority
// promised (Paxos Made Simple §2.2: a proposer needs a majority of promises).
#[test]
fn election_prevote_then_prepare_to_all_then_leader_on_quorum() {
    let mut r = replica(1, 3);
    let pv = tick_until_prevote(&mut r);
    assert_eq!(pv, Ballot::new(1, n(1)));
    assert_eq!(r.promised(), Ballot::ZERO, "a pre-vote changes no state");

    r.step(msg(
        2,
        1,
        Body::PreVoteReply {
            ballot: pv,
            granted: true,
            promised: Ballot::ZERO,
        },
    ));
    let b = Ballot::new(1, n(1));
    assert_eq!(
        r.take_actions(),
        vec![
            persist(1, vec![StoreRecord::Promise(b)]),
            send(
                1,
                2,
                Body::Prepare {
                    ballot: b,
                    from: Slot(0)
                }
            ),
            send(
                1,
                3,
                Body::Prepare {
                    ballot: b,
                    from: Slot(0)
                }
            ),
        ]
    );
    assert_eq!(r.role(), Role::Candidate);

    // A peer's promise alone is not a majority while our own is not durable.
    let promise = Body::Promise {
        ballot: b,
        from: Slot(0),
        chosen: Slot(0),
        log_start: Slot(0),
        entries: vec![],
    };
    r.step(msg(2, 1, promise.clone()));
    assert_eq!(r.take_actions(), vec![]);
    assert_eq!(r.role(), Role::Candidate);

    r.persisted(PersistToken(1));
    assert_eq!(r.role(), Role::Leader);
    assert_eq!(r.leader(), Some(n(1)));
    assert_eq!(
        r.take_actions(),
        vec![],
        "nothing reported, nothing to re-propose"
    );
    // A late duplicate promise changes nothing.
    r.step(msg(3, 1, promise));
    assert_eq!(r.take_actions(), vec![]);
    assert_eq!(r.propose(cmd(1)), Ok(()));
}

fn takeover(faults: Faults) -> Vec<Action> {
    // A replica that once promised (5, n3) runs for (6, n1) in a 5-member cluster.
    let state = DurableState {
        promised: Ballot::new(5, n(3)),
        ..DurableState::default()
    };
    let mut r = Replica::new(config(1, 5), state).expect("config");
    r.set_faults(faults);
    let pv = tick_until_prevote(&mut r);
    for p in [2, 3] {
        r.step(msg(
            p,
            1,
            Body::PreVoteReply {
                ballot: pv,
                granted: true,
                promised: Ballot::ZERO,
            },
        ));
    }
    let b = Ballot::new(6, n(1));
    assert_eq!(r.promised(), b);
    let _ = r.take_actions();
    r.persisted(PersistToken(1));
    let (a, a2, c_old, c_older, d) = (
        batch(&[1]),
        batch(&[2]),
        batch(&[3]),
        batch(&[4]),
        batch(&[5]),
    );
    let promise = |entries| Body::Promise {
        ballot: b,
        from: Slot(0),
        chosen: Slot(0),
        log_start: Slot(0),
        entries,
    };
    r.step(msg(
        2,
        1,
        promise(vec![
            entry(0, Ballot::new(3, n(2)), &a),
            entry(2, Ballot::new(4, n(2)), &c_old),
        ]),
    ));
    r.step(msg(
        3,
        1,
        promise(vec![
            entry(0, Ballot::new(4, n(3)), &a2),
            entry(2, Ballot::new(3, n(3)), &c_older),
            entry(3, Ballot::new(5, n(3)), &d),
        ]),
    ));
    assert_eq!(r.role(), Role::Leader);
    r.take_actions()
}

// Takeover (Paxos Made Simple §2.2, P2c): for each slot the new leader proposes the value of
// the highest-ballot proposal reported by the majority, and a no-op where none was reported.
#[test]
fn takeover_reproposes_highest_ballot_value_and_fills_holes_with_noops() {
    let b = Ballot::new(6, n(1));
    let values = vec![batch(&[2]), Value::noop(), batch(&[3]), batch(&[5])];
    let mut expected = vec![persist(
        2,
        values
            .iter()
            .enumerate()
            .map(|(s, v)| StoreRecord::Accept(entry(s as u64, b, v)))
            .collect(),
    )];
    for to in 2..=5 {
        expected.push(send(
            1,
            to,
            Body::Accept {
                ballot: b,
                first: Slot(0),
                values: values.clone(),
                commit: Slot(0),
            },
        ));
    }
    assert_eq!(takeover(Faults::default()), expected);
}

// Planted bug (b) really ignores the reported values.
#[test]
fn planted_bug_b_ignores_reported_values() {
    let actions = takeover(Faults {
        ignore_highest_ballot_value: true,
        ..Faults::default()
    });
    let Some(Action::Persist { records, .. }) = actions.first() else {
        panic!("no persist: {actions:?}")
    };
    assert_eq!(records.len(), 4);
    assert!(records
        .iter()
        .all(|r| matches!(r, StoreRecord::Accept(e) if e.value.is_noop())));
}

// Pipelining (DESIGN.md "Multi-Paxos layer"): up to window_slots_max slots in flight; commands
// that queue while the window is full form the next batch; the leader's own accept is persisted
// in parallel with the Accepts and its vote counts only once durable; the commit point rides on
// the next Accept.
#[test]
fn pipelined_window_fills_then_queued_commands_form_one_batch() {
    let mut cfg = config(1, 3);
    cfg.window_slots_max = 2;
    cfg.batch_commands_max = 10;
    let mut r = Replica::new(cfg, DurableState::default()).expect("config");
    let b = elect(&mut r, 1, 3);

    r.propose(cmd(1)).expect("leader");
    let v1 = batch(&[1]);
    assert_eq!(
        r.take_actions(),
        vec![
            persist(2, vec![StoreRecord::Accept(entry(0, b, &v1))]),
            send(
                1,
                2,
                Body::Accept {
                    ballot: b,
                    first: Slot(0),
                    values: vec![v1.clone()],
                    commit: Slot(0)
                }
            ),
            send(
                1,
                3,
                Body::Accept {
                    ballot: b,
                    first: Slot(0),
                    values: vec![v1.clone()],
                    commit: Slot(0)
                }
            ),
        ]
    );
    r.propose(cmd(2)).expect("leader");
    let v2 = batch(&[2]);
    assert_eq!(
        r.take_actions(),
        vec![
            persist(3, vec![StoreRecord::Accept(entry(1, b, &v2))]),
            send(
                1,
                2,
                Body::Accept {
                    ballot: b,
                    first: Slot(1),
                    values: vec![v2.clone()],
                    commit: Slot(0)
                }
            ),
            send(
                1,
                3,
                Body::Accept {
                    ballot: b,
                    first: Slot(1),
                    values: vec![v2],
                    commit: Slot(0)
                }
            ),
        ]
    );
    for seq in 3..=5 {
        r.propose(cmd(seq)).expect("leader");
    }
    assert_eq!(r.take_actions(), vec![], "window full: commands queue");
    assert_eq!((r.in_flight_slots(), r.queued_commands()), (2, 3));

    // One follower's vote is not a majority of 3 while our own accept is not durable.
    r.step(msg(
        2,
        1,
        Body::Accepted {
            ballot: b,
            first: Slot(0),
            end: Slot(1),
        },
    ));
    assert_eq!(r.take_actions(), vec![]);
    assert_eq!(r.chosen(), Slot(0));

    r.persisted(PersistToken(2));
    assert_eq!(r.chosen(), Slot(1));
    let v345 = batch(&[3, 4, 5]);
    assert_eq!(
        r.take_actions(),
        vec![
            persist(
                3 + 1,
                vec![
                    StoreRecord::Accept(entry(2, b, &v345)),
                    StoreRecord::Chosen { up_to: Slot(1) }
                ]
            ),
            send(
                1,
                2,
                Body::Accept {
                    ballot: b,
                    first: Slot(2),
                    values: vec![v345.clone()],
                    commit: Slot(1)
                }
            ),
            send(
                1,
                3,
                Body::Accept {
                    ballot: b,
                    first: Slot(2),
                    values: vec![v345],
                    commit: Slot(1)
                }
            ),
            Action::Apply {
                slot: Slot(0),
                value: v1
            },
        ]
    );
}

// Duplicate votes count once: in a 5-member cluster the same follower's Accepted twice plus
// our own vote is 2 < 3 (a majority of distinct acceptors is required).
#[test]
fn duplicate_accepted_counts_once() {
    let mut r = replica(1, 5);
    let b = elect(&mut r, 1, 5);
    r.propose(cmd(1)).expect("leader");
    let _ = r.take_actions();
    r.persisted(PersistToken(2));
    let accepted = Body::Accepted {
        ballot: b,
        first: Slot(0),
        end: Slot(1),
    };
    r.step(msg(2, 1, accepted.clone()));
    r.step(msg(2, 1, accepted.clone()));
    assert_eq!(r.chosen(), Slot(0));
    // Stale: an Accepted for another ballot is ignored.
    r.step(msg(
        3,
        1,
        Body::Accepted {
            ballot: Ballot::new(0, n(3)),
            first: Slot(0),
            end: Slot(1),
        },
    ));
    assert_eq!(r.chosen(), Slot(0));
    r.step(msg(3, 1, accepted));
    assert_eq!(r.chosen(), Slot(1));
}

// An acceptor must durably record a promise before replying to Prepare (DESIGN.md "Paxos safety
// constraints"); a duplicate Prepare is answered again; a lower one is rejected.
#[test]
fn promise_is_sent_only_after_persisted_and_duplicates_are_answered() {
    let mut r = replica(2, 3);
    let b = Ballot::new(1, n(1));
    r.step(msg(
        1,
        2,
        Body::Prepare {
            ballot: b,
            from: Slot(0),
        },
    ));
    assert_eq!(
        r.take_actions(),
        vec![persist(1, vec![StoreRecord::Promise(b)])]
    );
    r.persisted(PersistToken(1));
    let promise = Body::Promise {
        ballot: b,
        from: Slot(0),
        chosen: Slot(0),
        log_start: Slot(0),
        entries: vec![],
    };
    assert_eq!(r.take_actions(), vec![send(2, 1, promise.clone())]);

    r.step(msg(
        1,
        2,
        Body::Prepare {
            ballot: b,
            from: Slot(0),
        },
    ));
    assert_eq!(
        r.take_actions(),
        vec![send(2, 1, promise)],
        "duplicate: answered, nothing persisted"
    );

    let low = Ballot::new(0, n(3));
    r.step(msg(
        3,
        2,
        Body::Prepare {
            ballot: low,
            from: Slot(0),
        },
    ));
    assert_eq!(
        r.take_actions(),
        vec![send(
            2,
            3,
            Body::Reject {
                ballot: low,
                promised: b
            }
        )]
    );
    assert_eq!(r.promised(), b);
}

// Planted bug (a) really replies before the promise is durable.
#[test]
fn planted_bug_a_sends_promise_before_durable() {
    let mut r = replica(2, 3);
    r.set_faults(Faults {
        promise_before_durable: true,
        ..Faults::default()
    });
    let b = Ballot::new(1, n(1));
    r.step(msg(
        1,
        2,
        Body::Prepare {
            ballot: b,
            from: Slot(0),
        },
    ));
    let promise = Body::Promise {
        ballot: b,
        from: Slot(0),
        chosen: Slot(0),
        log_start: Slot(0),
        entries: vec![],
    };
    assert_eq!(
        r.take_actions(),
        vec![
            persist(1, vec![StoreRecord::Promise(b)]),
            send(2, 1, promise)
        ]
    );
}

// Paxos Made Simple §2.2: an acceptor must not accept a ballot below its promise; the stale
// Accept is answered with a Reject and changes nothing. Accepted is sent only once durable.
#[test]
fn stale_accept_is_rejected_and_accepted_waits_for_persist() {
    let mut r = replica(2, 3);
    let (low, b) = (Ballot::new(1, n(3)), Ballot::new(2, n(1)));
    r.step(msg(
        1,
        2,
        Body::Prepare {
            ballot: b,
            from: Slot(0),
        },
    ));
    r.persisted(PersistToken(1)); // not emitted yet: ignored
    assert_eq!(
        r.take_actions(),
        vec![persist(1, vec![StoreRecord::Promise(b)])]
    );
    r.persisted(PersistToken(1));
    let _ = r.take_actions();

    let v = batch(&[9]);
    r.step(msg(
        3,
        2,
        Body::Accept {
            ballot: low,
            first: Slot(0),
            values: vec![v.clone()],
            commit: Slot(0),
        },
    ));
    assert_eq!(
        r.take_actions(),
        vec![send(
            2,
            3,
            Body::Reject {
                ballot: low,
                promised: b
            }
        )]
    );
    assert_eq!(r.accepted(Slot(0)), None);
    assert_eq!(r.promised(), b);

    r.step(msg(
        1,
        2,
        Body::Accept {
            ballot: b,
            first: Slot(0),
            values: vec![v.clone()],
            commit: Slot(0),
        },
    ));
    assert_eq!(
        r.take_actions(),
        vec![persist(2, vec![StoreRecord::Accept(entry(0, b, &v))])]
    );
    r.persisted(PersistToken(2));
    assert_eq!(
        r.take_actions(),
        vec![send(
            2,
            1,
            Body::Accepted {
                ballot: b,
                first: Slot(0),
                end: Slot(1)
            }
        )]
    );
}

// Planted bug (c) really accepts a ballot below the promise.
#[test]
fn planted_bug_c_accepts_lower_ballot() {
    let mut r = replica(2, 3);
    r.set_faults(Faults {
        accept_lower_ballot: true,
        ..Faults::default()
    });
    let (low, b) = (Ballot::new(1, n(3)), Ballot::new(2, n(1)));
    r.step(msg(
        1,
        2,
        Body::Prepare {
            ballot: b,
            from: Slot(0),
        },
    ));
    let _ = r.take_actions();
    r.persisted(PersistToken(1));
    let _ = r.take_actions();
    let v = batch(&[9]);
    r.step(msg(
        3,
        2,
        Body::Accept {
            ballot: low,
            first: Slot(0),
            values: vec![v.clone()],
            commit: Slot(0),
        },
    ));
    assert_eq!(
        r.take_actions(),
        vec![persist(2, vec![StoreRecord::Accept(entry(0, low, &v))])]
    );
    r.persisted(PersistToken(2));
    assert_eq!(
        r.take_actions(),
        vec![send(
            2,
            3,
            Body::Accepted {
                ballot: low,
                first: Slot(0),
                end: Slot(1)
            }
        )]
    );
}

// DESIGN.md: an acceptor never discards an accepted value; a later accept for the same slot at a
// higher ballot supersedes it and leaves the slots above alone. Planted bug (d) truncates them.
#[test]
fn accept_supersedes_one_slot_and_planted_bug_d_truncates_the_suffix() {
    for bug in [false, true] {
        let mut r = replica(2, 3);
        r.set_faults(Faults {
            truncate_suffix_on_conflict: bug,
            ..Faults::default()
        });
        let (b1, b2) = (Ballot::new(1, n(1)), Ballot::new(2, n(3)));
        let vs = vec![batch(&[1]), batch(&[2]), batch(&[3])];
        r.step(msg(
            1,
            2,
            Body::Accept {
                ballot: b1,
                first: Slot(0),
                values: vs.clone(),
                commit: Slot(0),
            },
        ));
        let _ = r.take_actions();
        let v = batch(&[7]);
        r.step(msg(
            3,
            2,
            Body::Accept {
                ballot: b2,
                first: Slot(1),
                values: vec![v.clone()],
                commit: Slot(0),
            },
        ));
        let mut records = vec![StoreRecord::Accept(entry(1, b2, &v))];
        if bug {
            records.insert(0, StoreRecord::TruncateAfter(Slot(1)));
        }
        assert_eq!(r.take_actions(), vec![persist(2, records)]);
        assert_eq!(r.accepted(Slot(1)), Some((b2, &v)));
        let slot2 = r.accepted(Slot(2)).map(|(b, v)| (b, v.clone()));
        assert_eq!(slot2, if bug { None } else { Some((b1, vs[2].clone())) });
    }
}

// Learning (Paxos Made Simple §3): the commit point piggybacked on an Accept or heartbeat makes
// a follower learn and apply the slots it holds at the leader's ballot, in order; a slot held
// at an older ballot is not learned (its value may differ) and is reported as lagging.
#[test]
fn commit_point_piggybacked_on_accept_and_heartbeat() {
    let mut r = replica(2, 3);
    let (b1, b2) = (Ballot::new(1, n(1)), Ballot::new(2, n(3)));
    let (v0, v1, v2) = (batch(&[1]), batch(&[2]), batch(&[3]));
    r.step(msg(
        1,
        2,
        Body::Accept {
            ballot: b1,
            first: Slot(0),
            values: vec![v0.clone(), v1.clone(), v2.clone()],
            commit: Slot(0),
        },
    ));
    let _ = r.take_actions();
    r.persisted(PersistToken(1));
    let _ = r.take_actions();

    r.step(msg(
        1,
        2,
        Body::Heartbeat {
            ballot: b1,
            commit: Slot(2),
            read_round: 0,
        },
    ));
    assert_eq!(
        r.take_actions(),
        vec![
            persist(2, vec![StoreRecord::Chosen { up_to: Slot(2) }]),
            send(
                2,
                1,
                Body::HeartbeatAck {
                    ballot: b1,
                    read_round: 0,
                    commit: Slot(2),
                    chosen: Slot(2)
                }
            ),
            Action::Apply {
                slot: Slot(0),
                value: v0
            },
            Action::Apply {
                slot: Slot(1),
                value: v1
            },
        ]
    );
    // A new leader's commit point covers slot 2, which we hold only at b1.
    r.step(msg(
        3,
        2,
        Body::Heartbeat {
            ballot: b2,
            commit: Slot(3),
            read_round: 0,
        },
    ));
    assert_eq!(
        r.take_actions(),
        vec![send(
            2,
            3,
            Body::HeartbeatAck {
                ballot: b2,
                read_round: 0,
                commit: Slot(3),
                chosen: Slot(2)
            }
        )]
    );
    assert_eq!(r.leader(), Some(n(3)));
}

// Catch-up (DESIGN.md "Multi-Paxos layer"): a follower whose heartbeat answer shows it lacks
// chosen slots gets their values from the leader's log, with the commit point to learn them.
#[test]
fn lagging_follower_is_caught_up_from_the_leaders_log() {
    let mut r = replica(1, 3);
    let b = elect(&mut r, 1, 3);
    for seq in 0..3 {
        r.propose(cmd(seq)).expect("leader");
    }
    let _ = r.take_actions();
    r.persisted(PersistToken(2));
    r.step(msg(
        2,
        1,
        Body::Accepted {
            ballot: b,
            first: Slot(0),
            end: Slot(3),
        },
    ));
    assert_eq!(r.chosen(), Slot(3));
    let _ = r.take_actions();

    r.step(msg(
        3,
        1,
        Body::HeartbeatAck {
            ballot: b,
            read_round: 0,
            commit: Slot(3),
            chosen: Slot(0),
        },
    ));
    let values = vec![batch(&[0]), batch(&[1]), batch(&[2])];
    assert_eq!(
        r.take_actions(),
        vec![send(
            1,
            3,
            Body::Accept {
                ballot: b,
                first: Slot(0),
                values,
                commit: Slot(3)
            }
        )]
    );
    // Slots compacted away are not in the log any more: the follower needs a snapshot.
    r.compact(Slot(2));
    r.step(msg(
        3,
        1,
        Body::HeartbeatAck {
            ballot: b,
            read_round: 0,
            commit: Slot(3),
            chosen: Slot(1),
        },
    ));
    assert_eq!(
        r.take_actions(),
        vec![Action::SnapshotHint {
            to: n(3),
            below: Slot(2)
        }]
    );
}

// Pre-vote / stickiness (Raft thesis §9.6): a replica that heard from a live leader within the
// minimum election timeout refuses pre-votes, and a replica cut off from the others never
// raises its ballot, so it can rejoin without deposing the leader.
#[test]
fn prevote_keeps_a_healthy_leader() {
    let b = Ballot::new(1, n(1));
    let mut follower = replica(2, 3);
    follower.step(msg(
        1,
        2,
        Body::Heartbeat {
            ballot: b,
            commit: Slot(0),
            read_round: 0,
        },
    ));
    let _ = follower.take_actions();
    let pv = Ballot::new(2, n(3));
    follower.step(msg(
        3,
        2,
        Body::PreVote {
            ballot: pv,
            chosen: Slot(0),
        },
    ));
    assert_eq!(
        follower.take_actions(),
        vec![send(
            2,
            3,
            Body::PreVoteReply {
                ballot: pv,
                granted: false,
                promised: Ballot::ZERO
            }
        )]
    );

    // Replica 3, partitioned for a long time: only pre-votes, never a new ballot.
    let mut isolated = replica(3, 3);
    isolated.step(msg(
        1,
        3,
        Body::Heartbeat {
            ballot: b,
            commit: Slot(0),
            read_round: 0,
        },
    ));
    let _ = isolated.take_actions();
    for _ in 0..500 {
        isolated.tick();
        for a in isolated.take_actions() {
            assert!(
                matches!(
                    a,
                    Action::Send(Message {
                        body: Body::PreVote { .. },
                        ..
                    })
                ),
                "{a:?}"
            );
        }
    }
    assert_eq!(isolated.promised(), Ballot::ZERO);
    // Back: the leader's heartbeat is followed, not rejected.
    isolated.step(msg(
        1,
        3,
        Body::Heartbeat {
            ballot: b,
            commit: Slot(0),
            read_round: 0,
        },
    ));
    assert_eq!(
        isolated.take_actions(),
        vec![send(
            3,
            1,
            Body::HeartbeatAck {
                ballot: b,
                read_round: 0,
                commit: Slot(0),
                chosen: Slot(0)
            }
        )]
    );
    assert_eq!(
        (isolated.role(), isolated.leader()),
        (Role::Follower, Some(n(1)))
    );
}

// Read index (Raft thesis §6.4): the read is confirmed by a heartbeat round sent after it was
// requested and answered by a majority, and served once everything proposed before it is
// applied. Only the leader takes reads.
#[test]
fn read_index_waits_for_a_quorum_round_and_the_apply_point() {
    let mut r = replica(1, 3);
    let b = elect(&mut r, 1, 3);
    r.propose(cmd(1)).expect("leader");
    let _ = r.take_actions();
    r.read_index(7).expect("leader");
    let hb = Body::Heartbeat {
        ballot: b,
        commit: Slot(0),
        read_round: 1,
    };
    assert_eq!(
        r.take_actions(),
        vec![send(1, 2, hb.clone()), send(1, 3, hb)]
    );
    // An answer to an older round does not confirm it.
    r.step(msg(
        2,
        1,
        Body::HeartbeatAck {
            ballot: b,
            read_round: 0,
            commit: Slot(0),
            chosen: Slot(0),
        },
    ));
    assert_eq!(r.take_actions(), vec![]);
    r.step(msg(
        2,
        1,
        Body::HeartbeatAck {
            ballot: b,
            read_round: 1,
            commit: Slot(0),
            chosen: Slot(0),
        },
    ));
    assert_eq!(
        r.take_actions(),
        vec![],
        "slot 0 was proposed before the read and is not applied"
    );
    r.persisted(PersistToken(2));
    r.step(msg(
        2,
        1,
        Body::Accepted {
            ballot: b,
            first: Slot(0),
            end: Slot(1),
        },
    ));
    let actions = r.take_actions();
    assert_eq!(actions.last(), Some(&Action::ReadReady { ctx: 7 }));
    assert!(matches!(
        actions[actions.len() - 2],
        Action::Apply { slot: Slot(0), .. }
    ));

    let mut f = replica(2, 3);
    f.step(msg(
        1,
        2,
        Body::Heartbeat {
            ballot: b,
            commit: Slot(0),
            read_round: 0,
        },
    ));
    assert_eq!(f.read_index(1), Err(NotLeader { leader: Some(n(1)) }));
    assert_eq!(f.propose(cmd(1)), Err(NotLeader { leader: Some(n(1)) }));
}

// Losing leadership aborts pending reads: a Reject carrying a higher promise deposes us.
#[test]
fn reject_with_higher_promise_steps_down_and_aborts_reads() {
    let mut r = replica(1, 3);
    let b = elect(&mut r, 1, 3);
    r.read_index(5).expect("leader");
    let _ = r.take_actions();
    let higher = Ballot::new(9, n(3));
    r.step(msg(
        2,
        1,
        Body::Reject {
            ballot: b,
            promised: higher,
        },
    ));
    assert_eq!(r.role(), Role::Follower);
    assert_eq!(
        r.take_actions(),
        vec![Action::ReadAborted {
            ctx: 5,
            leader: None
        }]
    );
    // The next ballot goes above everything seen.
    let pv = tick_until_prevote(&mut r);
    assert_eq!(pv, Ballot::new(10, n(1)));
}

// DESIGN.md "Paxos safety constraints": on recovery promised := max(promised, highest accepted
// ballot); chosen slots recovered are applied again from the snapshot point.
#[test]
fn recovery_raises_promise_to_highest_accepted_and_reapplies() {
    let v = batch(&[1]);
    let state = DurableState {
        promised: Ballot::new(1, n(1)),
        accepted: vec![
            entry(0, Ballot::new(3, n(2)), &v),
            entry(1, Ballot::new(2, n(2)), &v),
        ],
        chosen: Slot(5), // claims more than recovered: clamped to the entries held
        snapshot: Slot(0),
    };
    let mut r = Replica::new(config(2, 3), state).expect("config");
    assert_eq!(r.promised(), Ballot::new(3, n(2)));
    assert_eq!(r.chosen(), Slot(2));
    assert_eq!(
        r.take_actions(),
        vec![
            Action::Apply {
                slot: Slot(0),
                value: v.clone()
            },
            Action::Apply {
                slot: Slot(1),
                value: v
            }
        ]
    );
}

// Bad input is ignored, never a panic: wrong addressee, non-member sender, a ballot that does
// not belong to its sender, persist tokens never issued.
#[test]
fn malformed_and_misaddressed_messages_are_ignored() {
    let mut r = replica(2, 3);
    let b = Ballot::new(1, n(1));
    r.step(msg(
        1,
        3,
        Body::Prepare {
            ballot: b,
            from: Slot(0),
        },
    ));
    r.step(msg(
        9,
        2,
        Body::Prepare {
            ballot: Ballot::new(1, n(9)),
            from: Slot(0),
        },
    ));
    r.step(msg(
        3,
        2,
        Body::Prepare {
            ballot: b,
            from: Slot(0),
        },
    ));
    r.step(msg(
        2,
        2,
        Body::Prepare {
            ballot: Ballot::new(1, n(2)),
            from: Slot(0),
        },
    ));
    r.step(msg(
        3,
        2,
        Body::Accept {
            ballot: b,
            first: Slot(u64::MAX),
            values: vec![Value::noop()],
            commit: Slot(u64::MAX),
        },
    ));
    r.step(msg(
        1,
        2,
        Body::Accept {
            ballot: b,
            first: Slot(u64::MAX - 1),
            values: vec![Value::noop(); 3],
            commit: Slot(u64::MAX),
        },
    ));
    r.persisted(PersistToken(1000));
    let actions = r.take_actions();
    assert_eq!(r.accepted(Slot(u64::MAX - 1)), None);
    // Only the well-formed but too-far-ahead Accept was acted on: it stored nothing, but its
    // ballot raised the promise, which is persisted before any reply could depend on it.
    assert_eq!(actions, vec![persist(1, vec![StoreRecord::Promise(b)])]);
    assert_eq!(
        r.promised(),
        b,
        "the valid-ballot Accept still raised the promise"
    );
}

// Liveness under message loss (Paxos Made Simple §3: messages may be lost; the leader must
// retry): every heartbeat interval the leader resends in-flight slots to the peers that have
// not voted for them, and a leader that hears from no majority for an election timeout steps
// down (check-quorum) so clients go elsewhere.
#[test]
fn unacknowledged_accepts_are_resent_and_an_isolated_leader_steps_down() {
    let mut r = replica(1, 3);
    let b = elect(&mut r, 1, 3);
    r.propose(cmd(1)).expect("leader");
    let _ = r.take_actions();
    let v = Value::new(vec![cmd(1)]);
    let accept = Body::Accept {
        ballot: b,
        first: Slot(0),
        values: vec![v],
        commit: Slot(0),
    };
    let hb = Body::Heartbeat {
        ballot: b,
        commit: Slot(0),
        read_round: 0,
    };
    r.tick();
    assert_eq!(r.take_actions(), vec![]);
    r.tick();
    assert_eq!(
        r.take_actions(),
        vec![
            send(1, 2, hb.clone()),
            send(1, 3, hb.clone()),
            send(1, 2, accept.clone()),
            send(1, 3, accept.clone()),
        ]
    );
    r.step(msg(
        2,
        1,
        Body::Accepted {
            ballot: b,
            first: Slot(0),
            end: Slot(1),
        },
    ));
    r.tick();
    r.tick();
    assert_eq!(
        r.take_actions(),
        vec![send(1, 2, hb.clone()), send(1, 3, hb), send(1, 3, accept)],
        "only the peer that has not voted gets the slot again"
    );
    // Peer 2's vote came in this quorum-check period, so the leader survives the first check,
    // then hears from nobody for a whole period.
    for _ in 0..40 {
        r.tick();
    }
    assert_eq!(r.role(), Role::Follower);
    assert_eq!(r.propose(cmd(2)), Err(NotLeader { leader: None }));
}

// An Accept for slots this acceptor compacted away (chosen, applied and covered by its
// snapshot) is acknowledged without storing anything: the leader's ballot passed the promise
// check, so by Paxos Made Simple §2.2 (P2c) it proposes the chosen value, and without the ack a
// leader that had not learned those slots chosen would wait for them forever. Found by the
// cluster simulation with compaction on.
#[test]
fn an_accept_for_compacted_slots_is_acknowledged_without_storing() {
    let mut r = replica(2, 3);
    let b1 = Ballot::new(1, n(1));
    let (v0, v1) = (batch(&[1]), batch(&[2]));
    r.step(msg(
        1,
        2,
        Body::Accept {
            ballot: b1,
            first: Slot(0),
            values: vec![v0.clone(), v1.clone()],
            commit: Slot(2),
        },
    ));
    let _ = r.take_actions();
    r.persisted(PersistToken(1));
    let _ = r.take_actions();
    assert_eq!(r.applied(), Slot(2));
    r.compact(Slot(2));
    assert_eq!(r.log_start(), Slot(2));
    // A new leader at a higher ballot re-proposes slots 0 and 1 (with their chosen values).
    let b2 = Ballot::new(2, n(3));
    r.step(msg(
        3,
        2,
        Body::Accept {
            ballot: b2,
            first: Slot(0),
            values: vec![v0, v1],
            commit: Slot(0),
        },
    ));
    let actions = r.take_actions();
    // The raised promise is persisted; the ack waits for it, then covers both slots.
    assert_eq!(
        actions,
        vec![persist(2, vec![StoreRecord::Promise(b2)])],
        "{actions:?}"
    );
    r.persisted(PersistToken(2));
    assert_eq!(
        r.take_actions(),
        vec![send(
            2,
            3,
            Body::Accepted {
                ballot: b2,
                first: Slot(0),
                end: Slot(2)
            }
        )]
    );
}
