//! The write side: each append, truncate and drain is one transaction that
//! first locks the `meta` row (`SELECT ... FOR UPDATE`), so writers on one
//! database — several servers — queue on that lock and never interleave;
//! contiguity is checked against the tip read under the lock. Appends send
//! each table as one binary `COPY`; the tip update, the `NOTIFY` and the
//! `COMMIT` go in one round trip. After the commit an append requests a
//! merge of the GIN pending list, which runs in the background (see
//! `upkeep`).

use alloy::eips::BlockNumHash;
use coldchain::{
    BlockData, ColdError, ColdResult, Deadline, DrainedBlock, backend::check_contiguous,
};
use deadpool_postgres::ClientWrapper;
use futures::SinkExt;
use std::sync::atomic::Ordering;
use tokio_postgres::types::ToSql;

use crate::{
    PostgresBackend,
    conn::{Conn, write_begin},
    error::db_err,
    read::{RECEIPTS_HEAD, RECEIPTS_LOGS, assemble_receipts, tip_of},
    rows::{self, COPY_BLOCKS, COPY_LOGS, COPY_TXS, CopyPayload, EncodedBatch, num},
};

/// The channel writers notify on commit; the payload is the new tip as
/// `<number>:0x<hash>`, or empty for an empty store.
pub const TIP_CHANNEL: &str = "coldchain_tip";

const LOCK_TIP: &str = "SELECT tip_number, tip_hash FROM coldchain.meta FOR UPDATE";
const SET_TIP: &str = "UPDATE coldchain.meta SET tip_number = $1, tip_hash = $2";
const NOTIFY: &str = "SELECT pg_notify('coldchain_tip', $1)";

/// What a truncate sets before its deletes (and resets after them): they
/// read their rows by bitmap scans. A bitmap visits each heap page once, in
/// order, where an index scan (which the planner picks when the statistics
/// predate the newest blocks) goes row by row. Measured on W1's last 64
/// blocks (21,000 log rows): the log delete -16%, the transactions' -20%,
/// and the whole truncate 20–47% faster in six alternating pairs.
pub(crate) const TRUNCATE_SETTINGS: &str = "SET LOCAL enable_indexscan = off";

/// The statements that remove every row above block `cut`, in order.
pub(crate) fn truncate_deletes(cut: i64) -> [String; 3] {
    [
        format!("DELETE FROM coldchain.logs WHERE block_number > {cut}"),
        format!("DELETE FROM coldchain.txs WHERE block_number > {cut}"),
        format!("DELETE FROM coldchain.blocks WHERE number > {cut}"),
    ]
}

/// Batches with more transactions than this are encoded on a blocking
/// thread rather than on the async one.
const ENCODE_INLINE_TXS: usize = 400;

/// The NOTIFY payload of a tip.
pub(crate) fn tip_payload(tip: Option<BlockNumHash>) -> String {
    tip.map(|t| format!("{}:{}", t.number, t.hash)).unwrap_or_default()
}

/// Parses a NOTIFY payload; `None` if it is malformed.
pub(crate) fn parse_tip_payload(payload: &str) -> Option<Option<BlockNumHash>> {
    if payload.is_empty() {
        return Some(None);
    }
    let (n, h) = payload.split_once(':')?;
    Some(Some(BlockNumHash::new(n.parse().ok()?, h.parse().ok()?)))
}

async fn copy(
    client: &ClientWrapper,
    sql: &str,
    payload: CopyPayload,
    deadline: &Deadline,
) -> ColdResult<()> {
    if payload.rows == 0 {
        return Ok(());
    }
    let stmt = client.prepare_cached(sql).await.map_err(|e| db_err(e, deadline))?;
    let sink = client.copy_in::<_, bytes::Bytes>(&stmt).await.map_err(|e| db_err(e, deadline))?;
    let mut sink = std::pin::pin!(sink);
    for chunk in payload.chunks {
        sink.feed(chunk).await.map_err(|e| db_err(e, deadline))?;
    }
    sink.as_mut().finish().await.map_err(|e| db_err(e, deadline))?;
    Ok(())
}

impl PostgresBackend {
    pub(crate) async fn write_append(
        &self,
        blocks: Vec<BlockData>,
        deadline: &Deadline,
    ) -> ColdResult<()> {
        if blocks.is_empty() {
            return Ok(());
        }
        // Encode before taking the lock: the transaction holds it only for
        // the COPYs.
        let txs: usize = blocks.iter().map(|b| b.transactions.len()).sum();
        let t_encode = std::time::Instant::now();
        let (blocks, encoded) = if txs > ENCODE_INLINE_TXS {
            let job = tokio::task::spawn_blocking(move || {
                let encoded = rows::encode_batch(&blocks, true);
                (blocks, encoded)
            });
            deadline
                .run(async {
                    job.await.map_err(|e| ColdError::Panicked {
                        op: deadline.op(),
                        message: e.to_string(),
                    })
                })
                .await?
        } else {
            let encoded = rows::encode_batch(&blocks, false);
            (blocks, encoded)
        };
        let log_rows = encoded.as_ref().map(|e| e.logs.rows).unwrap_or(0);
        tracing::debug!(
            encode_ms = t_encode.elapsed().as_secs_f64() * 1e3,
            "coldchain-postgres: encoded"
        );
        deadline
            .run(async {
                let mut conn = Conn::get(&self.inner.write_pool, deadline).await?;
                let result = append_locked(conn.client(), &blocks, encoded, deadline).await;
                match result {
                    Ok(()) => conn.clean(),
                    Err(AppendError::Hard(e)) => return Err(e),
                    Err(AppendError::Rejected(e)) => {
                        // Refused before writing anything: end the
                        // transaction and keep the connection.
                        conn.client()
                            .batch_execute("ROLLBACK")
                            .await
                            .map_err(|err| db_err(err, deadline))?;
                        conn.clean();
                        return Err(e);
                    }
                }
                Ok(())
            })
            .await?;
        self.inner.upkeep.request(&self.inner.pool, &self.inner.stop);
        self.after_append(log_rows);
        Ok(())
    }

    /// Counts appended rows and refreshes planner statistics in the
    /// background when the logs table has grown by half since the last
    /// refresh (bulk loads would otherwise be planned on stale statistics
    /// until autovacuum's next ANALYZE).
    fn after_append(&self, log_rows: u64) {
        if !self.inner.options.auto_analyze {
            return;
        }
        let inner = &self.inner;
        let since = inner.rows_since_analyze.fetch_add(log_rows, Ordering::Relaxed) + log_rows;
        let base = inner.rows_at_analyze.load(Ordering::Relaxed);
        if since < 5_000 || since * 2 < base {
            return;
        }
        if inner.analyzing.swap(true, Ordering::AcqRel) {
            return;
        }
        inner.rows_since_analyze.store(0, Ordering::Relaxed);
        inner.rows_at_analyze.store(base + since, Ordering::Relaxed);
        let this = self.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = this.analyze().await {
                    tracing::debug!(error = %e, "coldchain-postgres: background ANALYZE failed");
                }
                this.inner.analyzing.store(false, Ordering::Release);
            });
        } else {
            inner.analyzing.store(false, Ordering::Release);
        }
    }

    /// Truncates above `number`; with `drain`, returns the removed blocks.
    pub(crate) async fn write_truncate(
        &self,
        number: u64,
        drain: bool,
        deadline: &Deadline,
    ) -> ColdResult<Vec<DrainedBlock>> {
        // Nothing can be stored above 2^63 - 1.
        let Some(cut) = num(number) else { return Ok(Vec::new()) };
        deadline
            .run(async {
                let mut conn = Conn::get(&self.inner.write_pool, deadline).await?;
                let drained = {
                    let client = conn.client();
                    let lock =
                        client.prepare_cached(LOCK_TIP).await.map_err(|e| db_err(e, deadline))?;
                    let begin = write_begin(deadline)?;
                    let (_, tip_rows) =
                        futures::try_join!(client.batch_execute(&begin), client.query(&lock, &[]))
                            .map_err(|e| db_err(e, deadline))?;
                    let tip = tip_of(&tip_rows)?;
                    if tip.is_none_or(|t| t.number <= number) {
                        client.batch_execute("COMMIT").await.map_err(|e| db_err(e, deadline))?;
                        Vec::new()
                    } else {
                        let drained = if drain {
                            // The statements of "all receipts of a block",
                            // for every block above the cut.
                            let head = format!(
                                "{RECEIPTS_HEAD} WHERE b.number > $1 ORDER BY b.number, t.tx_index"
                            );
                            let logs = format!(
                                "{RECEIPTS_LOGS} WHERE l.block_number > $1 ORDER BY \
                                 l.block_number, l.log_index"
                            );
                            let head = client
                                .prepare_cached(&head)
                                .await
                                .map_err(|e| db_err(e, deadline))?;
                            let logs = client
                                .prepare_cached(&logs)
                                .await
                                .map_err(|e| db_err(e, deadline))?;
                            let cut_param: [&(dyn ToSql + Sync); 1] = [&cut];
                            let (head, logs) = futures::try_join!(
                                client.query(&head, &cut_param),
                                client.query(&logs, &cut_param),
                            )
                            .map_err(|e| db_err(e, deadline))?;
                            assemble_receipts(&head, &logs)?
                                .into_iter()
                                .map(|(header, receipts)| DrainedBlock { header, receipts })
                                .collect()
                        } else {
                            Vec::new()
                        };
                        let deletes = truncate_deletes(cut).join(";\n");
                        let sql = format!(
                            "{TRUNCATE_SETTINGS};
                             {deletes};
                             SET LOCAL enable_indexscan TO DEFAULT;
                             UPDATE coldchain.meta SET (tip_number, tip_hash) =
                                 (SELECT number, hash FROM coldchain.blocks
                                  WHERE number <= {cut} ORDER BY number DESC LIMIT 1);
                             SELECT pg_notify('{TIP_CHANNEL}', COALESCE((SELECT tip_number::text
                                 || ':0x' || encode(tip_hash, 'hex') FROM coldchain.meta), ''));
                             COMMIT;"
                        );
                        client.batch_execute(&sql).await.map_err(|e| db_err(e, deadline))?;
                        drained
                    }
                };
                conn.clean();
                Ok(drained)
            })
            .await
    }
}

/// How an append transaction failed.
enum AppendError {
    /// Refused before anything was written (contiguity, encoding): the
    /// transaction is open and idle; roll it back and keep the connection.
    Rejected(ColdError),
    /// Failed while writing or talking to the server: the connection's state
    /// is unknown; the guard discards it, which rolls back.
    Hard(ColdError),
}

impl From<ColdError> for AppendError {
    fn from(e: ColdError) -> Self {
        Self::Hard(e)
    }
}

/// The append transaction, after checkout.
async fn append_locked(
    client: &ClientWrapper,
    blocks: &[BlockData],
    encoded: ColdResult<EncodedBatch>,
    deadline: &Deadline,
) -> Result<(), AppendError> {
    let lock = client.prepare_cached(LOCK_TIP).await.map_err(|e| db_err(e, deadline))?;
    let set_tip = client.prepare_cached(SET_TIP).await.map_err(|e| db_err(e, deadline))?;
    let notify = client.prepare_cached(NOTIFY).await.map_err(|e| db_err(e, deadline))?;
    let begin = write_begin(deadline)?;
    let (_, tip_rows) = futures::try_join!(client.batch_execute(&begin), client.query(&lock, &[]))
        .map_err(|e| db_err(e, deadline))?;
    let tip = tip_of(&tip_rows)?;
    check_contiguous(tip, blocks).map_err(AppendError::Rejected)?;
    let encoded = encoded.map_err(AppendError::Rejected)?;
    let Some(last) = blocks.last() else { return Err(AppendError::Rejected(empty_batch())) };
    let new_tip = last.num_hash();
    let t = std::time::Instant::now();
    copy(client, COPY_BLOCKS, encoded.blocks, deadline).await?;
    let t_blocks = t.elapsed();
    copy(client, COPY_TXS, encoded.txs, deadline).await?;
    let t_txs = t.elapsed();
    copy(client, COPY_LOGS, encoded.logs, deadline).await?;
    let t_logs = t.elapsed();
    let n = num(new_tip.number).unwrap_or(i64::MAX);
    let payload = tip_payload(Some(new_tip));
    let hash = new_tip.hash.as_slice();
    let tip_params: [&(dyn ToSql + Sync); 2] = [&n, &hash];
    let notify_params: [&(dyn ToSql + Sync); 1] = [&payload];
    futures::try_join!(
        client.execute(&set_tip, &tip_params),
        client.execute(&notify, &notify_params),
        client.batch_execute("COMMIT"),
    )
    .map_err(|e| db_err(e, deadline))?;
    tracing::debug!(
        blocks = blocks.len(),
        copy_blocks_ms = t_blocks.as_secs_f64() * 1e3,
        copy_txs_ms = (t_txs - t_blocks).as_secs_f64() * 1e3,
        copy_logs_ms = (t_logs - t_txs).as_secs_f64() * 1e3,
        commit_ms = (t.elapsed() - t_logs).as_secs_f64() * 1e3,
        "coldchain-postgres: append committed"
    );
    Ok(())
}

/// Unreachable (empty batches return early); an error rather than a panic.
fn empty_batch() -> ColdError {
    ColdError::InvalidFilter("empty append batch".into())
}
