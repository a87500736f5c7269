//! Commands on a PostgreSQL store leave its GIN index merged when they exit:
//! each append requests a background merge of the pending list, and the
//! command waits for the last one before it exits, so the next process (a
//! server) finds nothing pending. `coldchain synth` writes its 60 blocks in
//! one append, whose merge (~20,000 entries) outlasts the command's exit
//! path: without the wait, they stay pending.
//!
//! Uses the local server (`COLDCHAIN_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and its own database; no
//! server fails the test under `CI=true`, and skips it loudly elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use tokio_postgres::{Client, NoTls};

fn admin_url() -> String {
    std::env::var("COLDCHAIN_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{db}")
}

async fn connect(url: &str) -> Option<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.ok()?;
    tokio::spawn(connection);
    Some(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synth_on_postgres_leaves_nothing_pending() {
    let Some(admin) = connect(&admin_url()).await else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no PostgreSQL server at {}, and CI=true",
            admin_url()
        );
        eprintln!(
            "\n*** SKIPPED synth_on_postgres_leaves_nothing_pending: no PostgreSQL server ***\n"
        );
        return;
    };
    let db = format!("coldchain_cli_test_{}", std::process::id());
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).await.unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let url = with_database(&admin_url(), &db);

    let store = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_coldchain"))
            .args(["synth", "--store", &store])
            .args(["--blocks", "60", "--txs-per-block", "150", "--batch", "60"])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let client = connect(&url).await.unwrap();
    client.batch_execute("CREATE EXTENSION IF NOT EXISTS pgstattuple").await.unwrap();
    let (pending, logs): (i64, i64) = {
        let row = client
            .query_one(
                "SELECT (SELECT pending_tuples FROM pgstatginindex('coldchain.logs_topics')),
                        (SELECT count(*) FROM coldchain.logs)",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    drop(client);
    admin.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)")).await.unwrap();
    assert!(logs > 1_000, "{logs} logs");
    assert_eq!(pending, 0, "the last batches' topic entries are still pending");
}
