//! The Trellis lattice protocol: subjects, wire types and bounded decoders.
//!
//! This crate is pure: it has no NATS client and no WebAssembly runtime, so
//! any program (a host, a provider, wadm, a test or a third-party client)
//! can speak the protocol by depending on it. The full specification, with
//! every subject and payload, is `docs/protocol.md`.
//!
//! # Map
//!
//! - [`subject`]: subject builders for the control interface
//!   (`trellis.ctl.v1.{lattice}.…`), RPC (`trellis.rpc.{lattice}.{target}[.{link}]`)
//!   and events (`trellis.evt.{lattice}.{type}`), and validation of the names
//!   and ids put into them.
//! - [`Invocation`] and [`InvocationResponse`]: RPC messages, msgpack with
//!   named fields and a protocol version.
//! - [`LinkDefinition`] and [`ContractId`]: what binds an actor to a provider.
//! - [`ctl`]: control-interface requests and the [`CtlReply`] envelope (JSON).
//! - [`HostInventory`] and [`Heartbeat`].
//! - [`provider::HostData`]: what a host hands a capability provider on stdin.
//! - [`CloudEvent`] and [`EventType`]: lattice events as CloudEvents 1.0, with
//!   one [`EventData`] type per event type in [`event`].
//! - [`wadm`]: the wadm API's subjects, requests, replies and application
//!   status.
//! - [`codec`]: decoders that bound size and nesting and never panic.
//!
//! # Examples
//!
//! ```
//! use trellis_protocol::{subject::Lattice, DecodeError, DecodeLimits, Invocation};
//!
//! let lattice = Lattice::new("default").unwrap();
//! assert_eq!(lattice.rpc("MACTOR", None).unwrap(), "trellis.rpc.default.MACTOR");
//!
//! // Hostile bytes give a typed error, never a panic.
//! let err = Invocation::decode(&[0x91; 10_000], &DecodeLimits::default()).unwrap_err();
//! assert!(matches!(err, DecodeError::TooDeep { .. } | DecodeError::LengthExceedsInput { .. }));
//! ```

pub mod artifact;
pub mod codec;
pub mod contracts;
pub mod ctl;
pub mod event;
pub mod host;
pub mod invocation;
pub mod link;
pub mod policy;
pub mod provider;
pub mod subject;
pub mod wadm;

pub use codec::{
    DecodeError, DecodeLimits, EncodeError, decode_json, decode_msgpack, encode_json,
    encode_msgpack,
};
pub use ctl::CtlReply;
pub use event::{CloudEvent, EventData, EventType};
pub use host::{ActorDescription, Heartbeat, HostInventory, ProviderDescription};
pub use invocation::{
    Entity, EntityKind, Invocation, InvocationResponse, PROTOCOL_VERSION, Route, RpcError,
    RpcErrorKind, TraceContext,
};
pub use link::{ContractId, DEFAULT_LINK_NAME, InvalidContractId, LinkDefinition, SealedSecret};
pub use subject::Lattice;
