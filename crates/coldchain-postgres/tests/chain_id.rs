//! The chain id column: added on open to a database that lacks it (one
//! written before chain ids were recorded) without a schema version, kept
//! across reopening, and one id wins when two servers record different ids
//! at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use coldchain::{ColdError, ColdRead, ColdWrite, Deadline};
use coldchain_postgres::SCHEMA_VERSION;
use common::{TestDb, server_available};

fn dl() -> Deadline {
    Deadline::none("test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_id_column_is_added_kept_and_set_once() {
    if !server_available("chain_id_column_is_added_kept_and_set_once").await {
        return;
    }
    let db = TestDb::create().await;
    drop(db.open().await);
    // As written before chain ids were recorded: no column.
    let client = db.client().await;
    client.batch_execute("ALTER TABLE coldchain.meta DROP COLUMN chain_id").await.unwrap();

    let mut a = db.open().await;
    assert_eq!(a.chain_id(dl()).await.unwrap(), None);
    let version: i32 = client
        .query_one("SELECT max(version) FROM coldchain.schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, SCHEMA_VERSION, "no schema version for the column");

    // Two servers record different ids at once: exactly one wins.
    let mut b = db.open().await;
    let (ra, rb) = tokio::join!(a.set_chain_id(1, dl()), b.set_chain_id(5, dl()));
    let stored = a.chain_id(dl()).await.unwrap().unwrap();
    match (ra, rb) {
        (Ok(()), Err(ColdError::ChainIdMismatch { stored: 1, given: 5 })) => assert_eq!(stored, 1),
        (Err(ColdError::ChainIdMismatch { stored: 5, given: 1 }), Ok(())) => assert_eq!(stored, 5),
        other => panic!("one of two different ids must win: {other:?}"),
    }
    drop((a, b));
    let mut c = db.open().await;
    assert_eq!(c.chain_id(dl()).await.unwrap(), Some(stored));
    c.set_chain_id(stored, dl()).await.unwrap();
}
