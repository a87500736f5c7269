//! The backend conformance suite (streams included) against PostgreSQL,
//! directly and through the `ColdStorage` handle; every case gets a fresh
//! database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use coldchain::testing::{self, ThroughHandle};
use common::{TestDb, server_available};
use std::sync::Mutex;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_pg() {
    if !server_available("conformance_pg").await {
        return;
    }
    let dbs = Mutex::new(Vec::new());
    testing::conformance(|| async {
        let db = TestDb::create().await;
        let backend = db.open().await;
        dbs.lock().unwrap().push(db);
        backend
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_pg_through_handle() {
    if !server_available("conformance_pg_through_handle").await {
        return;
    }
    let dbs = Mutex::new(Vec::new());
    testing::conformance(|| async {
        let db = TestDb::create().await;
        let backend = ThroughHandle::new(db.open().await).await;
        dbs.lock().unwrap().push(db);
        backend
    })
    .await;
}
