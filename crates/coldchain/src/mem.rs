//! An in-memory backend with snapshot reads.
//!
//! State is an immutable snapshot (a vector of shared blocks) swapped
//! atomically on each write, so every read works on one consistent view
//! without holding a lock. Hash lookups go through shared indexes that only
//! ever grow; each hit is verified against the reader's snapshot, so an entry
//! left by a truncated block is ignored (and an older snapshot still finds
//! its own blocks).

use crate::{
    BlockData, BlockExtras, ColdError, ColdResult, Deadline, HeaderSpec, LogFilter, ReceiptSpec,
    RpcLog, SealedHeader, StoredReceipt, TxSpec, TxWithMeta,
    backend::{
        ColdBackend, ColdRead, ColdWrite, DrainedBlock, LogEmitter, LogSink, StreamParams,
        check_contiguous,
    },
    filter::{BlockSelector, LogCollector},
    model::{RecoveredTx, tx_meta},
};
use alloy::{
    eips::BlockNumHash,
    primitives::{B256, BlockNumber, TxHash},
};
use parking_lot::{Mutex, RwLock};
use std::{collections::HashMap, ops::RangeInclusive, sync::Arc};

#[derive(Debug)]
struct MemBlock {
    header: SealedHeader,
    transactions: Vec<RecoveredTx>,
    extras: BlockExtras,
    receipts: Vec<StoredReceipt>,
}

/// One consistent view of the store.
#[derive(Debug, Default, Clone)]
struct Snapshot {
    first: BlockNumber,
    blocks: Vec<Arc<MemBlock>>,
}

impl Snapshot {
    fn tip(&self) -> Option<BlockNumHash> {
        self.blocks.last().map(|b| BlockNumHash::new(b.header.number, b.header.hash()))
    }

    fn by_number(&self, n: BlockNumber) -> Option<&Arc<MemBlock>> {
        let i = n.checked_sub(self.first)?;
        self.blocks.get(usize::try_from(i).ok()?)
    }
}

#[derive(Debug, Default)]
struct Shared {
    current: RwLock<Arc<Snapshot>>,
    /// Block hash -> number; verified against the snapshot on use.
    block_hashes: RwLock<HashMap<B256, BlockNumber>>,
    /// Tx hash -> (block number, index); verified against the snapshot.
    tx_hashes: RwLock<HashMap<TxHash, Vec<(BlockNumber, u32)>>>,
    /// The recorded chain id; changed under the write lock.
    chain_id: RwLock<Option<u64>>,
    write: Mutex<()>,
}

/// The in-memory backend. Clones share one store.
#[derive(Debug, Clone, Default)]
pub struct MemBackend {
    shared: Arc<Shared>,
}

impl MemBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.current.read().clone()
    }

    fn block<'a>(&self, snap: &'a Snapshot, spec: HeaderSpec) -> Option<&'a Arc<MemBlock>> {
        match spec {
            HeaderSpec::Number(n) => snap.by_number(n),
            HeaderSpec::Hash(h) => {
                let n = *self.shared.block_hashes.read().get(&h)?;
                snap.by_number(n).filter(|b| b.header.hash() == h)
            }
        }
    }

    fn tx_location(&self, snap: &Snapshot, hash: &TxHash) -> Option<(Arc<MemBlock>, usize)> {
        let locations = self.shared.tx_hashes.read().get(hash).cloned()?;
        locations.into_iter().rev().find_map(|(n, i)| {
            let block = snap.by_number(n)?;
            let i = i as usize;
            let tx = block.transactions.get(i)?;
            (tx.inner().tx_hash() == hash).then(|| (block.clone(), i))
        })
    }

    fn locate(&self, snap: &Snapshot, spec: TxSpec) -> Option<(Arc<MemBlock>, usize)> {
        let (block, index) = match spec {
            TxSpec::Hash(h) => return self.tx_location(snap, &h),
            TxSpec::BlockNumberIndex(n, i) => (self.block(snap, HeaderSpec::Number(n))?, i),
            TxSpec::BlockHashIndex(h, i) => (self.block(snap, HeaderSpec::Hash(h))?, i),
        };
        let index = usize::try_from(index).ok().filter(|i| *i < block.transactions.len())?;
        Some((block.clone(), index))
    }

    fn logs_in(
        snap: &Snapshot,
        filter: &LogFilter,
        range: RangeInclusive<BlockNumber>,
        out: &mut LogCollector,
        deadline: &Deadline,
    ) -> ColdResult<()> {
        // Blocks below the first stored one hold nothing: start at the first.
        for n in (*range.start()).max(snap.first)..=*range.end() {
            let Some(block) = snap.by_number(n) else { break };
            deadline.check()?;
            Self::block_logs(block, filter, out)?;
        }
        Ok(())
    }

    fn block_logs(block: &MemBlock, filter: &LogFilter, out: &mut LogCollector) -> ColdResult<()> {
        if !filter.may_match_bloom(&block.header.logs_bloom) {
            return Ok(());
        }
        for receipt in &block.receipts {
            for log in receipt.rpc_logs() {
                if filter.matches(&log.inner) {
                    out.push(log)?;
                }
            }
        }
        Ok(())
    }

    /// Publishes a new snapshot. Callers hold the write lock.
    fn publish(&self, snap: Snapshot) {
        *self.shared.current.write() = Arc::new(snap);
    }
}

impl ColdRead for MemBackend {
    fn snapshot_reads(&self) -> bool {
        true
    }

    async fn chain_id(&self, _deadline: Deadline) -> ColdResult<Option<u64>> {
        Ok(*self.shared.chain_id.read())
    }

    async fn tip(&self, _deadline: Deadline) -> ColdResult<Option<BlockNumHash>> {
        Ok(self.snapshot().tip())
    }

    async fn header(&self, spec: HeaderSpec, _d: Deadline) -> ColdResult<Option<SealedHeader>> {
        let snap = self.snapshot();
        Ok(self.block(&snap, spec).map(|b| b.header.clone()))
    }

    async fn transaction(&self, spec: TxSpec, _d: Deadline) -> ColdResult<Option<TxWithMeta>> {
        let snap = self.snapshot();
        Ok(self.locate(&snap, spec).map(|(block, i)| {
            let tx = block.transactions[i].clone();
            let meta = tx_meta(&block.header, tx.inner().tx_hash(), i as u64);
            TxWithMeta { tx, meta }
        }))
    }

    async fn block_transactions(
        &self,
        block: HeaderSpec,
        _d: Deadline,
    ) -> ColdResult<Option<Vec<RecoveredTx>>> {
        let snap = self.snapshot();
        Ok(self.block(&snap, block).map(|b| b.transactions.clone()))
    }

    async fn block_extras(
        &self,
        block: HeaderSpec,
        _d: Deadline,
    ) -> ColdResult<Option<BlockExtras>> {
        let snap = self.snapshot();
        Ok(self.block(&snap, block).map(|b| b.extras.clone()))
    }

    async fn receipt(&self, spec: ReceiptSpec, _d: Deadline) -> ColdResult<Option<StoredReceipt>> {
        let snap = self.snapshot();
        let spec = match spec {
            ReceiptSpec::TxHash(h) => TxSpec::Hash(h),
            ReceiptSpec::BlockNumberIndex(n, i) => TxSpec::BlockNumberIndex(n, i),
            ReceiptSpec::BlockHashIndex(h, i) => TxSpec::BlockHashIndex(h, i),
        };
        Ok(self.locate(&snap, spec).map(|(block, i)| block.receipts[i].clone()))
    }

    async fn block_receipts(
        &self,
        block: HeaderSpec,
        _d: Deadline,
    ) -> ColdResult<Option<Vec<StoredReceipt>>> {
        let snap = self.snapshot();
        Ok(self.block(&snap, block).map(|b| b.receipts.clone()))
    }

    async fn get_logs(
        &self,
        filter: &LogFilter,
        max_logs: usize,
        deadline: Deadline,
    ) -> ColdResult<Vec<RpcLog>> {
        filter.validate()?;
        let snap = self.snapshot();
        let mut out = LogCollector::new(max_logs);
        if let BlockSelector::Hash(h) = filter.blocks {
            let block =
                self.block(&snap, HeaderSpec::Hash(h)).ok_or(ColdError::UnknownBlockHash(h))?;
            Self::block_logs(block, filter, &mut out)?;
        } else if let Some(range) = filter.resolve_range(snap.tip().map(|t| t.number))? {
            Self::logs_in(&snap, filter, range, &mut out, &deadline)?;
        }
        Ok(out.finish())
    }

    async fn produce_logs(
        &self,
        filter: LogFilter,
        range: RangeInclusive<BlockNumber>,
        anchor: BlockNumHash,
        params: StreamParams,
        sink: LogSink,
        deadline: Deadline,
    ) {
        // One snapshot serves the whole stream.
        let snap = self.snapshot();
        let result = async {
            if snap.by_number(anchor.number).map(|b| b.header.hash()) != Some(anchor.hash) {
                return Err(ColdError::ReorgDetected { number: anchor.number });
            }
            let mut emitter = LogEmitter::new(&sink, params, &deadline);
            for n in (*range.start()).max(snap.first)..=*range.end() {
                deadline.check()?;
                let Some(block) = snap.by_number(n) else { break };
                let mut logs = LogCollector::new(usize::MAX);
                Self::block_logs(block, &filter, &mut logs)?;
                for log in logs.finish() {
                    if !emitter.emit(log).await? {
                        return Ok(());
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = sink.send(Err(e)).await;
        }
    }
}

impl ColdWrite for MemBackend {
    async fn append_blocks(&mut self, blocks: Vec<BlockData>, _d: Deadline) -> ColdResult<()> {
        let _guard = self.shared.write.lock();
        let mut snap = (*self.snapshot()).clone();
        check_contiguous(snap.tip(), &blocks)?;
        if snap.blocks.is_empty()
            && let Some(first) = blocks.first()
        {
            snap.first = first.number();
        }
        {
            let mut hashes = self.shared.block_hashes.write();
            let mut txs = self.shared.tx_hashes.write();
            for block in &blocks {
                hashes.insert(block.hash(), block.number());
                for (i, tx) in block.transactions.iter().enumerate() {
                    let loc = (block.number(), i as u32);
                    let entry = txs.entry(*tx.inner().tx_hash()).or_default();
                    if !entry.contains(&loc) {
                        entry.push(loc);
                    }
                }
            }
        }
        for block in blocks {
            let receipts = block.stored_receipts();
            snap.blocks.push(Arc::new(MemBlock {
                header: block.header,
                transactions: block.transactions,
                extras: block.extras,
                receipts,
            }));
        }
        self.publish(snap);
        Ok(())
    }

    async fn truncate_above(&mut self, number: BlockNumber, d: Deadline) -> ColdResult<()> {
        self.drain_above(number, d).await.map(drop)
    }

    async fn set_chain_id(&mut self, chain_id: u64, _d: Deadline) -> ColdResult<()> {
        let _guard = self.shared.write.lock();
        let mut stored = self.shared.chain_id.write();
        match *stored {
            Some(id) if id != chain_id => {
                Err(ColdError::ChainIdMismatch { stored: id, given: chain_id })
            }
            _ => {
                *stored = Some(chain_id);
                Ok(())
            }
        }
    }
}

impl ColdBackend for MemBackend {
    async fn drain_above(
        &mut self,
        number: BlockNumber,
        _d: Deadline,
    ) -> ColdResult<Vec<DrainedBlock>> {
        let _guard = self.shared.write.lock();
        let mut snap = (*self.snapshot()).clone();
        let keep = number.saturating_add(1).saturating_sub(snap.first);
        let keep = usize::try_from(keep).unwrap_or(usize::MAX).min(snap.blocks.len());
        let removed = snap.blocks.split_off(keep);
        self.publish(snap);
        Ok(removed
            .into_iter()
            .map(|b| DrainedBlock { header: b.header.clone(), receipts: b.receipts.clone() })
            .collect())
    }
}
