//! Signed claims for Trellis actors and capability providers.
//!
//! An actor or provider may run on a host only if it carries claims — a JWT
//! signed with an Ed25519 nkey — issued by an account the host trusts. This
//! crate makes and checks those claims. It is pure: no NATS client, no
//! WebAssembly runtime.
//!
//! # Map
//!
//! - [`keys`]: nkeys key pairs and their kinds: account `A…` (issuer), actor
//!   `M…`, provider `V…`, host `N…`, cluster `C…`.
//! - [`jwt`]: signing and verifying JWTs with the algorithm pinned to
//!   `EdDSA` (the JOSE name; wasmCloud's non-standard `Ed25519` header is
//!   refused). `iss` and `sub` are required, `exp` and `nbf` checked.
//! - [`actor`]: actor claims (name, module hash, capabilities, tags,
//!   revision, version, call alias), signed into a custom section of a core
//!   module or a component by [`wasm`].
//! - [`provider`]: provider claims and provider archives (`.par.gz`).
//! - [`invocation`]: signed, replay-proof invocation tokens and the
//!   cluster-issued credentials behind them.
//! - [`secrets`]: link values sealed with curve25519 xkeys, and the
//!   lattice's secrets key derived from a cluster key.
//! - [`Error`] and [`ErrorKind`]: one kind per failed check.
//!
//! # Examples
//!
//! ```
//! use trellis_claims::actor::{sign_actor, verify_actor, ActorClaimsRequest};
//! use trellis_claims::keys::{generate, KeyKind};
//! use trellis_claims::{ErrorKind, VerifyOptions};
//!
//! let issuer = generate(KeyKind::Account);
//! let actor = generate(KeyKind::Actor);
//! let request = ActorClaimsRequest { name: "hello".into(), ..Default::default() };
//! let (signed, _) = sign_actor(b"\0asm\x01\0\0\0", &request, &issuer, &actor).unwrap();
//!
//! // Trusted issuer: the claims verify.
//! let trusted = VerifyOptions::trusting([issuer.public_key()]);
//! assert_eq!(verify_actor(&signed, &trusted).unwrap().trellis.name, "hello");
//!
//! // Anyone else: refused, with a kind to match on.
//! let stranger = VerifyOptions::trusting([generate(KeyKind::Account).public_key()]);
//! assert_eq!(verify_actor(&signed, &stranger).unwrap_err().kind(), ErrorKind::UntrustedIssuer);
//! ```

pub mod actor;
mod error;
pub mod invocation;
pub mod jwt;
pub mod keys;
pub mod provider;
pub mod secrets;
pub mod wasm;

pub use error::{Error, ErrorKind, Result};
pub use jwt::{Claims, VerifyOptions};
