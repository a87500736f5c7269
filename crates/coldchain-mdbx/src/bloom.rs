//! Receipt bloom checks with a cache of keccak results.
//!
//! Storing a receipt needs to know whether its bloom is the bloom of its
//! logs (`coldchain::codec` stores the bloom only when it is not). That
//! costs a keccak per address and topic, which dominated appends; addresses
//! and topics repeat a lot (contracts, event signatures, accounts), so the
//! writer keeps their hashes (and uses them again to rebuild the blooms of
//! drained receipts).

use alloy::primitives::{B256, Bloom, BloomInput, Log, keccak256};
use coldchain::Receipt;
use std::collections::HashMap;

/// Most cached hashes; the cache is cleared when full (~20 MiB).
const CAPACITY: usize = 1 << 18;

/// keccak256 of addresses (20 bytes) and topics (32 bytes), cached.
#[derive(Debug, Default)]
pub(crate) struct KeccakCache {
    map: HashMap<(u8, [u8; 32]), B256>,
}

impl KeccakCache {
    fn hash(&mut self, input: &[u8]) -> B256 {
        let mut key = [0u8; 32];
        let len = input.len().min(32);
        key[..len].copy_from_slice(&input[..len]);
        if input.len() > 32 {
            return keccak256(input);
        }
        if let Some(h) = self.map.get(&(len as u8, key)) {
            return *h;
        }
        if self.map.len() >= CAPACITY {
            self.map.clear();
        }
        let h = keccak256(input);
        self.map.insert((len as u8, key), h);
        h
    }

    /// The bloom of `logs` (equal to `alloy::primitives::logs_bloom`).
    pub(crate) fn logs_bloom(&mut self, logs: &[Log]) -> Bloom {
        let mut bloom = Bloom::ZERO;
        for log in logs {
            bloom.accrue(BloomInput::Hash(self.hash(log.address.as_slice())));
            for topic in log.topics() {
                bloom.accrue(BloomInput::Hash(self.hash(topic.as_slice())));
            }
        }
        bloom
    }

    /// Whether the receipt's bloom is exactly the bloom of its logs.
    pub(crate) fn bloom_is_logs_bloom(&mut self, receipt: &Receipt) -> bool {
        self.logs_bloom(receipt.logs()) == *receipt.logs_bloom()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use coldchain::testing::{ChainShape, test_chain_with};

    #[test]
    fn cached_blooms_equal_alloys() {
        let blocks = test_chain_with(0, 20, B256::ZERO, 5, ChainShape::default());
        let mut cache = KeccakCache::default();
        for _ in 0..2 {
            for r in blocks.iter().flat_map(|b| &b.receipts) {
                assert_eq!(cache.logs_bloom(r.logs()), alloy::primitives::logs_bloom(r.logs()));
                assert!(cache.bloom_is_logs_bloom(r));
            }
        }
    }
}
