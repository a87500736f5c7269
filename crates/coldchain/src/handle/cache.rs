//! The block cache: headers and whole-block receipts, by number.
//!
//! Guarantee (C10): once a truncate or drain has returned, the cache never
//! serves a block above the cut. The writer purges entries above the cut and
//! bumps a generation *before* it answers; a read fills the cache only if the
//! generation is unchanged since the read started, so a read that raced the
//! truncate cannot put a removed block back.

use crate::{SealedHeader, StoredReceipt};
use alloy::primitives::{B256, BlockNumber};
use lru::LruCache;
use parking_lot::Mutex;
use std::{num::NonZeroUsize, sync::Arc};

/// How much the cache holds, in entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBudget {
    /// Headers (each also reachable by hash).
    pub headers: usize,
    /// Blocks whose receipts are kept whole.
    pub block_receipts: usize,
}

impl Default for CacheBudget {
    fn default() -> Self {
        Self { headers: 4096, block_receipts: 128 }
    }
}

/// A token taken when a read starts; fills with a stale token are dropped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Generation(u64);

#[derive(Debug)]
struct State {
    generation: u64,
    headers: Option<LruCache<BlockNumber, SealedHeader>>,
    hashes: Option<LruCache<B256, BlockNumber>>,
    receipts: Option<LruCache<BlockNumber, Arc<Vec<StoredReceipt>>>>,
}

/// Headers and block receipts by number, safe against truncation.
#[derive(Debug)]
pub(crate) struct BlockCache {
    state: Mutex<State>,
}

impl BlockCache {
    pub(crate) fn new(budget: CacheBudget) -> Self {
        let headers = NonZeroUsize::new(budget.headers);
        Self {
            state: Mutex::new(State {
                generation: 0,
                headers: headers.map(LruCache::new),
                hashes: headers.map(LruCache::new),
                receipts: NonZeroUsize::new(budget.block_receipts).map(LruCache::new),
            }),
        }
    }

    pub(crate) fn generation(&self) -> Generation {
        Generation(self.state.lock().generation)
    }

    pub(crate) fn header_by_number(&self, n: BlockNumber) -> Option<SealedHeader> {
        self.state.lock().headers.as_mut()?.get(&n).cloned()
    }

    pub(crate) fn header_by_hash(&self, hash: &B256) -> Option<SealedHeader> {
        let mut s = self.state.lock();
        let n = *s.hashes.as_mut()?.get(hash)?;
        s.headers.as_mut()?.get(&n).filter(|h| h.hash() == *hash).cloned()
    }

    pub(crate) fn receipts(&self, n: BlockNumber) -> Option<Arc<Vec<StoredReceipt>>> {
        self.state.lock().receipts.as_mut()?.get(&n).cloned()
    }

    pub(crate) fn insert_header(&self, generation: Generation, header: &SealedHeader) {
        let mut s = self.state.lock();
        if s.generation != generation.0 {
            return;
        }
        if let Some(hashes) = s.hashes.as_mut() {
            hashes.put(header.hash(), header.number);
        }
        if let Some(headers) = s.headers.as_mut() {
            headers.put(header.number, header.clone());
        }
    }

    pub(crate) fn insert_receipts(
        &self,
        generation: Generation,
        n: BlockNumber,
        receipts: Arc<Vec<StoredReceipt>>,
    ) {
        // A full cache evicts a block: its receipts (often the last
        // reference, thousands of allocations) are freed after the lock is
        // released, so that header lookups never wait for the free.
        let _evicted = {
            let mut s = self.state.lock();
            if s.generation != generation.0 {
                return;
            }
            s.receipts.as_mut().and_then(|cache| cache.push(n, receipts))
        };
    }

    /// Forgets every block above `n` and invalidates reads in flight.
    pub(crate) fn truncate_above(&self, n: BlockNumber) {
        let mut s = self.state.lock();
        s.generation += 1;
        if let Some(headers) = s.headers.as_mut() {
            let above: Vec<_> = headers.iter().filter(|(k, _)| **k > n).map(|(k, _)| *k).collect();
            for k in above {
                headers.pop(&k);
            }
        }
        if let Some(hashes) = s.hashes.as_mut() {
            let above: Vec<_> = hashes.iter().filter(|(_, v)| **v > n).map(|(k, _)| *k).collect();
            for k in above {
                hashes.pop(&k);
            }
        }
        if let Some(receipts) = s.receipts.as_mut() {
            let above: Vec<_> = receipts.iter().filter(|(k, _)| **k > n).map(|(k, _)| *k).collect();
            for k in above {
                receipts.pop(&k);
            }
        }
    }
}

#[cfg(all(test, feature = "test-utils"))]
mod tests {
    use super::*;
    use crate::testing::test_chain;

    #[test]
    fn c10_a_read_that_raced_a_truncate_cannot_refill_the_cache() {
        let cache = BlockCache::new(CacheBudget::default());
        let blocks = test_chain(1, 20, B256::ZERO, 3);
        let stale = cache.generation(); // a read starts...
        cache.truncate_above(10); // ...a truncate returns...
        let header = &blocks[14].header; // ...the read brings block 15 back
        cache.insert_header(stale, header);
        cache.insert_receipts(stale, 15, Arc::new(blocks[14].stored_receipts()));
        assert!(cache.header_by_number(15).is_none());
        assert!(cache.header_by_hash(&header.hash()).is_none());
        assert!(cache.receipts(15).is_none());
        // A read that started after the truncate fills normally.
        cache.insert_header(cache.generation(), header);
        assert!(cache.header_by_number(15).is_some());
    }

    #[test]
    fn truncate_purges_only_above_the_cut() {
        let cache = BlockCache::new(CacheBudget::default());
        let blocks = test_chain(1, 20, B256::ZERO, 3);
        for b in &blocks {
            cache.insert_header(cache.generation(), &b.header);
        }
        cache.truncate_above(12);
        assert!(cache.header_by_number(12).is_some());
        assert!(cache.header_by_hash(&blocks[11].hash()).is_some());
        assert!(cache.header_by_number(13).is_none());
        assert!(cache.header_by_hash(&blocks[12].hash()).is_none());
    }
}
