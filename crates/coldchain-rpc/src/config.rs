//! Server settings and limits, with the defaults public nodes use.

use std::time::Duration;

/// Limits of the server. Every limit is configurable; the defaults follow
/// what public endpoints and node clients use (see the crate docs for the
/// sources of each number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most blocks one `eth_getLogs` range may span (`toBlock - fromBlock +
    /// 1`); 0 means no limit. Default 10,000 (QuickNode's paid cap; a range
    /// above it is `-32602 "query exceeds max block range N"`, reth's words).
    pub max_block_range: u64,
    /// Most logs in one `eth_getLogs` response, at block boundaries: the
    /// first matching block always comes back whole, however many logs it
    /// has. Default 10,000 (Infura and MetaMask); more is `-32005` with a
    /// block range that fits.
    pub max_logs: usize,
    /// Most addresses in a filter, and most topics in one topic position.
    /// Default 1,000 (geth's `--rpc.logquerylimit`).
    pub max_filter_values: usize,
    /// Most calls in one batch. Default 1,000 (geth's `BatchRequestLimit`).
    pub max_batch: u32,
    /// Largest request body in bytes. Default 5 MiB (geth's HTTP body limit).
    pub max_request_body: u32,
    /// Largest response body in bytes. Default 64 MiB.
    pub max_response_body: u32,
    /// Most open connections (HTTP and WebSocket together). Default 500
    /// (reth's `--rpc.max-connections`).
    pub max_connections: u32,
    /// Most subscriptions per WebSocket connection. Default 1,024 (reth).
    pub max_subscriptions_per_connection: u32,
    /// Deadline of one call, inside a batch too; the store's own read
    /// deadlines apply within it. Expiry is `-32002 "request timed out"`
    /// (geth's code). Default 10 s (Infura's per-query limit).
    pub request_timeout: Duration,
    /// Messages buffered per WebSocket connection before a subscription waits
    /// for the client. Default 1,024 (jsonrpsee's default).
    pub ws_buffer: u32,
    /// How long a subscription waits for a slow client to take a message
    /// before it gives up on that subscription. Default 30 s.
    pub subscription_send_timeout: Duration,
    /// How many recent blocks a `logs` subscription remembers, so that it can
    /// re-send their logs with `removed: true` when they are truncated.
    /// Default 256 blocks.
    pub reorg_window: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_block_range: 10_000,
            max_logs: 10_000,
            max_filter_values: 1_000,
            max_batch: 1_000,
            max_request_body: 5 * 1024 * 1024,
            max_response_body: 64 * 1024 * 1024,
            max_connections: 500,
            max_subscriptions_per_connection: 1_024,
            request_timeout: Duration::from_secs(10),
            ws_buffer: 1_024,
            subscription_send_timeout: Duration::from_secs(30),
            reorg_window: 256,
        }
    }
}

/// Settings of an [`crate::RpcServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcConfig {
    /// The chain id answered by `eth_chainId` and `net_version`.
    pub chain_id: u64,
    /// What `web3_clientVersion` answers.
    pub client_version: String,
    /// The backend's name, shown by `/health` (for example `mem` or `mdbx`).
    pub backend_name: String,
    /// Limits.
    pub limits: Limits,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            chain_id: 1,
            client_version: default_client_version(),
            backend_name: "unknown".to_owned(),
            limits: Limits::default(),
        }
    }
}

/// `coldchain/v<version>/<os>-<arch>`, in the shape geth uses
/// (`Geth/v1.16.0-stable/linux-amd64/go1.24`).
pub fn default_client_version() -> String {
    format!(
        "coldchain/v{}/{}-{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}
