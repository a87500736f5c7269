//! The typed errors of an import: each names where the input came from (a
//! file and line, an era1 file, a node's URL), the block, and what did not
//! match, so that the message alone says what to do.

use alloy::primitives::{B256, BlockNumber};
use coldchain::{ColdError, convert::ConvertError, verify::VerifyError};
use coldchain_client::ClientError;
use std::{path::PathBuf, time::Duration};

/// Why an import or export stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// A block does not match its own commitments (hashes, roots, blooms,
    /// gas): nothing of it, nor of its batch, was written.
    #[error("{origin}: {source}")]
    Verify {
        /// Where the block came from (`FILE line N`, `FILE`, a URL).
        origin: String,
        /// The mismatch, naming the block and the field.
        source: Box<VerifyError>,
    },
    /// JSON-RPC objects that do not make a consistent block.
    #[error("{origin}: {source}")]
    Convert {
        /// Where the objects came from.
        origin: String,
        /// What was inconsistent.
        source: Box<ConvertError>,
    },
    /// Input that cannot be parsed (bad JSON, bad RLP, a truncated record).
    #[error("{origin}: {reason}")]
    Malformed {
        /// Where, as precisely as known (file, line or byte offset, block).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A block field that does not match what the chain around it requires
    /// (parent hash, number, total difficulty, ommers hash).
    #[error(
        "{origin}: block {number}: {field} mismatch: expected {expected}, got {got}; \
         the source is corrupt or its blocks are not one chain"
    )]
    Mismatch {
        /// Where the block came from.
        origin: String,
        /// The block.
        number: BlockNumber,
        /// The field (`parentHash`, `number`, `totalDifficulty`, `ommersHash`, ...).
        field: &'static str,
        /// What the chain requires.
        expected: String,
        /// What the block has.
        got: String,
    },
    /// An era1 file's epoch accumulator does not match its blocks.
    #[error(
        "{}: epoch accumulator mismatch: the file's Accumulator record is {expected} but \
         its {blocks} (block hash, total difficulty) records give {got}; the file is corrupt",
        file.display()
    )]
    Accumulator {
        /// The era1 file.
        file: PathBuf,
        /// The root stored in the file.
        expected: B256,
        /// The root of the file's blocks.
        got: B256,
        /// Blocks in the file.
        blocks: usize,
    },
    /// A file's SHA-256 is not the one published for it.
    #[error("{}: sha256 {got} does not match the checksum list ({expected})", file.display())]
    Checksum {
        /// The file.
        file: PathBuf,
        /// The published checksum (or a note that the file is not listed).
        expected: String,
        /// The file's checksum.
        got: String,
    },
    /// The source's block at the store's tip is another block: the source
    /// is on another chain (or the store must be unwound first).
    #[error(
        "{origin}: block {number} has hash {source_hash} but the store holds {store_hash} at that \
         height; the source is another chain: use another store, or truncate this one below \
         block {number}"
    )]
    Diverged {
        /// Where the block came from.
        origin: String,
        /// The store's tip.
        number: BlockNumber,
        /// The store's block hash there.
        store_hash: B256,
        /// The source's block hash there.
        source_hash: B256,
    },
    /// The source skips blocks the store needs next.
    #[error(
        "{origin}: the next block must be {expected} but the source continues with {got}; \
         import blocks {expected}..{got} first"
    )]
    Gap {
        /// Where the block came from.
        origin: String,
        /// The block the store needs.
        expected: BlockNumber,
        /// The block the source has.
        got: BlockNumber,
    },
    /// Calls to the node failed, retries included.
    #[error(
        "{what} from {url}: gave up after {attempts} attempts in {:.1}s: {source}; check the \
         node and run the same command again: the import resumes after the store's tip",
        elapsed.as_secs_f64()
    )]
    Fetch {
        /// What was being fetched (`blocks 100..=115`, `the node's head`).
        what: String,
        /// The node.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent, backoff included.
        elapsed: Duration,
        /// The last error.
        source: Box<ClientError>,
    },
    /// The node answered something that is not a block (or no block).
    #[error("{url}: {reason}")]
    Node {
        /// The node.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A call to the node failed in a way retrying cannot fix.
    #[error("{0}")]
    Client(Box<ClientError>),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The store refused or failed a read or write.
    #[error("{what}: {source}")]
    Store {
        /// What was being done (`appending blocks 100..=199`).
        what: String,
        /// The store's error.
        source: ColdError,
    },
    /// A worker thread panicked (a bug); nothing of its blocks was written.
    #[error("an import worker panicked: {0}")]
    Panicked(String),
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
}

impl ImportError {
    /// A verification failure from `origin`.
    pub fn verify(origin: impl Into<String>, source: VerifyError) -> Self {
        Self::Verify { origin: origin.into(), source: Box::new(source) }
    }

    /// A conversion failure from `origin`.
    pub fn convert(origin: impl Into<String>, source: ConvertError) -> Self {
        Self::Convert { origin: origin.into(), source: Box::new(source) }
    }

    /// Malformed input at `origin`.
    pub fn malformed(origin: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Malformed { origin: origin.into(), reason: reason.into() }
    }

    /// A store error while doing `what`.
    pub fn store(what: impl Into<String>, source: ColdError) -> Self {
        Self::Store { what: what.into(), source }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
