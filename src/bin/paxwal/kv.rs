//! `paxwal kv`: one key-value operation against a running cluster.
//!
//! Exit codes (scripts depend on them): 0 done (`put`; `get` found the key; `delete` removed
//! it; `cas` swapped); 1 the negative answer (`get`: absent; `delete`: there was no such key;
//! `cas`: the value was not EXPECTED); 2 the operation failed (unreachable cluster, wrong
//! secret, timeout: a timed-out write may or may not have been applied, and the message says
//! so), with one line on stderr; 64 a bad command line.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;

use paxwal::node::net::{Auth, Secret};
use paxwal::node::KvClient;
use paxwal::Error;

use crate::EXIT_USAGE;

/// Exit code of a failed operation.
const EXIT_FAILED: u8 = 2;

/// `paxwal kv`'s arguments.
#[derive(clap::Args)]
pub struct KvArgs {
    /// The replicas' client addresses, ADDR[,ADDR...] (host:port); the client finds the
    /// leader itself.
    #[arg(long, value_name = "ADDR,...")]
    cluster: String,
    /// The cluster secret file.
    #[arg(long, value_name = "F", conflicts_with = "insecure")]
    secret_file: Option<PathBuf>,
    /// Talk to a cluster started with --insecure.
    #[arg(long)]
    insecure: bool,
    /// Give up after this many seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    timeout: f64,
    #[command(subcommand)]
    op: KvOp,
}

#[derive(Subcommand)]
enum KvOp {
    /// Set KEY to VALUE; prints OK once committed.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Print KEY's value (a linearizable read); exit 1 if absent.
    Get {
        /// The key.
        key: String,
    },
    /// Remove KEY; exit 0 if it existed, 1 if not.
    Delete {
        /// The key.
        key: String,
    },
    /// Print the status (`key value` lines) of every replica in --cluster, each after a
    /// `# ADDR` line; exit 2 if one does not answer.
    Status,
    /// Set KEY to NEW if it holds EXPECTED; exit 0 if swapped, 1 if not.
    Cas {
        /// The key.
        key: String,
        /// The value KEY must hold (an absent key never matches).
        expected: String,
        /// The new value.
        new: String,
    },
}

fn parse_cluster(s: &str) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let addr = part
            .to_socket_addrs()
            .map_err(|e| format!("`{part}` is not host:port: {e}"))?
            .next()
            .ok_or_else(|| format!("`{part}` resolves to no address"))?;
        out.push(addr);
    }
    if out.is_empty() {
        return Err("--cluster names no address".into());
    }
    Ok(out)
}

/// Runs `paxwal kv`; returns its exit code. Never an `Err`: every failure is reported here,
/// so that it exits 2, not the 1 of a negative answer.
pub fn run(a: KvArgs) -> Result<u8, Error> {
    let cluster = match parse_cluster(&a.cluster) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paxwal kv: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    if !(a.timeout.is_finite() && a.timeout > 0.0) {
        eprintln!("paxwal kv: --timeout must be a positive number of seconds");
        return Ok(EXIT_USAGE);
    }
    let auth = match (&a.secret_file, a.insecure) {
        (Some(f), _) => match Secret::from_file(f) {
            Ok(s) => Auth::Secret(Arc::new(s)),
            Err(e) => {
                eprintln!("paxwal kv: {e}");
                return Ok(EXIT_FAILED);
            }
        },
        (None, true) => Auth::Insecure,
        (None, false) => {
            eprintln!(
                "paxwal kv: no cluster secret: pass --secret-file F, or --insecure for a cluster started with --insecure"
            );
            return Ok(EXIT_USAGE);
        }
    };
    if matches!(a.op, KvOp::Status) {
        let mut c =
            KvClient::new(cluster.clone(), auth).with_timeout(Duration::from_secs_f64(a.timeout));
        for addr in cluster {
            match c.status(addr) {
                Ok(text) => print!("# {addr}\n{text}"),
                Err(e) => {
                    eprintln!("paxwal kv status: {addr}: {e}");
                    return Ok(EXIT_FAILED);
                }
            }
        }
        return Ok(0);
    }
    let mut c = KvClient::new(cluster, auth).with_timeout(Duration::from_secs_f64(a.timeout));
    let (what, r) = match &a.op {
        KvOp::Put { key, value } => (
            "put",
            c.put(key.as_bytes(), value.as_bytes()).map(|()| {
                println!("OK");
                0
            }),
        ),
        KvOp::Get { key } => (
            "get",
            c.get(key.as_bytes()).map(|v| match v {
                Some(v) => {
                    let mut out = std::io::stdout().lock();
                    // A closed stdout (a script that stopped reading) is not our failure.
                    let _ = out.write_all(&v).and_then(|()| out.write_all(b"\n"));
                    0
                }
                None => 1,
            }),
        ),
        KvOp::Delete { key } => ("delete", c.delete(key.as_bytes()).map(|d| u8::from(!d))),
        KvOp::Status => ("status", Ok(0)),
        KvOp::Cas { key, expected, new } => (
            "cas",
            c.cas(key.as_bytes(), Some(expected.as_bytes()), new.as_bytes())
                .map(|s| u8::from(!s)),
        ),
    };
    match r {
        Ok(code) => Ok(code),
        Err(e) => {
            // A timeout's message says that the outcome is unknown.
            eprintln!("paxwal kv {what}: {e}");
            Ok(EXIT_FAILED)
        }
    }
}
