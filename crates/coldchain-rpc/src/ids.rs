//! Subscription ids as Ethereum clients expect them: `0x` and 32 hex digits
//! (16 bytes, as geth makes them), not jsonrpsee's default integers.

use jsonrpsee::{core::traits::IdProvider, types::SubscriptionId};
use std::{
    hash::{BuildHasher, RandomState},
    sync::atomic::{AtomicU64, Ordering},
};

/// Makes ids `0x` + 32 hex digits: a keyed hash of a counter (hard to guess)
/// followed by the counter masked with a random key (so no two ids of one
/// provider are equal).
#[derive(Debug)]
pub struct HexIdProvider {
    counter: AtomicU64,
    keys: RandomState,
    mask: u64,
}

impl Default for HexIdProvider {
    fn default() -> Self {
        let keys = RandomState::new();
        let mask = keys.hash_one("coldchain subscription id mask");
        Self { counter: AtomicU64::new(1), keys, mask }
    }
}

impl HexIdProvider {
    /// The next id as a string.
    pub fn next_hex(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("0x{:016x}{:016x}", self.keys.hash_one(n), n ^ self.mask)
    }
}

impl IdProvider for HexIdProvider {
    fn next_id(&self) -> SubscriptionId<'static> {
        SubscriptionId::Str(self.next_hex().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_and_unique() {
        let p = HexIdProvider::default();
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| p.next_hex()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids {
            assert_eq!(id.len(), 34);
            assert!(id.starts_with("0x"));
            assert!(id[2..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        }
    }
}
