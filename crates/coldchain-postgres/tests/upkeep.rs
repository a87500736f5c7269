//! Background upkeep: appends leave their topic entries in the GIN index's
//! pending list and request a merge; once the backend has settled, nothing
//! is pending, so queries never scan the list. A second backend opened on
//! the same database settles too (its open requests a merge of its own).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use coldchain::{ColdRead, LogFilter};
use coldchain_w1::{W1, W1Params};
use common::{TestDb, append_w1, dl, server_available};

/// Entries in the pending list of `logs_topics` (`pgstattuple`).
async fn pending(db: &TestDb) -> i64 {
    let client = db.client().await;
    client.batch_execute("CREATE EXTENSION IF NOT EXISTS pgstattuple").await.unwrap();
    client
        .query_one("SELECT pending_tuples FROM pgstatginindex('coldchain.logs_topics')", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_leave_nothing_pending_once_settled() {
    if !server_available("appends_leave_nothing_pending_once_settled").await {
        return;
    }
    let db = TestDb::create().await;
    let mut store = db.open().await;
    let params = W1Params { blocks: 30, ..W1Params::default() };
    let w1 = W1::new(params.clone());
    let parent =
        append_w1(&mut store, &w1, params.start, params.blocks, 10, alloy::primitives::B256::ZERO)
            .await;
    store.settle().await;
    assert_eq!(pending(&db).await, 0, "the appends' topic entries are still pending");

    // The merged index answers a topic query like the rows do.
    let end = params.start + params.blocks - 1;
    let account = w1.q3_topic2();
    let filter = LogFilter::range(params.start, end).topic(2, vec![account]);
    let got = store.get_logs(&filter, usize::MAX, dl()).await.unwrap();
    let rows: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM coldchain.logs WHERE topic2 = $1",
            &[&coldchain::codec::compact_topic(&account).to_vec()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(rows > 0, "W1's Q3 account has logs");
    assert_eq!(got.len() as i64, rows);

    // A second server on the database opens and settles.
    let other = db.open().await;
    other.settle().await;
    drop(other);

    // One more append, then the first backend settles again.
    append_w1(&mut store, &w1, params.start + params.blocks, 5, 5, parent).await;
    store.settle().await;
    assert_eq!(pending(&db).await, 0);
}
