//! `paxwal bench --cluster`: committed commands/s and latency of 3 `paxwal serve` processes
//! on loopback (fsync on), one fresh cluster per client count.

use std::io::IsTerminal;
use std::time::Duration;

use paxwal::bench::cluster::{self, ClusterBenchConfig};
use paxwal::Error;

use crate::{print_json, progress_bar};

/// Runs the cluster benchmark for `clients` (default 1, 16, 256); returns the exit code.
pub fn run(
    clients: Option<usize>,
    seconds: Option<f64>,
    batching: bool,
    json: bool,
) -> Result<u8, Error> {
    let counts = match clients {
        Some(0) => return Err(Error::Invalid("--clients must be at least 1".into())),
        Some(n) => vec![n],
        None => vec![1, 16, 256],
    };
    let seconds = seconds.unwrap_or(5.0);
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(Error::Invalid("--seconds must be positive".into()));
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::Invalid(format!("cannot find the paxwal binary: {e}")))?;
    if !json {
        println!(
            "cluster: 3 `paxwal serve` processes on 127.0.0.1 (fsync on, authenticated, batching {}), 64 B puts, one outstanding per client, {seconds} s per run",
            if batching { "on" } else { "off" }
        );
        println!(
            "  {:>7}  {:>12}  {:>9}  {:>9}  {:>7}  {:>10}  {:>24}",
            "clients",
            "commands/s",
            "p50 us",
            "p99 us",
            "errors",
            "cmds/fsync",
            "CPU leader/followers/clients"
        );
    }
    for n in counts {
        let bar = (std::io::stderr().is_terminal() && !json).then(|| {
            let b = progress_bar(None, "{spinner} {msg} {elapsed}");
            b.set_message(format!("{n} client(s)"));
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        let r = cluster::bench(&ClusterBenchConfig {
            exe: exe.clone(),
            clients: n,
            seconds,
            batching,
            value_bytes: 64,
        });
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let r = r.map_err(|e| Error::Invalid(format!("bench --cluster: {e}")))?;
        if json {
            print_json(&r)?;
        } else {
            println!(
                "  {:>7}  {:>12.0}  {:>9}  {:>9}  {:>7}  {:>10.1}  {:>24}",
                r.clients,
                r.commands_per_sec,
                r.p50_us,
                r.p99_us,
                r.errors,
                r.commands_per_fsync,
                format!(
                    "{:.2} / {:.2} / {:.2} cores",
                    r.leader_cpu_cores, r.followers_cpu_cores, r.clients_cpu_cores
                )
            );
        }
    }
    Ok(0)
}
