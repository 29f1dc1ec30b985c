//! Replication with the real acceptor store on the real WAL: 3 replicas in one process
//! (`paxwal::bench::replication::Cluster`: one pump thread for the three cores, one syncer thread per
//! store), each store in its own directory on the same disk, `SyncMode::Always` (every persist
//! covered by an `fdatasync` before the core hears of it), messages in memory, 64-byte
//! commands. Counts commands committed on the leader per second, with 1,024 in flight at most
//! 64 per slot and 8,192 in flight at most 1,024 per slot (the omnipaxos + RocksDB figures
//! quoted in `paxwal::bench::replication` are for the same two configurations). The raw disk's
//! `fdatasync` rate (4 KiB overwrite, one file, and three files at once) is measured in the same
//! run: only ratios within one run mean anything on a shared machine.
//!
//! With `--features compare-omnipaxos`, omnipaxos 0.2.4 with its RocksDB `PersistentStorage`
//! runs the same two configurations in the same harness (`paxwal::bench::omnipaxos`).
//!
//! Run: `cargo bench --bench replication` (`PAXWAL_BENCH_DIR=…` to run on another disk than
//! the temporary directory's).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use paxwal::bench::raw::ProbeFile;
use paxwal::bench::replication::{Cluster, ClusterOptions};

/// Commands committed per measured iteration.
const COMMANDS_PER_ITER: u64 = 65_536;

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("PAXWAL_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).expect("tempdir in PAXWAL_BENCH_DIR"),
        None => tempfile::tempdir().expect("tempdir"),
    }
}

fn replication(c: &mut Criterion) {
    let mut g = c.benchmark_group("replication_3_stores_64B");
    g.throughput(Throughput::Elements(COMMANDS_PER_ITER));
    for (in_flight, batch) in [(1024u64, 64usize), (8192, 1024)] {
        let dir = bench_dir();
        let mut cluster =
            Cluster::open(dir.path(), ClusterOptions::new(batch, in_flight)).expect("open");
        // Warm up past the first segment rotations.
        cluster
            .run(4 * COMMANDS_PER_ITER, in_flight)
            .expect("warm-up");
        g.bench_function(
            BenchmarkId::new("paxwal", format!("in_flight_{in_flight}_batch_{batch}")),
            |b| b.iter(|| cluster.run(COMMANDS_PER_ITER, in_flight).expect("run")),
        );
        cluster.close().expect("close");
        #[cfg(feature = "compare-omnipaxos")]
        {
            let dir = bench_dir();
            let mut omni =
                paxwal::bench::omnipaxos::OmniCluster::open(dir.path(), batch, 64).expect("open");
            omni.run(2 * COMMANDS_PER_ITER, in_flight).expect("warm-up");
            g.bench_function(
                BenchmarkId::new(
                    "omnipaxos_rocksdb",
                    format!("in_flight_{in_flight}_batch_{batch}"),
                ),
                |b| b.iter(|| omni.run(COMMANDS_PER_ITER, in_flight).expect("run")),
            );
        }
    }
    g.finish();
}

/// One 4 KiB overwrite + `fdatasync` per iteration (one file), and the same on three files at
/// once (one thread each; an iteration is one sync of each), in the same directory, with the
/// library's probe files (`paxwal::bench::raw`).
fn raw_disk(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw_disk");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let dir = bench_dir();
    let files: Vec<ProbeFile> = (0..3)
        .map(|i| ProbeFile::written(dir.path().join(format!("raw-{i}")), 256, 0x5a))
        .collect::<Result<_, _>>()
        .expect("probe files");
    g.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    g.bench_function("fdatasync_4KiB_overwrite", |b| {
        b.iter(|| {
            files[0].overwrite_sync(n).expect("overwrite");
            n += 1;
        })
    });
    g.throughput(Throughput::Elements(3));
    g.bench_function("fdatasync_4KiB_overwrite_3_files_at_once", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            std::thread::scope(|s| {
                for f in &files {
                    s.spawn(move || {
                        for i in 0..iters {
                            f.overwrite_sync(i).expect("overwrite");
                        }
                    });
                }
            });
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(10);
    targets = raw_disk, replication
}
criterion_main!(benches);
