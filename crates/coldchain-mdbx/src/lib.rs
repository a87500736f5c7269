//! The embedded coldchain backend: MDBX with a roaring-bitmap log index.
//!
//! [`MdbxBackend`] implements [`coldchain::ColdRead`], [`coldchain::ColdWrite`]
//! and [`coldchain::ColdBackend`] on one MDBX environment (a directory with
//! `mdbx.dat` and `mdbx.lck`), through `signet-libmdbx`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use coldchain::ColdStorage;
//! use coldchain_mdbx::{MdbxBackend, MdbxOptions};
//!
//! let backend = MdbxBackend::open("./coldchain-data", MdbxOptions::default())?;
//! let storage = ColdStorage::new(backend).await?;
//! # let _ = storage; Ok(()) }
//! ```
//!
//! # Transactions
//!
//! - Every read runs in its own read transaction, so it sees one consistent
//!   snapshot even while a write commits
//!   ([`coldchain::ColdRead::snapshot_reads`] is `true`; MDBX readers never
//!   wait for the writer). No read runs on a runtime thread: even a point
//!   read touches pages of the memory map that may have to come from disk.
//!   Point reads and log queries run on a few threads of the backend's own
//!   that take them from one queue ([`MdbxOptions::read_threads`]; a read
//!   that waited past its deadline ends when it starts; log queries take at
//!   most half of the threads and overflow to `tokio::task::spawn_blocking`),
//!   streams and writes on `spawn_blocking`. Long reads check their
//!   [`coldchain::Deadline`] between steps.
//! - Every append, truncate and drain is one write transaction: after a
//!   crash a block is fully present or absent, and a batch is all or
//!   nothing. Commits are durable by default ([`SyncMode`]).
//! - A log stream ([`coldchain::ColdRead::produce_logs`]) is served whole
//!   from one read transaction and sends into a bounded channel from its
//!   blocking thread, waiting for room up to its deadline and stopping when
//!   the receiver is gone.
//! - The data file grows as needed in steps of
//!   [`MdbxOptions::growth_step`], up to [`MdbxOptions::max_size`]. New
//!   stores use 8 KiB pages ([`MdbxOptions::page_size`]).
//!
//! # Tables and keys
//!
//! Every transaction has a **global tx number** (0, 1, 2, … across the
//! chain, in block order); it is the key of transactions and receipts and
//! the *position* the log index stores. Integers in keys are big-endian so
//! that keys sort numerically, and keys that grow with the chain are written
//! with MDBX's `APPEND` flag.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"magic"`, `"format_version"`, `"chain_id"` | `coldchain-mdbx`, u32 BE [`FORMAT_VERSION`], u64 BE (absent until recorded) |
//! | `headers` | block number u64 BE | header: `coldchain::codec` (`0x11`: hash ++ RLP) |
//! | `block_extras` | block number u64 BE | ommer headers and withdrawals: `codec` (`0x41`) |
//! | `block_hashes` | block hash (32) | block number u64 BE |
//! | `block_txs` | block number u64 BE | first tx number u64 BE ++ tx count u32 BE |
//! | `tx_blocks` | first tx number u64 BE (non-empty blocks) | block number u64 BE |
//! | `transactions` | tx number u64 BE | tx with sender: `codec` (`0x21`: sender ++ EIP-2718) |
//! | `receipts` | tx number u64 BE | receipt with context: `codec` (`0x32`) |
//! | `tx_hashes_0` … `tx_hashes_7` (dup-sorted; one per run level) | run id u32 BE ++ first 8 bytes of the tx hash | tx numbers u64 BE |
//! | `log_index_0` … `log_index_7` (one per run level) | run id u32 BE ++ kind u8 ++ value ++ shard base u64 BE | shard: `0x51` ++ roaring bitmap, or `0x52` ++ u32 LE array |
//! | `index_runs` | run id u32 BE | `0x71` ++ first and last block, first and end tx (u64 BE each) ++ level u8 |
//! | `journal` | block number u64 BE | the block's tx hashes and index entries (`0x61`) |
//! | `receipt_blooms` | block number u64 BE | each receipt's bloom, in order: set-bit count u8 ++ each bit index's distance from the previous as a LEB128 varint, or `0xff` ++ 256 bytes |
//!
//! `tx_blocks` answers "which block holds tx number t" with one cursor step
//! (the last key `<= t`), so a transaction found by hash gets its block
//! metadata without scanning.
//!
//! # The log index
//!
//! For each log, the receipt's transaction number is added under its
//! address (kind `0`, 20-byte value) and under each topic at its position
//! (kind `1 + position`, positions 0..=3, 32-byte value); a transaction with
//! several matching logs is one entry. Each key's positions are split into
//! **shards**: the table key ends with the shard's base (its first
//! position), the value holds the offsets `position - base` (u32) as a
//! [`roaring::RoaringBitmap`] in its portable serialization after the format
//! byte `0x51`; when that is larger than 4 bytes per offset (a rare key's
//! transactions lie in different 2^16 roaring containers, ~10 bytes each),
//! the offsets are stored as an ascending u32 LE array after `0x52`
//! instead. Both read into a roaring bitmap. A shard holds at most 1,024
//! positions (and spans less than 2^32). Every key is stored per *index
//! run* (below): the table key starts with the run's id. A truncation
//! removes exactly the positions above the cut: runs above it are deleted
//! whole; in the run across it, shards starting above the cut are deleted
//! and the one across it is trimmed.
//!
//! `tx_hashes` is keyed by the run and the first 8 bytes of the hash
//! (sorted duplicate tx numbers under a key); a lookup probes each run and
//! checks each candidate against the stored receipt's tx hash, so prefix
//! collisions cost a read, never a wrong answer, and the table is half the
//! size of a full-hash one.
//!
//! `get_logs` turns the block range into a tx-number range (`block_txs`),
//! then, in each run the range falls in, intersects the filter's groups (the
//! address set; each topic position with a non-empty set), each the union of
//! its values' shards, with a leapfrog join that reads only the shards its
//! candidates fall in. Only
//! candidate receipts are read, in place: their logs are walked without
//! decoding the receipt (no allocation, no bloom rebuild), and only the
//! logs that pass the exact filter ([`coldchain::LogFilter::matches`]) are
//! built; they come out in (block, tx, log) order. A filter without
//! addresses and topics scans the receipts of the range. `max_logs`
//! applies at block boundaries ([`coldchain::filter::LogLimit`]): the first
//! matching block comes back whole, and the scan that hits the limit names
//! the last block that fits in `TooManyLogs`.
//!
//! # The index journal
//!
//! The `tx_hashes` and `log_index` entries of the newest blocks are not in
//! those tables but in `journal`, one value per block: a durable commit
//! writes every page it touched, and a block's ~150 tx hashes and (on a
//! mainnet-shaped chain) ~1,300 index keys would touch a random page each.
//! The journal value holds the block's tx hashes (sorted, with their
//! offsets) and its `(index key, tx offset)` entries (sorted), plus a small
//! bit filter of its keys, as fixed-size records read in place. Once the
//! journal holds [`MdbxOptions::journal_max`] blocks (default 256), the
//! oldest are flushed into a new index run, keeping the newest
//! [`MdbxOptions::journal_keep`] (default 64): a truncation of up to that
//! many blocks only deletes journal values. The flush runs after the
//! append has committed, in its own write transaction; if it (or a
//! compaction) fails, the next append retries it. Journal blocks are
//! always the newest blocks; each block is in exactly one tier. Lookups by
//! tx hash fall back to the journal, and log queries read the journal part
//! of their range block by block. Both tiers are covered by
//! [`MdbxBackend::verify`].
//!
//! # Index runs
//!
//! The merged index is a log-structured merge of sorted runs. A run holds
//! the `tx_hashes` and `log_index` entries of a contiguous range of blocks
//! under its id; `index_runs` lists the runs with their block and tx ranges
//! and levels. A journal flush writes a run of level 0; when the newest
//! [`MdbxOptions::run_fanout`] runs (default 4) have the same level `l`
//! (below [`MdbxOptions::run_max_level`], default 3), a streaming k-way merge
//! compacts them into one run of level `l + 1`. Each level has its own
//! `tx_hashes` and `log_index` table, and the runs compacted are all the
//! runs of their level, so their tables are then emptied whole (MDBX frees
//! the pages without visiting the entries). Each step is one write
//! transaction. New runs take an id above every stored one, so
//! ids follow the blocks and every entry is *appended* at the end of its
//! table: a flush or compaction writes sequential pages and never rewrites
//! a page of another run.
//!
//! The alternative, merging each flush into one big index, extends the open
//! shard of nearly every key it touches; on a mainnet-shaped chain, whose
//! topics are mostly accounts, that rewrote nearly every page of the index
//! at each flush, so the cost of a flush grew with the chain. With runs, an
//! entry is written once per level, and a whole-chain log query or a lookup
//! by tx hash probes each run: at most `fanout - 1` per level below the
//! top, a few more at the top level. A query over a block range only probes
//! the runs the range falls in.
//!
//! # Receipt blooms
//!
//! `coldchain::codec` leaves a receipt's bloom out when told it is the
//! bloom of its logs, and then rebuilds it on decode: a keccak per address
//! and topic (~1,400 per mainnet-shaped block, most of the cost of reading a
//! block's receipts), and finding out on append costs as many.
//! `receipt_blooms` keeps each receipt's bloom, exactly as appended, as its
//! set bits (~30 bytes a receipt: the distances between set bits, mostly
//! one byte each; the whole 256 bytes when 127 bits or more are set), one
//! value per block. Receipt values never carry the bloom, and
//! every read (point, block, drain) hands the stored one to the decoder: no
//! keccak on either side. The receipt scans of `get_logs` and truncation
//! never need blooms.
//!
//! # Format version
//!
//! [`FORMAT_VERSION`] (now 5; version 1 had no `receipt_blooms`, version 2
//! stored receipts in `codec`'s `0x31`, without short topics, version 3 had
//! one merged index instead of runs, and u16 bloom bit indexes, version 4
//! kept no ommers and no withdrawals (no `block_extras`): such a store
//! cannot be upgraded in place, as what it dropped is gone, so it is
//! refused with a request to re-import) covers the
//! table set, the key layouts, the shard formats (`0x51`, `0x52`), the
//! journal format (`0x61`), the `index_runs` values (`0x71`) and the
//! `receipt_blooms` values; headers,
//! transactions and receipts carry `coldchain::codec`'s own versioned format
//! bytes. [`MdbxBackend::open`] refuses a store with another version (newer:
//! upgrade coldchain; older: re-import), a directory of foreign files, and an
//! MDBX environment of another application.
//!
//! # Checking a store
//!
//! [`MdbxBackend::verify`] walks the whole store on one snapshot and checks
//! every index against the data (see [`VerifyReport`]).

#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod backend;
mod chain_id;
mod error;
mod journal;
mod layout;
mod logs;
mod pool;
mod read;
mod runs;
mod scan;
mod store;
mod verify;
mod write;

pub use backend::{DiskUsage, MdbxBackend, TableSize};
pub use error::MdbxError;
pub use layout::FORMAT_VERSION;
pub use store::{MdbxOptions, SyncMode, on_read_only_media};
pub use verify::VerifyReport;
