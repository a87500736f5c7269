//! Log blooms with a small per-thread cache of each input's bloom bits.
//!
//! A receipt's bloom costs one keccak per address and topic of its logs.
//! Verification rebuilds every receipt's bloom from its logs, and the
//! PostgreSQL backend, which does not store blooms, rebuilds them on every
//! read: the keccaks are the bulk of that CPU. Addresses and event
//! signatures repeat heavily across logs, so their three bloom bits are
//! cached per thread (direct-mapped, keyed by the full input, compared on
//! every hit). The result is bit for bit [`alloy::primitives::logs_bloom`].

use alloy::primitives::{Bloom, BloomInput, Log, keccak256};
use std::cell::RefCell;

const SLOTS: usize = 8192;

#[derive(Clone, Copy)]
struct Slot {
    len: u8,
    key: [u8; 32],
    /// The input's three bloom bits: (byte index, mask); two may share a byte.
    bits: [(u8, u8); 3],
}

const EMPTY: Slot = Slot { len: 0, key: [0; 32], bits: [(0, 0); 3] };

thread_local! {
    static CACHE: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

fn slot_of(input: &[u8]) -> usize {
    // FNV-1a over the last 16 bytes (accounts in topics are left-padded
    // with zeros) and the length.
    let tail = &input[input.len().saturating_sub(16)..];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ input.len() as u64;
    for b in tail {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h as usize) & (SLOTS - 1)
}

/// The three bloom bits of an input, as [`Bloom::m3_2048`] sets them: each
/// of the first three big-endian byte pairs of its keccak is an 11-bit
/// index, counted from the bloom's last bit.
fn bits_of(input: &[u8]) -> [(u8, u8); 3] {
    let hash = keccak256(input);
    let mut bits = [(0u8, 0u8); 3];
    for (k, bit) in bits.iter_mut().enumerate() {
        let index = ((usize::from(hash[2 * k]) << 8) | usize::from(hash[2 * k + 1])) & 0x7ff;
        *bit = ((255 - index / 8) as u8, 1 << (index % 8));
    }
    bits
}

fn accrue(bloom: &mut Bloom, cache: &mut [Slot], input: &[u8]) {
    if input.len() > 32 || cache.len() != SLOTS {
        bloom.accrue(BloomInput::Raw(input));
        return;
    }
    let slot = &mut cache[slot_of(input)];
    if usize::from(slot.len) != input.len() || slot.key[..input.len()] != *input {
        let mut s = Slot { len: input.len() as u8, bits: bits_of(input), ..EMPTY };
        s.key[..input.len()].copy_from_slice(input);
        *slot = s;
    }
    let bytes = bloom.as_mut_slice();
    for (i, mask) in slot.bits {
        bytes[usize::from(i)] |= mask;
    }
}

/// The bloom of `logs`, equal to [`alloy::primitives::logs_bloom`].
pub fn logs_bloom(logs: &[Log]) -> Bloom {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() != SLOTS {
            cache.resize(SLOTS, EMPTY);
        }
        let mut bloom = Bloom::ZERO;
        for log in logs {
            accrue(&mut bloom, &mut cache, log.address.as_slice());
            for topic in log.topics() {
                accrue(&mut bloom, &mut cache, topic.as_slice());
            }
        }
        bloom
    })
}

#[cfg(all(test, feature = "test-utils"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::{fixtures, test_chain};

    #[test]
    fn bits_are_those_alloy_sets() {
        for input in [&b""[..], b"a", &[0xab; 20], &[0x5e; 32]] {
            let mut ours = Bloom::ZERO;
            for (i, mask) in bits_of(input) {
                ours[usize::from(i)] |= mask;
            }
            let mut theirs = Bloom::ZERO;
            theirs.m3_2048(input);
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn equals_alloy_logs_bloom() {
        let mut blocks = test_chain(0, 20, alloy::primitives::B256::ZERO, 5);
        blocks.extend(fixtures::mainnet_rlp_blocks());
        for _ in 0..2 {
            for block in &blocks {
                for r in &block.receipts {
                    assert_eq!(logs_bloom(r.logs()), alloy::primitives::logs_bloom(r.logs()));
                }
            }
        }
    }
}
