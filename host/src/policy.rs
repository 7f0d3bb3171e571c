//! An optional policy service: an outside program that decides, over a
//! NATS request, whether this host may start an actor or a provider, put a
//! link, or deliver an invocation (`docs/protocol.md` §5.16).
//!
//! Decisions are fail-closed: no answer within the timeout, no responder or
//! an answer that does not decode is a denial. Decisions that came back are
//! cached for [`PolicyConfig::cache_ttl`], so an invocation asks once per
//! (origin, target, operation) and TTL, not once per call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use trellis_protocol::policy::{PolicyDecision, PolicyRequest};
use trellis_protocol::{DecodeLimits, decode_json, encode_json};

use crate::error::{Error, ErrorKind, Result};

/// How long a decision may take. Defaults to 2 s.
pub const DEFAULT_POLICY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a decision is reused. Defaults to 60 s.
pub const DEFAULT_POLICY_CACHE_TTL: Duration = Duration::from_secs(60);

/// Most decisions cached; the cache is emptied when full. Defaults to
/// 10,000.
pub const DEFAULT_POLICY_CACHE_CAPACITY: usize = 10_000;

/// Where the policy service listens and how its answers are used. Defaults
/// in [`Default`], except the subject, which has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// The NATS subject the policy service answers on.
    pub subject: String,
    /// How long a decision may take before it counts as a denial. Defaults
    /// to [`DEFAULT_POLICY_TIMEOUT`].
    pub timeout: Duration,
    /// How long a decision is reused. Defaults to
    /// [`DEFAULT_POLICY_CACHE_TTL`].
    pub cache_ttl: Duration,
    /// Most decisions cached. Defaults to [`DEFAULT_POLICY_CACHE_CAPACITY`].
    pub cache_capacity: usize,
}

impl PolicyConfig {
    /// A policy service on `subject`, with the default timeout and cache.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            timeout: DEFAULT_POLICY_TIMEOUT,
            cache_ttl: DEFAULT_POLICY_CACHE_TTL,
            cache_capacity: DEFAULT_POLICY_CACHE_CAPACITY,
        }
    }
}

/// Asks the policy service and caches its decisions.
pub(crate) struct Policy {
    nats: async_nats::Client,
    config: PolicyConfig,
    cache: Mutex<HashMap<Vec<u8>, (PolicyDecision, Instant)>>,
}

impl Policy {
    /// A client of the policy service described by `config`.
    pub(crate) fn new(nats: async_nats::Client, config: PolicyConfig) -> Self {
        Self {
            nats,
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Asks whether `request` is permitted.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Denied`] when the service denies it, or cannot be asked
    /// (fail-closed).
    pub(crate) async fn check(&self, request: &PolicyRequest) -> Result<()> {
        let decision = self.decide(request).await;
        if decision.permitted {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Denied,
                format!("denied by policy: {}", decision.message),
            ))
        }
    }

    async fn decide(&self, request: &PolicyRequest) -> PolicyDecision {
        let body = match encode_json(request) {
            Ok(body) => body,
            Err(e) => return PolicyDecision::deny(format!("cannot encode the request: {e}")),
        };
        if let Ok(cache) = self.cache.lock()
            && let Some((decision, at)) = cache.get(&body)
            && at.elapsed() < self.config.cache_ttl
        {
            return decision.clone();
        }
        let asked = tokio::time::timeout(
            self.config.timeout,
            self.nats
                .request(self.config.subject.clone(), body.clone().into()),
        )
        .await;
        let decision = match asked {
            Ok(Ok(reply)) => {
                match decode_json::<PolicyDecision>(&reply.payload, &DecodeLimits::default()) {
                    Ok(decision) => decision,
                    Err(e) => {
                        return PolicyDecision::deny(format!(
                            "bad answer from the policy service: {e}"
                        ));
                    }
                }
            }
            Ok(Err(e)) => return PolicyDecision::deny(format!("policy service unavailable: {e}")),
            Err(_) => {
                return PolicyDecision::deny(format!(
                    "policy service did not answer within {} ms",
                    self.config.timeout.as_millis()
                ));
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= self.config.cache_capacity.max(1) {
                cache.clear();
            }
            cache.insert(body, (decision.clone(), Instant::now()));
        }
        decision
    }
}
