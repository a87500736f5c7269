//! Row formats: what a block becomes in the tables, the binary COPY payloads
//! that carry it, and the way back to coldchain's types.
//!
//! # Stored values
//!
//! - `blocks.header`: [`coldchain::codec::encode_header`] (format byte, hash,
//!   header RLP).
//! - `blocks.extras`: [`coldchain::codec::encode_extras`] (ommer headers and
//!   withdrawals).
//! - `txs.tx`: [`coldchain::codec::encode_tx`] (format byte, sender, EIP-2718
//!   bytes); the hash is recomputed on decode.
//! - `txs.receipt`: a compact receipt row, format byte [`RECEIPT_ROW_FORMAT`]:
//!
//!   ```text
//!   0xA1 | receipt type u8 | flags u8 (0x01 success, 0x02 post-state, 0x40 bloom)
//!        | post-state root [32]? | cumulative gas varint | gas used varint
//!        | bloom [256]? (only when it is not the bloom of the logs)
//!   ```
//!
//!   Everything else a [`StoredReceipt`] carries is derived on read exactly
//!   as [`coldchain::BlockData::stored_receipts`] derives it at append: the
//!   transaction hash, sender, recipient, created address, effective gas
//!   price and blob gas from the transaction; block hash, number, timestamp
//!   and blob gas price from the header; the logs from `logs`; the first
//!   log index from `txs.first_log`. This is why the core codec's receipt
//!   value (which repeats ~45 bytes of block context per receipt and embeds
//!   the logs) is not used here: logs are rows of their own, for the log
//!   indexes, and are stored once.
//! - `logs`: one row per log with its block-wide index, its transaction's
//!   index and hash (so a log query needs no join per log), address, topics
//!   (NULL where absent; each in its stored form,
//!   [`coldchain::codec::compact_topic`]) and data.

use alloy::{
    consensus::{
        Eip658Value, Receipt as ConsensusReceipt, ReceiptEnvelope, ReceiptWithBloom, Transaction,
        TxType,
    },
    eips::Typed2718,
    primitives::{Address, B256, Bloom, Bytes, Log, LogData, TxKind},
};
use bytes::Bytes as Chunk;
use coldchain::{
    BlockData, ColdError, ColdResult, RecoveredTx, RpcLog, SealedHeader, StoredReceipt,
    codec::{self, CodecError, put_varint, take_varint},
    model::blob_gas_price,
};

use crate::error::corrupt;

/// Format byte of a receipt row (kind 0xA, version 1).
pub const RECEIPT_ROW_FORMAT: u8 = 0xA1;

const FLAG_SUCCESS: u8 = 0x01;
const FLAG_POST_STATE: u8 = 0x02;
const FLAG_BLOOM: u8 = 0x40;
const KNOWN_FLAGS: u8 = FLAG_SUCCESS | FLAG_POST_STATE | FLAG_BLOOM;

/// Size of the chunks a COPY payload is sent in.
const CHUNK: usize = 1 << 20;

/// The COPY columns of each table, in payload order.
pub(crate) const COPY_BLOCKS: &str =
    "COPY coldchain.blocks (number, timestamp, hash, header, extras) FROM STDIN (FORMAT binary)";
pub(crate) const COPY_TXS: &str = "COPY coldchain.txs (block_number, hash8, tx_index, first_log, \
                                   n_logs, tx, receipt) FROM STDIN (FORMAT binary)";
pub(crate) const COPY_LOGS: &str = "COPY coldchain.logs (block_number, log_index, tx_index, \
                                    address, topic0, topic1, topic2, topic3, data, tx_hash) FROM \
                                    STDIN (FORMAT binary)";

/// A PostgreSQL binary COPY payload being written.
struct CopyWriter {
    buf: Vec<u8>,
    rows: u64,
}

impl CopyWriter {
    fn new(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 19);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self { buf, rows: 0 }
    }

    fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self.rows += 1;
    }

    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&4i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn bytes(&mut self, b: &[u8]) -> ColdResult<()> {
        let len = i32::try_from(b.len()).map_err(|_| {
            ColdError::backend(crate::PgError::OutOfRange(format!(
                "a value of {} bytes is larger than PostgreSQL's 1 GB field limit",
                b.len()
            )))
        })?;
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(b);
        Ok(())
    }

    fn opt_bytes(&mut self, b: Option<&[u8]>) -> ColdResult<()> {
        match b {
            Some(b) => self.bytes(b),
            None => {
                self.buf.extend_from_slice(&(-1i32).to_be_bytes());
                Ok(())
            }
        }
    }

    fn finish(mut self) -> CopyPayload {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        let all = Chunk::from(self.buf);
        let mut chunks = Vec::with_capacity(all.len() / CHUNK + 1);
        let mut at = 0;
        while at < all.len() {
            let end = (at + CHUNK).min(all.len());
            chunks.push(all.slice(at..end));
            at = end;
        }
        CopyPayload { chunks, rows: self.rows }
    }
}

/// One table's COPY payload, in chunks.
pub(crate) struct CopyPayload {
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) rows: u64,
}

/// A batch of blocks ready for COPY.
pub(crate) struct EncodedBatch {
    pub(crate) blocks: CopyPayload,
    pub(crate) txs: CopyPayload,
    pub(crate) logs: CopyPayload,
}

/// A block number as the `bigint` it is stored as; `None` above `i64::MAX`.
pub(crate) fn num(n: u64) -> Option<i64> {
    i64::try_from(n).ok()
}

/// A block number bound for range conditions: clamped to `i64::MAX`.
pub(crate) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The first 8 bytes of a transaction hash, as the `txs.hash8` key.
pub(crate) fn hash8(hash: &B256) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash[..8]);
    i64::from_be_bytes(b)
}

fn invalid(number: u64, reason: String) -> ColdError {
    ColdError::InvalidBlock { number, reason }
}

/// Encodes blocks into the three COPY payloads; with `parallel`, the logs
/// payload is built on a second thread. CPU work: run it off the async
/// threads for big batches.
pub(crate) fn encode_batch(blocks: &[BlockData], parallel: bool) -> ColdResult<EncodedBatch> {
    let (heads, logs) = if parallel {
        std::thread::scope(|scope| {
            let logs = scope.spawn(|| encode_logs(blocks));
            let heads = encode_heads(blocks);
            let logs = logs.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (heads, logs)
        })
    } else {
        (encode_heads(blocks), encode_logs(blocks))
    };
    let (blocks, txs) = heads?;
    Ok(EncodedBatch { blocks, txs, logs: logs? })
}

fn block_number(block: &BlockData) -> ColdResult<i64> {
    let number = block.number();
    num(number).ok_or_else(|| invalid(number, "number above 2^63 - 1 (PostgreSQL bigint)".into()))
}

/// The `blocks` and `txs` payloads.
fn encode_heads(blocks: &[BlockData]) -> ColdResult<(CopyPayload, CopyPayload)> {
    let n_txs: usize = blocks.iter().map(|b| b.transactions.len()).sum();
    let mut bw = CopyWriter::new(blocks.len() * 700);
    let mut tw = CopyWriter::new(n_txs * 260);
    let mut scratch = Vec::with_capacity(512);
    for block in blocks {
        let number = block.number();
        let n = block_number(block)?;
        let timestamp = i64::try_from(block.header.timestamp)
            .map_err(|_| invalid(number, "timestamp above 2^63 - 1 (PostgreSQL bigint)".into()))?;
        if block.transactions.len() != block.receipts.len() {
            return Err(invalid(
                number,
                format!(
                    "{} transactions but {} receipts",
                    block.transactions.len(),
                    block.receipts.len()
                ),
            ));
        }
        bw.row(5);
        bw.i64(n);
        bw.i64(timestamp);
        bw.bytes(block.hash().as_slice())?;
        scratch.clear();
        codec::encode_header_into(&block.header, &mut scratch)?;
        bw.bytes(&scratch)?;
        scratch.clear();
        codec::encode_extras_into(&block.extras, &mut scratch);
        bw.bytes(&scratch)?;

        let mut prev_cumulative = 0u64;
        let mut next_log = 0u64;
        for (index, (tx, receipt)) in block.transactions.iter().zip(&block.receipts).enumerate() {
            let tx_index = i32::try_from(index)
                .map_err(|_| invalid(number, "more than 2^31 transactions".into()))?;
            let logs = receipt.logs();
            let first_log = i32::try_from(next_log)
                .map_err(|_| invalid(number, "more than 2^31 logs".into()))?;
            let log_count = i32::try_from(logs.len())
                .map_err(|_| invalid(number, "more than 2^31 logs".into()))?;
            let cumulative = receipt.cumulative_gas_used();
            tw.row(7);
            tw.i64(n);
            tw.i64(hash8(tx.inner().tx_hash()));
            tw.i32(tx_index);
            tw.i32(first_log);
            tw.i32(log_count);
            scratch.clear();
            codec::encode_tx_into(tx, &mut scratch);
            tw.bytes(&scratch)?;
            scratch.clear();
            encode_receipt_row(receipt, cumulative.saturating_sub(prev_cumulative), &mut scratch)?;
            tw.bytes(&scratch)?;
            prev_cumulative = cumulative;
            next_log += logs.len() as u64;
        }
    }
    Ok((bw.finish(), tw.finish()))
}

/// The `logs` payload.
fn encode_logs(blocks: &[BlockData]) -> ColdResult<CopyPayload> {
    let n_logs: usize = blocks.iter().flat_map(|b| &b.receipts).map(|r| r.logs().len()).sum();
    let mut lw = CopyWriter::new(n_logs * 260);
    for block in blocks {
        let number = block.number();
        let n = block_number(block)?;
        let mut next_log = 0u64;
        for (index, (tx, receipt)) in block.transactions.iter().zip(&block.receipts).enumerate() {
            let tx_index = i32::try_from(index)
                .map_err(|_| invalid(number, "more than 2^31 transactions".into()))?;
            let tx_hash = *tx.inner().tx_hash();
            for log in receipt.logs() {
                let topics = log.topics();
                if topics.len() > codec::MAX_TOPICS {
                    return Err(ColdError::Codec(CodecError(format!(
                        "receipt of tx {tx_hash}: a log has {} topics, at most {} are possible; \
                         refusing to store it",
                        topics.len(),
                        codec::MAX_TOPICS
                    ))));
                }
                let log_index = i32::try_from(next_log)
                    .map_err(|_| invalid(number, "more than 2^31 logs".into()))?;
                lw.row(10);
                lw.i64(n);
                lw.i32(log_index);
                lw.i32(tx_index);
                lw.bytes(log.address.as_slice())?;
                for i in 0..codec::MAX_TOPICS {
                    lw.opt_bytes(topics.get(i).map(codec::compact_topic))?;
                }
                lw.bytes(&log.data.data)?;
                lw.bytes(tx_hash.as_slice())?;
                next_log += 1;
            }
        }
    }
    Ok(lw.finish())
}

/// Appends the compact receipt row of `receipt` to `out`.
pub(crate) fn encode_receipt_row(
    receipt: &ReceiptEnvelope,
    gas_used: u64,
    out: &mut Vec<u8>,
) -> ColdResult<()> {
    let status = receipt
        .as_receipt()
        .map(|r| r.status)
        .ok_or_else(|| ColdError::Codec(CodecError("unsupported receipt envelope".into())))?;
    let explicit_bloom = coldchain::bloom::logs_bloom(receipt.logs()) != *receipt.logs_bloom();
    let mut flags = 0u8;
    match status {
        Eip658Value::Eip658(true) => flags |= FLAG_SUCCESS,
        Eip658Value::Eip658(false) => {}
        Eip658Value::PostState(_) => flags |= FLAG_POST_STATE,
    }
    if explicit_bloom {
        flags |= FLAG_BLOOM;
    }
    out.push(RECEIPT_ROW_FORMAT);
    out.push(receipt.tx_type().ty());
    out.push(flags);
    if let Eip658Value::PostState(root) = status {
        out.extend_from_slice(root.as_slice());
    }
    put_varint(out, receipt.cumulative_gas_used().into());
    put_varint(out, gas_used.into());
    if explicit_bloom {
        out.extend_from_slice(receipt.logs_bloom().as_slice());
    }
    Ok(())
}

/// A decoded receipt row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReceiptRow {
    tx_type: TxType,
    status: Eip658Value,
    cumulative_gas_used: u64,
    gas_used: u64,
    bloom: Option<Bloom>,
}

/// Decodes a receipt row.
pub(crate) fn decode_receipt_row(bytes: &[u8]) -> ColdResult<ReceiptRow> {
    let err = |msg: &str| corrupt(format!("receipt row: {msg}"));
    let (&format, rest) = bytes.split_first().ok_or_else(|| err("empty value"))?;
    if format != RECEIPT_ROW_FORMAT {
        return Err(err(&format!(
            "format byte {format:#04x}, this build reads {RECEIPT_ROW_FORMAT:#04x} only: written \
             by another coldchain version, or corrupt"
        )));
    }
    let [ty, flags, rest @ ..] = rest else { return Err(err("truncated")) };
    let tx_type =
        TxType::try_from(*ty).map_err(|_| err(&format!("unknown transaction type {ty}")))?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(err(&format!("unknown flag bits {:#04x}", flags & !KNOWN_FLAGS)));
    }
    let mut rest = rest;
    let status = if flags & FLAG_POST_STATE != 0 {
        if rest.len() < 32 {
            return Err(err("truncated post-state root"));
        }
        let (root, tail) = rest.split_at(32);
        rest = tail;
        Eip658Value::PostState(B256::from_slice(root))
    } else {
        Eip658Value::Eip658(flags & FLAG_SUCCESS != 0)
    };
    let mut varint = |what: &str| {
        take_varint(&mut rest)
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| err(&format!("bad varint for {what}")))
    };
    let cumulative_gas_used = varint("cumulative gas")?;
    let gas_used = varint("gas used")?;
    let bloom = if flags & FLAG_BLOOM != 0 {
        if rest.len() != 256 {
            return Err(err("bloom of the wrong length"));
        }
        let bloom = Bloom::from_slice(rest);
        rest = &[];
        Some(bloom)
    } else {
        None
    };
    if !rest.is_empty() {
        return Err(err(&format!("{} trailing bytes", rest.len())));
    }
    Ok(ReceiptRow { tx_type, status, cumulative_gas_used, gas_used, bloom })
}

/// A [`StoredReceipt`] from its parts, derived exactly as
/// [`BlockData::stored_receipts`] derives it at append.
pub(crate) fn stored_receipt(
    header: &SealedHeader,
    tx: &RecoveredTx,
    tx_index: u64,
    first_log_index: u64,
    row: ReceiptRow,
    logs: Vec<Log>,
) -> StoredReceipt {
    let envelope = tx.inner();
    let from = tx.signer();
    let contract_address = match envelope.kind() {
        TxKind::Create => Some(from.create(envelope.nonce())),
        TxKind::Call(_) => None,
    };
    let blob_gas_used = envelope.blob_gas_used();
    let logs_bloom = row.bloom.unwrap_or_else(|| coldchain::bloom::logs_bloom(&logs));
    let receipt = ReceiptEnvelope::from_typed(
        row.tx_type,
        ReceiptWithBloom {
            receipt: ConsensusReceipt {
                status: row.status,
                cumulative_gas_used: row.cumulative_gas_used,
                logs,
            },
            logs_bloom,
        },
    );
    StoredReceipt {
        receipt,
        tx_hash: *envelope.tx_hash(),
        block_number: header.number,
        block_hash: header.hash(),
        block_timestamp: header.timestamp,
        tx_index,
        gas_used: row.gas_used,
        effective_gas_price: envelope.effective_gas_price(header.base_fee_per_gas),
        first_log_index,
        contract_address,
        from,
        to: envelope.to(),
        blob_gas_used,
        blob_gas_price: blob_gas_used.and(blob_gas_price(header)),
    }
}

/// Reads a column, naming it on failure.
pub(crate) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    idx: usize,
) -> ColdResult<T> {
    row.try_get(idx).map_err(|e| corrupt(format!("column {idx}: {e}")))
}

/// A 32-byte value from a column.
pub(crate) fn b256(bytes: &[u8]) -> ColdResult<B256> {
    B256::try_from(bytes).map_err(|_| corrupt(format!("expected 32 bytes, found {}", bytes.len())))
}

/// An address from a column.
pub(crate) fn address(bytes: &[u8]) -> ColdResult<Address> {
    Address::try_from(bytes)
        .map_err(|_| corrupt(format!("expected a 20-byte address, found {}", bytes.len())))
}

/// u64 from a non-negative integer column.
pub(crate) fn u64_of(v: impl TryInto<u64>) -> ColdResult<u64> {
    v.try_into().map_err(|_| corrupt("negative number in an unsigned column"))
}

/// A consensus log from the columns `first..first + 6` (address, topic0..3,
/// data).
pub(crate) fn log_at(row: &tokio_postgres::Row, first: usize) -> ColdResult<Log> {
    let address = address(col::<&[u8]>(row, first)?)?;
    let mut topics = Vec::with_capacity(4);
    for i in 0..codec::MAX_TOPICS {
        match col::<Option<&[u8]>>(row, first + 1 + i)? {
            Some(t) => topics.push(codec::expand_topic(t).ok_or_else(|| {
                corrupt(format!("a topic column holds {} bytes that are no stored topic", t.len()))
            })?),
            None => break,
        }
    }
    let data = Bytes::copy_from_slice(col::<&[u8]>(row, first + 5)?);
    Ok(Log { address, data: LogData::new_unchecked(topics, data) })
}

/// The columns of a log query, in order (a query that joins `blocks` adds
/// the block's hash and timestamp after them).
pub(crate) const LOG_COLUMNS: &str = "l.block_number, l.log_index, l.tx_index, l.tx_hash, \
                                      l.address, l.topic0, l.topic1, l.topic2, l.topic3, l.data";

/// An RPC log from a row with [`LOG_COLUMNS`] and then the block's hash
/// and timestamp.
pub(crate) fn rpc_log_joined(row: &tokio_postgres::Row) -> ColdResult<RpcLog> {
    rpc_log(row, b256(col::<&[u8]>(row, 10)?)?, u64_of(col::<i64>(row, 11)?)?)
}

/// An RPC log from a row with [`LOG_COLUMNS`], in the block with this hash
/// and timestamp.
pub(crate) fn rpc_log(
    row: &tokio_postgres::Row,
    block_hash: B256,
    block_timestamp: u64,
) -> ColdResult<RpcLog> {
    Ok(RpcLog {
        inner: log_at(row, 4)?,
        block_hash: Some(block_hash),
        block_number: Some(u64_of(col::<i64>(row, 0)?)?),
        block_timestamp: Some(block_timestamp),
        transaction_hash: Some(b256(col::<&[u8]>(row, 3)?)?),
        transaction_index: Some(u64_of(col::<i32>(row, 2)?)?),
        log_index: Some(u64_of(col::<i32>(row, 1)?)?),
        removed: false,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use coldchain::testing::{fixtures, test_chain};

    /// Derived receipts equal the ones the model computes at append, for
    /// synthetic blocks (all tx types, creations, failures) and real ones.
    #[test]
    fn receipts_round_trip_through_rows() {
        let mut blocks = test_chain(0, 30, B256::ZERO, 7);
        blocks.extend(fixtures::mainnet_rlp_blocks());
        let mut checked = 0;
        for block in &blocks {
            let mut prev = 0u64;
            for (i, (stored, (tx, receipt))) in block
                .stored_receipts()
                .into_iter()
                .zip(block.transactions.iter().zip(&block.receipts))
                .enumerate()
            {
                let mut row = Vec::new();
                let cum = receipt.cumulative_gas_used();
                encode_receipt_row(receipt, cum - prev, &mut row).unwrap();
                prev = cum;
                let decoded = decode_receipt_row(&row).unwrap();
                let tx = codec::decode_tx(&codec::encode_tx(tx)).unwrap();
                let back = stored_receipt(
                    &block.header,
                    &tx,
                    i as u64,
                    stored.first_log_index,
                    decoded,
                    receipt.logs().to_vec(),
                );
                assert_eq!(back, stored, "block {} tx {i}", block.number());
                checked += 1;
            }
        }
        assert!(checked > 100, "{checked}");
    }

    #[test]
    fn odd_receipt_rows_round_trip() {
        let block = test_chain(0, 10, B256::ZERO, 9)
            .into_iter()
            .find(|b| b.receipts.iter().any(|r| !r.logs().is_empty()))
            .unwrap();
        let mut receipt = block.receipts.iter().find(|r| !r.logs().is_empty()).unwrap().clone();
        {
            let rb = receipt.as_receipt_with_bloom_mut().unwrap();
            rb.receipt.status = Eip658Value::PostState(B256::repeat_byte(7));
            rb.logs_bloom = Bloom::repeat_byte(0x55);
        }
        let mut row = Vec::new();
        encode_receipt_row(&receipt, u64::MAX, &mut row).unwrap();
        let d = decode_receipt_row(&row).unwrap();
        assert_eq!(d.status, Eip658Value::PostState(B256::repeat_byte(7)));
        assert_eq!(d.bloom, Some(Bloom::repeat_byte(0x55)));
        assert_eq!(d.gas_used, u64::MAX);
        for n in 0..row.len() {
            assert!(decode_receipt_row(&row[..n]).is_err(), "prefix {n}");
        }
        row.push(0);
        assert!(decode_receipt_row(&row).is_err());
        row.pop();
        row[0] = 0xA2;
        let e = decode_receipt_row(&row).unwrap_err().to_string();
        assert!(e.contains("0xa2"), "{e}");
    }
}
