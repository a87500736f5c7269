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
    /// A batch stops filling once its answers pass this many bytes: the
    /// calls not yet answered get `-32003 "response too large"` (geth's
    /// `BatchResponseMaxSize` and code). Default 25 MB (geth's).
    pub max_batch_response: u32,
    /// Bytes of answers the whole server may hold at once, computed but not
    /// yet written to their sockets. A call whose answer does not fit is
    /// `-32005 "server is busy: memory budget exhausted"`. Default 256 MiB.
    pub memory_budget: u64,
    /// Bytes of answers one connection may leave unread: when another
    /// answer is ready while more than this waits to be written, the client
    /// is taken to not read and is disconnected (one answer or batch of any
    /// size is fine). Default 32 MiB (above `max_batch_response`).
    pub max_connection_pending: u32,
    /// Most open TCP connections (HTTP and WebSocket together); more are
    /// closed at once. Default 1,000.
    pub max_connections: u32,
    /// Most open connections from one IP address; more are closed at once.
    /// Default 32.
    pub max_connections_per_ip: u32,
    /// Most HTTP requests being read or answered at once; more get HTTP 429.
    /// A separate pool from WebSocket connections, so neither starves the
    /// other. Default 400.
    pub max_http_requests: u32,
    /// Most open WebSocket connections; more upgrades get HTTP 429. Default
    /// 100.
    pub max_ws_connections: u32,
    /// Time a client has to send a request's headers (also how long an idle
    /// keep-alive connection stays open). Default 10 s.
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's whole body once its headers
    /// arrived; past it the answer is HTTP 408 and the connection closes.
    /// Default 10 s.
    pub body_read_timeout: Duration,
    /// How often the server pings a WebSocket client. Default 15 s.
    pub ws_ping_interval: Duration,
    /// A WebSocket client that neither sends a message nor answers a ping
    /// for this long is disconnected. Default 60 s.
    pub ws_idle_timeout: Duration,
    /// Most subscriptions per WebSocket connection. Default 1,024 (reth).
    pub max_subscriptions_per_connection: u32,
    /// Deadline of one call, and of a batch as a whole (calls of a batch
    /// not answered by then get the error); the store's own read deadlines
    /// apply within it. Expiry is `-32002 "request timed out"` (geth's code).
    /// Default 10 s (Infura's per-query limit).
    pub request_timeout: Duration,
    /// Messages buffered per WebSocket connection before a subscription waits
    /// for the client. Default 64.
    pub ws_buffer: u32,
    /// How long a subscription waits for a slow client to take a message
    /// before it gives up on that subscription. Default 30 s.
    pub subscription_send_timeout: Duration,
    /// How many recent blocks a `logs` subscription remembers, so that it can
    /// re-send their logs with `removed: true` when they are truncated.
    /// Default 256 blocks.
    pub reorg_window: usize,
    /// Most filters (`eth_newFilter`, `eth_newBlockFilter`) the server holds
    /// at once; one more is `-32005 "too many filters"`. Default 1,024.
    pub max_filters: usize,
    /// A filter not polled by `eth_getFilterChanges` for this long is
    /// removed. Default 5 minutes (geth's filter deadline).
    pub filter_timeout: Duration,
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
            max_batch_response: 25_000_000,
            memory_budget: 256 * 1024 * 1024,
            max_connection_pending: 32 * 1024 * 1024,
            max_connections: 1_000,
            max_connections_per_ip: 32,
            max_http_requests: 400,
            max_ws_connections: 100,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            ws_ping_interval: Duration::from_secs(15),
            ws_idle_timeout: Duration::from_secs(60),
            max_subscriptions_per_connection: 1_024,
            request_timeout: Duration::from_secs(10),
            ws_buffer: 64,
            subscription_send_timeout: Duration::from_secs(30),
            reorg_window: 256,
            max_filters: 1_024,
            filter_timeout: Duration::from_secs(5 * 60),
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
    /// Host names an HTTP request's `Host` may name (geth's
    /// `--http.vhosts`); a `Host` that is an IP address is always allowed,
    /// `*` allows any. Others get HTTP 403. Default `["localhost"]`.
    pub http_vhosts: Vec<String>,
    /// Origins a browser's WebSocket upgrade may come from (geth's
    /// `--ws.origins`): a full origin (`https://app.example`), a host name,
    /// or `*`. An upgrade without `Origin` (not a browser) is allowed.
    /// Default `["localhost"]`: pages served from localhost only.
    pub ws_origins: Vec<String>,
    /// Origins that may call over HTTP from a browser (geth's
    /// `--http.corsdomain`): matching requests get CORS headers, and
    /// preflight `OPTIONS` is answered. Default none (no CORS headers).
    pub http_cors_domains: Vec<String>,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            chain_id: 1,
            client_version: default_client_version(),
            backend_name: "unknown".to_owned(),
            limits: Limits::default(),
            http_vhosts: vec!["localhost".to_owned()],
            ws_origins: vec!["localhost".to_owned()],
            http_cors_domains: Vec::new(),
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
