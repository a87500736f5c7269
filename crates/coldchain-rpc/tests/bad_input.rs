//! Bad input never panics or hangs: each case is a JSON-RPC error or a
//! clean close, and the server keeps serving afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use alloy::primitives::B256;
use coldchain::{ColdStorage, testing::GatedBackend};
use coldchain_rpc::{Limits, RpcConfig};
use common::{TestServer, Ws, chain, raw_exchange};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn still_serving<B: coldchain::ColdBackend>(s: &TestServer<B>) {
    let answer = s.call("eth_chainId", json!([])).await;
    assert_eq!(answer["result"], "0x1", "{answer}");
}

#[tokio::test]
async fn malformed_json_and_bad_requests() {
    let s = TestServer::with_blocks(chain(0, 3), RpcConfig::default()).await;
    for body in [
        "{\"jsonrpc\":",
        "not json at all",
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_chainId\"},",
        "\u{0}\u{1}\u{2}",
    ] {
        let answer = s.post(body).await;
        assert_eq!(answer["error"]["code"], -32700, "{body:?}: {answer}");
    }
    for body in ["{}", "42", "\"eth_chainId\"", r#"{"jsonrpc":"2.0","id":1,"method":5}"#] {
        let answer = s.post(body).await;
        assert!(answer["error"]["code"].as_i64().is_some(), "{body:?}: {answer}");
    }
    let answer = s.post("[]").await;
    assert_eq!(answer["error"]["code"], -32600, "an empty batch: {answer}");
    still_serving(&s).await;

    // Over WebSocket the connection survives garbage.
    let mut ws = Ws::connect(s.addr).await;
    ws.send("{{{").await;
    let answer = ws.recv().await;
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    let (answer, _) = ws.call("eth_blockNumber", Value::Null).await;
    assert_eq!(answer["result"], "0x2");
    s.stop().await;
}

#[tokio::test]
async fn wrong_parameter_types_and_unknown_tags() {
    let s = TestServer::with_blocks(chain(0, 3), RpcConfig::default()).await;
    let h = format!("{}", B256::repeat_byte(1));
    for (method, params) in [
        ("eth_getBlockByNumber", json!([1, false])),
        ("eth_getBlockByNumber", json!(["0x01", false])),
        ("eth_getBlockByNumber", json!(["newest", false])),
        ("eth_getBlockByNumber", json!(["latest", "yes"])),
        ("eth_getBlockByNumber", json!(["0x1ffffffffffffffff", false])),
        ("eth_getBlockByNumber", json!([null, false])),
        ("eth_getBlockByNumber", json!(["latest", false, 3])),
        ("eth_getBlockByHash", json!(["0x12", false])),
        ("eth_getBlockByHash", json!([format!("0x{}", "zz".repeat(32)), false])),
        ("eth_getBlockByHash", json!(["latest", false])),
        ("eth_getTransactionByHash", json!([123])),
        ("eth_getTransactionByHash", json!([{"hash": h}])),
        ("eth_getTransactionByBlockNumberAndIndex", json!(["0x1", 0])),
        ("eth_getTransactionReceipt", json!([])),
        ("eth_getBlockReceipts", json!([{}])),
        ("eth_getBlockReceipts", json!([[]])),
        ("eth_getBlockReceipts", json!([{"blockHash": h, "blockNumber": "0x1"}])),
        ("eth_getBlockTransactionCountByNumber", json!(["earliestt"])),
        ("eth_getLogs", json!(["x"])),
        ("eth_getLogs", json!([{"fromBlock": 5}])),
        ("eth_getLogs", json!([{"fromBlock": "newest"}])),
        ("eth_getLogs", json!([{"address": "0x12"}])),
        ("eth_getLogs", json!([{"address": [1]}])),
        ("eth_getLogs", json!([{"topics": "x"}])),
        ("eth_getLogs", json!([{"topics": [null, null, null, null, null]}])),
        ("eth_getLogs", json!([{"topics": [[h, 5]]}])),
        ("eth_chainId", json!({"a": 1})),
        ("eth_chainId", json!("x")),
    ] {
        let e = s.error(method, params.clone()).await;
        assert_eq!(e["code"], -32602, "{method} {params}: {e}");
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
    still_serving(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn huge_ranges_and_oversized_requests() {
    let limits = Limits {
        max_block_range: 10,
        max_batch: 5,
        max_request_body: 2_000,
        max_filter_values: 3,
        ..Limits::default()
    };
    let s =
        TestServer::with_blocks(chain(0, 30), RpcConfig { limits, ..RpcConfig::default() }).await;
    let e = s
        .error("eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": "0xffffffffffffffff"}]))
        .await;
    assert_eq!(e["code"], -32602);
    let e = s.error("eth_getLogs", json!([{"fromBlock": "earliest", "toBlock": "latest"}])).await;
    assert_eq!(e["code"], -32602);
    assert_eq!(e["message"], "query exceeds max block range 10");
    assert_eq!(e["data"], json!({"maxBlockRange": 10, "from": "0x0", "to": "0x9"}));
    let addresses: Vec<String> = (0..4).map(|i| format!("0x{:040x}", i)).collect();
    let e = s.error("eth_getLogs", json!([{"address": addresses}])).await;
    assert_eq!(e["code"], -32602);

    // A batch above the limit is one error; the limit itself is fine.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"});
    let answer = s.post(&json!(vec![call.clone(); 6]).to_string()).await;
    assert!(answer["error"]["code"].as_i64().is_some(), "{answer}");
    let answer = s.post(&json!(vec![call.clone(); 5]).to_string()).await;
    assert_eq!(answer.as_array().unwrap().len(), 5);

    // A body above the limit: HTTP 413.
    let big =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": ["x".repeat(3_000)]});
    let answer = s.client.post(big.to_string().as_bytes()).await.unwrap();
    assert_eq!(answer.status, 413);
    still_serving(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn too_many_connections_are_refused_cleanly() {
    let limits = Limits { max_connections: 2, ..Limits::default() };
    let s =
        TestServer::with_blocks(chain(0, 2), RpcConfig { limits, ..RpcConfig::default() }).await;
    let a = Ws::connect(s.addr).await;
    let b = Ws::connect(s.addr).await;
    let request = b"POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                    Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    let answer = raw_exchange(s.addr, request, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer:?}");
    drop((a, b));
    // Connections are given back.
    let mut back = false;
    for _ in 0..100 {
        let answer =
            s.client.post(br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#).await.unwrap();
        if answer.status == 200 {
            back = true;
            break;
        }
        assert_eq!(answer.status, 429);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "the connections of closed clients are given back");
    s.stop().await;
}

#[tokio::test]
async fn clients_that_leave_mid_request_or_mid_subscription() {
    let backend = GatedBackend::new(false);
    let gate = backend.clone();
    let handle = ColdStorage::new(backend).await.unwrap();
    handle.append_blocks(chain(0, 5)).await.unwrap();
    let s = TestServer::start_with(handle, RpcConfig::default()).await;
    let permits = s.handle.available_read_permits();

    // A half-sent request, then the client goes away.
    let partial =
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Len";
    raw_exchange(s.addr, partial, Duration::from_millis(50)).await;
    // A full request whose store read is stuck, then the client goes away.
    gate.hold("transaction");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionByHash", "params": [B256::ZERO]})
        .to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let addr = s.addr;
    let left = tokio::spawn(async move {
        raw_exchange(addr, request.as_bytes(), Duration::from_millis(100)).await
    });
    gate.wait_entered("transaction", 1).await;
    assert_eq!(left.await.unwrap(), "", "no answer was read before leaving");
    gate.release("transaction");
    gate.wait_active("transaction", 0).await;
    // The read's permit comes back once the work ends.
    for _ in 0..100 {
        if s.handle.available_read_permits() == permits {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.handle.available_read_permits(), permits);

    // A subscriber that leaves while blocks keep coming.
    let mut ws = Ws::connect(s.addr).await;
    ws.subscribe(json!(["logs", {}])).await;
    ws.subscribe(json!(["newHeads"])).await;
    drop(ws);
    let more = coldchain::testing::test_chain_with(
        5,
        5,
        s.handle.durable_tip().unwrap().hash,
        3,
        coldchain::testing::ChainShape::default(),
    );
    s.handle.append_blocks(more).await.unwrap();
    let mut ws = Ws::connect(s.addr).await;
    let (answer, _) = ws.call("eth_blockNumber", Value::Null).await;
    assert_eq!(answer["result"], "0x9");
    still_serving(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn stuck_store_reads_time_out_with_32002() {
    let backend = GatedBackend::new(false);
    let gate = backend.clone();
    let handle = ColdStorage::builder(backend)
        .read_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    handle.append_blocks(chain(0, 3)).await.unwrap();
    let limits = Limits { request_timeout: Duration::from_secs(10), ..Limits::default() };
    let s = TestServer::start_with(handle, RpcConfig { limits, ..RpcConfig::default() }).await;
    gate.hold("transaction");
    let started = Instant::now();
    let e = s.error("eth_getTransactionByHash", json!([B256::ZERO])).await;
    assert_eq!(e["code"], -32002, "{e}");
    assert_eq!(e["message"], "request timed out");
    assert!(started.elapsed() < Duration::from_secs(3));
    gate.release("transaction");
    still_serving(&s).await;
    s.stop().await;

    // The call deadline of the server, shorter than the store's.
    let backend = GatedBackend::new(false);
    let gate = backend.clone();
    let handle = ColdStorage::new(backend).await.unwrap();
    let limits = Limits { request_timeout: Duration::from_millis(200), ..Limits::default() };
    let s = TestServer::start_with(handle, RpcConfig { limits, ..RpcConfig::default() }).await;
    gate.hold("transaction");
    let started = Instant::now();
    let answer = s
        .post(&json!([
            {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionByHash", "params": [B256::ZERO]},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_chainId"},
        ])
        .to_string())
        .await;
    assert_eq!(answer[0]["error"]["code"], -32002, "{answer}");
    assert_eq!(answer[1]["result"], "0x1", "the rest of the batch is answered: {answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    gate.release("transaction");
    s.stop().await;
}

#[tokio::test]
async fn stop_answers_calls_in_flight_then_refuses() {
    let backend = GatedBackend::new(false);
    let gate = backend.clone();
    let handle = ColdStorage::new(backend).await.unwrap();
    handle.append_blocks(chain(0, 3)).await.unwrap();
    let mut s = TestServer::start_with(handle, RpcConfig::default()).await;
    gate.hold("transaction");
    let client = coldchain_client::HttpClient::new(&format!("http://{}", s.addr)).unwrap();
    let in_flight = tokio::spawn(async move {
        client.call::<Value>("eth_getTransactionByHash", json!([B256::ZERO])).await
    });
    gate.wait_entered("transaction", 1).await;
    let server = s.server.take().unwrap();
    let stopping = tokio::spawn(server.stop(Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!stopping.is_finished(), "stop waits for the call in flight");
    gate.release("transaction");
    assert_eq!(in_flight.await.unwrap().unwrap(), Value::Null, "the call in flight is answered");
    assert!(stopping.await.unwrap(), "every connection closed in time");
    assert!(tokio::net::TcpStream::connect(s.addr).await.is_err(), "the listener is closed");
    s.handle.shutdown().await;
}

#[tokio::test]
async fn oversized_responses_are_errors_not_truncations() {
    let limits = Limits { max_response_body: 2_000, ..Limits::default() };
    let s =
        TestServer::with_blocks(chain(0, 10), RpcConfig { limits, ..RpcConfig::default() }).await;
    let e = s.error("eth_getLogs", json!([{"fromBlock": "earliest"}])).await;
    assert_eq!(e["code"], -32008, "jsonrpsee's 'response is too big': {e}");
    still_serving(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn many_concurrent_clients_all_get_answers() {
    let s = TestServer::with_blocks(chain(0, 40), RpcConfig::default()).await;
    let url = format!("http://{}", s.addr);
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = coldchain_client::HttpClient::new(&url).unwrap();
            for j in 0..25u64 {
                let n = format!("{:#x}", (i * 25 + j) % 40);
                let block: Value =
                    client.call("eth_getBlockByNumber", json!([n, true])).await.unwrap();
                assert_eq!(block["number"], n);
                let _: Value = client
                    .call("eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": n}]))
                    .await
                    .unwrap();
            }
        }));
    }
    let all = futures::future::join_all(tasks);
    tokio::time::timeout(Duration::from_secs(60), all).await.expect("no hang");
    s.stop().await;
}

/// Issue #19: hashes, addresses and block ids of the right byte length
/// with a non-ASCII character panicked the handler (byte slicing inside a
/// character), and `"0x+1a"` was read as 26. Each is `-32602` now, alone,
/// in a batch next to valid calls, and over WebSocket.
#[tokio::test]
async fn non_ascii_and_signed_hex_are_refused_without_panic() {
    let s = TestServer::with_blocks(chain(0, 3), RpcConfig::default()).await;
    // 66 and 42 bytes: the lengths of a hash and an address, with "é"
    // (two bytes) across a digit pair.
    let hash = format!("0x{}é{}", "a".repeat(31), "b".repeat(31));
    let address = format!("0x{}é{}", "a".repeat(19), "b".repeat(19));
    assert_eq!((hash.len(), address.len()), (66, 42));
    let cases = [
        ("eth_getBlockByHash", json!([hash, false])),
        ("eth_getTransactionByHash", json!([hash])),
        ("eth_getTransactionReceipt", json!([hash])),
        ("eth_getBlockTransactionCountByHash", json!([hash])),
        ("eth_getTransactionByBlockHashAndIndex", json!([hash, "0x0"])),
        ("eth_getBlockReceipts", json!([hash])),
        ("eth_getBlockReceipts", json!([{"blockHash": hash}])),
        ("eth_getBlockReceipts", json!(["0x€"])),
        ("eth_getLogs", json!([{"address": address}])),
        ("eth_getLogs", json!([{"address": [address]}])),
        ("eth_getLogs", json!([{"topics": [hash]}])),
        ("eth_getLogs", json!([{"topics": [[hash]]}])),
        ("eth_getLogs", json!([{"blockHash": hash}])),
        ("eth_getLogs", json!([{"fromBlock": "0x+1"}])),
        ("eth_getBlockByNumber", json!(["0x+1a", false])),
        ("eth_getBlockByNumber", json!(["0x-1", false])),
        ("eth_getBlockByNumber", json!(["0xé", false])),
        ("eth_getTransactionByBlockNumberAndIndex", json!(["0x1", "0x+0"])),
    ];
    for (method, params) in &cases {
        let e = s.error(method, params.clone()).await;
        assert_eq!(e["code"], -32602, "{method} {params}: {e}");
    }
    let e = s.error("eth_getBlockByNumber", json!(["0x+1a", false])).await;
    assert_eq!(e["message"], "invalid argument 0: invalid hex string");

    // One batch with all of them between two valid calls.
    let mut batch = vec![json!({"jsonrpc": "2.0", "id": 0, "method": "eth_chainId"})];
    for (i, (method, params)) in cases.iter().enumerate() {
        batch.push(json!({"jsonrpc": "2.0", "id": i + 1, "method": method, "params": params}));
    }
    batch.push(json!({"jsonrpc": "2.0", "id": 999, "method": "eth_blockNumber"}));
    let answer = s.post(&json!(batch).to_string()).await;
    let answers = answer.as_array().unwrap_or_else(|| panic!("a batch answer: {answer}"));
    assert_eq!(answers.len(), cases.len() + 2, "{answer}");
    for a in answers {
        match a["id"].as_u64() {
            Some(0) => assert_eq!(a["result"], "0x1"),
            Some(999) => assert_eq!(a["result"], "0x2"),
            _ => assert_eq!(a["error"]["code"], -32602, "{a}"),
        }
    }

    // Over WebSocket each is answered and the connection stays.
    let mut ws = Ws::connect(s.addr).await;
    for (method, params) in &cases {
        let (answer, _) = ws.call(method, params.clone()).await;
        assert_eq!(answer["error"]["code"], -32602, "{method} {params}: {answer}");
    }
    let (answer, _) = ws.call("eth_blockNumber", Value::Null).await;
    assert_eq!(answer["result"], "0x2");
    still_serving(&s).await;
    s.stop().await;
}

/// A panic in a call (here the test-only `coldchain_testPanic`) is that
/// call's `-32603`: the batch's other calls, the HTTP connection and the
/// WebSocket are untouched.
#[tokio::test]
async fn a_panicking_call_is_answered_32603_alone() {
    let s = TestServer::with_blocks(chain(0, 3), RpcConfig::default()).await;
    let e = s.error("coldchain_testPanic", json!(["boom"])).await;
    assert_eq!(e["code"], -32603, "{e}");
    assert_eq!(e["message"], "internal error (panic)");

    let answer = s
        .post(
            &json!([
                {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
                {"jsonrpc": "2.0", "id": 2, "method": "coldchain_testPanic", "params": ["boom"]},
                {"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber"},
            ])
            .to_string(),
        )
        .await;
    assert_eq!(answer[0]["result"], "0x1", "{answer}");
    assert_eq!(answer[1]["error"]["code"], -32603, "{answer}");
    assert_eq!(answer[1]["id"], 2, "{answer}");
    assert_eq!(answer[2]["result"], "0x2", "{answer}");

    // Keep-alive: the same HTTP connection answers the next request.
    let call = br#"{"jsonrpc":"2.0","id":1,"method":"coldchain_testPanic","params":["x"]}"#;
    let next = br#"{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}"#;
    let mut raw = Vec::new();
    for (body, close) in [(&call[..], ""), (&next[..], "Connection: close\r\n")] {
        raw.extend_from_slice(
            format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\n{close}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        raw.extend_from_slice(body);
    }
    let answer = raw_exchange(s.addr, &raw, Duration::from_secs(5)).await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    assert!(answer.contains("-32603") && answer.contains("\"result\":\"0x1\""), "{answer}");

    let mut ws = Ws::connect(s.addr).await;
    let (answer, _) = ws.call("coldchain_testPanic", json!(["boom"])).await;
    assert_eq!(answer["error"]["code"], -32603, "{answer}");
    let (answer, _) = ws.call("eth_blockNumber", Value::Null).await;
    assert_eq!(answer["result"], "0x2");
    still_serving(&s).await;
    s.stop().await;
}

/// The smaller findings of issue #19: a chunked body above the limit is
/// 413 (was 500 `-32603`), truncated JSON is 400 `-32700` (was 200), and an
/// id that is an object, array or boolean is `-32600` with `id: null` (was
/// an empty answer).
#[tokio::test]
async fn bad_envelopes_get_the_answers_a_node_gives() {
    let limits = Limits { max_request_body: 2_000, ..Limits::default() };
    let s =
        TestServer::with_blocks(chain(0, 3), RpcConfig { limits, ..RpcConfig::default() }).await;
    let chunked = |body: &str| {
        let mut raw = String::from(
            "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n",
        );
        for chunk in body.as_bytes().chunks(500) {
            raw.push_str(&format!("{:x}\r\n{}\r\n", chunk.len(), String::from_utf8_lossy(chunk)));
        }
        raw.push_str("0\r\n\r\n");
        raw
    };
    let big =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": ["x".repeat(3_000)]});
    let answer =
        raw_exchange(s.addr, chunked(&big.to_string()).as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let small = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"});
    let answer =
        raw_exchange(s.addr, chunked(&small.to_string()).as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("\"0x1\""), "{answer}");

    for body in [
        &br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId""#[..],
        br#"{"jsonrpc":"2.0","id":1,"#,
        br#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"} trailing"#,
        b"not json",
    ] {
        let answer = s.client.post(body).await.unwrap();
        let text = String::from_utf8_lossy(&answer.body);
        assert_eq!(answer.status, 400, "{}: {text}", String::from_utf8_lossy(body));
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["error"]["code"], -32700, "{text}");
        assert_eq!(value["id"], Value::Null, "{text}");
    }

    for id in [json!({}), json!({"a": 1}), json!([]), json!([1]), json!(true), json!(false)] {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "eth_chainId"});
        let answer = s.client.post(body.to_string().as_bytes()).await.unwrap();
        let text = String::from_utf8_lossy(&answer.body);
        assert_eq!(answer.status, 200, "{body}: {text}");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["error"]["code"], -32600, "{body}: {text}");
        assert_eq!(value["id"], Value::Null, "{body}: {text}");
    }
    let answer = s
        .post(
            &json!([
                {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
                {"jsonrpc": "2.0", "id": {}, "method": "eth_chainId"},
                {"jsonrpc": "2.0", "method": "eth_chainId"},
            ])
            .to_string(),
        )
        .await;
    let answers = answer.as_array().unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(answers.len(), 2, "the notification is not answered: {answer}");
    assert_eq!(answers[0]["result"], "0x1", "{answer}");
    assert_eq!(answers[1]["error"]["code"], -32600, "{answer}");
    assert_eq!(answers[1]["id"], Value::Null, "{answer}");
    // A notification alone is still answered with no error (jsonrpsee's
    // `null`).
    let answer = s.client.post(br#"{"jsonrpc":"2.0","method":"eth_chainId"}"#).await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(
        matches!(&answer.body[..], b"" | b"null"),
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    still_serving(&s).await;
    s.stop().await;
}
