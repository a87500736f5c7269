//! `/health` answers 503 once the PostgreSQL store is gone: the server's
//! database is dropped (its connections terminated) while it serves.
//!
//! Uses the local server (`COLDCHAIN_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and its own database; no
//! server fails the test under `CI=true`, and skips it loudly elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use coldchain::ColdStorage;
use coldchain_postgres::{PgOptions, PostgresBackend};
use coldchain_rpc::{RpcConfig, RpcServer};
use common::{PgDatabase, chain, raw_exchange};
use serde_json::Value;
use std::{net::SocketAddr, time::Duration};

async fn health(addr: SocketAddr) -> (u16, Value) {
    let request = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(addr, request.as_bytes(), Duration::from_secs(15)).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), serde_json::from_str(body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_when_postgres_is_gone() {
    let Some(db) = PgDatabase::create("health_is_503_when_postgres_is_gone", "health").await else {
        return;
    };
    let backend = PostgresBackend::open(&db.url, PgOptions::default()).await.unwrap();
    let handle =
        ColdStorage::builder(backend).read_timeout(Duration::from_secs(1)).build().await.unwrap();
    handle.append_blocks(chain(0, 4)).await.unwrap();
    let config = RpcConfig { backend_name: "postgres".into(), ..RpcConfig::default() };
    let server =
        RpcServer::new(handle.clone(), config).start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = server.local_addr();

    let (status, body) = health(addr).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["backendOk"], true);

    // PostgreSQL goes away for this store: its database and connections.
    db.drop_now().await;
    let (status, body) = health(addr).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["backendOk"], false, "{body}");
    assert!(body["reasons"][0].as_str().unwrap().starts_with("backend:"), "{body}");

    assert!(server.stop(Duration::from_secs(5)).await);
    handle.shutdown().await;
}
