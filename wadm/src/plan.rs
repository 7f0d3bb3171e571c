//! The reconciliation planner: from the deployed manifests and what the
//! hosts really run, the control commands that make the lattice match.
//!
//! [`plan`] is pure and deterministic: the same manifests and the same
//! lattice give the same commands. It is global over every deployed
//! application at once, so that a capability provider several applications
//! declare is wanted while any of them wants it (it is reference-counted by
//! construction) and no two applications fight over it.
//!
//! Rules:
//! - wadm marks what it starts with [`MANAGED_BY`], [`APP`], [`COMPONENT`]
//!   and [`VERSION`] annotations, and only ever stops, scales or updates
//!   actors and providers that carry `MANAGED_BY`; an actor or provider
//!   started by hand is never touched (a provider started by hand that
//!   matches a declared one counts as running).
//! - Commands come in three phases ([`Command::phase`]): starts, scale-ups
//!   and updates; links; stops. A component's stops wait until it has no
//!   command of the first phase left, so capacity is added before any is
//!   removed (upgrades and rebalancing make before they break).

use std::collections::{BTreeMap, BTreeSet};

use trellis_protocol::ctl::{
    Annotations, DeleteLinkRequest, ScaleActorRequest, StartActorRequest, StartProviderRequest,
    StopProviderRequest, UpdateActorRequest,
};
use trellis_protocol::wadm::{AppStatus, ComponentStatus, StatusKind};
use trellis_protocol::{HostInventory, LinkDefinition};

use crate::manifest::{Component, ComponentType, Manifest, Scaler, ScalerProperties};
use crate::spread::{DEFAULT_WEIGHT, Spread, shares};

/// Annotation marking an actor or provider wadm started; value `wadm`.
pub const MANAGED_BY: &str = "wadm.trellis.dev/managed-by";
/// Annotation naming the application that started it.
pub const APP: &str = "wadm.trellis.dev/app";
/// Annotation naming the component of that application.
pub const COMPONENT: &str = "wadm.trellis.dev/component";
/// Annotation naming the manifest version that started it.
pub const VERSION: &str = "wadm.trellis.dev/version";
/// The value of [`MANAGED_BY`].
pub const MANAGED_BY_WADM: &str = "wadm";

/// What the lattice runs, as wadm sees it.
#[derive(Debug, Clone, Default)]
pub struct LatticeState {
    /// Every live host's inventory, by host id.
    pub hosts: BTreeMap<String, HostInventory>,
    /// Every link definition of the lattice.
    pub links: Vec<LinkDefinition>,
}

/// One control command of a plan, with the application it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start an actor on a host.
    StartActor {
        /// The application.
        app: String,
        /// The component.
        component: String,
        /// The host.
        host_id: String,
        /// The request.
        request: StartActorRequest,
    },
    /// Change an actor's maximum instances on a host.
    ScaleActor {
        /// The application.
        app: String,
        /// The component.
        component: String,
        /// The host.
        host_id: String,
        /// The request.
        request: ScaleActorRequest,
    },
    /// Replace a running actor's module (an upgrade).
    UpdateActor {
        /// The application.
        app: String,
        /// The component.
        component: String,
        /// The host.
        host_id: String,
        /// The request.
        request: UpdateActorRequest,
        /// What to start instead if the new module is another actor.
        fallback: StartActorRequest,
    },
    /// Stop an actor on a host.
    StopActor {
        /// The application, or the one named by its annotations.
        app: String,
        /// The component.
        component: String,
        /// The host.
        host_id: String,
        /// The actor.
        actor_id: String,
    },
    /// Start a provider on a host.
    StartProvider {
        /// The application.
        app: String,
        /// The component.
        component: String,
        /// The host.
        host_id: String,
        /// The request.
        request: StartProviderRequest,
    },
    /// Stop a provider on a host.
    StopProvider {
        /// The application named by its annotations.
        app: String,
        /// The component.
        component: String,
        /// The host.
        host_id: String,
        /// The request.
        request: StopProviderRequest,
    },
    /// Put a link definition.
    PutLink {
        /// The application.
        app: String,
        /// The link.
        link: LinkDefinition,
    },
    /// Delete a link definition.
    DeleteLink {
        /// The application.
        app: String,
        /// The request.
        request: DeleteLinkRequest,
    },
}

impl Command {
    /// The application the command serves.
    pub fn app(&self) -> &str {
        match self {
            Command::StartActor { app, .. }
            | Command::ScaleActor { app, .. }
            | Command::UpdateActor { app, .. }
            | Command::StopActor { app, .. }
            | Command::StartProvider { app, .. }
            | Command::StopProvider { app, .. }
            | Command::PutLink { app, .. }
            | Command::DeleteLink { app, .. } => app,
        }
    }

    /// The host it goes to; `None` for lattice-wide link commands.
    pub fn host_id(&self) -> Option<&str> {
        match self {
            Command::StartActor { host_id, .. }
            | Command::ScaleActor { host_id, .. }
            | Command::UpdateActor { host_id, .. }
            | Command::StopActor { host_id, .. }
            | Command::StartProvider { host_id, .. }
            | Command::StopProvider { host_id, .. } => Some(host_id),
            Command::PutLink { .. } | Command::DeleteLink { .. } => None,
        }
    }

    /// 0 for starts, scales and updates, 1 for links, 2 for stops.
    pub fn phase(&self) -> u8 {
        match self {
            Command::StartActor { .. }
            | Command::ScaleActor { .. }
            | Command::UpdateActor { .. }
            | Command::StartProvider { .. } => 0,
            Command::PutLink { .. } => 1,
            Command::StopActor { .. }
            | Command::StopProvider { .. }
            | Command::DeleteLink { .. } => 2,
        }
    }

    /// A key that names what the command acts on, for backing off after
    /// failures: the same key in the next plan is the same work.
    pub fn key(&self) -> String {
        match self {
            Command::StartActor {
                app,
                component,
                host_id,
                ..
            }
            | Command::ScaleActor {
                app,
                component,
                host_id,
                ..
            }
            | Command::UpdateActor {
                app,
                component,
                host_id,
                ..
            } => format!("actor/{app}/{component}/{host_id}"),
            Command::StopActor {
                host_id, actor_id, ..
            } => format!("stop-actor/{host_id}/{actor_id}"),
            Command::StartProvider {
                app,
                component,
                host_id,
                request,
            } => format!("provider/{app}/{component}/{host_id}/{}", request.link_name),
            Command::StopProvider {
                host_id, request, ..
            } => format!(
                "stop-provider/{host_id}/{}/{}",
                request.provider_id, request.link_name
            ),
            Command::PutLink { link, .. } => format!(
                "link/{}/{}/{}",
                link.actor_id, link.contract_id, link.link_name
            ),
            Command::DeleteLink { request, .. } => format!(
                "del-link/{}/{}/{}",
                request.actor_id, request.contract_id, request.link_name
            ),
        }
    }

    /// A short description for status messages and logs.
    pub fn describe(&self) -> String {
        match self {
            Command::StartActor {
                component, host_id, ..
            } => format!("start {component} on {}", short(host_id)),
            Command::ScaleActor {
                component,
                host_id,
                request,
                ..
            } => format!(
                "scale {component} on {} to {}",
                short(host_id),
                request.max_instances
            ),
            Command::UpdateActor {
                component, host_id, ..
            } => format!("upgrade {component} on {}", short(host_id)),
            Command::StopActor {
                component, host_id, ..
            } => format!("stop {component} on {}", short(host_id)),
            Command::StartProvider {
                component, host_id, ..
            } => format!("start provider {component} on {}", short(host_id)),
            Command::StopProvider {
                component, host_id, ..
            } => format!("stop provider {component} on {}", short(host_id)),
            Command::PutLink { link, .. } => format!(
                "link {} ({}, {})",
                short(&link.actor_id),
                link.contract_id,
                link.link_name
            ),
            Command::DeleteLink { request, .. } => format!(
                "unlink {} ({}, {})",
                short(&request.actor_id),
                request.contract_id,
                request.link_name
            ),
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The commands that make the lattice match the deployed manifests, and
/// each application's status as far as the plan can tell.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Commands in phase order.
    pub commands: Vec<Command>,
    /// Status of each deployed application, by name.
    pub statuses: BTreeMap<String, AppStatus>,
}

fn annotations(manifest: &Manifest, component: &str) -> Annotations {
    Annotations::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_WADM.to_owned()),
        (APP.to_owned(), manifest.name().to_owned()),
        (COMPONENT.to_owned(), component.to_owned()),
        (VERSION.to_owned(), manifest.version().to_owned()),
    ])
}

fn is_managed(annotations: &Annotations) -> bool {
    annotations.get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_WADM)
}

fn owner(annotations: &Annotations) -> (String, String) {
    (
        annotations.get(APP).cloned().unwrap_or_default(),
        annotations.get(COMPONENT).cloned().unwrap_or_default(),
    )
}

fn spreads_of(properties: &ScalerProperties) -> Vec<Spread> {
    properties
        .spread
        .iter()
        .map(|s| Spread {
            name: s.name.clone(),
            requirements: s.requirements.clone(),
            weight: s.weight.unwrap_or(DEFAULT_WEIGHT),
        })
        .collect()
}

fn describe_requirements(spread: &Spread) -> String {
    if spread.requirements.is_empty() {
        return "no requirements".to_owned();
    }
    spread
        .requirements
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Deals `count` over `hosts` in the order given: each gets `count / n`,
/// and the first `count % n` one more.
fn deal_ordered(count: u32, hosts: &[&str]) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let n = u32::try_from(hosts.len()).unwrap_or(u32::MAX);
    if n == 0 {
        return out;
    }
    for (i, host) in hosts.iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        let each = count / n + u32::from(i < count % n);
        if each > 0 {
            out.insert((*host).to_owned(), each);
        }
    }
    out
}

/// Hosts eligible for `spread`, those in `preferred` first, then by id.
fn eligible<'a>(
    state: &'a LatticeState,
    spread: Option<&Spread>,
    preferred: &BTreeSet<String>,
) -> Vec<&'a str> {
    let mut hosts: Vec<&str> = state
        .hosts
        .values()
        .filter(|h| spread.is_none_or(|s| s.matches(&h.labels)))
        .map(|h| h.host_id.as_str())
        .collect();
    hosts.sort_by_key(|h| (!preferred.contains(*h), *h));
    hosts
}

/// Per-host maximum instances of an actor component, or why it cannot be
/// placed. `preferred` hosts (those running it now) come first when a
/// share is smaller than the eligible hosts, so placements stay put.
fn place_actor(
    scaler: &Scaler,
    state: &LatticeState,
    preferred: &BTreeSet<String>,
) -> Result<BTreeMap<String, u32>, String> {
    let mut out: BTreeMap<String, u32> = BTreeMap::new();
    match scaler {
        Scaler::Spread(properties) => {
            let spreads = spreads_of(properties);
            if spreads.is_empty() {
                let hosts = eligible(state, None, preferred);
                if hosts.is_empty() && properties.instances > 0 {
                    return Err("no host in the lattice".to_owned());
                }
                return Ok(deal_ordered(properties.instances, &hosts));
            }
            for (spread, (_, share)) in spreads.iter().zip(shares(properties.instances, &spreads)) {
                let hosts = eligible(state, Some(spread), preferred);
                if share > 0 && hosts.is_empty() {
                    return Err(format!(
                        "spread {:?}: no host has {}",
                        spread.name,
                        describe_requirements(spread)
                    ));
                }
                for (host, n) in deal_ordered(share, &hosts) {
                    *out.entry(host).or_default() += n;
                }
            }
        }
        Scaler::Daemon(properties) => {
            let spreads = spreads_of(properties);
            for host in state.hosts.values() {
                if spreads.is_empty() || spreads.iter().any(|s| s.matches(&host.labels)) {
                    out.insert(host.host_id.clone(), properties.instances);
                }
            }
            out.retain(|_, n| *n > 0);
        }
    }
    Ok(out)
}

/// The hosts a provider component runs on, or why it cannot be placed.
fn place_provider(
    scaler: &Scaler,
    state: &LatticeState,
    preferred: &BTreeSet<String>,
) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    match scaler {
        Scaler::Spread(properties) => {
            let spreads = spreads_of(properties);
            let groups: Vec<(Option<&Spread>, u32)> = if spreads.is_empty() {
                vec![(None, properties.instances)]
            } else {
                spreads
                    .iter()
                    .zip(shares(properties.instances, &spreads))
                    .map(|(s, (_, n))| (Some(s), n))
                    .collect()
            };
            for (spread, share) in groups {
                let hosts: Vec<&str> = eligible(state, spread, preferred)
                    .into_iter()
                    .filter(|h| !out.contains(*h))
                    .collect();
                let wanted = usize::try_from(share).unwrap_or(usize::MAX);
                if hosts.len() < wanted {
                    let what = spread.map_or_else(
                        || "the lattice".to_owned(),
                        |s| format!("spread {:?} ({})", s.name, describe_requirements(s)),
                    );
                    return Err(format!(
                        "{share} provider instances need as many hosts, and {what} has {}",
                        hosts.len()
                    ));
                }
                out.extend(hosts.into_iter().take(wanted).map(str::to_owned));
            }
        }
        Scaler::Daemon(properties) => {
            let spreads = spreads_of(properties);
            for host in state.hosts.values() {
                if spreads.is_empty() || spreads.iter().any(|s| s.matches(&host.labels)) {
                    out.insert(host.host_id.clone());
                }
            }
        }
    }
    Ok(out)
}

/// A wanted provider process: image and link name.
type ProviderKey = (String, String);

/// Plans the commands that make `state` match the deployed `apps`.
///
/// Anything wadm started (it carries [`MANAGED_BY`]) that no deployed
/// application declares any more is stopped; nothing else is.
///
/// # Examples
///
/// ```
/// use trellis_wadm::manifest::Manifest;
/// use trellis_wadm::plan::{plan, Command, LatticeState};
/// use trellis_protocol::HostInventory;
///
/// let manifest = Manifest::parse(r#"
/// apiVersion: core.oam.dev/v1beta1
/// kind: Application
/// metadata: { name: hello, annotations: { version: v1 } }
/// spec:
///   components:
///     - { name: hello, type: component, properties: { image: "hello:0.1.0" },
///         traits: [ { type: spreadscaler, properties: { instances: 4 } } ] }
/// "#).unwrap();
/// let host = |id: &str| HostInventory {
///     host_id: id.into(), lattice: "default".into(), labels: Default::default(),
///     version: "0.1.0".into(), uptime_ms: 0, actors: vec![], providers: vec![],
/// };
/// let mut state = LatticeState::default();
/// state.hosts.insert("NA".into(), host("NA"));
/// state.hosts.insert("NB".into(), host("NB"));
///
/// let plan = plan(&[&manifest], &state);
/// let starts: Vec<(String, u32)> = plan.commands.iter().filter_map(|c| match c {
///     Command::StartActor { host_id, request, .. } => Some((host_id.clone(), request.max_instances)),
///     _ => None,
/// }).collect();
/// assert_eq!(starts, vec![("NA".to_owned(), 2), ("NB".to_owned(), 2)]);
/// ```
pub fn plan(apps: &[&Manifest], state: &LatticeState) -> Plan {
    let mut commands: Vec<Command> = Vec::new();
    let mut statuses = BTreeMap::new();
    // (app, component) pairs that are declared, for the stop sweep.
    let mut declared_actors: BTreeSet<(String, String)> = BTreeSet::new();
    // Provider processes wanted on each host, and by whom.
    let mut wanted_providers: BTreeMap<String, BTreeMap<ProviderKey, (String, String)>> =
        BTreeMap::new();
    // Links a deployed manifest wants (kept by the link sweep).
    let mut wanted_links = BTreeSet::new();

    for manifest in apps {
        let app = manifest.name().to_owned();
        let mut problems: Vec<String> = Vec::new();
        let mut pending: Vec<String> = Vec::new();
        let mut components = Vec::new();
        let mut first_phase: BTreeSet<String> = BTreeSet::new();
        let app_start = commands.len();

        for component in &manifest.spec.components {
            let scaler = Manifest::scaler(component);
            match component.component_type {
                ComponentType::Component => {
                    declared_actors.insert((app.clone(), component.name.clone()));
                    let status = plan_actor(
                        manifest,
                        component,
                        &scaler,
                        state,
                        &mut commands,
                        &mut problems,
                    );
                    components.push(status);
                }
                ComponentType::Capability => {
                    let status = plan_provider_wants(
                        manifest,
                        component,
                        &scaler,
                        state,
                        &mut wanted_providers,
                        &mut problems,
                    );
                    components.push(status);
                }
            }
        }
        for c in &commands[app_start..] {
            if let Command::StartActor { component, .. }
            | Command::ScaleActor { component, .. }
            | Command::UpdateActor { component, .. } = c
            {
                first_phase.insert(component.clone());
            }
        }
        // Defer the stops of components that are still starting.
        let mut kept = Vec::with_capacity(commands.len());
        for (i, c) in commands.drain(..).enumerate() {
            let defer = i >= app_start
                && matches!(&c, Command::StopActor { component, .. } if first_phase.contains(component));
            if defer {
                pending.push(c.describe());
            } else {
                kept.push(c);
            }
        }
        commands = kept;

        // Links: both ends must run somewhere to know their ids.
        match manifest.links() {
            Ok(links) => {
                for link in links {
                    let actor_id = actor_id_of(state, manifest, &link.actor);
                    let provider_id = manifest
                        .component(&link.provider)
                        .and_then(|p| provider_id_of(state, &p.properties.image, &link.link_name));
                    let (Some(actor_id), Some(provider_id)) = (actor_id, provider_id) else {
                        pending.push(format!(
                            "link {} to {} waits for both to run",
                            link.actor, link.provider
                        ));
                        continue;
                    };
                    let mut definition = LinkDefinition::new(
                        actor_id,
                        link.contract.clone(),
                        link.link_name.clone(),
                        provider_id,
                    );
                    definition.config = link.config.clone();
                    definition.secrets = link.secrets.clone();
                    wanted_links.insert((
                        definition.actor_id.clone(),
                        definition.contract_id.clone(),
                        definition.link_name.clone(),
                    ));
                    let present = state.links.contains(&definition);
                    if !present {
                        commands.push(Command::PutLink {
                            app: app.clone(),
                            link: definition,
                        });
                    }
                }
            }
            Err(e) => problems.push(e.to_string()),
        }

        let mut all: Vec<String> = commands[app_start.min(commands.len())..]
            .iter()
            .filter(|c| c.app() == app)
            .map(Command::describe)
            .collect();
        all.extend(pending);
        let (kind, message) = if !problems.is_empty() {
            (StatusKind::Failed, problems.join("; "))
        } else if !all.is_empty() {
            (StatusKind::Reconciling, summarise(&all))
        } else {
            (StatusKind::Deployed, String::new())
        };
        statuses.insert(
            app.clone(),
            AppStatus {
                name: app.clone(),
                version: Some(manifest.version().to_owned()),
                kind,
                message,
                components,
            },
        );
    }

    // Providers: start what is wanted and missing, stop what wadm started
    // and nobody wants.
    let mut provider_commands = Vec::new();
    for (host_id, wants) in &wanted_providers {
        let Some(host) = state.hosts.get(host_id) else {
            continue;
        };
        for ((image, link_name), (app, component)) in wants {
            let running = host
                .providers
                .iter()
                .any(|p| &p.image_ref == image && &p.link_name == link_name);
            if !running {
                let manifest = apps.iter().find(|m| m.name() == app);
                let config = manifest
                    .and_then(|m| m.component(component))
                    .map(Manifest::provider_config)
                    .unwrap_or_default();
                let annotations = manifest
                    .map(|m| annotations(m, component))
                    .unwrap_or_default();
                provider_commands.push(Command::StartProvider {
                    app: app.clone(),
                    component: component.clone(),
                    host_id: host_id.clone(),
                    request: StartProviderRequest {
                        provider_ref: image.clone(),
                        link_name: link_name.clone(),
                        config,
                        annotations,
                    },
                });
            }
        }
    }
    for host in state.hosts.values() {
        let wants = wanted_providers.get(&host.host_id);
        for provider in &host.providers {
            if !is_managed(&provider.annotations) {
                continue;
            }
            let key = (provider.image_ref.clone(), provider.link_name.clone());
            if wants.is_some_and(|w| w.contains_key(&key)) {
                continue;
            }
            let (app, component) = owner(&provider.annotations);
            provider_commands.push(Command::StopProvider {
                app,
                component,
                host_id: host.host_id.clone(),
                request: StopProviderRequest {
                    provider_id: provider.id.clone(),
                    link_name: provider.link_name.clone(),
                },
            });
        }
    }
    for c in &provider_commands {
        if let Some(status) = statuses.get_mut(c.app())
            && status.kind == StatusKind::Deployed
        {
            status.kind = StatusKind::Reconciling;
            status.message = c.describe();
        }
    }
    commands.extend(provider_commands);

    // Actors wadm started that nobody declares any more: stop them.
    for host in state.hosts.values() {
        for actor in &host.actors {
            let (app, component) = owner(&actor.annotations);
            if is_managed(&actor.annotations)
                && !declared_actors.contains(&(app.clone(), component.clone()))
            {
                commands.push(Command::StopActor {
                    app,
                    component,
                    host_id: host.host_id.clone(),
                    actor_id: actor.id.clone(),
                });
            }
        }
    }
    // The links of an actor go once no instance of it is left running
    // (an undeploy, or an upgrade to another actor key), unless a deployed
    // manifest still wants them.
    let stopping: BTreeSet<(String, String)> = commands
        .iter()
        .filter_map(|c| match c {
            Command::StopActor {
                app,
                host_id,
                actor_id,
                ..
            } => Some(((host_id.clone(), actor_id.clone()), app.clone())).map(|(k, _)| k),
            _ => None,
        })
        .collect();
    let surviving: BTreeSet<&str> = state
        .hosts
        .values()
        .flat_map(|h| h.actors.iter().map(move |a| (h, a)))
        .filter(|(h, a)| !stopping.contains(&(h.host_id.clone(), a.id.clone())))
        .map(|(_, a)| a.id.as_str())
        .collect();
    let mut unlinked = BTreeSet::new();
    let stops: Vec<(String, String)> = commands
        .iter()
        .filter_map(|c| match c {
            Command::StopActor { app, actor_id, .. } => Some((actor_id.clone(), app.clone())),
            _ => None,
        })
        .collect();
    for (actor_id, app) in stops {
        if surviving.contains(actor_id.as_str()) || !unlinked.insert(actor_id.clone()) {
            continue;
        }
        for link in state.links.iter().filter(|l| l.actor_id == actor_id) {
            let key = (
                link.actor_id.clone(),
                link.contract_id.clone(),
                link.link_name.clone(),
            );
            if wanted_links.contains(&key) {
                continue;
            }
            commands.push(Command::DeleteLink {
                app: app.clone(),
                request: DeleteLinkRequest {
                    actor_id: link.actor_id.clone(),
                    contract_id: link.contract_id.clone(),
                    link_name: link.link_name.clone(),
                },
            });
        }
    }
    commands.sort_by_key(Command::phase);
    Plan { commands, statuses }
}

fn summarise(items: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
}

/// The id of a running actor of this component, preferring one with the
/// declared image.
fn actor_id_of(state: &LatticeState, manifest: &Manifest, component: &str) -> Option<String> {
    let image = &manifest.component(component)?.properties.image;
    let mut fallback = None;
    for host in state.hosts.values() {
        for actor in &host.actors {
            if owner(&actor.annotations) == (manifest.name().to_owned(), component.to_owned()) {
                if &actor.image_ref == image {
                    return Some(actor.id.clone());
                }
                fallback.get_or_insert_with(|| actor.id.clone());
            }
        }
    }
    fallback
}

fn provider_id_of(state: &LatticeState, image: &str, link_name: &str) -> Option<String> {
    state
        .hosts
        .values()
        .flat_map(|h| &h.providers)
        .find(|p| p.image_ref == image && p.link_name == link_name)
        .map(|p| p.id.clone())
}

fn plan_actor(
    manifest: &Manifest,
    component: &Component,
    scaler: &Scaler,
    state: &LatticeState,
    commands: &mut Vec<Command>,
    problems: &mut Vec<String>,
) -> ComponentStatus {
    let app = manifest.name();
    let name = &component.name;
    let image = &component.properties.image;
    let mine = |host: &HostInventory| -> Vec<(String, String, u32, String)> {
        host.actors
            .iter()
            .filter(|a| is_managed(&a.annotations))
            .filter(|a| owner(&a.annotations) == (app.to_owned(), name.clone()))
            .map(|a| {
                let version = a.annotations.get(VERSION).cloned().unwrap_or_default();
                (a.id.clone(), a.image_ref.clone(), a.max_instances, version)
            })
            .collect()
    };
    let preferred: BTreeSet<String> = state
        .hosts
        .values()
        .filter(|h| mine(h).iter().any(|(_, i, _, _)| i == image))
        .map(|h| h.host_id.clone())
        .collect();
    let placement = match place_actor(scaler, state, &preferred) {
        Ok(p) => p,
        Err(reason) => {
            // Nothing is stopped for a placement that cannot be met: what
            // runs keeps serving until it can.
            problems.push(format!("{name}: {reason}"));
            let running = state
                .hosts
                .values()
                .flat_map(&mine)
                .filter(|(_, i, _, _)| i == image)
                .map(|(_, _, n, _)| n)
                .sum();
            return ComponentStatus {
                name: name.clone(),
                desired: 0,
                running,
            };
        }
    };
    let desired: u32 = placement.values().sum();
    let mut running = 0;
    for host in state.hosts.values() {
        let host_id = &host.host_id;
        let entries = mine(host);
        let want = placement.get(host_id).copied().unwrap_or(0);
        let current = entries.iter().find(|(_, i, _, _)| i == image);
        let old = entries.iter().find(|(_, i, _, _)| i != image);
        if let Some((_, _, max, _)) = current {
            running += (*max).min(want);
        }
        let start = StartActorRequest {
            actor_ref: image.clone(),
            max_instances: want,
            annotations: annotations(manifest, name),
        };
        if want > 0 {
            match current {
                // A new count, or an upgrade that left the old version's
                // annotations: scale, which sets both.
                Some((id, _, max, version)) if *max != want || version != manifest.version() => {
                    commands.push(Command::ScaleActor {
                        app: app.to_owned(),
                        component: name.clone(),
                        host_id: host_id.clone(),
                        request: ScaleActorRequest {
                            actor_id: id.clone(),
                            max_instances: want,
                            annotations: annotations(manifest, name),
                        },
                    })
                }
                Some(_) => {}
                None => match old {
                    Some((id, _, _, _)) => commands.push(Command::UpdateActor {
                        app: app.to_owned(),
                        component: name.clone(),
                        host_id: host_id.clone(),
                        request: UpdateActorRequest {
                            actor_id: id.clone(),
                            new_actor_ref: image.clone(),
                        },
                        fallback: start,
                    }),
                    None => commands.push(Command::StartActor {
                        app: app.to_owned(),
                        component: name.clone(),
                        host_id: host_id.clone(),
                        request: start,
                    }),
                },
            }
        }
        // Everything goes when this host should run none; old modules go
        // once the current one runs here.
        for (id, entry_image, _, _) in &entries {
            let stop = want == 0 || (entry_image != image && current.is_some());
            if stop {
                commands.push(Command::StopActor {
                    app: app.to_owned(),
                    component: name.clone(),
                    host_id: host_id.clone(),
                    actor_id: id.clone(),
                });
            }
        }
    }
    ComponentStatus {
        name: name.clone(),
        desired,
        running,
    }
}

fn plan_provider_wants(
    manifest: &Manifest,
    component: &Component,
    scaler: &Scaler,
    state: &LatticeState,
    wanted: &mut BTreeMap<String, BTreeMap<ProviderKey, (String, String)>>,
    problems: &mut Vec<String>,
) -> ComponentStatus {
    let image = &component.properties.image;
    let mut desired = 0;
    let mut running = 0;
    for link_name in manifest.provider_link_names(&component.name) {
        let preferred: BTreeSet<String> = state
            .hosts
            .values()
            .filter(|h| {
                h.providers
                    .iter()
                    .any(|p| &p.image_ref == image && p.link_name == link_name)
            })
            .map(|h| h.host_id.clone())
            .collect();
        let hosts = match place_provider(scaler, state, &preferred) {
            Ok(h) => h,
            Err(reason) => {
                // Keep what runs; stop nothing for a placement that cannot
                // be met.
                problems.push(format!("{}: {reason}", component.name));
                preferred.clone()
            }
        };
        for host in hosts {
            desired += 1;
            if preferred.contains(&host) {
                running += 1;
            }
            wanted
                .entry(host)
                .or_default()
                .entry((image.clone(), link_name.clone()))
                .or_insert_with(|| (manifest.name().to_owned(), component.name.clone()));
        }
    }
    ComponentStatus {
        name: component.name.clone(),
        desired,
        running,
    }
}
