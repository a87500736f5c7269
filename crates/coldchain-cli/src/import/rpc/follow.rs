//! `--follow`: keeping up with a node's head, through reorgs and failures.
//!
//! Each round reads the node's head, compares the store's tip with the
//! node's block at that height (unwinding to the last common block when
//! they differ, see [`common_ancestor`]), and imports the new blocks up to
//! `head - --confirmations`.
//!
//! **The follower never stops by itself.** A round that fails (the node is
//! down, a block fails verification, a write fails, the node's chain shares
//! nothing with the store) is logged, counted in
//! `coldchain_follow_failures_total`, recorded in the [`FollowerStatus`],
//! and retried with backoff (the poll interval doubling per consecutive
//! failure, at most [`MAX_BACKOFF`], with jitter): nodes repair and reorg
//! bad blocks away. Every block verified before a bad one is written first
//! (see the pipeline), so a retry starts at the bad block. The status
//! reports the failure, the count and the lag until a round succeeds; only
//! cancellation ends the loop.

use super::{Node, RetryPolicy, import_range};
use crate::import::{ImportError, ImportStats, RpcRange, pipeline::is_link_error};
use alloy::primitives::BlockNumber;
use coldchain::{ColdBackend, ColdStorage};
use indicatif::ProgressBar;
use serde_json::json;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio_util::sync::CancellationToken;

/// The longest wait between two rounds after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a follower is doing, cheap to read from another task (the server's
/// `/health`): whether it runs, how far behind the node the store is, and
/// the failures since the last round that succeeded.
#[derive(Debug, Default)]
pub struct FollowerStatus {
    alive: AtomicBool,
    /// The node's head at the last round (0: not known yet).
    node_head: AtomicU64,
    /// The store's tip plus one at the last round (0: empty or not known).
    store_next: AtomicU64,
    /// Failed rounds in a row.
    failures: AtomicU64,
    /// Failed rounds since the start.
    total_failures: AtomicU64,
    /// The last failure and when (seconds since the epoch).
    last_error: parking_lot::Mutex<Option<(String, u64)>>,
}

impl FollowerStatus {
    /// A status for a follower about to start.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Whether the follower is running and its last round succeeded, and
    /// the details for a health report: `alive`, `node_head`, `store_tip`,
    /// `lag` (blocks), `failures` (in a row), `total_failures`, and
    /// `last_error` with `last_error_at` (seconds since the epoch).
    pub fn health(&self) -> (bool, serde_json::Value) {
        let alive = self.alive.load(Ordering::Relaxed);
        let head = self.node_head.load(Ordering::Relaxed);
        let next = self.store_next.load(Ordering::Relaxed);
        let failures = self.failures.load(Ordering::Relaxed);
        let last = self.last_error.lock().clone();
        let detail = json!({
            "alive": alive,
            "node_head": head,
            "store_tip": next.checked_sub(1),
            "lag": (head + 1).saturating_sub(next),
            "failures": failures,
            "total_failures": self.total_failures.load(Ordering::Relaxed),
            "last_error": last.as_ref().map(|(e, _)| e.clone()),
            "last_error_at": last.map(|(_, at)| at),
        });
        (alive && failures == 0, detail)
    }

    /// Failed rounds in a row.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn heights(&self, store_tip: Option<BlockNumber>, node_head: BlockNumber) {
        self.store_next.store(store_tip.map_or(0, |t| t + 1), Ordering::Relaxed);
        self.node_head.store(node_head, Ordering::Relaxed);
    }

    fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    /// Records a failed round; returns the failures in a row.
    fn failed(&self, error: &ImportError) -> u64 {
        let at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        *self.last_error.lock() = Some((error.to_string(), at));
        self.total_failures.fetch_add(1, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Records, counts and logs a failed round that is retried after `delay`.
pub(super) fn report(status: &FollowerStatus, error: &ImportError, delay: Duration) {
    status.failed(error);
    metrics::counter!("coldchain_follow_failures_total").increment(1);
    let (_, detail) = status.health();
    tracing::warn!(
        error = %error,
        lag = %detail["lag"],
        failures = %detail["failures"],
        retry_in_ms = delay.as_millis() as u64,
        "follow: the round failed; retrying"
    );
}

/// Marks the follower alive while it lives: dead when it is dropped,
/// however the follower returns.
pub(super) struct Alive<'a>(&'a FollowerStatus);

impl<'a> Alive<'a> {
    /// Marks `status` alive.
    pub(super) fn new(status: &'a FollowerStatus) -> Self {
        status.alive.store(true, Ordering::Relaxed);
        Self(status)
    }
}

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Relaxed);
    }
}

/// How a round ended.
enum Round {
    /// The store was unwound: read the head again now.
    Unwound,
    /// Up to date (or the node reorged during the round): wait a poll.
    Done,
}

/// Follows the node until `cancel` fires; see the [module docs](self).
pub(super) async fn follow<B: ColdBackend>(
    handle: &ColdStorage<B>,
    node: &Arc<Node>,
    range: &RpcRange,
    cancel: &CancellationToken,
    stats: &mut ImportStats,
    status: &FollowerStatus,
) {
    let poll = poll_interval(range);
    let backoff = backoff(range);
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if cancel.is_cancelled() {
            return;
        }
        wait = match round(handle, node, range, cancel, stats, status).await {
            Ok(Round::Unwound) => Duration::ZERO,
            Ok(Round::Done) => {
                status.succeeded();
                poll
            }
            Err(e) => retry_delay(&backoff, status, &e),
        };
    }
}

/// How often the follower asks the node for its head.
fn poll_interval(range: &RpcRange) -> Duration {
    Duration::from_millis(range.poll_ms.max(10))
}

/// The follower's backoff between failed rounds: from the poll interval,
/// doubling, at most [`MAX_BACKOFF`].
pub(super) fn backoff(range: &RpcRange) -> RetryPolicy {
    let poll = poll_interval(range);
    RetryPolicy { retries: 0, base: poll, max: MAX_BACKOFF.max(poll) }
}

/// Reports a failed round (see [`report`]) and returns the delay before the
/// next, from the failures in a row.
pub(super) fn retry_delay(
    backoff: &RetryPolicy,
    status: &FollowerStatus,
    error: &ImportError,
) -> Duration {
    let failures = status.failures() + 1;
    let delay = backoff.delay(u32::try_from(failures).unwrap_or(u32::MAX));
    report(status, error, delay);
    delay
}

/// One round: unwind if the node's chain changed, else import up to the
/// target.
async fn round<B: ColdBackend>(
    handle: &ColdStorage<B>,
    node: &Arc<Node>,
    range: &RpcRange,
    cancel: &CancellationToken,
    stats: &mut ImportStats,
    status: &FollowerStatus,
) -> Result<Round, ImportError> {
    let head = node.head().await?;
    let tip = handle.durable_tip();
    status.heights(tip.map(|t| t.number), head);
    if let Some(t) = tip {
        // Compare at the lower of the two heads: another block there, or
        // a node that went below the store's tip, means the node reorged.
        let at = t.number.min(head);
        let ours = if at == t.number {
            Some(t.hash)
        } else {
            handle
                .header(at)
                .await
                .map_err(|e| ImportError::store(format!("reading block {at}"), e))?
                .map(|h| h.hash())
        };
        let theirs = node.block_hash(at).await?;
        if t.number > head || ours != theirs {
            let fork = common_ancestor(handle, node, at).await?;
            let drained = handle
                .drain_above(fork)
                .await
                .map_err(|e| ImportError::store(format!("unwinding above block {fork}"), e))?;
            stats.reorged += drained.len() as u64;
            tracing::info!(
                fork,
                removed = drained.len(),
                old_tip = t.number,
                "follow: the node's chain changed; unwound to the last common block"
            );
            // `head` was read before the node's chain changed: a target
            // from it could import blocks within the confirmation depth of
            // the new head. Read the head again, without waiting.
            return Ok(Round::Unwound);
        }
    }
    let next = tip.map_or(0, |t| t.number + 1);
    let target = head.saturating_sub(range.confirmations);
    if next > target {
        return Ok(Round::Done);
    }
    let bar = ProgressBar::hidden();
    let result = import_range(handle, node, next, target, range, bar, cancel, stats).await;
    status.heights(handle.durable_tip().map(|t| t.number), head);
    match result {
        Ok(_) => Ok(Round::Done),
        // The node reorged between two calls: the next poll unwinds.
        Err(e) if is_link_error(&e) => {
            tracing::info!(error = %e, "follow: the node's chain changed during a round");
            Ok(Round::Done)
        }
        Err(e) => Err(e),
    }
}

/// The highest block at or below `n` that the store and the node agree on.
async fn common_ancestor<B: ColdBackend>(
    handle: &ColdStorage<B>,
    node: &Node,
    mut n: BlockNumber,
) -> Result<BlockNumber, ImportError> {
    loop {
        let ours = handle
            .header(n)
            .await
            .map_err(|e| ImportError::store(format!("reading block {n}"), e))?
            .map(|h| h.hash());
        let theirs = node.block_hash(n).await?;
        if ours.is_some() && ours == theirs {
            return Ok(n);
        }
        if ours.is_none() || n == 0 {
            return Err(ImportError::Node {
                url: node.url.clone(),
                reason: format!(
                    "the node's chain shares no block with the store at or below block {n}; \
                     it is another chain: use another store"
                ),
            });
        }
        n -= 1;
    }
}
