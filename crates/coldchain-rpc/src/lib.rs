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
//! | `eth_getBlockByNumber`, `eth_getBlockByHash` | the block with hashes or full transactions (with `size`, `uncles`, `withdrawals`), or `null` |
//! | `eth_getUncleByBlockNumberAndIndex` / `ByBlockHashAndIndex` | the uncle header as a block (geth's form), or `null` |
//! | `eth_getUncleCountByBlockNumber` / `ByBlockHash` | a quantity, or `null` |
//! | `debug_getRawHeader`, `debug_getRawBlock` | the header's or the whole block's RLP, or `null` |
//! | `eth_getBlockTransactionCountByNumber` / `ByHash` | a quantity, or `null` |
//! | `eth_getTransactionByHash`, `eth_getTransactionByBlockNumberAndIndex` / `ByBlockHashAndIndex` | the transaction, or `null` |
//! | `eth_getTransactionReceipt` | the receipt, or `null` |
//! | `eth_getBlockReceipts` | the block's receipts (`[]` for a block without transactions), or `null` |
//! | `eth_getLogs` | matching logs ordered by block, transaction and log index |
//! | `eth_getRawTransactionByHash`, `eth_getRawTransactionByBlockHashAndIndex` / `ByBlockNumberAndIndex`, `debug_getRawTransaction` | the transaction's EIP-2718 bytes, or `null` ([`raw`]) |
//! | `debug_getRawReceipts` | the block's receipts as EIP-2718 bytes, or `null` ([`raw`]) |
//! | `eth_getHeaderByNumber`, `eth_getHeaderByHash` | the block object's header fields with `hash` (geth's shape), or `null` ([`raw`]) |
//! | `eth_feeHistory` | base fees, gas used ratios, blob base fees, blob gas used ratios and reward percentiles, as geth computes them ([`fees`]) |
//! | `eth_blobBaseFee` | the blob base fee of the block after the tip, or `null` before Cancun ([`fees`]) |
//! | `eth_newFilter`, `eth_newBlockFilter`, `eth_getFilterChanges`, `eth_getFilterLogs`, `eth_uninstallFilter` | polling filters, held by the server that made them ([`filters`]) |
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
//!   {from, to, limit}` (Infura's shape, which viem and ponder parse). The
//!   limit applies at block boundaries: a block's logs are never split, and
//!   the first matching block comes back whole however many logs it has (so
//!   a one-block query always answers, and a client that splits ranges
//!   reaches every block). The suggested range is the longest one from
//!   `fromBlock` that fits, found by the scan that hit the limit;
//! - an unknown `blockHash`: `-32000 "unknown block"` (geth);
//! - an empty store: `[]`.
//!
//! # Limits and errors
//!
//! See [`Limits`] for every limit and its default, and [`error`] for the
//! codes. A call that runs past [`Limits::request_timeout`] (or a store read
//! past its own deadline) is `-32002 "request timed out"`. Oversized bodies
//! get HTTP 413, an oversized batch `-32600`, an answer above the response
//! limit `-32008`; malformed or truncated JSON `-32700` (HTTP 400, as
//! jsonrpsee and reth answer). A call that panics is `-32603 "internal error
//! (panic)"` for that call alone (the rest of its batch and its connection go
//! on), logged as one ERROR line without a backtrace.
//!
//! A request whose `id` is an object, an array or a boolean is `-32600` with
//! `id: null` over HTTP (geth's answer; the server reads the body first). Over
//! WebSocket it gets no answer: jsonrpsee's WebSocket loop takes a message
//! whose `id` does not parse for a notification, and JSON-RPC 2.0 forbids
//! answering a notification; the middleware cannot tell the two apart (a
//! notification reaches it without the `id` member), and the loop offers no
//! hook before parsing. Real clients send numbers or strings.
//!
//! Memory is bounded while work runs:
//! - a batch answers its calls 16 at a time, in order, and stops filling
//!   once its answers pass [`Limits::max_batch_response`] (25 MB): the calls
//!   not answered get `-32003 "response too large"`, as geth answers; a
//!   batch as a whole has [`Limits::request_timeout`], past which the calls
//!   not answered get `-32002`;
//! - every answer is charged to a server-wide [`Limits::memory_budget`]
//!   (256 MiB) until its connection's socket has taken its bytes; an answer
//!   that does not fit is replaced by `-32005 "server is busy: memory budget
//!   exhausted, try again later"`;
//! - one connection may leave [`Limits::max_connection_pending`] (32 MiB)
//!   of answers unread; when another answer is ready past it (a client that
//!   sends but does not read) the connection is closed at the TCP level (a close frame could not reach a
//!   client that does not read) and its calls still waiting answer `-32005`.
//!   A connection runs at most 16 calls at once;
//! - a subscription whose client does not take a notification within
//!   [`Limits::subscription_send_timeout`] ends with an error notification
//!   ([`pubsub`]); a connection buffers [`Limits::ws_buffer`] messages.
//!
//! Connections are fair:
//! - at most [`Limits::max_connections`] TCP connections, and
//!   [`Limits::max_connections_per_ip`] (32) from one address; more are
//!   closed at once (with HTTP 429 if the socket takes it);
//! - HTTP requests being read or answered take a slot of
//!   [`Limits::max_http_requests`] (400); WebSocket connections one of
//!   [`Limits::max_ws_connections`] (100), a separate pool, so that neither
//!   kind can starve the other; a full pool answers HTTP 429;
//! - a request's headers must arrive within [`Limits::header_read_timeout`]
//!   (also the idle keep-alive time), its body within
//!   [`Limits::body_read_timeout`] (else HTTP 408 and the connection
//!   closes); a WebSocket is pinged every [`Limits::ws_ping_interval`] and
//!   closed when it sends nothing, pongs included, for
//!   [`Limits::ws_idle_timeout`].
//!
//! `Host` and `Origin` are checked as geth does: an HTTP request's `Host`
//! against [`RpcConfig::http_vhosts`] (default `localhost`; an IP address is
//! always allowed; others get HTTP 403), a browser's WebSocket `Origin` against
//! [`RpcConfig::ws_origins`] (default `localhost`; no `Origin` is allowed),
//! and CORS is answered (preflight `OPTIONS` too) for
//! [`RpcConfig::http_cors_domains`] (default none).
//!
//! # Health and metrics
//!
//! `GET /health` (the same as `GET /health/ready`) answers JSON with the
//! status, the reasons when not ok, the tip, the lag of its timestamp behind
//! the wall clock, the backend's name and whether a real read of it
//! succeeded within 2 s, the chain id, the free HTTP and WebSocket slots, the
//! memory budget used, and each component added with
//! [`RpcServer::with_health_component`]. It answers 503 when the backend
//! read fails or times out, a pool is full, the memory budget is over 90%
//! used, a component is not ok, or the server is stopping. `GET
//! /health/live` answers 200 while the server runs ([`health`]).
//! `GET /metrics` renders the Prometheus handle given to
//! [`RpcServer::with_prometheus`]: the store's metrics and
//! `coldchain_rpc_requests_total{method,status}`,
//! `coldchain_rpc_request_duration_seconds{method}`,
//! `coldchain_rpc_subscriptions{kind}`,
//! `coldchain_rpc_notifications_total{kind}`,
//! `coldchain_rpc_refused_total{reason}` (connections and requests turned
//! away: `per_ip`, `connections`, `http_slots`, `ws_slots`, `vhost`,
//! `origin`, `body_timeout`),
//! `coldchain_rpc_shed_total{reason}` (answers and subscriptions dropped:
//! `memory_budget`, `slow_client`, `slow_subscriber`).
//!
//! # Known differences from a node
//!
//! - Blocks: `totalDifficulty` is never sent (see [`convert`]).
//! - Receipts carry no top-level `blockTimestamp` (geth and reth do not);
//!   logs and transactions do.
//! - No pending block, no state (`eth_call`, balances, ...), no
//!   `newPendingTransactions` subscription or pending-transaction filter.
//! - Filters live in the memory of the server that made them: behind a load
//!   balancer over several servers of one PostgreSQL store, a client must
//!   poll the server that made its filter ([`filters`]).
//! - An unknown block's `debug_getRawHeader` and `debug_getRawBlock` are
//!   `null`; geth answers `"0x"` for an unknown number and the error
//!   `header #… not found` / `block #… not found` for an unknown hash
//!   (internal/ethapi/api.go, `DebugAPI.GetRawHeader`/`GetRawBlock`).
//! - Missing raw transactions are `null` (geth answers `"0x"`), and
//!   `eth_blobBaseFee` is the next block's blob base fee (geth answers the
//!   tip's own) ([`raw`], [`fees`]).

mod blocks;
mod body;
pub mod config;
mod conn;
pub mod convert;
pub mod error;
mod eth;
pub mod fees;
pub mod filters;
pub mod health;
pub mod ids;
mod middleware;
mod panics;
pub mod params;
pub mod pubsub;
pub mod raw;
#[cfg(feature = "test-utils")]
pub mod testing;

pub use config::{Limits, RpcConfig};
pub use health::{ComponentHealth, HealthCheck};
pub use ids::HexIdProvider;
pub use metrics_exporter_prometheus::PrometheusHandle;

use coldchain::{ColdBackend, ColdStorage};
use conn::{ConnService, Pools};
use eth::Api;
use jsonrpsee::{
    RpcModule,
    server::{
        BatchRequestConfig, PingConfig, Server, ServerConfig, ServerHandle,
        middleware::rpc::RpcServiceBuilder, stop_channel,
    },
};
use middleware::{HttpExtrasLayer, HttpSettings, RpcMiddleware, RpcMiddlewareConfig};
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
pub struct RpcServer<B> {
    handle: ColdStorage<B>,
    config: RpcConfig,
    prometheus: Option<PrometheusHandle>,
    components: Vec<(String, HealthCheck)>,
}

impl<B: std::fmt::Debug> std::fmt::Debug for RpcServer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.components.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("RpcServer")
            .field("handle", &self.handle)
            .field("config", &self.config)
            .field("components", &names)
            .finish_non_exhaustive()
    }
}

impl<B: ColdBackend> RpcServer<B> {
    /// A server over `handle`.
    pub fn new(handle: ColdStorage<B>, config: RpcConfig) -> Self {
        Self { handle, config, prometheus: None, components: Vec::new() }
    }

    /// Adds a component to `/health`: `check` runs on each request (it must
    /// be cheap and must not block), and a component that is not ok makes
    /// `/health` answer 503 naming it. See [`health`].
    pub fn with_health_component(mut self, name: impl Into<String>, check: HealthCheck) -> Self {
        self.components.push((name.into(), check));
        self
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
        let settings = Arc::new(HttpSettings {
            vhosts: self.config.http_vhosts.clone(),
            ws_origins: self.config.ws_origins.clone(),
            cors_domains: self.config.http_cors_domains.clone(),
        });
        let api = Arc::new(Api::new(self.handle, self.config));
        let shutdown = api.shutdown.clone();
        let mut module = RpcModule::from_arc(api.clone());
        eth::register(&mut module)?;
        blocks::register(&mut module)?;
        pubsub::register(&mut module)?;
        let methods: HashSet<&'static str> = module.method_names().collect();
        let pools = Pools::new(limits);
        let rpc_config = RpcMiddlewareConfig {
            timeout: limits.request_timeout,
            max_response_body: limits.max_response_body as usize,
            max_batch_response: limits.max_batch_response as usize,
            methods: Arc::new(methods),
            pools: pools.clone(),
        };
        let rpc_middleware = RpcServiceBuilder::new()
            .layer_fn(move |inner| RpcMiddleware { inner, config: rpc_config.clone() });
        let http_middleware = tower::ServiceBuilder::new()
            .layer(HttpExtrasLayer {
                api: api.clone(),
                prometheus: self.prometheus,
                pools: pools.clone(),
                components: Arc::new(self.components),
                settings,
            })
            .layer(body::BodyLayer { max: limits.max_request_body });
        let ping = PingConfig::new()
            .ping_interval(limits.ws_ping_interval)
            .inactive_limit(limits.ws_idle_timeout);
        let server_config = ServerConfig::builder()
            .max_request_body_size(limits.max_request_body)
            .max_response_body_size(limits.max_response_body)
            .max_subscriptions_per_connection(limits.max_subscriptions_per_connection)
            .set_batch_request_config(BatchRequestConfig::Limit(limits.max_batch))
            .set_message_buffer_capacity(limits.ws_buffer)
            .set_id_provider(HexIdProvider::default())
            .enable_ws_ping(ping)
            .build();
        // Connections are limited by our own accept loop and slot pools
        // ([`conn`]), not by jsonrpsee's guard.
        let service_builder = Server::builder()
            .set_config(server_config)
            .set_rpc_middleware(rpc_middleware)
            .set_http_middleware(http_middleware)
            .to_service_builder()
            .max_connections(u32::MAX);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local_addr =
            listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let (stop_handle, server) = stop_channel();
        let stop = CancellationToken::new();
        let body_timeout = limits.body_read_timeout;
        let accept = conn::accept_loop(listener, pools, stop.clone(), move |ctx| ConnService {
            inner: service_builder.clone().build(module.clone(), stop_handle.clone()),
            ctx,
            body_timeout,
        });
        let accepting = tokio::spawn(accept);
        Ok(RunningServer { local_addr, server, shutdown, stop, accepting: Some(accepting) })
    }
}

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    server: ServerHandle,
    shutdown: CancellationToken,
    stop: CancellationToken,
    accepting: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, ends subscriptions, and waits up to
    /// `grace` for calls in flight to be answered. Returns whether every
    /// connection closed in time. Does not shut the store's handle down.
    pub async fn stop(mut self, grace: Duration) -> bool {
        self.shutdown.cancel();
        self.stop.cancel();
        // Already stopped is fine.
        let _ = self.server.stop();
        let accepting = self.accepting.take();
        tokio::time::timeout(grace, async move {
            if let Some(task) = accepting {
                let _ = task.await;
            }
            self.server.stopped().await
        })
        .await
        .is_ok()
    }

    /// Resolves when the server has stopped.
    pub async fn stopped(&self) {
        self.server.clone().stopped().await
    }
}
