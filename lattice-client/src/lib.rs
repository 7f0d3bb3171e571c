//! What every lattice member that talks over NATS shares: connecting (with
//! authentication, TLS and reconnection forever), a round-trip barrier, and
//! signed invocations.
//!
//! Hosts and capability providers both use it, so an invocation is signed,
//! sent and checked the same way whichever side sends it.

pub mod kv;
pub mod nats;
pub mod rpc;

pub use nats::{ConnectError, connect, round_trip};
pub use rpc::{CallError, InvokeError, RpcClient};
