//! The reconciler: keeps a view of the lattice from heartbeats, events and
//! periodic full resyncs, and while it holds the lease, plans and applies
//! the commands that make the lattice match the deployed manifests.
//!
//! Events only make it act sooner. The view is rebuilt from the hosts'
//! own inventories every [`crate::WadmConfig::resync_interval`], and every
//! pass plans from the whole desired state against the whole view, so a
//! lost event, a wadm restart or a NATS outage leaves at most one resync
//! period of drift, never a stale application.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::watch;
use tokio::time::Instant;
use trellis_claims::invocation::{InvocationVerifier, VerifierSettings};
use trellis_lattice_client::signed::verify_event;
use trellis_lattice_client::{CtlClient, CtlErrorKind};
use trellis_protocol::ctl::CtlFailure;
use trellis_protocol::wadm::{AppStatus, StatusKind, status_subject};
use trellis_protocol::{CloudEvent, DecodeLimits, EventType, Heartbeat, HostInventory};

use crate::WadmConfig;
use crate::plan::{Command, LatticeState, plan};
use crate::store::{LeaderUntil, Store, is_leader};

/// How often the loop wakes up to sweep lost hosts and run pending passes.
const TICK: Duration = Duration::from_millis(250);
/// How long after a command heartbeats of its host are not trusted for
/// its inventory (they may have been sent before the command ran).
const SETTLE: Duration = Duration::from_secs(2);

struct HostEntry {
    inventory: HostInventory,
    /// Whether a verified heartbeat came from it.
    heartbeats: bool,
    last_seen: Instant,
    interval: Duration,
    touched: Option<Instant>,
}

struct Failure {
    attempts: u32,
    retry_at: Instant,
    reason: String,
}

pub(crate) struct Reconciler {
    config: WadmConfig,
    ctl: CtlClient,
    command_ctl: CtlClient,
    store: Store,
    leader_until: LeaderUntil,
    hosts: BTreeMap<String, HostEntry>,
    to_refresh: BTreeSet<String>,
    failures: BTreeMap<String, Failure>,
    published: BTreeMap<String, AppStatus>,
    dirty: bool,
    last_resync: Option<Instant>,
    last_pass: Instant,
    was_leader: bool,
    /// Whether any heartbeat verified: then a host that sends none is
    /// lost after the missed heartbeats too, even one seen only in a
    /// resync. Without (no cluster issuer configured), hosts are only
    /// checked by each resync.
    heartbeats_verified: bool,
    passes: Arc<std::sync::atomic::AtomicU64>,
    /// Links this wadm put or deleted lately, by key: `link.list` answers
    /// from a host's copy of the bucket, which may lag behind for a moment.
    recent_links: BTreeMap<String, (Option<trellis_protocol::LinkDefinition>, Instant)>,
}

impl Reconciler {
    pub(crate) fn new(
        config: WadmConfig,
        ctl: CtlClient,
        store: Store,
        leader_until: LeaderUntil,
        passes: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        let command_ctl = ctl.clone().with_timeout(config.command_timeout);
        let ctl = ctl.with_timeout(config.ctl_timeout);
        Self {
            config,
            ctl,
            command_ctl,
            store,
            leader_until,
            hosts: BTreeMap::new(),
            to_refresh: BTreeSet::new(),
            failures: BTreeMap::new(),
            published: BTreeMap::new(),
            dirty: true,
            last_resync: None,
            last_pass: Instant::now(),
            was_leader: false,
            heartbeats_verified: false,
            passes,
            recent_links: BTreeMap::new(),
        }
    }

    pub(crate) async fn run(
        mut self,
        mut events: async_nats::Subscriber,
        mut stop: watch::Receiver<bool>,
    ) {
        let lattice = self.ctl.lattice().clone();
        let verifier = InvocationVerifier::new(
            lattice.as_str(),
            self.config.cluster_issuers.iter().cloned(),
            VerifierSettings::default(),
        );
        let mut changes = self.store.kv().watch_all().await.ok();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some(message) = events.next() => self.on_event(&verifier, &message),
                change = next_change(&mut changes) => {
                    match change {
                        Some(key) if key.starts_with("app.") => self.dirty = true,
                        Some(_) => {}
                        // The watch ended (NATS restarted): watch again on the next tick.
                        None => changes = None,
                    }
                }
                _ = tick.tick() => {
                    if changes.is_none() {
                        changes = self.store.kv().watch_all().await.ok();
                        self.dirty = true;
                    }
                    self.on_tick().await;
                }
            }
        }
    }

    fn on_event(&mut self, verifier: &InvocationVerifier, message: &async_nats::Message) {
        let host_id = match verify_event(verifier, message) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(subject = %message.subject, "ignoring an event that does not verify: {e}");
                return;
            }
        };
        let limits = DecodeLimits::default();
        let Ok(event) = CloudEvent::<serde_json::Value>::decode(&message.payload, &limits) else {
            return;
        };
        let is_type = |t: EventType| event.event_type() == Some(t);
        if is_type(EventType::HostHeartbeat) {
            let Ok(beat) = serde_json::from_value::<Heartbeat>(event.data.clone()) else {
                return;
            };
            let now = Instant::now();
            self.heartbeats_verified = true;
            let interval = Duration::from_millis(beat.interval_ms.max(100));
            match self.hosts.get_mut(&host_id) {
                Some(entry) => {
                    if !entry.heartbeats {
                        tracing::info!("host {host_id} heartbeats every {interval:?}");
                    }
                    entry.last_seen = now;
                    entry.interval = interval;
                    entry.heartbeats = true;
                    let settled = entry.touched.is_none_or(|t| t.elapsed() > SETTLE);
                    if settled && entry.inventory != beat.inventory {
                        entry.inventory = beat.inventory;
                        self.dirty = true;
                    }
                }
                None => {
                    tracing::info!("host {host_id} joined (heartbeat every {interval:?})");
                    self.hosts.insert(
                        host_id,
                        HostEntry {
                            inventory: beat.inventory,
                            heartbeats: true,
                            last_seen: now,
                            interval,
                            touched: None,
                        },
                    );
                    self.dirty = true;
                }
            }
        } else if is_type(EventType::HostStopped) {
            if self.hosts.remove(&host_id).is_some() {
                tracing::info!("host {host_id} stopped");
            }
            self.dirty = true;
        } else {
            // Anything else changed on that host: read its inventory.
            self.to_refresh.insert(host_id);
            self.dirty = true;
        }
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        let leader = is_leader(&self.leader_until);
        if leader && !self.was_leader {
            tracing::info!("this wadm ({}) now reconciles the lattice", self.config.id);
            // A new leader trusts nothing it did not read itself.
            self.last_resync = None;
            self.published.clear();
        }
        self.was_leader = leader;
        // Hosts that missed their heartbeats are gone.
        let missed = self.config.missed_heartbeats;
        let lost: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, h)| {
                (h.heartbeats || self.heartbeats_verified)
                    && h.last_seen.elapsed() > h.interval * missed
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in lost {
            tracing::warn!("host {id} missed {missed} heartbeats; rescheduling its instances");
            self.hosts.remove(&id);
            self.dirty = true;
        }
        if !leader {
            return;
        }
        let resync_due = self
            .last_resync
            .is_none_or(|t| t.elapsed() >= self.config.resync_interval);
        if resync_due {
            if let Err(e) = self.resync().await {
                tracing::warn!("resync failed, keeping the current view: {e}");
                // Without a first resync this leader knows too little to act.
                if self.last_resync.is_none() {
                    return;
                }
            }
            self.dirty = true;
        }
        let refresh: Vec<String> = std::mem::take(&mut self.to_refresh).into_iter().collect();
        self.refresh(&refresh).await;
        let retry_due = self.failures.values().any(|f| f.retry_at <= now);
        let pending = self
            .published
            .values()
            .any(|s| matches!(s.kind, StatusKind::Reconciling | StatusKind::Failed));
        if self.dirty
            || retry_due
            || (pending && self.last_pass.elapsed() >= Duration::from_secs(1))
        {
            self.dirty = false;
            self.last_pass = Instant::now();
            self.pass().await;
        }
    }

    /// Rebuilds the view from the hosts themselves: who answers a ping,
    /// and each one's inventory.
    async fn resync(&mut self) -> Result<(), trellis_lattice_client::CtlError> {
        let pongs = self.ctl.ping(self.config.ping_window).await?;
        let ids: Vec<String> = pongs.into_iter().map(|p| p.host_id).collect();
        let inventories = self.fetch(&ids).await;
        let now = Instant::now();
        let mut hosts = BTreeMap::new();
        for (id, inventory) in inventories {
            let Some(inventory) = inventory else { continue };
            let (interval, heartbeats) = self
                .hosts
                .get(&id)
                .map_or((self.config.assumed_heartbeat_interval, false), |h| {
                    (h.interval, h.heartbeats)
                });
            hosts.insert(
                id,
                HostEntry {
                    inventory,
                    heartbeats,
                    last_seen: now,
                    interval,
                    touched: None,
                },
            );
        }
        self.hosts = hosts;
        self.last_resync = Some(now);
        Ok(())
    }

    async fn fetch(&self, ids: &[String]) -> Vec<(String, Option<HostInventory>)> {
        let ctl = self.ctl.clone();
        futures::stream::iter(ids.to_vec())
            .map(move |id| {
                let ctl = ctl.clone();
                async move {
                    let inventory = ctl.inventory(&id).await.ok();
                    (id, inventory)
                }
            })
            .buffer_unordered(self.config.max_parallel_commands)
            .collect()
            .await
    }

    async fn refresh(&mut self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        for (id, inventory) in self.fetch(ids).await {
            if let (Some(inventory), Some(entry)) = (inventory, self.hosts.get_mut(&id)) {
                entry.inventory = inventory;
                entry.last_seen = Instant::now();
            }
        }
    }

    async fn pass(&mut self) {
        self.passes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let records = match self.store.list().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot read the applications, not reconciling: {e}");
                return;
            }
        };
        let links = match self.ctl.links().await {
            Ok(mut links) => {
                self.recent_links.retain(|_, (_, at)| at.elapsed() < SETTLE);
                for (key, (link, _)) in &self.recent_links {
                    links.retain(|l| &link_key(l) != key);
                    if let Some(link) = link {
                        links.push(link.clone());
                    }
                }
                links
            }
            Err(e) => {
                tracing::warn!("cannot read the links, not reconciling: {e}");
                return;
            }
        };
        let state = LatticeState {
            hosts: self
                .hosts
                .iter()
                .map(|(id, h)| (id.clone(), h.inventory.clone()))
                .collect(),
            links,
        };
        let deployed: Vec<_> = records
            .iter()
            .filter_map(|r| r.deployed_manifest())
            .collect();
        let planned = plan(&deployed, &state);
        let now = Instant::now();
        let due: Vec<Command> = planned
            .commands
            .iter()
            .filter(|c| {
                self.failures
                    .get(&c.key())
                    .is_none_or(|f| f.retry_at <= now)
            })
            .cloned()
            .collect();
        let planned_keys: BTreeSet<String> = planned.commands.iter().map(Command::key).collect();
        // Work that is no longer planned has no failure to remember.
        self.failures.retain(|k, _| planned_keys.contains(k));

        let mut touched = BTreeSet::new();
        for phase in 0..=2u8 {
            // Never act on a lease that has run out meanwhile.
            if !is_leader(&self.leader_until) {
                return;
            }
            let batch: Vec<Command> = due.iter().filter(|c| c.phase() == phase).cloned().collect();
            if batch.is_empty() {
                continue;
            }
            let ctl = self.command_ctl.clone();
            let results: Vec<(Command, Result<(), String>)> = futures::stream::iter(batch)
                .map(move |command| {
                    let ctl = ctl.clone();
                    async move {
                        let result = execute(&ctl, &command).await;
                        (command, result)
                    }
                })
                .buffer_unordered(self.config.max_parallel_commands)
                .collect()
                .await;
            for (command, result) in results {
                if let Some(host) = command.host_id() {
                    touched.insert(host.to_owned());
                }
                match result {
                    Ok(()) => {
                        tracing::info!(app = command.app(), "{}", command.describe());
                        match &command {
                            Command::PutLink { link, .. } => {
                                self.recent_links
                                    .insert(link_key(link), (Some(link.clone()), Instant::now()));
                            }
                            Command::DeleteLink { request, .. } => {
                                let key = format!(
                                    "{}/{}/{}",
                                    request.actor_id, request.contract_id, request.link_name
                                );
                                self.recent_links.insert(key, (None, Instant::now()));
                            }
                            _ => {}
                        }
                        self.failures.remove(&command.key());
                    }
                    Err(reason) => {
                        let failure = self.failures.entry(command.key()).or_insert(Failure {
                            attempts: 0,
                            retry_at: now,
                            reason: String::new(),
                        });
                        failure.attempts = failure.attempts.saturating_add(1);
                        let backoff = self
                            .config
                            .backoff_base
                            .saturating_mul(1u32 << failure.attempts.min(16).saturating_sub(1))
                            .min(self.config.backoff_max);
                        failure.retry_at = Instant::now() + backoff;
                        failure.reason = format!("{} failed: {reason}", command.describe());
                        tracing::warn!(
                            app = command.app(),
                            "{} (attempt {}, next in {:?})",
                            failure.reason,
                            failure.attempts,
                            backoff
                        );
                    }
                }
            }
        }
        if !touched.is_empty() {
            let ids: Vec<String> = touched.into_iter().collect();
            self.refresh(&ids).await;
            let at = Instant::now();
            for id in &ids {
                if let Some(h) = self.hosts.get_mut(id) {
                    h.touched = Some(at);
                }
            }
            // Look again at once: the next pass sees what these did.
            self.dirty = true;
        }

        // Statuses: the plan's, with failures named.
        let mut statuses = planned.statuses;
        for command in &planned.commands {
            if let Some(failure) = self.failures.get(&command.key())
                && let Some(status) = statuses.get_mut(command.app())
            {
                status.kind = StatusKind::Failed;
                status.message = failure.reason.clone();
            }
        }
        for record in &records {
            statuses
                .entry(record.name.clone())
                .or_insert_with(|| AppStatus::undeployed(record.name.clone()));
        }
        for (name, status) in statuses {
            if self.published.get(&name) == Some(&status) {
                continue;
            }
            if let Err(e) = self.store.put_status(&status).await {
                tracing::warn!("cannot store the status of {name}: {e}");
                continue;
            }
            self.publish(&status).await;
            self.published.insert(name, status);
        }
    }

    async fn publish(&self, status: &AppStatus) {
        let Ok(subject) = status_subject(self.ctl.lattice(), &status.name) else {
            return;
        };
        let Ok(payload) = serde_json::to_vec(status) else {
            return;
        };
        let headers = self
            .ctl
            .signer()
            .and_then(|s| s.sign_control(&subject, "status", &payload).ok())
            .map(|token| trellis_lattice_client::signed::headers(&token))
            .unwrap_or_default();
        let _ = self
            .ctl
            .nats()
            .publish_with_headers(subject, headers, payload.into())
            .await;
    }
}

fn link_key(link: &trellis_protocol::LinkDefinition) -> String {
    format!("{}/{}/{}", link.actor_id, link.contract_id, link.link_name)
}

async fn next_change(changes: &mut Option<async_nats::jetstream::kv::Watch>) -> Option<String> {
    match changes {
        Some(watch) => match watch.next().await {
            Some(Ok(entry)) => Some(entry.key),
            _ => None,
        },
        None => std::future::pending().await,
    }
}

/// Sends one command; a refusal that means "already so" counts as done.
async fn execute(ctl: &CtlClient, command: &Command) -> Result<(), String> {
    let conflict = |e: &trellis_lattice_client::CtlError| {
        e.kind() == CtlErrorKind::Refused && e.failure() == Some(CtlFailure::Conflict)
    };
    let not_found = |e: &trellis_lattice_client::CtlError| {
        e.kind() == CtlErrorKind::Refused && e.failure() == Some(CtlFailure::NotFound)
    };
    let result = match command {
        Command::StartActor {
            host_id, request, ..
        } => ctl.start_actor(host_id, request).await.map(drop),
        Command::ScaleActor {
            host_id, request, ..
        } => ctl.scale_actor(host_id, request).await,
        Command::UpdateActor {
            host_id,
            request,
            fallback,
            ..
        } => match ctl.update_actor(host_id, request).await {
            Ok(_) => Ok(()),
            // The new module is another actor: run it beside the old one,
            // which is stopped once the new one runs.
            Err(e) if conflict(&e) => ctl.start_actor(host_id, fallback).await.map(drop),
            Err(e) => Err(e),
        },
        Command::StopActor {
            host_id, actor_id, ..
        } => match ctl.stop_actor(host_id, actor_id).await {
            Err(e) if not_found(&e) => Ok(()),
            other => other,
        },
        Command::StartProvider {
            host_id, request, ..
        } => match ctl.start_provider(host_id, request).await {
            Err(e) if conflict(&e) => {
                return Err(format!(
                    "a provider with the same key already serves link {} there, started from another image than {} ({e})",
                    request.link_name, request.provider_ref
                ));
            }
            other => other.map(drop),
        },
        Command::StopProvider {
            host_id, request, ..
        } => match ctl.stop_provider(host_id, request).await {
            Err(e) if not_found(&e) => Ok(()),
            other => other,
        },
        Command::PutLink { link, .. } => ctl.put_link(link).await,
        Command::DeleteLink { request, .. } => match ctl.delete_link(request).await {
            Err(e) if not_found(&e) => Ok(()),
            other => other,
        },
    };
    result.map_err(|e| e.to_string())
}
