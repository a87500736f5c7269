//! Raw data, bare headers and fee methods over real mainnet blocks, on the
//! in-memory backend, MDBX and PostgreSQL:
//! - raw transactions hash to their transaction hash and decode to the
//!   stored transaction; raw receipts rebuild the block's `receiptsRoot`;
//! - `eth_getHeaderBy*` is the block object without its body fields;
//! - `eth_feeHistory` and `eth_blobBaseFee` equal values computed here by
//!   hand from the blocks (EIP-1559 and EIP-4844 formulas written out), and
//!   the next block's base fee of each real block is the base fee the chain
//!   then used.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use alloy::{
    consensus::{Transaction as _, proofs::ordered_trie_root_with_encoder},
    eips::{Decodable2718, Encodable2718},
    primitives::{B256, Bytes, U256, keccak256},
};
use coldchain::{
    BlockData, ColdBackend, ColdStorage, MemBackend,
    testing::fixtures::{data_dir, mainnet_jsonrpc_blocks, mainnet_rlp_blocks},
};
use coldchain_mdbx::{MdbxBackend, MdbxOptions};
use coldchain_postgres::{PgOptions, PostgresBackend};
use coldchain_rpc::RpcConfig;
use common::{PgDatabase, TestServer};
use serde_json::{Value, json};

fn hex(n: u64) -> String {
    format!("{n:#x}")
}

fn bytes(v: &Value) -> Bytes {
    serde_json::from_value(v.clone()).unwrap()
}

/// Floats as they come back from the wire: serde_json's default parser may
/// be one unit in the last place off, so both sides go through it.
fn floats(values: &[f64]) -> Value {
    serde_json::from_str(&serde_json::to_string(values).unwrap()).unwrap()
}

/// The real blocks in runs of consecutive numbers (a store holds a
/// contiguous range).
fn real_runs() -> Vec<Vec<BlockData>> {
    let mut all = mainnet_rlp_blocks();
    all.extend(mainnet_jsonrpc_blocks());
    all.sort_by_key(BlockData::number);
    let mut runs: Vec<Vec<BlockData>> = Vec::new();
    for block in all {
        match runs.last_mut() {
            Some(run) if run.last().unwrap().number() + 1 == block.number() => run.push(block),
            _ => runs.push(vec![block]),
        }
    }
    runs
}

async fn mem_server(blocks: Vec<BlockData>) -> TestServer<MemBackend> {
    TestServer::with_blocks(blocks, RpcConfig::default()).await
}

async fn server_over<B: ColdBackend>(backend: B, blocks: Vec<BlockData>) -> TestServer<B> {
    let handle = ColdStorage::new(backend).await.unwrap();
    handle.append_blocks(blocks).await.unwrap();
    TestServer::start_with(handle, RpcConfig::default()).await
}

/// Raw transactions and receipts of every block of `blocks` (served by `s`).
async fn check_raw<B: ColdBackend>(s: &TestServer<B>, blocks: &[BlockData]) {
    for block in blocks {
        let n = hex(block.number());
        let by_number = s.result("debug_getRawReceipts", json!([n])).await;
        let by_hash = s.result("debug_getRawReceipts", json!([block.hash()])).await;
        assert_eq!(by_number, by_hash);
        let raws: Vec<Bytes> = serde_json::from_value(by_number).unwrap();
        assert_eq!(raws.len(), block.receipts.len());
        let root = ordered_trie_root_with_encoder(&raws, |r, buf| buf.extend_from_slice(r));
        assert_eq!(root, block.header.receipts_root, "block {n}: raw receipts rebuild the root");

        for (i, tx) in block.transactions.iter().enumerate() {
            let hash = *tx.inner().tx_hash();
            let raw = bytes(&s.result("eth_getRawTransactionByHash", json!([hash])).await);
            assert_eq!(keccak256(&raw), hash, "block {n} tx {i}");
            let decoded = alloy::consensus::TxEnvelope::decode_2718(&mut raw.as_ref()).unwrap();
            assert_eq!(&decoded, tx.inner());
            assert_eq!(raw.as_ref(), tx.inner().encoded_2718().as_slice());
            let at = json!([n, hex(i as u64)]);
            assert_eq!(
                bytes(&s.result("eth_getRawTransactionByBlockNumberAndIndex", at).await),
                raw
            );
            let at = json!([block.hash(), hex(i as u64)]);
            assert_eq!(bytes(&s.result("eth_getRawTransactionByBlockHashAndIndex", at).await), raw);
            assert_eq!(bytes(&s.result("debug_getRawTransaction", json!([hash])).await), raw);
        }
        let past = hex(block.transactions.len() as u64);
        let r = s.result("eth_getRawTransactionByBlockNumberAndIndex", json!([n, past])).await;
        assert_eq!(r, Value::Null);
        let r =
            s.result("eth_getRawTransactionByBlockHashAndIndex", json!([block.hash(), past])).await;
        assert_eq!(r, Value::Null);
    }
}

/// `eth_getHeaderBy*` is the block object without its body fields.
async fn check_headers<B: ColdBackend>(s: &TestServer<B>, blocks: &[BlockData]) {
    for block in blocks {
        let n = hex(block.number());
        let mut expected = s.result("eth_getBlockByNumber", json!([n, false])).await;
        for key in ["transactions", "uncles", "withdrawals", "size"] {
            expected.as_object_mut().unwrap().remove(key);
        }
        assert_eq!(s.result("eth_getHeaderByNumber", json!([n])).await, expected);
        assert_eq!(s.result("eth_getHeaderByHash", json!([block.hash()])).await, expected);
        assert_eq!(expected["hash"], json!(block.hash()));
    }
}

#[tokio::test]
async fn raw_data_of_every_real_block_round_trips() {
    for run in real_runs() {
        let s = mem_server(run.clone()).await;
        check_raw(&s, &run).await;
        check_headers(&s, &run).await;

        // Absent things are null; numbers below the first block are 4444.
        let first = run[0].number();
        let above = hex(run.last().unwrap().number() + 1);
        let unknown = B256::repeat_byte(0x42);
        for (method, params) in [
            ("eth_getRawTransactionByHash", json!([unknown])),
            ("debug_getRawTransaction", json!([unknown])),
            ("eth_getRawTransactionByBlockHashAndIndex", json!([unknown, "0x0"])),
            ("eth_getRawTransactionByBlockNumberAndIndex", json!([above, "0x0"])),
            ("debug_getRawReceipts", json!([unknown])),
            ("debug_getRawReceipts", json!([above])),
            ("eth_getHeaderByNumber", json!([above])),
            ("eth_getHeaderByHash", json!([unknown])),
        ] {
            assert_eq!(s.result(method, params.clone()).await, Value::Null, "{method} {params}");
        }
        let below = hex(first - 1);
        for (method, params) in [
            ("eth_getRawTransactionByBlockNumberAndIndex", json!([below, "0x0"])),
            ("debug_getRawReceipts", json!([below])),
            ("eth_getHeaderByNumber", json!([below])),
        ] {
            let e = s.error(method, params.clone()).await;
            assert_eq!(e["code"], 4444, "{method} {params}: {e}");
        }
        let e = s.error("eth_getRawTransactionByHash", json!(["0x12"])).await;
        assert_eq!(e["code"], -32602);
        s.stop().await;
    }
}

#[tokio::test]
async fn raw_receipts_of_an_empty_block_are_an_empty_list() {
    let blocks = common::chain(0, 30);
    let empty = blocks.iter().find(|b| b.transactions.is_empty()).unwrap().number();
    let s = mem_server(blocks).await;
    assert_eq!(s.result("debug_getRawReceipts", json!([hex(empty)])).await, json!([]));
    s.stop().await;
}

#[tokio::test]
async fn headers_match_a_mainnet_node() {
    let blocks: Vec<BlockData> =
        mainnet_jsonrpc_blocks().into_iter().filter(|b| b.number() >= 19433902).collect();
    let s = mem_server(blocks).await;
    for n in [19433902u64, 19433903] {
        let path = data_dir().join("mainnet-jsonrpc").join(format!("block-{n}.json"));
        let mut theirs: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        if let Value::Array(items) = &mut theirs {
            theirs = items.swap_remove(0);
        }
        let mut theirs = theirs["result"].take();
        for key in ["transactions", "uncles", "withdrawals", "size", "totalDifficulty"] {
            theirs.as_object_mut().unwrap().remove(key);
        }
        assert_eq!(s.result("eth_getHeaderByNumber", json!([hex(n)])).await, theirs, "{n}");
    }
    s.stop().await;
}

// ---- fees, by hand ----

/// EIP-4844 `fake_exponential`.
fn fake_exponential(factor: u128, numerator: u128, denominator: u128) -> u128 {
    let mut i = 1;
    let mut output = 0;
    let mut accum = factor * denominator;
    while accum > 0 {
        output += accum;
        accum = accum * numerator / denominator / i;
        i += 1;
    }
    output / denominator
}

/// EIP-1559: the base fee of the block after one with these values.
fn next_base_fee(base_fee: u64, gas_used: u64, gas_limit: u64) -> u64 {
    let target = gas_limit / 2;
    let (base, used, target) = (base_fee as u128, gas_used as u128, target as u128);
    let next = if used == target {
        base
    } else if used > target {
        base + (base * (used - target) / target / 8).max(1)
    } else {
        base - base * (target - used) / target / 8
    };
    next as u64
}

/// Cancun's blob parameters (target 3 blobs, max 6, update fraction
/// 3338477); Prague's (6, 9, 5007716) from mainnet's Prague timestamp.
fn blob_schedule(timestamp: u64) -> (u64, u64, u128) {
    if timestamp >= 1_746_612_311 { (6, 9, 5_007_716) } else { (3, 6, 3_338_477) }
}

const GAS_PER_BLOB: u64 = 131_072;

/// One block's expected fee history entry: (base fee, next base fee, gas
/// used ratio, blob fee, next blob fee, blob ratio, rewards).
fn by_hand(block: &BlockData, percentiles: &[f64]) -> (u64, u64, f64, u128, u128, f64, Vec<u128>) {
    let h = &block.header;
    let base = h.base_fee_per_gas.unwrap();
    let (target, max, fraction) = blob_schedule(h.timestamp);
    let (blob_fee, next_blob_fee, blob_ratio) = match h.excess_blob_gas {
        Some(excess) => {
            let used = h.blob_gas_used.unwrap();
            let next_excess = (excess + used).saturating_sub(target * GAS_PER_BLOB);
            (
                fake_exponential(1, excess as u128, fraction),
                fake_exponential(1, next_excess as u128, fraction),
                used as f64 / (max * GAS_PER_BLOB) as f64,
            )
        }
        None => (0, 0, 0.0),
    };
    // (gas used, effective tip) per transaction, sorted by tip.
    let mut txs: Vec<(u64, u128)> = Vec::new();
    let mut previous = 0;
    for (tx, receipt) in block.transactions.iter().zip(&block.receipts) {
        let tx = tx.inner();
        let gas = receipt.cumulative_gas_used() - previous;
        previous = receipt.cumulative_gas_used();
        let tip = match tx.max_priority_fee_per_gas() {
            Some(priority) => priority.min(tx.max_fee_per_gas() - base as u128),
            None => tx.gas_price().unwrap() - base as u128,
        };
        txs.push((gas, tip));
    }
    txs.sort_by_key(|t| t.1);
    let rewards = percentiles
        .iter()
        .map(|p| {
            if txs.is_empty() {
                return 0;
            }
            let threshold = (h.gas_used as f64 * p / 100.0) as u64;
            let mut sum = 0;
            for (gas, tip) in &txs {
                sum += gas;
                if sum >= threshold {
                    return *tip;
                }
            }
            txs.last().unwrap().1
        })
        .collect();
    (
        base,
        next_base_fee(base, h.gas_used, h.gas_limit),
        h.gas_used as f64 / h.gas_limit as f64,
        blob_fee,
        next_blob_fee,
        blob_ratio,
        rewards,
    )
}

async fn check_fee_history<B: ColdBackend>(s: &TestServer<B>, run: &[BlockData]) {
    let percentiles = [0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.5, 100.0];
    let newest = run.last().unwrap().number();
    let answer =
        s.result("eth_feeHistory", json!([hex(run.len() as u64), hex(newest), percentiles])).await;
    assert_eq!(answer["oldestBlock"], hex(run[0].number()));
    let mut base_fees = Vec::new();
    let mut blob_fees = Vec::new();
    let mut ratios = Vec::new();
    let mut blob_ratios = Vec::new();
    let mut rewards = Vec::new();
    let mut next = (0, 0);
    for (i, block) in run.iter().enumerate() {
        let (base, next_base, ratio, blob, next_blob, blob_ratio, reward) =
            by_hand(block, &percentiles);
        if i > 0 {
            // The chain itself: each block's base fee is the previous
            // block's next base fee.
            assert_eq!(base, next.0, "block {}", block.number());
        }
        next = (next_base, next_blob);
        base_fees.push(U256::from(base));
        blob_fees.push(U256::from(blob));
        ratios.push(ratio);
        blob_ratios.push(blob_ratio);
        rewards.push(reward.into_iter().map(U256::from).collect::<Vec<_>>());
    }
    base_fees.push(U256::from(next.0));
    blob_fees.push(U256::from(next.1));
    assert_eq!(answer["baseFeePerGas"], json!(base_fees), "{answer}");
    assert_eq!(answer["baseFeePerBlobGas"], json!(blob_fees), "{answer}");
    assert_eq!(answer["gasUsedRatio"], floats(&ratios));
    assert_eq!(answer["blobGasUsedRatio"], floats(&blob_ratios));
    assert_eq!(answer["reward"], json!(rewards));
}

#[tokio::test]
async fn fee_history_equals_values_computed_by_hand() {
    for run in real_runs() {
        // Before London there is no base fee to compute by hand.
        if run[0].header.base_fee_per_gas.is_none() {
            continue;
        }
        let s = mem_server(run.clone()).await;
        check_fee_history(&s, &run).await;
        s.stop().await;
    }
}

#[tokio::test]
async fn fee_history_literal_values_of_two_mainnet_blocks() {
    // 19433902 and 19433903 as a mainnet node answered them: the second's
    // base fee (0xfa3904ef0) is the first's next base fee, and it used 3
    // blobs (0x60000 blob gas, Cancun's target) at an excess of 0, so the
    // next excess is 0 too: every blob fee is the minimum, 1.
    let blocks: Vec<BlockData> =
        mainnet_jsonrpc_blocks().into_iter().filter(|b| b.number() >= 19433902).collect();
    let s = mem_server(blocks).await;
    let answer = s.result("eth_feeHistory", json!(["0x2", "latest", []])).await;
    assert_eq!(answer["oldestBlock"], "0x12889ae");
    assert_eq!(answer["baseFeePerGas"][0], "0xfb41590cc");
    assert_eq!(answer["baseFeePerGas"][1], "0xfa3904ef0");
    assert_eq!(answer["baseFeePerBlobGas"], json!(["0x1", "0x1", "0x1"]));
    // 0x60000 of Cancun's 6 * 131072 blob gas.
    assert_eq!(answer["blobGasUsedRatio"], json!([0.0, 0.5]));
    // 0xdd5b6c / 0x1c9c380 and 0xc2b389 / 0x1c9c380.
    assert_eq!(answer["gasUsedRatio"], floats(&[14506860.0 / 30000000.0, 12759945.0 / 30000000.0]));
    assert!(answer.get("reward").is_none(), "no percentiles, no reward: {answer}");
    s.stop().await;
}

#[tokio::test]
async fn fee_history_at_the_prague_boundary_keeps_the_newest_blocks_schedule() {
    // 22431083 is mainnet's last Cancun block, 22431084 its first Prague
    // block. As in geth, the next blob fee of a block uses that block's own
    // blob parameters (its timestamp): 22431083's next fee is computed with
    // Cancun's, though 22431084 priced blobs with Prague's.
    let run: Vec<BlockData> = mainnet_rlp_blocks()
        .into_iter()
        .filter(|b| [22431083, 22431084].contains(&b.number()))
        .collect();
    assert!(run[0].header.timestamp < 1_746_612_311 && run[1].header.timestamp >= 1_746_612_311);
    let s = mem_server(run.clone()).await;
    let answer = s.result("eth_feeHistory", json!(["0x1", hex(22431083), []])).await;
    let (.., next_blob, _, _) = by_hand(&run[0], &[]);
    assert_eq!(answer["baseFeePerBlobGas"][1], json!(U256::from(next_blob)));
    // The choice matters here: with Prague's parameters the fee differs.
    let h = &run[0].header;
    let prague_excess =
        (h.excess_blob_gas.unwrap() + h.blob_gas_used.unwrap()).saturating_sub(6 * GAS_PER_BLOB);
    assert_ne!(fake_exponential(1, prague_excess as u128, 5_007_716), next_blob);
    let answer = s.result("eth_feeHistory", json!(["0x2", "latest", []])).await;
    let (_, _, _, blob, next_blob, _, _) = by_hand(&run[1], &[]);
    assert_eq!(answer["baseFeePerBlobGas"][1], json!(U256::from(blob)));
    assert_eq!(answer["baseFeePerBlobGas"][2], json!(U256::from(next_blob)));
    // eth_blobBaseFee is the next block's: the last entry.
    assert_eq!(s.result("eth_blobBaseFee", json!([])).await, answer["baseFeePerBlobGas"][2]);
    s.stop().await;
}

#[tokio::test]
async fn fee_history_limits_and_errors_as_geth() {
    let blocks: Vec<BlockData> =
        mainnet_jsonrpc_blocks().into_iter().filter(|b| b.number() >= 19433902).collect();
    let s = mem_server(blocks).await;
    // Zero blocks: geth's empty answer, whatever the percentiles.
    assert_eq!(
        s.result("eth_feeHistory", json!(["0x0", "latest", [101]])).await,
        json!({"oldestBlock": "0x0", "gasUsedRatio": null})
    );
    // The range stops at the first stored block; counts are hex or decimal.
    for count in [json!("0x400"), json!("1024"), json!(5000), json!("0x10000")] {
        let answer = s.result("eth_feeHistory", json!([count, "latest", [50]])).await;
        assert_eq!(answer["oldestBlock"], "0x12889ae", "{count}");
        assert_eq!(answer["reward"].as_array().unwrap().len(), 2);
        assert_eq!(answer["baseFeePerGas"].as_array().unwrap().len(), 3);
    }
    let answer = s.result("eth_feeHistory", json!(["0x1", "earliest"])).await;
    assert_eq!(answer["oldestBlock"], "0x12889ae");
    assert_eq!(answer["gasUsedRatio"].as_array().unwrap().len(), 1);
    let e = s.error("eth_feeHistory", json!(["0x1", "0x12889b0", []])).await;
    assert_eq!(e["code"], -32000);
    assert_eq!(e["message"], "request beyond head block: requested 19433904, head 19433903");
    let e = s.error("eth_feeHistory", json!(["0x1", "0x12889ad", []])).await;
    assert_eq!(e["code"], 4444);
    let e = s.error("eth_feeHistory", json!(["0x1", "latest", [10, 5]])).await;
    assert_eq!(e["message"], "invalid reward percentile: #0:10.000000 >= #1:5.000000");
    let e = s.error("eth_feeHistory", json!(["0x1", "latest", [-1]])).await;
    assert_eq!(e["message"], "invalid reward percentile: -1.000000");
    let many: Vec<f64> = (0..101).map(|i| i as f64 * 0.5).collect();
    let e = s.error("eth_feeHistory", json!(["0x1", "latest", many])).await;
    assert_eq!(e["message"], "invalid reward percentile: over the query limit 100");
    let e = s.error("eth_feeHistory", json!(["0xz", "latest", []])).await;
    assert_eq!(e["code"], -32602);
    assert_eq!(e["message"], "invalid argument 0: invalid hex or decimal integer \"0xz\"");
    let e = s.error("eth_feeHistory", json!(["0x1", "latest", ["50"]])).await;
    assert_eq!(e["code"], -32602);
    s.stop().await;

    // An empty store: the empty answer; no blob fee.
    let s = mem_server(Vec::new()).await;
    let answer = s.result("eth_feeHistory", json!(["0x4", "latest", []])).await;
    assert_eq!(answer, json!({"oldestBlock": "0x0", "gasUsedRatio": null}));
    assert_eq!(s.result("eth_blobBaseFee", json!([])).await, Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn blob_base_fee_is_null_before_cancun() {
    let run: Vec<BlockData> =
        mainnet_rlp_blocks().into_iter().filter(|b| b.number() == 17034870).collect();
    let s = mem_server(run).await;
    assert_eq!(s.result("eth_blobBaseFee", json!([])).await, Value::Null);
    let answer = s.result("eth_feeHistory", json!(["0x1", "latest", [50]])).await;
    assert_eq!(answer["baseFeePerBlobGas"], json!(["0x0", "0x0"]));
    assert_eq!(answer["blobGasUsedRatio"], json!([0.0]));
    s.stop().await;
}

// ---- other backends ----

/// Every method of this file answers on `s` as on the in-memory store.
async fn same_as_mem<B: ColdBackend>(s: &TestServer<B>, run: &[BlockData]) {
    check_raw(s, run).await;
    check_headers(s, run).await;
    check_fee_history(s, run).await;
    let mem = mem_server(run.to_vec()).await;
    for (method, params) in [
        ("eth_blobBaseFee", json!([])),
        ("eth_feeHistory", json!(["0x10", "latest", [5, 50, 95]])),
        ("eth_getHeaderByNumber", json!(["latest"])),
    ] {
        assert_eq!(s.result(method, params.clone()).await, mem.result(method, params).await);
    }
    mem.stop().await;
}

fn backend_run() -> Vec<BlockData> {
    mainnet_jsonrpc_blocks().into_iter().filter(|b| b.number() >= 19433902).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdbx_answers_as_memory() {
    let dir = tempfile::TempDir::new().unwrap();
    let backend = MdbxBackend::open(dir.path(), MdbxOptions::default()).unwrap();
    let run = backend_run();
    let s = server_over(backend, run.clone()).await;
    same_as_mem(&s, &run).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answers_as_memory() {
    let Some(db) = PgDatabase::create("postgres_answers_as_memory", "history").await else {
        return;
    };
    let backend = PostgresBackend::open(&db.url, PgOptions::default()).await.unwrap();
    let run = backend_run();
    let s = server_over(backend, run.clone()).await;
    same_as_mem(&s, &run).await;
    s.stop().await;
    db.drop_now().await;
}
