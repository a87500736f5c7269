//! A fault-injecting wrapper backend for `coldchain soak`.
//!
//! [`Faulty`] wraps any backend. While enabled, each call (each read only,
//! with `scope=reads`) draws once from a seeded generator: with probability `panic` it panics (as a bug in a store
//! would), with probability `hang` it first sleeps until `hang_extra` past its
//! deadline, ignoring the stop signal (as a stuck disk or a lost connection
//! would), then runs. It also journals the appends the store saw, so the
//! soak can tell a write that was applied or failed from one that never
//! reached the store.

use alloy::{eips::BlockNumHash, primitives::BlockNumber};
use coldchain::{
    BlockData, ColdBackend, ColdRead, ColdResult, ColdWrite, Deadline, DrainedBlock, HeaderSpec,
    LogFilter, ReceiptSpec, RpcLog, SealedHeader, StoredReceipt, StreamParams, TxSpec, TxWithMeta,
    backend::LogSink, model::RecoveredTx,
};
use parking_lot::Mutex;
use std::{
    collections::HashMap,
    ops::RangeInclusive,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::watch;

/// Probabilities of a fault per backend call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    /// A call that hangs past its deadline.
    pub hang: f64,
    /// A call that panics.
    pub panic: f64,
    /// Only reads get faults (`scope=reads`); by default writes too.
    pub reads_only: bool,
}

/// A `--faults` value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "bad --faults {0:?}: expected e.g. `hang=0.001,panic=0.001` (each 0..=1, optionally `,scope=reads`) or `none`"
)]
pub struct BadFaults(String);

impl FromStr for FaultRates {
    type Err = BadFaults;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut rates = Self::default();
        if s.is_empty() || s == "none" {
            return Ok(rates);
        }
        for part in s.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(|| BadFaults(s.into()))?;
            if key.trim() == "scope" {
                rates.reads_only = match value.trim() {
                    "reads" => true,
                    "all" => false,
                    _ => return Err(BadFaults(s.into())),
                };
                continue;
            }
            let p: f64 = value.trim().parse().map_err(|_| BadFaults(s.into()))?;
            if !(0.0..=1.0).contains(&p) {
                return Err(BadFaults(s.into()));
            }
            match key.trim() {
                "hang" => rates.hang = p,
                "panic" => rates.panic = p,
                _ => return Err(BadFaults(s.into())),
            }
        }
        if rates.hang + rates.panic > 1.0 {
            return Err(BadFaults(s.into()));
        }
        Ok(rates)
    }
}

/// The text of an injected panic (the soak's panic hook keeps it quiet).
pub const INJECTED: &str = "soak: injected panic";

/// What the appends that reached the store did, by (first block, last block).
#[derive(Debug, Default)]
pub struct AppendJournal {
    /// Appends that committed.
    pub committed: HashMap<(BlockNumber, BlockNumHash), usize>,
    /// Appends that reached the store and failed (or panicked there).
    pub failed: HashMap<(BlockNumber, BlockNumHash), usize>,
}

#[derive(Debug)]
struct State {
    enabled: AtomicBool,
    rng: AtomicU64,
    hangs: AtomicU64,
    panics: AtomicU64,
    journal: Mutex<AppendJournal>,
}

/// A backend that injects hangs and panics; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Faulty<B> {
    inner: B,
    rates: FaultRates,
    hang_extra: Duration,
    state: Arc<State>,
}

impl<B> Faulty<B> {
    /// Wraps `inner`; faults start disabled.
    pub fn new(inner: B, rates: FaultRates, hang_extra: Duration, seed: u64) -> Self {
        let state = State {
            enabled: AtomicBool::new(false),
            rng: AtomicU64::new(seed | 1),
            hangs: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            journal: Mutex::default(),
        };
        Self { inner, rates, hang_extra, state: Arc::new(state) }
    }

    /// Turns injection on or off.
    pub fn enable(&self, on: bool) {
        self.state.enabled.store(on, Ordering::Relaxed);
    }

    /// Hangs injected so far.
    pub fn hangs(&self) -> u64 {
        self.state.hangs.load(Ordering::Relaxed)
    }

    /// Panics injected so far.
    pub fn panics(&self) -> u64 {
        self.state.panics.load(Ordering::Relaxed)
    }

    /// The journal of appends.
    pub fn journal(&self) -> parking_lot::MutexGuard<'_, AppendJournal> {
        self.state.journal.lock()
    }

    /// Uniform in [0, 1) (xorshift64*).
    fn draw(&self) -> f64 {
        let next = |mut x: u64| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x
        };
        let prev = self
            .state
            .rng
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(next(x)))
            .unwrap_or(1);
        (next(prev).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Maybe panics, maybe hangs past `deadline`.
    async fn fault(&self, op: &'static str, deadline: &Deadline) {
        if !self.state.enabled.load(Ordering::Relaxed) {
            return;
        }
        let write =
            matches!(op, "append_blocks" | "truncate_above" | "drain_above" | "set_chain_id");
        if write && self.rates.reads_only {
            return;
        }
        let x = self.draw();
        if x < self.rates.panic {
            self.state.panics.fetch_add(1, Ordering::Relaxed);
            panic!("{INJECTED} in {op}");
        }
        if x < self.rates.panic + self.rates.hang {
            self.state.hangs.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep_until(deadline.instant() + self.hang_extra).await;
        }
    }
}

/// Records an append's outcome in the journal when dropped (so a panic or a
/// cancelled call is recorded as failed).
struct AppendRecord<'a> {
    journal: &'a Mutex<AppendJournal>,
    key: Option<(BlockNumber, BlockNumHash)>,
    ok: bool,
}

impl Drop for AppendRecord<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut j = self.journal.lock();
            let map = if self.ok { &mut j.committed } else { &mut j.failed };
            *map.entry(key).or_default() += 1;
        }
    }
}

impl<B: ColdBackend> ColdRead for Faulty<B> {
    fn snapshot_reads(&self) -> bool {
        self.inner.snapshot_reads()
    }

    fn tip_updates(&self) -> Option<watch::Receiver<Option<BlockNumHash>>> {
        self.inner.tip_updates()
    }

    async fn chain_id(&self, d: Deadline) -> ColdResult<Option<u64>> {
        self.fault("chain_id", &d).await;
        self.inner.chain_id(d).await
    }

    async fn tip(&self, d: Deadline) -> ColdResult<Option<BlockNumHash>> {
        self.fault("tip", &d).await;
        self.inner.tip(d).await
    }

    async fn header(&self, spec: HeaderSpec, d: Deadline) -> ColdResult<Option<SealedHeader>> {
        self.fault("header", &d).await;
        self.inner.header(spec, d).await
    }

    async fn transaction(&self, spec: TxSpec, d: Deadline) -> ColdResult<Option<TxWithMeta>> {
        self.fault("transaction", &d).await;
        self.inner.transaction(spec, d).await
    }

    async fn block_transactions(
        &self,
        block: HeaderSpec,
        d: Deadline,
    ) -> ColdResult<Option<Vec<RecoveredTx>>> {
        self.fault("block_transactions", &d).await;
        self.inner.block_transactions(block, d).await
    }

    async fn block_extras(
        &self,
        block: HeaderSpec,
        d: Deadline,
    ) -> ColdResult<Option<coldchain::BlockExtras>> {
        self.fault("block_extras", &d).await;
        self.inner.block_extras(block, d).await
    }

    async fn receipt(&self, spec: ReceiptSpec, d: Deadline) -> ColdResult<Option<StoredReceipt>> {
        self.fault("receipt", &d).await;
        self.inner.receipt(spec, d).await
    }

    async fn block_receipts(
        &self,
        block: HeaderSpec,
        d: Deadline,
    ) -> ColdResult<Option<Vec<StoredReceipt>>> {
        self.fault("block_receipts", &d).await;
        self.inner.block_receipts(block, d).await
    }

    async fn get_logs(
        &self,
        filter: &LogFilter,
        max_logs: usize,
        d: Deadline,
    ) -> ColdResult<Vec<RpcLog>> {
        self.fault("get_logs", &d).await;
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
        self.fault("produce_logs", &d).await;
        self.inner.produce_logs(filter, range, anchor, params, sink, d).await
    }
}

impl<B: ColdBackend> ColdWrite for Faulty<B> {
    async fn append_blocks(&mut self, blocks: Vec<BlockData>, d: Deadline) -> ColdResult<()> {
        let key = blocks.first().zip(blocks.last()).map(|(f, l)| (f.number(), l.num_hash()));
        let state = self.state.clone();
        let mut record = AppendRecord { journal: &state.journal, key, ok: false };
        self.fault("append_blocks", &d).await;
        let r = self.inner.append_blocks(blocks, d).await;
        record.ok = r.is_ok();
        r
    }

    async fn truncate_above(&mut self, n: BlockNumber, d: Deadline) -> ColdResult<()> {
        self.fault("truncate_above", &d).await;
        self.inner.truncate_above(n, d).await
    }

    async fn set_chain_id(&mut self, chain_id: u64, d: Deadline) -> ColdResult<()> {
        self.fault("set_chain_id", &d).await;
        self.inner.set_chain_id(chain_id, d).await
    }
}

impl<B: ColdBackend> ColdBackend for Faulty<B> {
    async fn drain_above(&mut self, n: BlockNumber, d: Deadline) -> ColdResult<Vec<DrainedBlock>> {
        self.fault("drain_above", &d).await;
        self.inner.drain_above(n, d).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_fault_rates() {
        assert_eq!("none".parse::<FaultRates>().unwrap(), FaultRates::default());
        let r: FaultRates = "hang=0.001,panic=0.002".parse().unwrap();
        assert_eq!(r, FaultRates { hang: 0.001, panic: 0.002, reads_only: false });
        let r: FaultRates = "panic=0.5,scope=reads".parse().unwrap();
        assert_eq!(r, FaultRates { hang: 0.0, panic: 0.5, reads_only: true });
        assert!("scope=disk".parse::<FaultRates>().is_err());
        assert!("hang=2".parse::<FaultRates>().is_err());
        assert!("slow=0.1".parse::<FaultRates>().is_err());
        assert!("hang".parse::<FaultRates>().is_err());
    }

    #[test]
    fn draws_are_uniform_enough() {
        let f = Faulty::new((), FaultRates::default(), Duration::ZERO, 7);
        let n = 10_000;
        let below = (0..n).filter(|_| f.draw() < 0.1).count();
        assert!((800..1_200).contains(&below), "{below}");
    }
}
