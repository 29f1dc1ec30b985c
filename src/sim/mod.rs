//! The deterministic simulator's building blocks (feature `sim`): a seeded random source, a
//! simulated network, and the linearizability checker. The simulated disk is
//! [`crate::wal::simdisk`], which implements the WAL's own I/O trait, so simulations run the
//! real log code.

pub mod linearizability;
pub mod net;
pub mod rng;

pub use linearizability::{check, KvInput, KvOutput, KvRegister, Model, Operation, Verdict};
pub use net::{NetConfig, NetStats, Network};
pub use rng::Rng;
