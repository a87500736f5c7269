//! The backend conformance suite: one call checks that a backend keeps the
//! contract of [`crate::backend`].
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance_mem() {
//!     coldchain::testing::conformance(|| async { MemBackend::new() }).await;
//! }
//! ```
//!
//! [`conformance`] takes a factory: a closure returning a future that yields a
//! fresh, **empty** store. Every case gets its own store, so cases never see
//! each other's blocks (a persistent backend opens a new temporary directory
//! or database each time). Each case is a named function; the suite runs them
//! all and then panics with the names of the failed cases and their messages
//! (each case's own assertion message names what went wrong).
//!
//! What it covers:
//! - every read specifier (header by number and hash; transaction and receipt
//!   by hash, by block number and index, by block hash and index; whole-block
//!   transactions and receipts), and `Ok(None)` for unknown numbers, hashes and
//!   out-of-range indexes;
//! - round-trips of every transaction type 0-4, [`crate::TransactionMeta`] and
//!   every [`crate::StoredReceipt`] field, computed independently of
//!   [`crate::BlockData::stored_receipts`];
//! - the tip, batches, contiguity errors and all-or-nothing appends;
//! - `truncate_above` and `drain_above`, including a reorg to a different fork
//!   at the same heights;
//! - the chain id: recorded once, the same id again accepted, another
//!   refused with `ChainIdMismatch`, kept through truncates and drains, and
//!   recordable in a store that already holds blocks;
//! - `get_logs` with every edge of [`crate::filter`], compared against a
//!   brute-force scan of the appended blocks, and the block-boundary rule of
//!   `max_logs`: the first matching block comes back whole, `fits_to` of
//!   `TooManyLogs` names a range that is answered, and a client that splits
//!   ranges by it reaches every log.
//!
//! # Streams
//!
//! [`conformance_streams`] checks [`ColdRead::produce_logs`] directly (no
//! handle): order and equality with `get_logs`, the `max_logs` cut-off and a
//! stale anchor. [`conformance`] runs it too. This section is filled by the
//! handle work: stream cases that need the `ColdStorage` handle (permits,
//! stream deadlines, shutdown) belong with the handle's tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test utilities: a failed step is a test failure with a message"
)]

use crate::{
    BlockData, ColdBackend, ColdError, ColdRead, Deadline, HeaderSpec, LogFilter, ReceiptSpec,
    RpcLog, StoredReceipt, TxSpec,
    backend::StreamParams,
    filter::BlockSelector,
    testing::chain::{test_address, test_block, test_chain, test_topic},
};
use alloy::{
    consensus::Transaction,
    eips::BlockNumHash,
    primitives::{Address, B256, BlockNumber, TxKind},
};
use futures::FutureExt;
use std::{future::Future, panic::AssertUnwindSafe, time::Duration};
use tokio::sync::mpsc;

/// The deadline every conformance call uses: far away.
fn dl() -> Deadline {
    Deadline::none("test")
}

/// Runs one case, turning a panic into a failure entry naming the case.
async fn run_case(
    name: &'static str,
    case: impl Future<Output = ()>,
    failures: &mut Vec<(&'static str, String)>,
) {
    if let Err(payload) = AssertUnwindSafe(case).catch_unwind().await {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "non-string panic".to_owned());
        failures.push((name, message));
    }
}

fn report(suite: &str, failures: Vec<(&'static str, String)>) {
    if failures.is_empty() {
        return;
    }
    let list: Vec<String> =
        failures.iter().map(|(name, msg)| format!("  case `{name}` failed: {msg}")).collect();
    panic!("{suite}: {} case(s) failed:\n{}", failures.len(), list.join("\n"));
}

/// Runs the listed cases, each on a fresh store from `$make`.
macro_rules! cases {
    ($make:ident, $failures:ident; $($case:ident),* $(,)?) => {
        $( run_case(stringify!($case), async { $case($make().await).await }, &mut $failures).await; )*
    };
}

/// Runs the whole conformance suite (including [`conformance_streams`])
/// against the backend produced by `make`.
///
/// `make` must return a fresh, empty store each time it is called; every case
/// calls it once. Panics after running every case if any failed, naming each
/// failed case with its message.
pub async fn conformance<B, F, Fut>(make: F)
where
    B: ColdBackend,
    F: Fn() -> Fut,
    Fut: Future<Output = B>,
{
    let mut failures = Vec::new();
    cases!(make, failures;
        header_by_number_and_hash,
        transaction_specifiers,
        receipt_specifiers,
        block_transactions_and_receipts,
        ommers_and_withdrawals_round_trip,
        unknown_keys_are_none,
        empty_store_reads,
        all_tx_types_round_trip,
        transaction_meta_fields,
        stored_receipt_fields,
        tip_follows_writes,
        append_batch,
        empty_batch_is_noop,
        empty_store_accepts_any_start,
        append_gap_is_not_contiguous,
        append_wrong_parent_is_parent_mismatch,
        append_duplicate_number_is_rejected,
        failed_batch_writes_nothing,
        invalid_block_writes_nothing,
        truncate_exact_cut,
        truncate_above_tip_is_noop,
        truncate_below_first_removes_all,
        reorg_to_other_fork_forgets_old_blocks,
        drain_above_returns_removed_blocks,
        chain_id_is_recorded_once,
        chain_id_can_follow_blocks,
        chain_id_full_range,
        logs_max_logs_boundary,
        logs_first_block_comes_back_whole,
        logs_suggested_range_fits,
        logs_wildcard_topic_positions,
        logs_empty_address_list_matches_all,
        logs_address_or,
        logs_topic_or_within_and_across,
        logs_too_many_topic_positions,
        logs_from_above_to_is_invalid,
        logs_unknown_block_hash,
        logs_range_clamped_to_tip,
        logs_from_above_tip_is_empty,
        logs_open_ends_resolve_to_tip,
        logs_empty_store,
        logs_block_hash_filter,
        logs_order_and_context,
        logs_range_below_first_block,
        logs_random_filters_match_brute_force,
    );
    report("backend conformance", failures);
    conformance_streams(make).await;
}

/// Runs the stream cases: [`ColdRead::produce_logs`] called directly with an
/// mpsc channel. Same factory contract as [`conformance`].
pub async fn conformance_streams<B, F, Fut>(make: F)
where
    B: ColdBackend,
    F: Fn() -> Fut,
    Fut: Future<Output = B>,
{
    let mut failures = Vec::new();
    cases!(make, failures;
        stream_matches_get_logs,
        stream_max_logs_then_too_many_logs,
        stream_wrong_anchor_is_reorg,
        stream_returns_when_consumer_leaves,
    );
    report("stream conformance", failures);
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The standard test chain of the suite: 24 blocks from 0, all tx types.
fn chain() -> Vec<BlockData> {
    test_chain(0, 24, B256::ZERO, 0xC0FFEE)
}

async fn append<B: ColdBackend>(b: &mut B, blocks: &[BlockData]) {
    let range = match (blocks.first(), blocks.last()) {
        (Some(f), Some(l)) => format!("{}..={}", f.number(), l.number()),
        _ => "(empty)".to_owned(),
    };
    if let Err(e) = b.append_blocks(blocks.to_vec(), dl()).await {
        panic!("append of blocks {range} failed: {e}");
    }
}

async fn tip<B: ColdRead>(b: &B) -> Option<BlockNumHash> {
    b.tip(dl()).await.expect("tip")
}

async fn logs<B: ColdRead>(b: &B, filter: &LogFilter) -> Vec<RpcLog> {
    b.get_logs(filter, usize::MAX, dl())
        .await
        .unwrap_or_else(|e| panic!("get_logs({filter:?}) failed: {e}"))
}

async fn logs_err<B: ColdRead>(b: &B, filter: &LogFilter, max_logs: usize) -> ColdError {
    match b.get_logs(filter, max_logs, dl()).await {
        Ok(l) => {
            panic!("get_logs({filter:?}, {max_logs}) returned {} logs, expected an error", l.len())
        }
        Err(e) => e,
    }
}

/// Brute force: the logs `filter` matches among `blocks`, limited to the
/// inclusive number range, via `stored_receipts` + `rpc_logs` + `matches`.
fn brute_force(blocks: &[BlockData], filter: &LogFilter, from: u64, to: u64) -> Vec<RpcLog> {
    blocks
        .iter()
        .filter(|b| (from..=to).contains(&b.number()))
        .flat_map(|b| b.stored_receipts())
        .flat_map(|r| r.rpc_logs().collect::<Vec<_>>())
        .filter(|l| filter.matches(&l.inner))
        .collect()
}

/// A short description of a log: where it is and what it is.
fn log_key(l: &RpcLog) -> String {
    format!(
        "(block {:?}, tx {:?}, log {:?}, address {}, {} topics)",
        l.block_number,
        l.transaction_index,
        l.log_index,
        l.inner.address,
        l.inner.topics().len()
    )
}

/// Asserts two log lists are equal, reporting the first difference briefly.
#[track_caller]
fn assert_logs_eq(got: &[RpcLog], expected: &[RpcLog], what: &str) {
    if got == expected {
        return;
    }
    let first_diff = got.iter().zip(expected).position(|(g, e)| g != e);
    match first_diff {
        Some(i) => panic!(
            "{what}: {} logs, expected {}; first difference at {i}: got {:?}, expected {:?}",
            got.len(),
            expected.len(),
            got[i],
            expected[i]
        ),
        None => {
            let extra = if got.len() > expected.len() {
                &got[expected.len()]
            } else {
                &expected[got.len()]
            };
            panic!(
                "{what}: {} logs, expected {}; the longer list continues with {}",
                got.len(),
                expected.len(),
                log_key(extra)
            )
        }
    }
}

fn with_blocks(filter: LogFilter, blocks: BlockSelector) -> LogFilter {
    LogFilter { blocks, ..filter }
}

fn range_sel(from: Option<u64>, to: Option<u64>) -> BlockSelector {
    BlockSelector::Range { from, to }
}

fn total_logs(blocks: &[BlockData]) -> usize {
    blocks.iter().flat_map(|b| &b.receipts).map(|r| r.logs().len()).sum()
}

/// Asserts that `block` is fully readable through every specifier.
async fn assert_present<B: ColdRead>(b: &B, block: &BlockData) {
    let n = block.number();
    let h = block.hash();
    let what = format!("block {n} ({h})");
    assert_eq!(
        b.header(HeaderSpec::Number(n), dl()).await.expect("header").as_ref(),
        Some(&block.header),
        "{what}: header by number"
    );
    assert_eq!(
        b.header(HeaderSpec::Hash(h), dl()).await.expect("header").as_ref(),
        Some(&block.header),
        "{what}: header by hash"
    );
    let receipts = block.stored_receipts();
    for spec in [HeaderSpec::Number(n), HeaderSpec::Hash(h)] {
        assert_eq!(
            b.block_transactions(spec, dl()).await.expect("block_transactions").as_ref(),
            Some(&block.transactions),
            "{what}: block_transactions({spec:?})"
        );
        assert_eq!(
            b.block_receipts(spec, dl()).await.expect("block_receipts").as_ref(),
            Some(&receipts),
            "{what}: block_receipts({spec:?})"
        );
        assert_eq!(
            b.block_extras(spec, dl()).await.expect("block_extras").as_ref(),
            Some(&block.extras),
            "{what}: block_extras({spec:?})"
        );
    }
    for (i, tx) in block.transactions.iter().enumerate() {
        let hash = *tx.inner().tx_hash();
        let meta = block.tx_meta(i).expect("meta of an existing tx");
        for spec in [
            TxSpec::Hash(hash),
            TxSpec::BlockNumberIndex(n, i as u64),
            TxSpec::BlockHashIndex(h, i as u64),
        ] {
            let got = b.transaction(spec, dl()).await.expect("transaction");
            let got = got.unwrap_or_else(|| panic!("{what}: transaction({spec:?}) is None"));
            assert_eq!(&got.tx, tx, "{what}: transaction({spec:?}).tx");
            assert_eq!(got.meta, meta, "{what}: transaction({spec:?}).meta");
        }
        for spec in [
            ReceiptSpec::TxHash(hash),
            ReceiptSpec::BlockNumberIndex(n, i as u64),
            ReceiptSpec::BlockHashIndex(h, i as u64),
        ] {
            assert_eq!(
                b.receipt(spec, dl()).await.expect("receipt").as_ref(),
                Some(&receipts[i]),
                "{what}: receipt({spec:?})"
            );
        }
    }
}

/// Asserts that `block` is gone from every hash-based lookup and, if
/// `number_free`, from number-based ones too.
async fn assert_absent<B: ColdRead>(b: &B, block: &BlockData, number_free: bool) {
    let n = block.number();
    let h = block.hash();
    let what = format!("removed block {n} ({h})");
    assert_eq!(
        b.header(HeaderSpec::Hash(h), dl()).await.expect("header"),
        None,
        "{what}: header by hash"
    );
    assert_eq!(
        b.block_transactions(HeaderSpec::Hash(h), dl()).await.expect("block_transactions"),
        None,
        "{what}: block_transactions by hash"
    );
    assert_eq!(
        b.block_receipts(HeaderSpec::Hash(h), dl()).await.expect("block_receipts"),
        None,
        "{what}: block_receipts by hash"
    );
    assert_eq!(
        b.block_extras(HeaderSpec::Hash(h), dl()).await.expect("block_extras"),
        None,
        "{what}: block_extras by hash"
    );
    for (i, tx) in block.transactions.iter().enumerate() {
        let hash = *tx.inner().tx_hash();
        assert_eq!(
            b.transaction(TxSpec::Hash(hash), dl()).await.expect("transaction"),
            None,
            "{what}: transaction by hash {hash}"
        );
        assert_eq!(
            b.transaction(TxSpec::BlockHashIndex(h, i as u64), dl()).await.expect("transaction"),
            None,
            "{what}: transaction by block hash and index {i}"
        );
        assert_eq!(
            b.receipt(ReceiptSpec::TxHash(hash), dl()).await.expect("receipt"),
            None,
            "{what}: receipt by tx hash {hash}"
        );
        assert_eq!(
            b.receipt(ReceiptSpec::BlockHashIndex(h, i as u64), dl()).await.expect("receipt"),
            None,
            "{what}: receipt by block hash and index {i}"
        );
    }
    let err = logs_err(b, &LogFilter::at_hash(h), usize::MAX).await;
    assert!(
        matches!(err, ColdError::UnknownBlockHash(x) if x == h),
        "{what}: get_logs by its hash gave {err:?}, expected UnknownBlockHash"
    );
    if number_free {
        assert_eq!(
            b.header(HeaderSpec::Number(n), dl()).await.expect("header"),
            None,
            "{what}: header by number"
        );
        assert_eq!(
            b.block_receipts(HeaderSpec::Number(n), dl()).await.expect("block_receipts"),
            None,
            "{what}: block_receipts by number"
        );
        assert_eq!(
            b.block_transactions(HeaderSpec::Number(n), dl()).await.expect("block_transactions"),
            None,
            "{what}: block_transactions by number"
        );
        assert_eq!(
            b.block_extras(HeaderSpec::Number(n), dl()).await.expect("block_extras"),
            None,
            "{what}: block_extras by number"
        );
        assert_eq!(
            b.transaction(TxSpec::BlockNumberIndex(n, 0), dl()).await.expect("transaction"),
            None,
            "{what}: transaction by number and index 0"
        );
        assert_eq!(
            b.receipt(ReceiptSpec::BlockNumberIndex(n, 0), dl()).await.expect("receipt"),
            None,
            "{what}: receipt by number and index 0"
        );
    }
}

/// Asserts the store holds exactly `blocks` (contiguous, or empty).
async fn assert_holds_exactly<B: ColdRead>(b: &B, blocks: &[BlockData]) {
    assert_eq!(tip(b).await, blocks.last().map(BlockData::num_hash), "tip");
    for block in blocks {
        assert_present(b, block).await;
    }
    if let Some(first) = blocks.first()
        && first.number() > 0
    {
        let below = first.number() - 1;
        assert_eq!(
            b.header(HeaderSpec::Number(below), dl()).await.expect("header"),
            None,
            "header below the first stored block"
        );
    }
    let above = blocks.last().map_or(0, |l| l.number() + 1);
    assert_eq!(
        b.header(HeaderSpec::Number(above), dl()).await.expect("header"),
        None,
        "header above the tip"
    );
}

fn block_with_tx(blocks: &[BlockData]) -> &BlockData {
    blocks.iter().find(|b| !b.transactions.is_empty()).expect("test chain has a transaction")
}

// ---------------------------------------------------------------------------
// Read specifiers
// ---------------------------------------------------------------------------

async fn header_by_number_and_hash<B: ColdBackend>(mut b: B) {
    let blocks = chain();
    append(&mut b, &blocks).await;
    for block in &blocks {
        for spec in [HeaderSpec::Number(block.number()), HeaderSpec::Hash(block.hash())] {
            let got = b.header(spec, dl()).await.expect("header");
            assert_eq!(got.as_ref(), Some(&block.header), "header({spec:?})");
            assert_eq!(got.map(|h| h.hash()), Some(block.hash()), "hash of header({spec:?})");
        }
    }
}

async fn transaction_specifiers<B: ColdBackend>(mut b: B) {
    let blocks = chain();
    append(&mut b, &blocks).await;
    for block in &blocks {
        for (i, tx) in block.transactions.iter().enumerate() {
            let i = i as u64;
            for spec in [
                TxSpec::Hash(*tx.inner().tx_hash()),
                TxSpec::BlockNumberIndex(block.number(), i),
                TxSpec::BlockHashIndex(block.hash(), i),
            ] {
                let got = b.transaction(spec, dl()).await.expect("transaction");
                let got = got.unwrap_or_else(|| panic!("transaction({spec:?}) is None"));
                assert_eq!(&got.tx, tx, "transaction({spec:?}).tx");
                assert_eq!(got.tx.signer(), tx.signer(), "transaction({spec:?}) sender");
                assert_eq!(got.meta.index, i, "transaction({spec:?}).meta.index");
            }
        }
    }
}

async fn receipt_specifiers<B: ColdBackend>(mut b: B) {
    let blocks = chain();
    append(&mut b, &blocks).await;
    for block in &blocks {
        let expected = block.stored_receipts();
        for (i, tx) in block.transactions.iter().enumerate() {
            for spec in [
                ReceiptSpec::TxHash(*tx.inner().tx_hash()),
                ReceiptSpec::BlockNumberIndex(block.number(), i as u64),
                ReceiptSpec::BlockHashIndex(block.hash(), i as u64),
            ] {
                let got = b.receipt(spec, dl()).await.expect("receipt");
                assert_eq!(got.as_ref(), Some(&expected[i]), "receipt({spec:?})");
            }
        }
    }
}

async fn block_transactions_and_receipts<B: ColdBackend>(mut b: B) {
    let blocks = chain();
    append(&mut b, &blocks).await;
    assert!(blocks.iter().any(|b| b.transactions.is_empty()), "test chain has an empty block");
    for block in &blocks {
        for spec in [HeaderSpec::Number(block.number()), HeaderSpec::Hash(block.hash())] {
            let txs = b.block_transactions(spec, dl()).await.expect("block_transactions");
            assert_eq!(txs.as_ref(), Some(&block.transactions), "block_transactions({spec:?})");
            let receipts = b.block_receipts(spec, dl()).await.expect("block_receipts");
            assert_eq!(receipts, Some(block.stored_receipts()), "block_receipts({spec:?})");
            let extras = b.block_extras(spec, dl()).await.expect("block_extras");
            assert_eq!(extras.as_ref(), Some(&block.extras), "block_extras({spec:?})");
        }
    }
}

/// Ommer headers and withdrawals come back exactly: the test chain has
/// blocks with none, one and several of each; a pre-Shanghai block (no
/// withdrawals list) and one with an empty list stay different.
async fn ommers_and_withdrawals_round_trip<B: ColdBackend>(mut b: B) {
    let mut blocks = chain();
    assert!(blocks.iter().any(|b| !b.extras.ommers.is_empty()), "test chain has ommers");
    assert!(
        blocks.iter().any(|b| b.extras.withdrawals.as_ref().is_some_and(|w| w.len() > 1)),
        "test chain has withdrawals"
    );
    // Three more blocks: pre-Shanghai (no list), an empty list, and two
    // more ommers, one a big header with every optional field.
    let mut parent = blocks.last().expect("a chain").hash();
    let mut number = blocks.last().expect("a chain").number();
    for kind in 0..3 {
        number += 1;
        let mut block = crate::testing::test_block(number, parent, 77, Default::default());
        let mut header = block.header.inner().clone();
        match kind {
            0 => {
                header.withdrawals_root = None;
                header.blob_gas_used = None;
                header.excess_blob_gas = None;
                header.parent_beacon_block_root = None;
                block.extras.withdrawals = None;
            }
            1 => block.extras.withdrawals = Some(Default::default()),
            _ => {
                let mut ommer = header.clone();
                ommer.requests_hash = Some(B256::repeat_byte(0x77));
                ommer.extra_data = vec![0xab; 32].into();
                block.extras.ommers.push(ommer);
                block.extras.ommers.push(Default::default());
            }
        }
        header.withdrawals_root = block
            .extras
            .withdrawals
            .as_ref()
            .map(|w| alloy::consensus::proofs::calculate_withdrawals_root(w));
        header.ommers_hash = alloy::consensus::proofs::calculate_ommers_root(&block.extras.ommers);
        block.header = alloy::primitives::Sealable::seal_slow(header);
        crate::verify::verify_block(&block).expect("the edited block verifies");
        parent = block.hash();
        blocks.push(block);
    }
    append(&mut b, &blocks).await;
    for block in &blocks {
        for spec in [HeaderSpec::Number(block.number()), HeaderSpec::Hash(block.hash())] {
            let extras = b.block_extras(spec, dl()).await.expect("block_extras");
            assert_eq!(extras.as_ref(), Some(&block.extras), "block_extras({spec:?})");
        }
    }
}

async fn unknown_keys_are_none<B: ColdBackend>(mut b: B) {
    let blocks = test_chain(10, 6, B256::repeat_byte(0x11), 5);
    append(&mut b, &blocks).await;
    let unknown_hash = B256::repeat_byte(0xEE);
    let with_tx = block_with_tx(&blocks);
    let len = with_tx.transactions.len() as u64;
    for n in [0, 9, 16, 17, u64::MAX] {
        let spec = HeaderSpec::Number(n);
        assert_eq!(b.header(spec, dl()).await.expect("header"), None, "header({spec:?})");
        assert_eq!(
            b.block_transactions(spec, dl()).await.expect("block_transactions"),
            None,
            "block_transactions({spec:?})"
        );
        assert_eq!(
            b.block_receipts(spec, dl()).await.expect("block_receipts"),
            None,
            "block_receipts({spec:?})"
        );
        assert_eq!(
            b.block_extras(spec, dl()).await.expect("block_extras"),
            None,
            "block_extras({spec:?})"
        );
        let tx = TxSpec::BlockNumberIndex(n, 0);
        assert_eq!(
            b.transaction(tx, dl()).await.expect("transaction"),
            None,
            "transaction({tx:?})"
        );
        let r = ReceiptSpec::BlockNumberIndex(n, 0);
        assert_eq!(b.receipt(r, dl()).await.expect("receipt"), None, "receipt({r:?})");
    }
    let spec = HeaderSpec::Hash(unknown_hash);
    assert_eq!(b.header(spec, dl()).await.expect("header"), None, "header({spec:?})");
    assert_eq!(
        b.block_transactions(spec, dl()).await.expect("block_transactions"),
        None,
        "block_transactions({spec:?})"
    );
    assert_eq!(
        b.block_receipts(spec, dl()).await.expect("block_receipts"),
        None,
        "block_receipts({spec:?})"
    );
    assert_eq!(
        b.block_extras(spec, dl()).await.expect("block_extras"),
        None,
        "block_extras({spec:?})"
    );
    // The genesis parent hash is not a stored block.
    let parent = HeaderSpec::Hash(B256::repeat_byte(0x11));
    assert_eq!(
        b.header(parent, dl()).await.expect("header"),
        None,
        "header of the first block's parent"
    );
    for tx in [
        TxSpec::Hash(unknown_hash),
        TxSpec::BlockHashIndex(unknown_hash, 0),
        TxSpec::BlockNumberIndex(with_tx.number(), len),
        TxSpec::BlockNumberIndex(with_tx.number(), u64::MAX),
        TxSpec::BlockHashIndex(with_tx.hash(), len),
        TxSpec::BlockHashIndex(with_tx.hash(), u64::MAX),
    ] {
        assert_eq!(
            b.transaction(tx, dl()).await.expect("transaction"),
            None,
            "transaction({tx:?})"
        );
    }
    for r in [
        ReceiptSpec::TxHash(unknown_hash),
        ReceiptSpec::BlockHashIndex(unknown_hash, 0),
        ReceiptSpec::BlockNumberIndex(with_tx.number(), len),
        ReceiptSpec::BlockNumberIndex(with_tx.number(), u64::MAX),
        ReceiptSpec::BlockHashIndex(with_tx.hash(), len),
        ReceiptSpec::BlockHashIndex(with_tx.hash(), u64::MAX),
    ] {
        assert_eq!(b.receipt(r, dl()).await.expect("receipt"), None, "receipt({r:?})");
    }
    // A block without transactions: index 0 is out of range, the block exists.
    if let Some(empty) = blocks.iter().find(|b| b.transactions.is_empty()) {
        let tx = TxSpec::BlockNumberIndex(empty.number(), 0);
        assert_eq!(
            b.transaction(tx, dl()).await.expect("transaction"),
            None,
            "transaction({tx:?})"
        );
        let spec = HeaderSpec::Number(empty.number());
        assert_eq!(
            b.block_transactions(spec, dl()).await.expect("block_transactions"),
            Some(vec![]),
            "block_transactions of an empty block"
        );
        assert_eq!(
            b.block_receipts(spec, dl()).await.expect("block_receipts"),
            Some(vec![]),
            "block_receipts of an empty block"
        );
    }
}

async fn empty_store_reads<B: ColdBackend>(b: B) {
    assert_eq!(tip(&b).await, None, "tip of an empty store");
    let h = B256::repeat_byte(3);
    for spec in [HeaderSpec::Number(0), HeaderSpec::Hash(h)] {
        assert_eq!(b.header(spec, dl()).await.expect("header"), None, "header({spec:?})");
        assert_eq!(
            b.block_transactions(spec, dl()).await.expect("block_transactions"),
            None,
            "block_transactions({spec:?})"
        );
        assert_eq!(
            b.block_receipts(spec, dl()).await.expect("block_receipts"),
            None,
            "block_receipts({spec:?})"
        );
        assert_eq!(
            b.block_extras(spec, dl()).await.expect("block_extras"),
            None,
            "block_extras({spec:?})"
        );
    }
    for tx in [TxSpec::Hash(h), TxSpec::BlockNumberIndex(0, 0), TxSpec::BlockHashIndex(h, 0)] {
        assert_eq!(
            b.transaction(tx, dl()).await.expect("transaction"),
            None,
            "transaction({tx:?})"
        );
    }
    for r in [
        ReceiptSpec::TxHash(h),
        ReceiptSpec::BlockNumberIndex(0, 0),
        ReceiptSpec::BlockHashIndex(h, 0),
    ] {
        assert_eq!(b.receipt(r, dl()).await.expect("receipt"), None, "receipt({r:?})");
    }
}

async fn all_tx_types_round_trip<B: ColdBackend>(mut b: B) {
    let blocks = chain();
    let mut seen = [false; 5];
    for tx in blocks.iter().flat_map(|b| &b.transactions) {
        seen[tx.inner().tx_type() as usize] = true;
    }
    assert_eq!(seen, [true; 5], "the test chain must contain every tx type 0-4");
    append(&mut b, &blocks).await;
    let mut round_tripped = [false; 5];
    for block in &blocks {
        for (i, tx) in block.transactions.iter().enumerate() {
            let ty = tx.inner().tx_type();
            let got = b
                .transaction(TxSpec::Hash(*tx.inner().tx_hash()), dl())
                .await
                .expect("transaction")
                .unwrap_or_else(|| {
                    panic!("type {ty:?} tx {i} of block {} is missing", block.number())
                });
            assert_eq!(got.tx.inner().tx_type(), ty, "tx type round trip");
            assert_eq!(&got.tx, tx, "type {ty:?} transaction round trip");
            assert_eq!(got.tx.inner().tx_hash(), tx.inner().tx_hash(), "type {ty:?} hash");
            let receipt = b
                .receipt(ReceiptSpec::TxHash(*tx.inner().tx_hash()), dl())
                .await
                .expect("receipt")
                .expect("receipt of a stored tx");
            assert_eq!(receipt.receipt.tx_type(), ty, "type {ty:?} receipt type");
            round_tripped[ty as usize] = true;
        }
    }
    assert_eq!(round_tripped, [true; 5], "every tx type 0-4 round-tripped");
}

async fn transaction_meta_fields<B: ColdBackend>(mut b: B) {
    let blocks = chain();
    append(&mut b, &blocks).await;
    for block in &blocks {
        for (i, tx) in block.transactions.iter().enumerate() {
            let spec = TxSpec::Hash(*tx.inner().tx_hash());
            let meta =
                b.transaction(spec, dl()).await.expect("transaction").expect("stored tx").meta;
            let what = format!("meta of tx {i} in block {}", block.number());
            assert_eq!(meta.tx_hash, *tx.inner().tx_hash(), "{what}: tx_hash");
            assert_eq!(meta.index, i as u64, "{what}: index");
            assert_eq!(meta.block_hash, block.hash(), "{what}: block_hash");
            assert_eq!(meta.block_number, block.number(), "{what}: block_number");
            assert_eq!(meta.base_fee, block.header.base_fee_per_gas, "{what}: base_fee");
            assert_eq!(
                meta.excess_blob_gas, block.header.excess_blob_gas,
                "{what}: excess_blob_gas"
            );
            assert_eq!(meta.timestamp, block.header.timestamp, "{what}: timestamp");
        }
    }
}

async fn stored_receipt_fields<B: ColdBackend>(mut b: B) {
    let blocks = chain();
    append(&mut b, &blocks).await;
    let mut creations = 0;
    for block in &blocks {
        let mut prev_cumulative = 0u64;
        let mut log_index = 0u64;
        for (i, (tx, consensus)) in block.transactions.iter().zip(&block.receipts).enumerate() {
            let what = format!("receipt {i} of block {}", block.number());
            let got: StoredReceipt = b
                .receipt(ReceiptSpec::BlockNumberIndex(block.number(), i as u64), dl())
                .await
                .expect("receipt")
                .unwrap_or_else(|| panic!("{what} is missing"));
            let env = tx.inner();
            assert_eq!(&got.receipt, consensus, "{what}: consensus receipt");
            assert_eq!(got.tx_hash, *env.tx_hash(), "{what}: tx_hash");
            assert_eq!(got.block_number, block.number(), "{what}: block_number");
            assert_eq!(got.block_hash, block.hash(), "{what}: block_hash");
            assert_eq!(got.block_timestamp, block.header.timestamp, "{what}: block_timestamp");
            assert_eq!(got.tx_index, i as u64, "{what}: tx_index");
            let cumulative = consensus.cumulative_gas_used();
            assert_eq!(got.gas_used, cumulative - prev_cumulative, "{what}: gas_used");
            prev_cumulative = cumulative;
            assert_eq!(got.first_log_index, log_index, "{what}: first_log_index");
            log_index += consensus.logs().len() as u64;
            assert_eq!(got.from, tx.signer(), "{what}: from");
            let expected_price = env.effective_gas_price(block.header.base_fee_per_gas);
            assert_eq!(got.effective_gas_price, expected_price, "{what}: effective_gas_price");
            match env.kind() {
                TxKind::Create => {
                    creations += 1;
                    assert_eq!(got.to, None, "{what}: to of a creation");
                    assert_eq!(
                        got.contract_address,
                        Some(tx.signer().create(env.nonce())),
                        "{what}: contract_address = sender.create(nonce)"
                    );
                }
                TxKind::Call(to) => {
                    assert_eq!(got.to, Some(to), "{what}: to");
                    assert_eq!(got.contract_address, None, "{what}: contract_address of a call");
                }
            }
            assert_eq!(got.blob_gas_used, env.blob_gas_used(), "{what}: blob_gas_used");
            assert_eq!(
                got.blob_gas_price.is_some(),
                env.blob_gas_used().is_some(),
                "{what}: blob_gas_price present exactly for blob txs"
            );
        }
    }
    assert!(creations > 0, "the test chain must contain a contract creation");
}

// ---------------------------------------------------------------------------
// Tip, appends and contiguity
// ---------------------------------------------------------------------------

async fn tip_follows_writes<B: ColdBackend>(mut b: B) {
    assert_eq!(tip(&b).await, None, "tip of an empty store");
    let blocks = test_chain(0, 6, B256::ZERO, 2);
    append(&mut b, &blocks[..3]).await;
    assert_eq!(tip(&b).await, Some(blocks[2].num_hash()), "tip after appending 0..=2");
    append(&mut b, &blocks[3..]).await;
    assert_eq!(tip(&b).await, Some(blocks[5].num_hash()), "tip after appending 3..=5");
    b.truncate_above(3, dl()).await.expect("truncate_above(3)");
    assert_eq!(tip(&b).await, Some(blocks[3].num_hash()), "tip after truncate_above(3)");
    b.truncate_above(0, dl()).await.expect("truncate_above(0)");
    assert_eq!(tip(&b).await, Some(blocks[0].num_hash()), "tip after truncate_above(0)");
}

async fn append_batch<B: ColdBackend>(mut b: B) {
    let blocks = test_chain(0, 12, B256::ZERO, 3);
    append(&mut b, &blocks[..10]).await;
    assert_holds_exactly(&b, &blocks[..10]).await;
    append(&mut b, &blocks[10..11]).await;
    append(&mut b, &blocks[11..]).await;
    assert_holds_exactly(&b, &blocks).await;
}

async fn empty_batch_is_noop<B: ColdBackend>(mut b: B) {
    b.append_blocks(vec![], dl()).await.expect("empty append on an empty store");
    assert_eq!(tip(&b).await, None, "tip after an empty append");
    let blocks = test_chain(0, 3, B256::ZERO, 4);
    append(&mut b, &blocks).await;
    b.append_blocks(vec![], dl()).await.expect("empty append");
    assert_holds_exactly(&b, &blocks).await;
}

async fn empty_store_accepts_any_start<B: ColdBackend>(mut b: B) {
    let start = 1_000_000;
    let blocks = test_chain(start, 5, B256::repeat_byte(9), 5);
    append(&mut b, &blocks).await;
    assert_holds_exactly(&b, &blocks).await;
    let all = logs(&b, &LogFilter::range(start, start + 4)).await;
    assert_logs_eq(
        &all,
        &brute_force(&blocks, &LogFilter::default(), start, start + 4),
        "logs of the range",
    );
    // Emptied by a truncation, the store accepts any start again.
    b.truncate_above(start - 1, dl()).await.expect("truncate below the first block");
    assert_eq!(tip(&b).await, None, "tip after removing every block");
    let other = test_chain(7, 3, B256::repeat_byte(8), 6);
    append(&mut b, &other).await;
    assert_holds_exactly(&b, &other).await;
}

async fn append_gap_is_not_contiguous<B: ColdBackend>(mut b: B) {
    let blocks = test_chain(0, 7, B256::ZERO, 7);
    append(&mut b, &blocks[..5]).await;
    let err = b.append_blocks(vec![blocks[6].clone()], dl()).await.expect_err("a gap must fail");
    assert!(
        matches!(err, ColdError::NotContiguous { expected: 5, got: 6 }),
        "a gap gave {err:?}, expected NotContiguous {{ expected: 5, got: 6 }}"
    );
    assert_holds_exactly(&b, &blocks[..5]).await;
    assert_absent(&b, &blocks[6], true).await;
}

async fn append_wrong_parent_is_parent_mismatch<B: ColdBackend>(mut b: B) {
    let blocks = test_chain(0, 5, B256::ZERO, 8);
    append(&mut b, &blocks).await;
    let bad_parent = B256::repeat_byte(0xAB);
    let bad = test_block(5, bad_parent, 8, Default::default());
    let err = b.append_blocks(vec![bad.clone()], dl()).await.expect_err("wrong parent must fail");
    assert!(
        matches!(err, ColdError::ParentMismatch { number: 5, expected, got }
            if expected == blocks[4].hash() && got == bad_parent),
        "a wrong parent gave {err:?}, expected ParentMismatch for block 5"
    );
    assert_holds_exactly(&b, &blocks).await;
    assert_absent(&b, &bad, true).await;
}

async fn append_duplicate_number_is_rejected<B: ColdBackend>(mut b: B) {
    let blocks = test_chain(0, 5, B256::ZERO, 9);
    append(&mut b, &blocks).await;
    for dup in [&blocks[4], &blocks[2]] {
        let err =
            b.append_blocks(vec![dup.clone()], dl()).await.expect_err("a duplicate must fail");
        assert!(
            matches!(err, ColdError::NotContiguous { expected: 5, got } if got == dup.number()),
            "re-appending block {} gave {err:?}, expected NotContiguous",
            dup.number()
        );
    }
    // A different block at an existing height is refused too.
    let other = test_block(4, blocks[3].hash(), 999, Default::default());
    let err = b.append_blocks(vec![other.clone()], dl()).await.expect_err("a second block 4");
    assert!(
        matches!(err, ColdError::NotContiguous { expected: 5, got: 4 }),
        "a competing block 4 gave {err:?}"
    );
    assert_holds_exactly(&b, &blocks).await;
    assert_absent(&b, &other, false).await;
}

async fn failed_batch_writes_nothing<B: ColdBackend>(mut b: B) {
    let blocks = test_chain(0, 4, B256::ZERO, 10);
    append(&mut b, &blocks).await;
    let next = test_chain(4, 5, blocks[3].hash(), 10);
    // 3rd block with a wrong parent.
    let mut batch = next.clone();
    batch[2] = test_block(6, B256::repeat_byte(0x42), 10, Default::default());
    let err = b.append_blocks(batch.clone(), dl()).await.expect_err("a bad 3rd block must fail");
    assert!(
        matches!(err, ColdError::ParentMismatch { number: 6, .. }),
        "bad parent in 3rd block gave {err:?}"
    );
    assert_holds_exactly(&b, &blocks).await;
    for block in &batch {
        assert_absent(&b, block, true).await;
    }
    // 3rd block with a gap.
    let mut batch = next.clone();
    batch.remove(2);
    let err = b.append_blocks(batch.clone(), dl()).await.expect_err("a gap in a batch must fail");
    assert!(
        matches!(err, ColdError::NotContiguous { expected: 6, got: 7 }),
        "a gap at the 3rd block gave {err:?}"
    );
    assert_holds_exactly(&b, &blocks).await;
    for block in &batch {
        assert_absent(&b, block, true).await;
    }
    // The good batch still goes in afterwards.
    append(&mut b, &next).await;
    let all: Vec<BlockData> = blocks.iter().chain(&next).cloned().collect();
    assert_holds_exactly(&b, &all).await;
}

async fn invalid_block_writes_nothing<B: ColdBackend>(mut b: B) {
    let blocks = test_chain(0, 3, B256::ZERO, 11);
    append(&mut b, &blocks).await;
    let mut next = test_chain(3, 3, blocks[2].hash(), 11);
    let victim = next.iter().position(|b| !b.receipts.is_empty()).unwrap_or(0);
    if next[victim].receipts.is_empty() {
        next[victim].receipts.push(block_with_tx(&blocks).receipts[0].clone());
    } else {
        next[victim].receipts.pop();
    }
    let err = b.append_blocks(next.clone(), dl()).await.expect_err("an invalid block must fail");
    assert!(matches!(err, ColdError::InvalidBlock { .. }), "receipt count mismatch gave {err:?}");
    assert_holds_exactly(&b, &blocks).await;
    for block in &next {
        assert_eq!(
            b.header(HeaderSpec::Hash(block.hash()), dl()).await.expect("header"),
            None,
            "block {} of a failed batch",
            block.number()
        );
    }
}

// ---------------------------------------------------------------------------
// Truncate and drain
// ---------------------------------------------------------------------------

async fn truncate_exact_cut<B: ColdBackend>(mut b: B) {
    let blocks = test_chain(0, 10, B256::ZERO, 12);
    append(&mut b, &blocks).await;
    b.truncate_above(5, dl()).await.expect("truncate_above(5)");
    assert_holds_exactly(&b, &blocks[..=5]).await;
    for block in &blocks[6..] {
        assert_absent(&b, block, true).await;
    }
    let all = logs(&b, &LogFilter::range(0, 100)).await;
    assert_logs_eq(
        &all,
        &brute_force(&blocks[..=5], &LogFilter::default(), 0, 100),
        "logs after truncation",
    );
    // The store extends from the new tip.
    append(&mut b, &blocks[6..]).await;
    assert_holds_exactly(&b, &blocks).await;
}

async fn truncate_above_tip_is_noop<B: ColdBackend>(mut b: B) {
    let blocks = test_chain(0, 5, B256::ZERO, 13);
    append(&mut b, &blocks).await;
    for n in [4, 5, 1000, u64::MAX] {
        b.truncate_above(n, dl()).await.unwrap_or_else(|e| panic!("truncate_above({n}): {e}"));
        assert_holds_exactly(&b, &blocks).await;
    }
    b.truncate_above(0, dl()).await.expect("truncate_above(0)");
    b.truncate_above(0, dl()).await.expect("truncate_above(0) again");
    assert_holds_exactly(&b, &blocks[..1]).await;
}

async fn truncate_below_first_removes_all<B: ColdBackend>(mut b: B) {
    let blocks = test_chain(100, 5, B256::repeat_byte(1), 14);
    append(&mut b, &blocks).await;
    b.truncate_above(99, dl()).await.expect("truncate_above(first - 1)");
    assert_eq!(tip(&b).await, None, "tip after removing everything");
    for block in &blocks {
        assert_absent(&b, block, true).await;
    }
    append(&mut b, &blocks).await;
    b.truncate_above(3, dl()).await.expect("truncate_above far below the first");
    assert_eq!(tip(&b).await, None, "tip after removing everything again");
    for block in &blocks {
        assert_absent(&b, block, true).await;
    }
    assert!(logs(&b, &LogFilter::range(0, 200)).await.is_empty(), "logs of an emptied store");
    let other = test_chain(50, 3, B256::repeat_byte(2), 15);
    append(&mut b, &other).await;
    assert_holds_exactly(&b, &other).await;
}

async fn reorg_to_other_fork_forgets_old_blocks<B: ColdBackend>(mut b: B) {
    let old = test_chain(0, 10, B256::ZERO, 16);
    append(&mut b, &old).await;
    b.truncate_above(5, dl()).await.expect("truncate_above(5)");
    let fork = test_chain(6, 6, old[5].hash(), 17);
    append(&mut b, &fork).await;
    let canonical: Vec<BlockData> = old[..=5].iter().chain(&fork).cloned().collect();
    assert_holds_exactly(&b, &canonical).await;
    for block in &old[6..] {
        assert_absent(&b, block, false).await;
    }
    let f = LogFilter::range(0, 100);
    assert_logs_eq(
        &logs(&b, &f).await,
        &brute_force(&canonical, &f, 0, 100),
        "logs after the reorg",
    );
    // A filter on an old address sees only the new fork's logs.
    let f = LogFilter::range(0, 100).address(test_address(1));
    assert_logs_eq(
        &logs(&b, &f).await,
        &brute_force(&canonical, &f, 0, 100),
        "address logs after the reorg",
    );
}

async fn drain_above_returns_removed_blocks<B: ColdBackend>(mut b: B) {
    let blocks = test_chain(0, 10, B256::ZERO, 18);
    append(&mut b, &blocks).await;
    let drained = b.drain_above(5, dl()).await.expect("drain_above(5)");
    let numbers: Vec<BlockNumber> = drained.iter().map(|d| d.header.number).collect();
    assert_eq!(numbers, vec![6, 7, 8, 9], "drained block numbers, in order");
    for (d, block) in drained.iter().zip(&blocks[6..]) {
        assert_eq!(d.header, block.header, "drained header {}", block.number());
        assert_eq!(d.receipts, block.stored_receipts(), "drained receipts {}", block.number());
    }
    assert_holds_exactly(&b, &blocks[..=5]).await;
    for block in &blocks[6..] {
        assert_absent(&b, block, true).await;
    }
    let none = b.drain_above(5, dl()).await.expect("drain_above(tip)");
    assert!(none.is_empty(), "draining above the tip returns nothing");
    let none = b.drain_above(100, dl()).await.expect("drain_above(100)");
    assert!(none.is_empty(), "draining above the tip returns nothing");
    let rest = b.drain_above(0, dl()).await.expect("drain_above(0)");
    assert_eq!(rest.len(), 5, "drain_above(0) removes 1..=5");
    assert_holds_exactly(&b, &blocks[..1]).await;
}

async fn chain_id<B: ColdRead>(b: &B) -> Option<u64> {
    b.chain_id(dl()).await.expect("chain_id")
}

async fn chain_id_is_recorded_once<B: ColdBackend>(mut b: B) {
    assert_eq!(chain_id(&b).await, None, "an empty store has no chain id");
    b.set_chain_id(11_155_111, dl()).await.expect("set_chain_id on an empty store");
    assert_eq!(chain_id(&b).await, Some(11_155_111), "the recorded chain id");
    b.set_chain_id(11_155_111, dl()).await.expect("set_chain_id of the same id");
    match b.set_chain_id(1, dl()).await {
        Err(ColdError::ChainIdMismatch { stored: 11_155_111, given: 1 }) => {}
        other => panic!("set_chain_id of another id: expected ChainIdMismatch, got {other:?}"),
    }
    assert_eq!(chain_id(&b).await, Some(11_155_111), "a refused id changes nothing");
    let blocks = test_chain(0, 6, B256::ZERO, 19);
    append(&mut b, &blocks).await;
    b.truncate_above(2, dl()).await.expect("truncate_above(2)");
    b.drain_above(0, dl()).await.expect("drain_above(0)");
    assert_eq!(chain_id(&b).await, Some(11_155_111), "truncates and drains keep the chain id");
}

async fn chain_id_full_range<B: ColdBackend>(mut b: B) {
    // Past i64::MAX (a database's signed integer) it is still the same id.
    b.set_chain_id(u64::MAX, dl()).await.expect("set_chain_id(u64::MAX)");
    assert_eq!(chain_id(&b).await, Some(u64::MAX), "chain id u64::MAX round-trips");
    match b.set_chain_id(u64::MAX - 1, dl()).await {
        Err(ColdError::ChainIdMismatch { stored: u64::MAX, given }) if given == u64::MAX - 1 => {}
        other => panic!("set_chain_id of another large id: {other:?}"),
    }
}

async fn chain_id_can_follow_blocks<B: ColdBackend>(mut b: B) {
    // A store written before chain ids were recorded: blocks, no id.
    let blocks = test_chain(0, 4, B256::ZERO, 20);
    append(&mut b, &blocks).await;
    assert_eq!(chain_id(&b).await, None, "blocks alone record no chain id");
    b.set_chain_id(1, dl()).await.expect("set_chain_id on a store with blocks");
    assert_eq!(chain_id(&b).await, Some(1), "the recorded chain id");
    assert_holds_exactly(&b, &blocks).await;
    let more = test_chain(4, 2, blocks[3].hash(), 21);
    append(&mut b, &more).await;
    assert_eq!(chain_id(&b).await, Some(1), "appends keep the chain id");
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

/// Appends the standard chain, returns it and its tip.
async fn logs_setup<B: ColdBackend>(b: &mut B) -> (Vec<BlockData>, u64) {
    let blocks = chain();
    append(b, &blocks).await;
    let tip = blocks.last().map_or(0, BlockData::number);
    (blocks, tip)
}

/// What `get_logs(max)` must answer for these matches (in order), by the
/// block-boundary rule, computed per block: the first matching block always
/// counts whole; a later block whose matches bring the total above `max`
/// fails the query with `fits_to` the block before it.
fn limited(all: &[RpcLog], max: usize) -> Result<Vec<RpcLog>, BlockNumber> {
    let mut blocks: Vec<(BlockNumber, usize)> = Vec::new();
    for log in all {
        let n = log.block_number.expect("stored logs have a block number");
        match blocks.last_mut() {
            Some((last, count)) if *last == n => *count += 1,
            _ => blocks.push((n, 1)),
        }
    }
    let mut total = 0;
    for (i, &(n, count)) in blocks.iter().enumerate() {
        if i > 0 && total + count > max {
            return Err(n - 1);
        }
        total += count;
    }
    Ok(all.to_vec())
}

/// Checks `get_logs(f, max)` against [`limited`].
async fn assert_limited<B: ColdRead>(b: &B, f: &LogFilter, max: usize, all: &[RpcLog]) {
    match (limited(all, max), b.get_logs(f, max, dl()).await) {
        (Ok(want), Ok(got)) => assert_logs_eq(&got, &want, &format!("{f:?} with max_logs {max}")),
        (Err(fits), Err(ColdError::TooManyLogs { limit, fits_to })) => assert!(
            limit == max && fits_to == Some(fits),
            "{f:?} with max_logs {max}: TooManyLogs {{ limit: {limit}, fits_to: {fits_to:?} }}, \
             expected limit {max}, fits_to Some({fits})"
        ),
        (want, got) => panic!(
            "{f:?} with max_logs {max}: got {:?}, expected {:?}",
            got.map(|l| l.len()),
            want.map(|l| l.len())
        ),
    }
}

async fn logs_max_logs_boundary<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    for (from, to, f) in [
        (0, tip, LogFilter::range(0, tip)),
        (3, 9, LogFilter::range(3, 9).address(test_address(0))),
        (0, tip, LogFilter::range(0, tip).topic(0, vec![test_topic(1)])),
    ] {
        let expected = brute_force(&blocks, &f, from, to);
        let n = expected.len();
        let blocks_with_matches = {
            let mut v: Vec<_> = expected.iter().map(|l| l.block_number).collect();
            v.dedup();
            v.len()
        };
        assert!(blocks_with_matches > 1, "filter {f:?} should match in several blocks");
        let got = b.get_logs(&f, n, dl()).await;
        let got = got.unwrap_or_else(|e| panic!("{f:?} with max_logs = {n} matches: {e}"));
        assert_logs_eq(&got, &expected, &format!("{f:?} with max_logs = number of matches"));
        let err = logs_err(&b, &f, n - 1).await;
        assert!(
            matches!(err, ColdError::TooManyLogs { limit, fits_to: Some(_) } if limit == n - 1),
            "{f:?} with max_logs = {} gave {err:?}",
            n - 1
        );
        for max in [0, 1, 2, n / 3, n / 2, n - 1, n, n + 1] {
            assert_limited(&b, &f, max, &expected).await;
        }
    }
    // Zero matches with max_logs 0 is fine.
    let f = LogFilter::range(0, tip).topic(0, vec![B256::repeat_byte(0x99)]);
    assert_eq!(b.get_logs(&f, 0, dl()).await.expect("no match, max 0"), vec![], "no match, max 0");
    let err = logs_err(&b, &LogFilter::range(0, tip), 0).await;
    assert!(
        matches!(err, ColdError::TooManyLogs { limit: 0, fits_to: Some(_) }),
        "max_logs 0 gave {err:?}"
    );
}

/// A block with more matches than `max_logs` comes back whole: alone in
/// its range, by hash, and as the first matching block of a range whose
/// later matches do not fit (then `fits_to` is that block or later).
async fn logs_first_block_comes_back_whole<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    let busy = blocks
        .iter()
        .find(|blk| {
            let n = blk.number();
            n < tip && brute_force(&blocks, &LogFilter::range(n, n), n, n).len() >= 3
        })
        .expect("the standard chain has a block with 3 logs below the tip");
    let n = busy.number();
    let whole = brute_force(&blocks, &LogFilter::range(n, n), n, n);
    for max in [0, 1, whole.len() - 1] {
        let got = b.get_logs(&LogFilter::range(n, n), max, dl()).await;
        let got = got.unwrap_or_else(|e| panic!("block {n} alone with max_logs {max}: {e}"));
        assert_logs_eq(&got, &whole, &format!("block {n} alone with max_logs {max}"));
        let got = b.get_logs(&LogFilter::at_hash(busy.hash()), max, dl()).await;
        let got = got.unwrap_or_else(|e| panic!("block {n} by hash with max_logs {max}: {e}"));
        assert_logs_eq(&got, &whole, &format!("block {n} by hash with max_logs {max}"));
    }
    let rest = brute_force(&blocks, &LogFilter::range(n, tip), n, tip);
    assert!(rest.len() > whole.len(), "blocks above {n} have logs");
    let err = logs_err(&b, &LogFilter::range(n, tip), 1).await;
    let next = rest[whole.len()].block_number.expect("a block number");
    assert!(
        matches!(err, ColdError::TooManyLogs { limit: 1, fits_to: Some(f) } if f == next - 1),
        "range {n}..={tip} with max_logs 1 gave {err:?}, expected fits_to {}",
        next - 1
    );
}

/// A client that splits ranges by `fits_to` reaches every block and gets
/// every log exactly once: each suggested range is answered, never the
/// same range again.
async fn logs_suggested_range_fits<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    for (max, f) in [
        (1, LogFilter::range(0, tip)),
        (5, LogFilter::range(0, tip)),
        (2, LogFilter::range(0, tip).address(test_address(1))),
    ] {
        let mut from = 0;
        let mut got = Vec::new();
        let mut rounds = 0;
        while from <= tip {
            rounds += 1;
            assert!(rounds <= 2 * (tip + 1), "{f:?} with max_logs {max}: no progress");
            let q = LogFilter {
                blocks: BlockSelector::Range { from: Some(from), to: Some(tip) },
                ..f.clone()
            };
            match b.get_logs(&q, max, dl()).await {
                Ok(logs) => {
                    got.extend(logs);
                    break;
                }
                Err(ColdError::TooManyLogs { fits_to: Some(to), .. }) => {
                    assert!((from..tip).contains(&to), "fits_to {to} from {from}");
                    let part = LogFilter {
                        blocks: BlockSelector::Range { from: Some(from), to: Some(to) },
                        ..f.clone()
                    };
                    let logs = b.get_logs(&part, max, dl()).await;
                    let logs = logs.unwrap_or_else(|e| {
                        panic!("the suggested range {from}..={to} with max_logs {max}: {e}")
                    });
                    got.extend(logs);
                    from = to + 1;
                }
                Err(e) => panic!("{q:?} with max_logs {max}: {e}"),
            }
        }
        let want = brute_force(&blocks, &f, 0, tip);
        assert_logs_eq(&got, &want, &format!("{f:?} split by fits_to with max_logs {max}"));
    }
}

async fn logs_wildcard_topic_positions<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    let t = test_topic(2);
    let by_none = LogFilter { topics: vec![None, Some(vec![t])], ..LogFilter::range(0, tip) };
    let by_empty =
        LogFilter { topics: vec![Some(vec![]), Some(vec![t])], ..LogFilter::range(0, tip) };
    let expected: Vec<RpcLog> = brute_force(&blocks, &LogFilter::default(), 0, tip)
        .into_iter()
        .filter(|l| l.inner.topics().get(1) == Some(&t))
        .collect();
    assert!(!expected.is_empty(), "topic 1 = {t} should match");
    assert_logs_eq(&logs(&b, &by_none).await, &expected, "None as a wildcard position");
    assert_logs_eq(&logs(&b, &by_empty).await, &expected, "an empty set as a wildcard position");
    let all_wild =
        LogFilter { topics: vec![None, Some(vec![]), None, None], ..LogFilter::range(0, tip) };
    assert_logs_eq(
        &logs(&b, &all_wild).await,
        &brute_force(&blocks, &LogFilter::default(), 0, tip),
        "four wildcard positions match everything, including logs without topics",
    );
}

async fn logs_empty_address_list_matches_all<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    let got = logs(&b, &LogFilter::range(0, tip)).await;
    assert_eq!(got.len(), total_logs(&blocks), "an empty address list matches every log");
    assert_eq!(got, brute_force(&blocks, &LogFilter::default(), 0, tip), "all logs");
}

async fn logs_address_or<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    let a = test_address(0);
    let c = test_address(2);
    let one = logs(&b, &LogFilter::range(0, tip).address(a)).await;
    let other = logs(&b, &LogFilter::range(0, tip).address(c)).await;
    let both_f = LogFilter::range(0, tip).address(a).address(c);
    let both = logs(&b, &both_f).await;
    assert!(!one.is_empty() && !other.is_empty(), "addresses 0 and 2 both have logs");
    assert!(one.iter().all(|l| l.inner.address == a), "address filter returned another address");
    assert_eq!(both.len(), one.len() + other.len(), "address OR is the union");
    assert_logs_eq(&both, &brute_force(&blocks, &both_f, 0, tip), "address OR");
    let absent = LogFilter::range(0, tip).address(Address::repeat_byte(0x77));
    assert!(logs(&b, &absent).await.is_empty(), "an unused address matches nothing");
}

async fn logs_topic_or_within_and_across<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    let (t0, t1, t2) = (test_topic(0), test_topic(1), test_topic(2));
    let r = LogFilter::range(0, tip);
    let only0 = logs(&b, &r.clone().topic(0, vec![t0])).await;
    let only1 = logs(&b, &r.clone().topic(0, vec![t1])).await;
    let either_f = r.clone().topic(0, vec![t0, t1]);
    let either = logs(&b, &either_f).await;
    assert!(!only0.is_empty() && !only1.is_empty(), "topics 0 and 1 both occur at position 0");
    assert_eq!(either.len(), only0.len() + only1.len(), "topic OR within a position is the union");
    assert_logs_eq(&either, &brute_force(&blocks, &either_f, 0, tip), "topic OR");
    let and_f = either_f.clone().topic(1, vec![t2]);
    let and = logs(&b, &and_f).await;
    assert_logs_eq(&and, &brute_force(&blocks, &and_f, 0, tip), "topic AND across positions");
    assert!(!and.is_empty(), "topic AND should match something in the test chain");
    assert!(and.len() < either.len(), "AND across positions narrows");
    assert!(
        and.iter().all(|l| {
            let t = l.inner.topics();
            (t[0] == t0 || t[0] == t1) && t.get(1) == Some(&t2)
        }),
        "every AND match has both topics"
    );
    let f = r.clone().address(test_address(1)).topic(0, vec![t0, t2]).topic(2, vec![t1, t2]);
    assert_logs_eq(&logs(&b, &f).await, &brute_force(&blocks, &f, 0, tip), "address AND topics");
}

async fn logs_too_many_topic_positions<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    let five = vec![None, None, None, None, None];
    for blocks_sel in [range_sel(Some(0), Some(tip)), BlockSelector::Hash(blocks[3].hash())] {
        let f = LogFilter { blocks: blocks_sel, topics: five.clone(), ..Default::default() };
        let err = logs_err(&b, &f, usize::MAX).await;
        assert!(matches!(err, ColdError::InvalidFilter(_)), "5 topic positions gave {err:?}");
    }
    let f = LogFilter::range(0, tip).topic(4, vec![test_topic(0)]);
    let err = logs_err(&b, &f, usize::MAX).await;
    assert!(matches!(err, ColdError::InvalidFilter(_)), "topic position 4 gave {err:?}");
    let four = LogFilter::range(0, tip).topic(3, vec![test_topic(0)]);
    assert_logs_eq(
        &logs(&b, &four).await,
        &brute_force(&blocks, &four, 0, tip),
        "4 positions are fine",
    );
}

async fn logs_from_above_to_is_invalid<B: ColdBackend>(mut b: B) {
    let err = logs_err(&b, &LogFilter::range(5, 4), usize::MAX).await;
    assert!(matches!(err, ColdError::InvalidFilter(_)), "from > to on an empty store gave {err:?}");
    let (_, tip) = logs_setup(&mut b).await;
    for f in [
        LogFilter::range(5, 4),
        LogFilter::range(tip + 10, tip + 5),
        LogFilter { blocks: range_sel(None, Some(tip - 2)), ..Default::default() },
    ] {
        let err = logs_err(&b, &f, usize::MAX).await;
        assert!(matches!(err, ColdError::InvalidFilter(_)), "{f:?} gave {err:?}");
    }
}

async fn logs_unknown_block_hash<B: ColdBackend>(mut b: B) {
    let (blocks, _) = logs_setup(&mut b).await;
    let h = B256::repeat_byte(0x5A);
    let err = logs_err(&b, &LogFilter::at_hash(h), usize::MAX).await;
    assert!(matches!(err, ColdError::UnknownBlockHash(x) if x == h), "unknown hash gave {err:?}");
    let parent = blocks[0].header.parent_hash;
    let err = logs_err(&b, &LogFilter::at_hash(parent), usize::MAX).await;
    assert!(matches!(err, ColdError::UnknownBlockHash(_)), "genesis parent hash gave {err:?}");
}

async fn logs_range_clamped_to_tip<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    for to in [tip + 1, tip + 1000, u64::MAX] {
        let f = LogFilter::range(tip - 5, to);
        assert_logs_eq(
            &logs(&b, &f).await,
            &brute_force(&blocks, &f, tip - 5, tip),
            &format!("range to {to}"),
        );
    }
    let f = LogFilter { blocks: range_sel(Some(tip - 3), None), ..Default::default() };
    assert_logs_eq(&logs(&b, &f).await, &brute_force(&blocks, &f, tip - 3, tip), "open end");
}

async fn logs_from_above_tip_is_empty<B: ColdBackend>(mut b: B) {
    let (_, tip) = logs_setup(&mut b).await;
    for f in [
        LogFilter::range(tip + 1, tip + 1),
        LogFilter::range(tip + 1, tip + 100),
        LogFilter { blocks: range_sel(Some(tip + 1), None), ..Default::default() },
        LogFilter::range(u64::MAX, u64::MAX),
    ] {
        assert_logs_eq(&logs(&b, &f).await, &[], &format!("{f:?} starts above the tip"));
    }
}

async fn logs_open_ends_resolve_to_tip<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    // Make sure the tip block has logs so the check is meaningful.
    let last_with_logs = blocks
        .iter()
        .rev()
        .find(|b| b.receipts.iter().any(|r| !r.logs().is_empty()))
        .map_or(0, BlockData::number);
    b.truncate_above(last_with_logs, dl()).await.expect("truncate to a block with logs");
    let blocks = &blocks[..=last_with_logs as usize];
    let tip_now = last_with_logs;
    assert!(tip_now <= tip && tip_now > 2, "the test chain has logs near its end");
    let cases = [
        (range_sel(None, None), tip_now, tip_now),
        (range_sel(Some(0), None), 0, tip_now),
        (range_sel(None, Some(tip_now)), tip_now, tip_now),
        (range_sel(None, Some(tip_now + 10)), tip_now, tip_now),
    ];
    for (sel, from, to) in cases {
        let f = with_blocks(LogFilter::default(), sel);
        let expected = brute_force(blocks, &f, from, to);
        assert!(!expected.is_empty(), "{sel:?} should match");
        assert_logs_eq(
            &logs(&b, &f).await,
            &expected,
            &format!("{sel:?} resolves against tip {tip_now}"),
        );
    }
}

async fn logs_empty_store<B: ColdBackend>(b: B) {
    for sel in [
        range_sel(None, None),
        range_sel(Some(0), None),
        range_sel(None, Some(10)),
        range_sel(Some(0), Some(u64::MAX)),
    ] {
        let f = with_blocks(LogFilter::default(), sel);
        assert_logs_eq(&logs(&b, &f).await, &[], &format!("{sel:?} on an empty store"));
    }
    let err = logs_err(&b, &LogFilter::at_hash(B256::repeat_byte(1)), usize::MAX).await;
    assert!(
        matches!(err, ColdError::UnknownBlockHash(_)),
        "hash filter on an empty store gave {err:?}"
    );
}

async fn logs_block_hash_filter<B: ColdBackend>(mut b: B) {
    let (blocks, _) = logs_setup(&mut b).await;
    for block in &blocks {
        let f = LogFilter::at_hash(block.hash());
        let n = block.number();
        assert_logs_eq(
            &logs(&b, &f).await,
            &brute_force(&blocks, &f, n, n),
            &format!("logs of block {n} by hash"),
        );
        let f = LogFilter::at_hash(block.hash()).address(test_address(3));
        assert_logs_eq(
            &logs(&b, &f).await,
            &brute_force(&blocks, &f, n, n),
            &format!("address logs of block {n}"),
        );
        let f = LogFilter::at_hash(block.hash()).topic(0, vec![test_topic(0), test_topic(4)]);
        assert_logs_eq(
            &logs(&b, &f).await,
            &brute_force(&blocks, &f, n, n),
            &format!("topic logs of block {n}"),
        );
    }
}

async fn logs_order_and_context<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    // Expected logs computed from the raw blocks, independent of rpc_logs.
    let mut expected = Vec::new();
    for block in &blocks {
        let mut log_index = 0u64;
        for (ti, (tx, r)) in block.transactions.iter().zip(&block.receipts).enumerate() {
            for log in r.logs() {
                expected.push(RpcLog {
                    inner: log.clone(),
                    block_hash: Some(block.hash()),
                    block_number: Some(block.number()),
                    block_timestamp: Some(block.header.timestamp),
                    transaction_hash: Some(*tx.inner().tx_hash()),
                    transaction_index: Some(ti as u64),
                    log_index: Some(log_index),
                    removed: false,
                });
                log_index += 1;
            }
        }
    }
    let got = logs(&b, &LogFilter::range(0, tip)).await;
    assert_eq!(got.len(), expected.len(), "number of logs");
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "log {i} of the whole chain (context fields)");
    }
    let keys: Vec<(u64, u64, u64)> = got
        .iter()
        .map(|l| {
            (
                l.block_number.unwrap_or_default(),
                l.transaction_index.unwrap_or_default(),
                l.log_index.unwrap_or_default(),
            )
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "logs ordered by (block, tx index, log index)");
    // Filtered results keep block-wide log indexes.
    let f = LogFilter::range(0, tip).address(test_address(2));
    let filtered = logs(&b, &f).await;
    let from_all: Vec<RpcLog> =
        expected.iter().filter(|l| l.inner.address == test_address(2)).cloned().collect();
    assert_logs_eq(&filtered, &from_all, "a filtered query keeps block-wide log indexes");
}

async fn logs_range_below_first_block<B: ColdBackend>(mut b: B) {
    let blocks = test_chain(50, 8, B256::repeat_byte(4), 19);
    append(&mut b, &blocks).await;
    for (from, to) in [(0, 57), (0, 1000), (10, 52), (49, 50)] {
        let f = LogFilter::range(from, to);
        let expected = brute_force(&blocks, &f, from, to);
        assert_logs_eq(
            &logs(&b, &f).await,
            &expected,
            &format!("range {from}..={to} starting below the first block 50"),
        );
    }
    assert!(!logs(&b, &LogFilter::range(0, 57)).await.is_empty(), "the chain has logs");
    assert_logs_eq(
        &logs(&b, &LogFilter::range(0, 49)).await,
        &[],
        "range entirely below the first block",
    );
}

async fn logs_random_filters_match_brute_force<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    let mut rng = crate::testing::chain::TestRng::new(77);
    for i in 0..200 {
        let from = rng.below(tip + 3);
        let to = from + rng.below(tip + 3 - from);
        let mut f = LogFilter::range(from, to);
        for _ in 0..rng.below(3) {
            f = f.address(test_address(rng.below(5)));
        }
        for pos in 0..rng.below(5) as usize {
            if rng.below(3) == 0 {
                continue;
            }
            let values = (0..rng.below(3)).map(|_| test_topic(rng.below(7))).collect();
            f = f.topic(pos, values);
        }
        let expected = brute_force(&blocks, &f, from, to);
        assert_logs_eq(&logs(&b, &f).await, &expected, &format!("random filter {i}: {f:?}"));
    }
}

// ---------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------

/// Runs `produce_logs` to completion and collects every item it sent.
async fn collect_stream<B: ColdRead>(
    b: &B,
    filter: LogFilter,
    range: std::ops::RangeInclusive<BlockNumber>,
    anchor: BlockNumHash,
    params: StreamParams,
) -> Vec<crate::ColdResult<RpcLog>> {
    let (tx, mut rx) = mpsc::channel(4);
    let producer = b.produce_logs(filter, range, anchor, params, tx, dl());
    let consumer = async {
        let mut items = Vec::new();
        while let Some(item) = rx.recv().await {
            items.push(item);
        }
        items
    };
    let both = async { futures::join!(producer, consumer).1 };
    tokio::time::timeout(Duration::from_secs(30), both)
        .await
        .expect("produce_logs did not finish within 30 s")
}

async fn stream_matches_get_logs<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    let anchor = blocks[tip as usize].num_hash();
    for (from, f) in [
        (0, LogFilter::range(0, tip)),
        (2, LogFilter::range(2, tip).address(test_address(1))),
        (0, LogFilter::range(0, tip).topic(0, vec![test_topic(0), test_topic(3)])),
    ] {
        let expected = logs(&b, &f).await;
        assert!(!expected.is_empty(), "{f:?} should match");
        let items =
            collect_stream(&b, f.clone(), from..=tip, anchor, StreamParams::default()).await;
        let got: Vec<RpcLog> = items
            .into_iter()
            .map(|i| i.unwrap_or_else(|e| panic!("stream of {f:?} failed: {e}")))
            .collect();
        assert_logs_eq(&got, &expected, &format!("stream of {f:?} equals get_logs, in order"));
    }
    // A range in the middle with the anchor at its end.
    let anchor = blocks[10].num_hash();
    let f = LogFilter::range(4, 10);
    let items = collect_stream(&b, f.clone(), 4..=10, anchor, StreamParams::default()).await;
    let got: Vec<RpcLog> = items.into_iter().map(|i| i.expect("stream item")).collect();
    assert_logs_eq(&got, &logs(&b, &f).await, "stream of 4..=10 equals get_logs");
}

async fn stream_max_logs_then_too_many_logs<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    let anchor = blocks[tip as usize].num_hash();
    let f = LogFilter::range(0, tip);
    let all = logs(&b, &f).await;
    assert!(all.len() > 5, "the chain has more than 5 logs");
    let max = 5;
    let items =
        collect_stream(&b, f.clone(), 0..=tip, anchor, StreamParams { max_logs: max }).await;
    assert_eq!(items.len(), max + 1, "max_logs logs then one error");
    for (i, (item, expected)) in items.iter().zip(&all).take(max).enumerate() {
        match item {
            Ok(log) => assert_eq!(log, expected, "stream log {i}"),
            Err(e) => panic!("stream item {i} is an error: {e}"),
        }
    }
    assert!(
        matches!(items.last(), Some(Err(ColdError::TooManyLogs { limit: 5, fits_to: None }))),
        "last item {:?}, expected TooManyLogs {{ limit: 5, fits_to: None }}",
        items.last()
    );
    // Exactly as many logs as allowed: no error.
    let exact = collect_stream(&b, f, 0..=tip, anchor, StreamParams { max_logs: all.len() }).await;
    assert_eq!(exact.len(), all.len(), "max_logs = number of matches yields every log");
    assert!(exact.iter().all(Result::is_ok), "max_logs = number of matches has no error");
}

async fn stream_wrong_anchor_is_reorg<B: ColdBackend>(mut b: B) {
    let (_, tip) = logs_setup(&mut b).await;
    let anchor = BlockNumHash::new(tip, B256::repeat_byte(0xDD));
    let items =
        collect_stream(&b, LogFilter::range(0, tip), 0..=tip, anchor, StreamParams::default())
            .await;
    let errors: Vec<&ColdError> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "exactly one error for a stale anchor, got {errors:?}");
    assert!(
        matches!(items.last(), Some(Err(ColdError::ReorgDetected { .. }))),
        "the stream must end with ReorgDetected, ended with {:?}",
        items.last()
    );
}

async fn stream_returns_when_consumer_leaves<B: ColdBackend>(mut b: B) {
    let (blocks, tip) = logs_setup(&mut b).await;
    let anchor = blocks[tip as usize].num_hash();
    let (tx, mut rx) = mpsc::channel(1);
    let producer = b.produce_logs(
        LogFilter::range(0, tip),
        0..=tip,
        anchor,
        StreamParams::default(),
        tx,
        dl(),
    );
    let consumer = async move {
        let first = rx.recv().await;
        assert!(matches!(first, Some(Ok(_))), "first stream item {first:?}");
        drop(rx);
    };
    let both = async { futures::join!(producer, consumer) };
    tokio::time::timeout(Duration::from_secs(30), both)
        .await
        .expect("produce_logs must return once the consumer is gone");
}
