//! Choosing and opening a store from `--store`.
//!
//! A store is named by one string: `mem` (in memory, gone at exit), a
//! filesystem path (the embedded store), or a `postgres://` URL. Work that
//! runs on any backend implements [`OnBackend`], so each command is written
//! once, generically, and [`run_on`] picks the concrete backend.
//!
//! **Open, don't create.** Only work that writes ([`OnBackend::creates`]:
//! `import`, `synth`, `bench`, `serve --dev` or `--import-rpc`) creates an
//! embedded store, and only in a new or empty directory. Every other
//! command (`serve`, `export`, `verify`) fails on a missing store, or on a
//! data file that holds no store (emptied or truncated), naming the path,
//! instead of serving an empty store created in its place.
//!
//! **Read-only.** Work that only reads may open the store read-only
//! ([`OnBackend::read_only`]: `serve`, `export` and `verify` with
//! `--read-only`): MDBX opened `RDONLY`, PostgreSQL sessions with
//! `default_transaction_read_only`; a write then fails with
//! [`coldchain::ColdError::ReadOnly`]. Such work opens an embedded store
//! read-only by itself when its directory cannot be written (a read-only
//! mount, a directory this user may not write).

use coldchain::{ColdBackend, ColdStorage};
use eyre::Result;
use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

/// How long one write of a writing command (`import`, `synth`) may take: a
/// batch of large blocks on a slow disk or server.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(300);

/// The handle of a writing command: the default timeouts, but a write may
/// take [`WRITE_TIMEOUT`].
pub async fn writing_handle<B: ColdBackend>(backend: B) -> Result<ColdStorage<B>> {
    Ok(ColdStorage::builder(backend).write_timeout(WRITE_TIMEOUT).build().await?)
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// In memory; nothing is kept after exit.
    Mem,
    /// The embedded store at this path.
    Path(PathBuf),
    /// A PostgreSQL database.
    Postgres(String),
}

impl FromStr for StoreSpec {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s == "mem" {
            Self::Mem
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Self::Postgres(s.to_owned())
        } else {
            Self::Path(PathBuf::from(s))
        })
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mem => f.write_str("mem"),
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// Hides a password in a URL for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => {
                    format!("{}{}:***{}", &url[..scheme + 3], &creds[..colon], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Work that runs on any backend.
pub trait OnBackend {
    /// What the work returns.
    type Output;
    /// Whether the work writes, so may create a missing store (default:
    /// no, the store must exist).
    fn creates(&self) -> bool {
        false
    }
    /// Whether the work asks to open the store read-only (default: no;
    /// work that does not create still opens an embedded store read-only
    /// when its directory cannot be written).
    fn read_only(&self) -> bool {
        false
    }
    /// Runs the work on an opened backend.
    fn run<B: ColdBackend>(
        self,
        backend: B,
        store: &StoreSpec,
    ) -> impl Future<Output = Result<Self::Output>>;
}

/// Opens the store named by `spec` and runs `work` on it.
pub async fn run_on<W: OnBackend>(spec: &StoreSpec, work: W) -> Result<W::Output> {
    match spec {
        StoreSpec::Mem => work.run(coldchain::MemBackend::new(), spec).await,
        StoreSpec::Path(path) => {
            let access = if work.creates() {
                Access::Create
            } else if work.read_only() || read_only_media(path).await {
                Access::ReadOnly
            } else {
                Access::Open
            };
            let backend = open_embedded(path, access).await?;
            work.run(backend, spec).await
        }
        StoreSpec::Postgres(url) => {
            let backend = open_postgres(url, work.read_only()).await?;
            let upkeep = backend.clone();
            let out = work.run(backend, spec).await;
            // Let the last appends' background merge finish, so that the
            // next process finds nothing pending; bounded, so that exiting
            // never waits long on an unreachable server.
            if tokio::time::timeout(SETTLE_ON_EXIT, upkeep.settle()).await.is_err() {
                tracing::warn!(
                    "PostgreSQL: the last background merge did not finish within {SETTLE_ON_EXIT:?}; the next open merges it"
                );
            }
            out
        }
    }
}

/// How long a command on PostgreSQL waits, before exiting, for the merge
/// its last appends requested.
const SETTLE_ON_EXIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How a command opens an embedded store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and write; create the store when missing.
    Create,
    /// Read and write an existing store.
    Open,
    /// Read an existing store; writes fail.
    ReadOnly,
}

/// Whether the embedded store at `path` sits where nothing can be written
/// (logged when so: the command then opens it read-only).
pub async fn read_only_media(path: &std::path::Path) -> bool {
    let owned = path.to_path_buf();
    let read_only = tokio::task::spawn_blocking(move || coldchain_mdbx::on_read_only_media(&owned))
        .await
        .unwrap_or(false);
    if read_only {
        tracing::info!(
            store = %path.display(),
            "the store's directory cannot be written (read-only media?): opening it read-only"
        );
    }
    read_only
}

/// Opens the embedded MDBX store at `path` as `access` says, off the
/// runtime threads.
pub async fn open_embedded(
    path: &std::path::Path,
    access: Access,
) -> Result<coldchain_mdbx::MdbxBackend> {
    let owned = path.to_path_buf();
    let options = coldchain_mdbx::MdbxOptions {
        create: access == Access::Create,
        read_only: access == Access::ReadOnly,
        ..Default::default()
    };
    let opened =
        tokio::task::spawn_blocking(move || coldchain_mdbx::MdbxBackend::open(&owned, options))
            .await?;
    // The error names the path already.
    opened.map_err(|e| eyre::eyre!("{e}"))
}

/// Opens the PostgreSQL store at `url`, applying schema migrations, or
/// `read_only`, checking that none are due.
pub async fn open_postgres(
    url: &str,
    read_only: bool,
) -> Result<coldchain_postgres::PostgresBackend> {
    let options = coldchain_postgres::PgOptions { read_only, ..Default::default() };
    coldchain_postgres::PostgresBackend::open(url, options)
        .await
        .map_err(|e| eyre::eyre!("opening PostgreSQL at {}: {e}", redact(url)))
}

/// Waits for a store's background upkeep after writes (PostgreSQL merges
/// its GIN pending list; the other stores have none in flight).
pub async fn settle(spec: &StoreSpec) {
    if let StoreSpec::Postgres(url) = spec
        && let Ok(backend) = open_postgres(url, false).await
    {
        backend.settle().await;
    }
}

/// Bytes the store occupies on disk (tables and indexes for PostgreSQL),
/// when that can be measured.
pub async fn disk_usage(spec: &StoreSpec) -> Option<u64> {
    match spec {
        StoreSpec::Postgres(url) => open_postgres(url, false).await.ok()?.disk_bytes().await.ok(),
        other => files_size(other),
    }
}

fn files_size(spec: &StoreSpec) -> Option<u64> {
    fn dir_size(path: &std::path::Path) -> std::io::Result<u64> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_dir() {
            return Ok(meta.len());
        }
        let mut total = 0;
        for entry in std::fs::read_dir(path)? {
            total += dir_size(&entry?.path())?;
        }
        Ok(total)
    }
    match spec {
        StoreSpec::Path(p) => dir_size(p).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_specs() {
        assert_eq!("mem".parse::<StoreSpec>().unwrap(), StoreSpec::Mem);
        assert_eq!("./data".parse::<StoreSpec>().unwrap(), StoreSpec::Path("./data".into()));
        assert!(matches!(
            "postgres://u@h/db".parse::<StoreSpec>().unwrap(),
            StoreSpec::Postgres(_)
        ));
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }
}
