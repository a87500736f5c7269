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

// ------------------------------------------------------------------ e2store

/// The header of one e2store record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The two type bytes.
    pub ty: [u8; 2],
    /// Data length.
    pub len: u32,
    /// Where the record (its header) starts in the file.
    pub offset: u64,
}

impl RecordHeader {
    /// Where the next record starts.
    pub fn end(&self) -> u64 {
        self.offset + 8 + u64::from(self.len)
    }
}

/// Reads e2store records in file order.
pub struct E2Reader {
    reader: BufReader<File>,
    path: PathBuf,
    offset: u64,
    len: u64,
}

impl E2Reader {
    /// Opens `path` at its start.
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        let file = File::open(path).map_err(|e| ImportError::io(path, e))?;
        let len = file.metadata().map_err(|e| ImportError::io(path, e))?.len();
        Ok(Self {
            reader: BufReader::with_capacity(1 << 20, file),
            path: path.to_owned(),
            offset: 0,
            len,
        })
    }

    /// The file's length.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Where the next record starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn bad(&self, offset: u64, reason: impl Into<String>) -> ImportError {
        ImportError::malformed(format!("{} at byte {offset}", self.path.display()), reason)
    }

    /// Moves to `offset` (a record boundary).
    pub fn seek(&mut self, offset: u64) -> Result<(), ImportError> {
        self.reader.seek(SeekFrom::Start(offset)).map_err(|e| ImportError::io(&self.path, e))?;
        self.offset = offset;
        Ok(())
    }

    /// The next record's header, `None` at the end of the file.
    pub fn next_header(&mut self) -> Result<Option<RecordHeader>, ImportError> {
        if self.offset == self.len {
            return Ok(None);
        }
        let offset = self.offset;
        if self.len - offset < 8 {
            return Err(self.bad(offset, "a truncated record header"));
        }
        let mut raw = [0u8; 8];
        self.reader.read_exact(&mut raw).map_err(|e| ImportError::io(&self.path, e))?;
        self.offset += 8;
        let header = RecordHeader {
            ty: [raw[0], raw[1]],
            len: u32::from_le_bytes([raw[2], raw[3], raw[4], raw[5]]),
            offset,
        };
        if raw[6..8] != [0, 0] {
            return Err(self.bad(offset, "the record header's reserved bytes are not zero"));
        }
        if header.end() > self.len {
            return Err(self.bad(
                offset,
                format!("a record of {} bytes runs past the end of the file", header.len),
            ));
        }
        Ok(Some(header))
    }

    /// The data of the record whose header was just read.
    pub fn read_data(&mut self, header: &RecordHeader) -> Result<Vec<u8>, ImportError> {
        let mut data = vec![0u8; header.len as usize];
        self.reader.read_exact(&mut data).map_err(|e| ImportError::io(&self.path, e))?;
        self.offset += u64::from(header.len);
        Ok(data)
    }

    /// Skips the data of the record whose header was just read.
    pub fn skip_data(&mut self, header: &RecordHeader) -> Result<(), ImportError> {
        self.reader
            .seek_relative(i64::from(header.len))
            .map_err(|e| ImportError::io(&self.path, e))?;
        self.offset += u64::from(header.len);
        Ok(())
    }

    /// The next record, which must be of type `ty`.
    pub fn expect(&mut self, ty: [u8; 2], what: &str) -> Result<RecordHeader, ImportError> {
        let offset = self.offset;
        let header = self.next_header()?.ok_or_else(|| {
            self.bad(offset, format!("the file ends where a {what} record should be"))
        })?;
        if header.ty != ty {
            return Err(self.bad(
                offset,
                format!(
                    "expected a {what} record (type {:02x}{:02x}), found type {:02x}{:02x}",
                    ty[0], ty[1], header.ty[0], header.ty[1]
                ),
            ));
        }
        Ok(header)
    }
}

/// Decompresses a snappy-framed record.
pub fn unsnappy(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len() * 3);
    snap::read::FrameDecoder::new(data)
        .take(MAX_RECORD + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("snappy: {e}"))?;
    if out.len() as u64 > MAX_RECORD {
        return Err(format!("decompresses to more than {MAX_RECORD} bytes"));
    }
    Ok(out)
}

fn decode_exact<T: Decodable>(mut buf: &[u8]) -> Result<T, String> {
    let value = T::decode(&mut buf).map_err(|e| format!("rlp: {e}"))?;
    if !buf.is_empty() {
        return Err(format!("{} bytes after the RLP item", buf.len()));
    }
    Ok(value)
}

// ------------------------------------------------------------------ layout

/// Where things are in an era1 file, from its BlockIndex.
#[derive(Debug, Clone)]
pub struct Era1Layout {
    /// The file.
    pub path: PathBuf,
    /// The first block.
    pub start: BlockNumber,
    /// Absolute offset of each block's CompressedHeader record.
    pub offsets: Vec<u64>,
    /// Where the Accumulator record starts.
    pub accumulator_offset: u64,
    /// The Accumulator record's root.
    pub accumulator: B256,
}

impl Era1Layout {
    /// Blocks in the file.
    pub fn count(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// The last block.
    pub fn last(&self) -> BlockNumber {
        self.start + self.count() - 1
    }
}

/// Reads the BlockIndex and the Accumulator at the end of `path`. A file
/// whose end is not a block index is walked from the start, so that a
/// truncated file is reported as truncated (not as a nonsensical index).
pub fn read_layout(path: &Path) -> Result<Era1Layout, ImportError> {
    read_index(path).map_err(|e| match (&e, truncation(path)) {
        (ImportError::Malformed { .. }, Some(reason)) => {
            ImportError::malformed(path.display().to_string(), reason)
        }
        _ => e,
    })
}

/// Why `path` looks truncated, walking its records from the start: a record
/// that runs past the end of the file, or records that end without the
/// BlockIndex that ends an era1 file. `None` if it is whole.
fn truncation(path: &Path) -> Option<String> {
    let mut r = E2Reader::open(path).ok()?;
    let (mut headers, mut last) = (0u64, None);
    loop {
        let offset = r.offset();
        match r.next_header() {
            Ok(Some(record)) => {
                headers += u64::from(record.ty == types::COMPRESSED_HEADER);
                last = Some(record.ty);
                r.skip_data(&record).ok()?;
            }
            Ok(None) if last == Some(types::BLOCK_INDEX) => return None,
            Ok(None) => {
                return Some(format!(
                    "the file is truncated: it ends after {headers} blocks' records without the                      BlockIndex that ends an era1 file; download it again"
                ));
            }
            Err(_) => {
                return Some(format!(
                    "the file is truncated: the record at byte {offset} runs past its end ({}                      bytes, after {headers} blocks' records); download it again",
                    r.len()
                ));
            }
        }
    }
}

fn read_index(path: &Path) -> Result<Era1Layout, ImportError> {
    let mut r = E2Reader::open(path)?;
    let len = r.len();
    let bad = |reason: String| ImportError::malformed(path.display().to_string(), reason);
    if len < 8 + 8 + 40 + 8 + 24 {
        return Err(bad(format!("{len} bytes is too short for an era1 file")));
    }
    r.seek(len - 8)?;
    let mut raw = [0u8; 8];
    r.reader.read_exact(&mut raw).map_err(|e| ImportError::io(path, e))?;
    let count = u64::from_le_bytes(raw);
    if count == 0 || count > MAX_BLOCKS {
        return Err(bad(format!(
            "the block index counts {count} blocks (1..={MAX_BLOCKS} allowed)"
        )));
    }
    let index_len = 16 + 8 * count;
    let Some(index_offset) = len.checked_sub(8 + index_len).filter(|o| *o >= 8 + 40) else {
        return Err(bad(format!("a block index of {count} blocks does not fit in the file")));
    };
    r.seek(index_offset)?;
    let index = r.expect(types::BLOCK_INDEX, "BlockIndex")?;
    if u64::from(index.len) != index_len {
        return Err(bad(format!(
            "the BlockIndex record holds {} bytes, {index_len} expected for {count} blocks",
            index.len
        )));
    }
    let data = r.read_data(&index)?;
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&data[8 * i..8 * i + 8]);
        w
    };
    let start = u64::from_le_bytes(word(0));
    let accumulator_offset = index_offset - 40;
    let mut offsets = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let relative = i64::from_le_bytes(word(1 + i));
        let offset = index_offset
            .checked_add_signed(relative)
            .filter(|o| *o >= 8 && *o < accumulator_offset);
        let Some(offset) = offset else {
            return Err(bad(format!(
                "the block index points block {} outside the file",
                start + i as u64
            )));
        };
        offsets.push(offset);
    }
    r.seek(accumulator_offset)?;
    let acc = r.expect(types::ACCUMULATOR, "Accumulator (just before the BlockIndex)")?;
    if acc.len != 32 {
        return Err(bad(format!("the Accumulator record holds {} bytes, 32 expected", acc.len)));
    }
    let accumulator = B256::from_slice(&r.read_data(&acc)?);
    let layout =
        Era1Layout { path: path.to_owned(), start, offsets, accumulator_offset, accumulator };
    check_name(&layout)?;
    Ok(layout)
}

/// Checks a `<network>-<epoch>-<hash>.era1` name against the content: the
/// epoch's first block and the accumulator's first 4 bytes. Other names are
/// not checked.
fn check_name(layout: &Era1Layout) -> Result<(), ImportError> {
    let Some(stem) = layout.path.file_stem().and_then(|s| s.to_str()) else { return Ok(()) };
    let parts: Vec<&str> = stem.rsplitn(3, '-').collect();
    let [hash, epoch, _network] = parts.as_slice() else { return Ok(()) };
    let (Ok(epoch), true) = (epoch.parse::<u64>(), hash.len() == 8) else { return Ok(()) };
    let short = alloy::hex::encode(&layout.accumulator[..4]);
    if !hash.eq_ignore_ascii_case(&short) {
        return Err(ImportError::malformed(
            layout.path.display().to_string(),
            format!(
                "the name says accumulator {hash}.. but the file's Accumulator record is {}; \
                 the file is corrupt or misnamed",
                layout.accumulator
            ),
        ));
    }
    if epoch * MAX_BLOCKS != layout.start {
        return Err(ImportError::malformed(
            layout.path.display().to_string(),
            format!("the name says epoch {epoch} but the file starts at block {}", layout.start),
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------ accumulator

fn sha256_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

/// The epoch accumulator: `hash_tree_root` of the SSZ
/// `List[HeaderRecord, 8192]` of `(block hash, total difficulty)` records.
pub fn epoch_accumulator(records: &[(B256, U256)]) -> B256 {
    // 2^13 = 8192 leaves.
    const DEPTH: usize = 13;
    let mut layer: Vec<[u8; 32]> =
        records.iter().map(|(hash, td)| sha256_pair(&hash.0, &td.to_le_bytes::<32>())).collect();
    let mut zero = [0u8; 32];
    for _ in 0..DEPTH {
        if layer.len() % 2 == 1 {
            layer.push(zero);
        }
        layer = layer.chunks_exact(2).map(|p| sha256_pair(&p[0], &p[1])).collect();
        zero = sha256_pair(&zero, &zero);
    }
    let root = layer.first().copied().unwrap_or(zero);
    let mut length = [0u8; 32];
    length[..8].copy_from_slice(&(records.len() as u64).to_le_bytes());
    B256::from(sha256_pair(&root, &length))
}

// ------------------------------------------------------------------ pass 1

/// The last block of a verified file, to link the next file to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Its number.
    pub number: BlockNumber,
    /// Its hash.
    pub hash: B256,
    /// Its total difficulty.
    pub total_difficulty: U256,
}

/// The verified headers of one file.
#[derive(Debug, Clone)]
pub struct Epoch {
    /// The headers, sealed with their computed hashes.
    pub headers: Vec<SealedHeader>,
    /// The last block, for the next file.
    pub link: Link,
}

/// Pass 1: reads and verifies every header, total difficulty and the
/// accumulator of `layout`; see the [module docs](self). `prev` is the last
/// block of the previous file of this run, if it precedes this one.
pub fn scan_headers(layout: &Era1Layout, prev: Option<Link>) -> Result<Epoch, ImportError> {
    let path = &layout.path;
    let origin = path.display().to_string();
    let mut r = E2Reader::open(path)?;
    let version = r.expect(types::VERSION, "Version")?;
    r.skip_data(&version)?;
    let mut prev = prev.filter(|p| p.number + 1 == layout.start);
    let mut headers = Vec::with_capacity(layout.offsets.len());
    let mut records = Vec::with_capacity(layout.offsets.len());
    for (i, offset) in layout.offsets.iter().enumerate() {
        let number = layout.start + i as u64;
        let at = r.offset();
        if at != *offset {
            return Err(ImportError::malformed(
                format!("{origin} at byte {at}"),
                format!("the block index puts block {number} at byte {offset}"),
            ));
        }
        let rec = r.expect(types::COMPRESSED_HEADER, "CompressedHeader")?;
        let data = r.read_data(&rec)?;
        let header: Header = unsnappy(&data)
            .and_then(|rlp| decode_exact(&rlp))
            .map_err(|e| ImportError::malformed(format!("{origin}: block {number}: header"), e))?;
        if header.number != number {
            return Err(ImportError::Mismatch {
                origin,
                number,
                field: "number",
                expected: number.to_string(),
                got: header.number.to_string(),
            });
        }
        let header = header.seal_slow();
        let body = r.expect(types::COMPRESSED_BODY, "CompressedBody")?;
        r.skip_data(&body)?;
        let receipts = r.expect(types::COMPRESSED_RECEIPTS, "CompressedReceipts")?;
        r.skip_data(&receipts)?;
        let td = r.expect(types::TOTAL_DIFFICULTY, "TotalDifficulty")?;
        if td.len != 32 {
            return Err(ImportError::malformed(
                format!("{origin}: block {number}"),
                format!("the TotalDifficulty record holds {} bytes, 32 expected", td.len),
            ));
        }
        let td = U256::from_le_slice(&r.read_data(&td)?);
        if let Some(p) = prev
            && header.parent_hash != p.hash
        {
            return Err(ImportError::Mismatch {
                origin,
                number,
                field: "parentHash",
                expected: format!("{} (the hash of block {})", p.hash, p.number),
                got: header.parent_hash.to_string(),
            });
        }
        let expected_td = match prev {
            Some(p) => Some(p.total_difficulty.checked_add(header.difficulty)),
            None if number == 0 => Some(Some(header.difficulty)),
            None => None,
        };
        if let Some(expected) = expected_td
            && expected != Some(td)
        {
            return Err(ImportError::Mismatch {
                origin,
                number,
                field: "totalDifficulty",
                expected: expected.map_or("an overflow".to_owned(), |e| e.to_string()),
                got: td.to_string(),
            });
        }
        prev = Some(Link { number, hash: header.hash(), total_difficulty: td });
        records.push((header.hash(), td));
        headers.push(header);
    }
    // Other entries may follow the tuples; the Accumulator ends them.
    while r.offset() < layout.accumulator_offset {
        let Some(rec) = r.next_header()? else { break };
        if rec.end() > layout.accumulator_offset {
            return Err(ImportError::malformed(
                format!("{origin} at byte {}", rec.offset),
                "a record overlaps the Accumulator record",
            ));
        }
        r.skip_data(&rec)?;
    }
    let got = epoch_accumulator(&records);
    if got != layout.accumulator {
        return Err(ImportError::Accumulator {
            file: path.clone(),
            expected: layout.accumulator,
            got,
            blocks: records.len(),
        });
    }
    let link = prev.ok_or_else(|| ImportError::malformed(origin, "no blocks"))?;
    Ok(Epoch { headers, link })
}

// ------------------------------------------------------------------ pass 2

/// One block's raw body and receipts, with its verified header.
pub struct RawTuple {
    header: SealedHeader,
    body: Vec<u8>,
    receipts: Vec<u8>,
}

/// A worker job: consecutive tuples.
pub struct TupleJob {
    tuples: Vec<RawTuple>,
    /// Blocks of the run done after this job.
    progress: u64,
    skipped: Vec<Skipped>,
}

/// Pass 2's reader: the tuples of `layout`, grouped into jobs; blocks below
/// `skip_below` are not read.
struct Tuples {
    reader: E2Reader,
    headers: std::vec::IntoIter<SealedHeader>,
    skip_below: Option<BlockNumber>,
    to: Option<BlockNumber>,
    progress: u64,
    failed: bool,
}

impl Tuples {
    fn next_job(&mut self) -> Result<Option<TupleJob>, ImportError> {
        let mut job = TupleJob {
            tuples: Vec::with_capacity(BLOCKS_PER_JOB),
            progress: 0,
            skipped: Vec::new(),
        };
        while job.tuples.len() < BLOCKS_PER_JOB {
            let Some(header) = self.headers.next() else { break };
            if self.to.is_some_and(|to| header.number > to) {
                self.headers = Vec::new().into_iter();
                break;
            }
            self.progress += 1;
            let rec = self.reader.expect(types::COMPRESSED_HEADER, "CompressedHeader")?;
            self.reader.skip_data(&rec)?;
            let body = self.reader.expect(types::COMPRESSED_BODY, "CompressedBody")?;
            if self.skip_below.is_some_and(|tip| header.number < tip) {
                self.reader.skip_data(&body)?;
                let rec = self.reader.expect(types::COMPRESSED_RECEIPTS, "CompressedReceipts")?;
                self.reader.skip_data(&rec)?;
                job.skipped.push(Skipped {
                    number: header.number,
                    hash: header.hash(),
                    line: None,
                });
                let td = self.reader.expect(types::TOTAL_DIFFICULTY, "TotalDifficulty")?;
                self.reader.skip_data(&td)?;
                continue;
            }
            let body = self.reader.read_data(&body)?;
            let rec = self.reader.expect(types::COMPRESSED_RECEIPTS, "CompressedReceipts")?;
            let receipts = self.reader.read_data(&rec)?;
            let td = self.reader.expect(types::TOTAL_DIFFICULTY, "TotalDifficulty")?;
            self.reader.skip_data(&td)?;
            job.tuples.push(RawTuple { header, body, receipts });
        }
        job.progress = self.progress;
        Ok((!job.skipped.is_empty() || !job.tuples.is_empty()).then_some(job))
    }
}

impl Iterator for Tuples {
    type Item = Result<TupleJob, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_job();
        self.failed = next.is_err();
        next.transpose()
    }
}

/// The number and hash of the last block of `layout`, from its header
/// record alone.
fn last_block(layout: &Era1Layout) -> Result<Skipped, ImportError> {
    let number = layout.last();
    let offset = layout.offsets.last().copied().unwrap_or(layout.accumulator_offset);
    let mut r = E2Reader::open(&layout.path)?;
    r.seek(offset)?;
    let rec = r.expect(types::COMPRESSED_HEADER, "CompressedHeader")?;
    let rlp = unsnappy(&r.read_data(&rec)?).map_err(|e| {
        ImportError::malformed(format!("{}: block {number}: header", layout.path.display()), e)
    })?;
    Ok(Skipped { number, hash: alloy::primitives::keccak256(&rlp), line: None })
}

/// Decodes one tuple into a verified block; see the [module docs](self).
pub fn decode_tuple(origin: &str, tuple: RawTuple) -> Result<BlockData, ImportError> {
    let RawTuple { header, body, receipts } = tuple;
    let number = header.number;
    let at = |what: &str| format!("{origin}: block {number}: {what}");
    let body: BlockBody<TxEnvelope, Header> = unsnappy(&body)
        .and_then(|rlp| decode_exact(&rlp))
        .map_err(|e| ImportError::malformed(at("body"), e))?;
    let ommers_hash = calculate_ommers_root(&body.ommers);
    if ommers_hash != header.ommers_hash {
        return Err(ImportError::Mismatch {
            origin: origin.to_owned(),
            number,
            field: "ommersHash",
            expected: header.ommers_hash.to_string(),
            got: format!("{ommers_hash} (the hash of the body's {} ommers)", body.ommers.len()),
        });
    }
    let transactions = body
        .transactions
        .into_iter()
        .enumerate()
        .map(|(i, tx)| {
            let sender = tx.recover_signer_unchecked().map_err(|e| {
                ImportError::malformed(at(&format!("transaction {i}")), format!("signature: {e}"))
            })?;
            Ok(RecoveredTx::new_unchecked(tx, sender))
        })
        .collect::<Result<Vec<_>, ImportError>>()?;
    let receipts: Vec<Receipt> = unsnappy(&receipts)
        .and_then(|rlp| decode_exact(&rlp))
        .map_err(|e| ImportError::malformed(at("receipts"), e))?;
    // Ommers and (should an archive carry any) withdrawals are kept;
    // `verify_block` checks the withdrawals against the header's root.
    let extras = BlockExtras { ommers: body.ommers, withdrawals: body.withdrawals };
    let block = BlockData { header, transactions, receipts, extras };
    verify_block(&block).map_err(|e| ImportError::verify(origin, e))?;
    Ok(block)
}

/// Decodes and verifies the blocks of one job; a failure ends the chunk
/// after the blocks before it (which are written).
fn decode_job(origin: &str, job: TupleJob) -> ChunkResult {
    let mut blocks = Vec::with_capacity(job.tuples.len());
    for tuple in job.tuples {
        match decode_tuple(origin, tuple) {
            Ok(block) => blocks.push(block),
            Err(e) => {
                return Ok(Chunk::failed_after(
                    blocks,
                    job.progress,
                    origin.to_owned(),
                    job.skipped,
                    e,
                ));
            }
        }
    }
    Ok(Chunk {
        blocks,
        progress: job.progress,
        origin: origin.to_owned(),
        skipped: job.skipped,
        error: None,
        lines: Vec::new(),
    })
}

// ------------------------------------------------------------------ checksums

/// Parses a checksum list: `sha256  name` per line (`*name` allowed).
pub fn read_checksums(path: &Path) -> Result<HashMap<String, String>, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ImportError::io(path, e))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(hash), Some(name)) = (parts.next(), parts.next()) else {
            return Err(ImportError::malformed(
                format!("{} line {}", path.display(), i + 1),
                "expected `sha256  file-name`",
            ));
        };
        out.insert(name.trim_start_matches('*').to_owned(), hash.to_ascii_lowercase());
    }
    Ok(out)
}

/// The SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, ImportError> {
    let mut file = File::open(path).map_err(|e| ImportError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| ImportError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(alloy::hex::encode(hasher.finalize()))
}

fn check_checksum(path: &Path, list: &HashMap<String, String>) -> Result<(), ImportError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let got = sha256_file(path)?;
    match list.get(name) {
        Some(expected) if *expected == got => Ok(()),
        Some(expected) => {
            Err(ImportError::Checksum { file: path.to_owned(), expected: expected.clone(), got })
        }
        None => Err(ImportError::Checksum {
            file: path.to_owned(),
            expected: format!("no entry for {name}"),
            got,
        }),
    }
}

// ------------------------------------------------------------------ import

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
