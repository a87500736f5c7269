//! coldchain: cold storage for EVM chain history.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod backend;
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
    BlockData, HeaderSpec, Receipt, ReceiptSpec, RecoveredTx, RpcLog, SealedHeader, StoredReceipt,
    TransactionMeta, TxSpec, TxWithMeta,
};

#[cfg(feature = "test-utils")]
pub mod testing;

pub mod handle;
pub use handle::{ColdConfig, ColdStorage, ColdStorageBuilder, LogStream, PendingWrite};
