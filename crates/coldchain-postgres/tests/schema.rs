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
    // Version 1 had no `extras` either (version 3 adds it back, derived from
    // the header: this block has no uncles and no withdrawals).
    client.batch_execute("ALTER TABLE coldchain.blocks DROP COLUMN extras").await.unwrap();
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

/// A database of schema version 2 (no `blocks.extras`) holding `headers`.
async fn version_2_database(headers: &[alloy::consensus::Header]) -> common::TestDb {
    use alloy::primitives::Sealable;
    let db = common::TestDb::create().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE SCHEMA coldchain;
             CREATE TABLE coldchain.schema_version (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now(),
                 by_version text NOT NULL
             );",
        )
        .await
        .unwrap();
    for (version, sql) in &coldchain_postgres::schema::MIGRATIONS[..2] {
        client.batch_execute(sql).await.unwrap();
        client
            .execute(
                "INSERT INTO coldchain.schema_version (version, by_version) VALUES ($1, 'old')",
                &[version],
            )
            .await
            .unwrap();
    }
    for header in headers {
        let sealed = header.clone().seal_slow();
        let value = coldchain::codec::encode_header(&sealed).unwrap();
        client
            .execute(
                "INSERT INTO coldchain.blocks (number, timestamp, hash, header) \
                 VALUES ($1, $2, $3, $4)",
                &[&(header.number as i64), &0i64, &sealed.hash().as_slice(), &value],
            )
            .await
            .unwrap();
    }
    db
}

fn old_headers() -> Vec<alloy::consensus::Header> {
    use alloy::consensus::Header;
    // Pre-Shanghai without uncles, then Shanghai with no withdrawals.
    let first = Header { number: 0, ..Default::default() };
    let second = Header {
        number: 1,
        parent_hash: first.hash_slow(),
        base_fee_per_gas: Some(7),
        withdrawals_root: Some(alloy::consensus::EMPTY_ROOT_HASH),
        ..Default::default()
    };
    vec![first, second]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_2_without_ommers_or_withdrawals_migrates() {
    if !server_available("version_2_without_ommers_or_withdrawals_migrates").await {
        return;
    }
    use coldchain::{BlockExtras, ColdRead, Deadline, HeaderSpec};
    let headers = old_headers();
    let db = version_2_database(&headers).await;
    let store = PostgresBackend::open(&db.url, PgOptions::default()).await.unwrap();
    let d = || Deadline::after("test", std::time::Duration::from_secs(10));
    let none = store.block_extras(HeaderSpec::Number(0), d()).await.unwrap();
    assert_eq!(none, Some(BlockExtras::none()));
    let empty = store.block_extras(HeaderSpec::Number(1), d()).await.unwrap();
    assert_eq!(empty, Some(BlockExtras::withdrawals(vec![])));
    let nullable: String = db
        .client()
        .await
        .query_one(
            "SELECT is_nullable FROM information_schema.columns \
             WHERE table_schema = 'coldchain' AND table_name = 'blocks' AND column_name = 'extras'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(nullable, "NO");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_2_with_lost_uncles_or_withdrawals_is_refused() {
    if !server_available("version_2_with_lost_uncles_or_withdrawals_is_refused").await {
        return;
    }
    let mut headers = old_headers();
    // Block 2 had withdrawals, block 3 an uncle: both were dropped.
    let parent = headers[1].hash_slow();
    headers.push(alloy::consensus::Header {
        number: 2,
        parent_hash: parent,
        base_fee_per_gas: Some(7),
        withdrawals_root: Some(alloy::primitives::B256::repeat_byte(1)),
        ..Default::default()
    });
    headers.push(alloy::consensus::Header {
        number: 3,
        ommers_hash: alloy::primitives::B256::repeat_byte(2),
        ..Default::default()
    });
    let db = version_2_database(&headers).await;
    let err = PostgresBackend::open(&db.url, PgOptions::default()).await.unwrap_err();
    assert!(matches!(err, PgError::LostBlockData { found: 2, blocks: 2, first: 2 }), "{err:?}");
    assert!(err.to_string().contains("re-import"), "{err}");
    // Nothing changed: still version 2, no extras column.
    let client = db.client().await;
    let row = client.query_one("SELECT max(version) FROM coldchain.schema_version", &[]);
    assert_eq!(row.await.unwrap().get::<_, i32>(0), 2);
    let columns = client
        .query(
            "SELECT 1 FROM information_schema.columns \
             WHERE table_schema = 'coldchain' AND table_name = 'blocks' AND column_name = 'extras'",
            &[],
        )
        .await
        .unwrap();
    assert!(columns.is_empty());
}

/// A read-only open changes nothing: no schema is created or migrated,
/// reads work, and every write (through the backend, or a statement in its
/// sessions) is [`coldchain::ColdError::ReadOnly`]. Errors of the server
/// read as one clause, with the SQLSTATE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_open_reads_and_refuses_writes() {
    use coldchain::{ColdError, ColdRead, ColdWrite, Deadline, testing::test_chain};
    if !server_available("a_read_only_open_reads_and_refuses_writes").await {
        return;
    }
    let d = || Deadline::after("test", std::time::Duration::from_secs(30));
    let read_only = PgOptions { read_only: true, ..PgOptions::default() };
    let db = TestDb::create().await;
    // No schema: nothing is created.
    let err = PostgresBackend::open(&db.url, read_only.clone()).await.unwrap_err();
    assert!(matches!(err, PgError::NeedsMigration { found: 0, .. }), "{err:?}");
    assert!(err.to_string().contains("open it once for writing"), "{err}");
    let client = db.client().await;
    let schema = client
        .query_one("SELECT count(*) FROM pg_namespace WHERE nspname = 'coldchain'", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(schema, 0, "a read-only open created the schema");

    let blocks = test_chain(0, 6, alloy::primitives::B256::ZERO, 3);
    let mut writer = db.open().await;
    writer.append_blocks(blocks[..4].to_vec(), d()).await.unwrap();
    let mut b = PostgresBackend::open(&db.url, read_only).await.unwrap();
    assert_eq!(b.tip(d()).await.unwrap(), Some(blocks[3].num_hash()));
    let refused = |err: ColdError| {
        assert!(matches!(err, ColdError::ReadOnly { .. }), "{err:?}");
        assert!(err.to_string().contains(&db.name), "{err}");
    };
    refused(b.append_blocks(blocks[4..].to_vec(), d()).await.unwrap_err());
    refused(b.truncate_above(1, d()).await.unwrap_err());
    refused(b.set_chain_id(1, d()).await.unwrap_err());
    assert_eq!(b.tip(d()).await.unwrap(), Some(blocks[3].num_hash()));

    // Its sessions are read-only: a statement that writes fails with the
    // server's message, said once.
    let (ro, conn) = tokio_postgres::connect(
        &format!("{}?options=-c%20default_transaction_read_only%3Don", db.url),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let err = PgError::from(ro.batch_execute("DELETE FROM coldchain.blocks").await.unwrap_err());
    let text = ColdError::backend(err).to_string();
    assert!(text.contains("read-only transaction (SQLSTATE 25006)"), "{text}");
    assert_eq!(text.matches("error").count(), 1, "{text}");
}
