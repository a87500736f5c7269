//! The index journal: the tx hashes and log index entries of the newest
//! blocks, one value per block, written in block order.
//!
//! An append writes each block's entries as one journal value (sequential
//! pages); once the journal holds [`JOURNAL_MAX`] blocks (by default), its
//! oldest blocks are flushed into a new index run in one sorted pass,
//! keeping the newest [`JOURNAL_KEEP`] (a reorg of up to that many blocks
//! then never touches the runs). See the
//! [crate docs](crate#the-index-journal).
//!
//! Journal blocks are always the newest stored blocks: a block is in the
//! journal or in the indexes, never both.
//!
//! Value layout (fixed-size records, so lookups binary-search the stored
//! bytes in place):
//!
//! ```text
//! 0x61 | tx count n (u32 LE) | entry count m (u32 LE)
//!      | key filter: 2,048 bytes, 2 bits per index key
//!      | n tx hashes (32 bytes each), ascending
//!      | n tx offsets in the block (u32 LE), in the order of the hashes
//!      | m entries: index key (33 bytes) ++ tx offset (u32 BE), ascending
//! ```

use crate::{
    error::MdbxError,
    layout::{IndexKey, sort_by_hash},
};
use alloy::primitives::B256;

/// Format byte of a journal value (kind 6, version 1).
pub(crate) const JOURNAL_FORMAT: u8 = 0x61;

/// Default journal blocks kept after a flush: truncations of up to this many blocks
/// only touch the journal.
pub(crate) const JOURNAL_KEEP: u64 = 64;

/// By default, a flush starts once the journal holds this many blocks.
pub(crate) const JOURNAL_MAX: u64 = 256;

const HEADER: usize = 9;
const FILTER_BYTES: usize = 2048;
const FILTER_BITS: u64 = (FILTER_BYTES * 8) as u64;
const ENTRY: usize = 37;

/// The two filter bits of a key.
fn filter_bits(key: &IndexKey) -> (usize, usize) {
    let p = key.prefix();
    // Mix the last 8 value bytes with the kind: values are hashes or
    // left-padded numbers, so their tail carries the entropy.
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&p[p.len() - 8..]);
    let x = u64::from_le_bytes(tail) ^ (u64::from(p[0]) << 56);
    let h = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let a = (h >> 40) % FILTER_BITS;
    let b = (h.rotate_left(23).wrapping_mul(0xC2B2_AE3D_27D4_EB4F) >> 40) % FILTER_BITS;
    (a as usize, b as usize)
}

/// Encodes the journal value of a block: its tx hashes (in block order) and
/// its `(key, tx offset)` entries (any order; sorted here).
pub(crate) fn encode(
    hashes: &[B256],
    entries: &mut [(IndexKey, u32)],
    out: &mut Vec<u8>,
) -> Result<(), MdbxError> {
    let n = u32::try_from(hashes.len())
        .map_err(|_| MdbxError::Corrupt("more than 2^32 transactions in a block".into()))?;
    let m = u32::try_from(entries.len())
        .map_err(|_| MdbxError::Corrupt("more than 2^32 index entries in a block".into()))?;
    entries.sort_unstable();
    out.clear();
    out.reserve(HEADER + FILTER_BYTES + hashes.len() * 36 + entries.len() * ENTRY);
    out.push(JOURNAL_FORMAT);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&m.to_le_bytes());
    let filter_at = out.len();
    out.resize(filter_at + FILTER_BYTES, 0);
    for (key, _) in entries.iter() {
        let (a, b) = filter_bits(key);
        out[filter_at + a / 8] |= 1 << (a % 8);
        out[filter_at + b / 8] |= 1 << (b % 8);
    }
    let mut sorted: Vec<(B256, u32)> =
        hashes.iter().enumerate().map(|(i, h)| (*h, i as u32)).collect();
    sort_by_hash(&mut sorted);
    for (h, _) in &sorted {
        out.extend_from_slice(h.as_slice());
    }
    for (_, i) in &sorted {
        out.extend_from_slice(&i.to_le_bytes());
    }
    for (key, off) in entries.iter() {
        out.extend_from_slice(&key.raw());
        out.extend_from_slice(&off.to_be_bytes());
    }
    Ok(())
}

/// A journal value, read in place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Journal<'a> {
    filter: &'a [u8],
    hashes: &'a [u8],
    offsets: &'a [u8],
    entries: &'a [u8],
}

impl<'a> Journal<'a> {
    /// Checks the layout of a stored value.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, MdbxError> {
        let bad = |what: &str| MdbxError::Corrupt(format!("journal value: {what}"));
        if bytes.first() != Some(&JOURNAL_FORMAT) {
            return Err(bad("unknown format byte"));
        }
        if bytes.len() < HEADER + FILTER_BYTES {
            return Err(bad("truncated header"));
        }
        let u32_at = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[i..i + 4]);
            u32::from_le_bytes(b) as usize
        };
        let (n, m) = (u32_at(1), u32_at(5));
        let expected = (HEADER + FILTER_BYTES) as u128 + n as u128 * 36 + m as u128 * ENTRY as u128;
        if bytes.len() as u128 != expected {
            return Err(bad("length does not match its counts"));
        }
        let (filter, rest) = bytes[HEADER..].split_at(FILTER_BYTES);
        let (hashes, rest) = rest.split_at(n * 32);
        let (offsets, entries) = rest.split_at(n * 4);
        Ok(Self { filter, hashes, offsets, entries })
    }

    /// Number of transactions of the block.
    pub(crate) fn tx_count(&self) -> usize {
        self.hashes.len() / 32
    }

    /// Number of `(key, tx)` entries.
    pub(crate) fn entry_count(&self) -> usize {
        self.entries.len() / ENTRY
    }

    /// The offset in the block of the transaction with hash `h`.
    pub(crate) fn find_hash(&self, h: &B256) -> Option<u32> {
        let n = self.tx_count();
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.hashes[mid * 32..mid * 32 + 32].cmp(h.as_slice()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(&self.offsets[mid * 4..mid * 4 + 4]);
                    return Some(u32::from_le_bytes(b));
                }
            }
        }
        None
    }

    /// The `(hash, offset)` pairs, ascending by hash.
    pub(crate) fn hashes(&self) -> impl Iterator<Item = (B256, u32)> + '_ {
        (0..self.tx_count()).map(|i| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&self.offsets[i * 4..i * 4 + 4]);
            (B256::from_slice(&self.hashes[i * 32..i * 32 + 32]), u32::from_le_bytes(b))
        })
    }

    /// Entry `i` (below [`Self::entry_count`]).
    pub(crate) fn entry(&self, i: usize) -> Result<(IndexKey, u32), MdbxError> {
        let e = self.entries.get(i * ENTRY..(i + 1) * ENTRY).ok_or_else(|| {
            MdbxError::Corrupt(format!("journal entry {i} of {}", self.entry_count()))
        })?;
        let key = IndexKey::from_raw(&e[..33])?;
        let mut b = [0u8; 4];
        b.copy_from_slice(&e[33..]);
        Ok((key, u32::from_be_bytes(b)))
    }

    /// Whether the block may have entries for `key` (no false negatives).
    pub(crate) fn may_contain(&self, key: &IndexKey) -> bool {
        let (a, b) = filter_bits(key);
        self.filter[a / 8] & (1 << (a % 8)) != 0 && self.filter[b / 8] & (1 << (b % 8)) != 0
    }

    /// Pushes the offsets of the transactions with `key` onto `out`
    /// (ascending).
    pub(crate) fn offsets_of(&self, key: &IndexKey, out: &mut Vec<u32>) {
        if !self.may_contain(key) {
            return;
        }
        let raw = key.raw();
        let m = self.entry_count();
        // First entry whose key is >= raw.
        let (mut lo, mut hi) = (0usize, m);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.entries[mid * ENTRY..mid * ENTRY + 33] < raw[..] {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        while lo < m && self.entries[lo * ENTRY..lo * ENTRY + 33] == raw[..] {
            let mut b = [0u8; 4];
            b.copy_from_slice(&self.entries[lo * ENTRY + 33..lo * ENTRY + 37]);
            out.push(u32::from_be_bytes(b));
            lo += 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use alloy::primitives::Address;

    #[test]
    fn round_trip_and_lookups() {
        let hashes: Vec<B256> = (0..5u8).map(|i| B256::repeat_byte(50 - i)).collect();
        let a = IndexKey::address(&Address::repeat_byte(1));
        let t = IndexKey::topic(1, &B256::repeat_byte(2));
        let mut entries = vec![(t, 3), (a, 4), (a, 0), (t, 1)];
        let mut out = Vec::new();
        encode(&hashes, &mut entries, &mut out).unwrap();
        let j = Journal::parse(&out).unwrap();
        assert_eq!(j.tx_count(), 5);
        assert_eq!(j.entry_count(), 4);
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(j.find_hash(h), Some(i as u32));
        }
        assert_eq!(j.find_hash(&B256::ZERO), None);
        let mut offs = Vec::new();
        j.offsets_of(&a, &mut offs);
        assert_eq!(offs, [0, 4]);
        offs.clear();
        j.offsets_of(&t, &mut offs);
        assert_eq!(offs, [1, 3]);
        offs.clear();
        j.offsets_of(&IndexKey::topic(0, &B256::repeat_byte(2)), &mut offs);
        assert!(offs.is_empty());
        let listed: Vec<_> = (0..j.entry_count()).map(|i| j.entry(i).unwrap()).collect();
        assert!(j.entry(j.entry_count()).is_err());
        assert_eq!(listed, vec![(a, 0), (a, 4), (t, 1), (t, 3)]);
        assert!(Journal::parse(&out[..out.len() - 1]).is_err());
    }
}
