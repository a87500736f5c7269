//! Reads the logs of a stored receipt in place, without decoding the whole
//! receipt.
//!
//! `coldchain::codec::decode_receipt` rebuilds the receipt's bloom (a few
//! keccaks per log) and allocates every log; a log query needs neither for
//! the logs it does not return. This reader walks the receipt layout that
//! `coldchain::codec` documents (format byte `0x32`) and hands out borrowed
//! logs; only matches are materialized, checked with the filter's own rules
//! ([`LogFilter::matches_address`], [`LogFilter::matches_topics`]). Any
//! other format byte falls back to the full decode, and the tests compare
//! both paths on every receipt they store.

use crate::{error::OrCold, layout::IndexKey, logs::Flow};
use alloy::primitives::{Address, B256, Bytes, Log, LogData};
use coldchain::{
    ColdResult, LogFilter, RpcLog,
    codec::{self, CodecError, MAX_TOPICS, RECEIPT_FORMAT, skip_topics, take_topics, take_varint},
};

use coldchain::codec::receipt_flags::{
    FLAG_BLOB_GAS_PRICE, FLAG_BLOB_GAS_USED, FLAG_BLOOM, FLAG_CONTRACT, FLAG_POST_STATE, FLAG_TO,
};

/// The context fields of a receipt and its encoded logs.
struct ReceiptLogs<'a> {
    block_number: u64,
    block_hash: B256,
    block_timestamp: u64,
    tx_index: u64,
    first_log_index: u64,
    tx_hash: B256,
    log_count: u64,
    logs: &'a [u8],
}

fn err(msg: &str) -> CodecError {
    CodecError(format!("receipt: {msg}: corrupt stored data"))
}

/// The error of a value that ends too soon; kept out of line so that the
/// readers below inline.
#[cold]
#[inline(never)]
fn truncated() -> CodecError {
    err("truncated")
}

#[inline(always)]
fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], CodecError> {
    match buf.split_at_checked(n) {
        Some((head, tail)) => {
            *buf = tail;
            Ok(head)
        }
        None => Err(truncated()),
    }
}

/// The next `N` bytes as an array (an address or a hash), advancing `buf`.
#[inline(always)]
fn take_array<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], CodecError> {
    match buf.split_first_chunk::<N>() {
        Some((head, tail)) => {
            *buf = tail;
            Ok(*head)
        }
        None => Err(truncated()),
    }
}

/// Skips a varint (values written by the codec, which checks them on
/// decode; here only the framing matters).
#[inline]
fn varint(buf: &mut &[u8]) -> Result<(), CodecError> {
    match buf.iter().take(19).position(|b| b & 0x80 == 0) {
        Some(i) => {
            *buf = &buf[i + 1..];
            Ok(())
        }
        None => Err(err("malformed varint")),
    }
}

#[inline(always)]
fn varint_u64(buf: &mut &[u8]) -> Result<u64, CodecError> {
    // Fast path, inline: a one-byte value.
    if let Some((&b, rest)) = buf.split_first()
        && b & 0x80 == 0
    {
        *buf = rest;
        return Ok(u64::from(b));
    }
    varint_u64_long(buf)
}

/// [`varint_u64`] of two bytes or more.
#[inline(never)]
fn varint_u64_long(buf: &mut &[u8]) -> Result<u64, CodecError> {
    let v = take_varint(buf).ok_or_else(|| err("malformed varint"))?;
    u64::try_from(v).map_err(|_| err("integer above 64 bits"))
}

/// Splits a `0x32` receipt into its context and its log bytes; `None` for
/// another format (the caller decodes it fully).
fn parse(bytes: &[u8]) -> Result<Option<ReceiptLogs<'_>>, CodecError> {
    let Some((&RECEIPT_FORMAT, mut b)) = bytes.split_first() else { return Ok(None) };
    let head = take(&mut b, 2)?;
    let flags = head[1];
    if flags & FLAG_POST_STATE != 0 {
        take(&mut b, 32)?;
    }
    varint(&mut b)?; // cumulative gas
    varint(&mut b)?; // gas used
    varint(&mut b)?; // effective gas price
    let block_number = varint_u64(&mut b)?;
    let block_hash = B256::from(take_array::<32>(&mut b)?);
    let block_timestamp = varint_u64(&mut b)?;
    let tx_index = varint_u64(&mut b)?;
    let first_log_index = varint_u64(&mut b)?;
    let tx_hash = B256::from(take_array::<32>(&mut b)?);
    take(&mut b, 20)?; // from
    if flags & FLAG_TO != 0 {
        take(&mut b, 20)?;
    }
    if flags & FLAG_CONTRACT != 0 {
        take(&mut b, 20)?;
    }
    if flags & FLAG_BLOB_GAS_USED != 0 {
        varint(&mut b)?;
    }
    if flags & FLAG_BLOB_GAS_PRICE != 0 {
        varint(&mut b)?;
    }
    if flags & FLAG_BLOOM != 0 {
        take(&mut b, 256)?;
    }
    let log_count = varint_u64(&mut b)?;
    Ok(Some(ReceiptLogs {
        block_number,
        block_hash,
        block_timestamp,
        tx_index,
        first_log_index,
        tx_hash,
        log_count,
        logs: b,
    }))
}

/// A log's topics, read in place.
fn topics(buf: &mut &[u8]) -> Result<([B256; MAX_TOPICS], usize), CodecError> {
    take_topics(buf).map_err(err)
}

/// Emits the logs of one stored receipt that match `filter`, in order. Each
/// log goes out without its data (an empty `Bytes`), which follows as a
/// slice, so that the consumer chooses how to keep it (see [`Gathered`]).
pub(crate) fn receipt_logs(
    bytes: &[u8],
    filter: &LogFilter,
    emit: &mut impl FnMut(RpcLog, &[u8]) -> ColdResult<Flow>,
) -> ColdResult<Flow> {
    let Some(r) = parse(bytes).cold()? else {
        return full_decode(bytes, filter, emit);
    };
    let mut b = r.logs;
    for i in 0..r.log_count {
        let address = Address::from(take_array::<20>(&mut b).cold()?);
        if !filter.matches_address(&address) {
            // Ruled out by its address: skip the rest of the log unread.
            skip_topics(&mut b).map_err(err).cold()?;
            let len = usize::try_from(varint_u64(&mut b).cold()?).unwrap_or(usize::MAX);
            take(&mut b, len).cold()?;
            continue;
        }
        let (topics, n) = topics(&mut b).cold()?;
        let topics = &topics[..n];
        let len = usize::try_from(varint_u64(&mut b).cold()?).unwrap_or(usize::MAX);
        let data = take(&mut b, len).cold()?;
        if !filter.matches_topics(topics) {
            continue;
        }
        let rpc = RpcLog {
            inner: Log { address, data: LogData::new_unchecked(topics.to_vec(), Bytes::new()) },
            block_hash: Some(r.block_hash),
            block_number: Some(r.block_number),
            block_timestamp: Some(r.block_timestamp),
            transaction_hash: Some(r.tx_hash),
            transaction_index: Some(r.tx_index),
            log_index: Some(r.first_log_index + i),
            removed: false,
        };
        if emit(rpc, data)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    if !b.is_empty() {
        return Err(err("trailing bytes after the logs").into());
    }
    Ok(Flow::Continue)
}

/// Logs whose data lives in a few shared buffers: each log's data is a
/// slice of one, so gathering many logs takes one allocation per
/// [`CHUNK`] bytes of data instead of one per log. A log keeps its whole
/// buffer alive, so a `Gathered` suits logs that are handed out together
/// (a query's answer, a stream's burst).
///
/// The buffers are small on purpose: one buffer grown to the size of a large
/// answer would be fresh memory on every query, which the kernel has to
/// zero page by page.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    logs: Vec<RpcLog>,
    /// Filled buffers.
    full: Vec<Vec<u8>>,
    /// The buffer being filled.
    current: Vec<u8>,
    /// Each log's data: its buffer (an index into `full`, or `full.len()`
    /// for `current`) and its range there.
    spans: Vec<(u32, u32, u32)>,
}

/// Bytes of log data per buffer of a [`Gathered`] (a larger log takes a
/// buffer of its own size).
const CHUNK: usize = 8 * 1024;

impl Gathered {
    /// Room for `logs` logs.
    pub(crate) fn with_capacity(logs: usize) -> Self {
        Self { logs: Vec::with_capacity(logs), spans: Vec::with_capacity(logs), ..Self::default() }
    }

    /// Adds a log (its data field is ignored) with its data.
    pub(crate) fn push(&mut self, log: RpcLog, data: &[u8]) {
        if self.current.len() + data.len() > self.current.capacity() {
            let next = Vec::with_capacity(CHUNK.max(data.len()));
            let filled = std::mem::replace(&mut self.current, next);
            if !filled.is_empty() {
                self.full.push(filled);
            }
        }
        let start = self.current.len();
        self.current.extend_from_slice(data);
        // Buffers and logs number far below 2^32 (a log is at most a few MB
        // and a buffer holds one log or CHUNK bytes).
        self.spans.push((self.full.len() as u32, start as u32, self.current.len() as u32));
        self.logs.push(log);
    }

    /// How many logs are gathered.
    pub(crate) fn len(&self) -> usize {
        self.logs.len()
    }

    /// Gives each log its data, a slice of its buffer; the buffers start
    /// anew.
    fn seal(&mut self) {
        let mut buffers: Vec<Bytes> = self.full.drain(..).map(Bytes::from).collect();
        buffers.push(Bytes::from(std::mem::take(&mut self.current)));
        for (log, (buffer, start, end)) in self.logs.iter_mut().zip(self.spans.drain(..)) {
            if end > start
                && let Some(buffer) = buffers.get(buffer as usize)
            {
                log.inner.data.data = buffer.slice(start as usize..end as usize);
            }
        }
    }

    /// The gathered logs, with their data; leaves `self` empty and ready
    /// for more (a stream's next burst).
    pub(crate) fn take(&mut self) -> std::vec::Drain<'_, RpcLog> {
        self.seal();
        self.logs.drain(..)
    }

    /// All the gathered logs, with their data.
    pub(crate) fn into_logs(mut self) -> Vec<RpcLog> {
        self.seal();
        self.logs
    }
}

/// The tx hash of a stored receipt, read in place.
pub(crate) fn receipt_tx_hash(bytes: &[u8]) -> ColdResult<B256> {
    match parse(bytes).cold()? {
        Some(r) => Ok(r.tx_hash),
        None => Ok(codec::decode_receipt(bytes).cold()?.tx_hash),
    }
}

/// The tx hash of a stored receipt and the index keys of its logs (sorted,
/// deduplicated) into `keys`; for truncations.
pub(crate) fn receipt_keys(bytes: &[u8], keys: &mut Vec<IndexKey>) -> ColdResult<B256> {
    let Some(r) = parse(bytes).cold()? else {
        let receipt = codec::decode_receipt(bytes).cold()?;
        crate::write::log_keys(receipt.receipt.logs(), keys);
        return Ok(receipt.tx_hash);
    };
    keys.clear();
    let mut b = r.logs;
    for _ in 0..r.log_count {
        let address = Address::from(take_array::<20>(&mut b).cold()?);
        keys.push(IndexKey::address(&address));
        let (topics, n) = topics(&mut b).cold()?;
        for (pos, t) in topics[..n].iter().enumerate() {
            keys.push(IndexKey::topic(pos, t));
        }
        let len = usize::try_from(varint_u64(&mut b).cold()?).unwrap_or(usize::MAX);
        take(&mut b, len).cold()?;
    }
    keys.sort_unstable();
    keys.dedup();
    Ok(r.tx_hash)
}

/// The slow path: a full decode (also reports corrupt values in detail).
fn full_decode(
    bytes: &[u8],
    filter: &LogFilter,
    emit: &mut impl FnMut(RpcLog, &[u8]) -> ColdResult<Flow>,
) -> ColdResult<Flow> {
    let receipt = codec::decode_receipt(bytes).cold()?;
    for mut log in receipt.rpc_logs() {
        if filter.matches(&log.inner) {
            let data = std::mem::take(&mut log.inner.data.data);
            if emit(log, &data)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
    }
    Ok(Flow::Continue)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use alloy::primitives::B256;
    use coldchain::{
        codec::encode_receipt,
        testing::{ChainShape, test_address, test_chain_with, test_topic},
    };

    fn collect(bytes: &[u8], filter: &LogFilter, fast: bool) -> Vec<RpcLog> {
        let mut out = Gathered::default();
        let mut emit = |l, data: &[u8]| {
            out.push(l, data);
            Ok(Flow::Continue)
        };
        if fast {
            receipt_logs(bytes, filter, &mut emit).unwrap();
        } else {
            full_decode(bytes, filter, &mut emit).unwrap();
        }
        out.into_logs()
    }

    /// The matches of `filter` in a receipt, by the plain decoder.
    fn expected(bytes: &[u8], filter: &LogFilter) -> Vec<RpcLog> {
        let receipt = coldchain::codec::decode_receipt(bytes).unwrap();
        receipt.rpc_logs().filter(|l| filter.matches(&l.inner)).collect()
    }

    #[test]
    fn gathered_logs_keep_their_own_data_across_buffers_and_bursts() {
        // Data of every size up to a few hundred bytes, none, and larger
        // than a buffer, so that logs straddle buffer boundaries.
        let logs: Vec<RpcLog> = (0..400u64)
            .map(|i| {
                let len = match i {
                    100 => 3 * CHUNK,
                    101 => CHUNK,
                    _ => (i as usize * 37) % 301,
                };
                let data: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
                RpcLog {
                    inner: Log::new_unchecked(test_address(i), vec![test_topic(i)], data.into()),
                    log_index: Some(i),
                    ..RpcLog::default()
                }
            })
            .collect();
        assert!(logs.iter().map(|l| l.data().data.len()).sum::<usize>() > 10 * CHUNK);
        // Taken now and then, as a stream's bursts are, or all at once, as
        // a query's answer is.
        for every in [1, 7, 64, usize::MAX] {
            let mut gathered = Gathered::with_capacity(4);
            let mut got = Vec::new();
            for (i, log) in logs.iter().enumerate() {
                let mut bare = log.clone();
                bare.inner.data.data = Bytes::new();
                gathered.push(bare, &log.data().data);
                if i % every == every - 1 {
                    got.extend(gathered.take());
                    assert_eq!(gathered.len(), 0);
                }
            }
            got.extend(gathered.into_logs());
            assert_eq!(got, logs, "taken every {every}");
        }
    }

    #[test]
    fn scanner_equals_full_decode() {
        let shape = ChainShape { max_txs: 10, max_logs: 6, addresses: 4, topics: 5 };
        let blocks = test_chain_with(0, 40, B256::ZERO, 9, shape);
        let filters = [
            LogFilter::default(),
            LogFilter::default().address(test_address(1)),
            LogFilter::default().topic(0, vec![test_topic(1), test_topic(2)]),
            LogFilter::default().address(test_address(2)).topic(2, vec![test_topic(3)]),
            LogFilter::default().topic(3, vec![test_topic(0)]).topic(1, vec![]),
        ];
        let mut receipts = 0;
        for r in blocks.iter().flat_map(|b| b.stored_receipts()) {
            let bytes = encode_receipt(&r).unwrap();
            for f in &filters {
                let expected = expected(&bytes, f);
                assert_eq!(collect(&bytes, f, true), expected, "{f:?}");
                assert_eq!(collect(&bytes, f, false), expected, "{f:?}");
            }
            for n in 0..bytes.len() {
                // Truncations never panic, on the reading and the skipping
                // path.
                for f in &filters[..2] {
                    let mut emit = |_, _: &[u8]| Ok(Flow::Continue);
                    let _ = receipt_logs(&bytes[..n], f, &mut emit);
                }
            }
            receipts += 1;
        }
        assert!(receipts > 100);
    }

    #[test]
    fn receipt_keys_equal_log_keys() {
        let blocks = test_chain_with(0, 20, B256::ZERO, 4, ChainShape::default());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for r in blocks.iter().flat_map(|b| b.stored_receipts()) {
            let bytes = encode_receipt(&r).unwrap();
            assert_eq!(receipt_keys(&bytes, &mut a).unwrap(), r.tx_hash);
            crate::write::log_keys(r.receipt.logs(), &mut b);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn scanner_equals_full_decode_on_mainnet() {
        let blocks = coldchain::testing::fixtures::mainnet_rlp_blocks();
        for r in blocks.iter().flat_map(|b| b.stored_receipts()) {
            let bytes = encode_receipt(&r).unwrap();
            let f = LogFilter::default();
            assert_eq!(collect(&bytes, &f, true), expected(&bytes, &f));
            assert_eq!(collect(&bytes, &f, false), expected(&bytes, &f));
        }
    }
}
