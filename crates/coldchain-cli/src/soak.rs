//! `coldchain soak`: the production pattern the ancestor system died under,
//! compressed, through the public handle.
//!
//! - one W1 block dispatched fire-and-forget every `--append-every-ms`
//!   (`dispatch_append_blocks`, the `PendingWrite` dropped; `Backpressure`
//!   is counted and retried); the producer watches
//!   `last_unobserved_write_failure` and restarts from the durable tip after
//!   a reported failure, as a node would;
//! - `--readers` tasks (64) saturating the read permits with the Q4 mix of
//!   WORKLOAD.md and 100-block log queries of the hot contract;
//! - `--streams` log streams (8), every second one a slow consumer, every
//!   fourth one leaving early;
//! - every `--reorg-every` seconds a reorg: truncate the last
//!   `--reorg-depth` blocks, then append them again;
//! - with `--faults hang=P,panic=Q`, every backend call hangs past its
//!   deadline with probability P or panics with probability Q.
//!
//! The handle logs each timeout (WARN) and panic (ERROR); with faults on,
//! `RUST_LOG=error` or a redirect of stderr keeps the terminal readable.
//!
//! Figures (`--json`): `appended` writes dispatched, `acknowledged` of them
//! committed, `lost_writes` neither committed nor reported as failed (by the
//! store, by the handle's report of an unobserved failure), `backpressure`,
//! `timeouts` seen by callers, `tip_regressions` (the tip watch moved
//! backwards other than by our truncations), `wedged` (an operation waited
//! more than twice its deadline), `max_read_ms`, and the process's RSS
//! (`rss_*_mb`, and `rss_anon_*_mb` without file-backed pages such as the
//! embedded store's map) after a warm-up (a tenth of the run, at most a
//! minute) and at the end, each minute (`rss_per_minute_mb`), and its growth
//! under load (`rss_growth_pct`: the median of the last third of the minutes
//! over the median of the first third). Accounting is per dispatch: a dispatch counts as
//! acknowledged when the store committed an append of the same blocks, as
//! reported when the store failed it or the handle reported its blocks as a
//! failed write nobody awaited, and as lost otherwise (`lost_blocks` lists
//! the first).

pub mod faults;

use crate::store::{OnBackend, StoreSpec, run_on};
use alloy::{eips::BlockNumHash, primitives::B256};
use coldchain::{
    BlockData, ColdBackend, ColdError, ColdStorage, HeaderSpec, LogFilter, ReceiptSpec,
    StreamParams, TxSpec, handle::WriteTarget,
};
use coldchain_w1::{W1, W1Params, W1Rng};
use eyre::{Result, WrapErr, bail};
use faults::{FaultRates, Faulty};
use futures::StreamExt;
use parking_lot::Mutex;
use serde::Serialize;
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Arguments of `coldchain soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// The store: `mem`, a path for the embedded store (must not exist or be
    /// empty), or `postgres://...` (an empty database).
    #[arg(long, default_value = "mem")]
    pub store: StoreSpec,
    /// How long to run (fractions allowed, e.g. 0.1 for 6 s).
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Faults per backend call, e.g. `hang=0.001,panic=0.001` (or `none`);
    /// add `,scope=reads` to spare writes.
    #[arg(long, default_value = "none")]
    pub faults: FaultRates,
    /// Blocks written before the soak starts.
    #[arg(long, default_value_t = 1_000)]
    pub blocks: u64,
    /// Transactions per block.
    #[arg(long, default_value_t = 150)]
    pub txs_per_block: u64,
    /// Milliseconds between two dispatched blocks.
    #[arg(long, default_value_t = 1_000)]
    pub append_every_ms: u64,
    /// Seconds between two reorgs.
    #[arg(long, default_value_t = 180.0)]
    pub reorg_every: f64,
    /// Blocks removed and appended again by each reorg.
    #[arg(long, default_value_t = 3)]
    pub reorg_depth: u64,
    /// Concurrent readers.
    #[arg(long, default_value_t = 64)]
    pub readers: usize,
    /// Concurrent log streams.
    #[arg(long, default_value_t = 8)]
    pub streams: usize,
    /// Read deadline, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub read_timeout: f64,
    /// Write deadline, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub write_timeout: f64,
    /// Stream deadline, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub stream_timeout: f64,
    /// How long past its deadline a hanging call hangs, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub hang_extra: f64,
    /// Generator seed (blocks, targets, faults).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The figures of a soak, as `--json` writes them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakReport {
    /// The store kind.
    pub store: String,
    /// Minutes run.
    pub minutes: f64,
    /// Appends dispatched (accepted into the queue).
    pub appended: u64,
    /// Dispatched appends the store committed.
    pub acknowledged: u64,
    /// Dispatched appends neither committed nor reported as failed.
    pub lost_writes: u64,
    /// The first lost writes' blocks (at most 20).
    pub lost_blocks: Vec<u64>,
    /// Dispatched appends that failed and were reported (store or handle).
    pub reported_failures: u64,
    /// Dispatches refused with `Backpressure` (then retried).
    pub backpressure: u64,
    /// `Timeout` errors seen by callers.
    pub timeouts: u64,
    /// Moves of the tip watch backwards not caused by our truncations.
    pub tip_regressions: u64,
    /// Whether any operation waited more than twice its deadline.
    pub wedged: bool,
    /// The slowest read, milliseconds.
    pub max_read_ms: f64,
    /// Reads answered (any result).
    pub reads: u64,
    /// Reads answered with an error other than `Timeout`.
    pub read_errors: u64,
    /// Log streams opened.
    pub streams: u64,
    /// Logs received from streams.
    pub stream_logs: u64,
    /// Streams that ended with an error other than `Timeout`.
    pub stream_errors: u64,
    /// Panics that reached a caller instead of becoming its error (C12).
    pub caller_panics: u64,
    /// Reorgs done: the truncation and the append back both succeeded.
    pub reorgs: u64,
    /// Reorgs begun (a truncation sent), done or not: with write faults on,
    /// a reorg can fail like any other write.
    pub reorg_attempts: u64,
    /// Times the producer restarted from the durable tip.
    pub resyncs: u64,
    /// Faults injected: hangs and panics.
    pub hangs_injected: u64,
    /// Panics injected.
    pub panics_injected: u64,
    /// Time `shutdown()` took, milliseconds.
    pub shutdown_ms: f64,
    /// Resident memory after the warm-up, MiB.
    pub rss_start_mb: f64,
    /// Resident memory at the end, MiB.
    pub rss_end_mb: f64,
    /// Anonymous resident memory (heap) after the warm-up, MiB.
    pub rss_anon_start_mb: f64,
    /// Anonymous resident memory at the end, MiB.
    pub rss_anon_end_mb: f64,
    /// Resident memory at the end of each minute, under load, MiB.
    pub rss_per_minute_mb: Vec<f64>,
    /// Growth under load: the median of the last third of
    /// `rss_per_minute_mb` over the median of the first third (the first
    /// minute left out as warm-up), in percent; 0 with fewer than 4 samples.
    /// One sample swings with the reads in flight; a leak moves the medians.
    pub rss_growth_pct: f64,
}

/// Runs `coldchain soak`.
pub async fn run(args: SoakArgs) -> Result<SoakReport> {
    if args.minutes.is_nan()
        || args.minutes <= 0.0
        || args.blocks < 200
        || args.append_every_ms == 0
    {
        bail!("soak needs --minutes > 0, --blocks >= 200 and --append-every-ms > 0");
    }
    if let StoreSpec::Path(p) = &args.store
        && p.exists()
        && std::fs::read_dir(p).map(|mut d| d.next().is_some()).unwrap_or(true)
    {
        bail!("{} exists and is not empty: soak needs a fresh store", p.display());
    }
    quiet_injected_panics();
    let store = args.store.clone();
    let report = run_on(&store, Soak(args.clone())).await?;
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .wrap_err_with(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(report)
}

/// Keeps injected panics off stderr (thousands in a long soak); other
/// panics print as usual.
fn quiet_injected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !msg.starts_with(faults::INJECTED) {
            default(info);
        }
    }));
}

struct Soak(SoakArgs);

/// Counters shared by the soak's tasks.
#[derive(Default)]
struct Counters {
    timeouts: AtomicU64,
    reads: AtomicU64,
    read_errors: AtomicU64,
    max_read_us: AtomicU64,
    streams: AtomicU64,
    stream_logs: AtomicU64,
    stream_errors: AtomicU64,
    backpressure: AtomicU64,
    reorgs: AtomicU64,
    resyncs: AtomicU64,
    tip_regressions: AtomicU64,
    caller_panics: AtomicU64,
    /// Bumped before each of our truncations.
    truncations: AtomicU64,
    /// Bumped when each of our truncations has returned.
    truncations_done: AtomicU64,
    /// Cut points of our truncations that answered `Timeout`: each may
    /// still be applied later (a queued write is applied or reported, C13),
    /// which moves the tip back to it when none of our truncations is
    /// running.
    unknown_cuts: Mutex<Vec<u64>>,
    wedged: AtomicBool,
}

impl Counters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks a wedge when `elapsed` exceeds twice `deadline`.
    fn waited(&self, what: &str, elapsed: Duration, deadline: Duration) {
        if elapsed > deadline * 2 {
            tracing::error!(
                what,
                ?elapsed,
                ?deadline,
                "soak: an operation waited past twice its deadline"
            );
            self.wedged.store(true, Ordering::Relaxed);
        }
    }
}

/// What readers aim at: every block written so far.
struct Targets {
    first: u64,
    /// (hash, a transaction hash) per block from `first`.
    blocks: Vec<(B256, Option<B256>)>,
}

/// The producer's view of the chain.
struct Chain {
    next: u64,
    parent: B256,
    /// The last dispatched blocks, for reorgs.
    recent: VecDeque<BlockData>,
    /// Dispatches accepted, by (first number, last block).
    dispatched: HashMap<(u64, BlockNumHash), u64>,
    /// Blocks of failures the handle reported.
    reported: Vec<(u64, u64)>,
    last_report: Option<u64>,
}

impl OnBackend for Soak {
    type Output = SoakReport;

    /// A soak writes: it creates its store (a new or empty one).
    fn creates(&self) -> bool {
        true
    }

    async fn run<B: ColdBackend>(self, backend: B, store: &StoreSpec) -> Result<SoakReport> {
        let args = self.0;
        let secs = |s: f64| Duration::from_secs_f64(s.max(0.001));
        let (read_timeout, write_timeout, stream_timeout) =
            (secs(args.read_timeout), secs(args.write_timeout), secs(args.stream_timeout));
        let faulty = Faulty::new(backend, args.faults, secs(args.hang_extra), args.seed);
        let handle = ColdStorage::builder(faulty.clone())
            .read_timeout(read_timeout)
            .write_timeout(write_timeout)
            .stream_timeout(stream_timeout)
            .build()
            .await?;
        if handle.tip().await?.is_some() {
            bail!("the store {store} is not empty: soak needs a fresh store");
        }
        let params = W1Params {
            blocks: args.blocks,
            txs_per_block: args.txs_per_block,
            seed: args.seed,
            ..W1Params::default()
        };
        let w1 = Arc::new(W1::try_new(params)?);
        handle.set_chain_id(w1.params().chain_id).await?;
        // Prefill, awaited, without faults.
        eprintln!("soak: writing {} W1 blocks before the soak", args.blocks);
        let range = w1.numbers();
        let mut parent = B256::ZERO;
        let mut targets = Targets { first: range.start, blocks: Vec::new() };
        let mut recent = VecDeque::new();
        let mut next = range.start;
        while next < range.end {
            let count = 100.min(range.end - next);
            let blocks = w1.chunk_par(next, count, parent, 0);
            for b in &blocks {
                targets.blocks.push(target_of(b));
                recent.push_back(b.clone());
                if recent.len() > 64 {
                    recent.pop_front();
                }
            }
            parent = blocks.last().map_or(parent, BlockData::hash);
            handle.append_blocks(blocks).await?;
            next += count;
        }
        let targets = Arc::new(Mutex::new(targets));
        let chain = Arc::new(tokio::sync::Mutex::new(Chain {
            next,
            parent,
            recent,
            dispatched: HashMap::new(),
            reported: Vec::new(),
            last_report: None,
        }));
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        faulty.enable(true);
        let started = Instant::now();
        let duration = Duration::from_secs_f64(args.minutes * 60.0);
        eprintln!(
            "soak: {} readers, {} streams, a block every {} ms, a reorg every {} s, faults {:?}, for {:.1} min",
            args.readers,
            args.streams,
            args.append_every_ms,
            args.reorg_every,
            args.faults,
            args.minutes
        );

        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(observe_tip(handle.clone(), counters.clone(), stop.clone())));
        for i in 0..args.readers {
            let rng = W1Rng::new(args.seed ^ 0x50A4_0000 ^ i as u64);
            let ctx = (handle.clone(), targets.clone(), counters.clone(), stop.clone());
            tasks.push(tokio::spawn(reader(ctx, w1.clone(), rng, read_timeout)));
        }
        for i in 0..args.streams {
            let rng = W1Rng::new(args.seed ^ 0x57EA_0000 ^ i as u64);
            let ctx = (handle.clone(), targets.clone(), counters.clone(), stop.clone());
            tasks.push(tokio::spawn(streamer(
                ctx,
                w1.clone(),
                rng,
                i,
                read_timeout,
                stream_timeout,
            )));
        }
        let producer = {
            let ctx = (handle.clone(), targets.clone(), counters.clone(), stop.clone());
            tokio::spawn(produce(
                ctx,
                w1.clone(),
                chain.clone(),
                args.append_every_ms,
                write_timeout,
            ))
        };
        let reorger = {
            let ctx = (handle.clone(), targets.clone(), counters.clone(), stop.clone());
            let every = secs(args.reorg_every);
            tokio::spawn(reorg(ctx, chain.clone(), every, args.reorg_depth, write_timeout))
        };

        // Progress each minute. The starting RSS is sampled after a warm-up
        // (a tenth of the run, at most a minute) in which thread pools,
        // caches and permits fill up.
        let warm_up = (duration / 10).min(Duration::from_secs(60));
        let mut rss_start = None;
        let mut rss_minutes = Vec::new();
        let mut minute = 1;
        while started.elapsed() < duration {
            if rss_start.is_none() && started.elapsed() >= warm_up {
                rss_start = Some(rss_mb());
            }
            let left = duration.saturating_sub(started.elapsed());
            tokio::time::sleep(left.min(Duration::from_millis(200))).await;
            if started.elapsed() >= Duration::from_secs(60 * minute) {
                let (rss, anon) = rss_mb();
                rss_minutes.push(rss);
                eprintln!(
                    "soak: {minute} min: tip {:?}, reads {}, timeouts {}, backpressure {}, reorgs {}, resyncs {}, rss {rss:.0} MiB (anon {anon:.0})",
                    handle.durable_tip().map(|t| t.number),
                    counters.reads.load(Ordering::Relaxed),
                    counters.timeouts.load(Ordering::Relaxed),
                    counters.backpressure.load(Ordering::Relaxed),
                    counters.reorgs.load(Ordering::Relaxed),
                    counters.resyncs.load(Ordering::Relaxed),
                );
                minute += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let appended = producer.await.unwrap_or(0);
        let _ = reorger.await;
        for t in tasks {
            if let Err(e) = t.await
                && e.is_panic()
            {
                Counters::bump(&counters.caller_panics);
            }
        }
        faulty.enable(false);
        // Every dispatched write has been taken from the queue once a write
        // queued after them is answered (any answer but Timeout).
        let barrier = Instant::now();
        for _ in 0..4 {
            match handle.append_blocks(Vec::new()).await {
                Err(ColdError::Timeout { .. }) => continue,
                _ => break,
            }
        }
        counters.waited("the final write barrier", barrier.elapsed(), write_timeout * 2);
        let mut chain = chain.lock().await;
        poll_reported(&handle, &mut chain);
        let (acknowledged, reported, lost, lost_blocks) = {
            let journal = faulty.journal();
            let mut acknowledged = 0;
            let mut reported = 0;
            let mut lost = 0;
            let mut lost_blocks = Vec::new();
            let mut dispatched: Vec<_> = chain.dispatched.iter().collect();
            dispatched.sort_by_key(|(key, _)| key.0);
            for (key, n) in dispatched {
                let committed = journal.committed.get(key).copied().unwrap_or(0);
                let failed = journal.failed.get(key).copied().unwrap_or(0);
                let by_handle =
                    chain.reported.iter().filter(|r| r.0 <= key.0 && key.1.number <= r.1);
                let ok = committed.min(*n as usize) as u64;
                let rest = n - ok;
                let failed = (failed as u64 + by_handle.count() as u64).min(rest);
                acknowledged += ok;
                reported += failed;
                lost += rest - failed;
                if rest > failed && lost_blocks.len() < 20 {
                    lost_blocks.push(key.0);
                }
            }
            (acknowledged, reported, lost, lost_blocks)
        };
        let shutdown = Instant::now();
        handle.shutdown().await;
        let shutdown_ms = shutdown.elapsed().as_secs_f64() * 1e3;
        counters.waited("shutdown", shutdown.elapsed(), read_timeout.max(write_timeout));
        let (rss_end, anon_end) = rss_mb();
        let (rss_start, anon_start) = rss_start.unwrap_or((rss_end, anon_end));
        let c = &counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Ok(SoakReport {
            store: match store {
                StoreSpec::Mem => "mem".into(),
                StoreSpec::Path(_) => "embedded".into(),
                StoreSpec::Postgres(_) => "postgres".into(),
            },
            minutes: started.elapsed().as_secs_f64() / 60.0,
            appended,
            acknowledged,
            lost_writes: lost,
            lost_blocks,
            reported_failures: reported,
            backpressure: get(&c.backpressure),
            timeouts: get(&c.timeouts),
            tip_regressions: get(&c.tip_regressions),
            wedged: c.wedged.load(Ordering::Relaxed),
            max_read_ms: get(&c.max_read_us) as f64 / 1e3,
            reads: get(&c.reads),
            read_errors: get(&c.read_errors),
            streams: get(&c.streams),
            stream_logs: get(&c.stream_logs),
            stream_errors: get(&c.stream_errors),
            caller_panics: get(&c.caller_panics),
            reorgs: get(&c.reorgs),
            reorg_attempts: get(&c.truncations),
            resyncs: get(&c.resyncs),
            hangs_injected: faulty.hangs(),
            panics_injected: faulty.panics(),
            shutdown_ms,
            rss_start_mb: rss_start,
            rss_end_mb: rss_end,
            rss_anon_start_mb: anon_start,
            rss_anon_end_mb: anon_end,
            rss_growth_pct: rss_growth_pct(&rss_minutes),
            rss_per_minute_mb: rss_minutes,
        })
    }
}

type Ctx<B> = (ColdStorage<Faulty<B>>, Arc<Mutex<Targets>>, Arc<Counters>, Arc<AtomicBool>);

fn target_of(b: &BlockData) -> (B256, Option<B256>) {
    (b.hash(), b.transactions.first().map(|t| *t.inner().tx_hash()))
}

/// Counts a caller's error: `Timeout` or another kind.
fn count_error(c: &Counters, e: &ColdError, other: &AtomicU64) {
    match e {
        ColdError::Timeout { .. } => Counters::bump(&c.timeouts),
        _ => Counters::bump(other),
    }
}

async fn reader<B: ColdBackend>(ctx: Ctx<B>, w1: Arc<W1>, mut rng: W1Rng, deadline: Duration) {
    let (handle, targets, c, stop) = ctx;
    while !stop.load(Ordering::Relaxed) {
        let (number, hash, tx) = {
            let t = targets.lock();
            let i = rng.below(t.blocks.len() as u64);
            let j = rng.below(t.blocks.len() as u64) as usize;
            (t.first + i, t.blocks[i as usize].0, t.blocks[j].1.unwrap_or(B256::ZERO))
        };
        let started = Instant::now();
        let r = match rng.below(6) {
            0 => handle.transaction(TxSpec::Hash(tx)).await.map(drop),
            1 => handle.receipt(ReceiptSpec::TxHash(tx)).await.map(drop),
            2 => handle.header(HeaderSpec::Number(number)).await.map(drop),
            3 => handle.header(HeaderSpec::Hash(hash)).await.map(drop),
            4 => handle.block_receipts(HeaderSpec::Number(number)).await.map(drop),
            _ => {
                let filter =
                    LogFilter::range(number.saturating_sub(99), number).address(w1.hot_contract());
                handle.get_logs(filter, 1_000_000).await.map(drop)
            }
        };
        let elapsed = started.elapsed();
        c.max_read_us.fetch_max(elapsed.as_micros() as u64, Ordering::Relaxed);
        c.waited("a read", elapsed, deadline);
        Counters::bump(&c.reads);
        match r {
            Err(ColdError::TaskTerminated) => return,
            Err(e) => count_error(&c, &e, &c.read_errors),
            Ok(()) => {}
        }
    }
}

async fn streamer<B: ColdBackend>(
    ctx: Ctx<B>,
    w1: Arc<W1>,
    mut rng: W1Rng,
    index: usize,
    read_timeout: Duration,
    stream_timeout: Duration,
) {
    let (handle, targets, c, stop) = ctx;
    let slow = index % 2 == 1;
    let leaves = index % 4 == 3;
    while !stop.load(Ordering::Relaxed) {
        let (from, to) = {
            let t = targets.lock();
            let last = t.first + t.blocks.len() as u64 - 1;
            let from = t.first + rng.below(t.blocks.len() as u64);
            (from, (from + 199).min(last))
        };
        let filter = LogFilter::range(from, to).address(w1.hot_contract());
        let started = Instant::now();
        // Opened in a task of its own: a panic that reaches the caller is
        // counted (C12) and the streamer goes on.
        let opening = {
            let handle = handle.clone();
            tokio::spawn(async move { handle.stream_logs(filter, StreamParams::default()).await })
        };
        let opened = match opening.await {
            Ok(r) => r,
            Err(e) => {
                if e.is_panic() {
                    Counters::bump(&c.caller_panics);
                }
                continue;
            }
        };
        let mut stream = match opened {
            Ok(s) => s,
            Err(ColdError::TaskTerminated) => return,
            Err(e) => {
                c.waited("a stream's setup", started.elapsed(), read_timeout);
                count_error(&c, &e, &c.stream_errors);
                continue;
            }
        };
        c.waited("a stream's setup", started.elapsed(), read_timeout);
        Counters::bump(&c.streams);
        let mut n = 0u64;
        while let Some(item) = stream.next().await {
            match item {
                Ok(_) => n += 1,
                Err(ColdError::TaskTerminated) => return,
                Err(e) => count_error(&c, &e, &c.stream_errors),
            }
            if stop.load(Ordering::Relaxed) || (leaves && n >= 100) {
                break;
            }
            if slow && n.is_multiple_of(16) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        drop(stream);
        c.stream_logs.fetch_add(n, Ordering::Relaxed);
        // The stream's life is bounded by its deadline; a slow consumer adds
        // at most one of its pauses.
        c.waited("a stream", started.elapsed(), stream_timeout + Duration::from_millis(20));
    }
}

/// Records the failure the handle reports, if new.
fn poll_reported<B: ColdBackend>(handle: &ColdStorage<B>, chain: &mut Chain) -> bool {
    let mut new = false;
    for f in handle.unobserved_write_failures() {
        if chain.last_report.is_some_and(|seen| f.seq <= seen) {
            continue;
        }
        chain.last_report = Some(f.seq);
        new = true;
        if let WriteTarget::Blocks { first, last } = f.target {
            chain.reported.push((first, last));
        }
    }
    new
}

/// Restarts the producer from the durable tip.
async fn resync<B: ColdBackend>(handle: &ColdStorage<Faulty<B>>, chain: &mut Chain, c: &Counters) {
    if let Ok(Some(tip)) = handle.tip().await {
        chain.next = tip.number + 1;
        chain.parent = tip.hash;
        chain.recent.retain(|b| b.number() <= tip.number);
        Counters::bump(&c.resyncs);
    }
}

/// Dispatches one block per tick, fire-and-forget. Returns the dispatches.
async fn produce<B: ColdBackend>(
    ctx: Ctx<B>,
    w1: Arc<W1>,
    chain: Arc<tokio::sync::Mutex<Chain>>,
    every_ms: u64,
    write_timeout: Duration,
) -> u64 {
    let (handle, targets, c, stop) = ctx;
    let mut tick = tokio::time::interval(Duration::from_millis(every_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut appended = 0;
    let mut progress = (handle.durable_tip(), Instant::now());
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let mut chain = chain.lock().await;
        // A node feeding its cold store fire-and-forget: a reported failure
        // or a tip that stopped moving means restarting from the tip.
        let tip = handle.durable_tip();
        if tip != progress.0 {
            progress = (tip, Instant::now());
        }
        let stalled = tip.is_some_and(|t| t.number + 1 < chain.next)
            && progress.1.elapsed() > write_timeout * 2;
        if poll_reported(&handle, &mut chain) || stalled {
            resync(&handle, &mut chain, &c).await;
            progress = (handle.durable_tip(), Instant::now());
        }
        let block = w1.block(chain.next, chain.parent);
        loop {
            match handle.dispatch_append_blocks(vec![block.clone()]) {
                Ok(pending) => {
                    drop(pending);
                    break;
                }
                Err(ColdError::Backpressure) => {
                    Counters::bump(&c.backpressure);
                    if stop.load(Ordering::Relaxed) {
                        return appended;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => return appended,
            }
        }
        appended += 1;
        *chain.dispatched.entry((block.number(), block.num_hash())).or_default() += 1;
        chain.next += 1;
        chain.parent = block.hash();
        {
            let mut t = targets.lock();
            let i = (block.number() - t.first) as usize;
            if i == t.blocks.len() {
                t.blocks.push(target_of(&block));
            }
        }
        chain.recent.push_back(block);
        if chain.recent.len() > 64 {
            chain.recent.pop_front();
        }
    }
    appended
}

/// Every `every`: truncate the last `depth` dispatched blocks and append
/// them again (awaited).
async fn reorg<B: ColdBackend>(
    ctx: Ctx<B>,
    chain: Arc<tokio::sync::Mutex<Chain>>,
    every: Duration,
    depth: u64,
    write_timeout: Duration,
) {
    let (handle, _targets, c, stop) = ctx;
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last.elapsed() < every {
            continue;
        }
        last = Instant::now();
        let mut chain = chain.lock().await;
        let back: Vec<BlockData> =
            chain.recent.iter().rev().take(depth as usize).rev().cloned().collect();
        let Some(cut) = back.first().map(|b| b.number() - 1) else { continue };
        c.truncations.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let truncated = handle.truncate_above(cut).await;
        if matches!(truncated, Err(ColdError::Timeout { .. })) {
            c.unknown_cuts.lock().push(cut);
        }
        c.truncations_done.fetch_add(1, Ordering::Relaxed);
        c.waited("a reorg's truncate", started.elapsed(), write_timeout);
        let started = Instant::now();
        let appended = match truncated {
            Ok(()) => handle.append_blocks(back).await,
            Err(e) => Err(e),
        };
        c.waited("a reorg's append", started.elapsed(), write_timeout);
        match appended {
            Ok(()) => Counters::bump(&c.reorgs),
            Err(ColdError::TaskTerminated) => return,
            Err(e) => {
                if matches!(e, ColdError::Timeout { .. }) {
                    Counters::bump(&c.timeouts);
                }
                tracing::debug!(error = %e, "soak: a reorg failed; the producer restarts from the tip");
                resync(&handle, &mut chain, &c).await;
            }
        }
    }
}

/// Counts moves of the tip watch backwards that none of our truncations
/// explains: one is explained if a truncation began after the last
/// truncation that had returned when the previous tip was seen, or if it
/// lands exactly on the cut of one of our truncations that answered
/// `Timeout` (which leaves it queued, to be applied later).
async fn observe_tip<B: ColdBackend>(
    handle: ColdStorage<Faulty<B>>,
    c: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut rx = handle.tip_watch();
    let mut last = (*rx.borrow_and_update(), c.truncations_done.load(Ordering::Relaxed));
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(200), rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => continue,
        }
        // Read before the tip: a truncation that returns in between counts
        // as not yet returned (the safe side).
        let done = c.truncations_done.load(Ordering::Relaxed);
        let tip = *rx.borrow_and_update();
        let started = c.truncations.load(Ordering::Relaxed);
        let backwards = match (last.0, tip) {
            (Some(_), None) => true,
            (Some(l), Some(t)) => t.number < l.number || (t.number == l.number && t.hash != l.hash),
            (None, _) => false,
        };
        // Our truncation that timed out, applied now, explains a move back
        // to exactly its cut point (once).
        let late_cut = backwards && {
            let mut cuts = c.unknown_cuts.lock();
            let at = tip.map_or(0, |t| t.number);
            let found = cuts.iter().position(|&cut| cut == at);
            found.map(|i| cuts.swap_remove(i)).is_some()
        };
        if late_cut {
            tracing::info!(from = ?last.0, to = ?tip, "soak: a timed-out truncation of ours was applied late");
        }
        if backwards && started == last.1 && !late_cut {
            tracing::error!(from = ?last.0, to = ?tip, "soak: the tip moved backwards");
            Counters::bump(&c.tip_regressions);
        }
        last = (tip, done);
    }
}

/// Resident and anonymous resident memory of this process, MiB (Linux;
/// zero elsewhere).
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    parse_status(&status)
}

fn parse_status(status: &str) -> (f64, f64) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// See [`SoakReport::rss_growth_pct`].
fn rss_growth_pct(per_minute: &[f64]) -> f64 {
    let samples = per_minute.get(1..).unwrap_or_default();
    if samples.len() < 3 {
        return 0.0;
    }
    let third = samples.len() / 3;
    let median = |part: &[f64]| {
        let mut v = part.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let first = median(&samples[..third]);
    let last = median(&samples[samples.len() - third..]);
    if first > 0.0 { (last - first) / first * 100.0 } else { 0.0 }
}

fn print_report(r: &SoakReport) {
    println!("soak: store={} minutes={:.2}", r.store, r.minutes);
    let value = serde_json::to_value(r).unwrap_or_default();
    if let Some(map) = value.as_object() {
        let ordered: BTreeMap<_, _> = map.iter().collect();
        for (k, v) in ordered {
            println!("  {k:<20} {v}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rss_growth_compares_the_medians_of_the_first_and_last_thirds() {
        // Minute 1 is warm-up, leaving 7 samples.
        let per_minute = [500.0, 100.0, 130.0, 90.0, 120.0, 100.0, 95.0, 140.0];
        // Thirds of 2: the medians of [100, 130]
        // (the upper, 130) and [95, 140] (140).
        let g = rss_growth_pct(&per_minute);
        assert!((g - (140.0 - 130.0) / 130.0 * 100.0).abs() < 1e-9, "{g}");
        // A leak: steady growth shows.
        let leak: Vec<f64> = (0..30).map(|m| 1000.0 + 20.0 * f64::from(m)).collect();
        assert!(rss_growth_pct(&leak) > 25.0);
        assert_eq!(rss_growth_pct(&[1.0, 2.0, 3.0]), 0.0);
    }

    #[test]
    fn rss_is_read_from_proc_status() {
        let status = "Name:\tx\nVmRSS:\t  204800 kB\nRssAnon:\t  102400 kB\n";
        assert_eq!(parse_status(status), (200.0, 100.0));
        assert_eq!(parse_status(""), (0.0, 0.0));
        if cfg!(target_os = "linux") {
            assert!(rss_mb().0 > 0.0);
        }
    }
}
