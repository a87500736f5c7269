//! Real mainnet blocks (tests/data): verification, storage round trips
//! through the in-memory backend, RPC context fields against what a real node
//! returned, and the storage codec.
//!
//! Run with `--nocapture` to see the measured encoded sizes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::{
    consensus::{
        Eip658Value, TxEnvelope,
        proofs::{calculate_receipt_root, calculate_transaction_root},
        transaction::SignerRecoverable,
    },
    primitives::{Address, B256, Bloom, Bytes, LogData, Sealed, logs_bloom},
    rpc::types::BlockTransactions,
};
use coldchain::{
    BlockData, ColdRead, ColdWrite, Deadline, HeaderSpec, LogFilter, MemBackend, ReceiptSpec,
    StoredReceipt, TxSpec, codec,
    convert::{ContextField, ConvertError, RpcItem, block_from_rpc},
    testing::fixtures::{
        MAINNET_JSONRPC_NUMBERS, MAINNET_RLP_NUMBERS, mainnet_jsonrpc_blocks,
        mainnet_jsonrpc_fixtures, mainnet_rlp_blocks,
    },
    verify::{VerifyField, verify_block},
};
use std::time::Duration;

fn d() -> Deadline {
    Deadline::after("test", Duration::from_secs(60))
}

fn log_count(block: &BlockData) -> usize {
    block.receipts.iter().map(|r| r.logs().len()).sum()
}

fn all_blocks() -> Vec<BlockData> {
    let mut blocks = mainnet_rlp_blocks();
    blocks.extend(mainnet_jsonrpc_blocks());
    blocks
}

#[test]
fn rlp_fixtures_verify_and_match_readme_counts() {
    let blocks = mainnet_rlp_blocks();
    let numbers: Vec<u64> = blocks.iter().map(BlockData::number).collect();
    assert_eq!(numbers, MAINNET_RLP_NUMBERS);
    for block in &blocks {
        verify_block(block).unwrap_or_else(|e| panic!("{e}"));
    }
    let txs: usize = blocks.iter().map(|b| b.transactions.len()).sum();
    let logs: usize = blocks.iter().map(log_count).sum();
    assert_eq!(txs, 1_686);
    assert_eq!(logs, 14_736);
    let merge = blocks.iter().find(|b| b.number() == 15_537_394).unwrap();
    assert_eq!(log_count(merge), 10_041);
}

#[test]
fn jsonrpc_fixtures_verify_and_match_readme_counts() {
    let blocks = mainnet_jsonrpc_blocks();
    let numbers: Vec<u64> = blocks.iter().map(BlockData::number).collect();
    assert_eq!(numbers, MAINNET_JSONRPC_NUMBERS);
    for block in &blocks {
        verify_block(block).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(blocks[0].transactions.len(), 239);
    assert_eq!(log_count(&blocks[0]), 929);
    assert_eq!(blocks[1].transactions.len(), 171);
    assert_eq!(blocks[2].transactions.len(), 172);
    assert_eq!(log_count(&blocks[1]) + log_count(&blocks[2]), 573);
    // 19433902 and 19433903 are consecutive.
    assert_eq!(blocks[2].header.parent_hash, blocks[1].hash());
}

#[test]
fn jsonrpc_senders_match_signature_recovery() {
    for block in mainnet_jsonrpc_blocks() {
        for (i, tx) in block.transactions.iter().enumerate() {
            let recovered = tx.inner().recover_signer().unwrap();
            assert_eq!(recovered, tx.signer(), "block {} tx {i}", block.number());
        }
    }
}

/// Appends `block` to a fresh store, reads everything back through
/// [`ColdRead`] and rebuilds the block from what the store returned.
async fn store_round_trip(block: &BlockData) -> (BlockData, Vec<StoredReceipt>) {
    let mut store = MemBackend::new();
    store.append_blocks(vec![block.clone()], d()).await.unwrap();
    let n = block.number();
    let hash = block.hash();

    let header = store.header(HeaderSpec::Number(n), d()).await.unwrap().unwrap();
    let by_hash = store.header(HeaderSpec::Hash(hash), d()).await.unwrap().unwrap();
    assert_eq!(header, by_hash);
    assert_eq!(header.hash(), hash);

    let txs = store.block_transactions(HeaderSpec::Number(n), d()).await.unwrap().unwrap();
    let receipts = store.block_receipts(HeaderSpec::Hash(hash), d()).await.unwrap().unwrap();
    assert_eq!(txs.len(), block.transactions.len());
    assert_eq!(receipts.len(), block.receipts.len());
    for (i, tx) in txs.iter().enumerate() {
        let tx_hash = *tx.inner().tx_hash();
        let found = store.transaction(TxSpec::Hash(tx_hash), d()).await.unwrap().unwrap();
        assert_eq!(&found.tx, tx, "block {n} tx {i} by hash");
        assert_eq!(found.tx.signer(), tx.signer());
        assert_eq!(
            (found.meta.index, found.meta.block_number, found.meta.block_hash),
            (i as u64, n, hash)
        );
        let by_pos = store.transaction(TxSpec::BlockHashIndex(hash, i as u64), d()).await;
        assert_eq!(&by_pos.unwrap().unwrap().tx, tx);
        let receipt = store.receipt(ReceiptSpec::TxHash(tx_hash), d()).await.unwrap().unwrap();
        assert_eq!(receipt, receipts[i], "block {n} receipt {i} by tx hash");
        assert_eq!(receipt.tx_hash, tx_hash);
    }
    assert!(
        store
            .transaction(TxSpec::BlockNumberIndex(n, txs.len() as u64), d())
            .await
            .unwrap()
            .is_none()
    );

    // Every log, through the log query path.
    let logs = store.get_logs(&LogFilter::at_hash(hash), usize::MAX, d()).await.unwrap();
    assert_eq!(logs.len(), log_count(block));
    for (i, log) in logs.iter().enumerate() {
        assert_eq!(log.log_index, Some(i as u64));
        assert_eq!(log.block_hash, Some(hash));
    }

    let extras = store.block_extras(HeaderSpec::Number(n), d()).await.unwrap().unwrap();
    let rebuilt = BlockData {
        header,
        transactions: txs,
        receipts: receipts.iter().map(|r| r.receipt.clone()).collect(),
        extras,
    };
    (rebuilt, receipts)
}

async fn check_store_round_trip(blocks: Vec<BlockData>) {
    for block in &blocks {
        let (rebuilt, stored) = store_round_trip(block).await;
        verify_block(&rebuilt).unwrap_or_else(|e| panic!("rebuilt: {e}"));
        let h = block.header.inner();
        assert_eq!(rebuilt.header.inner().hash_slow(), block.hash());
        let envelopes: Vec<&TxEnvelope> = rebuilt.transactions.iter().map(|t| t.inner()).collect();
        assert_eq!(calculate_transaction_root(&envelopes), h.transactions_root);
        assert_eq!(calculate_receipt_root(&rebuilt.receipts), h.receipts_root);
        let mut bloom = Bloom::ZERO;
        for r in &rebuilt.receipts {
            bloom.accrue_bloom(&logs_bloom(r.logs()));
        }
        assert_eq!(bloom, h.logs_bloom);
        assert_eq!(&rebuilt, block);
        assert_eq!(stored, block.stored_receipts());
    }
}

#[tokio::test]
async fn rlp_blocks_round_trip_through_mem_store() {
    check_store_round_trip(mainnet_rlp_blocks()).await;
}

#[tokio::test]
async fn jsonrpc_blocks_round_trip_through_mem_store() {
    check_store_round_trip(mainnet_jsonrpc_blocks()).await;
}

/// StoredReceipt's derived fields against what a real node returned.
#[tokio::test]
async fn stored_receipts_match_node_receipts() {
    let mut blob_receipts = 0;
    let mut creations = 0;
    for fixture in mainnet_jsonrpc_fixtures() {
        let block = block_from_rpc(fixture.block.clone(), fixture.receipts.clone()).unwrap();
        let (_, stored) = store_round_trip(&block).await;
        let mut next_log_index = 0u64;
        for (i, (s, rpc)) in stored.iter().zip(&fixture.receipts).enumerate() {
            let at = format!("block {} receipt {i}", block.number());
            assert_eq!(s.tx_hash, rpc.transaction_hash, "{at}");
            assert_eq!(Some(s.tx_index), rpc.transaction_index, "{at}");
            assert_eq!(Some(s.block_hash), rpc.block_hash, "{at}");
            assert_eq!(Some(s.block_number), rpc.block_number, "{at}");
            assert_eq!(s.gas_used, rpc.gas_used, "{at}: gasUsed");
            assert_eq!(s.effective_gas_price, rpc.effective_gas_price, "{at}: effectiveGasPrice");
            assert_eq!(s.contract_address, rpc.contract_address, "{at}: contractAddress");
            assert_eq!(s.from, rpc.from, "{at}: from");
            assert_eq!(s.to, rpc.to, "{at}: to");
            assert_eq!(s.blob_gas_used, rpc.blob_gas_used, "{at}: blobGasUsed");
            assert_eq!(s.blob_gas_price, rpc.blob_gas_price, "{at}: blobGasPrice");
            if let Some(first) = rpc.inner.logs().first() {
                assert_eq!(Some(s.first_log_index), first.log_index, "{at}: logs[0].logIndex");
            }
            assert_eq!(s.first_log_index, next_log_index, "{at}");
            // Every log, field by field.
            let ours: Vec<_> = s.rpc_logs().collect();
            assert_eq!(ours.len(), rpc.inner.logs().len(), "{at}");
            for (a, b) in ours.iter().zip(rpc.inner.logs()) {
                assert_eq!(a.inner, b.inner, "{at}");
                assert_eq!(a.log_index, b.log_index, "{at}");
                assert_eq!(a.transaction_hash, b.transaction_hash, "{at}");
                assert_eq!(a.transaction_index, b.transaction_index, "{at}");
                assert_eq!(a.block_hash, b.block_hash, "{at}");
                assert_eq!(a.block_number, b.block_number, "{at}");
                assert_eq!(a.removed, b.removed, "{at}");
            }
            assert_eq!(s.receipt.logs_bloom(), rpc.inner.logs_bloom(), "{at}");
            assert_eq!(s.receipt.status(), rpc.inner.status(), "{at}");
            assert_eq!(s.receipt.cumulative_gas_used(), rpc.inner.cumulative_gas_used(), "{at}");
            next_log_index += rpc.inner.logs().len() as u64;
            blob_receipts += usize::from(rpc.blob_gas_price.is_some());
            creations += usize::from(rpc.contract_address.is_some());
        }
    }
    assert!(blob_receipts > 0, "the Cancun fixture has blob transactions");
    assert!(creations > 0, "the fixtures have contract creations");
}

/// A block with several receipts carrying logs.
fn victim() -> BlockData {
    mainnet_rlp_blocks().into_iter().find(|b| b.number() == 17_034_869).unwrap()
}

fn receipt_logs(block: &mut BlockData, i: usize) -> &mut Vec<alloy::primitives::Log> {
    &mut block.receipts[i].as_receipt_with_bloom_mut().unwrap().receipt.logs
}

#[test]
fn flipped_log_data_byte_is_receipts_root() {
    let mut block = victim();
    let i = block.receipts.iter().position(|r| r.logs().iter().any(|l| !l.data.data.is_empty()));
    let i = i.unwrap();
    let log = receipt_logs(&mut block, i).iter_mut().find(|l| !l.data.data.is_empty()).unwrap();
    let mut data = log.data.data.to_vec();
    data[0] ^= 0x01;
    log.data = LogData::new_unchecked(log.data.topics().to_vec(), Bytes::from(data));
    let err = verify_block(&block).unwrap_err();
    assert_eq!((err.number, err.field), (17_034_869, VerifyField::ReceiptsRoot), "{err}");
    assert!(err.to_string().contains("block 17034869"), "{err}");
}

#[test]
fn flipped_log_address_byte_is_receipt_bloom() {
    let mut block = victim();
    let i = block.receipts.iter().position(|r| !r.logs().is_empty()).unwrap();
    let log = &mut receipt_logs(&mut block, i)[0];
    let mut address = log.address.into_array();
    address[19] ^= 0x01;
    log.address = Address::from(address);
    let err = verify_block(&block).unwrap_err();
    assert_eq!(err.field, VerifyField::ReceiptBloom { index: i }, "{err}");
}

#[test]
fn dropped_log_is_receipt_bloom_then_receipts_root() {
    let mut block = victim();
    // A receipt whose bloom changes when its last log is dropped.
    let i = block
        .receipts
        .iter()
        .position(|r| {
            let logs = r.logs();
            !logs.is_empty() && logs_bloom(&logs[..logs.len() - 1]) != *r.logs_bloom()
        })
        .unwrap();
    receipt_logs(&mut block, i).pop();
    let err = verify_block(&block).unwrap_err();
    assert_eq!(err.field, VerifyField::ReceiptBloom { index: i }, "{err}");

    // Same with the receipt's bloom rebuilt: only the root can tell.
    let rb = block.receipts[i].as_receipt_with_bloom_mut().unwrap();
    rb.logs_bloom = logs_bloom(&rb.receipt.logs);
    let err = verify_block(&block).unwrap_err();
    assert_eq!(err.field, VerifyField::ReceiptsRoot, "{err}");
}

#[test]
fn swapped_transactions_is_transactions_root() {
    let mut block = victim();
    block.transactions.swap(0, 1);
    let err = verify_block(&block).unwrap_err();
    assert_eq!(err.field, VerifyField::TransactionsRoot, "{err}");
    // Swapping the receipts along does not help.
    block.receipts.swap(0, 1);
    assert_eq!(verify_block(&block).unwrap_err().field, VerifyField::TransactionsRoot);
}

#[test]
fn wrong_tx_hash_and_header_field_and_status() {
    let mut block = victim();
    let tx = block.transactions[3].clone();
    let (envelope, sender) = tx.into_parts();
    let TxEnvelope::Eip1559(signed) = envelope else { panic!("expected a type-2 tx") };
    let (tx, sig, _) = signed.into_parts();
    let forged = TxEnvelope::Eip1559(alloy::consensus::Signed::new_unchecked(tx, sig, B256::ZERO));
    block.transactions[3] = coldchain::RecoveredTx::new_unchecked(forged, sender);
    assert_eq!(verify_block(&block).unwrap_err().field, VerifyField::TxHash { index: 3 });

    let mut block = victim();
    let (mut header, hash) = block.header.clone().into_parts();
    header.gas_used += 1;
    block.header = Sealed::new_unchecked(header, hash);
    assert_eq!(verify_block(&block).unwrap_err().field, VerifyField::HeaderHash);

    let mut block = victim();
    let rb = block.receipts[0].as_receipt_with_bloom_mut().unwrap();
    rb.receipt.status = Eip658Value::Eip658(!rb.receipt.status.coerce_status());
    assert_eq!(verify_block(&block).unwrap_err().field, VerifyField::ReceiptsRoot);
}

#[test]
fn convert_rejects_inconsistent_rpc_objects() {
    let fixture = mainnet_jsonrpc_fixtures().remove(2);
    let number = fixture.block.header.inner.number;

    let mut block = fixture.block.clone();
    block.header.inner.gas_used += 1;
    let err = block_from_rpc(block, fixture.receipts.clone()).unwrap_err();
    assert!(matches!(err, ConvertError::HeaderHash { number: n, .. } if n == number), "{err}");
    assert!(err.to_string().contains(&number.to_string()), "{err}");

    let mut block = fixture.block.clone();
    block.transactions = BlockTransactions::Hashes(block.transactions.hashes().collect());
    let err = block_from_rpc(block, fixture.receipts.clone()).unwrap_err();
    assert!(matches!(err, ConvertError::NotFullTransactions { .. }), "{err}");

    let mut receipts = fixture.receipts.clone();
    receipts.pop();
    let err = block_from_rpc(fixture.block.clone(), receipts).unwrap_err();
    assert!(matches!(err, ConvertError::ReceiptCount { receipts: 171, .. }), "{err}");

    let mut receipts = fixture.receipts.clone();
    receipts.swap(0, 1);
    let err = block_from_rpc(fixture.block.clone(), receipts).unwrap_err();
    assert!(
        matches!(
            err,
            ConvertError::Mismatch {
                item: RpcItem::Receipt,
                index: 0,
                field: ContextField::TransactionIndex,
                ..
            }
        ),
        "{err}"
    );

    let mut receipts = fixture.receipts.clone();
    receipts[5].from = Address::repeat_byte(9);
    let err = block_from_rpc(fixture.block.clone(), receipts).unwrap_err();
    assert!(
        matches!(err, ConvertError::Mismatch { index: 5, field: ContextField::From, .. }),
        "{err}"
    );
}

#[test]
fn codec_round_trips_real_blocks_and_sizes() {
    for block in all_blocks() {
        let n = block.number();
        let header = codec::encode_header(&block.header).unwrap();
        assert_eq!(codec::decode_header(&header).unwrap(), block.header, "block {n}");
        let mut tx_bytes = 0;
        for (i, tx) in block.transactions.iter().enumerate() {
            let bytes = codec::encode_tx(tx);
            let back = codec::decode_tx(&bytes).unwrap();
            assert_eq!(&back, tx, "block {n} tx {i}");
            assert_eq!(back.inner().tx_hash(), tx.inner().tx_hash());
            tx_bytes += bytes.len();
        }
        let stored = block.stored_receipts();
        let mut receipt_bytes = 0;
        for (i, r) in stored.iter().enumerate() {
            let bytes = codec::encode_receipt(r).unwrap();
            assert_eq!(&codec::decode_receipt(&bytes).unwrap(), r, "block {n} receipt {i}");
            receipt_bytes += bytes.len();
        }
        let count = stored.len().max(1);
        let eip2718: usize =
            block.receipts.iter().map(alloy::eips::Encodable2718::encode_2718_len).sum();
        println!(
            "block {n}: header {} B; {} txs avg {} B; {} receipts ({} logs) avg {} B/receipt \
             (consensus EIP-2718 with bloom: avg {} B)",
            header.len(),
            block.transactions.len(),
            tx_bytes / block.transactions.len().max(1),
            stored.len(),
            log_count(&block),
            receipt_bytes / count,
            eip2718 / count,
        );
        if n == 15_537_394 {
            println!(
                "block 15537394: average encoded receipt = {:.1} bytes ({} receipts, {} bytes)",
                receipt_bytes as f64 / count as f64,
                stored.len(),
                receipt_bytes
            );
        }
    }
}
