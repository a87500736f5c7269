//! `coldchain export jsonl FILE [--from N] [--to M]`: writes a store's blocks
//! as JSON lines (the format of [`crate::import::jsonl`]).
//!
//! Each line is `{"block": .., "receipts": [..]}` with the objects built by
//! `coldchain_rpc::convert` ([`block_json`] with full transactions,
//! [`receipt_rpc`]), so they are exactly what `coldchain serve` answers to
//! `eth_getBlockByNumber(n, true)` and `eth_getBlockReceipts(n)`; a block
//! with uncles adds `"uncles": [..]`, the uncle headers as
//! `eth_getUncleByBlockNumberAndIndex` answers them ([`uncle_json`]). The output
//! is deterministic: exporting, importing into an empty store and exporting
//! again gives the same bytes.
//!
//! Blocks are read through the handle, `--concurrency` blocks at a time,
//! and written in order to `FILE.partial`, which is renamed to `FILE` once
//! complete (an interrupted export leaves no file that looks whole).

use crate::import::{ImportError, ImportStats, pipeline::progress_bar};
use crate::store::{OnBackend, StoreSpec, run_on};
use alloy::{primitives::BlockNumber, rpc::types::TransactionReceipt};
use coldchain::{BlockExtras, ColdBackend, ColdStorage, RecoveredTx, SealedHeader, StoredReceipt};
use coldchain_rpc::convert::{block_json, receipt_rpc, uncle_json};
use eyre::Result;
use futures::StreamExt;
use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Instant,
};

/// Arguments of `coldchain export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    format: Format,
}

#[derive(Debug, clap::Subcommand)]
enum Format {
    /// Write JSON lines: one `{"block": .., "receipts": [..]}` per block, the
    /// objects as `coldchain serve` answers them.
    Jsonl(JsonlExportArgs),
}

/// Arguments of `coldchain export jsonl`.
#[derive(Debug, Clone, clap::Args)]
pub struct JsonlExportArgs {
    /// The file to write (replaced if it exists).
    pub file: PathBuf,
    /// The store: a path (embedded), `postgres://...`, or `mem`.
    #[arg(long, default_value = "./coldchain-data")]
    pub store: StoreSpec,
    /// First block (default: the first stored block).
    #[arg(long)]
    pub from: Option<u64>,
    /// Last block (default: the store's tip).
    #[arg(long)]
    pub to: Option<u64>,
    /// Blocks read from the store at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Open the store read-only (chosen by itself for an embedded store
    /// whose directory cannot be written).
    #[arg(long)]
    pub read_only: bool,
}

/// Runs `coldchain export`.
pub async fn run(args: ExportArgs) -> Result<()> {
    match args.format {
        Format::Jsonl(args) => {
            let store = args.store.clone();
            run_on(&store, ExportJsonl(args)).await
        }
    }
}

struct ExportJsonl(JsonlExportArgs);

impl OnBackend for ExportJsonl {
    type Output = ();

    fn read_only(&self) -> bool {
        self.0.read_only
    }

    async fn run<B: ColdBackend>(self, backend: B, store: &StoreSpec) -> Result<()> {
        let handle = ColdStorage::new(backend).await?;
        let started = Instant::now();
        let result = export_jsonl(&handle, &self.0, true).await;
        if let Ok(stats) = &result {
            let bytes = std::fs::metadata(&self.0.file).map_or(0, |m| m.len());
            let summary = stats.summary("export done", started.elapsed(), handle.durable_tip());
            tracing::info!(%store, file = %self.0.file.display(), bytes, "{summary}");
        }
        handle.shutdown().await;
        result?;
        Ok(())
    }
}

/// One JSON line (with its newline) for a block: what `serve` answers for
/// the block (full transactions), its receipts and, when it has uncles, the
/// uncle headers.
pub fn jsonl_line(
    header: &SealedHeader,
    transactions: Vec<RecoveredTx>,
    extras: BlockExtras,
    receipts: &[StoredReceipt],
) -> Result<Vec<u8>, serde_json::Error> {
    let uncles = extras.ommers.iter().map(uncle_json).collect::<Result<Vec<_>, _>>()?;
    let block = block_json(header, transactions, extras, true)?;
    let receipts: Vec<TransactionReceipt> = receipts.iter().map(receipt_rpc).collect();
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"block\":");
    serde_json::to_writer(&mut out, &block)?;
    out.extend_from_slice(b",\"receipts\":");
    serde_json::to_writer(&mut out, &receipts)?;
    if !uncles.is_empty() {
        out.extend_from_slice(b",\"uncles\":");
        serde_json::to_writer(&mut out, &uncles)?;
    }
    out.extend_from_slice(b"}\n");
    Ok(out)
}

/// The first stored block: stored blocks are contiguous, so a binary search
/// over header reads finds it.
pub async fn first_block<B: ColdBackend>(
    handle: &ColdStorage<B>,
    tip: BlockNumber,
) -> Result<BlockNumber, ImportError> {
    let exists = |n: BlockNumber| async move {
        handle
            .header(n)
            .await
            .map(|h| h.is_some())
            .map_err(|e| ImportError::store(format!("reading block {n}"), e))
    };
    let (mut lo, mut hi) = (0, tip);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if exists(mid).await? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Exports the range of `args` from `handle`; see the [module docs](self).
pub async fn export_jsonl<B: ColdBackend>(
    handle: &ColdStorage<B>,
    args: &JsonlExportArgs,
    progress: bool,
) -> Result<ImportStats, ImportError> {
    let tip = handle
        .tip()
        .await
        .map_err(|e| ImportError::store("reading the store's tip", e))?
        .ok_or_else(|| ImportError::Usage("the store is empty: nothing to export".into()))?;
    let first = first_block(handle, tip.number).await?;
    let from = args.from.unwrap_or(first);
    let to = args.to.unwrap_or(tip.number);
    if from < first || to > tip.number || from > to {
        return Err(ImportError::Usage(format!(
            "the store holds blocks {first}..={}; cannot export {from}..={to}",
            tip.number
        )));
    }
    let partial = partial_path(&args.file);
    let file = std::fs::File::create(&partial).map_err(|e| ImportError::io(&partial, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let bar = progress_bar(progress, Some(to - from + 1), "export jsonl", false);
    let started = Instant::now();
    let mut stats = ImportStats::default();
    let mut lines = futures::stream::iter(from..=to)
        .map(|n| read_line(handle, n))
        .buffered(args.concurrency.max(1));
    let result = async {
        while let Some(line) = lines.next().await {
            let (line, txs, logs) = line?;
            out.write_all(&line).map_err(|e| ImportError::io(&partial, e))?;
            stats.blocks += 1;
            stats.transactions += txs;
            stats.logs += logs;
            bar.inc(1);
            if stats.blocks % 64 == 0 {
                let rate = stats.blocks as f64 / started.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("{} txs | {rate:.0} blocks/s", stats.transactions));
            }
        }
        out.flush().map_err(|e| ImportError::io(&partial, e))?;
        out.get_ref().sync_all().map_err(|e| ImportError::io(&partial, e))?;
        std::fs::rename(&partial, &args.file).map_err(|e| ImportError::io(&args.file, e))
    }
    .await;
    bar.finish_and_clear();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.map(|()| stats)
}

fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    file.with_file_name(name)
}

/// Reads block `n` and renders its line; returns the line, its transaction
/// count and its log count.
async fn read_line<B: ColdBackend>(
    handle: &ColdStorage<B>,
    n: BlockNumber,
) -> Result<(Vec<u8>, u64, u64), ImportError> {
    let store_err = |e| ImportError::store(format!("reading block {n}"), e);
    let (header, txs, extras, receipts) = tokio::try_join!(
        handle.header(n),
        handle.block_transactions(n),
        handle.block_extras(n),
        handle.block_receipts(n)
    )
    .map_err(store_err)?;
    let missing =
        || ImportError::Usage(format!("block {n} disappeared from the store during the export"));
    let (header, txs, extras, receipts) = (
        header.ok_or_else(missing)?,
        txs.ok_or_else(missing)?,
        extras.ok_or_else(missing)?,
        receipts.ok_or_else(missing)?,
    );
    let counts = (txs.len() as u64, receipts.iter().map(|r| r.receipt.logs().len() as u64).sum());
    let line = jsonl_line(&header, txs, extras, &receipts)
        .map_err(|e| ImportError::malformed(format!("block {n}"), format!("serializing: {e}")))?;
    Ok((line, counts.0, counts.1))
}
