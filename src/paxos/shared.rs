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
//! reference), decrements `Release`, and the last one `Acquire`-fences before freeing.

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
    pub(crate) fn clones(&self, n: usize) -> Clones<'_> {
        if n > 0 {
            let old = self.inner().refs.fetch_add(n, Ordering::Relaxed);
            if old.checked_add(n).is_none_or(|total| total > MAX_REFS) {
                std::process::abort();
            }
        }
        Clones { of: self, left: n }
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

/// References already counted by [`Shared::clones`], handed out one by one; any not taken are
/// given back when this is dropped.
pub(crate) struct Clones<'a> {
    of: &'a Shared,
    left: usize,
}

impl Iterator for Clones<'_> {
    type Item = Shared;

    fn next(&mut self) -> Option<Shared> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(Shared { ptr: self.of.ptr })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Clones<'_> {}

impl Drop for Clones<'_> {
    fn drop(&mut self) {
        if self.left > 0 {
            // `of` still holds a reference, so this cannot reach zero.
            self.of.inner().refs.fetch_sub(self.left, Ordering::Release);
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
