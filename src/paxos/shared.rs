//! [`Shared`]: an immutable array of commands behind one atomic reference count, shared by the
//! values of many slots, whose count can move by many references in one atomic operation.
//!
//! Why not `std::sync::Arc`: a leader that proposes `n` single-command slots in one flush hands
//! every slot's value to its own log, its persist record and each peer's Accept, and later to
//! an Apply on every replica. With one `Arc` per slot that is one atomic read-modify-write per
//! handle (about a dozen per slot across three replicas), and those locked instructions were
//! most of the core's time. Here a flush packs all its commands into one array; the handles of
//! a run of slots that share an array are taken with one `fetch_add(n)`, and a run of handles
//! the core drops (compaction), or that the runtime gives back with `Replica::recycle`, is
//! released with one `fetch_sub(n)`. Handles the runtime drops one by one still cost one
//! atomic decrement each, as with `Arc`.
//!
//! The counting follows `std::sync::Arc`: increments `Relaxed` (the caller already holds a
//! reference), decrements `Release`, and the last one `Acquire`-fences before freeing. A
//! leader turns a new array's only reference into all the references its flush needs by
//! storing the count (after an `Acquire` load that finds it 1): nobody else can reach the
//! count then.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

use super::message::Command;

/// Above this many references the count could overflow: abort, as `Arc` does.
const MAX_REFS: usize = isize::MAX as usize;

struct Inner {
    refs: AtomicUsize,
    commands: Commands,
}

/// The array: a single command is held inline (one allocation for the whole `Inner`).
enum Commands {
    One(Command),
    Many(Vec<Command>),
}

/// One counted reference to a shared command array.
pub(crate) struct Shared {
    ptr: NonNull<Inner>,
}

// SAFETY: a `Shared` is a counted reference to an `Inner` that is never mutated after it is
// built except through its atomic count, and freed only by the holder of the last reference
// (after an acquire fence), exactly like `Arc<Vec<Command>>`, which is `Send + Sync` because
// `Command` is.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Command>();
};

impl Shared {
    /// A new array holding `commands`, with one reference (this one).
    pub(crate) fn new(commands: Vec<Command>) -> Shared {
        Shared::with(Commands::Many(commands))
    }

    /// A new array holding the one command `command` (one allocation).
    pub(crate) fn one(command: Command) -> Shared {
        Shared::with(Commands::One(command))
    }

    fn with(commands: Commands) -> Shared {
        let inner = Box::new(Inner {
            refs: AtomicUsize::new(1),
            commands,
        });
        Shared {
            ptr: NonNull::from(Box::leak(inner)),
        }
    }

    fn inner(&self) -> &Inner {
        // SAFETY: `self` holds a reference, so the allocation is alive.
        unsafe { self.ptr.as_ref() }
    }

    /// Every command in the array.
    pub(crate) fn commands(&self) -> &[Command] {
        match &self.inner().commands {
            Commands::One(c) => std::slice::from_ref(c),
            Commands::Many(v) => v,
        }
    }

    /// True if both refer to the same array.
    pub(crate) fn same(&self, other: &Shared) -> bool {
        self.ptr == other.ptr
    }

    /// `n` more references to this array, for one atomic increment.
    pub(crate) fn clones(&self, n: usize) -> Clones {
        if n > 0 {
            let old = self.inner().refs.fetch_add(n, Ordering::Relaxed);
            if old.checked_add(n).is_none_or(|total| total > MAX_REFS) {
                std::process::abort();
            }
        }
        Clones {
            ptr: self.ptr,
            left: n,
        }
    }

    /// Turns this reference into `n` references to the same array: without any atomic
    /// read-modify-write when this is the only reference (a new array), else for one atomic
    /// increment (or decrement, for `n == 0`).
    pub(crate) fn into_clones(self, n: usize) -> Clones {
        if n == 0 {
            drop(self);
            return Clones {
                ptr: NonNull::dangling(),
                left: 0,
            };
        }
        if n > MAX_REFS {
            std::process::abort();
        }
        let this = std::mem::ManuallyDrop::new(self);
        let refs = &this.inner().refs;
        // Acquire: as in `Drop`, see every access of the holders of references since dropped.
        if refs.load(Ordering::Acquire) == 1 {
            // The only reference is ours: nobody else can read or change the count now.
            refs.store(n, Ordering::Relaxed);
        } else {
            let old = refs.fetch_add(n - 1, Ordering::Relaxed);
            if old.checked_add(n - 1).is_none_or(|total| total > MAX_REFS) {
                std::process::abort();
            }
        }
        Clones {
            ptr: this.ptr,
            left: n,
        }
    }

    /// Drops this reference and `extra` more to the same array that the caller gave up with
    /// [`std::mem::forget`], for one atomic decrement.
    pub(crate) fn release(self, extra: usize) {
        let this = std::mem::ManuallyDrop::new(self);
        let n = extra + 1;
        if this.inner().refs.fetch_sub(n, Ordering::Release) != n {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: that was the last reference: nobody else can reach the allocation, which
        // was made by `Box::new` in `new`.
        drop(unsafe { Box::from_raw(this.ptr.as_ptr()) });
    }

    /// The number of references (for tests).
    #[cfg(test)]
    pub(crate) fn refs(&self) -> usize {
        self.inner().refs.load(Ordering::Acquire)
    }
}

impl Clone for Shared {
    fn clone(&self) -> Shared {
        let old = self.inner().refs.fetch_add(1, Ordering::Relaxed);
        if old > MAX_REFS {
            std::process::abort();
        }
        Shared { ptr: self.ptr }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.inner().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: that was the last reference; the allocation came from `Box::new` in `new`.
        drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.commands().fmt(f)
    }
}

/// References already counted (by [`Shared::clones`] or [`Shared::into_clones`]), handed out
/// one by one; any not taken are given back when this is dropped (freeing the array if they
/// were the last).
pub(crate) struct Clones {
    ptr: NonNull<Inner>,
    /// References held (the allocation is alive while this is above zero).
    left: usize,
}

impl Iterator for Clones {
    type Item = Shared;

    fn next(&mut self) -> Option<Shared> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(Shared { ptr: self.ptr })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Clones {}

impl Drop for Clones {
    fn drop(&mut self) {
        if self.left > 0 {
            // The `left` references still held, given back in one go.
            Shared { ptr: self.ptr }.release(self.left - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmds(n: u64) -> Vec<Command> {
        (0..n)
            .map(|seq| Command {
                client: 1,
                seq,
                payload: vec![seq as u8; 3],
            })
            .collect()
    }

    #[test]
    fn counts_batched_clones_and_releases() {
        let a = Shared::new(cmds(3));
        assert_eq!(a.refs(), 1);
        let b = a.clone();
        assert!(a.same(&b) && a.refs() == 2);
        let mut many: Vec<Shared> = a.clones(5).collect();
        assert_eq!(a.refs(), 7);
        {
            let mut some = a.clones(4);
            many.push(some.next().expect("counted"));
            assert_eq!(a.refs(), 11);
        } // three not taken are given back
        assert_eq!(a.refs(), 8);
        let last = many.pop().expect("six");
        for s in many.drain(1..) {
            std::mem::forget(s);
        }
        last.release(4);
        assert_eq!(a.refs(), 3);
        drop(many);
        drop(b);
        assert_eq!(a.refs(), 1);
        assert_eq!(a.commands().len(), 3);
        assert!(!a.same(&Shared::new(cmds(3))));
        a.release(0);
        let one = Shared::one(cmds(1).remove(0));
        assert_eq!((one.commands().len(), one.clone().refs()), (1, 2));
    }

    #[test]
    fn into_clones_counts_without_an_increment_when_unique() {
        let a = Shared::new(cmds(2));
        let mut refs = a.into_clones(5);
        let first = refs.next().expect("five");
        assert_eq!(first.refs(), 5);
        drop(refs); // four not taken are given back
        assert_eq!(first.refs(), 1);
        let second = first.clone();
        let mut more = second.into_clones(3); // shared: one increment
        assert_eq!(first.refs(), 4);
        let kept = more.next().expect("three");
        drop(first);
        drop(more); // the last two of these hold the array with `kept`
        assert_eq!(kept.refs(), 1);
        assert_eq!(kept.commands().len(), 2);
        drop(kept.into_clones(0)); // freed (Miri and sanitizers check this)
        let lone = Shared::new(cmds(1)).into_clones(2);
        drop(lone); // unreferenced Clones free the array
    }

    #[test]
    fn last_reference_frees_on_any_thread() {
        let a = Shared::new(cmds(100));
        let handles: Vec<Shared> = a.clones(8).collect();
        let threads: Vec<_> = handles
            .into_iter()
            .map(|h| std::thread::spawn(move || h.commands().iter().map(|c| c.seq).sum::<u64>()))
            .collect();
        drop(a);
        for t in threads {
            assert_eq!(t.join().ok(), Some(4950));
        }
    }
}
