//! A closed-loop load generator for a cluster serving the [key-value machine](super::kv):
//! `clients` logical clients, each with its own session and one put outstanding at a time
//! (issue the next when the last is applied), multiplexed over a few pipelined connections to
//! the leader. Used by `paxwal bench --cluster` and `paxwal demo`.
//!
//! Multiplexing is what a real client library does (one connection per process, many
//! requests in flight); with one blocking connection per logical client, the benchmark would
//! measure the kernel's thread wake-ups (two per request on 2 cores) instead of the cluster.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::ClientError;
use super::kv::KvOp;
use super::metrics::Histogram;
use super::net::{dial_handshake, read_frame, write_frame, Auth, ConnKind};
use super::proto::{Request, Response};

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The replicas' client addresses.
    pub cluster: Vec<SocketAddr>,
    /// Logical clients (sessions), each with one put outstanding.
    pub clients: usize,
    /// Connections they share (at most `clients`).
    pub connections: usize,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Run this long first without counting (connections made, leader found, caches warm).
    pub warmup: Duration,
    /// How long to measure, after the warm-up.
    pub duration: Duration,
}

/// What a run measured.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LoadResult {
    /// Logical clients.
    pub clients: usize,
    /// Puts acknowledged (applied on the leader).
    pub committed: u64,
    /// Acknowledged puts per second.
    pub commands_per_sec: f64,
    /// Request sent → answer received, median (µs).
    pub p50_us: u64,
    /// 99th percentile (µs).
    pub p99_us: u64,
    /// Answers other than success (busy, not leader) that were retried.
    pub retries: u64,
}

/// Acknowledged puts: `(key, value)`.
pub type Acked = Vec<(Vec<u8>, Vec<u8>)>;

/// Runs the load: the figures count what completed in the measured window; every
/// acknowledged put (warm-up included) is returned as `(key, value)` when `record` is set
/// (for checking them afterwards).
pub fn run(
    cfg: &LoadConfig,
    auth: &Auth,
    record: bool,
) -> Result<(LoadResult, Acked), ClientError> {
    let conns = cfg.connections.clamp(1, cfg.clients.max(1));
    let committed = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let hist = Arc::new(Histogram::default());
    let started = Instant::now() + cfg.warmup;
    let deadline = started + cfg.duration;
    let mut handles = Vec::new();
    for c in 0..conns {
        // Logical clients c, c + conns, c + 2·conns, …
        let ids: Vec<usize> = (c..cfg.clients).step_by(conns).collect();
        let (cfg, auth) = (cfg.clone(), auth.clone());
        let (committed, retries, stop, hist) = (
            Arc::clone(&committed),
            Arc::clone(&retries),
            Arc::clone(&stop),
            Arc::clone(&hist),
        );
        handles.push(std::thread::spawn(move || {
            connection_loop(
                &cfg, &auth, &ids, started, deadline, record, &committed, &retries, &stop, &hist,
            )
        }));
    }
    let mut acked = Vec::new();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(mut a)) => acked.append(&mut a),
            Ok(Err(e)) => {
                stop.store(true, Ordering::Release);
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(ClientError::Protocol("a load thread panicked".into()));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let secs = deadline
        .min(Instant::now())
        .saturating_duration_since(started)
        .as_secs_f64()
        .max(1e-9);
    let n = committed.load(Ordering::Relaxed);
    Ok((
        LoadResult {
            clients: cfg.clients,
            committed: n,
            commands_per_sec: n as f64 / secs,
            p50_us: hist.quantile_us(0.5),
            p99_us: hist.quantile_us(0.99),
            retries: retries.load(Ordering::Relaxed),
        },
        acked,
    ))
}

struct Outstanding {
    client: usize,
    seq: u64,
    sent: Instant,
}

fn connect(addr: SocketAddr, auth: &Auth) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    dial_handshake(&mut s, auth, ConnKind::Client, None)
        .map_err(|e| format!("handshake with {addr}: {e}"))?;
    Ok(s)
}

fn key_of(client: usize, seq: u64) -> Vec<u8> {
    format!("load-{client}-{seq}").into_bytes()
}

#[allow(clippy::too_many_arguments)]
fn connection_loop(
    cfg: &LoadConfig,
    auth: &Auth,
    ids: &[usize],
    measure_from: Instant,
    deadline: Instant,
    record: bool,
    committed: &AtomicU64,
    retries: &AtomicU64,
    stop: &AtomicBool,
    hist: &Histogram,
) -> Result<Acked, ClientError> {
    let value = vec![b'v'; cfg.value_bytes];
    // Session ids: random high bits per run, the logical client in the low bits.
    let base = {
        let mut b = [0u8; 8];
        let _ = getrandom::getrandom(&mut b);
        (u64::from_le_bytes(b) >> 20) << 20
    };
    let mut seqs: Vec<u64> = vec![0; ids.len()];
    let mut acked = Vec::new();
    let mut target = 0usize;
    let mut leader: Option<SocketAddr> = None;
    'reconnect: while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
        let addr = leader.unwrap_or(cfg.cluster[target % cfg.cluster.len()]);
        let stream = match connect(addr, auth) {
            Ok(s) => s,
            Err(_) => {
                target += 1;
                leader = None;
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let Ok(r) = stream.try_clone() else {
            continue;
        };
        let mut reader = BufReader::with_capacity(256 << 10, r);
        let mut writer = BufWriter::with_capacity(256 << 10, stream);
        let mut outstanding: HashMap<u64, Outstanding> = HashMap::new();
        let mut next_id = 1u64;
        let send = |w: &mut BufWriter<TcpStream>,
                    out: &mut HashMap<u64, Outstanding>,
                    next_id: &mut u64,
                    slot: usize,
                    seq: u64|
         -> std::io::Result<()> {
            let client = ids[slot];
            let req = Request::Write {
                client: base | client as u64,
                seq,
                payload: KvOp::Put {
                    key: key_of(client, seq),
                    value: value.clone(),
                }
                .encode(),
            };
            let id = *next_id;
            *next_id += 1;
            write_frame(w, &req.encode(id))?;
            out.insert(
                id,
                Outstanding {
                    client: slot,
                    seq,
                    sent: Instant::now(),
                },
            );
            Ok(())
        };
        // Every logical client's current command (a retry keeps its seq).
        for (slot, seq) in seqs.iter_mut().enumerate() {
            *seq = (*seq).max(1);
            if send(&mut writer, &mut outstanding, &mut next_id, slot, *seq).is_err() {
                continue 'reconnect;
            }
        }
        if writer.flush().is_err() {
            continue;
        }
        while !outstanding.is_empty() {
            let frame = match read_frame(&mut reader, 1 << 20) {
                Ok(f) => f,
                Err(_) => {
                    leader = None;
                    target += 1;
                    continue 'reconnect;
                }
            };
            let Some((id, resp)) = Response::decode(&frame) else {
                return Err(ClientError::Protocol("undecodable response".into()));
            };
            let Some(o) = outstanding.remove(&id) else {
                continue;
            };
            let running = Instant::now() < deadline && !stop.load(Ordering::Acquire);
            match resp {
                Response::Done(_) => {
                    let now = Instant::now();
                    if now >= measure_from && now <= deadline {
                        hist.record(now - o.sent);
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                    if record {
                        acked.push((key_of(ids[o.client], o.seq), value.clone()));
                    }
                    seqs[o.client] = o.seq + 1;
                    if running
                        && send(
                            &mut writer,
                            &mut outstanding,
                            &mut next_id,
                            o.client,
                            o.seq + 1,
                        )
                        .is_err()
                    {
                        continue 'reconnect;
                    }
                }
                Response::Busy => {
                    retries.fetch_add(1, Ordering::Relaxed);
                    if running
                        && send(&mut writer, &mut outstanding, &mut next_id, o.client, o.seq)
                            .is_err()
                    {
                        continue 'reconnect;
                    }
                }
                Response::NotLeader(hint) => {
                    retries.fetch_add(1, Ordering::Relaxed);
                    leader = hint.and_then(|h| h.parse().ok()).filter(|a| *a != addr);
                    if leader.is_none() {
                        target += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    continue 'reconnect;
                }
                Response::Failed(why) => return Err(ClientError::Failed(why)),
                Response::Status(_) => {
                    return Err(ClientError::Protocol("unexpected status answer".into()))
                }
            }
            // Flush once everything already received is handled (one write for many).
            if reader.buffer().is_empty() && writer.flush().is_err() {
                continue 'reconnect;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    Ok(acked)
}
