//! The Trellis lattice host.
//!
//! A host is the program that runs on every device of a lattice — a cloud
//! VM, a Kubernetes pod, a Raspberry Pi. It joins a lattice over NATS, runs
//! actors whose signed claims it trusts, and supervises capability
//! providers.
//!
//! This crate grows one module per concern: runtime, control interface,
//! RPC, providers, lattice data and events. It starts with [`labels`], the
//! host labels that wadm uses to place actors.

pub mod labels;
