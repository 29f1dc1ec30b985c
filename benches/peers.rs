//! Criterion: the same durable-append workloads on paxwal, okaywal 0.3.1 and raft-engine
//! 0.4.2 (and RocksDB 8.1.1 through the crate `rocksdb` 0.21.0 with the feature
//! `compare-rocksdb`), plus the raw disk, in one run: every engine of
//! `paxwal::bench::peers::ENGINES` by the same code (each file of `src/bench/peers/` names the
//! durable-append calls it uses). `cargo bench --features compare --bench peers`, or
//! `--features compare-rocksdb`. For the markdown table and chart from interleaved rounds:
//! `cargo run --release --features compare-rocksdb -- bench --compare` (or `--features
//! compare` without RocksDB, which builds in minutes instead of about half an hour).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use paxwal::bench::peers::{raw, run, ENGINES, WORKLOADS};

fn peers(c: &mut Criterion) {
    for w in WORKLOADS {
        let mut g = c.benchmark_group(w.name);
        g.sample_size(10).measurement_time(Duration::from_secs(5));
        g.throughput(Throughput::Elements(
            (w.writers * w.entries_per_writer) as u64,
        ));
        let names = ENGINES.iter().map(|e| Some(*e)).chain([None]);
        for engine in names {
            let name = engine.map_or("raw", |e| e.name());
            g.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let dir = tempfile::tempdir().expect("tempdir");
                        let n = (w.writers * w.entries_per_writer) as f64;
                        let rate = match engine {
                            Some(e) => run(e, dir.path(), w).expect("run").0,
                            None => raw(dir.path(), w).expect("raw"),
                        };
                        total += Duration::from_secs_f64(n / rate);
                    }
                    total
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, peers);
criterion_main!(benches);
