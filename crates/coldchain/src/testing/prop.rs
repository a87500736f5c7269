//! A model-based property test any backend runs with one call:
//! [`run_model_test`].
//!
//! Each generated [`ModelCase`] is a synthetic chain (a seed and a
//! [`ChainShape`] with small address and topic pools, so filters hit) and a
//! sequence of [`Op`]s: appends that extend the tip (after a truncation,
//! sometimes with a competing fork from another seed), invalid appends
//! (gaps, wrong parents, duplicates, a bad third block of a batch, a missing
//! receipt), `truncate_above`, `drain_above`, and every read with keys that
//! exist, existed once, or never did. Ops are interpreted against the current
//! state, so any subsequence is still a valid case and proptest shrinks a
//! failure to a short, readable one.
//!
//! After every op the backend and the [`ReferenceModel`] must agree: equal
//! results, or errors of the same [`ColdError::kind`] (and `TooManyLogs`
//! with the same `fits_to`). After every write the
//! tip and the touched blocks are compared; at the end of a case, every block
//! ever generated is looked up in both.
//!
//! A failure panics with the reason (the op, what was called, both answers,
//! and the ops that led there) and the minimal failing case.
//! `PROPTEST_RNG_SEED` makes a run repeatable.

use crate::{
    BlockData, ColdBackend, ColdError, ColdResult, Deadline, HeaderSpec, LogFilter, ReceiptSpec,
    RpcLog, TxSpec,
    backend::StreamParams,
    filter::BlockSelector,
    testing::{
        chain::{ChainShape, test_address, test_block, test_chain_with, test_topic},
        model::ReferenceModel,
    },
};
use alloy::{
    eips::BlockNumHash,
    primitives::{B256, BlockNumber, TxHash, keccak256},
};
use proptest::{
    collection::vec,
    option,
    prelude::*,
    sample::Index,
    test_runner::{Config, TestCaseError, TestRunner},
};
use std::{fmt::Debug, time::Duration};
use tokio::sync::mpsc;

/// One generated case: a chain and the ops to run on it.
#[derive(Debug, Clone)]
pub struct ModelCase {
    /// Seed of the case's chain; forks use derived seeds.
    pub seed: u64,
    /// Number of the first block appended to an empty store.
    pub start: BlockNumber,
    /// Shape of the generated blocks.
    pub shape: ChainShape,
    /// Blocks of the case's chain appended (as one batch) before the ops.
    pub initial: u64,
    /// The ops, run in order on a fresh store and a fresh model.
    pub ops: Vec<Op>,
}

/// One step of a case. Keys and numbers are resolved against the state when
/// the op runs.
#[derive(Debug, Clone)]
pub enum Op {
    /// Appends `count` blocks in one batch, extending the tip. `fork` 0 is the
    /// case's own chain (after a truncation it regenerates the same blocks);
    /// other values use other seeds, i.e. a competing fork. On an empty store
    /// the batch starts at `start + 3 * fork`.
    Append {
        /// Blocks in the batch (0 is an empty batch).
        count: u64,
        /// Which chain to take the blocks from.
        fork: u64,
    },
    /// Appends a batch that must fail (unless the store is empty, where any
    /// first block is fine); both sides must agree and nothing is written.
    AppendInvalid(Invalid),
    /// `truncate_above`.
    TruncateAbove(Cut),
    /// `drain_above`.
    DrainAbove(Cut),
    /// `tip`.
    Tip,
    /// `header`.
    Header(BlockKey),
    /// `block_transactions`.
    BlockTransactions(BlockKey),
    /// `block_extras`.
    BlockExtras(BlockKey),
    /// `block_receipts`.
    BlockReceipts(BlockKey),
    /// `transaction`.
    Transaction(TxKey),
    /// `receipt`.
    Receipt(TxKey),
    /// `get_logs`.
    GetLogs(LogQuery),
    /// `produce_logs` over a range of stored blocks.
    Stream(StreamQuery),
}

/// A kind of invalid append.
#[derive(Debug, Clone, Copy)]
pub enum Invalid {
    /// The block after the next one (a gap).
    Gap,
    /// The next number with a wrong parent hash.
    WrongParent,
    /// A block at the number of the stored block `depth` below the tip.
    Duplicate {
        /// How far below the tip.
        depth: u64,
    },
    /// A batch of three whose third block has a wrong parent.
    BadThird,
    /// The next block with one receipt missing (`InvalidBlock`).
    MissingReceipt,
}

/// Where a truncation or drain cuts.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// `depth` below the tip (0 is the tip itself: nothing removed).
    Depth(u64),
    /// An absolute number: may be above the tip or below the first block.
    Number(BlockNumber),
}

/// Names a block for a read.
#[derive(Debug, Clone)]
pub enum BlockKey {
    /// By number (may be stored, removed or never used).
    Number(BlockNumber),
    /// By the number of a block generated earlier in the case.
    SeenNumber(Index),
    /// By the hash of a block generated earlier in the case (it may have
    /// been truncated, or belong to a failed append).
    SeenHash(Index),
    /// By a hash no block has.
    UnknownHash(u8),
}

/// Names a transaction or receipt for a read.
#[derive(Debug, Clone)]
pub enum TxKey {
    /// By the hash of a transaction generated earlier in the case.
    SeenHash(Index),
    /// By a hash no transaction has.
    UnknownHash(u8),
    /// By block and index.
    At(BlockKey, TxIndex),
}

/// An index of a transaction in a block.
#[derive(Debug, Clone)]
pub enum TxIndex {
    /// An index inside the block named, if it is stored and not empty.
    InBlock(Index),
    /// Any index (often out of range).
    Raw(u64),
}

/// One end of a log query's block range.
#[derive(Debug, Clone, Copy)]
pub enum End {
    /// This far below the tip (0 when the store is empty).
    TipMinus(u64),
    /// An absolute number.
    Number(BlockNumber),
}

/// Blocks of a log query.
#[derive(Debug, Clone)]
pub enum LogBlocks {
    /// A numeric range; `None` ends are the tip.
    Range {
        /// First block; `None` is the tip.
        from: Option<End>,
        /// Last block; `None` is the tip.
        to: Option<End>,
        /// Keep `from > to` when both resolve that way (an invalid filter);
        /// otherwise the two are swapped.
        keep_inverted: bool,
    },
    /// One block by hash (seen or unknown).
    Hash(BlockKey),
}

/// A `get_logs` call.
#[derive(Debug, Clone)]
pub struct LogQuery {
    /// Which blocks.
    pub blocks: LogBlocks,
    /// Address pool indexes (see [`test_address`]).
    pub addresses: Vec<u64>,
    /// Topic positions as topic pool indexes (see [`test_topic`]); more than
    /// four positions is an invalid filter.
    pub topics: Vec<Option<Vec<u64>>>,
    /// The `max_logs` argument.
    pub max_logs: usize,
}

/// A `produce_logs` call over stored blocks.
#[derive(Debug, Clone)]
pub struct StreamQuery {
    /// Address pool indexes.
    pub addresses: Vec<u64>,
    /// Topic positions (at most four).
    pub topics: Vec<Option<Vec<u64>>>,
    /// The range ends this far below the tip (clamped to the first block).
    pub end_depth: u64,
    /// The range spans this many blocks below its end (clamped).
    pub len: u64,
    /// `StreamParams::max_logs`; ignored with a stale anchor.
    pub max_logs: usize,
    /// Use a wrong anchor hash: the stream must end with `ReorgDetected`.
    pub stale_anchor: bool,
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

fn block_key() -> impl Strategy<Value = BlockKey> {
    prop_oneof![
        2 => (0u64..100).prop_map(BlockKey::Number),
        3 => any::<Index>().prop_map(BlockKey::SeenNumber),
        3 => any::<Index>().prop_map(BlockKey::SeenHash),
        1 => any::<u8>().prop_map(BlockKey::UnknownHash),
    ]
}

fn tx_key() -> impl Strategy<Value = TxKey> {
    prop_oneof![
        3 => any::<Index>().prop_map(TxKey::SeenHash),
        1 => any::<u8>().prop_map(TxKey::UnknownHash),
        3 => (block_key(), tx_index()).prop_map(|(b, i)| TxKey::At(b, i)),
    ]
}

fn tx_index() -> impl Strategy<Value = TxIndex> {
    prop_oneof![3 => any::<Index>().prop_map(TxIndex::InBlock), 1 => (0u64..8).prop_map(TxIndex::Raw)]
}

/// Topic positions; `invalid` allows a fifth position now and then.
fn topics(invalid: bool) -> impl Strategy<Value = Vec<Option<Vec<u64>>>> {
    let position = || option::weighted(0.6, vec(0u64..8, 0..3));
    let five = if invalid { 1 } else { 0 };
    prop_oneof![12 => vec(position(), 0..=4), five => vec(position(), 5..=5)]
}

fn max_logs() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(usize::MAX), 1 => 0usize..12]
}

fn log_query() -> impl Strategy<Value = LogQuery> {
    let end = || {
        option::weighted(
            0.85,
            prop_oneof![3 => (0u64..12).prop_map(End::TipMinus), 1 => (0u64..100).prop_map(End::Number)],
        )
    };
    let blocks = prop_oneof![
        5 => (end(), end(), prop::bool::weighted(0.1))
            .prop_map(|(from, to, keep_inverted)| LogBlocks::Range { from, to, keep_inverted }),
        1 => block_key().prop_map(LogBlocks::Hash),
    ];
    (blocks, vec(0u64..7, 0..3), topics(true), max_logs()).prop_map(
        |(blocks, addresses, topics, max_logs)| LogQuery { blocks, addresses, topics, max_logs },
    )
}

fn stream_query() -> impl Strategy<Value = StreamQuery> {
    (vec(0u64..7, 0..3), topics(false), 0u64..6, 0u64..12, max_logs(), prop::bool::weighted(0.2))
        .prop_map(|(addresses, topics, end_depth, len, max_logs, stale_anchor)| StreamQuery {
            addresses,
            topics,
            end_depth,
            len,
            max_logs,
            stale_anchor,
        })
}

fn cut() -> impl Strategy<Value = Cut> {
    prop_oneof![3 => (0u64..8).prop_map(Cut::Depth), 1 => (0u64..100).prop_map(Cut::Number)]
}

fn invalid() -> impl Strategy<Value = Invalid> {
    prop_oneof![
        Just(Invalid::Gap),
        Just(Invalid::WrongParent),
        (0u64..4).prop_map(|depth| Invalid::Duplicate { depth }),
        Just(Invalid::BadThird),
        Just(Invalid::MissingReceipt),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop_oneof![1 => Just(0u64), 6 => 1u64..6], prop_oneof![3 => Just(0u64), 1 => 1u64..3])
            .prop_map(|(count, fork)| Op::Append { count, fork }),
        2 => invalid().prop_map(Op::AppendInvalid),
        2 => cut().prop_map(Op::TruncateAbove),
        1 => cut().prop_map(Op::DrainAbove),
        1 => Just(Op::Tip),
        2 => block_key().prop_map(Op::Header),
        1 => block_key().prop_map(Op::BlockTransactions),
        1 => block_key().prop_map(Op::BlockExtras),
        1 => block_key().prop_map(Op::BlockReceipts),
        2 => tx_key().prop_map(Op::Transaction),
        2 => tx_key().prop_map(Op::Receipt),
        5 => log_query().prop_map(Op::GetLogs),
        1 => stream_query().prop_map(Op::Stream),
    ]
}

/// The strategy of [`run_model_test`]: small pools so filters hit, up to 40
/// ops.
pub fn model_case() -> impl Strategy<Value = ModelCase> {
    let shape = (1u64..=6, 1u64..=4, 3u64..=6, 3u64..=8).prop_map(
        |(max_txs, max_logs, addresses, topics)| ChainShape {
            max_txs,
            max_logs,
            addresses,
            topics,
        },
    );
    (any::<u64>(), 0u64..20, shape, 0u64..12, vec(op(), 0..40)).prop_map(
        |(seed, start, shape, initial, ops)| ModelCase { seed, start, shape, initial, ops },
    )
}

// ---------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------

/// Runs the model test: `cases` generated cases (the `PROPTEST_CASES`
/// environment variable overrides it, for longer runs), each on a fresh,
/// empty store from `make` (called inside the test's tokio runtime, a
/// current-thread one this function builds). Panics with the minimal failing
/// case on a disagreement between the backend and the [`ReferenceModel`].
pub fn run_model_test<B: ColdBackend>(make: impl Fn() -> B, cases: u32) {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("model test: cannot build a tokio runtime: {e}"),
    };
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&model_case(), |case| {
        let backend = {
            let _guard = rt.enter();
            make()
        };
        rt.block_on(run_case(backend, &case)).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("model test failed: {e}");
    }
}

/// Runs one case on `backend`; `Err` describes the first disagreement.
pub async fn run_case<B: ColdBackend>(mut backend: B, case: &ModelCase) -> Result<(), String> {
    let mut world = World {
        case: case.clone(),
        model: ReferenceModel::new(),
        seen_blocks: Vec::new(),
        seen_txs: Vec::new(),
        history: Vec::new(),
    };
    let initial = Op::Append { count: case.initial, fork: 0 };
    if let Err(e) = world.step(&mut backend, &initial).await {
        return Err(format!("initial {initial:?}: {e}"));
    }
    for (i, op) in case.ops.iter().enumerate() {
        if let Err(e) = world.step(&mut backend, op).await {
            return Err(format!(
                "op #{i} {op:?}: {e}\n  ops so far:\n    {}",
                world.history.join("\n    ")
            ));
        }
    }
    if let Err(e) = world.final_check(&backend).await {
        return Err(format!("final check: {e}\n  ops:\n    {}", world.history.join("\n    ")));
    }
    Ok(())
}

fn dl() -> Deadline {
    Deadline::none("test")
}

/// Debug output, shortened for failure messages.
fn short(v: &impl Debug) -> String {
    let s = format!("{v:?}");
    if s.len() > 600 {
        let mut end = 600;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} chars)", &s[..end], s.len())
    } else {
        s
    }
}

/// Equal results, or errors of the same kind.
fn same<T: PartialEq + Debug>(
    what: &str,
    got: ColdResult<T>,
    want: ColdResult<T>,
) -> Result<(), String> {
    match (&got, &want) {
        (Ok(g), Ok(w)) if g == w => Ok(()),
        // `TooManyLogs` must agree on the suggested range too.
        (
            Err(ColdError::TooManyLogs { fits_to: g, .. }),
            Err(ColdError::TooManyLogs { fits_to: w, .. }),
        ) if g != w => Err(format!("{what}: TooManyLogs fits_to {g:?}, model {w:?}")),
        (Err(g), Err(w)) if g.kind() == w.kind() => Ok(()),
        (Ok(g), Ok(w)) => {
            Err(format!("{what}: results differ\n  backend: {}\n  model:   {}", short(g), short(w)))
        }
        _ => Err(format!("{what}: backend gave {}, model gave {}", short(&got), short(&want))),
    }
}

fn log_list_diff(got: &[RpcLog], want: &[RpcLog]) -> String {
    let first = got.iter().zip(want).position(|(g, w)| g != w).unwrap_or(got.len().min(want.len()));
    format!(
        "{} logs vs {} in the model; first difference at {first}: backend {}, model {}",
        got.len(),
        want.len(),
        short(&got.get(first)),
        short(&want.get(first))
    )
}

struct World {
    case: ModelCase,
    model: ReferenceModel,
    /// Every block generated in the case: stored, removed or rejected.
    seen_blocks: Vec<BlockNumHash>,
    /// Every transaction hash generated in the case.
    seen_txs: Vec<TxHash>,
    history: Vec<String>,
}

impl World {
    fn see(&mut self, blocks: &[BlockData]) {
        for b in blocks {
            self.seen_blocks.push(b.num_hash());
            self.seen_txs.extend(b.transactions.iter().map(|t| *t.inner().tx_hash()));
        }
    }

    fn fork_seed(&self, fork: u64) -> u64 {
        self.case.seed.wrapping_add(fork.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Parent hash of the first block on an empty store: not a block hash.
    fn genesis_parent(&self, fork: u64) -> B256 {
        keccak256([self.case.seed.to_be_bytes(), fork.to_be_bytes()].concat())
    }

    fn unknown_hash(x: u8) -> B256 {
        B256::repeat_byte(x)
    }

    fn header_spec(&self, key: &BlockKey) -> HeaderSpec {
        match key {
            BlockKey::Number(n) => HeaderSpec::Number(*n),
            BlockKey::SeenNumber(i) => {
                match self.seen_blocks.get(i.index(self.seen_blocks.len().max(1))) {
                    Some(b) => HeaderSpec::Number(b.number),
                    None => HeaderSpec::Number(self.case.start),
                }
            }
            BlockKey::SeenHash(i) => {
                match self.seen_blocks.get(i.index(self.seen_blocks.len().max(1))) {
                    Some(b) => HeaderSpec::Hash(b.hash),
                    None => HeaderSpec::Hash(Self::unknown_hash(1)),
                }
            }
            BlockKey::UnknownHash(x) => HeaderSpec::Hash(Self::unknown_hash(*x)),
        }
    }

    fn tx_spec(&self, key: &TxKey) -> TxSpec {
        match key {
            TxKey::SeenHash(i) => match self.seen_txs.get(i.index(self.seen_txs.len().max(1))) {
                Some(h) => TxSpec::Hash(*h),
                None => TxSpec::Hash(Self::unknown_hash(2)),
            },
            TxKey::UnknownHash(x) => TxSpec::Hash(Self::unknown_hash(*x)),
            TxKey::At(block, i) => {
                let spec = self.header_spec(block);
                let i = match i {
                    TxIndex::Raw(i) => *i,
                    TxIndex::InBlock(i) => {
                        let len = self.model.block(spec).map_or(0, |b| b.transactions.len());
                        i.index(len.max(1)) as u64
                    }
                };
                match spec {
                    HeaderSpec::Number(n) => TxSpec::BlockNumberIndex(n, i),
                    HeaderSpec::Hash(h) => TxSpec::BlockHashIndex(h, i),
                }
            }
        }
    }

    fn filter(
        &self,
        blocks: BlockSelector,
        addresses: &[u64],
        topics: &[Option<Vec<u64>>],
    ) -> LogFilter {
        LogFilter {
            blocks,
            addresses: addresses.iter().map(|a| test_address(*a)).collect(),
            topics: topics
                .iter()
                .map(|pos| pos.as_ref().map(|set| set.iter().map(|t| test_topic(*t)).collect()))
                .collect(),
        }
    }

    fn cut_number(&self, cut: Cut) -> BlockNumber {
        match cut {
            Cut::Depth(d) => {
                self.model.tip().map_or(self.case.start, |t| t.number.saturating_sub(d))
            }
            Cut::Number(n) => n,
        }
    }

    fn end(&self, end: End) -> BlockNumber {
        match end {
            End::TipMinus(d) => self.model.tip().map_or(0, |t| t.number.saturating_sub(d)),
            End::Number(n) => n,
        }
    }

    /// The next block number and its parent; on an empty store they depend
    /// on `fork`.
    fn next(&self, fork: u64) -> (BlockNumber, B256) {
        match self.model.tip() {
            Some(t) => (t.number + 1, t.hash),
            None => (self.case.start + 3 * fork, self.genesis_parent(fork)),
        }
    }

    async fn step<B: ColdBackend>(&mut self, b: &mut B, op: &Op) -> Result<(), String> {
        match op {
            Op::Append { count, fork } => {
                let (number, parent) = self.next(*fork);
                let blocks =
                    test_chain_with(number, *count, parent, self.fork_seed(*fork), self.case.shape);
                self.history.push(format!("append {number}..+{count} (fork {fork})"));
                self.see(&blocks);
                self.write_append(b, blocks).await
            }
            Op::AppendInvalid(kind) => {
                let Some(blocks) = self.invalid_batch(*kind) else {
                    self.history.push(format!("invalid {kind:?}: skipped on an empty store"));
                    return Ok(());
                };
                self.history.push(format!(
                    "invalid {kind:?}: blocks {:?}",
                    blocks.iter().map(BlockData::number).collect::<Vec<_>>()
                ));
                self.see(&blocks);
                self.write_append(b, blocks).await
            }
            Op::TruncateAbove(cut) => {
                let n = self.cut_number(*cut);
                self.history.push(format!("truncate_above({n})"));
                let removed: Vec<BlockNumHash> = self
                    .model
                    .blocks()
                    .iter()
                    .filter(|x| x.number() > n)
                    .map(BlockData::num_hash)
                    .collect();
                let got = b.truncate_above(n, dl()).await;
                self.model.truncate_above(n);
                same("truncate_above", got, Ok(()))?;
                self.check_after_write(b, &removed).await
            }
            Op::DrainAbove(cut) => {
                let n = self.cut_number(*cut);
                self.history.push(format!("drain_above({n})"));
                let got = b.drain_above(n, dl()).await;
                let want = self.model.drain_above(n);
                let removed: Vec<BlockNumHash> = want
                    .iter()
                    .map(|d| BlockNumHash::new(d.header.number, d.header.hash()))
                    .collect();
                same("drain_above", got, Ok(want))?;
                self.check_after_write(b, &removed).await
            }
            Op::Tip => same("tip", b.tip(dl()).await, Ok(self.model.tip())),
            Op::Header(key) => {
                let spec = self.header_spec(key);
                same(
                    &format!("header({spec:?})"),
                    b.header(spec, dl()).await,
                    Ok(self.model.header(spec)),
                )
            }
            Op::BlockTransactions(key) => {
                let spec = self.header_spec(key);
                same(
                    &format!("block_transactions({spec:?})"),
                    b.block_transactions(spec, dl()).await,
                    Ok(self.model.block_transactions(spec)),
                )
            }
            Op::BlockExtras(key) => {
                let spec = self.header_spec(key);
                same(
                    &format!("block_extras({spec:?})"),
                    b.block_extras(spec, dl()).await,
                    Ok(self.model.block_extras(spec)),
                )
            }
            Op::BlockReceipts(key) => {
                let spec = self.header_spec(key);
                same(
                    &format!("block_receipts({spec:?})"),
                    b.block_receipts(spec, dl()).await,
                    Ok(self.model.block_receipts(spec)),
                )
            }
            Op::Transaction(key) => {
                let spec = self.tx_spec(key);
                same(
                    &format!("transaction({spec:?})"),
                    b.transaction(spec, dl()).await,
                    Ok(self.model.transaction(spec)),
                )
            }
            Op::Receipt(key) => {
                let spec = match self.tx_spec(key) {
                    TxSpec::Hash(h) => ReceiptSpec::TxHash(h),
                    TxSpec::BlockNumberIndex(n, i) => ReceiptSpec::BlockNumberIndex(n, i),
                    TxSpec::BlockHashIndex(h, i) => ReceiptSpec::BlockHashIndex(h, i),
                };
                same(
                    &format!("receipt({spec:?})"),
                    b.receipt(spec, dl()).await,
                    Ok(self.model.receipt(spec)),
                )
            }
            Op::GetLogs(q) => {
                let blocks = match &q.blocks {
                    LogBlocks::Range { from, to, keep_inverted } => {
                        let mut from = from.map(|e| self.end(e));
                        let mut to = to.map(|e| self.end(e));
                        if let (Some(f), Some(t)) = (from, to)
                            && f > t
                            && !keep_inverted
                        {
                            (from, to) = (Some(t), Some(f));
                        }
                        BlockSelector::Range { from, to }
                    }
                    LogBlocks::Hash(key) => match self.header_spec(key) {
                        HeaderSpec::Hash(h) => BlockSelector::Hash(h),
                        HeaderSpec::Number(n) => BlockSelector::Hash(
                            self.model
                                .header(HeaderSpec::Number(n))
                                .map_or(Self::unknown_hash(3), |h| h.hash()),
                        ),
                    },
                };
                let filter = self.filter(blocks, &q.addresses, &q.topics);
                let got = b.get_logs(&filter, q.max_logs, dl()).await;
                let want = self.model.get_logs(&filter, q.max_logs);
                let what = format!("get_logs({filter:?}, max_logs {})", q.max_logs);
                match (&got, &want) {
                    (Ok(g), Ok(w)) if g != w => Err(format!("{what}: {}", log_list_diff(g, w))),
                    _ => same(&what, got, want),
                }
            }
            Op::Stream(q) => self.stream(b, q).await,
        }
    }

    /// A batch that must be rejected by a non-empty store; `None` to skip.
    fn invalid_batch(&self, kind: Invalid) -> Option<Vec<BlockData>> {
        let tip = self.model.tip()?;
        let seed = self.case.seed ^ 0xBAD0_BAD0;
        let shape = self.case.shape;
        let wrong = keccak256(tip.hash);
        Some(match kind {
            Invalid::Gap => vec![test_block(tip.number + 2, tip.hash, seed, shape)],
            Invalid::WrongParent => vec![test_block(tip.number + 1, wrong, seed, shape)],
            Invalid::Duplicate { depth } => {
                let number = tip.number.saturating_sub(depth);
                let parent = self
                    .model
                    .header(HeaderSpec::Number(number.saturating_sub(1)))
                    .map_or(wrong, |h| h.hash());
                let stored = self.model.blocks().iter().find(|x| x.number() == number)?;
                // Alternate between the stored block itself and a rival.
                if depth % 2 == 0 {
                    vec![stored.clone()]
                } else {
                    vec![test_block(number, parent, seed, shape)]
                }
            }
            Invalid::BadThird => {
                let mut batch = test_chain_with(tip.number + 1, 3, tip.hash, seed, shape);
                batch[2] = test_block(tip.number + 3, wrong, seed, shape);
                batch
            }
            Invalid::MissingReceipt => {
                let shape = ChainShape { max_txs: shape.max_txs.max(1), ..shape };
                let mut block = (0..64)
                    .map(|i| test_block(tip.number + 1, tip.hash, seed.wrapping_add(i), shape))
                    .find(|x| !x.receipts.is_empty())?;
                block.receipts.pop();
                vec![block]
            }
        })
    }

    async fn write_append<B: ColdBackend>(
        &mut self,
        b: &mut B,
        blocks: Vec<BlockData>,
    ) -> Result<(), String> {
        let touched: Vec<BlockNumHash> = blocks.iter().map(BlockData::num_hash).collect();
        let got = b.append_blocks(blocks.clone(), dl()).await;
        let want = self.model.append_blocks(blocks);
        let outcome = match &want {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("rejected: {}", e.kind()),
        };
        if let Some(last) = self.history.last_mut() {
            last.push_str(&format!(" -> {outcome}"));
        }
        same("append_blocks", got, want)?;
        self.check_after_write(b, &touched).await
    }

    /// Tip, and every touched block by number and by hash.
    async fn check_after_write<B: ColdBackend>(
        &self,
        b: &B,
        touched: &[BlockNumHash],
    ) -> Result<(), String> {
        same("tip after the write", b.tip(dl()).await, Ok(self.model.tip()))?;
        for t in touched {
            for spec in [HeaderSpec::Number(t.number), HeaderSpec::Hash(t.hash)] {
                same(
                    &format!("header({spec:?}) after the write"),
                    b.header(spec, dl()).await,
                    Ok(self.model.header(spec)),
                )?;
            }
        }
        Ok(())
    }

    async fn stream<B: ColdBackend>(&mut self, b: &B, q: &StreamQuery) -> Result<(), String> {
        let (Some(first), Some(tip)) = (self.model.blocks().first(), self.model.tip()) else {
            self.history.push("stream: skipped on an empty store".into());
            return Ok(());
        };
        let first = first.number();
        let end = tip.number.saturating_sub(q.end_depth).max(first);
        let start = end.saturating_sub(q.len).max(first);
        let filter = self.filter(
            BlockSelector::Range { from: Some(start), to: Some(end) },
            &q.addresses,
            &q.topics,
        );
        let mut anchor = self
            .model
            .header(HeaderSpec::Number(end))
            .map_or(BlockNumHash::new(end, B256::ZERO), |h| BlockNumHash::new(end, h.hash()));
        let mut params = StreamParams { max_logs: q.max_logs };
        if q.stale_anchor {
            anchor.hash = keccak256(anchor.hash);
            params = StreamParams::default();
        }
        self.history.push(format!(
            "stream {start}..={end} anchor {} max_logs {}",
            if q.stale_anchor { "stale" } else { "ok" },
            q.max_logs
        ));
        let (tx, mut rx) = mpsc::channel(3);
        let producer = b.produce_logs(filter.clone(), start..=end, anchor, params, tx, dl());
        let consumer = async {
            let mut items = Vec::new();
            while let Some(item) = rx.recv().await {
                items.push(item);
            }
            items
        };
        let both = async { futures::join!(producer, consumer).1 };
        let Ok(got) = tokio::time::timeout(Duration::from_secs(30), both).await else {
            return Err("produce_logs did not finish within 30 s".into());
        };
        let what =
            format!("produce_logs({filter:?}, {start}..={end}, stale anchor {})", q.stale_anchor);
        let errors = got.iter().filter(|i| i.is_err()).count();
        let ends_with_error = got.last().is_some_and(Result::is_err);
        if errors > 1 || (errors == 1 && !ends_with_error) {
            return Err(format!(
                "{what}: {errors} errors, at most one allowed and only at the end"
            ));
        }
        if q.stale_anchor {
            // Logs may precede the error; they must be the right logs.
            let Some(Err(ColdError::ReorgDetected { .. })) = got.last() else {
                return Err(format!(
                    "{what}: must end with ReorgDetected, ended with {}",
                    short(&got.last())
                ));
            };
            let logs: Vec<RpcLog> = got.iter().filter_map(|i| i.as_ref().ok().cloned()).collect();
            let all =
                self.model.all_logs(&filter).map_err(|e| format!("{what}: model failed: {e}"))?;
            if !all.starts_with(&logs) {
                return Err(format!(
                    "{what}: logs before the error: {}",
                    log_list_diff(&logs, &all)
                ));
            }
            return Ok(());
        }
        let want = self.model.stream_logs(&filter, start..=end, anchor, params);
        if got.len() != want.len() {
            return Err(format!(
                "{what}: {} items vs {} in the model; last backend item {}, last model item {}",
                got.len(),
                want.len(),
                short(&got.last()),
                short(&want.last())
            ));
        }
        for (i, (g, w)) in got.into_iter().zip(want).enumerate() {
            same(&format!("{what} item {i}"), g, w)?;
        }
        Ok(())
    }

    /// Every block ever generated, by number and by hash, with its receipts.
    async fn final_check<B: ColdBackend>(&self, b: &B) -> Result<(), String> {
        same("final tip", b.tip(dl()).await, Ok(self.model.tip()))?;
        for seen in &self.seen_blocks {
            for spec in [HeaderSpec::Number(seen.number), HeaderSpec::Hash(seen.hash)] {
                same(
                    &format!("final header({spec:?})"),
                    b.header(spec, dl()).await,
                    Ok(self.model.header(spec)),
                )?;
                same(
                    &format!("final block_receipts({spec:?})"),
                    b.block_receipts(spec, dl()).await,
                    Ok(self.model.block_receipts(spec)),
                )?;
            }
        }
        for hash in &self.seen_txs {
            let spec = TxSpec::Hash(*hash);
            same(
                &format!("final transaction({spec:?})"),
                b.transaction(spec, dl()).await,
                Ok(self.model.transaction(spec)),
            )?;
        }
        let all = LogFilter {
            blocks: BlockSelector::Range { from: Some(0), to: None },
            ..Default::default()
        };
        same(
            "final get_logs(all)",
            b.get_logs(&all, usize::MAX, dl()).await,
            self.model.get_logs(&all, usize::MAX),
        )
    }
}
