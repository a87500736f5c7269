//! The write queue and the single writer task (C3, C4, C5, C8).
//!
//! Writes go into one bounded FIFO queue and are applied by one task, in
//! order, one at a time. For a backend without snapshot reads the writer
//! first takes all R read permits (the drain); the semaphore is fair, so reads
//! that arrive while the writer waits queue behind it (C5). The drain is
//! bounded by the write deadline: a read stuck in the backend delays the write
//! at most until its deadline, then the writer gives the permits back to the
//! queue and answers `Timeout`.
//!
//! A write whose backend call outlives its deadline is answered with
//! `Timeout` on time; the writer still waits for that call to end before the
//! next write (writes never overlap), and later callers are answered by their
//! own deadlines meanwhile. A `Timeout` on a write means it may or may not
//! have been applied: read the tip.

use super::{ColdStorage, Inner, join_result, metrics};
use crate::{ColdBackend, ColdError, ColdResult, Deadline, DrainedBlock, model::BlockData};
use alloy::{eips::BlockNumHash, primitives::BlockNumber};
use std::{future::IntoFuture, pin::Pin, sync::Arc};
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
}

impl WriteOp {
    fn name(&self) -> &'static str {
        match self {
            Self::Append(_) => "append_blocks",
            Self::Truncate(_) => "truncate_above",
            Self::Drain(_) => "drain_above",
        }
    }
}

type WriteResult = ColdResult<Vec<DrainedBlock>>;

pub(crate) struct WriteRequest {
    op: WriteOp,
    deadline: Deadline,
    reply: oneshot::Sender<WriteResult>,
}

/// A queued write. Await it for the result (bounded by the write deadline),
/// or drop it: the write still happens.
#[derive(Debug)]
pub struct PendingWrite {
    started: Instant,
    deadline: Deadline,
    reply: oneshot::Receiver<WriteResult>,
    shutdown: CancellationToken,
}

impl PendingWrite {
    /// Waits for the write's result.
    pub async fn wait(self) -> ColdResult<Vec<DrainedBlock>> {
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
    type Output = ColdResult<Vec<DrainedBlock>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}

impl<B: ColdBackend> ColdStorage<B> {
    fn request(&self, op: WriteOp) -> ColdResult<(WriteRequest, PendingWrite)> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(ColdError::TaskTerminated);
        }
        let started = Instant::now();
        let deadline = Deadline::at(op.name(), started + inner.config.write_timeout);
        let (tx, rx) = oneshot::channel();
        let pending = PendingWrite {
            started,
            deadline: deadline.clone(),
            reply: rx,
            shutdown: inner.shutdown.clone(),
        };
        Ok((WriteRequest { op, deadline, reply: tx }, pending))
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
    pub(super) fn dispatch(&self, op: WriteOp) -> ColdResult<PendingWrite> {
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
}

/// What a finished write changed.
struct Applied {
    drained: Vec<DrainedBlock>,
    tip: Option<BlockNumHash>,
}

async fn apply<B: ColdBackend>(
    mut backend: B,
    op: WriteOp,
    deadline: Deadline,
    tip_timeout: std::time::Duration,
) -> ColdResult<Applied> {
    let drained = match op {
        WriteOp::Append(blocks) => {
            // The new tip is the last appended block: no read needed.
            let last = blocks.last().map(BlockData::num_hash);
            backend.append_blocks(blocks, deadline).await?;
            if let Some(tip) = last {
                return Ok(Applied { drained: Vec::new(), tip: Some(tip) });
            }
            Vec::new()
        }
        WriteOp::Truncate(n) => {
            backend.truncate_above(n, deadline).await?;
            Vec::new()
        }
        WriteOp::Drain(n) => backend.drain_above(n, deadline).await?,
    };
    // A truncate or drain committed (or an empty append): read the new tip
    // with a deadline of its own, so a write that finished just in time is
    // not reported as failed.
    let tip_deadline = Deadline::after("tip", tip_timeout);
    let tip = tip_deadline.run(backend.tip(tip_deadline.clone())).await?;
    Ok(Applied { drained, tip })
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
    let WriteRequest { op, deadline, reply } = request;
    let name = op.name();
    let cut = match op {
        WriteOp::Truncate(n) | WriteOp::Drain(n) => Some(n),
        WriteOp::Append(_) => None,
    };
    let shutdown = &inner.shutdown;
    if deadline.is_expired() {
        // Its caller has been answered with Timeout: do not apply it late.
        let _ = reply.send(Err(ColdError::Timeout { op: name }));
        return true;
    }
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
                deadline.stop();
                let _ = reply.send(Err(ColdError::Timeout { op: name }));
                return true;
            }
        }
    };
    let backend = inner.backend.clone();
    let task_shutdown = shutdown.clone();
    let task_deadline = deadline.clone();
    let tip_timeout = inner.config.write_timeout;
    let mut task = inner.tracker.spawn(
        async move {
            // The drained permits return when the backend write really ends.
            let _drain = drain;
            tokio::select! {
                biased;
                _ = task_shutdown.cancelled() => Err(ColdError::TaskTerminated),
                r = apply(backend, op, task_deadline, tip_timeout) => r,
            }
        }
        .in_current_span(),
    );
    let mut reply = Some(reply);
    let joined = tokio::select! {
        biased;
        r = &mut task => r,
        _ = deadline.expired() => {
            deadline.stop();
            if let Some(reply) = reply.take() {
                let _ = reply.send(Err(ColdError::Timeout { op: name }));
            }
            // Writes never overlap: wait for this one to end before the next.
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
        // C11: publish the tip before anyone is answered.
        inner.tip.send_if_modified(|tip| {
            let changed = *tip != applied.tip;
            *tip = applied.tip;
            changed
        });
        ::metrics::gauge!(metrics::DURABLE_TIP).set(applied.tip.map_or(0.0, |t| t.number as f64));
        applied.drained
    });
    if let Err(e) = &result {
        tracing::debug!(op = name, error = %e, "write failed");
    }
    if let Some(reply) = reply {
        let _ = reply.send(result);
    }
    true
}
