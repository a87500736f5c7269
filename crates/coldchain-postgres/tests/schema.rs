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

/// A database written by schema version 1 (every topic in 32 bytes) is
/// migrated to version 2 (topics in their stored form) on open, and reads
/// and topic filters then answer as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_topics_are_migrated_to_their_stored_form() {
    use coldchain::{
        ColdRead, ColdWrite, HeaderSpec, LogFilter, testing::fixtures::mainnet_jsonrpc_blocks,
    };
    if !server_available("version_1_topics_are_migrated_to_their_stored_form").await {
        return;
    }
    let db = TestDb::create().await;
    let block = mainnet_jsonrpc_blocks().into_iter().next().unwrap();
    let mut store = db.open().await;
    store.append_blocks(vec![block.clone()], common::dl()).await.unwrap();
    let want = store.block_receipts(HeaderSpec::Number(block.number()), common::dl()).await;
    let want = want.unwrap().unwrap();
    drop(store);

    // Back to what version 1 wrote: every topic padded to 32 bytes.
    let client = db.client().await;
    let short = short_topic_rows(&client).await;
    assert!(short > 0, "the fixture block has Transfer logs with address topics");
    let mut pad = String::new();
    for i in 0..4 {
        pad += &format!(
            "UPDATE coldchain.logs SET topic{i} = '\\x000000000000000000000000'::bytea || topic{i} \
             WHERE length(topic{i}) = 20;"
        );
    }
    client.batch_execute(&pad).await.unwrap();
    client.execute("DELETE FROM coldchain.schema_version WHERE version >= 2", &[]).await.unwrap();
    assert_eq!(short_topic_rows(&client).await, 0);

    let store = db.open().await;
    assert_eq!(
        short_topic_rows(&client).await,
        short,
        "the migration stores address topics in 20 bytes again"
    );
    let got = store.block_receipts(HeaderSpec::Number(block.number()), common::dl()).await;
    assert_eq!(got.unwrap().unwrap(), want);
    // A filter on an address topic finds exactly the logs that carry it.
    let logs: Vec<_> = want.iter().flat_map(|r| r.rpc_logs()).collect();
    let topic = logs
        .iter()
        .find_map(|l| l.inner.topics().get(2).copied().filter(|t| t[..12] == [0; 12]))
        .unwrap();
    let expected: Vec<_> =
        logs.iter().filter(|l| l.inner.topics().get(2) == Some(&topic)).cloned().collect();
    let f = LogFilter::range(block.number(), block.number()).topic(2, vec![topic]);
    assert_eq!(store.get_logs(&f, usize::MAX, common::dl()).await.unwrap(), expected);
}

/// Log rows whose topic1 or topic2 is stored in 20 bytes.
async fn short_topic_rows(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM coldchain.logs WHERE length(topic1) = 20 OR length(topic2) = 20",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}
