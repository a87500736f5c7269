//! Shared helpers: a server over a store on 127.0.0.1:0, a raw HTTP client
//! and a small WebSocket client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use alloy::primitives::B256;
use coldchain::{
    BlockData, ColdBackend, ColdStorage, MemBackend,
    testing::{ChainShape, test_chain_with},
};
use coldchain_client::HttpClient;
use coldchain_rpc::{RpcConfig, RpcServer, RunningServer};
use serde_json::{Value, json};
use std::{net::SocketAddr, time::Duration};
use tokio::{io::AsyncReadExt, io::AsyncWriteExt, net::TcpStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// A chain with every transaction type, creations, failures and logs.
pub fn chain(start: u64, len: u64) -> Vec<BlockData> {
    let shape = ChainShape { max_txs: 8, max_logs: 4, addresses: 4, topics: 6 };
    test_chain_with(start, len, B256::ZERO, 11, shape)
}

pub struct TestServer<B> {
    pub handle: ColdStorage<B>,
    pub server: Option<RunningServer>,
    pub addr: SocketAddr,
    pub client: HttpClient,
}

impl<B: ColdBackend> TestServer<B> {
    pub async fn start_with(handle: ColdStorage<B>, config: RpcConfig) -> Self {
        let server = RpcServer::new(handle.clone(), config)
            .start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = server.local_addr();
        let client = HttpClient::new(&format!("http://{addr}")).unwrap();
        Self { handle, server: Some(server), addr, client }
    }

    /// The whole JSON-RPC answer to one call.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        self.post(&body.to_string()).await
    }

    /// The `result` of one call; panics on an error answer.
    pub async fn result(&self, method: &str, params: Value) -> Value {
        let answer = self.call(method, params.clone()).await;
        assert!(answer.get("error").is_none(), "{method} {params}: {answer}");
        answer["result"].clone()
    }

    /// The `error` of one call; panics on a result.
    pub async fn error(&self, method: &str, params: Value) -> Value {
        let answer = self.call(method, params.clone()).await;
        assert!(
            answer.get("result").is_none(),
            "{method} {params}: expected an error, got {answer}"
        );
        answer["error"].clone()
    }

    /// POSTs a raw body and parses the JSON answer (HTTP 200 expected, or
    /// 400 with a JSON-RPC error body for unparsable requests, as jsonrpsee
    /// and reth answer).
    pub async fn post(&self, body: &str) -> Value {
        let answer = self.client.post(body.as_bytes()).await.unwrap();
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        assert!(answer.status == 200 || answer.status == 400, "HTTP {}: {text}", answer.status);
        let value: Value = serde_json::from_str(&text).unwrap();
        if answer.status == 400 {
            assert!(value["error"]["code"].as_i64().is_some(), "HTTP 400 without an error: {text}");
        }
        value
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            assert!(server.stop(Duration::from_secs(5)).await);
        }
        self.handle.shutdown().await;
    }
}

impl TestServer<MemBackend> {
    pub async fn with_blocks(blocks: Vec<BlockData>, config: RpcConfig) -> Self {
        let handle = ColdStorage::new(MemBackend::new()).await.unwrap();
        if !blocks.is_empty() {
            handle.append_blocks(blocks).await.unwrap();
        }
        Self::start_with(handle, config).await
    }
}

/// Sends raw bytes on a fresh connection and reads until the server closes
/// it or `wait` passes; returns what was read.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A `GET path` over HTTP/1.1 (connection closed after it): the head and the
/// body of the answer.
pub async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let answer = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5)).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// A minimal WebSocket JSON-RPC client.
pub struct Ws {
    sender: soketto::connection::Sender<Compat<TcpStream>>,
    receiver: soketto::connection::Receiver<Compat<TcpStream>>,
    next_id: u64,
}

impl Ws {
    pub async fn connect(addr: SocketAddr) -> Self {
        let socket = TcpStream::connect(addr).await.unwrap();
        let host = addr.to_string();
        let mut client = soketto::handshake::Client::new(socket.compat(), &host, "/");
        match client.handshake().await.unwrap() {
            soketto::handshake::ServerResponse::Accepted { .. } => {}
            other => panic!("WebSocket upgrade refused: {other:?}"),
        }
        let (sender, receiver) = client.into_builder().finish();
        Self { sender, receiver, next_id: 1 }
    }

    pub async fn send(&mut self, text: &str) {
        self.sender.send_text(text).await.unwrap();
        self.sender.flush().await.unwrap();
    }

    /// Sends a call and returns its id.
    pub async fn request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send(&body.to_string()).await;
        id
    }

    /// The next message, within 10 s.
    pub async fn recv(&mut self) -> Value {
        self.recv_within(Duration::from_secs(10)).await.expect("a WebSocket message within 10 s")
    }

    /// The next message, or `None` if none comes within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let mut data = Vec::new();
        match tokio::time::timeout(wait, self.receiver.receive_data(&mut data)).await {
            Ok(Ok(_)) => Some(serde_json::from_slice(&data).unwrap()),
            Ok(Err(e)) => panic!("WebSocket error: {e}"),
            Err(_) => None,
        }
    }

    /// Calls and waits for the answer with this id (notifications that
    /// arrive first are returned too, in order).
    pub async fn call(&mut self, method: &str, params: Value) -> (Value, Vec<Value>) {
        let id = self.request(method, params).await;
        let mut notes = Vec::new();
        loop {
            let msg = self.recv().await;
            if msg.get("id").and_then(Value::as_u64) == Some(id) {
                return (msg, notes);
            }
            notes.push(msg);
        }
    }

    /// Subscribes and returns the subscription id.
    pub async fn subscribe(&mut self, params: Value) -> String {
        let (answer, _) = self.call("eth_subscribe", params).await;
        answer["result"].as_str().unwrap_or_else(|| panic!("subscribe failed: {answer}")).to_owned()
    }

    /// The next `n` notifications of `sub`.
    pub async fn notifications(&mut self, sub: &str, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            let msg = self.recv().await;
            assert_eq!(msg["method"], "eth_subscription", "{msg}");
            assert_eq!(msg["params"]["subscription"], sub, "{msg}");
            out.push(msg["params"]["result"].clone());
        }
        out
    }
}

/// A fresh PostgreSQL database for one test on the local server
/// (`COLDCHAIN_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).
pub struct PgDatabase {
    /// A connection to the server's admin database.
    pub admin: tokio_postgres::Client,
    /// The URL of the fresh database.
    pub url: String,
    /// Its name.
    pub name: String,
}

impl PgDatabase {
    /// Creates `coldchain_rpc_<tag>_<pid>` (dropping a leftover first). With no
    /// server it returns `None` after a loud notice naming `test`; under
    /// `CI=true` it fails instead.
    pub async fn create(test: &str, tag: &str) -> Option<Self> {
        let admin_url = std::env::var("COLDCHAIN_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let Ok((admin, connection)) =
            tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "no PostgreSQL server at {admin_url}, and CI=true"
            );
            eprintln!("\n*** SKIPPED {test}: no PostgreSQL server ***\n");
            return None;
        };
        tokio::spawn(connection);
        let name = format!("coldchain_rpc_{tag}_{}", std::process::id());
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        Some(Self { admin, url, name })
    }

    /// Drops the database and every connection to it.
    pub async fn drop_now(&self) {
        self.admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}
