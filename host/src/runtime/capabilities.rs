//! Host-side implementations of the capability imports: `wasi:keyvalue`,
//! `trellis:sqldb`, `wasi:logging` and `wasi:config`.
//!
//! Deny by default: a provider-served import (`wasi:keyvalue`,
//! `trellis:sqldb`) works only if the actor's claims list the contract
//! **and** a link definition binds (actor, contract, link name) to a
//! provider. Otherwise it returns the contract's own error value, e.g.
//! `other("denied: no link for wasi:keyvalue/default")`; the host never
//! traps because of a denial. Allowed calls are forwarded to the linked
//! provider over NATS, asynchronously and inside a timeout.
//!
//! `wasi:logging` and `wasi:config` are served by the host itself and need
//! no claim: logging goes to the host log tagged with the actor id, and the
//! configuration an actor reads is the `config` of the link definitions
//! whose source it is.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_protocol::contracts::keyvalue::{self as kv, KvRequest, KvResponse};
use trellis_protocol::contracts::sqldb::{self as sql, SqlRequest, SqlValue};
use trellis_protocol::{ContractId, LinkDefinition, RpcErrorKind};
use wasmtime::component::{HasSelf, Linker, Resource};

use super::ActorState;
use crate::rpc::LatticeClient;

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

/// Contract id of key-value.
pub const KEYVALUE_CONTRACT: &str = "wasi:keyvalue";
/// Contract id of SQL.
pub const SQLDB_CONTRACT: &str = "trellis:sqldb";

/// An open key-value bucket: the link name it goes through and the
/// identifier the actor opened.
#[derive(Debug, Clone)]
pub struct Bucket {
    link_name: String,
    identifier: String,
}

/// What one actor may reach: its claims and the lattice.
#[derive(Clone)]
pub struct CapabilityContext {
    /// The actor's public key.
    pub actor_id: Arc<str>,
    /// Contract ids its claims list.
    pub caps: Arc<HashSet<String>>,
    /// Links and provider calls.
    pub lattice: Arc<LatticeClient>,
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
    /// The link for `contract` under `link_name`, if the actor may use it.
    ///
    /// # Errors
    ///
    /// A `denied: …` message when the claims lack the contract or no link
    /// binds it.
    fn authorize(&self, contract: &str, link_name: &str) -> Result<LinkDefinition, String> {
        if !self.caps.contains(contract) {
            return Err(format!(
                "denied: the actor's claims do not grant {contract}"
            ));
        }
        let contract_id = ContractId::new(contract).map_err(|e| e.to_string())?;
        self.lattice
            .link(&self.actor_id, &contract_id, link_name)
            .ok_or_else(|| format!("denied: no link for {contract}/{link_name}"))
    }

    /// Forwards a request to the linked provider and decodes its answer.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        link: &LinkDefinition,
        operation: &str,
        request: &Req,
    ) -> Result<Resp, (RpcErrorKind, String)> {
        self.lattice
            .call_provider(&self.actor_id, link, operation, request)
            .await
    }
}

fn kv_denied(message: String) -> wit_kv::Error {
    wit_kv::Error::Other(message)
}

impl ActorState {
    async fn kv(
        &mut self,
        link_name: &str,
        request: KvRequest,
    ) -> Result<KvResponse, wit_kv::Error> {
        let caps = self.capabilities.clone();
        let link = caps
            .authorize(KEYVALUE_CONTRACT, link_name)
            .map_err(kv_denied)?;
        match caps
            .call::<_, KvResponse>(&link, kv::OPERATION, &request)
            .await
        {
            Ok(KvResponse::Error { message }) => Err(wit_kv::Error::Other(message)),
            Ok(response) => Ok(response),
            Err((_, message)) => Err(wit_kv::Error::Other(message)),
        }
    }

    fn bucket(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<Bucket> {
        Ok(self.table.get(bucket)?.clone())
    }
}

fn unexpected(response: &KvResponse) -> wit_kv::Error {
    wit_kv::Error::Other(format!(
        "the provider answered {response:?} to a different request"
    ))
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
        if let Err(message) = self.capabilities.authorize(KEYVALUE_CONTRACT, &link_name) {
            return Ok(Err(kv_denied(message)));
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
        Ok(
            match self
                .kv(
                    &b.link_name,
                    KvRequest::Get {
                        bucket: b.identifier,
                        key,
                    },
                )
                .await
            {
                Ok(KvResponse::Value { value }) => Ok(value.map(|v| v.into_vec())),
                Ok(other) => Err(unexpected(&other)),
                Err(e) => Err(e),
            },
        )
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        let request = KvRequest::Set {
            bucket: b.identifier,
            key,
            value: value.into(),
        };
        Ok(self.kv(&b.link_name, request).await.map(|_| ()))
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        Ok(self
            .kv(
                &b.link_name,
                KvRequest::Delete {
                    bucket: b.identifier,
                    key,
                },
            )
            .await
            .map(|_| ()))
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        Ok(
            match self
                .kv(
                    &b.link_name,
                    KvRequest::Exists {
                        bucket: b.identifier,
                        key,
                    },
                )
                .await
            {
                Ok(KvResponse::Exists { exists }) => Ok(exists),
                Ok(other) => Err(unexpected(&other)),
                Err(e) => Err(e),
            },
        )
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<wit_kv::KeyResponse, wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        Ok(
            match self
                .kv(
                    &b.link_name,
                    KvRequest::ListKeys {
                        bucket: b.identifier,
                        cursor,
                    },
                )
                .await
            {
                Ok(KvResponse::Keys { keys, cursor }) => Ok(wit_kv::KeyResponse { keys, cursor }),
                Ok(other) => Err(unexpected(&other)),
                Err(e) => Err(e),
            },
        )
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
        Ok(
            match self
                .kv(
                    &b.link_name,
                    KvRequest::Increment {
                        bucket: b.identifier,
                        key,
                        delta,
                    },
                )
                .await
            {
                Ok(KvResponse::Number { value }) => Ok(value),
                Ok(other) => Err(unexpected(&other)),
                Err(e) => Err(e),
            },
        )
    }
}

impl bindings::wasi::keyvalue::batch::Host for ActorState {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        Ok(
            match self
                .kv(
                    &b.link_name,
                    KvRequest::GetMany {
                        bucket: b.identifier,
                        keys,
                    },
                )
                .await
            {
                Ok(KvResponse::Values { values }) => Ok(values
                    .into_iter()
                    .map(|(k, v)| v.map(|v| (k, v.into_vec())))
                    .collect()),
                Ok(other) => Err(unexpected(&other)),
                Err(e) => Err(e),
            },
        )
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        let entries = key_values.into_iter().map(|(k, v)| (k, v.into())).collect();
        Ok(self
            .kv(
                &b.link_name,
                KvRequest::SetMany {
                    bucket: b.identifier,
                    entries,
                },
            )
            .await
            .map(|_| ()))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wit_kv::Error>> {
        let b = self.bucket(&bucket)?;
        Ok(self
            .kv(
                &b.link_name,
                KvRequest::DeleteMany {
                    bucket: b.identifier,
                    keys,
                },
            )
            .await
            .map(|_| ()))
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
            .lattice
            .actor_config(&self.capabilities.actor_id)
            .remove(&key)))
    }

    async fn get_all(
        &mut self,
    ) -> wasmtime::Result<Result<Vec<(String, String)>, wit_config::Error>> {
        Ok(Ok(self
            .capabilities
            .lattice
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

fn rpc_sql_error((kind, message): (RpcErrorKind, String)) -> wit_sql::Error {
    match kind {
        RpcErrorKind::Timeout => wit_sql::Error::Timeout(message),
        RpcErrorKind::Denied => wit_sql::Error::Denied(message),
        _ => wit_sql::Error::Connection(message),
    }
}

impl ActorState {
    async fn sql<T: DeserializeOwned>(
        &mut self,
        operation: &str,
        statement: String,
        params: Vec<wit_sql::PgValue>,
    ) -> Result<T, wit_sql::Error> {
        let caps = self.capabilities.clone();
        let link = caps
            .authorize(SQLDB_CONTRACT, trellis_protocol::DEFAULT_LINK_NAME)
            .map_err(wit_sql::Error::Denied)?;
        let request = SqlRequest {
            statement,
            params: params.into_iter().map(to_wire).collect(),
        };
        match caps
            .call::<_, Result<T, sql::SqlError>>(&link, operation, &request)
            .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(sql_error(e)),
            Err(e) => Err(rpc_sql_error(e)),
        }
    }
}

impl bindings::trellis::sqldb::query::Host for ActorState {
    async fn query(
        &mut self,
        statement: String,
        params: Vec<wit_sql::PgValue>,
    ) -> wasmtime::Result<Result<wit_sql::QueryResult, wit_sql::Error>> {
        Ok(self
            .sql::<sql::SqlRows>(sql::QUERY_OPERATION, statement, params)
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
        Ok(self
            .sql::<u64>(sql::EXECUTE_OPERATION, statement, params)
            .await)
    }
}

impl wit_sql::Host for ActorState {}
