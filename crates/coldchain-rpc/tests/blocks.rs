//! Whole blocks against their original bytes: the 13 blocks of
//! `mainnet-rlp` (header and body RLP as mainnet has them, withdrawals from
//! Shanghai on) are served, and `debug_getRawHeader`, `debug_getRawBlock`,
//! `size`, `uncles` and `withdrawals` must equal what those bytes hold; the
//! uncle methods on a synthetic chain with uncles.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use alloy::{
    consensus::{Block, BlockBody, Header, TxEnvelope},
    primitives::{B256, Bytes, keccak256},
    rlp::Decodable,
};
use coldchain::testing::{
    ChainShape,
    fixtures::{block_rlp, mainnet_rlp_blocks, mainnet_rlp_raw},
    test_chain_with,
};
use coldchain_rpc::RpcConfig;
use common::TestServer;
use serde_json::{Value, json};

fn quantity(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[tokio::test]
async fn mainnet_blocks_come_back_as_their_original_bytes() {
    let blocks = mainnet_rlp_blocks();
    let mut with_withdrawals = 0;
    for ((n, header, body), block) in mainnet_rlp_raw().into_iter().zip(blocks) {
        assert_eq!(block.number(), n);
        let hash = block.hash();
        let decoded = BlockBody::<TxEnvelope>::decode(&mut body.as_slice()).unwrap();
        let s = TestServer::with_blocks(vec![block], RpcConfig::default()).await;
        let expected = block_rlp(&header, &body);
        let q = json!(format!("{n:#x}"));

        for id in [q.clone(), json!(hash)] {
            let raw: Bytes =
                serde_json::from_value(s.result("debug_getRawHeader", json!([id])).await).unwrap();
            assert!(raw.as_ref() == header.as_slice(), "raw header of {n}");
            assert_eq!(keccak256(&raw), hash, "keccak of the raw header of {n}");
            let raw: Bytes =
                serde_json::from_value(s.result("debug_getRawBlock", json!([id])).await).unwrap();
            assert!(raw.as_ref() == expected.as_slice(), "raw block of {n}");
            // The raw block decodes back to the block.
            let back = Block::<TxEnvelope, Header>::decode(&mut raw.as_ref()).unwrap();
            assert_eq!(back.header.hash_slow(), hash);
            assert_eq!(back.body, decoded);
        }

        for full in [false, true] {
            let ours = s.result("eth_getBlockByNumber", json!([q, full])).await;
            assert_eq!(quantity(&ours["size"]), expected.len() as u64, "size of {n}");
            let uncles: Vec<B256> = decoded.ommers.iter().map(Header::hash_slow).collect();
            assert_eq!(ours["uncles"], json!(uncles));
            match &decoded.withdrawals {
                Some(w) => {
                    assert_eq!(ours["withdrawals"], serde_json::to_value(w).unwrap());
                    with_withdrawals += usize::from(!w.is_empty());
                }
                None => assert!(ours.get("withdrawals").is_none(), "block {n}"),
            }
            let by_hash = s.result("eth_getBlockByHash", json!([hash, full])).await;
            assert_eq!(by_hash, ours);
        }
        let count = s.result("eth_getUncleCountByBlockNumber", json!([q])).await;
        assert_eq!(quantity(&count), decoded.ommers.len() as u64);
        s.stop().await;
    }
    assert!(with_withdrawals >= 8, "{with_withdrawals} blocks with withdrawals");
}

#[tokio::test]
async fn uncle_methods_follow_geth() {
    let shape = ChainShape { max_txs: 3, ..Default::default() };
    let blocks = test_chain_with(0, 24, B256::ZERO, 5, shape);
    let s = TestServer::with_blocks(blocks.clone(), RpcConfig::default()).await;
    let mut seen = 0;
    for block in &blocks {
        let q = json!(format!("{:#x}", block.number()));
        let hash = json!(block.hash());
        let count = s.result("eth_getUncleCountByBlockHash", json!([hash])).await;
        assert_eq!(quantity(&count), block.extras.ommers.len() as u64);
        let count = s.result("eth_getUncleCountByBlockNumber", json!([q])).await;
        assert_eq!(quantity(&count), block.extras.ommers.len() as u64);
        for (i, ommer) in block.extras.ommers.iter().enumerate() {
            let index = json!(format!("{i:#x}"));
            let by_number = s.result("eth_getUncleByBlockNumberAndIndex", json!([q, index])).await;
            let by_hash = s.result("eth_getUncleByBlockHashAndIndex", json!([hash, index])).await;
            assert_eq!(by_number, by_hash);
            assert_eq!(by_number["hash"], json!(ommer.hash_slow()));
            assert_eq!(by_number["uncles"], json!([]));
            assert!(by_number.get("transactions").is_none());
            assert!(by_number.get("withdrawals").is_none());
            let alone = Block::<TxEnvelope, Header>::new(ommer.clone(), BlockBody::default());
            assert_eq!(quantity(&by_number["size"]), alloy::rlp::encode(&alone).len() as u64);
            let block_json = s.result("eth_getBlockByNumber", json!([q, false])).await;
            assert_eq!(block_json["uncles"][i], by_number["hash"]);
            seen += 1;
        }
        let past = json!(format!("{:#x}", block.extras.ommers.len()));
        let none = s.result("eth_getUncleByBlockNumberAndIndex", json!([q, past])).await;
        assert_eq!(none, Value::Null);
    }
    assert!(seen >= 3, "{seen} uncles");
    // Unknown blocks: null.
    let unknown = json!(B256::repeat_byte(0xee));
    for (method, params) in [
        ("eth_getUncleCountByBlockHash", json!([unknown])),
        ("eth_getUncleCountByBlockNumber", json!(["0x1000"])),
        ("eth_getUncleByBlockHashAndIndex", json!([unknown, "0x0"])),
        ("eth_getUncleByBlockNumberAndIndex", json!(["0x1000", "0x0"])),
        ("debug_getRawHeader", json!([unknown])),
        ("debug_getRawBlock", json!(["0x1000"])),
    ] {
        assert_eq!(s.result(method, params).await, Value::Null, "{method}");
    }
    s.stop().await;
}
