//! [`MdbxBackend`]: the coldchain backend traits on an MDBX store.

use crate::{
    chain_id,
    error::{MdbxError, OrCold},
    layout::table,
    logs::{self, Flow},
    pool::ReadPool,
    read::View,
    scan::Gathered,
    store::{MdbxOptions, Store},
    verify::{self, VerifyReport},
    write,
};
use alloy::{eips::BlockNumHash, primitives::BlockNumber};
use coldchain::{
    BlockData, ColdBackend, ColdError, ColdRead, ColdResult, ColdWrite, Deadline, DrainedBlock,
    HeaderSpec, LogFilter, ReceiptSpec, RecoveredTx, RpcLog, SealedHeader, StoredReceipt, TxSpec,
    TxWithMeta,
    backend::{LogSink, StreamParams},
    filter::LogLimit,
};
use signet_libmdbx::Ro;
use std::{cell::RefCell, ops::RangeInclusive, path::Path, sync::Arc};
use tokio::sync::mpsc::error::TrySendError;

/// The embedded coldchain backend: an MDBX environment in one directory.
///
/// Cheap to clone; clones share the environment and the read threads.
/// Every read runs off the runtime threads in its own read transaction (a consistent snapshot, so
/// [`ColdRead::snapshot_reads`] is `true`); every append, truncate and drain
/// is one write transaction. See the [crate docs](crate) for the layout.
#[derive(Debug, Clone)]
pub struct MdbxBackend {
    store: Arc<Store>,
    /// Threads for point reads and most log queries (streams and writes
    /// use tokio's blocking pool).
    reads: Arc<ReadPool>,
}

/// Size of one table, from [`MdbxBackend::table_sizes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSize {
    /// The table's name.
    pub name: &'static str,
    /// Its number of entries.
    pub entries: u64,
    /// Bytes in its pages.
    pub bytes: u64,
}

/// Space used by a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Size of the data file on disk (allocated blocks), in bytes.
    pub file_bytes: u64,
    /// Bytes in pages that hold data (not free or unused), from MDBX.
    pub used_bytes: u64,
    /// The page size, in bytes.
    pub page_size: u32,
}

impl MdbxBackend {
    /// Opens the store at `path`, creating it (and the directory) when
    /// missing.
    ///
    /// Fails with a clear [`MdbxError`] when the path is not a writable
    /// directory, holds something else (another application's MDBX store,
    /// a non-MDBX file, foreign files), or a store of another format version.
    /// Blocking: call it from `spawn_blocking` in async code if that matters.
    pub fn open(path: impl AsRef<Path>, options: MdbxOptions) -> Result<Self, MdbxError> {
        let store = Store::open(path.as_ref(), &options)?;
        let reads = ReadPool::new(options.read_threads).map_err(MdbxError::Threads)?;
        Ok(Self { store, reads: Arc::new(reads) })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.store.path
    }

    /// Checks that every index agrees with the data, on one snapshot:
    /// headers are contiguous and linked, every block hash entry points at
    /// its block, transaction ranges chain, every transaction and receipt
    /// decodes and agrees with its block, every tx hash entry points at a
    /// stored transaction with that hash, and the log index holds exactly
    /// one entry per (address or topic, transaction) of the stored logs.
    ///
    /// Inconsistencies are listed in the report ([`VerifyReport::is_ok`]);
    /// `Err` is for failures to read at all. Blocking; it reads the whole
    /// store.
    pub fn verify(&self) -> Result<VerifyReport, MdbxError> {
        verify::verify(&self.store)
    }

    /// Space used by the store.
    pub fn disk_usage(&self) -> Result<DiskUsage, MdbxError> {
        let info = self.store.env.info()?;
        let stat = self.store.env.stat()?;
        let page_size = stat.page_size();
        let free = self.store.env.freelist().map_err(MdbxError::Read)? as u64;
        let pages = info.last_pgno() as u64 + 1;
        let file_bytes = file_size(&self.store.path.join("mdbx.dat"));
        Ok(DiskUsage {
            file_bytes,
            used_bytes: pages.saturating_sub(free) * u64::from(page_size),
            page_size,
        })
    }

    /// Entries and bytes (pages times page size) of each table, in the order
    /// the crate docs list them.
    pub fn table_sizes(&self) -> Result<Vec<TableSize>, MdbxError> {
        let txn = self.store.env.begin_ro_unsync()?;
        let t = self.store.tables;
        let mut tables = vec![
            ("meta", t.meta),
            ("headers", t.headers),
            ("block_extras", t.block_extras),
            ("block_hashes", t.block_hashes),
            ("block_txs", t.block_txs),
            ("tx_blocks", t.tx_blocks),
            ("transactions", t.transactions),
            ("receipts", t.receipts),
        ];
        tables.extend(table::TX_HASHES.into_iter().zip(t.tx_hashes));
        tables.extend(table::LOG_INDEX.into_iter().zip(t.log_index));
        tables.extend([
            ("journal", t.journal),
            ("receipt_blooms", t.receipt_blooms),
            ("index_runs", t.runs),
        ]);
        let mut out = Vec::with_capacity(tables.len());
        for (name, db) in tables {
            let stat = txn.db_stat(&db)?;
            let pages = stat.branch_pages() + stat.leaf_pages() + stat.overflow_pages();
            out.push(TableSize {
                name,
                entries: stat.entries() as u64,
                bytes: pages as u64 * u64::from(stat.page_size()),
            });
        }
        Ok(out)
    }

    /// Runs `f` on a blocking thread in a fresh read transaction.
    async fn read<T, F>(&self, op: &'static str, deadline: Deadline, f: F) -> ColdResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&View<'_, Ro>, &Deadline) -> ColdResult<T> + Send + 'static,
    {
        self.reads.run(op, self.in_snapshot(deadline, f)).await
    }

    /// Runs `f` like [`Self::read`], on tokio's blocking pool: for reads
    /// that may take long (log queries), which must not hold up point reads.
    async fn long_read<T, F>(&self, op: &'static str, deadline: Deadline, f: F) -> ColdResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&View<'_, Ro>, &Deadline) -> ColdResult<T> + Send + 'static,
    {
        run_blocking(op, self.in_snapshot(deadline, f)).await
    }

    /// `f` in a fresh read transaction, unless the deadline has passed
    /// (the read may have waited in a queue).
    fn in_snapshot<T, F>(
        &self,
        deadline: Deadline,
        f: F,
    ) -> impl FnOnce() -> ColdResult<T> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&View<'_, Ro>, &Deadline) -> ColdResult<T> + Send + 'static,
    {
        let store = self.store.clone();
        move || {
            deadline.check()?;
            let txn = store.env.begin_ro_unsync().cold()?;
            let view = View::new(&txn, store.tables);
            f(&view, &deadline)
        }
    }
}

#[cfg(unix)]
fn file_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| m.blocks() * 512).unwrap_or(0)
}

#[cfg(not(unix))]
fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Runs blocking work off the runtime threads; a panic becomes `Panicked`.
async fn run_blocking<T, F>(op: &'static str, f: F) -> ColdResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> ColdResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(ColdError::from_join(op, e)))
}

/// Most logs a stream producer gathers before handing them to the channel.
const BURST: usize = 64;

/// Longest a found log waits in a burst.
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_micros(500);

/// Logs found by a stream producer and not sent yet.
struct Burst {
    logs: Gathered,
    /// When the oldest of them was found.
    oldest: Option<std::time::Instant>,
}

/// Sends the gathered logs, in order; `Stop` when the consumer left (the
/// rest are dropped).
fn flush(
    rt: &tokio::runtime::Handle,
    sink: &LogSink,
    burst: &mut Burst,
    deadline: &Deadline,
) -> ColdResult<Flow> {
    burst.oldest = None;
    for log in burst.logs.take() {
        if send_item(rt, sink, Ok(log), deadline)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}

/// Sends one stream item from a blocking thread: at once when the channel
/// has room, else waiting for room or the deadline.
fn send_item(
    rt: &tokio::runtime::Handle,
    sink: &LogSink,
    item: ColdResult<RpcLog>,
    deadline: &Deadline,
) -> ColdResult<Flow> {
    match sink.try_send(item) {
        Ok(()) => Ok(Flow::Continue),
        Err(TrySendError::Closed(_)) => Ok(Flow::Stop),
        Err(TrySendError::Full(item)) => rt.block_on(async {
            tokio::select! {
                r = sink.send(item) => Ok(if r.is_ok() { Flow::Continue } else { Flow::Stop }),
                _ = deadline.expired() => Err(ColdError::Timeout { op: deadline.op() }),
            }
        }),
    }
}

impl ColdRead for MdbxBackend {
    fn snapshot_reads(&self) -> bool {
        true
    }

    async fn chain_id(&self, deadline: Deadline) -> ColdResult<Option<u64>> {
        self.read("chain_id", deadline, |v, _| chain_id::read(v)).await
    }

    async fn tip(&self, deadline: Deadline) -> ColdResult<Option<BlockNumHash>> {
        self.read("tip", deadline, |v, _| v.tip()).await
    }

    async fn header(
        &self,
        spec: HeaderSpec,
        deadline: Deadline,
    ) -> ColdResult<Option<SealedHeader>> {
        self.read("header", deadline, move |v, _| v.header(spec)).await
    }

    async fn transaction(
        &self,
        spec: TxSpec,
        deadline: Deadline,
    ) -> ColdResult<Option<TxWithMeta>> {
        self.read("transaction", deadline, move |v, _| v.transaction(spec)).await
    }

    async fn block_transactions(
        &self,
        block: HeaderSpec,
        deadline: Deadline,
    ) -> ColdResult<Option<Vec<RecoveredTx>>> {
        self.read("block_transactions", deadline, move |v, _| v.block_transactions(block)).await
    }

    async fn block_extras(
        &self,
        block: HeaderSpec,
        deadline: Deadline,
    ) -> ColdResult<Option<coldchain::BlockExtras>> {
        self.read("block_extras", deadline, move |v, _| v.block_extras(block)).await
    }

    async fn receipt(
        &self,
        spec: ReceiptSpec,
        deadline: Deadline,
    ) -> ColdResult<Option<StoredReceipt>> {
        self.read("receipt", deadline, move |v, _| v.receipt(spec)).await
    }

    async fn block_receipts(
        &self,
        block: HeaderSpec,
        deadline: Deadline,
    ) -> ColdResult<Option<Vec<StoredReceipt>>> {
        self.read("block_receipts", deadline, move |v, _| v.block_receipts(block)).await
    }

    async fn get_logs(
        &self,
        filter: &LogFilter,
        max_logs: usize,
        deadline: Deadline,
    ) -> ColdResult<Vec<RpcLog>> {
        filter.validate()?;
        let filter = filter.clone();
        let query = move |view: &View<'_, Ro>, deadline: &Deadline| {
            let Some(range) = logs::resolve(view, &filter)? else { return Ok(Vec::new()) };
            let mut out = Gathered::default();
            // The limit applies at block boundaries (`coldchain::filter`).
            let mut limit = LogLimit::new(max_logs);
            let mut emit = |log: RpcLog, data: &[u8]| {
                limit.admit(log.block_number.unwrap_or_default())?;
                out.push(log, data);
                Ok(Flow::Continue)
            };
            logs::scan(view, &filter, range, deadline, &mut emit, &mut || Ok(Flow::Continue))?;
            Ok(out.into_logs())
        };
        // Most log queries are index hits of a few microseconds: the pool
        // answers them without waking a thread. Half of its threads at most,
        // so that long ones never hold up point reads; the rest go to
        // tokio's blocking pool.
        match self.reads.log_query_place() {
            Some(place) => {
                let query = self.in_snapshot(deadline, query);
                self.reads
                    .run("get_logs", move || {
                        let _place = place;
                        query()
                    })
                    .await
            }
            None => self.long_read("get_logs", deadline, query).await,
        }
    }

    async fn produce_logs(
        &self,
        filter: LogFilter,
        range: RangeInclusive<BlockNumber>,
        anchor: BlockNumHash,
        params: StreamParams,
        sink: LogSink,
        deadline: Deadline,
    ) {
        let store = self.store.clone();
        let rt = tokio::runtime::Handle::current();
        let producer_sink = sink.clone();
        let producer_deadline = deadline.clone();
        // The whole stream is served from one read transaction.
        let result = run_blocking("produce_logs", move || {
            let sink = producer_sink;
            let deadline = producer_deadline;
            deadline.check()?;
            let txn = store.env.begin_ro_unsync().cold()?;
            let view = View::new(&txn, store.tables);
            if view.hash_at(anchor.number)? != Some(anchor.hash) {
                return Err(ColdError::ReorgDetected { number: anchor.number });
            }
            // Logs go out in bursts: one wake-up of the consumer per burst
            // instead of one per log; a burst waits at most FLUSH_AFTER.
            let burst = RefCell::new(Burst { logs: Gathered::with_capacity(BURST), oldest: None });
            let mut sent = 0usize;
            let mut emit = |log, data: &[u8]| {
                if sent == params.max_logs {
                    return Err(ColdError::TooManyLogs { limit: params.max_logs, fits_to: None });
                }
                sent += 1;
                let mut b = burst.borrow_mut();
                b.logs.push(log, data);
                b.oldest.get_or_insert_with(std::time::Instant::now);
                // The first log goes at once (time to first log).
                if b.logs.len() >= BURST || sent == 1 {
                    flush(&rt, &sink, &mut b, &deadline)
                } else {
                    Ok(Flow::Continue)
                }
            };
            let mut idle = || {
                let mut b = burst.borrow_mut();
                if b.oldest.is_some_and(|t| t.elapsed() >= FLUSH_AFTER) {
                    flush(&rt, &sink, &mut b, &deadline)
                } else {
                    Ok(Flow::Continue)
                }
            };
            let scanned = logs::scan(&view, &filter, range, &deadline, &mut emit, &mut idle);
            // The logs found before the end (or before an error) go first.
            flush(&rt, &sink, &mut burst.borrow_mut(), &deadline)?;
            scanned
        })
        .await;
        if let Err(e) = result {
            // One error ends the stream. A timed-out stream does not wait for
            // room: its consumer has its own deadline.
            if matches!(e, ColdError::Timeout { .. }) {
                let _ = sink.try_send(Err(e));
            } else {
                tokio::select! {
                    _ = sink.send(Err(e)) => {}
                    _ = deadline.expired() => {}
                }
            }
        }
    }
}

impl ColdWrite for MdbxBackend {
    async fn append_blocks(
        &mut self,
        blocks: Vec<BlockData>,
        deadline: Deadline,
    ) -> ColdResult<()> {
        let store = self.store.clone();
        run_blocking("append_blocks", move || {
            write::append(&store, blocks, &deadline).map_err(|e| store.write_failed(e))
        })
        .await
    }

    async fn truncate_above(&mut self, number: BlockNumber, deadline: Deadline) -> ColdResult<()> {
        let store = self.store.clone();
        run_blocking("truncate_above", move || {
            write::truncate(&store, number, false, &deadline)
                .map(drop)
                .map_err(|e| store.write_failed(e))
        })
        .await
    }

    async fn set_chain_id(&mut self, id: u64, deadline: Deadline) -> ColdResult<()> {
        let store = self.store.clone();
        run_blocking("set_chain_id", move || {
            chain_id::set(&store, id, &deadline).map_err(|e| store.write_failed(e))
        })
        .await
    }
}

impl ColdBackend for MdbxBackend {
    async fn drain_above(
        &mut self,
        number: BlockNumber,
        deadline: Deadline,
    ) -> ColdResult<Vec<DrainedBlock>> {
        let store = self.store.clone();
        run_blocking("drain_above", move || {
            write::truncate(&store, number, true, &deadline).map_err(|e| store.write_failed(e))
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use alloy::primitives::B256;
    use coldchain::testing::test_chain;

    /// A read that waits in the pool's queue until after its deadline ends
    /// with `Timeout` when it starts, without reading; the thread serves on.
    #[tokio::test]
    async fn a_read_queued_past_its_deadline_ends_when_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let options = MdbxOptions { read_threads: 1, ..MdbxOptions::for_tests() };
        let mut backend = MdbxBackend::open(dir.path(), options).unwrap();
        backend
            .append_blocks(test_chain(7, 3, B256::ZERO, 1), Deadline::none("append"))
            .await
            .unwrap();

        // Occupy the only read thread until `open` is sent.
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let (running, is_running) = tokio::sync::oneshot::channel();
        let reads = backend.reads.clone();
        let busy = tokio::spawn(async move {
            reads
                .run("busy", move || {
                    let _ = running.send(());
                    let _ = gate.recv();
                    Ok(())
                })
                .await
        });
        is_running.await.unwrap();

        let deadline = Deadline::none("header");
        let queued = {
            let (backend, deadline) = (backend.clone(), deadline.clone());
            tokio::spawn(async move { backend.header(HeaderSpec::Number(8), deadline).await })
        };
        // The deadline passes (its stop signal) while the read waits.
        deadline.stop();
        open.send(()).unwrap();
        busy.await.unwrap().unwrap();
        let result = queued.await.unwrap();
        assert!(matches!(result, Err(ColdError::Timeout { op: "header" })), "{result:?}");

        let header = backend.header(HeaderSpec::Number(8), Deadline::none("header")).await;
        assert_eq!(header.unwrap().unwrap().number, 8);
    }
}
