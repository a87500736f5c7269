//! Integrity checks of a [`BlockData`] against its own header.
//!
//! [`verify_block`] recomputes every commitment a block carries and compares
//! it with what the block claims:
//!
//! | check | claimed | recomputed |
//! |---|---|---|
//! | counts | one receipt per transaction | `transactions.len()` vs `receipts.len()` |
//! | header hash | the sealed hash | `keccak256(rlp(header))` |
//! | transaction hashes | each `Signed` hash | `keccak256(eip2718(tx))` |
//! | transactions root | `header.transactions_root` | ordered trie of the EIP-2718 encodings |
//! | receipt blooms | each receipt's bloom | bloom of that receipt's logs |
//! | receipts root | `header.receipts_root` | ordered trie of the EIP-2718 receipts |
//! | logs bloom | `header.logs_bloom` | OR of the receipt blooms |
//! | gas used | `header.gas_used` | cumulative gas of the last receipt |
//! | ommers hash | `header.ommers_hash` | `keccak256(rlp(ommer headers))` |
//! | withdrawals root | `header.withdrawals_root` | ordered trie of the RLP withdrawals (a list exactly when the header has a root) |
//!
//! Checks run in that order and the first mismatch is returned, so a change
//! to a receipt's logs that left its bloom alone is reported as
//! [`VerifyField::ReceiptBloom`], and one that changed only log data (which
//! blooms do not cover) as [`VerifyField::ReceiptsRoot`].
//!
//! Senders are not checked: recovering them costs one signature recovery per
//! transaction; the importer does that where the source does not supply them.

use crate::BlockData;
use alloy::{
    consensus::proofs::{
        calculate_ommers_root, calculate_receipt_root, calculate_transaction_root,
        calculate_withdrawals_root,
    },
    eips::Encodable2718,
    primitives::{B256, BlockNumber, Bloom, keccak256},
};
use std::fmt;

/// Which commitment of a block did not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifyField {
    /// The number of receipts differs from the number of transactions.
    ReceiptCount,
    /// The sealed header hash is not the keccak of the header's RLP.
    HeaderHash,
    /// A transaction's hash is not the keccak of its EIP-2718 encoding.
    TxHash {
        /// Index of the transaction in the block.
        index: usize,
    },
    /// The header's transactions root.
    TransactionsRoot,
    /// A receipt's bloom is not the bloom of its logs.
    ReceiptBloom {
        /// Index of the receipt in the block.
        index: usize,
    },
    /// The header's receipts root.
    ReceiptsRoot,
    /// The header's logs bloom is not the OR of the receipt blooms.
    LogsBloom,
    /// The header's gas used is not the last receipt's cumulative gas.
    GasUsed,
    /// The header's ommers hash is not the hash of the ommer headers.
    OmmersHash,
    /// The header's withdrawals root is not the root of the withdrawals (or
    /// one of the two is missing).
    WithdrawalsRoot,
}

impl fmt::Display for VerifyField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReceiptCount => f.write_str("receipt count"),
            Self::HeaderHash => f.write_str("header hash"),
            Self::TxHash { index } => write!(f, "hash of transaction {index}"),
            Self::TransactionsRoot => f.write_str("transactions root"),
            Self::ReceiptBloom { index } => write!(f, "bloom of receipt {index}"),
            Self::ReceiptsRoot => f.write_str("receipts root"),
            Self::LogsBloom => f.write_str("header logs bloom"),
            Self::GasUsed => f.write_str("header gas used"),
            Self::OmmersHash => f.write_str("ommers hash"),
            Self::WithdrawalsRoot => f.write_str("withdrawals root"),
        }
    }
}

/// A value compared by [`verify_block`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyValue {
    /// A hash or trie root.
    Hash(B256),
    /// A bloom filter (boxed: 256 bytes).
    Bloom(Box<Bloom>),
    /// A count or an amount of gas.
    Number(u64),
    /// Nothing: a withdrawals root or list that is absent.
    Absent,
}

impl fmt::Display for VerifyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hash(h) => write!(f, "{h}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Absent => f.write_str("none"),
            Self::Bloom(b) => {
                // 512 hex digits help nobody in a log line: show the ends and
                // the number of bits set; the full value is in the error.
                let bits: u32 = b.as_slice().iter().map(|x| x.count_ones()).sum();
                let s = b.as_slice();
                write!(
                    f,
                    "bloom 0x{}..{} ({bits} bits set)",
                    hex_bytes(&s[..4]),
                    hex_bytes(&s[s.len() - 4..])
                )
            }
        }
    }
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A block whose data does not match its own commitments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "block {number}: {field} mismatch: the block claims {expected} but its data gives {got}; \
     the block is corrupt or was assembled wrongly: fetch it again from a trusted source"
)]
pub struct VerifyError {
    /// The block's number.
    pub number: BlockNumber,
    /// What did not match.
    pub field: VerifyField,
    /// What the block claims (header field, sealed hash, stored bloom, ...).
    pub expected: VerifyValue,
    /// What its data gives when recomputed.
    pub got: VerifyValue,
}

/// Recomputes the header hash, every transaction hash, the transactions root,
/// every receipt bloom, the receipts root, the header logs bloom, gas used,
/// the ommers hash and the withdrawals root, and checks one receipt per
/// transaction; see the [module docs](self).
pub fn verify_block(block: &BlockData) -> Result<(), VerifyError> {
    let number = block.header.number;
    let header = block.header.inner();
    let fail = |field, expected, got| Err(VerifyError { number, field, expected, got });

    if block.transactions.len() != block.receipts.len() {
        return fail(
            VerifyField::ReceiptCount,
            VerifyValue::Number(block.transactions.len() as u64),
            VerifyValue::Number(block.receipts.len() as u64),
        );
    }

    let hash = header.hash_slow();
    if hash != block.header.hash() {
        return fail(
            VerifyField::HeaderHash,
            VerifyValue::Hash(block.header.hash()),
            VerifyValue::Hash(hash),
        );
    }

    let mut buf = Vec::new();
    for (index, tx) in block.transactions.iter().enumerate() {
        let envelope = tx.inner();
        buf.clear();
        envelope.encode_2718(&mut buf);
        let hash = keccak256(&buf);
        if hash != *envelope.tx_hash() {
            return fail(
                VerifyField::TxHash { index },
                VerifyValue::Hash(*envelope.tx_hash()),
                VerifyValue::Hash(hash),
            );
        }
    }

    let envelopes: Vec<_> = block.transactions.iter().map(|t| t.inner()).collect();
    let root = calculate_transaction_root(&envelopes);
    if root != header.transactions_root {
        return fail(
            VerifyField::TransactionsRoot,
            VerifyValue::Hash(header.transactions_root),
            VerifyValue::Hash(root),
        );
    }

    let mut block_bloom = Bloom::ZERO;
    for (index, receipt) in block.receipts.iter().enumerate() {
        let bloom = crate::bloom::logs_bloom(receipt.logs());
        if bloom != *receipt.logs_bloom() {
            return fail(
                VerifyField::ReceiptBloom { index },
                VerifyValue::Bloom(Box::new(*receipt.logs_bloom())),
                VerifyValue::Bloom(Box::new(bloom)),
            );
        }
        block_bloom.accrue_bloom(&bloom);
    }

    let root = calculate_receipt_root(&block.receipts);
    if root != header.receipts_root {
        return fail(
            VerifyField::ReceiptsRoot,
            VerifyValue::Hash(header.receipts_root),
            VerifyValue::Hash(root),
        );
    }

    if block_bloom != header.logs_bloom {
        return fail(
            VerifyField::LogsBloom,
            VerifyValue::Bloom(Box::new(header.logs_bloom)),
            VerifyValue::Bloom(Box::new(block_bloom)),
        );
    }

    let gas = block.receipts.last().map_or(0, |r| r.cumulative_gas_used());
    if gas != header.gas_used {
        return fail(
            VerifyField::GasUsed,
            VerifyValue::Number(header.gas_used),
            VerifyValue::Number(gas),
        );
    }

    let ommers = calculate_ommers_root(&block.extras.ommers);
    if ommers != header.ommers_hash {
        return fail(
            VerifyField::OmmersHash,
            VerifyValue::Hash(header.ommers_hash),
            VerifyValue::Hash(ommers),
        );
    }

    let withdrawals = block.extras.withdrawals.as_ref().map(|w| calculate_withdrawals_root(w));
    if withdrawals != header.withdrawals_root {
        let value = |h: Option<B256>| h.map_or(VerifyValue::Absent, VerifyValue::Hash);
        return fail(
            VerifyField::WithdrawalsRoot,
            value(header.withdrawals_root),
            value(withdrawals),
        );
    }
    Ok(())
}

#[cfg(all(test, feature = "test-utils"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::{ChainShape, test_chain_with};
    use alloy::primitives::{Bytes, Log, LogData, Sealed};

    fn blocks() -> Vec<BlockData> {
        let shape = ChainShape { max_txs: 8, ..Default::default() };
        test_chain_with(1, 20, B256::ZERO, 7, shape)
    }

    /// A block with at least two transactions and a receipt with a log.
    fn busy_block() -> BlockData {
        blocks()
            .into_iter()
            .find(|b| b.transactions.len() >= 2 && b.receipts.iter().any(|r| !r.logs().is_empty()))
            .expect("a busy block")
    }

    #[test]
    fn synthetic_blocks_verify() {
        for block in blocks() {
            verify_block(&block).unwrap();
        }
    }

    #[test]
    fn header_change_is_header_hash() {
        let mut block = busy_block();
        let (mut header, hash) = block.header.clone().into_parts();
        header.timestamp += 1;
        block.header = Sealed::new_unchecked(header, hash);
        let err = verify_block(&block).unwrap_err();
        assert_eq!(err.field, VerifyField::HeaderHash);
        assert!(err.to_string().contains("header hash"), "{err}");
    }

    #[test]
    fn log_data_change_is_receipts_root() {
        let mut block = busy_block();
        let i = block.receipts.iter().position(|r| !r.logs().is_empty()).unwrap();
        let r = block.receipts[i].as_receipt_with_bloom_mut().unwrap();
        let log = &mut r.receipt.logs[0];
        let mut data = log.data.data.to_vec();
        data.push(1);
        log.data = LogData::new_unchecked(log.data.topics().to_vec(), Bytes::from(data));
        let err = verify_block(&block).unwrap_err();
        assert_eq!(err.field, VerifyField::ReceiptsRoot);
        assert_eq!(err.number, block.number());
    }

    #[test]
    fn extra_log_is_receipt_bloom() {
        let mut block = busy_block();
        let r = block.receipts[1].as_receipt_with_bloom_mut().unwrap();
        r.receipt.logs.push(Log {
            address: alloy::primitives::Address::repeat_byte(0xEE),
            data: LogData::new_unchecked(vec![B256::repeat_byte(0xEE)], Bytes::new()),
        });
        let err = verify_block(&block).unwrap_err();
        assert_eq!(err.field, VerifyField::ReceiptBloom { index: 1 });
        assert!(err.to_string().contains("bits set"), "{err}");
    }

    #[test]
    fn tampered_withdrawal_is_withdrawals_root() {
        let mut block = blocks()
            .into_iter()
            .find(|b| b.extras.withdrawals.as_ref().is_some_and(|w| !w.is_empty()))
            .expect("a block with withdrawals");
        let w = block.extras.withdrawals.as_mut().unwrap();
        w[0].amount += 1;
        let err = verify_block(&block).unwrap_err();
        assert_eq!(err.field, VerifyField::WithdrawalsRoot);
        assert!(err.to_string().contains("withdrawals root"), "{err}");
        // A missing list is refused too, naming the absence.
        block.extras.withdrawals = None;
        let err = verify_block(&block).unwrap_err();
        assert_eq!((err.field, err.got), (VerifyField::WithdrawalsRoot, VerifyValue::Absent));
    }

    #[test]
    fn tampered_or_missing_uncle_is_ommers_hash() {
        let mut block = blocks()
            .into_iter()
            .find(|b| !b.extras.ommers.is_empty())
            .expect("a block with ommers");
        let mut dropped = block.clone();
        dropped.extras.ommers.pop();
        assert_eq!(verify_block(&dropped).unwrap_err().field, VerifyField::OmmersHash);
        block.extras.ommers[0].gas_limit += 1;
        let err = verify_block(&block).unwrap_err();
        assert_eq!(err.field, VerifyField::OmmersHash);
        assert!(err.to_string().contains("ommers hash"), "{err}");
    }

    #[test]
    fn count_mismatch() {
        let mut block = busy_block();
        block.receipts.pop();
        assert_eq!(verify_block(&block).unwrap_err().field, VerifyField::ReceiptCount);
    }

    #[test]
    fn verify_error_is_small_and_converts() {
        // ColdError stays small: VerifyError is boxed inside it.
        assert!(std::mem::size_of::<crate::ColdError>() <= 96);
        let mut block = busy_block();
        block.receipts.pop();
        let err: crate::ColdError = verify_block(&block).unwrap_err().into();
        assert_eq!(err.kind(), "verify");
    }
}
