//! The `ColdStorage` handle: all of coldchain's concurrency lives here.
//!
//! ```text
//!  callers (many, cloned handles)
//!    │ reads               │ writes                     │ stream_logs
//!    ▼                     ▼                            ▼
//!  ReadPermits (R, FIFO)  WriteQueue (bounded) ──►   StreamPermits (S)
//!    │ permit travels      │ one writer task,           │ setup: read deadline,
//!    │ with the work       │ submission order;          │ no read permit
//!    ▼                     │ no snapshots: takes all    ▼
//!  backend read task ◄─────┘ R permits first (drain)   producer task ──► bounded
//!    (permit returns when    ▼                           channel ──► LogStream
//!     the work really ends) backend write task
//! ```
//!
//! The invariants C1–C14 of DESIGN.md, where each is kept:
//!
//! | | invariant | where |
//! |---|---|---|
//! | C1 | at most R backend reads at once; permit travels with the work; FIFO | `ColdStorage::read` (private): the permit moves into the backend task; `tokio::sync::Semaphore` is fair |
//! | C2 | any mix of readers, writers and streams completes | every wait is bounded by a deadline and by shutdown |
//! | C3 | writes serialized, in submission order, atomic | `writer`: one task, one FIFO queue; atomicity is the backend's |
//! | C4 | drain-before-write without snapshots | `writer`: `acquire_many(R)` before the write |
//! | C5 | a draining write goes before later reads | the fair semaphore queues the writer's `acquire_many` ahead of them |
//! | C6 | per-operation deadlines, counted from the call | [`Deadline`] made at the call; WARN and stop signal on expiry; a queued write's backend deadline counts from dequeue (`writer`) |
//! | C7 | streams use S stream permits, bounded setup and life | [`stream`] |
//! | C8 | `dispatch_*` never waits | [`ColdStorage::dispatch_append_blocks`] uses `try_send` |
//! | C9 | shutdown answers everyone at once and finishes | one `CancellationToken` raced by every wait and checked before the cache; every [`Deadline`]'s stop signal is its child; tasks tracked |
//! | C10 | cache never serves above a truncation | [`cache`]: purge + generation before the writer answers |
//! | C11 | read-your-writes; durable tip as a watch | the writer updates the watch before it answers |
//! | C12 | a panic is that caller's error | backend work runs in its own task; `JoinError` becomes `Panicked`; a stream producer's panic is caught and sent as the stream's one error |
//! | C13 | a queued write is applied or its failure reported | `writer`: never dropped for waiting in the queue; a failure nobody awaited is recorded ([`ColdStorage::last_unobserved_write_failure`], metric) and refuses the next write once |
//! | C14 | the tip never moves backwards except by a truncation | `Inner::publish_tip` is the one publisher: the writer, and the follower of [`crate::ColdRead::tip_updates`] only with a backend read that no publish overtook |
//!
//! Cancellation: each public async method documents its cancel safety. In
//! short, dropping a read's future does not return its permit early: the
//! permit belongs to the backend work and returns when that work ends.
//! Dropping a write's future does not cancel the write once it is queued
//! (so a dropped `drain_above` loses its drained blocks); a failure nobody
//! awaited is reported through the handle (C13).

pub mod cache;
pub mod metrics;
pub mod stream;
mod writer;

use crate::{
    BlockData, BlockExtras, ColdBackend, ColdError, Deadline, DrainedBlock, HeaderSpec, LogFilter,
    ReceiptSpec, RpcLog, SealedHeader, StoredReceipt, TxSpec, TxWithMeta, model::RecoveredTx,
};
use alloy::{eips::BlockNumHash, primitives::BlockNumber};
use cache::{BlockCache, CacheBudget};
use std::{sync::Arc, time::Duration};
pub use stream::LogStream;
use tokio::{
    sync::{Semaphore, mpsc, watch},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;
use writer::{Failures, WriteOp, WriteRequest};
pub use writer::{PendingWrite, RECENT_WRITE_FAILURES, WriteFailure, WriteTarget};

/// Limits and deadlines of a [`ColdStorage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdConfig {
    /// Backend reads at once (R).
    pub read_permits: usize,
    /// Log streams at once (S).
    pub stream_permits: usize,
    /// Deadline of each read, counted from the call (includes the permit wait).
    pub read_timeout: Duration,
    /// Deadline of each write. A caller waits at most this long from the call
    /// (queue room and result); the backend gets this long from when the
    /// writer takes the write from the queue (drain and backend call), so a
    /// write that waited in the queue is still applied (C13).
    pub write_timeout: Duration,
    /// Whole life of a log stream.
    pub stream_timeout: Duration,
    /// Items buffered per log stream before the producer waits.
    pub stream_capacity: usize,
    /// Writes queued before `dispatch_*` answers `Backpressure`.
    pub write_queue: usize,
    /// Cache sizes.
    pub cache: CacheBudget,
}

impl Default for ColdConfig {
    fn default() -> Self {
        Self {
            read_permits: 64,
            stream_permits: 8,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            stream_timeout: Duration::from_secs(60),
            stream_capacity: 256,
            write_queue: 64,
            cache: CacheBudget::default(),
        }
    }
}

/// Builds a [`ColdStorage`]; every setting has a sane default.
#[derive(Debug, Clone)]
pub struct ColdStorageBuilder<B> {
    backend: B,
    config: ColdConfig,
}

impl<B: ColdBackend> ColdStorageBuilder<B> {
    /// Read permits R (default 64, at least 1).
    pub fn read_permits(mut self, n: usize) -> Self {
        self.config.read_permits = n.max(1);
        self
    }
    /// Stream permits S (default 8, at least 1).
    pub fn stream_permits(mut self, n: usize) -> Self {
        self.config.stream_permits = n.max(1);
        self
    }
    /// Read deadline (default 5 s).
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.config.read_timeout = d;
        self
    }
    /// Write deadline (default 30 s); see [`ColdConfig::write_timeout`].
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.config.write_timeout = d;
        self
    }
    /// Stream deadline (default 60 s).
    pub fn stream_timeout(mut self, d: Duration) -> Self {
        self.config.stream_timeout = d;
        self
    }
    /// Stream channel capacity (default 256, at least 1).
    pub fn stream_capacity(mut self, n: usize) -> Self {
        self.config.stream_capacity = n.max(1);
        self
    }
    /// Write queue depth (default 64, at least 1).
    pub fn write_queue(mut self, n: usize) -> Self {
        self.config.write_queue = n.max(1);
        self
    }
    /// Cache budget (default 4096 headers, 128 blocks of receipts; 0 disables).
    pub fn cache(mut self, budget: CacheBudget) -> Self {
        self.config.cache = budget;
        self
    }
    /// All settings at once.
    pub fn config(mut self, config: ColdConfig) -> Self {
        self.config = config;
        self
    }

    /// Reads the backend's tip (bounded by the read deadline) and starts the
    /// writer task. Needs a tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the handle's tasks start only after the tip was read, so
    /// dropping the future before it completes leaves nothing running.
    pub async fn build(self) -> Result<ColdStorage<B>, ColdError> {
        let Self { backend, config } = self;
        let deadline = Deadline::after("tip", config.read_timeout);
        let tip = deadline.run(backend.tip(deadline.clone())).await?;
        let (tip_tx, _) = watch::channel(tip);
        let (queue_tx, queue_rx) = mpsc::channel(config.write_queue);
        let inner = Arc::new(Inner {
            tip_seq: parking_lot::Mutex::new(0),
            failures: parking_lot::Mutex::new(Failures::default()),
            read_permits: Arc::new(Semaphore::new(config.read_permits)),
            stream_permits: Arc::new(Semaphore::new(config.stream_permits)),
            cache: BlockCache::new(config.cache),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            tip: tip_tx,
            queue: queue_tx,
            snapshot_reads: backend.snapshot_reads(),
            backend,
            config,
        });
        ::metrics::gauge!(metrics::DURABLE_TIP).set(tip.map_or(0.0, |t| t.number as f64));
        inner.tracker.spawn(writer::run(inner.clone(), queue_rx));
        if let Some(updates) = inner.backend.tip_updates() {
            inner.tracker.spawn(follow_tip_updates(inner.clone(), updates));
        }
        let on_last_drop = Arc::new(inner.shutdown.clone().drop_guard());
        Ok(ColdStorage { inner, _on_last_drop: on_last_drop })
    }
}

/// Follows a backend's tip updates (writes by other servers, see
/// [`crate::ColdRead::tip_updates`]) until shutdown (C14). An update is only
/// a hint: it may be stale (a notification of this server's own earlier
/// write, arriving after the writer published a newer tip). So the follower
/// reads the backend's tip under a read permit (C1) and publishes it through
/// [`Inner::publish_tip`] only if the writer published nothing since the
/// read began; otherwise it reads again. A tip that does not extend the
/// published one (lower, or the block at the old tip's height is gone or was
/// replaced) is a real truncation by another writer: the cache is purged
/// first (C10), and only then.
async fn follow_tip_updates<B: ColdBackend>(
    inner: Arc<Inner<B>>,
    mut updates: watch::Receiver<Option<BlockNumHash>>,
) {
    loop {
        tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return,
            r = updates.changed() => if r.is_err() { return },
        }
        let hint = *updates.borrow_and_update();
        if hint == *inner.tip.borrow() {
            continue; // already published (usually this server's own write)
        }
        loop {
            let (seen, old) = {
                let seq = inner.tip_seq.lock();
                (*seq, *inner.tip.borrow())
            };
            let observed = tokio::select! {
                biased;
                _ = inner.shutdown.cancelled() => return,
                r = observe_tip(&inner, old) => r,
            };
            match observed {
                Ok((tip, _)) if tip == old => break,
                Ok((tip, truncated)) => {
                    if inner.publish_tip(tip, TipSource::Observed { seen, truncated }) {
                        break;
                    }
                    // The writer published meanwhile: the read may be stale.
                }
                Err(e) => {
                    tracing::warn!(error = %e, "coldchain: reading the tip after an update failed; retrying");
                    tokio::select! {
                        biased;
                        _ = inner.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}

/// Reads the backend's tip under a read permit, and whether it fails to
/// extend `old` (a truncation by another writer).
async fn observe_tip<B: ColdBackend>(
    inner: &Inner<B>,
    old: Option<BlockNumHash>,
) -> Result<(Option<BlockNumHash>, bool), ColdError> {
    let d = inner.deadline("tip", Instant::now() + inner.config.read_timeout);
    d.run(async {
        let _permit = inner.read_permits.acquire().await.map_err(|_| ColdError::TaskTerminated)?;
        let tip = inner.backend.tip(d.clone()).await?;
        let truncated = match (old, tip) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(o), Some(n)) if n.number <= o.number => n != o,
            (Some(o), Some(_)) => {
                let header = inner.backend.header(HeaderSpec::Number(o.number), d.clone()).await?;
                !matches!(header, Some(h) if h.hash() == o.hash)
            }
        };
        Ok((tip, truncated))
    })
    .await
}

/// Who publishes a tip through [`Inner::publish_tip`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum TipSource {
    /// The writer, after a write: always current.
    Writer,
    /// The follower, from a backend read that began when the publish
    /// sequence was `seen`; `truncated` when it does not extend the tip
    /// published then.
    Observed { seen: u64, truncated: bool },
}

pub(crate) struct Inner<B> {
    pub(crate) backend: B,
    pub(crate) config: ColdConfig,
    pub(crate) snapshot_reads: bool,
    pub(crate) read_permits: Arc<Semaphore>,
    pub(crate) stream_permits: Arc<Semaphore>,
    pub(crate) cache: BlockCache,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) tip: watch::Sender<Option<BlockNumHash>>,
    /// Bumped by every publish of the tip (C14); guards publishing.
    pub(crate) tip_seq: parking_lot::Mutex<u64>,
    pub(crate) failures: parking_lot::Mutex<Failures>,
    pub(crate) queue: mpsc::Sender<WriteRequest>,
}

impl<B> Inner<B> {
    /// A deadline at `at` whose stop signal is also set on shutdown.
    pub(crate) fn deadline(&self, op: &'static str, at: Instant) -> Deadline {
        Deadline::at_or_stopped_by(op, at, &self.shutdown)
    }

    /// The one place that publishes the durable tip (C11, C14). The writer's
    /// tip is always published. An observed tip is published only if
    /// nothing was published since its read began (else it may be stale:
    /// returns `false`); if it is a truncation, the cache is purged first.
    pub(crate) fn publish_tip(&self, tip: Option<BlockNumHash>, source: TipSource) -> bool {
        let mut seq = self.tip_seq.lock();
        if let TipSource::Observed { seen, truncated } = source {
            if *seq != seen {
                return false;
            }
            if truncated {
                // The fork point is unknown: forget every cached block
                // (block 0 can never be removed, so it cannot be stale).
                self.cache.truncate_above(0);
            }
        }
        *seq += 1;
        self.tip.send_if_modified(|t| {
            let changed = *t != tip;
            *t = tip;
            changed
        });
        ::metrics::gauge!(metrics::DURABLE_TIP).set(tip.map_or(0.0, |t| t.number as f64));
        true
    }
}

/// The async handle over a backend. Cheap to clone; all clones share one
/// writer, one set of permits, one cache. Dropping the last clone shuts the
/// handle down, as [`ColdStorage::cancel`] does. See the [module docs](self).
pub struct ColdStorage<B> {
    inner: Arc<Inner<B>>,
    /// Cancels the shutdown token when the last user clone goes away (the
    /// handle's own tasks hold `inner`, not this guard).
    _on_last_drop: Arc<tokio_util::sync::DropGuard>,
}

impl<B> Clone for ColdStorage<B> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), _on_last_drop: self._on_last_drop.clone() }
    }
}

impl<B> std::fmt::Debug for ColdStorage<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdStorage")
            .field("config", &self.inner.config)
            .field("tip", &*self.inner.tip.borrow())
            .finish_non_exhaustive()
    }
}

/// Logs a timeout once, names the operation, and tells the backend to stop.
pub(crate) fn timed_out(deadline: &Deadline) -> ColdError {
    deadline.stop();
    tracing::warn!(
        op = deadline.op(),
        "coldchain operation timed out; the backend was told to stop"
    );
    ColdError::Timeout { op: deadline.op() }
}

impl<B: ColdBackend> ColdStorage<B> {
    /// A builder over `backend` with default limits.
    pub fn builder(backend: B) -> ColdStorageBuilder<B> {
        ColdStorageBuilder { backend, config: ColdConfig::default() }
    }

    /// A handle with default limits.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`ColdStorageBuilder::build`].
    pub async fn new(backend: B) -> Result<Self, ColdError> {
        Self::builder(backend).build().await
    }

    /// The limits in force.
    pub fn config(&self) -> &ColdConfig {
        &self.inner.config
    }

    /// Read permits free right now (for tests and health checks).
    pub fn available_read_permits(&self) -> usize {
        self.inner.read_permits.available_permits()
    }

    /// Stream permits free right now.
    pub fn available_stream_permits(&self) -> usize {
        self.inner.stream_permits.available_permits()
    }

    /// A watch of the durable tip: it changes after each write that changed
    /// the store, before that write's caller is answered (C11), and follows
    /// other writers of a shared store ([`crate::ColdRead::tip_updates`]).
    /// It never moves backwards except through a truncation or drain (C14).
    pub fn tip_watch(&self) -> watch::Receiver<Option<BlockNumHash>> {
        self.inner.tip.subscribe()
    }

    /// The durable tip as this handle last wrote or read it (no backend call).
    pub fn durable_tip(&self) -> Option<BlockNumHash> {
        *self.inner.tip.borrow()
    }

    /// Resolves once block `n` is durable, without polling. Fails with
    /// `TaskTerminated` on shutdown. Wrap it in a timeout to bound the wait.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only watches the tip.
    pub async fn wait_for_block(&self, n: BlockNumber) -> Result<BlockNumHash, ColdError> {
        let mut rx = self.tip_watch();
        tokio::select! {
            biased;
            _ = self.inner.shutdown.cancelled() => Err(ColdError::TaskTerminated),
            r = rx.wait_for(|t| t.is_some_and(|t| t.number >= n)) => match r {
                Ok(t) => (*t).ok_or(ColdError::TaskTerminated),
                Err(_) => Err(ColdError::TaskTerminated),
            },
        }
    }

    /// Stops the handle: every waiting caller and every new call gets
    /// `TaskTerminated` at once, streams end, backend work is dropped. Does
    /// not wait; see [`Self::shutdown`].
    pub fn cancel(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
    }

    /// Whether the handle was shut down.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Cancels and waits for the handle's tasks to end. Returns within the
    /// longest deadline even if a backend call hangs forever (C9).
    ///
    /// # Cancel safety
    ///
    /// The cancel happens at the first poll; dropping the future after that
    /// only stops the waiting for the tasks to end.
    pub async fn shutdown(&self) {
        self.cancel();
        let c = &self.inner.config;
        let bound = c.read_timeout.max(c.write_timeout);
        if tokio::time::timeout(bound, self.inner.tracker.wait()).await.is_err() {
            tracing::warn!(
                "coldchain shutdown: backend work still running after {bound:?}; abandoned"
            );
        }
    }

    /// The common read path (C1, C6, C9, C12): take a permit within the
    /// deadline, then run `work` in its own task that owns the permit, and
    /// answer at the deadline whatever the backend does.
    async fn read<T, F, Fut>(&self, op: &'static str, work: F) -> Result<T, ColdError>
    where
        F: FnOnce(B, Deadline) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ColdError>> + Send + 'static,
        T: Send + 'static,
    {
        let started = Instant::now();
        let result = self
            .read_inner(op, started, work)
            .instrument(tracing::debug_span!("coldchain.read", op))
            .await;
        metrics::record_outcome(op, started, &result);
        result
    }

    async fn read_inner<T, F, Fut>(
        &self,
        op: &'static str,
        started: Instant,
        work: F,
    ) -> Result<T, ColdError>
    where
        F: FnOnce(B, Deadline) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ColdError>> + Send + 'static,
        T: Send + 'static,
    {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(ColdError::TaskTerminated);
        }
        let deadline = inner.deadline(op, started + inner.config.read_timeout);
        let permit = tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return Err(ColdError::TaskTerminated),
            p = inner.read_permits.clone().acquire_owned() => p.map_err(|_| ColdError::TaskTerminated)?,
            _ = tokio::time::sleep_until(deadline.instant()) => return Err(timed_out(&deadline)),
        };
        ::metrics::histogram!(metrics::PERMIT_WAIT).record(started.elapsed().as_secs_f64());
        let backend = inner.backend.clone();
        let shutdown = inner.shutdown.clone();
        let task_deadline = deadline.clone();
        let mut task = inner.tracker.spawn(
            async move {
                // The permit lives exactly as long as the backend work.
                let _permit = permit;
                let _in_flight = InFlight::new();
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => Err(ColdError::TaskTerminated),
                    r = work(backend, task_deadline) => r,
                }
            }
            .in_current_span(),
        );
        tokio::select! {
            biased;
            r = &mut task => join_result(op, r),
            _ = inner.shutdown.cancelled() => Err(ColdError::TaskTerminated),
            _ = tokio::time::sleep_until(deadline.instant()) => Err(timed_out(&deadline)),
        }
    }

    /// The chain id the store recorded, `None` if it has none (see
    /// [`crate::ColdWrite::set_chain_id`]); a read like the others.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future changes nothing. Backend work already
    /// started runs on to its end or its deadline and keeps its read permit
    /// until then (C1).
    pub async fn chain_id(&self) -> Result<Option<u64>, ColdError> {
        self.read("chain_id", |b, d| async move { b.chain_id(d).await }).await
    }

    /// The highest stored block, from the backend.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future changes nothing. Backend work already
    /// started runs on to its end or its deadline and keeps its read permit
    /// until then (C1).
    pub async fn tip(&self) -> Result<Option<BlockNumHash>, ColdError> {
        self.read("tip", |b, d| async move { b.tip(d).await }).await
    }

    /// A header by number or hash (cached).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future changes nothing. Backend work already
    /// started runs on to its end or its deadline and keeps its read permit
    /// until then (C1). Nothing is cached for a dropped call.
    pub async fn header(
        &self,
        spec: impl Into<HeaderSpec>,
    ) -> Result<Option<SealedHeader>, ColdError> {
        let spec = spec.into();
        if self.inner.shutdown.is_cancelled() {
            return Err(ColdError::TaskTerminated);
        }
        let cache = &self.inner.cache;
        let hit = match spec {
            HeaderSpec::Number(n) => cache.header_by_number(n),
            HeaderSpec::Hash(h) => cache.header_by_hash(&h),
        };
        metrics::cache_lookup(hit.is_some());
        if hit.is_some() {
            return Ok(hit);
        }
        let generation = cache.generation();
        let header =
            self.read("header", move |b, d| async move { b.header(spec, d).await }).await?;
        if let Some(h) = &header {
            cache.insert_header(generation, h);
        }
        Ok(header)
    }

    /// A transaction with its confirmation metadata.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future changes nothing. Backend work already
    /// started runs on to its end or its deadline and keeps its read permit
    /// until then (C1).
    pub async fn transaction(&self, spec: TxSpec) -> Result<Option<TxWithMeta>, ColdError> {
        self.read("transaction", move |b, d| async move { b.transaction(spec, d).await }).await
    }

    /// All transactions of a block.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future changes nothing. Backend work already
    /// started runs on to its end or its deadline and keeps its read permit
    /// until then (C1).
    pub async fn block_transactions(
        &self,
        block: impl Into<HeaderSpec>,
    ) -> Result<Option<Vec<RecoveredTx>>, ColdError> {
        let block = block.into();
        self.read(
            "block_transactions",
            move |b, d| async move { b.block_transactions(block, d).await },
        )
        .await
    }

    /// A block's ommer (uncle) headers and withdrawals.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future changes nothing. Backend work already
    /// started runs on to its end or its deadline and keeps its read permit
    /// until then (C1).
    pub async fn block_extras(
        &self,
        block: impl Into<HeaderSpec>,
    ) -> Result<Option<BlockExtras>, ColdError> {
        let block = block.into();
        self.read("block_extras", move |b, d| async move { b.block_extras(block, d).await }).await
    }

    /// A receipt with its context.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future changes nothing. Backend work already
    /// started runs on to its end or its deadline and keeps its read permit
    /// until then (C1).
    pub async fn receipt(&self, spec: ReceiptSpec) -> Result<Option<StoredReceipt>, ColdError> {
        self.read("receipt", move |b, d| async move { b.receipt(spec, d).await }).await
    }

    /// All receipts of a block (cached by block number).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future changes nothing. Backend work already
    /// started runs on to its end or its deadline and keeps its read permit
    /// until then (C1). Nothing is cached for a dropped call.
    pub async fn block_receipts(
        &self,
        block: impl Into<HeaderSpec>,
    ) -> Result<Option<Arc<Vec<StoredReceipt>>>, ColdError> {
        let block = block.into();
        if self.inner.shutdown.is_cancelled() {
            return Err(ColdError::TaskTerminated);
        }
        let cache = &self.inner.cache;
        let number = match block {
            HeaderSpec::Number(n) => Some(n),
            HeaderSpec::Hash(h) => cache.header_by_hash(&h).map(|h| h.number),
        };
        if let Some(hit) = number.and_then(|n| cache.receipts(n)) {
            metrics::cache_lookup(true);
            return Ok(Some(hit));
        }
        metrics::cache_lookup(false);
        let generation = cache.generation();
        let receipts = self
            .read("block_receipts", move |b, d| async move { b.block_receipts(block, d).await })
            .await?;
        Ok(receipts.map(|r| {
            let r = Arc::new(r);
            if let Some(n) = r.first().map(|r| r.block_number).or(number) {
                cache.insert_receipts(generation, n, r.clone());
            }
            r
        }))
    }

    /// Logs matching `filter`, at most `max_logs` (else `TooManyLogs`).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future changes nothing. Backend work already
    /// started runs on to its end or its deadline and keeps its read permit
    /// until then (C1).
    pub async fn get_logs(
        &self,
        filter: LogFilter,
        max_logs: usize,
    ) -> Result<Vec<RpcLog>, ColdError> {
        filter.validate()?;
        self.read("get_logs", move |b, d| async move { b.get_logs(&filter, max_logs, d).await })
            .await
    }

    /// Appends blocks atomically; waits for room in the queue and for the
    /// write, within the write deadline (counted from the call). `Timeout`
    /// means the write may or may not be applied: read the tip.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for room in the queue: the write is
    /// not queued and nothing happens. Once queued, the write is applied
    /// anyway (see [`PendingWrite`]); if it then fails, the failure is
    /// reported through the handle (C13).
    pub async fn append_blocks(&self, blocks: Vec<BlockData>) -> Result<(), ColdError> {
        self.write(WriteOp::Append(blocks)).await.map(drop)
    }

    /// Appends one block; see [`Self::append_blocks`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for room in the queue: the write is
    /// not queued and nothing happens. Once queued, the write is applied
    /// anyway (see [`PendingWrite`]); if it then fails, the failure is
    /// reported through the handle (C13).
    pub async fn append_block(&self, block: BlockData) -> Result<(), ColdError> {
        self.append_blocks(vec![block]).await
    }

    /// Removes every block above `n`. When it returns, no read through this
    /// handle (cache included) serves a block above `n`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for room in the queue: the write is
    /// not queued and nothing happens. Once queued, the write is applied
    /// anyway (see [`PendingWrite`]); if it then fails, the failure is
    /// reported through the handle (C13).
    pub async fn truncate_above(&self, n: BlockNumber) -> Result<(), ColdError> {
        self.write(WriteOp::Truncate(n)).await.map(drop)
    }

    /// Reads the blocks above `n` with their receipts, then removes them.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe for its result: dropping the future while it waits
    /// for room in the queue drains nothing, but once queued the drain is
    /// applied anyway and the drained blocks are lost to the caller. Await
    /// it to completion, or use [`Self::dispatch_drain_above`] and keep the
    /// [`PendingWrite`].
    pub async fn drain_above(&self, n: BlockNumber) -> Result<Vec<DrainedBlock>, ColdError> {
        self.write(WriteOp::Drain(n)).await
    }

    /// Records `chain_id` as the store's chain id if it has none; `Ok` if
    /// it records the same one; `ChainIdMismatch` naming both if it records
    /// another. A write like the others: queued in order with the appends
    /// (so a set before an import's first append lands before its blocks),
    /// under the write deadline; the tip does not change.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for room in the queue: nothing is
    /// queued. Once queued, the write is applied anyway (see
    /// [`PendingWrite`]); if it then fails, the failure is reported through
    /// the handle (C13).
    pub async fn set_chain_id(&self, chain_id: u64) -> Result<(), ColdError> {
        self.write(WriteOp::SetChainId(chain_id)).await.map(drop)
    }

    /// Queues an append without waiting (C8): a full queue is `Backpressure`
    /// at once. The returned [`PendingWrite`] may be awaited or dropped.
    pub fn dispatch_append_blocks(
        &self,
        blocks: Vec<BlockData>,
    ) -> Result<PendingWrite, ColdError> {
        self.dispatch(WriteOp::Append(blocks))
    }

    /// Queues a truncate without waiting; see [`Self::dispatch_append_blocks`].
    pub fn dispatch_truncate_above(&self, n: BlockNumber) -> Result<PendingWrite, ColdError> {
        self.dispatch(WriteOp::Truncate(n))
    }

    /// Queues a drain without waiting; see [`Self::dispatch_append_blocks`].
    pub fn dispatch_drain_above(&self, n: BlockNumber) -> Result<PendingWrite, ColdError> {
        self.dispatch(WriteOp::Drain(n))
    }

    /// Opens a log stream over `filter`; see [`stream`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future during setup releases its stream
    /// permit and starts no producer. Dropping the returned [`LogStream`]
    /// stops its producer.
    pub async fn stream_logs(
        &self,
        filter: LogFilter,
        params: crate::StreamParams,
    ) -> Result<LogStream, ColdError> {
        stream::open(&self.inner, filter, params).await
    }
}

/// Counts reads running in the backend.
struct InFlight;

impl InFlight {
    fn new() -> Self {
        ::metrics::gauge!(metrics::READS_IN_FLIGHT).increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        ::metrics::gauge!(metrics::READS_IN_FLIGHT).decrement(1.0);
    }
}

/// Turns a finished backend task into the caller's result (C12).
pub(crate) fn join_result<T>(
    op: &'static str,
    r: Result<Result<T, ColdError>, tokio::task::JoinError>,
) -> Result<T, ColdError> {
    r.unwrap_or_else(|e| {
        let err = ColdError::from_join(op, e);
        if let ColdError::Panicked { message, .. } = &err {
            tracing::error!(op, %message, "backend work panicked");
        }
        Err(err)
    })
}
