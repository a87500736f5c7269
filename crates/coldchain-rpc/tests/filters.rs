//! The polling filter API over HTTP: changes after appends, removed logs
//! after a truncation, `eth_getFilterLogs` as `eth_getLogs`, uninstalling,
//! on the in-memory backend, MDBX, and two servers over one PostgreSQL store
//! (a filter lives on the server that made it). Expiry and the bound on the
//! number of filters are tested with tokio's paused clock in the crate
//! (`filters::tests`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use alloy::primitives::B256;
use coldchain::{
    BlockData, ColdBackend, ColdStorage, MemBackend,
    testing::{ChainShape, test_chain_with},
};
use coldchain_mdbx::{MdbxBackend, MdbxOptions};
use coldchain_postgres::{PgOptions, PostgresBackend};
use coldchain_rpc::RpcConfig;
use common::{PgDatabase, TestServer};
use serde_json::{Value, json};

const SHAPE: ChainShape = ChainShape { max_txs: 8, max_logs: 4, addresses: 4, topics: 6 };

fn logs_of(blocks: &[BlockData]) -> Vec<(String, String)> {
    blocks
        .iter()
        .flat_map(|b| b.stored_receipts())
        .flat_map(|r| r.rpc_logs().collect::<Vec<_>>())
        .map(|l| (format!("{:?}", l.block_hash.unwrap()), format!("{:#x}", l.log_index.unwrap())))
        .collect()
}

fn key(log: &Value) -> (String, String) {
    (log["blockHash"].as_str().unwrap().to_owned(), log["logIndex"].as_str().unwrap().to_owned())
}

async fn changes<B: ColdBackend>(s: &TestServer<B>, id: &Value) -> Vec<Value> {
    let v = s.result("eth_getFilterChanges", json!([id])).await;
    v.as_array().unwrap().clone()
}

/// The whole life of a log filter and a block filter on `s`, whose store
/// holds `blocks` (0..10); `writer` appends to the same store.
async fn filter_life<B: ColdBackend, W: ColdBackend>(
    s: &TestServer<B>,
    writer: &ColdStorage<W>,
    blocks: &[BlockData],
) {
    let logs = s.result("eth_newFilter", json!([{}])).await;
    let heads = s.result("eth_newBlockFilter", json!([])).await;
    let ranged = s.result("eth_newFilter", json!([{"fromBlock": "0xb", "toBlock": "0xb"}])).await;
    assert!(logs.as_str().unwrap().starts_with("0x") && logs.as_str().unwrap().len() == 34);
    assert_ne!(logs, heads);
    // No backfill.
    assert!(changes(s, &logs).await.is_empty());
    assert!(changes(s, &heads).await.is_empty());

    // Three new blocks: their hashes, their logs (each once).
    let tip = blocks.last().unwrap();
    let more = test_chain_with(tip.number() + 1, 3, tip.hash(), 12, SHAPE);
    writer.append_blocks(more.clone()).await.unwrap();
    let wait_for = |n: u64| async move {
        for _ in 0..200 {
            if s.handle.durable_tip().is_some_and(|t| t.number >= n) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the server's handle never saw block {n}");
    };
    wait_for(more[2].number()).await;
    let hashes: Vec<Value> = more.iter().map(|b| json!(b.hash())).collect();
    assert_eq!(changes(s, &heads).await, hashes);
    assert!(changes(s, &heads).await.is_empty(), "each change is answered once");
    let got = changes(s, &logs).await;
    assert_eq!(got.iter().map(key).collect::<Vec<_>>(), logs_of(&more));
    assert!(got.iter().all(|l| l["removed"] == false));
    let got = changes(s, &ranged).await;
    assert_eq!(got.iter().map(key).collect::<Vec<_>>(), logs_of(&more[1..2]), "block 11 only");
    assert!(changes(s, &logs).await.is_empty());

    // getFilterLogs is eth_getLogs with the filter.
    let all = s.result("eth_getFilterLogs", json!([logs])).await;
    let get_logs = s.result("eth_getLogs", json!([{}])).await;
    assert_eq!(all, get_logs);
    let e = s.error("eth_getFilterLogs", json!([heads])).await;
    assert_eq!(
        (e["code"].clone(), e["message"].clone()),
        (json!(-32000), json!("filter not found"))
    );

    // A reorg of the last two blocks: their logs come back removed (oldest
    // block first), then the logs of the blocks that replaced them.
    writer.truncate_above(more[0].number()).await.unwrap();
    let fork = test_chain_with(more[1].number(), 3, more[0].hash(), 99, SHAPE);
    writer.append_blocks(fork.clone()).await.unwrap();
    wait_for(fork[2].number()).await;
    for _ in 0..200 {
        if s.handle.durable_tip().map(|t| t.hash) == Some(fork[2].hash()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let got = changes(s, &logs).await;
    let removed: Vec<_> = got.iter().filter(|l| l["removed"] == true).map(key).collect::<Vec<_>>();
    let added: Vec<_> = got.iter().filter(|l| l["removed"] == false).map(key).collect();
    assert_eq!(removed, logs_of(&more[1..]));
    assert_eq!(added, logs_of(&fork));
    let first_added = got.iter().position(|l| l["removed"] == false).unwrap_or(got.len());
    assert!(got[first_added..].iter().all(|l| l["removed"] == false), "removed logs come first");
    let fork_hashes: Vec<Value> = fork.iter().map(|b| json!(b.hash())).collect();
    assert_eq!(changes(s, &heads).await, fork_hashes);
    // The ranged filter: block 11's removed logs and its replacement's.
    let got = changes(s, &ranged).await;
    assert!(got.iter().all(|l| l["blockNumber"] == "0xb"), "{got:?}");
    assert_eq!(got.len(), logs_of(&more[1..2]).len() + logs_of(&fork[..1]).len());

    // Uninstall.
    assert_eq!(s.result("eth_uninstallFilter", json!([logs])).await, true);
    assert_eq!(s.result("eth_uninstallFilter", json!([logs])).await, false);
    let e = s.error("eth_getFilterChanges", json!([logs])).await;
    assert_eq!(e["message"], "filter not found");
    assert_eq!(e["code"], -32000);
}

#[tokio::test]
async fn filters_on_memory() {
    let blocks = test_chain_with(0, 10, B256::ZERO, 11, SHAPE);
    let s = TestServer::with_blocks(blocks.clone(), RpcConfig::default()).await;
    let writer = s.handle.clone();
    filter_life(&s, &writer, &blocks).await;

    let e = s.error("eth_newFilter", json!([{"fromBlock": "0x5", "toBlock": "0x4"}])).await;
    assert_eq!(e["code"], -32602);
    let e = s.error("eth_newFilter", json!([])).await;
    assert_eq!(e["code"], -32602);
    let e = s.error("eth_getFilterChanges", json!(["0x1234"])).await;
    assert_eq!(e["message"], "filter not found");
    s.stop().await;
}

#[tokio::test]
async fn a_filter_made_on_an_empty_store_sees_its_first_blocks() {
    let s = TestServer::with_blocks(Vec::<BlockData>::new(), RpcConfig::default()).await;
    let _: &TestServer<MemBackend> = &s;
    let heads = s.result("eth_newBlockFilter", json!([])).await;
    let blocks = test_chain_with(0, 2, B256::ZERO, 11, SHAPE);
    s.handle.append_blocks(blocks.clone()).await.unwrap();
    let hashes: Vec<Value> = blocks.iter().map(|b| json!(b.hash())).collect();
    assert_eq!(changes(&s, &heads).await, hashes);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_on_mdbx() {
    let dir = tempfile::TempDir::new().unwrap();
    let backend = MdbxBackend::open(dir.path(), MdbxOptions::default()).unwrap();
    let handle = ColdStorage::new(backend).await.unwrap();
    let blocks = test_chain_with(0, 10, B256::ZERO, 11, SHAPE);
    handle.append_blocks(blocks.clone()).await.unwrap();
    let s = TestServer::start_with(handle.clone(), RpcConfig::default()).await;
    filter_life(&s, &handle, &blocks).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_on_two_postgres_servers() {
    let Some(db) = PgDatabase::create("filters_on_two_postgres_servers", "filters").await else {
        return;
    };
    let db_url = db.url.clone();
    let open = || async {
        let backend = PostgresBackend::open(&db_url, PgOptions::default()).await.unwrap();
        ColdStorage::new(backend).await.unwrap()
    };
    // Server A writes; server B only serves, over the same database.
    let a = open().await;
    let blocks = test_chain_with(0, 10, B256::ZERO, 11, SHAPE);
    a.append_blocks(blocks.clone()).await.unwrap();
    let b = open().await;
    let server_a = TestServer::start_with(a.clone(), RpcConfig::default()).await;
    let server_b = TestServer::start_with(b, RpcConfig::default()).await;

    // A filter made on B follows blocks written through A.
    filter_life(&server_b, &a, &blocks).await;
    // A filter lives on the server that made it.
    let id = server_b.result("eth_newBlockFilter", json!([])).await;
    let e = server_a.error("eth_getFilterChanges", json!([id])).await;
    assert_eq!(e["message"], "filter not found");
    assert_eq!(server_a.result("eth_uninstallFilter", json!([id])).await, false);
    assert!(changes(&server_b, &id).await.is_empty());

    server_a.stop().await;
    server_b.stop().await;
    db.drop_now().await;
}
