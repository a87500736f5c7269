//! Raw encodings and bare headers.
//!
//! | method | answer |
//! |---|---|
//! | `eth_getRawTransactionByHash`, `debug_getRawTransaction` | the transaction's EIP-2718 bytes (keccak of them is its hash), or `null` |
//! | `eth_getRawTransactionByBlockHashAndIndex` / `ByBlockNumberAndIndex` | the same for a transaction named by its block and index, or `null` |
//! | `debug_getRawReceipts` | the block's receipts, each in its EIP-2718 encoding (the leaves of `receiptsRoot`); `[]` for a block without transactions; `null` for an unknown block |
//! | `eth_getHeaderByNumber`, `eth_getHeaderByHash` | the header fields of the block object and its `hash` (no `transactions`, `uncles`, `withdrawals` or `size`: geth's shape), or `null` |
//!
//! A transaction or block that is not found is `null`, as Nethermind, reth and
//! Besu answer and as the structured methods do. geth answers `"0x"` for a
//! missing raw transaction (its `hexutil.Bytes` result encodes Go's nil slice
//! that way; go-ethereum PR #35227 proposes `null`). Numbers below the first
//! stored block are `4444`, as for every by-number method. Blob transactions
//! come back in their canonical form (no sidecar), the form that is hashed.

use crate::{
    convert::header_rpc,
    error::{RpcResult, from_cold},
    eth::{Api, method},
    params::{BlockId, BlockTag},
};
use alloy::{eips::Encodable2718, primitives::Bytes, rpc::types::Header};
use coldchain::{ColdBackend, HeaderSpec, TxSpec};
use jsonrpsee::{RpcModule, core::RegisterMethodError};

impl<B: ColdBackend> Api<B> {
    /// The EIP-2718 bytes of a transaction.
    async fn raw_transaction(&self, spec: TxSpec) -> RpcResult<Option<Bytes>> {
        let tx = self.handle.transaction(spec).await.map_err(from_cold)?;
        if tx.is_none()
            && let TxSpec::BlockNumberIndex(n, _) = spec
        {
            self.absent(HeaderSpec::Number(n)).await?;
        }
        Ok(tx.map(|t| Bytes::from(t.tx.inner().encoded_2718())))
    }

    async fn raw_transaction_at(&self, id: BlockId, index: u64) -> RpcResult<Option<Bytes>> {
        match self.resolve_id(id).await? {
            None => Ok(None),
            Some(HeaderSpec::Number(n)) => {
                self.raw_transaction(TxSpec::BlockNumberIndex(n, index)).await
            }
            Some(HeaderSpec::Hash(h)) => {
                self.raw_transaction(TxSpec::BlockHashIndex(h, index)).await
            }
        }
    }

    /// The EIP-2718 encodings of a block's receipts.
    async fn raw_receipts(&self, id: BlockId) -> RpcResult<Option<Vec<Bytes>>> {
        let Some(spec) = self.resolve_id(id).await? else { return Ok(None) };
        match self.handle.block_receipts(spec).await.map_err(from_cold)? {
            Some(receipts) => {
                Ok(Some(receipts.iter().map(|r| Bytes::from(r.receipt.encoded_2718())).collect()))
            }
            None => self.absent(spec).await.map(|()| None),
        }
    }

    async fn header_object(&self, id: BlockId) -> RpcResult<Option<Header>> {
        Ok(self.header(id).await?.as_ref().map(header_rpc))
    }
}

/// Registers the methods of this module.
pub(crate) fn register<B: ColdBackend>(
    module: &mut RpcModule<Api<B>>,
) -> Result<(), RegisterMethodError> {
    for name in ["eth_getRawTransactionByHash", "debug_getRawTransaction"] {
        method(module, name, 1, |api, args| async move {
            let hash = args.hash(0)?;
            api.raw_transaction(TxSpec::Hash(hash)).await
        })?;
    }
    method(module, "eth_getRawTransactionByBlockHashAndIndex", 2, |api, args| async move {
        let hash = args.hash(0)?;
        let index = args.quantity(1)?;
        api.raw_transaction_at(BlockId::Hash(hash), index).await
    })?;
    method(module, "eth_getRawTransactionByBlockNumberAndIndex", 2, |api, args| async move {
        let tag: BlockTag = args.block_tag(0)?;
        let index = args.quantity(1)?;
        api.raw_transaction_at(BlockId::Tag(tag), index).await
    })?;
    method(module, "debug_getRawReceipts", 1, |api, args| async move {
        let id = args.block_id(0)?;
        api.raw_receipts(id).await
    })?;
    method(module, "eth_getHeaderByNumber", 1, |api, args| async move {
        let tag = args.block_tag(0)?;
        api.header_object(BlockId::Tag(tag)).await
    })?;
    method(module, "eth_getHeaderByHash", 1, |api, args| async move {
        let hash = args.hash(0)?;
        api.header_object(BlockId::Hash(hash)).await
    })?;
    Ok(())
}
