//! `eth_subscribe` / `eth_unsubscribe` over WebSocket: `newHeads` and
//! `logs`, driven by the handle's durable-tip watch (no polling).
//!
//! A subscription starts at the tip it sees when it is accepted (no
//! backfill, as in geth). Each time the tip moves it walks the new blocks in
//! order: `newHeads` sends each header (with its hash, no size), `logs` sends
//! each matching log of each block as its own notification.
//!
//! Truncation: a subscription remembers the blocks it walked (at most
//! [`crate::Limits::reorg_window`] blocks and [`crate::Limits::max_logs`] of
//! their matching logs). When the tip goes below one of them, or the store
//! holds another block at its height, the subscription re-sends that block's
//! logs with `"removed": true` (oldest block first, as geth does), then the
//! logs of the blocks that replaced it. A reorg deeper than what it remembers
//! is followed from the new blocks on without the older removals.
//!
//! Parameters: `["newHeads"]`, or `["logs", filter?]` where the filter takes
//! `address` and `topics` as in `eth_getLogs` (`fromBlock`/`toBlock` are
//! ignored, `blockHash` is refused). Other names (`newPendingTransactions`,
//! `syncing`) are `-32601 "no \"X\" subscription in eth namespace"` (geth's
//! words). Ids are `0x` + 32 hex digits ([`crate::HexIdProvider`]).
//! `eth_unsubscribe` answers `true`, or `false` for an unknown id (geth
//! answers an error there). Over HTTP, `eth_subscribe` is `-32601
//! "notifications not supported"`, as in geth.
//!
//! A client too slow to take a notification within
//! [`crate::Limits::subscription_send_timeout`] loses the subscription, and
//! is told so by a last notification with an error instead of a result:
//! `{"method":"eth_subscription","params":{"subscription":ID,"error":
//! {"code":-32005,"message":"subscription dropped: ..."}}}` (delivered once
//! the client reads again). A closed connection or the server's shutdown
//! ends a subscription at once.

use crate::{
    convert::header_rpc,
    error::{INVALID_PARAMS, RpcResult, error, invalid_params},
    eth::Api,
    middleware::LIMIT_EXCEEDED,
    params::{Args, FilterParams},
};
use alloy::eips::BlockNumHash;
use coldchain::{ColdBackend, ColdError, LogFilter, RpcLog, SealedHeader};
use jsonrpsee::{
    RpcModule, SubscriptionMessage, SubscriptionSink,
    core::{RegisterMethodError, SubscriptionError},
    server::SendTimeoutError,
};
use serde::Serialize;
use std::{collections::VecDeque, future::Future, sync::Arc, time::Duration};

/// What a subscription or filter follows.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    NewHeads,
    Logs(LogFilter),
}

impl Kind {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::NewHeads => "newHeads",
            Self::Logs(_) => "logs",
        }
    }
}

fn parse(raw: Option<&str>, max_values: usize) -> RpcResult<Kind> {
    let args = Args::parse(raw, 2)?;
    match args.string(0)? {
        "newHeads" => {
            if args.optional(1).is_some() {
                return Err(invalid_params("newHeads takes no filter"));
            }
            Ok(Kind::NewHeads)
        }
        "logs" => {
            let FilterParams { block_hash, addresses, topics, .. } =
                args.filter(1, true, max_values)?;
            if block_hash.is_some() {
                return Err(invalid_params("a logs subscription cannot take blockHash"));
            }
            // fromBlock/toBlock are ignored: a subscription follows new blocks.
            Ok(Kind::Logs(LogFilter { addresses, topics, ..Default::default() }))
        }
        other => Err(error(
            // geth answers an unknown subscription name with -32601.
            crate::error::METHOD_NOT_FOUND,
            format!("no {other:?} subscription in eth namespace"),
        )),
    }
}

/// Registers `eth_subscribe` and `eth_unsubscribe`.
pub(crate) fn register<B: ColdBackend>(
    module: &mut RpcModule<Api<B>>,
) -> Result<(), RegisterMethodError> {
    module.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        |params, pending, api, _| async move {
            let kind = match parse(params.as_str(), api.config.limits.max_filter_values) {
                Ok(kind) => kind,
                Err(e) => {
                    pending.reject(e).await;
                    return Ok(());
                }
            };
            if api.shutdown.is_cancelled() {
                pending.reject(error(INVALID_PARAMS, "server is shutting down")).await;
                return Ok(());
            }
            let Ok(sink) = pending.accept().await else { return Ok(()) };
            let label = kind.label();
            metrics::gauge!("coldchain_rpc_subscriptions", "kind" => label).increment(1.0);
            let ended = Follower::new(api, kind, sink).run().await;
            metrics::gauge!("coldchain_rpc_subscriptions", "kind" => label).decrement(1.0);
            ended
        },
    )?;
    Ok(())
}

/// Why a step stopped early.
pub(crate) enum Stop {
    /// The client or the server is gone: end the subscription.
    End,
    /// The client did not take a notification in time: end the
    /// subscription with an error notification.
    Slow,
    /// A store read failed or the store changed under the walk: walk again
    /// shortly.
    Retry(String),
}

impl From<ColdError> for Stop {
    fn from(e: ColdError) -> Self {
        match e {
            ColdError::TaskTerminated => Self::End,
            other => Self::Retry(other.to_string()),
        }
    }
}

/// Where a walk's items go: a subscription's client, or a polled filter's
/// buffer ([`crate::filters`]).
pub(crate) trait Emit {
    /// A new block (walks of [`Kind::NewHeads`]).
    fn header(&mut self, header: &SealedHeader) -> impl Future<Output = Result<(), Stop>> + Send;
    /// A log of a new block, or of a removed one with `removed: true`.
    fn log(&mut self, log: &RpcLog) -> impl Future<Output = Result<(), Stop>> + Send;
    /// Whether to stop before the next block (the rest waits for the next
    /// step).
    fn full(&self) -> bool {
        false
    }
}

struct Walked {
    block: BlockNumHash,
    logs: Vec<RpcLog>,
}

/// The walk along the durable tip shared by subscriptions and filters: the
/// blocks walked (for removals), and the next block to walk.
pub(crate) struct Walk {
    kind: Kind,
    /// Blocks walked, oldest first.
    recent: VecDeque<Walked>,
    /// Logs held in `recent`.
    held_logs: usize,
    /// The next block to walk; `None` until the store has a block.
    next: Option<u64>,
}

impl Walk {
    /// A walk that starts after `tip` (no backfill).
    pub(crate) fn new(kind: Kind, tip: Option<BlockNumHash>) -> Self {
        let mut walk = Self { kind, recent: VecDeque::new(), held_logs: 0, next: None };
        if let Some(tip) = tip {
            walk.recent.push_back(Walked { block: tip, logs: Vec::new() });
            walk.next = Some(tip.number + 1);
        }
        walk
    }

    /// Walks from where the last step stopped to `tip`: first the removals
    /// of walked blocks no longer in the store, then the new blocks.
    pub(crate) async fn step<B: ColdBackend>(
        &mut self,
        api: &Api<B>,
        tip: Option<BlockNumHash>,
        out: &mut impl Emit,
    ) -> Result<(), Stop> {
        self.unwind(api, tip, out).await?;
        let Some(tip) = tip else { return Ok(()) };
        let mut next = match self.next {
            Some(n) => n,
            None => api
                .first_block()
                .await
                .map_err(|e| Stop::Retry(e.message().to_owned()))?
                .unwrap_or(tip.number),
        };
        while next <= tip.number && !out.full() {
            let handle = &api.handle;
            let Some(header) = handle.header(next).await? else {
                return Err(Stop::Retry(format!("block {next} was truncated meanwhile")));
            };
            if let Some(prev) = self.recent.back()
                && prev.block.number + 1 == next
                && prev.block.hash != header.parent_hash
            {
                return Err(Stop::Retry(format!(
                    "block {} was replaced meanwhile",
                    prev.block.number
                )));
            }
            let mut logs = Vec::new();
            match &self.kind {
                Kind::NewHeads => out.header(&header).await?,
                Kind::Logs(filter) => {
                    if filter.may_match_bloom(&header.logs_bloom) {
                        let Some(receipts) = handle.block_receipts(header.hash()).await? else {
                            return Err(Stop::Retry(format!(
                                "block {next} was replaced meanwhile"
                            )));
                        };
                        logs = receipts
                            .iter()
                            .flat_map(|r| r.rpc_logs())
                            .filter(|log| filter.matches(&log.inner))
                            .collect();
                        for log in &logs {
                            out.log(log).await?;
                        }
                    }
                }
            }
            self.remember(
                Walked { block: BlockNumHash::new(header.number, header.hash()), logs },
                &api.config.limits,
            );
            next += 1;
            self.next = Some(next);
        }
        Ok(())
    }

    /// Pops the walked blocks that are no longer in the store and re-sends
    /// their logs with `removed: true`, oldest first.
    async fn unwind<B: ColdBackend>(
        &mut self,
        api: &Api<B>,
        tip: Option<BlockNumHash>,
        out: &mut impl Emit,
    ) -> Result<(), Stop> {
        let mut removed = Vec::new();
        while let Some(last) = self.recent.back() {
            let gone = match tip {
                None => true,
                Some(t) if last.block.number > t.number => true,
                Some(t) if last.block.number == t.number => last.block.hash != t.hash,
                Some(_) => {
                    let current = api.handle.header(last.block.number).await?;
                    current.map(|h| h.hash()) != Some(last.block.hash)
                }
            };
            if !gone {
                break;
            }
            if let Some(walked) = self.recent.pop_back() {
                self.held_logs -= walked.logs.len();
                self.next = Some(walked.block.number);
                removed.push(walked);
            }
        }
        if tip.is_none() {
            self.next = None;
        }
        for walked in removed.into_iter().rev() {
            for mut log in walked.logs {
                log.removed = true;
                out.log(&log).await?;
            }
        }
        Ok(())
    }

    fn remember(&mut self, walked: Walked, limits: &crate::Limits) {
        self.held_logs += walked.logs.len();
        self.recent.push_back(walked);
        while self.recent.len() > limits.reorg_window.max(1)
            || (self.held_logs > limits.max_logs && self.recent.len() > 1)
        {
            if let Some(old) = self.recent.pop_front() {
                self.held_logs -= old.logs.len();
            }
        }
    }
}

struct Follower<B> {
    api: Arc<Api<B>>,
    walk: Walk,
    sink: SubscriptionSink,
    label: &'static str,
}

/// Sends a subscription's items to its client.
struct ToClient<'a> {
    sink: &'a SubscriptionSink,
    timeout: Duration,
    label: &'static str,
}

impl Emit for ToClient<'_> {
    async fn header(&mut self, header: &SealedHeader) -> Result<(), Stop> {
        self.send(&header_rpc(header)).await
    }

    async fn log(&mut self, log: &RpcLog) -> Result<(), Stop> {
        self.send(log).await
    }
}

impl ToClient<'_> {
    async fn send(&self, item: &(impl Serialize + Sync)) -> Result<(), Stop> {
        let raw = serde_json::value::to_raw_value(item).map_err(|e| {
            tracing::error!(error = %e, "subscription: cannot serialize a notification");
            Stop::End
        })?;
        match self.sink.send_timeout(SubscriptionMessage::from(raw), self.timeout).await {
            Ok(()) => {
                metrics::counter!("coldchain_rpc_notifications_total", "kind" => self.label)
                    .increment(1);
                Ok(())
            }
            Err(SendTimeoutError::Timeout(_)) => {
                tracing::debug!("subscription: client too slow; closing the subscription");
                metrics::counter!("coldchain_rpc_shed_total", "reason" => "slow_subscriber")
                    .increment(1);
                Err(Stop::Slow)
            }
            Err(SendTimeoutError::Closed(_)) => Err(Stop::End),
        }
    }
}

impl<B: ColdBackend> Follower<B> {
    fn new(api: Arc<Api<B>>, kind: Kind, sink: SubscriptionSink) -> Self {
        let label = kind.label();
        let walk = Walk::new(kind, api.handle.durable_tip());
        Self { api, walk, sink, label }
    }

    /// Follows the tip until the subscription ends; an error is sent to the
    /// client as the subscription's last notification.
    async fn run(self) -> Result<(), SubscriptionError> {
        let timeout = self.api.config.limits.subscription_send_timeout;
        match self.follow().await {
            Stop::Slow => {
                let error = serde_json::json!({
                    "code": LIMIT_EXCEEDED,
                    "message": format!(
                        "subscription dropped: the client did not take a notification within {}s",
                        timeout.as_secs_f64()
                    ),
                });
                match serde_json::value::to_raw_value(&error) {
                    Ok(raw) => Err(SubscriptionError::from_json(raw)),
                    Err(_) => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    async fn follow(mut self) -> Stop {
        let mut tip_rx = self.api.handle.tip_watch();
        // The walk started at the tip read when it was made; a change since
        // is seen below.
        tip_rx.mark_changed();
        let shutdown = self.api.shutdown.clone();
        let timeout = self.api.config.limits.subscription_send_timeout;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Stop::End,
                _ = self.sink.closed() => return Stop::End,
                changed = tip_rx.changed() => if changed.is_err() { return Stop::End },
            }
            // Several changes may have been coalesced: walk to the latest.
            let tip = *tip_rx.borrow_and_update();
            let mut out = ToClient { sink: &self.sink, timeout, label: self.label };
            match self.walk.step(&self.api, tip, &mut out).await {
                Ok(()) => {}
                Err(stop @ (Stop::End | Stop::Slow)) => return stop,
                Err(Stop::Retry(why)) => {
                    tracing::debug!(%why, "subscription: walking again");
                    // Walk again soon even if the tip does not move again.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    tip_rx.mark_changed();
                }
            }
        }
    }
}
