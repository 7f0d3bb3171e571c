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
    /// actor and link name).
    ///
    /// # Errors
    ///
    /// The provider's message when it refuses the link's configuration; the
    /// link is then kept as refused, so calls over it are denied with that
    /// message.
    pub async fn put_link(&self, link: &LinkDefinition) -> Result<(), String> {
        let key = (link.actor_id.clone(), link.link_name.clone());
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
