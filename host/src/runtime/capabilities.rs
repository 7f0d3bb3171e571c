//! Host-side implementations of the capability imports: `wasi:keyvalue`,
//! `trellis:sqldb`, `wasi:logging` and `wasi:config`, over a
//! [`Capabilities`] backend.
//!
//! Deny by default: a provider-served import (`wasi:keyvalue`,
//! `trellis:sqldb`) works only if the actor's claims list the contract
//! **and** a link definition binds (actor, contract, link name) to a
//! provider. Otherwise it returns the contract's own denial
//! (`wasi:keyvalue` `access-denied`, `trellis:sqldb` `denied`); the host
//! never traps because of a denial. Allowed calls go through the typed
//! contract stubs of [`trellis_protocol::contracts`] to the backend: the
//! lattice in a host ([`crate::rpc::LatticeClient`]), a table of in-process
//! providers in tests and benches ([`super::memory::InMemoryCapabilities`]).
//!
//! `wasi:logging` and `wasi:config` are served by the host itself and need
//! no claim: logging goes to the host log tagged with the actor id, and the
//! configuration an actor reads is the `config` of the link definitions
//! whose source it is.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use trellis_protocol::RpcError;
use trellis_protocol::contracts::keyvalue::{self as kv, KvError};
use trellis_protocol::contracts::sqldb::{self as sql, SqlRequest, SqlValue};
use trellis_protocol::contracts::{self, Answer, Contract, ContractError, Operation, Transport};
use wasmtime::component::{HasSelf, Linker, Resource};

use super::ActorState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wit",
        inline: "
            package trellis:host-capabilities;
            world capabilities {
                import wasi:keyvalue/store@0.2.0-draft;
                import wasi:keyvalue/atomics@0.2.0-draft;
                import wasi:keyvalue/batch@0.2.0-draft;
                import wasi:config/store@0.2.0-draft;
                import wasi:logging/logging@0.1.0-draft;
                import trellis:sqldb/query@0.1.0;
            }
        ",
        world: "trellis:host-capabilities/capabilities",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
    });
}

use bindings::trellis::sqldb::types as wit_sql;
use bindings::wasi::config::store as wit_config;
use bindings::wasi::keyvalue::store as wit_kv;
use bindings::wasi::logging::logging as wit_log;

/// A boxed, sendable future, as [`Capabilities`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the runtime needs from outside to serve an actor's capability
/// imports: which links exist, calls to the linked providers, and the
/// configuration the actor may read. The host implements it over NATS
/// ([`crate::rpc::LatticeClient`]); [`super::memory::InMemoryCapabilities`]
/// implements it in process for tests and benches.
pub trait Capabilities: Send + Sync + 'static {
    /// Whether a link binds (`actor_id`, `contract`, `link_name`) to a
    /// provider.
    fn is_linked(&self, actor_id: &str, contract: &str, link_name: &str) -> bool;

    /// Calls `operation` with `payload` on the provider linked for
    /// (`actor_id`, `contract`, `link_name`) and returns its response
    /// payload. Implementations bound the call with a timeout.
    ///
    /// # Errors
    ///
    /// [`trellis_protocol::RpcErrorKind::Denied`] when no link binds the
    /// triple; otherwise the call's [`RpcError`].
    fn invoke<'a>(
        &'a self,
        actor_id: &'a str,
        contract: &'static str,
        link_name: &'a str,
        operation: &'static str,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, RpcError>>;

    /// The configuration `actor_id` reads through `wasi:config`.
    fn actor_config(&self, actor_id: &str) -> BTreeMap<String, String>;
}

/// The denial of a [`Capabilities::invoke`] for a triple no link binds.
pub fn no_link(contract: &str, link_name: &str) -> RpcError {
    RpcError::new(
        trellis_protocol::RpcErrorKind::Denied,
        format!("no link for {contract}/{link_name}"),
    )
}

/// An open key-value bucket: the link name it goes through and the
/// identifier the actor opened.
#[derive(Debug, Clone)]
pub struct Bucket {
    link_name: String,
    identifier: String,
}

/// What one actor may reach: its claims and the capabilities backend.
#[derive(Clone)]
pub struct CapabilityContext {
    /// The actor's public key.
    pub actor_id: Arc<str>,
    /// Contract ids its claims list.
    pub caps: Arc<HashSet<String>>,
    /// Links, provider calls and configuration.
    pub backend: Arc<dyn Capabilities>,
}

/// Adds every capability import to `linker`.
///
/// # Errors
///
/// Any error wasmtime reports for conflicting definitions.
pub fn add_to_linker(linker: &mut Linker<ActorState>) -> wasmtime::Result<()> {
    bindings::Capabilities::add_to_linker::<ActorState, HasSelf<ActorState>>(linker, |s| s)
}

impl CapabilityContext {
    /// Checks that the actor may use contract `C` over `link_name`.
    ///
    /// # Errors
    ///
    /// The contract's denial when the claims lack the contract or no link
    /// binds it.
    fn authorize<C: Contract>(&self, link_name: &str) -> Result<(), C::Error> {
        if !self.caps.contains(C::ID) {
            return Err(C::Error::denied(format!(
                "the actor's claims do not grant {}",
                C::ID
            )));
        }
        if !self.backend.is_linked(&self.actor_id, C::ID, link_name) {
            return Err(C::Error::denied(format!(
                "no link for {}/{link_name}",
                C::ID
            )));
        }
        Ok(())
    }

    /// Calls `request` on the provider linked over `link_name`, if the
    /// actor may.
    async fn call<O: Operation>(&self, link_name: &str, request: O) -> Answer<O> {
        self.authorize::<O::Contract>(link_name)?;
        let transport = LinkTransport {
            caps: self,
            contract: <O::Contract as Contract>::ID,
            link_name,
        };
        contracts::call(&transport, request).await
    }
}

/// Typed calls over one link of one actor.
struct LinkTransport<'a> {
    caps: &'a CapabilityContext,
    contract: &'static str,
    link_name: &'a str,
}

impl Transport for LinkTransport<'_> {
    fn call(
        &self,
        operation: &'static str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, RpcError>> + Send {
        self.caps.backend.invoke(
            &self.caps.actor_id,
            self.contract,
            self.link_name,
            operation,
            payload,
        )
    }
}

/// The guest's view of a key-value error: the WIT case. The message of a
/// denial is for the host log only.
fn to_wit_kv(actor: &str, error: KvError) -> wit_kv::Error {
    match error {
        KvError::NoSuchStore => wit_kv::Error::NoSuchStore,
        KvError::AccessDenied { message } => {
            tracing::debug!(actor, "key-value access denied: {message}");
            wit_kv::Error::AccessDenied
        }
        KvError::Other { message } => wit_kv::Error::Other(message),
    }
}

impl ActorState {
    /// Calls a key-value operation over `bucket`'s link. The future owns
    /// what it needs, so the store is not borrowed across the call.
    fn kv<O>(
        &self,
        bucket: &Bucket,
        request: O,
    ) -> impl Future<Output = Result<O::Output, wit_kv::Error>> + Send + 'static
    where
        O: Operation<Contract = kv::KeyValue>,
    {
        let caps = self.capabilities.clone();
        let link_name = bucket.link_name.clone();
        async move {
            caps.call(&link_name, request)
                .await
                .map_err(|e| to_wit_kv(&caps.actor_id, e))
        }
    }

    fn bucket(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<Bucket> {
        Ok(self.table.get(bucket)?.clone())
    }
}

impl wit_kv::Host for ActorState {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, wit_kv::Error>> {
        let link_name = if identifier.is_empty() {
            trellis_protocol::DEFAULT_LINK_NAME.to_owned()
        } else {
            identifier.clone()
        };
        if let Err(e) = self.capabilities.authorize::<kv::KeyValue>(&link_name) {
            return Ok(Err(to_wit_kv(&self.capabilities.actor_id, e)));
        }
        let bucket = self.table.push(Bucket {
            link_name,
            identifier,
        })?;
        Ok(Ok(bucket))
    }
}

impl wit_kv::HostBucket for ActorState {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        let request = kv::Get {
            bucket: b.identifier.clone(),
            key,
        };
        Ok(self
            .kv(&b, request)
            .await
            .map(|v| v.map(serde_bytes::ByteBuf::into_vec)))
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        let request = kv::Set {
            bucket: b.identifier.clone(),
            key,
            value: value.into(),
        };
        Ok(self.kv(&b, request).await)
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        let request = kv::Delete {
            bucket: b.identifier.clone(),
            key,
        };
        Ok(self.kv(&b, request).await)
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        let request = kv::Exists {
            bucket: b.identifier.clone(),
            key,
        };
        Ok(self.kv(&b, request).await)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<wit_kv::KeyResponse, wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        let request = kv::ListKeys {
            bucket: b.identifier.clone(),
            cursor,
        };
        Ok(self.kv(&b, request).await.map(|page| wit_kv::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        }))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl bindings::wasi::keyvalue::atomics::Host for ActorState {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> wasmtime::Result<Result<u64, wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        let request = kv::Increment {
            bucket: b.identifier.clone(),
            key,
            delta,
        };
        Ok(self.kv(&b, request).await)
    }
}

impl bindings::wasi::keyvalue::batch::Host for ActorState {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        let request = kv::GetMany {
            bucket: b.identifier.clone(),
            keys,
        };
        Ok(self.kv(&b, request).await.map(|values| {
            values
                .into_iter()
                .map(|(k, v)| v.map(|v| (k, v.into_vec())))
                .collect()
        }))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        let request = kv::SetMany {
            bucket: b.identifier.clone(),
            entries: key_values.into_iter().map(|(k, v)| (k, v.into())).collect(),
        };
        Ok(self.kv(&b, request).await)
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        let request = kv::DeleteMany {
            bucket: b.identifier.clone(),
            keys,
        };
        Ok(self.kv(&b, request).await)
    }
}

impl wit_log::Host for ActorState {
    async fn log(
        &mut self,
        level: wit_log::Level,
        context: String,
        message: String,
    ) -> wasmtime::Result<()> {
        let escape = |s: &str| -> String {
            s.chars()
                .take(4096)
                .flat_map(char::escape_default)
                .collect()
        };
        let (actor, context, message) = (
            &*self.capabilities.actor_id,
            escape(&context),
            escape(&message),
        );
        match level {
            wit_log::Level::Trace => tracing::trace!(actor, context, "{message}"),
            wit_log::Level::Debug => tracing::debug!(actor, context, "{message}"),
            wit_log::Level::Info => tracing::info!(actor, context, "{message}"),
            wit_log::Level::Warn => tracing::warn!(actor, context, "{message}"),
            wit_log::Level::Error | wit_log::Level::Critical => {
                tracing::error!(actor, context, "{message}")
            }
        }
        Ok(())
    }
}

impl wit_config::Host for ActorState {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, wit_config::Error>> {
        Ok(Ok(self
            .capabilities
            .backend
            .actor_config(&self.capabilities.actor_id)
            .remove(&key)))
    }

    async fn get_all(
        &mut self,
    ) -> wasmtime::Result<Result<Vec<(String, String)>, wit_config::Error>> {
        Ok(Ok(self
            .capabilities
            .backend
            .actor_config(&self.capabilities.actor_id)
            .into_iter()
            .collect()))
    }
}

fn to_wire(value: wit_sql::PgValue) -> SqlValue {
    use wit_sql::PgValue as P;
    match value {
        P::Null => SqlValue::Null,
        P::Bool(v) => SqlValue::Bool(v),
        P::Int2(v) => SqlValue::Int2(v),
        P::Int4(v) => SqlValue::Int4(v),
        P::Int8(v) => SqlValue::Int8(v),
        P::Float4(v) => SqlValue::Float4(v),
        P::Float8(v) => SqlValue::Float8(v),
        P::Numeric(v) => SqlValue::Numeric(v),
        P::Text(v) => SqlValue::Text(v),
        P::Bytea(v) => SqlValue::Bytea(v),
        P::Uuid(v) => SqlValue::Uuid(v),
        P::Date(v) => SqlValue::Date(v),
        P::Time(v) => SqlValue::Time(v),
        P::Timestamp(v) => SqlValue::Timestamp(v),
        P::Timestamptz(v) => SqlValue::Timestamptz(v),
        P::Json(v) => SqlValue::Json(v),
        P::Jsonb(v) => SqlValue::Jsonb(v),
    }
}

fn from_wire(value: SqlValue) -> wit_sql::PgValue {
    use wit_sql::PgValue as P;
    match value {
        SqlValue::Null => P::Null,
        SqlValue::Bool(v) => P::Bool(v),
        SqlValue::Int2(v) => P::Int2(v),
        SqlValue::Int4(v) => P::Int4(v),
        SqlValue::Int8(v) => P::Int8(v),
        SqlValue::Float4(v) => P::Float4(v),
        SqlValue::Float8(v) => P::Float8(v),
        SqlValue::Numeric(v) => P::Numeric(v),
        SqlValue::Text(v) => P::Text(v),
        SqlValue::Bytea(v) => P::Bytea(v),
        SqlValue::Uuid(v) => P::Uuid(v),
        SqlValue::Date(v) => P::Date(v),
        SqlValue::Time(v) => P::Time(v),
        SqlValue::Timestamp(v) => P::Timestamp(v),
        SqlValue::Timestamptz(v) => P::Timestamptz(v),
        SqlValue::Json(v) => P::Json(v),
        SqlValue::Jsonb(v) => P::Jsonb(v),
    }
}

fn sql_error(error: sql::SqlError) -> wit_sql::Error {
    match error {
        sql::SqlError::Denied { message } => wit_sql::Error::Denied(message),
        sql::SqlError::Timeout { message } => wit_sql::Error::Timeout(message),
        sql::SqlError::Connection { message } => wit_sql::Error::Connection(message),
        sql::SqlError::Invalid { message } => wit_sql::Error::Invalid(message),
        sql::SqlError::Query {
            sqlstate,
            message,
            detail,
        } => wit_sql::Error::Query(wit_sql::QueryError {
            sqlstate,
            message,
            detail,
        }),
    }
}

impl ActorState {
    /// Calls a SQL operation over the `default` link; as
    /// [`ActorState::kv`], the future borrows nothing from the store.
    fn sql<O>(
        &self,
        request: O,
    ) -> impl Future<Output = Result<O::Output, wit_sql::Error>> + Send + 'static
    where
        O: Operation<Contract = sql::SqlDb>,
    {
        let caps = self.capabilities.clone();
        async move {
            caps.call(trellis_protocol::DEFAULT_LINK_NAME, request)
                .await
                .map_err(sql_error)
        }
    }
}

fn sql_request(statement: String, params: Vec<wit_sql::PgValue>) -> SqlRequest {
    SqlRequest {
        statement,
        params: params.into_iter().map(to_wire).collect(),
    }
}

impl bindings::trellis::sqldb::query::Host for ActorState {
    async fn query(
        &mut self,
        statement: String,
        params: Vec<wit_sql::PgValue>,
    ) -> wasmtime::Result<Result<wit_sql::QueryResult, wit_sql::Error>> {
        Ok(self
            .sql(sql::Query(sql_request(statement, params)))
            .await
            .map(|rows| wit_sql::QueryResult {
                columns: rows
                    .columns
                    .into_iter()
                    .map(|c| wit_sql::Column {
                        name: c.name,
                        type_name: c.type_name,
                    })
                    .collect(),
                rows: rows
                    .rows
                    .into_iter()
                    .map(|r| r.into_iter().map(from_wire).collect())
                    .collect(),
            }))
    }

    async fn execute(
        &mut self,
        statement: String,
        params: Vec<wit_sql::PgValue>,
    ) -> wasmtime::Result<Result<u64, wit_sql::Error>> {
        Ok(self.sql(sql::Execute(sql_request(statement, params))).await)
    }
}

impl wit_sql::Host for ActorState {}
