//! `/health` and a write that failed with nobody waiting for it (C13). A file
//! of its own: `health_metrics.rs` reads process-wide metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use coldchain::{ColdStorage, MemBackend};
use coldchain_rpc::{RpcConfig, RpcServer};
use common::{chain, get};
use serde_json::Value;
use std::time::Duration;

/// C13 on the server: a dispatched write that failed with nobody waiting for
/// it makes `/health` answer 503 and name it.
#[tokio::test]
async fn health_reports_a_dispatched_write_that_failed_unobserved() {
    let handle = ColdStorage::new(MemBackend::new()).await.unwrap();
    let blocks = chain(0, 4);
    handle.append_blocks(blocks[..2].to_vec()).await.unwrap();
    let server = RpcServer::new(handle.clone(), RpcConfig::default())
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr();
    let (head, _) = get(addr, "/health").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    // Block 3 does not extend tip 1: the dispatched append fails unawaited.
    drop(handle.dispatch_append_blocks(blocks[3..].to_vec()).unwrap());
    let mut waited = Duration::ZERO;
    while handle.last_unobserved_write_failure().is_none() {
        assert!(waited < Duration::from_secs(10), "the failure was never recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    let (head, body) = get(addr, "/health").await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["lastUnobservedWriteFailure"]["op"], "append_blocks", "{health}");
    let reasons = health["reasons"].to_string();
    assert!(reasons.contains("writes: a queued append_blocks"), "{reasons}");
    assert!(server.stop(Duration::from_secs(5)).await);
    handle.shutdown().await;
}
