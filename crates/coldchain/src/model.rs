//! The data model: what a block is, what a stored receipt carries, and how
//! reads address data.
//!
//! Everything is built on alloy's consensus types. A [`BlockData`] is the unit
//! of append; [`StoredReceipt`] is a receipt with the context RPC needs
//! (computed once, at append, by [`BlockData::stored_receipts`]).

use crate::{ColdError, ColdResult};
use alloy::{
    consensus::{Header, ReceiptEnvelope, Transaction, TxEnvelope, transaction::Recovered},
    eips::{
        BlockNumHash,
        eip4895::{Withdrawal, Withdrawals},
        eip7840::BlobParams,
    },
    primitives::{Address, B256, BlockNumber, Sealed, TxHash, TxKind},
    rlp::{Encodable, Header as RlpHeader},
};

pub use alloy::consensus::transaction::TransactionMeta;

/// A header with its hash.
pub type SealedHeader = Sealed<Header>;

/// A transaction with its recovered sender.
pub type RecoveredTx = Recovered<TxEnvelope>;

/// A receipt as consensus defines it (logs included, bloom included).
pub type Receipt = ReceiptEnvelope;

/// One block as coldchain stores it: the unit of append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockData {
    /// The sealed header.
    pub header: SealedHeader,
    /// Transactions with their senders, in block order.
    pub transactions: Vec<RecoveredTx>,
    /// One receipt per transaction, in block order.
    pub receipts: Vec<Receipt>,
    /// Ommer (uncle) headers and withdrawals: the rest of the body.
    pub extras: BlockExtras,
}

/// What a block body carries besides its transactions: ommer (uncle) headers
/// and, since Shanghai, withdrawals (EIP-4895).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockExtras {
    /// Ommer headers, in body order (pre-merge blocks only; empty otherwise).
    pub ommers: Vec<Header>,
    /// Withdrawals: `Some` exactly when the header has a `withdrawalsRoot`.
    pub withdrawals: Option<Withdrawals>,
}

impl BlockExtras {
    /// Extras with no ommers and no withdrawals list (a pre-Shanghai block
    /// without uncles).
    pub const fn none() -> Self {
        Self { ommers: Vec::new(), withdrawals: None }
    }

    /// Extras with no ommers and the given withdrawals.
    pub fn withdrawals(withdrawals: Vec<Withdrawal>) -> Self {
        Self { ommers: Vec::new(), withdrawals: Some(Withdrawals::new(withdrawals)) }
    }

    /// Extras that fit `header` when the body holds nothing but transactions:
    /// an empty withdrawals list where the header commits to one.
    pub fn empty_for(header: &Header) -> Self {
        Self {
            ommers: Vec::new(),
            withdrawals: header.withdrawals_root.map(|_| Withdrawals::default()),
        }
    }

    /// The hashes of the ommer headers, in order (the `uncles` of a block).
    pub fn ommer_hashes(&self) -> Vec<B256> {
        self.ommers.iter().map(Header::hash_slow).collect()
    }
}

/// The RLP length of a whole block (header, transactions, ommers and, when
/// present, withdrawals), which is what geth answers as a block's `size`.
pub fn block_size(header: &Header, transactions: &[RecoveredTx], extras: &BlockExtras) -> usize {
    let list =
        |payload_length: usize| RlpHeader { list: true, payload_length }.length() + payload_length;
    let txs: usize = transactions.iter().map(|tx| tx.inner().length()).sum();
    let ommers: usize = extras.ommers.iter().map(Encodable::length).sum();
    let mut payload = header.length() + list(txs) + list(ommers);
    if let Some(w) = &extras.withdrawals {
        payload += w.length();
    }
    list(payload)
}

impl BlockData {
    /// Builds a block without ommers and with an empty withdrawals list when
    /// the header commits to one, checking that receipts and transactions
    /// pair up.
    pub fn new(
        header: SealedHeader,
        transactions: Vec<RecoveredTx>,
        receipts: Vec<Receipt>,
    ) -> ColdResult<Self> {
        let extras = BlockExtras::empty_for(header.inner());
        Self::with_extras(header, transactions, receipts, extras)
    }

    /// Builds a block with its ommers and withdrawals, checking that receipts
    /// and transactions pair up.
    pub fn with_extras(
        header: SealedHeader,
        transactions: Vec<RecoveredTx>,
        receipts: Vec<Receipt>,
        extras: BlockExtras,
    ) -> ColdResult<Self> {
        let block = Self { header, transactions, receipts, extras };
        block.validate()?;
        Ok(block)
    }

    /// The RLP length of the whole block, see [`block_size`].
    pub fn size(&self) -> usize {
        block_size(self.header.inner(), &self.transactions, &self.extras)
    }

    /// The block number.
    pub fn number(&self) -> BlockNumber {
        self.header.number
    }

    /// The block hash.
    pub fn hash(&self) -> B256 {
        self.header.hash()
    }

    /// Number and hash.
    pub fn num_hash(&self) -> BlockNumHash {
        BlockNumHash::new(self.number(), self.hash())
    }

    /// Checks the block's internal shape: one receipt per transaction,
    /// non-decreasing cumulative gas, and a withdrawals list exactly when the
    /// header has a `withdrawalsRoot`.
    pub fn validate(&self) -> ColdResult<()> {
        let number = self.number();
        match (self.header.withdrawals_root.is_some(), self.extras.withdrawals.is_some()) {
            (true, false) => {
                return Err(ColdError::InvalidBlock {
                    number,
                    reason: "the header has a withdrawals root but the block no withdrawals list"
                        .into(),
                });
            }
            (false, true) => {
                return Err(ColdError::InvalidBlock {
                    number,
                    reason: "the block has a withdrawals list but the header no withdrawals root"
                        .into(),
                });
            }
            _ => {}
        }
        if self.transactions.len() != self.receipts.len() {
            return Err(ColdError::InvalidBlock {
                number,
                reason: format!(
                    "{} transactions but {} receipts",
                    self.transactions.len(),
                    self.receipts.len()
                ),
            });
        }
        let mut prev = 0u64;
        for (i, r) in self.receipts.iter().enumerate() {
            let cum = r.cumulative_gas_used();
            if cum < prev {
                return Err(ColdError::InvalidBlock {
                    number,
                    reason: format!("receipt {i} has cumulative gas {cum} below {prev}"),
                });
            }
            prev = cum;
        }
        Ok(())
    }

    /// Confirmation metadata of transaction `index`.
    pub fn tx_meta(&self, index: usize) -> Option<TransactionMeta> {
        let tx = self.transactions.get(index)?;
        Some(tx_meta(&self.header, tx.inner().tx_hash(), index as u64))
    }

    /// The receipts with everything RPC needs, computed from the block.
    pub fn stored_receipts(&self) -> Vec<StoredReceipt> {
        let header = &self.header;
        let blob_gas_price = blob_gas_price(header);
        let mut prev_cumulative = 0u64;
        let mut next_log_index = 0u64;
        let mut out = Vec::with_capacity(self.receipts.len());
        for (index, (tx, receipt)) in self.transactions.iter().zip(&self.receipts).enumerate() {
            let cumulative = receipt.cumulative_gas_used();
            let envelope = tx.inner();
            let from = tx.signer();
            let contract_address = match envelope.kind() {
                TxKind::Create => Some(from.create(envelope.nonce())),
                TxKind::Call(_) => None,
            };
            let blob_gas_used = envelope.blob_gas_used();
            out.push(StoredReceipt {
                receipt: receipt.clone(),
                tx_hash: *envelope.tx_hash(),
                block_number: header.number,
                block_hash: header.hash(),
                block_timestamp: header.timestamp,
                tx_index: index as u64,
                gas_used: cumulative.saturating_sub(prev_cumulative),
                effective_gas_price: envelope.effective_gas_price(header.base_fee_per_gas),
                first_log_index: next_log_index,
                contract_address,
                from,
                to: envelope.to(),
                blob_gas_used,
                blob_gas_price: blob_gas_used.and(blob_gas_price),
            });
            prev_cumulative = cumulative;
            next_log_index += receipt.logs().len() as u64;
        }
        out
    }
}

/// Confirmation metadata for a transaction at `index` in the block of `header`.
pub fn tx_meta(header: &SealedHeader, tx_hash: &TxHash, index: u64) -> TransactionMeta {
    TransactionMeta {
        tx_hash: *tx_hash,
        index,
        block_hash: header.hash(),
        block_number: header.number,
        base_fee: header.base_fee_per_gas,
        excess_blob_gas: header.excess_blob_gas,
        timestamp: header.timestamp,
    }
}

/// The blob base fee of a block, from its excess blob gas, with the blob
/// parameters of [`blob_params`]. `None` before Cancun.
pub fn blob_gas_price(header: &Header) -> Option<u128> {
    let excess = header.excess_blob_gas?;
    Some(blob_params(header.timestamp).calc_blob_fee(excess))
}

/// The blob parameters (target, maximum, update fraction, EIP-7918 base
/// cost) in force at `timestamp`, with Ethereum mainnet's schedule (Cancun,
/// Prague, Osaka, BPO1, BPO2 by activation time). coldchain does not know a
/// chain's fork schedule, so every chain is read with mainnet's; callers use
/// this only for headers that carry blob fields (Cancun or later).
pub fn blob_params(timestamp: u64) -> BlobParams {
    // Mainnet activation timestamps.
    match timestamp {
        t if t >= 1_767_747_671 => BlobParams::bpo2(),
        t if t >= 1_765_290_071 => BlobParams::bpo1(),
        t if t >= 1_764_798_551 => BlobParams::osaka(),
        t if t >= 1_746_612_311 => BlobParams::prague(),
        _ => BlobParams::cancun(),
    }
}

/// A receipt with the context RPC needs, so that no second lookup is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReceipt {
    /// The consensus receipt (status, cumulative gas, logs, bloom).
    pub receipt: Receipt,
    /// Hash of the transaction.
    pub tx_hash: TxHash,
    /// Number of the block.
    pub block_number: BlockNumber,
    /// Hash of the block.
    pub block_hash: B256,
    /// Timestamp of the block (logs carry it as `blockTimestamp`).
    pub block_timestamp: u64,
    /// Index of the transaction in the block.
    pub tx_index: u64,
    /// Gas used by this transaction alone.
    pub gas_used: u64,
    /// Price per gas actually paid.
    pub effective_gas_price: u128,
    /// Block-wide index of this receipt's first log.
    pub first_log_index: u64,
    /// Address of the created contract, for a creation.
    pub contract_address: Option<Address>,
    /// The sender.
    pub from: Address,
    /// The recipient; `None` for a creation.
    pub to: Option<Address>,
    /// Blob gas used (blob transactions).
    pub blob_gas_used: Option<u64>,
    /// Blob gas price paid (blob transactions).
    pub blob_gas_price: Option<u128>,
}

impl StoredReceipt {
    /// The receipt's logs as RPC logs, with block, transaction and index
    /// context filled in and `removed = false`.
    pub fn rpc_logs(&self) -> impl Iterator<Item = RpcLog> + '_ {
        self.receipt.logs().iter().enumerate().map(move |(i, log)| self.rpc_log(i, log.clone()))
    }

    /// The `i`-th log of this receipt as an RPC log.
    pub fn rpc_log(&self, i: usize, inner: alloy::primitives::Log) -> RpcLog {
        RpcLog {
            inner,
            block_hash: Some(self.block_hash),
            block_number: Some(self.block_number),
            block_timestamp: Some(self.block_timestamp),
            transaction_hash: Some(self.tx_hash),
            transaction_index: Some(self.tx_index),
            log_index: Some(self.first_log_index + i as u64),
            removed: false,
        }
    }
}

/// A log as `eth_getLogs` returns it.
pub type RpcLog = alloy::rpc::types::Log;

/// A transaction with its confirmation metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxWithMeta {
    /// The transaction and its sender.
    pub tx: RecoveredTx,
    /// Where it was confirmed.
    pub meta: TransactionMeta,
}

/// Addresses a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderSpec {
    /// By block number.
    Number(BlockNumber),
    /// By block hash.
    Hash(B256),
}

/// Addresses a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxSpec {
    /// By transaction hash.
    Hash(TxHash),
    /// By block number and index in the block.
    BlockNumberIndex(BlockNumber, u64),
    /// By block hash and index in the block.
    BlockHashIndex(B256, u64),
}

/// Addresses a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptSpec {
    /// By transaction hash.
    TxHash(TxHash),
    /// By block number and index in the block.
    BlockNumberIndex(BlockNumber, u64),
    /// By block hash and index in the block.
    BlockHashIndex(B256, u64),
}

impl From<BlockNumber> for HeaderSpec {
    fn from(n: BlockNumber) -> Self {
        Self::Number(n)
    }
}

impl From<B256> for HeaderSpec {
    fn from(h: B256) -> Self {
        Self::Hash(h)
    }
}
