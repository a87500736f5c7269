//! Store data to JSON-RPC objects, built with alloy's RPC types so that
//! names, hex quantities, nulls and per-type fields are those of real nodes.
//!
//! Blocks need care where coldchain does not keep what a node has:
//! - `withdrawals`: coldchain does not store withdrawals. A header whose
//!   `withdrawalsRoot` is the empty root has none, so the block answers
//!   `"withdrawals": []`, as a node does. With a non-empty root the list is
//!   unknown and the field is left out rather than answered wrongly.
//! - `uncles`: coldchain stores no ommer headers. With the empty ommers hash
//!   (every post-merge block) the answer is `[]`; otherwise the field is left
//!   out.
//! - `size`: the length of the block's RLP (header, transactions, ommers,
//!   withdrawals), computed exactly when the body is fully known (no ommers,
//!   no or empty withdrawals), left out otherwise.
//! - `totalDifficulty`: left out (geth dropped it after the merge; it needs
//!   the whole chain's history).

use alloy::{
    consensus::{EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH, ReceiptEnvelope},
    eips::eip4895::Withdrawals,
    primitives::{B256, U256},
    rlp::{Encodable, Header as RlpHeader},
    rpc::types::{
        Block, BlockTransactions, Header, Log, Transaction, TransactionInfo, TransactionReceipt,
    },
};
use coldchain::{RecoveredTx, SealedHeader, StoredReceipt, TxWithMeta};
use serde_json::Value;

/// A full block as `eth_getBlockBy*` answers it (a JSON object).
pub fn block_json(
    header: &SealedHeader,
    transactions: Vec<RecoveredTx>,
    full: bool,
) -> Result<Value, serde_json::Error> {
    let inner = header.inner();
    let body_known = inner.ommers_hash == EMPTY_OMMER_ROOT_HASH
        && inner.withdrawals_root.is_none_or(|root| root == EMPTY_ROOT_HASH);
    let withdrawals = match inner.withdrawals_root {
        Some(root) if root == EMPTY_ROOT_HASH => Some(Withdrawals::default()),
        _ => None,
    };
    let size = body_known.then(|| U256::from(block_size(header, &transactions)));
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
        header: Header { hash: header.hash(), inner: inner.clone(), total_difficulty: None, size },
        uncles: Vec::new(),
        transactions: txs,
        withdrawals,
    };
    let mut value = serde_json::to_value(&block)?;
    if inner.ommers_hash != EMPTY_OMMER_ROOT_HASH
        && let Value::Object(map) = &mut value
    {
        map.remove("uncles");
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

/// The RLP length of the block: header, transactions, no ommers, and an
/// empty withdrawals list when the header commits to one.
pub fn block_size(header: &SealedHeader, transactions: &[RecoveredTx]) -> usize {
    let inner = header.inner();
    let txs_payload: usize = transactions.iter().map(|tx| tx.inner().length()).sum();
    let list =
        |payload_length: usize| RlpHeader { list: true, payload_length }.length() + payload_length;
    let mut payload = inner.length() + list(txs_payload) + list(0);
    if inner.withdrawals_root.is_some() {
        payload += list(0);
    }
    list(payload)
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
        for block in test_chain_with(1, 20, B256::ZERO, 3, shape) {
            let txs: Vec<TxEnvelope> =
                block.transactions.iter().map(|t| t.inner().clone()).collect();
            for withdrawals in [None, Some(Withdrawals::default())] {
                let mut header = block.header.inner().clone();
                header.withdrawals_root = withdrawals.as_ref().map(|_| EMPTY_ROOT_HASH);
                let sealed = alloy::primitives::Sealed::new(header.clone());
                let body = BlockBody { transactions: txs.clone(), ommers: vec![], withdrawals };
                let expected = ConsensusBlock::new(header, body).length();
                assert_eq!(block_size(&sealed, &block.transactions), expected);
            }
        }
    }
}
