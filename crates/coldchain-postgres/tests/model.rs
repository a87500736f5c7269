//! The model-based property test against PostgreSQL, directly and through
//! the handle. One database per test; each case starts from an empty store
//! (the tables are emptied between cases). `PROPTEST_CASES` overrides the
//! number of cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use coldchain::testing::{ThroughHandle, run_model_test};
use coldchain_postgres::PostgresBackend;
use common::{TestDb, server_available};

/// A runtime of its own for the sync factories: they run inside the test's
/// runtime, which is not driven while they block. It lives for the whole
/// process, so handles built on it keep their tasks running.
fn helper() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    })
}

/// Runs `fut` on the helper runtime from a thread of its own.
fn on_helper<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || helper().block_on(fut)).join().unwrap()
}

/// Empties the store and opens a backend on it.
fn fresh(db: &TestDb) -> PostgresBackend {
    let url = db.url.clone();
    on_helper(fresh_async(url))
}

async fn fresh_async(url: String) -> PostgresBackend {
    let backend =
        PostgresBackend::open(&url, coldchain_postgres::PgOptions::default()).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    client
        .batch_execute(
            "TRUNCATE coldchain.blocks, coldchain.txs, coldchain.logs;
             UPDATE coldchain.meta SET tip_number = NULL, tip_hash = NULL;",
        )
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    backend
}

fn available(test: &str) -> bool {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(server_available(test))
}

#[test]
fn model_pg() {
    if !available("model_pg") {
        return;
    }
    let db = TestDb::create_blocking();
    run_model_test(|| fresh(&db), 96);
}

#[test]
fn model_pg_through_handle() {
    if !available("model_pg_through_handle") {
        return;
    }
    let db = TestDb::create_blocking();
    run_model_test(
        || {
            let url = db.url.clone();
            on_helper(async move { ThroughHandle::new(fresh_async(url).await).await })
        },
        24,
    );
}
