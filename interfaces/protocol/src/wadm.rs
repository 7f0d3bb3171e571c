//! The wadm API: subjects, requests, replies and application status (JSON).
//!
//! wadm serves model (manifest) operations over NATS request/reply on
//! `wadm.api.{lattice}.model.{operation}` and publishes each application's
//! status on `wadm.status.{lattice}.{app}` (`docs/protocol.md` §12). Every
//! request is signed like a control request: a `Trellis-Token` header from
//! a control credential, bound to the subject; [`ModelOperation::is_read_only`]
//! says which scope each operation needs. Replies use the control
//! interface's [`crate::CtlReply`] envelope.
//!
//! The subject names follow wasmCloud wadm 1.x
//! (<https://github.com/wasmCloud/wadm/blob/main/docs/api.md>) so that its
//! users recognise them; the bodies are Trellis' own.

use serde::{Deserialize, Serialize};

use crate::subject::{Lattice, SubjectError, TokenKind, validate_token};

/// Prefix of every wadm API subject.
pub const WADM_API_PREFIX: &str = "wadm.api";
/// Prefix of every application status subject.
pub const WADM_STATUS_PREFIX: &str = "wadm.status";

/// Longest application (manifest) name, in bytes: a subject token.
pub const MAX_APP_NAME_BYTES: usize = 128;
/// Longest manifest version, in bytes.
pub const MAX_VERSION_BYTES: usize = 64;

/// One operation of the wadm API, the last token of its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ModelOperation {
    /// `model.put`: store a new version of a manifest. Body: the manifest
    /// (YAML or JSON text). Reply: [`PutModelReply`].
    Put,
    /// `model.get`: one stored manifest. Body: [`ModelRequest`]. Reply:
    /// [`StoredModel`].
    Get,
    /// `model.list`: every application. Body: empty or `{}`. Reply:
    /// `Vec<`[`ModelSummary`]`>`.
    List,
    /// `model.versions`: an application's stored versions. Body:
    /// [`ModelRequest`]. Reply: `Vec<`[`VersionInfo`]`>`.
    Versions,
    /// `model.del`: delete one version, or with no version every version of
    /// an undeployed application. Body: [`ModelRequest`]. Reply: none.
    Del,
    /// `model.deploy`: deploy a version (the latest by default). Body:
    /// [`ModelRequest`]. Reply: [`ModelSummary`].
    Deploy,
    /// `model.undeploy`: stop what the application runs. Body:
    /// [`ModelRequest`]. Reply: none.
    Undeploy,
    /// `model.status`: the application's [`AppStatus`]. Body:
    /// [`ModelRequest`].
    Status,
}

impl ModelOperation {
    /// Every operation, in declaration order.
    pub const ALL: [ModelOperation; 8] = [
        ModelOperation::Put,
        ModelOperation::Get,
        ModelOperation::List,
        ModelOperation::Versions,
        ModelOperation::Del,
        ModelOperation::Deploy,
        ModelOperation::Undeploy,
        ModelOperation::Status,
    ];

    /// The operation's name, `model.{verb}`, as bound into request tokens.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::wadm::ModelOperation;
    ///
    /// assert_eq!(ModelOperation::Deploy.name(), "model.deploy");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ModelOperation::Put => "model.put",
            ModelOperation::Get => "model.get",
            ModelOperation::List => "model.list",
            ModelOperation::Versions => "model.versions",
            ModelOperation::Del => "model.del",
            ModelOperation::Deploy => "model.deploy",
            ModelOperation::Undeploy => "model.undeploy",
            ModelOperation::Status => "model.status",
        }
    }

    /// Whether the operation only reads (`get`, `list`, `versions`,
    /// `status`): a credential of the `read` scope may perform these, every
    /// other one needs `full`.
    pub fn is_read_only(self) -> bool {
        matches!(
            self,
            ModelOperation::Get
                | ModelOperation::List
                | ModelOperation::Versions
                | ModelOperation::Status
        )
    }

    /// The operation's subject in `lattice`.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::{Lattice, wadm::ModelOperation};
    ///
    /// let lattice = Lattice::new("default").unwrap();
    /// assert_eq!(ModelOperation::Put.subject(&lattice), "wadm.api.default.model.put");
    /// ```
    pub fn subject(self, lattice: &Lattice) -> String {
        format!("{WADM_API_PREFIX}.{}.{}", lattice.as_str(), self.name())
    }

    /// Parses a wadm API subject received in `lattice`.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::{Lattice, wadm::ModelOperation};
    ///
    /// let lattice = Lattice::new("default").unwrap();
    /// assert_eq!(ModelOperation::parse(&lattice, "wadm.api.default.model.list"), Some(ModelOperation::List));
    /// assert_eq!(ModelOperation::parse(&lattice, "wadm.api.other.model.list"), None);
    /// ```
    pub fn parse(lattice: &Lattice, subject: &str) -> Option<Self> {
        ModelOperation::ALL
            .into_iter()
            .find(|op| op.subject(lattice) == subject)
    }
}

/// The subject wadm serves every API operation of `lattice` on:
/// `wadm.api.{lattice}.model.*`.
pub fn api_subscription(lattice: &Lattice) -> String {
    format!("{WADM_API_PREFIX}.{}.model.*", lattice.as_str())
}

/// The subject an application's status is published on:
/// `wadm.status.{lattice}.{app}`.
///
/// # Errors
///
/// A [`SubjectError`] when `app` is not a valid application name
/// ([`validate_app_name`]).
pub fn status_subject(lattice: &Lattice, app: &str) -> Result<String, SubjectError> {
    validate_app_name(app)?;
    Ok(format!("{WADM_STATUS_PREFIX}.{}.{app}", lattice.as_str()))
}

/// Checks an application name: one subject token (ASCII letters, digits,
/// `-` and `_`), 1 to [`MAX_APP_NAME_BYTES`] bytes.
///
/// # Errors
///
/// The [`SubjectError`] of the first rule broken.
pub fn validate_app_name(app: &str) -> Result<(), SubjectError> {
    validate_token(TokenKind::LinkName, app)
}

/// The body of `model.get`, `model.versions`, `model.del`, `model.deploy`,
/// `model.undeploy` and `model.status`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRequest {
    /// The application (`metadata.name` of its manifest).
    pub name: String,
    /// A version (`metadata.annotations.version`). `None` means the latest
    /// for `get` and `deploy`, and every version for `del`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The reply to `model.put`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutModelReply {
    /// The application.
    pub name: String,
    /// The version stored.
    pub version: String,
    /// How many versions are now stored (a count).
    pub total_versions: usize,
}

/// The reply to `model.get`: one stored manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredModel {
    /// The application.
    pub name: String,
    /// The version.
    pub version: String,
    /// Whether this version is the deployed one.
    pub deployed: bool,
    /// The manifest, as JSON (secrets sealed).
    pub manifest: serde_json::Value,
}

/// One stored version, in `model.versions` replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The version.
    pub version: String,
    /// Whether it is the deployed one.
    pub deployed: bool,
}

/// One application, in `model.list` and `model.deploy` replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The application.
    pub name: String,
    /// The latest stored version.
    pub latest_version: String,
    /// The deployed version, if any.
    #[serde(default)]
    pub deployed_version: Option<String>,
    /// Its description (`metadata.annotations.description`); empty if none.
    #[serde(default)]
    pub description: String,
    /// Its status.
    pub status: AppStatus,
}

/// Where an application stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    /// Not deployed: wadm runs nothing for it.
    Undeployed,
    /// Deployed, and wadm is still starting, stopping or linking.
    Reconciling,
    /// Everything declared runs and is linked.
    Deployed,
    /// wadm cannot make the lattice match; `message` says why. It keeps
    /// trying, backing off.
    Failed,
}

impl StatusKind {
    /// The kind as its JSON text, e.g. `deployed`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Undeployed => "undeployed",
            StatusKind::Reconciling => "reconciling",
            StatusKind::Deployed => "deployed",
            StatusKind::Failed => "failed",
        }
    }
}

/// An application's status, answered to `model.status` and published on
/// `wadm.status.{lattice}.{app}` whenever it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    /// The application.
    pub name: String,
    /// The deployed version, if any.
    #[serde(default)]
    pub version: Option<String>,
    /// Where it stands.
    pub kind: StatusKind,
    /// Why, for `failed` and `reconciling`; empty otherwise.
    #[serde(default)]
    pub message: String,
    /// Per component: how many instances run against how many are
    /// declared.
    #[serde(default)]
    pub components: Vec<ComponentStatus>,
}

impl AppStatus {
    /// The status of an application that is not deployed.
    pub fn undeployed(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: None,
            kind: StatusKind::Undeployed,
            message: String::new(),
            components: Vec::new(),
        }
    }
}

/// One component's placement in an [`AppStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStatus {
    /// The component's name in the manifest.
    pub name: String,
    /// Instances declared (for an actor the sum of its per-host maximum
    /// instances, for a provider the number of hosts), a count.
    pub desired: u32,
    /// Instances running now with the declared image, a count.
    pub running: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_round_trips_through_its_subject() {
        let lattice = Lattice::new("prod").unwrap();
        for op in ModelOperation::ALL {
            assert_eq!(
                ModelOperation::parse(&lattice, &op.subject(&lattice)),
                Some(op)
            );
        }
    }

    #[test]
    fn app_names_are_subject_tokens() {
        assert!(validate_app_name("hello-world_2").is_ok());
        assert!(validate_app_name("a.b").is_err());
        assert!(validate_app_name("").is_err());
        let lattice = Lattice::new("default").unwrap();
        assert_eq!(
            status_subject(&lattice, "demo").unwrap(),
            "wadm.status.default.demo"
        );
    }
}
