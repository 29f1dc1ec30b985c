//! Client connections: the acceptor, one reader thread per connection, and one responder
//! thread that writes every connection's answers.
//!
//! A reader authenticates its connection ([`accept_handshake`]), then decodes request frames
//! and hands each to the pump (a bounded channel: when it is full the client is answered
//! `Busy` at once — backpressure, never unbounded memory). Answers come back from the pump
//! in batches, one per pump round, to the responder, which writes each connection's answers
//! with one `write` call. One responder instead of a writer thread per connection: with
//! hundreds of connections, per-connection writers each woke (and spun in their channel)
//! once per answer, and those wake-ups cost more CPU than the protocol work (measured with
//! `perf`: 42 % of the CPU in the connection threads at 256 clients, most of it scheduling).

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, TrySendError};

use super::metrics::Metrics;
use super::net::{accept_handshake, encode_frame, Auth, Expect, FrameReader};
use super::proto::{Request, Response};
use super::pump::ReplyTo;
use super::runtime::{Input, Shared};
use crate::types::NodeId;

/// Most bytes in one client request frame.
const CLIENT_FRAME_MAX: usize = 4 << 20;
/// A client that does not read its answers for this long is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the responder thread is told.
pub(crate) enum ToResponder {
    /// A new authenticated connection and the half to write answers to.
    Open(u64, TcpStream),
    /// The connection's reader stopped.
    Close(u64),
    /// Answers: `(connection, request id, response)`.
    Answers(Vec<(u64, u64, Response)>),
}

/// Writes the answers of every connection.
pub(crate) fn responder(rx: &Receiver<ToResponder>) {
    let mut conns: HashMap<u64, TcpStream> = HashMap::new();
    let mut bufs: HashMap<u64, Vec<u8>> = HashMap::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Everything waiting now is written together.
        while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
            match msg {
                ToResponder::Open(c, s) => {
                    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
                    conns.insert(c, s);
                }
                ToResponder::Close(c) => {
                    conns.remove(&c);
                    bufs.remove(&c);
                }
                ToResponder::Answers(answers) => {
                    for (c, id, r) in answers {
                        if conns.contains_key(&c) {
                            encode_frame(&r.encode(id), bufs.entry(c).or_default());
                        }
                    }
                }
            }
        }
        for (c, buf) in bufs.iter_mut() {
            if buf.is_empty() {
                continue;
            }
            if let Some(s) = conns.get_mut(c) {
                if s.write_all(buf).is_err() {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                    conns.remove(c);
                }
            }
            buf.clear();
        }
        bufs.retain(|c, _| conns.contains_key(c));
    }
}

/// Accepts client connections until the node stops.
pub(crate) fn client_acceptor(
    shared: &Arc<Shared>,
    listener: TcpListener,
    auth: Auth,
    me: NodeId,
    max: usize,
    tx: &Sender<Input>,
    resp: &Sender<ToResponder>,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        shared.fail(format!("client listener: {e}"));
        return;
    }
    let next_conn = AtomicU64::new(1);
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, addr)) => {
                conns.retain(|h| !h.is_finished());
                if conns.len() >= max {
                    tracing::warn!("client {addr}: refused, {max} connections already open");
                    continue;
                }
                let (sh, tx, resp, auth) =
                    (Arc::clone(shared), tx.clone(), resp.clone(), auth.clone());
                let conn = next_conn.fetch_add(1, Ordering::Relaxed);
                let spawned = std::thread::Builder::new()
                    .name(format!("paxwal-client-{}", me.0))
                    .spawn(move || serve_client(&sh, stream, addr, &auth, me, conn, &tx, &resp));
                match spawned {
                    Ok(h) => conns.push(h),
                    Err(e) => tracing::warn!("client {addr}: cannot spawn a thread: {e}"),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("accepting a client: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    for h in conns {
        let _ = h.join();
    }
}

#[allow(clippy::too_many_arguments)]
fn serve_client(
    shared: &Shared,
    mut stream: TcpStream,
    addr: SocketAddr,
    auth: &Auth,
    me: NodeId,
    conn: u64,
    tx: &Sender<Input>,
    resp: &Sender<ToResponder>,
) {
    let _ = stream.set_nonblocking(false);
    if let Err(e) = accept_handshake(&mut stream, auth, me, Expect::Clients) {
        tracing::warn!("client {addr}: handshake refused: {e}");
        return;
    }
    let _ = stream.set_nodelay(true);
    // Short read timeouts so the thread notices a shutdown.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    if resp.send(ToResponder::Open(conn, write_half)).is_err() {
        return;
    }
    let answer = |id: u64, r: Response| {
        let _ = resp.send(ToResponder::Answers(vec![(conn, id, r)]));
    };
    let mut reader = std::io::BufReader::new(stream);
    // Keeps a frame's progress across the short read timeouts (a slow client is not cut off
    // mid-frame).
    let mut frames = FrameReader::new(CLIENT_FRAME_MAX);
    while !shared.stop.load(Ordering::Acquire) {
        let frame = match frames.read(&mut reader) {
            Ok(f) => f,
            Err(e) if e.is_timeout() => continue,
            Err(_) => break,
        };
        let Some((id, req)) = Request::decode(&frame) else {
            tracing::warn!("client {addr}: malformed request; closing");
            answer(0, Response::Failed("malformed request".into()));
            break;
        };
        let input = Input::Client {
            id,
            req,
            reply: ReplyTo::Conn(conn),
            at: Instant::now(),
        };
        match tx.try_send(input) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                Metrics::inc(&shared.metrics.busy);
                answer(id, Response::Busy);
            }
            Err(TrySendError::Disconnected(_)) => {
                let why = shared
                    .fatal
                    .lock()
                    .clone()
                    .unwrap_or_else(|| "node is shutting down".into());
                answer(id, Response::Failed(why));
                break;
            }
        }
    }
    let _ = resp.send(ToResponder::Close(conn));
    let _ = reader.get_ref().shutdown(std::net::Shutdown::Both);
}
