//! Log queries: the log index leads to candidate transactions, whose receipts
//! are decoded and filtered exactly.
//!
//! A filter becomes *groups*: the address set is one group, each topic
//! position with a non-empty set is another. A group is the union of its
//! values' posting lists (the index shards of each value); the candidates are
//! the intersection of all groups, found by a leapfrog join: every group is
//! asked for its first position at or after `x`, and `x` jumps to the largest
//! answer until all agree. A group only reads the shards its answers fall
//! in, so a sparse group (a rare address, a topic that is an account) keeps a
//! dense one (a popular contract, an event signature) from being read whole.
//!
//! A filter without addresses and topics has no groups: every receipt of the
//! range is a candidate.

use crate::{
    error::{MdbxError, OrCold},
    journal::Journal,
    layout::{Entry, IndexKey, be, decode_shard, read_be},
    read::View,
    scan,
};
use alloy::primitives::BlockNumber;
use coldchain::{ColdResult, Deadline, LogFilter, RpcLog, filter::BlockSelector};
use roaring::RoaringBitmap;
use signet_libmdbx::{Cursor, TransactionKind};
use std::{borrow::Cow, ops::RangeInclusive};

/// How often (in steps) long loops check their deadline.
const CHECK_EVERY: u32 = 64;

/// Whether the consumer of logs wants more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep going.
    Continue,
    /// Stop: the consumer left.
    Stop,
}

/// One loaded shard of a posting list.
struct Shard {
    base: u64,
    bitmap: RoaringBitmap,
    /// Largest absolute position in the shard.
    max: u64,
}

/// The posting list of one index key, restricted to `[lo, hi)`, read lazily.
struct Posting {
    key: IndexKey,
    /// The index run read.
    run: u32,
    shard: Option<Shard>,
    /// The last answer of `seek` (valid for any `x <= last`).
    last: Option<u64>,
    exhausted: bool,
    key_buf: Vec<u8>,
}

impl Posting {
    fn new(key: IndexKey) -> Self {
        Self {
            key,
            run: 0,
            shard: None,
            last: None,
            exhausted: false,
            key_buf: Vec::with_capacity(45),
        }
    }

    /// Starts reading run `run`.
    fn reset(&mut self, run: u32) {
        self.run = run;
        self.shard = None;
        self.last = None;
        self.exhausted = false;
    }

    /// The shard base of a cursor entry, if the entry is a shard of this key
    /// in the run read.
    fn base_of(&self, key: &[u8]) -> ColdResult<Option<u64>> {
        let prefix = self.key.prefix();
        let len = 4 + prefix.len();
        if key.len() != len + 8
            || key[..4] != self.run.to_be_bytes()
            || !key[4..].starts_with(prefix)
        {
            return Ok(None);
        }
        Ok(Some(read_be(&key[len..], "shard base").cold()?))
    }

    /// Decodes a shard value starting at `base`.
    fn load(&self, base: u64, value: &[u8]) -> ColdResult<Shard> {
        let bitmap = decode_shard(value).cold()?;
        let Some(max) = bitmap.max() else {
            return Err(MdbxError::Corrupt(format!(
                "empty shard {base} of {}",
                self.key.describe()
            ))
            .into());
        };
        Ok(Shard { base, bitmap, max: base + u64::from(max) })
    }

    /// The first position `>= x` in the loaded shard, if any.
    fn in_shard(&self, x: u64) -> Option<u64> {
        let s = self.shard.as_ref()?;
        if x > s.max {
            return None;
        }
        let off = x.saturating_sub(s.base);
        // off <= max - base, which fits in u32.
        s.bitmap.range(off as u32..).next().map(|v| s.base + u64::from(v))
    }

    /// The first position `>= x` and `< hi` of this key.
    fn seek<K: TransactionKind>(
        &mut self,
        cursor: &mut Cursor<'_, K>,
        x: u64,
        hi: u64,
    ) -> ColdResult<Option<u64>> {
        if let Some(last) = self.last
            && last >= x
        {
            return Ok(Some(last));
        }
        if self.exhausted {
            return Ok(None);
        }
        let mut found = self.in_shard(x);
        if found.is_none() {
            // The shard with the greatest base <= x may hold positions >= x;
            // otherwise the first shard with a base > x starts at its base.
            self.key.shard_key(self.run, x, &mut self.key_buf);
            let ge = cursor.set_range::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&self.key_buf).cold()?;
            let positioned = ge.is_some();
            let ge = match ge {
                Some((k, v)) => self.base_of(&k)?.map(|base| (base, v)),
                None => None,
            };
            if let Some((base, value)) = ge.as_ref().filter(|(base, _)| *base == x) {
                self.shard = Some(self.load(*base, value)?);
                found = Some(x);
            } else {
                let prev = if positioned {
                    cursor.prev::<Cow<'_, [u8]>, Cow<'_, [u8]>>().cold()?
                } else {
                    cursor.last::<Cow<'_, [u8]>, Cow<'_, [u8]>>().cold()?
                };
                if let Some((k, v)) = prev
                    && let Some(base) = self.base_of(&k)?
                {
                    self.shard = Some(self.load(base, &v)?);
                    found = self.in_shard(x);
                }
                if found.is_none()
                    && let Some((base, value)) = ge
                {
                    self.shard = Some(self.load(base, &value)?);
                    found = Some(base);
                }
            }
        }
        match found {
            Some(p) if p < hi => {
                self.last = Some(p);
                Ok(Some(p))
            }
            _ => {
                self.exhausted = true;
                Ok(None)
            }
        }
    }
}

/// A union of posting lists: one address set or one topic position.
struct Group(Vec<Posting>);

impl Group {
    fn seek<K: TransactionKind>(
        &mut self,
        cursor: &mut Cursor<'_, K>,
        x: u64,
        hi: u64,
    ) -> ColdResult<Option<u64>> {
        let mut best: Option<u64> = None;
        for p in &mut self.0 {
            if let Some(y) = p.seek(cursor, x, hi)? {
                best = Some(best.map_or(y, |b| b.min(y)));
                if y == x {
                    break;
                }
            }
        }
        Ok(best)
    }
}

/// The index groups of a filter; empty when the filter matches every log.
fn groups(filter: &LogFilter) -> Vec<Group> {
    let mut out = Vec::new();
    if !filter.addresses.is_empty() {
        let mut keys: Vec<IndexKey> = filter.addresses.iter().map(IndexKey::address).collect();
        keys.sort_unstable();
        keys.dedup();
        out.push(Group(keys.into_iter().map(Posting::new).collect()));
    }
    for (pos, set) in filter.topics.iter().enumerate().take(4) {
        let Some(set) = set else { continue };
        if set.is_empty() {
            continue;
        }
        let mut keys: Vec<IndexKey> = set.iter().map(|t| IndexKey::topic(pos, t)).collect();
        keys.sort_unstable();
        keys.dedup();
        out.push(Group(keys.into_iter().map(Posting::new).collect()));
    }
    out
}

/// The stored blocks of `blocks` and their transaction range `[lo, hi)`.
fn stored_range<K: TransactionKind>(
    view: &View<'_, K>,
    blocks: RangeInclusive<BlockNumber>,
) -> ColdResult<Option<(BlockNumber, BlockNumber, u64, u64)>> {
    let (Some(first), Some(tip)) = (view.first_block()?, view.tip()?) else {
        return Ok(None);
    };
    let from = (*blocks.start()).max(first);
    let to = (*blocks.end()).min(tip.number);
    if from > to {
        return Ok(None);
    }
    let (Some(a), Some(b)) = (view.block_txs(from)?, view.block_txs(to)?) else {
        return Err(MdbxError::Corrupt(format!(
            "blocks {from} and {to} are stored but their transaction ranges are not"
        ))
        .into());
    };
    Ok(Some((from, to, a.first, b.end())))
}

/// Counts steps; every [`CHECK_EVERY`] of them checks the deadline and
/// runs the caller's periodic work.
struct Ticker<'d, 'i> {
    deadline: &'d Deadline,
    idle: &'i mut dyn FnMut() -> ColdResult<Flow>,
    steps: u32,
}

impl Ticker<'_, '_> {
    fn tick(&mut self) -> ColdResult<Flow> {
        self.steps = self.steps.wrapping_add(1);
        if self.steps.is_multiple_of(CHECK_EVERY) {
            self.deadline.check()?;
            return (self.idle)();
        }
        Ok(Flow::Continue)
    }
}

/// Up to how many receipts ahead a candidate is reached by stepping the
/// cursor rather than by a seek. Measured on W1's Q1 (a candidate every ~6
/// receipts): 1 and 2 are even, 12 was 8–37% slower.
const WALK_MAX: u64 = 2;

/// Reads candidate receipts in ascending order: short forward steps walk
/// the cursor, longer ones seek.
struct Receipts<'tx, K: TransactionKind> {
    cursor: Cursor<'tx, K>,
    at: Option<u64>,
}

impl<'tx, K: TransactionKind> Receipts<'tx, K> {
    fn new(view: &View<'tx, K>) -> ColdResult<Self> {
        Ok(Self { cursor: view.txn.cursor(view.t.receipts).cold()?, at: None })
    }

    /// Emits the matching logs of the receipt of transaction `tx`.
    fn emit(
        &mut self,
        tx: u64,
        filter: &LogFilter,
        emit: &mut impl FnMut(RpcLog, &[u8]) -> ColdResult<Flow>,
    ) -> ColdResult<Flow> {
        let mut entry: Entry<'tx> = None;
        if let Some(at) = self.at
            && at < tx
            && tx - at <= WALK_MAX
        {
            for _ in at..tx {
                entry = self.cursor.next().cold()?;
            }
        } else {
            entry = self.cursor.set_key(&be(tx)).cold()?;
        }
        let value = match entry {
            Some((key, value)) if key.as_ref() == be(tx).as_slice() => value,
            _ => {
                self.at = None;
                return Err(MdbxError::Corrupt(format!(
                    "the log index points at tx {tx}, which has no receipt"
                ))
                .into());
            }
        };
        self.at = Some(tx);
        scan::receipt_logs(&value, filter, emit)
    }
}

/// Runs `filter` over stored `blocks` (already resolved), emitting matches in
/// order, each with its data apart (see [`scan::receipt_logs`]). `idle`
/// runs every few steps (a stream flushes its burst there); either callback
/// returning [`Flow::Stop`] ends the scan.
pub(crate) fn scan<K: TransactionKind>(
    view: &View<'_, K>,
    filter: &LogFilter,
    blocks: RangeInclusive<BlockNumber>,
    deadline: &Deadline,
    emit: &mut impl FnMut(RpcLog, &[u8]) -> ColdResult<Flow>,
    idle: &mut dyn FnMut() -> ColdResult<Flow>,
) -> ColdResult<()> {
    let Some((from, to, lo, hi)) = stored_range(view, blocks)? else { return Ok(()) };
    if lo >= hi {
        return Ok(());
    }
    let mut ticker = Ticker { deadline, idle, steps: 0 };
    let mut groups = groups(filter);

    if groups.is_empty() {
        // Every receipt of the range.
        let mut receipts = view.txn.cursor(view.t.receipts).cold()?;
        let mut item = receipts.set_range::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&be(lo)).cold()?;
        while let Some((key, value)) = item {
            if read_be(&key, "receipt key").cold()? >= hi {
                break;
            }
            if ticker.tick()? == Flow::Stop
                || scan::receipt_logs(&value, filter, emit)? == Flow::Stop
            {
                return Ok(());
            }
            item = receipts.next().cold()?;
        }
        return Ok(());
    }

    // The merged blocks: each index run they fall in, in order.
    let journal_first = view.journal_first()?;
    let merged_hi = match journal_first {
        Some(jf) if jf <= to => match view.block_txs(jf)? {
            Some(bt) => bt.first.clamp(lo, hi),
            None => {
                return Err(MdbxError::Corrupt(format!("journal block {jf} has no range")).into());
            }
        },
        _ => hi,
    };
    let mut receipts = Receipts::new(view)?;
    if lo < merged_hi {
        for run in view.runs()? {
            let (run_lo, run_hi) = (lo.max(run.first_tx), merged_hi.min(run.end_tx));
            if run_lo >= run_hi {
                continue;
            }
            let mut index = view.txn.cursor(view.t.log_index[run.lvl()]).cold()?;
            for group in &mut groups {
                for posting in &mut group.0 {
                    posting.reset(run.id);
                }
            }
            let mut x = run_lo;
            'candidates: while x < run_hi {
                // Leapfrog: raise x until every group's next position
                // equals it.
                let mut agreed = 0;
                let mut g = 0;
                while agreed < groups.len() {
                    if ticker.tick()? == Flow::Stop {
                        return Ok(());
                    }
                    let Some(y) = groups[g].seek(&mut index, x, run_hi)? else {
                        break 'candidates;
                    };
                    if y == x {
                        agreed += 1;
                    } else {
                        x = y;
                        agreed = 1;
                    }
                    g = (g + 1) % groups.len();
                }
                if receipts.emit(x, filter, emit)? == Flow::Stop {
                    return Ok(());
                }
                x += 1;
            }
        }
    }

    // The newest blocks: their journal values.
    let Some(journal_first) = journal_first else { return Ok(()) };
    let mut cursor = view.txn.cursor(view.t.journal).cold()?;
    let start = from.max(journal_first);
    let mut item = cursor.set_range::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&be(start)).cold()?;
    let (mut union, mut cands, mut next) = (Vec::new(), Vec::new(), Vec::new());
    while let Some((key, value)) = item {
        let n = read_be(&key, "journal key").cold()?;
        if n > to {
            break;
        }
        if ticker.tick()? == Flow::Stop {
            return Ok(());
        }
        let journal = Journal::parse(&value).cold()?;
        // A cheap pass first: a group none of whose keys can be in the
        // block rules the block out.
        let possible = groups.iter().all(|g| g.0.iter().any(|p| journal.may_contain(&p.key)));
        if possible {
            for (gi, group) in groups.iter().enumerate() {
                union.clear();
                for posting in &group.0 {
                    journal.offsets_of(&posting.key, &mut union);
                }
                union.sort_unstable();
                union.dedup();
                if gi == 0 {
                    std::mem::swap(&mut cands, &mut union);
                } else {
                    next.clear();
                    next.extend(cands.iter().filter(|c| union.binary_search(c).is_ok()));
                    std::mem::swap(&mut cands, &mut next);
                }
                if cands.is_empty() {
                    break;
                }
            }
        }
        if !cands.is_empty() {
            let Some(bt) = view.block_txs(n)? else {
                return Err(MdbxError::Corrupt(format!("journal block {n} has no range")).into());
            };
            for off in &cands {
                if receipts.emit(bt.first + u64::from(*off), filter, emit)? == Flow::Stop {
                    return Ok(());
                }
            }
        }
        cands.clear();
        item = cursor.next().cold()?;
    }
    Ok(())
}

/// The stored block range a filter selects, or `None` when nothing can
/// match. An unknown block hash is `UnknownBlockHash`.
pub(crate) fn resolve<K: TransactionKind>(
    view: &View<'_, K>,
    filter: &LogFilter,
) -> ColdResult<Option<RangeInclusive<BlockNumber>>> {
    filter.validate()?;
    match filter.blocks {
        BlockSelector::Hash(h) => match view.block_number(coldchain::HeaderSpec::Hash(h))? {
            Some(n) => Ok(Some(n..=n)),
            None => Err(coldchain::ColdError::UnknownBlockHash(h)),
        },
        BlockSelector::Range { .. } => filter.resolve_range(view.tip()?.map(|t| t.number)),
    }
}
