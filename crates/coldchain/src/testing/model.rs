//! A deliberately naive reference model of a backend: a `Vec<BlockData>` and
//! linear scans for everything.
//!
//! It has the read and write semantics of the [backend
//! contract](crate::backend), written as plainly as possible so that it is
//! obviously right; the property test ([`crate::testing::prop`]) checks real
//! backends against it. Nothing here is indexed or cached, and the receipts
//! are recomputed on every read. Log queries resolve their range here
//! independently of [`LogFilter::resolve_range`] and match logs with their own
//! loop, so the model also cross-checks [`crate::filter`].

use crate::{
    BlockData, ColdError, ColdResult, HeaderSpec, LogFilter, ReceiptSpec, RpcLog, SealedHeader,
    StoredReceipt, TxSpec, TxWithMeta,
    backend::{DrainedBlock, StreamParams},
    filter::{BlockSelector, MAX_TOPICS},
    model::RecoveredTx,
};
use alloy::{
    eips::BlockNumHash,
    primitives::{BlockNumber, Log},
};

/// The reference model: the stored blocks, in order, nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferenceModel {
    blocks: Vec<BlockData>,
}

impl ReferenceModel {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored blocks, lowest first.
    pub fn blocks(&self) -> &[BlockData] {
        &self.blocks
    }

    /// The stored block `spec` names, if any.
    pub fn block(&self, spec: HeaderSpec) -> Option<&BlockData> {
        self.blocks.iter().find(|b| match spec {
            HeaderSpec::Number(n) => b.number() == n,
            HeaderSpec::Hash(h) => b.hash() == h,
        })
    }

    /// The highest stored block.
    pub fn tip(&self) -> Option<BlockNumHash> {
        self.blocks.last().map(BlockData::num_hash)
    }

    /// A header by number or hash.
    pub fn header(&self, spec: HeaderSpec) -> Option<SealedHeader> {
        self.block(spec).map(|b| b.header.clone())
    }

    /// The block and index a transaction specifier points at.
    fn locate(&self, spec: TxSpec) -> Option<(&BlockData, usize)> {
        match spec {
            TxSpec::Hash(hash) => {
                for block in &self.blocks {
                    for (i, tx) in block.transactions.iter().enumerate() {
                        if *tx.inner().tx_hash() == hash {
                            return Some((block, i));
                        }
                    }
                }
                None
            }
            TxSpec::BlockNumberIndex(n, i) => self.at(HeaderSpec::Number(n), i),
            TxSpec::BlockHashIndex(h, i) => self.at(HeaderSpec::Hash(h), i),
        }
    }

    fn at(&self, block: HeaderSpec, index: u64) -> Option<(&BlockData, usize)> {
        let block = self.block(block)?;
        let index = usize::try_from(index).ok()?;
        (index < block.transactions.len()).then_some((block, index))
    }

    /// A transaction with its confirmation metadata.
    pub fn transaction(&self, spec: TxSpec) -> Option<TxWithMeta> {
        let (block, i) = self.locate(spec)?;
        Some(TxWithMeta { tx: block.transactions[i].clone(), meta: block.tx_meta(i)? })
    }

    /// All transactions of a block.
    pub fn block_transactions(&self, spec: HeaderSpec) -> Option<Vec<RecoveredTx>> {
        self.block(spec).map(|b| b.transactions.clone())
    }

    /// A block's ommers and withdrawals.
    pub fn block_extras(&self, spec: HeaderSpec) -> Option<crate::BlockExtras> {
        self.block(spec).map(|b| b.extras.clone())
    }

    /// A receipt with its context.
    pub fn receipt(&self, spec: ReceiptSpec) -> Option<StoredReceipt> {
        let spec = match spec {
            ReceiptSpec::TxHash(h) => TxSpec::Hash(h),
            ReceiptSpec::BlockNumberIndex(n, i) => TxSpec::BlockNumberIndex(n, i),
            ReceiptSpec::BlockHashIndex(h, i) => TxSpec::BlockHashIndex(h, i),
        };
        let (block, i) = self.locate(spec)?;
        block.stored_receipts().into_iter().nth(i)
    }

    /// All receipts of a block.
    pub fn block_receipts(&self, spec: HeaderSpec) -> Option<Vec<StoredReceipt>> {
        self.block(spec).map(BlockData::stored_receipts)
    }

    /// The blocks a filter covers, or the filter's error. Written from the
    /// rules in [`crate::filter`], not with [`LogFilter::resolve_range`].
    pub fn filter_blocks(&self, filter: &LogFilter) -> ColdResult<Vec<&BlockData>> {
        if filter.topics.len() > MAX_TOPICS {
            return Err(ColdError::InvalidFilter("too many topic positions".into()));
        }
        match filter.blocks {
            BlockSelector::Hash(h) => {
                let block =
                    self.block(HeaderSpec::Hash(h)).ok_or(ColdError::UnknownBlockHash(h))?;
                Ok(vec![block])
            }
            BlockSelector::Range { from, to } => {
                if let (Some(f), Some(t)) = (from, to)
                    && f > t
                {
                    return Err(ColdError::InvalidFilter("from above to".into()));
                }
                let Some(tip) = self.tip().map(|t| t.number) else { return Ok(vec![]) };
                let from = from.unwrap_or(tip);
                if from > tip {
                    return Ok(vec![]);
                }
                let to = to.unwrap_or(tip);
                if from > to {
                    return Err(ColdError::InvalidFilter("from (the tip) above to".into()));
                }
                Ok(self.blocks.iter().filter(|b| from <= b.number() && b.number() <= to).collect())
            }
        }
    }

    /// Whether a log matches the address and topic conditions; a plain
    /// re-statement of the rules, independent of [`LogFilter::matches`].
    pub fn log_matches(filter: &LogFilter, log: &Log) -> bool {
        let address_ok = filter.addresses.is_empty() || filter.addresses.contains(&log.address);
        let topics_ok = filter.topics.iter().enumerate().all(|(pos, want)| match want {
            None => true,
            Some(set) if set.is_empty() => true,
            Some(set) => log.topics().get(pos).is_some_and(|t| set.contains(t)),
        });
        address_ok && topics_ok
    }

    /// Every log a filter matches, in order, without a limit.
    pub fn all_logs(&self, filter: &LogFilter) -> ColdResult<Vec<RpcLog>> {
        let mut out = Vec::new();
        for block in self.filter_blocks(filter)? {
            for receipt in block.stored_receipts() {
                for log in receipt.rpc_logs() {
                    if Self::log_matches(filter, &log.inner) {
                        out.push(log);
                    }
                }
            }
        }
        Ok(out)
    }

    /// `eth_getLogs`: every match, or `TooManyLogs` by the block-boundary
    /// rule of [`crate::filter`]: the first matching block is always whole;
    /// the first later block that brings the total above `max_logs` fails
    /// the query, with `fits_to` the block before it.
    pub fn get_logs(&self, filter: &LogFilter, max_logs: usize) -> ColdResult<Vec<RpcLog>> {
        let logs = self.all_logs(filter)?;
        let first = logs.first().and_then(|l| l.block_number);
        for (i, log) in logs.iter().enumerate() {
            // `i` matches come before this one.
            if i >= max_logs && log.block_number != first {
                let block = log.block_number.unwrap_or_default();
                return Err(ColdError::TooManyLogs { limit: max_logs, fits_to: Some(block - 1) });
            }
        }
        Ok(logs)
    }

    /// What a log stream over `range` sends: the matching logs of the stored
    /// blocks in `range`, cut at `max_logs` with one `TooManyLogs`. When the
    /// anchor is not canonical the real stream ends with one
    /// `ReorgDetected`, possibly after some logs; the model then returns just
    /// that error.
    pub fn stream_logs(
        &self,
        filter: &LogFilter,
        range: std::ops::RangeInclusive<BlockNumber>,
        anchor: BlockNumHash,
        params: StreamParams,
    ) -> Vec<ColdResult<RpcLog>> {
        if self.header(HeaderSpec::Number(anchor.number)).map(|h| h.hash()) != Some(anchor.hash) {
            return vec![Err(ColdError::ReorgDetected { number: anchor.number })];
        }
        let mut out = Vec::new();
        for block in self.blocks.iter().filter(|b| range.contains(&b.number())) {
            for receipt in block.stored_receipts() {
                for log in receipt.rpc_logs() {
                    if !Self::log_matches(filter, &log.inner) {
                        continue;
                    }
                    if out.len() == params.max_logs {
                        out.push(Err(ColdError::TooManyLogs {
                            limit: params.max_logs,
                            fits_to: None,
                        }));
                        return out;
                    }
                    out.push(Ok(log));
                }
            }
        }
        out
    }

    /// Appends blocks, all or nothing: each block must be valid, and extend
    /// the previous one (or start an empty store at any number).
    pub fn append_blocks(&mut self, blocks: Vec<BlockData>) -> ColdResult<()> {
        let mut prev = self.tip();
        for block in &blocks {
            block.validate()?;
            if let Some(prev) = prev {
                if block.number() != prev.number + 1 {
                    return Err(ColdError::NotContiguous {
                        expected: prev.number + 1,
                        got: block.number(),
                    });
                }
                if block.header.parent_hash != prev.hash {
                    return Err(ColdError::ParentMismatch {
                        number: block.number(),
                        expected: prev.hash,
                        got: block.header.parent_hash,
                    });
                }
            }
            prev = Some(block.num_hash());
        }
        self.blocks.extend(blocks);
        Ok(())
    }

    /// Removes every block above `number`.
    pub fn truncate_above(&mut self, number: BlockNumber) {
        self.blocks.retain(|b| b.number() <= number);
    }

    /// Removes the blocks above `number` and returns them with receipts.
    pub fn drain_above(&mut self, number: BlockNumber) -> Vec<DrainedBlock> {
        let drained = self
            .blocks
            .iter()
            .filter(|b| b.number() > number)
            .map(|b| DrainedBlock { header: b.header.clone(), receipts: b.stored_receipts() })
            .collect();
        self.truncate_above(number);
        drained
    }
}
