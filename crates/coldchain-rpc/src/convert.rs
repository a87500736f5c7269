//! Store data to JSON-RPC objects, built with alloy's RPC types so that
//! names, hex quantities, nulls and per-type fields are those of real nodes.
//!
//! Blocks carry what geth's `RPCMarshalBlock` answers: the header fields,
//! `size` (the RLP length of the whole block: header, transactions, ommers
//! and, when present, withdrawals), `uncles` (the ommer hashes),
//! `withdrawals` exactly when the block has a withdrawals list, and the
//! transactions. `totalDifficulty` is left out (geth dropped it after the
//! merge; it needs the whole chain's history). An uncle (from
//! `eth_getUncleBy*`) is its header as a block of its own: header fields,
//! `size`, `uncles: []` and no `transactions`, as geth answers it.

use alloy::{
    consensus::ReceiptEnvelope,
    primitives::{B256, U256},
    rpc::types::{
        Block, BlockTransactions, Header, Log, Transaction, TransactionInfo, TransactionReceipt,
    },
};
use coldchain::{BlockExtras, RecoveredTx, SealedHeader, StoredReceipt, TxWithMeta, model};
use serde_json::Value;

/// A full block as `eth_getBlockBy*` answers it (a JSON object).
pub fn block_json(
    header: &SealedHeader,
    transactions: Vec<RecoveredTx>,
    extras: BlockExtras,
    full: bool,
) -> Result<Value, serde_json::Error> {
    let size = U256::from(block_size(header, &transactions, &extras));
    let txs = if full {
        BlockTransactions::Full(
            transactions
                .into_iter()
                .enumerate()
                .map(|(i, tx)| {
                    let hash = *tx.inner().tx_hash();
                    let info = tx_info(header, hash, i as u64);
                    Transaction::from_transaction(tx, info)
                })
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(transactions.iter().map(|tx| *tx.inner().tx_hash()).collect())
    };
    let block = Block {
        header: Header {
            hash: header.hash(),
            inner: header.inner().clone(),
            total_difficulty: None,
            size: Some(size),
        },
        uncles: extras.ommer_hashes(),
        transactions: txs,
        withdrawals: extras.withdrawals,
    };
    serde_json::to_value(&block)
}

/// An ommer (uncle) header as `eth_getUncleBy*` answers it: a block of its
/// own with no transactions (geth's `RPCMarshalBlock` without transactions):
/// the header fields, `size` and `uncles: []`.
pub fn uncle_json(ommer: &alloy::consensus::Header) -> Result<Value, serde_json::Error> {
    let sealed = alloy::primitives::Sealed::new_unchecked(ommer.clone(), ommer.hash_slow());
    let size = block_size(&sealed, &[], &BlockExtras::none());
    let header = Header {
        hash: sealed.hash(),
        inner: ommer.clone(),
        total_difficulty: None,
        size: Some(U256::from(size)),
    };
    let mut value = serde_json::to_value(&header)?;
    if let Value::Object(map) = &mut value {
        map.insert("uncles".into(), Value::Array(Vec::new()));
    }
    Ok(value)
}

/// A header as a `newHeads` notification carries it: the header fields and
/// its hash (no size, no transactions), as geth sends it.
pub fn header_rpc(header: &SealedHeader) -> Header {
    Header {
        hash: header.hash(),
        inner: header.inner().clone(),
        total_difficulty: None,
        size: None,
    }
}

/// The RLP length of the whole block (header, transactions, ommers,
/// withdrawals): what geth answers as `size`.
pub fn block_size(
    header: &SealedHeader,
    transactions: &[RecoveredTx],
    extras: &BlockExtras,
) -> usize {
    model::block_size(header.inner(), transactions, extras)
}

fn tx_info(header: &SealedHeader, hash: B256, index: u64) -> TransactionInfo {
    TransactionInfo {
        hash: Some(hash),
        index: Some(index),
        block_hash: Some(header.hash()),
        block_number: Some(header.number),
        base_fee: header.base_fee_per_gas,
        block_timestamp: Some(header.timestamp),
    }
}

/// A transaction with its block context.
pub fn transaction_rpc(tx: TxWithMeta) -> Transaction {
    let TxWithMeta { tx, meta } = tx;
    let info = TransactionInfo {
        hash: Some(meta.tx_hash),
        index: Some(meta.index),
        block_hash: Some(meta.block_hash),
        block_number: Some(meta.block_number),
        base_fee: meta.base_fee,
        block_timestamp: Some(meta.timestamp),
    };
    Transaction::from_transaction(tx, info)
}

/// A receipt with its block context and its logs.
pub fn receipt_rpc(r: &StoredReceipt) -> TransactionReceipt {
    let mut i = 0usize;
    let inner: ReceiptEnvelope<Log> = r.receipt.clone().map_logs(|log| {
        let rpc = r.rpc_log(i, log);
        i += 1;
        rpc
    });
    TransactionReceipt {
        inner,
        transaction_hash: r.tx_hash,
        transaction_index: Some(r.tx_index),
        block_hash: Some(r.block_hash),
        block_number: Some(r.block_number),
        gas_used: r.gas_used,
        effective_gas_price: r.effective_gas_price,
        blob_gas_used: r.blob_gas_used,
        blob_gas_price: r.blob_gas_price,
        from: r.from,
        to: r.to,
        contract_address: r.contract_address,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloy::{
        consensus::{Block as ConsensusBlock, BlockBody, TxEnvelope},
        rlp::Encodable,
    };
    use coldchain::testing::{ChainShape, test_chain_with};

    #[test]
    fn size_is_the_rlp_length_of_the_block() {
        let shape = ChainShape { max_txs: 8, ..Default::default() };
        let blocks = test_chain_with(1, 20, B256::ZERO, 3, shape);
        assert!(blocks.iter().any(|b| !b.extras.ommers.is_empty()), "a block with ommers");
        for block in blocks {
            let txs: Vec<TxEnvelope> =
                block.transactions.iter().map(|t| t.inner().clone()).collect();
            for withdrawals in [None, block.extras.withdrawals.clone()] {
                let mut header = block.header.inner().clone();
                if withdrawals.is_none() {
                    header.withdrawals_root = None;
                    header.blob_gas_used = None;
                    header.excess_blob_gas = None;
                    header.parent_beacon_block_root = None;
                }
                let sealed = alloy::primitives::Sealed::new(header.clone());
                let extras = BlockExtras {
                    ommers: block.extras.ommers.clone(),
                    withdrawals: withdrawals.clone(),
                };
                let body = BlockBody {
                    transactions: txs.clone(),
                    ommers: extras.ommers.clone(),
                    withdrawals,
                };
                let expected = ConsensusBlock::new(header, body).length();
                assert_eq!(block_size(&sealed, &block.transactions, &extras), expected);
            }
        }
    }
}
