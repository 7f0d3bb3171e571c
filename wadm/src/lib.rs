//! wadm for Trellis: the WebAssembly application deployment manager.
//!
//! wadm reads declarative manifests and reconciles them across the hosts
//! of a lattice: it starts and stops actors and providers until what runs
//! matches what is declared, and reschedules instances when a host dies.
//!
//! This crate starts with [`spread`], the placement arithmetic of the
//! spreadscaler: how many instances each weighted spread gets and which
//! hosts they land on. It is pure, so it is tested exhaustively with
//! property tests; the manifest parser and the reconciler follow.

pub mod spread;
