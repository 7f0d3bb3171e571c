//! The link table every provider needs: which actors are linked over which
//! link name, and what the provider made of each link.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use trellis_protocol::{
    DEFAULT_LINK_NAME, DecodeLimits, Entity, LinkDefinition, RpcError, RpcErrorKind,
};

use crate::{HealthCheck, Provider};

/// One verified call from a linked actor, as [`Provider::dispatch`] gets it.
pub struct Call<'a, L> {
    /// The calling actor (its id, and the contract and link name it used).
    pub origin: &'a Entity,
    /// What the provider made of the caller's link.
    pub link: &'a L,
    /// The operation, e.g. `wasi:keyvalue/store.get`.
    pub operation: &'a str,
    /// The contract payload.
    pub payload: &'a [u8],
    /// The limits to decode the payload within.
    pub limits: &'a DecodeLimits,
}

/// What a link put into the provider: its state, or why it was refused.
type Bound<L> = Result<Arc<L>, String>;

/// Links by (actor id, link name): the definition and what it was bound to.
type LinkTable<L> = HashMap<(String, String), (LinkDefinition, Bound<L>)>;

/// A provider with its link table: links are bound as they are put and
/// released as they are deleted, and a call from an actor reaches the
/// provider only over a link that names it. [`crate::serve`] uses one; tests
/// can drive one directly, without NATS.
pub struct LinkedProvider<P: Provider> {
    provider: P,
    links: RwLock<LinkTable<P::Link>>,
    limits: DecodeLimits,
}

impl<P: Provider> LinkedProvider<P> {
    /// `provider` with no links yet, decoding payloads within the default
    /// [`DecodeLimits`].
    pub fn new(provider: P) -> Self {
        Self {
            provider,
            links: RwLock::new(HashMap::new()),
            limits: DecodeLimits::default(),
        }
    }

    /// The provider.
    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// Binds `link` (replacing and releasing an earlier link of the same
    /// actor and link name). A link equal to one already bound is left as
    /// it is.
    ///
    /// # Errors
    ///
    /// The provider's message when it refuses the link's configuration; the
    /// link is then kept as refused, so calls over it are denied with that
    /// message.
    pub async fn put_link(&self, link: &LinkDefinition) -> Result<(), String> {
        let key = (link.actor_id.clone(), link.link_name.clone());
        // The host sends every link again when the provider turns healthy:
        // a link already bound as it is stays bound, untouched.
        let unchanged = self
            .links
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .is_some_and(|(old, bound)| old == link && bound.is_ok());
        if unchanged {
            return Ok(());
        }
        let refused = self
            .links
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .filter(|(_, bound)| bound.is_err())
            .map(|(old, _)| old.clone());
        if let Some(old) = refused {
            self.provider.unbind(&old, None).await;
        }
        let bound = self.provider.bind(link).await.map(Arc::new);
        let outcome = bound.as_ref().map(|_| ()).map_err(Clone::clone);
        let previous = self
            .links
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (link.clone(), bound));
        if let Some((old, Ok(state))) = previous {
            self.provider.unbind(&old, Some(state)).await;
        }
        match &outcome {
            Ok(()) => tracing::info!(
                actor = link.actor_id,
                link_name = link.link_name,
                "link put"
            ),
            Err(e) => tracing::warn!(
                actor = link.actor_id,
                link_name = link.link_name,
                "link refused: {e}"
            ),
        }
        outcome
    }

    /// Forgets the link of `link`'s actor and link name, if it names the
    /// same provider, and releases it.
    pub async fn delete_link(&self, link: &LinkDefinition) {
        let removed = {
            let mut links = self.links.write().unwrap_or_else(PoisonError::into_inner);
            let key = (link.actor_id.clone(), link.link_name.clone());
            match links.get(&key) {
                Some((current, _)) if current.provider_id == link.provider_id => links.remove(&key),
                _ => None,
            }
        };
        if let Some((old, bound)) = removed {
            tracing::info!(
                actor = old.actor_id,
                link_name = old.link_name,
                "link deleted"
            );
            self.provider.unbind(&old, bound.ok()).await;
        }
    }

    /// Whether the actor `actor_id` has a usable link under `link_name`.
    pub fn is_linked(&self, actor_id: &str, link_name: &str) -> bool {
        matches!(self.bound(actor_id, link_name), Some(Ok(_)))
    }

    fn bound(&self, actor_id: &str, link_name: &str) -> Option<Bound<P::Link>> {
        self.links
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(actor_id.to_owned(), link_name.to_owned()))
            .map(|(_, bound)| bound.clone())
    }

    /// Answers a call of `operation` by `origin`: over its link, or denied.
    ///
    /// # Errors
    ///
    /// [`RpcErrorKind::Denied`] when `origin` has no link (or a refused
    /// one) under its link name; otherwise what [`Provider::dispatch`]
    /// returns.
    pub async fn call(
        &self,
        origin: &Entity,
        operation: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, RpcError> {
        let link_name = origin.link_name.as_deref().unwrap_or(DEFAULT_LINK_NAME);
        let link = match self.bound(&origin.id, link_name) {
            Some(Ok(link)) => link,
            Some(Err(reason)) => {
                return Err(RpcError::new(
                    RpcErrorKind::Denied,
                    format!(
                        "the link {link_name} of actor {} was refused: {reason}",
                        origin.id
                    ),
                ));
            }
            None => {
                return Err(RpcError::new(
                    RpcErrorKind::Denied,
                    format!(
                        "no link from actor {} under link name {link_name} to this provider",
                        origin.id
                    ),
                ));
            }
        };
        self.provider
            .dispatch(Call {
                origin,
                link: &link,
                operation,
                payload,
                limits: &self.limits,
            })
            .await
    }

    /// The provider's health.
    pub async fn health(&self) -> HealthCheck {
        self.provider.health().await
    }

    /// Releases every link, then shuts the provider down.
    pub async fn shutdown(&self) {
        let links: Vec<_> = self
            .links
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, v)| v)
            .collect();
        for (link, bound) in links {
            self.provider.unbind(&link, bound.ok()).await;
        }
        self.provider.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use trellis_protocol::ContractId;

    use super::*;

    /// Counts binds and unbinds.
    #[derive(Default)]
    struct Counting {
        binds: AtomicUsize,
        unbinds: AtomicUsize,
    }

    impl Provider for Counting {
        type Link = ();

        async fn bind(&self, _link: &LinkDefinition) -> Result<(), String> {
            self.binds.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        async fn unbind(&self, _link: &LinkDefinition, _bound: Option<Arc<()>>) {
            self.unbinds.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn link(config: &str) -> LinkDefinition {
        LinkDefinition::new(
            "MACTOR",
            ContractId::new("wasi:keyvalue").unwrap_or_else(|_| unreachable!()),
            DEFAULT_LINK_NAME,
            "VPROVIDER",
        )
        .with_config("bucket", config)
    }

    #[tokio::test]
    async fn an_identical_link_put_again_is_left_bound() {
        let linked = LinkedProvider::new(Counting::default());
        assert!(linked.put_link(&link("a")).await.is_ok());
        assert!(linked.put_link(&link("a")).await.is_ok());
        assert_eq!(linked.provider().binds.load(Ordering::SeqCst), 1);
        assert_eq!(linked.provider().unbinds.load(Ordering::SeqCst), 0);

        // A changed link is bound anew and the old one released.
        assert!(linked.put_link(&link("b")).await.is_ok());
        assert_eq!(linked.provider().binds.load(Ordering::SeqCst), 2);
        assert_eq!(linked.provider().unbinds.load(Ordering::SeqCst), 1);
    }
}
