//! `paxwal serve`: runs one replica of the key-value service until SIGTERM or SIGINT (a clean
//! shutdown, exit 0) or a fail-stop (exit 1 with the reason).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use paxwal::node::net::{Auth, Secret};
use paxwal::node::{KvMachine, Node, NodeConfig};
use paxwal::{Error, NodeId};

use crate::EXIT_USAGE;

/// `paxwal serve`'s arguments.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// This replica's id (a positive integer, distinct in the cluster).
    #[arg(long)]
    id: u32,
    /// Where to listen for the other replicas (host:port).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Where to listen for clients (host:port).
    #[arg(long, value_name = "ADDR")]
    client_listen: SocketAddr,
    /// The other replicas' peer addresses: ID=ADDR[,ID=ADDR...] (empty: a cluster of one).
    #[arg(long, value_name = "ID=ADDR,...", value_parser = parse_peers, default_value = "")]
    peers: Peers,
    /// The replica's data directory (its log and snapshots); created if missing.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The cluster secret (hex, at least 16 bytes; e.g. `openssl rand -hex 32 > F`) every
    /// replica and client proves on every connection.
    #[arg(long, value_name = "F", conflicts_with = "insecure")]
    secret_file: Option<PathBuf>,
    /// Run without authentication (anyone who can reach the ports can join or write).
    #[arg(long)]
    insecure: bool,
    /// Snapshot (and compact the log below it) every N applied slots; 0 never.
    #[arg(long, value_name = "N", hide = true)]
    snapshot_every: Option<u64>,
    /// One command per slot (for measuring what batching buys).
    #[arg(long, hide = true)]
    no_batching: bool,
    /// Test hook: drop the connection once after this many snapshot-transfer chunks.
    #[arg(long, value_name = "N", hide = true)]
    drop_transfer_after_chunks: Option<u64>,
    /// Bytes per snapshot-transfer chunk.
    #[arg(long, value_name = "B", hide = true)]
    transfer_chunk_bytes: Option<usize>,
}

#[derive(Clone, Debug)]
struct Peers(Vec<(NodeId, SocketAddr)>);

fn parse_peers(s: &str) -> Result<Peers, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not ID=ADDR"))?;
        let id: u32 = id
            .trim()
            .parse()
            .map_err(|_| format!("`{id}` in `{part}` is not a replica id"))?;
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{addr}` in `{part}` is not host:port"))?;
        out.push((NodeId(id), addr));
    }
    Ok(Peers(out))
}

/// Runs `paxwal serve`; returns its exit code.
pub fn run(a: ServeArgs) -> Result<u8, Error> {
    let auth = match (&a.secret_file, a.insecure) {
        (Some(f), _) => match Secret::from_file(f) {
            Ok(s) => Auth::Secret(Arc::new(s)),
            Err(e) => {
                eprintln!("paxwal serve: {e}");
                return Ok(1);
            }
        },
        (None, true) => {
            eprintln!(
                "paxwal serve: warning: --insecure: connections are not authenticated; anyone who can reach {} or {} can join the cluster or write to it",
                a.listen, a.client_listen
            );
            Auth::Insecure
        }
        (None, false) => {
            eprintln!(
                "paxwal serve: refusing to start without a cluster secret: pass --secret-file F (e.g. `openssl rand -hex 32 > F`) or, to run unauthenticated, --insecure"
            );
            return Ok(EXIT_USAGE);
        }
    };
    let mut cfg = NodeConfig::new(
        NodeId(a.id),
        a.listen,
        a.client_listen,
        a.peers.0,
        a.data,
        auth,
    );
    if let Some(n) = a.snapshot_every {
        cfg.snapshot_every_slots = n;
    }
    cfg.batching = !a.no_batching;
    cfg.drop_transfer_after_chunks = a.drop_transfer_after_chunks;
    if let Some(b) = a.transfer_chunk_bytes {
        cfg.transfer_chunk_bytes = b;
    }
    // Registered before the node starts, so a signal that arrives while it opens its store is
    // not lost (it only sets the flag; the loop below acts on it).
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| Error::Invalid(format!("cannot install a signal handler: {e}")))?;
    }
    let node = match Node::start(cfg, KvMachine::new()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("paxwal serve: cannot start replica {}: {e}", a.id);
            return Ok(1);
        }
    };
    tracing::info!(id = a.id, peer = %node.peer_addr(), client = %node.client_addr(), "serving");
    loop {
        if let Some(why) = node.fatal() {
            eprintln!("paxwal serve: replica {} stopped (fail-stop): {why}", a.id);
            let _ = node.shutdown();
            return Ok(1);
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match node.shutdown() {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("paxwal serve: replica {}: shutdown: {e}", a.id);
            Ok(1)
        }
    }
}
