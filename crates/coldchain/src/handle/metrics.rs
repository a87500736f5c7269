//! Metric names, in one place. Values go through the `metrics` facade; install
//! any recorder (the server installs a Prometheus one).

/// Reads running in the backend now (gauge).
pub const READS_IN_FLIGHT: &str = "coldchain_reads_in_flight";
/// Time spent waiting for a read permit, seconds (histogram).
pub const PERMIT_WAIT: &str = "coldchain_permit_wait_seconds";
/// Latency per operation, seconds, label `op` (histogram).
pub const OP_LATENCY: &str = "coldchain_op_seconds";
/// Errors by operation and kind, labels `op`, `kind` (counter).
pub const ERRORS: &str = "coldchain_errors_total";
/// Timeouts by operation, label `op` (counter).
pub const TIMEOUTS: &str = "coldchain_timeouts_total";
/// Writes refused because the queue was full (counter).
pub const BACKPRESSURE: &str = "coldchain_backpressure_total";
/// Cache hits and misses, label `result` = `hit` | `miss` (counter).
pub const CACHE: &str = "coldchain_cache_lookups_total";
/// Lifetime of log streams, seconds (histogram).
pub const STREAM_LIFETIME: &str = "coldchain_stream_lifetime_seconds";
/// Open log streams (gauge).
pub const STREAMS_OPEN: &str = "coldchain_streams_open";
/// Queued writes that failed while nobody awaited their result (counter;
/// see `ColdStorage::last_unobserved_write_failure`).
pub const UNOBSERVED_WRITE_FAILURES: &str = "coldchain_unobserved_write_failures_total";
/// The durable tip's block number (gauge).
pub const DURABLE_TIP: &str = "coldchain_durable_tip";

pub(crate) fn record_outcome<T>(
    op: &'static str,
    started: tokio::time::Instant,
    r: &Result<T, crate::ColdError>,
) {
    metrics::histogram!(OP_LATENCY, "op" => op).record(started.elapsed().as_secs_f64());
    if let Err(e) = r {
        metrics::counter!(ERRORS, "op" => op, "kind" => e.kind()).increment(1);
        if matches!(e, crate::ColdError::Timeout { .. }) {
            metrics::counter!(TIMEOUTS, "op" => op).increment(1);
        }
    }
}

pub(crate) fn cache_lookup(hit: bool) {
    metrics::counter!(CACHE, "result" => if hit { "hit" } else { "miss" }).increment(1);
}
