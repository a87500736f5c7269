//! A gated backend for deterministic concurrency tests.
//!
//! [`GatedBackend`] wraps a [`MemBackend`]. Every call records itself, then
//! waits while its operation is *held* by the test; the test releases it, can
//! make an operation panic, can make held calls ignore or honour their
//! deadline, and can wait until N calls of an operation are inside the
//! backend. It keeps the last [`Deadline`] each operation received (to check
//! the stop signal), can pause an append after it committed but before the
//! call returns, or a read after it read (`append_blocks_committed`,
//! `header_done`, `block_receipts_done`), and can serve a controllable
//! [`ColdRead::tip_updates`] watch. Combined with tokio's paused clock
//! (`start_paused = true`) this drives every interleaving on purpose: no
//! sleeps, no luck.

use crate::{
    BlockData, ColdResult, Deadline, HeaderSpec, LogFilter, MemBackend, ReceiptSpec, RpcLog,
    SealedHeader, StoredReceipt, TxSpec, TxWithMeta,
    backend::{ColdBackend, ColdRead, ColdWrite, DrainedBlock, LogSink, StreamParams},
    model::RecoveredTx,
};
use alloy::{eips::BlockNumHash, primitives::BlockNumber};
use parking_lot::Mutex;
use std::{
    collections::{HashMap, HashSet},
    ops::RangeInclusive,
    sync::{Arc, OnceLock},
};
use tokio::sync::watch;

#[derive(Debug, Default)]
struct GateState {
    held: HashSet<&'static str>,
    panics: HashSet<&'static str>,
    honour_deadline: bool,
    entered: HashMap<&'static str, usize>,
    active: HashMap<&'static str, usize>,
    log: Vec<&'static str>,
    deadlines: HashMap<&'static str, Deadline>,
}

#[derive(Debug)]
struct Control {
    state: Mutex<GateState>,
    changed: watch::Sender<u64>,
    snapshot_reads: bool,
    tip_updates: OnceLock<watch::Sender<Option<BlockNumHash>>>,
}

impl Control {
    fn update<R>(&self, f: impl FnOnce(&mut GateState) -> R) -> R {
        let r = f(&mut self.state.lock());
        self.changed.send_modify(|v| *v += 1);
        r
    }

    async fn wait_until(&self, mut pred: impl FnMut(&GateState) -> bool) {
        let mut rx = self.changed.subscribe();
        loop {
            if pred(&self.state.lock()) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Leaves the `active` count when a call ends (also by panic or drop).
struct Active(Arc<Control>, &'static str);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.update(|s| *s.active.entry(self.1).or_default() -= 1);
    }
}

/// A [`MemBackend`] whose calls wait on gates the test controls.
#[derive(Debug, Clone)]
pub struct GatedBackend {
    inner: MemBackend,
    control: Arc<Control>,
}

impl GatedBackend {
    /// A gated backend over an empty store; `snapshot_reads` is the
    /// capability it declares (the wrapped store is atomic either way).
    pub fn new(snapshot_reads: bool) -> Self {
        Self::over(MemBackend::new(), snapshot_reads)
    }

    /// A gated backend over an existing store.
    pub fn over(inner: MemBackend, snapshot_reads: bool) -> Self {
        let control = Control {
            state: Mutex::new(GateState::default()),
            changed: watch::channel(0).0,
            snapshot_reads,
            tip_updates: OnceLock::new(),
        };
        Self { inner, control: Arc::new(control) }
    }

    /// The wrapped store (ungated), for setup and inspection.
    pub fn store(&self) -> &MemBackend {
        &self.inner
    }

    /// Makes calls of `op` wait until [`Self::release`]. Ops are the trait
    /// method names: `tip`, `header`, `transaction`, `block_transactions`,
    /// `block_extras`, `receipt`, `block_receipts`, `get_logs`, `produce_logs`,
    /// `append_blocks`, `truncate_above`, `drain_above`; and
    /// the pause points `append_blocks_committed` (inside `append_blocks`
    /// after the blocks were stored, before the call returns),
    /// `header_done` and `block_receipts_done` (after the read, before the
    /// call returns); pause points are counted by [`Self::entered`], not
    /// logged.
    pub fn hold(&self, op: &'static str) {
        self.control.update(|s| s.held.insert(op));
    }

    /// Lets held calls of `op` (and later ones) through.
    pub fn release(&self, op: &'static str) {
        self.control.update(|s| s.held.remove(op));
    }

    /// Makes calls of `op` panic inside the backend.
    pub fn panic_on(&self, op: &'static str) {
        self.control.update(|s| s.panics.insert(op));
    }

    /// Stops panicking on `op`.
    pub fn stop_panicking(&self, op: &'static str) {
        self.control.update(|s| s.panics.remove(op));
    }

    /// Whether held calls give up at their deadline (default: they ignore it,
    /// like a stuck store).
    pub fn honour_deadlines(&self, yes: bool) {
        self.control.update(|s| s.honour_deadline = yes);
    }

    /// Calls of `op` that have entered the backend so far.
    pub fn entered(&self, op: &'static str) -> usize {
        self.control.state.lock().entered.get(op).copied().unwrap_or(0)
    }

    /// Calls of `op` inside the backend now.
    pub fn active(&self, op: &'static str) -> usize {
        self.control.state.lock().active.get(op).copied().unwrap_or(0)
    }

    /// The deadline the last call of `op` received.
    pub fn last_deadline(&self, op: &'static str) -> Option<Deadline> {
        self.control.state.lock().deadlines.get(op).cloned()
    }

    /// Makes [`ColdRead::tip_updates`] return a watch that the test feeds
    /// with [`Self::notify_tip`] (like another server's writes, or this
    /// server's own, arriving late). Call before building a handle.
    pub fn enable_tip_updates(&self) {
        self.control.tip_updates.get_or_init(|| watch::channel(None).0);
    }

    /// Publishes `tip` on the tip-updates watch (see
    /// [`Self::enable_tip_updates`]).
    pub fn notify_tip(&self, tip: Option<BlockNumHash>) {
        if let Some(tx) = self.control.tip_updates.get() {
            tx.send_replace(tip);
        }
    }

    /// Every call in the order it entered.
    pub fn log(&self) -> Vec<&'static str> {
        self.control.state.lock().log.clone()
    }

    /// Waits until at least `n` calls of `op` have entered the backend.
    pub async fn wait_entered(&self, op: &'static str, n: usize) {
        self.control.wait_until(|s| s.entered.get(op).copied().unwrap_or(0) >= n).await;
    }

    /// Waits until exactly `n` calls of `op` are inside the backend.
    pub async fn wait_active(&self, op: &'static str, n: usize) {
        self.control.wait_until(|s| s.active.get(op).copied().unwrap_or(0) == n).await;
    }

    /// Records the call and waits at the gate. Returns a guard that counts
    /// the call as active until dropped.
    async fn gate(&self, op: &'static str, deadline: &Deadline) -> ColdResult<Active> {
        let panic = self.control.update(|s| {
            *s.entered.entry(op).or_default() += 1;
            *s.active.entry(op).or_default() += 1;
            s.log.push(op);
            s.deadlines.insert(op, deadline.clone());
            s.panics.contains(op)
        });
        let guard = Active(self.control.clone(), op);
        if panic {
            panic!("gated backend: injected panic in {op}");
        }
        let honour = self.control.state.lock().honour_deadline;
        let released = self.control.wait_until(|s| !s.held.contains(op));
        if honour {
            tokio::select! {
                _ = released => {}
                _ = deadline.expired() => deadline.check()?,
            }
        } else {
            released.await;
        }
        Ok(guard)
    }

    /// A pause point inside a call: counted as entered, not logged; waits
    /// while `point` is held.
    async fn pause(&self, point: &'static str) {
        self.control.update(|s| *s.entered.entry(point).or_default() += 1);
        self.control.wait_until(|s| !s.held.contains(point)).await;
    }
}

impl ColdRead for GatedBackend {
    fn snapshot_reads(&self) -> bool {
        self.control.snapshot_reads
    }

    fn tip_updates(&self) -> Option<watch::Receiver<Option<BlockNumHash>>> {
        self.control.tip_updates.get().map(watch::Sender::subscribe)
    }

    async fn chain_id(&self, d: Deadline) -> ColdResult<Option<u64>> {
        let _g = self.gate("chain_id", &d).await?;
        self.inner.chain_id(d).await
    }

    async fn tip(&self, d: Deadline) -> ColdResult<Option<BlockNumHash>> {
        let _g = self.gate("tip", &d).await?;
        self.inner.tip(d).await
    }

    async fn header(&self, spec: HeaderSpec, d: Deadline) -> ColdResult<Option<SealedHeader>> {
        let _g = self.gate("header", &d).await?;
        let header = self.inner.header(spec, d).await?;
        self.pause("header_done").await;
        Ok(header)
    }

    async fn transaction(&self, spec: TxSpec, d: Deadline) -> ColdResult<Option<TxWithMeta>> {
        let _g = self.gate("transaction", &d).await?;
        self.inner.transaction(spec, d).await
    }

    async fn block_transactions(
        &self,
        block: HeaderSpec,
        d: Deadline,
    ) -> ColdResult<Option<Vec<RecoveredTx>>> {
        let _g = self.gate("block_transactions", &d).await?;
        self.inner.block_transactions(block, d).await
    }

    async fn block_extras(
        &self,
        block: HeaderSpec,
        d: Deadline,
    ) -> ColdResult<Option<crate::BlockExtras>> {
        let _g = self.gate("block_extras", &d).await?;
        self.inner.block_extras(block, d).await
    }

    async fn receipt(&self, spec: ReceiptSpec, d: Deadline) -> ColdResult<Option<StoredReceipt>> {
        let _g = self.gate("receipt", &d).await?;
        self.inner.receipt(spec, d).await
    }

    async fn block_receipts(
        &self,
        block: HeaderSpec,
        d: Deadline,
    ) -> ColdResult<Option<Vec<StoredReceipt>>> {
        let _g = self.gate("block_receipts", &d).await?;
        let receipts = self.inner.block_receipts(block, d).await?;
        self.pause("block_receipts_done").await;
        Ok(receipts)
    }

    async fn get_logs(
        &self,
        filter: &LogFilter,
        max_logs: usize,
        d: Deadline,
    ) -> ColdResult<Vec<RpcLog>> {
        let _g = self.gate("get_logs", &d).await?;
        self.inner.get_logs(filter, max_logs, d).await
    }

    async fn produce_logs(
        &self,
        filter: LogFilter,
        range: RangeInclusive<BlockNumber>,
        anchor: BlockNumHash,
        params: StreamParams,
        sink: LogSink,
        d: Deadline,
    ) {
        let _g = match self.gate("produce_logs", &d).await {
            Ok(g) => g,
            Err(e) => {
                let _ = sink.send(Err(e)).await;
                return;
            }
        };
        if self.control.snapshot_reads {
            self.inner.produce_logs(filter, range, anchor, params, sink, d).await
        } else {
            // Without snapshots: the default block-by-block producer, through
            // the gated reads.
            if let Err(e) = crate::backend::produce_block_by_block(
                self, filter, range, anchor, params, &sink, d,
            )
            .await
            {
                let _ = sink.send(Err(e)).await;
            }
        }
    }
}

impl ColdWrite for GatedBackend {
    async fn append_blocks(&mut self, blocks: Vec<BlockData>, d: Deadline) -> ColdResult<()> {
        let _g = self.gate("append_blocks", &d).await?;
        self.inner.append_blocks(blocks, d).await?;
        self.pause("append_blocks_committed").await;
        Ok(())
    }

    async fn truncate_above(&mut self, n: BlockNumber, d: Deadline) -> ColdResult<()> {
        let _g = self.gate("truncate_above", &d).await?;
        self.inner.truncate_above(n, d).await
    }

    async fn set_chain_id(&mut self, chain_id: u64, d: Deadline) -> ColdResult<()> {
        let _g = self.gate("set_chain_id", &d).await?;
        self.inner.set_chain_id(chain_id, d).await
    }
}

impl ColdBackend for GatedBackend {
    async fn drain_above(&mut self, n: BlockNumber, d: Deadline) -> ColdResult<Vec<DrainedBlock>> {
        let _g = self.gate("drain_above", &d).await?;
        self.inner.drain_above(n, d).await
    }
}
