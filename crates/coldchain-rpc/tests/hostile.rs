//! Hostile clients against a real server on loopback: each attack runs for
//! a bounded time while a well-behaved client calls `eth_blockNumber`; its
//! p99 must stay under 100 ms and the process's RSS under the memory budget
//! plus 200 MB. Attack sizes are scaled down from the issue's (and the
//! limits with them) so that the suite stays quick in debug builds.
//! Attackers connect from other loopback addresses (127.0.0.2, ...) so
//! that the per-address limit applies to them and not to the good client.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use alloy::primitives::B256;
use coldchain::{
    BlockData, ColdStorage, MemBackend,
    testing::{ChainShape, GatedBackend, test_chain_with},
};
use coldchain_client::HttpClient;
use coldchain_rpc::{ComponentHealth, Limits, RpcConfig, RpcServer};
use common::{TestServer, raw_exchange};
use serde_json::{Value, json};
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use tokio_util::compat::TokioAsyncReadCompatExt;

/// One attack at a time: the tests of this file measure latency, which
/// another test's attack running alongside would disturb.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Blocks with up to 32 transactions of up to 4 logs: receipts of some kB.
fn big_chain(len: u64) -> Vec<BlockData> {
    let shape = ChainShape { max_txs: 32, max_logs: 4, addresses: 4, topics: 6 };
    test_chain_with(0, len, B256::ZERO, 7, shape)
}

/// The process's resident set, in MB.
fn rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024
}

/// A TCP connection to `addr` from the loopback address `from`.
async fn connect_from(from: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))?;
    socket.connect(addr).await
}

/// `n` calls of `eth_blockNumber` by a well-behaved client (one keep-alive
/// connection, 10 ms apart); returns the p99 latency. Every call must
/// succeed.
async fn probe_p99(addr: SocketAddr, n: usize) -> Duration {
    let client = HttpClient::new(&format!("http://{addr}")).unwrap();
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let tip: Value = client.call("eth_blockNumber", json!([])).await.unwrap();
        took.push(started.elapsed());
        assert!(tip.as_str().is_some());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    took.sort();
    took[(n * 99).div_ceil(100) - 1]
}

/// Asserts the two invariants of every attack.
async fn assert_fair(addr: SocketAddr, rss_before: u64, budget: u64, what: &str) {
    let p99 = probe_p99(addr, 100).await;
    assert!(p99 < Duration::from_millis(100), "{what}: eth_blockNumber p99 {p99:?}");
    let rss = rss_mb();
    let bound = rss_before + budget / (1024 * 1024) + 200;
    eprintln!("{what}: eth_blockNumber p99 {p99:?}, RSS {rss} MB (before {rss_before} MB)");
    assert!(rss < bound, "{what}: RSS {rss} MB, bound {bound} MB");
}

fn batch(method: &str, n: usize, params: impl Fn(usize) -> Value) -> String {
    let calls: Vec<Value> = (0..n)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": method, "params": params(i)}))
        .collect();
    serde_json::to_string(&calls).unwrap()
}

/// A batch stops filling once its answers pass the limit: the rest answer
/// -32003 "response too large" (geth), in order, with their ids.
// Four workers on two cores: a batch's parsing and serialising are long
// polls, which a production runtime spreads over its workers too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_stops_filling_past_its_size_limit() {
    let _serial = SERIAL.lock().await;
    let limits = Limits { max_batch_response: 200_000, ..Limits::default() };
    let s =
        TestServer::with_blocks(big_chain(100), RpcConfig { limits, ..RpcConfig::default() }).await;
    let rss_before = rss_mb();

    let receipts = batch("eth_getBlockReceipts", 1000, |i| json!([format!("{:#x}", i % 100)]));
    let logs = batch(
        "eth_getLogs",
        1000,
        |i| json!([{"fromBlock": format!("{:#x}", i % 50), "toBlock": format!("{:#x}", i % 50 + 49)}]),
    );
    for body in [&receipts, &logs] {
        let answer = s.post(body).await;
        let answers = answer.as_array().unwrap();
        assert_eq!(answers.len(), 1000);
        let filled = answers.iter().take_while(|a| a.get("result").is_some()).count();
        assert!((1..1000).contains(&filled), "{filled} answered");
        let bytes: usize = answers[..filled].iter().map(|a| a.to_string().len()).sum();
        let last = answers[filled - 1].to_string().len();
        assert!(bytes <= 200_000 + last + 1000, "{bytes} bytes in the filled part");
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(a["id"], i, "answers keep the batch's order");
            if i >= filled {
                assert_eq!(a["error"]["code"], -32003, "{a}");
                assert_eq!(a["error"]["message"], "response too large");
            }
        }
    }

    // Batches in a loop while a good client calls.
    let addr = s.addr;
    let attack = tokio::spawn(async move {
        let client = HttpClient::new(&format!("http://{addr}")).unwrap();
        loop {
            let _ = client.post(receipts.as_bytes()).await;
        }
    });
    assert_fair(s.addr, rss_before, limits.memory_budget, "batch attack").await;
    attack.abort();
    s.stop().await;
}

/// A batch has a deadline as a whole: calls that each fit their own
/// deadline but not together answer -32002 once the batch's time is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_has_a_deadline_as_a_whole() {
    let _serial = SERIAL.lock().await;
    let backend = GatedBackend::new(false);
    let handle = ColdStorage::new(backend.clone()).await.unwrap();
    handle.append_blocks(big_chain(20)).await.unwrap();
    let limits = Limits { request_timeout: Duration::from_millis(300), ..Limits::default() };
    let s = TestServer::start_with(handle, RpcConfig { limits, ..RpcConfig::default() }).await;
    backend.hold("block_receipts");
    // 160 calls, 16 at a time, each cut at 300 ms: 3 s without a batch
    // deadline.
    let body = batch("eth_getBlockReceipts", 160, |i| json!([format!("{:#x}", i % 20)]));
    let started = Instant::now();
    let answer = s.post(&body).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "the batch took {took:?}");
    let answers = answer.as_array().unwrap();
    assert_eq!(answers.len(), 160);
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a["id"], i);
        assert_eq!(a["error"]["code"], -32002, "{a}");
    }
    backend.release("block_receipts");
    s.stop().await;
}

/// A WebSocket client that sends calls but never reads is disconnected once
/// its unread answers pass the per-connection limit; the server's memory
/// stays bounded and other clients are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_that_never_reads_is_closed() {
    let _serial = SERIAL.lock().await;
    let limits = Limits { max_connection_pending: 256 * 1024, ..Limits::default() };
    let s =
        TestServer::with_blocks(big_chain(100), RpcConfig { limits, ..RpcConfig::default() }).await;
    let rss_before = rss_mb();
    let addr = s.addr;
    let mut attackers = Vec::new();
    for n in 0..2 {
        attackers.push(tokio::spawn(async move {
            let socket = connect_from(&format!("127.0.0.{}", n + 2), addr).await.unwrap();
            let host = addr.to_string();
            let mut client = soketto::handshake::Client::new(socket.compat(), &host, "/");
            let accepted = client.handshake().await.unwrap();
            assert!(matches!(accepted, soketto::handshake::ServerResponse::Accepted { .. }));
            let (mut sender, mut receiver) = client.into_builder().finish();
            // Send until the server closes the connection (or 20,000 calls).
            let started = Instant::now();
            for i in 0..20_000u64 {
                let call = json!({"jsonrpc": "2.0", "id": i, "method": "eth_getBlockReceipts",
                    "params": [format!("{:#x}", i % 100)]});
                if sender.send_text(call.to_string()).await.is_err()
                    || sender.flush().await.is_err()
                {
                    break;
                }
            }
            // Reading now drains what the kernel buffered, then ends: the
            // server has closed the connection.
            let mut data = Vec::new();
            let closed = tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    data.clear();
                    if receiver.receive_data(&mut data).await.is_err() {
                        break;
                    }
                }
            })
            .await;
            assert!(closed.is_ok(), "the server kept a non-reading client open");
            started.elapsed()
        }));
    }
    assert_fair(s.addr, rss_before, limits.memory_budget, "non-reading WebSocket").await;
    for a in attackers {
        a.await.unwrap();
    }
    s.stop().await;
}

/// 200 slow-body requests (headers complete, the body never finished) from
/// one address: the per-address limit refuses most, the body deadline ends
/// the rest with 408, and a good client is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_do_not_starve_others() {
    let _serial = SERIAL.lock().await;
    let limits = Limits { body_read_timeout: Duration::from_secs(2), ..Limits::default() };
    let s =
        TestServer::with_blocks(common::chain(0, 10), RpcConfig { limits, ..RpcConfig::default() })
            .await;
    let rss_before = rss_mb();
    let addr = s.addr;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let Ok(mut c) = connect_from("127.0.0.2", addr).await else { continue };
        let head = "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                    Content-Length: 1000\r\n\r\n{\"jsonrpc\"";
        if c.write_all(head.as_bytes()).await.is_ok() {
            slow.push(c);
        }
    }
    assert_fair(addr, rss_before, limits.memory_budget, "slow bodies").await;
    // Each admitted slow request ends with 408 (refused ones are closed).
    let mut timed_out = 0;
    for mut c in slow {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out);
        if text.starts_with("HTTP/1.1 408") {
            timed_out += 1;
        } else {
            assert!(text.is_empty() || text.starts_with("HTTP/1.1 429"), "{text}");
        }
    }
    assert_eq!(timed_out, Limits::default().max_connections_per_ip, "admitted and timed out");
    s.stop().await;
}

/// Idle WebSockets (never reading, never answering pings) from several
/// addresses fill the WebSocket pool; HTTP callers are not affected, and
/// the idle ones are closed after the idle timeout, which frees the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_websockets_do_not_starve_http_and_are_closed() {
    let _serial = SERIAL.lock().await;
    let limits = Limits {
        max_ws_connections: 40,
        ws_ping_interval: Duration::from_millis(500),
        ws_idle_timeout: Duration::from_millis(2000),
        ..Limits::default()
    };
    let s =
        TestServer::with_blocks(common::chain(0, 10), RpcConfig { limits, ..RpcConfig::default() })
            .await;
    let rss_before = rss_mb();
    let addr = s.addr;
    let mut idle = Vec::new();
    let mut refused = 0;
    for n in 0..100 {
        let from = format!("127.0.0.{}", 2 + n % 4);
        let Ok(socket) = connect_from(&from, addr).await else {
            refused += 1;
            continue;
        };
        let host = addr.to_string();
        let mut client = soketto::handshake::Client::new(socket.compat(), &host, "/");
        match client.handshake().await {
            Ok(soketto::handshake::ServerResponse::Accepted { .. }) => {
                idle.push(client.into_builder().finish())
            }
            _ => refused += 1,
        }
    }
    assert_eq!(idle.len(), 40, "the WebSocket pool holds 40");
    assert_eq!(refused, 60);
    // The pool is full: /health says so.
    let full = health(addr).await;
    assert_eq!(full.0, 503, "{}", full.1);
    assert!(full.1["reasons"].to_string().contains("WebSocket"), "{}", full.1);
    assert_fair(addr, rss_before, limits.memory_budget, "idle WebSockets").await;
    // Idle clients are dropped after the idle limit; the pool frees.
    let mut freed = (0, Value::Null);
    for _ in 0..50 {
        freed = health(addr).await;
        if freed.1["wsSlotsFree"] == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(freed.1["wsSlotsFree"], 40, "{}", freed.1);
    assert_eq!(freed.0, 200, "{}", freed.1);
    drop(idle);
    s.stop().await;
}

/// A full HTTP pool (slow bodies from many addresses) does not stop a
/// WebSocket client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_http_pool_does_not_starve_websockets() {
    let _serial = SERIAL.lock().await;
    let limits = Limits { max_http_requests: 20, ..Limits::default() };
    let s =
        TestServer::with_blocks(common::chain(0, 10), RpcConfig { limits, ..RpcConfig::default() })
            .await;
    let addr = s.addr;
    let mut slow = Vec::new();
    for n in 0..20 {
        let mut c = connect_from(&format!("127.0.0.{}", 2 + n % 4), addr).await.unwrap();
        let head = "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                    Content-Length: 1000\r\n\r\n{";
        c.write_all(head.as_bytes()).await.unwrap();
        slow.push(c);
    }
    // Wait until the server holds all 20 slots.
    let mut full = false;
    for _ in 0..100 {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
        let answer = s.client.post(body.as_bytes()).await.unwrap();
        if answer.status == 429 {
            full = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(full, "the HTTP pool never filled");
    let mut ws = common::Ws::connect(addr).await;
    let (answer, _) = ws.call("eth_blockNumber", json!([])).await;
    assert_eq!(answer["result"], "0x9");
    drop(slow);
    s.stop().await;
}

async fn health(addr: SocketAddr) -> (u16, Value) {
    let request = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(addr, request.as_bytes(), Duration::from_secs(10)).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// `/health` reads the backend with its own deadline: a backend that does
/// not answer makes it 503 with the reason; a failing component too;
/// `/health/live` stays 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_truthful() {
    let _serial = SERIAL.lock().await;
    let backend = GatedBackend::new(false);
    let handle = ColdStorage::new(backend.clone()).await.unwrap();
    handle.append_blocks(common::chain(0, 4)).await.unwrap();
    let follower_ok = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = follower_ok.clone();
    let server = RpcServer::new(handle.clone(), RpcConfig::default())
        .with_health_component(
            "follower",
            Arc::new(move || {
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    ComponentHealth::ok(json!({"lag": 0}))
                } else {
                    ComponentHealth::failing(json!({"lastError": "node unreachable"}))
                }
            }),
        )
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr();

    let (status, body) = health(addr).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["tip"], 3);
    assert_eq!(body["components"]["follower"]["ok"], true);

    backend.hold("tip");
    let (status, body) = health(addr).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["reasons"][0].as_str().unwrap().starts_with("backend:"), "{body}");
    let live = raw_exchange(
        addr,
        b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    backend.release("tip");

    follower_ok.store(false, std::sync::atomic::Ordering::Relaxed);
    let (status, body) = health(addr).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reasons"], json!(["follower: not ok"]), "{body}");
    assert_eq!(body["components"]["follower"]["detail"]["lastError"], "node unreachable");

    assert!(server.stop(Duration::from_secs(5)).await);
    handle.shutdown().await;
}

/// Host and Origin as geth checks them, and CORS when enabled.
#[tokio::test]
async fn host_origin_and_cors() {
    let _serial = SERIAL.lock().await;
    let config =
        RpcConfig { http_cors_domains: vec!["https://app.example".into()], ..RpcConfig::default() };
    let handle = ColdStorage::new(MemBackend::new()).await.unwrap();
    let s = TestServer::start_with(handle, config).await;
    let post = |host: &str, extra: &str| {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
        format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let wait = Duration::from_secs(5);
    for (host, ok) in [
        ("localhost", true),
        ("localhost:8545", true),
        ("127.0.0.1:8545", true),
        ("[::1]:8545", true),
        ("evil.example", false),
        ("localhost.evil.example", false),
    ] {
        let answer = raw_exchange(s.addr, post(host, "").as_bytes(), wait).await;
        let want = if ok { "HTTP/1.1 200" } else { "HTTP/1.1 403" };
        assert!(answer.starts_with(want), "Host {host}: {answer}");
    }
    // CORS: an allowed origin gets the header; another does not.
    let answer =
        raw_exchange(s.addr, post("localhost", "Origin: https://app.example\r\n").as_bytes(), wait)
            .await
            .to_ascii_lowercase();
    assert!(answer.contains("access-control-allow-origin: https://app.example"), "{answer}");
    let answer = raw_exchange(
        s.addr,
        post("localhost", "Origin: https://evil.example\r\n").as_bytes(),
        wait,
    )
    .await
    .to_ascii_lowercase();
    assert!(!answer.contains("access-control-allow-origin"), "{answer}");
    let preflight = "OPTIONS / HTTP/1.1\r\nHost: localhost\r\nOrigin: https://app.example\r\n\
                     Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(s.addr, preflight.as_bytes(), wait).await.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 204"), "{answer}");
    assert!(answer.contains("access-control-allow-methods: post"), "{answer}");
    assert!(answer.contains("access-control-allow-headers: content-type"), "{answer}");

    // WebSocket Origin: a page on localhost may connect, another may not.
    for (origin, ok) in [("http://localhost:3000", true), ("https://evil.example", false)] {
        let upgrade = format!(
            "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Origin: {origin}\r\n\r\n"
        );
        let answer = raw_exchange(s.addr, upgrade.as_bytes(), Duration::from_millis(500)).await;
        let want = if ok { "HTTP/1.1 101" } else { "HTTP/1.1 403" };
        assert!(answer.starts_with(want), "Origin {origin}: {answer}");
    }
    // A WebSocket is checked by its Origin, not its Host (as geth): a
    // non-browser client under another name connects.
    let upgrade = "GET / HTTP/1.1\r\nHost: node.lan:8545\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
    let answer = raw_exchange(s.addr, upgrade.as_bytes(), Duration::from_millis(500)).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    s.stop().await;
}

/// A subscriber that does not read loses its subscription after the send
/// timeout, and finds an error notification saying so when it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_told_why_it_was_dropped() {
    let _serial = SERIAL.lock().await;
    let limits = Limits {
        ws_buffer: 4,
        subscription_send_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let blocks = big_chain(300);
    let handle = ColdStorage::new(MemBackend::new()).await.unwrap();
    handle.append_blocks(blocks[..1].to_vec()).await.unwrap();
    let s = TestServer::start_with(handle, RpcConfig { limits, ..RpcConfig::default() }).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let socket = socket.connect(s.addr).await.unwrap();
    let host = s.addr.to_string();
    let mut client = soketto::handshake::Client::new(socket.compat(), &host, "/");
    let accepted = client.handshake().await.unwrap();
    assert!(matches!(accepted, soketto::handshake::ServerResponse::Accepted { .. }));
    let (mut sender, mut receiver) = client.into_builder().finish();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["logs"]});
    sender.send_text(call.to_string()).await.unwrap();
    sender.flush().await.unwrap();
    let mut data = Vec::new();
    receiver.receive_data(&mut data).await.unwrap();
    let answer: Value = serde_json::from_slice(&data).unwrap();
    let sub = answer["result"].as_str().unwrap().to_owned();
    // Megabytes of logs the client does not read.
    s.handle.append_blocks(blocks[1..].to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            data.clear();
            receiver.receive_data(&mut data).await.unwrap();
            let msg: Value = serde_json::from_slice(&data).unwrap();
            assert_eq!(msg["params"]["subscription"], sub.as_str(), "{msg}");
            if let Some(error) = msg["params"].get("error") {
                return error.clone();
            }
        }
    })
    .await
    .expect("an error notification");
    assert_eq!(found["code"], -32005, "{found}");
    assert!(found["message"].as_str().unwrap().starts_with("subscription dropped"), "{found}");
    s.stop().await;
}

/// The unread-bytes limit closes clients that do not read, not clients
/// that read one large answer or one large batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_to_a_reading_client_are_not_cut() {
    let _serial = SERIAL.lock().await;
    let limits = Limits { max_connection_pending: 4096, ..Limits::default() };
    let s =
        TestServer::with_blocks(big_chain(20), RpcConfig { limits, ..RpcConfig::default() }).await;
    let mut biggest = 0;
    for n in 0..20u64 {
        let receipts = s.result("eth_getBlockReceipts", json!([format!("{n:#x}")])).await;
        biggest = biggest.max(receipts.to_string().len());
    }
    assert!(biggest > 4096, "the test needs an answer above the limit: {biggest}");
    let body = batch("eth_getBlockReceipts", 20, |i| json!([format!("{i:#x}")]));
    let answer = s.post(&body).await;
    for a in answer.as_array().unwrap() {
        assert!(a.get("result").is_some(), "{a}");
    }
    let mut ws = common::Ws::connect(s.addr).await;
    for n in 0..20u64 {
        let (answer, _) = ws.call("eth_getBlockReceipts", json!([format!("{n:#x}")])).await;
        assert!(answer.get("result").is_some(), "{answer}");
    }
    s.stop().await;
}

/// An answer that does not fit the server's memory budget is shed with
/// -32005; small answers still fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_past_the_memory_budget_are_shed() {
    let _serial = SERIAL.lock().await;
    let limits = Limits { memory_budget: 4096, ..Limits::default() };
    let s =
        TestServer::with_blocks(big_chain(20), RpcConfig { limits, ..RpcConfig::default() }).await;
    let mut shed = 0;
    for n in 0..20u64 {
        let answer = s.call("eth_getBlockReceipts", json!([format!("{n:#x}")])).await;
        if answer.get("result").is_none() {
            assert_eq!(answer["error"]["code"], -32005, "{answer}");
            assert!(answer["error"]["message"].as_str().unwrap().contains("memory budget"));
            shed += 1;
        } else {
            let bytes = answer.to_string().len();
            assert!(bytes <= 4096 + 100, "an answer of {bytes} bytes passed a 4096-byte budget");
        }
    }
    assert!(shed > 0, "no answer was above the budget");
    assert_eq!(s.result("eth_blockNumber", json!([])).await, "0x13");
    s.stop().await;
}
