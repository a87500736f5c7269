//! Conversion of JSON-RPC objects (`eth_getBlockByNumber(n, true)` and the
//! block's receipts) into a [`BlockData`].
//!
//! [`block_from_rpc`] checks that the pieces belong together: the header
//! hash recomputed from the converted header equals the RPC `hash` (so no
//! header field was lost on the way), every transaction and receipt names
//! this block and its own position, each receipt names its transaction's
//! hash, sender and type. It keeps what the node sent otherwise: the sender
//! is the RPC `from` field (no signature recovery), transaction hashes are
//! the RPC `hash` fields and receipt blooms the RPC `logsBloom` fields. Run
//! [`crate::verify::verify_block`] on the result to check those against the
//! data (hashes, roots, blooms).
//!
//! An RPC block names its uncles by hash only: [`block_from_rpc_with_ommers`]
//! takes the uncle headers (from `eth_getUncleByBlockNumberAndIndex`) and
//! checks each against its hash; [`block_from_rpc`] is for blocks without
//! uncles. Withdrawals come with the block (`withdrawals`); a block whose
//! header has a `withdrawalsRoot` but no `withdrawals` list is refused.

use crate::{BlockData, model::BlockExtras};
use alloy::{
    consensus::Header,
    eips::Typed2718,
    primitives::{B256, BlockNumber},
    rpc::types::{Block, BlockTransactions, TransactionReceipt},
};
use std::fmt;

/// Which part of a block a [`ConvertError::Mismatch`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcItem {
    /// An RPC transaction object.
    Transaction,
    /// An RPC receipt object.
    Receipt,
}

impl fmt::Display for RpcItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Transaction => "transaction",
            Self::Receipt => "receipt",
        })
    }
}

/// A context field of an RPC transaction or receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextField {
    /// `blockHash`.
    BlockHash,
    /// `blockNumber`.
    BlockNumber,
    /// `transactionIndex`.
    TransactionIndex,
    /// `transactionHash` of a receipt.
    TransactionHash,
    /// `from` of a receipt.
    From,
    /// `type` of a receipt.
    Type,
}

impl fmt::Display for ContextField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BlockHash => "blockHash",
            Self::BlockNumber => "blockNumber",
            Self::TransactionIndex => "transactionIndex",
            Self::TransactionHash => "transactionHash",
            Self::From => "from",
            Self::Type => "type",
        })
    }
}

/// JSON-RPC objects that do not make a consistent block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The block carries transaction hashes, not transaction objects.
    #[error(
        "block {number}: the RPC block has transaction hashes only; \
         fetch it with full transactions (eth_getBlockByNumber(n, true))"
    )]
    NotFullTransactions {
        /// The block's number.
        number: BlockNumber,
    },
    /// The hash of the converted header differs from the RPC `hash`.
    #[error(
        "block {number}: the converted header hashes to {computed} but the RPC says {rpc}; \
         the node returned a header field this build does not know, or corrupt data"
    )]
    HeaderHash {
        /// The block's number.
        number: BlockNumber,
        /// The RPC `hash` field.
        rpc: B256,
        /// keccak256 of the converted header's RLP.
        computed: B256,
    },
    /// The block names uncles but their headers were not supplied, or do not
    /// hash to the names.
    #[error(
        "block {number}: uncle {index} should hash to {expected} but {got}; \
         fetch the uncle headers with eth_getUncleByBlockNumberAndIndex"
    )]
    Ommer {
        /// The block's number.
        number: BlockNumber,
        /// Position in the block's `uncles`.
        index: usize,
        /// The hash the block names (or "nothing" when there are more
        /// headers than names).
        expected: String,
        /// What was supplied ("none was supplied" or "the header supplied
        /// hashes to ...").
        got: String,
    },
    /// The header commits to withdrawals but the block carries none, or the
    /// other way round.
    #[error(
        "block {number}: the header {header} a withdrawalsRoot but the block {body} a \
         withdrawals list; fetch the block from a node that serves withdrawals"
    )]
    Withdrawals {
        /// The block's number.
        number: BlockNumber,
        /// "has" or "has no".
        header: &'static str,
        /// "has" or "has no".
        body: &'static str,
    },
    /// Receipts and transactions differ in count.
    #[error(
        "block {number}: {transactions} transactions but {receipts} receipts; \
         fetch the block's receipts again"
    )]
    ReceiptCount {
        /// The block's number.
        number: BlockNumber,
        /// Transactions in the block.
        transactions: usize,
        /// Receipts supplied.
        receipts: usize,
    },
    /// A transaction or receipt does not belong at its position in this block.
    #[error(
        "block {number}: {item} {index} has {field} {got}, expected {expected}; \
         the objects belong to another block or are out of order"
    )]
    Mismatch {
        /// The block's number.
        number: BlockNumber,
        /// Transaction or receipt.
        item: RpcItem,
        /// Position in the block's list.
        index: usize,
        /// The disagreeing field.
        field: ContextField,
        /// What this position in this block requires.
        expected: String,
        /// What the object says.
        got: String,
    },
}

/// Converts an RPC block with full transactions and its receipts (in block
/// order) into a [`BlockData`]; see the [module docs](self) for what is
/// checked.
pub fn block_from_rpc(
    block: Block,
    receipts: Vec<TransactionReceipt>,
) -> Result<BlockData, ConvertError> {
    block_from_rpc_with_ommers(block, Vec::new(), receipts)
}

/// [`block_from_rpc`] for a block with uncles: `ommers` are the uncle
/// headers in the order of the block's `uncles`, each checked against its
/// hash there.
pub fn block_from_rpc_with_ommers(
    block: Block,
    ommers: Vec<Header>,
    receipts: Vec<TransactionReceipt>,
) -> Result<BlockData, ConvertError> {
    let number = block.header.inner.number;
    let rpc_hash = block.header.hash;
    let header = block.header.inner;
    let computed = header.hash_slow();
    if computed != rpc_hash {
        return Err(ConvertError::HeaderHash { number, rpc: rpc_hash, computed });
    }
    for index in 0..block.uncles.len().max(ommers.len()) {
        let expected = block.uncles.get(index);
        let got = ommers.get(index).map(Header::hash_slow);
        if expected.is_none() || got.as_ref() != expected {
            return Err(ConvertError::Ommer {
                number,
                index,
                expected: expected.map_or_else(|| "nothing".into(), |h| h.to_string()),
                got: got.map_or_else(
                    || "none was supplied".into(),
                    |h| format!("the header supplied hashes to {h}"),
                ),
            });
        }
    }
    let has = |b: bool| if b { "has" } else { "has no" };
    if header.withdrawals_root.is_some() != block.withdrawals.is_some() {
        return Err(ConvertError::Withdrawals {
            number,
            header: has(header.withdrawals_root.is_some()),
            body: has(block.withdrawals.is_some()),
        });
    }
    let extras = BlockExtras { ommers, withdrawals: block.withdrawals };
    let BlockTransactions::Full(txs) = block.transactions else {
        return Err(ConvertError::NotFullTransactions { number });
    };
    if txs.len() != receipts.len() {
        return Err(ConvertError::ReceiptCount {
            number,
            transactions: txs.len(),
            receipts: receipts.len(),
        });
    }

    let mismatch = |item, index, field, expected: &dyn fmt::Display, got: &dyn fmt::Display| {
        ConvertError::Mismatch {
            number,
            item,
            index,
            field,
            expected: expected.to_string(),
            got: got.to_string(),
        }
    };
    // Checks the optional block context an RPC object carries.
    let check_context =
        |item, index: usize, hash: Option<B256>, num: Option<u64>, idx: Option<u64>| {
            if let Some(h) = hash.filter(|h| *h != rpc_hash) {
                return Err(mismatch(item, index, ContextField::BlockHash, &rpc_hash, &h));
            }
            if let Some(n) = num.filter(|n| *n != number) {
                return Err(mismatch(item, index, ContextField::BlockNumber, &number, &n));
            }
            if let Some(i) = idx.filter(|i| *i != index as u64) {
                return Err(mismatch(item, index, ContextField::TransactionIndex, &index, &i));
            }
            Ok(())
        };

    let mut transactions = Vec::with_capacity(txs.len());
    let mut out_receipts = Vec::with_capacity(receipts.len());
    for (index, (tx, receipt)) in txs.into_iter().zip(receipts).enumerate() {
        check_context(
            RpcItem::Transaction,
            index,
            tx.block_hash,
            tx.block_number,
            tx.transaction_index,
        )?;
        check_context(
            RpcItem::Receipt,
            index,
            receipt.block_hash,
            receipt.block_number,
            receipt.transaction_index,
        )?;
        let recovered = tx.inner;
        let tx_hash = *recovered.inner().tx_hash();
        if receipt.transaction_hash != tx_hash {
            return Err(mismatch(
                RpcItem::Receipt,
                index,
                ContextField::TransactionHash,
                &tx_hash,
                &receipt.transaction_hash,
            ));
        }
        if receipt.from != recovered.signer() {
            return Err(mismatch(
                RpcItem::Receipt,
                index,
                ContextField::From,
                &recovered.signer(),
                &receipt.from,
            ));
        }
        let receipt = receipt.into_primitives_receipt().inner;
        if receipt.tx_type() != recovered.inner().tx_type() {
            return Err(mismatch(
                RpcItem::Receipt,
                index,
                ContextField::Type,
                &recovered.inner().ty(),
                &receipt.tx_type().ty(),
            ));
        }
        transactions.push(recovered);
        out_receipts.push(receipt);
    }
    Ok(BlockData {
        header: alloy::primitives::Sealed::new_unchecked(header, rpc_hash),
        transactions,
        receipts: out_receipts,
        extras,
    })
}
