//! Runs backend-level suites through the handle: [`ThroughHandle`] is a
//! backend whose every call goes through a [`ColdStorage`], so the
//! conformance suite and the model test check the handle's read, write,
//! cache and stream paths, not only the backend's.

use crate::{
    BlockData, ColdResult, ColdStorage, Deadline, HeaderSpec, LogFilter, ReceiptSpec, RpcLog,
    SealedHeader, StoredReceipt, TxSpec, TxWithMeta,
    backend::{ColdBackend, ColdRead, ColdWrite, DrainedBlock, LogSink, StreamParams},
    model::RecoveredTx,
};
use alloy::{eips::BlockNumHash, primitives::BlockNumber};
use futures::StreamExt;
use std::ops::RangeInclusive;

/// A backend that forwards every call through a [`ColdStorage`] handle.
/// Deadlines passed in are ignored: the handle applies its own.
#[derive(Debug, Clone)]
pub struct ThroughHandle<B>(pub ColdStorage<B>);

impl<B: ColdBackend> ThroughHandle<B> {
    /// Builds a handle with default limits over `backend`.
    ///
    /// # Panics
    /// If the backend's tip cannot be read.
    pub async fn new(backend: B) -> Self {
        match ColdStorage::new(backend).await {
            Ok(h) => Self(h),
            Err(e) => panic!("building the handle failed: {e}"),
        }
    }
}

impl<B: ColdBackend> ColdRead for ThroughHandle<B> {
    fn snapshot_reads(&self) -> bool {
        true
    }

    async fn chain_id(&self, _d: Deadline) -> ColdResult<Option<u64>> {
        self.0.chain_id().await
    }

    async fn tip(&self, _d: Deadline) -> ColdResult<Option<BlockNumHash>> {
        self.0.tip().await
    }

    async fn header(&self, spec: HeaderSpec, _d: Deadline) -> ColdResult<Option<SealedHeader>> {
        self.0.header(spec).await
    }

    async fn transaction(&self, spec: TxSpec, _d: Deadline) -> ColdResult<Option<TxWithMeta>> {
        self.0.transaction(spec).await
    }

    async fn block_transactions(
        &self,
        block: HeaderSpec,
        _d: Deadline,
    ) -> ColdResult<Option<Vec<RecoveredTx>>> {
        self.0.block_transactions(block).await
    }

    async fn block_extras(
        &self,
        block: HeaderSpec,
        _d: Deadline,
    ) -> ColdResult<Option<crate::BlockExtras>> {
        self.0.block_extras(block).await
    }

    async fn receipt(&self, spec: ReceiptSpec, _d: Deadline) -> ColdResult<Option<StoredReceipt>> {
        self.0.receipt(spec).await
    }

    async fn block_receipts(
        &self,
        block: HeaderSpec,
        _d: Deadline,
    ) -> ColdResult<Option<Vec<StoredReceipt>>> {
        Ok(self.0.block_receipts(block).await?.map(|r| r.as_ref().clone()))
    }

    async fn get_logs(
        &self,
        filter: &LogFilter,
        max_logs: usize,
        _d: Deadline,
    ) -> ColdResult<Vec<RpcLog>> {
        self.0.get_logs(filter.clone(), max_logs).await
    }

    /// Streams through [`ColdStorage::stream_logs`] over the given range.
    async fn produce_logs(
        &self,
        filter: LogFilter,
        range: RangeInclusive<BlockNumber>,
        anchor: BlockNumHash,
        params: StreamParams,
        sink: LogSink,
        _d: Deadline,
    ) {
        // The anchor must still be canonical, as the contract says.
        match self.0.header(anchor.number).await {
            Ok(Some(h)) if h.hash() == anchor.hash => {}
            Ok(_) => {
                let _ =
                    sink.send(Err(crate::ColdError::ReorgDetected { number: anchor.number })).await;
                return;
            }
            Err(e) => {
                let _ = sink.send(Err(e)).await;
                return;
            }
        }
        let filter = LogFilter {
            blocks: crate::BlockSelector::Range {
                from: Some(*range.start()),
                to: Some(*range.end()),
            },
            ..filter
        };
        let mut stream = match self.0.stream_logs(filter, params).await {
            Ok(s) => s,
            Err(e) => {
                let _ = sink.send(Err(e)).await;
                return;
            }
        };
        while let Some(item) = stream.next().await {
            if sink.send(item).await.is_err() {
                return;
            }
        }
    }
}

impl<B: ColdBackend> ColdWrite for ThroughHandle<B> {
    async fn append_blocks(&mut self, blocks: Vec<BlockData>, _d: Deadline) -> ColdResult<()> {
        self.0.append_blocks(blocks).await
    }

    async fn truncate_above(&mut self, n: BlockNumber, _d: Deadline) -> ColdResult<()> {
        self.0.truncate_above(n).await
    }

    async fn set_chain_id(&mut self, chain_id: u64, _d: Deadline) -> ColdResult<()> {
        self.0.set_chain_id(chain_id).await
    }
}

impl<B: ColdBackend> ColdBackend for ThroughHandle<B> {
    async fn drain_above(&mut self, n: BlockNumber, _d: Deadline) -> ColdResult<Vec<DrainedBlock>> {
        self.0.drain_above(n).await
    }
}
