//! On-disk layout: table names, key encodings, the log index shard format
//! and the store's format version. See the [crate docs](crate) for the
//! overview.

use crate::error::MdbxError;
use alloy::primitives::{Address, B256, Bloom};
use roaring::RoaringBitmap;
use std::borrow::Cow;

/// Version of the on-disk format this build reads and writes. Stored in the
/// `meta` table under `format_version`; a store with another version is
/// refused on open.
pub const FORMAT_VERSION: u32 = 5;

/// Magic value stored under [`META_MAGIC`]: marks a directory as a coldchain
/// MDBX store.
pub const MAGIC: &[u8] = b"coldchain-mdbx";

/// `meta` key of the magic value.
pub const META_MAGIC: &[u8] = b"magic";
/// `meta` key of the format version (u32 big-endian).
pub const META_VERSION: &[u8] = b"format_version";
/// `meta` key of the store's chain id (u64 big-endian), absent until one is
/// recorded; an added key, not a format change.
pub const META_CHAIN_ID: &[u8] = b"chain_id";

/// Table names, in the order they are created.
pub(crate) mod table {
    /// Store metadata: magic and format version.
    pub(crate) const META: &str = "meta";
    /// Block number (u64 BE) -> header (`codec` header value).
    pub(crate) const HEADERS: &str = "headers";
    /// Block hash (32 bytes) -> block number (u64 BE).
    pub(crate) const BLOCK_HASHES: &str = "block_hashes";
    /// Block number (u64 BE) -> first tx number (u64 BE) ++ tx count (u32 BE).
    pub(crate) const BLOCK_TXS: &str = "block_txs";
    /// First tx number of a non-empty block (u64 BE) -> block number (u64 BE).
    pub(crate) const TX_BLOCKS: &str = "tx_blocks";
    /// Tx number (u64 BE) -> transaction with sender (`codec` tx value).
    pub(crate) const TRANSACTIONS: &str = "transactions";
    /// Tx number (u64 BE) -> receipt with context (`codec` receipt value).
    pub(crate) const RECEIPTS: &str = "receipts";
    /// Index runs have levels `0..LEVELS`; each level has its own
    /// `tx_hashes` and `log_index` table, so that a compaction empties the
    /// tables of its inputs' level whole.
    pub(crate) const LEVELS: usize = 8;
    /// By level: run id (u32 BE) ++ first 8 bytes of a tx hash -> tx numbers
    /// (u64 BE), sorted duplicates: each hit is checked against the stored
    /// transaction.
    pub(crate) const TX_HASHES: [&str; LEVELS] = [
        "tx_hashes_0",
        "tx_hashes_1",
        "tx_hashes_2",
        "tx_hashes_3",
        "tx_hashes_4",
        "tx_hashes_5",
        "tx_hashes_6",
        "tx_hashes_7",
    ];
    /// By level: run id (u32 BE) ++ index key (kind ++ value) ++ shard base
    /// (u64 BE) -> shard value.
    pub(crate) const LOG_INDEX: [&str; LEVELS] = [
        "log_index_0",
        "log_index_1",
        "log_index_2",
        "log_index_3",
        "log_index_4",
        "log_index_5",
        "log_index_6",
        "log_index_7",
    ];
    /// Run id (u32 BE) -> the run's block and tx range and level
    /// ([`super::Run`]).
    pub(crate) const RUNS: &str = "index_runs";
    /// Block number (u64 BE) -> journal value (tx hashes and index entries
    /// of a block not yet merged into `tx_hashes` and `log_index`).
    pub(crate) const JOURNAL: &str = "journal";
    /// Block number (u64 BE) -> the set bits of each receipt's bloom, in
    /// order (see [`super::encode_bloom_bits`]).
    pub(crate) const RECEIPT_BLOOMS: &str = "receipt_blooms";
    /// Block number (u64 BE) -> the block's ommer headers and withdrawals
    /// (`codec` block extras value).
    pub(crate) const BLOCK_EXTRAS: &str = "block_extras";

    /// The tables other than the per-level ones.
    pub(crate) const FIXED: [&str; 11] = [
        META,
        HEADERS,
        BLOCK_EXTRAS,
        BLOCK_HASHES,
        BLOCK_TXS,
        TX_BLOCKS,
        TRANSACTIONS,
        RECEIPTS,
        JOURNAL,
        RECEIPT_BLOOMS,
        RUNS,
    ];

    /// How many tables a store has.
    pub(crate) const COUNT: usize = FIXED.len() + 2 * LEVELS;
}

/// A cursor entry: key and value, borrowed from the transaction.
pub(crate) type Entry<'tx> = Option<(Cow<'tx, [u8]>, Cow<'tx, [u8]>)>;

/// A u64 as an 8-byte big-endian key (sorts numerically).
#[inline]
pub(crate) const fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// The `tx_hashes` key of a tx hash in run `run`: the run id and the
/// hash's first 8 bytes.
#[inline]
pub(crate) fn hash_key(run: u32, h: &B256) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&run.to_be_bytes());
    k[4..].copy_from_slice(&h.as_slice()[..8]);
    k
}

/// Reads a 4-byte big-endian run id from the start of `bytes`.
#[inline]
pub(crate) fn read_run(bytes: &[u8], what: &str) -> Result<u32, MdbxError> {
    read_array(bytes, what).map(u32::from_be_bytes)
}

/// The first `N` bytes of `bytes`, or an error naming `what`.
#[inline]
fn read_array<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], MdbxError> {
    match bytes.get(..N) {
        Some(b) => {
            let mut a = [0u8; N];
            a.copy_from_slice(b);
            Ok(a)
        }
        None => Err(MdbxError::Corrupt(format!("{what}: {} bytes, expected {N}", bytes.len()))),
    }
}

/// One run of the merged index: the `tx_hashes` and `log_index` entries of
/// a contiguous range of blocks, under keys that start with the run's id.
///
/// Runs are written whole (a journal flush, or a compaction of several
/// runs into one) and never extended, so each is written sequentially at
/// the end of its tables. Ids grow with the blocks: the run with the
/// greatest id holds the newest merged blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    /// The run's id (the key prefix of its entries).
    pub(crate) id: u32,
    /// Its first block.
    pub(crate) first_block: u64,
    /// Its last block.
    pub(crate) last_block: u64,
    /// Its first transaction number.
    pub(crate) first_tx: u64,
    /// One past its last transaction number.
    pub(crate) end_tx: u64,
    /// How many compactions built it: 0 for a journal flush, `l + 1` for a
    /// compaction of runs of level `l`.
    pub(crate) level: u8,
}

/// Format byte of a `index_runs` value.
const RUN_FORMAT: u8 = 0x71;

impl Run {
    /// The run's level as an index into the per-level tables (below
    /// [`table::LEVELS`]: [`Run::decode`] checks it).
    pub(crate) fn lvl(&self) -> usize {
        usize::from(self.level)
    }

    /// The `index_runs` value (the id is the key).
    pub(crate) fn encode(&self) -> [u8; 34] {
        let mut out = [0u8; 34];
        out[0] = RUN_FORMAT;
        out[1..9].copy_from_slice(&self.first_block.to_be_bytes());
        out[9..17].copy_from_slice(&self.last_block.to_be_bytes());
        out[17..25].copy_from_slice(&self.first_tx.to_be_bytes());
        out[25..33].copy_from_slice(&self.end_tx.to_be_bytes());
        out[33] = self.level;
        out
    }

    /// Parses an `index_runs` entry.
    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<Self, MdbxError> {
        if key.len() != 4 || value.len() != 34 || value[0] != RUN_FORMAT {
            return Err(MdbxError::Corrupt(format!(
                "index_runs entry of {} + {} bytes",
                key.len(),
                value.len()
            )));
        }
        let run = Self {
            id: read_run(key, "run id")?,
            first_block: read_be(&value[1..], "run first block")?,
            last_block: read_be(&value[9..], "run last block")?,
            first_tx: read_be(&value[17..], "run first tx")?,
            end_tx: read_be(&value[25..], "run end tx")?,
            level: value[33],
        };
        if run.first_block > run.last_block || run.first_tx > run.end_tx {
            return Err(MdbxError::Corrupt(format!("index run {} has an empty range", run.id)));
        }
        if usize::from(run.level) >= table::LEVELS {
            return Err(MdbxError::Corrupt(format!(
                "index run {} has level {}; this build reads levels below {}",
                run.id,
                run.level,
                table::LEVELS
            )));
        }
        Ok(run)
    }
}

/// Reads an 8-byte big-endian u64 from the start of `bytes`.
#[inline]
pub(crate) fn read_be(bytes: &[u8], what: &str) -> Result<u64, MdbxError> {
    read_array(bytes, what).map(u64::from_be_bytes)
}

/// Value of `block_txs`: where a block's transactions start, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockTxs {
    /// Global number of the block's first transaction.
    pub(crate) first: u64,
    /// Number of transactions in the block.
    pub(crate) count: u32,
}

impl BlockTxs {
    pub(crate) fn encode(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..8].copy_from_slice(&self.first.to_be_bytes());
        out[8..].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, MdbxError> {
        if bytes.len() != 12 {
            return Err(MdbxError::Corrupt(format!(
                "block_txs value: {} bytes, expected 12",
                bytes.len()
            )));
        }
        let first = read_be(bytes, "block_txs first tx")?;
        let mut c = [0u8; 4];
        c.copy_from_slice(&bytes[8..]);
        Ok(Self { first, count: u32::from_be_bytes(c) })
    }

    /// One past the last transaction number of the block.
    pub(crate) const fn end(self) -> u64 {
        self.first + self.count as u64
    }
}

// ---------------------------------------------------------------- receipt blooms

/// Marks a receipt bloom stored whole (256 bytes) in a `receipt_blooms`
/// value instead of as its set bits.
const BLOOM_WHOLE: u8 = 0xff;

/// Appends a receipt bloom to a `receipt_blooms` value: the number of set
/// bits (u8), then each bit's index (`byte * 8 + bit`, ascending) as a
/// LEB128 varint of its distance from the previous one (the first: from
/// -1), or [`BLOOM_WHOLE`] and the 256 bytes when it has 127 bits or more.
/// A receipt's bloom has ~3 bits per address and topic of its logs, spread
/// over 2,048: most distances are below 128, one byte each, so this is ~30
/// bytes a receipt (~18 bytes less than u16 indexes), and rebuilding the
/// bloom on a read costs no keccak.
///
/// The bloom is read as 32 little-endian words, so that bit `j` of word `w`
/// is bit index `64 * w + j` and empty words are skipped whole: a receipt
/// bloom has ~20 of its 2,048 bits set, and going byte by byte took 9% of a
/// one-block append.
pub(crate) fn encode_bloom_bits(bloom: &Bloom, out: &mut Vec<u8>) {
    let mut words = [0u64; 32];
    for (w, chunk) in words.iter_mut().zip(bloom.as_slice().chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *w = u64::from_le_bytes(b);
    }
    let count: u32 = words.iter().map(|w| w.count_ones()).sum();
    if count >= 127 {
        out.push(BLOOM_WHOLE);
        out.extend_from_slice(bloom.as_slice());
        return;
    }
    out.push(count as u8);
    let mut next = 0u16;
    for (i, word) in words.iter().enumerate() {
        let mut w = *word;
        while w != 0 {
            let bit = i as u16 * 64 + w.trailing_zeros() as u16;
            push_gap(bit - next, out);
            next = bit + 1;
            w &= w - 1;
        }
    }
}

/// Appends the distance to the next set bit (below 2,048): one byte below
/// 128, else two (low 7 bits with the high bit set, then the rest).
#[inline]
fn push_gap(gap: u16, out: &mut Vec<u8>) {
    if gap < 0x80 {
        out.push(gap as u8);
    } else {
        out.extend_from_slice(&[(gap & 0x7f) as u8 | 0x80, (gap >> 7) as u8]);
    }
}

/// Reads the next receipt bloom of a `receipt_blooms` value, advancing
/// `bytes`.
pub(crate) fn take_bloom_bits(bytes: &mut &[u8]) -> Result<Bloom, MdbxError> {
    let bad = || MdbxError::Corrupt("receipt_blooms value is truncated".into());
    let (&count, mut rest) = bytes.split_first().ok_or_else(bad)?;
    let mut bloom = Bloom::ZERO;
    if count == BLOOM_WHOLE {
        let whole = rest.get(..256).ok_or_else(bad)?;
        bloom.copy_from_slice(whole);
        *bytes = &rest[256..];
        return Ok(bloom);
    }
    let mut next = 0usize;
    for _ in 0..count {
        let (&first, after) = rest.split_first().ok_or_else(bad)?;
        let gap = if first < 0x80 {
            rest = after;
            usize::from(first)
        } else {
            let (&second, after) = after.split_first().ok_or_else(bad)?;
            if second >= 0x10 {
                return Err(MdbxError::Corrupt(format!(
                    "receipt_blooms value has a bit distance of more than 2,047 ({second:#04x})"
                )));
            }
            rest = after;
            usize::from(first & 0x7f) | usize::from(second) << 7
        };
        let i = next + gap;
        let byte = bloom.get_mut(i / 8).ok_or_else(|| {
            MdbxError::Corrupt(format!("receipt_blooms value names bloom bit {i}"))
        })?;
        *byte |= 1 << (i % 8);
        next = i + 1;
    }
    *bytes = rest;
    Ok(bloom)
}

/// Steps over the next receipt bloom of a `receipt_blooms` value without
/// building it, advancing `bytes`: what a read of receipt `i` does with the
/// `i` blooms before its own. Checks only that the value is long enough;
/// [`take_bloom_bits`] and `verify` check the bits themselves.
pub(crate) fn skip_bloom_bits(bytes: &mut &[u8]) -> Result<(), MdbxError> {
    let bad = || MdbxError::Corrupt("receipt_blooms value is truncated".into());
    let (&count, rest) = bytes.split_first().ok_or_else(bad)?;
    if count == BLOOM_WHOLE {
        *bytes = rest.get(256..).ok_or_else(bad)?;
        return Ok(());
    }
    // A distance takes two bytes when its first has the high bit set.
    let mut at = 0usize;
    for _ in 0..count {
        at += 1 + usize::from(rest.get(at).ok_or_else(bad)? >> 7);
    }
    *bytes = rest.get(at..).ok_or_else(bad)?;
    Ok(())
}

// ---------------------------------------------------------------- log index

/// Kind byte of an address key in the log index.
pub(crate) const KIND_ADDRESS: u8 = 0;
/// Kind byte of topic position `p` (0..=3) is `KIND_TOPIC0 + p`.
pub(crate) const KIND_TOPIC0: u8 = 1;

/// A log index key without its shard suffix: kind byte and value, as a fixed
/// array (addresses use the first 20 value bytes) so that it sorts and
/// compares without allocating.
///
/// Ordered as its bytes (the order of the stored keys), compared as two
/// big-endian `u128`s and a byte: appends sort hundreds of thousands of
/// keys, and a `memcmp` call per comparison was a tenth of the writer's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct IndexKey([u8; 33]);

impl IndexKey {
    #[inline]
    fn words(&self) -> (u128, u128, u8) {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        a.copy_from_slice(&self.0[..16]);
        b.copy_from_slice(&self.0[16..32]);
        (u128::from_be_bytes(a), u128::from_be_bytes(b), self.0[32])
    }
}

/// The byte order of two hashes, compared as big-endian `u128`s (inline,
/// unlike the `memcmp` call of the derived order); for large sorts.
#[inline]
pub(crate) fn cmp_hash(a: &B256, b: &B256) -> std::cmp::Ordering {
    let words = |h: &B256| {
        let mut hi = [0u8; 16];
        let mut lo = [0u8; 16];
        hi.copy_from_slice(&h[..16]);
        lo.copy_from_slice(&h[16..]);
        (u128::from_be_bytes(hi), u128::from_be_bytes(lo))
    };
    words(a).cmp(&words(b))
}

/// Sorts `(hash, n)` pairs by hash, then `n`, with [`cmp_hash`].
pub(crate) fn sort_by_hash<T: Ord>(pairs: &mut [(B256, T)]) {
    pairs.sort_unstable_by(|a, b| cmp_hash(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
}

impl Ord for IndexKey {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.words().cmp(&other.words())
    }
}

impl PartialOrd for IndexKey {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl IndexKey {
    pub(crate) fn address(address: &Address) -> Self {
        let mut k = [0u8; 33];
        k[0] = KIND_ADDRESS;
        k[1..21].copy_from_slice(address.as_slice());
        Self(k)
    }

    pub(crate) fn topic(position: usize, topic: &B256) -> Self {
        let mut k = [0u8; 33];
        // Callers pass positions 0..=3.
        k[0] = KIND_TOPIC0 + position as u8;
        k[1..].copy_from_slice(topic.as_slice());
        Self(k)
    }

    /// The fixed 33-byte form (kind, value; addresses zero-padded).
    pub(crate) fn raw(&self) -> [u8; 33] {
        self.0
    }

    /// Parses the fixed 33-byte form.
    pub(crate) fn from_raw(raw: &[u8]) -> Result<Self, MdbxError> {
        let mut k = [0u8; 33];
        if raw.len() != 33 {
            return Err(MdbxError::Corrupt(format!("index key of {} bytes", raw.len())));
        }
        k.copy_from_slice(raw);
        match k[0] {
            KIND_ADDRESS if k[21..].iter().all(|b| *b == 0) => Ok(Self(k)),
            kind if (KIND_TOPIC0..KIND_TOPIC0 + 4).contains(&kind) => Ok(Self(k)),
            kind => Err(MdbxError::Corrupt(format!("malformed index key of kind {kind}"))),
        }
    }

    /// The key's bytes in the table (21 bytes for an address, 33 for a topic).
    pub(crate) fn prefix(&self) -> &[u8] {
        if self.0[0] == KIND_ADDRESS { &self.0[..21] } else { &self.0[..] }
    }

    /// Full table key of the shard of run `run` starting at `base`.
    pub(crate) fn shard_key(&self, run: u32, base: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&run.to_be_bytes());
        out.extend_from_slice(self.prefix());
        out.extend_from_slice(&base.to_be_bytes());
    }

    /// Splits a table key into (run, index key, shard base).
    pub(crate) fn parse(key: &[u8]) -> Result<(u32, Self, u64), MdbxError> {
        let bad = || MdbxError::Corrupt(format!("log index key of {} bytes", key.len()));
        let run = read_run(key, "log index key")?;
        let key = &key[4..];
        let kind = *key.first().ok_or_else(bad)?;
        let value_len = match kind {
            KIND_ADDRESS => 20,
            k if (KIND_TOPIC0..KIND_TOPIC0 + 4).contains(&k) => 32,
            k => return Err(MdbxError::Corrupt(format!("log index key of unknown kind {k}"))),
        };
        if key.len() != 1 + value_len + 8 {
            return Err(bad());
        }
        let mut k = [0u8; 33];
        k[..1 + value_len].copy_from_slice(&key[..1 + value_len]);
        Ok((run, Self(k), read_be(&key[1 + value_len..], "shard base")?))
    }

    /// What this key indexes, for messages.
    pub(crate) fn describe(&self) -> String {
        match self.0[0] {
            KIND_ADDRESS => format!("address {}", Address::from_slice(&self.0[1..21])),
            k => format!("topic{} {}", k - KIND_TOPIC0, B256::from_slice(&self.0[1..])),
        }
    }
}

/// Format byte of a log index shard stored as a roaring bitmap (portable
/// serialization) of `position - base` as u32.
pub(crate) const SHARD_ROARING: u8 = 0x51;

/// Format byte of a small log index shard stored as ascending
/// `position - base` u32 little-endian values. Roaring's portable format
/// spends ~10 bytes per value when the values fall in different 2^16
/// containers (a rare key's transactions lie far apart); 4 bytes here.
pub(crate) const SHARD_ARRAY: u8 = 0x52;

/// A shard is closed (a new one is started) once it holds this many
/// positions, so that rewriting the open shard on append stays cheap.
pub(crate) const SHARD_MAX_ENTRIES: u64 = 1024;

/// Encodes a shard value into `out`: the smaller of the two formats.
pub(crate) fn encode_shard(bitmap: &RoaringBitmap, out: &mut Vec<u8>) -> Result<(), MdbxError> {
    out.clear();
    let array = bitmap.len() as usize * 4;
    let roaring = bitmap.serialized_size();
    if array < roaring {
        out.reserve(1 + array);
        out.push(SHARD_ARRAY);
        for v in bitmap {
            out.extend_from_slice(&v.to_le_bytes());
        }
        return Ok(());
    }
    out.reserve(1 + roaring);
    out.push(SHARD_ROARING);
    bitmap.serialize_into(&mut *out).map_err(|e| MdbxError::Corrupt(format!("shard: {e}")))
}

/// Encodes a shard value from ascending offsets: the array form directly
/// when it is the smaller for certain (fewer than 8 offsets: a roaring
/// bitmap takes at least 16 + 2 bytes per offset), else like
/// [`encode_shard`]. Same bytes as `encode_shard` of the same offsets,
/// without building a bitmap for the many keys that have a few.
pub(crate) fn encode_offsets(offsets: &[u32], out: &mut Vec<u8>) -> Result<(), MdbxError> {
    if offsets.len() < 8 {
        out.clear();
        out.push(SHARD_ARRAY);
        for v in offsets {
            out.extend_from_slice(&v.to_le_bytes());
        }
        return Ok(());
    }
    let bitmap = RoaringBitmap::from_sorted_iter(offsets.iter().copied())
        .map_err(|_| MdbxError::Corrupt("shard offsets not ascending".into()))?;
    encode_shard(&bitmap, out)
}

/// The offsets of a shard value, ascending, into `out` (appended).
pub(crate) fn shard_offsets(bytes: &[u8], out: &mut Vec<u32>) -> Result<(), MdbxError> {
    match bytes.split_first() {
        Some((&SHARD_ARRAY, rest)) if rest.len() % 4 == 0 => {
            let start = out.len();
            out.extend(rest.chunks_exact(4).map(|c| {
                let mut b = [0u8; 4];
                b.copy_from_slice(c);
                u32::from_le_bytes(b)
            }));
            if out[start..].windows(2).any(|w| w[0] >= w[1]) {
                return Err(MdbxError::Corrupt("log index shard: values not ascending".into()));
            }
            Ok(())
        }
        _ => {
            out.extend(&decode_shard(bytes)?);
            Ok(())
        }
    }
}

/// Decodes a shard value.
pub(crate) fn decode_shard(bytes: &[u8]) -> Result<RoaringBitmap, MdbxError> {
    match bytes.split_first() {
        Some((&SHARD_ROARING, rest)) => RoaringBitmap::deserialize_unchecked_from(rest)
            .map_err(|e| MdbxError::Corrupt(format!("log index shard: {e}"))),
        Some((&SHARD_ARRAY, rest)) if rest.len() % 4 == 0 => {
            RoaringBitmap::from_sorted_iter(rest.chunks_exact(4).map(|c| {
                let mut b = [0u8; 4];
                b.copy_from_slice(c);
                u32::from_le_bytes(b)
            }))
            .map_err(|_| MdbxError::Corrupt("log index shard: values not ascending".into()))
        }
        Some((b, _)) => Err(MdbxError::Corrupt(format!(
            "log index shard has format byte {b:#04x} (or a bad length); this build reads \
             {SHARD_ROARING:#04x} and {SHARD_ARRAY:#04x}"
        ))),
        None => Err(MdbxError::Corrupt("empty log index shard".into())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn index_key_order_is_byte_order() {
        // Keys that differ in every region: the kind byte, the first and
        // second 16 value bytes and the last one, with shared prefixes.
        let mut keys = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..400u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut raw = [0u8; 33];
            raw[0] = (i % 5) as u8;
            let byte = (x % 3) as u8;
            let at = [1, 15, 16, 17, 31, 32][(x >> 8) as usize % 6];
            raw[at..].fill(byte);
            raw[at] = (x >> 16) as u8;
            keys.push(IndexKey(raw));
        }
        for a in &keys {
            for b in &keys {
                assert_eq!(a.cmp(b), a.0.cmp(&b.0), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn hash_order_is_byte_order() {
        let hashes: Vec<B256> = (0..200u64)
            .map(|i| {
                let mut h = B256::repeat_byte((i % 3) as u8);
                h[(i as usize * 7) % 32] = (i * 37) as u8;
                h
            })
            .collect();
        for a in &hashes {
            for b in &hashes {
                assert_eq!(cmp_hash(a, b), a.cmp(b));
            }
        }
    }

    #[test]
    fn index_keys_round_trip_and_sort() {
        let a = IndexKey::address(&Address::repeat_byte(7));
        let t = IndexKey::topic(2, &B256::repeat_byte(9));
        let mut buf = Vec::new();
        a.shard_key(3, 42, &mut buf);
        assert_eq!(buf.len(), 33);
        assert_eq!(IndexKey::parse(&buf).unwrap(), (3, a, 42));
        t.shard_key(u32::MAX, u64::MAX, &mut buf);
        assert_eq!(buf.len(), 45);
        assert_eq!(IndexKey::parse(&buf).unwrap(), (u32::MAX, t, u64::MAX));
        assert!(a < t);
        assert!(IndexKey::parse(&buf[..44]).is_err());
        assert!(IndexKey::parse(&buf[..3]).is_err());
    }

    #[test]
    fn bloom_bits_round_trip() {
        let mut sparse = Bloom::ZERO;
        sparse.m3_2048(b"a");
        sparse.m3_2048(b"bc");
        let mut dense = Bloom::ZERO;
        for i in 0..200u32 {
            dense.m3_2048(&i.to_be_bytes());
        }
        let full = Bloom::repeat_byte(0xff);
        let mut out = Vec::new();
        for b in [Bloom::ZERO, sparse, dense, full, sparse] {
            encode_bloom_bits(&b, &mut out);
        }
        let mut rest = out.as_slice();
        for b in [Bloom::ZERO, sparse, dense, full, sparse] {
            assert_eq!(take_bloom_bits(&mut rest).unwrap(), b);
        }
        assert!(rest.is_empty());
        assert!(take_bloom_bits(&mut rest).is_err());
        // Truncated, past bit 2,047, a distance over 2,047.
        assert!(take_bloom_bits(&mut &[2u8, 1][..]).is_err());
        assert!(take_bloom_bits(&mut &[1u8, 0x80][..]).is_err());
        assert!(take_bloom_bits(&mut &[2u8, 0xff, 0x0f, 0][..]).is_err());
        assert!(take_bloom_bits(&mut &[1u8, 0x80, 0x10][..]).is_err());
        // The last bit alone: a two-byte distance.
        let mut last = Bloom::ZERO;
        last[255] = 0x80;
        out.clear();
        encode_bloom_bits(&last, &mut out);
        assert_eq!(out, [1, 0xff, 0x0f]);
        assert_eq!(take_bloom_bits(&mut out.as_slice()).unwrap(), last);
        // Blooms of 0 to 60 items, one value, read back in order.
        let blooms: Vec<Bloom> = (0..61u32)
            .map(|n| {
                let mut b = Bloom::ZERO;
                for i in 0..n {
                    b.m3_2048(&(i * 7919 + n).to_le_bytes());
                }
                b
            })
            .collect();
        out.clear();
        for b in &blooms {
            encode_bloom_bits(b, &mut out);
        }
        let mut rest = out.as_slice();
        for b in &blooms {
            assert_eq!(take_bloom_bits(&mut rest).unwrap(), *b);
        }
        assert!(rest.is_empty());
        // The same bytes as the format's definition, bit by bit from byte 0
        // (word boundaries, the last bits and the whole form included).
        let reference = |bloom: &Bloom| {
            let bits: Vec<u16> =
                (0..2048u16).filter(|i| bloom[usize::from(i / 8)] & (1 << (i % 8)) != 0).collect();
            if bits.len() >= 127 {
                return [&[BLOOM_WHOLE][..], bloom.as_slice()].concat();
            }
            let mut out = vec![bits.len() as u8];
            let mut next = 0u16;
            for bit in bits {
                push_gap(bit - next, &mut out);
                next = bit + 1;
            }
            out
        };
        let mut edges = Bloom::ZERO;
        for i in [0usize, 7, 8, 63, 64, 65, 127, 128, 1023, 1984, 2047] {
            edges[i / 8] |= 1 << (i % 8);
        }
        for b in blooms.iter().chain([&edges, &dense, &full, &last]) {
            out.clear();
            encode_bloom_bits(b, &mut out);
            assert_eq!(out, reference(b));
        }
        // Skipping steps over exactly what taking reads.
        out.clear();
        let all: Vec<Bloom> = blooms.iter().copied().chain([edges, dense, full, last]).collect();
        for b in &all {
            encode_bloom_bits(b, &mut out);
        }
        for skipped in 0..=all.len() {
            let mut rest = out.as_slice();
            for _ in 0..skipped {
                skip_bloom_bits(&mut rest).unwrap();
            }
            for b in &all[skipped..] {
                assert_eq!(take_bloom_bits(&mut rest).unwrap(), *b);
            }
            assert!(rest.is_empty());
        }
        assert!(skip_bloom_bits(&mut &[][..]).is_err());
        assert!(skip_bloom_bits(&mut &[2u8, 1][..]).is_err());
        assert!(skip_bloom_bits(&mut &[1u8, 0x80][..]).is_err());
        assert!(skip_bloom_bits(&mut &[BLOOM_WHOLE, 0][..]).is_err());
    }

    #[test]
    fn shard_round_trip() {
        // Sparse: the array form; dense: roaring.
        let sparse: RoaringBitmap = [0u32, 5, 70_000, u32::MAX].into_iter().collect();
        let dense: RoaringBitmap = (0u32..600).map(|i| i * 3).collect();
        let mut out = Vec::new();
        for (bm, format) in [(&sparse, SHARD_ARRAY), (&dense, SHARD_ROARING)] {
            encode_shard(bm, &mut out).unwrap();
            assert_eq!(out[0], format);
            assert_eq!(&decode_shard(&out).unwrap(), bm);
            let mut bad = out.clone();
            bad[0] = 0x53;
            assert!(decode_shard(&bad).is_err());
        }
        // Not ascending.
        let bad = [SHARD_ARRAY, 5, 0, 0, 0, 1, 0, 0, 0];
        assert!(decode_shard(&bad).is_err());
        assert!(shard_offsets(&bad, &mut Vec::new()).is_err());
        // From offsets: the same bytes as from a bitmap, and back.
        for n in [1u32, 2, 7, 8, 9, 40, 600, 1024] {
            for step in [1u32, 3, 70_001] {
                let offsets: Vec<u32> = (0..n).map(|i| i * step).collect();
                let bitmap: RoaringBitmap = offsets.iter().copied().collect();
                let mut a = Vec::new();
                let mut b = Vec::new();
                encode_offsets(&offsets, &mut a).unwrap();
                encode_shard(&bitmap, &mut b).unwrap();
                assert_eq!(a, b, "{n} offsets, step {step}");
                let mut back = vec![7];
                shard_offsets(&a, &mut back).unwrap();
                assert_eq!(back[1..], offsets[..]);
            }
        }
    }
}
