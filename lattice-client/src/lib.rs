//! What every lattice member that talks over NATS shares: connecting (with
//! authentication, TLS and reconnection forever), a round-trip barrier, and
//! signed invocations, and a client of the control interface ([`CtlClient`]).
//!
//! Hosts and capability providers both use it, so an invocation is signed,
//! sent and checked the same way whichever side sends it.

pub mod ctl;
pub mod kv;
pub mod nats;
pub mod rpc;

pub use ctl::{CtlClient, CtlError, CtlErrorKind};
pub use nats::{ConnectError, connect, round_trip};
pub use rpc::{CallError, InvokeError, RpcClient};
