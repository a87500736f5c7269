//! `coldchain bench`: the reference workload W1 through the public handle.
//!
//! Every figure is measured through [`ColdStorage`], as users see it, after a
//! warm-up, over several runs; the report gives medians and p99s, and
//! `--compare` gives the ratio of each figure to an earlier `--json` result
//! (ratios from one machine are the only comparisons this tool makes).
//!
//! Order of work: I1 appends the first blocks one per write, I2 the rest 100
//! per write; then the queries Q1–Q4 and Q6 on the full chain, Q5 (Q4 while
//! appending a block every 100 ms past the chain), and R1 (truncate or drain
//! the last 64 blocks, then append them back). Ingest starts after a `sync`
//! of the machine's dirty pages. I1 and I2 report a sustained rate (blocks
//! over the time of all their writes) and, as an extra, the median write's
//! rate. Nothing here asserts a time.
//!
//! `--scale` measures how these figures change as the store grows: see
//! [`scale`].

use crate::store::{OnBackend, StoreSpec, disk_usage, run_on, settle};
use alloy::primitives::{B256, BlockNumber};
use coldchain::{
    BlockData, ColdBackend, ColdStorage, HeaderSpec, LogFilter, ReceiptSpec, StreamParams, TxSpec,
};
use coldchain_w1::{W1, W1Params, W1Rng};
use eyre::{Result, WrapErr, bail};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
mod scale;

use std::{
    collections::{BTreeMap, VecDeque},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

/// One operation of WORKLOAD.md.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize, Deserialize,
)]
#[value(rename_all = "UPPER")]
pub enum Op {
    /// Append, one block per write.
    I1,
    /// Append, 100 blocks per write.
    I2,
    /// get_logs: hot contract, 100-block windows.
    Q1,
    /// get_logs: a cold contract over the whole chain.
    Q2,
    /// get_logs: two topics over the whole chain.
    Q3,
    /// Point reads at 64 concurrent callers.
    Q4,
    /// Q4's callers, each reading a tx by a hash the store does not hold.
    #[value(name = "Q4u")]
    Q4u,
    /// Q4 while appending a block every 100 ms.
    Q5,
    /// stream_logs: hot contract, whole chain.
    Q6,
    /// Truncate / drain of the last 64 blocks.
    R1,
}

/// Arguments of `coldchain bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The store: `mem`, a path for the embedded store (must not exist or be
    /// empty), or `postgres://...` (an empty database).
    #[arg(long, default_value = "mem")]
    pub store: StoreSpec,
    /// Blocks in the chain.
    #[arg(long, default_value_t = 5_000)]
    pub blocks: u64,
    /// Transactions per block.
    #[arg(long, default_value_t = 150)]
    pub txs_per_block: u64,
    /// Operations to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "I1,I2,Q1,Q2,Q3,Q4,Q4u,Q5,Q6,R1",
        ignore_case = true
    )]
    pub ops: Vec<Op>,
    /// Runs of each query operation (the median is reported); ingest runs once.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Length of one Q4 / Q5 run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Concurrent callers in Q4 / Q5.
    #[arg(long, default_value_t = 64)]
    pub tasks: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Print each figure's ratio to this earlier JSON result.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Scale mode: store sizes in blocks, comma-separated and increasing
    /// (e.g. `5000,50000,250000`). Ingests I2 up to the largest and runs the
    /// query ops at each size; replaces `--blocks`.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["blocks", "compare"])]
    pub scale: Vec<u64>,
}

/// One measured figure set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OpResult {
    /// Operation id, e.g. `Q2` or `R1 drain`.
    pub op: String,
    /// Samples behind the figures.
    pub samples: usize,
    /// Median latency of one sample, milliseconds.
    pub median_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Throughput (blocks/s for appends, ops/s for reads, logs/s for Q6).
    pub rate: Option<f64>,
    /// Unit of `rate`.
    pub unit: String,
    /// Further figures by name.
    pub extra: BTreeMap<String, f64>,
}

/// The whole report, as `--json` writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The command line.
    pub command: String,
    /// The store kind.
    pub store: String,
    /// Blocks in the chain.
    pub blocks: u64,
    /// Transactions per block.
    pub txs_per_block: u64,
    /// Cores and load when the run started.
    pub machine: BTreeMap<String, String>,
    /// Bytes on disk per block after ingest, where measurable.
    pub bytes_per_block: Option<f64>,
    /// Figures per operation.
    pub results: Vec<OpResult>,
}

/// Runs `coldchain bench`.
pub async fn run(args: BenchArgs) -> Result<()> {
    if args.runs == 0 || args.blocks < 200 {
        bail!("bench needs --runs >= 1 and --blocks >= 200");
    }
    if let StoreSpec::Path(p) = &args.store
        && p.exists()
        && std::fs::read_dir(p).map(|mut d| d.next().is_some()).unwrap_or(true)
    {
        bail!(
            "{} exists and is not empty: bench needs a fresh store (it writes and truncates)",
            p.display()
        );
    }
    if !args.scale.is_empty() {
        return scale::run(args).await;
    }
    let previous = match &args.compare {
        Some(path) => Some(read_report(path)?),
        None => None,
    };
    let store = args.store.clone();
    let report = run_on(&store, Bench(args.clone())).await?;
    print_report(&report, previous.as_ref());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .wrap_err_with(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn read_report(path: &PathBuf) -> Result<Report> {
    let bytes = std::fs::read(path).wrap_err_with(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .wrap_err_with(|| format!("{} is not a bench JSON report", path.display()))
}

struct Bench(BenchArgs);

/// Most tx hashes [`Targets`] keeps: a uniform sample (reservoir) of the
/// chain's hashes beyond that, so that memory stays bounded at any size
/// (32 MiB; a 5,000-block W1 chain has 750,000 and keeps them all).
const TX_TARGETS: usize = 1 << 20;

/// What the queries need to know about the chain.
struct Targets {
    /// The chain's tx hashes, or a uniform sample of [`TX_TARGETS`] of them.
    tx_hashes: Vec<B256>,
    /// Tx hashes seen, sampled or not.
    txs_seen: u64,
    /// Draws the sample's replacements.
    sampler: W1Rng,
    block_hashes: Vec<B256>,
    first: BlockNumber,
    /// The most recent appended blocks, to append back after R1.
    recent: VecDeque<BlockData>,
}

impl Targets {
    fn new(first: BlockNumber, seed: u64) -> Self {
        Self {
            tx_hashes: Vec::new(),
            txs_seen: 0,
            sampler: W1Rng::new(seed ^ 0x5A3D_7E11),
            block_hashes: Vec::new(),
            first,
            recent: VecDeque::new(),
        }
    }

    fn record(&mut self, blocks: &[BlockData]) {
        for b in blocks {
            self.block_hashes.push(b.hash());
            for tx in &b.transactions {
                self.txs_seen += 1;
                let hash = *tx.inner().tx_hash();
                if self.tx_hashes.len() < TX_TARGETS {
                    self.tx_hashes.push(hash);
                } else {
                    let slot = self.sampler.below(self.txs_seen) as usize;
                    if let Some(kept) = self.tx_hashes.get_mut(slot) {
                        *kept = hash;
                    }
                }
            }
            self.recent.push_back(b.clone());
            if self.recent.len() > 64 {
                self.recent.pop_front();
            }
        }
    }

    /// Blocks in the chain.
    fn len(&self) -> u64 {
        self.block_hashes.len() as u64
    }

    /// The number of the next block to append.
    fn next(&self) -> BlockNumber {
        self.first + self.len()
    }

    fn last(&self) -> BlockNumber {
        self.next() - 1
    }

    /// The hash of the last block ([`B256::ZERO`] before the first).
    fn tip_hash(&self) -> B256 {
        self.block_hashes.last().copied().unwrap_or(B256::ZERO)
    }
}

/// The W1 parameters of a bench chain of `blocks` blocks.
fn w1_params(args: &BenchArgs, blocks: u64) -> W1Params {
    W1Params { blocks, txs_per_block: args.txs_per_block, seed: args.seed, ..W1Params::default() }
}

/// The handle bench measures through, on a store that must be empty.
async fn bench_handle<B: ColdBackend>(backend: B, store: &StoreSpec) -> Result<ColdStorage<B>> {
    let handle = ColdStorage::builder(backend)
        .read_timeout(Duration::from_secs(120))
        .write_timeout(Duration::from_secs(300))
        .stream_timeout(Duration::from_secs(1800))
        .build()
        .await?;
    if handle.tip().await?.is_some() {
        bail!("the store {store} is not empty: bench needs a fresh store");
    }
    Ok(handle)
}

impl OnBackend for Bench {
    type Output = Report;

    fn creates(&self) -> bool {
        true
    }

    async fn run<B: ColdBackend>(self, backend: B, store: &StoreSpec) -> Result<Report> {
        let args = self.0;
        let handle = bench_handle(backend, store).await?;
        let w1 = Arc::new(W1::try_new(w1_params(&args, args.blocks))?);
        handle.set_chain_id(w1.params().chain_id).await?;
        let mut results = Vec::new();
        let targets = Arc::new(Shared::new(Targets::new(w1.numbers().start, args.seed)));

        // Ingest: I1 then I2, after the writeback of earlier files.
        flush_page_cache().await;
        let i1_blocks = if args.ops.contains(&Op::I1) { (args.blocks / 5).min(1_000) } else { 0 };
        eprintln!(
            "bench: generating and appending {} W1 blocks ({} one per write)",
            args.blocks, i1_blocks
        );
        if i1_blocks > 0 {
            results.push(append_singly(&handle, &w1, &targets, i1_blocks).await?);
        }
        let mut writes = Vec::new();
        append_batches(&handle, &w1, &targets, w1.numbers().end, &mut writes).await?;
        if args.ops.contains(&Op::I2) && !writes.is_empty() {
            results.push(batch_figures("I2", &writes));
        }
        settle(store).await;
        let bytes_per_block = disk_usage(store).await.map(|b| b as f64 / args.blocks as f64);

        results.extend(measure(&handle, &w1, &targets, &args).await?);
        handle.shutdown().await;
        Ok(Report {
            command: std::env::args().collect::<Vec<_>>().join(" "),
            store: store_kind(store),
            blocks: args.blocks,
            txs_per_block: args.txs_per_block,
            machine: machine(),
            bytes_per_block,
            results,
        })
    }
}

fn store_kind(store: &StoreSpec) -> String {
    match store {
        StoreSpec::Mem => "mem".into(),
        StoreSpec::Path(_) => "embedded".into(),
        StoreSpec::Postgres(_) => "postgres".into(),
    }
}

/// Runs the query and reorg ops of `args.ops` (all but I1 and I2) on the
/// chain as it is, in the order Q1, Q2, Q3, Q4, Q4u, Q6, Q5, R1. `w1`'s
/// length must be the chain's: Q3's topic comes from its middle block. Q5
/// appends blocks (recorded in `targets`); R1 truncates and appends back.
async fn measure<B: ColdBackend>(
    handle: &ColdStorage<B>,
    w1: &Arc<W1>,
    targets: &Arc<Shared<Targets>>,
    args: &BenchArgs,
) -> Result<Vec<OpResult>> {
    let has = |op| args.ops.contains(&op);
    let mut results = Vec::new();
    let mut rng = W1Rng::new(args.seed ^ 0xBE7C_4000);
    let (first, end) = {
        let t = targets.lock();
        (t.first, t.last())
    };
    if has(Op::Q1) {
        let windows: Vec<u64> = distinct_windows(&mut rng, first, end, 50);
        let hot = w1.hot_contract();
        let queries: Vec<LogFilter> =
            windows.iter().map(|s| LogFilter::range(*s, s + 99).address(hot)).collect();
        results.push(log_queries(handle, "Q1", &queries, args.runs).await?);
    }
    if has(Op::Q2) {
        let q = LogFilter::range(first, end).address(w1.contract(1_900));
        results.push(log_queries(handle, "Q2", &vec![q; 10], args.runs).await?);
    }
    if has(Op::Q3) {
        let q = LogFilter::range(first, end)
            .topic(0, vec![w1.signature(0)])
            .topic(2, vec![w1.q3_topic2()]);
        results.push(log_queries(handle, "Q3", &vec![q; 10], args.runs).await?);
    }
    if has(Op::Q4) {
        results.push(point_reads(handle, targets, args, Reads::Known).await?);
    }
    if has(Op::Q4u) {
        results.push(point_reads(handle, targets, args, Reads::UnknownTx).await?);
    }
    if has(Op::Q6) {
        results.push(stream_hot(handle, w1, targets, args.runs).await?);
    }
    if has(Op::Q5) {
        results.push(point_reads(handle, targets, args, Reads::WhileAppending(w1)).await?);
    }
    if has(Op::R1) {
        results.extend(reorgs(handle, targets, args.runs).await?);
    }
    Ok(results)
}

type Shared<T> = parking_lot::Mutex<T>;

/// Writes back the machine's dirty pages (`sync`) before ingest is timed:
/// the writeback of files from an earlier run (a deleted store, an export)
/// competes with the store's commits and made I2 vary by up to 3x between
/// runs of one build. Best effort: without a `sync` program the bench says
/// so and goes on.
async fn flush_page_cache() {
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(|| std::process::Command::new("sync").status()).await;
    match status {
        Ok(Ok(s)) if s.success() => {
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "bench: sync done");
        }
        Ok(Ok(s)) => eprintln!("bench: `sync` exited with {s}; ingest figures may be skewed"),
        Ok(Err(e)) => eprintln!("bench: cannot run `sync` ({e}); ingest figures may be skewed"),
        Err(e) => eprintln!("bench: `sync` did not finish ({e}); ingest figures may be skewed"),
    }
}

/// I1: appends the next `count` W1 blocks, one per write.
async fn append_singly<B: ColdBackend>(
    handle: &ColdStorage<B>,
    w1: &W1,
    targets: &Shared<Targets>,
    count: u64,
) -> Result<OpResult> {
    let (next, parent) = {
        let t = targets.lock();
        (t.next(), t.tip_hash())
    };
    let blocks = w1.chunk_par(next, count, parent, 0);
    targets.lock().record(&blocks);
    let mut latencies = Vec::with_capacity(blocks.len());
    let mut rates = Vec::with_capacity(blocks.len());
    for block in blocks {
        let t = Instant::now();
        handle.append_block(block).await?;
        let elapsed = t.elapsed();
        latencies.push(elapsed);
        rates.push(1.0 / elapsed.as_secs_f64().max(1e-9));
    }
    Ok(ingest_figures("I1", count, &latencies, &mut rates))
}

/// One timed write of I2.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BatchWrite {
    /// Blocks in the chain before this write.
    offset: u64,
    /// Blocks written.
    blocks: u64,
    /// Time of the write.
    elapsed: Duration,
}

/// I2: appends W1 blocks, 100 per write, until the next block would be
/// `end`, recording each write in `writes`. Each batch is generated before
/// its write is timed.
async fn append_batches<B: ColdBackend>(
    handle: &ColdStorage<B>,
    w1: &W1,
    targets: &Shared<Targets>,
    end: BlockNumber,
    writes: &mut Vec<BatchWrite>,
) -> Result<()> {
    loop {
        let (next, parent, offset) = {
            let t = targets.lock();
            (t.next(), t.tip_hash(), t.len())
        };
        if next >= end {
            return Ok(());
        }
        let count = 100.min(end - next);
        let blocks = w1.chunk_par(next, count, parent, 0);
        targets.lock().record(&blocks);
        let t = Instant::now();
        handle.append_blocks(blocks).await?;
        writes.push(BatchWrite { offset, blocks: count, elapsed: t.elapsed() });
    }
}

/// The figures of I2 from its writes.
fn batch_figures(op: &str, writes: &[BatchWrite]) -> OpResult {
    let latencies: Vec<Duration> = writes.iter().map(|w| w.elapsed).collect();
    let mut rates: Vec<f64> =
        writes.iter().map(|w| w.blocks as f64 / w.elapsed.as_secs_f64().max(1e-9)).collect();
    ingest_figures(op, writes.iter().map(|w| w.blocks).sum(), &latencies, &mut rates)
}

/// The figures of an ingest op. Its rate is sustained: the blocks over the
/// time of all writes, the slow ones included. The median write's rate is
/// an extra; on the embedded store it leaves out the writes that also
/// merge the index journal (about one in two of I2's), which take most of
/// the time, so it overstates what a long import can reach.
fn ingest_figures(op: &str, blocks: u64, latencies: &[Duration], rates: &mut [f64]) -> OpResult {
    let total: Duration = latencies.iter().sum();
    let sustained = blocks as f64 / total.as_secs_f64().max(1e-9);
    let mut r = figures(op, latencies, Some(sustained), "blocks/s");
    r.extra.insert("median write blocks/s".into(), median_f(rates));
    r
}

fn distinct_windows(rng: &mut W1Rng, first: u64, last: u64, n: usize) -> Vec<u64> {
    let span = last.saturating_sub(first + 99) + 1;
    let mut out: Vec<u64> = Vec::new();
    while out.len() < n.min(span as usize) {
        let s = first + rng.below(span);
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

async fn log_queries<B: ColdBackend>(
    handle: &ColdStorage<B>,
    op: &str,
    queries: &[LogFilter],
    runs: usize,
) -> Result<OpResult> {
    const MAX_LOGS: usize = 10_000_000;
    let mut logs = 0usize;
    for q in queries {
        logs = handle.get_logs(q.clone(), MAX_LOGS).await?.len(); // warm-up
    }
    let mut latencies = Vec::new();
    let cpu = CpuClock::now();
    for _ in 0..runs {
        for q in queries {
            let t = Instant::now();
            let n = handle.get_logs(q.clone(), MAX_LOGS).await?.len();
            latencies.push(t.elapsed());
            logs = n;
        }
    }
    let mut r = figures(op, &latencies, None, "");
    cpu.record(latencies.len(), &mut r);
    r.extra.insert("logs (last query)".into(), logs as f64);
    Ok(r)
}

/// The kinds of point read in Q4 and Q5, in the order of their draw.
const POINT_READS: [&str; 5] =
    ["tx by hash", "receipt by hash", "header by number", "header by hash", "block receipts"];

/// What the callers of [`point_reads`] read.
#[derive(Clone, Copy)]
enum Reads<'a> {
    /// Q4: the five kinds of [`POINT_READS`] on stored targets.
    Known,
    /// Q4u: a tx by a random hash, which the store does not hold (the
    /// lookup a wallet polling for a pending tx makes).
    UnknownTx,
    /// Q5: Q4 while a block of this chain is appended every 100 ms.
    WhileAppending(&'a Arc<W1>),
}

async fn point_reads<B: ColdBackend>(
    handle: &ColdStorage<B>,
    targets: &Arc<Shared<Targets>>,
    args: &BenchArgs,
    reads: Reads<'_>,
) -> Result<OpResult> {
    let (op, writes, unknown) = match reads {
        Reads::Known => ("Q4", None, false),
        Reads::UnknownTx => ("Q4u", None, true),
        Reads::WhileAppending(w1) => ("Q5", Some(w1), false),
    };
    let duration = Duration::from_secs_f64(args.seconds.max(0.05));
    let mut all = Vec::new();
    let mut write_latencies = Vec::new();
    let mut total_ops = 0usize;
    let mut total_time = 0.0;
    let cpu = CpuClock::now();
    for run in 0..args.runs {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = writes.map(|w1| {
            let handle = handle.clone();
            let targets = targets.clone();
            let stop = stop.clone();
            let w1 = w1.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    tick.tick().await;
                    let (number, parent) = {
                        let t = targets.lock();
                        (t.next(), t.tip_hash())
                    };
                    let block = w1.block(number, parent);
                    let t = Instant::now();
                    handle.append_block(block.clone()).await?;
                    lat.push(t.elapsed());
                    targets.lock().record(std::slice::from_ref(&block));
                }
                Ok::<_, coldchain::ColdError>(lat)
            })
        });
        let started = Instant::now();
        let mut tasks = Vec::new();
        for task in 0..args.tasks {
            let handle = handle.clone();
            let targets = targets.clone();
            let mut rng = W1Rng::new(args.seed ^ ((run as u64) << 32) ^ task as u64);
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while started.elapsed() < duration {
                    let (kind, tx, number, hash) = if unknown {
                        (0, rng.b256(), 0, B256::ZERO)
                    } else {
                        let t = targets.lock();
                        let i = rng.below(t.block_hashes.len() as u64);
                        let tx = t.tx_hashes[rng.below(t.tx_hashes.len() as u64) as usize];
                        (rng.below(5), tx, t.first + i, t.block_hashes[i as usize])
                    };
                    let t = Instant::now();
                    match kind {
                        0 => drop(handle.transaction(TxSpec::Hash(tx)).await?),
                        1 => drop(handle.receipt(ReceiptSpec::TxHash(tx)).await?),
                        2 => drop(handle.header(HeaderSpec::Number(number)).await?),
                        3 => drop(handle.header(HeaderSpec::Hash(hash)).await?),
                        _ => drop(handle.block_receipts(HeaderSpec::Number(number)).await?),
                    }
                    lat.push((kind, t.elapsed()));
                }
                Ok::<_, coldchain::ColdError>(lat)
            }));
        }
        for t in tasks {
            let lat = t.await??;
            total_ops += lat.len();
            all.extend(lat);
        }
        total_time += started.elapsed().as_secs_f64();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(w) = writer {
            write_latencies.extend(w.await??);
        }
    }
    let latencies: Vec<Duration> = all.iter().map(|(_, l)| *l).collect();
    let mut r = figures(op, &latencies, Some(total_ops as f64 / total_time), "ops/s");
    // Each kind's median: under concurrency mostly queueing, but with
    // `--tasks 1` the cost of one call of that kind.
    for (kind, name) in POINT_READS.iter().enumerate().take(if unknown { 0 } else { 5 }) {
        let of_kind: Vec<Duration> =
            all.iter().filter(|(k, _)| *k == kind as u64).map(|(_, l)| *l).collect();
        r.extra.insert(format!("median ms {name}"), figures(name, &of_kind, None, "").median_ms);
    }
    if writes.is_none() {
        // (Q5's CPU is the reads' and the appends'.)
        cpu.record(total_ops, &mut r);
    }
    if !write_latencies.is_empty() {
        let w = figures("write", &write_latencies, None, "");
        r.extra.insert("write median ms".into(), w.median_ms);
        r.extra.insert("write p99 ms".into(), w.p99_ms);
        r.extra.insert("blocks written".into(), write_latencies.len() as f64);
    }
    Ok(r)
}

/// CPU time used so far by this process and by the machine's PostgreSQL
/// server processes, from `/proc` (Linux; zero elsewhere): where an
/// operation's work is done, client or server. (On this project's VM it
/// varies between runs about as much as the wall-clock figures do.)
/// `/proc` counts in ticks of 10 ms (`USER_HZ`, 100 on Linux), so only
/// phases that use a second or more of CPU are reported.
#[derive(Debug, Clone, Copy)]
struct CpuClock {
    own: Duration,
    postgres: Duration,
}

/// Least CPU a phase must use for its per-operation figure to be reported.
const CPU_RESOLVED: Duration = Duration::from_secs(1);

impl CpuClock {
    fn now() -> Self {
        let own = proc_cpu("/proc/self/stat").map_or(Duration::ZERO, |(_, t)| t);
        let mut postgres = Duration::ZERO;
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                if let Some((comm, t)) = proc_cpu(entry.path().join("stat"))
                    && comm == "postgres"
                {
                    postgres += t;
                }
            }
        }
        Self { own, postgres }
    }

    /// Adds the CPU per operation since `self` to `r`: `cpu ms/op` for this
    /// process, and `server cpu ms/op` for PostgreSQL's processes when they
    /// did real work meanwhile (a tenth of [`CPU_RESOLVED`] or more, which
    /// an idle local server's housekeeping does not reach while the
    /// embedded store is measured; other work on the server inflates it).
    fn record(self, ops: usize, r: &mut OpResult) {
        let now = Self::now();
        let own = now.own.saturating_sub(self.own);
        let postgres = now.postgres.saturating_sub(self.postgres);
        if ops == 0 || own + postgres < CPU_RESOLVED {
            return;
        }
        let per_op = |t: Duration| t.as_secs_f64() * 1e3 / ops as f64;
        r.extra.insert("cpu ms/op".into(), per_op(own));
        if postgres >= CPU_RESOLVED / 10 {
            r.extra.insert("server cpu ms/op".into(), per_op(postgres));
        }
    }
}

/// The command name and the user plus system CPU time of the process whose
/// `stat` file is `path`.
fn proc_cpu(path: impl AsRef<std::path::Path>) -> Option<(String, Duration)> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// [`proc_cpu`] of the text of a `stat` file.
fn parse_stat(stat: &str) -> Option<(String, Duration)> {
    // "pid (comm) state ...": the name may hold spaces and parentheses.
    let (head, rest) = stat.rsplit_once(") ")?;
    let comm = head.split_once(" (")?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), utime 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, Duration::from_millis(utime.saturating_add(stime).saturating_mul(10))))
}

async fn stream_hot<B: ColdBackend>(
    handle: &ColdStorage<B>,
    w1: &W1,
    targets: &Arc<Shared<Targets>>,
    runs: usize,
) -> Result<OpResult> {
    let (first, last) = {
        let t = targets.lock();
        (t.first, t.last())
    };
    let filter = LogFilter::range(first, last).address(w1.hot_contract());
    let mut latencies = Vec::new();
    let mut firsts = Vec::new();
    let mut rates = Vec::new();
    let mut count = 0usize;
    for run in 0..=runs {
        let t = Instant::now();
        let mut stream = handle.stream_logs(filter.clone(), StreamParams::default()).await?;
        let mut n = 0usize;
        while let Some(item) = stream.next().await {
            item?;
            if n == 0 {
                firsts.push(t.elapsed());
            }
            n += 1;
        }
        let elapsed = t.elapsed();
        if run > 0 {
            // run 0 is the warm-up
            latencies.push(elapsed);
            rates.push(n as f64 / elapsed.as_secs_f64());
        }
        count = n;
    }
    let mut r = figures("Q6", &latencies, Some(median_f(&mut rates)), "logs/s");
    firsts.remove(0);
    r.extra.insert("time to first log ms".into(), median(&mut firsts).as_secs_f64() * 1e3);
    r.extra.insert("logs".into(), count as f64);
    Ok(r)
}

async fn reorgs<B: ColdBackend>(
    handle: &ColdStorage<B>,
    targets: &Arc<Shared<Targets>>,
    runs: usize,
) -> Result<Vec<OpResult>> {
    let mut truncate = Vec::new();
    let mut drain = Vec::new();
    for run in 0..runs * 2 {
        let (cut, back) = {
            let t = targets.lock();
            (t.last() - 64, t.recent.iter().cloned().collect::<Vec<_>>())
        };
        let t = Instant::now();
        if run % 2 == 0 {
            handle.truncate_above(cut).await?;
            truncate.push(t.elapsed());
        } else {
            let drained = handle.drain_above(cut).await?;
            drain.push(t.elapsed());
            if drained.len() != 64 {
                bail!("drain_above returned {} blocks, expected 64", drained.len());
            }
        }
        handle.append_blocks(back).await?;
    }
    Ok(vec![figures("R1 truncate", &truncate, None, ""), figures("R1 drain", &drain, None, "")])
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn median_f(samples: &mut [f64]) -> f64 {
    samples.sort_unstable_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(0.0)
}

fn figures(op: &str, samples: &[Duration], rate: Option<f64>, unit: &str) -> OpResult {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let pick = |q: f64| {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64() * 1e3
    };
    OpResult {
        op: op.to_owned(),
        samples: samples.len(),
        median_ms: pick(0.5),
        p99_ms: pick(0.99),
        rate,
        unit: unit.to_owned(),
        extra: BTreeMap::new(),
    }
}

fn machine() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(
        "cores".into(),
        std::thread::available_parallelism().map_or(0, |n| n.get()).to_string(),
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        m.insert("loadavg".into(), load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    }
    m.insert("profile".into(), if cfg!(debug_assertions) { "debug" } else { "release" }.into());
    m
}

fn print_report(report: &Report, previous: Option<&Report>) {
    println!(
        "W1 bench: store={} blocks={} txs/block={} machine={:?}",
        report.store, report.blocks, report.txs_per_block, report.machine
    );
    if let Some(b) = report.bytes_per_block {
        println!("bytes on disk per block: {:.0} ({:.1} KiB)", b, b / 1024.0);
    }
    println!(
        "{:<12} {:>8} {:>12} {:>12} {:>16}  extra",
        "op", "samples", "median ms", "p99 ms", "rate"
    );
    for r in &report.results {
        let rate = r.rate.map(|v| format!("{v:.0} {}", r.unit)).unwrap_or_default();
        let extra: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k}={v:.3}")).collect();
        println!(
            "{:<12} {:>8} {:>12.3} {:>12.3} {:>16}  {}",
            r.op,
            r.samples,
            r.median_ms,
            r.p99_ms,
            rate,
            extra.join(" ")
        );
    }
    if let Some(prev) = previous {
        println!(
            "\nratios to the earlier run (new / old; for latency lower is better, for rate higher):"
        );
        for r in &report.results {
            if let Some(p) = prev.results.iter().find(|p| p.op == r.op) {
                let ratio =
                    |a: f64, b: f64| if b > 0.0 { format!("{:.2}x", a / b) } else { "-".into() };
                let rate = match (r.rate, p.rate) {
                    (Some(a), Some(b)) => ratio(a, b),
                    _ => "-".into(),
                };
                println!(
                    "{:<12} median {:>8} p99 {:>8} rate {:>8}",
                    r.op,
                    ratio(r.median_ms, p.median_ms),
                    ratio(r.p99_ms, p.p99_ms),
                    rate
                );
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_from_stat_lines() {
        let line = "4242 (post (gres) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 1 0 123456 1000000 500 18446744073709551615";
        let (comm, cpu) = parse_stat(line).unwrap();
        assert_eq!(comm, "post (gres) x");
        assert_eq!(cpu, Duration::from_millis(3_250));
        assert!(parse_stat("4242 (short) S 1 2").is_none());
        assert!(parse_stat("garbage").is_none());
        // The real file parses.
        if cfg!(target_os = "linux") {
            assert!(proc_cpu("/proc/self/stat").is_some());
        }
    }

    #[test]
    fn ingest_rate_counts_the_slow_writes() {
        // Two fast writes of 100 blocks and one that also merged.
        let latencies = [10, 10, 80].map(Duration::from_millis);
        let mut rates = latencies.map(|l| 100.0 / l.as_secs_f64());
        let r = ingest_figures("I2", 300, &latencies, &mut rates);
        // 300 blocks in 100 ms; the median write alone says 10,000.
        assert!((r.rate.unwrap() - 3_000.0).abs() < 1e-6, "{:?}", r.rate);
        assert!((r.extra["median write blocks/s"] - 10_000.0).abs() < 1e-6);
    }
}
