//! Log streams (C7).
//!
//! A stream takes one of S stream permits, never a read permit, so open
//! streams cannot starve reads or delay a write's drain. Its setup (permit
//! wait and resolving the range against the tip) is bounded by the read
//! deadline; its whole life by the stream deadline, both counted from the
//! call. A producer task owns the stream permit and feeds a bounded channel:
//! a slow consumer makes the producer wait, so memory stays bounded.
//!
//! A [`LogStream`] yields logs in order and then ends, or ends with exactly
//! one error: `Timeout`, `ReorgDetected`, `TooManyLogs` (after exactly
//! `max_logs` logs), `TaskTerminated`, `Panicked` (the producer panicked:
//! the handle catches it and sends it as the stream's last item), or a
//! backend error. Dropping it stops the producer (its deadline's stop signal
//! is set), as does the handle's shutdown.

use super::{Inner, metrics, timed_out};
use crate::{
    ColdBackend, ColdError, Deadline, HeaderSpec, LogFilter, RpcLog, StreamParams,
    filter::BlockSelector,
};
use alloy::{eips::BlockNumHash, primitives::BlockNumber};
use futures::{FutureExt, Stream};
use std::{
    ops::RangeInclusive,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::Instrument;

/// A stream of logs; see the [module docs](self).
///
/// # Cancel safety
///
/// `next()` (polling the stream) is cancel-safe: an item is taken from the
/// channel only when it is returned, so dropping a `next()` future loses
/// nothing. Dropping the stream itself ends it and stops its producer.
pub struct LogStream {
    rx: Option<mpsc::Receiver<Result<RpcLog, ColdError>>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    stream_deadline: Option<Deadline>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl std::fmt::Debug for LogStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStream").field("done", &self.rx.is_none()).finish_non_exhaustive()
    }
}

impl LogStream {
    fn finish(&mut self, err: Option<ColdError>) -> Poll<Option<Result<RpcLog, ColdError>>> {
        self.rx = None;
        Poll::Ready(err.map(Err))
    }
}

impl Stream for LogStream {
    type Item = Result<RpcLog, ColdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.rx.is_none() {
            return Poll::Ready(None);
        }
        if self.shutdown.as_mut().poll(cx).is_ready() {
            return self.finish(Some(ColdError::TaskTerminated));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let err = match &self.stream_deadline {
                Some(d) => timed_out(d),
                None => ColdError::Timeout { op: "stream_logs" },
            };
            return self.finish(Some(err));
        }
        let Some(rx) = self.rx.as_mut() else { return Poll::Ready(None) };
        match rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => self.finish(None),
            Poll::Ready(Some(Ok(log))) => Poll::Ready(Some(Ok(log))),
            Poll::Ready(Some(Err(e))) => self.finish(Some(e)),
        }
    }
}

impl Drop for LogStream {
    fn drop(&mut self) {
        // Tell the producer to stop now rather than at its deadline.
        if let Some(d) = &self.stream_deadline {
            d.stop();
        }
    }
}

/// Resolves the filter to a block range and its anchor (the last block, as
/// seen now). `None` when nothing can match.
async fn resolve<B: ColdBackend>(
    backend: &B,
    filter: &LogFilter,
    deadline: &Deadline,
) -> Result<Option<(RangeInclusive<BlockNumber>, BlockNumHash)>, ColdError> {
    if let BlockSelector::Hash(hash) = filter.blocks {
        let header = backend.header(HeaderSpec::Hash(hash), deadline.clone()).await?;
        let header = header.ok_or(ColdError::UnknownBlockHash(hash))?;
        let anchor = BlockNumHash::new(header.number, hash);
        return Ok(Some((header.number..=header.number, anchor)));
    }
    let Some(tip) = backend.tip(deadline.clone()).await? else { return Ok(None) };
    let Some(range) = filter.resolve_range(Some(tip.number))? else { return Ok(None) };
    let end = *range.end();
    let anchor = if end == tip.number {
        tip
    } else {
        match backend.header(HeaderSpec::Number(end), deadline.clone()).await? {
            Some(h) => BlockNumHash::new(end, h.hash()),
            None => return Err(ColdError::ReorgDetected { number: end }),
        }
    };
    Ok(Some((range, anchor)))
}

pub(super) async fn open<B: ColdBackend>(
    inner: &Arc<Inner<B>>,
    filter: LogFilter,
    params: StreamParams,
) -> Result<LogStream, ColdError> {
    if inner.shutdown.is_cancelled() {
        return Err(ColdError::TaskTerminated);
    }
    filter.validate()?;
    let started = Instant::now();
    let setup = inner.deadline("stream_logs", started + inner.config.read_timeout);
    let life = inner.deadline("stream_logs", started + inner.config.stream_timeout);
    let result = async {
        let permit = tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return Err(ColdError::TaskTerminated),
            p = inner.stream_permits.clone().acquire_owned() => p.map_err(|_| ColdError::TaskTerminated)?,
            _ = tokio::time::sleep_until(setup.instant()) => return Err(timed_out(&setup)),
        };
        // Setup holds no read permit and is bounded by the read deadline even
        // if the backend never answers.
        let resolved = tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return Err(ColdError::TaskTerminated),
            // C12: the setup's reads run in the caller's task; a panic in
            // them is this caller's error, like any backend work's.
            r = std::panic::AssertUnwindSafe(resolve(&inner.backend, &filter, &setup)).catch_unwind() => {
                r.unwrap_or_else(|payload| {
                    let err = ColdError::from_panic("stream_logs", payload);
                    tracing::error!(op = "stream_logs", error = %err, "backend work panicked");
                    Err(err)
                })?
            }
            _ = tokio::time::sleep_until(setup.instant()) => return Err(timed_out(&setup)),
        };
        let (tx, rx) = mpsc::channel(inner.config.stream_capacity);
        if let Some((range, anchor)) = resolved {
            let backend = inner.backend.clone();
            let shutdown = inner.shutdown.clone();
            let producer_deadline = life.clone();
            // Kept to report a panic: the producer's own sender is gone then.
            let panic_tx = tx.clone();
            inner.tracker.spawn(
                async move {
                    let _permit = permit;
                    ::metrics::gauge!(metrics::STREAMS_OPEN).increment(1.0);
                    let produce =
                        backend.produce_logs(filter, range, anchor, params, tx, producer_deadline.clone());
                    let panicked = tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => None,
                        _ = producer_deadline.expired() => None,
                        r = AssertUnwindSafe(produce).catch_unwind() => r.err(),
                    };
                    if let Some(payload) = panicked {
                        // C7, C12: the stream ends with this one error, not
                        // with a silent end. Bounded: the consumer may be slow.
                        let err = ColdError::from_panic("stream_logs", payload);
                        tracing::error!(error = %err, "log stream producer panicked");
                        tokio::select! {
                            biased;
                            _ = shutdown.cancelled() => {}
                            _ = producer_deadline.expired() => {}
                            _ = panic_tx.send(Err(err)) => {}
                        }
                    }
                    drop(panic_tx);
                    ::metrics::gauge!(metrics::STREAMS_OPEN).decrement(1.0);
                    ::metrics::histogram!(metrics::STREAM_LIFETIME).record(started.elapsed().as_secs_f64());
                }
                .instrument(tracing::debug_span!("coldchain.stream")),
            );
        }
        Ok(LogStream {
            rx: Some(rx),
            deadline: Box::pin(tokio::time::sleep_until(life.instant())),
            stream_deadline: Some(life.clone()),
            shutdown: Box::pin(inner.shutdown.clone().cancelled_owned()),
        })
    }
    .await;
    metrics::record_outcome("stream_logs", started, &result);
    result
}
