//! The import pipeline every source shares.
//!
//! ```text
//!  reader (one blocking thread: file I/O, framing)
//!    │ jobs (chunks of raw input), bounded
//!    ▼
//!  workers (N threads, std::thread::scope: parse, convert, recover senders, verify)
//!    │ one oneshot per job, queued in job order, bounded
//!    ▼
//!  Writer (async): blocks in order → parent links → batches → append_blocks
//! ```
//!
//! [`run_parallel`] is the reader and worker half; [`ordered`] turns its
//! output into a stream of chunks in job order; a node's JSON-RPC source
//! builds the same stream from concurrent fetches instead. The [`Writer`]
//! checks that each block extends the one before it (or the store's tip),
//! groups blocks into batches, and keeps one batch in flight while the next
//! one fills. Memory is bounded by the channel capacities: at most
//! `2 × workers + 2` chunks exist at once, plus one batch being written and
//! one being filled.
//!
//! **The verified prefix is kept.** Whatever stops an import (a block that
//! fails a check or does not extend the chain, a source that fails, an
//! interruption), every block accepted before it (verified, and linked to
//! the one before) is written before the error is returned, including the
//! blocks of the batch being filled and those of the failing block's own
//! chunk ([`Chunk::error`]). So the store ends right below the first bad
//! block, and the same command run again resumes there. Only a failed
//! write stops the writes after it (they would not extend the store), and
//! then that write's error is the one reported.

use super::error::ImportError;
use alloy::{
    eips::BlockNumHash,
    primitives::{B256, BlockNumber},
};
use coldchain::{BlockData, ColdBackend, ColdError, ColdStorage, PendingWrite};
use futures::{Stream, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::{
    io::IsTerminal,
    panic::AssertUnwindSafe,
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A run of consecutive blocks from a source, converted and verified.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The blocks, ascending.
    pub blocks: Vec<BlockData>,
    /// Where the source stands after this chunk, in the unit of the
    /// progress bar (bytes of a file, blocks of an archive or a range).
    pub progress: u64,
    /// Where the blocks came from, for error messages (a file, a URL).
    pub origin: String,
    /// The line of each block in `origin`, for sources made of lines
    /// (empty otherwise): errors then name `FILE line N` exactly.
    pub lines: Vec<u64>,
    /// Blocks of the source the worker skipped as already stored (below
    /// the store's tip); the writer compares their hashes with the store's.
    pub skipped: Vec<Skipped>,
    /// Why the source stops after `blocks`: the next block failed a check
    /// (or could not be read). The blocks before it are written first.
    pub error: Option<ImportError>,
}

/// A block of the source that the store already holds: only its number
/// and hash were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// The block number.
    pub number: BlockNumber,
    /// The source's hash of it.
    pub hash: B256,
    /// Its line in the chunk's origin, for sources made of lines.
    pub line: Option<u64>,
}

/// Stored blocks compared at once (reads in flight) with skipped ones.
const COMPARE_IN_FLIGHT: usize = 16;

impl Chunk {
    /// The blocks verified before a failure, and the failure.
    pub fn failed_after(
        blocks: Vec<BlockData>,
        progress: u64,
        origin: String,
        skipped: Vec<Skipped>,
        error: ImportError,
    ) -> Self {
        Self { blocks, progress, origin, skipped, error: Some(error), lines: Vec::new() }
    }
}

/// What a worker or a fetch produces.
pub type ChunkResult = Result<Chunk, ImportError>;

/// Worker threads for CPU-heavy stages: one per core but one, which is left
/// to the store's writer (and at least one). On 2 cores, a second worker
/// took CPU from the writer and the JSON import of W1 into the embedded
/// store fell from ~420 to ~385 blocks/s.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)).max(1)
}

/// Runs `work` over `jobs` on `workers` threads and sends each job's result
/// receiver into `out` in job order. Blocks the calling thread (call it from
/// `spawn_blocking`), which reads `jobs`. Stops early when `out` is closed
/// (the writer stopped) or `jobs` yields an error (sent on as that position's
/// result). A panic in `work` becomes that job's error.
pub fn run_parallel<J, I, F>(
    jobs: I,
    workers: usize,
    work: F,
    out: &mpsc::Sender<oneshot::Receiver<ChunkResult>>,
) where
    J: Send,
    I: IntoIterator<Item = Result<J, ImportError>>,
    F: Fn(J) -> ChunkResult + Sync,
{
    let workers = workers.max(1);
    let (job_tx, job_rx) =
        std::sync::mpsc::sync_channel::<(J, oneshot::Sender<ChunkResult>)>(workers);
    let job_rx = parking_lot::Mutex::new(job_rx);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (job_rx, work) = (&job_rx, &work);
            scope.spawn(move || {
                loop {
                    // The guard is a temporary: dropped before the work runs.
                    let Ok((job, reply)) = job_rx.lock().recv() else { return };
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(job)))
                        .unwrap_or_else(|panic| {
                            Err(ImportError::Panicked(coldchain::error::panic_message(&*panic)))
                        });
                    // The writer may have stopped; then nobody wants it.
                    let _ = reply.send(result);
                }
            });
        }
        for job in jobs {
            let (tx, rx) = oneshot::channel();
            if out.blocking_send(rx).is_err() {
                break;
            }
            match job {
                Ok(job) => {
                    if job_tx.send((job, tx)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            }
        }
        drop(job_tx);
    });
}

/// The chunks sent by [`run_parallel`], in job order.
pub fn ordered(
    rx: mpsc::Receiver<oneshot::Receiver<ChunkResult>>,
) -> impl Stream<Item = ChunkResult> + Unpin + Send {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        let next = rx.recv().await?;
        let result = next.await.unwrap_or_else(|_| {
            Err(ImportError::Panicked("a worker stopped without an answer".to_owned()))
        });
        Some((result, rx))
    }))
}

/// The capacity (in jobs) of the ordered queue between the workers and the
/// writer: enough for every worker to have a job done and one queued, and for
/// two write batches, so that the workers keep going while the store
/// writes a batch.
pub fn queue_capacity(workers: usize, blocks_per_job: usize, batch: usize) -> usize {
    (2 * workers.max(1) + 2).max(2 * batch.div_ceil(blocks_per_job.max(1)) + 2)
}

/// Writes queued in the store at once: one being written while the next one
/// waits, so the store never waits for the writer.
const WRITES_IN_FLIGHT: usize = 2;

/// What an import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Blocks appended.
    pub blocks: u64,
    /// Transactions in them.
    pub transactions: u64,
    /// Logs in them.
    pub logs: u64,
    /// Blocks drained because the node's chain changed (`--follow`).
    pub reorged: u64,
    /// Blocks of the source already in the store (a resumed import).
    pub skipped: u64,
}

impl ImportStats {
    /// Adds another run's counts.
    pub fn merge(&mut self, other: ImportStats) {
        self.blocks += other.blocks;
        self.transactions += other.transactions;
        self.logs += other.logs;
        self.reorged += other.reorged;
        self.skipped += other.skipped;
    }

    /// The one-line summary every import ends with.
    pub fn summary(&self, verb: &str, elapsed: Duration, tip: Option<BlockNumHash>) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { self.blocks as f64 / secs } else { 0.0 };
        let mut line = format!(
            "{verb}: {} blocks, {} transactions, {} logs in {secs:.2}s ({rate:.0} blocks/s)",
            self.blocks, self.transactions, self.logs
        );
        if self.skipped > 0 {
            line.push_str(&format!(", {} already stored", self.skipped));
        }
        if self.reorged > 0 {
            line.push_str(&format!(", {} unwound by reorgs", self.reorged));
        }
        match tip {
            Some(t) => line.push_str(&format!("; store tip {} ({})", t.number, t.hash)),
            None => line.push_str("; the store is empty"),
        }
        line
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal (or
/// `show` is false). `unit` names what `len` counts.
pub fn progress_bar(show: bool, len: Option<u64>, prefix: &str, bytes: bool) -> ProgressBar {
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    if !show || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = match (len.is_some(), bytes) {
        (true, true) => {
            "{spinner} {prefix} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} ETA {eta} {msg}"
        }
        (true, false) => {
            "{spinner} {prefix} [{elapsed_precise}] [{wide_bar}] {pos}/{len} blocks ETA {eta} {msg}"
        }
        (false, _) => "{spinner} {prefix} [{elapsed_precise}] {msg}",
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(prefix.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Appends blocks in order, in batches, one batch in flight; see the
/// [module docs](self).
pub struct Writer<'h, B> {
    handle: &'h ColdStorage<B>,
    batch: usize,
    /// The store's tip when the writer started.
    start_tip: Option<BlockNumHash>,
    /// The last block accepted (queued or pending).
    prev: Option<BlockNumHash>,
    pending: Vec<BlockData>,
    pending_progress: u64,
    inflight: std::collections::VecDeque<InFlight>,
    /// The highest block known durable.
    durable: Option<BlockNumHash>,
    /// A write failed: nothing more is written.
    write_failed: bool,
    stats: ImportStats,
    bar: ProgressBar,
    started: Instant,
    /// Stop after this block.
    to: Option<BlockNumber>,
}

struct InFlight {
    write: PendingWrite,
    first: BlockNumber,
    last: BlockNumHash,
    stats: ImportStats,
    progress: u64,
}

/// Why [`Writer::drain`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The source ended (or `to` was reached).
    Done,
    /// The cancellation token fired.
    Cancelled,
}

impl<'h, B: ColdBackend> Writer<'h, B> {
    /// A writer that continues the store's tip `tip` (read it with
    /// `handle.tip()`), `batch` blocks per write. Blocks at or below `tip`
    /// are skipped (a source re-read after an interruption), but the one at
    /// the tip must be the stored one.
    pub fn new(
        handle: &'h ColdStorage<B>,
        tip: Option<BlockNumHash>,
        batch: usize,
        bar: ProgressBar,
    ) -> Self {
        Self {
            handle,
            batch: batch.max(1),
            start_tip: tip,
            prev: tip,
            pending: Vec::new(),
            pending_progress: 0,
            inflight: std::collections::VecDeque::new(),
            durable: tip,
            write_failed: false,
            stats: ImportStats::default(),
            bar,
            started: Instant::now(),
            to: None,
        }
    }

    /// Stops accepting blocks above `to` (they are ignored).
    pub fn stop_after(mut self, to: Option<BlockNumber>) -> Self {
        self.to = to;
        self
    }

    /// What was written so far.
    pub fn stats(&self) -> ImportStats {
        self.stats
    }

    /// Whether `to` was reached.
    pub fn reached_end(&self) -> bool {
        matches!((self.to, self.prev), (Some(to), Some(p)) if p.number >= to)
    }

    /// Feeds every chunk of `source` to the writer until it ends, fails, or
    /// `cancel` fires; then flushes and waits for every write. A refused
    /// block (it failed a check, or does not extend the chain) or a failed
    /// source stops it after every block before it is written; see the
    /// [module docs](self).
    pub async fn drain(
        &mut self,
        mut source: impl Stream<Item = ChunkResult> + Unpin,
        cancel: &CancellationToken,
    ) -> Result<Ended, ImportError> {
        let ended = loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => break Ended::Cancelled,
                next = source.next() => next,
            };
            let Some(chunk) = next else { break Ended::Done };
            let mut chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => return Err(self.stop_with(e).await),
            };
            let failure = chunk.error.take();
            if let Err(e) = self.push_chunk(chunk).await {
                return Err(self.stop_with(e).await);
            }
            if let Some(e) = failure {
                return Err(self.stop_with(e).await);
            }
            if self.reached_end() {
                break Ended::Done;
            }
        };
        self.finish().await?;
        Ok(ended)
    }

    /// Stops after `error`: every block accepted so far (verified and
    /// linked) is written, unless a write failed; then the first failure in
    /// block order is returned.
    async fn stop_with(&mut self, error: ImportError) -> ImportError {
        // A failed write is the first failure: the writes queued after it
        // fail only because it did ("does not extend the store").
        let from_write = self.write_failed;
        match self.finish().await {
            Err(write) if !from_write => write,
            _ => error,
        }
    }

    /// Accepts the blocks of one chunk.
    pub async fn push_chunk(&mut self, chunk: Chunk) -> Result<(), ImportError> {
        let Chunk { blocks, progress, origin, skipped, error: _, lines } = chunk;
        self.check_stored(&skipped, &origin).await?;
        self.stats.skipped += skipped.len() as u64;
        for (i, block) in blocks.into_iter().enumerate() {
            match lines.get(i) {
                Some(line) => self.push(block, &format!("{origin} line {line}")).await?,
                None => self.push(block, &origin).await?,
            }
        }
        self.pending_progress = progress;
        if self.pending.is_empty() && self.inflight.is_empty() {
            // Everything of this chunk was skipped or already written.
            self.bar.set_position(progress);
        }
        Ok(())
    }

    /// Checks that the store holds the blocks the source skipped: a source
    /// of another chain whose blocks all lie below the store's tip is
    /// refused rather than counted as "already stored". Blocks below the
    /// store's first block are not compared.
    pub async fn check_stored(&self, skipped: &[Skipped], origin: &str) -> Result<(), ImportError> {
        let handle = self.handle;
        let mut stored = futures::stream::iter(skipped.iter().copied())
            .map(|s| async move { (s, handle.header(s.number).await) })
            .buffered(COMPARE_IN_FLIGHT);
        while let Some((skipped, header)) = stored.next().await {
            let header = header.map_err(|e| {
                ImportError::store(format!("reading block {} to compare it", skipped.number), e)
            })?;
            if let Some(header) = header
                && header.hash() != skipped.hash
            {
                return Err(ImportError::Diverged {
                    origin: match skipped.line {
                        Some(line) => format!("{origin} line {line}"),
                        None => origin.to_owned(),
                    },
                    number: skipped.number,
                    store_hash: header.hash(),
                    source_hash: skipped.hash,
                });
            }
        }
        Ok(())
    }

    /// Accepts one block: checks that it extends the last one, then queues
    /// it; writes a batch when one is full.
    pub async fn push(&mut self, block: BlockData, origin: &str) -> Result<(), ImportError> {
        let number = block.number();
        if self.to.is_some_and(|to| number > to) {
            return Ok(());
        }
        if let Some(tip) = self.start_tip
            && number <= tip.number
            && self.prev == self.start_tip
        {
            if number == tip.number && block.hash() != tip.hash {
                return Err(ImportError::Diverged {
                    origin: origin.to_owned(),
                    number,
                    store_hash: tip.hash,
                    source_hash: block.hash(),
                });
            }
            self.stats.skipped += 1;
            return Ok(());
        }
        if let Some(prev) = self.prev {
            if number != prev.number + 1 {
                if number > prev.number + 1 {
                    return Err(ImportError::Gap {
                        origin: origin.to_owned(),
                        expected: prev.number + 1,
                        got: number,
                    });
                }
                return Err(ImportError::Mismatch {
                    origin: origin.to_owned(),
                    number,
                    field: "number",
                    expected: (prev.number + 1).to_string(),
                    got: number.to_string(),
                });
            }
            if block.header.parent_hash != prev.hash {
                return Err(ImportError::Mismatch {
                    origin: origin.to_owned(),
                    number,
                    field: "parentHash",
                    expected: format!("{} (the hash of block {})", prev.hash, prev.number),
                    got: block.header.parent_hash.to_string(),
                });
            }
        }
        self.prev = Some(block.num_hash());
        self.pending.push(block);
        if self.pending.len() >= self.batch {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues the pending blocks as one write, after the write in flight.
    pub async fn flush(&mut self) -> Result<(), ImportError> {
        if self.write_failed {
            self.pending.clear();
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        while self.inflight.len() >= WRITES_IN_FLIGHT {
            self.wait_oldest().await?;
        }
        let blocks = std::mem::take(&mut self.pending);
        let mut stats = ImportStats::default();
        for b in &blocks {
            stats.blocks += 1;
            stats.transactions += b.transactions.len() as u64;
            stats.logs += b.receipts.iter().map(|r| r.logs().len() as u64).sum::<u64>();
        }
        let first = blocks.first().map_or(0, BlockData::number);
        let last = blocks.last().map(BlockData::num_hash).unwrap_or_default();
        let write = match self.handle.dispatch_append_blocks(blocks) {
            Ok(write) => write,
            // Another writer filled the queue: the waiting variant cannot
            // be used (the blocks moved), so report it plainly.
            Err(e) => {
                self.write_failed = true;
                return Err(ImportError::store(
                    format!("appending blocks {first}..={}", last.number),
                    e,
                ));
            }
        };
        self.inflight.push_back(InFlight {
            write,
            first,
            last,
            stats,
            progress: self.pending_progress,
        });
        Ok(())
    }

    /// Waits for every queued write; the first failure wins.
    async fn wait_all(&mut self) -> Result<(), ImportError> {
        let mut result = Ok(());
        while !self.inflight.is_empty() {
            let r = self.wait_oldest().await;
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Waits for the oldest queued write.
    async fn wait_oldest(&mut self) -> Result<(), ImportError> {
        let Some(InFlight { write, first, last, stats, progress }) = self.inflight.pop_front()
        else {
            return Ok(());
        };
        match write.await {
            Ok(_) => {
                self.durable = Some(last);
                self.stats.merge(stats);
                self.bar.set_position(progress);
                let secs = self.started.elapsed().as_secs_f64().max(1e-9);
                self.bar.set_message(format!(
                    "block {} | {} blocks, {} txs | {:.0} blocks/s",
                    last.number,
                    self.stats.blocks,
                    self.stats.transactions,
                    self.stats.blocks as f64 / secs
                ));
                Ok(())
            }
            Err(e) => {
                // The blocks of this write are not in the store, nor will
                // any after them be.
                self.write_failed = true;
                self.pending.clear();
                self.prev = self.durable;
                Err(ImportError::store(format!("appending blocks {first}..={}", last.number), e))
            }
        }
    }

    /// Writes what is pending and waits for every write.
    pub async fn finish(&mut self) -> Result<(), ImportError> {
        self.flush().await?;
        self.wait_all().await
    }
}

/// Whether a store error means "the block does not extend the tip".
pub fn is_link_error(e: &ImportError) -> bool {
    matches!(
        e,
        ImportError::Mismatch { field: "parentHash", .. }
            | ImportError::Store { source: ColdError::ParentMismatch { .. }, .. }
    )
}
