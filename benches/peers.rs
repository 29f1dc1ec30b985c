//! Criterion: the same durable-append workloads on paxwal, okaywal 0.3.1 and raft-engine
//! 0.4.2, plus the raw disk, in one run: every engine of `paxwal::bench::peers::ENGINES` by
//! the same code (each file of `src/bench/peers/` names the durable-append calls it uses).
//! `cargo bench --features compare --bench peers`. For the markdown table and chart from
//! interleaved rounds: `cargo run --release --features compare -- bench --compare`.

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
