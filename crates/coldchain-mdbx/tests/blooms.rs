//! Receipt blooms are stored apart from the receipts (`receipt_blooms`):
//! every read gives back exactly the appended bloom, also when it is not the
//! bloom of the logs or has most bits set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::{B256, Bloom};
use coldchain::{
    ColdBackend, ColdRead, ColdWrite, Deadline, HeaderSpec, ReceiptSpec,
    testing::{ChainShape, test_chain_with},
};
use coldchain_mdbx::{MdbxBackend, MdbxOptions};
use std::time::Duration;

fn d() -> Deadline {
    Deadline::after("test", Duration::from_secs(60))
}

#[tokio::test]
async fn odd_and_dense_blooms_round_trip() {
    let mut blocks = test_chain_with(0, 8, B256::ZERO, 9, ChainShape::default());
    let mut odd = 0;
    for block in &mut blocks[1..] {
        for (i, r) in block.receipts.iter_mut().enumerate() {
            let rb = r.as_receipt_with_bloom_mut().unwrap();
            match i % 3 {
                // Not the bloom of the logs: one more bit.
                0 => rb.logs_bloom.m3_2048(b"not a log"),
                // Dense: stored whole.
                1 => rb.logs_bloom = Bloom::repeat_byte(0xa5),
                _ => continue,
            }
            odd += 1;
        }
    }
    assert!(odd >= 4, "the test chain has too few receipts ({odd})");
    let dir = tempfile::TempDir::new().unwrap();
    let mut backend = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
    backend.append_blocks(blocks.clone(), d()).await.unwrap();
    let check = |backend: MdbxBackend| {
        let blocks = blocks.clone();
        async move {
            for block in &blocks {
                let n = block.number();
                let expected = block.stored_receipts();
                let got = backend.block_receipts(HeaderSpec::Number(n), d()).await.unwrap();
                assert_eq!(got.as_ref(), Some(&expected), "block {n}");
                for (i, r) in expected.iter().enumerate() {
                    let spec = ReceiptSpec::BlockNumberIndex(n, i as u64);
                    assert_eq!(backend.receipt(spec, d()).await.unwrap().as_ref(), Some(r));
                    let spec = ReceiptSpec::TxHash(r.tx_hash);
                    assert_eq!(backend.receipt(spec, d()).await.unwrap().as_ref(), Some(r));
                }
            }
        }
    };
    check(backend.clone()).await;
    let report = backend.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    drop(backend);
    let mut backend = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
    check(backend.clone()).await;
    let drained = backend.drain_above(0, d()).await.unwrap();
    assert_eq!(drained.len(), blocks.len() - 1);
    for (got, block) in drained.iter().zip(&blocks[1..]) {
        assert_eq!(got.header, block.header);
        assert_eq!(got.receipts, block.stored_receipts());
    }
    assert!(backend.verify().unwrap().is_ok());
    assert_eq!(backend.tip(d()).await.unwrap().map(|t| t.number), Some(0));
}
