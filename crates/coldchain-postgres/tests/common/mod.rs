//! Test databases on the local PostgreSQL server.
//!
//! The server is `COLDCHAIN_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), used as the admin
//! connection that creates and drops one database per test (or per case),
//! named `coldchain_test_<pid>_<n>_<nanos>`. A [`TestDb`] drops its database
//! when it goes out of scope, also when the test panics.
//!
//! No server: under `CI=true` the test fails; elsewhere it prints a loud
//! banner and returns (skipped).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use coldchain_postgres::{PgOptions, PostgresBackend};
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio_postgres::NoTls;

/// The admin URL.
pub fn admin_url() -> String {
    std::env::var("COLDCHAIN_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

async fn admin_exec(sql: &str) -> Result<(), tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let r = client.batch_execute(sql).await;
    drop(client);
    let _ = driver.await;
    r
}

/// Whether the server answers; `false` prints the skip banner. Under
/// `CI=true` an unreachable server panics instead.
pub async fn server_available(test: &str) -> bool {
    let ok = match tokio::time::timeout(Duration::from_secs(5), admin_exec("SELECT 1")).await {
        Ok(Ok(())) => return true,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out after 5 s".to_owned(),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test}: PostgreSQL at {} is not reachable ({ok}); CI=true requires it \
             (start it with `pg_ctlcluster 15 main start`)",
            admin_url()
        );
    }
    eprintln!(
        "\n==================== SKIPPED: {test} ====================\n\
         PostgreSQL at {} is not reachable: {ok}\n\
         Set COLDCHAIN_PG_URL or start the server; under CI=true this test fails.\n\
         =========================================================\n",
        admin_url()
    );
    false
}

/// A database that exists while this value lives.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TestDb {
    /// Creates a fresh database.
    pub async fn create() -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let name = format!(
            "coldchain_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos % 1_000_000_000
        );
        admin_exec(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let url = with_database(&admin_url(), &name);
        Self { name, url }
    }

    /// Creates a database from a thread of its own (for sync contexts such
    /// as the model test's factory, which runs inside a runtime).
    pub fn create_blocking() -> Self {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(Self::create())
        })
        .join()
        .unwrap()
    }

    /// Opens the backend on this database with default options.
    pub async fn open(&self) -> PostgresBackend {
        self.open_with(PgOptions::default()).await
    }

    /// Opens the backend on this database.
    pub async fn open_with(&self, options: PgOptions) -> PostgresBackend {
        PostgresBackend::open(&self.url, options).await.unwrap()
    }

    /// A plain client on this database (for locks, EXPLAIN, inspection).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let name = self.name.clone();
        let result = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(admin_exec(&sql))
                .map_err(|e| e.to_string())
        })
        .join();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database {name}: {e}"),
            Err(_) => eprintln!("warning: could not drop test database {name}: thread panicked"),
        }
    }
}

/// A deadline far away.
pub fn dl() -> coldchain::Deadline {
    coldchain::Deadline::after("test", Duration::from_secs(120))
}

/// Appends W1 blocks `from..from + count` to `store` in writes of `chunk`
/// blocks, on top of `parent`; returns the last block's hash.
pub async fn append_w1(
    store: &mut PostgresBackend,
    w1: &coldchain_w1::W1,
    from: u64,
    count: u64,
    chunk: u64,
    mut parent: alloy::primitives::B256,
) -> alloy::primitives::B256 {
    use coldchain::ColdWrite;
    let end = from + count;
    let mut next = from;
    while next < end {
        let n = chunk.min(end - next);
        let blocks = w1.chunk_par(next, n, parent, 0);
        parent = blocks.last().unwrap().hash();
        store.append_blocks(blocks, dl()).await.unwrap();
        next += n;
    }
    parent
}
