//! The deterministic simulator (feature `sim`): a seeded random source, a simulated network,
//! the linearizability checker, a key-value state machine, and [`cluster`], which runs the real
//! Multi-Paxos core over the real acceptor store on simulated disks and checks agreement,
//! validity, durability, linearizability and liveness. The simulated disk is
//! [`crate::wal::simdisk`], which implements the WAL's own I/O trait, so simulations run the
//! real log code.

pub mod chosen;
pub mod cluster;
pub mod coverage;
pub mod kv;
pub mod linearizability;
pub mod monitor;
pub mod net;
pub mod rng;
pub mod schedule;

pub use cluster::{run, run_many, Check, SimBugs, SimConfig, SimReport, SimStats, Violation};
pub use coverage::{Coverage, CoverageTally};
pub use kv::{KvMachine, KvOp};
pub use linearizability::{check, KvInput, KvOutput, KvRegister, Model, Operation, Verdict};
pub use net::{NetConfig, NetStats, Network};
pub use rng::Rng;
pub use schedule::TargetedRates;
