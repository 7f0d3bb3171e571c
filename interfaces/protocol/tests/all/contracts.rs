//! Typed contracts: requests and answers round-trip, the error convention
//! holds for every contract, and dispatch refuses what a contract lacks.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_bytes::ByteBuf;
use trellis_protocol::contracts::keyvalue::{self as kv, KeyPage, KvError};
use trellis_protocol::contracts::sqldb::{self as sql, SqlError, SqlRequest, SqlRows};
use trellis_protocol::contracts::{
    self, Answer, ContractError, Operation, Transport, http::HttpRequest,
};
use trellis_protocol::{DecodeLimits, RpcError, RpcErrorKind};

/// A key-value handler over a map, ignoring buckets.
#[derive(Default)]
struct MapStore(Mutex<HashMap<String, Vec<u8>>>);

impl kv::Handler for MapStore {
    type Link = ();
    async fn get(&self, _: &(), r: kv::Get) -> Answer<kv::Get> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(&r.key)
            .cloned()
            .map(ByteBuf::from))
    }
    async fn set(&self, _: &(), r: kv::Set) -> Answer<kv::Set> {
        self.0.lock().unwrap().insert(r.key, r.value.into_vec());
        Ok(())
    }
    async fn delete(&self, _: &(), r: kv::Delete) -> Answer<kv::Delete> {
        self.0.lock().unwrap().remove(&r.key);
        Ok(())
    }
    async fn exists(&self, _: &(), r: kv::Exists) -> Answer<kv::Exists> {
        Ok(self.0.lock().unwrap().contains_key(&r.key))
    }
    async fn list_keys(&self, _: &(), _: kv::ListKeys) -> Answer<kv::ListKeys> {
        let mut keys: Vec<String> = self.0.lock().unwrap().keys().cloned().collect();
        keys.sort();
        Ok(KeyPage { keys, cursor: None })
    }
    async fn increment(&self, _: &(), r: kv::Increment) -> Answer<kv::Increment> {
        Err(KvError::other(format!("no numbers here ({})", r.key)))
    }
    async fn get_many(&self, _: &(), _: kv::GetMany) -> Answer<kv::GetMany> {
        Err(KvError::NoSuchStore)
    }
    async fn set_many(&self, _: &(), _: kv::SetMany) -> Answer<kv::SetMany> {
        Ok(())
    }
    async fn delete_many(&self, _: &(), _: kv::DeleteMany) -> Answer<kv::DeleteMany> {
        Ok(())
    }
}

/// A transport that dispatches to a handler in process, as a provider would.
struct Direct<'a>(&'a MapStore);

impl Transport for Direct<'_> {
    async fn call(&self, operation: &'static str, payload: Vec<u8>) -> Result<Vec<u8>, RpcError> {
        kv::dispatch(self.0, &(), operation, &payload, &DecodeLimits::default()).await
    }
}

/// A transport whose every call fails with `kind`.
struct Failing(RpcErrorKind);

impl Transport for Failing {
    async fn call(&self, _: &'static str, _: Vec<u8>) -> Result<Vec<u8>, RpcError> {
        Err(RpcError::new(self.0, "nope"))
    }
}

/// Polls `f` to completion: the futures here never wait on anything
/// outside themselves, so a no-op waker suffices.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn every_keyvalue_operation_round_trips_through_dispatch() {
    let store = MapStore::default();
    let t = Direct(&store);
    block_on(async {
        let set = kv::Set {
            bucket: "b".into(),
            key: "k".into(),
            value: ByteBuf::from(b"v".to_vec()),
        };
        contracts::call(&t, set).await.unwrap();
        let get = kv::Get {
            bucket: "b".into(),
            key: "k".into(),
        };
        assert_eq!(
            contracts::call(&t, get).await.unwrap().unwrap().into_vec(),
            b"v"
        );
        let exists = kv::Exists {
            bucket: "b".into(),
            key: "k".into(),
        };
        assert!(contracts::call(&t, exists).await.unwrap());
        let page = contracts::call(
            &t,
            kv::ListKeys {
                bucket: "b".into(),
                cursor: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(page.keys, ["k"]);
        // Contract errors travel typed.
        let err = contracts::call(
            &t,
            kv::Increment {
                bucket: "b".into(),
                key: "k".into(),
                delta: 1,
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, KvError::Other { .. }));
        let err = contracts::call(
            &t,
            kv::GetMany {
                bucket: "b".into(),
                keys: vec![],
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err, KvError::NoSuchStore);
    });
}

#[test]
fn a_denied_call_is_each_contracts_own_denial() {
    block_on(async {
        let kv_err = contracts::call(
            &Failing(RpcErrorKind::Denied),
            kv::Get {
                bucket: String::new(),
                key: "k".into(),
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(kv_err, KvError::AccessDenied { .. }));
        let sql_err = contracts::call(
            &Failing(RpcErrorKind::Denied),
            sql::Execute(SqlRequest {
                statement: "SELECT 1".into(),
                params: vec![],
            }),
        )
        .await
        .unwrap_err();
        assert!(matches!(sql_err, SqlError::Denied { .. }));
        let http_err = contracts::call(
            &Failing(RpcErrorKind::Denied),
            HttpRequest {
                method: "GET".into(),
                scheme: "http".into(),
                authority: String::new(),
                path_with_query: "/".into(),
                headers: vec![],
                body: vec![],
            },
        )
        .await
        .unwrap_err();
        assert_eq!(http_err.kind, RpcErrorKind::Denied);
    });
}

#[test]
fn call_failures_map_onto_the_contract_errors() {
    assert!(matches!(
        SqlError::from_rpc(RpcError::new(RpcErrorKind::Timeout, "t")),
        SqlError::Timeout { .. }
    ));
    assert!(matches!(
        SqlError::from_rpc(RpcError::new(RpcErrorKind::NotFound, "n")),
        SqlError::Connection { .. }
    ));
    assert!(matches!(
        KvError::from_rpc(RpcError::new(RpcErrorKind::Timeout, "t")),
        KvError::Other { .. }
    ));
}

#[test]
fn dispatch_refuses_an_unknown_operation_and_a_bad_payload() {
    let store = MapStore::default();
    block_on(async {
        let err = kv::dispatch(
            &store,
            &(),
            "wasi:keyvalue/store.call",
            &[],
            &DecodeLimits::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, RpcErrorKind::NotFound);
        let err = kv::dispatch(
            &store,
            &(),
            kv::Get::NAME,
            b"\xc1",
            &DecodeLimits::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, RpcErrorKind::BadRequest);
    });
}

#[test]
fn sql_answers_keep_their_wire_form() {
    // The SQL wire format predates the typed contracts and must not change.
    let answer: Answer<sql::Execute> = Ok(1);
    let bytes = contracts::encode_answer::<sql::Execute>(&answer).unwrap();
    let decoded: Result<u64, SqlError> =
        trellis_protocol::decode_msgpack(&bytes, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded, Ok(1));
    let request = sql::Query(SqlRequest {
        statement: "SELECT $1".into(),
        params: vec![],
    });
    let bytes = contracts::encode_request(&request).unwrap();
    let plain: SqlRequest =
        trellis_protocol::decode_msgpack(&bytes, &DecodeLimits::default()).unwrap();
    assert_eq!(plain.statement, "SELECT $1");
    let rows: Answer<sql::Query> = Ok(SqlRows {
        columns: vec![],
        rows: vec![],
    });
    assert!(contracts::encode_answer::<sql::Query>(&rows).is_ok());
}
