//! Writes: append, truncate and drain, each one MDBX write transaction.

use crate::{
    error::{MdbxError, OrCold},
    journal,
    layout::{
        BlockTxs, IndexKey, Run, be, decode_shard, encode_bloom_bits, encode_shard, hash_key,
        read_be, sort_by_hash, take_bloom_bits,
    },
    read::{View, header_hash},
    runs, scan,
    store::Store,
};
use alloy::primitives::{B256, BlockNumber, Log};
use coldchain::{
    BlockData, ColdError, ColdResult, Deadline, backend::DrainedBlock, backend::check_contiguous,
    codec,
};
use signet_libmdbx::{Cursor, Database, Rw, WriteFlags, tx::Tx};
use std::{borrow::Cow, sync::atomic::Ordering};

/// How often (in transactions) long write loops check their deadline.
const CHECK_EVERY: u64 = 256;

/// The index keys of one receipt's logs, sorted and deduplicated, into `out`.
pub(crate) fn log_keys(logs: &[Log], out: &mut Vec<IndexKey>) {
    out.clear();
    for log in logs {
        out.push(IndexKey::address(&log.address));
        for (pos, topic) in log.topics().iter().enumerate().take(4) {
            out.push(IndexKey::topic(pos, topic));
        }
    }
    out.sort_unstable();
    out.dedup();
}

/// Appends `blocks` in one write transaction.
pub(crate) fn append(store: &Store, blocks: Vec<BlockData>, deadline: &Deadline) -> ColdResult<()> {
    if blocks.is_empty() {
        return Ok(());
    }
    deadline.check()?;
    let t = store.tables;
    let txn = store.begin_write()?;
    let view = View::new(&txn, t);
    let tip = view.tip()?;
    check_contiguous(tip, &blocks)?;
    let mut next_tx = match tip {
        Some(tip) => match view.block_txs(tip.number)? {
            Some(bt) => bt.end(),
            None => {
                return Err(MdbxError::Corrupt(format!(
                    "the tip block {} has no transaction range",
                    tip.number
                ))
                .into());
            }
        },
        None => 0,
    };

    let mut block_hashes_buf: Vec<B256> = Vec::new();
    let mut block_entries: Vec<(IndexKey, u32)> = Vec::new();
    let mut tx_keys = Vec::with_capacity(32);
    let mut buf = Vec::with_capacity(4096);
    let mut journal_buf = Vec::with_capacity(64 * 1024);
    let mut blooms_buf = Vec::with_capacity(16 * 1024);
    {
        let mut headers = txn.cursor(t.headers).cold()?;
        let mut extras = txn.cursor(t.block_extras).cold()?;
        let mut block_txs = txn.cursor(t.block_txs).cold()?;
        let mut tx_blocks = txn.cursor(t.tx_blocks).cold()?;
        let mut transactions = txn.cursor(t.transactions).cold()?;
        let mut receipts = txn.cursor(t.receipts).cold()?;
        let mut journal = txn.cursor(t.journal).cold()?;
        let mut receipt_blooms = txn.cursor(t.receipt_blooms).cold()?;
        for block in &blocks {
            deadline.check()?;
            let n = block.number();
            buf.clear();
            codec::encode_header_into(&block.header, &mut buf).cold()?;
            headers.append(&be(n), &buf).cold()?;
            buf.clear();
            codec::encode_extras_into(&block.extras, &mut buf);
            extras.append(&be(n), &buf).cold()?;
            match txn.put(t.block_hashes, block.hash(), be(n), WriteFlags::NO_OVERWRITE) {
                Ok(()) => {}
                Err(signet_libmdbx::MdbxError::KeyExist) => {
                    return Err(ColdError::InvalidBlock {
                        number: n,
                        reason: format!("a block with hash {} is already stored", block.hash()),
                    });
                }
                Err(e) => return Err(crate::error::raw(e)),
            }
            let count = u32::try_from(block.transactions.len()).map_err(|_| {
                ColdError::InvalidBlock { number: n, reason: "more than 2^32 transactions".into() }
            })?;
            block_txs.append(&be(n), &BlockTxs { first: next_tx, count }.encode()).cold()?;
            if count > 0 {
                tx_blocks.append(&be(next_tx), &be(n)).cold()?;
            }
            block_hashes_buf.clear();
            block_entries.clear();
            blooms_buf.clear();
            for (i, (tx, receipt)) in
                block.transactions.iter().zip(block.stored_receipts()).enumerate()
            {
                buf.clear();
                codec::encode_tx_into(tx, &mut buf);
                transactions.append(&be(next_tx), &buf).cold()?;
                buf.clear();
                // The bloom is in `receipt_blooms`: the receipt value never
                // carries it (`true` tells the codec to leave it out, and
                // reads hand the stored bloom back to the decoder), so no
                // keccak is needed to find out whether it is the logs'.
                codec::encode_receipt_into_with(&receipt, true, &mut buf).cold()?;
                receipts.append(&be(next_tx), &buf).cold()?;
                encode_bloom_bits(receipt.receipt.logs_bloom(), &mut blooms_buf);
                block_hashes_buf.push(*tx.inner().tx_hash());
                log_keys(receipt.receipt.logs(), &mut tx_keys);
                block_entries.extend(tx_keys.iter().map(|k| (*k, i as u32)));
                next_tx += 1;
            }
            journal::encode(&block_hashes_buf, &mut block_entries, &mut journal_buf).cold()?;
            journal.append(&be(n), &journal_buf).cold()?;
            receipt_blooms.append(&be(n), &blooms_buf).cold()?;
        }
    }
    deadline.check()?;
    let journal_len = txn.db_stat(&t.journal).cold()?.entries() as u64;
    txn.commit().cold()?;
    // The append is durable. Moving journal blocks into the index is a
    // reorganization that readers cannot see, so it runs in transactions of
    // its own: a failure (or a deadline) there does not undo the append; the
    // next append retries.
    let due = store.maintenance_due.swap(false, Ordering::AcqRel);
    if (journal_len >= store.journal_max || due)
        && let Err(e) = maintain(store, deadline)
    {
        store.maintenance_due.store(true, Ordering::Release);
        tracing::warn!(error = %e, "coldchain-mdbx: flushing or compacting the index journal failed; retried on the next append");
    }
    Ok(())
}

/// Flushes the journal into a new index run when it is full, then compacts
/// runs while some are due; each step is one write transaction.
fn maintain(store: &Store, deadline: &Deadline) -> ColdResult<()> {
    let t = store.tables;
    let txn = store.begin_write()?;
    let len = txn.db_stat(&t.journal).cold()?.entries() as u64;
    if len >= store.journal_max {
        runs::flush_journal(&txn, store, len - store.journal_keep, deadline)?;
    }
    txn.commit().cold()?;
    loop {
        let txn = store.begin_write()?;
        let all = View::new(&txn, t).runs()?;
        let Some(inputs) = runs::due(&all, store.run_fanout, store.run_max_level) else {
            return Ok(());
        };
        runs::compact(&txn, store, &all, inputs, deadline)?;
        txn.commit().cold()?;
    }
}

/// The last shard of `key` in run `run` at the cursor: (base, value).
fn last_shard<'tx>(
    cursor: &mut Cursor<'tx, Rw>,
    run: u32,
    key: &IndexKey,
    buf: &mut Vec<u8>,
) -> ColdResult<Option<(u64, Cow<'tx, [u8]>)>> {
    key.shard_key(run, u64::MAX, buf);
    let entry = match cursor.set_range::<Cow<'tx, [u8]>, Cow<'tx, [u8]>>(buf).cold()? {
        Some((k, v)) if k.as_ref() == buf.as_slice() => Some((k, v)),
        Some(_) => cursor.prev().cold()?,
        None => cursor.last().cold()?,
    };
    let prefix_len = buf.len() - 8;
    match entry {
        Some((k, v)) if k.len() == buf.len() && k[..prefix_len] == buf[..prefix_len] => {
            Ok(Some((read_be(&k[prefix_len..], "shard base").cold()?, v)))
        }
        _ => Ok(None),
    }
}

/// Removes every position `>= cut` from run `run`'s index of each key in
/// `keys` (sorted, deduplicated).
fn index_truncate(
    txn: &Tx<Rw>,
    db: Database,
    run: u32,
    keys: &[IndexKey],
    cut: u64,
    deadline: &Deadline,
) -> ColdResult<()> {
    let mut cursor = txn.cursor(db).cold()?;
    let mut key_buf = Vec::with_capacity(45);
    let mut value_buf = Vec::with_capacity(256);
    for (i, key) in keys.iter().enumerate() {
        if (i as u64).is_multiple_of(CHECK_EVERY) {
            deadline.check()?;
        }
        while let Some((base, value)) = last_shard(&mut cursor, run, key, &mut key_buf)? {
            if base >= cut {
                // The cursor is on this shard: all of it goes.
                cursor.del().cold()?;
                continue;
            }
            let mut bitmap = decode_shard(&value).cold()?;
            // cut - base > 0 here; positions at or above it go.
            let from = u32::try_from(cut - base).unwrap_or(u32::MAX);
            if bitmap.max().is_some_and(|m| m >= from) {
                bitmap.remove_range(from..);
                // The cursor stands on the shard: MDBX then searches only
                // its page instead of descending from the root.
                key.shard_key(run, base, &mut key_buf);
                encode_shard(&bitmap, &mut value_buf).cold()?;
                cursor.put(&key_buf, &value_buf, WriteFlags::empty()).cold()?;
            }
            break;
        }
    }
    Ok(())
}

/// Deletes every entry of `db` with a key `>= from`.
fn delete_tail(txn: &Tx<Rw>, db: Database, from: &[u8]) -> ColdResult<()> {
    let mut cursor = txn.cursor(db).cold()?;
    // Re-seek after each delete: where a cursor stands after deleting the
    // last entry is not something to rely on.
    while cursor.set_range::<(), ()>(from).cold()?.is_some() {
        cursor.del().cold()?;
    }
    Ok(())
}

/// Removes every block above `number`, returning them (with receipts) when
/// `collect` is set; one write transaction.
pub(crate) fn truncate(
    store: &Store,
    number: BlockNumber,
    collect: bool,
    deadline: &Deadline,
) -> ColdResult<Vec<DrainedBlock>> {
    deadline.check()?;
    let t = store.tables;
    let txn = store.begin_write()?;
    let view = View::new(&txn, t);
    let Some(tip) = view.tip()? else { return Ok(Vec::new()) };
    if number >= tip.number {
        return Ok(Vec::new());
    }
    let first = view.first_block()?.unwrap_or(tip.number);
    let cut = number.saturating_add(1).max(first);
    let Some(cut_txs) = view.block_txs(cut)? else {
        return Err(MdbxError::Corrupt(format!("block {cut} has no transaction range")).into());
    };
    let cut_tx = cut_txs.first;

    // The removed headers: their hashes leave `block_hashes`.
    let mut drained: Vec<DrainedBlock> = Vec::new();
    let mut block_hashes: Vec<(B256, u64)> = Vec::new();
    {
        let mut cursor = txn.cursor(t.headers).cold()?;
        let mut item = cursor.set_range::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&be(cut)).cold()?;
        while let Some((key, value)) = item {
            let n = read_be(&key, "header key").cold()?;
            block_hashes.push((header_hash(&value).cold()?, n));
            if collect {
                let header = codec::decode_header(&value).cold()?;
                drained.push(DrainedBlock { header, receipts: Vec::new() });
            }
            item = cursor.next().cold()?;
        }
    }

    // Blocks below the first journal block are merged into index runs:
    // runs wholly above the cut go, and the one across it is trimmed.
    let runs = view.runs()?;
    if collect {
        // Each removed block's transaction range end and receipt blooms.
        let mut ranges: Vec<(u64, &[u8])> = Vec::with_capacity(drained.len());
        let blooms: Vec<Cow<'_, [u8]>> = drained
            .iter()
            .map(|b| {
                let value: Option<Cow<'_, [u8]>> =
                    txn.get(t.receipt_blooms.dbi(), &be(b.header.number)).cold()?;
                value.ok_or_else(|| {
                    MdbxError::Corrupt(format!(
                        "block {} has no receipt_blooms value",
                        b.header.number
                    ))
                    .into()
                })
            })
            .collect::<ColdResult<_>>()?;
        for (b, bloom) in drained.iter().zip(&blooms) {
            let Some(bt) = view.block_txs(b.header.number)? else {
                return Err(MdbxError::Corrupt(format!(
                    "block {} has no transaction range",
                    b.header.number
                ))
                .into());
            };
            ranges.push((bt.end(), bloom));
        }
        let mut bi = 0;
        let mut cursor = txn.cursor(t.receipts).cold()?;
        let mut item = cursor.set_range::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&be(cut_tx)).cold()?;
        let mut seen = 0u64;
        while let Some((key, value)) = item {
            seen += 1;
            if seen.is_multiple_of(CHECK_EVERY) {
                deadline.check()?;
            }
            let tx = read_be(&key, "receipt key").cold()?;
            while ranges.get(bi).is_some_and(|(end, _)| tx >= *end) {
                bi += 1;
            }
            let Some((_, rest)) = ranges.get_mut(bi) else {
                return Err(MdbxError::Corrupt(format!(
                    "receipt {tx} lies beyond the removed blocks' transactions"
                ))
                .into());
            };
            let bloom = take_bloom_bits(rest).cold()?;
            let receipt = codec::decode_receipt_with(&value, &mut |_| bloom).cold()?;
            if receipt.block_number != drained[bi].header.number {
                return Err(MdbxError::Corrupt(format!(
                    "receipt {tx} names block {}, stored in block {}",
                    receipt.block_number, drained[bi].header.number
                ))
                .into());
            }
            drained[bi].receipts.push(receipt);
            item = cursor.next().cold()?;
        }
    }
    for run in runs.iter().rev() {
        if run.last_block < cut {
            break;
        }
        if run.first_block >= cut {
            runs::delete_run(&txn, t.tx_hashes[run.lvl()], run.id)?;
            runs::delete_run(&txn, t.log_index[run.lvl()], run.id)?;
            txn.del(t.runs, run.id.to_be_bytes(), None).cold()?;
            continue;
        }
        // The run across the cut: its entries of transactions from `cut_tx`
        // on, found from their receipts.
        let mut tx_hashes: Vec<(B256, u64)> = Vec::new();
        let mut keys: Vec<IndexKey> = Vec::new();
        let mut tx_keys = Vec::with_capacity(32);
        let mut cursor = txn.cursor(t.receipts).cold()?;
        let mut item = cursor.set_range::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&be(cut_tx)).cold()?;
        while let Some((key, value)) = item {
            let tx = read_be(&key, "receipt key").cold()?;
            if tx >= run.end_tx {
                break;
            }
            if (tx - cut_tx).is_multiple_of(CHECK_EVERY) {
                deadline.check()?;
            }
            let hash = scan::receipt_keys(&value, &mut tx_keys)?;
            tx_hashes.push((hash, tx));
            keys.extend_from_slice(&tx_keys);
            item = cursor.next().cold()?;
        }
        drop(cursor);
        deadline.check()?;
        keys.sort_unstable();
        keys.dedup();
        index_truncate(&txn, t.log_index[run.lvl()], run.id, &keys, cut_tx, deadline)?;
        sort_by_hash(&mut tx_hashes);
        for (hash, tx) in &tx_hashes {
            txn.del(t.tx_hashes[run.lvl()], hash_key(run.id, hash), Some(&be(*tx))).cold()?;
        }
        let trimmed = Run { last_block: cut - 1, end_tx: cut_tx, ..*run };
        txn.put(t.runs, run.id.to_be_bytes(), trimmed.encode(), WriteFlags::empty()).cold()?;
    }
    for (hash, n) in &block_hashes {
        let stored: Option<[u8; 8]> = txn.get(t.block_hashes.dbi(), hash.as_slice()).cold()?;
        if stored.map(u64::from_be_bytes) == Some(*n) {
            txn.del(t.block_hashes, hash.as_slice(), None).cold()?;
        }
    }
    deadline.check()?;
    delete_tail(&txn, t.headers, &be(cut))?;
    delete_tail(&txn, t.block_extras, &be(cut))?;
    delete_tail(&txn, t.block_txs, &be(cut))?;
    delete_tail(&txn, t.tx_blocks, &be(cut_tx))?;
    delete_tail(&txn, t.transactions, &be(cut_tx))?;
    delete_tail(&txn, t.receipts, &be(cut_tx))?;
    delete_tail(&txn, t.journal, &be(cut))?;
    delete_tail(&txn, t.receipt_blooms, &be(cut))?;
    deadline.check()?;
    txn.commit().cold()?;
    Ok(drained)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::store::MdbxOptions;

    #[test]
    fn delete_tail_semantics() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = Store::open(dir.path(), &MdbxOptions::for_tests()).unwrap();
        let txn = store.env.begin_rw_unsync().unwrap();
        for i in 0..10u64 {
            txn.put(store.tables.headers, be(i), b"x", WriteFlags::empty()).unwrap();
        }
        let r = delete_tail(&txn, store.tables.headers, &be(5));
        eprintln!("delete_tail: {r:?}");
        let n = txn.db_stat(&store.tables.headers).unwrap().entries();
        assert_eq!(n, 5);
        r.unwrap();
    }
}
