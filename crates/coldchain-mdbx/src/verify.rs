//! A full consistency check of a store: every index entry against the data.

use crate::{
    error::MdbxError,
    journal::{self, Journal},
    layout::{
        BlockTxs, Entry, IndexKey, Run, be, decode_shard, hash_key, read_be, read_run,
        take_bloom_bits,
    },
    read::header_hash,
    store::Store,
    write::log_keys,
};
use alloy::primitives::B256;
use coldchain::codec;
use roaring::RoaringBitmap;
use signet_libmdbx::{Cursor, Ro, tx::Tx};
use std::{borrow::Cow, collections::HashMap};

/// Most problems a report lists (all are counted).
const MAX_LISTED: usize = 100;

/// What [`crate::MdbxBackend::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Lowest stored block.
    pub first_block: Option<u64>,
    /// Highest stored block.
    pub tip: Option<u64>,
    /// Stored blocks.
    pub blocks: u64,
    /// Stored transactions (and receipts).
    pub transactions: u64,
    /// Stored logs.
    pub logs: u64,
    /// Blocks in the journal (not yet flushed into an index run).
    pub journal_blocks: u64,
    /// Runs of the merged index.
    pub index_runs: u64,
    /// Entries of the tx hash table.
    pub tx_hash_entries: u64,
    /// Distinct keys (address or topic at a position) of each index run in
    /// the log index, summed over the runs.
    pub index_keys: u64,
    /// Shards in the log index.
    pub index_shards: u64,
    /// Positions in the log index (one per key and transaction).
    pub index_entries: u64,
    /// Number of problems found.
    pub problem_count: u64,
    /// The first problems found, described (at most 100).
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether the store is consistent.
    pub fn is_ok(&self) -> bool {
        self.problem_count == 0
    }

    fn problem(&mut self, what: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(what);
        }
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.first_block, self.tip) {
            (Some(a), Some(b)) => write!(f, "blocks {a}..={b}")?,
            _ => write!(f, "no blocks")?,
        }
        write!(
            f,
            " ({} blocks, {} in the journal, {} transactions, {} logs; index: {} runs, {} keys, \
             {} shards, {} entries): ",
            self.blocks,
            self.journal_blocks,
            self.transactions,
            self.logs,
            self.index_runs,
            self.index_keys,
            self.index_shards,
            self.index_entries
        )?;
        if self.is_ok() {
            return write!(f, "consistent");
        }
        write!(f, "{} problem(s)", self.problem_count)?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        if self.problem_count > self.problems.len() as u64 {
            write!(f, "\n  - ... and {} more", self.problem_count - self.problems.len() as u64)?;
        }
        Ok(())
    }
}

/// Looks positions up in the log index, caching recently used shards.
struct IndexProbe<'tx> {
    /// A cursor on each level's `log_index` table.
    cursors: Vec<Cursor<'tx, Ro>>,
    cache: HashMap<(u32, IndexKey), (u64, u64, RoaringBitmap)>,
    buf: Vec<u8>,
}

impl<'tx> IndexProbe<'tx> {
    /// Whether run `run`'s index of `key` holds position `tx`.
    fn contains(&mut self, run: &Run, key: &IndexKey, tx: u64) -> Result<bool, MdbxError> {
        let cursor = &mut self.cursors[run.lvl()];
        let run = run.id;
        if let Some((base, max, bitmap)) = self.cache.get(&(run, *key))
            && (*base..=*max).contains(&tx)
        {
            return Ok(bitmap.contains((tx - base) as u32));
        }
        // The shard with the greatest base <= tx.
        key.shard_key(run, tx.saturating_add(1), &mut self.buf);
        let entry: Entry<'tx> = match cursor.set_range::<(), ()>(&self.buf)? {
            Some(_) => cursor.prev()?,
            None => cursor.last()?,
        };
        let Some((k, v)) = entry else { return Ok(false) };
        let prefix_len = self.buf.len() - 8;
        if k.len() != self.buf.len() || k[..prefix_len] != self.buf[..prefix_len] {
            return Ok(false);
        }
        let base = read_be(&k[prefix_len..], "shard base")?;
        if base > tx {
            return Ok(false);
        }
        let bitmap = decode_shard(&v)?;
        let max = base + u64::from(bitmap.max().unwrap_or(0));
        let found = tx - base <= u64::from(u32::MAX) && bitmap.contains((tx - base) as u32);
        if self.cache.len() >= 4096 {
            self.cache.clear();
        }
        self.cache.insert((run, *key), (base, max, bitmap));
        Ok(found)
    }
}

/// Runs every check on one read snapshot.
pub(crate) fn verify(store: &Store) -> Result<VerifyReport, MdbxError> {
    let txn = store.env.begin_ro_unsync()?;
    let mut r = VerifyReport::default();
    let mut expected_entries = 0u64;
    let runs = index_runs(&txn, store, &mut r)?;
    let (first_tx, end_tx) = blocks_and_data(&txn, store, &runs, &mut r, &mut expected_entries)?;
    tx_hash_table(&txn, store, &runs, &mut r, first_tx, end_tx)?;
    block_tables(&txn, store, &mut r)?;
    log_index(&txn, store, &runs, &mut r)?;
    if r.index_entries != expected_entries {
        r.problem(format!(
            "the log index holds {} entries but the stored logs give {expected_entries}",
            r.index_entries
        ));
    }
    Ok(r)
}

/// Walks the blocks in order with their transactions and receipts.
/// Returns the range of merged transactions (in `tx_hashes` and
/// `log_index`).
fn blocks_and_data(
    txn: &Tx<Ro>,
    store: &Store,
    runs: &[Run],
    r: &mut VerifyReport,
    expected_entries: &mut u64,
) -> Result<(u64, u64), MdbxError> {
    let t = store.tables;
    let mut headers = txn.cursor(t.headers)?;
    let mut txs = txn.cursor(t.transactions)?;
    let mut receipts = txn.cursor(t.receipts)?;
    let mut probe = IndexProbe {
        cursors: t.log_index.iter().map(|db| txn.cursor(*db)).collect::<Result<_, _>>()?,
        cache: HashMap::new(),
        buf: Vec::new(),
    };
    let mut hash_cursors: Vec<Cursor<'_, Ro>> =
        t.tx_hashes.iter().map(|db| txn.cursor(*db)).collect::<Result<_, _>>()?;
    let mut prev: Option<(u64, B256)> = None;
    let mut next_tx: Option<u64> = None;
    let mut first_tx = 0;
    let mut keys = Vec::new();
    let journal_first = {
        let mut c = txn.cursor(t.journal)?;
        let first: Entry<'_> = c.first()?;
        first.map(|(k, _)| read_be(&k, "journal key")).transpose()?
    };
    let mut merged_end_tx: Option<u64> = None;
    let mut block_hashes: Vec<B256> = Vec::new();
    let mut block_entries: Vec<(IndexKey, u32)> = Vec::new();
    let mut journal_buf = Vec::new();
    // The run of the block walked (merged blocks only).
    let mut run_at = 0usize;
    let mut item: Entry<'_> = headers.first()?;
    while let Some((key, value)) = item {
        let n = read_be(&key, "header key")?;
        r.blocks += 1;
        r.first_block.get_or_insert(n);
        r.tip = Some(n);
        let hash = match codec::decode_header(&value) {
            Ok(h) => {
                if h.number != n {
                    r.problem(format!("header stored at {n} has number {}", h.number));
                }
                let computed = h.hash_slow();
                if computed != h.hash() {
                    r.problem(format!(
                        "header {n}: stored hash {} but the header hashes to {computed}",
                        h.hash()
                    ));
                }
                if let Some((pn, ph)) = prev {
                    if pn + 1 != n {
                        r.problem(format!("blocks jump from {pn} to {n}"));
                    } else if h.parent_hash != ph {
                        r.problem(format!("block {n} does not link to block {pn}"));
                    }
                }
                h.hash()
            }
            Err(e) => {
                r.problem(format!("header {n} does not decode: {e}"));
                header_hash(&value).unwrap_or_default()
            }
        };
        prev = Some((n, hash));
        let extras: Option<Cow<'_, [u8]>> = txn.get(t.block_extras.dbi(), &be(n))?;
        match extras.map(|v| codec::decode_extras(&v)) {
            None => r.problem(format!("block {n} has no block_extras value")),
            Some(Err(e)) => r.problem(format!("block_extras of block {n} does not decode: {e}")),
            Some(Ok(_)) => {}
        }
        let stored: Option<[u8; 8]> = txn.get(t.block_hashes.dbi(), hash.as_slice())?;
        if stored.map(u64::from_be_bytes) != Some(n) {
            r.problem(format!("block hash {hash} of block {n} maps to {stored:?}"));
        }
        let bt: Option<Cow<'_, [u8]>> = txn.get(t.block_txs.dbi(), &be(n))?;
        let Some(bt) = bt.map(|v| BlockTxs::decode(&v)).transpose()? else {
            r.problem(format!("block {n} has no transaction range"));
            item = headers.next()?;
            continue;
        };
        match next_tx {
            None => first_tx = bt.first,
            Some(expected) if expected != bt.first => r.problem(format!(
                "block {n} starts at tx {}, the previous block ends at {expected}",
                bt.first
            )),
            Some(_) => {}
        }
        next_tx = Some(bt.end());
        let in_journal = journal_first.is_some_and(|jf| n >= jf);
        if in_journal && merged_end_tx.is_none() {
            merged_end_tx = Some(bt.first);
        }
        let mut run: Option<&Run> = None;
        if !in_journal {
            while runs.get(run_at).is_some_and(|x| x.last_block < n) {
                run_at += 1;
            }
            match runs.get(run_at) {
                Some(x) if x.first_block <= n => {
                    run = Some(x);
                    if n == x.first_block && bt.first != x.first_tx {
                        r.problem(format!(
                            "index run {} starts at tx {}, its first block {n} at tx {}",
                            x.id, x.first_tx, bt.first
                        ));
                    }
                    if n == x.last_block && bt.end() != x.end_tx {
                        r.problem(format!(
                            "index run {} ends at tx {}, its last block {n} at tx {}",
                            x.id,
                            x.end_tx,
                            bt.end()
                        ));
                    }
                }
                _ => r.problem(format!("merged block {n} is in no index run")),
            }
        }
        block_hashes.clear();
        block_entries.clear();
        if bt.count > 0 {
            let owner: Option<[u8; 8]> = txn.get(t.tx_blocks.dbi(), &be(bt.first))?;
            if owner.map(u64::from_be_bytes) != Some(n) {
                r.problem(format!("tx_blocks[{}] is {owner:?}, expected block {n}", bt.first));
            }
        }
        // Transactions and receipts of the block, and their blooms.
        let blooms: Option<Cow<'_, [u8]>> = txn.get(t.receipt_blooms.dbi(), &be(n))?;
        if blooms.is_none() {
            r.problem(format!("block {n} has no receipt_blooms value"));
        }
        let mut blooms_rest: Option<&[u8]> = blooms.as_deref();
        let mut t_item: Entry<'_> = txs.set_key(&be(bt.first))?;
        let mut r_item: Entry<'_> = receipts.set_key(&be(bt.first))?;
        for i in 0..u64::from(bt.count) {
            let tx = bt.first + i;
            let (Some((tk, tv)), Some((rk, rv))) = (&t_item, &r_item) else {
                r.problem(format!("block {n}: tx {tx} or its receipt is missing"));
                break;
            };
            if read_be(tk, "tx key")? != tx || read_be(rk, "receipt key")? != tx {
                r.problem(format!("block {n}: tx {tx} or its receipt is missing"));
                break;
            }
            r.transactions += 1;
            match (codec::decode_tx(tv), codec::decode_receipt(rv)) {
                (Ok(decoded), Ok(receipt)) => {
                    let h = *decoded.inner().tx_hash();
                    if receipt.tx_hash != h {
                        r.problem(format!("tx {tx}: receipt names tx {}", receipt.tx_hash));
                    }
                    if receipt.block_number != n || receipt.tx_index != i {
                        r.problem(format!(
                            "tx {tx}: receipt says block {} index {}, stored at block {n} \
                             index {i}",
                            receipt.block_number, receipt.tx_index
                        ));
                    }
                    if receipt.block_hash != hash {
                        r.problem(format!(
                            "tx {tx}: receipt names block hash {}",
                            receipt.block_hash
                        ));
                    }
                    // The stored bloom is the receipt's as appended (not
                    // always the bloom of its logs); only its layout can be
                    // checked.
                    if let Some(rest) = blooms_rest.as_mut() {
                        match take_bloom_bits(rest) {
                            Ok(_) => {}
                            Err(e) => {
                                r.problem(format!("block {n}: {e}"));
                                blooms_rest = None;
                            }
                        }
                    }
                    let entry: Option<()> = match run {
                        Some(run) => {
                            hash_cursors[run.lvl()].get_both(&hash_key(run.id, &h), &be(tx))?
                        }
                        None => None,
                    };
                    match (entry.is_some(), in_journal) {
                        (true, false) | (false, true) => {}
                        (true, true) => r.problem(format!(
                            "tx {tx} is in the journal but its hash is in tx_hashes"
                        )),
                        (false, false) => {
                            r.problem(format!("tx hash {h} of tx {tx} is not in tx_hashes"))
                        }
                    }
                    let logs = receipt.receipt.logs();
                    r.logs += logs.len() as u64;
                    log_keys(logs, &mut keys);
                    if in_journal {
                        block_hashes.push(h);
                        block_entries.extend(keys.iter().map(|k| (*k, i as u32)));
                    } else if let Some(run) = run {
                        for k in &keys {
                            *expected_entries += 1;
                            if !probe.contains(run, k, tx)? {
                                r.problem(format!(
                                    "tx {tx} has a log with {} but the index lacks it",
                                    k.describe()
                                ));
                            }
                        }
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    r.problem(format!("tx {tx} or its receipt does not decode: {e}"));
                    blooms_rest = None;
                }
            }
            t_item = txs.next()?;
            r_item = receipts.next()?;
        }
        if blooms_rest.is_some_and(|rest| !rest.is_empty()) {
            r.problem(format!("block {n}: receipt_blooms holds more blooms than receipts"));
        }
        let stored: Option<Cow<'_, [u8]>> = txn.get(t.journal.dbi(), &be(n))?;
        match (in_journal, stored) {
            (true, Some(stored)) => {
                journal::encode(&block_hashes, &mut block_entries, &mut journal_buf)?;
                if Journal::parse(&stored).is_err() || stored.as_ref() != journal_buf.as_slice() {
                    r.problem(format!("the journal value of block {n} does not match its data"));
                }
            }
            (true, None) => r.problem(format!("journal block {n} has no journal value")),
            (false, Some(_)) => r.problem(format!("block {n} is both merged and in the journal")),
            (false, None) => {}
        }
        item = headers.next()?;
    }
    let end_tx = next_tx.unwrap_or(0);
    // The runs cover exactly the merged blocks.
    let merged_last = match journal_first {
        Some(jf) if r.first_block.is_some_and(|f| jf <= f) => None,
        Some(jf) => jf.checked_sub(1),
        None => r.tip,
    };
    let (run_first, run_last) =
        (runs.first().map(|x| x.first_block), runs.last().map(|x| x.last_block));
    let merged_first = merged_last.and(r.first_block);
    if (run_first, run_last) != (merged_first, merged_last) {
        r.problem(format!(
            "the index runs cover blocks {run_first:?}..={run_last:?}, the merged blocks are \
             {merged_first:?}..={merged_last:?}"
        ));
    }
    let bloom_values = txn.db_stat(&t.receipt_blooms)?.entries() as u64;
    if bloom_values != r.blocks {
        r.problem(format!("receipt_blooms has {bloom_values} values for {} blocks", r.blocks));
    }
    let journal_count = txn.db_stat(&t.journal)?.entries() as u64;
    r.journal_blocks = journal_count;
    let expected_journal = match (journal_first, r.tip) {
        (Some(jf), Some(tip)) if jf <= tip => tip - jf + 1,
        _ => 0,
    };
    if journal_count != expected_journal {
        r.problem(format!(
            "the journal has {journal_count} blocks, expected the {expected_journal} newest"
        ));
    }
    let merged_end_tx = merged_end_tx.unwrap_or(end_tx);
    // Nothing outside the blocks' ranges.
    for (name, db) in [("transactions", t.transactions), ("receipts", t.receipts)] {
        let count = txn.db_stat(&db)?.entries() as u64;
        if count != r.transactions {
            r.problem(format!(
                "table {name} has {count} entries, the blocks hold {}",
                r.transactions
            ));
        }
    }
    Ok((first_tx, merged_end_tx))
}

/// The index runs: well formed, adjacent, in block order.
fn index_runs(txn: &Tx<Ro>, store: &Store, r: &mut VerifyReport) -> Result<Vec<Run>, MdbxError> {
    let mut cursor = txn.cursor(store.tables.runs)?;
    let mut runs: Vec<Run> = Vec::new();
    let mut item: Entry<'_> = cursor.first()?;
    while let Some((k, v)) = item {
        match Run::decode(&k, &v) {
            Ok(run) => {
                if let Some(prev) = runs.last()
                    && (prev.last_block + 1 != run.first_block || prev.end_tx != run.first_tx)
                {
                    r.problem(format!(
                        "index run {} (blocks {}..={}, txs {}..{}) does not follow run {} \
                         (blocks {}..={}, txs {}..{})",
                        run.id,
                        run.first_block,
                        run.last_block,
                        run.first_tx,
                        run.end_tx,
                        prev.id,
                        prev.first_block,
                        prev.last_block,
                        prev.first_tx,
                        prev.end_tx
                    ));
                }
                runs.push(run);
            }
            Err(e) => r.problem(format!("{e}")),
        }
        item = cursor.next()?;
    }
    r.index_runs = runs.len() as u64;
    Ok(runs)
}

/// The run holding transaction `tx`.
fn run_of(runs: &[Run], tx: u64) -> Option<&Run> {
    let i = runs.partition_point(|x| x.end_tx <= tx);
    runs.get(i).filter(|x| x.first_tx <= tx)
}

/// Every tx hash entry points at a merged transaction of its run whose hash
/// has that prefix.
fn tx_hash_table(
    txn: &Tx<Ro>,
    store: &Store,
    runs: &[Run],
    r: &mut VerifyReport,
    first_tx: u64,
    end_tx: u64,
) -> Result<(), MdbxError> {
    let t = store.tables;
    for (level, db) in t.tx_hashes.iter().enumerate() {
        tx_hash_level(txn, store, runs, r, level, *db)?;
    }
    if r.tx_hash_entries != end_tx.saturating_sub(first_tx) {
        r.problem(format!(
            "tx_hashes has {} entries for {} merged transactions",
            r.tx_hash_entries,
            end_tx.saturating_sub(first_tx)
        ));
    }
    Ok(())
}

/// The checks of [`tx_hash_table`] on the table of one level.
fn tx_hash_level(
    txn: &Tx<Ro>,
    store: &Store,
    runs: &[Run],
    r: &mut VerifyReport,
    level: usize,
    db: signet_libmdbx::Database,
) -> Result<(), MdbxError> {
    let t = store.tables;
    let mut cursor = txn.cursor(db)?;
    let mut item: Entry<'_> = cursor.first()?;
    while let Some((key, value)) = item {
        r.tx_hash_entries += 1;
        let tx = read_be(&value, "tx number")?;
        let run = read_run(&key, "tx_hashes key")?;
        let owner = run_of(runs, tx);
        if owner.map(|x| (x.id, x.lvl())) != Some((run, level)) || key.len() != 12 {
            r.problem(format!(
                "tx hash entry {key:02x?} of level {level} points at tx {tx}, outside its index \
                 run {run}"
            ));
        } else {
            let receipt: Option<Cow<'_, [u8]>> = txn.get(t.receipts.dbi(), &be(tx))?;
            match receipt.map(|v| codec::decode_receipt(&v)) {
                Some(Ok(rc)) if hash_key(run, &rc.tx_hash) == key.as_ref() => {}
                Some(Ok(rc)) => r.problem(format!(
                    "tx hash entry {key:02x?} points at tx {tx}, whose hash is {}",
                    rc.tx_hash
                )),
                _ => r.problem(format!(
                    "tx hash entry {key:02x?} points at tx {tx}, which is not readable"
                )),
            }
        }
        item = cursor.next()?;
    }
    Ok(())
}

/// `block_hashes`, `block_txs`, `block_extras` and `tx_blocks` hold nothing
/// beyond the blocks.
fn block_tables(txn: &Tx<Ro>, store: &Store, r: &mut VerifyReport) -> Result<(), MdbxError> {
    let t = store.tables;
    let mut cursor = txn.cursor(t.block_hashes)?;
    let mut item: Entry<'_> = cursor.first()?;
    while let Some((key, value)) = item {
        let n = read_be(&value, "block number")?;
        let stored: Option<Cow<'_, [u8]>> = txn.get(t.headers.dbi(), &be(n))?;
        let ok =
            stored.and_then(|v| header_hash(&v).ok()).is_some_and(|h| h.as_slice() == &key[..]);
        if !ok {
            r.problem(format!(
                "block hash {} maps to block {n}, which does not have it",
                B256::try_from(key.as_ref()).unwrap_or_default()
            ));
        }
        item = cursor.next()?;
    }
    let count = txn.db_stat(&t.block_txs)?.entries() as u64;
    if count != r.blocks {
        r.problem(format!("block_txs has {count} entries for {} blocks", r.blocks));
    }
    let count = txn.db_stat(&t.block_extras)?.entries() as u64;
    if count != r.blocks {
        r.problem(format!("block_extras has {count} entries for {} blocks", r.blocks));
    }
    let mut cursor = txn.cursor(t.tx_blocks)?;
    let mut item: Entry<'_> = cursor.first()?;
    while let Some((key, value)) = item {
        let first = read_be(&key, "tx_blocks key")?;
        let n = read_be(&value, "tx_blocks value")?;
        let bt: Option<Cow<'_, [u8]>> = txn.get(t.block_txs.dbi(), &be(n))?;
        match bt.map(|v| BlockTxs::decode(&v)).transpose()? {
            Some(bt) if bt.first == first && bt.count > 0 => {}
            other => r.problem(format!("tx_blocks[{first}] = block {n}, whose range is {other:?}")),
        }
        item = cursor.next()?;
    }
    Ok(())
}

/// Shards are well formed, ordered, disjoint and inside their run's range.
fn log_index(
    txn: &Tx<Ro>,
    store: &Store,
    runs: &[Run],
    r: &mut VerifyReport,
) -> Result<(), MdbxError> {
    for (level, db) in store.tables.log_index.iter().enumerate() {
        log_index_level(txn, runs, r, level, *db)?;
    }
    Ok(())
}

/// The checks of [`log_index`] on the table of one level.
fn log_index_level(
    txn: &Tx<Ro>,
    runs: &[Run],
    r: &mut VerifyReport,
    level: usize,
    db: signet_libmdbx::Database,
) -> Result<(), MdbxError> {
    let mut cursor = txn.cursor(db)?;
    let mut item: Entry<'_> = cursor.first()?;
    let mut prev: Option<(u32, IndexKey, u64)> = None;
    while let Some((key, value)) = item {
        r.index_shards += 1;
        let (run, k, base) = match IndexKey::parse(&key) {
            Ok(x) => x,
            Err(e) => {
                r.problem(format!("log index: {e}"));
                item = cursor.next()?;
                continue;
            }
        };
        let bitmap = match decode_shard(&value) {
            Ok(b) => b,
            Err(e) => {
                r.problem(format!("log index shard {base} of {}: {e}", k.describe()));
                item = cursor.next()?;
                continue;
            }
        };
        match prev {
            Some((pr, pk, pmax)) if pr == run && pk == k => {
                if base <= pmax {
                    r.problem(format!(
                        "log index of {} in run {run}: shard {base} overlaps the previous one \
                         (up to {pmax})",
                        k.describe()
                    ));
                }
            }
            _ => r.index_keys += 1,
        }
        if bitmap.min() != Some(0) {
            r.problem(format!(
                "log index of {}: shard {base} does not start at its base",
                k.describe()
            ));
        }
        let max = base + u64::from(bitmap.max().unwrap_or(0));
        r.index_entries += bitmap.len();
        match runs.iter().find(|x| x.id == run) {
            Some(x) if x.lvl() != level => r.problem(format!(
                "log index of {}: shard {base} of run {run} is in the table of level {level}, \
                 the run has level {}",
                k.describe(),
                x.level
            )),
            Some(x) if base >= x.first_tx && max < x.end_tx => {}
            Some(x) => r.problem(format!(
                "log index of {}: shard {base} holds positions up to {max}, outside its run \
                 {run} (txs {}..{})",
                k.describe(),
                x.first_tx,
                x.end_tx
            )),
            None => r.problem(format!(
                "log index of {}: shard {base} is in run {run}, which is not stored",
                k.describe()
            )),
        }
        prev = Some((run, k, max));
        item = cursor.next()?;
    }
    Ok(())
}
