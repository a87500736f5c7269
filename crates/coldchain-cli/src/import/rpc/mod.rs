//! `coldchain import rpc`: copies blocks from a node's JSON-RPC into a store.
//!
//! For each block: `eth_getBlockByNumber(n, true)` and `eth_getBlockReceipts(n)`
//! (one JSON-RPC batch per `--batch` blocks; per-transaction
//! `eth_getTransactionReceipt` when the node lacks `eth_getBlockReceipts`),
//! and for a block with uncles `eth_getUncleByBlockHashAndIndex` for each
//! (one batch per such block), converted by
//! [`coldchain::convert::block_from_rpc_with_ommers`] (which also takes the
//! block's `withdrawals`), checked by
//! [`coldchain::verify::verify_block`] (hashes, roots, blooms, gas) on a
//! blocking thread, and appended in order, `--write-batch` blocks per write.
//! Blob sidecars a node may put in transaction objects are dropped (they are
//! not part of the chain).
//!
//! **Transport.** One [`HttpClient`] (`http://` or `https://`, HTTP/2,
//! compression, pooled connections; see `coldchain-client`) with
//! `--header 'Name: value'` on every request, `--rpc-timeout` per call,
//! `--max-response-mb` per answer, and at most `--rps` requests started per
//! second.
//!
//! **Concurrency.** `--concurrency` batches are in flight at once, on the
//! client's pooled connections; they complete in any order and are appended
//! in block order.
//!
//! **Retries.** Connection errors (refused, reset, closed), timeouts
//! (`--rpc-timeout`), HTTP 408/429/5xx, garbled answers, a missing block
//! (a node behind a load balancer that lags), and JSON-RPC errors that mean
//! "busy" (-32005 limit exceeded, -32603 internal error, -32002 timed out,
//! -32016/-32029/-32090 rate limits, or a message saying rate limit, too many
//! requests, timeout or try again) are retried up to `--retries` times with
//! exponential backoff from `--retry-backoff-ms` (doubling, capped at 10 s,
//! with jitter), and never sooner than the server's `Retry-After` (which
//! also holds back every other request of the client). Anything else, and
//! the last transient error, stops the import with a message naming the
//! blocks, the node, the attempts and the cause.
//!
//! **Chain id.** Before anything else the node's `eth_chainId` is recorded
//! as the store's chain id, or checked against the one it records: a node
//! of another chain is refused before any write (see [`crate::chain_id`]).
//!
//! **Resuming.** Without `--from` an import continues after the store's tip
//! (after checking that the node has the same block there); an empty store
//! starts at the node's `earliest` block. `--from` at or below the tip
//! resumes after the tip as well; above `tip + 1` it is refused (a gap).
//!
//! **Following.** `--follow` imports the range up to the head, then polls
//! the node every `--poll-ms` and imports new blocks up to `head -
//! --confirmations` (default 0: the head itself). Before each round it
//! compares the store's tip with the node's block at that height; when they
//! differ (or the node's head went below the tip) it walks back to the last
//! block both agree on, drains the store above it (`drain_above`), reads
//! the head again (the one read before may be the old chain's) and imports
//! the node's blocks from there. A block whose parent is not the previous
//! block (the node reorged during a round) ends the round; the next poll
//! unwinds. Any failure (the node stops answering, a block fails
//! verification, a write fails) is counted, reported in a
//! [`FollowerStatus`] and retried with backoff; see [`follow`].

mod follow;

pub use follow::FollowerStatus;

use super::{
    ImportError, ImportStats,
    pipeline::{Chunk, ChunkResult, Ended, Writer, progress_bar},
};
use crate::store::StoreSpec;
use alloy::{
    primitives::{B256, BlockNumber, U64},
    rpc::types::{Block, TransactionReceipt},
};
use coldchain::{ColdBackend, ColdStorage, convert::block_from_rpc_with_ommers};
use coldchain_client::{ClientConfig, ClientError, HttpClient, MAX_RETRY_AFTER};
use eyre::Result;
use futures::StreamExt;
use indicatif::ProgressBar;
use serde_json::{Value, json};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio_util::sync::CancellationToken;

/// Arguments of `coldchain import rpc`.
#[derive(Debug, Clone, clap::Args)]
pub struct RpcImportArgs {
    /// The node's JSON-RPC endpoint (`http://` or `https://`).
    #[arg(long)]
    pub url: String,
    /// The store: a path (embedded), `postgres://...`, or `mem`.
    #[arg(long, default_value = "./coldchain-data")]
    pub store: StoreSpec,
    #[command(flatten)]
    pub range: RpcRange,
}

/// What to import from a node, and how.
#[derive(Debug, Clone, clap::Args)]
pub struct RpcRange {
    /// First block (default: the block after the store's tip, or the node's
    /// earliest block for an empty store). At or below the tip: resume after
    /// the tip.
    #[arg(long)]
    pub from: Option<u64>,
    /// Last block (default: the node's latest block, less --confirmations,
    /// when the import starts).
    #[arg(long)]
    pub to: Option<u64>,
    /// Blocks per JSON-RPC batch request.
    #[arg(long, default_value_t = 16)]
    pub batch: u64,
    /// Blocks per write to the store.
    #[arg(long, default_value_t = 100)]
    pub write_batch: usize,
    /// JSON-RPC batch requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Requests started per second at most (a hosted provider's rate
    /// limit); default: no limit.
    #[arg(long)]
    pub rps: Option<f64>,
    /// An HTTP header sent with every request, `'Name: value'` (e.g.
    /// `'Authorization: Bearer KEY'`); repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = coldchain_client::parse_header)]
    pub headers: Vec<(String, String)>,
    /// The largest answer accepted, in MiB; a larger one is an error (lower
    /// --batch for chains with large blocks).
    #[arg(long, default_value_t = 64)]
    pub max_response_mb: u64,
    /// After the range, keep importing new blocks as the node makes them,
    /// unwinding the store when the node reorgs.
    #[arg(long, conflicts_with = "to")]
    pub follow: bool,
    /// How often `--follow` asks the node for new blocks, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// Import only blocks at least this many blocks below the node's head
    /// (0: up to the head). Reorgs deeper than this are still detected and
    /// unwound.
    #[arg(long, default_value_t = 0)]
    pub confirmations: u64,
    /// Retries of a call that failed transiently (so `retries + 1` attempts).
    #[arg(long, default_value_t = 7)]
    pub retries: u32,
    /// First retry delay in milliseconds; doubles per retry, at most 10 s.
    #[arg(long, default_value_t = 250)]
    pub retry_backoff_ms: u64,
    /// Deadline of one JSON-RPC request, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub rpc_timeout: f64,
}

/// Runs `coldchain import rpc`.
pub async fn run(args: RpcImportArgs) -> Result<()> {
    let store = args.store.clone();
    super::run_import(&store, args).await
}

impl super::ImportSource for RpcImportArgs {
    async fn import<B: ColdBackend>(
        &self,
        handle: &ColdStorage<B>,
        cancel: &CancellationToken,
        stats: &mut ImportStats,
    ) -> Result<(), ImportError> {
        import_rpc_into(handle, &self.url, &self.range, true, cancel, stats).await
    }

    fn log_summary(&self, store: &StoreSpec, summary: &str) {
        tracing::info!(%store, url = %self.url, "{summary}");
    }
}

/// Imports `range` from the node at `url` into `handle`; see the
/// [module docs](self). Returns when the range is done, or with `follow`
/// when `cancel` fires.
pub async fn import_rpc<B: ColdBackend>(
    handle: &ColdStorage<B>,
    url: &str,
    range: &RpcRange,
    progress: bool,
    cancel: &CancellationToken,
) -> Result<ImportStats, ImportError> {
    let mut stats = ImportStats::default();
    import_rpc_into(handle, url, range, progress, cancel, &mut stats).await?;
    Ok(stats)
}

/// [`import_rpc`], adding what it wrote to `stats` as it goes (so a caller
/// knows what was written before an error).
pub async fn import_rpc_into<B: ColdBackend>(
    handle: &ColdStorage<B>,
    url: &str,
    range: &RpcRange,
    progress: bool,
    cancel: &CancellationToken,
    stats: &mut ImportStats,
) -> Result<(), ImportError> {
    let status = FollowerStatus::default();
    import_rpc_with_status(handle, url, range, progress, cancel, stats, &status).await
}

/// Follows the node at `url` (the range's `--follow` is implied) until
/// `cancel` fires, reporting in `status`; see [`follow`]. Fails only on
/// bad arguments: every other failure is retried.
pub async fn follow_rpc<B: ColdBackend>(
    handle: &ColdStorage<B>,
    url: &str,
    range: &RpcRange,
    cancel: &CancellationToken,
    status: &FollowerStatus,
) -> Result<ImportStats, ImportError> {
    let range = RpcRange { follow: true, to: None, ..range.clone() };
    let mut stats = ImportStats::default();
    import_rpc_with_status(handle, url, &range, false, cancel, &mut stats, status).await?;
    Ok(stats)
}

/// [`import_rpc_into`], with `--follow` reporting in `status`.
async fn import_rpc_with_status<B: ColdBackend>(
    handle: &ColdStorage<B>,
    url: &str,
    range: &RpcRange,
    progress: bool,
    cancel: &CancellationToken,
    stats: &mut ImportStats,
    status: &FollowerStatus,
) -> Result<(), ImportError> {
    let node = Arc::new(Node::new(url, range)?);
    if !claim_chain_id(handle, &node, range, cancel, status).await? {
        return Ok(());
    }
    if !range.follow {
        return backfill(handle, &node, range, progress, cancel, stats).await.map(drop);
    }
    let _alive = follow::Alive::new(status);
    match backfill(handle, &node, range, progress, cancel, stats).await {
        Ok(Ended::Cancelled) => return Ok(()),
        Ok(Ended::Done) => {}
        Err(e @ ImportError::Usage(_)) => return Err(e),
        // The follower retries it.
        Err(e) => {
            follow::report(status, &e, Duration::ZERO);
        }
    }
    follow::follow(handle, &node, range, cancel, stats, status).await;
    Ok(())
}

/// Records the node's `eth_chainId` as the store's chain id, or checks it
/// against the recorded one, before any write. With `--follow`, a node that
/// does not answer is asked again (each failure reported in `status`) until
/// it answers or `cancel` fires (`Ok(false)`); a store of another chain is
/// an error either way.
async fn claim_chain_id<B: ColdBackend>(
    handle: &ColdStorage<B>,
    node: &Node,
    range: &RpcRange,
    cancel: &CancellationToken,
    status: &FollowerStatus,
) -> Result<bool, ImportError> {
    let backoff = follow::backoff(range);
    loop {
        match node.chain_id().await {
            Ok(id) => {
                let source = format!("eth_chainId of {}", node.url);
                crate::chain_id::claim(handle, id, &source).await?;
                return Ok(true);
            }
            Err(e) if !range.follow => return Err(e),
            Err(e) => {
                // Retried as the follower retries its rounds.
                let delay = follow::retry_delay(&backoff, status, &e);
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(false),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Imports the range the arguments ask for (up to the head when they name
/// none); see the [module docs](self).
async fn backfill<B: ColdBackend>(
    handle: &ColdStorage<B>,
    node: &Arc<Node>,
    range: &RpcRange,
    progress: bool,
    cancel: &CancellationToken,
    stats: &mut ImportStats,
) -> Result<Ended, ImportError> {
    let tip = handle.tip().await.map_err(|e| ImportError::store("reading the store's tip", e))?;
    let head = node.head().await?;
    if let Some(to) = range.to
        && to > head
    {
        return Err(ImportError::Usage(format!(
            "the node's latest block is {head}, below --to {to}"
        )));
    }
    let mut diverged = false;
    let from = match (range.from, tip) {
        (Some(from), Some(tip)) if from > tip.number + 1 => {
            return Err(ImportError::Usage(format!(
                "the store ends at block {}; an import must continue at block {} (got --from \
                 {from}); use another store for another range",
                tip.number,
                tip.number + 1
            )));
        }
        (Some(from), None) => from,
        (_, Some(tip)) => {
            if range.from.is_some_and(|f| f <= tip.number) {
                tracing::info!(
                    tip = tip.number,
                    "the store already holds --from; resuming after its tip"
                );
            }
            let theirs = if tip.number <= head { node.block_hash(tip.number).await? } else { None };
            if theirs != Some(tip.hash) {
                if !range.follow {
                    return Err(match theirs {
                        Some(source_hash) => ImportError::Diverged {
                            origin: node.url.clone(),
                            number: tip.number,
                            store_hash: tip.hash,
                            source_hash,
                        },
                        None => ImportError::Node {
                            url: node.url.clone(),
                            reason: format!(
                                "the node has no block {} (its head is {head}) but the store \
                                 ends there; the node is behind or on another chain",
                                tip.number
                            ),
                        },
                    });
                }
                // --follow unwinds to the common ancestor first.
                diverged = true;
            }
            tip.number + 1
        }
        // An empty store starts at the node's first block (`earliest`:
        // genesis on a node, the first stored block on a history store).
        (None, None) => node.earliest().await?,
    };
    let to = range.to.unwrap_or_else(|| head.saturating_sub(range.confirmations));
    if !diverged && from <= to {
        let bar = progress_bar(progress, Some(to - from + 1), "import rpc", false);
        let result = import_range(handle, node, from, to, range, bar.clone(), cancel, stats).await;
        bar.finish_and_clear();
        return result;
    }
    Ok(Ended::Done)
}

/// Imports blocks `from..=to` through the concurrent fetch pipeline.
#[allow(clippy::too_many_arguments)]
async fn import_range<B: ColdBackend>(
    handle: &ColdStorage<B>,
    node: &Arc<Node>,
    from: BlockNumber,
    to: BlockNumber,
    range: &RpcRange,
    bar: ProgressBar,
    cancel: &CancellationToken,
    stats: &mut ImportStats,
) -> Result<Ended, ImportError> {
    let tip = handle.durable_tip();
    let mut writer = Writer::new(handle, tip, range.write_batch, bar);
    let step = range.batch.max(1);
    let chunks =
        (from..=to).step_by(step as usize).map(move |start| (start, step.min(to - start + 1)));
    let source = futures::stream::iter(chunks)
        .map(|(start, count)| {
            let node = node.clone();
            async move { fetch_chunk(node, start, count, start + count - from).await }
        })
        .buffered(range.concurrency.max(1));
    let result = writer.drain(source, cancel).await;
    stats.merge(writer.stats());
    result
}

// ------------------------------------------------------------------ the node

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The first delay; doubles per retry.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay before retry `n` (1-based) after `error`: `base ×
    /// 2^(n-1)`, capped, with ±25% jitter so that parallel fetches do not
    /// retry in lockstep; at least the server's `Retry-After`.
    pub fn delay_after(&self, n: u32, error: &ClientError) -> Duration {
        let asked = error.retry_after().map_or(Duration::ZERO, |d| d.min(MAX_RETRY_AFTER));
        self.delay(n).max(asked)
    }

    /// The delay before retry `n` (1-based): `base × 2^(n-1)`, capped, with
    /// ±25% jitter so that parallel fetches do not retry in lockstep.
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << (n.saturating_sub(1)).min(20));
        let capped = exp.min(self.max);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = 0.75 + f64::from(nanos % 1000) / 2000.0;
        capped.mul_f64(jitter)
    }
}

/// Whether a failed call is worth retrying.
enum Failure {
    /// Yes: the node was busy, unreachable or briefly inconsistent.
    Transient(ClientError),
    /// No: retrying cannot help.
    Permanent(ImportError),
}

/// JSON-RPC error codes that mean "busy, try again".
const TRANSIENT_CODES: [i64; 6] = [-32005, -32603, -32002, -32016, -32029, -32090];

/// Whether `e` is worth retrying; see the [module docs](self).
pub fn is_transient(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. }
        | ClientError::Transport { .. }
        | ClientError::Timeout { .. }
        // A garbled answer: a proxy or connection problem.
        | ClientError::Protocol { .. } => true,
        ClientError::Http { status, .. } => *status >= 500 || *status == 408 || *status == 429,
        ClientError::Rpc { code, message, .. } => {
            let m = message.to_ascii_lowercase();
            TRANSIENT_CODES.contains(code)
                || ["rate limit", "too many requests", "timeout", "timed out", "try again"]
                    .iter()
                    .any(|s| m.contains(s))
        }
        // A bad URL or header, an oversized answer, an undecodable
        // result: the same call would fail the same way.
        _ => false,
    }
}

/// A node behind one pooled client, with retries.
pub(crate) struct Node {
    url: String,
    client: Arc<HttpClient>,
    retry: RetryPolicy,
}

impl Node {
    fn new(url: &str, range: &RpcRange) -> Result<Self, ImportError> {
        let timeout = Duration::try_from_secs_f64(range.rpc_timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                ImportError::Usage("--rpc-timeout must be a positive number of seconds".into())
            })?;
        let config = ClientConfig {
            timeout,
            connect_timeout: timeout.min(Duration::from_secs(10)),
            headers: range.headers.clone(),
            max_response_bytes: range.max_response_mb.saturating_mul(1 << 20),
            rps: range.rps,
            concurrency: range.concurrency.max(1),
        };
        let client =
            HttpClient::with_config(url, &config).map_err(|e| ImportError::Usage(e.to_string()))?;
        Ok(Self {
            url: url.to_owned(),
            client: Arc::new(client),
            retry: RetryPolicy {
                retries: range.retries,
                base: Duration::from_millis(range.retry_backoff_ms),
                max: Duration::from_secs(10),
            },
        })
    }

    fn client(&self) -> Arc<HttpClient> {
        self.client.clone()
    }

    /// Runs `attempt` until it succeeds, fails permanently, or the retries
    /// are used up.
    async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, ImportError>
    where
        F: FnMut(Arc<HttpClient>) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match attempt(self.client()).await {
                Ok(v) => return Ok(v),
                Err(Failure::Permanent(e)) => return Err(e),
                Err(Failure::Transient(source)) if attempts > self.retry.retries => {
                    return Err(ImportError::Fetch {
                        what: what.to_owned(),
                        url: self.url.clone(),
                        attempts,
                        elapsed: started.elapsed(),
                        source: Box::new(source),
                    });
                }
                Err(Failure::Transient(e)) => {
                    let delay = self.retry.delay_after(attempts, &e);
                    tracing::warn!(
                        error = %e,
                        attempt = attempts,
                        retry_in_ms = delay.as_millis() as u64,
                        "{what}: transient failure; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One call, classified.
    async fn call<T: serde::de::DeserializeOwned>(
        client: &HttpClient,
        method: &str,
        params: Value,
    ) -> Result<T, Failure> {
        client.call(method, params).await.map_err(classify)
    }

    /// The node's latest block number.
    async fn head(&self) -> Result<BlockNumber, ImportError> {
        self.retrying("asking for the node's head", |c| async move {
            Self::call::<U64>(&c, "eth_blockNumber", json!([])).await.map(|n| n.to())
        })
        .await
    }

    /// The node's chain id (`eth_chainId`).
    async fn chain_id(&self) -> Result<u64, ImportError> {
        self.retrying("asking for the node's chain id", |c| async move {
            Self::call::<U64>(&c, "eth_chainId", json!([])).await.map(|n| n.to())
        })
        .await
    }

    /// The node's earliest block number.
    async fn earliest(&self) -> Result<BlockNumber, ImportError> {
        let url = self.url.clone();
        let block: Option<Value> = self
            .retrying("asking for the node's earliest block", |c| async move {
                Self::call(&c, "eth_getBlockByNumber", json!(["earliest", false])).await
            })
            .await?;
        block
            .as_ref()
            .and_then(|b| b.get("number"))
            .and_then(|n| serde_json::from_value::<U64>(n.clone()).ok())
            .map(|n| n.to())
            .ok_or_else(|| ImportError::Node {
                url,
                reason: "the node has no earliest block".into(),
            })
    }

    /// The hash of the node's block `n`, `None` if it has none.
    async fn block_hash(&self, n: BlockNumber) -> Result<Option<B256>, ImportError> {
        let block: Option<Value> = self
            .retrying(&format!("asking for the hash of block {n}"), |c| async move {
                Self::call(&c, "eth_getBlockByNumber", json!([format!("{n:#x}"), false])).await
            })
            .await?;
        Ok(block.and_then(|b| b.get("hash").and_then(|h| serde_json::from_value(h.clone()).ok())))
    }
}

fn classify(e: ClientError) -> Failure {
    if is_transient(&e) {
        Failure::Transient(e)
    } else {
        Failure::Permanent(ImportError::Client(Box::new(e)))
    }
}

/// Fetches blocks `from..from + count` (with retries), then converts and
/// verifies them on a blocking thread. `progress` is the number of blocks
/// of the range done after this chunk.
async fn fetch_chunk(node: Arc<Node>, from: u64, count: u64, progress: u64) -> ChunkResult {
    let what = format!("fetching blocks {from}..={}", from + count - 1);
    let raw = node
        .retrying(&what, |client| {
            let url = node.url.clone();
            async move { fetch_raw(&client, &url, from, count).await }
        })
        .await?;
    let url = node.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut blocks = Vec::with_capacity(raw.len());
        for (block, ommers, receipts) in raw {
            // Both errors name the block: the origin is the node alone.
            let checked = block_from_rpc_with_ommers(block, ommers, receipts)
                .map_err(|e| ImportError::convert(url.clone(), e))
                .and_then(|data| {
                    coldchain::verify::verify_block(&data)
                        .map_err(|e| ImportError::verify(url.clone(), e))?;
                    Ok(data)
                });
            match checked {
                Ok(data) => blocks.push(data),
                // The blocks before it are verified: they are written first.
                Err(e) => return Ok(Chunk::failed_after(blocks, progress, url, Vec::new(), e)),
            }
        }
        Ok(Chunk {
            blocks,
            progress,
            origin: url,
            skipped: Vec::new(),
            error: None,
            lines: Vec::new(),
        })
    })
    .await
    .map_err(|e| ImportError::Panicked(e.to_string()))?
}

type RawBlock = (Block, Vec<alloy::consensus::Header>, Vec<TransactionReceipt>);

/// One attempt at fetching blocks `from..from + count` with their receipts.
async fn fetch_raw(
    client: &HttpClient,
    url: &str,
    from: u64,
    count: u64,
) -> Result<Vec<RawBlock>, Failure> {
    let mut calls = Vec::with_capacity(2 * count as usize);
    for n in from..from + count {
        calls.push(("eth_getBlockByNumber", json!([format!("{n:#x}"), true])));
        calls.push(("eth_getBlockReceipts", json!([format!("{n:#x}")])));
    }
    let mut answers = client.batch(&calls).await.map_err(classify)?.into_iter();
    let missing = |n: u64, what: &str| {
        Failure::Transient(ClientError::Protocol {
            url: url.to_owned(),
            reason: format!("no {what} for block {n} in the batch answer"),
        })
    };
    let mut out = Vec::with_capacity(count as usize);
    for n in from..from + count {
        let block = answers.next().ok_or_else(|| missing(n, "block"))?.map_err(classify)?;
        let receipts = answers.next().ok_or_else(|| missing(n, "receipts"))?;
        if block.is_null() {
            // A node behind a load balancer may lag: worth another try.
            return Err(Failure::Transient(ClientError::Protocol {
                url: url.to_owned(),
                reason: format!("the node has no block {n}"),
            }));
        }
        let block = parse_block(n, block, url).map_err(Failure::Permanent)?;
        let receipts = match receipts {
            Ok(Value::Null) => {
                return Err(Failure::Transient(ClientError::Protocol {
                    url: url.to_owned(),
                    reason: format!("the node has no receipts for block {n}"),
                }));
            }
            Ok(v) => serde_json::from_value::<Vec<TransactionReceipt>>(v).map_err(|e| {
                Failure::Permanent(ImportError::malformed(
                    format!("{url}: receipts of block {n}"),
                    e.to_string(),
                ))
            })?,
            Err(e) if is_transient(&e) => return Err(Failure::Transient(e)),
            // Nodes without eth_getBlockReceipts (Hardhat, Ganache).
            Err(ClientError::Rpc { .. }) => receipts_one_by_one(client, url, &block).await?,
            Err(e) => return Err(classify(e)),
        };
        let ommers = uncles(client, url, &block).await?;
        out.push((block, ommers, receipts));
    }
    Ok(out)
}

/// The uncle headers of `block`, by its hash and each index (none asked for
/// a block without uncles).
async fn uncles(
    client: &HttpClient,
    url: &str,
    block: &Block,
) -> Result<Vec<alloy::consensus::Header>, Failure> {
    if block.uncles.is_empty() {
        return Ok(Vec::new());
    }
    let hash = block.header.hash;
    let n = block.header.inner.number;
    let calls: Vec<_> = (0..block.uncles.len())
        .map(|i| ("eth_getUncleByBlockHashAndIndex", json!([hash, format!("{i:#x}")])))
        .collect();
    let mut out = Vec::with_capacity(calls.len());
    for (i, answer) in client.batch(&calls).await.map_err(classify)?.into_iter().enumerate() {
        let uncle: Option<alloy::rpc::types::Header> =
            serde_json::from_value(answer.map_err(classify)?).map_err(|e| {
                Failure::Permanent(ImportError::malformed(
                    format!("{url}: uncle {i} of block {n}"),
                    e.to_string(),
                ))
            })?;
        match uncle {
            Some(u) => out.push(u.inner),
            None => {
                return Err(Failure::Transient(ClientError::Protocol {
                    url: url.to_owned(),
                    reason: format!("the node has no uncle {i} of block {n} ({hash})"),
                }));
            }
        }
    }
    Ok(out)
}

/// Decodes an RPC block, dropping blob sidecars.
fn parse_block(n: u64, mut block: Value, url: &str) -> Result<Block, ImportError> {
    if let Some(Value::Array(txs)) = block.get_mut("transactions") {
        for tx in txs {
            if let Value::Object(tx) = tx {
                // Blob sidecars (anvil puts them in the block): not chain data.
                for key in ["blobs", "commitments", "proofs", "cellProofs", "sidecar"] {
                    tx.remove(key);
                }
            }
        }
    }
    serde_json::from_value(block)
        .map_err(|e| ImportError::malformed(format!("{url}: block {n}"), e.to_string()))
}

async fn receipts_one_by_one(
    client: &HttpClient,
    url: &str,
    block: &Block,
) -> Result<Vec<TransactionReceipt>, Failure> {
    let hashes: Vec<B256> = block.transactions.hashes().collect();
    let calls: Vec<_> = hashes.iter().map(|h| ("eth_getTransactionReceipt", json!([h]))).collect();
    let mut out = Vec::with_capacity(calls.len());
    for (hash, answer) in hashes.iter().zip(client.batch(&calls).await.map_err(classify)?) {
        let receipt: Option<TransactionReceipt> = serde_json::from_value(answer.map_err(classify)?)
            .map_err(|e| {
                Failure::Permanent(ImportError::malformed(
                    format!("{url}: receipt of {hash}"),
                    e.to_string(),
                ))
            })?;
        match receipt {
            Some(r) => out.push(r),
            None => {
                return Err(Failure::Transient(ClientError::Protocol {
                    url: url.to_owned(),
                    reason: format!("the node has no receipt for {hash}"),
                }));
            }
        }
    }
    Ok(out)
}
