//! The polling filter API, as clients that poll over HTTP use it (web3.py's
//! `create_filter`, ethers' polling subscriptions).
//!
//! | method | answer |
//! |---|---|
//! | `eth_newFilter(filter)` | an id (`0x` + 32 hex digits) for a log filter |
//! | `eth_newBlockFilter()` | an id for a filter of new block hashes |
//! | `eth_getFilterChanges(id)` | what came since the last poll (or since the filter was made): logs, or block hashes; `[]` when nothing did |
//! | `eth_getFilterLogs(id)` | every log that matches a log filter, as `eth_getLogs` answers for the same filter now |
//! | `eth_uninstallFilter(id)` | `true`, or `false` for an unknown id |
//!
//! A filter follows the durable tip as a subscription does ([`crate::pubsub`]
//! walks blocks the same way): no backfill (the first changes are those of
//! blocks added after the filter was made), and when blocks the filter
//! already reported are truncated or replaced, the next poll answers their
//! logs again with `"removed": true` (oldest block first) before the logs of
//! the blocks that replaced them, as geth does. A block filter reports the
//! hashes of the new blocks only. Log changes keep to the filter's
//! `fromBlock`/`toBlock` when they are numbers (`earliest` as `toBlock` is
//! the first stored block; tags are open ends), and to its `blockHash` when
//! it has one. One poll answers at most [`crate::Limits::max_logs`] logs (or
//! block hashes), at block boundaries; the rest comes with the next poll.
//!
//! A filter not polled by `eth_getFilterChanges` for
//! [`crate::Limits::filter_timeout`] (5 minutes, geth's deadline) is removed;
//! the server holds at most [`crate::Limits::max_filters`] filters, and
//! making one more is `-32005 "too many filters (N): uninstall one or let
//! idle ones expire"`. An unknown or expired id is `-32000 "filter not
//! found"` (geth's words), as is `eth_getFilterLogs` on a block filter.
//!
//! Filters live in the memory of the server that made them. A deployment of
//! several servers over one PostgreSQL store must send a client's polls to
//! the server that made its filter (sticky sessions); another server answers
//! `filter not found`, and a restart forgets every filter.

use crate::{
    error::{LIMIT_EXCEEDED, RpcResult, SERVER_ERROR, error, from_cold, invalid_params},
    eth::{Api, method},
    ids::HexIdProvider,
    params::{BlockTag, FilterParams},
    pubsub::{Emit, Kind, Stop, Walk},
};
use alloy::primitives::B256;
use coldchain::{ColdBackend, LogFilter, RpcLog, SealedHeader};
use jsonrpsee::{RpcModule, core::RegisterMethodError};
use serde_json::Value;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tokio::time::Instant;

/// What a log filter's changes keep to.
#[derive(Debug, Clone, Copy, Default)]
struct Bounds {
    from: Option<u64>,
    to: Option<u64>,
    block_hash: Option<B256>,
}

impl Bounds {
    fn contains(&self, log: &RpcLog) -> bool {
        let n = log.block_number.unwrap_or(0);
        self.from.is_none_or(|from| n >= from)
            && self.to.is_none_or(|to| n <= to)
            && self.block_hash.is_none_or(|h| log.block_hash == Some(h))
    }
}

enum Type {
    Blocks,
    Logs { params: FilterParams, bounds: Bounds },
}

struct State {
    kind: Type,
    walk: Walk,
}

struct Entry {
    deadline: Instant,
    state: Arc<tokio::sync::Mutex<State>>,
}

/// The filters of one server.
#[derive(Default)]
pub(crate) struct Filters {
    map: Mutex<HashMap<String, Entry>>,
    ids: HexIdProvider,
}

fn not_found() -> jsonrpsee::types::ErrorObjectOwned {
    error(SERVER_ERROR, "filter not found")
}

/// Collects one poll's changes.
struct Changes {
    items: Vec<Value>,
    limit: usize,
    bounds: Bounds,
}

impl Emit for Changes {
    async fn header(&mut self, header: &SealedHeader) -> Result<(), Stop> {
        self.items.push(serde_json::json!(header.hash()));
        Ok(())
    }

    async fn log(&mut self, log: &RpcLog) -> Result<(), Stop> {
        if self.bounds.contains(log) {
            let value = serde_json::to_value(log).map_err(|e| Stop::Retry(e.to_string()))?;
            self.items.push(value);
        }
        Ok(())
    }

    fn full(&self) -> bool {
        self.items.len() >= self.limit
    }
}

impl Filters {
    /// Drops the filters whose deadline passed.
    fn sweep(map: &mut HashMap<String, Entry>, now: Instant) {
        map.retain(|_, e| e.deadline > now);
    }

    fn install<B: ColdBackend>(&self, api: &Api<B>, kind: Type) -> RpcResult<String> {
        let limits = &api.config.limits;
        let walk_kind = match &kind {
            Type::Blocks => Kind::NewHeads,
            Type::Logs { params, .. } => Kind::Logs(LogFilter {
                addresses: params.addresses.clone(),
                topics: params.topics.clone(),
                ..Default::default()
            }),
        };
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        Self::sweep(&mut map, now);
        if map.len() >= limits.max_filters {
            return Err(error(
                LIMIT_EXCEEDED,
                format!(
                    "too many filters ({}): uninstall one or let idle ones expire",
                    limits.max_filters
                ),
            ));
        }
        let walk = Walk::new(walk_kind, api.handle.durable_tip());
        let id = self.ids.next_hex();
        let state = Arc::new(tokio::sync::Mutex::new(State { kind, walk }));
        map.insert(id.clone(), Entry { deadline: now + limits.filter_timeout, state });
        Ok(id)
    }

    /// The filter's state; `touch` resets its deadline (a poll of changes).
    fn get(
        &self,
        id: &str,
        touch: Option<std::time::Duration>,
    ) -> Option<Arc<tokio::sync::Mutex<State>>> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        Self::sweep(&mut map, now);
        let entry = map.get_mut(id)?;
        if let Some(timeout) = touch {
            entry.deadline = now + timeout;
        }
        Some(entry.state.clone())
    }

    fn remove(&self, id: &str) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        Self::sweep(&mut map, Instant::now());
        map.remove(id).is_some()
    }

    /// Filters installed (expired ones not yet swept included).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl<B: ColdBackend> Api<B> {
    /// `eth_newFilter`.
    pub(crate) async fn new_filter(&self, params: FilterParams) -> RpcResult<String> {
        let number = |tag: Option<BlockTag>| async move {
            Ok::<_, jsonrpsee::types::ErrorObjectOwned>(match tag {
                Some(BlockTag::Number(n)) => Some(n),
                Some(BlockTag::Earliest) => self.first_block().await?,
                _ => None,
            })
        };
        let from = match params.from_block {
            Some(BlockTag::Earliest) => None,
            other => number(other).await?,
        };
        let to = number(params.to_block).await?;
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(invalid_params("invalid block range params"));
        }
        let bounds = Bounds { from, to, block_hash: params.block_hash };
        self.filters.install(self, Type::Logs { params, bounds })
    }

    /// `eth_newBlockFilter`.
    pub(crate) fn new_block_filter(&self) -> RpcResult<String> {
        self.filters.install(self, Type::Blocks)
    }

    /// `eth_getFilterChanges`.
    pub(crate) async fn filter_changes(&self, id: &str) -> RpcResult<Vec<Value>> {
        let limits = &self.config.limits;
        let state = self.filters.get(id, Some(limits.filter_timeout)).ok_or_else(not_found)?;
        let mut state = state.lock().await;
        let State { kind, walk } = &mut *state;
        let bounds = match kind {
            Type::Blocks => Bounds::default(),
            Type::Logs { bounds, .. } => *bounds,
        };
        let mut changes = Changes { items: Vec::new(), limit: limits.max_logs.max(1), bounds };
        // A step stops at a block boundary when the store changes under it;
        // what it walked is kept, so walking again goes on from there.
        for _ in 0..3 {
            let tip = self.handle.durable_tip();
            match walk.step(self, tip, &mut changes).await {
                Ok(()) => break,
                Err(Stop::End) => return Err(from_cold(coldchain::ColdError::TaskTerminated)),
                Err(Stop::Slow) => break,
                Err(Stop::Retry(why)) => {
                    tracing::debug!(%why, "filter: walking again");
                }
            }
        }
        Ok(changes.items)
    }

    /// `eth_getFilterLogs`.
    pub(crate) async fn filter_logs(&self, id: &str) -> RpcResult<Vec<RpcLog>> {
        let state = self.filters.get(id, None).ok_or_else(not_found)?;
        let params = match &state.lock().await.kind {
            Type::Logs { params, .. } => params.clone(),
            Type::Blocks => return Err(not_found()),
        };
        self.logs(params).await
    }

    /// `eth_uninstallFilter`.
    pub(crate) fn uninstall_filter(&self, id: &str) -> bool {
        self.filters.remove(id)
    }
}

/// Registers the methods of this module.
pub(crate) fn register<B: ColdBackend>(
    module: &mut RpcModule<Api<B>>,
) -> Result<(), RegisterMethodError> {
    method(module, "eth_newFilter", 1, |api, args| async move {
        let filter = args.filter(0, false, api.config.limits.max_filter_values)?;
        api.new_filter(filter).await
    })?;
    method(module, "eth_newBlockFilter", 0, |api, _| async move { api.new_block_filter() })?;
    method(module, "eth_getFilterChanges", 1, |api, args| async move {
        let id = args.string(0)?.to_owned();
        api.filter_changes(&id).await
    })?;
    method(module, "eth_getFilterLogs", 1, |api, args| async move {
        let id = args.string(0)?.to_owned();
        api.filter_logs(&id).await
    })?;
    method(module, "eth_uninstallFilter", 1, |api, args| async move {
        let id = args.string(0)?.to_owned();
        Ok(api.uninstall_filter(&id))
    })?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Limits, RpcConfig};
    use coldchain::{ColdStorage, MemBackend, testing::test_chain};
    use std::time::Duration;

    async fn api(limits: Limits) -> Api<MemBackend> {
        let handle = ColdStorage::new(MemBackend::new()).await.unwrap();
        handle.append_blocks(test_chain(0, 3, alloy::primitives::B256::ZERO, 1)).await.unwrap();
        Api::new(handle, RpcConfig { limits, ..RpcConfig::default() })
    }

    #[tokio::test(start_paused = true)]
    async fn idle_filters_expire_and_polls_keep_them() {
        let timeout = Duration::from_secs(300);
        let api = api(Limits { filter_timeout: timeout, ..Limits::default() }).await;
        let idle = api.new_block_filter().unwrap();
        let polled = api.new_block_filter().unwrap();
        for _ in 0..4 {
            tokio::time::advance(timeout / 2).await;
            assert!(api.filter_changes(&polled).await.unwrap().is_empty());
        }
        // Two timeouts passed: the idle filter is gone, the polled one not.
        let e = api.filter_changes(&idle).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (SERVER_ERROR, "filter not found"));
        assert_eq!(api.filters.len(), 1);
        // Just before its deadline it lives; at it, it is gone.
        tokio::time::advance(timeout - Duration::from_millis(1)).await;
        assert!(api.filter_changes(&polled).await.is_ok());
        tokio::time::advance(timeout).await;
        assert!(api.filter_changes(&polled).await.is_err());
        assert!(!api.uninstall_filter(&polled));
        api.handle.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_number_of_filters_is_bounded_and_expiry_frees_room() {
        let timeout = Duration::from_secs(60);
        let limits = Limits { max_filters: 3, filter_timeout: timeout, ..Limits::default() };
        let api = api(limits).await;
        let ids: Vec<String> = (0..3).map(|_| api.new_block_filter().unwrap()).collect();
        let e = api.new_filter(FilterParams::default()).await.unwrap_err();
        assert_eq!(e.code(), LIMIT_EXCEEDED);
        assert_eq!(e.message(), "too many filters (3): uninstall one or let idle ones expire");
        assert!(api.uninstall_filter(&ids[0]));
        let fourth = api.new_block_filter().unwrap();
        assert!(api.new_block_filter().is_err());
        tokio::time::advance(timeout).await;
        assert!(api.new_block_filter().is_ok(), "expired filters free their room");
        assert!(api.filter_changes(&fourth).await.is_err());
        api.handle.shutdown().await;
    }
}
