//! Ethereum JSON-RPC over a coldchain store: HTTP and WebSocket on one port,
//! answering real clients as a real node does.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use coldchain::{ColdStorage, MemBackend};
//! use coldchain_rpc::{RpcConfig, RpcServer};
//!
//! let handle = ColdStorage::new(MemBackend::new()).await?;
//! let server = RpcServer::new(handle.clone(), RpcConfig::default())
//!     .start("127.0.0.1:8545".parse()?)
//!     .await?;
//! println!("serving on {}", server.local_addr());
//! server.stop(std::time::Duration::from_secs(10)).await;
//! handle.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Methods
//!
//! | method | answer |
//! |---|---|
//! | `web3_clientVersion` | `coldchain/v<version>/<os>-<arch>` |
//! | `net_version`, `eth_chainId` | the configured chain id (decimal string, hex quantity) |
//! | `eth_syncing` | `false` |
//! | `eth_blockNumber` | the durable tip (`0x0` for an empty store) |
//! | `eth_getBlockByNumber`, `eth_getBlockByHash` | the block with hashes or full transactions, or `null` |
//! | `eth_getBlockTransactionCountByNumber` / `ByHash` | a quantity, or `null` |
//! | `eth_getTransactionByHash`, `eth_getTransactionByBlockNumberAndIndex` / `ByBlockHashAndIndex` | the transaction, or `null` |
//! | `eth_getTransactionReceipt` | the receipt, or `null` |
//! | `eth_getBlockReceipts` | the block's receipts (`[]` for a block without transactions), or `null` |
//! | `eth_getLogs` | matching logs ordered by block, transaction and log index |
//! | `eth_subscribe` / `eth_unsubscribe` | `newHeads` and `logs` over WebSocket ([`pubsub`]) |
//!
//! Any other method is `-32601 "the method X does not exist/is not
//! available"`. Parameters follow geth's rules ([`params`]); objects are
//! alloy's RPC types ([`convert`] lists where a block differs from a node's).
//!
//! # Block tags: a history store's answers
//!
//! coldchain holds finalized history only, up to a durable tip. So `latest`,
//! `safe`, `finalized` and `pending` all name the durable tip (there is no
//! pending block and nothing less final than the tip), and `earliest` names
//! the first stored block, which is block 0 only when the store starts at
//! genesis. A number above the tip is `null` (unknown block); a number below
//! the first stored block is `4444 "pruned history unavailable"`, as geth
//! answers for expired history. Unknown hashes are `null`.
//!
//! # `eth_getLogs`
//!
//! The filter is `{fromBlock?, toBlock?, address?, topics?}` or `{blockHash,
//! address?, topics?}` (EIP-234); ends default to `latest`. Then, in order:
//! - `toBlock` above the tip: `-32602 "block range extends beyond current
//!   head block"` (geth, reth);
//! - `fromBlock` above `toBlock`: `-32602 "invalid block range params"`;
//! - more than [`Limits::max_block_range`] blocks: `-32602 "query exceeds max
//!   block range N"` with `data: {maxBlockRange, from, to}` naming the
//!   largest range that is allowed from `fromBlock`;
//! - `fromBlock` below the first stored block: `4444`;
//! - more than [`Limits::max_logs`] matches: `-32005 "query returned more
//!   than N results. Try with this block range [0xA, 0xB]."` with `data:
//!   {from, to, limit}` (Infura's shape, which viem and ponder parse); the
//!   range is the longest one from `fromBlock` that holds at most N matches;
//! - an unknown `blockHash`: `-32000 "unknown block"` (geth);
//! - an empty store: `[]`.
//!
//! # Limits and errors
//!
//! See [`Limits`] for every limit and its default, and [`error`] for the
//! codes. A call that runs past [`Limits::request_timeout`] (or a store read
//! past its own deadline) is `-32002 "request timed out"`. Oversized bodies
//! get HTTP 413, too many connections HTTP 429 (WebSocket: refused upgrade),
//! an oversized batch `-32600`, an answer above the response limit `-32008`;
//! malformed JSON `-32700` (HTTP 400, as jsonrpsee and reth answer).
//!
//! # Health and metrics
//!
//! `GET /health` answers JSON with the tip, the lag of its timestamp behind
//! the wall clock, the backend's name and the chain id (503 while stopping).
//! `GET /metrics` renders the Prometheus handle given to
//! [`RpcServer::with_prometheus`]: the store's metrics and
//! `coldchain_rpc_requests_total{method,status}`,
//! `coldchain_rpc_request_duration_seconds{method}`,
//! `coldchain_rpc_subscriptions{kind}`,
//! `coldchain_rpc_notifications_total{kind}`.
//!
//! # Known differences from a node
//!
//! - Blocks: `totalDifficulty` is never sent; `withdrawals`, `uncles` and
//!   `size` are left out when coldchain cannot know them (withdrawals are
//!   not stored; see [`convert`]).
//! - Receipts carry no top-level `blockTimestamp` (geth and reth do not);
//!   logs and transactions do.
//! - No pending block, no state (`eth_call`, balances, ...), no filters
//!   (`eth_newFilter`), no `newPendingTransactions` subscription.

pub mod config;
pub mod convert;
pub mod error;
mod eth;
pub mod ids;
mod middleware;
pub mod params;
pub mod pubsub;

pub use config::{Limits, RpcConfig};
pub use ids::HexIdProvider;
pub use metrics_exporter_prometheus::PrometheusHandle;

use coldchain::{ColdBackend, ColdStorage};
use eth::Api;
use jsonrpsee::{
    RpcModule,
    server::{
        BatchRequestConfig, Server, ServerConfig, ServerHandle, middleware::rpc::RpcServiceBuilder,
    },
};
use middleware::{HttpExtrasLayer, RpcMiddleware, RpcMiddlewareConfig};
use std::{collections::HashSet, net::SocketAddr, sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding the address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A method could not be registered (a bug).
    #[error("registering the methods failed: {0}")]
    Register(#[from] jsonrpsee::core::RegisterMethodError),
}

/// A JSON-RPC server over a [`ColdStorage`]; see the [crate docs](crate).
#[derive(Debug)]
pub struct RpcServer<B> {
    handle: ColdStorage<B>,
    config: RpcConfig,
    prometheus: Option<PrometheusHandle>,
}

impl<B: ColdBackend> RpcServer<B> {
    /// A server over `handle`.
    pub fn new(handle: ColdStorage<B>, config: RpcConfig) -> Self {
        Self { handle, config, prometheus: None }
    }

    /// Serves this Prometheus handle's rendering at `/metrics` (without one,
    /// `/metrics` is empty). The caller installs the recorder.
    pub fn with_prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.prometheus = Some(handle);
        self
    }

    /// Binds `addr` (port 0 picks a free port) and starts serving HTTP and
    /// WebSocket on it.
    pub async fn start(self, addr: SocketAddr) -> Result<RunningServer, StartError> {
        let limits = self.config.limits;
        let api = Arc::new(Api::new(self.handle, self.config));
        let shutdown = api.shutdown.clone();
        let mut module = RpcModule::from_arc(api.clone());
        eth::register(&mut module)?;
        pubsub::register(&mut module)?;
        let methods: HashSet<&'static str> = module.method_names().collect();
        let rpc_config = RpcMiddlewareConfig {
            timeout: limits.request_timeout,
            max_response_body: limits.max_response_body as usize,
            methods: Arc::new(methods),
        };
        let rpc_middleware = RpcServiceBuilder::new()
            .layer_fn(move |inner| RpcMiddleware { inner, config: rpc_config.clone() });
        let http_middleware = tower::ServiceBuilder::new()
            .layer(HttpExtrasLayer { api: api.clone(), prometheus: self.prometheus });
        let server_config = ServerConfig::builder()
            .max_request_body_size(limits.max_request_body)
            .max_response_body_size(limits.max_response_body)
            .max_connections(limits.max_connections)
            .max_subscriptions_per_connection(limits.max_subscriptions_per_connection)
            .set_batch_request_config(BatchRequestConfig::Limit(limits.max_batch))
            .set_message_buffer_capacity(limits.ws_buffer)
            .set_id_provider(HexIdProvider::default())
            .build();
        let server = Server::builder()
            .set_config(server_config)
            .set_rpc_middleware(rpc_middleware)
            .set_http_middleware(http_middleware)
            .build(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local_addr = server.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let server = server.start(module);
        Ok(RunningServer { local_addr, server, shutdown })
    }
}

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    server: ServerHandle,
    shutdown: CancellationToken,
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, ends subscriptions, and waits up to
    /// `grace` for calls in flight to be answered. Returns whether every
    /// connection closed in time. Does not shut the store's handle down.
    pub async fn stop(self, grace: Duration) -> bool {
        self.shutdown.cancel();
        // Already stopped is fine.
        let _ = self.server.stop();
        tokio::time::timeout(grace, self.server.stopped()).await.is_ok()
    }

    /// Resolves when the server has stopped.
    pub async fn stopped(&self) {
        self.server.clone().stopped().await
    }
}
