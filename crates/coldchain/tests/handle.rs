//! The handle's invariants C1–C14 (DESIGN.md), one or more named tests each.
//!
//! Every test drives a [`GatedBackend`] under tokio's paused clock: the test
//! decides when each backend call may proceed, and time moves only when every
//! task is idle, so the outcome never depends on scheduling luck.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use alloy::primitives::B256;
use coldchain::{
    BlockData, ColdError, ColdStorage, Deadline, HeaderSpec, LogFilter, ReceiptSpec, StreamParams,
    TxSpec,
    backend::ColdWrite,
    handle::{WriteTarget, cache::CacheBudget},
    testing::{ChainShape, GatedBackend, test_chain, test_chain_with},
};
use futures::StreamExt;
use std::{sync::Arc, time::Duration};
use tokio::time::Instant;

const READ: Duration = Duration::from_secs(5);
const WRITE: Duration = Duration::from_secs(10);
const STREAM: Duration = Duration::from_secs(60);

fn chain(len: u64) -> Vec<BlockData> {
    let shape = ChainShape { max_txs: 4, max_logs: 3, addresses: 3, topics: 4 };
    test_chain_with(1, len, B256::ZERO, 42, shape)
}

/// A gated backend holding `len` blocks (1..=len) and a handle over it.
async fn setup(
    snapshot: bool,
    len: u64,
    permits: usize,
) -> (GatedBackend, ColdStorage<GatedBackend>, Vec<BlockData>) {
    let backend = GatedBackend::new(snapshot);
    let blocks = chain(len + 20);
    let mut store = backend.store().clone();
    store.append_blocks(blocks[..len as usize].to_vec(), Deadline::none("setup")).await.unwrap();
    let handle = ColdStorage::builder(backend.clone())
        .read_permits(permits)
        .read_timeout(READ)
        .write_timeout(WRITE)
        .stream_timeout(STREAM)
        .build()
        .await
        .unwrap();
    (backend, handle, blocks)
}

/// Lets every runnable task run until it blocks.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn spawn_read(
    h: &ColdStorage<GatedBackend>,
    n: u64,
) -> tokio::task::JoinHandle<coldchain::ColdResult<Option<Vec<coldchain::RecoveredTx>>>> {
    let h = h.clone();
    tokio::spawn(async move { h.block_transactions(n).await })
}

fn is_terminated<T: std::fmt::Debug>(r: &coldchain::ColdResult<T>) -> bool {
    matches!(r, Err(ColdError::TaskTerminated))
}

// ---------------------------------------------------------------- C1

#[tokio::test(start_paused = true)]
async fn c1_reads_above_cap_wait_fifo_and_all_complete() {
    let (backend, h, _) = setup(true, 10, 4).await;
    backend.hold("block_transactions");
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..12u64 {
        let h = h.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let r = h.block_transactions(1 + i % 10).await;
            order.lock().push(i);
            r
        }));
        settle().await;
    }
    backend.wait_entered("block_transactions", 4).await;
    settle().await;
    assert_eq!(backend.active("block_transactions"), 4, "at most R reads in the backend");
    assert_eq!(h.available_read_permits(), 0);
    backend.release("block_transactions");
    for t in tasks {
        assert!(t.await.unwrap().unwrap().is_some(), "every read above the cap completes");
    }
    // Each waiter got its permit in arrival order, so completions follow it
    // after the first R.
    let order = order.lock().clone();
    assert_eq!(&order[4..], &[4, 5, 6, 7, 8, 9, 10, 11]);
    assert_eq!(h.available_read_permits(), 4);
}

#[tokio::test(start_paused = true)]
async fn c1_permit_returns_when_work_ends_not_when_caller_gives_up() {
    let (backend, h, _) = setup(true, 5, 1).await;
    backend.hold("block_transactions");
    let caller = spawn_read(&h, 1);
    backend.wait_entered("block_transactions", 1).await;
    caller.abort();
    settle().await;
    assert_eq!(h.available_read_permits(), 0, "the abandoned work still holds its permit");
    backend.release("block_transactions");
    backend.wait_active("block_transactions", 0).await;
    settle().await;
    assert_eq!(h.available_read_permits(), 1, "the permit returns when the work ends");
}

// ---------------------------------------------------------------- C2

#[tokio::test(start_paused = true)]
async fn c2_mix_of_readers_writers_and_streams_all_complete() {
    for snapshot in [true, false] {
        let backend = GatedBackend::new(snapshot);
        let blocks = chain(30);
        let mut store = backend.store().clone();
        store.append_blocks(blocks[..10].to_vec(), Deadline::none("setup")).await.unwrap();
        let h = ColdStorage::builder(backend.clone())
            .read_permits(2)
            .stream_capacity(1)
            .read_timeout(READ)
            .write_timeout(WRITE)
            .stream_timeout(STREAM)
            .build()
            .await
            .unwrap();
        // Streams whose consumers stall: their producers wait on a full
        // channel for the whole test.
        let mut stalled = Vec::new();
        for _ in 0..4 {
            let mut s =
                h.stream_logs(LogFilter::range(1, 10), StreamParams::default()).await.unwrap();
            assert!(s.next().await.unwrap().is_ok());
            stalled.push(s);
        }
        settle().await;
        // Readers above the cap, a draining write, readers behind the drain.
        backend.hold("block_transactions");
        let mut reads: Vec<_> = (0..6).map(|i| spawn_read(&h, 1 + i % 10)).collect();
        backend.wait_entered("block_transactions", 2).await;
        let mut writes = Vec::new();
        for b in &blocks[10..15] {
            writes.push(h.dispatch_append_blocks(vec![b.clone()]).unwrap());
        }
        settle().await;
        reads.extend((0..6).map(|i| spawn_read(&h, 1 + i % 10)));
        settle().await;
        backend.release("block_transactions");
        let start = Instant::now();
        for r in reads {
            r.await.unwrap().unwrap();
        }
        for w in writes {
            w.await.unwrap();
        }
        assert!(start.elapsed() < READ, "snapshot={snapshot}: stalled streams delayed the rest");
        assert_eq!(h.durable_tip().unwrap().number, 15, "snapshot={snapshot}");
        // The stalled consumers resume and their streams complete.
        let expected = h.get_logs(LogFilter::range(1, 10), usize::MAX).await.unwrap().len();
        for s in stalled {
            let rest: Vec<_> = s.collect().await;
            assert!(rest.iter().all(|r| r.is_ok()), "snapshot={snapshot}: {rest:?}");
            assert_eq!(1 + rest.len(), expected, "snapshot={snapshot}");
        }
        h.shutdown().await;
    }
}

// ---------------------------------------------------------------- C3

#[tokio::test(start_paused = true)]
async fn c3_writes_apply_one_at_a_time_in_submission_order() {
    let (backend, h, blocks) = setup(true, 10, 4).await;
    backend.hold("append_blocks");
    let w1 = h.dispatch_append_blocks(vec![blocks[10].clone()]).unwrap();
    let w2 = h.dispatch_append_blocks(vec![blocks[11].clone()]).unwrap();
    // Not contiguous: fails alone, later writes are unaffected.
    let bad = h.dispatch_append_blocks(vec![blocks[15].clone()]).unwrap();
    let w3 = h.dispatch_truncate_above(11).unwrap();
    let w4 = h.dispatch_append_blocks(vec![blocks[11].clone()]).unwrap();
    backend.wait_entered("append_blocks", 1).await;
    settle().await;
    assert_eq!(backend.active("append_blocks"), 1, "one write at a time");
    backend.release("append_blocks");
    w1.await.unwrap();
    w2.await.unwrap();
    assert!(matches!(bad.await, Err(ColdError::NotContiguous { expected: 13, got: 16 })));
    w3.await.unwrap();
    w4.await.unwrap();
    let writes: Vec<_> = backend
        .log()
        .into_iter()
        .filter(|op| matches!(*op, "append_blocks" | "truncate_above"))
        .collect();
    assert_eq!(
        writes,
        ["append_blocks", "append_blocks", "append_blocks", "truncate_above", "append_blocks"]
    );
    assert_eq!(h.tip().await.unwrap().unwrap().hash, blocks[11].hash());
}

// ---------------------------------------------------------------- C4

#[tokio::test(start_paused = true)]
async fn c4_without_snapshots_the_writer_drains_reads_first() {
    let (backend, h, blocks) = setup(false, 10, 3).await;
    backend.hold("block_transactions");
    let reads: Vec<_> = (1..=3).map(|n| spawn_read(&h, n)).collect();
    backend.wait_entered("block_transactions", 3).await;
    let hw = h.clone();
    let b = blocks[10].clone();
    let write = tokio::spawn(async move { hw.append_block(b).await });
    settle().await;
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(backend.entered("append_blocks"), 0, "the write waits for reads in flight");
    backend.release("block_transactions");
    write.await.unwrap().unwrap();
    for r in reads {
        r.await.unwrap().unwrap();
    }
    let log = backend.log();
    let append_at = log.iter().position(|op| *op == "append_blocks").unwrap();
    assert_eq!(log[..append_at].iter().filter(|op| **op == "block_transactions").count(), 3);
}

#[tokio::test(start_paused = true)]
async fn c4_with_snapshots_reads_run_during_a_write_and_never_see_half() {
    let (backend, h, blocks) = setup(true, 10, 3).await;
    // Reads in flight do not stop a write.
    backend.hold("block_transactions");
    let reads: Vec<_> = (1..=3).map(|n| spawn_read(&h, n)).collect();
    backend.wait_entered("block_transactions", 3).await;
    h.append_blocks(blocks[10..12].to_vec()).await.unwrap();
    backend.release("block_transactions");
    for r in reads {
        r.await.unwrap().unwrap();
    }
    // In the middle of a write (the backend stored the blocks, the call has
    // not returned), reads run and see all of it or none of it.
    backend.hold("append_blocks_committed");
    let pending = h.dispatch_append_blocks(blocks[12..15].to_vec()).unwrap();
    backend.wait_entered("append_blocks_committed", 2).await; // the first append passed it too
    let mut seen = Vec::new();
    for n in 13..=15 {
        seen.push(h.block_transactions(n).await.unwrap().is_some());
    }
    assert!(seen.iter().all(|s| *s == seen[0]), "a read saw half a write: {seen:?}");
    let tip = h.tip().await.unwrap().unwrap().number;
    assert_eq!(tip, if seen[0] { 15 } else { 12 }, "the tip agrees with the blocks: {seen:?}");
    backend.release("append_blocks_committed");
    pending.await.unwrap();
    for n in 13..=15 {
        assert!(h.header(n).await.unwrap().is_some());
    }
}

// ---------------------------------------------------------------- C5

#[tokio::test(start_paused = true)]
async fn c5_a_draining_write_goes_before_reads_that_came_after_it() {
    // R = 3 and two reads in flight: one permit is free, yet a read that
    // arrives after the draining write must not take it.
    let (backend, h, blocks) = setup(false, 10, 3).await;
    backend.hold("block_transactions");
    let early: Vec<_> = (1..=2).map(|n| spawn_read(&h, n)).collect();
    backend.wait_entered("block_transactions", 2).await;
    let write = h.dispatch_append_blocks(vec![blocks[10].clone()]).unwrap();
    settle().await; // the writer is now queued on the drain
    let hl = h.clone();
    let late = tokio::spawn(async move { hl.receipt(ReceiptSpec::BlockNumberIndex(1, 0)).await });
    settle().await;
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(backend.entered("receipt"), 0, "the late read waits behind the write");
    backend.release("block_transactions");
    write.await.unwrap();
    late.await.unwrap().unwrap();
    for r in early {
        r.await.unwrap().unwrap();
    }
    let log: Vec<_> = backend.log().into_iter().filter(|op| *op != "tip").collect();
    assert_eq!(log, ["block_transactions", "block_transactions", "append_blocks", "receipt"]);
}

// ---------------------------------------------------------------- C6

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<parking_lot::Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Stops capturing on drop.
struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

/// Captures WARN lines for the current thread. One global subscriber (set
/// once) writes into the capturing thread's buffer: a thread-local default
/// subscriber would race other test threads over tracing's cached callsite
/// interest and miss the line now and then.
fn capture_warnings() -> (CaptureGuard, Arc<parking_lot::Mutex<Vec<u8>>>) {
    struct Capture;
    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            CAPTURE.with(|c| {
                if let Some(buf) = &*c.borrow() {
                    buf.lock().extend_from_slice(b);
                }
            });
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(|| Capture)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
    let buf = Arc::new(parking_lot::Mutex::new(Vec::new()));
    CAPTURE.with(|c| *c.borrow_mut() = Some(buf.clone()));
    (CaptureGuard, buf)
}

#[tokio::test(start_paused = true)]
async fn c6_read_timeout_names_the_op_warns_and_keeps_the_permit_until_work_ends() {
    let (guard, logs) = capture_warnings();
    let (backend, h, _) = setup(true, 5, 1).await;
    backend.hold("get_logs"); // a stuck backend that ignores its deadline
    let start = Instant::now();
    let r = h.get_logs(LogFilter::range(1, 5), 100).await;
    assert!(matches!(r, Err(ColdError::Timeout { op: "get_logs" })), "{r:?}");
    assert_eq!(start.elapsed(), READ, "answered exactly at the deadline");
    let text = String::from_utf8(logs.lock().clone()).unwrap();
    assert!(text.contains("WARN") && text.contains("get_logs"), "WARN names the op: {text}");
    assert_eq!(h.available_read_permits(), 0, "the stuck work keeps its permit");
    backend.release("get_logs");
    backend.wait_active("get_logs", 0).await;
    settle().await;
    assert_eq!(h.available_read_permits(), 1);
    drop(guard);
}

#[tokio::test(start_paused = true)]
async fn c6_the_backend_is_told_to_stop_at_the_deadline() {
    let (backend, h, _) = setup(true, 5, 1).await;
    backend.hold("transaction"); // ignores its deadline
    let r = h.transaction(TxSpec::BlockNumberIndex(1, 0)).await;
    assert!(matches!(r, Err(ColdError::Timeout { op: "transaction" })));
    // Not just late: the stop signal itself is set, for a backend whose
    // clock disagrees or that only listens to the signal.
    let d = backend.last_deadline("transaction").unwrap();
    assert!(d.is_stopped(), "the backend was not told to stop");
    backend.release("transaction");
    backend.wait_active("transaction", 0).await;
    settle().await;
    assert_eq!(h.available_read_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn c6_the_permit_wait_counts_inside_the_read_deadline() {
    let (backend, h, _) = setup(true, 5, 1).await;
    backend.hold("block_transactions");
    let stuck = spawn_read(&h, 1);
    backend.wait_entered("block_transactions", 1).await;
    backend.hold("header"); // the late read will hang in the backend too
    let hh = h.clone();
    let called = Instant::now();
    let late = tokio::spawn(async move {
        let r = hh.header(3).await;
        (r, called.elapsed())
    });
    settle().await;
    // The permit frees after 3 s; the backend then hangs.
    tokio::time::advance(Duration::from_secs(3)).await;
    backend.release("block_transactions");
    stuck.await.unwrap().unwrap();
    backend.wait_entered("header", 1).await;
    let d = backend.last_deadline("header").unwrap();
    assert_eq!(d.instant(), called + READ, "the backend's deadline counts from the call");
    let (r, elapsed) = late.await.unwrap();
    assert!(matches!(r, Err(ColdError::Timeout { op: "header" })), "{r:?}");
    assert_eq!(elapsed, READ, "one deadline from the call, the permit wait inside it");
}

#[tokio::test(start_paused = true)]
async fn c6_write_timeout_answers_on_time_and_the_next_write_is_bounded_too() {
    let (backend, h, blocks) = setup(true, 5, 2).await;
    backend.hold("append_blocks");
    let start = Instant::now();
    let r = h.append_block(blocks[5].clone()).await;
    assert!(matches!(r, Err(ColdError::Timeout { op: "append_blocks" })));
    assert_eq!(start.elapsed(), WRITE);
    let start = Instant::now();
    let r = h.truncate_above(3).await;
    assert!(matches!(r, Err(ColdError::Timeout { op: "truncate_above" })));
    assert_eq!(start.elapsed(), WRITE);
    // Reads are unaffected meanwhile.
    assert!(h.header(2).await.unwrap().is_some());
}

// ---------------------------------------------------------------- C7

#[tokio::test(start_paused = true)]
async fn c7_eight_open_streams_and_a_ninth_do_not_delay_a_write() {
    let backend = GatedBackend::new(false);
    let blocks = chain(40);
    backend
        .store()
        .clone()
        .append_blocks(blocks[..30].to_vec(), Deadline::none("setup"))
        .await
        .unwrap();
    let h = ColdStorage::builder(backend.clone())
        .read_permits(2)
        .stream_permits(8)
        .stream_capacity(1)
        .build()
        .await
        .unwrap();
    let mut open = Vec::new();
    for _ in 0..8 {
        open.push(h.stream_logs(LogFilter::range(1, 30), StreamParams::default()).await.unwrap());
    }
    let h9 = h.clone();
    let ninth = tokio::spawn(async move {
        h9.stream_logs(LogFilter::range(1, 30), StreamParams::default()).await
    });
    settle().await;
    assert_eq!(h.available_stream_permits(), 0);
    assert_eq!(h.available_read_permits(), 2, "streams hold no read permit");
    let start = Instant::now();
    h.append_block(blocks[30].clone()).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(1), "the write was not delayed");
    // The ninth waited for a stream permit within its setup deadline only.
    assert!(matches!(ninth.await.unwrap(), Err(ColdError::Timeout { op: "stream_logs" })));
    drop(open);
}

#[tokio::test(start_paused = true)]
async fn c7_stream_setup_hang_is_bounded_by_the_read_deadline_and_holds_no_read_permit() {
    let (backend, h, _) = setup(true, 5, 2).await;
    backend.hold("tip");
    let hs = h.clone();
    let start = Instant::now();
    let stream =
        tokio::spawn(
            async move { hs.stream_logs(LogFilter::default(), StreamParams::default()).await },
        );
    backend.wait_entered("tip", 2).await; // once by build(), once by the setup
    assert_eq!(h.available_read_permits(), 2);
    assert!(h.header(2).await.unwrap().is_some(), "reads go on while the setup hangs");
    assert!(matches!(stream.await.unwrap(), Err(ColdError::Timeout { op: "stream_logs" })));
    assert_eq!(start.elapsed(), READ);
    settle().await;
    assert_eq!(h.available_stream_permits(), 8, "the stream permit came back");
}

#[tokio::test(start_paused = true)]
async fn c7_stream_yields_in_order_equal_to_get_logs_then_ends() {
    for snapshot in [true, false] {
        let (_, h, _) = setup(snapshot, 20, 2).await;
        let want = h.get_logs(LogFilter::range(3, 18), usize::MAX).await.unwrap();
        assert!(!want.is_empty());
        let got: Vec<_> = h
            .stream_logs(LogFilter::range(3, 18), StreamParams::default())
            .await
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(got, want, "snapshot={snapshot}");
        // max_logs: exactly that many logs, then one TooManyLogs.
        let items: Vec<_> = h
            .stream_logs(LogFilter::range(3, 18), StreamParams { max_logs: 3 })
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(items.len(), 4);
        assert!(items[..3].iter().all(|r| r.is_ok()));
        assert!(matches!(items[3], Err(ColdError::TooManyLogs { limit: 3, fits_to: None })));
    }
}

#[tokio::test(start_paused = true)]
async fn c7_stream_deadline_ends_it_with_exactly_one_timeout() {
    let (_, h, _) = setup(true, 20, 2).await;
    let mut s = h.stream_logs(LogFilter::range(1, 20), StreamParams::default()).await.unwrap();
    assert!(s.next().await.unwrap().is_ok());
    tokio::time::sleep(STREAM).await;
    assert!(matches!(s.next().await, Some(Err(ColdError::Timeout { op: "stream_logs" }))));
    assert!(s.next().await.is_none(), "exactly one error, then the end");
}

#[tokio::test(start_paused = true)]
async fn c7_reorg_under_a_non_snapshot_stream_is_detected() {
    let backend = GatedBackend::new(false);
    backend.store().clone().append_blocks(chain(20), Deadline::none("setup")).await.unwrap();
    let h = ColdStorage::builder(backend.clone()).stream_capacity(1).build().await.unwrap();
    backend.hold("get_logs");
    let s = h.stream_logs(LogFilter::range(1, 20), StreamParams::default()).await.unwrap();
    backend.wait_entered("get_logs", 1).await;
    // Replace blocks 11..=20 with another fork.
    h.truncate_above(10).await.unwrap();
    let parent = h.header(10).await.unwrap().unwrap().hash();
    let fork = test_chain(11, 10, parent, 999);
    h.append_blocks(fork).await.unwrap();
    backend.release("get_logs");
    let rest: Vec<_> = s.collect().await;
    let errors: Vec<_> = rest.iter().filter(|r| r.is_err()).collect();
    assert_eq!(errors.len(), 1, "exactly one error: {errors:?}");
    assert!(matches!(rest.last(), Some(Err(ColdError::ReorgDetected { .. }))));
}

#[tokio::test(start_paused = true)]
async fn c7_a_slow_consumer_costs_bounded_memory() {
    let backend = GatedBackend::new(false);
    let shape = ChainShape { max_txs: 6, max_logs: 4, addresses: 2, topics: 2 };
    let blocks = test_chain_with(1, 60, B256::ZERO, 5, shape);
    backend.store().clone().append_blocks(blocks, Deadline::none("setup")).await.unwrap();
    let h = ColdStorage::builder(backend.clone()).stream_capacity(2).build().await.unwrap();
    let mut s = h.stream_logs(LogFilter::range(1, 60), StreamParams::default()).await.unwrap();
    assert!(s.next().await.unwrap().is_ok());
    settle().await;
    tokio::time::advance(Duration::from_secs(10)).await;
    settle().await;
    let blocks_read = backend.entered("get_logs");
    assert!(blocks_read <= 3, "the producer waits for the consumer, read {blocks_read} blocks");
    let total = 1 + s.map(|r| r.unwrap()).count().await;
    assert_eq!(total, h.get_logs(LogFilter::range(1, 60), usize::MAX).await.unwrap().len());
}

// ---------------------------------------------------------------- C8

#[tokio::test(start_paused = true)]
async fn c8_dispatch_answers_backpressure_at_once_when_the_queue_is_full() {
    let backend = GatedBackend::new(true);
    let blocks = chain(10);
    let h = ColdStorage::builder(backend.clone()).write_queue(2).build().await.unwrap();
    backend.hold("append_blocks");
    let first = h.dispatch_append_blocks(vec![blocks[0].clone()]).unwrap();
    backend.wait_entered("append_blocks", 1).await;
    let queued: Vec<_> =
        blocks[1..3].iter().map(|b| h.dispatch_append_blocks(vec![b.clone()]).unwrap()).collect();
    let start = Instant::now();
    let refused = h.dispatch_append_blocks(vec![blocks[3].clone()]);
    assert!(matches!(refused, Err(ColdError::Backpressure)));
    assert_eq!(start.elapsed(), Duration::ZERO);
    backend.release("append_blocks");
    first.await.unwrap();
    for q in queued {
        q.await.unwrap();
    }
    assert_eq!(h.durable_tip().unwrap().number, 3);
}

// ---------------------------------------------------------------- C9

#[tokio::test(start_paused = true)]
async fn c9_cancel_during_reader_backpressure_answers_everyone_at_once() {
    let (backend, h, _) = setup(true, 5, 1).await;
    backend.hold("block_transactions");
    let waiting: Vec<_> = (1..=4).map(|n| spawn_read(&h, n)).collect();
    backend.wait_entered("block_transactions", 1).await;
    settle().await;
    let start = Instant::now();
    h.cancel();
    for w in waiting {
        assert!(is_terminated(&w.await.unwrap()));
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(is_terminated(&h.header(1).await));
    assert!(is_terminated(&h.append_blocks(vec![]).await));
    assert!(matches!(h.dispatch_truncate_above(1), Err(ColdError::TaskTerminated)));
    assert!(matches!(
        h.stream_logs(LogFilter::default(), StreamParams::default()).await,
        Err(ColdError::TaskTerminated)
    ));
}

#[tokio::test(start_paused = true)]
async fn c9_cancel_during_a_write_drain_answers_at_once() {
    let (backend, h, blocks) = setup(false, 5, 2).await;
    backend.hold("block_transactions");
    let reads: Vec<_> = (1..=2).map(|n| spawn_read(&h, n)).collect();
    backend.wait_entered("block_transactions", 2).await;
    let hw = h.clone();
    let b = blocks[5].clone();
    let write = tokio::spawn(async move { hw.append_block(b).await });
    settle().await;
    let start = Instant::now();
    h.cancel();
    assert!(is_terminated(&write.await.unwrap()));
    for r in reads {
        assert!(is_terminated(&r.await.unwrap()));
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn c9_shutdown_finishes_with_open_streams_and_a_backend_call_hung_forever() {
    let backend = GatedBackend::new(true);
    backend.store().clone().append_blocks(chain(20), Deadline::none("setup")).await.unwrap();
    let h = ColdStorage::builder(backend.clone())
        .read_permits(2)
        .stream_capacity(1)
        .read_timeout(READ)
        .write_timeout(WRITE)
        .stream_timeout(STREAM)
        .build()
        .await
        .unwrap();
    // Streams whose consumers stall: each producer waits on a full channel.
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut s = h.stream_logs(LogFilter::range(1, 20), StreamParams::default()).await.unwrap();
        assert!(s.next().await.unwrap().is_ok());
        streams.push(s);
    }
    // A read and a write hung forever in the backend (they ignore deadlines).
    backend.hold("block_receipts");
    backend.hold("append_blocks");
    let hung = {
        let h = h.clone();
        tokio::spawn(async move { h.block_receipts(3).await })
    };
    let write = h.dispatch_append_blocks(chain(21)[20..].to_vec()).unwrap();
    backend.wait_entered("block_receipts", 1).await;
    backend.wait_entered("append_blocks", 1).await;
    settle().await;
    assert_eq!(h.available_stream_permits(), 5, "three producers are still running");
    let start = Instant::now();
    h.shutdown().await;
    // Everything stopped at once: no deadline had to pass.
    assert!(start.elapsed() < Duration::from_secs(1), "shutdown took {:?}", start.elapsed());
    assert!(is_terminated(&hung.await.unwrap()));
    assert!(is_terminated(&write.await));
    assert_eq!(backend.active("block_receipts"), 0);
    assert_eq!(backend.active("append_blocks"), 0);
    for mut s in streams {
        assert!(matches!(s.next().await, Some(Err(ColdError::TaskTerminated))));
        assert!(s.next().await.is_none());
    }
}

// ---------------------------------------------------------------- C10

#[tokio::test(start_paused = true)]
async fn c10_the_cache_never_serves_blocks_above_a_truncation() {
    let (_, h, blocks) = setup(true, 20, 4).await;
    for n in 10..=20u64 {
        h.header(n).await.unwrap().unwrap();
        h.header(HeaderSpec::Hash(blocks[n as usize - 1].hash())).await.unwrap().unwrap();
        h.block_receipts(n).await.unwrap().unwrap();
    }
    h.truncate_above(12).await.unwrap();
    for n in 13..=20u64 {
        assert!(h.header(n).await.unwrap().is_none(), "header {n} by number");
        assert!(h.header(HeaderSpec::Hash(blocks[n as usize - 1].hash())).await.unwrap().is_none());
        assert!(h.block_receipts(n).await.unwrap().is_none(), "receipts of {n}");
    }
    // A new fork at the same heights is served, not the cached old one.
    let parent = h.header(12).await.unwrap().unwrap().hash();
    let fork = test_chain(13, 3, parent, 77);
    h.append_blocks(fork.clone()).await.unwrap();
    for b in &fork {
        assert_eq!(h.header(b.number()).await.unwrap().unwrap().hash(), b.hash());
    }
}

#[tokio::test(start_paused = true)]
async fn c10_a_read_that_raced_a_truncation_does_not_fill_the_cache() {
    for by_number in [true, false] {
        let (backend, h, blocks) = setup(true, 20, 4).await;
        // A header read and a receipts read fetch block 15, then stall before
        // they return...
        backend.hold("header_done");
        backend.hold("block_receipts_done");
        let spec: HeaderSpec =
            if by_number { 15u64.into() } else { HeaderSpec::Hash(blocks[14].hash()) };
        let (hh, hr) = (h.clone(), h.clone());
        let header = tokio::spawn(async move { hh.header(spec).await });
        let receipts = tokio::spawn(async move { hr.block_receipts(15u64).await });
        backend.wait_entered("header_done", 1).await;
        backend.wait_entered("block_receipts_done", 1).await;
        // ...while a truncation removes it and returns.
        h.truncate_above(12).await.unwrap();
        backend.release("header_done");
        backend.release("block_receipts_done");
        // They may answer what they read before the truncation...
        assert!(header.await.unwrap().unwrap().is_some());
        assert!(receipts.await.unwrap().unwrap().is_some());
        // ...but must not put it in the cache.
        assert!(h.header(spec).await.unwrap().is_none(), "by_number={by_number}: stale header");
        assert!(h.block_receipts(15u64).await.unwrap().is_none(), "stale receipts");
    }
}

#[tokio::test(start_paused = true)]
async fn c10_drain_purges_the_cache_too() {
    let (_, h, _) = setup(true, 10, 4).await;
    for n in 1..=10u64 {
        h.header(n).await.unwrap();
        h.block_receipts(n).await.unwrap();
    }
    let drained = h.drain_above(7).await.unwrap();
    assert_eq!(drained.iter().map(|d| d.header.number).collect::<Vec<_>>(), [8, 9, 10]);
    for n in 8..=10u64 {
        assert!(h.header(n).await.unwrap().is_none());
        assert!(h.block_receipts(n).await.unwrap().is_none());
    }
}

// ---------------------------------------------------------------- C11

#[tokio::test(start_paused = true)]
async fn c11_read_your_writes_and_a_tip_watch_without_polling() {
    let (_, h, blocks) = setup(true, 5, 4).await;
    let mut watch = h.tip_watch();
    let hw = h.clone();
    let waiter = tokio::spawn(async move { hw.wait_for_block(8).await });
    settle().await;
    assert!(!waiter.is_finished());
    h.append_blocks(blocks[5..7].to_vec()).await.unwrap();
    // Read-your-writes: visible at once, through every path.
    assert_eq!(h.durable_tip().unwrap().number, 7);
    assert!(watch.has_changed().unwrap());
    assert_eq!(watch.borrow_and_update().unwrap().number, 7);
    assert_eq!(h.header(7).await.unwrap().unwrap().hash(), blocks[6].hash());
    let tx = blocks[6].transactions.first().map(|t| *t.inner().tx_hash());
    if let Some(tx) = tx {
        assert!(h.transaction(TxSpec::Hash(tx)).await.unwrap().is_some());
    }
    assert!(!waiter.is_finished());
    h.append_block(blocks[7].clone()).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap().number, 8);
    h.truncate_above(6).await.unwrap();
    assert_eq!(watch.borrow_and_update().unwrap().number, 6);
}

/// C11 at the moment the reply is sent: the write's future is polled with a
/// waker that reads the tip watch when it is woken, which the writer does
/// synchronously as it sends the result. A writer that answered before it
/// published the tip is caught in between, on any runtime.
#[tokio::test(start_paused = true)]
async fn c11_the_tip_is_published_before_the_write_is_answered() {
    use std::task::{Context, Poll, Wake, Waker};
    struct Observer {
        tip: tokio::sync::watch::Receiver<Option<alloy::eips::BlockNumHash>>,
        seen: parking_lot::Mutex<Vec<Option<u64>>>,
    }
    impl Wake for Observer {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.seen.lock().push(self.tip.borrow().map(|t| t.number));
        }
    }
    let (_, h, blocks) = setup(true, 5, 2).await;
    type Dispatch<'a> = Box<dyn Fn(&ColdStorage<GatedBackend>) -> coldchain::PendingWrite + 'a>;
    let writes: [(Dispatch<'_>, u64); 4] = [
        (Box::new(|h| h.dispatch_append_blocks(vec![blocks[5].clone()]).unwrap()), 6),
        (Box::new(|h| h.dispatch_append_blocks(blocks[6..8].to_vec()).unwrap()), 8),
        (Box::new(|h| h.dispatch_truncate_above(6).unwrap()), 6),
        (Box::new(|h| h.dispatch_drain_above(4).unwrap()), 4),
    ];
    for (dispatch, want) in writes {
        // Dispatched now: the writer has not run yet when it is first polled.
        let pending = dispatch(&h);
        let observer = Arc::new(Observer { tip: h.tip_watch(), seen: Default::default() });
        let waker = Waker::from(observer.clone());
        let mut cx = Context::from_waker(&waker);
        // Unconstrained: a spent task budget would wake the waker early.
        let mut fut = std::pin::pin!(tokio::task::unconstrained(pending.wait()));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        for _ in 0..1000 {
            if !observer.seen.lock().is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let seen = observer.seen.lock().clone();
        assert_eq!(seen.first(), Some(&Some(want)), "answered before the tip was published");
        let Poll::Ready(r) = fut.as_mut().poll(&mut cx) else { panic!("woken but not ready") };
        r.unwrap();
    }
}

// ---------------------------------------------------------------- C12

#[tokio::test(start_paused = true)]
async fn c12_a_panic_in_backend_work_is_that_callers_error_only() {
    let (backend, h, blocks) = setup(true, 5, 1).await;
    backend.panic_on("transaction");
    let r = h.transaction(TxSpec::BlockNumberIndex(1, 0)).await;
    assert!(matches!(r, Err(ColdError::Panicked { op: "transaction", .. })), "{r:?}");
    settle().await;
    assert_eq!(h.available_read_permits(), 1, "the permit returned");
    assert!(h.header(1).await.unwrap().is_some(), "the handle keeps serving");
    backend.stop_panicking("transaction");
    assert!(h.transaction(TxSpec::BlockNumberIndex(1, 0)).await.is_ok());
    // A panicking write does not kill the writer.
    backend.panic_on("append_blocks");
    let r = h.append_block(blocks[5].clone()).await;
    assert!(matches!(r, Err(ColdError::Panicked { op: "append_blocks", .. })), "{r:?}");
    backend.stop_panicking("append_blocks");
    h.append_block(blocks[5].clone()).await.unwrap();
    assert_eq!(h.durable_tip().unwrap().number, 6);
}

#[tokio::test(start_paused = true)]
async fn handle_without_cache_serves_the_same() {
    let backend = GatedBackend::new(true);
    let blocks = chain(10);
    let h = ColdStorage::builder(backend)
        .cache(CacheBudget { headers: 0, block_receipts: 0 })
        .build()
        .await
        .unwrap();
    h.append_blocks(blocks[..10].to_vec()).await.unwrap();
    for b in &blocks[..10] {
        assert_eq!(h.header(b.hash()).await.unwrap().unwrap().number, b.number());
        assert_eq!(h.block_receipts(b.number()).await.unwrap().unwrap().len(), b.receipts.len());
    }
}

#[tokio::test(start_paused = true)]
async fn c9_dropping_the_last_handle_stops_its_tasks() {
    let (backend, h, _) = setup(true, 5, 2).await;
    let mut tip = h.tip_watch();
    let other = h.clone();
    drop(h);
    settle().await;
    assert!(!other.is_shut_down(), "a clone keeps the handle alive");
    drop(other);
    // The writer ends and releases the handle's state: the watch closes.
    tokio::time::timeout(Duration::from_secs(1), tip.changed())
        .await
        .expect("the writer task did not end")
        .expect_err("the tip watch should close");
    drop(backend);
}

// ---------------------------------------------------------------- C12: streams

#[tokio::test(start_paused = true)]
async fn c12_stream_producer_panic_ends_the_stream_with_one_error() {
    for snapshot in [true, false] {
        let (backend, h, _) = setup(snapshot, 10, 2).await;
        backend.panic_on("produce_logs");
        let items: Vec<_> = h
            .stream_logs(LogFilter::range(1, 10), StreamParams::default())
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(items.len(), 1, "snapshot={snapshot}: exactly one item, an error: {items:?}");
        assert!(
            matches!(items[0], Err(ColdError::Panicked { op: "stream_logs", .. })),
            "snapshot={snapshot}: {items:?}"
        );
        settle().await;
        assert_eq!(h.available_stream_permits(), 8, "the stream permit came back");
        backend.stop_panicking("produce_logs");
        let s = h.stream_logs(LogFilter::range(1, 10), StreamParams::default()).await.unwrap();
        assert!(s.collect::<Vec<_>>().await.iter().all(|r| r.is_ok()), "the handle keeps serving");
    }
}

// ---------------------------------------------------------------- C9: holes

#[tokio::test(start_paused = true)]
async fn c9_after_cancel_cached_reads_answer_terminated_too() {
    let (_, h, _) = setup(true, 5, 2).await;
    let hash = h.header(3).await.unwrap().unwrap().hash();
    h.header(hash).await.unwrap().unwrap();
    h.block_receipts(3).await.unwrap().unwrap();
    h.cancel();
    assert!(is_terminated(&h.header(3).await), "cached header by number");
    assert!(is_terminated(&h.header(hash).await), "cached header by hash");
    assert!(is_terminated(&h.block_receipts(3).await), "cached receipts");
}

#[tokio::test(start_paused = true)]
async fn c9_cancel_tells_running_backend_work_to_stop() {
    let (backend, h, blocks) = setup(true, 5, 2).await;
    for op in ["transaction", "append_blocks", "produce_logs"] {
        backend.hold(op);
    }
    let hr = h.clone();
    let _read = tokio::spawn(async move { hr.transaction(TxSpec::BlockNumberIndex(1, 0)).await });
    let _write = h.dispatch_append_blocks(vec![blocks[5].clone()]).unwrap();
    let stream = h.stream_logs(LogFilter::range(1, 5), StreamParams::default()).await.unwrap();
    let mut deadlines = Vec::new();
    for op in ["transaction", "append_blocks", "produce_logs"] {
        backend.wait_entered(op, 1).await;
        let d = backend.last_deadline(op).unwrap();
        assert!(d.check().is_ok(), "{op} is not told to stop before cancel");
        deadlines.push(d);
    }
    let start = Instant::now();
    h.cancel();
    for d in &deadlines {
        // Blocking backend work polls `check` between steps: it must see the stop now.
        assert!(d.check().is_err(), "{} was not told to stop at cancel", d.op());
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    drop(stream);
}

// ---------------------------------------------------------------- C13

#[tokio::test(start_paused = true)]
async fn c13_dispatched_writes_that_waited_past_their_deadline_are_applied() {
    let (backend, h, blocks) = setup(true, 10, 2).await;
    backend.hold("append_blocks");
    let first = h.dispatch_append_blocks(vec![blocks[10].clone()]).unwrap();
    backend.wait_entered("append_blocks", 1).await;
    // Fire and forget, as a node feeds its cold store.
    for b in &blocks[11..14] {
        drop(h.dispatch_append_blocks(vec![b.clone()]).unwrap());
    }
    drop(first);
    // The writer is stalled well past every queued write's deadline.
    tokio::time::sleep(WRITE * 3).await;
    backend.release("append_blocks");
    let reached = tokio::time::timeout(WRITE, h.wait_for_block(14)).await;
    assert!(reached.is_ok(), "queued writes were lost: tip {:?}", h.durable_tip());
    assert_eq!(h.tip().await.unwrap().unwrap().hash, blocks[13].hash());
    // Later appends are not wedged behind a lost block.
    h.append_block(blocks[14].clone()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn c13_a_dispatched_write_that_fails_is_reported_by_the_next_write_and_the_handle() {
    let (_, h, blocks) = setup(true, 10, 2).await;
    assert!(h.last_unobserved_write_failure().is_none());
    // Not contiguous, and nobody awaits it.
    drop(h.dispatch_append_blocks(blocks[12..14].to_vec()).unwrap());
    settle().await;
    let failure = h.last_unobserved_write_failure().expect("the failure is recorded");
    assert_eq!(failure.op, "append_blocks");
    assert_eq!(failure.target, WriteTarget::Blocks { first: 13, last: 14 });
    assert!(failure.error.contains("expected block 11"), "{}", failure.error);
    // The next write is refused with an error naming the failed one...
    let r = h.append_block(blocks[10].clone()).await;
    match r {
        Err(ColdError::EarlierWriteFailed { op: "append_blocks", target, .. }) => {
            assert_eq!(target, "blocks 13..=14");
        }
        other => panic!("expected EarlierWriteFailed, got {other:?}"),
    }
    assert_eq!(h.durable_tip().unwrap().number, 10, "the refused write was not applied");
    // ...once: the handle is not wedged, and the record stays for /health.
    h.append_block(blocks[10].clone()).await.unwrap();
    assert_eq!(h.durable_tip().unwrap().number, 11);
    assert_eq!(h.last_unobserved_write_failure(), Some(failure));
    // A failure its waiter sees is not reported again.
    assert!(h.append_block(blocks[15].clone()).await.is_err());
    h.append_block(blocks[11].clone()).await.unwrap();
}

// ---------------------------------------------------------------- C14

#[tokio::test(start_paused = true)]
async fn c14_a_stale_tip_observation_never_moves_the_tip_back_nor_purges_the_cache() {
    let backend = GatedBackend::new(true);
    backend.enable_tip_updates();
    let blocks = chain(30);
    let mut store = backend.store().clone();
    store.append_blocks(blocks[..10].to_vec(), Deadline::none("setup")).await.unwrap();
    let h = ColdStorage::builder(backend.clone())
        .read_permits(1)
        .read_timeout(READ)
        .write_timeout(WRITE)
        .build()
        .await
        .unwrap();
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut watch = h.tip_watch();
    let seen_by_observer = seen.clone();
    tokio::spawn(async move {
        while watch.changed().await.is_ok() {
            let tip = watch.borrow_and_update().map(|t| t.number);
            seen_by_observer.lock().push(tip);
        }
    });
    h.header(5).await.unwrap().unwrap(); // cached

    // Another server appends block 11; its notification arrives while the
    // only read permit is busy, so the follower waits for it.
    store.append_blocks(vec![blocks[10].clone()], Deadline::none("other")).await.unwrap();
    backend.hold("block_transactions");
    let busy = spawn_read(&h, 1);
    backend.wait_entered("block_transactions", 1).await;
    backend.notify_tip(Some(blocks[10].num_hash()));
    settle().await;
    // Meanwhile this server's writer appends block 12 and publishes it.
    h.append_block(blocks[11].clone()).await.unwrap();
    assert_eq!(h.durable_tip().unwrap().number, 12);
    backend.release("block_transactions");
    busy.await.unwrap().unwrap();
    settle().await;
    assert_eq!(h.durable_tip().unwrap().number, 12, "a stale observation moved the tip back");

    // This server's own earlier write is notified late.
    h.append_block(blocks[12].clone()).await.unwrap();
    backend.notify_tip(Some(blocks[11].num_hash()));
    settle().await;
    assert_eq!(h.durable_tip().unwrap().number, 13, "a late notification moved the tip back");
    let headers = backend.entered("header");
    assert!(h.header(5).await.unwrap().is_some());
    assert_eq!(backend.entered("header"), headers, "the cache was purged without a truncation");
    let seen = seen.lock().clone();
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "the tip went backwards: {seen:?}");

    // A real truncation by another server is followed, and purges the cache.
    store.truncate_above(8, Deadline::none("other")).await.unwrap();
    backend.notify_tip(Some(blocks[7].num_hash()));
    let mut watch = h.tip_watch();
    tokio::time::timeout(READ, watch.wait_for(|t| t.is_some_and(|t| t.number == 8)))
        .await
        .expect("a real truncation is followed")
        .unwrap();
    assert!(h.header(10).await.unwrap().is_none(), "the cache was purged");
}

/// The follower's side of C14 when another server extends the chain: the
/// tip read carries the read deadline from now (not one already passed), the
/// extension is published, and it purges nothing (only a truncation may).
#[tokio::test(start_paused = true)]
async fn c14_an_extension_by_another_server_is_published_and_keeps_the_cache() {
    let backend = GatedBackend::new(true);
    backend.enable_tip_updates();
    let blocks = chain(12);
    let mut store = backend.store().clone();
    store.append_blocks(blocks[..10].to_vec(), Deadline::none("setup")).await.unwrap();
    let h = ColdStorage::builder(backend.clone()).read_timeout(READ).build().await.unwrap();
    h.header(5).await.unwrap().unwrap(); // cached

    tokio::time::advance(Duration::from_secs(1)).await;
    let now = tokio::time::Instant::now();
    store.append_blocks(vec![blocks[10].clone()], Deadline::none("other")).await.unwrap();
    backend.notify_tip(Some(blocks[10].num_hash()));
    let mut watch = h.tip_watch();
    tokio::time::timeout(READ, watch.wait_for(|t| t.is_some_and(|t| t.number == 11)))
        .await
        .expect("another server's block is followed")
        .unwrap();
    let d = backend.last_deadline("tip").expect("the follower read the tip");
    assert!(d.instant() > now, "the follower's tip read had a deadline in the past");

    let headers = backend.entered("header");
    assert!(h.header(5).await.unwrap().is_some());
    assert_eq!(backend.entered("header"), headers, "an extension purged the cache");
}

/// C10 through the follower: another server replaces the newest blocks with
/// a fork (truncate, then append other blocks at the same heights, one
/// notification for both). The fork's tip is at or below the old one, so
/// only its hash tells the truncation; the cached old blocks are purged and
/// the fork is served.
#[tokio::test(start_paused = true)]
async fn c10_a_fork_by_another_server_purges_the_cache() {
    let backend = GatedBackend::new(true);
    backend.enable_tip_updates();
    let blocks = chain(10);
    let mut store = backend.store().clone();
    store.append_blocks(blocks.clone(), Deadline::none("setup")).await.unwrap();
    let h = ColdStorage::builder(backend.clone()).read_timeout(READ).build().await.unwrap();
    for n in 8..=10u64 {
        h.header(n).await.unwrap().unwrap(); // cached
    }

    store.truncate_above(7, Deadline::none("other")).await.unwrap();
    let fork = test_chain(8, 2, blocks[6].hash(), 77);
    store.append_blocks(fork.clone(), Deadline::none("other")).await.unwrap();
    let fork_tip = fork[1].num_hash();
    backend.notify_tip(Some(fork_tip));
    let mut watch = h.tip_watch();
    tokio::time::timeout(READ, watch.wait_for(|t| *t == Some(fork_tip)))
        .await
        .expect("the fork is followed")
        .unwrap();
    for b in &fork {
        assert_eq!(
            h.header(b.number()).await.unwrap().unwrap().hash(),
            b.hash(),
            "block {} came from the cache of the old chain",
            b.number()
        );
    }
}
