//! Issue #19 item 6, no unreachable block: the log limit applies at block
//! boundaries, so a block with more logs than `max_logs` (mainnet 15537394
//! has 10,041) comes back whole, and a client that splits ranges by the
//! suggested range reaches every log.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use alloy::{
    consensus::{
        Eip658Value, Receipt as ConsensusReceipt, ReceiptEnvelope, proofs::calculate_receipt_root,
    },
    primitives::{B256, Bloom, Bytes, Log, LogData, Sealable},
};
use coldchain::{
    BlockData,
    testing::{ChainShape, test_address, test_block, test_chain_with, test_topic},
};
use coldchain_rpc::{Limits, RpcConfig};
use common::{TestServer, chain};
use serde_json::{Value, json};

/// Block `number` on `parent` whose first receipt holds `n` logs (the rest
/// none), with its bloom, receipts root and hash made to match.
fn block_with_logs(number: u64, parent: B256, n: usize) -> BlockData {
    let shape = ChainShape { max_txs: 6, ..ChainShape::default() };
    let mut block = (0..)
        .map(|seed| test_block(number, parent, seed, shape))
        .find(|b| !b.receipts.is_empty())
        .unwrap();
    let receipts: Vec<ReceiptEnvelope> = block
        .receipts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let logs = if i == 0 {
                (0..n as u64)
                    .map(|j| Log {
                        address: test_address(j % 3),
                        data: LogData::new_unchecked(
                            vec![test_topic(j % 5), B256::left_padding_from(&j.to_be_bytes())],
                            Bytes::from(j.to_be_bytes().to_vec()),
                        ),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let receipt = ConsensusReceipt {
                status: Eip658Value::Eip658(true),
                cumulative_gas_used: r.cumulative_gas_used(),
                logs,
            };
            ReceiptEnvelope::from_typed(r.tx_type(), receipt.with_bloom())
        })
        .collect();
    let mut bloom = Bloom::ZERO;
    for r in &receipts {
        bloom.accrue_bloom(r.logs_bloom());
    }
    let mut header = block.header.clone_inner();
    header.logs_bloom = bloom;
    header.receipts_root = calculate_receipt_root(&receipts);
    block.header = header.seal_slow();
    block.receipts = receipts;
    block
}

/// Blocks 0-4 of the usual test chain, block 5 with 10,041 logs, blocks
/// 6-8 again with a few logs each.
fn chain_with_a_big_block() -> Vec<BlockData> {
    let mut blocks = chain(0, 5);
    let big = block_with_logs(5, blocks[4].hash(), 10_041);
    let shape = ChainShape { max_txs: 8, max_logs: 4, addresses: 4, topics: 6 };
    let after = test_chain_with(6, 3, big.hash(), 11, shape);
    blocks.push(big);
    blocks.extend(after);
    blocks
}

fn hex(n: u64) -> String {
    format!("{n:#x}")
}

fn quantity(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[tokio::test]
async fn a_block_of_10041_logs_comes_back_whole() {
    let blocks = chain_with_a_big_block();
    let big_hash = blocks[5].hash();
    let s = TestServer::with_blocks(blocks, RpcConfig::default()).await;
    assert_eq!(Limits::default().max_logs, 10_000);

    let logs = s.result("eth_getLogs", json!([{"fromBlock": "0x5", "toBlock": "0x5"}])).await;
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 10_041);
    assert!(logs.iter().all(|l| l["blockNumber"] == "0x5"));
    assert_eq!(logs[10_040]["logIndex"], "0x2738");
    let by_hash = s.result("eth_getLogs", json!([{"blockHash": big_hash}])).await;
    assert_eq!(by_hash.as_array().unwrap().len(), 10_041);

    // Over the range, the limit falls before block 5: [0, 4] is suggested,
    // from the scan that hit the limit.
    let e = s.error("eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": "latest"}])).await;
    assert_eq!(e["code"], -32005, "{e}");
    assert_eq!(e["data"], json!({"from": "0x0", "to": "0x4", "limit": 10_000}));
    assert_eq!(
        e["message"],
        "query returned more than 10000 results. Try with this block range [0x0, 0x4]."
    );
    // From block 5 on, block 5 is first: whole, then the next block with
    // logs does not fit.
    let mut next = 6;
    while s.result("eth_getLogs", json!([{"fromBlock": hex(next), "toBlock": hex(next)}])).await
        == json!([])
    {
        next += 1;
    }
    assert!(next <= 8, "blocks 6-8 have logs");
    let e = s.error("eth_getLogs", json!([{"fromBlock": "0x5", "toBlock": "0x8"}])).await;
    assert_eq!(e["data"], json!({"from": "0x5", "to": hex(next - 1), "limit": 10_000}), "{e}");
    let fits =
        s.result("eth_getLogs", json!([{"fromBlock": "0x5", "toBlock": hex(next - 1)}])).await;
    assert_eq!(fits.as_array().unwrap().len(), 10_041);
    s.stop().await;
}

/// A client that splits ranges as the error says reaches every log, with a
/// limit far below the big block's and a filter that matches in it.
#[tokio::test]
async fn a_range_splitting_client_reaches_every_block() {
    let blocks = chain_with_a_big_block();
    let limits = Limits { max_logs: 50, ..Limits::default() };
    let s = TestServer::with_blocks(blocks, RpcConfig { limits, ..RpcConfig::default() }).await;
    for filter in [json!({}), json!({"address": test_address(1)})] {
        let all = |from: u64, to: u64| {
            let mut f = filter.clone();
            f["fromBlock"] = json!(format!("{from:#x}"));
            f["toBlock"] = json!(format!("{to:#x}"));
            json!([f])
        };
        let (mut from, tip) = (0, 8);
        let mut got = Vec::new();
        let mut rounds = 0;
        while from <= tip {
            rounds += 1;
            assert!(rounds < 30, "no progress at block {from}");
            let answer = s.call("eth_getLogs", all(from, tip)).await;
            if let Some(logs) = answer["result"].as_array() {
                got.extend(logs.clone());
                break;
            }
            assert_eq!(answer["error"]["code"], -32005, "{answer}");
            let to = quantity(&answer["error"]["data"]["to"]);
            assert!((from..tip).contains(&to), "{answer}");
            let part = s.result("eth_getLogs", all(from, to)).await;
            got.extend(part.as_array().unwrap().clone());
            from = to + 1;
        }
        // Every log of every block, once, in order.
        let mut want = Vec::new();
        for n in 0..=tip {
            let logs = s.result("eth_getLogs", all(n, n)).await;
            want.extend(logs.as_array().unwrap().clone());
        }
        assert!(want.len() > 1_000, "{filter}: the big block matches");
        assert_eq!(got, want, "{filter}");
    }
    s.stop().await;
}

/// The real block: mainnet 15537394 (the first post-merge block, 10,041
/// logs) after its parent 15537393, at the default limit.
#[tokio::test]
async fn mainnet_block_15537394_comes_back_whole() {
    let blocks: Vec<BlockData> = coldchain::testing::fixtures::mainnet_rlp_blocks()
        .into_iter()
        .filter(|b| (15_537_393..=15_537_394).contains(&b.number()))
        .collect();
    assert_eq!(blocks.len(), 2);
    let hash = blocks[1].hash();
    let s = TestServer::with_blocks(blocks, RpcConfig::default()).await;
    let one = json!([{"fromBlock": hex(15_537_394), "toBlock": hex(15_537_394)}]);
    let logs = s.result("eth_getLogs", one).await;
    assert_eq!(logs.as_array().unwrap().len(), 10_041);
    let logs = s.result("eth_getLogs", json!([{"blockHash": hash}])).await;
    assert_eq!(logs.as_array().unwrap().len(), 10_041);
    let e = s.error("eth_getLogs", json!([{"fromBlock": "earliest", "toBlock": "latest"}])).await;
    assert_eq!(e["code"], -32005, "{e}");
    assert_eq!(
        e["data"],
        json!({"from": hex(15_537_393), "to": hex(15_537_393), "limit": 10_000}),
        "the parent fits, the big block does not fit after it"
    );
    s.stop().await;
}
