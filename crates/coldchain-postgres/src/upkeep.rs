//! Background upkeep after appends: merging the GIN index's pending list.
//!
//! `logs_topics` is a GIN index with `fastupdate`: an append's COPY adds
//! each log's topic entries to the index's *pending list* (cheap, sequential)
//! and someone must later merge that list into the index proper, or queries
//! scan it linearly. Merging is about a third of an append's server time on
//! W1 (~145 ms per 100 blocks). Doing it inside the append transaction kept
//! the list empty but made every append wait for it, with the client idle.
//!
//! So an append only *requests* a merge (and so does opening a database,
//! for a list a previous process left); one task per backend runs
//! `gin_clean_pending_list` in its own transaction right after, on another
//! pooled connection, while the caller encodes and sends its next batch.
//! Requests made while a merge runs coalesce into one more merge. The list a
//! query may find is therefore at most the last append or two, and
//! PostgreSQL itself merges inline once a list outgrows
//! `gin_pending_list_limit` (4 MB by default), so it stays bounded even if
//! merges fail. The merge commits with `synchronous_commit = off`: it only
//! moves already durable entries, and a merge lost in a crash is redone by
//! the next one.

use coldchain::{ColdResult, Deadline};
use deadpool_postgres::Pool;
use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    conn::{Conn, timeout_ms},
    error::db_err,
};

/// Moves the GIN index's pending entries into the index proper.
const FLUSH_GIN: &str = "SELECT gin_clean_pending_list('coldchain.logs_topics'::regclass)";

/// Bound on one merge (the statement is cancelled and the merge retried on
/// the next request).
const MERGE_TIMEOUT: Duration = Duration::from_secs(120);

/// The merge requests of one backend and the task serving them.
pub(crate) struct Upkeep {
    shared: Arc<Shared>,
    started: OnceLock<()>,
}

struct Shared {
    /// Requests made so far.
    requested: AtomicU64,
    /// The request count the last finished merge (or failed attempt) served.
    served: watch::Sender<u64>,
    wake: Notify,
}

impl Upkeep {
    pub(crate) fn new() -> Self {
        let (served, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared { requested: AtomicU64::new(0), served, wake: Notify::new() }),
            started: OnceLock::new(),
        }
    }

    /// Requests a merge after an append committed; starts the task on first
    /// use. Outside a tokio runtime nothing happens (PostgreSQL's inline
    /// merge still bounds the list).
    pub(crate) fn request(&self, pool: &Pool, stop: &CancellationToken) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        self.started.get_or_init(|| {
            rt.spawn(run(self.shared.clone(), pool.clone(), stop.clone()));
        });
        self.shared.requested.fetch_add(1, Ordering::AcqRel);
        self.shared.wake.notify_one();
    }

    /// Waits until every merge requested so far has run (or failed).
    pub(crate) async fn settle(&self) {
        let target = self.shared.requested.load(Ordering::Acquire);
        let mut served = self.shared.served.subscribe();
        let _ = served.wait_for(|s| *s >= target).await;
    }
}

async fn run(shared: Arc<Shared>, pool: Pool, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.wake.notified() => {}
        }
        let target = shared.requested.load(Ordering::Acquire);
        let started = Instant::now();
        // A merge that started runs to its end even if the backend is
        // dropped meanwhile: a cancelled merge would leave the whole list.
        let result = merge(&pool).await;
        match result {
            Ok(()) => tracing::debug!(
                ms = started.elapsed().as_secs_f64() * 1e3,
                "coldchain-postgres: merged the GIN pending list"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "coldchain-postgres: merging the GIN pending list failed; retried after the next append"
            ),
        }
        shared.served.send_replace(target);
    }
}

async fn merge(pool: &Pool) -> ColdResult<()> {
    let deadline = Deadline::after("gin_merge", MERGE_TIMEOUT);
    deadline
        .run(async {
            let mut conn = Conn::get(pool, &deadline).await?;
            let ms = timeout_ms(&deadline)?;
            let sql = format!(
                "BEGIN; SET LOCAL statement_timeout = {ms}; SET LOCAL synchronous_commit = off; \
                 {FLUSH_GIN}; COMMIT"
            );
            conn.client().batch_execute(&sql).await.map_err(|e| db_err(e, &deadline))?;
            conn.clean();
            Ok(())
        })
        .await
}
