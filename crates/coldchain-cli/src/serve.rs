//! `coldchain serve`: Ethereum JSON-RPC over the store (HTTP and WebSocket on
//! one port, `/health`, `/metrics`), with graceful shutdown on SIGINT and
//! SIGTERM: the listener closes, subscriptions end, calls in flight are
//! answered within their deadline, the store's handle shuts down, and the
//! process exits 0.
//!
//! `eth_chainId` and `net_version` answer the chain id the store records
//! (see [`crate::chain_id`]); `--chain-id` must agree with it.
//!
//! `--dev` loads the reference chain W1 (300 blocks of 150 transactions by
//! default) into an empty store first, then prints example requests with
//! real numbers and hashes. `--import-rpc URL` copies a node's chain first
//! (see `coldchain import rpc`), and with `--follow` keeps importing while
//! serving, which drives subscriptions from a live node.

use crate::{
    import::{RpcRange, import_rpc, rpc::follow_rpc},
    store::{OnBackend, StoreSpec, run_on},
    synth::load_w1,
};
use alloy::primitives::B256;
use coldchain::{ColdBackend, ColdStorage, HeaderSpec, LogFilter};
use coldchain_rpc::{Limits, RpcConfig, RpcServer};
use coldchain_w1::{W1, W1Params};
use eyre::{Result, WrapErr};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::{net::SocketAddr, time::Duration};
use tokio_util::sync::CancellationToken;

/// Arguments of `coldchain serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The store: a path (embedded), `postgres://...`, or `mem`. Default
    /// `./coldchain-data` (the embedded store, created if missing).
    #[arg(long)]
    pub store: Option<StoreSpec>,
    /// Where to serve HTTP and WebSocket (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8545")]
    pub addr: SocketAddr,
    /// The chain id the store must hold: `eth_chainId` and `net_version`
    /// answer the store's recorded chain id, and a --chain-id that disagrees
    /// is refused. For a store that records none (written before chain ids
    /// were recorded) it is the id answered (default 1); record one with
    /// `coldchain chain-id --set`.
    #[arg(long)]
    pub chain_id: Option<u64>,
    /// Open the store read-only: MDBX read-only, or PostgreSQL sessions
    /// with `default_transaction_read_only` (chosen by itself for an
    /// embedded store whose directory cannot be written).
    #[arg(long, conflicts_with_all = ["dev", "import_rpc"])]
    pub read_only: bool,
    /// Load the W1 chain into an empty store, then print example requests.
    #[arg(long)]
    pub dev: bool,
    /// Blocks of the `--dev` chain.
    #[arg(long, default_value_t = 300)]
    pub dev_blocks: u64,
    /// Transactions per block of the `--dev` chain.
    #[arg(long, default_value_t = 150)]
    pub dev_txs_per_block: u64,
    /// Import from this node's JSON-RPC (http://) before serving.
    #[arg(long)]
    pub import_rpc: Option<String>,
    #[command(flatten)]
    pub import: RpcRange,
    /// Host names an HTTP request's Host header may name, comma-separated (geth's
    /// --http.vhosts); an IP address is always allowed, `*` allows any.
    #[arg(long, value_delimiter = ',', default_value = "localhost")]
    pub http_vhosts: Vec<String>,
    /// Origins a browser's WebSocket may come from, comma-separated (geth's
    /// --ws.origins): full origins, host names, or `*`. Clients that send
    /// no Origin (not browsers) are always allowed.
    #[arg(long, value_delimiter = ',', default_value = "localhost")]
    pub ws_origins: Vec<String>,
    /// Origins that may call over HTTP from a browser, comma-separated
    /// (geth's --http.corsdomain); they get CORS headers. Default: none.
    #[arg(long, value_delimiter = ',')]
    pub http_corsdomain: Vec<String>,
    #[command(flatten)]
    pub limits: Box<LimitArgs>,
}

/// Limits of the server; see `coldchain_rpc::Limits` for the defaults'
/// sources.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Most blocks per eth_getLogs range (0: no limit).
    #[arg(long, default_value_t = Limits::default().max_block_range)]
    pub max_block_range: u64,
    /// Most logs per eth_getLogs answer, counted at block boundaries: the
    /// first matching block always comes back whole.
    #[arg(long, default_value_t = Limits::default().max_logs)]
    pub max_logs: usize,
    /// Most addresses, and most topics per position, in a filter.
    #[arg(long, default_value_t = Limits::default().max_filter_values)]
    pub max_filter_values: usize,
    /// Most calls per batch.
    #[arg(long, default_value_t = Limits::default().max_batch)]
    pub max_batch: u32,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = Limits::default().max_request_body)]
    pub max_request_body: u32,
    /// Largest response body, bytes.
    #[arg(long, default_value_t = Limits::default().max_response_body)]
    pub max_response_body: u32,
    /// A batch stops filling once its answers pass this many bytes (the
    /// rest answer -32003 "response too large", as geth).
    #[arg(long, default_value_t = Limits::default().max_batch_response)]
    pub max_batch_response: u32,
    /// Bytes of answers the server holds at once (computed, not yet
    /// written); calls past it answer -32005.
    #[arg(long, default_value_t = Limits::default().memory_budget)]
    pub memory_budget: u64,
    /// Bytes of answers one connection may leave unread; a client past it
    /// when another answer is ready is taken to not read and is closed.
    #[arg(long, default_value_t = Limits::default().max_connection_pending)]
    pub max_connection_pending: u32,
    /// Most open TCP connections (HTTP and WebSocket).
    #[arg(long, default_value_t = Limits::default().max_connections)]
    pub max_connections: u32,
    /// Most open connections from one IP address.
    #[arg(long, default_value_t = Limits::default().max_connections_per_ip)]
    pub max_connections_per_ip: u32,
    /// Most HTTP requests read or answered at once (HTTP 429 past it).
    #[arg(long, default_value_t = Limits::default().max_http_requests)]
    pub max_http_requests: u32,
    /// Most open WebSocket connections (a separate pool from HTTP).
    #[arg(long, default_value_t = Limits::default().max_ws_connections)]
    pub max_ws_connections: u32,
    /// Time to send a request's headers (and idle keep-alive time), seconds.
    #[arg(long, default_value_t = Limits::default().header_read_timeout.as_secs_f64())]
    pub header_read_timeout: f64,
    /// Time to send a request's body, seconds (HTTP 408 past it).
    #[arg(long, default_value_t = Limits::default().body_read_timeout.as_secs_f64())]
    pub body_read_timeout: f64,
    /// WebSocket ping interval, seconds.
    #[arg(long, default_value_t = Limits::default().ws_ping_interval.as_secs_f64())]
    pub ws_ping_interval: f64,
    /// A WebSocket client silent (no message, no pong) this long is
    /// disconnected, seconds.
    #[arg(long, default_value_t = Limits::default().ws_idle_timeout.as_secs_f64())]
    pub ws_idle_timeout: f64,
    /// Most subscriptions per WebSocket connection.
    #[arg(long, default_value_t = Limits::default().max_subscriptions_per_connection)]
    pub max_subscriptions: u32,
    /// Most polling filters (`eth_newFilter`, `eth_newBlockFilter`) held at
    /// once; a filter lives on the server that made it.
    #[arg(long, default_value_t = Limits::default().max_filters)]
    pub max_filters: usize,
    /// A filter not polled by `eth_getFilterChanges` this long is removed,
    /// seconds.
    #[arg(long, default_value_t = Limits::default().filter_timeout.as_secs_f64())]
    pub filter_timeout: f64,
    /// Deadline of one call, and of a batch as a whole, seconds.
    #[arg(long, default_value_t = Limits::default().request_timeout.as_secs_f64())]
    pub request_timeout: f64,
    /// Deadline of one store read, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub read_timeout: f64,
}

impl LimitArgs {
    fn limits(&self) -> Result<Limits> {
        let secs = |name: &str, s: f64| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| eyre::eyre!("--{name} must be a positive number of seconds"))
        };
        Ok(Limits {
            max_block_range: self.max_block_range,
            max_logs: self.max_logs.max(1),
            max_filter_values: self.max_filter_values.max(1),
            max_batch: self.max_batch.max(1),
            max_request_body: self.max_request_body,
            max_response_body: self.max_response_body,
            max_batch_response: self.max_batch_response,
            memory_budget: self.memory_budget,
            max_connection_pending: self.max_connection_pending,
            max_connections: self.max_connections.max(1),
            max_connections_per_ip: self.max_connections_per_ip.max(1),
            max_http_requests: self.max_http_requests.max(1),
            max_ws_connections: self.max_ws_connections,
            header_read_timeout: secs("header-read-timeout", self.header_read_timeout)?,
            body_read_timeout: secs("body-read-timeout", self.body_read_timeout)?,
            ws_ping_interval: secs("ws-ping-interval", self.ws_ping_interval)?,
            ws_idle_timeout: secs("ws-idle-timeout", self.ws_idle_timeout)?,
            max_subscriptions_per_connection: self.max_subscriptions,
            request_timeout: secs("request-timeout", self.request_timeout)?,
            max_filters: self.max_filters.max(1),
            filter_timeout: secs("filter-timeout", self.filter_timeout)?,
            ..Limits::default()
        })
    }
}

/// Runs `coldchain serve`.
pub async fn run(args: ServeArgs) -> Result<()> {
    let store = args.store.clone().unwrap_or_else(|| StoreSpec::Path("./coldchain-data".into()));
    run_on(&store, Serve(args)).await
}

struct Serve(ServeArgs);

impl OnBackend for Serve {
    type Output = ();

    /// Only a server that writes (`--dev`, `--import-rpc`) creates a store.
    fn creates(&self) -> bool {
        self.0.dev || self.0.import_rpc.is_some()
    }

    fn read_only(&self) -> bool {
        self.0.read_only
    }

    async fn run<B: ColdBackend>(self, backend: B, store: &StoreSpec) -> Result<()> {
        let mut signals = Signals::install()?;
        let handle = ColdStorage::builder(backend)
            .read_timeout(read_timeout(&self.0.limits)?)
            .write_timeout(Duration::from_secs(300))
            .build()
            .await?;
        // Stops the `--follow` importer, wherever it is.
        let cancel = CancellationToken::new();
        let started = tokio::select! {
            r = start(self.0, &handle, store, &cancel) => r.map(Some),
            signal = signals.recv() => {
                tracing::info!(signal, "stopping before the server started");
                Ok(None)
            }
        };
        let result = match started {
            Ok(Some(running)) => {
                let signal = signals.recv().await;
                tracing::info!(signal, "shutting down: finishing calls in flight");
                // A second signal ends the process at once.
                tokio::spawn(async move {
                    signals.recv().await;
                    tracing::warn!("second signal: exiting now");
                    std::process::exit(130);
                });
                running.stop().await;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        cancel.cancel();
        handle.shutdown().await;
        tracing::info!("stopped");
        result
    }
}

fn read_timeout(limits: &LimitArgs) -> Result<Duration> {
    Duration::try_from_secs_f64(limits.read_timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| eyre::eyre!("--read-timeout must be a positive number of seconds"))
}

/// What runs until the first signal, and what to stop then.
struct Running {
    server: coldchain_rpc::RunningServer,
    cancel: CancellationToken,
    follower: Option<tokio::task::JoinHandle<()>>,
    upkeep: tokio::task::JoinHandle<()>,
    grace: Duration,
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        if let Some(follower) = self.follower {
            let _ = follower.await;
        }
        if !self.server.stop(self.grace).await {
            tracing::warn!(
                grace = ?self.grace,
                "some connections were still open after the grace period"
            );
        }
        self.upkeep.abort();
    }
}

/// Loads (`--dev`, `--import-rpc`) and starts the server.
async fn start<B: ColdBackend>(
    args: ServeArgs,
    handle: &ColdStorage<B>,
    store: &StoreSpec,
    cancel: &CancellationToken,
) -> Result<Running> {
    let limits = args.limits.limits()?;
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .wrap_err("installing the Prometheus recorder")?;
    // A --chain-id that disagrees with the store is refused before any write.
    let stored = handle.chain_id().await?;
    crate::chain_id::check_flag(stored, args.chain_id, store)?;
    let w1 = if args.dev {
        let w1 = W1::try_new(W1Params {
            blocks: args.dev_blocks,
            txs_per_block: args.dev_txs_per_block,
            ..W1Params::default()
        })?;
        if handle.tip().await?.is_none() {
            tracing::info!(blocks = args.dev_blocks, "--dev: loading the W1 chain");
            load_w1(handle, &w1, 100, true).await?;
        } else {
            tracing::info!("--dev: the store is not empty; serving it as it is");
        }
        Some(w1)
    } else {
        None
    };
    let mut follower = None;
    let mut follower_status = None;
    if let Some(url) = &args.import_rpc {
        let first = RpcRange { follow: false, ..args.import.clone() };
        let stats = import_rpc(handle, url, &first, true, cancel).await?;
        tracing::info!(url, blocks = stats.blocks, "imported from the node");
        if args.import.follow {
            let handle = handle.clone();
            let range = RpcRange { from: None, to: None, ..args.import.clone() };
            let (cancel, url) = (cancel.clone(), url.clone());
            // `/health` degrades while the follower cannot progress.
            let status = crate::import::rpc::FollowerStatus::new();
            follower_status = Some(status.clone());
            follower = Some(tokio::spawn(async move {
                // Retries every failure; only bad arguments end it.
                if let Err(e) = follow_rpc(&handle, &url, &range, &cancel, &status).await {
                    tracing::error!(error = %e, "following the node failed");
                }
            }));
        }
    }

    // What the loading recorded (W1's, the node's) is served.
    let chain_id = crate::chain_id::served(handle.chain_id().await?, args.chain_id, store)?;
    let backend_name = match store {
        StoreSpec::Mem => "mem",
        StoreSpec::Path(_) => "mdbx",
        StoreSpec::Postgres(_) => "postgres",
    };
    let config = RpcConfig {
        chain_id,
        backend_name: backend_name.to_owned(),
        limits,
        http_vhosts: args.http_vhosts.clone(),
        ws_origins: args.ws_origins.clone(),
        http_cors_domains: args.http_corsdomain.clone(),
        ..RpcConfig::default()
    };
    let mut server = RpcServer::new(handle.clone(), config).with_prometheus(prometheus.clone());
    if let Some(status) = follower_status {
        server = server.with_health_component(
            "follower",
            std::sync::Arc::new(move || {
                let (ok, detail) = status.health();
                coldchain_rpc::ComponentHealth { ok, detail }
            }),
        );
    }
    let server = server.start(args.addr).await?;
    let addr = server.local_addr();
    if let Some(w1) = &w1 {
        print_examples(handle, w1, addr).await;
    }
    let tip = handle.durable_tip();
    tracing::info!(
        "serving JSON-RPC on http://{addr} and ws://{addr} (store {store}, tip {}, chain id {chain_id})",
        tip.map_or_else(|| "none (empty store)".to_owned(), |t| format!("{} {}", t.number, t.hash)),
    );
    let upkeep = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            prometheus.run_upkeep();
        }
    });
    let grace = limits.request_timeout + Duration::from_secs(1);
    Ok(Running { server, cancel: cancel.clone(), follower, upkeep, grace })
}

/// SIGINT and SIGTERM handlers, installed before any work so that a signal
/// at any moment is a clean stop (never the default kill).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the next SIGINT or SIGTERM and names it.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
}

/// Prints requests that work on the `--dev` chain, with real numbers and
/// hashes from it.
async fn print_examples<B: ColdBackend>(handle: &ColdStorage<B>, w1: &W1, addr: SocketAddr) {
    let Some(tip) = handle.durable_tip() else { return };
    let url = format!("http://{addr}");
    let middle = w1.middle_block().min(tip.number);
    let mut tx_hash = B256::ZERO;
    if let Ok(Some(receipts)) = handle.block_receipts(HeaderSpec::Number(middle)).await
        && let Some(r) = receipts.iter().find(|r| !r.receipt.logs().is_empty())
    {
        tx_hash = r.tx_hash;
    }
    let hot = w1.hot_contract();
    let from = tip.number.saturating_sub(99);
    let count = handle
        .get_logs(LogFilter::range(from, tip.number).address(hot), usize::MAX)
        .await
        .map_or(0, |l| l.len());
    let call = |method: &str, params: &str| {
        format!(
            "curl -s {url} -H 'content-type: application/json' \
             -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"{method}\",\"params\":{params}}}'"
        )
    };
    let logs_params = format!(
        "[{{\"fromBlock\":\"{from:#x}\",\"toBlock\":\"{:#x}\",\"address\":\"{hot}\"}}]",
        tip.number
    );
    println!(
        "\nThe W1 dev chain: blocks {}..={}, tip {}",
        w1.numbers().start,
        tip.number,
        tip.hash
    );
    println!("Example requests (curl):");
    println!("  {}", call("eth_blockNumber", "[]"));
    println!("  {}", call("eth_getBlockByNumber", &format!("[\"{middle:#x}\",false]")));
    println!("  {}", call("eth_getTransactionByHash", &format!("[\"{tx_hash}\"]")));
    println!("  {}", call("eth_getTransactionReceipt", &format!("[\"{tx_hash}\"]")));
    println!("  {}", call("eth_getBlockReceipts", &format!("[\"{middle:#x}\"]")));
    println!("  {}   # {count} logs", call("eth_getLogs", &logs_params));
    println!("  curl -s {url}/health; curl -s {url}/metrics | head");
    println!("Example requests (cast, from Foundry):");
    println!("  cast block-number --rpc-url {url}");
    println!("  cast block {middle} --rpc-url {url}");
    println!("  cast tx {tx_hash} --rpc-url {url}");
    println!("  cast receipt {tx_hash} --rpc-url {url}");
    println!(
        "  cast logs --from-block {from} --to-block {} --address {hot} --rpc-url {url}",
        tip.number
    );
    println!(
        "Subscriptions: ws://{addr} with eth_subscribe [\"newHeads\"] or [\"logs\", {{...}}]\n"
    );
}
