//! The write queue and the single writer task (C3, C4, C5, C8, C13).
//!
//! Writes go into one bounded FIFO queue and are applied by one task, in
//! order, one at a time. For a backend without snapshot reads the writer
//! first takes all R read permits (the drain); the semaphore is fair, so reads
//! that arrive while the writer waits queue behind it (C5).
//!
//! Two deadlines (C6, C13). The *caller's* deadline (the write deadline,
//! counted from the call) bounds how long a caller waits: for room in the
//! queue, then for the result; at it the caller gets `Timeout`, which means
//! the write may or may not be applied (read the tip). The *backend's*
//! deadline (also the write deadline, counted from when the writer takes the
//! write from the queue) bounds the drain and the backend call, so a write
//! that waited in the queue still gets its full write time and is applied,
//! never dropped because its caller stopped waiting. At the backend deadline
//! the writer tells the backend to stop and waits for the call to end before
//! the next write (writes never overlap).
//!
//! A queued write is applied or its failure is reported (C13): to its waiter
//! if one awaits the [`PendingWrite`]; otherwise through the handle: the
//! failure is kept for [`ColdStorage::last_unobserved_write_failure`], counted
//! by the `coldchain_unobserved_write_failures_total` metric, and the next
//! write is refused with [`ColdError::EarlierWriteFailed`] naming it (once;
//! then writes are applied again).

use super::{ColdStorage, Inner, TipSource, join_result, metrics};
use crate::{ColdBackend, ColdError, Deadline, DrainedBlock, model::BlockData};
use alloy::{eips::BlockNumHash, primitives::BlockNumber};
use futures::FutureExt;
use std::{future::IntoFuture, panic::AssertUnwindSafe, pin::Pin, sync::Arc, time::SystemTime};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// One queued write.
pub(crate) enum WriteOp {
    Append(Vec<BlockData>),
    Truncate(BlockNumber),
    Drain(BlockNumber),
    SetChainId(u64),
}

impl WriteOp {
    fn name(&self) -> &'static str {
        match self {
            Self::Append(_) => "append_blocks",
            Self::Truncate(_) => "truncate_above",
            Self::Drain(_) => "drain_above",
            Self::SetChainId(_) => "set_chain_id",
        }
    }

    fn target(&self) -> WriteTarget {
        match self {
            Self::Append(blocks) => match (blocks.first(), blocks.last()) {
                (Some(first), Some(last)) => {
                    WriteTarget::Blocks { first: first.number(), last: last.number() }
                }
                _ => WriteTarget::Nothing,
            },
            Self::Truncate(n) | Self::Drain(n) => WriteTarget::Above(*n),
            Self::SetChainId(id) => WriteTarget::ChainId(*id),
        }
    }
}

/// The blocks a write concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteTarget {
    /// An append of blocks `first..=last`.
    Blocks {
        /// The first appended block.
        first: BlockNumber,
        /// The last appended block.
        last: BlockNumber,
    },
    /// A truncate or drain of the blocks above this one.
    Above(BlockNumber),
    /// An empty append.
    Nothing,
    /// A `set_chain_id` of this chain id (no blocks).
    ChainId(u64),
}

impl std::fmt::Display for WriteTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Blocks { first, last } => write!(f, "blocks {first}..={last}"),
            Self::Above(n) => write!(f, "the blocks above {n}"),
            Self::Nothing => f.write_str("no blocks"),
            Self::ChainId(id) => write!(f, "chain id {id}"),
        }
    }
}

/// A queued write that failed while nobody awaited its result (C13); see
/// [`ColdStorage::last_unobserved_write_failure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// The operation (`append_blocks`, `truncate_above`, `drain_above`,
    /// `set_chain_id`).
    pub op: &'static str,
    /// The blocks it concerned.
    pub target: WriteTarget,
    /// The error's text.
    pub error: String,
    /// When it failed (wall clock).
    pub at: SystemTime,
    /// Its number among this handle's unobserved failures, from 1: a
    /// watcher that remembers the last one it saw misses none.
    pub seq: u64,
}

/// How many unobserved failures [`ColdStorage::unobserved_write_failures`]
/// keeps.
pub const RECENT_WRITE_FAILURES: usize = 64;

/// Unobserved write failures: the recent ones, and whether the next write
/// must still be refused to report the last.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    recent: std::collections::VecDeque<WriteFailure>,
    count: u64,
    unreported: bool,
}

type WriteResult = Result<Vec<DrainedBlock>, ColdError>;

pub(crate) struct WriteRequest {
    op: WriteOp,
    reply: oneshot::Sender<WriteResult>,
}

/// A queued write. It is applied whether or not anyone awaits it: the writer
/// takes writes from the queue in order and gives each the full write
/// deadline from that moment. Await it for the result: `Timeout` at the write
/// deadline counted from the call means the write may or may not be applied
/// (read the tip). Or drop it: the write still happens, and if it fails, the
/// failure is reported through the handle instead (the next write is refused
/// with [`ColdError::EarlierWriteFailed`] naming it, the
/// `coldchain_unobserved_write_failures_total` metric counts it, and
/// [`ColdStorage::last_unobserved_write_failure`] shows it). A write whose
/// caller awaited it and got `Timeout` counts as unobserved if it then fails.
#[derive(Debug)]
pub struct PendingWrite {
    started: Instant,
    deadline: Deadline,
    reply: oneshot::Receiver<WriteResult>,
    shutdown: CancellationToken,
}

impl PendingWrite {
    /// Waits for the write's result, at most until the write deadline
    /// counted from the call (`Timeout`), or shutdown (`TaskTerminated`).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping this future (or the `PendingWrite`) does not
    /// cancel the write; its failure, if any, is then reported through the
    /// handle as if nobody had awaited it.
    pub async fn wait(self) -> Result<Vec<DrainedBlock>, ColdError> {
        let Self { started, deadline, reply, shutdown } = self;
        let result = tokio::select! {
            biased;
            r = reply => r.unwrap_or(Err(ColdError::TaskTerminated)),
            _ = shutdown.cancelled() => Err(ColdError::TaskTerminated),
            _ = tokio::time::sleep_until(deadline.instant()) => Err(super::timed_out(&deadline)),
        };
        metrics::record_outcome(deadline.op(), started, &result);
        result
    }
}

impl IntoFuture for PendingWrite {
    type Output = Result<Vec<DrainedBlock>, ColdError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}

impl<B: ColdBackend> ColdStorage<B> {
    fn request(&self, op: WriteOp) -> Result<(WriteRequest, PendingWrite), ColdError> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(ColdError::TaskTerminated);
        }
        let started = Instant::now();
        let deadline = inner.deadline(op.name(), started + inner.config.write_timeout);
        let (tx, rx) = oneshot::channel();
        let pending =
            PendingWrite { started, deadline, reply: rx, shutdown: inner.shutdown.clone() };
        Ok((WriteRequest { op, reply: tx }, pending))
    }

    /// Queues a write, waiting for room within the write deadline.
    pub(super) async fn write(&self, op: WriteOp) -> WriteResult {
        let (request, pending) = self.request(op)?;
        let deadline = pending.deadline.clone();
        tokio::select! {
            biased;
            _ = self.inner.shutdown.cancelled() => return Err(ColdError::TaskTerminated),
            r = self.inner.queue.send(request) => r.map_err(|_| ColdError::TaskTerminated)?,
            _ = tokio::time::sleep_until(deadline.instant()) => return Err(super::timed_out(&deadline)),
        }
        pending.wait().await
    }

    /// Queues a write without waiting (C8).
    pub(super) fn dispatch(&self, op: WriteOp) -> Result<PendingWrite, ColdError> {
        let (request, pending) = self.request(op)?;
        match self.inner.queue.try_send(request) {
            Ok(()) => Ok(pending),
            Err(mpsc::error::TrySendError::Full(_)) => {
                ::metrics::counter!(metrics::BACKPRESSURE).increment(1);
                Err(ColdError::Backpressure)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(ColdError::TaskTerminated),
        }
    }

    /// The last queued write that failed while nobody awaited its result
    /// (C13), for health checks; `None` if none has. It stays until another
    /// such failure replaces it (compare its `at`).
    pub fn last_unobserved_write_failure(&self) -> Option<WriteFailure> {
        self.inner.failures.lock().recent.back().cloned()
    }

    /// The last [`RECENT_WRITE_FAILURES`] unobserved write failures (C13),
    /// oldest first; [`WriteFailure::seq`] numbers them.
    pub fn unobserved_write_failures(&self) -> Vec<WriteFailure> {
        self.inner.failures.lock().recent.iter().cloned().collect()
    }
}

/// What a finished write changed.
struct Applied {
    drained: Vec<DrainedBlock>,
    /// The tip after the write; `None` for a write that cannot change it
    /// (nothing to publish).
    tip: Option<Option<BlockNumHash>>,
}

async fn apply<B: ColdBackend>(
    mut backend: B,
    op: WriteOp,
    deadline: Deadline,
    tip_timeout: std::time::Duration,
    shutdown: CancellationToken,
    published: Option<BlockNumHash>,
) -> Result<Applied, ColdError> {
    match op {
        WriteOp::Append(blocks) => {
            // The new tip is the last appended block: no read needed (an
            // empty append reads it).
            let last = blocks.last().map(BlockData::num_hash);
            backend.append_blocks(blocks, deadline).await?;
            let tip = match last {
                Some(tip) => Some(tip),
                None => {
                    let d = tip_deadline(tip_timeout, &shutdown);
                    d.run(backend.tip(d.clone())).await?
                }
            };
            Ok(Applied { drained: Vec::new(), tip: Some(tip) })
        }
        WriteOp::Truncate(n) => {
            backend.truncate_above(n, deadline).await?;
            let tip = tip_after_cut(&backend, n, published, tip_timeout, &shutdown).await?;
            Ok(Applied { drained: Vec::new(), tip: Some(tip) })
        }
        WriteOp::Drain(n) => {
            let drained = backend.drain_above(n, deadline).await?;
            let tip = tip_after_cut(&backend, n, published, tip_timeout, &shutdown).await?;
            Ok(Applied { drained, tip: Some(tip) })
        }
        WriteOp::SetChainId(id) => {
            backend.set_chain_id(id, deadline).await?;
            // The blocks did not change: publishing the tip read before
            // this write could undo a newer one the follower saw (C14).
            Ok(Applied { drained: Vec::new(), tip: None })
        }
    }
}

/// A deadline of its own for reading the tip after a write, so that a write
/// that finished just in time is not reported as failed.
fn tip_deadline(timeout: std::time::Duration, shutdown: &CancellationToken) -> Deadline {
    Deadline::at_or_stopped_by("tip", Instant::now() + timeout, shutdown)
}

/// The store's tip after a committed cut above `n`, read with
/// [`tip_deadline`].
/// C14: should that read fail, the tip is derived without it: the tip this
/// handle published if it is at or below `n`, else block `n` (none if the
/// store holds no block `n`), so a committed cut always publishes its tip.
async fn tip_after_cut<B: ColdBackend>(
    backend: &B,
    n: BlockNumber,
    published: Option<BlockNumHash>,
    timeout: std::time::Duration,
    shutdown: &CancellationToken,
) -> Result<Option<BlockNumHash>, ColdError> {
    let deadline = tip_deadline(timeout, shutdown);
    let read = AssertUnwindSafe(deadline.run(backend.tip(deadline.clone()))).catch_unwind().await;
    match read {
        Ok(Ok(tip)) => return Ok(tip),
        Ok(Err(e)) => tracing::warn!(error = %e, "reading the tip after a cut failed; deriving it"),
        Err(_) => tracing::warn!("reading the tip after a cut panicked; deriving it"),
    }
    if published.is_none_or(|t| t.number <= n) {
        return Ok(published);
    }
    let deadline = tip_deadline(timeout, shutdown);
    let header =
        deadline.run(backend.header(crate::HeaderSpec::Number(n), deadline.clone())).await?;
    Ok(header.map(|h| BlockNumHash::new(n, h.hash())))
}

/// The writer task: applies queued writes one at a time, in order.
pub(crate) async fn run<B: ColdBackend>(
    inner: Arc<Inner<B>>,
    mut queue: mpsc::Receiver<WriteRequest>,
) {
    loop {
        let request = tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => break,
            r = queue.recv() => match r { Some(r) => r, None => break },
        };
        let op = request.op.name();
        let span = tracing::debug_span!("coldchain.write", op);
        if !write_one(&inner, request).instrument(span).await {
            break;
        }
    }
    queue.close();
}

/// Applies one write. Returns `false` on shutdown.
async fn write_one<B: ColdBackend>(inner: &Arc<Inner<B>>, request: WriteRequest) -> bool {
    let WriteRequest { op, reply } = request;
    let name = op.name();
    let target = op.target();
    let cut = match op {
        WriteOp::Truncate(n) | WriteOp::Drain(n) => Some(n),
        WriteOp::Append(_) | WriteOp::SetChainId(_) => None,
    };
    let shutdown = &inner.shutdown;
    // C13: an earlier write failed and nobody saw it: refuse this one with
    // an error naming it, once (reporting it must not wedge later writes).
    // The refusal is delivered like any result: when nobody awaits this
    // write either, it is recorded in turn (but refuses nothing more).
    if let Some(failed) = inner.take_unreported_failure() {
        let refusal = ColdError::EarlierWriteFailed {
            op: failed.op,
            target: failed.target.to_string(),
            error: failed.error,
        };
        inner.deliver(name, target, reply, Err(refusal));
        return true;
    }
    // C13: the backend gets the full write deadline from now, however long
    // the write waited in the queue.
    let deadline = inner.deadline(name, Instant::now() + inner.config.write_timeout);
    // C4: without snapshots, drain every read before writing.
    let drain = if inner.snapshot_reads {
        None
    } else {
        let permits = u32::try_from(inner.config.read_permits).unwrap_or(u32::MAX);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return false,
            p = inner.read_permits.clone().acquire_many_owned(permits) => match p {
                Ok(p) => Some(p),
                Err(_) => return false,
            },
            _ = deadline.expired() => {
                let err = super::timed_out(&deadline);
                inner.deliver(name, target, reply, Err(err));
                return true;
            }
        }
    };
    let backend = inner.backend.clone();
    let task_shutdown = shutdown.clone();
    let task_deadline = deadline.clone();
    let tip_timeout = inner.config.write_timeout;
    let published = *inner.tip.borrow();
    let mut task = inner.tracker.spawn(
        async move {
            // The drained permits return when the backend write really ends.
            let _drain = drain;
            let apply =
                apply(backend, op, task_deadline, tip_timeout, task_shutdown.clone(), published);
            tokio::select! {
                biased;
                _ = task_shutdown.cancelled() => Err(ColdError::TaskTerminated),
                r = apply => r,
            }
        }
        .in_current_span(),
    );
    let joined = tokio::select! {
        biased;
        r = &mut task => r,
        _ = deadline.expired() => {
            // Tell the backend to stop; writes never overlap, so wait for
            // this one to end before the next, and answer what it returns.
            let _ = super::timed_out(&deadline);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return false,
                r = &mut task => r,
            }
        }
    };
    // C10: purge before anyone is answered, also when the write reported an
    // error (it may have committed before the error).
    if let Some(cut) = cut {
        inner.cache.truncate_above(cut);
    }
    let result = join_result(name, joined).map(|applied| {
        // C11, C14: publish the tip before anyone is answered.
        if let Some(tip) = applied.tip {
            inner.publish_tip(tip, TipSource::Writer);
        }
        applied.drained
    });
    if let Err(e) = &result {
        tracing::debug!(op = name, error = %e, "write failed");
    }
    inner.deliver(name, target, reply, result);
    true
}

impl<B> Inner<B> {
    /// Answers a write's waiter; with nobody waiting, a failure is recorded
    /// and reported through the handle (C13).
    fn deliver(
        &self,
        op: &'static str,
        target: WriteTarget,
        reply: oneshot::Sender<WriteResult>,
        result: WriteResult,
    ) {
        let Err(Err(err)) = reply.send(result) else { return };
        if matches!(err, ColdError::TaskTerminated) {
            return;
        }
        tracing::error!(op, %target, error = %err, "a write that nobody awaited failed");
        ::metrics::counter!(metrics::UNOBSERVED_WRITE_FAILURES).increment(1);
        // A refused write reports the failure it names; refusing the next
        // write for it too would refuse every write of a fire-and-forget
        // producer.
        let refusal = matches!(err, ColdError::EarlierWriteFailed { .. });
        let mut failures = self.failures.lock();
        failures.count += 1;
        let seq = failures.count;
        let failure =
            WriteFailure { op, target, error: err.to_string(), at: SystemTime::now(), seq };
        if failures.recent.len() == RECENT_WRITE_FAILURES {
            failures.recent.pop_front();
        }
        failures.recent.push_back(failure);
        failures.unreported = !refusal;
    }

    /// The failure the next write must report, once.
    fn take_unreported_failure(&self) -> Option<WriteFailure> {
        let mut failures = self.failures.lock();
        if !std::mem::take(&mut failures.unreported) {
            return None;
        }
        failures.recent.back().cloned()
    }
}
