//! `coldchain import jsonl FILE`: blocks from a JSON lines file.
//!
//! # Format
//!
//! One JSON object per line (UTF-8, `\n`-separated; blank lines are
//! ignored), blocks in ascending order without gaps:
//!
//! ```text
//! {"block": <eth_getBlockByNumber(n, true) result>, "receipts": [<eth_getBlockReceipts(n) result>]}
//! ```
//!
//! `block` must carry full transaction objects (and `withdrawals` when its
//! header has a `withdrawalsRoot`); `receipts` are the block's receipts in
//! transaction order. A block with uncles needs `"uncles": [..]`, the uncle
//! headers in the order of the block's `uncles` (each as
//! `eth_getUncleByBlockNumberAndIndex` answers it). Other keys are ignored. This is what
//! `coldchain export jsonl` writes (the objects `coldchain serve` answers),
//! and what a script collecting a node's answers produces.
//!
//! # Pipeline
//!
//! A reader thread reads the file line by line (a `BufReader`, each line at
//! most [`MAX_LINE`] bytes) and hands groups of lines to worker threads
//! (one per core but one, see [`default_workers`]), which parse them
//! (straight into alloy's RPC types), convert them ([`block_from_rpc_with_ommers`]) and
//! verify them ([`verify_block`]); the writer appends them in order,
//! `--batch` blocks per write. Memory is bounded by the queue between them
//! (see [`super::pipeline`]).
//!
//! # Chain id
//!
//! A file names no chain: `--chain-id N` records N as the store's chain id
//! (or refuses a store of another chain before any write); without it the
//! store keeps the id it records, and one without stays without (see
//! [`crate::chain_id`]).
//!
//! # Resuming
//!
//! When the store already holds blocks, lines up to its tip are skipped
//! (only their `number` is read) and the line at the tip must have the
//! stored block's hash; the import continues after it.

use super::{
    ImportError, ImportStats,
    pipeline::{
        Chunk, ChunkResult, Skipped, Writer, default_workers, ordered, progress_bar,
        queue_capacity, run_parallel,
    },
};
use crate::store::StoreSpec;
use alloy::{
    primitives::{B256, BlockNumber, U64},
    rpc::types::{Block, TransactionReceipt},
};
use coldchain::{
    BlockData, ColdBackend, ColdStorage, convert::block_from_rpc_with_ommers, verify::verify_block,
};
use eyre::Result;
use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

/// The longest line accepted (a block with all its receipts), in bytes.
pub const MAX_LINE: u64 = 512 << 20;

/// Lines per worker job: large enough to amortize the hand-off, small
/// enough to keep the workers evenly busy.
const LINES_PER_JOB: usize = 8;

/// Line buffers kept for reuse.
const POOLED_BUFFERS: usize = 64;

/// Arguments of `coldchain import jsonl`.
#[derive(Debug, Clone, clap::Args)]
pub struct JsonlImportArgs {
    /// The JSON lines file.
    pub file: PathBuf,
    /// The store: a path (embedded), `postgres://...`, or `mem`.
    #[arg(long, default_value = "./coldchain-data")]
    pub store: StoreSpec,
    /// Blocks per write.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Threads that parse and verify (default: one per core but one, at
    /// least one).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Stop after this block.
    #[arg(long)]
    pub to: Option<u64>,
    /// The chain of the file's blocks: recorded as the store's chain id, or
    /// checked against the one it records. Without it the store keeps what
    /// it records (a store without a chain id stays without one).
    #[arg(long)]
    pub chain_id: Option<u64>,
}

/// One line of the file.
#[derive(Debug, serde::Deserialize)]
pub struct JsonlBlock {
    /// `eth_getBlockByNumber(n, true)`.
    pub block: Block,
    /// The block's receipts, in order.
    pub receipts: Vec<TransactionReceipt>,
    /// The uncle headers, in the order of the block's `uncles`.
    #[serde(default)]
    pub uncles: Vec<alloy::rpc::types::Header>,
}

/// Just enough of a line to skip it.
#[derive(serde::Deserialize)]
struct Peek {
    block: PeekBlock,
}

#[derive(serde::Deserialize)]
struct PeekBlock {
    number: U64,
    hash: B256,
}

/// Runs `coldchain import jsonl`.
pub async fn run(args: JsonlImportArgs) -> Result<()> {
    // An empty file is refused before the store is opened (or created).
    check_not_empty(&args.file)?;
    let store = args.store.clone();
    super::run_import(&store, args).await
}

/// An empty file is an error: it is a wrong path or a failed download, not
/// a chain with no blocks.
fn check_not_empty(path: &std::path::Path) -> Result<(), ImportError> {
    let len = std::fs::metadata(path).map_err(|e| ImportError::io(path, e))?.len();
    if len == 0 {
        return Err(ImportError::malformed(
            path.display().to_string(),
            "the file is empty: there is no block to import",
        ));
    }
    Ok(())
}

impl super::ImportSource for JsonlImportArgs {
    async fn import<B: ColdBackend>(
        &self,
        handle: &ColdStorage<B>,
        cancel: &tokio_util::sync::CancellationToken,
        stats: &mut ImportStats,
    ) -> Result<(), ImportError> {
        import_jsonl(handle, self, true, cancel, stats).await
    }

    fn log_summary(&self, store: &StoreSpec, summary: &str) {
        tracing::info!(%store, file = %self.file.display(), "{summary}");
    }
}

/// Imports the file of `args` into `handle`, adding what it wrote to
/// `stats`; see the [module docs](self).
pub async fn import_jsonl<B: ColdBackend>(
    handle: &ColdStorage<B>,
    args: &JsonlImportArgs,
    progress: bool,
    cancel: &tokio_util::sync::CancellationToken,
    stats: &mut ImportStats,
) -> Result<(), ImportError> {
    let path = args.file.clone();
    check_not_empty(&path)?;
    let file = File::open(&path).map_err(|e| ImportError::io(&path, e))?;
    let len = file.metadata().map_err(|e| ImportError::io(&path, e))?.len();
    match args.chain_id {
        Some(id) => crate::chain_id::claim(handle, id, "--chain-id").await?,
        None => {
            let stored = handle
                .chain_id()
                .await
                .map_err(|e| ImportError::store("reading the store's chain id", e))?;
            if stored.is_none() {
                tracing::warn!(
                    "the store records no chain id and a JSON lines file names none: pass \
                     --chain-id, or record it later with `coldchain chain-id --set <ID>`"
                );
            }
        }
    }
    let tip = handle.tip().await.map_err(|e| ImportError::store("reading the store's tip", e))?;
    let workers = args.workers.unwrap_or_else(default_workers).max(1);
    let (tx, rx) = tokio::sync::mpsc::channel(queue_capacity(workers, LINES_PER_JOB, args.batch));
    let skip_below = tip.map(|t| t.number);
    let reader_path = path.clone();
    let reader = tokio::task::spawn_blocking(move || {
        // Line buffers go back to the reader once parsed: big buffers freed
        // on one thread and allocated on another would otherwise be returned
        // to the system and faulted in (zeroed) again, line after line.
        let (recycle, pool) = std::sync::mpsc::sync_channel(POOLED_BUFFERS);
        let lines = Lines::new(file, reader_path.clone(), pool);
        let work = |job| parse_job(&reader_path, job, skip_below, &recycle);
        run_parallel(lines, workers, work, &tx);
    });
    let bar = progress_bar(progress, Some(len), "import jsonl", true);
    let mut writer = Writer::new(handle, tip, args.batch, bar.clone()).stop_after(args.to);
    let result = writer.drain(ordered(rx), cancel).await;
    bar.finish_and_clear();
    stats.merge(writer.stats());
    // The reader stops once the queue closes (the writer dropped it).
    drop(writer);
    reader.await.map_err(|e| ImportError::Panicked(e.to_string()))?;
    result.map(drop)
}

/// A group of lines for one worker.
pub struct LineJob {
    /// 1-based number of the first line.
    first_line: u64,
    /// The lines (without the newline).
    lines: Vec<Vec<u8>>,
    /// Bytes of the file read after this group.
    end_offset: u64,
}

/// Reads a file as groups of non-blank lines.
struct Lines {
    reader: BufReader<File>,
    /// Emptied line buffers, back from the workers.
    pool: std::sync::mpsc::Receiver<Vec<u8>>,
    path: PathBuf,
    line: u64,
    offset: u64,
    done: bool,
    /// The last line's length: the next buffer's capacity (lines of one
    /// file are alike; this saves the copies of a growing buffer).
    last_len: usize,
}

impl Lines {
    fn new(file: File, path: PathBuf, pool: std::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        Self {
            reader: BufReader::with_capacity(1 << 20, file),
            pool,
            path,
            line: 0,
            offset: 0,
            done: false,
            last_len: 0,
        }
    }

    /// The next non-blank line, or `None` at the end.
    fn next_line(&mut self) -> Result<Option<(u64, Vec<u8>)>, ImportError> {
        loop {
            let mut buf = match self.pool.try_recv() {
                Ok(buf) => buf,
                Err(_) => Vec::with_capacity(self.last_len + self.last_len / 8 + 64),
            };
            let n = (&mut self.reader)
                .take(MAX_LINE + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|e| ImportError::io(&self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            self.offset += n as u64;
            self.last_len = n;
            if buf.last() == Some(&b'\n') {
                buf.pop();
            } else if n as u64 > MAX_LINE {
                return Err(ImportError::malformed(
                    format!("{} line {}", self.path.display(), self.line),
                    format!("the line is longer than {MAX_LINE} bytes"),
                ));
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some((self.line, buf)));
        }
    }
}

impl Iterator for Lines {
    type Item = Result<LineJob, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut job =
            LineJob { first_line: 0, lines: Vec::with_capacity(LINES_PER_JOB), end_offset: 0 };
        while job.lines.len() < LINES_PER_JOB {
            match self.next_line() {
                Ok(Some((line, bytes))) => {
                    if job.lines.is_empty() {
                        job.first_line = line;
                    }
                    job.lines.push(bytes);
                }
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        job.end_offset = self.offset;
        (!job.lines.is_empty()).then_some(Ok(job))
    }
}

/// Parses, converts and verifies the lines of one job. Lines below
/// `skip_below` (the store's tip) are only peeked at and skipped.
fn parse_job(
    path: &Path,
    job: LineJob,
    skip_below: Option<BlockNumber>,
    recycle: &std::sync::mpsc::SyncSender<Vec<u8>>,
) -> ChunkResult {
    let LineJob { first_line, lines, end_offset } = job;
    let result = parse_lines(path, first_line, &lines, end_offset, skip_below);
    for mut line in lines {
        line.clear();
        // A full pool: the buffer is dropped.
        let _ = recycle.try_send(line);
    }
    result
}

fn parse_lines(
    path: &Path,
    first_line: u64,
    lines: &[Vec<u8>],
    end_offset: u64,
    skip_below: Option<BlockNumber>,
) -> ChunkResult {
    let mut blocks = Vec::with_capacity(lines.len());
    let mut numbers = Vec::with_capacity(lines.len());
    let mut skipped = Vec::new();
    let chunk_origin = path.display().to_string();
    for (i, line) in lines.iter().enumerate() {
        let origin = || format!("{} line {}", path.display(), first_line + i as u64);
        let parsed = match skip_below {
            Some(tip) => match serde_json::from_slice::<Peek>(line) {
                Ok(peek) if peek.block.number.to::<u64>() < tip => {
                    skipped.push(Skipped {
                        number: peek.block.number.to(),
                        hash: peek.block.hash,
                        line: Some(first_line + i as u64),
                    });
                    continue;
                }
                Ok(_) => parse_line(line).map_err(|e| e.at(origin())),
                Err(e) => Err(ImportError::malformed(origin(), format!("not a block line: {e}"))),
            },
            None => parse_line(line).map_err(|e| e.at(origin())),
        };
        match parsed {
            Ok(block) => {
                blocks.push(block);
                numbers.push(first_line + i as u64);
            }
            // The lines before it are verified: they are written first.
            Err(e) => {
                let mut chunk = Chunk::failed_after(blocks, end_offset, chunk_origin, skipped, e);
                chunk.lines = numbers;
                return Ok(chunk);
            }
        }
    }
    Ok(Chunk {
        blocks,
        progress: end_offset,
        origin: chunk_origin,
        skipped,
        error: None,
        lines: numbers,
    })
}

/// What can be wrong with one line, before the line number is known.
#[derive(Debug)]
pub enum LineError {
    /// Not JSON of the expected shape.
    Json(serde_json::Error),
    /// The objects are not one consistent block.
    Convert(coldchain::convert::ConvertError),
    /// The block does not match its commitments.
    Verify(coldchain::verify::VerifyError),
}

impl LineError {
    /// The import error at `origin`.
    pub fn at(self, origin: String) -> ImportError {
        match self {
            Self::Json(e) => ImportError::malformed(origin, format!("not a block line: {e}")),
            Self::Convert(e) => ImportError::convert(origin, e),
            Self::Verify(e) => ImportError::verify(origin, e),
        }
    }
}

/// Parses one line into a verified block: with the [fast decoder](super::fast)
/// when it handles the line and its result verifies, else with alloy's RPC
/// types (which also give the canonical error).
pub fn parse_line(line: &[u8]) -> Result<BlockData, LineError> {
    if let Some(block) = super::fast::decode(line)
        && verify_block(&block).is_ok()
    {
        return Ok(block);
    }
    parse_line_alloy(line)
}

/// Parses one line into a verified block with alloy's RPC types.
pub fn parse_line_alloy(line: &[u8]) -> Result<BlockData, LineError> {
    let JsonlBlock { block, receipts, uncles } =
        serde_json::from_slice(line).map_err(LineError::Json)?;
    let ommers = uncles.into_iter().map(|u| u.inner).collect();
    let data = block_from_rpc_with_ommers(block, ommers, receipts).map_err(LineError::Convert)?;
    verify_block(&data).map_err(LineError::Verify)?;
    Ok(data)
}
