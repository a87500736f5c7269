//! `/health`, `/health/ready` and `/health/live`.
//!
//! `/health/live` answers 200 while the server runs (503 once it stops):
//! for an orchestrator's liveness probe, which restarts a process that
//! answers nothing. `/health` and `/health/ready` (the same answer) check
//! what a caller needs and answer 503 with the reasons when any fails:
//! - the backend: a real read (the store's tip) within
//!   [`HEALTH_READ_TIMEOUT`];
//! - saturation: a free HTTP slot, a free WebSocket slot, and at least a
//!   tenth of the memory budget free;
//! - writes: a queued write that failed while nobody awaited it (C13, see
//!   [`coldchain::ColdStorage::last_unobserved_write_failure`]) is shown, and
//!   makes the answer 503 for [`UNOBSERVED_WRITE_FAILURE_WINDOW`] after it;
//! - each component added with [`crate::RpcServer::with_health_component`]
//!   (for example an import follower: alive, lag, last error).

use crate::{conn::Pools, eth::Api};
use coldchain::ColdBackend;
use serde_json::{Value, json};
use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// How long `/health` waits for its backend read.
pub const HEALTH_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an unobserved write failure keeps `/health` at 503.
pub const UNOBSERVED_WRITE_FAILURE_WINDOW: Duration = Duration::from_secs(300);

/// What a component reports to `/health`.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentHealth {
    /// Whether the component works; `false` makes `/health` answer 503.
    pub ok: bool,
    /// Anything useful to an operator (lag, last error, ...), shown as is.
    pub detail: Value,
}

impl ComponentHealth {
    /// A working component with this detail.
    pub fn ok(detail: Value) -> Self {
        Self { ok: true, detail }
    }

    /// A failing component with this detail.
    pub fn failing(detail: Value) -> Self {
        Self { ok: false, detail }
    }
}

/// A component's check: called on each `/health` request, so it must be
/// cheap and must not block.
pub type HealthCheck = Arc<dyn Fn() -> ComponentHealth + Send + Sync>;

/// Named component checks.
pub(crate) type Components = Arc<Vec<(String, HealthCheck)>>;

/// The body and whether everything is ok.
pub(crate) async fn check<B: ColdBackend>(
    api: &Api<B>,
    pools: &Pools,
    components: &Components,
) -> (bool, Value) {
    let mut problems: Vec<String> = Vec::new();
    let stopping = api.shutdown.is_cancelled() || api.handle.is_shut_down();
    if stopping {
        problems.push("shutting down".to_owned());
    }
    let tip = api.handle.durable_tip();
    // A real read of the backend (the store's tip, never cached), then the
    // tip's header for its timestamp.
    let read = tokio::time::timeout(HEALTH_READ_TIMEOUT, async {
        api.handle.tip().await?;
        api.handle.header(tip.map_or(0, |t| t.number)).await
    })
    .await;
    let (backend_ok, timestamp) = match read {
        Ok(Ok(header)) => (true, header.map(|h| h.timestamp)),
        Ok(Err(e)) => {
            problems.push(format!("backend: {e}"));
            (false, None)
        }
        Err(_) => {
            problems.push(format!(
                "backend: a read did not finish within {}s",
                HEALTH_READ_TIMEOUT.as_secs_f64()
            ));
            (false, None)
        }
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let lag = timestamp.map_or(0, |t| now.saturating_sub(t));

    let limits = &pools.limits;
    let http_free = pools.http.available_permits();
    let ws_free = pools.ws.available_permits();
    let budget_used = pools.budget_used();
    if http_free == 0 {
        problems.push("saturated: every HTTP request slot is taken".to_owned());
    }
    if ws_free == 0 {
        problems.push("saturated: every WebSocket slot is taken".to_owned());
    }
    if budget_used > limits.memory_budget / 10 * 9 {
        problems.push("saturated: the memory budget is over 90% used".to_owned());
    }
    let write_failure = api.handle.last_unobserved_write_failure().map(|f| {
        let ago = SystemTime::now().duration_since(f.at).unwrap_or_default();
        if ago < UNOBSERVED_WRITE_FAILURE_WINDOW {
            problems.push(format!(
                "writes: a queued {} ({}) failed {}s ago with nobody waiting for it: {}",
                f.op,
                f.target,
                ago.as_secs(),
                f.error
            ));
        }
        json!({
            "op": f.op,
            "target": f.target.to_string(),
            "error": f.error,
            "secondsAgo": ago.as_secs(),
        })
    });
    let mut parts = serde_json::Map::new();
    for (name, check) in components.iter() {
        let health = check();
        if !health.ok {
            problems.push(format!("{name}: not ok"));
        }
        parts.insert(name.clone(), json!({ "ok": health.ok, "detail": health.detail }));
    }
    let ok = problems.is_empty();
    let body = json!({
        "status": if stopping { "shutting down" } else if ok { "ok" } else { "unhealthy" },
        "reasons": problems,
        "tip": tip.map(|t| t.number),
        "tipHash": tip.map(|t| t.hash),
        "lagSeconds": lag,
        "backend": api.config.backend_name,
        "backendOk": backend_ok,
        "chainId": api.config.chain_id,
        "httpSlotsFree": http_free,
        "wsSlotsFree": ws_free,
        "memoryBudgetUsed": budget_used,
        "memoryBudget": limits.memory_budget,
        "lastUnobservedWriteFailure": write_failure,
        "components": parts,
    });
    (ok, body)
}
