//! Local clusters of real `paxwal serve` processes on 127.0.0.1 (each its own process, real
//! TCP, fsync on, a generated secret), and the cluster benchmark behind
//! `paxwal bench --cluster`. `paxwal demo` and the cluster integration tests run on the same
//! harness.
//!
//! The harness starts the binary it is given (`paxwal` itself, or the test build of it) as
//! `serve` children, polls their status through the client protocol, kills (SIGKILL), stops
//! (SIGTERM) and restarts them, and kills every child when it is dropped (also on a panic).
//! On Linux each child also dies with the thread that started it (`PR_SET_PDEATHSIG`), so a
//! harness killed outright leaves no replica running.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::node::load::{self, LoadConfig};
use crate::node::net::{Auth, Secret};
use crate::node::{ClientError, KvClient};
use crate::NodeId;

/// A harness failure: what went wrong, in one line (with the end of a replica's log where one
/// helps).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClusterError(pub String);

impl ClusterError {
    fn new(s: impl Into<String>) -> ClusterError {
        ClusterError(s.into())
    }
}

/// How to run the replicas.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Replicas (3 or 5 make sense).
    pub replicas: usize,
    /// `serve --snapshot-every`: snapshot (and compact) every this many slots; `None`: the
    /// node's default.
    pub snapshot_every_slots: Option<u64>,
    /// `false`: `serve --no-batching` (one command per slot).
    pub batching: bool,
    /// `serve --drop-transfer-after-chunks` (a test hook): a replica receiving a snapshot drops
    /// the connection once after this many chunks.
    pub drop_transfer_after_chunks: Option<u64>,
    /// `serve --transfer-chunk-bytes`: bytes per snapshot-transfer chunk; `None`: the default.
    pub transfer_chunk_bytes: Option<usize>,
    /// How long to wait for the replicas to answer and elect a leader.
    pub start_timeout: Duration,
    /// `PAXWAL_LOG` for the replicas (what their logs, kept beside the data, record);
    /// `None`: inherited.
    pub log_filter: Option<String>,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            replicas: 3,
            snapshot_every_slots: None,
            batching: true,
            drop_transfer_after_chunks: None,
            transfer_chunk_bytes: None,
            start_timeout: Duration::from_secs(30),
            log_filter: None,
        }
    }
}

/// One replica's status text (`key value` lines), parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus(pub BTreeMap<String, String>);

impl NodeStatus {
    /// Parses `key value` lines (a line without a value maps to "").
    pub fn parse(text: &str) -> NodeStatus {
        NodeStatus(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| match l.split_once(' ') {
                    Some((k, v)) => (k.to_string(), v.trim().to_string()),
                    None => (l.to_string(), String::new()),
                })
                .collect(),
        )
    }

    /// The value of `key` as text.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of `key` as a number (0 if absent or not a number).
    pub fn u64(&self, key: &str) -> u64 {
        self.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// Whether the replica says it leads.
    pub fn is_leader(&self) -> bool {
        self.get("role") == Some("leader")
    }

    /// The leader it believes in.
    pub fn leader(&self) -> Option<NodeId> {
        self.get("leader").and_then(|v| v.parse().ok()).map(NodeId)
    }

    /// Slots applied (every slot below this one).
    pub fn applied(&self) -> u64 {
        self.u64("applied")
    }

    /// Slots known chosen (every slot below this one).
    pub fn chosen(&self) -> u64 {
        self.u64("chosen")
    }
}

/// One replica of a [`LocalCluster`].
#[derive(Debug)]
pub struct ReplicaProc {
    /// Its id (1-based).
    pub id: NodeId,
    /// Where it listens for peers.
    pub peer_addr: SocketAddr,
    /// Where it serves clients.
    pub client_addr: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its stderr, appended to across restarts.
    pub log_path: PathBuf,
    child: Option<Child>,
}

/// A cluster of `paxwal serve` processes on 127.0.0.1 in a temporary directory. Dropping it
/// kills every replica and removes the directory.
pub struct LocalCluster {
    exe: PathBuf,
    opts: ClusterOptions,
    secret_file: PathBuf,
    auth: Auth,
    replicas: Vec<ReplicaProc>,
    // Last: removed after the children are killed (fields drop after `Drop::drop`).
    dir: tempfile::TempDir,
}

/// A port on 127.0.0.1 that was free a moment ago (bound, read, released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The total size of the files under `dir` (0 if it does not exist).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

impl LocalCluster {
    /// Starts `opts.replicas` replicas of `exe serve` (`exe` is the `paxwal` binary) and waits
    /// until every one answers its status and one leads. Ports are picked free; if a replica
    /// cannot bind its port (taken in the meantime), the whole start is retried on new ports.
    pub fn start(exe: &Path, opts: ClusterOptions) -> Result<LocalCluster, ClusterError> {
        if opts.replicas == 0 {
            return Err(ClusterError::new("a cluster needs at least one replica"));
        }
        let dir = tempfile::Builder::new()
            .prefix("paxwal-cluster-")
            .tempdir()
            .map_err(|e| ClusterError::new(format!("cannot create a temp dir: {e}")))?;
        let secret_file = dir.path().join("cluster.secret");
        let secret = Secret::generate();
        secret
            .write_file(&secret_file)
            .map_err(|e| ClusterError::new(format!("cannot write the secret file: {e}")))?;
        let mut c = LocalCluster {
            exe: exe.to_owned(),
            opts,
            secret_file,
            auth: Auth::Secret(Arc::new(secret)),
            replicas: Vec::new(),
            dir,
        };
        let mut last = ClusterError::new("no attempt");
        for _attempt in 0..3 {
            match c.start_once() {
                Ok(()) => return Ok(c),
                Err(e) => {
                    c.kill_all();
                    let port_taken = c.replicas.iter().any(|r| {
                        let t = read_tail(&r.log_path, 4000);
                        t.contains("in use") || t.contains("AddrInUse")
                    });
                    last = e;
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    fn start_once(&mut self) -> Result<(), ClusterError> {
        let n = self.opts.replicas;
        let port = || free_port().map_err(|e| ClusterError::new(format!("no free port: {e}")));
        let mut replicas = Vec::with_capacity(n);
        for i in 1..=n {
            let peer_addr = SocketAddr::from(([127, 0, 0, 1], port()?));
            let client_addr = SocketAddr::from(([127, 0, 0, 1], port()?));
            let data_dir = self.dir.path().join(format!("n{i}"));
            let log_path = self.dir.path().join(format!("n{i}.log"));
            // A retry starts afresh.
            let _ = std::fs::remove_dir_all(&data_dir);
            let _ = std::fs::remove_file(&log_path);
            replicas.push(ReplicaProc {
                id: NodeId(i as u32),
                peer_addr,
                client_addr,
                data_dir,
                log_path,
                child: None,
            });
        }
        self.replicas = replicas;
        for i in 0..n {
            self.spawn(i)?;
        }
        let deadline = Instant::now() + self.opts.start_timeout;
        for i in 0..n {
            self.wait_answering(self.replicas[i].id, deadline)?;
        }
        self.wait_leader(deadline.saturating_duration_since(Instant::now()))?;
        Ok(())
    }

    fn index(&self, id: NodeId) -> Result<usize, ClusterError> {
        self.replicas
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(|| ClusterError::new(format!("no replica n{}", id.0)))
    }

    fn spawn(&mut self, i: usize) -> Result<(), ClusterError> {
        let r = &self.replicas[i];
        let peers: Vec<String> = self
            .replicas
            .iter()
            .filter(|o| o.id != r.id)
            .map(|o| format!("{}={}", o.id.0, o.peer_addr))
            .collect();
        let mut cmd = Command::new(&self.exe);
        cmd.arg("serve")
            .args(["--id", &r.id.0.to_string()])
            .args(["--listen", &r.peer_addr.to_string()])
            .args(["--client-listen", &r.client_addr.to_string()])
            .args(["--peers", &peers.join(",")])
            .arg("--data")
            .arg(&r.data_dir)
            .arg("--secret-file")
            .arg(&self.secret_file);
        if let Some(s) = self.opts.snapshot_every_slots {
            cmd.args(["--snapshot-every", &s.to_string()]);
        }
        if !self.opts.batching {
            cmd.arg("--no-batching");
        }
        if let Some(c) = self.opts.drop_transfer_after_chunks {
            cmd.args(["--drop-transfer-after-chunks", &c.to_string()]);
        }
        if let Some(b) = self.opts.transfer_chunk_bytes {
            cmd.args(["--transfer-chunk-bytes", &b.to_string()]);
        }
        if let Some(f) = &self.opts.log_filter {
            cmd.env("PAXWAL_LOG", f);
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&r.log_path)
            .map_err(|e| ClusterError::new(format!("cannot open {}: {e}", r.log_path.display())))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        {
            use std::os::unix::process::CommandExt;
            // Its own process group: a Ctrl-C at the terminal reaches the harness, which
            // decides (and cleans up), not the replicas behind its back.
            cmd.process_group(0);
        }
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| {
            ClusterError::new(format!("cannot start {} serve: {e}", self.exe.display()))
        })?;
        self.replicas[i].child = Some(child);
        Ok(())
    }

    /// The replicas.
    pub fn replicas(&self) -> &[ReplicaProc] {
        &self.replicas
    }

    /// Every replica's client address (what `paxwal kv --cluster` takes).
    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.replicas.iter().map(|r| r.client_addr).collect()
    }

    /// The cluster's authentication (its generated secret).
    pub fn auth(&self) -> Auth {
        self.auth.clone()
    }

    /// The secret file every replica was started with.
    pub fn secret_file(&self) -> &Path {
        &self.secret_file
    }

    /// The temporary directory holding the data directories, logs and secret.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client of the whole cluster (finds the leader itself).
    pub fn client(&self) -> KvClient {
        KvClient::new(self.client_addrs(), self.auth())
    }

    /// Whether replica `id` is running (started and not exited).
    pub fn is_up(&mut self, id: NodeId) -> bool {
        let Ok(i) = self.index(id) else { return false };
        match self.replicas[i].child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Replica `id`'s status, asked through its client port.
    pub fn status(&self, id: NodeId) -> Result<NodeStatus, ClusterError> {
        let i = self.index(id)?;
        let addr = self.replicas[i].client_addr;
        let mut c = KvClient::new(vec![addr], self.auth()).with_timeout(Duration::from_secs(2));
        c.status(addr)
            .map(|t| NodeStatus::parse(&t))
            .map_err(|e| ClusterError::new(format!("n{}: status: {e}", id.0)))
    }

    /// The status of every running replica that answers, by id (a killed one is not asked:
    /// that would cost a whole status timeout).
    pub fn statuses(&self) -> Vec<(NodeId, NodeStatus)> {
        self.replicas
            .iter()
            .filter(|r| r.child.is_some())
            .filter_map(|r| self.status(r.id).ok().map(|s| (r.id, s)))
            .collect()
    }

    /// Fails with the replica's log tail if it has exited.
    fn check_alive(&mut self, i: usize) -> Result<(), ClusterError> {
        let r = &mut self.replicas[i];
        let exited = match r.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten(),
            None => return Err(ClusterError::new(format!("n{} is not running", r.id.0))),
        };
        match exited {
            None => Ok(()),
            Some(st) => Err(ClusterError::new(format!(
                "n{} exited ({st}); its log ends: {}",
                r.id.0,
                read_tail(&r.log_path, 600).trim()
            ))),
        }
    }

    fn wait_answering(
        &mut self,
        id: NodeId,
        deadline: Instant,
    ) -> Result<NodeStatus, ClusterError> {
        let i = self.index(id)?;
        loop {
            self.check_alive(i)?;
            match self.status(id) {
                Ok(s) => return Ok(s),
                Err(e) if Instant::now() >= deadline => {
                    return Err(ClusterError::new(format!("n{} never answered: {e}", id.0)))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Waits until a running replica leads and the other running replicas that answer agree;
    /// returns its id.
    pub fn wait_leader(&self, timeout: Duration) -> Result<NodeId, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.statuses();
            if let Some((id, _)) = st.iter().find(|(_, s)| s.is_leader()) {
                let agree = st.iter().all(|(o, s)| o == id || s.leader() == Some(*id));
                if agree {
                    return Ok(*id);
                }
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = st
                    .iter()
                    .map(|(id, s)| {
                        format!(
                            "n{}: {} (leader {})",
                            id.0,
                            s.get("role").unwrap_or("?"),
                            s.get("leader").unwrap_or("?")
                        )
                    })
                    .collect();
                return Err(ClusterError::new(format!(
                    "no leader after {timeout:?}; replicas say: {}",
                    seen.join(", ")
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs replica `id` (a crash: nothing flushed, nothing closed) and reaps it.
    pub fn kill(&mut self, id: NodeId) -> Result<(), ClusterError> {
        let i = self.index(id)?;
        if let Some(mut c) = self.replicas[i].child.take() {
            let _ = c.kill();
            c.wait()
                .map_err(|e| ClusterError::new(format!("n{}: wait: {e}", id.0)))?;
        }
        Ok(())
    }

    /// Sends SIGTERM to replica `id` and waits (up to `timeout`) for it to exit; returns its
    /// exit status. It is SIGKILLed if it does not exit in time (and that is an error).
    pub fn terminate(&mut self, id: NodeId, timeout: Duration) -> Result<ExitStatus, ClusterError> {
        let i = self.index(id)?;
        let Some(mut c) = self.replicas[i].child.take() else {
            return Err(ClusterError::new(format!("n{} is not running", id.0)));
        };
        if let Ok(pid) = libc::pid_t::try_from(c.id()) {
            // SAFETY: kill(2) on our own child's pid; the child is not reaped yet, so the pid
            // cannot have been reused.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            match c.try_wait() {
                Ok(Some(st)) => return Ok(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return Err(ClusterError::new(format!(
                        "n{} did not exit within {timeout:?} of SIGTERM",
                        id.0
                    )));
                }
            }
        }
    }

    /// Starts replica `id` again (same ports, same data directory) and waits until it answers.
    pub fn restart(&mut self, id: NodeId) -> Result<(), ClusterError> {
        let i = self.index(id)?;
        if self.replicas[i].child.is_some() {
            return Err(ClusterError::new(format!("n{} is still running", id.0)));
        }
        self.spawn(i)?;
        self.wait_answering(id, Instant::now() + self.opts.start_timeout)?;
        Ok(())
    }

    /// Waits until replica `id` has applied every slot below `slot`; returns how long it took.
    pub fn wait_applied(
        &self,
        id: NodeId,
        slot: u64,
        timeout: Duration,
    ) -> Result<Duration, ClusterError> {
        let t0 = Instant::now();
        let mut last = None;
        loop {
            if let Ok(s) = self.status(id) {
                if s.applied() >= slot {
                    return Ok(t0.elapsed());
                }
                last = Some(s.applied());
            }
            if t0.elapsed() >= timeout {
                return Err(ClusterError::new(format!(
                    "n{} did not apply up to slot {slot} within {timeout:?} (applied: {})",
                    id.0,
                    last.map_or("no answer".to_string(), |a| a.to_string())
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every running replica has applied every slot the leader knew chosen when
    /// called; returns that slot.
    pub fn wait_converged(&mut self, timeout: Duration) -> Result<u64, ClusterError> {
        let t0 = Instant::now();
        let leader = self.wait_leader(timeout)?;
        let target = self.status(leader)?.chosen();
        let ids: Vec<NodeId> = self.replicas.iter().map(|r| r.id).collect();
        for id in ids {
            if self.is_up(id) {
                self.wait_applied(id, target, timeout.saturating_sub(t0.elapsed()))?;
            }
        }
        Ok(target)
    }

    /// The last `bytes` of replica `id`'s log (its stderr).
    pub fn log_tail(&self, id: NodeId, bytes: usize) -> String {
        match self.index(id) {
            Ok(i) => read_tail(&self.replicas[i].log_path, bytes),
            Err(_) => String::new(),
        }
    }

    /// Replica `id`'s process id, while it runs.
    pub fn pid(&self, id: NodeId) -> Option<u32> {
        let i = self.index(id).ok()?;
        self.replicas[i].child.as_ref().map(Child::id)
    }

    /// Bytes on disk in every replica's data directory.
    pub fn disk_bytes(&self) -> u64 {
        self.replicas.iter().map(|r| dir_bytes(&r.data_dir)).sum()
    }

    fn kill_all(&mut self) {
        for r in &mut self.replicas {
            if let Some(mut c) = r.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Makes the child get SIGKILL when the thread that started it exits (Linux), so a harness
/// killed outright leaves no replica behind. (Replicas are started from the thread that owns
/// the cluster.)
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec; prctl is async-signal-safe, allocates
    // nothing and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}

fn read_tail(path: &Path, bytes: usize) -> String {
    let mut s = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut s);
    }
    let start = s.len().saturating_sub(bytes);
    String::from_utf8_lossy(&s[start..]).into_owned()
}

/// CPU seconds (user + system) process `pid` (`None`: this process) has used so far, from
/// `/proc/<pid>/stat`; 0 where that cannot be read.
pub fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let Some(rest) = text.rfind(')').map(|i| &text[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line are utime and stime; `rest` starts at field 3.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return 0.0;
    }
    ticks as f64 / hz as f64
}

/// The cluster benchmark's settings.
#[derive(Clone, Debug)]
pub struct ClusterBenchConfig {
    /// The `paxwal` binary to start as replicas.
    pub exe: PathBuf,
    /// Concurrent clients (one thread and one connection each, one request outstanding).
    pub clients: usize,
    /// Measured seconds (after a warm-up of a fifth of it, at most 1 s).
    pub seconds: f64,
    /// Batching in the leader (false: one command per slot).
    pub batching: bool,
    /// Bytes per value.
    pub value_bytes: usize,
}

/// One run of the cluster benchmark.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClusterBenchResult {
    /// Concurrent clients.
    pub clients: usize,
    /// Replicas (processes on loopback).
    pub replicas: usize,
    /// Batching on.
    pub batching: bool,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// Puts acknowledged (committed and applied) in the measured window.
    pub commands: u64,
    /// `commands / seconds`.
    pub commands_per_sec: f64,
    /// Median put latency, as the client sees it.
    pub p50_us: u64,
    /// 99th percentile put latency.
    pub p99_us: u64,
    /// Answers retried (busy, not the leader) during the run; a failed put stops the run
    /// with an error instead.
    pub errors: u64,
    /// fdatasyncs on the leader in the measured window.
    pub leader_fsyncs: u64,
    /// Commands per leader fdatasync.
    pub commands_per_fsync: f64,
    /// CPU the leader process used in the window, in cores (1.0 = one core all the time).
    pub leader_cpu_cores: f64,
    /// CPU the two followers used together, in cores.
    pub followers_cpu_cores: f64,
    /// CPU the benchmark's client threads (this process) used, in cores.
    pub clients_cpu_cores: f64,
}

/// The `q` quantile of sorted `v` (0 if empty).
pub fn quantile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// Runs one client count against a fresh 3-replica cluster: every client puts `value_bytes`
/// values to its own keys, one at a time, for the warm-up and then `seconds`; the figures
/// cover only what completed in the measured window.
pub fn bench(cfg: &ClusterBenchConfig) -> Result<ClusterBenchResult, ClusterError> {
    let cluster = LocalCluster::start(
        &cfg.exe,
        ClusterOptions {
            batching: cfg.batching,
            ..ClusterOptions::default()
        },
    )?;
    let leader = cluster.wait_leader(Duration::from_secs(30))?;
    let warmup = Duration::from_secs_f64((cfg.seconds / 5.0).min(1.0));
    let measured = Duration::from_secs_f64(cfg.seconds);
    // The clients: `node::load`, each logical client with its own session and one put
    // outstanding, multiplexed over up to 16 pipelined connections (as a client library
    // would), so the figures measure the cluster rather than one thread wake-up per request.
    let load = LoadConfig {
        cluster: cluster.client_addrs(),
        clients: cfg.clients,
        connections: cfg.clients.min(16),
        value_bytes: cfg.value_bytes,
        warmup,
        duration: measured,
    };
    let auth = cluster.auth();
    let runner = std::thread::Builder::new()
        .name("bench-load".into())
        .spawn(move || load::run(&load, &auth, false))
        .map_err(|e| ClusterError::new(format!("cannot start the load thread: {e}")))?;
    std::thread::sleep(warmup);
    let pids: Vec<(NodeId, Option<u32>)> = cluster
        .replicas()
        .iter()
        .map(|r| (r.id, cluster.pid(r.id)))
        .collect();
    let cpu = || -> Vec<(NodeId, f64)> {
        pids.iter()
            .map(|&(id, pid)| (id, pid.map_or(0.0, |p| cpu_seconds(Some(p)))))
            .chain(std::iter::once((NodeId(0), cpu_seconds(None))))
            .collect()
    };
    let before = cluster.status(leader)?;
    let cpu_before = cpu();
    let window_start = Instant::now();
    std::thread::sleep(measured);
    let window_end = Instant::now();
    let cpu_after = cpu();
    let after = cluster.status(leader)?;
    let (r, _) = runner
        .join()
        .map_err(|_| ClusterError::new("the load thread panicked"))?
        .map_err(|e| ClusterError::new(format!("load: {e}")))?;
    let secs = (window_end - window_start).as_secs_f64();
    let commands = r.committed;
    let leader_fsyncs = after.u64("fsyncs").saturating_sub(before.u64("fsyncs"));
    let used = |want: &dyn Fn(NodeId) -> bool| -> f64 {
        cpu_after
            .iter()
            .zip(&cpu_before)
            .filter(|((id, _), _)| want(*id))
            .map(|((_, a), (_, b))| a - b)
            .sum::<f64>()
            / secs
    };
    Ok(ClusterBenchResult {
        clients: cfg.clients,
        replicas: 3,
        batching: cfg.batching,
        value_bytes: cfg.value_bytes,
        seconds: secs,
        commands,
        commands_per_sec: r.commands_per_sec,
        p50_us: r.p50_us,
        p99_us: r.p99_us,
        errors: r.retries,
        leader_fsyncs,
        commands_per_fsync: commands as f64 / leader_fsyncs.max(1) as f64,
        leader_cpu_cores: used(&|id| id == leader),
        followers_cpu_cores: used(&|id| id != leader && id != NodeId(0)),
        clients_cpu_cores: used(&|id| id == NodeId(0)),
    })
}

/// Why a client call failed, in one word (for tallies).
pub fn error_kind(e: &ClientError) -> &'static str {
    match e {
        ClientError::Timeout(_) => "timeout",
        ClientError::Unavailable(_) => "unavailable",
        ClientError::Busy => "busy",
        ClientError::Auth(_) => "auth",
        ClientError::Protocol(_) => "protocol",
        _ => "other",
    }
}
