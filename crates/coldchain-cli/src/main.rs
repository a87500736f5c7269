//! The `coldchain` binary: serve, import, synth, bench and verify over any store.

mod bench;
mod bench_rpc;
mod chain_id;
mod export;
mod import;
mod serve;
mod soak;
mod store;
mod synth;
mod verify;

use clap::{Parser, Subcommand};
use eyre::Result;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: imports decode and verify
/// blocks on worker threads and free them on others, which glibc's malloc
/// pays for in lock contention and consolidation (~25% of an import's CPU);
/// the store's writes are faster too. Its 2.x line (the `v2` feature), not
/// 3.x: on W1 with the embedded store, 2.x appended more blocks a second
/// one at a time in each of eight alternating pairs (+3% to +62%) and
/// answered Q1 3–25% faster (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Measure a running server: raise the JSON-RPC request rate step by step (throughput, p50, p99, the knee).
    BenchRpc(bench_rpc::BenchRpcArgs),
    /// Import blocks into a store (from a node's JSON-RPC, JSON lines or era1 archives).
    Import(import::ImportArgs),
    /// Export blocks from a store (JSON lines).
    Export(export::ExportArgs),
    /// Check that every index entry of an embedded store agrees with the data.
    Verify(verify::VerifyArgs),
    /// Print a store's chain id, or record one in a store that has none.
    ChainId(chain_id::ChainIdArgs),
    /// Run the production pattern (fire-and-forget appends, saturating readers, streams, reorgs, faults) and report.
    Soak(soak::SoakArgs),
}

fn main() -> std::process::ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain, without a backtrace: errors here say what to do.
            eprintln!("error: {}", cause_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: an error whose message
/// already includes its source's is not followed by the source again.
fn cause_chain(e: &eyre::Report) -> String {
    causes(e.as_ref())
}

/// [`cause_chain`] of any error.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        next = cause.source();
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Threads of tokio's blocking pool at most (tokio's default: 512). The
/// embedded store runs streams, writes and the log queries beyond its own
/// read threads there, all bounded by the handle's permits (64 reads, 8
/// streams, one writer); the rest is file and DNS work. Under bursts tokio
/// starts a thread whenever none is idle at that instant, and each thread
/// keeps its allocator cache while it idles: a 30-minute soak on the
/// embedded store grew the pool to ~500 threads and 2.3 GB of anonymous
/// memory (docs/BENCHMARKS.md). Work beyond the cap waits in tokio's queue.
const MAX_BLOCKING_THREADS: usize = 128;

/// Shared with the integration tests (`tests/common`).
#[cfg(test)]
#[path = "../tests/common/clauses.rs"]
#[allow(dead_code)]
mod clauses;
#[cfg(test)]
pub(crate) use clauses::assert_no_repeated_clause;

fn run(cli: Cli) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Synth(args) => synth::run(args).await,
            Command::Bench(args) => bench::run(args).await.map(drop),
            Command::BenchRpc(args) => bench_rpc::run(args).await.map(drop),
            Command::Import(args) => import::run(args).await,
            Command::Export(args) => export::run(args).await,
            Command::Verify(args) => verify::run(args).await,
            Command::ChainId(args) => chain_id::run(args).await,
            Command::Soak(args) => soak::run(args).await.map(drop),
        }
    })
}
