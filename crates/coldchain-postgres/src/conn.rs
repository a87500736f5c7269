//! Pooled connections with deadline-bound checkout and a rollback guard.
//!
//! Two pools: reads (and streams, upkeep, admin calls) share the read pool
//! of [`PgOptions::max_connections`](crate::PgOptions::max_connections);
//! writes take the one connection of the write pool, so a write never waits
//! behind reads for a connection (C5 on this snapshot backend: a write is
//! not delayed by the reads that arrived before or after it).
//!
//! A [`Conn`] is taken from the pool within the call's deadline. It is
//! *dirty* from checkout until the call marks it [`Conn::clean`] after its
//! transaction ended (COMMIT or ROLLBACK answered). A dirty connection that
//! is dropped — the call's future was dropped at its deadline, or failed
//! half-way — is never returned to the pool: it is detached and closed, and
//! a cancel request stops whatever statement the server may still be
//! running. Closing the session rolls back its open transaction, so an
//! abandoned write leaves nothing behind.

use coldchain::{ColdError, ColdResult, Deadline};
use deadpool_postgres::{ClientWrapper, Object, Pool, PoolError};
use tokio_postgres::NoTls;

use crate::error::PgError;

/// A pooled connection that is discarded unless its call ended cleanly.
pub(crate) struct Conn {
    obj: Option<Object>,
    clean: bool,
}

impl Conn {
    /// Takes a connection from the pool within `deadline`.
    pub(crate) async fn get(pool: &Pool, deadline: &Deadline) -> ColdResult<Self> {
        deadline.check()?;
        let obj = deadline
            .run(async {
                pool.get().await.map_err(|e| match e {
                    PoolError::Backend(e) => crate::error::db_err(e, deadline),
                    other => ColdError::backend(PgError::Connect(other.to_string())),
                })
            })
            .await?;
        Ok(Self { obj: Some(obj), clean: false })
    }

    /// The client. The object is only taken out in `Drop`.
    pub(crate) fn client(&self) -> &ClientWrapper {
        match &self.obj {
            Some(obj) => obj,
            None => unreachable!("the connection is only taken out when the guard drops"),
        }
    }

    /// Mutable access, for the transaction API (portals).
    pub(crate) fn client_mut(&mut self) -> &mut ClientWrapper {
        match &mut self.obj {
            Some(obj) => obj,
            None => unreachable!("the connection is only taken out when the guard drops"),
        }
    }

    /// Marks the session idle (no transaction open, nothing in flight): the
    /// connection may go back to the pool.
    pub(crate) fn clean(&mut self) {
        self.clean = true;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.clean {
            return;
        }
        let Some(obj) = self.obj.take() else { return };
        // Detach from the pool; dropping the client closes the socket, and
        // the server rolls the open transaction back.
        let client = Object::take(obj);
        let token = client.cancel_token();
        drop(client);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = token.cancel_query(NoTls).await;
            });
        }
    }
}

/// `statement_timeout` in milliseconds for the time left, at least 1 (0
/// would disable the timeout); `Timeout` once expired.
pub(crate) fn timeout_ms(deadline: &Deadline) -> ColdResult<u64> {
    deadline.check()?;
    let left = deadline.remaining();
    let ms = left.as_millis().max(1);
    Ok(u64::try_from(ms).unwrap_or(u64::MAX).min(i32::MAX as u64))
}

/// Settings of log query transactions: plan each execution with its
/// actual values; the data is expected in memory or on SSD (random reads
/// cost about as much as sequential ones); and the join of a log query that
/// has one (logs to their block's hash and timestamp, see `LogQuery::new`)
/// is a nested loop over the blocks' primary key, memoized per block: a
/// hash or merge join would read the whole `blocks` table for a handful of
/// matches.
pub(crate) const LOG_QUERY_SETTINGS: &str = "; SET LOCAL plan_cache_mode = force_custom_plan; \
     SET LOCAL random_page_cost = 1.1; SET LOCAL enable_hashjoin = off; \
     SET LOCAL enable_mergejoin = off";

/// Opens a snapshot read: `REPEATABLE READ READ ONLY` with a statement
/// timeout from the deadline; `custom_plans` adds [`LOG_QUERY_SETTINGS`].
pub(crate) fn read_begin(deadline: &Deadline, custom_plans: bool) -> ColdResult<String> {
    let ms = timeout_ms(deadline)?;
    let mut sql = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = {ms}"
    );
    if custom_plans {
        sql.push_str(LOG_QUERY_SETTINGS);
    }
    Ok(sql)
}

/// Opens a write transaction (`READ COMMITTED`; writers serialize on the
/// meta row lock) with a statement timeout from the deadline.
pub(crate) fn write_begin(deadline: &Deadline) -> ColdResult<String> {
    let ms = timeout_ms(deadline)?;
    Ok(format!("BEGIN; SET LOCAL statement_timeout = {ms}"))
}
