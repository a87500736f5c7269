//! The backend contract: what a store must do so the handle can serve it.
//!
//! # Implementation guide
//!
//! A backend is one value that is cheap to clone. The handle clones it for
//! every read ([`ColdRead`], `&self`) and keeps one clone in its single writer
//! task ([`ColdWrite`], `&mut self`), so writes reach a backend one at a time
//! and in order. An implementer must guarantee:
//!
//! 1. **Deadlines.** Every call gets a [`Deadline`]. A blocking store runs its
//!    work on `spawn_blocking` and calls [`Deadline::check`] between steps
//!    (every block, every few hundred rows); an async store wraps its awaits in
//!    [`Deadline::run`] or sets a statement timeout. Expiry is
//!    `ColdError::Timeout`, never a generic backend error.
//! 2. **Atomic writes.** [`ColdWrite::append_blocks`],
//!    [`ColdWrite::truncate_above`] and [`ColdBackend::drain_above`] each
//!    commit all or nothing, also across a crash.
//! 3. **Contiguity.** An append of block `n` needs the tip at `n - 1` and
//!    `parent_hash == hash(tip)`, or an empty store (any first number);
//!    otherwise `NotContiguous` / `ParentMismatch` and nothing is written. A
//!    batch is checked block by block against its predecessor.
//! 4. **Snapshots.** [`ColdRead::snapshot_reads`] is `true` only if every read
//!    call sees one consistent state even while a write commits (MVCC). The
//!    handle then lets reads run during writes; otherwise it drains all reads
//!    before each write.
//! 5. **Log queries** follow [`crate::filter`]: exact `eth_getLogs` semantics,
//!    ordered, `TooManyLogs` rather than a partial answer. `max_logs`
//!    applies at block boundaries: the first matching block comes back
//!    whole whatever its size, and `TooManyLogs::fits_to` names the last
//!    block of the longest range that fits, from the same scan.
//! 6. **Absence is not an error**: unknown numbers and hashes are `Ok(None)`.
//! 7. **Chain id.** The store records one chain id, kept apart from the
//!    blocks (truncates and drains leave it) and across reopening.
//!    [`ColdWrite::set_chain_id`] records it when the store has none, is a
//!    no-op for the same id, and refuses another with
//!    `ColdError::ChainIdMismatch`, atomically (a compare-and-set, also
//!    between two writers of one database). [`ColdRead::chain_id`] reads it;
//!    `None` for a store that never had one.
//!
//! Run `coldchain::testing::conformance` (feature `test-utils`) and the
//! model-based property test against the backend; both are one call.

use crate::{
    BlockData, BlockExtras, ColdError, ColdResult, Deadline, HeaderSpec, LogFilter, ReceiptSpec,
    RpcLog, SealedHeader, StoredReceipt, TxSpec, TxWithMeta, filter::BlockSelector,
    model::RecoveredTx,
};
use alloy::{eips::BlockNumHash, primitives::BlockNumber};
use std::future::Future;
use tokio::sync::mpsc;

/// A block removed by [`ColdBackend::drain_above`], with its receipts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainedBlock {
    /// The removed header.
    pub header: SealedHeader,
    /// Its receipts, with context.
    pub receipts: Vec<StoredReceipt>,
}

/// Options of a log stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamParams {
    /// Most logs the stream yields. If more logs match, the stream yields
    /// exactly `max_logs` logs and then ends with `TooManyLogs`. The same on
    /// every backend.
    pub max_logs: usize,
}

impl Default for StreamParams {
    fn default() -> Self {
        Self { max_logs: usize::MAX }
    }
}

/// Where a log stream sends its items. A full channel makes the producer wait
/// (bounded memory); a closed one means the consumer left and the producer
/// should return.
pub type LogSink = mpsc::Sender<ColdResult<RpcLog>>;

/// Read side of a backend. See the [module docs](self) for the contract.
pub trait ColdRead: Clone + Send + Sync + 'static {
    /// Whether each read runs on one consistent snapshot, even during a write.
    fn snapshot_reads(&self) -> bool;

    /// A watch of the stored tip that also follows *other* writers (another
    /// server on the same database), for backends that can tell; `None`
    /// (the default) when only this process writes. The handle forwards it
    /// into its own tip watch. Called once, inside a tokio runtime.
    fn tip_updates(&self) -> Option<tokio::sync::watch::Receiver<Option<BlockNumHash>>> {
        None
    }

    /// The chain id the store recorded (see [`ColdWrite::set_chain_id`]),
    /// `None` when it has none.
    fn chain_id(&self, deadline: Deadline) -> impl Future<Output = ColdResult<Option<u64>>> + Send;

    /// The highest stored block, `None` when empty.
    fn tip(
        &self,
        deadline: Deadline,
    ) -> impl Future<Output = ColdResult<Option<BlockNumHash>>> + Send;

    /// A header by number or hash.
    fn header(
        &self,
        spec: HeaderSpec,
        deadline: Deadline,
    ) -> impl Future<Output = ColdResult<Option<SealedHeader>>> + Send;

    /// A transaction with its confirmation metadata.
    fn transaction(
        &self,
        spec: TxSpec,
        deadline: Deadline,
    ) -> impl Future<Output = ColdResult<Option<TxWithMeta>>> + Send;

    /// All transactions of a block, in order; `None` for an unknown block.
    fn block_transactions(
        &self,
        block: HeaderSpec,
        deadline: Deadline,
    ) -> impl Future<Output = ColdResult<Option<Vec<RecoveredTx>>>> + Send;

    /// A block's ommer headers and withdrawals; `None` for an unknown block.
    fn block_extras(
        &self,
        block: HeaderSpec,
        deadline: Deadline,
    ) -> impl Future<Output = ColdResult<Option<BlockExtras>>> + Send;

    /// A receipt with its context.
    fn receipt(
        &self,
        spec: ReceiptSpec,
        deadline: Deadline,
    ) -> impl Future<Output = ColdResult<Option<StoredReceipt>>> + Send;

    /// All receipts of a block, in order; `None` for an unknown block.
    fn block_receipts(
        &self,
        block: HeaderSpec,
        deadline: Deadline,
    ) -> impl Future<Output = ColdResult<Option<Vec<StoredReceipt>>>> + Send;

    /// Logs matching `filter`, see [`crate::filter`].
    fn get_logs(
        &self,
        filter: &LogFilter,
        max_logs: usize,
        deadline: Deadline,
    ) -> impl Future<Output = ColdResult<Vec<RpcLog>>> + Send;

    /// Sends the logs of `filter` over the already resolved block `range` to
    /// `sink`, in order, stopping at `max_logs` with `TooManyLogs`. `anchor`
    /// is the block at the end of the range as the stream's setup saw it: if
    /// it is no longer canonical, the producer sends `ReorgDetected`.
    ///
    /// Return after sending at most one error, or when `sink` closes. The
    /// default reads block by block and re-checks linkage and the anchor;
    /// snapshot backends should serve the whole stream from one snapshot.
    fn produce_logs(
        &self,
        filter: LogFilter,
        range: std::ops::RangeInclusive<BlockNumber>,
        anchor: BlockNumHash,
        params: StreamParams,
        sink: LogSink,
        deadline: Deadline,
    ) -> impl Future<Output = ()> + Send {
        let this = self.clone();
        async move {
            if let Err(e) =
                produce_block_by_block(&this, filter, range, anchor, params, &sink, deadline).await
            {
                let _ = sink.send(Err(e)).await;
            }
        }
    }
}

/// Sends a stream's logs by the contract's rules: at most `max_logs` (the
/// next one is `TooManyLogs`), waiting for room in the sink only until the
/// deadline. Shared by every async producer so the rules live in one place.
#[derive(Debug)]
pub struct LogEmitter<'a> {
    sink: &'a LogSink,
    deadline: &'a Deadline,
    max_logs: usize,
    sent: usize,
}

impl<'a> LogEmitter<'a> {
    /// An emitter into `sink` under `params` and `deadline`.
    pub fn new(sink: &'a LogSink, params: StreamParams, deadline: &'a Deadline) -> Self {
        Self { sink, deadline, max_logs: params.max_logs, sent: 0 }
    }

    /// Sends one log. `Ok(false)` when the consumer has gone (stop quietly).
    pub async fn emit(&mut self, log: RpcLog) -> ColdResult<bool> {
        if self.sent == self.max_logs {
            return Err(ColdError::TooManyLogs { limit: self.max_logs, fits_to: None });
        }
        self.sent += 1;
        tokio::select! {
            r = self.sink.send(Ok(log)) => Ok(r.is_ok()),
            _ = self.deadline.expired() => Err(ColdError::Timeout { op: self.deadline.op() }),
        }
    }
}

/// The default log stream producer: reads one block at a time, checks that
/// each block links to the previous one and that the anchor is still
/// canonical, so a reorg under a non-snapshot backend ends the stream with
/// `ReorgDetected` instead of mixing two chains.
pub async fn produce_block_by_block<B: ColdRead>(
    backend: &B,
    filter: LogFilter,
    range: std::ops::RangeInclusive<BlockNumber>,
    anchor: BlockNumHash,
    params: StreamParams,
    sink: &LogSink,
    deadline: Deadline,
) -> ColdResult<()> {
    let mut emitter = LogEmitter::new(sink, params, &deadline);
    let mut prev_hash = None;
    for number in range {
        deadline.check()?;
        let Some(header) = backend.header(HeaderSpec::Number(number), deadline.clone()).await?
        else {
            if prev_hash.is_none() {
                // Below the store's first block: nothing to read yet. A block
                // removed by a truncate fails the anchor check at the end.
                continue;
            }
            return Err(ColdError::ReorgDetected { number });
        };
        if prev_hash.is_some_and(|p| p != header.parent_hash) {
            return Err(ColdError::ReorgDetected { number });
        }
        prev_hash = Some(header.hash());
        if !filter.may_match_bloom(&header.logs_bloom) {
            continue;
        }
        let block_filter =
            LogFilter { blocks: BlockSelector::Hash(header.hash()), ..filter.clone() };
        let logs = match backend.get_logs(&block_filter, usize::MAX, deadline.clone()).await {
            Err(ColdError::UnknownBlockHash(_)) => return Err(ColdError::ReorgDetected { number }),
            other => other?,
        };
        for log in logs {
            if !emitter.emit(log).await? {
                return Ok(());
            }
        }
        let current = backend.header(HeaderSpec::Number(anchor.number), deadline.clone()).await?;
        if current.map(|h| h.hash()) != Some(anchor.hash) {
            return Err(ColdError::ReorgDetected { number: anchor.number });
        }
    }
    // Blocks skipped by the bloom skip the check above: check once more.
    let current = backend.header(HeaderSpec::Number(anchor.number), deadline.clone()).await?;
    if current.map(|h| h.hash()) != Some(anchor.hash) {
        return Err(ColdError::ReorgDetected { number: anchor.number });
    }
    Ok(())
}

/// Write side of a backend. Calls arrive one at a time, in order.
pub trait ColdWrite: Send + 'static {
    /// Appends blocks atomically, checking contiguity and parent linkage.
    fn append_blocks(
        &mut self,
        blocks: Vec<BlockData>,
        deadline: Deadline,
    ) -> impl Future<Output = ColdResult<()>> + Send;

    /// Removes every block above `number`, with all its index entries.
    fn truncate_above(
        &mut self,
        number: BlockNumber,
        deadline: Deadline,
    ) -> impl Future<Output = ColdResult<()>> + Send;

    /// Records `chain_id` as the store's chain id if it has none; `Ok` if it
    /// already records the same one; `ChainIdMismatch` (nothing changed) if
    /// it records another. Atomic: two writers offering different ids
    /// cannot both succeed.
    fn set_chain_id(
        &mut self,
        chain_id: u64,
        deadline: Deadline,
    ) -> impl Future<Output = ColdResult<()>> + Send;
}

/// A complete backend: reads, writes, and drain.
pub trait ColdBackend: ColdRead + ColdWrite {
    /// Reads the blocks above `number` with their receipts, then removes them;
    /// atomically where the store allows.
    fn drain_above(
        &mut self,
        number: BlockNumber,
        deadline: Deadline,
    ) -> impl Future<Output = ColdResult<Vec<DrainedBlock>>> + Send;
}

/// Checks that `blocks` extend `tip` block by block; shared by backends.
pub fn check_contiguous(tip: Option<BlockNumHash>, blocks: &[BlockData]) -> ColdResult<()> {
    let mut prev = tip;
    for block in blocks {
        block.validate()?;
        if let Some(prev) = prev {
            let expected = prev.number + 1;
            if block.number() != expected {
                return Err(ColdError::NotContiguous { expected, got: block.number() });
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
    Ok(())
}
