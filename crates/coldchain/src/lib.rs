//! coldchain: cold storage for EVM chain history.
//!
//! Finalized headers, transactions with their senders, receipts and logs are
//! appended as a chain grows, truncated on reorgs, and served to history
//! queries. This crate holds everything that is not a concrete store:
//!
//! - the data model ([`model`]): [`BlockData`] (sealed header, recovered
//!   transactions, receipts) and [`StoredReceipt`], a receipt with the
//!   context RPC needs; reads are addressed by [`HeaderSpec`], [`TxSpec`] and
//!   [`ReceiptSpec`];
//! - log filters with exact `eth_getLogs` semantics ([`filter`]);
//! - the backend contract ([`backend`]) with its implementation guide, and
//!   [`MemBackend`], an in-memory backend with snapshot reads;
//! - the [`ColdStorage`] handle ([`handle`]), where all concurrency lives;
//! - storage encodings ([`codec`]), block verification ([`verify`]) and
//!   JSON-RPC conversion ([`convert`]);
//! - with feature `test-utils`: the conformance suite, the reference model
//!   and property test, and a gated backend for concurrency tests.
//!
//! # For users
//!
//! ```text
//!   many callers ──► ColdStorage (clone freely) ──► one backend
//!                     ├─ reads: at most R at once, FIFO, each with a deadline
//!                     ├─ writes: one queue, one writer, in order
//!                     ├─ streams: at most S, bounded memory, bounded life
//!                     └─ tip watch: wait for blocks without polling
//! ```
//!
//! Every call answers: a value, or a typed [`ColdError`] (`Timeout` naming
//! the operation, `Backpressure`, `TaskTerminated`, ...) by its deadline,
//! whatever the backend does. Build one with [`ColdStorage::builder`]:
//!
//! ```
//! # async fn demo() -> coldchain::ColdResult<()> {
//! use coldchain::{ColdStorage, LogFilter, MemBackend};
//! use std::time::Duration;
//!
//! let storage = ColdStorage::builder(MemBackend::new())
//!     .read_permits(64)
//!     .read_timeout(Duration::from_secs(5))
//!     .build()
//!     .await?;
//! // storage.append_blocks(blocks).await?;
//! let logs = storage.get_logs(LogFilter::range(0, 100), 10_000).await?;
//! assert!(logs.is_empty());
//! storage.shutdown().await;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! # For backend authors
//!
//! Implement [`ColdRead`], [`ColdWrite`] and [`ColdBackend`] following the
//! guide in [`backend`]: honour the [`Deadline`] passed into every call,
//! commit each write atomically, check contiguity, and declare whether reads
//! run on snapshots. The handle does the rest (permits, ordering, draining,
//! caching, shutdown). Then run, with feature `test-utils`,
//! `testing::conformance(make).await` and `testing::run_model_test(make, n)`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod backend;
pub mod bloom;
pub mod codec;
pub mod convert;
pub mod deadline;
pub mod error;
pub mod filter;
pub mod mem;
pub mod model;
pub mod verify;

pub use backend::{ColdBackend, ColdRead, ColdWrite, DrainedBlock, StreamParams};
pub use deadline::Deadline;
pub use error::{ColdError, ColdResult};
pub use filter::{BlockSelector, LogFilter};
pub use mem::MemBackend;
pub use model::{
    BlockData, BlockExtras, HeaderSpec, Receipt, ReceiptSpec, RecoveredTx, RpcLog, SealedHeader,
    StoredReceipt, TransactionMeta, TxSpec, TxWithMeta,
};

#[cfg(feature = "test-utils")]
pub mod testing;

pub mod handle;
pub use handle::{ColdConfig, ColdStorage, ColdStorageBuilder, LogStream, PendingWrite};
