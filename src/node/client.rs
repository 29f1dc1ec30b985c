//! A client of a paxwal cluster serving the [key-value machine](super::kv): finds the leader
//! itself, follows `NotLeader` answers, and retries through a leader change with the same
//! `(client, seq)`, so a write applies exactly once.

use std::io::{BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::kv::{KvOp, KvOutput};
use super::net::{dial_handshake, read_frame, write_frame, Auth, AuthError, ConnKind};
use super::proto::{Request, Response};

/// Most bytes in one response frame the client accepts.
const RESPONSE_BYTES_MAX: usize = 8 << 20;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The deadline passed while the outcome was unknown: a write may or may not have been
    /// applied (retrying it with the same client is safe: it applies at most once).
    #[error("timed out after {0:?} (the outcome is unknown)")]
    Timeout(Duration),
    /// No replica could be reached or none leads.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// The cluster kept answering "busy" until the deadline.
    #[error("cluster busy")]
    Busy,
    /// The handshake was refused (wrong or missing secret).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The node refused the request.
    #[error("refused: {0}")]
    Failed(String),
    /// Asked an in-process node that does not lead; the leader's client address if known.
    #[error("not the leader (leader: {})", .0.as_deref().unwrap_or("unknown"))]
    NotLeader(Option<String>),
    /// The node answered something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// A connection-keeping client. Not `Sync`: one per thread.
pub struct KvClient {
    cluster: Vec<SocketAddr>,
    auth: Auth,
    timeout: Duration,
    client_id: u64,
    seq: u64,
    next_id: u64,
    /// Where to try first.
    leader: Option<SocketAddr>,
    /// Round-robin position in `cluster`.
    next: usize,
    conn: Option<Conn>,
}

struct Conn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return t ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(b)
}

enum Attempt {
    Done(Response),
    /// Try again (elsewhere, or after a pause).
    Retry(String),
    /// The handshake proved the secrets differ: final.
    AuthFailed(String),
}

impl KvClient {
    /// A client of the replicas serving clients at `cluster` (connects lazily). Its client id
    /// is random.
    pub fn new(cluster: Vec<SocketAddr>, auth: Auth) -> KvClient {
        KvClient {
            cluster,
            auth,
            timeout: Duration::from_secs(10),
            client_id: random_u64() >> 1,
            seq: 0,
            next_id: 1,
            leader: None,
            next: 0,
            conn: None,
        }
    }

    /// Each operation gives up after `per_op` (default 10 s).
    pub fn with_timeout(mut self, per_op: Duration) -> KvClient {
        self.timeout = per_op;
        self
    }

    /// This client's session id.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// Sets `key` to `value`; returns once applied.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        match self.write(KvOp::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        })? {
            KvOutput::Ok => Ok(()),
            other => Err(ClientError::Protocol(format!("put answered {other:?}"))),
        }
    }

    /// Removes `key`; true if it existed.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, ClientError> {
        match self.write(KvOp::Delete { key: key.to_vec() })? {
            KvOutput::Deleted(d) => Ok(d),
            other => Err(ClientError::Protocol(format!("delete answered {other:?}"))),
        }
    }

    /// Sets `key` to `new` if it holds `expected` (`None`: if absent); true if swapped.
    pub fn cas(
        &mut self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, ClientError> {
        match self.write(KvOp::Cas {
            key: key.to_vec(),
            expected: expected.map(<[u8]>::to_vec),
            new: new.to_vec(),
        })? {
            KvOutput::Swapped(s) => Ok(s),
            other => Err(ClientError::Protocol(format!("cas answered {other:?}"))),
        }
    }

    /// A linearizable read of `key` (through the leader's read-index round).
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        let query = KvOp::Get { key: key.to_vec() }.encode();
        let resp = self.call(&Request::Read { query }, None)?;
        Self::value_of(resp)
    }

    /// Reads `key` from the replica at `addr` as it is now, without a read-index round
    /// (possibly stale): for checking what one replica holds.
    pub fn get_local(
        &mut self,
        addr: SocketAddr,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let query = KvOp::Get { key: key.to_vec() }.encode();
        let resp = self.call(&Request::LocalRead { query }, Some(addr))?;
        Self::value_of(resp)
    }

    /// The status text of the replica at `addr` (`key value` lines).
    pub fn status(&mut self, addr: SocketAddr) -> Result<String, ClientError> {
        match self.call(&Request::Status, Some(addr))? {
            Response::Status(s) => Ok(s),
            other => Err(ClientError::Protocol(format!("status answered {other:?}"))),
        }
    }

    fn value_of(resp: Response) -> Result<Option<Vec<u8>>, ClientError> {
        let Response::Done(out) = resp else {
            return Err(ClientError::Protocol(format!("get answered {resp:?}")));
        };
        match KvOutput::decode(&out) {
            Some(KvOutput::Value(v)) => Ok(v),
            other => Err(ClientError::Protocol(format!("get answered {other:?}"))),
        }
    }

    fn write(&mut self, op: KvOp) -> Result<KvOutput, ClientError> {
        self.seq += 1;
        let req = Request::Write {
            client: self.client_id,
            seq: self.seq,
            payload: op.encode(),
        };
        match self.call(&req, None)? {
            Response::Done(out) => KvOutput::decode(&out)
                .ok_or_else(|| ClientError::Protocol("undecodable output".into())),
            other => Err(ClientError::Protocol(format!("write answered {other:?}"))),
        }
    }

    /// Sends `req` until a final answer or the deadline. `only`: talk to that replica only.
    fn call(&mut self, req: &Request, only: Option<SocketAddr>) -> Result<Response, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut last = String::from("no replica answered");
        let mut busy;
        let mut sent_somewhere = false;
        let mut pause = Duration::from_millis(10);
        loop {
            let target = match only {
                Some(a) => a,
                None => self.pick(),
            };
            match self.attempt(target, req, deadline, &mut sent_somewhere) {
                Ok(Attempt::Done(Response::NotLeader(hint))) if only.is_none() => {
                    busy = false;
                    last = format!("{target} does not lead");
                    self.leader = hint.and_then(|h| h.parse().ok());
                    if self.leader.is_none() || self.leader == Some(target) {
                        self.leader = None;
                        self.advance();
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(200));
                    }
                }
                Ok(Attempt::Done(Response::Busy)) => {
                    busy = true;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Ok(Attempt::Done(Response::Failed(why))) => return Err(ClientError::Failed(why)),
                Ok(Attempt::AuthFailed(why)) => return Err(ClientError::Auth(why)),
                Ok(Attempt::Done(r)) => return Ok(r),
                Ok(Attempt::Retry(why)) => {
                    busy = false;
                    last = why;
                    self.conn = None;
                    if only.is_none() {
                        self.leader = None;
                        self.advance();
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Err(if busy {
                    ClientError::Busy
                } else if sent_somewhere && matches!(req, Request::Write { .. }) {
                    ClientError::Timeout(self.timeout)
                } else {
                    ClientError::Unavailable(last)
                });
            }
        }
    }

    fn pick(&self) -> SocketAddr {
        self.leader
            .unwrap_or_else(|| self.cluster[self.next % self.cluster.len().max(1)])
    }

    fn advance(&mut self) {
        self.next = (self.next + 1) % self.cluster.len().max(1);
    }

    fn connect(&mut self, addr: SocketAddr, deadline: Instant) -> Result<(), Attempt> {
        if self.conn.as_ref().is_some_and(|c| c.addr == addr) {
            return Ok(());
        }
        self.conn = None;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(10), Duration::from_secs(2));
        let mut s = TcpStream::connect_timeout(&addr, left)
            .map_err(|e| Attempt::Retry(format!("connect {addr}: {e}")))?;
        let _ = s.set_nodelay(true);
        dial_handshake(&mut s, &self.auth, ConnKind::Client, None).map_err(|e| {
            let why = format!("handshake with {addr}: {e}");
            match e {
                // The secrets (or modes) differ: another replica will not say otherwise.
                AuthError::BadListenerProof
                | AuthError::Refused(_)
                | AuthError::ModeMismatch { .. } => Attempt::AuthFailed(why),
                _ => Attempt::Retry(why),
            }
        })?;
        let r = s
            .try_clone()
            .map_err(|e| Attempt::Retry(format!("{addr}: {e}")))?;
        self.conn = Some(Conn {
            addr,
            reader: BufReader::new(r),
            writer: BufWriter::new(s),
        });
        Ok(())
    }

    fn attempt(
        &mut self,
        addr: SocketAddr,
        req: &Request,
        deadline: Instant,
        sent: &mut bool,
    ) -> Result<Attempt, ClientError> {
        match self.connect(addr, deadline) {
            Ok(()) => {}
            Err(Attempt::AuthFailed(why)) => return Err(ClientError::Auth(why)),
            Err(a) => return Ok(a),
        }
        let id = self.next_id;
        self.next_id += 1;
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Attempt::Retry("no connection".into()));
        };
        let bytes = req.encode(id);
        if write_frame(&mut conn.writer, &bytes)
            .and_then(|()| conn.writer.flush())
            .is_err()
        {
            return Ok(Attempt::Retry(format!("{addr}: connection lost")));
        }
        *sent = true;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Attempt::Retry(format!("{addr}: no answer in time")));
            }
            let _ = conn.reader.get_ref().set_read_timeout(Some(left));
            let frame = match read_frame(&mut conn.reader, RESPONSE_BYTES_MAX) {
                Ok(f) => f,
                Err(e) => return Ok(Attempt::Retry(format!("{addr}: {e}"))),
            };
            match Response::decode(&frame) {
                Some((rid, resp)) if rid == id => return Ok(Attempt::Done(resp)),
                Some((0, Response::Failed(why))) => return Err(ClientError::Failed(why)),
                Some(_) => continue, // an answer to an earlier, abandoned request
                None => {
                    return Err(ClientError::Protocol(format!(
                        "{addr} sent an undecodable response"
                    )))
                }
            }
        }
    }
}
