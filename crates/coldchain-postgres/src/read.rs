//! The read side: every call is one `REPEATABLE READ READ ONLY` transaction
//! whose `BEGIN`, statements and `COMMIT` are pipelined, so a point read is
//! one round trip to the server.

use alloy::{
    eips::BlockNumHash,
    primitives::{B256, BlockNumber, Log},
};
use coldchain::{
    BlockExtras, BlockSelector, ColdError, ColdResult, Deadline, HeaderSpec, LogFilter,
    ReceiptSpec, RpcLog, SealedHeader, StoredReceipt, TxSpec, TxWithMeta,
    backend::{LogSink, StreamParams},
    codec,
    model::{RecoveredTx, tx_meta},
};
use tokio_postgres::{Row, types::ToSql};

use crate::{
    PostgresBackend,
    conn::{Conn, read_begin},
    error::{corrupt, db_err},
    rows::{self, LOG_COLUMNS, b256, col, hash8, num, u64_of},
};

/// A query parameter owned by a generated statement.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
}

const TIP: &str = "SELECT tip_number, tip_hash FROM coldchain.meta";
const HEADER_BY_NUMBER: &str = "SELECT header FROM coldchain.blocks WHERE number = $1";
const HEADER_BY_HASH: &str = "SELECT header FROM coldchain.blocks WHERE hash = $1";
const EXTRAS_BY_NUMBER: &str = "SELECT extras FROM coldchain.blocks WHERE number = $1";
const EXTRAS_BY_HASH: &str = "SELECT extras FROM coldchain.blocks WHERE hash = $1";
/// Hash and timestamp of the blocks of a short range, ascending.
const LOG_BLOCKS_RANGE: &str = "SELECT number, hash, timestamp FROM coldchain.blocks WHERE number \
                                BETWEEN $1 AND $2 ORDER BY number";
/// Hash and timestamp of the block of a hash.
const LOG_BLOCK_BY_HASH: &str =
    "SELECT number, hash, timestamp FROM coldchain.blocks WHERE hash = $1 LIMIT 1";

const TX_COLUMNS: &str = "SELECT t.tx, t.tx_index, b.header FROM coldchain.txs t \
                          JOIN coldchain.blocks b ON b.number = t.block_number";

/// One row per log of the receipt (one if it has none); the header, the
/// transaction and the receipt row only in the first (see FIRST_ONLY below).
const RECEIPT_COLUMNS: &str = "SELECT CASE WHEN l.log_index IS NULL OR l.log_index = \
                               t.first_log THEN b.header END, t.tx_index, t.first_log, \
                               t.n_logs, CASE WHEN l.log_index IS NULL OR l.log_index = \
                               t.first_log THEN t.tx END, CASE WHEN l.log_index IS NULL OR \
                               l.log_index = t.first_log THEN t.receipt END, l.address, \
                               l.topic0, l.topic1, l.topic2, l.topic3, l.data FROM coldchain.txs t \
                               JOIN coldchain.blocks b ON b.number = t.block_number \
                               LEFT JOIN coldchain.logs l ON l.block_number = t.block_number \
                               AND l.tx_index = t.tx_index";

const BLOCK_TXS_BY_NUMBER: &str = "SELECT t.tx FROM coldchain.blocks b LEFT JOIN coldchain.txs \
                                   t ON t.block_number = b.number WHERE b.number = $1 ORDER BY \
                                   t.tx_index";
const BLOCK_TXS_BY_HASH: &str = "SELECT t.tx FROM coldchain.blocks b LEFT JOIN coldchain.txs t \
                                 ON t.block_number = b.number WHERE b.hash = $1 ORDER BY \
                                 t.tx_index";

/// Headers and transaction rows of blocks: (header, tx_index, first_log,
/// n_logs, tx, receipt, number), the tx columns NULL for a block without
/// any; the header only in the block's first row (see FIRST_ONLY below).
pub(crate) const RECEIPTS_HEAD: &str = "SELECT CASE WHEN t.tx_index IS NULL OR t.tx_index = 0 THEN \
                             b.header END, t.tx_index, t.first_log, t.n_logs, t.tx, \
                             t.receipt, b.number FROM coldchain.blocks b LEFT JOIN \
                             coldchain.txs t ON t.block_number = b.number";

// FIRST_ONLY: statements that join a parent row to its children (a block to
// its transactions, a transaction to its logs) send the parent's wide
// columns only with the first child row. Repeating the ~560-byte header on
// each of a block's 150 transaction rows was half the bytes of "all receipts
// of a block". The rows are ordered so that the first child comes first.

/// Logs of blocks: (block_number, tx_index, address, topic0..3, data).
pub(crate) const RECEIPTS_LOGS: &str = "SELECT l.block_number, l.tx_index, l.address, l.topic0, l.topic1, \
                             l.topic2, l.topic3, l.data FROM coldchain.logs l";

impl PostgresBackend {
    /// One snapshot transaction running `statements` in order, pipelined
    /// with its `BEGIN` and `COMMIT`: one round trip. `custom_plans` adds
    /// the log query settings (see [`read_begin`]). The rows of each
    /// statement, in order.
    async fn read_n(
        &self,
        deadline: &Deadline,
        statements: &[(&str, &[&(dyn ToSql + Sync)])],
        custom_plans: bool,
    ) -> ColdResult<Vec<Vec<Row>>> {
        deadline
            .run(async {
                let mut conn = Conn::get(&self.inner.pool, deadline).await?;
                let rows = {
                    let client = conn.client();
                    let err = |e| db_err(e, deadline);
                    let mut prepared = Vec::with_capacity(statements.len());
                    for (sql, _) in statements {
                        prepared.push(client.prepare_cached(sql).await.map_err(err)?);
                    }
                    let begin = read_begin(deadline, custom_plans)?;
                    // `try_join!` and `try_join_all` poll in order, so the
                    // requests go out as BEGIN, the statements, COMMIT.
                    let queries = prepared
                        .iter()
                        .zip(statements)
                        .map(|(stmt, (_, params))| client.query(stmt, params));
                    let (_, rows, _) = futures::try_join!(
                        client.batch_execute(&begin),
                        futures::future::try_join_all(queries),
                        client.batch_execute("COMMIT"),
                    )
                    .map_err(err)?;
                    rows
                };
                conn.clean();
                Ok(rows)
            })
            .await
    }

    /// One snapshot transaction running one statement.
    pub(crate) async fn read1(
        &self,
        deadline: &Deadline,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> ColdResult<Vec<Row>> {
        let mut rows = self.read_n(deadline, &[(sql, params)], false).await?;
        Ok(rows.pop().unwrap_or_default())
    }

    /// One snapshot transaction running two statements.
    pub(crate) async fn read2(
        &self,
        deadline: &Deadline,
        first: (&str, &[&(dyn ToSql + Sync)]),
        second: (&str, &[&(dyn ToSql + Sync)]),
    ) -> ColdResult<(Vec<Row>, Vec<Row>)> {
        let mut rows = self.read_n(deadline, &[first, second], false).await?.into_iter();
        Ok((rows.next().unwrap_or_default(), rows.next().unwrap_or_default()))
    }

    pub(crate) async fn read_tip(&self, deadline: &Deadline) -> ColdResult<Option<BlockNumHash>> {
        let rows = self.read1(deadline, TIP, &[]).await?;
        tip_of(&rows)
    }

    pub(crate) async fn read_header(
        &self,
        spec: HeaderSpec,
        deadline: &Deadline,
    ) -> ColdResult<Option<SealedHeader>> {
        let rows = match spec {
            HeaderSpec::Number(n) => {
                let Some(n) = num(n) else { return Ok(None) };
                self.read1(deadline, HEADER_BY_NUMBER, &[&n]).await?
            }
            HeaderSpec::Hash(h) => self.read1(deadline, HEADER_BY_HASH, &[&h.as_slice()]).await?,
        };
        rows.first().map(|r| Ok(codec::decode_header(col::<&[u8]>(r, 0)?)?)).transpose()
    }

    pub(crate) async fn read_block_extras(
        &self,
        spec: HeaderSpec,
        deadline: &Deadline,
    ) -> ColdResult<Option<BlockExtras>> {
        let rows = match spec {
            HeaderSpec::Number(n) => {
                let Some(n) = num(n) else { return Ok(None) };
                self.read1(deadline, EXTRAS_BY_NUMBER, &[&n]).await?
            }
            HeaderSpec::Hash(h) => self.read1(deadline, EXTRAS_BY_HASH, &[&h.as_slice()]).await?,
        };
        rows.first().map(|r| Ok(codec::decode_extras(col::<&[u8]>(r, 0)?)?)).transpose()
    }

    pub(crate) async fn read_transaction(
        &self,
        spec: TxSpec,
        deadline: &Deadline,
    ) -> ColdResult<Option<TxWithMeta>> {
        let rows = match spec {
            TxSpec::Hash(h) => {
                let sql = format!(
                    "{TX_COLUMNS} WHERE t.hash8 = $1 ORDER BY t.block_number DESC, t.tx_index DESC"
                );
                self.read1(deadline, &sql, &[&hash8(&h)]).await?
            }
            TxSpec::BlockNumberIndex(n, i) => {
                let (Some(n), Ok(i)) = (num(n), i32::try_from(i)) else { return Ok(None) };
                let sql = format!("{TX_COLUMNS} WHERE t.block_number = $1 AND t.tx_index = $2");
                self.read1(deadline, &sql, &[&n, &i]).await?
            }
            TxSpec::BlockHashIndex(h, i) => {
                let Ok(i) = i32::try_from(i) else { return Ok(None) };
                let sql = format!("{TX_COLUMNS} WHERE b.hash = $1 AND t.tx_index = $2");
                self.read1(deadline, &sql, &[&h.as_slice(), &i]).await?
            }
        };
        for row in &rows {
            let tx = codec::decode_tx(col::<&[u8]>(row, 0)?)?;
            if let TxSpec::Hash(h) = spec
                && *tx.inner().tx_hash() != h
            {
                continue;
            }
            let index = u64_of(col::<i32>(row, 1)?)?;
            let header = codec::decode_header(col::<&[u8]>(row, 2)?)?;
            let meta = tx_meta(&header, tx.inner().tx_hash(), index);
            return Ok(Some(TxWithMeta { tx, meta }));
        }
        Ok(None)
    }

    pub(crate) async fn read_block_transactions(
        &self,
        block: HeaderSpec,
        deadline: &Deadline,
    ) -> ColdResult<Option<Vec<RecoveredTx>>> {
        let rows = match block {
            HeaderSpec::Number(n) => {
                let Some(n) = num(n) else { return Ok(None) };
                self.read1(deadline, BLOCK_TXS_BY_NUMBER, &[&n]).await?
            }
            HeaderSpec::Hash(h) => {
                self.read1(deadline, BLOCK_TXS_BY_HASH, &[&h.as_slice()]).await?
            }
        };
        if rows.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(bytes) = col::<Option<&[u8]>>(row, 0)? {
                out.push(codec::decode_tx(bytes)?);
            }
        }
        Ok(Some(out))
    }

    pub(crate) async fn read_receipt(
        &self,
        spec: ReceiptSpec,
        deadline: &Deadline,
    ) -> ColdResult<Option<StoredReceipt>> {
        let order = "ORDER BY t.block_number DESC, t.tx_index DESC, l.log_index";
        let rows = match spec {
            ReceiptSpec::TxHash(h) => {
                let sql = format!("{RECEIPT_COLUMNS} WHERE t.hash8 = $1 {order}");
                self.read1(deadline, &sql, &[&hash8(&h)]).await?
            }
            ReceiptSpec::BlockNumberIndex(n, i) => {
                let (Some(n), Ok(i)) = (num(n), i32::try_from(i)) else { return Ok(None) };
                let sql = format!(
                    "{RECEIPT_COLUMNS} WHERE t.block_number = $1 AND t.tx_index = $2 {order}"
                );
                self.read1(deadline, &sql, &[&n, &i]).await?
            }
            ReceiptSpec::BlockHashIndex(h, i) => {
                let Ok(i) = i32::try_from(i) else { return Ok(None) };
                let sql =
                    format!("{RECEIPT_COLUMNS} WHERE b.hash = $1 AND t.tx_index = $2 {order}");
                self.read1(deadline, &sql, &[&h.as_slice(), &i]).await?
            }
        };
        // Rows come grouped by transaction (several only for a hash-prefix
        // collision or a hash stored twice); the first whose hash matches wins.
        let mut at = 0;
        while at < rows.len() {
            let row = &rows[at];
            let n_logs =
                usize::try_from(col::<i32>(row, 3)?).map_err(|_| corrupt("negative log count"))?;
            let group = n_logs.max(1);
            let Some(group_rows) = rows.get(at..at + group) else {
                return Err(corrupt("a receipt's logs are missing"));
            };
            at += group;
            let tx = codec::decode_tx(col::<&[u8]>(row, 4)?)?;
            if let ReceiptSpec::TxHash(h) = spec
                && *tx.inner().tx_hash() != h
            {
                continue;
            }
            let header = codec::decode_header(col::<&[u8]>(row, 0)?)?;
            let mut logs = Vec::with_capacity(n_logs);
            if n_logs > 0 {
                for r in group_rows {
                    logs.push(rows::log_at(r, 6)?);
                }
            }
            let receipt = rows::stored_receipt(
                &header,
                &tx,
                u64_of(col::<i32>(row, 1)?)?,
                u64_of(col::<i32>(row, 2)?)?,
                rows::decode_receipt_row(col::<&[u8]>(row, 5)?)?,
                logs,
            );
            return Ok(Some(receipt));
        }
        Ok(None)
    }

    pub(crate) async fn read_block_receipts(
        &self,
        block: HeaderSpec,
        deadline: &Deadline,
    ) -> ColdResult<Option<Vec<StoredReceipt>>> {
        let (head, logs) = match block {
            HeaderSpec::Number(n) => {
                let Some(n) = num(n) else { return Ok(None) };
                let q1 = format!("{RECEIPTS_HEAD} WHERE b.number = $1 ORDER BY t.tx_index");
                let q2 = format!("{RECEIPTS_LOGS} WHERE l.block_number = $1 ORDER BY l.log_index");
                self.read2(deadline, (&q1, &[&n]), (&q2, &[&n])).await?
            }
            HeaderSpec::Hash(h) => {
                let q1 = format!("{RECEIPTS_HEAD} WHERE b.hash = $1 ORDER BY t.tx_index");
                let q2 = format!(
                    "{RECEIPTS_LOGS} WHERE l.block_number = (SELECT number FROM coldchain.blocks \
                     WHERE hash = $1 LIMIT 1) ORDER BY l.log_index"
                );
                let h = h.as_slice();
                self.read2(deadline, (&q1, &[&h]), (&q2, &[&h])).await?
            }
        };
        let mut blocks = assemble_receipts(&head, &logs)?;
        Ok(blocks.pop().map(|(_, receipts)| receipts))
    }

    pub(crate) async fn read_logs(
        &self,
        filter: &LogFilter,
        max_logs: usize,
        deadline: &Deadline,
    ) -> ColdResult<Vec<RpcLog>> {
        filter.validate()?;
        let query = LogQuery::new(filter, None, max_logs);
        let params = refs(&query.params);
        // The statements, in order: the tip (to resolve open ends), the
        // block rows (unless the log statement joins them), the log rows.
        let block_params = match &query.blocks {
            BlockRows::Joined => None,
            BlockRows::Separate { sql, params } => Some((*sql, refs(params))),
        };
        let tip = matches!(query.pre, Pre::Tip);
        let mut statements: Vec<(&str, &[&(dyn ToSql + Sync)])> = Vec::with_capacity(3);
        if tip {
            statements.push((TIP, &[]));
        }
        if let Some((sql, p)) = &block_params {
            statements.push((sql, p));
        }
        statements.push((&query.sql, &params));
        let mut results = self.read_n(deadline, &statements, true).await?;
        let rows = results.pop().unwrap_or_default();
        let block_rows = if block_params.is_some() { results.pop() } else { None };
        let tip_rows = if tip { results.pop() } else { None };
        let mut tip = None;
        match &query.pre {
            Pre::None => {}
            Pre::Tip => {
                tip = tip_of(tip_rows.as_deref().unwrap_or_default())?.map(|t| t.number);
                if filter.resolve_range(tip)?.is_none() {
                    return Ok(Vec::new());
                }
            }
            Pre::Hash(h) => {
                if block_rows.as_ref().is_none_or(Vec::is_empty) {
                    return Err(ColdError::UnknownBlockHash(*h));
                }
            }
        }
        if rows.len() > max_logs {
            return Box::pin(self.over_limit(filter, tip, max_logs, deadline)).await;
        }
        // The statement has no ORDER BY (see `LogQuery::new`): order here.
        let mut order = rows
            .iter()
            .enumerate()
            .map(|(i, r)| Ok((col::<i64>(r, 0)?, col::<i32>(r, 1)?, i)))
            .collect::<ColdResult<Vec<_>>>()?;
        order.sort_unstable();
        let Some(block_rows) = block_rows else {
            return order.iter().map(|&(_, _, i)| rows::rpc_log_joined(&rows[i])).collect();
        };
        // Logs and block rows both ascend by block: each log takes its
        // block's hash and timestamp from the block rows as they pass.
        let mut block_rows = block_rows.iter();
        let mut block: Option<(i64, B256, u64)> = None;
        let missing = |number| corrupt(format!("logs of block {number} have no block row"));
        let mut out = Vec::with_capacity(order.len());
        for &(number, _, i) in &order {
            let (hash, timestamp) = loop {
                match block {
                    Some((n, hash, timestamp)) if n == number => break (hash, timestamp),
                    Some((n, _, _)) if n > number => return Err(missing(number)),
                    _ => {}
                }
                let row = block_rows.next().ok_or_else(|| missing(number))?;
                block = Some((
                    col::<i64>(row, 0)?,
                    b256(col::<&[u8]>(row, 1)?)?,
                    u64_of(col::<i64>(row, 2)?)?,
                ));
            };
            out.push(rows::rpc_log(&rows[i], hash, timestamp)?);
        }
        Ok(out)
    }

    /// `get_logs` once the unordered `max_logs + 1` rows said "too many":
    /// where the limit falls at block boundaries (`coldchain::filter`). The
    /// first `max_logs + 1` matches in order name the last block that fits;
    /// if they are all in the first matching block, that block is read
    /// whole, unless a later block matches too.
    async fn over_limit(
        &self,
        filter: &LogFilter,
        tip: Option<BlockNumber>,
        max_logs: usize,
        deadline: &Deadline,
    ) -> ColdResult<Vec<RpcLog>> {
        let too_many = |fits_to| ColdError::TooManyLogs { limit: max_logs, fits_to: Some(fits_to) };
        let range = match filter.blocks {
            // One block: always whole.
            BlockSelector::Hash(_) => {
                return Box::pin(self.read_logs(filter, usize::MAX, deadline)).await;
            }
            // Explicit ends need no tip (they were checked against it).
            BlockSelector::Range { from: Some(_), to: Some(_) } => {
                filter.resolve_range(Some(BlockNumber::MAX))?
            }
            BlockSelector::Range { .. } => filter.resolve_range(tip)?,
        };
        let Some(range) = range else { return Ok(Vec::new()) };
        let end = *range.end();
        let blocks = self.match_blocks(filter, range, max_logs.saturating_add(1), deadline).await?;
        let (Some(&first), Some(&last)) = (blocks.first(), blocks.last()) else {
            return Err(ColdError::ReorgDetected { number: end });
        };
        if blocks.len() <= max_logs {
            // The matches shrank between two statements: blocks were replaced.
            return Err(ColdError::ReorgDetected { number: first });
        }
        if last != first {
            return Err(too_many(last - 1));
        }
        // The first matching block alone holds more than `max_logs`.
        if first < end
            && let Some(&next) =
                self.match_blocks(filter, first + 1..=end, 1, deadline).await?.first()
        {
            return Err(too_many(next - 1));
        }
        let whole = LogFilter {
            blocks: BlockSelector::Range { from: Some(first), to: Some(first) },
            ..filter.clone()
        };
        Box::pin(self.read_logs(&whole, usize::MAX, deadline)).await
    }

    /// The block numbers of the first `n` matches of `filter` in `range`, in
    /// order (one ordered statement, `LIMIT n`).
    async fn match_blocks(
        &self,
        filter: &LogFilter,
        range: std::ops::RangeInclusive<BlockNumber>,
        n: usize,
        deadline: &Deadline,
    ) -> ColdResult<Vec<BlockNumber>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let query = LogQuery::new(filter, Some(range), n - 1);
        let params = refs(&query.params);
        let mut results = self.read_n(deadline, &[(&query.sql, &params)], true).await?;
        let rows = results.pop().unwrap_or_default();
        rows.iter().map(|r| u64_of(col::<i64>(r, 0)?)).collect()
    }

    /// Serves a log stream from one snapshot: checks the anchor, then pages
    /// through a portal, `stream_batch` rows per round trip.
    pub(crate) async fn stream_logs(
        &self,
        filter: LogFilter,
        range: std::ops::RangeInclusive<BlockNumber>,
        anchor: BlockNumHash,
        params: StreamParams,
        sink: &LogSink,
        deadline: &Deadline,
    ) -> ColdResult<()> {
        let mut conn = Conn::get(&self.inner.pool, deadline).await?;
        let batch = i32::try_from(self.inner.options.stream_batch.max(1)).unwrap_or(i32::MAX);
        let done = {
            let txn = deadline
                .run(async {
                    conn.client_mut()
                        .build_transaction()
                        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                        .read_only(true)
                        .start()
                        .await
                        .map_err(|e| db_err(e, deadline))
                })
                .await?;
            let ms = crate::conn::timeout_ms(deadline)?;
            let setup =
                format!("SET LOCAL statement_timeout = {ms}{}", crate::conn::LOG_QUERY_SETTINGS);
            let query = LogQuery::new(&filter, Some(range), params.max_logs);
            let qparams = refs(&query.params);
            let (stmt, anchor_stmt) = deadline
                .run(async {
                    let s =
                        txn.prepare_cached(&query.sql).await.map_err(|e| db_err(e, deadline))?;
                    let a = txn
                        .prepare_cached(HEADER_BY_NUMBER)
                        .await
                        .map_err(|e| db_err(e, deadline))?;
                    Ok((s, a))
                })
                .await?;
            let anchor_number = num(anchor.number);
            let anchor_params: [&(dyn ToSql + Sync); 1] = [&anchor_number];
            let (_, anchor_rows, portal) = deadline
                .run(async {
                    futures::try_join!(
                        txn.batch_execute(&setup),
                        txn.query(&anchor_stmt, &anchor_params),
                        txn.bind(&stmt, &qparams),
                    )
                    .map_err(|e| db_err(e, deadline))
                })
                .await?;
            let current = match anchor_rows.first() {
                Some(r) => Some(codec::decode_header(col::<&[u8]>(r, 0)?)?.hash()),
                None => None,
            };
            if current != Some(anchor.hash) {
                return Err(ColdError::ReorgDetected { number: anchor.number });
            }
            let mut sent = 0usize;
            let mut consumer_left = false;
            while !consumer_left {
                let rows = deadline
                    .run(async {
                        txn.query_portal(&portal, batch).await.map_err(|e| db_err(e, deadline))
                    })
                    .await?;
                let last = rows.len() < batch as usize;
                for row in &rows {
                    let log = rows::rpc_log_joined(row)?;
                    if sent == params.max_logs {
                        return Err(ColdError::TooManyLogs {
                            limit: params.max_logs,
                            fits_to: None,
                        });
                    }
                    sent += 1;
                    tokio::select! {
                        r = sink.send(Ok(log)) => if r.is_err() {
                            // The consumer left: end the transaction quietly.
                            consumer_left = true;
                            break;
                        },
                        _ = deadline.expired() => return Err(ColdError::Timeout { op: deadline.op() }),
                    }
                }
                if last {
                    break;
                }
            }
            deadline.run(async { txn.commit().await.map_err(|e| db_err(e, deadline)) }).await
        };
        done?;
        conn.clean();
        Ok(())
    }
}

/// The tip from a `meta` row.
pub(crate) fn tip_of(rows: &[Row]) -> ColdResult<Option<BlockNumHash>> {
    let Some(row) = rows.first() else { return Err(corrupt("the meta row is missing")) };
    match (col::<Option<i64>>(row, 0)?, col::<Option<&[u8]>>(row, 1)?) {
        (Some(n), Some(h)) => Ok(Some(BlockNumHash::new(u64_of(n)?, b256(h)?))),
        _ => Ok(None),
    }
}

/// Builds the receipts of blocks from [`RECEIPTS_HEAD`] rows (ordered by
/// block, then tx index) and [`RECEIPTS_LOGS`] rows (ordered by block, then
/// log index). Returns (header, receipts) per block, ascending.
pub(crate) fn assemble_receipts(
    head: &[Row],
    logs: &[Row],
) -> ColdResult<Vec<(SealedHeader, Vec<StoredReceipt>)>> {
    let mut out: Vec<(SealedHeader, Vec<StoredReceipt>)> = Vec::new();
    let mut current: Option<i64> = None;
    let mut log_rows = logs.iter().peekable();
    for row in head {
        let number = col::<i64>(row, 6)?;
        if current != Some(number) {
            current = Some(number);
            let header = col::<Option<&[u8]>>(row, 0)?
                .ok_or_else(|| corrupt(format!("block {number}: no transaction at index 0")))?;
            out.push((codec::decode_header(header)?, Vec::new()));
        }
        let Some(tx_bytes) = col::<Option<&[u8]>>(row, 4)? else { continue };
        let Some((header, receipts)) = out.last_mut() else { continue };
        let tx = codec::decode_tx(tx_bytes)?;
        let tx_index = col::<Option<i32>>(row, 1)?.ok_or_else(|| corrupt("tx without index"))?;
        let first_log = col::<Option<i32>>(row, 2)?.ok_or_else(|| corrupt("tx without logs"))?;
        let n_logs = col::<Option<i32>>(row, 3)?.ok_or_else(|| corrupt("tx without logs"))?;
        let receipt_bytes =
            col::<Option<&[u8]>>(row, 5)?.ok_or_else(|| corrupt("tx without receipt"))?;
        let mut tx_logs: Vec<Log> = Vec::with_capacity(usize::try_from(n_logs).unwrap_or(0));
        for _ in 0..n_logs {
            let Some(l) = log_rows.next() else {
                return Err(corrupt(format!("block {number}: logs of tx {tx_index} missing")));
            };
            if col::<i64>(l, 0)? != number || col::<i32>(l, 1)? != tx_index {
                return Err(corrupt(format!("block {number}: logs of tx {tx_index} out of place")));
            }
            tx_logs.push(rows::log_at(l, 2)?);
        }
        receipts.push(rows::stored_receipt(
            header,
            &tx,
            u64_of(tx_index)?,
            u64_of(first_log)?,
            rows::decode_receipt_row(receipt_bytes)?,
            tx_logs,
        ));
    }
    if log_rows.next().is_some() {
        return Err(corrupt("logs without a transaction"));
    }
    Ok(out)
}

/// The indexed expression of `logs_topics` (see [`crate::schema`]); a query
/// must spell it exactly so for the planner to use the index.
pub(crate) const TOPICS_ARRAY: &str = "array_remove(ARRAY[l.topic1, l.topic2, l.topic3], NULL)";

/// What a log query must read before its rows mean anything.
pub(crate) enum Pre {
    /// Nothing: explicit range.
    None,
    /// The tip, to resolve open ends exactly as [`LogFilter::resolve_range`].
    Tip,
    /// The block of this hash must exist.
    Hash(B256),
}

/// Where the rows of a log query find their block's hash and timestamp.
pub(crate) enum BlockRows {
    /// In the log statement, which joins `blocks`.
    Joined,
    /// In the rows of a statement of their own, run in the same snapshot
    /// and round trip: the blocks of a short range, or the block of a hash.
    Separate { sql: &'static str, params: Vec<Param> },
}

/// Longest explicit range (in blocks) whose log query reads its blocks'
/// rows apart instead of joining them (see [`LogQuery::new`]).
pub(crate) const SEPARATE_BLOCKS_MAX: u64 = 256;

/// A generated log query: SQL text (one shape per filter shape, so the
/// statement cache stays small), its parameters, what to read first, and
/// where its blocks come from.
pub(crate) struct LogQuery {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
    pub(crate) pre: Pre,
    pub(crate) blocks: BlockRows,
}

impl LogQuery {
    /// The query of `filter`; `range` overrides the filter's blocks with an
    /// already resolved range (streams), whose rows come in log order; a
    /// query without `range` leaves the order to the caller. At most
    /// `max_logs + 1` rows.
    pub(crate) fn new(
        filter: &LogFilter,
        range: Option<std::ops::RangeInclusive<BlockNumber>>,
        max_logs: usize,
    ) -> Self {
        let streamed = range.is_some();
        let mut params: Vec<Param> = Vec::new();
        let mut push = |p: Param| {
            params.push(p);
            format!("${}", params.len())
        };
        let tip = "(SELECT tip_number FROM coldchain.meta)";
        // The block condition: a range (lo, hi) of SQL expressions, or one
        // block by hash.
        //
        // The rows of a stream or of a long or open range join `blocks` for
        // their block's hash and timestamp. A block hash or a short range
        // reads its blocks' rows with a statement of its own instead: in
        // the same round trip, and for Q1's 5,600 rows over 100 blocks
        // about a third less server time than the join (a memoized primary
        // key probe per log row) and 40 bytes less per row. A long range
        // would read every block's row for what are most often a few logs.
        let mut blocks = BlockRows::Joined;
        let (range, pre) = match (range, filter.blocks) {
            (Some(r), _) => {
                let lo = push(Box::new(rows::clamp(*r.start())));
                let hi = push(Box::new(rows::clamp(*r.end())));
                (Ok((lo, hi)), Pre::None)
            }
            (None, BlockSelector::Hash(h)) => {
                let p = push(Box::new(h.to_vec()));
                blocks = BlockRows::Separate {
                    sql: LOG_BLOCK_BY_HASH,
                    params: vec![Box::new(h.to_vec())],
                };
                (
                    Err(format!(
                        "l.block_number = (SELECT number FROM coldchain.blocks WHERE hash = {p} \
                         LIMIT 1)"
                    )),
                    Pre::Hash(h),
                )
            }
            (None, BlockSelector::Range { from: Some(f), to: Some(t) })
                if t.saturating_sub(f) < SEPARATE_BLOCKS_MAX =>
            {
                let (f, t) = (rows::clamp(f), rows::clamp(t));
                blocks = BlockRows::Separate {
                    sql: LOG_BLOCKS_RANGE,
                    params: vec![Box::new(f), Box::new(t)],
                };
                let lo = push(Box::new(f));
                let hi = push(Box::new(t));
                (Ok((lo, hi)), Pre::None)
            }
            (None, BlockSelector::Range { from, to }) => {
                let lo = match from {
                    Some(f) => push(Box::new(rows::clamp(f))),
                    None => tip.to_owned(),
                };
                let hi = match to {
                    Some(t) => push(Box::new(rows::clamp(t))),
                    None => tip.to_owned(),
                };
                let pre = if from.is_some() && to.is_some() { Pre::None } else { Pre::Tip };
                (Ok((lo, hi)), pre)
            }
        };
        let distinct = |values: Vec<Vec<u8>>| {
            let mut values = values;
            values.sort();
            values.dedup();
            values
        };
        let addresses = distinct(filter.addresses.iter().map(|a| a.to_vec()).collect());
        let topics: Vec<Vec<Vec<u8>>> = filter
            .topics
            .iter()
            .take(codec::MAX_TOPICS)
            // Topic columns hold each topic's stored form (see `crate::schema`).
            .map(|t| {
                distinct(t.iter().flatten().map(|v| codec::compact_topic(v).to_vec()).collect())
            })
            .collect();
        let mut conds = Vec::new();
        let mut equal = |column: &str, values: Vec<Vec<u8>>| -> Option<String> {
            match values.len() {
                0 => None,
                1 => {
                    let p = push(Box::new(values.into_iter().next().unwrap_or_default()));
                    conds.push(format!("l.{column} = {p}"));
                    Some(p)
                }
                _ => {
                    conds.push(format!("l.{column} = ANY({})", push(Box::new(values))));
                    None
                }
            }
        };
        let address = equal("address", addresses);
        let topic0 = equal("topic0", topics.first().cloned().unwrap_or_default());
        // A single address (else a single topic0) leads: its range is
        // written as a row comparison on (value, block_number), which only
        // its own index can serve. That index visits exactly the matching
        // rows, in heap order; a plain block range would also let the
        // planner pick `logs_block`, whose range holds every log of the
        // blocks (the planner misjudges the heap order of the value index).
        let lead = address.map(|p| ("address", p)).or(topic0.map(|p| ("topic0", p)));
        match (range, lead) {
            (Ok((lo, hi)), Some((column, p))) => conds.push(format!(
                "(l.{column}, l.block_number) >= ({p}, {lo}) AND (l.{column}, l.block_number) <= \
                 ({p}, {hi})"
            )),
            (Ok((lo, hi)), None) => conds.push(format!("l.block_number BETWEEN {lo} AND {hi}")),
            (Err(by_hash), _) => conds.push(by_hash),
        }
        for (i, values) in topics.into_iter().enumerate().skip(1) {
            if values.is_empty() {
                continue;
            }
            // Topics 1-3 share one GIN index over the array of the three:
            // the array condition finds the candidates, the column condition
            // keeps the position exact.
            let op = if values.len() == 1 { "@>" } else { "&&" };
            let array = push(Box::new(values.clone()));
            conds.push(format!("{TOPICS_ARRAY} {op} {array}::bytea[]"));
            if values.len() == 1 {
                conds.push(format!("l.topic{i} = ({array}::bytea[])[1]"));
            } else {
                conds.push(format!("l.topic{i} = ANY({array}::bytea[])"));
            }
        }
        let limit = push(Box::new(i64::try_from(max_logs).unwrap_or(i64::MAX).saturating_add(1)));
        // A stream pages through the rows in order. A whole answer is
        // ordered by the caller instead: any `max_logs + 1` rows tell that
        // there are too many, and sorting a few thousand (block, index)
        // pairs in the client is cheaper than PostgreSQL sorting the wide
        // rows (Q1's 5,600 rows were a 2.8 MB sort).
        let order = if streamed { "ORDER BY l.block_number, l.log_index " } else { "" };
        let join = match blocks {
            BlockRows::Joined => {
                ", b.hash, b.timestamp FROM coldchain.logs l JOIN coldchain.blocks b ON b.number \
                 = l.block_number"
            }
            BlockRows::Separate { .. } => " FROM coldchain.logs l",
        };
        let sql = format!(
            "SELECT {LOG_COLUMNS}{join} WHERE {} {order}LIMIT {limit}",
            conds.join(" AND ")
        );
        Self { sql, params, pre, blocks }
    }

    pub(crate) fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        refs(&self.params)
    }
}
