//! What every lattice member that talks over NATS shares: connecting (with
//! authentication, TLS and reconnection forever), a round-trip barrier, the
//! one RPC layer ([`rpc`]: [`RpcClient::invoke`] and [`rpc::serve`]), and a
//! client of the control interface ([`CtlClient`]), and the signing and
//! checking of control messages ([`signed`]).
//!
//! Hosts and capability providers both use it, so an invocation is signed,
//! sent, verified and answered the same way whichever side sends it.

pub mod artifacts;
pub mod ctl;
mod error;
pub mod kv;
pub mod nats;
pub mod oci;
pub mod rpc;
pub mod signed;

pub use ctl::{CtlClient, CtlError, CtlErrorKind};
pub use error::Error;
pub use nats::{ConnectError, connect, round_trip};
pub use rpc::{InvokeError, InvokeErrorKind, RpcClient, Server, Service};
