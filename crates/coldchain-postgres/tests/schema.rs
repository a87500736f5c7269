//! Schema migrations: applied once, idempotent on reopen, and a database
//! written by a newer coldchain is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use coldchain_postgres::{PgError, PgOptions, PostgresBackend, SCHEMA_VERSION};
use common::{TestDb, server_available};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_versioned_and_newer_schemas_refused() {
    if !server_available("migrations_are_versioned_and_newer_schemas_refused").await {
        return;
    }
    let db = TestDb::create().await;
    // Two servers opening a fresh database at once apply the schema once.
    let (a, b) = tokio::join!(
        PostgresBackend::open(&db.url, PgOptions::default()),
        PostgresBackend::open(&db.url, PgOptions::default())
    );
    a.unwrap();
    b.unwrap();
    let client = db.client().await;
    let versions: Vec<i32> = client
        .query("SELECT version FROM coldchain.schema_version ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    db.open().await;

    client
        .execute(
            "INSERT INTO coldchain.schema_version (version, by_version) VALUES ($1, 'future')",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let err = PostgresBackend::open(&db.url, PgOptions::default()).await.unwrap_err();
    assert!(
        matches!(err, PgError::NewerSchema { found, supported } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer coldchain"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_a_clear_error() {
    if !server_available("unreachable_server_is_a_clear_error").await {
        return;
    }
    let options =
        PgOptions { connect_timeout: std::time::Duration::from_secs(2), ..PgOptions::default() };
    let err =
        PostgresBackend::open("postgres://nobody@127.0.0.1:1/none", options).await.unwrap_err();
    assert!(matches!(err, PgError::Db(_) | PgError::Timeout(_)), "{err:?}");
    let err = PostgresBackend::open("not a url", PgOptions::default()).await.unwrap_err();
    assert!(matches!(err, PgError::Url(_)), "{err:?}");
}
