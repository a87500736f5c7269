//! `coldchain import` and `coldchain export`: moving chain history into and
//! out of a store.
//!
//! | command | source | what is checked before a write |
//! |---|---|---|
//! | `import rpc --url URL` | a node's JSON-RPC (`eth_getBlockByNumber(n, true)`, `eth_getBlockReceipts`) | conversion ([`coldchain::convert::block_from_rpc`]), [`coldchain::verify::verify_block`], parent links |
//! | `import jsonl FILE` | JSON lines, one `{"block": .., "receipts": [..]}` per block ([`jsonl`]) | the same |
//! | `import era1 FILE\|DIR` | era1 archives of pre-merge history ([`era1`]) | the same, plus ommers hashes, sender recovery, total difficulty, the hash chain and the epoch accumulator |
//! | `export jsonl FILE` | any store | — (writes what `serve` would answer) |
//!
//! Every path runs the same [`pipeline`]: a source produces chunks of
//! blocks, converted and verified off the writer (worker threads, or
//! concurrent fetches for a node), delivered in order to one writer that
//! appends them in batches through the [`ColdStorage`](coldchain::ColdStorage)
//! handle. Nothing of a block that fails a check is written, nor anything of
//! the batch it would have been written with; batches before it are (each
//! write is atomic), so the store always holds a verified prefix and the
//! same command, run again, resumes after the store's tip.

pub mod era1;
pub mod error;
pub mod export;
pub mod fast;
pub mod jsonl;
pub mod pipeline;
pub mod rpc;

pub use error::ImportError;
pub use pipeline::ImportStats;
pub use rpc::{RpcImportArgs, RpcRange, import_rpc};

use eyre::Result;

/// Arguments of `coldchain import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    source: Source,
}

#[derive(Debug, clap::Subcommand)]
enum Source {
    /// Import from a node's JSON-RPC over HTTP (backfill, then optionally
    /// follow the head through reorgs).
    Rpc(RpcImportArgs),
    /// Import JSON lines: one `{"block": <eth_getBlockByNumber(n, true)>,
    /// "receipts": [<receipts>]}` object per line (what `coldchain export
    /// jsonl` writes).
    Jsonl(jsonl::JsonlImportArgs),
    /// Import era1 archives (pre-merge history): one file, or every `*.era1`
    /// file of a directory in block order.
    Era1(era1::Era1ImportArgs),
}

/// Runs `coldchain import`.
pub async fn run(args: ImportArgs) -> Result<()> {
    match args.source {
        Source::Rpc(args) => rpc::run(args).await,
        Source::Jsonl(args) => jsonl::run(args).await,
        Source::Era1(args) => era1::run(args).await,
    }
}

/// A token cancelled by the first Ctrl-C (SIGINT): imports stop after the
/// write in flight, keep what is written, and report where they stopped.
pub(crate) fn ctrl_c_token() -> tokio_util::sync::CancellationToken {
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("interrupted: finishing the write in flight, then stopping");
            stop.cancel();
        }
    });
    cancel
}

#[cfg(test)]
mod tests;
