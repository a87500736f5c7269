//! `coldchain import rpc`: copies blocks from a node's JSON-RPC into a store.
//!
//! For each block: `eth_getBlockByNumber(n, true)` and `eth_getBlockReceipts(n)`
//! (one JSON-RPC batch per chunk of blocks; per-transaction
//! `eth_getTransactionReceipt` when the node lacks `eth_getBlockReceipts`),
//! converted by [`coldchain::convert::block_from_rpc`], checked by
//! [`coldchain::verify::verify_block`] (hashes, roots, blooms, gas), and
//! appended in order. Blob sidecars a node may put in transaction objects are
//! dropped (they are not part of the chain). With `--follow` it then polls the
//! node for new blocks and, when the node's chain no longer links to the
//! store's tip, drains the store back to the last common block first.

use crate::store::{OnBackend, StoreSpec, run_on};
use alloy::{
    primitives::{B256, BlockNumber},
    rpc::types::{Block, TransactionReceipt},
};
use coldchain::{BlockData, ColdBackend, ColdError, ColdStorage, convert::block_from_rpc};
use coldchain_rpc::client::{ClientError, HttpClient};
use eyre::{Result, WrapErr, bail, eyre};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Arguments of `coldchain import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    source: Source,
}

#[derive(Debug, clap::Subcommand)]
enum Source {
    /// Import from a node's JSON-RPC over HTTP.
    Rpc(RpcImportArgs),
}

/// Arguments of `coldchain import rpc`.
#[derive(Debug, Clone, clap::Args)]
pub struct RpcImportArgs {
    /// The node's JSON-RPC endpoint (http://host:port).
    #[arg(long)]
    pub url: String,
    /// The store: a path (embedded), `postgres://...`, or `mem`.
    #[arg(long, default_value = "./coldchain-data")]
    pub store: StoreSpec,
    #[command(flatten)]
    pub range: RpcRange,
}

/// What to import from a node.
#[derive(Debug, Clone, clap::Args)]
pub struct RpcRange {
    /// First block (default: the block after the store's tip, or the node's
    /// earliest block for an empty store).
    #[arg(long)]
    pub from: Option<u64>,
    /// Last block (default: the node's latest block when the import starts).
    #[arg(long)]
    pub to: Option<u64>,
    /// Blocks per JSON-RPC batch and per write.
    #[arg(long, default_value_t = 16)]
    pub batch: u64,
    /// After the range, keep importing new blocks as the node makes them.
    #[arg(long, conflicts_with = "to")]
    pub follow: bool,
    /// How often `--follow` asks the node for new blocks, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
}

/// Runs `coldchain import`.
pub async fn run(args: ImportArgs) -> Result<()> {
    match args.source {
        Source::Rpc(args) => {
            let store = args.store.clone();
            run_on(&store, ImportRpc(args)).await
        }
    }
}

struct ImportRpc(RpcImportArgs);

impl OnBackend for ImportRpc {
    type Output = ();

    async fn run<B: ColdBackend>(self, backend: B, store: &StoreSpec) -> Result<()> {
        let handle =
            ColdStorage::builder(backend).write_timeout(Duration::from_secs(300)).build().await?;
        let client = HttpClient::new(&self.0.url)?;
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        });
        let result = import_rpc(&handle, &client, &self.0.range, true, &cancel).await;
        if let Ok(stats) = &result {
            tracing::info!(
                %store,
                blocks = stats.blocks,
                transactions = stats.transactions,
                logs = stats.logs,
                tip = ?handle.durable_tip().map(|t| t.number),
                "import done"
            );
        }
        handle.shutdown().await;
        result.map(drop)
    }
}

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
}

/// Imports `range` from the node behind `client` into `handle`; see the
/// [module docs](self). Returns when the range is done, or with `follow`
/// when `cancel` fires.
pub async fn import_rpc<B: ColdBackend>(
    handle: &ColdStorage<B>,
    client: &HttpClient,
    range: &RpcRange,
    progress: bool,
    cancel: &CancellationToken,
) -> Result<ImportStats> {
    let tip = handle.tip().await?;
    let from = match (range.from, tip) {
        (Some(from), Some(tip)) if from != tip.number + 1 => bail!(
            "the store ends at block {}; an import must continue at block {} (got --from {from})",
            tip.number,
            tip.number + 1
        ),
        (Some(from), _) => from,
        (None, Some(tip)) => tip.number + 1,
        // An empty store starts at the node's first block (`earliest`:
        // genesis on a node, the first stored block on a history store).
        (None, None) => earliest(client).await?,
    };
    let node_head = latest(client).await?;
    let to = range.to.unwrap_or(node_head);
    if to > node_head {
        bail!("the node's latest block is {node_head}, below --to {to}");
    }
    let mut stats = ImportStats::default();
    let bar = if progress && to >= from {
        ProgressBar::new(to - from + 1)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} import {pos}/{len} blocks [{elapsed_precise}] {per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut next = from;
    while next <= to {
        if cancel.is_cancelled() {
            bar.abandon_with_message("interrupted");
            return Ok(stats);
        }
        let count = range.batch.max(1).min(to - next + 1);
        let blocks = fetch_blocks(client, next, count).await?;
        stats.add(&blocks);
        handle
            .append_blocks(blocks)
            .await
            .wrap_err_with(|| format!("appending blocks {next}..={}", next + count - 1))?;
        next += count;
        bar.inc(count);
    }
    bar.finish_and_clear();
    if range.follow {
        follow(handle, client, range, cancel, &mut stats).await?;
    }
    Ok(stats)
}

impl ImportStats {
    fn add(&mut self, blocks: &[BlockData]) {
        for b in blocks {
            self.blocks += 1;
            self.transactions += b.transactions.len() as u64;
            self.logs += b.receipts.iter().map(|r| r.logs().len() as u64).sum::<u64>();
        }
    }
}

/// Polls the node for new blocks until `cancel` fires.
async fn follow<B: ColdBackend>(
    handle: &ColdStorage<B>,
    client: &HttpClient,
    range: &RpcRange,
    cancel: &CancellationToken,
    stats: &mut ImportStats,
) -> Result<()> {
    let poll = Duration::from_millis(range.poll_ms.max(10));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(poll) => {}
        }
        let head = match latest(client).await {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!(error = %e, "follow: the node did not answer; retrying");
                continue;
            }
        };
        let tip = handle.durable_tip();
        if let Some(tip) = tip {
            // Compare at the lower of the two heads: another block there, or
            // a node that went below the store's tip, means the node reorged.
            let at = tip.number.min(head);
            let ours = if at == tip.number {
                Some(tip.hash)
            } else {
                handle.header(at).await?.map(|h| h.hash())
            };
            if tip.number > head || ours != block_hash(client, at).await? {
                let fork = common_ancestor(handle, client, at).await?;
                let drained = handle.drain_above(fork).await?;
                stats.reorged += drained.len() as u64;
                tracing::info!(fork, removed = drained.len(), "follow: the node's chain changed");
                continue;
            }
        }
        let mut next = tip.map_or(0, |t| t.number + 1);
        while next <= head && !cancel.is_cancelled() {
            let count = range.batch.max(1).min(head - next + 1);
            let blocks = fetch_blocks(client, next, count).await?;
            stats.add(&blocks);
            match handle.append_blocks(blocks).await {
                Ok(()) => next += count,
                // The node reorged between two calls: the next poll unwinds.
                Err(ColdError::ParentMismatch { .. }) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The highest block at or below `n` that the store and the node agree on.
async fn common_ancestor<B: ColdBackend>(
    handle: &ColdStorage<B>,
    client: &HttpClient,
    mut n: BlockNumber,
) -> Result<BlockNumber> {
    loop {
        let ours = handle.header(n).await?.map(|h| h.hash());
        let theirs = block_hash(client, n).await?;
        if ours.is_some() && ours == theirs {
            return Ok(n);
        }
        if ours.is_none() || n == 0 {
            bail!("the node's chain shares no block with the store at or below {n}");
        }
        n -= 1;
    }
}

async fn latest(client: &HttpClient) -> Result<BlockNumber> {
    let head: alloy::primitives::U64 =
        client.call("eth_blockNumber", json!([])).await.wrap_err("asking for the node's head")?;
    Ok(head.to())
}

async fn earliest(client: &HttpClient) -> Result<BlockNumber> {
    let block: Option<Value> = client
        .call("eth_getBlockByNumber", json!(["earliest", false]))
        .await
        .wrap_err("asking for the node's earliest block")?;
    let number = block
        .as_ref()
        .and_then(|b| b.get("number"))
        .and_then(|n| serde_json::from_value::<alloy::primitives::U64>(n.clone()).ok())
        .ok_or_else(|| eyre!("the node has no earliest block"))?;
    Ok(number.to())
}

async fn block_hash(client: &HttpClient, n: BlockNumber) -> Result<Option<B256>> {
    let block: Option<Value> =
        client.call("eth_getBlockByNumber", json!([format!("{n:#x}"), false])).await?;
    Ok(block.and_then(|b| b.get("hash").and_then(|h| serde_json::from_value(h.clone()).ok())))
}

/// Fetches, converts and verifies blocks `from..from + count`.
async fn fetch_blocks(client: &HttpClient, from: u64, count: u64) -> Result<Vec<BlockData>> {
    let mut calls = Vec::with_capacity(2 * count as usize);
    for n in from..from + count {
        calls.push(("eth_getBlockByNumber", json!([format!("{n:#x}"), true])));
        calls.push(("eth_getBlockReceipts", json!([format!("{n:#x}")])));
    }
    let mut answers = client.batch(&calls).await.wrap_err("fetching blocks")?.into_iter();
    let mut out = Vec::with_capacity(count as usize);
    for n in from..from + count {
        let block = answers.next().ok_or_else(|| eyre!("no answer for block {n}"))??;
        let receipts = answers.next().ok_or_else(|| eyre!("no receipts answer for block {n}"))?;
        let block = parse_block(n, block)?;
        let receipts = match receipts {
            Ok(Value::Null) => bail!("the node has no receipts for block {n}"),
            Ok(v) => serde_json::from_value::<Vec<TransactionReceipt>>(v)
                .wrap_err_with(|| format!("decoding the receipts of block {n}"))?,
            // Nodes without eth_getBlockReceipts (Hardhat, Ganache).
            Err(ClientError::Rpc { .. }) => receipts_one_by_one(client, &block).await?,
            Err(e) => return Err(e.into()),
        };
        let data = block_from_rpc(block, receipts).wrap_err_with(|| format!("block {n}"))?;
        coldchain::verify::verify_block(&data).wrap_err_with(|| format!("verifying block {n}"))?;
        out.push(data);
    }
    Ok(out)
}

fn parse_block(n: u64, mut block: Value) -> Result<Block> {
    if block.is_null() {
        bail!("the node has no block {n}");
    }
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
    serde_json::from_value(block).wrap_err_with(|| format!("decoding block {n}"))
}

async fn receipts_one_by_one(
    client: &HttpClient,
    block: &Block,
) -> Result<Vec<TransactionReceipt>> {
    let hashes: Vec<B256> = block.transactions.hashes().collect();
    let calls: Vec<_> = hashes.iter().map(|h| ("eth_getTransactionReceipt", json!([h]))).collect();
    let mut out = Vec::with_capacity(calls.len());
    for (hash, answer) in hashes.iter().zip(client.batch(&calls).await?) {
        let receipt: Option<TransactionReceipt> = serde_json::from_value(answer?)?;
        out.push(receipt.ok_or_else(|| eyre!("the node has no receipt for {hash}"))?);
    }
    Ok(out)
}
