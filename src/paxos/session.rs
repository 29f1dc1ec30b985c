//! Client sessions: exactly-once application of commands across retries.
//!
//! A client retries a command with the same `(client, seq)` until it gets an answer, so the
//! same command may be chosen in several slots. The state machine layer keeps a [`Sessions`]
//! table in its replicated state and consults it for every command it applies: the first
//! occurrence is executed and its result remembered; later ones return the remembered result
//! without executing again.
//!
//! Determinism: the table changes only as commands are applied, in slot order, and holds no
//! clock or randomness, so every replica that applied the same slots holds the same table.
//!
//! Rule for clients: sequence numbers increase, and a client has at most one command
//! outstanding (a client that pipelines uses one client id per outstanding command stream).
//! Only the latest result per client is kept: an older sequence number is [`SessionCheck::Stale`].

use std::collections::BTreeMap;

use super::config::Faults;
use super::message::Command;

/// What [`Sessions::check`] found for a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionCheck<'a> {
    /// Not applied yet: execute it, then [`Sessions::record`] its result.
    New,
    /// Already applied: this is its result; do not execute again.
    Duplicate(&'a [u8]),
    /// Older than the client's last applied command: the client has moved on; skip it.
    Stale,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Session {
    last_seq: u64,
    result: Vec<u8>,
}

/// The session table: per client, its last applied sequence number and that command's result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sessions {
    clients: BTreeMap<u64, Session>,
    /// Planted bug (h) ([`Faults::sessions_reexecute_retry`]); not part of the snapshot.
    reexecute_retry: bool,
}

impl Sessions {
    /// An empty table.
    pub fn new() -> Sessions {
        Sessions::default()
    }

    /// Test-only planted bugs: only [`Faults::sessions_reexecute_retry`] concerns the table.
    pub fn set_faults(&mut self, faults: Faults) {
        self.reexecute_retry = faults.sessions_reexecute_retry;
    }

    /// Classifies `(client, seq)`.
    pub fn check(&self, client: u64, seq: u64) -> SessionCheck<'_> {
        match self.clients.get(&client) {
            None => SessionCheck::New,
            Some(s) if seq > s.last_seq => SessionCheck::New,
            Some(s) if seq == s.last_seq => SessionCheck::Duplicate(&s.result),
            Some(_) => SessionCheck::Stale,
        }
    }

    /// Records that `(client, seq)` was applied with `result`.
    pub fn record(&mut self, client: u64, seq: u64, result: Vec<u8>) {
        self.clients.insert(
            client,
            Session {
                last_seq: seq,
                result,
            },
        );
    }

    /// Applies `command` at most once: runs `execute` if it is new and records its result.
    /// Returns the command's result (`None` for a stale command).
    pub fn apply(
        &mut self,
        command: &Command,
        execute: impl FnOnce(&Command) -> Vec<u8>,
    ) -> Option<Vec<u8>> {
        match self.check(command.client, command.seq) {
            // Planted bug (h): an odd-numbered retry runs again.
            SessionCheck::Duplicate(_) if self.reexecute_retry && command.seq % 2 == 1 => {
                let result = execute(command);
                self.record(command.client, command.seq, result.clone());
                Some(result)
            }
            SessionCheck::Duplicate(r) => Some(r.to_vec()),
            SessionCheck::Stale => None,
            SessionCheck::New => {
                let result = execute(command);
                self.record(command.client, command.seq, result.clone());
                Some(result)
            }
        }
    }

    /// Appends the table's bytes to `out` (for the application's snapshot):
    /// `u32 count`, then per client `u64 client | u64 last_seq | u32 len | result`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.clients.len() as u32).to_le_bytes());
        for (c, s) in &self.clients {
            out.extend_from_slice(&c.to_le_bytes());
            out.extend_from_slice(&s.last_seq.to_le_bytes());
            out.extend_from_slice(&(s.result.len() as u32).to_le_bytes());
            out.extend_from_slice(&s.result);
        }
    }

    /// Decodes a table from the front of `b`, returning it and the bytes it used; `None` if
    /// malformed (never panics).
    pub fn decode(b: &[u8]) -> Option<(Sessions, usize)> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = b.get(at..at.checked_add(n)?)?;
            at += n;
            Some(s)
        };
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let mut clients = BTreeMap::new();
        for _ in 0..n {
            let client = u64::from_le_bytes(take(8)?.try_into().ok()?);
            let last_seq = u64::from_le_bytes(take(8)?.try_into().ok()?);
            let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
            let result = take(len)?.to_vec();
            clients.insert(client, Session { last_seq, result });
        }
        Some((
            Sessions {
                clients,
                reexecute_retry: false,
            },
            at,
        ))
    }

    /// Number of clients tracked.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True if no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(client: u64, seq: u64) -> Command {
        Command {
            client,
            seq,
            payload: vec![seq as u8],
        }
    }

    // Exactly-once: a retried command chosen in two slots is executed once, and two replicas
    // applying the same slots end with the same table.
    #[test]
    fn retries_execute_once_and_tables_agree() {
        let log = [
            cmd(1, 1),
            cmd(2, 1),
            cmd(1, 1),
            cmd(1, 2),
            cmd(1, 1),
            cmd(2, 1),
        ];
        let mut tables = [Sessions::new(), Sessions::new()];
        for t in &mut tables {
            let mut executed = Vec::new();
            let results: Vec<_> = log
                .iter()
                .map(|c| {
                    t.apply(c, |c| {
                        executed.push((c.client, c.seq));
                        vec![c.seq as u8 * 10]
                    })
                })
                .collect();
            assert_eq!(executed, vec![(1, 1), (2, 1), (1, 2)]);
            assert_eq!(
                results,
                vec![
                    Some(vec![10]),
                    Some(vec![10]),
                    Some(vec![10]),
                    Some(vec![20]),
                    None,
                    Some(vec![10])
                ]
            );
        }
        assert_eq!(tables[0], tables[1]);
        assert_eq!(tables[0].len(), 2);
        assert_eq!(tables[0].check(1, 2), SessionCheck::Duplicate(&[20]));
        assert_eq!(tables[0].check(1, 3), SessionCheck::New);
        // A snapshot of the table decodes to the same table; a cut one does not decode.
        let mut b = Vec::new();
        tables[0].encode(&mut b);
        assert_eq!(Sessions::decode(&b), Some((tables[0].clone(), b.len())));
        for cut in 0..b.len() {
            assert_eq!(Sessions::decode(&b[..cut]), None);
        }
    }
}
