//! The `coldchain` binary: serve, synth and bench over any store.

mod bench;
mod import;
mod serve;
mod store;
mod synth;

use clap::{Parser, Subcommand};
use eyre::Result;
use tracing_subscriber::EnvFilter;

/// Cold storage for EVM chain history.
#[derive(Debug, Parser)]
#[command(name = "coldchain", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve Ethereum JSON-RPC (HTTP and WebSocket) over a store.
    Serve(serve::ServeArgs),
    /// Write the reference workload W1 into a store.
    Synth(synth::SynthArgs),
    /// Measure the reference workload W1 on a store.
    Bench(bench::BenchArgs),
    /// Import blocks into a store (from a node's JSON-RPC).
    Import(import::ImportArgs),
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Synth(args) => synth::run(args).await,
            Command::Bench(args) => bench::run(args).await.map(drop),
            Command::Import(args) => import::run(args).await,
        }
    })
}
