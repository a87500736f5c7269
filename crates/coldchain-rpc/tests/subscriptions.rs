//! `eth_subscribe` over WebSocket: newHeads and logs driven by appends,
//! removed logs on truncation, unsubscribe, limits, HTTP refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use alloy::primitives::B256;
use coldchain::{
    BlockData,
    testing::{ChainShape, test_chain_with},
};
use coldchain_rpc::{Limits, RpcConfig};
use common::{TestServer, Ws, chain};
use serde_json::{Value, json};
use std::time::Duration;

fn logs_of(blocks: &[BlockData]) -> Vec<(B256, u64)> {
    blocks
        .iter()
        .flat_map(|b| {
            b.receipts
                .iter()
                .flat_map(|r| r.logs())
                .enumerate()
                .map(move |(i, _)| (b.hash(), i as u64))
        })
        .collect()
}

fn key(log: &Value) -> (B256, u64) {
    let index: alloy::primitives::U64 = serde_json::from_value(log["logIndex"].clone()).unwrap();
    (serde_json::from_value(log["blockHash"].clone()).unwrap(), index.to())
}

#[tokio::test]
async fn new_heads_and_logs_follow_appends_and_truncations() {
    let blocks = chain(0, 8);
    let s = TestServer::with_blocks(blocks[..5].to_vec(), RpcConfig::default()).await;
    let mut ws = Ws::connect(s.addr).await;
    let heads = ws.subscribe(json!(["newHeads"])).await;
    let logs = ws.subscribe(json!(["logs", {}])).await;
    for id in [&heads, &logs] {
        assert_eq!(id.len(), 34, "{id}");
        assert!(id.starts_with("0x"));
    }
    assert_ne!(heads, logs);

    // Appends: one header per block, every log of every block, in order.
    s.handle.append_blocks(blocks[5..8].to_vec()).await.unwrap();
    let expected_logs = logs_of(&blocks[5..8]);
    assert!(!expected_logs.is_empty());
    let mut got_heads = Vec::new();
    let mut got_logs = Vec::new();
    while got_heads.len() < 3 || got_logs.len() < expected_logs.len() {
        let msg = ws.recv().await;
        let result = msg["params"]["result"].clone();
        if msg["params"]["subscription"] == heads {
            got_heads.push(result);
        } else {
            assert_eq!(msg["params"]["subscription"], logs);
            assert_eq!(result["removed"], false);
            got_logs.push(key(&result));
        }
    }
    for (head, block) in got_heads.iter().zip(&blocks[5..8]) {
        assert_eq!(head["hash"], json!(block.hash()));
        assert_eq!(head["parentHash"], json!(block.header.parent_hash));
        assert!(head.get("transactions").is_none() && head.get("size").is_none());
    }
    assert_eq!(got_logs, expected_logs);

    // Truncation, then a different chain on top, without waiting in between:
    // the removed logs come first (oldest block first), then the new ones.
    let shape = ChainShape { max_txs: 8, max_logs: 4, addresses: 4, topics: 6 };
    let fork = test_chain_with(6, 3, blocks[5].hash(), 99, shape);
    s.handle.truncate_above(5).await.unwrap();
    s.handle.append_blocks(fork.clone()).await.unwrap();
    let removed = logs_of(&blocks[6..8]);
    let added = logs_of(&fork);
    let mut got_removed = Vec::new();
    let mut got_added = Vec::new();
    let mut got_heads = Vec::new();
    while got_heads.len() < 3 || got_removed.len() + got_added.len() < removed.len() + added.len() {
        let msg = ws.recv().await;
        let result = msg["params"]["result"].clone();
        if msg["params"]["subscription"] == heads {
            got_heads.push(result["hash"].clone());
            continue;
        }
        if result["removed"] == true {
            assert!(got_added.is_empty(), "removed logs come before new ones");
            got_removed.push(key(&result));
        } else {
            got_added.push(key(&result));
        }
    }
    assert_eq!(got_removed, removed);
    assert_eq!(got_added, added);
    assert_eq!(got_heads, fork.iter().map(|b| json!(b.hash())).collect::<Vec<_>>());

    // Unsubscribe: true, then silence.
    let (answer, _) = ws.call("eth_unsubscribe", json!([logs])).await;
    assert_eq!(answer["result"], true);
    let (answer, _) = ws.call("eth_unsubscribe", json!([heads])).await;
    assert_eq!(answer["result"], true);
    let more = test_chain_with(9, 1, fork[2].hash(), 5, shape);
    s.handle.append_blocks(more).await.unwrap();
    assert!(ws.recv_within(Duration::from_millis(300)).await.is_none());
    s.stop().await;
}

#[tokio::test]
async fn logs_subscription_filters_by_address_and_topic() {
    let blocks = chain(0, 12);
    let s = TestServer::with_blocks(blocks[..2].to_vec(), RpcConfig::default()).await;
    let target = blocks[2..]
        .iter()
        .flat_map(|b| b.receipts.iter().flat_map(|r| r.logs()))
        .next()
        .unwrap()
        .clone();
    let mut ws = Ws::connect(s.addr).await;
    let sub = ws
        .subscribe(json!(["logs", {"address": [target.address], "topics": [target.topics()[0]]}]))
        .await;
    s.handle.append_blocks(blocks[2..].to_vec()).await.unwrap();
    let expected = blocks[2..]
        .iter()
        .flat_map(|b| b.receipts.iter().flat_map(|r| r.logs()))
        .filter(|l| l.address == target.address && l.topics().first() == target.topics().first())
        .count();
    let got = ws.notifications(&sub, expected).await;
    for log in &got {
        assert_eq!(log["address"], json!(target.address));
        assert_eq!(log["topics"][0], json!(target.topics()[0]));
    }
    assert!(ws.recv_within(Duration::from_millis(200)).await.is_none(), "nothing else matches");
    s.stop().await;
}

#[tokio::test]
async fn bad_subscriptions_are_errors() {
    let limits = Limits { max_subscriptions_per_connection: 2, ..Limits::default() };
    let s =
        TestServer::with_blocks(chain(0, 2), RpcConfig { limits, ..RpcConfig::default() }).await;
    // Over HTTP: geth's -32601 "notifications not supported".
    let e = s.error("eth_subscribe", json!(["newHeads"])).await;
    assert_eq!(e["code"], -32601);
    assert_eq!(e["message"], "notifications not supported");

    let mut ws = Ws::connect(s.addr).await;
    for params in [
        json!(["newPendingTransactions"]),
        json!(["bogus"]),
        json!([]),
        json!([7]),
        json!(["logs", {"blockHash": B256::ZERO}]),
        json!(["logs", {"topics": [1]}]),
        json!(["newHeads", {"address": []}]),
    ] {
        let (answer, _) = ws.call("eth_subscribe", params.clone()).await;
        assert!(answer.get("error").is_some(), "{params}: {answer}");
    }
    let (answer, _) = ws.call("eth_unsubscribe", json!(["0x1234"])).await;
    assert_eq!(answer["result"], false, "{answer}");
    ws.subscribe(json!(["newHeads"])).await;
    ws.subscribe(json!(["logs"])).await;
    let (answer, _) = ws.call("eth_subscribe", json!(["newHeads"])).await;
    assert!(answer.get("error").is_some(), "a third subscription is over the limit: {answer}");
    // Calls work on the same connection.
    let (answer, _) = ws.call("eth_blockNumber", Value::Null).await;
    assert_eq!(answer["result"], "0x1");
    s.stop().await;
}
