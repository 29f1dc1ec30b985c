//! Criterion benchmarks of the WAL, with the raw disk measured in the same run so figures can
//! be stated as ratios: durable appends by entry size, group commit with 1/4/16 writers,
//! batches of 1,000 with one sync each, the three sync modes, and verified recovery of a log
//! (size from `PAXWAL_BENCH_RECOVERY_MIB`, default 256; the figure uses 1024).
//!
//! Run: `cargo bench --bench wal` (`-- group_commit` for one group).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use paxwal::bench::raw::{self, ProbeFile, BLOCK_BYTES};
use paxwal::wal::{Options, SyncMode, Wal};

fn open(dir: &std::path::Path, sync: SyncMode) -> Wal {
    let wal = Wal::open(
        dir,
        Options {
            sync,
            ..Options::default()
        },
    )
    .expect("open");
    // Let the background preparer ready the next segment before timing.
    std::thread::sleep(Duration::from_millis(200));
    wal
}

fn durable_by_size(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_durable_1_writer");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for size in [64usize, 128, 1024, 4096, 65536] {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = open(dir.path(), SyncMode::Always);
        let e = vec![7u8; size];
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{size}B"), |b| {
            b.iter(|| wal.append(&e).expect("append"))
        });
    }
    g.finish();
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_commit_1KiB");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for writers in [1usize, 4, 16] {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Arc::new(open(dir.path(), SyncMode::Always));
        g.throughput(Throughput::Elements(writers as u64));
        g.bench_function(format!("{writers}_writers"), |b| {
            // One iteration = one append by each writer, measured as wall time for all.
            b.iter_custom(|iters| {
                let t = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..writers {
                        let wal = wal.clone();
                        s.spawn(move || {
                            let e = vec![1u8; 1024];
                            for _ in 0..iters {
                                wal.append(&e).expect("append");
                            }
                        });
                    }
                });
                t.elapsed()
            })
        });
    }
    g.finish();
}

fn batched(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_of_1000_one_sync");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for size in [128usize, 65536] {
        let n = if size == 128 { 1000 } else { 16 };
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = open(dir.path(), SyncMode::Always);
        let e = vec![3u8; size];
        let batch: Vec<&[u8]> = (0..n).map(|_| &e[..]).collect();
        g.throughput(Throughput::Bytes((n * size) as u64));
        g.bench_function(format!("{n}x{size}B"), |b| {
            b.iter(|| wal.append_batch(batch.iter()).expect("append"))
        });
    }
    g.finish();
}

fn sync_modes(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_modes_128B");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let delay = Duration::from_millis(1);
    for (name, mode) in [
        ("always", SyncMode::Always),
        ("batched_1ms", SyncMode::Batched { max_delay: delay }),
        ("never", SyncMode::Never { max_delay: delay }),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = open(dir.path(), mode);
        let e = vec![9u8; 128];
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| b.iter(|| wal.append(&e).expect("append")));
    }
    g.finish();
}

fn recovery(c: &mut Criterion) {
    let mib: usize = std::env::var("PAXWAL_BENCH_RECOVERY_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let wal = Wal::open(
            dir.path(),
            Options {
                sync: SyncMode::Never {
                    max_delay: Duration::from_millis(10),
                },
                ..Options::default()
            },
        )
        .expect("open");
        let e = vec![5u8; 4096];
        let batch: Vec<&[u8]> = (0..256).map(|_| &e[..]).collect();
        for _ in 0..mib {
            wal.submit_batch(batch.iter()).expect("append");
        }
        wal.close().expect("close");
    }
    let mut g = c.benchmark_group("recovery_warm");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes((mib << 20) as u64));
    g.bench_function(format!("open_{mib}MiB_of_4KiB_entries"), |b| {
        b.iter_batched(
            || (),
            |_| {
                let wal = Wal::open(dir.path(), Options::default()).expect("open");
                assert_eq!(wal.last_lsn().0, (mib * 256) as u64);
                wal
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// The raw disk, with the library's probes (`paxwal::bench::raw`): one 4 KiB overwrite +
/// `fdatasync`, the same bytes as a batch of 1,000 × 128 B in one write + `fdatasync`, and a
/// 64 MiB sequential write.
fn raw_disk(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw_disk");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks = 4096u64;
    let f = ProbeFile::written(dir.path().join("raw"), blocks, 1).expect("probe file");
    let mut i = 0u64;
    g.throughput(Throughput::Elements(1));
    g.bench_function("overwrite_4KiB_fdatasync", |b| {
        b.iter(|| {
            f.overwrite_sync(i).expect("overwrite");
            i += 1;
        })
    });
    let chunk = vec![2u8; 1000 * 132];
    let span = blocks * BLOCK_BYTES as u64;
    let mut at = 0u64;
    g.throughput(Throughput::Elements(1000));
    g.bench_function("write_132KB_fdatasync_same_bytes_as_1000x128B", |b| {
        b.iter(|| {
            if at + chunk.len() as u64 > span {
                at = 0;
            }
            f.write_sync(&chunk, at).expect("write");
            at += chunk.len() as u64;
        })
    });
    let seq = dir.path().join("seq");
    g.throughput(Throughput::Bytes(64 << 20));
    g.bench_function("sequential_64MiB_1MiB_writes", |b| {
        b.iter(|| raw::seq_write(&seq, 64).expect("sequential write"))
    });
    g.finish();
}

criterion_group!(
    benches,
    raw_disk,
    durable_by_size,
    group_commit,
    batched,
    sync_modes,
    recovery
);
criterion_main!(benches);
