//! The PostgreSQL backend of coldchain: for many readers and several
//! servers on one database.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use coldchain::ColdStorage;
//! use coldchain_postgres::{PgOptions, PostgresBackend};
//!
//! let backend =
//!     PostgresBackend::open("postgres://postgres@127.0.0.1/coldchain", PgOptions::default())
//!         .await?;
//! let storage = ColdStorage::new(backend).await?;
//! # Ok(()) }
//! ```
//!
//! # Client: tokio-postgres + deadpool-postgres
//!
//! Chosen over sqlx 0.8 for four reasons, all of which show in the code:
//!
//! - **Pipelining.** tokio-postgres sends a request as soon as its future is
//!   first polled and matches answers in order, so a read sends `BEGIN
//!   ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout`,
//!   its statements and `COMMIT` in one write: a point read in its own
//!   snapshot transaction costs **one round trip**, not four. sqlx has no
//!   pipelining.
//! - **Cancellation.** Dropping a tokio-postgres future at a deadline leaves
//!   the connection consistent (the connection task discards the answers),
//!   and a [`tokio_postgres::CancelToken`] stops the server-side statement at
//!   once. Abandoned transactions are never handed to the next caller: see
//!   `conn.rs`.
//! - **Binary COPY and LISTEN** are first-class: `copy_in` takes our own
//!   binary COPY payloads, and `Connection::poll_message` delivers
//!   notifications.
//! - **Build cost**: about half of sqlx's (no SQLite, no macros, no
//!   `sqlx-core`), per `/work/shared/notes/dependencies.md`. What is lost:
//!   alloy-primitives' `sqlx` encodings, which we do not need (hashes and
//!   addresses bind as `&[u8]`).
//!
//! TLS is not built in (`NoTls`): run it on a trusted network or through a
//! local proxy.
//!
//! # Schema, storage and indexes
//!
//! See [`schema`] for the tables and the reasoning behind each index and
//! [`rows`] for the stored values. In short: one row per block (header
//! value), per transaction (transaction value + 10-byte compact receipt
//! row), and per log (address, topics in their stored form — 20 bytes for
//! an address topic — data, transaction hash), with
//! B-trees on `(address, block)` and `(topic0, block)`, one GIN index over
//! topics 1–3, and deduplicated B-trees on block numbers. Migrations are
//! embedded and applied on [`PostgresBackend::open`]; a database with a
//! newer schema is refused with [`PgError::NewerSchema`].
//!
//! # Contract
//!
//! - **Snapshots** ([`ColdRead::snapshot_reads`] is `true`): every read and
//!   every log stream runs in one `REPEATABLE READ READ ONLY` transaction;
//!   a stream pages through a portal inside it, so the whole stream sees one
//!   state however long it runs.
//! - **Atomic writes**: an append is one transaction sending each table as
//!   one binary `COPY` (never a statement per row); a truncate or a drain is
//!   one transaction (a drain reads the removed blocks inside it).
//! - **Two writers** on one database cannot interleave: every write first
//!   locks the single `coldchain.meta` row (`SELECT ... FOR UPDATE`) and
//!   checks contiguity against the tip it read under that lock.
//! - **Writes have a connection of their own** (a pool of one, apart from
//!   the read pool), so a write never queues behind reads for a
//!   connection: with 64 read permits over 16 pooled connections, a write
//!   would otherwise wait behind up to 48 reads (C5).
//! - **Deadlines** bound pool checkout and every statement: each
//!   transaction starts with `SET LOCAL statement_timeout` set to
//!   [`Deadline::remaining`], and every await is wrapped in
//!   [`Deadline::run`]. SQLSTATE `57014` (`query_canceled`) and failures
//!   after the deadline are [`ColdError::Timeout`]; the transaction is rolled
//!   back (a connection abandoned mid-transaction is closed and its statement
//!   cancelled, never reused).
//! - **Multi-server tips**: [`ColdRead::tip_updates`] is served by
//!   `LISTEN`/`NOTIFY` (each write notifies inside its transaction) with a
//!   polling fallback of at most [`PgOptions::tip_poll_interval`] (1 s); see
//!   [`notify`](crate#multi-server-tips).
//!
//! # Multi-server tips
//!
//! A handle over this backend forwards the store's tip into its own tip
//! watch, so a server that does not write still sees its tip advance when
//! another server appends. Notifications arrive in commit order; a lost one
//! (a dropped connection) is made up by the next poll.
//!
//! # Log queries
//!
//! A filter becomes one SQL statement whose shape depends only on which
//! conditions are present (so the statement cache stays small), planned with
//! its actual values. A single address (else a single topic0) leads: its
//! block range is written as a row comparison on `(value, block_number)`, so
//! only that value's index can serve it and the scan visits exactly the
//! matching rows, in block order (streams need no sort). Topics 1–3 add a
//! condition on the GIN-indexed array plus the exact column condition. The
//! statement carries `LIMIT max_logs + 1`, so a query over the limit never
//! transfers more than one row too many. Only then (the rows come unordered)
//! do ordered statements find where the limit falls at block boundaries
//! (`coldchain::filter`): the first `max_logs + 1` matches in order tell
//! the last block that fits; when they are all in the first matching block,
//! one statement reads that block whole and one asks whether a later block
//! matches (`LIMIT 1`). A stream's statement is ordered by block and
//! log index, so it can page through a portal; a `get_logs` statement is
//! not, and the backend sorts the rows' (block, log index) pairs itself,
//! which is cheaper than PostgreSQL sorting the wide rows. Each log needs
//! its block's hash and timestamp: a range of fewer than 256 blocks, or a
//! block hash, reads those blocks' rows with a second statement in the same
//! snapshot and round trip; streams and longer or open ranges join
//! `blocks` instead, which costs a probe per log row but never reads the
//! rows of blocks without matches.
//!
//! # Background upkeep
//!
//! An append leaves its topic entries in the GIN index's pending list and
//! requests a merge, which one task per backend runs on another pooled
//! connection right after the commit, overlapping the next append (see
//! `upkeep.rs`). [`PostgresBackend::settle`] waits for the merges requested
//! so far; opening a database requests one for a list a previous process
//! left.
//!
//! # Performance (W1, 5,000 blocks)
//!
//! `coldchain bench --store postgres://...` on the 2-core development VM,
//! PostgreSQL 15 at its defaults (`shared_buffers` 128 MB) on the same
//! machine, on a quiet day: 174 KiB per block; appends of 100 blocks
//! 275–300 blocks/s; Q1 15.2 ms median (then about 16% less from reading
//! short ranges' blocks apart, measured on a noisy day); Q2 0.57 ms; Q3 0.34–0.42 ms;
//! Q6 ~330,000–360,000 logs/s; truncate of 64 blocks 20–27 ms; Q4 ~5,900
//! point reads/s at 64 callers (both cores busy, split between the server
//! and the client). `docs/BENCHMARKS.md` has the runs and what limits each
//! figure. For production, give PostgreSQL `shared_buffers` that hold the
//! log indexes.

#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod chain_id;
mod conn;
pub mod error;
mod notify;
mod read;
pub mod rows;
pub mod schema;
mod upkeep;
mod write;

pub use error::PgError;
pub use schema::SCHEMA_VERSION;
pub use write::TIP_CHANNEL;

use alloy::{eips::BlockNumHash, primitives::BlockNumber};
use coldchain::{
    BlockData, ColdBackend, ColdError, ColdRead, ColdResult, ColdWrite, Deadline, DrainedBlock,
    HeaderSpec, LogFilter, ReceiptSpec, RpcLog, SealedHeader, StoredReceipt, TxSpec, TxWithMeta,
    backend::{LogSink, StreamParams},
    model::RecoveredTx,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::{
    ops::RangeInclusive,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64},
    },
    time::Duration,
};
use tokio::sync::watch;
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

/// Options of [`PostgresBackend::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections in the read pool (default 16). Reads wait for a
    /// connection within their deadline; each read holds one for one round
    /// trip, so a few per core of the server are enough. Writes do not use
    /// this pool: they have one connection of their own, so a write never
    /// waits behind reads for a connection (C5); the backend opens at most
    /// `max_connections + 2` sessions (with the `LISTEN` one).
    pub max_connections: usize,
    /// Bound on connecting and migrating in [`PostgresBackend::open`], and
    /// on each new connection (default 10 s).
    pub connect_timeout: Duration,
    /// Longest delay before [`ColdRead::tip_updates`] reflects another
    /// writer's commit when a notification was lost (default 1 s).
    pub tip_poll_interval: Duration,
    /// Rows fetched per round trip by a log stream (default 2048).
    pub stream_batch: usize,
    /// Refresh planner statistics (`ANALYZE`) in the background whenever the
    /// logs table has grown by half (default true). Log filters are planned
    /// with their actual values, so fresh statistics decide between the
    /// indexes after bulk loads.
    pub auto_analyze: bool,
    /// Open the database read-only (default `false`): every session runs
    /// with `default_transaction_read_only`, nothing is migrated (a schema
    /// older than [`SCHEMA_VERSION`] is an error), no background upkeep
    /// runs, and every write answers [`ColdError::ReadOnly`]. For a replica
    /// (hot standby) or a role that may only read.
    pub read_only: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            connect_timeout: Duration::from_secs(10),
            tip_poll_interval: Duration::from_secs(1),
            stream_batch: 2048,
            auto_analyze: true,
            read_only: false,
        }
    }
}

struct Inner {
    /// Reads, streams, upkeep and admin calls.
    pool: Pool,
    /// Writes only: one connection (writes are serialized anyway).
    write_pool: Pool,
    config: tokio_postgres::Config,
    options: PgOptions,
    tip_watch: OnceLock<watch::Receiver<Option<BlockNumHash>>>,
    stop: CancellationToken,
    rows_since_analyze: AtomicU64,
    rows_at_analyze: AtomicU64,
    analyzing: AtomicBool,
    upkeep: upkeep::Upkeep,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The PostgreSQL backend. Cheap to clone; clones share its pools.
#[derive(Clone)]
pub struct PostgresBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("options", &self.inner.options)
            .field("pool", &self.inner.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`),
    /// creates or upgrades the schema (refusing one newer than this build),
    /// and builds the connection pool.
    pub async fn open(url: &str, options: PgOptions) -> Result<Self, PgError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(PgError::Url)?;
        if config.get_application_name().is_none() {
            config.application_name("coldchain");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if options.read_only {
            let read_only = "-c default_transaction_read_only=on";
            let options = match config.get_options() {
                Some(given) => format!("{given} {read_only}"),
                None => read_only.to_owned(),
            };
            config.options(&options);
        }
        let setup = async {
            let (mut client, connection) = config.connect(NoTls).await?;
            let driver = tokio::spawn(async move {
                let _ = connection.await;
            });
            let result = if options.read_only {
                schema::check(&client).await
            } else {
                schema::migrate(&mut client).await
            };
            drop(client);
            let _ = driver.await;
            result
        };
        tokio::time::timeout(options.connect_timeout, setup)
            .await
            .map_err(|_| PgError::Timeout("opening the database"))??;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .build()
            .map_err(|e| PgError::Pool(e.to_string()))?;
        let write_manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let write_pool = Pool::builder(write_manager)
            .max_size(1)
            .build()
            .map_err(|e| PgError::Pool(e.to_string()))?;
        let backend = Self {
            inner: Arc::new(Inner {
                pool,
                write_pool,
                config,
                options,
                tip_watch: OnceLock::new(),
                stop: CancellationToken::new(),
                rows_since_analyze: AtomicU64::new(0),
                rows_at_analyze: AtomicU64::new(0),
                analyzing: AtomicBool::new(false),
                upkeep: upkeep::Upkeep::new(),
            }),
        };
        // Merge what a previous process may have left in the GIN pending
        // list (an import that exited right after its last append).
        if !backend.inner.options.read_only {
            backend.inner.upkeep.request(&backend.inner.pool, &backend.inner.stop);
        }
        Ok(backend)
    }

    /// The options in force.
    pub fn options(&self) -> &PgOptions {
        &self.inner.options
    }

    /// [`ColdError::ReadOnly`] when the backend was opened read-only: the
    /// check at the start of every write.
    pub(crate) fn check_writable(&self) -> ColdResult<()> {
        if !self.inner.options.read_only {
            return Ok(());
        }
        let c = &self.inner.config;
        let db = c.get_dbname().unwrap_or("postgres");
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        };
        Err(ColdError::ReadOnly { store: format!("PostgreSQL database {db} on {host}") })
    }

    async fn admin_client(&self, what: &'static str) -> Result<deadpool_postgres::Object, PgError> {
        tokio::time::timeout(self.inner.options.connect_timeout, self.inner.pool.get())
            .await
            .map_err(|_| PgError::Timeout(what))?
            .map_err(|e| PgError::Connect(e.to_string()))
    }

    /// Bytes the store occupies: `pg_total_relation_size` (heap, indexes,
    /// TOAST) summed over the tables of the `coldchain` schema.
    pub async fn disk_bytes(&self) -> Result<u64, PgError> {
        let client = self.admin_client("disk_bytes").await?;
        let row = client
            .query_one(
                "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'coldchain' AND c.relkind = 'r'",
                &[],
            )
            .await?;
        let bytes: i64 = row.try_get(0)?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    /// Bytes per relation (tables and indexes) of the `coldchain` schema,
    /// largest first: where [`Self::disk_bytes`] goes.
    pub async fn relation_sizes(&self) -> Result<Vec<(String, u64)>, PgError> {
        let client = self.admin_client("relation_sizes").await?;
        let rows = client
            .query(
                "SELECT c.relname::text, pg_relation_size(c.oid)::bigint
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'coldchain' AND c.relkind IN ('r', 'i', 't')
                 ORDER BY 2 DESC",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0))))
            .collect()
    }

    /// Refreshes planner statistics of the tables (`ANALYZE`). Done in the
    /// background after large appends unless [`PgOptions::auto_analyze`] is
    /// off.
    pub async fn analyze(&self) -> Result<(), PgError> {
        let client = self.admin_client("analyze").await?;
        client.batch_execute("ANALYZE coldchain.blocks, coldchain.txs, coldchain.logs").await?;
        Ok(())
    }

    /// Waits until the background merges of the GIN pending list requested
    /// so far (by [`Self::open`] and by each append) have run. Queries are
    /// correct either way, but scan what is still pending; call this before
    /// measuring them, or before exiting after a bulk load.
    pub async fn settle(&self) {
        self.inner.upkeep.settle().await;
    }

    /// The plan PostgreSQL chooses for `get_logs(filter, max_logs)`, as
    /// `EXPLAIN` text (with `analyze`, `EXPLAIN (ANALYZE, BUFFERS)`: the
    /// query runs). For diagnosing slow filters.
    pub async fn explain_get_logs(
        &self,
        filter: &LogFilter,
        max_logs: usize,
        analyze: bool,
    ) -> Result<String, PgError> {
        let query = read::LogQuery::new(filter, None, max_logs);
        let explain = if analyze { "EXPLAIN (ANALYZE, BUFFERS)" } else { "EXPLAIN" };
        let sql = format!("{explain} {}", query.sql);
        let mut client = self.admin_client("explain_get_logs").await?;
        let params = query.param_refs();
        let txn = client.transaction().await?;
        txn.batch_execute(conn::LOG_QUERY_SETTINGS.trim_start_matches(';')).await?;
        let rows = txn.query(&sql, &params).await?;
        txn.rollback().await?;
        plan_text(&rows)
    }

    /// The plans of the deletes that `truncate_above(number)` runs, as
    /// `EXPLAIN` text, one per table; nothing is deleted. For diagnosing
    /// slow truncations.
    pub async fn explain_truncate(&self, number: u64) -> Result<Vec<String>, PgError> {
        let Some(cut) = rows::num(number) else { return Ok(Vec::new()) };
        let mut client = self.admin_client("explain_truncate").await?;
        let txn = client.transaction().await?;
        txn.batch_execute(write::TRUNCATE_SETTINGS).await?;
        let mut plans = Vec::new();
        for delete in write::truncate_deletes(cut) {
            plans.push(plan_text(&txn.query(&format!("EXPLAIN {delete}"), &[]).await?)?);
        }
        txn.rollback().await?;
        Ok(plans)
    }

    fn start_tip_watch(&self) -> Option<watch::Receiver<Option<BlockNumHash>>> {
        if let Some(rx) = self.inner.tip_watch.get() {
            return Some(rx.clone());
        }
        let rt = tokio::runtime::Handle::try_current().ok()?;
        let rx = self.inner.tip_watch.get_or_init(|| {
            let (tx, rx) = watch::channel(None);
            let listener = notify::Listener {
                config: self.inner.config.clone(),
                pool: self.inner.pool.clone(),
                poll: self.inner.options.tip_poll_interval,
                stop: self.inner.stop.clone(),
                tx,
            };
            rt.spawn(listener.run());
            rx
        });
        Some(rx.clone())
    }
}

impl ColdRead for PostgresBackend {
    fn snapshot_reads(&self) -> bool {
        true
    }

    fn tip_updates(&self) -> Option<watch::Receiver<Option<BlockNumHash>>> {
        self.start_tip_watch()
    }

    async fn chain_id(&self, deadline: Deadline) -> ColdResult<Option<u64>> {
        Box::pin(self.read_chain_id(&deadline)).await
    }

    async fn tip(&self, deadline: Deadline) -> ColdResult<Option<BlockNumHash>> {
        Box::pin(self.read_tip(&deadline)).await
    }

    async fn header(
        &self,
        spec: HeaderSpec,
        deadline: Deadline,
    ) -> ColdResult<Option<SealedHeader>> {
        Box::pin(self.read_header(spec, &deadline)).await
    }

    async fn transaction(
        &self,
        spec: TxSpec,
        deadline: Deadline,
    ) -> ColdResult<Option<TxWithMeta>> {
        Box::pin(self.read_transaction(spec, &deadline)).await
    }

    async fn block_transactions(
        &self,
        block: HeaderSpec,
        deadline: Deadline,
    ) -> ColdResult<Option<Vec<RecoveredTx>>> {
        Box::pin(self.read_block_transactions(block, &deadline)).await
    }

    async fn block_extras(
        &self,
        block: HeaderSpec,
        deadline: Deadline,
    ) -> ColdResult<Option<coldchain::BlockExtras>> {
        Box::pin(self.read_block_extras(block, &deadline)).await
    }

    async fn receipt(
        &self,
        spec: ReceiptSpec,
        deadline: Deadline,
    ) -> ColdResult<Option<StoredReceipt>> {
        Box::pin(self.read_receipt(spec, &deadline)).await
    }

    async fn block_receipts(
        &self,
        block: HeaderSpec,
        deadline: Deadline,
    ) -> ColdResult<Option<Vec<StoredReceipt>>> {
        Box::pin(self.read_block_receipts(block, &deadline)).await
    }

    async fn get_logs(
        &self,
        filter: &LogFilter,
        max_logs: usize,
        deadline: Deadline,
    ) -> ColdResult<Vec<RpcLog>> {
        Box::pin(self.read_logs(filter, max_logs, &deadline)).await
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
        let result = tokio::select! {
            r = Box::pin(self.stream_logs(filter, range, anchor, params, &sink, &deadline)) => r,
            _ = deadline.expired() => Err(ColdError::Timeout { op: deadline.op() }),
        };
        if let Err(e) = result {
            let _ = sink.send(Err(e)).await;
        }
    }
}

impl ColdWrite for PostgresBackend {
    async fn append_blocks(
        &mut self,
        blocks: Vec<BlockData>,
        deadline: Deadline,
    ) -> ColdResult<()> {
        self.check_writable()?;
        Box::pin(self.write_append(blocks, &deadline)).await
    }

    async fn truncate_above(&mut self, number: BlockNumber, deadline: Deadline) -> ColdResult<()> {
        self.check_writable()?;
        Box::pin(self.write_truncate(number, false, &deadline)).await.map(drop)
    }

    async fn set_chain_id(&mut self, chain_id: u64, deadline: Deadline) -> ColdResult<()> {
        self.check_writable()?;
        Box::pin(self.write_chain_id(chain_id, &deadline)).await
    }
}

impl ColdBackend for PostgresBackend {
    async fn drain_above(
        &mut self,
        number: BlockNumber,
        deadline: Deadline,
    ) -> ColdResult<Vec<DrainedBlock>> {
        self.check_writable()?;
        Box::pin(self.write_truncate(number, true, &deadline)).await
    }
}

/// The text of an `EXPLAIN`'s rows, one line each.
fn plan_text(rows: &[tokio_postgres::Row]) -> Result<String, PgError> {
    let lines: Result<Vec<String>, _> = rows.iter().map(|r| r.try_get::<_, String>(0)).collect();
    Ok(lines?.join("\n"))
}
