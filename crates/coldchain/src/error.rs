//! The one error type of coldchain.
//!
//! Every error keeps its kind on the way up: a timeout stays [`ColdError::Timeout`]
//! whether a backend, the permit queue or a stream noticed it, so callers can
//! match on it and an RPC layer can map it to the right code.

use alloy::primitives::{B256, BlockNumber};

/// Result alias used across coldchain.
pub type ColdResult<T> = Result<T, ColdError>;

/// Everything that can go wrong in coldchain, by kind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ColdError {
    /// The operation did not finish before its deadline.
    #[error("{op} timed out; retry, narrow the request, or raise the deadline")]
    Timeout {
        /// The operation that timed out (for example `get_logs`).
        op: &'static str,
    },
    /// A non-waiting write found the write queue full.
    #[error("write queue is full; retry later or use the waiting variant")]
    Backpressure,
    /// The handle was shut down: the call was refused or abandoned.
    #[error("storage task terminated (shutdown); the call was not completed")]
    TaskTerminated,
    /// An append did not extend the tip.
    #[error("block {got} does not extend the store: expected block {expected}")]
    NotContiguous {
        /// The number the next block must have.
        expected: BlockNumber,
        /// The number that was offered.
        got: BlockNumber,
    },
    /// An append's parent hash does not match the stored tip.
    #[error("block {number} has parent {got}, but the stored block {} has hash {expected}", number - 1)]
    ParentMismatch {
        /// The offered block's number.
        number: BlockNumber,
        /// The hash of the stored tip.
        expected: B256,
        /// The offered block's parent hash.
        got: B256,
    },
    /// A block is internally inconsistent (for example receipts and
    /// transactions differ in count).
    #[error("invalid block {number}: {reason}")]
    InvalidBlock {
        /// The offending block.
        number: BlockNumber,
        /// What is wrong with it.
        reason: String,
    },
    /// A log filter is malformed.
    #[error("invalid log filter: {0}")]
    InvalidFilter(String),
    /// A log query matched more logs than allowed. `get_logs` applies the
    /// limit at block boundaries (see [`crate::filter`]) and says which
    /// blocks fit; a log stream stops after exactly `limit` logs.
    #[error("query matched more than {limit} logs; narrow the block range or the filter{}",
        fits_to.map(|b| format!(" (the range up to block {b} fits)")).unwrap_or_default())]
    TooManyLogs {
        /// The maximum number of logs the caller allowed.
        limit: usize,
        /// `get_logs`: the last block of the longest range from the query's
        /// start that fits, found by the scan that hit the limit (always at
        /// least the first block with a match, which is returned whole when
        /// it is alone). `None` from a log stream.
        fits_to: Option<BlockNumber>,
    },
    /// A filter named a block hash that the store does not hold.
    #[error("unknown block hash {0}")]
    UnknownBlockHash(B256),
    /// A stream found that the blocks it was reading were replaced.
    #[error("reorg detected at block {number}: the stream's blocks were replaced; restart it")]
    ReorgDetected {
        /// The block whose hash changed.
        number: BlockNumber,
    },
    /// Backend work panicked; the operation failed, the handle keeps serving.
    #[error("{op} panicked in the backend: {message}")]
    Panicked {
        /// The operation whose work panicked.
        op: &'static str,
        /// The panic payload, if it was a string.
        message: String,
    },
    /// An earlier queued write that nobody awaited failed, and this write was
    /// refused (not applied) so that the failure is seen (C13). Deal with
    /// the failed write (for example re-append from the durable tip), then
    /// retry.
    #[error(
        "write refused: an earlier write that nobody awaited ({op} of {target}) failed: {error}"
    )]
    EarlierWriteFailed {
        /// The failed write's operation.
        op: &'static str,
        /// The blocks it concerned (for example `blocks 11..=13`).
        target: String,
        /// Its error.
        error: String,
    },
    /// The store holds blocks of another chain than the one offered: a
    /// store records its chain id once ([`crate::ColdWrite::set_chain_id`])
    /// and refuses any other.
    #[error(
        "chain id mismatch: the store holds chain {stored}, not chain {given}; \
         use another store for chain {given}"
    )]
    ChainIdMismatch {
        /// The chain id the store recorded.
        stored: u64,
        /// The chain id that was offered.
        given: u64,
    },
    /// A write reached a store opened read-only (for example on read-only
    /// media); nothing was written.
    #[error(
        "the store {store} is open read-only: the write was refused; open it for writing to change it"
    )]
    ReadOnly {
        /// The store (its path, or a redacted URL).
        store: String,
    },
    /// The device that holds the store is full; nothing of the failed write
    /// was stored (writes are atomic).
    #[error(
        "no space left on the device that holds {store}; free space or move the store, then retry"
    )]
    StorageFull {
        /// The store (its path, or a redacted URL).
        store: String,
    },
    /// Stored bytes could not be decoded.
    #[error("corrupt or unsupported stored data: {0}")]
    Codec(#[from] crate::codec::CodecError),
    /// A block's data does not match its hashes, roots or blooms (boxed to
    /// keep `ColdError` small).
    #[error(transparent)]
    Verify(#[from] Box<crate::verify::VerifyError>),
    /// Any other backend failure (I/O, database, ...).
    #[error("backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl From<crate::verify::VerifyError> for ColdError {
    fn from(err: crate::verify::VerifyError) -> Self {
        Self::Verify(Box::new(err))
    }
}

impl ColdError {
    /// Wraps any backend error.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(err))
    }

    /// The error for backend work whose task did not return: `Panicked` with
    /// the panic message, or `TaskTerminated` when the task was cancelled.
    pub fn from_join(op: &'static str, err: tokio::task::JoinError) -> Self {
        if !err.is_panic() {
            return Self::TaskTerminated;
        }
        Self::from_panic(op, err.into_panic())
    }

    /// `Panicked` with the message of a caught panic's payload.
    pub fn from_panic(op: &'static str, payload: Box<dyn std::any::Any + Send>) -> Self {
        Self::Panicked { op, message: panic_message(&*payload) }
    }

    /// A short stable name of the error's kind, for metrics labels.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Backpressure => "backpressure",
            Self::TaskTerminated => "terminated",
            Self::NotContiguous { .. } => "not_contiguous",
            Self::ParentMismatch { .. } => "parent_mismatch",
            Self::InvalidBlock { .. } => "invalid_block",
            Self::InvalidFilter(_) => "invalid_filter",
            Self::TooManyLogs { .. } => "too_many_logs",
            Self::UnknownBlockHash(_) => "unknown_block_hash",
            Self::ReorgDetected { .. } => "reorg",
            Self::Panicked { .. } => "panic",
            Self::EarlierWriteFailed { .. } => "earlier_write_failed",
            Self::ChainIdMismatch { .. } => "chain_id_mismatch",
            Self::ReadOnly { .. } => "read_only",
            Self::StorageFull { .. } => "storage_full",
            Self::Codec(_) => "codec",
            Self::Verify(_) => "verify",
            Self::Backend(_) => "backend",
        }
    }
}

/// The message of a caught panic's payload (`&str` or `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}
