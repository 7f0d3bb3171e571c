//! Payloads of the contracts carried in [`crate::Invocation::payload`].
//!
//! Each contract's operations are named `{contract}/{interface}.{function}`
//! (see [`crate::Invocation::operation`]) and their arguments and results
//! are msgpack maps of the types here.

pub mod http;
pub mod keyvalue;
pub mod sqldb;
