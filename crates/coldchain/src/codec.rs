//! Compact, versioned storage encodings for persistent backends.
//!
//! Every value starts with one **format byte**: the kind of value in the high
//! nibble, the format version in the low nibble. Decoding a value of another
//! kind, an unknown version, truncated bytes or trailing bytes is a
//! [`CodecError`] naming what was being read; nothing is truncated or
//! guessed silently.
//!
//! | value | format byte | layout after it |
//! |---|---|---|
//! | [`SealedHeader`] | `0x11` | 32-byte hash, header RLP |
//! | [`RecoveredTx`] | `0x21` | 20-byte sender, EIP-2718 transaction bytes |
//! | [`StoredReceipt`] | `0x32` | see below |
//! | [`BlockExtras`] | `0x41` | flags u8 (`0x01`: withdrawals follow), RLP list of ommer headers, RLP list of withdrawals? |
//!
//! A header whose RLP could not be decoded (an optional field present after
//! an absent one) is refused at encode time rather than written unreadable.
//!
//! **Header hash: stored, not recomputed.** 32 bytes per block cost nothing
//! next to a block's receipts and save a keccak per header read; the hash is
//! checked once, when the block is verified before append
//! ([`crate::verify::verify_block`]). Transaction hashes *are* recomputed on
//! decode (decoding EIP-2718 bytes yields the hash), which costs one keccak
//! per transaction read and no space.
//!
//! **Receipt: one self-contained value.** A [`StoredReceipt`] is encoded with
//! its whole context (transaction hash, block number, hash and timestamp,
//! index, gas used, effective gas price, first log index, contract address,
//! sender, recipient, blob gas) so that a receipt-by-hash lookup or a block's
//! range scan needs one read and no join. The price is ~45 bytes of block
//! context repeated per receipt; the real-data test prints the average size.
//! Integers are unsigned LEB128 varints (minimal form enforced on decode);
//! counts are varints, never fixed-width. Layout (`?` = present when its flag
//! bit is set):
//!
//! ```text
//! 0x32 | tx type u8 (0..=4) | flags u8
//!      | post-state root [32]?         (flag 0x02; else bit 0x01 = success)
//!      | cumulative gas | gas used | effective gas price (u128)
//!      | block number | block hash [32] | block timestamp
//!      | tx index | first log index | tx hash [32] | from [20]
//!      | to [20]? (0x04) | contract address [20]? (0x08)
//!      | blob gas used? (0x10) | blob gas price u128? (0x20)
//!      | bloom [256]? (0x40: only when the stored bloom is not the bloom of
//!      |               the logs, so that a round trip is always exact)
//!      | log count
//!      | per log: address [20] | topics byte | topics [32 or 20]*
//!      |          | data length | data
//! ```
//!
//! The topics byte holds the topic count (0..=4) in its low nibble and, in
//! its high nibble, one bit per topic that starts with 12 zero bytes (an
//! address, or a small number): such a topic is stored as its last 20 bytes.
//! Events index addresses (every ERC-20 and ERC-721 `Transfer` and
//! `Approval` has two), so this saves 12 bytes on most topics after the
//! first at no cost. A topic that could be short is never stored long, so
//! every receipt has exactly one encoding. (Version 1, `0x31`, stored every
//! topic in 32 bytes.)
//!
//! The bloom is otherwise rebuilt from the logs on decode (256 bytes saved
//! per receipt for a few keccaks per log).

use crate::{BlockExtras, RecoveredTx, SealedHeader, StoredReceipt};
use alloy::{
    consensus::{
        Eip658Value, Header, Receipt as ConsensusReceipt, ReceiptEnvelope, ReceiptWithBloom,
        TxEnvelope, TxType,
    },
    eips::{Decodable2718, Encodable2718, Typed2718},
    primitives::{Address, B256, Bloom, Bytes, Log, LogData, Sealed, logs_bloom},
    rlp::{Decodable, Encodable},
};

/// A stored value could not be decoded (or a value cannot be encoded).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// Format byte of a [`SealedHeader`] value (kind 1, version 1).
pub const HEADER_FORMAT: u8 = 0x11;
/// Format byte of a [`RecoveredTx`] value (kind 2, version 1).
pub const TX_FORMAT: u8 = 0x21;
/// Format byte of a [`StoredReceipt`] value (kind 3, version 2).
pub const RECEIPT_FORMAT: u8 = 0x32;

/// Format byte of a [`BlockExtras`] value (kind 4, version 1).
pub const EXTRAS_FORMAT: u8 = 0x41;

/// Most topics a log can carry (`LOG0`..`LOG4`).
pub const MAX_TOPICS: usize = 4;

/// Bits of a stored receipt's flags byte: which optional fields follow.
/// Public so that backends that read receipts in place (without a full
/// decode) share them with the codec instead of copying them.
pub mod receipt_flags {
    /// Status 1 (success).
    pub const FLAG_SUCCESS: u8 = 0x01;
    /// A pre-Byzantium post-state root instead of a status.
    pub const FLAG_POST_STATE: u8 = 0x02;
    /// A recipient address follows.
    pub const FLAG_TO: u8 = 0x04;
    /// A created contract's address follows.
    pub const FLAG_CONTRACT: u8 = 0x08;
    /// Blob gas used follows.
    pub const FLAG_BLOB_GAS_USED: u8 = 0x10;
    /// Blob gas price follows.
    pub const FLAG_BLOB_GAS_PRICE: u8 = 0x20;
    /// An explicit bloom follows (it differs from the logs' bloom).
    pub const FLAG_BLOOM: u8 = 0x40;
}
use receipt_flags::*;
const KNOWN_FLAGS: u8 = 0x7f;

/// Smallest encoded log: address, topic count, data length.
const MIN_LOG_LEN: usize = 20 + 1 + 1;

fn kind_name(format: u8) -> &'static str {
    match format >> 4 {
        1 => "header",
        2 => "transaction",
        3 => "receipt",
        4 => "block extras",
        _ => "unknown",
    }
}

// ---------------------------------------------------------------- header

/// Encodes a sealed header: format byte, hash, header RLP.
///
/// Fails for a header whose RLP cannot be decoded: an optional field that is
/// present after one that is absent (for example `blobGasUsed` without
/// `withdrawalsRoot`). RLP has no field names, so such a header would be
/// written but never read back; no real chain produces one.
pub fn encode_header(header: &SealedHeader) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(1 + 32 + header.inner().length());
    encode_header_into(header, &mut out)?;
    Ok(out)
}

/// Appends the encoding of a sealed header to `out` (unchanged on error).
pub fn encode_header_into(header: &SealedHeader, out: &mut Vec<u8>) -> Result<(), CodecError> {
    if let Some((absent, present)) = optional_field_gap(header.inner()) {
        return Err(CodecError(format!(
            "header of block {} has {present} but no {absent}: its RLP could not be decoded; \
             refusing to store it (set {absent}, or leave out the fields after it)",
            header.number
        )));
    }
    out.push(HEADER_FORMAT);
    out.extend_from_slice(header.hash().as_slice());
    header.inner().encode(out);
    Ok(())
}

/// The first absent optional header field that a present one follows, with
/// that present field: RLP encodes optional fields positionally, so such a
/// header does not decode.
fn optional_field_gap(header: &Header) -> Option<(&'static str, &'static str)> {
    // Exhaustive on purpose: a field added to alloy's header must be placed
    // here (compile error otherwise).
    let Header {
        parent_hash: _,
        ommers_hash: _,
        beneficiary: _,
        state_root: _,
        transactions_root: _,
        receipts_root: _,
        logs_bloom: _,
        difficulty: _,
        number: _,
        gas_limit: _,
        gas_used: _,
        timestamp: _,
        extra_data: _,
        mix_hash: _,
        nonce: _,
        base_fee_per_gas,
        withdrawals_root,
        blob_gas_used,
        excess_blob_gas,
        parent_beacon_block_root,
        requests_hash,
        block_access_list_hash,
        slot_number,
    } = header;
    let fields = [
        ("baseFeePerGas", base_fee_per_gas.is_some()),
        ("withdrawalsRoot", withdrawals_root.is_some()),
        ("blobGasUsed", blob_gas_used.is_some()),
        ("excessBlobGas", excess_blob_gas.is_some()),
        ("parentBeaconBlockRoot", parent_beacon_block_root.is_some()),
        ("requestsHash", requests_hash.is_some()),
        ("blockAccessListHash", block_access_list_hash.is_some()),
        ("slotNumber", slot_number.is_some()),
    ];
    let absent = fields.iter().position(|(_, present)| !present)?;
    let present = fields[absent..].iter().find(|(_, present)| *present)?;
    Some((fields[absent].0, present.0))
}

/// Decodes a sealed header, trusting the stored hash (see the module docs).
pub fn decode_header(bytes: &[u8]) -> Result<SealedHeader, CodecError> {
    let mut r = Reader::new("header", bytes, HEADER_FORMAT)?;
    let hash = B256::from(r.array::<32>("hash")?);
    let mut rest = r.rest();
    let header = Header::decode(&mut rest).map_err(|e| r.error(format!("header RLP: {e}")))?;
    if !rest.is_empty() {
        return Err(r.error(format!("{} trailing bytes after the header RLP", rest.len())));
    }
    Ok(Sealed::new_unchecked(header, hash))
}

// ---------------------------------------------------------------- block extras

/// Encodes a block's ommer headers and withdrawals: format byte, flags
/// (`0x01` when a withdrawals list follows), the RLP list of ommer headers,
/// the RLP list of withdrawals.
pub fn encode_extras(extras: &BlockExtras) -> Vec<u8> {
    let mut out = Vec::new();
    encode_extras_into(extras, &mut out);
    out
}

/// Appends the encoding of a block's ommers and withdrawals to `out`.
pub fn encode_extras_into(extras: &BlockExtras, out: &mut Vec<u8>) {
    out.push(EXTRAS_FORMAT);
    out.push(u8::from(extras.withdrawals.is_some()));
    extras.ommers.encode(out);
    if let Some(w) = &extras.withdrawals {
        w.encode(out);
    }
}

/// Decodes a block's ommer headers and withdrawals.
pub fn decode_extras(bytes: &[u8]) -> Result<BlockExtras, CodecError> {
    let mut r = Reader::new("block extras", bytes, EXTRAS_FORMAT)?;
    let flags = r.u8("flags")?;
    if flags > 1 {
        return Err(r.error(format!("unknown flag bits {flags:#04x}")));
    }
    let mut rest = r.rest();
    let ommers =
        Vec::<Header>::decode(&mut rest).map_err(|e| r.error(format!("ommers RLP: {e}")))?;
    let withdrawals = if flags == 1 {
        Some(
            alloy::eips::eip4895::Withdrawals::decode(&mut rest)
                .map_err(|e| r.error(format!("withdrawals RLP: {e}")))?,
        )
    } else {
        None
    };
    if !rest.is_empty() {
        return Err(r.error(format!("{} trailing bytes after the RLP", rest.len())));
    }
    Ok(BlockExtras { ommers, withdrawals })
}

// ---------------------------------------------------------------- transaction

/// Encodes a transaction with its sender: format byte, sender, EIP-2718 bytes.
pub fn encode_tx(tx: &RecoveredTx) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 20 + tx.inner().encode_2718_len());
    encode_tx_into(tx, &mut out);
    out
}

/// Appends the encoding of a transaction with its sender to `out`.
pub fn encode_tx_into(tx: &RecoveredTx, out: &mut Vec<u8>) {
    out.push(TX_FORMAT);
    out.extend_from_slice(tx.signer().as_slice());
    tx.inner().encode_2718(out);
}

/// Decodes a transaction with its sender; the hash is recomputed.
pub fn decode_tx(bytes: &[u8]) -> Result<RecoveredTx, CodecError> {
    let mut r = Reader::new("transaction", bytes, TX_FORMAT)?;
    let sender = Address::from(r.array::<20>("sender")?);
    let mut rest = r.rest();
    if rest.is_empty() {
        return Err(r.error("no transaction bytes after the sender".into()));
    }
    let tx = TxEnvelope::decode_2718(&mut rest)
        .map_err(|e| r.error(format!("EIP-2718 transaction: {e}")))?;
    if !rest.is_empty() {
        return Err(r.error(format!("{} trailing bytes after the transaction", rest.len())));
    }
    Ok(RecoveredTx::new_unchecked(tx, sender))
}

// ---------------------------------------------------------------- receipt

/// Encodes a receipt with its context; see the module docs for the layout.
///
/// Fails only for a receipt no EVM can produce: a log with more than
/// [`MAX_TOPICS`] topics.
pub fn encode_receipt(receipt: &StoredReceipt) -> Result<Vec<u8>, CodecError> {
    let logs = receipt.receipt.logs();
    let log_bytes: usize =
        logs.iter().map(|l| 24 + 32 * l.topics().len() + l.data.data.len()).sum();
    let mut out = Vec::with_capacity(180 + log_bytes);
    encode_receipt_into(receipt, &mut out)?;
    Ok(out)
}

/// Appends the encoding of a receipt to `out` (unchanged on error).
pub fn encode_receipt_into(receipt: &StoredReceipt, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let bloom_is_logs_bloom = logs_bloom(receipt.receipt.logs()) == *receipt.receipt.logs_bloom();
    encode_receipt_into_with(receipt, bloom_is_logs_bloom, out)
}

/// [`encode_receipt_into`] with the bloom comparison supplied by the caller,
/// who may compute it faster (the comparison costs a keccak per address and
/// topic; a backend can cache those). `bloom_is_logs_bloom` must be exactly
/// `logs_bloom(logs) == the receipt's bloom`, or the value does not
/// round-trip.
pub fn encode_receipt_into_with(
    receipt: &StoredReceipt,
    bloom_is_logs_bloom: bool,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let inner = &receipt.receipt;
    let logs = inner.logs();
    if let Some((i, log)) = logs.iter().enumerate().find(|(_, l)| l.topics().len() > MAX_TOPICS) {
        return Err(CodecError(format!(
            "receipt of tx {}: log {i} has {} topics, at most {MAX_TOPICS} are possible; \
             refusing to store it",
            receipt.tx_hash,
            log.topics().len()
        )));
    }
    let status = inner.as_receipt().map(|r| r.status).ok_or_else(|| {
        CodecError(format!("receipt of tx {}: unsupported receipt envelope", receipt.tx_hash))
    })?;
    let explicit_bloom = !bloom_is_logs_bloom;

    let mut flags = 0u8;
    match status {
        Eip658Value::Eip658(true) => flags |= FLAG_SUCCESS,
        Eip658Value::Eip658(false) => {}
        Eip658Value::PostState(_) => flags |= FLAG_POST_STATE,
    }
    if receipt.to.is_some() {
        flags |= FLAG_TO;
    }
    if receipt.contract_address.is_some() {
        flags |= FLAG_CONTRACT;
    }
    if receipt.blob_gas_used.is_some() {
        flags |= FLAG_BLOB_GAS_USED;
    }
    if receipt.blob_gas_price.is_some() {
        flags |= FLAG_BLOB_GAS_PRICE;
    }
    if explicit_bloom {
        flags |= FLAG_BLOOM;
    }

    out.push(RECEIPT_FORMAT);
    out.push(inner.tx_type().ty());
    out.push(flags);
    if let Eip658Value::PostState(root) = status {
        out.extend_from_slice(root.as_slice());
    }
    put_varint(out, inner.cumulative_gas_used().into());
    put_varint(out, receipt.gas_used.into());
    put_varint(out, receipt.effective_gas_price);
    put_varint(out, receipt.block_number.into());
    out.extend_from_slice(receipt.block_hash.as_slice());
    put_varint(out, receipt.block_timestamp.into());
    put_varint(out, receipt.tx_index.into());
    put_varint(out, receipt.first_log_index.into());
    out.extend_from_slice(receipt.tx_hash.as_slice());
    out.extend_from_slice(receipt.from.as_slice());
    if let Some(to) = receipt.to {
        out.extend_from_slice(to.as_slice());
    }
    if let Some(address) = receipt.contract_address {
        out.extend_from_slice(address.as_slice());
    }
    if let Some(gas) = receipt.blob_gas_used {
        put_varint(out, gas.into());
    }
    if let Some(price) = receipt.blob_gas_price {
        put_varint(out, price);
    }
    if explicit_bloom {
        out.extend_from_slice(inner.logs_bloom().as_slice());
    }
    put_varint(out, logs.len() as u128);
    for log in logs {
        out.extend_from_slice(log.address.as_slice());
        put_topics(log.topics(), out);
        put_varint(out, log.data.data.len() as u128);
        out.extend_from_slice(&log.data.data);
    }
    Ok(())
}

/// Decodes a receipt with its context; the bloom is rebuilt from the logs
/// unless it was stored explicitly.
pub fn decode_receipt(bytes: &[u8]) -> Result<StoredReceipt, CodecError> {
    decode_receipt_with(bytes, &mut |logs| logs_bloom(logs))
}

/// [`decode_receipt`] with the bloom of the logs (used when the bloom was not
/// stored) computed by the caller, who may do it faster (for instance with a
/// cache of keccak results). `bloom_of` must return exactly
/// `logs_bloom(logs)`.
pub fn decode_receipt_with(
    bytes: &[u8],
    bloom_of: &mut dyn FnMut(&[Log]) -> Bloom,
) -> Result<StoredReceipt, CodecError> {
    decode_receipt_inner(bytes, None, bloom_of)
}

/// [`decode_receipt_with`] where each log's data is a slice of `bytes`
/// (which holds the encoded receipt) instead of a copy: one allocation less
/// per log. The logs keep `bytes`' whole buffer alive, so this suits a
/// buffer that holds the values that are decoded together (a block's
/// receipts), not a few bytes cut from a large one.
pub fn decode_receipt_shared(
    bytes: &Bytes,
    bloom_of: &mut dyn FnMut(&[Log]) -> Bloom,
) -> Result<StoredReceipt, CodecError> {
    decode_receipt_inner(bytes, Some(bytes), bloom_of)
}

fn decode_receipt_inner(
    bytes: &[u8],
    shared: Option<&Bytes>,
    bloom_of: &mut dyn FnMut(&[Log]) -> Bloom,
) -> Result<StoredReceipt, CodecError> {
    let mut r = Reader::new("receipt", bytes, RECEIPT_FORMAT)?;
    let ty = r.u8("tx type")?;
    let tx_type =
        TxType::try_from(ty).map_err(|_| r.error(format!("unknown transaction type {ty}")))?;
    let flags = r.u8("flags")?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(r.error(format!("unknown flag bits {:#04x}", flags & !KNOWN_FLAGS)));
    }
    let status = if flags & FLAG_POST_STATE != 0 {
        if flags & FLAG_SUCCESS != 0 {
            return Err(r.error("both a status and a post-state root".into()));
        }
        Eip658Value::PostState(B256::from(r.array::<32>("post-state root")?))
    } else {
        Eip658Value::Eip658(flags & FLAG_SUCCESS != 0)
    };
    let cumulative_gas_used = r.varint_u64("cumulative gas")?;
    let gas_used = r.varint_u64("gas used")?;
    let effective_gas_price = r.varint("effective gas price")?;
    let block_number = r.varint_u64("block number")?;
    let block_hash = B256::from(r.array::<32>("block hash")?);
    let block_timestamp = r.varint_u64("block timestamp")?;
    let tx_index = r.varint_u64("tx index")?;
    let first_log_index = r.varint_u64("first log index")?;
    let tx_hash = B256::from(r.array::<32>("tx hash")?);
    let from = Address::from(r.array::<20>("from")?);
    let to = if flags & FLAG_TO != 0 { Some(Address::from(r.array::<20>("to")?)) } else { None };
    let contract_address = if flags & FLAG_CONTRACT != 0 {
        Some(Address::from(r.array::<20>("contract address")?))
    } else {
        None
    };
    let blob_gas_used =
        if flags & FLAG_BLOB_GAS_USED != 0 { Some(r.varint_u64("blob gas used")?) } else { None };
    let blob_gas_price =
        if flags & FLAG_BLOB_GAS_PRICE != 0 { Some(r.varint("blob gas price")?) } else { None };
    let stored_bloom =
        if flags & FLAG_BLOOM != 0 { Some(Bloom::from(r.array::<256>("bloom")?)) } else { None };
    let log_count = r.varint_u64("log count")?;
    // A corrupt count must not make us allocate: each log takes at least
    // MIN_LOG_LEN bytes.
    if log_count > (r.remaining() / MIN_LOG_LEN) as u64 {
        return Err(r.error(format!(
            "log count {log_count} cannot fit in the {} bytes left",
            r.remaining()
        )));
    }
    let mut logs = Vec::with_capacity(log_count as usize);
    for i in 0..log_count {
        r.set_context(i);
        let address = Address::from(r.array::<20>("log address")?);
        let mut rest = r.rest();
        let (array, topic_count) = take_topics(&mut rest).map_err(|e| r.error(e.into()))?;
        r.pos = r.bytes.len() - rest.len();
        let topics = array[..topic_count].to_vec();
        let len = r.varint_u64("data length")?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= r.remaining())
            .ok_or_else(|| r.truncated("log data", len))?;
        let start = r.pos;
        let slice = r.bytes(len, "log data")?;
        let data = match shared {
            Some(buffer) => buffer.slice(start..start + len),
            None => Bytes::copy_from_slice(slice),
        };
        logs.push(Log { address, data: LogData::new_unchecked(topics, data) });
    }
    r.clear_context();
    r.finish()?;
    let logs_bloom = stored_bloom.unwrap_or_else(|| bloom_of(&logs));
    let receipt = ReceiptEnvelope::from_typed(
        tx_type,
        ReceiptWithBloom {
            receipt: ConsensusReceipt { status, cumulative_gas_used, logs },
            logs_bloom,
        },
    );
    Ok(StoredReceipt {
        receipt,
        tx_hash,
        block_number,
        block_hash,
        block_timestamp,
        tx_index,
        gas_used,
        effective_gas_price,
        first_log_index,
        contract_address,
        from,
        to,
        blob_gas_used,
        blob_gas_price,
    })
}

// ---------------------------------------------------------------- topics

/// Bytes of a topic that a short topic leaves out (they are zero).
const SHORT_TOPIC_ZEROS: usize = 12;

/// Whether a topic starts with 12 zero bytes (an address, or a small
/// number) and so is stored short, as its last 20 bytes.
#[inline]
fn is_short(topic: &B256) -> bool {
    topic[..SHORT_TOPIC_ZEROS] == [0; SHORT_TOPIC_ZEROS]
}

/// The stored form of a topic: its last 20 bytes when its first 12 are zero,
/// else all 32. Every topic has exactly one stored form, so backends that
/// store topics as separate values (PostgreSQL columns) compare the stored
/// forms of filter topics directly; [`expand_topic`] is the inverse.
#[inline]
pub fn compact_topic(topic: &B256) -> &[u8] {
    if is_short(topic) { &topic[SHORT_TOPIC_ZEROS..] } else { topic.as_slice() }
}

/// The topic whose stored form ([`compact_topic`]) is `bytes`; `None` for
/// any other length, or for 32 bytes that should have been stored short.
pub fn expand_topic(bytes: &[u8]) -> Option<B256> {
    let mut topic = B256::ZERO;
    match bytes.len() {
        20 => topic[SHORT_TOPIC_ZEROS..].copy_from_slice(bytes),
        32 => {
            topic.copy_from_slice(bytes);
            if is_short(&topic) {
                return None;
            }
        }
        _ => return None,
    }
    Some(topic)
}

/// Appends a log's topics byte and topics (see the module docs). At most
/// [`MAX_TOPICS`] topics: the caller checks.
fn put_topics(topics: &[B256], out: &mut Vec<u8>) {
    let mut byte = topics.len() as u8;
    for (i, topic) in topics.iter().enumerate() {
        if is_short(topic) {
            byte |= 0x10 << i;
        }
    }
    out.push(byte);
    for topic in topics {
        out.extend_from_slice(compact_topic(topic));
    }
}

/// Reads a log's topics byte and topics from the front of `buf`, advancing
/// it: the topics (the first `count` of the array) and `count`. Shared by
/// the decoder and by backends that read logs in place.
pub fn take_topics(buf: &mut &[u8]) -> Result<([B256; MAX_TOPICS], usize), &'static str> {
    let (count, short, mut rest) = topics_byte(buf)?;
    let mut topics = [B256::ZERO; MAX_TOPICS];
    for (i, topic) in topics.iter_mut().enumerate().take(count) {
        let len = if short & (1 << i) != 0 { 32 - SHORT_TOPIC_ZEROS } else { 32 };
        let (bytes, tail) = rest.split_at_checked(len).ok_or("truncated topic")?;
        *topic =
            expand_topic(bytes).ok_or("a topic with 12 leading zero bytes stored in 32 bytes")?;
        rest = tail;
    }
    *buf = rest;
    Ok((topics, count))
}

/// Skips a log's topics byte and topics at the front of `buf` without
/// reading them: for a reader that has already ruled the log out. Checks
/// the framing only ([`take_topics`] also checks each topic).
pub fn skip_topics(buf: &mut &[u8]) -> Result<(), &'static str> {
    let (count, short, rest) = topics_byte(buf)?;
    let len = 32 * count - SHORT_TOPIC_ZEROS * short.count_ones() as usize;
    *buf = rest.get(len..).ok_or("truncated topic")?;
    Ok(())
}

/// The topics byte at the front of `buf`: the topic count, the short-topic
/// bits, and the bytes after it.
fn topics_byte(buf: &[u8]) -> Result<(usize, u8, &[u8]), &'static str> {
    let (&byte, rest) = buf.split_first().ok_or("truncated topics byte")?;
    let count = usize::from(byte & 0x0f);
    let short = byte >> 4;
    if count > MAX_TOPICS {
        return Err("more than 4 topics");
    }
    if short >> count != 0 {
        return Err("short-topic bits beyond the topic count");
    }
    Ok((count, short, rest))
}

// ---------------------------------------------------------------- varints

/// Appends `v` as an unsigned LEB128 varint (1 to 19 bytes).
pub fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a minimal unsigned LEB128 varint from the front of `buf`,
/// advancing it. `None` if truncated, overlong (non-minimal), or above
/// `u128::MAX`.
pub fn take_varint(buf: &mut &[u8]) -> Option<u128> {
    let mut value = 0u128;
    for (i, &byte) in buf.iter().enumerate() {
        let shift = 7 * i as u32;
        let bits = u128::from(byte & 0x7f);
        // The 19th byte may hold only the top 2 bits of a u128.
        if shift >= 128 || (shift > 0 && bits.leading_zeros() < shift) {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            // Minimal form: no trailing zero group (except the value 0).
            if byte == 0 && i > 0 {
                return None;
            }
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

// ---------------------------------------------------------------- reader

/// A bounds-checked cursor that names what it was reading when it fails.
struct Reader<'a> {
    what: &'static str,
    bytes: &'a [u8],
    pos: usize,
    log: Option<u64>,
}

impl<'a> Reader<'a> {
    /// Checks the format byte and positions after it.
    fn new(what: &'static str, bytes: &'a [u8], format: u8) -> Result<Self, CodecError> {
        let r = Self { what, bytes, pos: 1, log: None };
        let Some(&found) = bytes.first() else {
            return Err(CodecError(format!("{what}: empty value")));
        };
        if found >> 4 != format >> 4 {
            return Err(r.error(format!(
                "format byte {found:#04x} is a {} value, expected a {what} ({format:#04x})",
                kind_name(found)
            )));
        }
        if found != format {
            return Err(r.error(format!(
                "unsupported {what} format version {} (byte {found:#04x}); this build reads \
                 version {} only: the store was written by another coldchain version or is \
                 corrupt",
                found & 0x0f,
                format & 0x0f
            )));
        }
        Ok(r)
    }

    fn error(&self, msg: String) -> CodecError {
        let at = match self.log {
            Some(i) => format!(" (log {i})"),
            None => String::new(),
        };
        CodecError(format!(
            "{}: {msg}{at} at byte {} of {}: corrupt or unsupported stored data",
            self.what,
            self.pos,
            self.bytes.len()
        ))
    }

    fn truncated(&self, field: &str, need: impl std::fmt::Display) -> CodecError {
        self.error(format!(
            "truncated: {field} needs {need} bytes, {} left",
            self.bytes.len() - self.pos
        ))
    }

    fn set_context(&mut self, log: u64) {
        self.log = Some(log);
    }

    fn clear_context(&mut self) {
        self.log = None;
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    fn bytes(&mut self, n: usize, field: &str) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(self.truncated(field, n));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &str) -> Result<u8, CodecError> {
        Ok(self.bytes(1, field)?[0])
    }

    fn varint(&mut self, field: &str) -> Result<u128, CodecError> {
        let mut rest = self.rest();
        let Some(v) = take_varint(&mut rest) else {
            return Err(if rest.iter().all(|b| b & 0x80 != 0) && rest.len() < 19 {
                self.truncated(field, "a varint of more")
            } else {
                self.error(format!("malformed varint for {field}"))
            });
        };
        self.pos = self.bytes.len() - rest.len();
        Ok(v)
    }

    fn varint_u64(&mut self, field: &str) -> Result<u64, CodecError> {
        let start = self.pos;
        let v = self.varint(field)?;
        u64::try_from(v).map_err(|_| {
            self.pos = start;
            self.error(format!("{field} {v} does not fit in 64 bits"))
        })
    }

    fn finish(&self) -> Result<(), CodecError> {
        if self.remaining() != 0 {
            return Err(self.error(format!("{} trailing bytes", self.remaining())));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod varint_tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_edges() {
        for v in [0u128, 1, 127, 128, 300, u64::MAX as u128, u64::MAX as u128 + 1, u128::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert!(out.len() <= 19);
            let mut buf = out.as_slice();
            assert_eq!(take_varint(&mut buf), Some(v), "{v}");
            assert!(buf.is_empty());
        }
        // Truncated, overlong, and too large.
        assert_eq!(take_varint(&mut &[0x80u8][..]), None);
        assert_eq!(take_varint(&mut &[][..]), None);
        assert_eq!(take_varint(&mut &[0x81u8, 0x00][..]), None);
        let mut too_big = vec![0xffu8; 18];
        too_big.push(0x04); // bit 128
        assert_eq!(take_varint(&mut too_big.as_slice()), None);
        let mut max = vec![0xffu8; 18];
        max.push(0x03);
        assert_eq!(take_varint(&mut max.as_slice()), Some(u128::MAX));
    }
}

#[cfg(all(test, feature = "test-utils"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::{
        BlockData,
        testing::{ChainShape, test_chain_with},
    };

    fn blocks() -> Vec<BlockData> {
        let shape = ChainShape { max_txs: 10, max_logs: 6, ..Default::default() };
        test_chain_with(100, 30, B256::ZERO, 42, shape)
    }

    /// The synthetic header with the fields a Cancun header has before its
    /// blob fields, so that its RLP decodes.
    fn cancun_header(block: &BlockData) -> SealedHeader {
        use alloy::primitives::Sealable;
        let mut h = block.header.inner().clone();
        h.withdrawals_root = Some(alloy::consensus::EMPTY_ROOT_HASH);
        h.parent_beacon_block_root = Some(B256::repeat_byte(3));
        h.seal_slow()
    }

    fn a_receipt_with_logs() -> StoredReceipt {
        blocks()
            .iter()
            .flat_map(|b| b.stored_receipts())
            .find(|r| r.receipt.logs().len() >= 2)
            .expect("a receipt with logs")
    }

    /// A receipt whose logs carry short topics (12 leading zero bytes) in
    /// every position and mixed with long ones.
    fn a_receipt_with_short_topics() -> StoredReceipt {
        let mut r = a_receipt_with_logs();
        let short = |b: u8| {
            let mut t = B256::ZERO;
            t[12..].fill(b);
            t
        };
        let inner = r.receipt.as_receipt_with_bloom_mut().expect("a receipt");
        inner.receipt.logs[0].data = LogData::new_unchecked(
            vec![B256::repeat_byte(7), short(1), short(2), B256::ZERO],
            Bytes::from_static(b"data"),
        );
        inner.receipt.logs[1].data =
            LogData::new_unchecked(vec![short(3), B256::repeat_byte(9)], Bytes::new());
        inner.logs_bloom = logs_bloom(inner.receipt.logs.iter());
        r
    }

    #[test]
    fn extras_round_trip_and_refuse_damage() {
        let mut seen_ommers = false;
        for block in blocks() {
            seen_ommers |= !block.extras.ommers.is_empty();
            let bytes = encode_extras(&block.extras);
            assert_eq!(decode_extras(&bytes).unwrap(), block.extras);
            // Truncation and trailing bytes are errors, never a shorter list.
            assert!(decode_extras(&bytes[..bytes.len() - 1]).is_err());
            let mut long = bytes.clone();
            long.push(0);
            assert!(decode_extras(&long).unwrap_err().to_string().contains("trailing"));
        }
        assert!(seen_ommers, "the test chain has ommers");
        for extras in [BlockExtras::none(), BlockExtras::withdrawals(vec![])] {
            assert_eq!(decode_extras(&encode_extras(&extras)).unwrap(), extras);
        }
        let mut bad_flags = encode_extras(&BlockExtras::none());
        bad_flags[1] = 2;
        assert!(decode_extras(&bad_flags).unwrap_err().to_string().contains("flag"));
        let chain = blocks();
        let tx = chain.iter().find_map(|b| b.transactions.first()).unwrap();
        let err = decode_extras(&encode_tx(tx)).unwrap_err();
        assert!(err.to_string().contains("transaction value"), "{err}");
    }

    #[test]
    fn shared_decode_equals_copying_decode() {
        for block in blocks() {
            for r in block.stored_receipts() {
                let bytes = Bytes::from(encode_receipt(&r).unwrap());
                let shared = decode_receipt_shared(&bytes, &mut |l| logs_bloom(l)).unwrap();
                assert_eq!(shared, r);
                for log in shared.receipt.logs() {
                    // The data points into the encoded value.
                    let data = log.data.data.as_ptr_range();
                    let all = bytes.as_ptr_range();
                    assert!(data.start >= all.start && data.end <= all.end);
                }
            }
        }
    }

    #[test]
    fn short_topics_round_trip_and_save_space() {
        let r = a_receipt_with_short_topics();
        let bytes = encode_receipt(&r).unwrap();
        assert_eq!(decode_receipt(&bytes).unwrap(), r);
        let long: usize = r.receipt.logs().iter().map(|l| 32 * l.topics().len()).sum();
        let mut all_long = 0;
        let mut short = 0;
        for log in r.receipt.logs() {
            for t in log.topics() {
                all_long += 32;
                short += if t[..12] == [0; 12] { 20 } else { 32 };
            }
        }
        assert_eq!(all_long, long);
        assert!(short < long);
        // The layout: the first log's address, then a topics byte that says
        // 4 topics, of which topics 1, 2 and 3 (zero) are short.
        let address = r.receipt.logs()[0].address;
        let at = bytes
            .windows(21)
            .position(|w| w[..20] == address[..] && w[20] == 4 | (0b1110 << 4))
            .expect("the first log's topics byte");
        let mut rest = &bytes[at + 20..];
        let (topics, n) = take_topics(&mut rest).unwrap();
        assert_eq!(&topics[..n], r.receipt.logs()[0].topics());
        assert_eq!(bytes.len() - (at + 21) - rest.len(), 32 + 3 * 20);
    }

    #[test]
    fn compact_topics_expand_back_and_have_one_form() {
        let mut short = B256::ZERO;
        short[12..].copy_from_slice(&[0xab; 20]);
        let long = B256::repeat_byte(0x11);
        for t in [short, long, B256::ZERO] {
            assert_eq!(expand_topic(compact_topic(&t)), Some(t));
        }
        assert_eq!(compact_topic(&short).len(), 20);
        assert_eq!(compact_topic(&long).len(), 32);
        // A short topic written long, or any other length, is not a stored form.
        assert_eq!(expand_topic(short.as_slice()), None);
        assert_eq!(expand_topic(&[1; 19]), None);
        assert_eq!(expand_topic(&[]), None);
    }

    #[test]
    fn skip_topics_skips_what_take_topics_reads() {
        let r = a_receipt_with_short_topics();
        for log in r.receipt.logs() {
            let mut out = Vec::new();
            put_topics(log.topics(), &mut out);
            out.push(0xAA);
            let (mut taken, mut skipped) = (&out[..], &out[..]);
            take_topics(&mut taken).unwrap();
            skip_topics(&mut skipped).unwrap();
            assert_eq!(skipped, taken);
            assert_eq!(skipped, &[0xAA]);
            assert!(skip_topics(&mut &out[..out.len() - 2]).is_err());
        }
        assert!(skip_topics(&mut &[5u8][..]).is_err());
        assert!(skip_topics(&mut &[1u8 | (0b10 << 4)][..]).is_err());
    }

    #[test]
    fn topics_have_one_encoding() {
        // A short-able topic stored in 32 bytes, and short bits beyond the
        // count, are refused.
        let mut long = vec![1u8];
        long.extend_from_slice(&[0; 32]);
        assert!(take_topics(&mut &long[..]).unwrap_err().contains("12 leading zero"));
        let beyond = [1u8 | (0b10 << 4)];
        assert!(take_topics(&mut &beyond[..]).unwrap_err().contains("beyond"));
        let five = [5u8];
        assert!(take_topics(&mut &five[..]).unwrap_err().contains("more than 4"));
        let truncated = [1u8 | (1 << 4), 0, 0];
        assert!(take_topics(&mut &truncated[..]).unwrap_err().contains("truncated"));
        assert!(take_topics(&mut &[][..]).is_err());
    }

    #[test]
    fn round_trip_synthetic() {
        let mut receipts = 0;
        for block in blocks() {
            let header = cancun_header(&block);
            let h = decode_header(&encode_header(&header).unwrap()).unwrap();
            assert_eq!(h, header);
            assert_eq!(h.hash(), header.hash());
            for tx in &block.transactions {
                let back = decode_tx(&encode_tx(tx)).unwrap();
                assert_eq!(&back, tx);
                assert_eq!(back.inner().tx_hash(), tx.inner().tx_hash());
            }
            for r in block.stored_receipts() {
                let bytes = encode_receipt(&r).unwrap();
                assert_eq!(bytes[0], RECEIPT_FORMAT);
                assert_eq!(decode_receipt(&bytes).unwrap(), r);
                receipts += 1;
            }
        }
        assert!(receipts > 50);
    }

    #[test]
    fn gapped_header_is_refused() {
        // Blob fields without a withdrawalsRoot cannot round-trip through RLP.
        let mut gapped = blocks()[0].header.inner().clone();
        gapped.withdrawals_root = None;
        let gapped = alloy::primitives::Sealable::seal_slow(gapped);
        let err = encode_header(&gapped).unwrap_err().to_string();
        assert!(err.contains("no withdrawalsRoot"), "{err}");
        let mut out = vec![9];
        assert!(encode_header_into(&gapped, &mut out).is_err());
        assert_eq!(out, [9]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let r = a_receipt_with_logs();
        let bytes = encode_receipt(&r).unwrap();
        for n in 0..bytes.len() {
            let err = decode_receipt(&bytes[..n]).unwrap_err();
            assert!(err.0.starts_with("receipt:"), "{err}");
        }
        let block = blocks().into_iter().find(|b| !b.transactions.is_empty()).unwrap();
        let h = encode_header(&cancun_header(&block)).unwrap();
        for n in 0..h.len() {
            assert!(decode_header(&h[..n]).is_err(), "header prefix {n}");
        }
        let t = encode_tx(&block.transactions[0]);
        for n in 0..t.len() {
            assert!(decode_tx(&t[..n]).is_err(), "tx prefix {n}");
        }
    }

    #[test]
    fn truncation_message_names_the_field() {
        let r = a_receipt_with_logs();
        let bytes = encode_receipt(&r).unwrap();
        let err = decode_receipt(&bytes[..bytes.len() - 1]).unwrap_err().to_string();
        assert!(err.contains("truncated") || err.contains("log"), "{err}");
        let err = decode_receipt(&bytes[..5]).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let r = a_receipt_with_logs();
        let mut bytes = encode_receipt(&r).unwrap();
        bytes.push(0);
        assert!(decode_receipt(&bytes).unwrap_err().0.contains("trailing"));
        let block = &blocks()[0];
        let mut h = encode_header(&cancun_header(block)).unwrap();
        h.push(0);
        assert!(decode_header(&h).unwrap_err().0.contains("trailing"));
    }

    #[test]
    fn unknown_version_and_wrong_kind() {
        let r = a_receipt_with_logs();
        let mut bytes = encode_receipt(&r).unwrap();
        bytes[0] = 0x31;
        let err = decode_receipt(&bytes).unwrap_err().to_string();
        assert!(err.contains("unsupported receipt format version 1"), "{err}");
        let header = encode_header(&cancun_header(&blocks()[0])).unwrap();
        let err = decode_receipt(&header).unwrap_err().to_string();
        assert!(err.contains("is a header value"), "{err}");
        assert!(decode_tx(&header).is_err());
        assert!(decode_header(&[]).unwrap_err().0.contains("empty"));
    }

    #[test]
    fn too_many_topics_rejected_both_ways() {
        let mut r = a_receipt_with_logs();
        let log = &mut r.receipt.as_receipt_with_bloom_mut().unwrap().receipt.logs[0];
        log.data = LogData::new_unchecked(vec![B256::ZERO; 5], Bytes::new());
        let err = encode_receipt(&r).unwrap_err();
        assert!(err.0.contains("5 topics"), "{err}");

        // A hand-made value with a topic count of 5.
        let mut r = a_receipt_with_logs();
        let logs = &mut r.receipt.as_receipt_with_bloom_mut().unwrap().receipt.logs;
        logs.truncate(1);
        logs[0].data = LogData::new_unchecked(vec![B256::repeat_byte(1); 4], Bytes::new());
        r.receipt.as_receipt_with_bloom_mut().unwrap().logs_bloom = logs_bloom(r.receipt.logs());
        let mut bytes = encode_receipt(&r).unwrap();
        // Layout tail: count(1) | address(20) | topics byte | 4 * 32 | len(1)
        let at = bytes.len() - 1 - 4 * 32 - 1;
        assert_eq!(bytes[at], 4);
        bytes[at] = 5;
        let err = decode_receipt(&bytes).unwrap_err().to_string();
        assert!(err.contains("more than 4 topics") && err.contains("log 0"), "{err}");
    }

    #[test]
    fn odd_receipts_round_trip_exactly() {
        // Pre-Byzantium post-state root, a bloom that is not the logs'
        // bloom, all optional fields, huge integers.
        let mut r = a_receipt_with_logs();
        {
            let rb = r.receipt.as_receipt_with_bloom_mut().unwrap();
            rb.receipt.status = Eip658Value::PostState(B256::repeat_byte(7));
            rb.logs_bloom = Bloom::repeat_byte(0x55);
        }
        r.to = Some(Address::repeat_byte(1));
        r.contract_address = Some(Address::repeat_byte(2));
        r.blob_gas_used = Some(u64::MAX);
        r.blob_gas_price = Some(u128::MAX);
        r.effective_gas_price = u128::MAX;
        r.gas_used = u64::MAX;
        r.block_number = u64::MAX;
        let bytes = encode_receipt(&r).unwrap();
        assert_eq!(decode_receipt(&bytes).unwrap(), r);
        // And the minimal one: failed, no logs, no optionals.
        let mut r = a_receipt_with_logs();
        {
            let rb = r.receipt.as_receipt_with_bloom_mut().unwrap();
            rb.receipt.status = Eip658Value::Eip658(false);
            rb.receipt.logs.clear();
            rb.logs_bloom = Bloom::ZERO;
        }
        r.to = None;
        r.contract_address = None;
        r.blob_gas_used = None;
        r.blob_gas_price = None;
        let bytes = encode_receipt(&r).unwrap();
        assert_eq!(decode_receipt(&bytes).unwrap(), r);
    }

    #[test]
    fn corrupt_counts_do_not_allocate() {
        let r = a_receipt_with_logs();
        let bytes = encode_receipt(&r).unwrap();
        // Replace the log count (after the fixed part) with a huge varint by
        // re-encoding a receipt without logs and appending a big count.
        let mut empty = r.clone();
        {
            let rb = empty.receipt.as_receipt_with_bloom_mut().unwrap();
            rb.receipt.logs.clear();
            rb.logs_bloom = Bloom::ZERO;
        }
        let mut e = encode_receipt(&empty).unwrap();
        e.pop(); // the zero log count
        put_varint(&mut e, u64::MAX.into());
        let err = decode_receipt(&e).unwrap_err().to_string();
        assert!(err.contains("cannot fit"), "{err}");
        assert!(bytes.len() > e.len());
    }

    #[test]
    fn stored_hash_is_trusted_but_rlp_checked() {
        let block = &blocks()[0];
        let mut h = encode_header(&cancun_header(block)).unwrap();
        // Corrupt the RLP length prefix.
        h[33] ^= 0xff;
        assert!(decode_header(&h).unwrap_err().0.contains("header"));
    }
}
