//! `coldchain import era1 FILE|DIR`: pre-merge history from era1 archives.
//!
//! # Format
//!
//! An era1 file is an e2store file: a sequence of records, each an 8-byte
//! header (2-byte type, 4-byte little-endian data length, 2 reserved zero
//! bytes) and the data:
//!
//! ```text
//! era1        := Version | block-tuple* | other-entries* | Accumulator | BlockIndex
//! block-tuple := CompressedHeader | CompressedBody | CompressedReceipts | TotalDifficulty
//!
//! Version            type 0x65 0x32, no data
//! CompressedHeader   type 0x03 0x00, snappy-framed rlp(header)
//! CompressedBody     type 0x04 0x00, snappy-framed rlp([transactions, ommers])
//! CompressedReceipts type 0x05 0x00, snappy-framed rlp([receipt, ...]) (with blooms;
//!                    legacy receipts as lists, typed ones as strings of type || rlp)
//! TotalDifficulty    type 0x06 0x00, uint256 little-endian (32 bytes)
//! Accumulator        type 0x07 0x00, hash_tree_root(List[HeaderRecord, 8192])
//! BlockIndex         type 0x66 0x32, starting number (u64 LE) | one offset per
//!                    block (i64 LE, relative to the BlockIndex record) | count (u64 LE)
//! ```
//!
//! with `HeaderRecord = {block_hash: Bytes32, total_difficulty: uint256}`
//! (SSZ: SHA-256 Merkle tree of depth 13 over the records, the record count
//! mixed in). A file holds at most 8192 blocks (one epoch); files are named
//! `<network>-<epoch>-<first 4 bytes of the accumulator root>.era1`.
//!
//! # Verification, before any write
//!
//! Per file, a first pass reads the headers and total difficulties only:
//! - every record header is well formed, the file starts with Version, the
//!   tuples come in order and the BlockIndex offsets point at them;
//! - block numbers run from the index's starting number without gaps; each
//!   header's `parentHash` is the keccak hash of the previous header (also
//!   across consecutive files of one run);
//! - each total difficulty is the previous one plus the header's
//!   difficulty (genesis: its difficulty);
//! - the epoch accumulator recomputed from the (hash, total difficulty)
//!   records equals the file's Accumulator record, and the file name's hash
//!   part and epoch agree with it;
//! - the file's network (its name's `<network>`, see [`NETWORKS`], or
//!   `--chain-id`) is the store's chain (see [`crate::chain_id`]), and a
//!   file that starts at block 0 starts with that network's genesis.
//!
//! Only then a second pass decodes bodies and receipts on worker threads
//! (one per core but one, see [`default_workers`]): the ommers hash of the
//! header is checked against the body's ommers (which are kept with the
//! block and served as its uncles), senders are recovered from
//! the signatures (k256), and [`verify_block`] checks transaction hashes,
//! the transactions and receipts roots, blooms and gas. `--checksums LIST`
//! also checks each file's SHA-256 against a published list (`sha256  name`
//! lines) first.
//!
//! Senders are recovered with `recover_signer_unchecked`: pre-Homestead
//! signatures may have a high `s`, which consensus then accepted; each
//! transaction is pinned by the verified transactions root anyway.

use super::{
    ImportError, ImportStats,
    pipeline::{
        Chunk, ChunkResult, Ended, Skipped, Writer, default_workers, ordered, progress_bar,
        queue_capacity, run_parallel,
    },
};
use crate::store::StoreSpec;
use alloy::{
    consensus::{
        BlockBody, Header, TxEnvelope, proofs::calculate_ommers_root,
        transaction::SignerRecoverable,
    },
    primitives::{B256, BlockNumber, Sealable, U256, b256},
    rlp::Decodable,
};
use coldchain::{
    BlockData, BlockExtras, ColdBackend, ColdStorage, Receipt, RecoveredTx, SealedHeader,
    verify::verify_block,
};
use eyre::Result;
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};
use tokio_util::sync::CancellationToken;

/// Record types (the two type bytes as they appear in the file).
pub mod types {
    /// Version: the first record of every e2store file.
    pub const VERSION: [u8; 2] = [0x65, 0x32];
    /// Snappy-framed RLP header.
    pub const COMPRESSED_HEADER: [u8; 2] = [0x03, 0x00];
    /// Snappy-framed RLP body.
    pub const COMPRESSED_BODY: [u8; 2] = [0x04, 0x00];
    /// Snappy-framed RLP receipts.
    pub const COMPRESSED_RECEIPTS: [u8; 2] = [0x05, 0x00];
    /// Total difficulty, uint256 little-endian.
    pub const TOTAL_DIFFICULTY: [u8; 2] = [0x06, 0x00];
    /// Epoch accumulator root.
    pub const ACCUMULATOR: [u8; 2] = [0x07, 0x00];
    /// Block index.
    pub const BLOCK_INDEX: [u8; 2] = [0x66, 0x32];
}

/// Most blocks in one era1 file (the accumulator's list limit).
pub const MAX_BLOCKS: u64 = 8192;

/// The largest decompressed record accepted, in bytes.
pub const MAX_RECORD: u64 = 256 << 20;

/// Tuples per worker job.
const BLOCKS_PER_JOB: usize = 32;

/// Arguments of `coldchain import era1`.
#[derive(Debug, Clone, clap::Args)]
pub struct Era1ImportArgs {
    /// An era1 file, or a directory whose `*.era1` files are imported in
    /// block order.
    pub path: PathBuf,
    /// The store: a path (embedded), `postgres://...`, or `mem`.
    #[arg(long, default_value = "./coldchain-data")]
    pub store: StoreSpec,
    /// Blocks per write.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Threads that decode, recover senders and verify (default: one per
    /// core but one, at least one).
    #[arg(long)]
    pub workers: Option<usize>,
    /// A published checksum list (`sha256  file-name` per line): every file
    /// must be listed with its SHA-256.
    #[arg(long)]
    pub checksums: Option<PathBuf>,
    /// Stop after this block.
    #[arg(long)]
    pub to: Option<u64>,
    /// The archives' chain id, for files whose name does not say a known
    /// network (`mainnet-…` is 1, `sepolia-…` 11155111); with a known
    /// network it must agree.
    #[arg(long)]
    pub chain_id: Option<u64>,
}

/// Networks whose pre-merge history is published as era1 archives: the
/// `<network>` of their file names, the chain id and the genesis hash.
pub const NETWORKS: &[(&str, u64, B256)] = &[
    ("mainnet", 1, b256!("d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3")),
    (
        "sepolia",
        11_155_111,
        b256!("25a5cc106eea7138acab33231d7160d69cb777ee0c2c553fcddf5138993e6dd9"),
    ),
];

/// The `<network>` of a `<network>-<epoch>-<hash>.era1` file name.
fn network_of(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let parts: Vec<&str> = stem.rsplitn(3, '-').collect();
    (parts.len() == 3).then(|| parts[2].to_owned())
}

/// The chain id of the archives `layouts` (one network, see
/// [`list_files`]): from the file names' network, or `flag`; both, they
/// must agree. Files whose name says no known network, without `flag`, are
/// taken as the chain the store records (`stored`); into a store without
/// one they are refused. Also the genesis hash to expect, when known.
pub fn chain_of(
    layouts: &[Era1Layout],
    flag: Option<u64>,
    stored: Option<u64>,
) -> Result<(u64, Option<B256>), ImportError> {
    let Some(first) = layouts.first() else {
        return Err(ImportError::Usage("no era1 files".into()));
    };
    let network = network_of(&first.path);
    let known = network.as_deref().and_then(|n| NETWORKS.iter().find(|(name, ..)| *name == n));
    if let Some((name, id, genesis)) = known {
        return match flag {
            Some(flag) if flag != *id => Err(ImportError::Usage(format!(
                "{} is a {name} archive (chain id {id}) but --chain-id is {flag}",
                first.path.display()
            ))),
            _ => Ok((*id, Some(*genesis))),
        };
    }
    let Some(id) = flag.or(stored) else {
        return Err(ImportError::Usage(format!(
            "cannot tell the chain of {}: its name does not start with a known network ({}) \
             and the store records no chain id; pass --chain-id",
            first.path.display(),
            NETWORKS.iter().map(|(n, ..)| *n).collect::<Vec<_>>().join(", ")
        )));
    };
    let genesis = NETWORKS.iter().find(|(_, n, _)| *n == id).map(|(.., g)| *g);
    Ok((id, genesis))
}

/// Checks that the first file, if it starts at block 0, starts with
/// `genesis` (pass 1 verifies the rest of the chain from there). Reads one
/// header; blocking.
fn check_genesis(
    layout: &Era1Layout,
    chain_id: u64,
    genesis: Option<B256>,
) -> Result<(), ImportError> {
    let (Some(expected), 0, Some(offset)) = (genesis, layout.start, layout.offsets.first()) else {
        return Ok(());
    };
    let origin = layout.path.display().to_string();
    let mut r = E2Reader::open(&layout.path)?;
    r.seek(*offset)?;
    let rec = r.expect(types::COMPRESSED_HEADER, "CompressedHeader")?;
    let data = r.read_data(&rec)?;
    let header: Header = unsnappy(&data)
        .and_then(|rlp| decode_exact(&rlp))
        .map_err(|e| ImportError::malformed(format!("{origin}: block 0: header"), e))?;
    let hash = header.hash_slow();
    if hash != expected {
        return Err(ImportError::Mismatch {
            origin,
            number: 0,
            field: "hash",
            expected: format!("{expected} (the genesis of chain {chain_id})"),
            got: hash.to_string(),
        });
    }
    Ok(())
}

/// Runs `coldchain import era1`.
pub async fn run(args: Era1ImportArgs) -> Result<()> {
    let store = args.store.clone();
    super::run_import(&store, args).await
}

impl super::ImportSource for Era1ImportArgs {
    async fn import<B: ColdBackend>(
        &self,
        handle: &ColdStorage<B>,
        cancel: &CancellationToken,
        stats: &mut ImportStats,
    ) -> Result<(), ImportError> {
        import_era1(handle, self, true, cancel, stats).await
    }

    fn log_summary(&self, store: &StoreSpec, summary: &str) {
        tracing::info!(%store, path = %self.path.display(), "{summary}");
    }
}

mod accumulator;
mod bodies;
mod checksums;
mod e2store;
mod headers;
mod layout;

pub use accumulator::*;
pub use bodies::*;
pub use checksums::*;
pub use e2store::*;
pub use headers::*;
pub use layout::*;

/// The era1 files of `path` (one file, or a directory's `*.era1`), in block
/// order, checked to follow each other.
pub fn list_files(path: &Path) -> Result<Vec<Era1Layout>, ImportError> {
    let meta = std::fs::metadata(path).map_err(|e| ImportError::io(path, e))?;
    let files = if meta.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| ImportError::io(path, e))? {
            let p = entry.map_err(|e| ImportError::io(path, e))?.path();
            if p.extension().is_some_and(|e| e == "era1") {
                files.push(p);
            }
        }
        if files.is_empty() {
            return Err(ImportError::Usage(format!("no *.era1 files in {}", path.display())));
        }
        files
    } else {
        vec![path.to_owned()]
    };
    let mut layouts = files.iter().map(|f| read_layout(f)).collect::<Result<Vec<_>, _>>()?;
    layouts.sort_by_key(|l| l.start);
    for pair in layouts.windows(2) {
        if let (Some(a), Some(b)) = (network_of(&pair[0].path), network_of(&pair[1].path))
            && a != b
        {
            return Err(ImportError::Usage(format!(
                "{} is a {a} archive but {} is a {b} archive: import one network per store",
                pair[0].path.display(),
                pair[1].path.display()
            )));
        }
        if pair[1].start != pair[0].last() + 1 {
            return Err(ImportError::Usage(format!(
                "{} ends at block {} but the next file, {}, starts at block {}: a file is missing",
                pair[0].path.display(),
                pair[0].last(),
                pair[1].path.display(),
                pair[1].start
            )));
        }
    }
    Ok(layouts)
}

/// Imports the files of `args` into `handle`, adding what it wrote to
/// `stats`; see the [module docs](self).
pub async fn import_era1<B: ColdBackend>(
    handle: &ColdStorage<B>,
    args: &Era1ImportArgs,
    progress: bool,
    cancel: &CancellationToken,
    stats: &mut ImportStats,
) -> Result<(), ImportError> {
    let path = args.path.clone();
    let layouts = tokio::task::spawn_blocking(move || list_files(&path))
        .await
        .map_err(|e| ImportError::Panicked(e.to_string()))??;
    if let Some(list) = &args.checksums {
        let list = read_checksums(list)?;
        let files: Vec<PathBuf> = layouts.iter().map(|l| l.path.clone()).collect();
        tokio::task::spawn_blocking(move || {
            files.iter().try_for_each(|f| check_checksum(f, &list))
        })
        .await
        .map_err(|e| ImportError::Panicked(e.to_string()))??;
        tracing::info!(files = layouts.len(), "era1: checksums match the list");
    }
    // The store records the archives' chain, or refuses another before any
    // write.
    let stored = handle
        .chain_id()
        .await
        .map_err(|e| ImportError::store("reading the store's chain id", e))?;
    let (chain_id, genesis) = chain_of(&layouts, args.chain_id, stored)?;
    let first = layouts[0].clone();
    tokio::task::spawn_blocking(move || check_genesis(&first, chain_id, genesis))
        .await
        .map_err(|e| ImportError::Panicked(e.to_string()))??;
    let source = match args.chain_id {
        Some(_) => "--chain-id".to_owned(),
        None => format!("the network of {}", layouts[0].path.display()),
    };
    crate::chain_id::claim(handle, chain_id, &source).await?;
    let tip = handle.tip().await.map_err(|e| ImportError::store("reading the store's tip", e))?;
    let (done, todo): (Vec<Era1Layout>, Vec<Era1Layout>) =
        layouts.into_iter().partition(|l| tip.is_some_and(|t| l.last() < t.number));
    let todo: Vec<Era1Layout> =
        todo.into_iter().filter(|l| args.to.is_none_or(|to| l.start <= to)).collect();
    let total = todo
        .iter()
        .map(|l| args.to.map_or(l.last(), |to| to.min(l.last())) - l.start + 1)
        .sum::<u64>();
    let bar = progress_bar(progress, Some(total), "import era1", false);
    let workers = args.workers.unwrap_or_else(default_workers).max(1);
    let mut writer = Writer::new(handle, tip, args.batch, bar.clone()).stop_after(args.to);
    // A file wholly below the tip is not read, but its last block must be
    // the store's: a file of another chain is refused, not "already stored".
    for layout in done {
        let (path, count) = (layout.path.clone(), layout.count());
        let last = tokio::task::spawn_blocking(move || last_block(&layout))
            .await
            .map_err(|e| ImportError::Panicked(e.to_string()))??;
        writer.check_stored(&[last], &path.display().to_string()).await?;
        stats.skipped += count;
        tracing::info!(file = %path.display(), "era1: already in the store; skipped");
    }
    let mut link: Option<Link> = None;
    let mut done_before = 0u64;
    let mut result = Ok(());
    for layout in todo {
        let (tx, rx) =
            tokio::sync::mpsc::channel(queue_capacity(workers, BLOCKS_PER_JOB, args.batch));
        let skip_below = tip.map(|t| t.number);
        let to = args.to;
        let base = done_before;
        done_before += layout.count();
        let prev = link;
        let reader = tokio::task::spawn_blocking(move || {
            let origin = layout.path.display().to_string();
            let epoch = match scan_headers(&layout, prev) {
                Ok(epoch) => epoch,
                Err(e) => {
                    run_parallel(
                        std::iter::once(Err::<TupleJob, _>(e)),
                        1,
                        |_| unreachable_job(),
                        &tx,
                    );
                    return None;
                }
            };
            let link = epoch.link;
            let tuples = E2Reader::open(&layout.path).and_then(|mut reader| {
                reader.seek(layout.offsets[0])?;
                Ok(Tuples {
                    reader,
                    headers: epoch.headers.into_iter(),
                    skip_below,
                    to,
                    progress: base,
                    failed: false,
                })
            });
            match tuples {
                Ok(tuples) => run_parallel(tuples, workers, |job| decode_job(&origin, job), &tx),
                Err(e) => run_parallel(
                    std::iter::once(Err::<TupleJob, _>(e)),
                    1,
                    |_| unreachable_job(),
                    &tx,
                ),
            }
            Some(link)
        });
        let drained = writer.drain(ordered(rx), cancel).await;
        let linked = reader.await.map_err(|e| ImportError::Panicked(e.to_string()));
        match (drained, linked) {
            (Err(e), _) | (Ok(_), Err(e)) => {
                result = Err(e);
                break;
            }
            (Ok(Ended::Cancelled), _) => break,
            (Ok(Ended::Done), Ok(l)) => link = l,
        }
        if writer.reached_end() {
            break;
        }
    }
    bar.finish_and_clear();
    stats.merge(writer.stats());
    result
}

/// The work of a job that can never be sent (only errors go through).
fn unreachable_job() -> ChunkResult {
    Ok(Chunk::default())
}
