//! `/health` and `/metrics` on the JSON-RPC port.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use coldchain::{ColdStorage, MemBackend};
use coldchain_client::HttpClient;
use coldchain_rpc::{RpcConfig, RpcServer};
use common::{chain, get};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn health_and_metrics() {
    let prometheus = PrometheusBuilder::new().install_recorder().unwrap();
    let handle = ColdStorage::new(MemBackend::new()).await.unwrap();
    let blocks = chain(0, 4);
    handle.append_blocks(blocks.clone()).await.unwrap();
    let config = RpcConfig { backend_name: "mem".into(), chain_id: 5, ..RpcConfig::default() };
    let server = RpcServer::new(handle.clone(), config)
        .with_prometheus(prometheus)
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr();

    let (head, body) = get(addr, "/health").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["tip"], 3);
    assert_eq!(health["tipHash"], json!(blocks[3].hash()));
    assert_eq!(health["backend"], "mem");
    assert_eq!(health["chainId"], 5);
    assert!(health["lagSeconds"].as_u64().is_some());

    let client = HttpClient::new(&format!("http://{addr}")).unwrap();
    let _: Value = client.call("eth_getBlockByNumber", json!(["0x1", true])).await.unwrap();
    let (head, body) = get(addr, "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain"), "{head}");
    assert!(
        body.contains(
            r#"coldchain_rpc_requests_total{method="eth_getBlockByNumber",status="ok"} 1"#
        ),
        "{body}"
    );
    assert!(body.contains("coldchain_rpc_request_duration_seconds"), "{body}");
    assert!(body.contains("coldchain_durable_tip 3"), "the store's own metrics too: {body}");

    // Other GET paths still go to jsonrpsee (which only takes POST).
    let (head, _) = get(addr, "/other").await;
    assert!(!head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(server.stop(Duration::from_secs(5)).await);
    handle.shutdown().await;
}
