//! `coldchain import`: moving chain history into a store (`coldchain
//! export`, the way out, is [`crate::export`]).
//!
//! | command | source | what is checked before a write |
//! |---|---|---|
//! | `import rpc --url URL` | a node's JSON-RPC (`eth_getBlockByNumber(n, true)`, `eth_getBlockReceipts`) | conversion ([`coldchain::convert::block_from_rpc`]), [`coldchain::verify::verify_block`], parent links |
//! | `import jsonl FILE` | JSON lines, one `{"block": .., "receipts": [..]}` per block ([`jsonl`]) | the same |
//! | `import era1 FILE\|DIR` | era1 archives of pre-merge history ([`era1`]) | the same, plus ommers hashes, sender recovery, total difficulty, the hash chain and the epoch accumulator |
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
pub mod fast;
pub mod jsonl;
pub mod pipeline;
pub mod rpc;

pub use error::ImportError;
pub use pipeline::ImportStats;
pub use rpc::{RpcImportArgs, RpcRange, import_rpc};

use crate::store::{OnBackend, StoreSpec, run_on, writing_handle};
use coldchain::{ColdBackend, ColdStorage};
use eyre::Result;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

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

/// A source of `coldchain import` (`rpc`, `jsonl`, `era1`); the command
/// around it is written once, in [`run_import`].
pub(crate) trait ImportSource {
    /// Imports into `handle`, with progress, until done or `cancel` fires,
    /// adding what it wrote to `stats` as it goes.
    fn import<B: ColdBackend>(
        &self,
        handle: &ColdStorage<B>,
        cancel: &CancellationToken,
        stats: &mut ImportStats,
    ) -> impl Future<Output = Result<(), ImportError>>;

    /// Logs the closing `summary` of an import into `store`, naming the
    /// source.
    fn log_summary(&self, store: &StoreSpec, summary: &str);
}

/// Runs an import command: opens (or creates) `store`, imports `source`
/// into it until done or the first Ctrl-C, logs what was written and where
/// the store ends (also after an error), and shuts the store down.
pub(crate) async fn run_import<S: ImportSource>(store: &StoreSpec, source: S) -> Result<()> {
    run_on(store, Import(source)).await
}

/// The [`OnBackend`] work of [`run_import`].
struct Import<S>(S);

impl<S: ImportSource> OnBackend for Import<S> {
    type Output = ();

    fn creates(&self) -> bool {
        true
    }

    async fn run<B: ColdBackend>(self, backend: B, store: &StoreSpec) -> Result<()> {
        let handle = writing_handle(backend).await?;
        let cancel = ctrl_c_token();
        let started = Instant::now();
        let mut stats = ImportStats::default();
        let result = self.0.import(&handle, &cancel, &mut stats).await;
        let summary = stats.summary(
            if result.is_ok() { "import done" } else { "import stopped" },
            started.elapsed(),
            handle.durable_tip(),
        );
        self.0.log_summary(store, &summary);
        handle.shutdown().await;
        result?;
        Ok(())
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
