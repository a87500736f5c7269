//! Block-level methods beyond `eth_getBlockBy*`: uncles and raw RLP.
//!
//! - `eth_getUncleByBlockHashAndIndex`, `eth_getUncleByBlockNumberAndIndex`:
//!   the ommer header as geth answers it ([`uncle_json`]), `null` for an
//!   unknown block or an index past the block's uncles.
//! - `eth_getUncleCountByBlockHash`, `eth_getUncleCountByBlockNumber`: the
//!   number of uncles, `null` for an unknown block.
//! - `debug_getRawHeader`, `debug_getRawBlock`: the RLP of the header
//!   (its keccak is the block hash) and of the whole block (header,
//!   transactions as in a block body, ommers and, when present, withdrawals;
//!   its length is the block's `size`), `null` for an unknown block.
//!
//! Every method takes a block number, tag or hash and answers `4444 pruned
//! history unavailable` below the first stored block, as the other
//! by-number methods do.

use crate::{
    convert::uncle_json,
    error::{INTERNAL_ERROR, RpcResult, error, from_cold},
    eth::{Api, method},
    params::BlockId,
};
use alloy::{
    consensus::{Block, BlockBody, TxEnvelope},
    primitives::{Bytes, U64},
    rlp::Encodable,
};
use coldchain::{BlockExtras, ColdBackend, SealedHeader};
use jsonrpsee::{RpcModule, core::RegisterMethodError};
use serde_json::Value;

impl<B: ColdBackend> Api<B> {
    /// The header and the ommers and withdrawals of the block `id` names.
    async fn header_and_extras(
        &self,
        id: BlockId,
    ) -> RpcResult<Option<(SealedHeader, BlockExtras)>> {
        let Some(header) = self.header(id).await? else { return Ok(None) };
        // By hash: if the block was replaced in between, it is gone.
        let extras = self.handle.block_extras(header.hash()).await.map_err(from_cold)?;
        Ok(extras.map(|extras| (header, extras)))
    }

    /// `eth_getUncleBy*AndIndex`.
    pub(crate) async fn uncle(&self, id: BlockId, index: u64) -> RpcResult<Option<Value>> {
        let Some((_, extras)) = self.header_and_extras(id).await? else { return Ok(None) };
        let Some(ommer) = usize::try_from(index).ok().and_then(|i| extras.ommers.get(i)) else {
            return Ok(None);
        };
        uncle_json(ommer)
            .map(Some)
            .map_err(|e| error(INTERNAL_ERROR, format!("serializing the uncle: {e}")))
    }

    /// `eth_getUncleCountBy*`.
    pub(crate) async fn uncle_count(&self, id: BlockId) -> RpcResult<Option<U64>> {
        let extras = self.header_and_extras(id).await?;
        Ok(extras.map(|(_, extras)| U64::from(extras.ommers.len())))
    }

    /// `debug_getRawHeader`.
    pub(crate) async fn raw_header(&self, id: BlockId) -> RpcResult<Option<Bytes>> {
        let header = self.header(id).await?;
        Ok(header.map(|h| alloy::rlp::encode(h.inner()).into()))
    }

    /// `debug_getRawBlock`.
    pub(crate) async fn raw_block(&self, id: BlockId) -> RpcResult<Option<Bytes>> {
        let Some(header) = self.header(id).await? else { return Ok(None) };
        let (txs, extras) = tokio::try_join!(
            self.handle.block_transactions(header.hash()),
            self.handle.block_extras(header.hash())
        )
        .map_err(from_cold)?;
        let (Some(txs), Some(extras)) = (txs, extras) else { return Ok(None) };
        let transactions: Vec<TxEnvelope> = txs.into_iter().map(|tx| tx.into_inner()).collect();
        let block = Block {
            header: header.into_inner(),
            body: BlockBody {
                transactions,
                ommers: extras.ommers,
                withdrawals: extras.withdrawals,
            },
        };
        let mut out = Vec::with_capacity(block.length());
        block.encode(&mut out);
        Ok(Some(out.into()))
    }
}

/// Registers the uncle and raw block methods.
pub(crate) fn register<B: ColdBackend>(
    module: &mut RpcModule<Api<B>>,
) -> Result<(), RegisterMethodError> {
    method(module, "eth_getUncleByBlockHashAndIndex", 2, |api, args| async move {
        let hash = args.hash(0)?;
        let index = args.quantity(1)?;
        api.uncle(BlockId::Hash(hash), index).await
    })?;
    method(module, "eth_getUncleByBlockNumberAndIndex", 2, |api, args| async move {
        let tag = args.block_tag(0)?;
        let index = args.quantity(1)?;
        api.uncle(BlockId::Tag(tag), index).await
    })?;
    method(module, "eth_getUncleCountByBlockHash", 1, |api, args| async move {
        let hash = args.hash(0)?;
        api.uncle_count(BlockId::Hash(hash)).await
    })?;
    method(module, "eth_getUncleCountByBlockNumber", 1, |api, args| async move {
        let tag = args.block_tag(0)?;
        api.uncle_count(BlockId::Tag(tag)).await
    })?;
    method(module, "debug_getRawHeader", 1, |api, args| async move {
        let id = args.block_id(0)?;
        api.raw_header(id).await
    })?;
    method(module, "debug_getRawBlock", 1, |api, args| async move {
        let id = args.block_id(0)?;
        api.raw_block(id).await
    })?;
    Ok(())
}
