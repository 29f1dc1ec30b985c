//! Criterion: the same durable-append workloads on paxwal, okaywal 0.3.1 and raft-engine
//! 0.4.2, plus the raw disk, in one run (durable-append calls are named in `src/compare.rs`).
//! `cargo bench --features compare --bench peers`. For the markdown table and chart from
//! interleaved rounds: `cargo run --release --features compare -- bench --compare`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use paxwal::compare::{raw, run, WORKLOADS};

fn peers(c: &mut Criterion) {
    for w in WORKLOADS {
        let mut g = c.benchmark_group(w.name);
        g.sample_size(10).measurement_time(Duration::from_secs(5));
        g.throughput(Throughput::Elements(
            (w.writers * w.entries_per_writer) as u64,
        ));
        for engine in ["paxwal", "okaywal", "raft-engine", "raw"] {
            g.bench_function(engine, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let dir = tempfile::tempdir().expect("tempdir");
                        let n = (w.writers * w.entries_per_writer) as f64;
                        let rate = if engine == "raw" {
                            raw(dir.path(), w).expect("raw")
                        } else {
                            run(engine, dir.path(), w).expect("run").0
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
