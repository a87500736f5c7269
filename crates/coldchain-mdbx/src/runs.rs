//! Index runs: journal flushes and compactions (see the
//! [crate docs](crate#index-runs) for the design).
//!
//! Both write a new run whose id is greater than every stored one, with
//! MDBX's `APPEND`: keys arrive in order, so each entry goes to the end of
//! its table. A compaction reads its inputs through cursors of the same
//! write transaction while it appends; the inputs are deleted after.

use crate::{
    error::{MdbxError, OrCold},
    journal::Journal,
    layout::{
        Entry, IndexKey, Run, SHARD_MAX_ENTRIES, be, encode_offsets, read_be, read_run,
        shard_offsets, sort_by_hash, table,
    },
    read::View,
    store::Store,
};
use alloy::primitives::B256;
use coldchain::{ColdResult, Deadline};
use signet_libmdbx::{Cursor, Database, Rw, WriteFlags, tx::Tx};
use std::{
    borrow::Cow,
    cmp::Reverse,
    collections::{BinaryHeap, binary_heap::PeekMut},
};

/// How often (in keys or entries) long loops check their deadline.
const CHECK_EVERY: u64 = 4096;

/// Writes the shards of a new run, in key order, each appended at the end
/// of `log_index`.
struct ShardWriter<'tx> {
    cursor: Cursor<'tx, Rw>,
    run: u32,
    key: Option<IndexKey>,
    base: u64,
    /// The open shard's offsets from `base`, ascending.
    offsets: Vec<u32>,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
    /// Shards written.
    written: u64,
}

impl<'tx> ShardWriter<'tx> {
    fn new(txn: &'tx Tx<Rw>, db: Database, run: u32) -> ColdResult<Self> {
        Ok(Self {
            cursor: txn.cursor(db).cold()?,
            run,
            key: None,
            base: 0,
            offsets: Vec::with_capacity(SHARD_MAX_ENTRIES as usize),
            key_buf: Vec::with_capacity(45),
            value_buf: Vec::with_capacity(4096),
            written: 0,
        })
    }

    /// Adds `pos` to `key`'s positions. Keys come in ascending order, and
    /// each key's positions ascending.
    fn push(&mut self, key: IndexKey, pos: u64) -> ColdResult<()> {
        if self.key != Some(key) {
            self.finish_shard()?;
            self.key = Some(key);
        } else if let Some(&last) = self.offsets.last() {
            let fits = pos
                .checked_sub(self.base)
                .and_then(|off| u32::try_from(off).ok())
                .filter(|_| (self.offsets.len() as u64) < SHARD_MAX_ENTRIES);
            if let Some(off) = fits {
                if off <= last {
                    return Err(MdbxError::Corrupt(format!(
                        "log index of {} repeats position {pos} or goes back from it",
                        key.describe()
                    ))
                    .into());
                }
                self.offsets.push(off);
                return Ok(());
            }
            self.finish_shard()?;
        }
        self.base = pos;
        self.offsets.push(0);
        Ok(())
    }

    /// Writes a whole encoded shard of `key` (a key not pushed before).
    fn put_raw(&mut self, key: IndexKey, base: u64, value: &[u8]) -> ColdResult<()> {
        self.finish_shard()?;
        self.key = Some(key);
        key.shard_key(self.run, base, &mut self.key_buf);
        self.cursor.put(&self.key_buf, value, WriteFlags::APPEND).cold()?;
        self.written += 1;
        Ok(())
    }

    /// Writes the open shard, if any.
    fn finish_shard(&mut self) -> ColdResult<()> {
        let Some(key) = self.key else { return Ok(()) };
        if self.offsets.is_empty() {
            return Ok(());
        }
        key.shard_key(self.run, self.base, &mut self.key_buf);
        encode_offsets(&self.offsets, &mut self.value_buf).cold()?;
        self.cursor.put(&self.key_buf, &self.value_buf, WriteFlags::APPEND).cold()?;
        self.offsets.clear();
        self.written += 1;
        Ok(())
    }
}

/// Appends `(hash, tx)` pairs (sorted by hash, then tx) to `tx_hashes`
/// under run `run`.
fn write_hashes<'a>(
    txn: &Tx<Rw>,
    db: Database,
    run: u32,
    pairs: impl Iterator<Item = ColdResult<([u8; 8], u64)>> + 'a,
) -> ColdResult<u64> {
    let mut cursor = txn.cursor(db).cold()?;
    let mut last: Option<[u8; 8]> = None;
    let mut written = 0;
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&run.to_be_bytes());
    for pair in pairs {
        let (prefix, tx) = pair?;
        key[4..].copy_from_slice(&prefix);
        let flags = if last == Some(prefix) { WriteFlags::APPEND_DUP } else { WriteFlags::APPEND };
        cursor.put(&key, &be(tx), flags).cold()?;
        last = Some(prefix);
        written += 1;
    }
    Ok(written)
}

/// The id of the next run: one past the greatest stored.
fn next_id(runs: &[Run]) -> ColdResult<u32> {
    match runs.last() {
        Some(r) => r.id.checked_add(1).ok_or_else(|| {
            MdbxError::Corrupt("index run ids are exhausted (2^32 runs written)".into()).into()
        }),
        None => Ok(0),
    }
}

/// Moves the oldest `count` journal blocks into a new run of level 0.
pub(crate) fn flush_journal(
    txn: &Tx<Rw>,
    store: &Store,
    count: u64,
    deadline: &Deadline,
) -> ColdResult<()> {
    let t = store.tables;
    let view = View::new(txn, t);
    let runs = view.runs()?;
    let id = next_id(&runs)?;
    // The journal values, read in place, with each block's first tx.
    let mut values: Vec<(Cow<'_, [u8]>, u64)> = Vec::new();
    let mut range: Option<Run> = None;
    {
        let mut cursor = txn.cursor(t.journal).cold()?;
        let mut item = cursor.first::<Cow<'_, [u8]>, Cow<'_, [u8]>>().cold()?;
        while let Some((key, value)) = item {
            if values.len() as u64 == count {
                break;
            }
            let n = read_be(&key, "journal key").cold()?;
            let Some(bt) = view.block_txs(n)? else {
                return Err(MdbxError::Corrupt(format!(
                    "journal block {n} has no transactions range"
                ))
                .into());
            };
            values.push((value, bt.first));
            range = Some(match range {
                None => Run {
                    id,
                    first_block: n,
                    last_block: n,
                    first_tx: bt.first,
                    end_tx: bt.end(),
                    level: 0,
                },
                Some(r) => Run { last_block: n, end_tx: bt.end(), ..r },
            });
            item = cursor.next().cold()?;
        }
    }
    let Some(run) = range else { return Ok(()) };
    if let Some(prev) = runs.last()
        && (prev.last_block.checked_add(1) != Some(run.first_block) || prev.end_tx != run.first_tx)
    {
        return Err(MdbxError::Corrupt(format!(
            "the journal starts at block {} (tx {}), but index run {} ends at block {} (tx {})",
            run.first_block, run.first_tx, prev.id, prev.last_block, prev.end_tx
        ))
        .into());
    }
    let journals: Vec<(Journal<'_>, u64)> = values
        .iter()
        .map(|(v, first)| Ok((Journal::parse(v).cold()?, *first)))
        .collect::<ColdResult<_>>()?;
    deadline.check()?;

    let mut hashes: Vec<(B256, u64)> =
        Vec::with_capacity(journals.iter().map(|(j, _)| j.tx_count()).sum());
    for (j, first) in &journals {
        hashes.extend(j.hashes().map(|(h, off)| (h, first + u64::from(off))));
    }
    sort_by_hash(&mut hashes);
    write_hashes(
        txn,
        t.tx_hashes[0],
        id,
        hashes.iter().map(|(h, tx)| {
            let mut p = [0u8; 8];
            p.copy_from_slice(&h[..8]);
            Ok((p, *tx))
        }),
    )?;
    deadline.check()?;

    // Each block's entries are sorted by (key, offset), and the blocks'
    // positions ascend: a k-way merge over the blocks, smallest (key,
    // block, offset) first, gives (key, position) order without a sort or
    // a copy. The heap holds each block's next entry (read once) and its
    // index; taking one replaces the top in place: one sift down, where a
    // pop and a push took two passes and read each entry twice.
    let mut heap: BinaryHeap<Reverse<(IndexKey, usize, u32, usize)>> =
        BinaryHeap::with_capacity(journals.len());
    for (b, (j, _)) in journals.iter().enumerate() {
        if j.entry_count() > 0 {
            let (key, off) = j.entry(0).cold()?;
            heap.push(Reverse((key, b, off, 0)));
        }
    }
    let mut writer = ShardWriter::new(txn, t.log_index[0], id)?;
    let mut steps = 0u64;
    while let Some(mut top) = heap.peek_mut() {
        steps += 1;
        if steps.is_multiple_of(CHECK_EVERY) {
            deadline.check()?;
        }
        let Reverse((key, b, off, i)) = *top;
        let (j, first) = &journals[b];
        writer.push(key, first + u64::from(off))?;
        if i + 1 < j.entry_count() {
            let (key, off) = j.entry(i + 1).cold()?;
            *top = Reverse((key, b, off, i + 1));
        } else {
            PeekMut::pop(top);
        }
    }
    writer.finish_shard()?;
    drop(journals);
    drop(values);
    txn.put(t.runs, id.to_be_bytes(), run.encode(), WriteFlags::APPEND).cold()?;
    let mut cursor = txn.cursor(t.journal).cold()?;
    for _ in 0..count {
        if cursor.first::<(), ()>().cold()?.is_none() {
            break;
        }
        cursor.del().cold()?;
    }
    Ok(())
}

/// The runs to compact next, if any: the newest runs of one level, when
/// there are at least `fanout` of them and their level is below
/// `max_level`. Levels never grow from older runs to newer ones (a flush
/// adds a level-0 run; a compaction replaces the newest runs of one level
/// with one run of the next), so these are all the runs of their level.
pub(crate) fn due(runs: &[Run], fanout: usize, max_level: u8) -> Option<&[Run]> {
    let level = runs.last()?.level;
    let same = runs.iter().rev().take_while(|r| r.level == level).count();
    (level < max_level && same >= fanout.max(2)).then(|| &runs[runs.len() - same..])
}

/// The entries of one input run of a compaction, read in key order.
struct IndexInput<'tx> {
    cursor: Cursor<'tx, Rw>,
    run: u32,
    /// The current shard's key and base, if any; its value is in `value`.
    head: Option<(IndexKey, u64)>,
    value: Vec<u8>,
}

impl<'tx> IndexInput<'tx> {
    fn open(txn: &'tx Tx<Rw>, db: Database, run: u32) -> ColdResult<Self> {
        let mut cursor = txn.cursor(db).cold()?;
        let item = cursor.set_range::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&run.to_be_bytes()).cold()?;
        let mut input = Self { cursor, run, head: None, value: Vec::with_capacity(4096) };
        input.head = parse_index_entry(run, item, &mut input.value)?;
        Ok(input)
    }

    fn advance(&mut self) -> ColdResult<()> {
        let item = self.cursor.next::<Cow<'_, [u8]>, Cow<'_, [u8]>>().cold()?;
        self.head = parse_index_entry(self.run, item, &mut self.value)?;
        Ok(())
    }
}

/// The key and base of a `log_index` entry of run `run` (its value copied
/// into `value`), or `None` past the run.
fn parse_index_entry(
    run: u32,
    item: Entry<'_>,
    value: &mut Vec<u8>,
) -> ColdResult<Option<(IndexKey, u64)>> {
    let Some((k, v)) = item else { return Ok(None) };
    if read_run(&k, "log index key").cold()? != run {
        return Ok(None);
    }
    let (_, key, base) = IndexKey::parse(&k).cold()?;
    value.clear();
    value.extend_from_slice(&v);
    Ok(Some((key, base)))
}

/// The `tx_hashes` entries of one input run of a compaction, in order.
struct HashInput<'tx> {
    cursor: Cursor<'tx, Rw>,
    run: u32,
    head: Option<([u8; 8], u64)>,
}

impl<'tx> HashInput<'tx> {
    fn open(txn: &'tx Tx<Rw>, db: Database, run: u32) -> ColdResult<Self> {
        let mut cursor = txn.cursor(db).cold()?;
        let item = cursor.set_range::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&run.to_be_bytes()).cold()?;
        let mut input = Self { cursor, run, head: None };
        input.head = input.parse(item)?;
        Ok(input)
    }

    fn parse(&self, item: Entry<'_>) -> ColdResult<Option<([u8; 8], u64)>> {
        let Some((k, v)) = item else { return Ok(None) };
        if read_run(&k, "tx_hashes key").cold()? != self.run {
            return Ok(None);
        }
        let mut prefix = [0u8; 8];
        match k.get(4..) {
            Some(p) if p.len() == 8 => prefix.copy_from_slice(p),
            _ => {
                return Err(
                    MdbxError::Corrupt(format!("tx_hashes key of {} bytes", k.len())).into()
                );
            }
        }
        Ok(Some((prefix, read_be(&v, "tx number").cold()?)))
    }

    fn advance(&mut self) -> ColdResult<()> {
        let item = self.cursor.next::<Cow<'_, [u8]>, Cow<'_, [u8]>>().cold()?;
        self.head = self.parse(item)?;
        Ok(())
    }
}

/// Merges `inputs` (the newest runs of one level, in id order; see
/// [`due`]) into one new run of the next level, then deletes them. `all` is
/// every stored run.
pub(crate) fn compact(
    txn: &Tx<Rw>,
    store: &Store,
    all: &[Run],
    inputs: &[Run],
    deadline: &Deadline,
) -> ColdResult<Run> {
    let t = store.tables;
    let (Some(first), Some(last)) = (inputs.first(), inputs.last()) else {
        return Err(MdbxError::Corrupt("a compaction of no runs".into()).into());
    };
    let from = first.lvl();
    let id = next_id(all)?;
    let run = Run {
        id,
        first_block: first.first_block,
        last_block: last.last_block,
        first_tx: first.first_tx,
        end_tx: last.end_tx,
        level: first.level.saturating_add(1),
    };
    if inputs.iter().any(|r| r.level != first.level) || run.lvl() >= table::LEVELS {
        return Err(MdbxError::Corrupt(format!(
            "a compaction of runs of levels {:?}",
            inputs.iter().map(|r| r.level).collect::<Vec<_>>()
        ))
        .into());
    }
    let span = tracing::debug_span!(
        "compact",
        runs = inputs.len(),
        level = run.level,
        blocks = run.last_block - run.first_block + 1
    )
    .entered();

    // tx_hashes: a k-way merge by hash prefix; ties keep run order, which
    // is tx order.
    {
        let mut heads: Vec<HashInput<'_>> = inputs
            .iter()
            .map(|r| HashInput::open(txn, t.tx_hashes[from], r.id))
            .collect::<ColdResult<_>>()?;
        let mut steps = 0u64;
        let merged = std::iter::from_fn(|| {
            steps += 1;
            if steps.is_multiple_of(CHECK_EVERY)
                && let Err(e) = deadline.check()
            {
                return Some(Err(e));
            }
            let i = heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.head.map(|x| (x, i)))
                .min()
                .map(|(_, i)| i)?;
            let head = heads[i].head?;
            Some(heads[i].advance().map(|()| head))
        });
        write_hashes(txn, t.tx_hashes[run.lvl()], id, merged)?;
    }
    deadline.check()?;

    // log_index: a k-way merge by key; a key's positions come from the
    // inputs in order, which is position order. A key found in one input
    // only keeps its shards as they are.
    let mut writer = ShardWriter::new(txn, t.log_index[run.lvl()], id)?;
    let mut heads: Vec<IndexInput<'_>> = inputs
        .iter()
        .map(|r| IndexInput::open(txn, t.log_index[from], r.id))
        .collect::<ColdResult<_>>()?;
    let mut keys = 0u64;
    let mut offsets = Vec::new();
    while let Some(key) = heads.iter().filter_map(|h| h.head.map(|x| x.0)).min() {
        keys += 1;
        if keys.is_multiple_of(CHECK_EVERY) {
            deadline.check()?;
        }
        let holders = heads.iter().filter(|h| h.head.is_some_and(|x| x.0 == key)).count();
        for h in &mut heads {
            while let Some((k, base)) = h.head
                && k == key
            {
                if holders == 1 {
                    writer.put_raw(key, base, &h.value)?;
                } else {
                    offsets.clear();
                    shard_offsets(&h.value, &mut offsets).cold()?;
                    for off in &offsets {
                        writer.push(key, base + u64::from(*off))?;
                    }
                }
                h.advance()?;
            }
        }
    }
    writer.finish_shard()?;
    drop(heads);
    deadline.check()?;

    // The inputs are all the runs of their level (see `due`): their tables
    // are emptied whole, which frees their pages without visiting entries.
    let all_of_level = all.iter().filter(|r| r.level == first.level).count() == inputs.len();
    if all_of_level {
        txn.clear_db(t.tx_hashes[from]).cold()?;
        txn.clear_db(t.log_index[from]).cold()?;
    } else {
        for input in inputs {
            delete_run(txn, t.tx_hashes[from], input.id)?;
            delete_run(txn, t.log_index[from], input.id)?;
        }
    }
    for input in inputs {
        txn.del(t.runs, input.id.to_be_bytes(), None).cold()?;
    }
    txn.put(t.runs, id.to_be_bytes(), run.encode(), WriteFlags::APPEND).cold()?;
    tracing::debug!(parent: &span, shards = writer.written, "compacted");
    Ok(run)
}

/// Deletes every entry of `db` (a `tx_hashes` or `log_index` table) of run
/// `run`.
pub(crate) fn delete_run(txn: &Tx<Rw>, db: Database, run: u32) -> ColdResult<()> {
    let prefix = run.to_be_bytes();
    let mut cursor = txn.cursor(db).cold()?;
    let mut item = cursor.set_range::<Cow<'_, [u8]>, ()>(&prefix).cold()?;
    while let Some((k, ())) = item {
        if !k.starts_with(&prefix) {
            break;
        }
        cursor.del().cold()?;
        // After a delete MDBX leaves the cursor on the next entry.
        item = cursor.get_current::<Cow<'_, [u8]>, ()>().cold()?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn runs(levels: &[u8]) -> Vec<Run> {
        levels
            .iter()
            .enumerate()
            .map(|(i, &level)| Run {
                id: i as u32,
                first_block: i as u64 * 10,
                last_block: i as u64 * 10 + 9,
                first_tx: i as u64 * 100,
                end_tx: i as u64 * 100 + 100,
                level,
            })
            .collect()
    }

    #[test]
    fn due_takes_the_newest_runs_of_one_level() {
        let ids = |r: Option<&[Run]>| r.map(|r| r.iter().map(|x| x.id).collect::<Vec<_>>());
        assert_eq!(ids(due(&runs(&[]), 4, 3)), None);
        assert_eq!(ids(due(&runs(&[0, 0, 0]), 4, 3)), None);
        assert_eq!(ids(due(&runs(&[1, 0, 0, 0, 0]), 4, 3)), Some(vec![1, 2, 3, 4]));
        // More than `fanout` (a compaction failed once): all of them.
        assert_eq!(ids(due(&runs(&[2, 0, 0, 0, 0, 0]), 4, 3)), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(ids(due(&runs(&[1, 1, 1, 1]), 4, 3)), Some(vec![0, 1, 2, 3]));
        // The top level is never compacted.
        assert_eq!(ids(due(&runs(&[3, 3, 3, 3, 3]), 4, 3)), None);
        assert_eq!(ids(due(&runs(&[1, 1, 0, 0]), 2, 3)), Some(vec![2, 3]));
    }

    #[test]
    fn run_values_round_trip_and_are_checked() {
        let run = runs(&[2])[0];
        let value = run.encode();
        assert_eq!(Run::decode(&run.id.to_be_bytes(), &value).unwrap(), run);
        let mut bad = value;
        bad[33] = table::LEVELS as u8;
        assert!(Run::decode(&run.id.to_be_bytes(), &bad).is_err());
        let mut bad = value;
        bad[0] = 0x72;
        assert!(Run::decode(&run.id.to_be_bytes(), &bad).is_err());
        assert!(Run::decode(&[0, 0, 1], &value).is_err());
        let empty = Run { first_block: 10, last_block: 9, ..run };
        assert!(Run::decode(&run.id.to_be_bytes(), &empty.encode()).is_err());
    }
}
