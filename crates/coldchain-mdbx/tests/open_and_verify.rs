//! Opening stores that are not ours (clear errors), deadlines, and `verify`
//! catching damage done behind the backend's back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::B256;
use coldchain::{
    ColdError, ColdRead, ColdWrite, Deadline, LogFilter,
    testing::{ChainShape, test_chain_with},
};
use coldchain_mdbx::{FORMAT_VERSION, MdbxBackend, MdbxError, MdbxOptions};
use signet_libmdbx::{DatabaseFlags, Environment, WriteFlags};
use std::time::Duration;
use tempfile::TempDir;

fn d() -> Deadline {
    Deadline::after("test", Duration::from_secs(60))
}

const SHAPE: ChainShape = ChainShape { max_txs: 6, max_logs: 4, addresses: 4, topics: 6 };

#[test]
fn open_refuses_what_is_not_a_store() {
    let dir = TempDir::new().unwrap();
    // A path below a regular file.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = MdbxBackend::open(file.join("db"), MdbxOptions::for_tests()).unwrap_err();
    assert!(matches!(err, MdbxError::NotWritable { .. }), "{err}");
    // The file itself.
    let err = MdbxBackend::open(&file, MdbxOptions::for_tests()).unwrap_err();
    assert!(matches!(err, MdbxError::ForeignFormat { .. }), "{err}");
    // A directory of foreign files.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("CURRENT"), b"MANIFEST-000001").unwrap();
    let err = MdbxBackend::open(&foreign, MdbxOptions::for_tests()).unwrap_err();
    assert!(matches!(err, MdbxError::ForeignFormat { .. }), "{err}");
    assert!(err.to_string().contains("CURRENT"), "{err}");
    // A data file that is not MDBX.
    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("mdbx.dat"), vec![7u8; 65536]).unwrap();
    let err = MdbxBackend::open(&garbage, MdbxOptions::for_tests()).unwrap_err();
    assert!(
        matches!(err, MdbxError::ForeignFormat { .. } | MdbxError::Mdbx(_)),
        "a garbage data file: {err}"
    );
    // Another application's MDBX environment.
    let other = dir.path().join("other");
    {
        let env = Environment::builder().set_max_dbs(4).open(&other).unwrap();
        let txn = env.begin_rw_unsync().unwrap();
        let db = txn.create_db(Some("accounts"), DatabaseFlags::empty()).unwrap();
        txn.put(db, b"k", b"v", WriteFlags::empty()).unwrap();
        txn.commit().unwrap();
    }
    let err = MdbxBackend::open(&other, MdbxOptions::for_tests()).unwrap_err();
    assert!(matches!(err, MdbxError::ForeignFormat { .. }), "{err}");
    assert!(err.to_string().contains("accounts"), "{err}");
}

/// Rewrites the store's format version behind its back.
fn set_version(path: &std::path::Path, version: u32) {
    let env = Environment::builder().set_max_dbs(16).open(path).unwrap();
    let txn = env.begin_rw_unsync().unwrap();
    let meta = txn.open_db(Some("meta")).unwrap();
    txn.put(meta, b"format_version", version.to_be_bytes(), WriteFlags::empty()).unwrap();
    txn.commit().unwrap();
}

#[test]
fn open_refuses_other_format_versions() {
    let dir = TempDir::new().unwrap();
    drop(MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap());
    set_version(dir.path(), FORMAT_VERSION + 1);
    let err = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap_err();
    assert!(
        matches!(err, MdbxError::NewerVersion { found, supported, .. }
            if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade"), "{err}");
    set_version(dir.path(), FORMAT_VERSION - 1);
    let err = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap_err();
    assert!(matches!(err, MdbxError::OlderVersion { .. }), "{err}");
    assert!(err.to_string().contains("re-import"), "{err}");
    set_version(dir.path(), FORMAT_VERSION);
    MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
}

#[test]
fn page_size_is_chosen_at_creation_and_kept() {
    for bad in [0, 1000, 2048, 131_072] {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("store");
        let options = MdbxOptions { page_size: bad, ..MdbxOptions::for_tests() };
        let err = MdbxBackend::open(&path, options).unwrap_err();
        assert!(matches!(err, MdbxError::Options(_)), "{bad}: {err}");
        assert!(err.to_string().contains("page size"), "{err}");
        assert!(!path.exists(), "bad options create nothing");
    }
    let dir = TempDir::new().unwrap();
    let created = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
    assert_eq!(created.disk_usage().unwrap().page_size, 8192);
    drop(created);
    let dir = TempDir::new().unwrap();
    let small = MdbxOptions { page_size: 4096, ..MdbxOptions::for_tests() };
    drop(MdbxBackend::open(dir.path(), small).unwrap());
    // Reopened with the default, the store keeps the page size it has.
    let reopened = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
    assert_eq!(reopened.disk_usage().unwrap().page_size, 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_deadlines_are_timeouts_and_write_nothing() {
    let dir = TempDir::new().unwrap();
    let mut b = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
    let blocks = test_chain_with(0, 10, B256::ZERO, 3, SHAPE);
    b.append_blocks(blocks[..5].to_vec(), d()).await.unwrap();
    let expired = Deadline::after("late", Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(2)).await;
    let err = b.append_blocks(blocks[5..].to_vec(), expired.clone()).await.unwrap_err();
    assert!(matches!(err, ColdError::Timeout { op: "late" }), "{err:?}");
    assert_eq!(b.tip(d()).await.unwrap(), Some(blocks[4].num_hash()));
    let err = b.get_logs(&LogFilter::range(0, 9), usize::MAX, expired.clone()).await.unwrap_err();
    assert!(matches!(err, ColdError::Timeout { .. }), "{err:?}");
    let stopped = d();
    stopped.stop();
    let err = b.truncate_above(1, stopped).await.unwrap_err();
    assert!(matches!(err, ColdError::Timeout { .. }), "{err:?}");
    assert_eq!(b.tip(d()).await.unwrap(), Some(blocks[4].num_hash()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_damage() {
    let dir = TempDir::new().unwrap();
    let options = MdbxOptions::for_tests_small_journal();
    let blocks = test_chain_with(0, 30, B256::ZERO, 8, SHAPE);
    {
        let mut b = MdbxBackend::open(dir.path(), options.clone()).unwrap();
        b.append_blocks(blocks.clone(), d()).await.unwrap();
        let report = b.verify().unwrap();
        assert!(report.is_ok(), "{report}");
        assert!(report.index_entries > 0 && report.tx_hash_entries > 0, "{report}");
        assert!(report.journal_blocks > 0 && report.journal_blocks < 30, "{report}");
    }
    // Drop one log index shard and one tx hash entry behind the store's back
    // (the one batch was flushed into one index run, of level 0).
    {
        let env = Environment::builder().set_max_dbs(32).open(dir.path()).unwrap();
        let txn = env.begin_rw_unsync().unwrap();
        for name in ["log_index_0", "tx_hashes_0"] {
            let db = txn.open_db(Some(name)).unwrap();
            let mut cursor = txn.cursor(db).unwrap();
            cursor.first::<(), ()>().unwrap().unwrap();
            cursor.del().unwrap();
        }
        txn.commit().unwrap();
    }
    let b = MdbxBackend::open(dir.path(), options).unwrap();
    let report = b.verify().unwrap();
    assert!(!report.is_ok(), "damage must be found: {report}");
    let text = report.to_string();
    assert!(text.contains("index lacks it"), "{text}");
    assert!(text.contains("tx_hashes"), "{text}");
}

/// Mounts a read-only bind of `src` for the test's life (root only: a
/// read-only mount is what stops root, for whom file modes do not).
struct ReadOnlyMount(std::path::PathBuf);

impl ReadOnlyMount {
    fn new(src: &std::path::Path, dst: &std::path::Path) -> Option<Self> {
        std::fs::create_dir_all(dst).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["--bind", "-o", "ro"])
            .arg(src)
            .arg(dst)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: a read-only bind mount is required (run as root)"
            );
            eprintln!("SKIPPED: cannot bind-mount read-only (not root?)");
            return None;
        }
        Some(Self(dst.to_path_buf()))
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_serves_reads_and_refuses_writes() {
    let dir = TempDir::new().unwrap();
    let src = dir.path().join("store");
    let blocks = test_chain_with(0, 8, B256::ZERO, 3, SHAPE);
    {
        let mut b = MdbxBackend::open(&src, MdbxOptions::for_tests()).unwrap();
        b.append_blocks(blocks[..6].to_vec(), d()).await.unwrap();
    }
    let Some(mount) = ReadOnlyMount::new(&src, &dir.path().join("ro")) else { return };
    assert!(coldchain_mdbx::on_read_only_media(&mount.0));
    assert!(!coldchain_mdbx::on_read_only_media(&src));
    // Opened for writing, the mount is refused with a clear error.
    let err =
        MdbxBackend::open(&mount.0, MdbxOptions { create: false, ..MdbxOptions::for_tests() })
            .unwrap_err();
    assert!(matches!(err, MdbxError::NotWritable { .. }), "{err}");
    let options = MdbxOptions { read_only: true, ..MdbxOptions::for_tests() };
    let mut b = MdbxBackend::open(&mount.0, options).unwrap();
    assert_eq!(b.tip(d()).await.unwrap(), Some(blocks[5].num_hash()));
    let logs = b.get_logs(&LogFilter::range(0, 5), usize::MAX, d()).await.unwrap();
    assert!(!logs.is_empty());
    assert!(b.verify().unwrap().is_ok());
    let store = mount.0.display().to_string();
    let read_only = |err: ColdError| {
        assert!(matches!(&err, ColdError::ReadOnly { store: s } if *s == store), "{err:?}");
        assert!(err.to_string().contains("read-only"), "{err}");
    };
    read_only(b.append_blocks(blocks[6..].to_vec(), d()).await.unwrap_err());
    read_only(b.truncate_above(2, d()).await.unwrap_err());
    read_only(b.set_chain_id(1, d()).await.unwrap_err());
    assert_eq!(b.tip(d()).await.unwrap(), Some(blocks[5].num_hash()));
    drop(b);
    drop(mount);
    // Read-only also on writable media: nothing is created.
    let missing = dir.path().join("missing");
    let options = MdbxOptions { read_only: true, ..MdbxOptions::for_tests() };
    let err = MdbxBackend::open(&missing, options).unwrap_err();
    assert!(matches!(err, MdbxError::Missing { .. }), "{err}");
    assert!(!missing.exists());
}
