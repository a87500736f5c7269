//! Every method against a store of known blocks: values are checked against
//! the blocks themselves, shapes against what nodes send.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use alloy::{
    consensus::{Block as ConsensusBlock, BlockBody, Transaction as _, TxEnvelope, TxType},
    eips::Typed2718,
    primitives::{B256, U64},
    rlp::Encodable,
};
use coldchain::BlockData;
use coldchain_rpc::{Limits, RpcConfig};
use common::{TestServer, chain};
use serde_json::{Value, json};

fn hex(n: u64) -> String {
    format!("{n:#x}")
}

fn quantity(v: &Value) -> u64 {
    serde_json::from_value::<U64>(v.clone()).unwrap().to()
}

#[tokio::test]
async fn blocks_tags_and_transactions() {
    let blocks = chain(0, 30);
    let s = TestServer::with_blocks(blocks.clone(), RpcConfig::default()).await;

    assert_eq!(s.result("eth_blockNumber", json!([])).await, "0x1d");
    assert_eq!(s.result("eth_chainId", Value::Null).await, "0x1");
    assert_eq!(s.result("net_version", json!([])).await, "1");
    assert_eq!(s.result("eth_syncing", json!([])).await, false);
    assert!(
        s.result("web3_clientVersion", json!([]))
            .await
            .as_str()
            .unwrap()
            .starts_with("coldchain/v")
    );

    let latest = s.result("eth_getBlockByNumber", json!(["latest", false])).await;
    assert_eq!(latest["hash"], json!(blocks[29].hash()));
    for tag in ["safe", "finalized", "pending"] {
        assert_eq!(s.result("eth_getBlockByNumber", json!([tag, false])).await, latest, "{tag}");
    }
    let earliest = s.result("eth_getBlockByNumber", json!(["earliest", false])).await;
    assert_eq!(earliest["number"], "0x0");
    assert_eq!(s.result("eth_getBlockByNumber", json!(["0x1e", false])).await, Value::Null);
    let unknown = B256::repeat_byte(0x42);
    assert_eq!(s.result("eth_getBlockByHash", json!([unknown, true])).await, Value::Null);

    let mut seen_types = std::collections::BTreeSet::new();
    for block in &blocks {
        let n = hex(block.number());
        let by_number = s.result("eth_getBlockByNumber", json!([n, true])).await;
        let by_hash = s.result("eth_getBlockByHash", json!([block.hash(), true])).await;
        assert_eq!(by_number, by_hash);
        check_block(block, &by_number);
        let hashes = s.result("eth_getBlockByNumber", json!([n, false])).await;
        let expected: Vec<B256> = block.transactions.iter().map(|t| *t.inner().tx_hash()).collect();
        assert_eq!(hashes["transactions"], json!(expected));

        let count = s.result("eth_getBlockTransactionCountByNumber", json!([n])).await;
        assert_eq!(quantity(&count), block.transactions.len() as u64);
        let count = s.result("eth_getBlockTransactionCountByHash", json!([block.hash()])).await;
        assert_eq!(quantity(&count), block.transactions.len() as u64);

        for (i, tx) in by_number["transactions"].as_array().unwrap().iter().enumerate() {
            seen_types.insert(tx["type"].as_str().unwrap().to_owned());
            let by_hash = s.result("eth_getTransactionByHash", json!([tx["hash"]])).await;
            assert_eq!(&by_hash, tx);
            let at = s
                .result("eth_getTransactionByBlockNumberAndIndex", json!([n, hex(i as u64)]))
                .await;
            assert_eq!(&at, tx);
            let at = s
                .result(
                    "eth_getTransactionByBlockHashAndIndex",
                    json!([block.hash(), hex(i as u64)]),
                )
                .await;
            assert_eq!(&at, tx);
        }
        let past = hex(block.transactions.len() as u64);
        assert_eq!(
            s.result("eth_getTransactionByBlockNumberAndIndex", json!([n, past])).await,
            Value::Null
        );
    }
    assert_eq!(seen_types.len(), 5, "all transaction types: {seen_types:?}");
    assert_eq!(s.result("eth_getTransactionByHash", json!([unknown])).await, Value::Null);
    assert_eq!(
        s.result("eth_getBlockTransactionCountByNumber", json!(["0x64"])).await,
        Value::Null
    );
    s.stop().await;
}

/// Header fields, size, uncles, transactions with their per-type fields.
fn check_block(block: &BlockData, json: &Value) {
    let h = block.header.inner();
    assert_eq!(json["hash"], json!(block.hash()));
    assert_eq!(json["number"], hex(h.number));
    assert_eq!(json["parentHash"], json!(h.parent_hash));
    assert_eq!(json["timestamp"], hex(h.timestamp));
    assert_eq!(json["gasUsed"], hex(h.gas_used));
    assert_eq!(json["logsBloom"], json!(h.logs_bloom));
    let uncles: Vec<_> = block.extras.ommers.iter().map(|o| o.hash_slow()).collect();
    assert_eq!(json["uncles"], json!(uncles));
    assert!(json.get("totalDifficulty").is_none());
    assert_eq!(json.get("withdrawals").is_some(), block.extras.withdrawals.is_some());
    if let Some(w) = &block.extras.withdrawals {
        assert_eq!(json["withdrawals"].as_array().map(Vec::len), Some(w.len()));
    }
    let txs: Vec<TxEnvelope> = block.transactions.iter().map(|t| t.inner().clone()).collect();
    // The size geth computes: header, transactions, uncles and withdrawals.
    let body = BlockBody {
        transactions: txs,
        ommers: block.extras.ommers.clone(),
        withdrawals: block.extras.withdrawals.clone(),
    };
    let size = ConsensusBlock::new(h.clone(), body).length() as u64;
    assert_eq!(quantity(&json["size"]), size);
    for (i, (tx, rpc)) in
        block.transactions.iter().zip(json["transactions"].as_array().unwrap()).enumerate()
    {
        assert_eq!(rpc["hash"], json!(tx.inner().tx_hash()));
        assert_eq!(rpc["from"], json!(tx.signer()));
        assert_eq!(rpc["blockHash"], json!(block.hash()));
        assert_eq!(rpc["blockNumber"], hex(h.number));
        assert_eq!(rpc["blockTimestamp"], hex(h.timestamp));
        assert_eq!(rpc["transactionIndex"], hex(i as u64));
        assert_eq!(rpc["nonce"], hex(tx.nonce()));
        assert_eq!(rpc["type"], hex(tx.ty() as u64));
        let has = |k: &str| rpc.get(k).is_some();
        match tx.tx_type() {
            TxType::Legacy => assert!(has("v") && !has("yParity") && !has("accessList"), "{rpc}"),
            TxType::Eip2930 => assert!(has("accessList") && has("yParity") && has("gasPrice")),
            TxType::Eip1559 => {
                assert!(has("maxFeePerGas") && has("maxPriorityFeePerGas") && has("gasPrice"))
            }
            TxType::Eip4844 => assert!(has("blobVersionedHashes") && has("maxFeePerBlobGas")),
            TxType::Eip7702 => assert!(has("authorizationList")),
        }
        match tx.to() {
            Some(to) => assert_eq!(rpc["to"], json!(to)),
            None => assert_eq!(rpc["to"], Value::Null),
        }
    }
}

#[tokio::test]
async fn receipts() {
    let blocks = chain(0, 30);
    let s = TestServer::with_blocks(blocks.clone(), RpcConfig::default()).await;
    let mut creations = 0;
    for block in &blocks {
        let n = hex(block.number());
        let all = s.result("eth_getBlockReceipts", json!([n])).await;
        assert_eq!(s.result("eth_getBlockReceipts", json!([block.hash()])).await, all);
        assert_eq!(
            s.result("eth_getBlockReceipts", json!([{"blockHash": block.hash()}])).await,
            all
        );
        assert_eq!(s.result("eth_getBlockReceipts", json!([{"blockNumber": n}])).await, all);
        let all = all.as_array().unwrap();
        assert_eq!(all.len(), block.receipts.len());
        let mut log_index = 0u64;
        let mut prev_cumulative = 0u64;
        for (i, (rpc, (tx, receipt))) in
            all.iter().zip(block.transactions.iter().zip(&block.receipts)).enumerate()
        {
            let one = s.result("eth_getTransactionReceipt", json!([tx.inner().tx_hash()])).await;
            assert_eq!(&one, rpc);
            assert_eq!(rpc["transactionIndex"], hex(i as u64));
            assert_eq!(rpc["type"], hex(tx.ty() as u64));
            assert_eq!(rpc["status"], if receipt.status() { "0x1" } else { "0x0" });
            assert_eq!(rpc["logsBloom"], json!(receipt.logs_bloom()));
            let cumulative = receipt.cumulative_gas_used();
            assert_eq!(quantity(&rpc["cumulativeGasUsed"]), cumulative);
            assert_eq!(quantity(&rpc["gasUsed"]), cumulative - prev_cumulative);
            prev_cumulative = cumulative;
            assert!(rpc.get("effectiveGasPrice").is_some());
            assert!(rpc.get("blockTimestamp").is_none(), "no top-level blockTimestamp (geth)");
            assert_eq!(rpc.get("blobGasUsed").is_some(), tx.tx_type() == TxType::Eip4844);
            if tx.to().is_none() {
                creations += 1;
                assert_eq!(rpc["contractAddress"], json!(tx.signer().create(tx.nonce())));
                assert_eq!(rpc["to"], Value::Null);
            } else {
                assert_eq!(rpc["contractAddress"], Value::Null);
            }
            for log in rpc["logs"].as_array().unwrap() {
                assert_eq!(log["logIndex"], hex(log_index));
                assert_eq!(log["removed"], false);
                assert_eq!(log["blockTimestamp"], hex(block.header.timestamp));
                assert_eq!(log["transactionHash"], json!(tx.inner().tx_hash()));
                log_index += 1;
            }
        }
    }
    assert!(creations > 0, "the chain has contract creations");
    assert_eq!(s.result("eth_getBlockReceipts", json!(["0x100"])).await, Value::Null);
    assert_eq!(s.result("eth_getBlockReceipts", json!([B256::repeat_byte(1)])).await, Value::Null);
    assert_eq!(s.result("eth_getTransactionReceipt", json!([B256::ZERO])).await, Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn get_logs_semantics_and_errors() {
    let blocks = chain(0, 40);
    let total: usize = blocks.iter().flat_map(|b| &b.receipts).map(|r| r.logs().len()).sum();
    assert!(total > 50, "{total}");
    let s = TestServer::with_blocks(blocks.clone(), RpcConfig::default()).await;
    let all =
        s.result("eth_getLogs", json!([{"fromBlock": "earliest", "toBlock": "latest"}])).await;
    assert_eq!(all.as_array().unwrap().len(), total);
    // Ordered by block, then log index.
    let keys: Vec<(u64, u64)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (quantity(&l["blockNumber"]), quantity(&l["logIndex"])))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    // Defaults: latest..latest.
    let last: usize = blocks[39].receipts.iter().map(|r| r.logs().len()).sum();
    assert_eq!(s.result("eth_getLogs", json!([{}])).await.as_array().unwrap().len(), last);
    // Address and topics, as lists or single values, match by hand.
    let first_log = &all[0];
    let addr = first_log["address"].clone();
    let topic0 = first_log["topics"][0].clone();
    let by_hand = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["address"] == addr && l["topics"][0] == topic0)
        .count();
    let filter = json!({"fromBlock": "0x0", "address": [addr], "topics": [[topic0]]});
    assert_eq!(s.result("eth_getLogs", json!([filter])).await.as_array().unwrap().len(), by_hand);
    let filter = json!({"fromBlock": "0x0", "address": addr, "topics": [topic0, null]});
    assert_eq!(s.result("eth_getLogs", json!([filter])).await.as_array().unwrap().len(), by_hand);
    // blockHash form.
    let b = &blocks[7];
    let in_block: usize = b.receipts.iter().map(|r| r.logs().len()).sum();
    let got = s.result("eth_getLogs", json!([{"blockHash": b.hash()}])).await;
    assert_eq!(got.as_array().unwrap().len(), in_block);

    let e = s.error("eth_getLogs", json!([{"fromBlock": "0x5", "toBlock": "0x4"}])).await;
    assert_eq!(e["code"], -32602);
    assert_eq!(e["message"], "invalid block range params");
    let e = s.error("eth_getLogs", json!([{"fromBlock": "0x5", "toBlock": "0x100"}])).await;
    assert_eq!(e["message"], "block range extends beyond current head block");
    let e = s.error("eth_getLogs", json!([{"fromBlock": "0x100"}])).await;
    assert_eq!(e["code"], -32602, "from above the head and to = latest");
    let e = s.error("eth_getLogs", json!([{"blockHash": b.hash(), "fromBlock": "0x1"}])).await;
    assert_eq!(e["code"], -32602);
    assert!(e["message"].as_str().unwrap().contains("cannot specify both BlockHash"), "{e}");
    let e = s.error("eth_getLogs", json!([{"blockHash": B256::repeat_byte(9)}])).await;
    assert_eq!(e["code"], -32000);
    assert_eq!(e["message"], "unknown block");
    let e = s.error("eth_getLogs", json!([])).await;
    assert_eq!(e["code"], -32602);
    s.stop().await;
}

#[tokio::test]
async fn get_logs_limits_suggest_a_range_that_fits() {
    let blocks = chain(0, 40);
    let limits = Limits { max_logs: 25, max_block_range: 30, ..Limits::default() };
    let s = TestServer::with_blocks(blocks, RpcConfig { limits, ..RpcConfig::default() }).await;
    let e = s.error("eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": "0x27"}])).await;
    assert_eq!(e["code"], -32602);
    assert_eq!(e["message"], "query exceeds max block range 30");
    assert_eq!(e["data"]["to"], "0x1d");

    let e = s.error("eth_getLogs", json!([{"fromBlock": "0x2", "toBlock": "0x1f"}])).await;
    assert_eq!(e["code"], -32005);
    let (from, to) = (e["data"]["from"].clone(), e["data"]["to"].clone());
    assert_eq!(e["data"]["limit"], 25);
    let message = e["message"].as_str().unwrap();
    assert!(
        message
            .starts_with("query returned more than 25 results. Try with this block range [0x2, 0x"),
        "{message}"
    );
    assert!(message.contains(&format!("[{}, {}]", from.as_str().unwrap(), to.as_str().unwrap())));
    // The suggested range fits, and one more block would not.
    let fits = s.result("eth_getLogs", json!([{"fromBlock": from, "toBlock": to}])).await;
    assert!(fits.as_array().unwrap().len() <= 25);
    let next = hex(quantity(&to) + 1);
    let e = s.error("eth_getLogs", json!([{"fromBlock": from, "toBlock": next}])).await;
    assert_eq!(e["code"], -32005);
    s.stop().await;
}

#[tokio::test]
async fn history_starting_above_genesis_and_empty_store() {
    let s = TestServer::with_blocks(Vec::new(), RpcConfig::default()).await;
    assert_eq!(s.result("eth_blockNumber", json!([])).await, "0x0");
    assert_eq!(s.result("eth_getBlockByNumber", json!(["latest", false])).await, Value::Null);
    assert_eq!(s.result("eth_getBlockByNumber", json!(["earliest", false])).await, Value::Null);
    assert_eq!(s.result("eth_getLogs", json!([{}])).await, json!([]));
    assert_eq!(s.result("eth_getBlockReceipts", json!(["latest"])).await, Value::Null);
    s.stop().await;

    let blocks = chain(100, 10);
    let s = TestServer::with_blocks(blocks.clone(), RpcConfig::default()).await;
    let earliest = s.result("eth_getBlockByNumber", json!(["earliest", false])).await;
    assert_eq!(earliest["hash"], json!(blocks[0].hash()));
    for (method, params) in [
        ("eth_getBlockByNumber", json!(["0x63", false])),
        ("eth_getBlockReceipts", json!(["0x5"])),
        ("eth_getBlockTransactionCountByNumber", json!(["0x0"])),
        ("eth_getTransactionByBlockNumberAndIndex", json!(["0x1", "0x0"])),
        ("eth_getLogs", json!([{"fromBlock": "0x60", "toBlock": "0x65"}])),
    ] {
        let e = s.error(method, params).await;
        assert_eq!(e["code"], 4444, "{method}");
        assert_eq!(e["message"], "pruned history unavailable");
    }
    let logs = s.result("eth_getLogs", json!([{"fromBlock": "earliest"}])).await;
    let total: usize = blocks.iter().flat_map(|b| &b.receipts).map(|r| r.logs().len()).sum();
    assert_eq!(logs.as_array().unwrap().len(), total);
    s.stop().await;
}

#[tokio::test]
async fn params_null_batches_and_unknown_methods() {
    let s = TestServer::with_blocks(chain(0, 3), RpcConfig::default()).await;
    for body in [
        r#"{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":null}"#,
        r#"{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber"}"#,
        r#"{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":[]}"#,
    ] {
        let answer = s.post(body).await;
        assert_eq!(answer, json!({"jsonrpc": "2.0", "id": 7, "result": "0x2"}), "{body}");
    }
    let answer = s
        .post(
            r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},
                  {"jsonrpc":"2.0","id":2,"method":"eth_getBlockByNumber","params":["bogus",false]},
                  {"jsonrpc":"2.0","id":3,"method":"eth_nope","params":[]},
                  {"jsonrpc":"2.0","method":"eth_chainId","params":[]},
                  {"jsonrpc":"2.0","id":"x","method":"eth_blockNumber","params":null}]"#,
        )
        .await;
    let answers = answer.as_array().unwrap();
    assert_eq!(answers.len(), 4, "the notification gets no answer: {answer}");
    assert_eq!(answers[0]["result"], "0x1");
    assert_eq!(answers[1]["error"]["code"], -32602);
    assert_eq!(answers[2]["error"]["code"], -32601);
    assert_eq!(
        answers[2]["error"]["message"],
        "the method eth_nope does not exist/is not available"
    );
    assert_eq!(answers[3]["id"], "x");
    assert_eq!(answers[3]["result"], "0x2");
    let e = s.error("eth_getBlockByNumber", json!(["0x1"])).await;
    assert_eq!(e["message"], "missing value for required argument 1");
    let e = s.error("eth_blockNumber", json!([1])).await;
    assert_eq!(e["message"], "too many arguments, want at most 0");
    let e = s.error("eth_getBlockByNumber", json!({"number": "0x1"})).await;
    assert_eq!(e["code"], -32602);
    s.stop().await;
}
