//! The methods: how each call is resolved against the store.

use crate::{
    config::RpcConfig,
    convert::{block_json, receipt_rpc, transaction_rpc},
    error::{
        INTERNAL_ERROR, INVALID_PARAMS, LIMIT_EXCEEDED, RpcResult, error, error_with_data,
        from_cold, invalid_params, pruned,
    },
    params::{Args, BlockId, BlockTag, FilterParams},
};
use alloy::{
    primitives::{B256, BlockNumber, U64},
    rpc::types::{Transaction, TransactionReceipt},
};
use coldchain::{
    BlockSelector, ColdBackend, ColdError, ColdStorage, HeaderSpec, LogFilter, ReceiptSpec, RpcLog,
    SealedHeader, TxSpec,
};
use jsonrpsee::{RpcModule, core::RegisterMethodError};
use serde::Serialize;
use serde_json::Value;
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};
use tokio_util::sync::CancellationToken;

/// Shared state of the methods.
pub(crate) struct Api<B> {
    pub(crate) handle: ColdStorage<B>,
    pub(crate) config: RpcConfig,
    /// The first stored block, `u64::MAX` when unknown; checked before use.
    first_block: AtomicU64,
    /// Ends subscriptions on shutdown.
    pub(crate) shutdown: CancellationToken,
    /// Filters made by `eth_newFilter` and `eth_newBlockFilter`.
    pub(crate) filters: crate::filters::Filters,
}

impl<B: ColdBackend> Api<B> {
    pub(crate) fn new(handle: ColdStorage<B>, config: RpcConfig) -> Self {
        Self {
            handle,
            config,
            first_block: AtomicU64::new(u64::MAX),
            shutdown: CancellationToken::new(),
            filters: crate::filters::Filters::default(),
        }
    }

    /// The durable tip's number (`latest`, `safe`, `finalized`, `pending`).
    pub(crate) fn head(&self) -> Option<BlockNumber> {
        self.handle.durable_tip().map(|t| t.number)
    }

    async fn exists(&self, n: BlockNumber) -> RpcResult<bool> {
        Ok(self.handle.header(n).await.map_err(from_cold)?.is_some())
    }

    /// The first stored block (`earliest`). Stored blocks are contiguous, so
    /// it is found by binary search and cached; the cache is checked (two
    /// cached header reads) before each use, so a store emptied and refilled
    /// from another number is seen.
    pub(crate) async fn first_block(&self) -> RpcResult<Option<BlockNumber>> {
        let Some(head) = self.head() else { return Ok(None) };
        let cached = self.first_block.load(Ordering::Relaxed);
        if cached != u64::MAX
            && cached <= head
            && self.exists(cached).await?
            && (cached == 0 || !self.exists(cached - 1).await?)
        {
            return Ok(Some(cached));
        }
        let (mut lo, mut hi) = (0, head);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.exists(mid).await? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        if !self.exists(lo).await? {
            return Ok(None);
        }
        self.first_block.store(lo, Ordering::Relaxed);
        Ok(Some(lo))
    }

    /// A tag as a number; `None` when the store is empty.
    pub(crate) async fn resolve_tag(&self, tag: BlockTag) -> RpcResult<Option<BlockNumber>> {
        match tag {
            BlockTag::Number(n) => Ok(Some(n)),
            BlockTag::Earliest => self.first_block().await,
            BlockTag::Latest | BlockTag::Safe | BlockTag::Finalized | BlockTag::Pending => {
                Ok(self.head())
            }
        }
    }

    pub(crate) async fn resolve_id(&self, id: BlockId) -> RpcResult<Option<HeaderSpec>> {
        Ok(match id {
            BlockId::Hash(h) => Some(HeaderSpec::Hash(h)),
            BlockId::Tag(tag) => self.resolve_tag(tag).await?.map(HeaderSpec::Number),
        })
    }

    /// What a by-number lookup that found nothing answers: `null` above the
    /// tip, `4444 pruned history unavailable` below the first stored block.
    pub(crate) async fn absent(&self, spec: HeaderSpec) -> RpcResult<()> {
        if let HeaderSpec::Number(n) = spec
            && self.first_block().await?.is_some_and(|first| n < first)
        {
            return Err(pruned());
        }
        Ok(())
    }

    pub(crate) async fn header(&self, id: BlockId) -> RpcResult<Option<SealedHeader>> {
        let Some(spec) = self.resolve_id(id).await? else { return Ok(None) };
        let header = self.handle.header(spec).await.map_err(from_cold)?;
        if header.is_none() {
            self.absent(spec).await?;
        }
        Ok(header)
    }

    pub(crate) async fn block(&self, id: BlockId, full: bool) -> RpcResult<Option<Value>> {
        let Some(header) = self.header(id).await? else { return Ok(None) };
        // By hash: if the block was replaced in between, it is gone.
        let (txs, extras) = tokio::try_join!(
            self.handle.block_transactions(header.hash()),
            self.handle.block_extras(header.hash())
        )
        .map_err(from_cold)?;
        let (Some(txs), Some(extras)) = (txs, extras) else { return Ok(None) };
        block_json(&header, txs, extras, full)
            .map(Some)
            .map_err(|e| error(INTERNAL_ERROR, format!("serializing the block: {e}")))
    }

    pub(crate) async fn transaction_count(&self, id: BlockId) -> RpcResult<Option<U64>> {
        let Some(spec) = self.resolve_id(id).await? else { return Ok(None) };
        match self.handle.block_receipts(spec).await.map_err(from_cold)? {
            Some(r) => Ok(Some(U64::from(r.len()))),
            None => self.absent(spec).await.map(|()| None),
        }
    }

    pub(crate) async fn transaction(&self, spec: TxSpec) -> RpcResult<Option<Transaction>> {
        let tx = self.handle.transaction(spec).await.map_err(from_cold)?;
        if tx.is_none()
            && let TxSpec::BlockNumberIndex(n, _) = spec
        {
            self.absent(HeaderSpec::Number(n)).await?;
        }
        Ok(tx.map(transaction_rpc))
    }

    pub(crate) async fn transaction_at(
        &self,
        id: BlockId,
        index: u64,
    ) -> RpcResult<Option<Transaction>> {
        match self.resolve_id(id).await? {
            None => Ok(None),
            Some(HeaderSpec::Number(n)) => {
                self.transaction(TxSpec::BlockNumberIndex(n, index)).await
            }
            Some(HeaderSpec::Hash(h)) => self.transaction(TxSpec::BlockHashIndex(h, index)).await,
        }
    }

    pub(crate) async fn receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>> {
        let receipt = self.handle.receipt(ReceiptSpec::TxHash(hash)).await.map_err(from_cold)?;
        Ok(receipt.as_ref().map(receipt_rpc))
    }

    pub(crate) async fn block_receipts(
        &self,
        id: BlockId,
    ) -> RpcResult<Option<Vec<TransactionReceipt>>> {
        let Some(spec) = self.resolve_id(id).await? else { return Ok(None) };
        match self.handle.block_receipts(spec).await.map_err(from_cold)? {
            Some(receipts) => Ok(Some(receipts.iter().map(receipt_rpc).collect())),
            None => self.absent(spec).await.map(|()| None),
        }
    }

    /// `eth_getLogs`; see the crate docs for the rules.
    pub(crate) async fn logs(&self, params: FilterParams) -> RpcResult<Vec<RpcLog>> {
        let limits = &self.config.limits;
        let FilterParams { from_block, to_block, block_hash, addresses, topics } = params;
        if let Some(hash) = block_hash {
            let filter = LogFilter { blocks: BlockSelector::Hash(hash), addresses, topics };
            return self.handle.get_logs(filter, limits.max_logs).await.map_err(from_cold);
        }
        let Some(head) = self.head() else { return Ok(Vec::new()) };
        let resolve = |tag: Option<BlockTag>| async move {
            self.resolve_tag(tag.unwrap_or(BlockTag::Latest)).await.map(|n| n.unwrap_or(head))
        };
        let from = resolve(from_block).await?;
        let to = resolve(to_block).await?;
        if to > head {
            return Err(invalid_params("block range extends beyond current head block"));
        }
        if from > to {
            return Err(invalid_params("invalid block range params"));
        }
        if limits.max_block_range > 0 && to - from >= limits.max_block_range {
            let suggested_to = from + limits.max_block_range - 1;
            return Err(error_with_data(
                INVALID_PARAMS,
                format!("query exceeds max block range {}", limits.max_block_range),
                serde_json::json!({
                    "maxBlockRange": limits.max_block_range,
                    "from": U64::from(from),
                    "to": U64::from(suggested_to),
                }),
            ));
        }
        if self.first_block().await?.is_some_and(|first| from < first) {
            return Err(pruned());
        }
        let filter = LogFilter {
            blocks: BlockSelector::Range { from: Some(from), to: Some(to) },
            addresses,
            topics,
        };
        match self.handle.get_logs(filter, limits.max_logs).await {
            Ok(logs) => Ok(logs),
            // The scan that hit the limit says which blocks fit; it is at
            // least `from` (a one-block range always answers whole).
            Err(ColdError::TooManyLogs { limit, fits_to }) => {
                let b = fits_to.unwrap_or(from).max(from).min(to);
                Err(error_with_data(
                    LIMIT_EXCEEDED,
                    format!(
                        "query returned more than {limit} results. \
                         Try with this block range [{from:#x}, {b:#x}]."
                    ),
                    serde_json::json!({ "from": U64::from(from), "to": U64::from(b), "limit": limit }),
                ))
            }
            Err(e) => Err(from_cold(e)),
        }
    }
}

/// Registers an async method whose body gets the parsed arguments.
pub(crate) fn method<B, T, F, Fut>(
    module: &mut RpcModule<Api<B>>,
    name: &'static str,
    max_args: usize,
    body: F,
) -> Result<(), RegisterMethodError>
where
    B: ColdBackend,
    T: Serialize + Clone + Send + 'static,
    F: Fn(Arc<Api<B>>, Args) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = RpcResult<T>> + Send + 'static,
{
    module.register_async_method(name, move |params, api, _| {
        let body = body.clone();
        async move {
            let args = Args::parse(params.as_str(), max_args)?;
            body(api, args).await
        }
    })?;
    Ok(())
}

/// All methods of the server (subscriptions are added by [`crate::pubsub`]).
pub(crate) fn register<B: ColdBackend>(
    module: &mut RpcModule<Api<B>>,
) -> Result<(), RegisterMethodError> {
    method(module, "web3_clientVersion", 0, |api, _| async move {
        Ok(api.config.client_version.clone())
    })?;
    method(module, "net_version", 0, |api, _| async move { Ok(api.config.chain_id.to_string()) })?;
    method(module, "eth_chainId", 0, |api, _| async move { Ok(U64::from(api.config.chain_id)) })?;
    method(module, "eth_syncing", 0, |_, _| async move { Ok(false) })?;
    method(module, "eth_blockNumber", 0, |api, _| async move {
        Ok(U64::from(api.head().unwrap_or(0)))
    })?;
    method(module, "eth_getBlockByNumber", 2, |api, args| async move {
        let tag = args.block_tag(0)?;
        let full = args.bool(1)?;
        api.block(BlockId::Tag(tag), full).await
    })?;
    method(module, "eth_getBlockByHash", 2, |api, args| async move {
        let hash = args.hash(0)?;
        let full = args.bool(1)?;
        api.block(BlockId::Hash(hash), full).await
    })?;
    method(module, "eth_getBlockTransactionCountByNumber", 1, |api, args| async move {
        let tag = args.block_tag(0)?;
        api.transaction_count(BlockId::Tag(tag)).await
    })?;
    method(module, "eth_getBlockTransactionCountByHash", 1, |api, args| async move {
        let hash = args.hash(0)?;
        api.transaction_count(BlockId::Hash(hash)).await
    })?;
    method(module, "eth_getTransactionByHash", 1, |api, args| async move {
        let hash = args.hash(0)?;
        api.transaction(TxSpec::Hash(hash)).await
    })?;
    method(module, "eth_getTransactionByBlockNumberAndIndex", 2, |api, args| async move {
        let tag = args.block_tag(0)?;
        let index = args.quantity(1)?;
        api.transaction_at(BlockId::Tag(tag), index).await
    })?;
    method(module, "eth_getTransactionByBlockHashAndIndex", 2, |api, args| async move {
        let hash = args.hash(0)?;
        let index = args.quantity(1)?;
        api.transaction_at(BlockId::Hash(hash), index).await
    })?;
    method(module, "eth_getTransactionReceipt", 1, |api, args| async move {
        let hash = args.hash(0)?;
        api.receipt(hash).await
    })?;
    method(module, "eth_getBlockReceipts", 1, |api, args| async move {
        let id = args.block_id(0)?;
        api.block_receipts(id).await
    })?;
    method(module, "eth_getLogs", 1, |api, args| async move {
        let filter = args.filter(0, false, api.config.limits.max_filter_values)?;
        api.logs(filter).await
    })?;
    crate::raw::register(module)?;
    crate::fees::register(module)?;
    crate::filters::register(module)?;
    #[cfg(feature = "test-utils")]
    method(module, "coldchain_testPanic", 1, |_, args| async move {
        let message = args.string(0).unwrap_or("coldchain_testPanic").to_owned();
        tokio::task::yield_now().await;
        if !message.is_empty() {
            panic!("{message}");
        }
        Ok(())
    })?;
    Ok(())
}
