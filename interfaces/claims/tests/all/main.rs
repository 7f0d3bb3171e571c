//! Integration tests of signed claims: one binary, one module per topic.

// A panic in a test is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod archive;
mod golden;
mod invocation;
mod verify;

use trellis_claims::keys::{KeyKind, KeyPair, parse_seed};

/// Fixed test keys, so that golden vectors are reproducible. Never trust
/// them outside tests.
pub const ISSUER_SEED: &str = "SAAFXGJWOKBR7BEASLFN4CUAZ3VYXUMB3AERM3VU3GUGPRCUCHPM3OSCCQ";
pub const OTHER_ISSUER_SEED: &str = "SAAAEW3WT2PB34P4SODUKUMKCDEEXSOWDG2Q6UV5MUV6NZBOLYFWEVEP6Q";
pub const ACTOR_SEED: &str = "SMAOHMZAKYMTYHHJFXUJ5TRY6Y4Z3P2C6FRFI5QMNH4WQ4TUE7BA7QIQCU";
pub const PROVIDER_SEED: &str = "SVAMZM4HLUM7XJETMAK23C3WQ5IUD42QFY26YVQUALVJBZBZUH2YHGIYCA";

pub fn issuer() -> KeyPair {
    parse_seed(ISSUER_SEED, KeyKind::Account).unwrap()
}

pub fn other_issuer() -> KeyPair {
    parse_seed(OTHER_ISSUER_SEED, KeyKind::Account).unwrap()
}

pub fn actor() -> KeyPair {
    parse_seed(ACTOR_SEED, KeyKind::Actor).unwrap()
}

pub fn provider() -> KeyPair {
    parse_seed(PROVIDER_SEED, KeyKind::Provider).unwrap()
}

/// A small valid component.
pub fn component() -> Vec<u8> {
    wat::parse_str(
        r#"(component
            (core module $m (func (export "answer") (result i32) i32.const 42))
            (core instance (instantiate $m)))"#,
    )
    .unwrap()
}
