//! `coldchain synth`: writes the reference workload W1 into a store.

use crate::store::{OnBackend, StoreSpec, run_on, writing_handle};
use alloy::primitives::B256;
use coldchain::{ColdBackend, ColdStorage};
use coldchain_w1::{W1, W1Params};
use eyre::{Result, WrapErr, bail};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `coldchain synth`.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// The store: a path (embedded), `postgres://...`, or `mem`.
    #[arg(long, default_value = "./coldchain-data")]
    pub store: StoreSpec,
    /// Blocks to write.
    #[arg(long, default_value_t = 5_000)]
    pub blocks: u64,
    /// Transactions per block.
    #[arg(long, default_value_t = 150)]
    pub txs_per_block: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Blocks per write.
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
}

impl SynthArgs {
    /// The W1 parameters these arguments select.
    pub fn params(&self) -> W1Params {
        W1Params {
            blocks: self.blocks,
            txs_per_block: self.txs_per_block,
            seed: self.seed,
            ..W1Params::default()
        }
    }
}

/// Runs `coldchain synth`.
pub async fn run(args: SynthArgs) -> Result<()> {
    let store = args.store.clone();
    run_on(&store, Synth(args)).await
}

struct Synth(SynthArgs);

impl OnBackend for Synth {
    type Output = ();

    fn creates(&self) -> bool {
        true
    }

    async fn run<B: ColdBackend>(self, backend: B, store: &StoreSpec) -> Result<()> {
        let handle = writing_handle(backend).await?;
        let w1 = W1::try_new(self.0.params())?;
        let written = load_w1(&handle, &w1, self.0.batch, true).await?;
        tracing::info!(%store, written, tip = ?handle.durable_tip().map(|t| t.number), "synth done");
        handle.shutdown().await;
        Ok(())
    }
}

/// Appends the W1 chain to `handle`, resuming after the store's tip when it
/// already holds a prefix of the same chain, after recording W1's chain id
/// (a store of another chain is refused). Returns the blocks written.
pub async fn load_w1<B: ColdBackend>(
    handle: &ColdStorage<B>,
    w1: &W1,
    batch: u64,
    progress: bool,
) -> Result<u64> {
    let range = w1.numbers();
    crate::chain_id::claim(handle, w1.params().chain_id, "the W1 chain").await?;
    let (mut next, mut parent) = match handle.tip().await? {
        None => (range.start, B256::ZERO),
        Some(tip) if range.contains(&tip.number) => (tip.number + 1, tip.hash),
        Some(tip) => bail!(
            "the store's tip is block {}, outside the W1 range {}..{}; use an empty store",
            tip.number,
            range.start,
            range.end
        ),
    };
    let total = range.end.saturating_sub(next);
    let bar = if progress { ProgressBar::new(total) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {pos}/{len} blocks [{elapsed_precise}] {per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut written = 0;
    while next < range.end {
        let count = batch.max(1).min(range.end - next);
        let blocks = w1.chunk_par(next, count, parent, 0);
        if let Some(last) = blocks.last() {
            parent = last.hash();
        }
        handle
            .append_blocks(blocks)
            .await
            .wrap_err_with(|| format!("appending blocks {next}..{}", next + count))?;
        next += count;
        written += count;
        bar.inc(count);
    }
    bar.finish_and_clear();
    Ok(written)
}
