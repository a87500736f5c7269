//! Deadlines: a statement that outlives its deadline (blocked on a lock held
//! by another connection) returns `Timeout` naming the operation, its
//! transaction is rolled back, and the backend keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use alloy::primitives::B256;
use coldchain::{
    ColdError, ColdRead, ColdStorage, ColdWrite, Deadline, HeaderSpec, LogFilter, StreamParams,
    backend::ColdBackend, testing::test_chain,
};
use common::{TestDb, dl, server_available};
use std::time::{Duration, Instant};

fn short(op: &'static str) -> Deadline {
    Deadline::after(op, Duration::from_millis(300))
}

/// Sessions of the test database that are inside a transaction.
async fn open_transactions(db: &TestDb, client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
             AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_blocked_on_lock_times_out_and_rolls_back() {
    if !server_available("write_blocked_on_lock_times_out_and_rolls_back").await {
        return;
    }
    let db = TestDb::create().await;
    let mut store = db.open().await;
    let chain = test_chain(0, 6, B256::ZERO, 11);
    store.append_blocks(chain[..3].to_vec(), dl()).await.unwrap();

    // Another connection holds the writers' lock.
    let locker = db.client().await;
    locker.batch_execute("BEGIN; SELECT * FROM coldchain.meta FOR UPDATE").await.unwrap();

    let started = Instant::now();
    let err = store.append_blocks(chain[3..].to_vec(), short("append_blocks")).await.unwrap_err();
    assert!(matches!(err, ColdError::Timeout { op: "append_blocks" }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let err = store.truncate_above(1, short("truncate_above")).await.unwrap_err();
    assert!(matches!(err, ColdError::Timeout { op: "truncate_above" }), "{err:?}");
    let err = store.drain_above(1, short("drain_above")).await.unwrap_err();
    assert!(matches!(err, ColdError::Timeout { op: "drain_above" }), "{err:?}");

    // Reads are not blocked by a row lock (MVCC).
    assert_eq!(store.tip(short("tip")).await.unwrap().unwrap().number, 2);
    locker.batch_execute("ROLLBACK").await.unwrap();

    // Nothing of the timed-out writes is there, no transaction is left open,
    // and the backend serves again.
    assert_eq!(store.tip(dl()).await.unwrap().unwrap().number, 2);
    assert_eq!(store.header(HeaderSpec::Number(3), dl()).await.unwrap(), None);
    let admin = db.client().await;
    assert_eq!(open_transactions(&db, &admin).await, 0);
    store.append_blocks(chain[3..].to_vec(), dl()).await.unwrap();
    assert_eq!(store.tip(dl()).await.unwrap().unwrap().number, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_blocked_on_lock_times_out() {
    if !server_available("read_blocked_on_lock_times_out").await {
        return;
    }
    let db = TestDb::create().await;
    let mut store = db.open().await;
    let chain = test_chain(0, 4, B256::ZERO, 12);
    store.append_blocks(chain.clone(), dl()).await.unwrap();

    let locker = db.client().await;
    locker
        .batch_execute(
            "BEGIN; LOCK TABLE coldchain.blocks, coldchain.logs IN ACCESS EXCLUSIVE MODE",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let err = store.header(HeaderSpec::Number(1), short("header")).await.unwrap_err();
    assert!(matches!(err, ColdError::Timeout { op: "header" }), "{err:?}");
    let err = store.get_logs(&LogFilter::range(0, 3), 100, short("get_logs")).await.unwrap_err();
    assert!(matches!(err, ColdError::Timeout { op: "get_logs" }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    // A stream ends with exactly one Timeout.
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let anchor = chain[3].num_hash();
    store
        .produce_logs(
            LogFilter::default(),
            0..=3,
            anchor,
            StreamParams::default(),
            tx,
            short("stream_logs"),
        )
        .await;
    let items: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(matches!(items[0], Err(ColdError::Timeout { op: "stream_logs" })), "{items:?}");

    // Through the handle: the read deadline, counted from the call.
    let handle =
        ColdStorage::builder(store.clone()).read_timeout(Duration::from_millis(300)).build().await;
    // Building reads the tip (meta is not locked), so it succeeds.
    let handle = handle.unwrap();
    let err = handle.block_receipts(2u64).await.unwrap_err();
    assert!(matches!(err, ColdError::Timeout { op: "block_receipts" }), "{err:?}");

    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(handle.header(1u64).await.unwrap().unwrap(), chain[1].header);
    let admin = db.client().await;
    assert_eq!(open_transactions(&db, &admin).await, 0);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_deadline_is_timeout_before_any_work() {
    if !server_available("expired_deadline_is_timeout_before_any_work").await {
        return;
    }
    let db = TestDb::create().await;
    let mut store = db.open().await;
    let gone = Deadline::after("append_blocks", Duration::ZERO);
    let err = store.append_blocks(test_chain(0, 2, B256::ZERO, 1), gone).await.unwrap_err();
    assert!(matches!(err, ColdError::Timeout { op: "append_blocks" }), "{err:?}");
    let stopped = Deadline::none("tip");
    stopped.stop();
    assert!(matches!(store.tip(stopped).await, Err(ColdError::Timeout { op: "tip" })));
    assert_eq!(store.tip(dl()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c5_a_write_does_not_wait_for_a_connection_behind_reads() {
    if !server_available("c5_a_write_does_not_wait_for_a_connection_behind_reads").await {
        return;
    }
    let db = TestDb::create().await;
    let options = coldchain_postgres::PgOptions {
        max_connections: 2,
        stream_batch: 1,
        ..coldchain_postgres::PgOptions::default()
    };
    let mut store = db.open_with(options).await;
    let chain = test_chain(0, 12, B256::ZERO, 13);
    store.append_blocks(chain[..10].to_vec(), dl()).await.unwrap();
    let logs = store.get_logs(&LogFilter::range(0, 9), usize::MAX, dl()).await.unwrap().len();
    assert!(logs >= 3, "the streams need logs to stall on: {logs}");
    store.settle().await;

    // Every pooled read connection is held by a stream whose consumer stalls.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let reader = store.clone();
        let anchor = chain[9].num_hash();
        let producer = tokio::spawn(async move {
            let d = Deadline::after("stream_logs", Duration::from_secs(20));
            reader
                .produce_logs(LogFilter::default(), 0..=9, anchor, StreamParams::default(), tx, d)
                .await;
        });
        assert!(rx.recv().await.unwrap().is_ok(), "the stream started");
        stalled.push((producer, rx));
    }

    // A write still gets a connection at once.
    let started = Instant::now();
    let d = Deadline::after("append_blocks", Duration::from_secs(5));
    store.append_blocks(chain[10..].to_vec(), d).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let d = Deadline::after("truncate_above", Duration::from_secs(5));
    store.truncate_above(10, d).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    for (producer, rx) in stalled {
        drop(rx);
        producer.abort();
    }
}
