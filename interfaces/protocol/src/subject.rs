//! NATS subjects of the lattice protocol and validation of the tokens in them.
//!
//! Three families of subjects exist, all documented in `docs/protocol.md`:
//!
//! | family | form |
//! |---|---|
//! | control interface | `trellis.ctl.v1.{lattice}.{noun}.{verb}[.{host_id}]` |
//! | RPC | `trellis.rpc.{lattice}.{target}[.{link_name}]` |
//! | events | `trellis.evt.{lattice}.{event_type}` |
//!
//! A token is one dot-separated part of a subject (NATS subject syntax:
//! <https://docs.nats.io/nats-concepts/subjects>). Trellis is stricter than
//! NATS and allows only ASCII letters, digits, `-` and `_` in the tokens it
//! builds from names and ids, so that no value can smuggle in a `.`, a
//! wildcard (`*`, `>`) or white space.

use std::fmt;

use crate::event::EventType;

/// Prefix of every control-interface subject.
pub const CTL_PREFIX: &str = "trellis.ctl.v1";
/// Prefix of every RPC subject.
pub const RPC_PREFIX: &str = "trellis.rpc";
/// Prefix of every event subject.
pub const EVT_PREFIX: &str = "trellis.evt";

/// Longest lattice name accepted, in bytes.
pub const MAX_LATTICE_NAME_BYTES: usize = 64;
/// Longest id (host, actor, provider key) or link name accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 128;

/// What a checked token names; used in [`SubjectError`] so that the message
/// says which input was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A lattice name.
    Lattice,
    /// A host, actor or provider id (an nkey public key).
    Id,
    /// A link name.
    LinkName,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenKind::Lattice => "lattice name",
            TokenKind::Id => "id",
            TokenKind::LinkName => "link name",
        })
    }
}

/// A name or id that cannot be used as a subject token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// The value is empty.
    #[error("{kind} is empty")]
    Empty {
        /// What the value names.
        kind: TokenKind,
    },
    /// The value is longer than allowed.
    #[error("{kind} is {len} bytes long; the limit is {max}")]
    TooLong {
        /// What the value names.
        kind: TokenKind,
        /// Its length, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// The value holds a character outside `[A-Za-z0-9_-]`.
    #[error("{kind} contains {found:?}; only ASCII letters, digits, '-' and '_' are allowed")]
    InvalidCharacter {
        /// What the value names.
        kind: TokenKind,
        /// The first offending character.
        found: char,
    },
    /// A subject does not belong to the family or lattice it was parsed as.
    #[error("subject {0:?} is not a Trellis subject of the expected kind")]
    Unrecognised(String),
}

/// Checks that `value` is usable as one subject token of the given kind.
///
/// # Errors
///
/// [`SubjectError::Empty`], [`SubjectError::TooLong`] (64 bytes for lattice
/// names, 128 for ids and link names) or [`SubjectError::InvalidCharacter`].
///
/// # Examples
///
/// ```
/// use trellis_protocol::subject::{validate_token, SubjectError, TokenKind};
///
/// assert!(validate_token(TokenKind::Lattice, "default").is_ok());
/// assert!(matches!(
///     validate_token(TokenKind::Lattice, "a.b"),
///     Err(SubjectError::InvalidCharacter { found: '.', .. })
/// ));
/// ```
pub fn validate_token(kind: TokenKind, value: &str) -> Result<(), SubjectError> {
    let max = match kind {
        TokenKind::Lattice => MAX_LATTICE_NAME_BYTES,
        TokenKind::Id | TokenKind::LinkName => MAX_TOKEN_BYTES,
    };
    if value.is_empty() {
        return Err(SubjectError::Empty { kind });
    }
    if value.len() > max {
        return Err(SubjectError::TooLong {
            kind,
            len: value.len(),
            max,
        });
    }
    if let Some(found) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(SubjectError::InvalidCharacter { kind, found });
    }
    Ok(())
}

/// A validated lattice name, e.g. `default`.
///
/// # Examples
///
/// ```
/// use trellis_protocol::subject::Lattice;
///
/// let lattice = Lattice::new("default").unwrap();
/// assert_eq!(lattice.as_str(), "default");
/// assert!(Lattice::new("bad name").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lattice(String);

impl Lattice {
    /// The route of an invocation by an actor of the provider that `link`
    /// binds it to: subject `trellis.rpc.{lattice}.{provider_id}.{link_name}`,
    /// origin the actor and target the provider, both naming the link's
    /// contract and link name.
    ///
    /// # Errors
    ///
    /// [`SubjectError`] if the provider id or link name is not a valid token.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::{ContractId, EntityKind, Lattice, LinkDefinition};
    ///
    /// let link = LinkDefinition::new("MACTOR", ContractId::new("wasi:keyvalue").unwrap(), "cache", "VREDIS");
    /// let route = Lattice::new("default").unwrap().route_to_provider(&link).unwrap();
    /// assert_eq!(route.subject, "trellis.rpc.default.VREDIS.cache");
    /// assert_eq!((route.origin.kind, route.origin.id.as_str()), (EntityKind::Actor, "MACTOR"));
    /// assert_eq!(route.target.link_name.as_deref(), Some("cache"));
    /// ```
    pub fn route_to_provider(
        &self,
        link: &crate::LinkDefinition,
    ) -> Result<crate::Route, SubjectError> {
        let contract = Some(link.contract_id.to_string());
        let link_name = Some(link.link_name.clone());
        Ok(crate::Route {
            subject: self.rpc(&link.provider_id, Some(&link.link_name))?,
            origin: crate::Entity {
                kind: crate::EntityKind::Actor,
                id: link.actor_id.clone(),
                contract_id: contract.clone(),
                link_name: link_name.clone(),
            },
            target: crate::Entity {
                kind: crate::EntityKind::Provider,
                id: link.provider_id.clone(),
                contract_id: contract,
                link_name,
            },
        })
    }

    /// The route of an invocation of actor `actor_id` by provider
    /// `provider_id` over its link `link_name` of `contract_id`: subject
    /// `trellis.rpc.{lattice}.{actor_id}`.
    ///
    /// # Errors
    ///
    /// [`SubjectError`] if the actor id is not a valid token.
    pub fn route_to_actor(
        &self,
        provider_id: &str,
        contract_id: &str,
        link_name: &str,
        actor_id: &str,
    ) -> Result<crate::Route, SubjectError> {
        Ok(crate::Route {
            subject: self.rpc(actor_id, None)?,
            origin: crate::Entity {
                kind: crate::EntityKind::Provider,
                id: provider_id.to_owned(),
                contract_id: Some(contract_id.to_owned()),
                link_name: Some(link_name.to_owned()),
            },
            target: crate::Entity {
                kind: crate::EntityKind::Actor,
                id: actor_id.to_owned(),
                contract_id: None,
                link_name: None,
            },
        })
    }

    /// The lattice a host joins when none is configured.
    pub const DEFAULT: &'static str = "default";

    /// Validates `name` as a lattice name.
    ///
    /// # Errors
    ///
    /// A [`SubjectError`] when `name` is not a valid token (see [`validate_token`]).
    pub fn new(name: impl Into<String>) -> Result<Self, SubjectError> {
        let name = name.into();
        validate_token(TokenKind::Lattice, &name)?;
        Ok(Self(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Subject of one control-interface operation in this lattice.
    ///
    /// # Errors
    ///
    /// A [`SubjectError`] when the host id inside `op` is not a valid token.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::subject::{CtlOperation, Lattice};
    ///
    /// let lattice = Lattice::new("default").unwrap();
    /// assert_eq!(lattice.ctl(&CtlOperation::HostPing).unwrap(), "trellis.ctl.v1.default.host.ping");
    /// let start = CtlOperation::ActorStart { host_id: "NHOST".into() };
    /// assert_eq!(lattice.ctl(&start).unwrap(), "trellis.ctl.v1.default.actor.start.NHOST");
    /// ```
    pub fn ctl(&self, op: &CtlOperation) -> Result<String, SubjectError> {
        let (noun, verb) = op.noun_verb();
        match op.host_id() {
            Some(host) => {
                validate_token(TokenKind::Id, host)?;
                Ok(format!("{CTL_PREFIX}.{}.{noun}.{verb}.{host}", self.0))
            }
            None => Ok(format!("{CTL_PREFIX}.{}.{noun}.{verb}", self.0)),
        }
    }

    /// The subjects a host with id `host_id` subscribes to in order to serve
    /// the control interface.
    ///
    /// # Errors
    ///
    /// A [`SubjectError`] when `host_id` is not a valid token.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::subject::Lattice;
    ///
    /// let subs = Lattice::new("default").unwrap().ctl_host_subscriptions("NHOST").unwrap();
    /// assert_eq!(subs.host, "trellis.ctl.v1.default.*.*.NHOST");
    /// assert_eq!(subs.every_host, ["trellis.ctl.v1.default.host.ping"]);
    /// assert_eq!(subs.one_host, ["trellis.ctl.v1.default.link.*", "trellis.ctl.v1.default.claims.*"]);
    /// ```
    pub fn ctl_host_subscriptions(&self, host_id: &str) -> Result<CtlSubscriptions, SubjectError> {
        validate_token(TokenKind::Id, host_id)?;
        let l = &self.0;
        Ok(CtlSubscriptions {
            host: format!("{CTL_PREFIX}.{l}.*.*.{host_id}"),
            every_host: vec![format!("{CTL_PREFIX}.{l}.host.ping")],
            one_host: vec![
                format!("{CTL_PREFIX}.{l}.link.*"),
                format!("{CTL_PREFIX}.{l}.claims.*"),
            ],
        })
    }

    /// Parses a control-interface subject received in this lattice.
    ///
    /// # Errors
    ///
    /// [`SubjectError::Unrecognised`] for anything that is not one of the
    /// subjects [`Lattice::ctl`] builds for this lattice.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::subject::{CtlOperation, Lattice};
    ///
    /// let lattice = Lattice::new("default").unwrap();
    /// let op = lattice.parse_ctl("trellis.ctl.v1.default.actor.scale.NHOST").unwrap();
    /// assert_eq!(op, CtlOperation::ActorScale { host_id: "NHOST".into() });
    /// assert!(lattice.parse_ctl("trellis.ctl.v1.other.host.ping").is_err());
    /// ```
    pub fn parse_ctl(&self, subject: &str) -> Result<CtlOperation, SubjectError> {
        let unrecognised = || SubjectError::Unrecognised(subject.to_owned());
        let rest = subject
            .strip_prefix(CTL_PREFIX)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|r| r.strip_prefix(self.0.as_str()))
            .and_then(|r| r.strip_prefix('.'))
            .ok_or_else(unrecognised)?;
        let parts: Vec<&str> = rest.split('.').collect();
        let (noun, verb, host) = match parts.as_slice() {
            [noun, verb] => (*noun, *verb, None),
            [noun, verb, host] => {
                validate_token(TokenKind::Id, host).map_err(|_| unrecognised())?;
                (*noun, *verb, Some((*host).to_owned()))
            }
            _ => return Err(unrecognised()),
        };
        CtlOperation::from_parts(noun, verb, host).ok_or_else(unrecognised)
    }

    /// Subject on which `target` (an actor or provider id) receives
    /// invocations, optionally for one link name.
    ///
    /// # Errors
    ///
    /// A [`SubjectError`] when `target` or `link_name` is not a valid token.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::subject::Lattice;
    ///
    /// let lattice = Lattice::new("default").unwrap();
    /// assert_eq!(lattice.rpc("MACTOR", None).unwrap(), "trellis.rpc.default.MACTOR");
    /// assert_eq!(lattice.rpc("VPROV", Some("default")).unwrap(), "trellis.rpc.default.VPROV.default");
    /// ```
    pub fn rpc(&self, target: &str, link_name: Option<&str>) -> Result<String, SubjectError> {
        validate_token(TokenKind::Id, target)?;
        match link_name {
            Some(link) => {
                validate_token(TokenKind::LinkName, link)?;
                Ok(format!("{RPC_PREFIX}.{}.{target}.{link}", self.0))
            }
            None => Ok(format!("{RPC_PREFIX}.{}.{target}", self.0)),
        }
    }

    /// Subject on which events of `event_type` are published in this lattice.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::{subject::Lattice, EventType};
    ///
    /// let lattice = Lattice::new("default").unwrap();
    /// assert_eq!(lattice.event(EventType::ActorStarted), "trellis.evt.default.actor_started");
    /// ```
    pub fn event(&self, event_type: EventType) -> String {
        format!("{EVT_PREFIX}.{}.{}", self.0, event_type.as_str())
    }

    /// Subject matching every event of this lattice, for subscribers.
    pub fn all_events(&self) -> String {
        format!("{EVT_PREFIX}.{}.>", self.0)
    }

    /// The subjects of one provider instance: `provider_id` serving
    /// `link_name`, started by `host_id`.
    ///
    /// # Errors
    ///
    /// A [`SubjectError`] when an id or the link name is not a valid token.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::subject::Lattice;
    ///
    /// let s = Lattice::new("default").unwrap().provider("VKV", "default", "NHOST").unwrap();
    /// assert_eq!(s.rpc, "trellis.rpc.default.VKV.default");
    /// assert_eq!(s.link_put, "trellis.rpc.default.VKV.default.link.put.NHOST");
    /// assert_eq!(s.health, "trellis.rpc.default.VKV.default.health.NHOST");
    /// assert_eq!(s.shutdown, "trellis.rpc.default.VKV.default.shutdown.NHOST");
    /// ```
    pub fn provider(
        &self,
        provider_id: &str,
        link_name: &str,
        host_id: &str,
    ) -> Result<ProviderSubjects, SubjectError> {
        validate_token(TokenKind::Id, host_id)?;
        let rpc = self.rpc(provider_id, Some(link_name))?;
        Ok(ProviderSubjects {
            queue_group: format!("trellis-{provider_id}-{link_name}"),
            link_put: format!("{rpc}.link.put.{host_id}"),
            link_del: format!("{rpc}.link.del.{host_id}"),
            health: format!("{rpc}.health.{host_id}"),
            shutdown: format!("{rpc}.shutdown.{host_id}"),
            credential: format!("{rpc}.credential.{host_id}"),
            rpc,
        })
    }
}

/// The subjects of one provider instance (see [`Lattice::provider`]).
///
/// Invocations arrive on `rpc` in `queue_group`, so instances of a provider
/// on several hosts share the load. Link updates, health checks and
/// shutdown requests come from the host that started the instance, signed
/// with that host's key, on subjects that end with the host's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSubjects {
    /// Invocations: `trellis.rpc.{lattice}.{provider_id}.{link_name}`.
    pub rpc: String,
    /// Queue group of `rpc`: `trellis-{provider_id}-{link_name}`.
    pub queue_group: String,
    /// A link definition naming this provider was put:
    /// `{rpc}.link.put.{host_id}`, body a [`crate::LinkDefinition`].
    pub link_put: String,
    /// A link definition was deleted: `{rpc}.link.del.{host_id}`, body the
    /// deleted [`crate::LinkDefinition`].
    pub link_del: String,
    /// Health check request from the host: `{rpc}.health.{host_id}`.
    pub health: String,
    /// Shutdown request from the host: `{rpc}.shutdown.{host_id}`.
    pub shutdown: String,
    /// A renewed credential from the host: `{rpc}.credential.{host_id}`,
    /// body a [`crate::provider::CredentialRenewal`].
    pub credential: String,
}

impl fmt::Display for Lattice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Lattice {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The control-interface subscriptions of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlSubscriptions {
    /// Operations addressed to this host.
    pub host: String,
    /// Lattice-wide operations every host answers (ping), subscribed
    /// without a queue group.
    pub every_host: Vec<String>,
    /// Lattice-wide operations one host answers (links, claims), subscribed
    /// in the queue group [`CTL_QUEUE_GROUP`].
    pub one_host: Vec<String>,
}

/// Queue group of the lattice-wide operations that one host answers.
pub const CTL_QUEUE_GROUP: &str = "trellis-ctl";

/// Defines [`CtlOperation`] from one list, so that the enum, [`CtlOperation::ALL`],
/// the names and the parser cannot disagree: adding a variant adds it
/// everywhere.
macro_rules! ctl_operations {
    (@get $host:ident) => { Some($host.as_str()) };
    (@get) => { None };
    (@pat $host:ident) => { Some($host) };
    (@pat) => { None };
    ($(
        $(#[$doc:meta])*
        $variant:ident $({ $host:ident })? => ($noun:literal, $verb:literal),
    )*) => {
        /// One operation of the control interface, as named by its subject.
        ///
        /// Operations aimed at one host carry its id; the others are lattice-wide.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum CtlOperation {
            $(
                $(#[$doc])*
                $variant $({
                    /// The host addressed.
                    $host: String,
                })?,
            )*
        }

        impl CtlOperation {
            /// Every operation, in declaration order. Host-addressed ones carry
            /// an empty `host_id`: use them for their names and kind, and
            /// build real ones with the host's id.
            pub const ALL: [CtlOperation; [$(stringify!($variant)),*].len()] = [
                $(CtlOperation::$variant $({ $host: String::new() })?,)*
            ];

            /// The operation's name, `{noun}.{verb}`, e.g. `actor.start`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(CtlOperation::$variant { .. } => concat!($noun, ".", $verb),)*
                }
            }

            fn noun_verb(&self) -> (&'static str, &'static str) {
                match self {
                    $(CtlOperation::$variant { .. } => ($noun, $verb),)*
                }
            }

            /// The host this operation addresses, if it addresses one.
            pub fn host_id(&self) -> Option<&str> {
                match self {
                    $(CtlOperation::$variant $({ $host })? => ctl_operations!(@get $($host)?),)*
                }
            }

            fn from_parts(noun: &str, verb: &str, host: Option<String>) -> Option<Self> {
                match (noun, verb, host) {
                    $(($noun, $verb, ctl_operations!(@pat $($host)?)) => {
                        Some(CtlOperation::$variant $({ $host })?)
                    })*
                    _ => None,
                }
            }
        }
    };
}

ctl_operations! {
    /// `host.ping`: every host answers with a [`crate::ctl::HostPong`].
    HostPing => ("host", "ping"),
    /// `host.get.{host}`: the host's [`crate::HostInventory`].
    HostGet { host_id } => ("host", "get"),
    /// `host.stop.{host}`: drain and stop the host.
    HostStop { host_id } => ("host", "stop"),
    /// `actor.start.{host}`: start an actor.
    ActorStart { host_id } => ("actor", "start"),
    /// `actor.scale.{host}`: change an actor's maximum concurrent instances.
    ActorScale { host_id } => ("actor", "scale"),
    /// `actor.update.{host}`: replace a running actor's module.
    ActorUpdate { host_id } => ("actor", "update"),
    /// `actor.stop.{host}`: stop an actor.
    ActorStop { host_id } => ("actor", "stop"),
    /// `provider.start.{host}`: start a capability provider.
    ProviderStart { host_id } => ("provider", "start"),
    /// `provider.stop.{host}`: stop a capability provider.
    ProviderStop { host_id } => ("provider", "stop"),
    /// `label.put.{host}`: set a host label.
    LabelPut { host_id } => ("label", "put"),
    /// `label.del.{host}`: delete a host label.
    LabelDel { host_id } => ("label", "del"),
    /// `link.put`: put a link definition.
    LinkPut => ("link", "put"),
    /// `link.del`: delete a link definition.
    LinkDel => ("link", "del"),
    /// `link.list`: list link definitions.
    LinkList => ("link", "list"),
    /// `claims.list`: list the claims of the actors started in the lattice.
    ClaimsList => ("claims", "list"),
}

impl CtlOperation {
    /// Whether the operation only reads: `host.ping`, `host.get`,
    /// `link.list` and `claims.list`. A read-only control credential may
    /// perform these and nothing else (`docs/protocol.md` §5.1).
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::subject::CtlOperation;
    ///
    /// assert!(CtlOperation::LinkList.is_read_only());
    /// assert!(!CtlOperation::LinkPut.is_read_only());
    /// ```
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            CtlOperation::HostPing
                | CtlOperation::HostGet { .. }
                | CtlOperation::LinkList
                | CtlOperation::ClaimsList
        )
    }
}

/// The NATS header that carries the sender's signed token on control
/// requests and on a host's control messages to its providers
/// (`docs/protocol.md` §5.1).
pub const TOKEN_HEADER: &str = "Trellis-Token";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ctl_operation_round_trips_through_its_subject() {
        let lattice = Lattice::new("prod-eu_1").unwrap();
        let host = || "NABC123".to_owned();
        let ops = [
            CtlOperation::HostPing,
            CtlOperation::HostGet { host_id: host() },
            CtlOperation::HostStop { host_id: host() },
            CtlOperation::ActorStart { host_id: host() },
            CtlOperation::ActorScale { host_id: host() },
            CtlOperation::ActorUpdate { host_id: host() },
            CtlOperation::ActorStop { host_id: host() },
            CtlOperation::ProviderStart { host_id: host() },
            CtlOperation::ProviderStop { host_id: host() },
            CtlOperation::LabelPut { host_id: host() },
            CtlOperation::LabelDel { host_id: host() },
            CtlOperation::LinkPut,
            CtlOperation::LinkDel,
            CtlOperation::LinkList,
            CtlOperation::ClaimsList,
        ];
        for op in ops {
            let subject = lattice.ctl(&op).unwrap();
            assert_eq!(lattice.parse_ctl(&subject).unwrap(), op, "{subject}");
        }
    }

    #[test]
    fn every_operation_in_all_parses_back_from_its_subject() {
        let lattice = Lattice::new("default").unwrap();
        let mut names = std::collections::HashSet::new();
        for op in CtlOperation::ALL {
            assert!(names.insert(op.name()), "{} twice", op.name());
            let subject = match op.host_id() {
                Some(_) => format!("{CTL_PREFIX}.default.{}.NHOST", op.name()),
                None => format!("{CTL_PREFIX}.default.{}", op.name()),
            };
            let parsed = lattice.parse_ctl(&subject).unwrap();
            assert_eq!(parsed.name(), op.name());
            assert_eq!(parsed.host_id().is_some(), op.host_id().is_some());
            assert_eq!(lattice.ctl(&parsed).unwrap(), subject);
        }
    }

    #[test]
    fn tokens_with_subject_syntax_are_refused() {
        for bad in ["a.b", "a*", ">", "a b", "é", "a\tb", "a\r\n"] {
            assert!(
                matches!(
                    validate_token(TokenKind::Id, bad),
                    Err(SubjectError::InvalidCharacter { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            validate_token(TokenKind::LinkName, ""),
            Err(SubjectError::Empty {
                kind: TokenKind::LinkName
            })
        );
        assert!(matches!(
            Lattice::new("x".repeat(65)),
            Err(SubjectError::TooLong {
                len: 65,
                max: 64,
                ..
            })
        ));
    }

    #[test]
    fn builders_refuse_hostile_ids() {
        let lattice = Lattice::new("default").unwrap();
        assert!(lattice.rpc("MACTOR.>", None).is_err());
        assert!(lattice.rpc("MACTOR", Some("x.*")).is_err());
        assert!(
            lattice
                .ctl(&CtlOperation::HostStop {
                    host_id: "*".into()
                })
                .is_err()
        );
        assert!(lattice.ctl_host_subscriptions("N.>").is_err());
    }

    #[test]
    fn malformed_ctl_subjects_are_unrecognised() {
        let lattice = Lattice::new("default").unwrap();
        for bad in [
            "trellis.ctl.v1.default",
            "trellis.ctl.v1.default.host",
            "trellis.ctl.v1.default.host.ping.N1.extra",
            "trellis.ctl.v1.default.actor.start",
            "trellis.ctl.v1.default.host.ping.N1",
            "trellis.ctl.v2.default.host.ping",
            "trellis.ctl.v1.defaultx.host.ping",
            "trellis.ctl.v1.default.nope.ping",
        ] {
            assert!(
                matches!(lattice.parse_ctl(bad), Err(SubjectError::Unrecognised(_))),
                "{bad}"
            );
        }
    }
}
