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

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], CodecError> {
    if buf.len() < n {
        return Err(err("truncated"));
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
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

#[inline]
fn varint_u64(buf: &mut &[u8]) -> Result<u64, CodecError> {
    // Fast path: a one-byte value.
    if let Some(&b) = buf.first()
        && b & 0x80 == 0
    {
        *buf = &buf[1..];
        return Ok(u64::from(b));
    }
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
    let block_hash = B256::from_slice(take(&mut b, 32)?);
    let block_timestamp = varint_u64(&mut b)?;
    let tx_index = varint_u64(&mut b)?;
    let first_log_index = varint_u64(&mut b)?;
    let tx_hash = B256::from_slice(take(&mut b, 32)?);
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

/// Emits the logs of one stored receipt that match `filter`, in order.
pub(crate) fn receipt_logs(
    bytes: &[u8],
    filter: &LogFilter,
    emit: &mut impl FnMut(RpcLog) -> ColdResult<Flow>,
) -> ColdResult<Flow> {
    let Some(r) = parse(bytes).cold()? else {
        return full_decode(bytes, filter, emit);
    };
    let mut b = r.logs;
    for i in 0..r.log_count {
        let address = Address::from_slice(take(&mut b, 20).cold()?);
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
        let log = Log {
            address,
            data: LogData::new_unchecked(topics.to_vec(), Bytes::copy_from_slice(data)),
        };
        let rpc = RpcLog {
            inner: log,
            block_hash: Some(r.block_hash),
            block_number: Some(r.block_number),
            block_timestamp: Some(r.block_timestamp),
            transaction_hash: Some(r.tx_hash),
            transaction_index: Some(r.tx_index),
            log_index: Some(r.first_log_index + i),
            removed: false,
        };
        if emit(rpc)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    if !b.is_empty() {
        return Err(err("trailing bytes after the logs").into());
    }
    Ok(Flow::Continue)
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
        let address = take(&mut b, 20).cold()?;
        keys.push(IndexKey::address(&Address::from_slice(address)));
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
    emit: &mut impl FnMut(RpcLog) -> ColdResult<Flow>,
) -> ColdResult<Flow> {
    let receipt = codec::decode_receipt(bytes).cold()?;
    for log in receipt.rpc_logs() {
        if filter.matches(&log.inner) && emit(log)? == Flow::Stop {
            return Ok(Flow::Stop);
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
        let mut out = Vec::new();
        let mut emit = |l| {
            out.push(l);
            Ok(Flow::Continue)
        };
        if fast {
            receipt_logs(bytes, filter, &mut emit).unwrap();
        } else {
            full_decode(bytes, filter, &mut emit).unwrap();
        }
        out
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
                assert_eq!(collect(&bytes, f, true), collect(&bytes, f, false), "{f:?}");
            }
            for n in 0..bytes.len() {
                // Truncations never panic, on the reading and the skipping
                // path.
                for f in &filters[..2] {
                    let mut emit = |_| Ok(Flow::Continue);
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
            assert_eq!(collect(&bytes, &f, true), collect(&bytes, &f, false));
        }
    }
}
