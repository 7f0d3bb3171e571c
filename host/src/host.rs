//! The host: joins a lattice, runs actors, answers the control interface,
//! sends heartbeats and publishes events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, watch};
use trellis_claims::VerifyOptions;
use trellis_claims::invocation::{
    DEFAULT_CREDENTIAL_TTL, InvocationSigner, InvocationVerifier, VerifierSettings,
    issue_credential,
};
use trellis_claims::keys::{KeyKind, KeyPair, generate, parse_seed};
use trellis_claims::provider::ArchiveLimits;
use trellis_protocol::event::{
    ActorFailedData, ActorScaledData, ActorStartedData, ActorStoppedData, ActorUpdatedData,
    HostStartedData, HostStoppedData, LabelsChangedData, LinkDeletedData, LinkSetData,
};
use trellis_protocol::provider::NatsConnection;
use trellis_protocol::{
    ActorDescription, ContractId, Heartbeat, HostInventory, Lattice, LinkDefinition,
    ProviderDescription,
};

use crate::actors::{self, RunningActor, ServeContext};
use crate::config::HostConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::events::EventPublisher;
use crate::providers::{LinkChange, RunningProvider};
use crate::rpc::LatticeClient;
use crate::runtime::Runtime;
use trellis_lattice_client::oci::ArtifactKind;
use trellis_protocol::artifact::ArtifactRef;
use trellis_protocol::policy::{PolicyAction, PolicyRequest};

pub(crate) struct HostInner {
    pub(crate) id: String,
    pub(crate) lattice: Lattice,
    pub(crate) config: HostConfig,
    pub(crate) labels: std::sync::RwLock<BTreeMap<String, String>>,
    pub(crate) nats: async_nats::Client,
    /// The connection serving the control interface: its own when
    /// [`HostConfig::ctl_nats_auth`] is set, else `nats`.
    pub(crate) ctl_nats: async_nats::Client,
    pub(crate) bucket: async_nats::jetstream::kv::Store,
    pub(crate) client: Arc<LatticeClient>,
    pub(crate) serve: ServeContext,
    pub(crate) trust: VerifyOptions,
    pub(crate) events: EventPublisher,
    pub(crate) actors: Mutex<HashMap<String, Arc<RunningActor>>>,
    pub(crate) providers: Mutex<HashMap<(String, String), Arc<RunningProvider>>>,
    pub(crate) cluster: Arc<KeyPair>,
    pub(crate) cluster_issuers: Vec<String>,
    /// The lattice's secrets key: link secrets are sealed to it.
    pub(crate) secrets: Arc<crate::secrets::LatticeSecrets>,
    /// Checks control requests against [`HostConfig::ctl_issuers`].
    pub(crate) ctl_verifier: InvocationVerifier,
    /// The policy service, if one is configured.
    pub(crate) policy: Option<Arc<crate::policy::Policy>>,
    /// Pulls artifacts from the lattice's artifact store into the cache.
    pub(crate) puller: crate::pull::Puller,
    pub(crate) started: Instant,
    pub(crate) stop_tx: watch::Sender<bool>,
}

/// A running host. Dropping it does not stop it; call [`Host::stop`].
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<HostInner>,
}

impl Host {
    /// Starts a host: connects to NATS, opens the lattice bucket, starts the
    /// control interface, heartbeats and the link watcher, and announces
    /// itself with a `host_started` event.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for an invalid lattice name, seed or label;
    /// [`ErrorKind::Nats`] if NATS or JetStream cannot be reached.
    pub async fn start(config: HostConfig) -> Result<Self> {
        let config_err = |m: String| Error::new(ErrorKind::Config, m);
        let lattice =
            Lattice::new(config.lattice.clone()).map_err(|e| config_err(e.to_string()))?;
        let key = match &config.host_seed {
            Some(seed) => parse_seed(seed, KeyKind::Host)
                .map_err(|e| config_err(format!("host seed: {e}")))?,
            None => generate(KeyKind::Host),
        };
        let cluster: KeyPair = match &config.cluster_seed {
            Some(seed) => parse_seed(seed, KeyKind::Cluster)
                .map_err(|e| config_err(format!("cluster seed: {e}")))?,
            None => generate(KeyKind::Cluster),
        };
        let secrets = Arc::new(crate::secrets::LatticeSecrets::new(&config, &cluster)?);
        let id = key.public_key();
        let mut labels = crate::labels::builtin();
        for (k, v) in &config.labels {
            crate::labels::insert(&mut labels, k, v).map_err(|e| config_err(e.to_string()))?;
        }

        let connection = trellis_protocol::provider::NatsConnection {
            urls: config.nats.urls.clone(),
            auth: config.nats.auth.clone(),
            tls: config.nats.tls.clone(),
            subscription_capacity: config.nats.subscription_capacity,
        };
        let nats = trellis_lattice_client::connect(
            &connection,
            &format!("trellis-host-{id}"),
            config.nats.request_timeout,
        )
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, e.to_string()))?;
        let ctl_nats = match &config.ctl_nats_auth {
            Some(auth) => {
                let ctl = trellis_protocol::provider::NatsConnection {
                    auth: auth.clone(),
                    ..connection.clone()
                };
                trellis_lattice_client::connect(
                    &ctl,
                    &format!("trellis-host-ctl-{id}"),
                    config.nats.request_timeout,
                )
                .await
                .map_err(|e| Error::new(ErrorKind::Nats, format!("control connection: {e}")))?
            }
            None => nats.clone(),
        };
        let server_max = nats.server_info().max_payload;
        let max_payload = config
            .max_payload_bytes
            .unwrap_or(server_max)
            .min(server_max.max(1));
        let bucket = crate::lattice_data::open_bucket(
            &nats,
            lattice.as_str(),
            config.lattice_bucket_max_bytes,
            config.nats.request_timeout,
        )
        .await?;

        let credential = issue_credential(&cluster, &id, lattice.as_str(), DEFAULT_CREDENTIAL_TTL)?;
        let signer = InvocationSigner::new(key, credential, config.invocation_token_ttl)?;
        let mut issuers = config.cluster_issuers.clone();
        issuers.push(cluster.public_key());
        let verifier_settings = VerifierSettings {
            clock_skew_secs: config.clock_skew.as_secs(),
            ..VerifierSettings::default()
        };
        let verifier = Arc::new(InvocationVerifier::new(
            lattice.as_str(),
            issuers.clone(),
            verifier_settings.clone(),
        ));
        let rpc = trellis_lattice_client::RpcClient::new(nats.clone(), signer, max_payload);
        let client = Arc::new(LatticeClient::new(
            rpc,
            lattice.clone(),
            config.provider_call_timeout,
        ));
        let mut runtime = Runtime::new(config.limits.clone())?;
        if config.compiled_cache {
            runtime = runtime.with_compiled_cache(config.provider_cache_dir.join("compiled"));
        }
        let runtime = Arc::new(runtime);
        let policy = config
            .policy
            .clone()
            .map(|p| Arc::new(crate::policy::Policy::new(nats.clone(), p)));
        let serve = ServeContext {
            runtime,
            capabilities: client.clone(),
            verifier,
            nats: nats.clone(),
            rpc_timeout: config.rpc_timeout,
            max_pending_invocations: config.max_pending_invocations,
            max_payload,
            policy: policy.clone(),
            lattice: lattice.to_string(),
            host_id: id.clone(),
        };
        let trust = VerifyOptions::trusting(config.trusted_issuers.iter().cloned());
        let events = EventPublisher::new(
            nats.clone(),
            lattice.clone(),
            id.clone(),
            client.rpc().shared_signer(),
        );
        let (stop_tx, _) = watch::channel(false);
        for operator in &config.ctl_issuers {
            trellis_claims::keys::expect_public_key(operator, KeyKind::Operator)
                .map_err(|e| config_err(format!("control issuer: {e}")))?;
        }
        let ctl_verifier = InvocationVerifier::control(
            lattice.as_str(),
            config.ctl_issuers.iter().cloned(),
            verifier_settings,
        );
        let puller = crate::pull::Puller::new(
            nats.clone(),
            lattice.as_str(),
            config.provider_cache_dir.join("artifacts"),
            config.pull_timeout,
            config.registries.clone(),
        );
        let inner = Arc::new(HostInner {
            id,
            lattice,
            config,
            labels: std::sync::RwLock::new(labels),
            nats,
            ctl_nats,
            bucket,
            client,
            serve,
            trust,
            events,
            actors: Mutex::new(HashMap::new()),
            providers: Mutex::new(HashMap::new()),
            cluster: Arc::new(cluster),
            cluster_issuers: issuers,
            secrets,
            ctl_verifier,
            policy,
            puller,
            started: Instant::now(),
            stop_tx,
        });
        let host = Host { inner };
        host.spawn_background().await?;
        host.inner
            .events
            .publish(HostStartedData {
                labels: host.labels(),
            })
            .await;
        tracing::info!(host = %host.id(), lattice = %host.inner.lattice, "host started");
        Ok(host)
    }

    async fn spawn_background(&self) -> Result<()> {
        let stop = self.inner.stop_tx.subscribe();
        tokio::spawn(crate::lattice_data::watch(self.clone()));
        crate::control::spawn(self.clone()).await?;
        let host = self.clone();
        tokio::spawn(async move {
            let mut stop = stop;
            let mut ticker = tokio::time::interval(host.inner.config.heartbeat_interval);
            // Renew the credential at half its lifetime; it was issued at start.
            let half_life = DEFAULT_CREDENTIAL_TTL / 2;
            let mut renew =
                tokio::time::interval_at(tokio::time::Instant::now() + half_life, half_life);
            loop {
                tokio::select! {
                    _ = renew.tick() => host.renew_credential(),
                    _ = ticker.tick() => {
                        let interval_ms = u64::try_from(host.inner.config.heartbeat_interval.as_millis()).unwrap_or(u64::MAX);
                        let heartbeat = Heartbeat { inventory: host.inventory().await, interval_ms };
                        host.inner.events.publish(heartbeat).await;
                    }
                    _ = stop.changed() => break,
                }
            }
        });
        Ok(())
    }

    fn renew_credential(&self) {
        let signer = self.inner.client.rpc().signer();
        match issue_credential(
            &self.inner.cluster,
            &self.inner.id,
            self.inner.lattice.as_str(),
            DEFAULT_CREDENTIAL_TTL,
        ) {
            Ok(credential) => signer.set_credential(credential),
            Err(e) => tracing::error!("cannot renew the host credential: {e}"),
        }
    }

    /// The host's public key (`N…`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Actor instances alive on this host now, all actors together (each
    /// holds a slot of the instance pool), a count.
    pub fn live_instances(&self) -> usize {
        self.inner.serve.runtime.live_instances()
    }

    /// Components this host compiled since it started, a count (a start of
    /// a module already compiled, or being compiled, does not count).
    pub fn compilations(&self) -> u64 {
        self.inner.serve.runtime.compilations()
    }

    /// The public half (`X…`) of the lattice's secrets key as this host
    /// holds it ([`HostConfig::secrets_seed`]): link secrets are sealed
    /// to it.
    pub fn secrets_key(&self) -> String {
        self.inner.secrets.public_key()
    }

    /// The NATS client the host uses.
    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.nats
    }

    /// The host's labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.inner
            .labels
            .read()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Sets a label.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadRequest`] for an invalid or built-in label, or a
    /// new one beyond [`MAX_LABELS`](crate::labels::MAX_LABELS).
    pub async fn put_label(&self, key: &str, value: &str) -> Result<()> {
        let bad = |e: crate::labels::LabelError| Error::new(ErrorKind::BadRequest, e.to_string());
        crate::labels::validate(key, value).map_err(bad)?;
        {
            let mut labels = self
                .inner
                .labels
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            crate::labels::insert(&mut labels, key, value).map_err(bad)?;
        }
        self.labels_changed().await;
        Ok(())
    }

    /// Asks the policy service, if one is configured, whether this host
    /// may do `action`.
    async fn ask_policy(&self, action: PolicyAction) -> Result<()> {
        let Some(policy) = &self.inner.policy else {
            return Ok(());
        };
        let request = PolicyRequest {
            lattice: self.inner.lattice.to_string(),
            host_id: self.inner.id.clone(),
            action,
        };
        policy.check(&request).await
    }

    async fn labels_changed(&self) {
        let labels = self.labels();
        self.inner
            .events
            .publish(LabelsChangedData { labels })
            .await;
    }

    /// Deletes a label.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadRequest`] for a built-in label, [`ErrorKind::NotFound`]
    /// for a label that is not set.
    pub async fn delete_label(&self, key: &str) -> Result<()> {
        if key.starts_with(crate::labels::BUILTIN_PREFIX) {
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!("label {key} is built in"),
            ));
        }
        let removed = self
            .inner
            .labels
            .write()
            .map(|mut l| l.remove(key).is_some())
            .unwrap_or(false);
        if !removed {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("label {key} is not set"),
            ));
        }
        self.labels_changed().await;
        Ok(())
    }

    /// What the host runs.
    pub async fn inventory(&self) -> HostInventory {
        let actors = self.inner.actors.lock().await;
        let mut described: Vec<ActorDescription> = actors.values().map(|a| a.describe()).collect();
        described.sort_by(|a, b| a.id.cmp(&b.id));
        HostInventory {
            host_id: self.inner.id.clone(),
            lattice: self.inner.lattice.to_string(),
            labels: self.labels(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_ms: u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            actors: described,
            providers: {
                let providers = self.inner.providers.lock().await;
                let mut described: Vec<ProviderDescription> =
                    providers.values().map(|p| p.description.clone()).collect();
                described.sort_by(|a, b| (&a.id, &a.link_name).cmp(&(&b.id, &b.link_name)));
                described
            },
        }
    }

    /// Artifacts this host has pulled from the lattice's artifact store
    /// since it started, a count; starts served from its cache are not
    /// counted.
    pub fn artifact_pulls(&self) -> u64 {
        self.inner.puller.pulled()
    }

    /// Invocations that `actor_id` has answered successfully on this host.
    pub async fn invocations_served(&self, actor_id: &str) -> Option<u64> {
        self.inner
            .actors
            .lock()
            .await
            .get(actor_id)
            .map(|a| a.served())
    }

    /// Reads an actor module from `actor_ref`: a file under the artifact
    /// directories, or an artifact of the lattice's store, pulled into the
    /// cache unless it is there already.
    async fn read_module(&self, actor_ref: &str) -> Result<Vec<u8>> {
        let cfg = &self.inner.config;
        let max = cfg.limits.max_component_bytes;
        match parse_reference(actor_ref)? {
            ArtifactRef::File(path) => crate::artifacts::read(&path, &cfg.artifact_dirs, max).await,
            ArtifactRef::Lattice(reference) => {
                let path = self.inner.puller.fetch(&reference, max).await?;
                let cache = [self.inner.puller.cache_dir().to_path_buf()];
                crate::artifacts::read(&path.to_string_lossy(), &cache, max).await
            }
            ArtifactRef::Oci(reference) => {
                let path = self
                    .inner
                    .puller
                    .fetch_oci(&reference, ArtifactKind::Component, max)
                    .await?;
                let cache = [self.inner.puller.cache_dir().to_path_buf()];
                crate::artifacts::read(&path.to_string_lossy(), &cache, max).await
            }
        }
    }

    /// Starts an actor from a file path.
    ///
    /// # Errors
    ///
    /// As [`Host::start_actor_bytes`]; [`ErrorKind::BadRequest`] (with the
    /// message [`crate::artifacts::REFUSED`] only) for a path that is not a
    /// regular file under [`HostConfig::artifact_dirs`];
    /// [`ErrorKind::InvalidComponent`] for a file over the component size
    /// limit.
    pub async fn start_actor(
        &self,
        actor_ref: &str,
        max_instances: u32,
        annotations: BTreeMap<String, String>,
    ) -> Result<ActorDescription> {
        check_annotations(&annotations)?;
        let wasm = match self.read_module(actor_ref).await {
            Ok(w) => w,
            Err(e) => {
                // A refused path is not broadcast: only its requester sees it.
                self.actor_failed("", &e).await;
                return Err(e);
            }
        };
        self.start_actor_bytes(wasm, actor_ref.to_owned(), max_instances, annotations)
            .await
    }

    async fn actor_failed(&self, image_ref: &str, error: &Error) {
        let kind = error.claims_kind().map(|k| k.code());
        self.inner
            .events
            .publish(ActorFailedData {
                image_ref: image_ref.to_owned(),
                error: error.to_string(),
                claims_error: kind.map(str::to_owned),
            })
            .await;
    }

    /// Starts an actor from its bytes: verifies its claims against the
    /// trusted issuers, compiles it and subscribes it. Starting an actor
    /// that already runs with the same module scales it instead.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Claims`] when its claims do not verify (unsigned,
    /// tampered, expired, untrusted issuer, ...), [`ErrorKind::InvalidComponent`]
    /// for bytes that are not a valid component, [`ErrorKind::Conflict`] when
    /// the actor already runs with another module, [`ErrorKind::BadRequest`]
    /// for 0 instances or annotations over the limits
    /// ([`trellis_protocol::ctl::validate_annotations`]).
    pub async fn start_actor_bytes(
        &self,
        wasm: Vec<u8>,
        image_ref: String,
        max_instances: u32,
        annotations: BTreeMap<String, String>,
    ) -> Result<ActorDescription> {
        if max_instances == 0 {
            return Err(Error::new(
                ErrorKind::BadRequest,
                "max_instances must be at least 1",
            ));
        }
        check_annotations(&annotations)?;
        self.check_instance_share(max_instances)?;
        let loaded = match actors::load(
            &self.inner.serve.runtime,
            wasm,
            image_ref.clone(),
            &self.inner.trust,
        )
        .await
        {
            Ok(l) => l,
            Err(e) => {
                self.actor_failed(&image_ref, &e).await;
                return Err(e);
            }
        };
        let id = loaded.claims.sub.clone();
        self.ask_policy(PolicyAction::ActorStart {
            actor_id: id.clone(),
            issuer: loaded.claims.iss.clone(),
            name: loaded.claims.trellis.name.clone(),
            caps: loaded.claims.trellis.caps.clone(),
        })
        .await?;
        let mut actors = self.inner.actors.lock().await;
        if let Some(existing) = actors.get(&id) {
            if existing.module_hash() != loaded.claims.trellis.module_hash {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("actor {id} already runs another module; update it instead"),
                ));
            }
            existing.scale(max_instances, annotations);
            let description = existing.describe();
            drop(actors);
            self.inner
                .events
                .publish(ActorScaledData(description.clone()))
                .await;
            return Ok(description);
        }
        crate::lattice_data::put_claims(&self.inner.bucket, &id, &loaded.token).await?;
        let subject = self
            .inner
            .lattice
            .rpc(&id, None)
            .map_err(|e| Error::new(ErrorKind::BadRequest, e.to_string()))?;
        let actor = RunningActor::start(
            self.inner.serve.clone(),
            subject,
            loaded,
            max_instances,
            annotations,
        )
        .await?;
        let description = actor.describe();
        actors.insert(id, actor);
        drop(actors);
        self.inner
            .events
            .publish(ActorStartedData(description.clone()))
            .await;
        Ok(description)
    }

    /// Changes an actor's maximum concurrent instances; 0 stops it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] if the actor does not run here.
    pub async fn scale_actor(
        &self,
        actor_id: &str,
        max_instances: u32,
        annotations: BTreeMap<String, String>,
    ) -> Result<Option<ActorDescription>> {
        check_annotations(&annotations)?;
        if max_instances == 0 {
            self.stop_actor(actor_id).await?;
            return Ok(None);
        }
        self.check_instance_share(max_instances)?;
        let actors = self.inner.actors.lock().await;
        let actor = actors.get(actor_id).ok_or_else(|| not_running(actor_id))?;
        actor.scale(max_instances, annotations);
        let description = actor.describe();
        drop(actors);
        self.inner
            .events
            .publish(ActorScaledData(description.clone()))
            .await;
        Ok(Some(description))
    }

    /// Refuses a `max_instances` that would let one actor take the pool's
    /// reserve ([`crate::RuntimeLimits::reserved_instances`]).
    fn check_instance_share(&self, max_instances: u32) -> Result<()> {
        let limits = &self.inner.config.limits;
        let share = limits
            .max_total_instances
            .saturating_sub(limits.reserved_instances)
            .max(1);
        if max_instances > share {
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!(
                    "max_instances {max_instances} is over the {share} one actor may use on this host \
                     ({} in the pool, {} reserved for the others)",
                    limits.max_total_instances, limits.reserved_instances
                ),
            ));
        }
        Ok(())
    }

    /// Replaces a running actor's module without dropping in-flight
    /// invocations. The new module must carry claims for the same actor key.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`], [`ErrorKind::Claims`], [`ErrorKind::InvalidComponent`],
    /// or [`ErrorKind::Conflict`] when the new claims name another actor.
    pub async fn update_actor(&self, actor_id: &str, new_ref: &str) -> Result<ActorDescription> {
        let loaded = match self.read_module(new_ref).await {
            Ok(wasm) => {
                actors::load(
                    &self.inner.serve.runtime,
                    wasm,
                    new_ref.to_owned(),
                    &self.inner.trust,
                )
                .await
            }
            Err(e) => Err(e),
        };
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                self.actor_failed(new_ref, &e).await;
                return Err(e);
            }
        };
        if loaded.claims.sub != actor_id {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{new_ref} is signed for actor {}, not {actor_id}",
                    loaded.claims.sub
                ),
            ));
        }
        let token = loaded.token.clone();
        let actors = self.inner.actors.lock().await;
        let actor = actors.get(actor_id).ok_or_else(|| not_running(actor_id))?;
        actor.update(loaded);
        crate::lattice_data::put_claims(&self.inner.bucket, actor_id, &token).await?;
        let description = actor.describe();
        drop(actors);
        self.inner
            .events
            .publish(ActorUpdatedData(description.clone()))
            .await;
        Ok(description)
    }

    /// Stops an actor after its in-flight invocations finish (up to the
    /// drain timeout).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] if the actor does not run here.
    pub async fn stop_actor(&self, actor_id: &str) -> Result<()> {
        let actor = self
            .inner
            .actors
            .lock()
            .await
            .remove(actor_id)
            .ok_or_else(|| not_running(actor_id))?;
        let description = actor.describe();
        actor.stop(self.inner.config.drain_timeout).await;
        self.inner
            .events
            .publish(ActorStoppedData(description))
            .await;
        Ok(())
    }

    /// Puts a link definition into the lattice bucket; every host picks it
    /// up. Its secrets stay sealed: they must open with the lattice's
    /// secrets key, and are stored as they came.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadRequest`] for an invalid link or a secret not sealed
    /// to the lattice's secrets key, [`ErrorKind::Denied`] when the policy
    /// service refuses it, [`ErrorKind::Nats`].
    pub async fn put_link(&self, link: LinkDefinition) -> Result<()> {
        link.validate()
            .map_err(|e| Error::with_source(ErrorKind::BadRequest, e))?;
        self.inner.secrets.check(&link)?;
        self.ask_policy(PolicyAction::LinkPut {
            actor_id: link.actor_id.clone(),
            contract_id: link.contract_id.to_string(),
            link_name: link.link_name.clone(),
            provider_id: link.provider_id.clone(),
        })
        .await?;
        crate::lattice_data::put_link(&self.inner.bucket, &self.inner.cluster, &link).await?;
        // Apply locally at once, so that this host's actors see it before the watch echoes it.
        self.inner.client.put_link(link.clone());
        self.notify_provider(&link, LinkChange::Put).await;
        self.inner.events.publish(LinkSetData(link)).await;
        Ok(())
    }

    /// Deletes a link definition.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] if there is no such link, [`ErrorKind::Nats`].
    pub async fn delete_link(
        &self,
        actor_id: &str,
        contract_id: &ContractId,
        link_name: &str,
    ) -> Result<()> {
        let key = trellis_protocol::link::link_bucket_key(actor_id, contract_id, link_name);
        let existing = self.inner.client.link(actor_id, contract_id, link_name);
        if existing.is_none() {
            return Err(Error::new(ErrorKind::NotFound, format!("no link {key}")));
        }
        crate::lattice_data::delete_link(&self.inner.bucket, &key).await?;
        self.inner.client.remove_link(&key);
        if let Some(link) = &existing {
            self.notify_provider(link, LinkChange::Delete).await;
        }
        self.inner
            .events
            .publish(LinkDeletedData {
                actor_id: actor_id.to_owned(),
                contract_id: contract_id.clone(),
                link_name: link_name.to_owned(),
            })
            .await;
        Ok(())
    }

    /// Tells the link's provider, if it runs on this host, about a link
    /// change, signed with the host's key, with the link's secrets sealed
    /// to that provider process.
    pub(crate) async fn notify_provider(&self, link: &LinkDefinition, change: LinkChange) {
        let recipient = {
            let providers = self.inner.providers.lock().await;
            match providers.get(&(link.provider_id.clone(), link.link_name.clone())) {
                Some(provider) => provider.secrets_key.clone(),
                None => return,
            }
        };
        crate::providers::notify_link(
            &self.inner.client,
            &self.inner.lattice,
            &self.inner.id,
            link,
            change,
            crate::providers::SealFor {
                secrets: &self.inner.secrets,
                recipient: &recipient,
            },
        )
        .await;
    }

    /// Starts a capability provider from a signed provider archive
    /// (`.par.gz`), or, in development mode only, from a plain binary (whose
    /// `config` must then name its `contract_id`). The process gets a cleared
    /// environment and its host data on stdin, and is restarted whenever it
    /// dies.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Claims`] when the archive's claims or binary hashes do
    /// not verify, [`ErrorKind::NotFound`] without a binary for this
    /// target, [`ErrorKind::BadRequest`] for a plain binary outside
    /// development mode, [`ErrorKind::Conflict`] when it already runs here
    /// with this link name.
    pub async fn start_provider(
        &self,
        provider_ref: &str,
        link_name: &str,
        config: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) -> Result<ProviderDescription> {
        let bad = |m: String| Error::new(ErrorKind::BadRequest, m);
        trellis_protocol::subject::validate_token(
            trellis_protocol::subject::TokenKind::LinkName,
            link_name,
        )
        .map_err(|e| bad(e.to_string()))?;
        check_annotations(&annotations)?;
        let cfg = &self.inner.config;
        // A provider archive is compressed, so its packed size is at most
        // its unpacked limit.
        let max_archive =
            usize::try_from(ArchiveLimits::default().max_total_bytes).unwrap_or(usize::MAX);
        let (path, dirs, pulled) = match parse_reference(provider_ref)? {
            ArtifactRef::File(path) => (path, cfg.artifact_dirs.clone(), false),
            ArtifactRef::Lattice(reference) => {
                let path = self.inner.puller.fetch(&reference, max_archive).await?;
                let dirs = vec![self.inner.puller.cache_dir().to_path_buf()];
                (path.to_string_lossy().into_owned(), dirs, true)
            }
            ArtifactRef::Oci(reference) => {
                let path = self
                    .inner
                    .puller
                    .fetch_oci(&reference, ArtifactKind::ProviderArchive, max_archive)
                    .await?;
                let dirs = vec![self.inner.puller.cache_dir().to_path_buf()];
                (path.to_string_lossy().into_owned(), dirs, true)
            }
        };
        let (binary, description, issuer) = if pulled
            || path.ends_with(".par.gz")
            || path.ends_with(".par")
        {
            let (binary, claims) =
                crate::providers::unpack(&path, &dirs, &self.inner.trust, &cfg.provider_cache_dir)
                    .await?;
            let contract_id = ContractId::new(claims.trellis.contract_id.clone())
                .map_err(|e| bad(e.to_string()))?;
            let description = ProviderDescription {
                id: claims.sub.clone(),
                name: claims.trellis.name.clone(),
                contract_id,
                link_name: link_name.to_owned(),
                image_ref: provider_ref.to_owned(),
                revision: claims.trellis.rev,
                annotations,
            };
            (binary, description, claims.iss.clone())
        } else if cfg.dev_mode {
            let contract_id = crate::providers::dev_contract(&config)?;
            crate::artifacts::open(&path, &dirs)?;
            let binary = std::path::PathBuf::from(&path);
            let name = binary.file_stem().map_or_else(
                || provider_ref.to_owned(),
                |s| s.to_string_lossy().into_owned(),
            );
            let id = config
                .get("provider_id")
                .cloned()
                .unwrap_or_else(|| generate(KeyKind::Provider).public_key());
            trellis_claims::keys::expect_public_key(&id, KeyKind::Provider)?;
            let description = ProviderDescription {
                id,
                name,
                contract_id,
                link_name: link_name.to_owned(),
                image_ref: provider_ref.to_owned(),
                revision: 0,
                annotations,
            };
            (binary, description, String::new())
        } else {
            return Err(bad(format!(
                "{provider_ref} is not a provider archive (.par.gz); plain binaries run only in development mode"
            )));
        };
        self.ask_policy(PolicyAction::ProviderStart {
            provider_id: description.id.clone(),
            issuer,
            name: description.name.clone(),
            contract_id: description.contract_id.to_string(),
            link_name: link_name.to_owned(),
        })
        .await?;
        let key = (description.id.clone(), link_name.to_owned());
        let mut providers = self.inner.providers.lock().await;
        if providers.contains_key(&key) {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("provider {} already serves link {link_name} here", key.0),
            ));
        }
        let subjects = self
            .inner
            .lattice
            .provider(&description.id, link_name, &self.inner.id)
            .map_err(|e| bad(e.to_string()))?;
        let links = self
            .links()
            .into_iter()
            .filter(|l| l.provider_id == description.id && l.link_name == link_name)
            .collect();
        let nats = NatsConnection {
            urls: cfg.nats.urls.clone(),
            auth: cfg
                .provider_nats_auth
                .clone()
                .unwrap_or_else(|| cfg.nats.auth.clone()),
            tls: cfg.nats.tls.clone(),
            subscription_capacity: cfg.nats.subscription_capacity,
        };
        let (host_data, secrets_key) = crate::providers::host_data(
            &self.inner.secrets,
            self.inner.lattice.as_str(),
            &self.inner.id,
            &description.id,
            link_name,
            nats,
            self.inner.cluster_issuers.clone(),
            links,
            config,
            cfg.provider_log_level.clone(),
        )?;
        let supervision = crate::providers::Supervision {
            events: self.inner.events.clone(),
            client: self.inner.client.clone(),
            secrets: self.inner.secrets.clone(),
            restart_delay: cfg.provider_restart_delay,
            restart_max_delay: cfg.provider_restart_max_delay,
            shutdown_timeout: cfg.provider_shutdown_timeout,
            health_interval: cfg.provider_health_interval,
            hung_after: cfg.provider_hung_after,
            cluster: self.inner.cluster.clone(),
            credential_ttl: cfg.provider_credential_ttl,
        };
        // Each spawn checks the binary against this hash, so a binary
        // changed on disk after it was verified is never run.
        let binary_sha256 = crate::artifacts::sha256_file(&binary).await?;
        let launch = crate::providers::Launch {
            binary,
            binary_sha256,
            description: description.clone(),
            subjects,
            host_data,
            secrets_key,
        };
        providers.insert(key, crate::providers::supervise(launch, supervision));
        Ok(description)
    }

    /// Stops a provider: asks it to shut down, kills it if it does not
    /// exit in time, and reaps it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] if it does not run here with that link name.
    pub async fn stop_provider(&self, provider_id: &str, link_name: &str) -> Result<()> {
        let provider = self
            .inner
            .providers
            .lock()
            .await
            .remove(&(provider_id.to_owned(), link_name.to_owned()))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("provider {provider_id} does not serve link {link_name} here"),
                )
            })?;
        provider.stop().await;
        Ok(())
    }

    /// Waits until the provider serving `link_name` answers its health
    /// subject. The SDK subscribes that subject last, so from then on link
    /// definitions put in the lattice reach the provider. Each health
    /// request waits at most 1 s; between them it pauses 50 ms.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadRequest`] for ids that cannot form subjects,
    /// [`ErrorKind::Timeout`] if no answer comes within `timeout`.
    pub async fn wait_for_provider(
        &self,
        provider_id: &str,
        link_name: &str,
        timeout: Duration,
    ) -> Result<()> {
        let health = self
            .inner
            .lattice
            .provider(provider_id, link_name, &self.inner.id)
            .map_err(|e| Error::new(ErrorKind::BadRequest, e.to_string()))?
            .health;
        if crate::providers::wait_until_answering(&self.inner.client, provider_id, &health, timeout)
            .await
        {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Timeout,
            format!(
                "provider {provider_id} ({link_name}) did not answer its health check within {} ms",
                timeout.as_millis()
            ),
        ))
    }

    /// Asks a provider this host started for its health, signed with the
    /// host's key, waiting up to `timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadRequest`] for an invalid id or link name;
    /// [`ErrorKind::Timeout`] when the provider does not answer.
    pub async fn provider_health(
        &self,
        provider_id: &str,
        link_name: &str,
        timeout: Duration,
    ) -> Result<trellis_protocol::provider::HealthCheck> {
        let subjects = self
            .inner
            .lattice
            .provider(provider_id, link_name, &self.inner.id)
            .map_err(|e| Error::with_source(ErrorKind::BadRequest, e))?;
        crate::providers::ask_health(&self.inner.client, provider_id, &subjects.health, timeout)
            .await
            .map_err(|e| Error::with_source(ErrorKind::Timeout, e))
    }

    /// The process id of a provider's current process, if it runs.
    pub async fn provider_pid(&self, provider_id: &str, link_name: &str) -> Option<u32> {
        self.inner
            .providers
            .lock()
            .await
            .get(&(provider_id.to_owned(), link_name.to_owned()))
            .and_then(|p| p.pid())
    }

    /// The claims of every actor started in the lattice.
    pub fn claims(&self) -> Vec<serde_json::Value> {
        self.inner.client.claims()
    }

    /// Every link definition in the lattice.
    pub fn links(&self) -> Vec<LinkDefinition> {
        self.inner.client.links()
    }

    /// Stops the host: no new invocations, in-flight ones drain (up to
    /// `drain`, or the configured drain timeout), a `host_stopped` event,
    /// and the NATS connection is flushed.
    pub async fn stop(&self, drain: Option<Duration>) {
        if self.inner.stop_tx.send_replace(true) {
            return;
        }
        let drain = drain.unwrap_or(self.inner.config.drain_timeout);
        let actors = take_all(&self.inner.actors).await;
        futures::future::join_all(actors.iter().map(|a| a.stop(drain))).await;
        let providers = take_all(&self.inner.providers).await;
        futures::future::join_all(providers.iter().map(|p| p.stop())).await;
        self.inner.events.publish(HostStoppedData {}).await;
        let _ = tokio::time::timeout(
            self.inner.config.nats.request_timeout,
            self.inner.nats.flush(),
        )
        .await;
        tracing::info!(host = %self.inner.id, "host stopped");
    }

    /// Resolves once the host has been asked to stop (through
    /// [`Host::stop`] or the control interface).
    pub async fn stopped(&self) {
        let mut rx = self.inner.stop_tx.subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

fn not_running(actor_id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("actor {actor_id} does not run on this host"),
    )
}

/// Empties `map`, returning what it held.
async fn take_all<K, V>(map: &Mutex<HashMap<K, Arc<V>>>) -> Vec<Arc<V>> {
    map.lock().await.drain().map(|(_, v)| v).collect()
}

/// Refuses annotations over the protocol's limits
/// ([`trellis_protocol::ctl::validate_annotations`]) with
/// [`ErrorKind::BadRequest`], before any work is done for them.
fn check_annotations(annotations: &BTreeMap<String, String>) -> Result<()> {
    trellis_protocol::ctl::validate_annotations(annotations)
        .map_err(|e| Error::new(ErrorKind::BadRequest, e.to_string()))
}

/// Parses an artifact reference from a control request.
fn parse_reference(reference: &str) -> Result<ArtifactRef> {
    reference
        .parse()
        .map_err(|e| Error::with_source(ErrorKind::BadRequest, e))
}
