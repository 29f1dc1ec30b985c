//! The async durability wait: `Wal::durable` (and `AcceptorStore::durable`) return futures
//! woken by the group commit. Driven here by a minimal hand-written executor (a thread-parking
//! waker that counts its polls and wakes, so busy polling would show) and by tokio.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use paxwal::wal::simdisk::{Faults, SimDisk};
use paxwal::wal::{Options, Prealloc, SyncMode, Wal};
use paxwal::{Error, Lsn};

struct ParkWaker {
    thread: std::thread::Thread,
    wakes: AtomicUsize,
}

impl Wake for ParkWaker {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Runs a future to completion on this thread; returns its output, the polls and the wakes.
fn block_on<F: Future>(f: F) -> (F::Output, usize, usize) {
    let w = Arc::new(ParkWaker {
        thread: std::thread::current(),
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(w.clone());
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return (v, polls, w.wakes.load(Ordering::SeqCst));
        }
        // Sleep until woken; a bounded park so a lost wake-up fails the test instead of
        // hanging it (a spurious return counts as a poll, and the assertions bound polls).
        let before = w.wakes.load(Ordering::SeqCst);
        let t0 = std::time::Instant::now();
        std::thread::park_timeout(Duration::from_secs(2));
        assert!(
            w.wakes.load(Ordering::SeqCst) > before || t0.elapsed() < Duration::from_secs(2),
            "the future was never woken"
        );
    }
}

fn opts(sync: SyncMode) -> Options {
    Options {
        sync,
        segment_bytes: 64 << 10,
        ..Options::default()
    }
}

#[test]
fn durable_future_resolves_without_busy_polling_in_every_sync_mode() {
    for sync in [
        SyncMode::Always,
        SyncMode::Batched {
            max_delay: Duration::from_secs(3600),
        },
        SyncMode::Never {
            max_delay: Duration::from_secs(3600),
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), opts(sync)).unwrap();
        for round in 0..20u64 {
            let t = wal.submit(format!("entry {round}").as_bytes()).unwrap();
            assert!(
                wal.durable_lsn() < t.last,
                "{sync:?}: durable before anyone synced"
            );
            let (r, polls, wakes) = block_on(wal.durable(&t));
            r.unwrap();
            assert!(wal.durable_lsn() >= t.last, "{sync:?}");
            // One poll registers, one after the wake completes: no polling loop. (Three allows
            // one spurious unpark of this thread.)
            assert!(polls <= 3, "{sync:?}: {polls} polls");
            assert!(wakes <= 2, "{sync:?}: {wakes} wakes");
        }
        // Already durable: ready at the first poll.
        let t = wal.submit(b"x").unwrap();
        wal.wait_durable(&t).unwrap();
        let (r, polls, _) = block_on(wal.durable(&t));
        r.unwrap();
        assert_eq!(polls, 1);
        wal.close().unwrap();
    }
}

#[test]
fn a_failed_fsync_resolves_the_future_with_the_error() {
    let disk = SimDisk::new();
    let wal = Wal::open_with(
        Arc::new(disk.clone()),
        "/log",
        Options {
            prealloc: Prealloc::Inline,
            ..opts(SyncMode::Always)
        },
    )
    .unwrap();
    wal.append(b"ok").unwrap();
    disk.set_faults(Faults {
        fail_sync_at: Some(0),
        ..Faults::default()
    });
    let t = wal.submit(b"lost").unwrap();
    let (r, polls, _) = block_on(wal.durable(&t));
    assert!(matches!(r, Err(Error::Poisoned { .. })), "{r:?}");
    assert!(polls <= 3);
}

#[test]
fn tokio_tasks_await_durability_and_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), opts(SyncMode::Always)).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    const TASKS: u64 = 16;
    const EACH: u64 = 40;
    rt.block_on(async {
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let wal = wal.clone();
            handles.push(tokio::spawn(async move {
                let mut last = Lsn::ZERO;
                for i in 0..EACH {
                    let t = wal.submit(format!("task {task} entry {i}").as_bytes())?;
                    // Bounded: a lost wake-up fails the test instead of hanging it.
                    tokio::time::timeout(Duration::from_secs(20), wal.durable(&t))
                        .await
                        .expect("a durable future was never woken")?;
                    assert!(wal.durable_lsn() >= t.last);
                    last = t.last;
                }
                Ok::<Lsn, Error>(last)
            }));
        }
        for h in handles {
            h.await.unwrap().unwrap();
        }
    });
    let stats = wal.stats();
    assert_eq!(wal.durable_lsn(), Lsn(TASKS * EACH));
    // Tasks awaiting at once share syncs: fewer fsyncs than appends.
    assert!(
        stats.fsyncs < TASKS * EACH,
        "{} fsyncs for {} appends",
        stats.fsyncs,
        TASKS * EACH
    );
    let wal = Arc::try_unwrap(wal).unwrap();
    wal.close().unwrap();
    let wal = Wal::open(dir.path(), opts(SyncMode::Always)).unwrap();
    assert_eq!(wal.last_lsn(), Lsn(TASKS * EACH));
}

#[test]
fn acceptor_store_durable_future() {
    use paxwal::paxos::StoreRecord;
    use paxwal::store::AcceptorStore;
    let dir = tempfile::tempdir().unwrap();
    let store = AcceptorStore::open(dir.path(), opts(SyncMode::Always)).unwrap();
    let t = store
        .submit(&[StoreRecord::Promise(paxwal::Ballot {
            round: 3,
            node: paxwal::NodeId(1),
        })])
        .unwrap();
    let (r, polls, _) = block_on(store.durable(&t));
    r.unwrap();
    assert!(polls <= 3);
    assert!(store.wal().durable_lsn() >= t.last);
}
