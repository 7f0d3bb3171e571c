//! Application manifests: OAM YAML (or JSON), parsed and validated.
//!
//! The format is the one of wasmCloud wadm 1.x
//! (<https://wasmcloud.com/docs/ecosystem/wadm/model>, which follows the Open
//! Application Model, <https://github.com/oam-dev/spec>), so that a wasmCloud
//! manifest deploys with only its image references changed:
//!
//! ```yaml
//! apiVersion: core.oam.dev/v1beta1
//! kind: Application
//! metadata:
//!   name: hello
//!   annotations:
//!     version: v0.1.0
//! spec:
//!   components:
//!     - name: hello
//!       type: component          # alias: actor
//!       properties:
//!         image: hello:0.1.0     # any artifact reference
//!       traits:
//!         - type: spreadscaler
//!           properties:
//!             instances: 3
//!             spread:
//!               - name: east
//!                 requirements: { zone: east }
//!                 weight: 2
//!     - name: httpserver
//!       type: capability
//!       properties:
//!         image: http-server:0.1.0
//!       traits:
//!         - type: link
//!           properties:
//!             target: hello
//!             namespace: wasi
//!             package: http
//!             interfaces: [incoming-handler]
//!             source:
//!               config:
//!                 - name: listen
//!                   properties: { address: "127.0.0.1:8080" }
//! ```
//!
//! Parsing is pure: [`Manifest::parse`] reads text and checks everything that
//! can be checked without the lattice; [`Manifest::check_contracts`] checks
//! the links against the actors' claims once those are known. Each refusal
//! is a [`ManifestError`] whose [`ManifestErrorKind`] says what is wrong.
//!
//! How the format maps onto Trellis:
//! - a `link` trait becomes one [`LinkDefinition`]: the contract is
//!   `{namespace}:{package}`, the link name is `name` (`default` unless
//!   given), the actor is whichever end is a `component` and the provider
//!   the end that is a `capability`; the `config` of both ends is merged
//!   into the link's configuration, and their `secrets` into its sealed
//!   secrets;
//! - a capability's own `config` is its start configuration;
//! - a capability runs one process per link name its links use.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use trellis_protocol::artifact::ArtifactRef;
use trellis_protocol::wadm::{MAX_VERSION_BYTES, validate_app_name};
use trellis_protocol::{ContractId, DEFAULT_LINK_NAME, SealedSecret};

/// The `apiVersion` every manifest carries.
pub const OAM_API_VERSION: &str = "core.oam.dev/v1beta1";
/// The `kind` every manifest carries.
pub const APPLICATION_KIND: &str = "Application";
/// The annotation holding the manifest's version.
pub const VERSION_ANNOTATION: &str = "version";
/// The annotation holding the manifest's description.
pub const DESCRIPTION_ANNOTATION: &str = "description";
/// Largest manifest accepted, in bytes. Defaults to 256 KiB.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;
/// Most components in one manifest, a count. Defaults to 256.
pub const MAX_COMPONENTS: usize = 256;
/// Most instances one scaler may declare, a count. Defaults to 10,000.
pub const MAX_INSTANCES: u32 = 10_000;

/// What a valid application, component or link name is.
const NAME_RULE: &str = "a name must be 1 to 128 bytes of ASCII letters, digits, '-' and '_' (it is used in NATS subjects)";

/// An OAM application manifest, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `core.oam.dev/v1beta1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always `Application`.
    pub kind: String,
    /// Name, version and description.
    pub metadata: Metadata,
    /// The components.
    pub spec: Specification,
}

/// A manifest's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The application's name, unique in the lattice: one subject token
    /// (ASCII letters, digits, `-`, `_`; at most 128 bytes).
    pub name: String,
    /// `version` (required; not `latest`) and `description` (optional).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Free-form labels; wadm keeps them and does not read them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A manifest's specification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Specification {
    /// The actors and capability providers of the application.
    pub components: Vec<Component>,
    /// Application-wide policies. Trellis reads those of type
    /// `trellis.secrets.env` (see [`SecretSource`]); others are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
}

/// A named policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Its name, referred to by secrets.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub policy_type: String,
    /// Its properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// What a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ComponentType {
    /// A WebAssembly actor (wadm 1.x also accepts `actor`).
    #[serde(rename = "component", alias = "actor")]
    Component,
    /// A capability provider.
    #[serde(rename = "capability")]
    Capability,
}

/// One component of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Its name, unique in the manifest: one subject token.
    pub name: String,
    /// Actor or capability provider.
    #[serde(rename = "type")]
    pub component_type: ComponentType,
    /// Image and configuration.
    pub properties: ComponentProperties,
    /// Scalers and links. None by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<Trait>,
}

/// A component's image and configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentProperties {
    /// Where it comes from: any artifact reference (`name:version` in the
    /// lattice's store, `oci://…` or `registry/repo:tag`, a file path).
    #[serde(default)]
    pub image: String,
    /// Accepted for compatibility with wadm 1.x and ignored: Trellis
    /// identifies actors and providers by the keys in their claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Configuration. For a capability, its start configuration (every
    /// entry's properties merged in order). Actors read configuration
    /// through their links, so an actor may not have any here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigProperty>,
    /// Not supported on components: put secrets on links, where they are
    /// sealed to the lattice and seen only by the provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretProperty>,
}

/// Named configuration with its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigProperty {
    /// The name of this configuration.
    pub name: String,
    /// Its values. Required: Trellis has no store of named configuration
    /// managed outside the manifest.
    #[serde(default)]
    pub properties: Option<BTreeMap<String, String>>,
}

/// A secret given to a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretProperty {
    /// The configuration key the provider sees the value under.
    pub name: String,
    /// Where the value comes from.
    pub properties: SecretSource,
}

/// Where a secret's value comes from. `trellis app put|deploy` reads the
/// value (for a policy of type `trellis.secrets.env`, the environment
/// variable named `key`), seals it to the lattice's secrets key and stores
/// the sealed value in `sealed`; wadm refuses a manifest with a secret that
/// is not sealed, so no plain value is ever stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// The name of a policy in `spec.policies`.
    pub policy: String,
    /// The key in that backend (for `trellis.secrets.env`, a variable).
    pub key: String,
    /// A field of the secret; unused by `trellis.secrets.env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A version of the secret; unused by `trellis.secrets.env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The value sealed to the lattice's secrets key, filled in by the CLI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedValue>,
}

/// A value sealed to the lattice's secrets key: the wire shape of
/// [`SealedSecret`] (`docs/protocol.md` §6.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SealedValue {
    /// Public xkey (`X…`) of the sealer.
    pub sender: String,
    /// The sealed box, Base64.
    pub sealed: String,
}

impl From<SealedValue> for SealedSecret {
    fn from(value: SealedValue) -> Self {
        SealedSecret {
            sender: value.sender,
            sealed: value.sealed,
        }
    }
}

impl From<SealedSecret> for SealedValue {
    fn from(value: SealedSecret) -> Self {
        SealedValue {
            sender: value.sender,
            sealed: value.sealed,
        }
    }
}

/// The policy type whose secrets the CLI reads from its environment.
pub const ENV_SECRETS_POLICY: &str = "trellis.secrets.env";

/// A trait of a component, as written: `{type, properties}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "properties", rename_all = "lowercase")]
pub enum Trait {
    /// Runs a number of instances spread over hosts by weight.
    Spreadscaler(ScalerProperties),
    /// Runs instances on every host that matches.
    Daemonscaler(ScalerProperties),
    /// Links this component to another.
    Link(LinkProperties),
}

/// The properties of a spreadscaler or daemonscaler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScalerProperties {
    /// Spreadscaler: instances in all (for an actor, the sum of its
    /// per-host maximum concurrent instances; for a provider, the number
    /// of hosts). Daemonscaler: instances of an actor on each matching
    /// host (providers always run once per host). Defaults to 1.
    #[serde(default = "one", alias = "replicas")]
    pub instances: u32,
    /// Where instances go. No spread means any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<SpreadProperty>,
}

fn one() -> u32 {
    1
}

/// One weighted spread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpreadProperty {
    /// Its name, unique in the scaler.
    pub name: String,
    /// Host labels that must all match. None by default.
    #[serde(default)]
    pub requirements: BTreeMap<String, String>,
    /// Relative weight. Defaults to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// The properties of a link trait, as wadm 1.x writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkProperties {
    /// The other end: a component name, or `{name, config, secrets}`.
    pub target: LinkTarget,
    /// WIT namespace, e.g. `wasi`.
    pub namespace: String,
    /// WIT package, e.g. `keyvalue`.
    pub package: String,
    /// WIT interfaces, e.g. `[store, atomics]`; informative in Trellis,
    /// where a contract covers its package.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// The link name. Defaults to `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Configuration and secrets given by this (the source) end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ConfigDefinition>,
}

/// The target of a link: a bare component name or one with configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum LinkTarget {
    /// Just the component's name.
    Name(String),
    /// The component's name with configuration and secrets.
    Config(TargetConfig),
}

/// A link target with configuration and secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The component's name.
    pub name: String,
    /// Configuration for the link.
    #[serde(default)]
    pub config: Vec<ConfigProperty>,
    /// Secrets for the link.
    #[serde(default)]
    pub secrets: Vec<SecretProperty>,
}

impl LinkTarget {
    /// The target component's name.
    pub fn name(&self) -> &str {
        match self {
            LinkTarget::Name(name) | LinkTarget::Config(TargetConfig { name, .. }) => name,
        }
    }
}

/// Configuration and secrets of one end of a link.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigDefinition {
    /// Configuration for the link.
    #[serde(default)]
    pub config: Vec<ConfigProperty>,
    /// Secrets for the link.
    #[serde(default)]
    pub secrets: Vec<SecretProperty>,
}

/// What is wrong with a manifest, for clients to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ManifestErrorKind {
    /// Not YAML or JSON, or a value of the wrong type.
    Syntax,
    /// A field the format does not have.
    UnknownField,
    /// A trait type other than `spreadscaler`, `daemonscaler` and `link`.
    UnknownTrait,
    /// `apiVersion` or `kind` is not the OAM application's.
    NotAnApplication,
    /// The application or a component has a name that is not a subject
    /// token.
    InvalidName,
    /// `metadata.annotations.version` is missing, too long or `latest`.
    InvalidVersion,
    /// Two components share a name.
    DuplicateComponent,
    /// A component has no image, or one that is not an artifact
    /// reference.
    MissingImage,
    /// A link names a component the manifest does not have.
    MissingLinkTarget,
    /// A link that Trellis cannot make: not between an actor and a
    /// provider, or with a namespace and package that are not a contract.
    InvalidLink,
    /// A link's contract is not in the actor's claims.
    ContractNotClaimed,
    /// A scaler that cannot be satisfied as written (two scalers, too
    /// many instances, duplicate spread names).
    InvalidScaler,
    /// Configuration or a secret that Trellis cannot give: named
    /// configuration without properties, actor configuration, a secret
    /// without a policy or not sealed.
    InvalidConfig,
    /// Larger than [`MAX_MANIFEST_BYTES`] or [`MAX_COMPONENTS`].
    TooLarge,
}

impl ManifestErrorKind {
    /// A stable code, e.g. `unknown_trait`.
    pub fn code(self) -> &'static str {
        match self {
            ManifestErrorKind::Syntax => "syntax",
            ManifestErrorKind::UnknownField => "unknown_field",
            ManifestErrorKind::UnknownTrait => "unknown_trait",
            ManifestErrorKind::NotAnApplication => "not_an_application",
            ManifestErrorKind::InvalidName => "invalid_name",
            ManifestErrorKind::InvalidVersion => "invalid_version",
            ManifestErrorKind::DuplicateComponent => "duplicate_component",
            ManifestErrorKind::MissingImage => "missing_image",
            ManifestErrorKind::MissingLinkTarget => "missing_link_target",
            ManifestErrorKind::InvalidLink => "invalid_link",
            ManifestErrorKind::ContractNotClaimed => "contract_not_claimed",
            ManifestErrorKind::InvalidScaler => "invalid_scaler",
            ManifestErrorKind::InvalidConfig => "invalid_config",
            ManifestErrorKind::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for ManifestErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ManifestError {
    kind: ManifestErrorKind,
    message: String,
}

impl ManifestError {
    /// An error of `kind` with a message for people.
    pub fn new(kind: ManifestErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What is wrong.
    pub fn kind(&self) -> ManifestErrorKind {
        self.kind
    }
}

/// A link of a manifest, resolved to Trellis terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLink {
    /// The component that is the actor.
    pub actor: String,
    /// The component that is the provider.
    pub provider: String,
    /// The contract.
    pub contract: ContractId,
    /// The link name.
    pub link_name: String,
    /// Configuration, both ends merged (source first).
    pub config: BTreeMap<String, String>,
    /// Sealed secrets, both ends merged.
    pub secrets: BTreeMap<String, SealedSecret>,
}

/// How a component is scaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scaler {
    /// A spreadscaler.
    Spread(ScalerProperties),
    /// A daemonscaler.
    Daemon(ScalerProperties),
}

impl Manifest {
    /// Parses and validates a manifest from YAML or JSON text.
    ///
    /// # Errors
    ///
    /// A [`ManifestError`]: [`ManifestErrorKind::TooLarge`] over
    /// [`MAX_MANIFEST_BYTES`], [`ManifestErrorKind::Syntax`],
    /// [`ManifestErrorKind::UnknownField`] or
    /// [`ManifestErrorKind::UnknownTrait`] when it does not parse, or the
    /// first rule of [`Manifest::validate`] it breaks.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_wadm::manifest::{Manifest, ManifestErrorKind};
    ///
    /// let yaml = r#"
    /// apiVersion: core.oam.dev/v1beta1
    /// kind: Application
    /// metadata: { name: hello, annotations: { version: v1 } }
    /// spec:
    ///   components:
    ///     - name: hello
    ///       type: actor
    ///       properties: { image: "hello:0.1.0" }
    ///       traits: [ { type: spreadscaler, properties: { instances: 2 } } ]
    /// "#;
    /// let manifest = Manifest::parse(yaml).unwrap();
    /// assert_eq!(manifest.version(), "v1");
    ///
    /// let bad = yaml.replace("spreadscaler", "autoscaler");
    /// assert_eq!(Manifest::parse(&bad).unwrap_err().kind(), ManifestErrorKind::UnknownTrait);
    /// ```
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::new(
                ManifestErrorKind::TooLarge,
                format!(
                    "the manifest is {} bytes; at most {MAX_MANIFEST_BYTES} are accepted",
                    text.len()
                ),
            ));
        }
        let manifest: Manifest = yaml_serde::from_str(text).map_err(|e| {
            let message = e.to_string();
            let kind = if message.contains("unknown field") {
                ManifestErrorKind::UnknownField
            } else if message.contains("unknown variant")
                && message.contains("expected one of `spreadscaler`")
            {
                ManifestErrorKind::UnknownTrait
            } else {
                ManifestErrorKind::Syntax
            };
            ManifestError::new(kind, message)
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks every rule that needs no lattice: OAM `apiVersion` and
    /// `kind`; names are subject tokens; a version other than `latest`;
    /// unique component names; every component has an image that is an
    /// artifact reference; at most one scaler per component, with at most
    /// [`MAX_INSTANCES`] instances and unique spread names; links join an
    /// actor and a provider of this manifest over a valid contract;
    /// configuration has properties, actors have none of their own, and
    /// every secret names a policy. Whether secrets are sealed is
    /// [`Manifest::check_sealed`]'s to check.
    ///
    /// # Errors
    ///
    /// The first rule broken, as a [`ManifestError`].
    pub fn validate(&self) -> Result<(), ManifestError> {
        use ManifestErrorKind as K;
        if self.api_version != OAM_API_VERSION || self.kind != APPLICATION_KIND {
            return Err(ManifestError::new(
                K::NotAnApplication,
                format!(
                    "apiVersion {:?} and kind {:?}: expected {OAM_API_VERSION:?} and {APPLICATION_KIND:?}",
                    self.api_version, self.kind
                ),
            ));
        }
        validate_app_name(&self.metadata.name).map_err(|_| {
            ManifestError::new(
                K::InvalidName,
                format!("metadata.name {:?}: {NAME_RULE}", self.metadata.name),
            )
        })?;
        let version = self.version();
        if version.is_empty() || version.len() > MAX_VERSION_BYTES || version == "latest" {
            return Err(ManifestError::new(
                K::InvalidVersion,
                format!(
                    "metadata.annotations.version {version:?}: a version of 1 to {MAX_VERSION_BYTES} bytes is required, and `latest` is reserved"
                ),
            ));
        }
        if version.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ManifestError::new(
                K::InvalidVersion,
                format!("metadata.annotations.version {version:?} contains white space"),
            ));
        }
        if self.spec.components.len() > MAX_COMPONENTS {
            return Err(ManifestError::new(
                K::TooLarge,
                format!(
                    "{} components; at most {MAX_COMPONENTS} are accepted",
                    self.spec.components.len()
                ),
            ));
        }
        let mut names = BTreeSet::new();
        for component in &self.spec.components {
            validate_app_name(&component.name).map_err(|_| {
                ManifestError::new(
                    K::InvalidName,
                    format!("component name {:?}: {NAME_RULE}", component.name),
                )
            })?;
            if !names.insert(component.name.as_str()) {
                return Err(ManifestError::new(
                    K::DuplicateComponent,
                    format!("two components are named {:?}", component.name),
                ));
            }
            self.validate_component(component)?;
        }
        self.resolve_links(false)?;
        Ok(())
    }

    /// Checks that every secret is sealed, as wadm requires of a manifest
    /// it stores (the CLI seals them: [`SecretSource`]).
    ///
    /// # Errors
    ///
    /// [`ManifestErrorKind::InvalidConfig`] for the first secret that is
    /// not sealed.
    pub fn check_sealed(&self) -> Result<(), ManifestError> {
        self.resolve_links(true).map(drop)
    }

    fn validate_component(&self, component: &Component) -> Result<(), ManifestError> {
        use ManifestErrorKind as K;
        let name = &component.name;
        let image = component.properties.image.trim();
        if image.is_empty() {
            return Err(ManifestError::new(
                K::MissingImage,
                format!("component {name:?} has no image"),
            ));
        }
        image.parse::<ArtifactRef>().map_err(|e| {
            ManifestError::new(
                K::MissingImage,
                format!("component {name:?}: image {image:?} is not an artifact reference: {e}"),
            )
        })?;
        if component.component_type == ComponentType::Component
            && !component.properties.config.is_empty()
        {
            return Err(ManifestError::new(
                K::InvalidConfig,
                format!(
                    "component {name:?} is an actor: actors read configuration through their links, so put it on a link"
                ),
            ));
        }
        if !component.properties.secrets.is_empty() {
            return Err(ManifestError::new(
                K::InvalidConfig,
                format!(
                    "component {name:?} has secrets of its own: put secrets on a link, where only the provider sees them"
                ),
            ));
        }
        merge_config(&component.properties.config, name)?;
        let mut scalers = 0;
        for t in &component.traits {
            let properties = match t {
                Trait::Spreadscaler(p) | Trait::Daemonscaler(p) => p,
                Trait::Link(_) => continue,
            };
            scalers += 1;
            if scalers > 1 {
                return Err(ManifestError::new(
                    K::InvalidScaler,
                    format!("component {name:?} has more than one scaler"),
                ));
            }
            if properties.instances > MAX_INSTANCES {
                return Err(ManifestError::new(
                    K::InvalidScaler,
                    format!(
                        "component {name:?} declares {} instances; at most {MAX_INSTANCES} are accepted",
                        properties.instances
                    ),
                ));
            }
            let mut spreads = BTreeSet::new();
            for spread in &properties.spread {
                if !spreads.insert(spread.name.as_str()) {
                    return Err(ManifestError::new(
                        K::InvalidScaler,
                        format!("component {name:?} has two spreads named {:?}", spread.name),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The manifest's version (`metadata.annotations.version`).
    pub fn version(&self) -> &str {
        self.metadata
            .annotations
            .get(VERSION_ANNOTATION)
            .map_or("", String::as_str)
    }

    /// The manifest's description; empty if none.
    pub fn description(&self) -> &str {
        self.metadata
            .annotations
            .get(DESCRIPTION_ANNOTATION)
            .map_or("", String::as_str)
    }

    /// The application's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The component named `name`.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.spec.components.iter().find(|c| c.name == name)
    }

    /// Every link of the manifest in Trellis terms; every secret must be
    /// sealed.
    ///
    /// # Errors
    ///
    /// [`ManifestErrorKind::MissingLinkTarget`],
    /// [`ManifestErrorKind::InvalidLink`] or
    /// [`ManifestErrorKind::InvalidConfig`] for the first link that cannot
    /// be made.
    pub fn links(&self) -> Result<Vec<ResolvedLink>, ManifestError> {
        self.resolve_links(true)
    }

    fn resolve_links(&self, require_sealed: bool) -> Result<Vec<ResolvedLink>, ManifestError> {
        use ManifestErrorKind as K;
        let mut out = Vec::new();
        for source in &self.spec.components {
            for t in &source.traits {
                let Trait::Link(link) = t else { continue };
                let target_name = link.target.name();
                let target = self.component(target_name).ok_or_else(|| {
                    ManifestError::new(
                        K::MissingLinkTarget,
                        format!(
                            "component {:?} links to {target_name:?}, which the manifest does not have",
                            source.name
                        ),
                    )
                })?;
                let contract = ContractId::new(format!("{}:{}", link.namespace, link.package))
                    .map_err(|e| {
                        ManifestError::new(
                            K::InvalidLink,
                            format!("link from {:?} to {target_name:?}: {e}", source.name),
                        )
                    })?;
                let (actor, provider) = match (source.component_type, target.component_type) {
                    (ComponentType::Component, ComponentType::Capability) => {
                        (&source.name, &target.name)
                    }
                    (ComponentType::Capability, ComponentType::Component) => {
                        (&target.name, &source.name)
                    }
                    _ => {
                        return Err(ManifestError::new(
                            K::InvalidLink,
                            format!(
                                "link from {:?} to {target_name:?}: Trellis links an actor to a capability provider; this joins two of the same type",
                                source.name
                            ),
                        ));
                    }
                };
                let link_name = link
                    .name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_LINK_NAME.to_owned());
                trellis_protocol::subject::validate_token(
                    trellis_protocol::subject::TokenKind::LinkName,
                    &link_name,
                )
                .map_err(|_| {
                    ManifestError::new(
                        K::InvalidName,
                        format!(
                            "link from {:?}: name {link_name:?}: {NAME_RULE}",
                            source.name
                        ),
                    )
                })?;
                let source_end = link.source.clone().unwrap_or_default();
                let (target_config, target_secrets) = match &link.target {
                    LinkTarget::Name(_) => (Vec::new(), Vec::new()),
                    LinkTarget::Config(target) => (target.config.clone(), target.secrets.clone()),
                };
                let what = format!("link from {:?} to {target_name:?}", source.name);
                let mut config = merge_config(&source_end.config, &what)?;
                config.extend(merge_config(&target_config, &what)?);
                let mut secrets = BTreeMap::new();
                for secret in source_end.secrets.iter().chain(&target_secrets) {
                    let policy = self
                        .spec
                        .policies
                        .iter()
                        .find(|p| p.name == secret.properties.policy);
                    if policy.is_none() {
                        return Err(ManifestError::new(
                            K::InvalidConfig,
                            format!(
                                "{what}: secret {:?} names policy {:?}, which spec.policies does not have",
                                secret.name, secret.properties.policy
                            ),
                        ));
                    }
                    let Some(sealed) = &secret.properties.sealed else {
                        if !require_sealed {
                            continue;
                        }
                        return Err(ManifestError::new(
                            K::InvalidConfig,
                            format!(
                                "{what}: secret {:?} is not sealed; deploy with `trellis app deploy`, which seals it",
                                secret.name
                            ),
                        ));
                    };
                    if config.contains_key(&secret.name) {
                        return Err(ManifestError::new(
                            K::InvalidConfig,
                            format!(
                                "{what}: {:?} is both configuration and a secret",
                                secret.name
                            ),
                        ));
                    }
                    secrets.insert(secret.name.clone(), sealed.clone().into());
                }
                out.push(ResolvedLink {
                    actor: actor.clone(),
                    provider: provider.clone(),
                    contract,
                    link_name,
                    config,
                    secrets,
                });
            }
        }
        let mut seen = BTreeSet::new();
        for link in &out {
            if !seen.insert((&link.actor, &link.contract, &link.link_name)) {
                return Err(ManifestError::new(
                    K::InvalidLink,
                    format!(
                        "actor {:?} has two links for {} named {:?}",
                        link.actor, link.contract, link.link_name
                    ),
                ));
            }
        }
        Ok(out)
    }

    /// The scaler of a component; a component without one runs one
    /// instance on one host.
    pub fn scaler(component: &Component) -> Scaler {
        component
            .traits
            .iter()
            .find_map(|t| match t {
                Trait::Spreadscaler(p) => Some(Scaler::Spread(p.clone())),
                Trait::Daemonscaler(p) => Some(Scaler::Daemon(p.clone())),
                Trait::Link(_) => None,
            })
            .unwrap_or(Scaler::Spread(ScalerProperties {
                instances: 1,
                spread: Vec::new(),
            }))
    }

    /// A capability's start configuration: its `config` entries merged in
    /// order.
    pub fn provider_config(component: &Component) -> BTreeMap<String, String> {
        merge_config(&component.properties.config, &component.name).unwrap_or_default()
    }

    /// The link names a capability serves: those of the links that use
    /// it, or `default` when none does. One process runs per link name.
    pub fn provider_link_names(&self, provider: &str) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self
            .resolve_links(false)
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.provider == provider)
            .map(|l| l.link_name)
            .collect();
        if names.is_empty() {
            names.insert(DEFAULT_LINK_NAME.to_owned());
        }
        names
    }

    /// Checks every link against the claims of its actor: the contract
    /// must be among the capabilities `claims_of(actor component)` returns.
    /// Actors whose claims are unknown (`None`) are skipped.
    ///
    /// # Errors
    ///
    /// [`ManifestErrorKind::ContractNotClaimed`] for the first link whose
    /// contract the actor does not claim, or the errors of
    /// [`Manifest::links`].
    pub fn check_contracts(
        &self,
        mut claims_of: impl FnMut(&Component) -> Option<Vec<String>>,
    ) -> Result<(), ManifestError> {
        for link in self.resolve_links(false)? {
            let Some(actor) = self.component(&link.actor) else {
                continue;
            };
            let Some(caps) = claims_of(actor) else {
                continue;
            };
            if !caps.iter().any(|c| c == link.contract.as_str()) {
                return Err(ManifestError::new(
                    ManifestErrorKind::ContractNotClaimed,
                    format!(
                        "component {:?} is linked for {}, but its claims list only [{}]",
                        link.actor,
                        link.contract,
                        caps.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The JSON Schema of the format, generated from these types.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Manifest)).unwrap_or_default()
    }
}

fn merge_config(
    entries: &[ConfigProperty],
    what: &str,
) -> Result<BTreeMap<String, String>, ManifestError> {
    let mut out = BTreeMap::new();
    for entry in entries {
        let Some(properties) = &entry.properties else {
            return Err(ManifestError::new(
                ManifestErrorKind::InvalidConfig,
                format!(
                    "{what}: config {:?} has no properties; Trellis has no named configuration managed outside the manifest",
                    entry.name
                ),
            ));
        };
        out.extend(properties.clone());
    }
    Ok(out)
}
