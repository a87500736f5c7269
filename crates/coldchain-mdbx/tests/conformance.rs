//! The backend conformance suite (with the stream cases) on MDBX, directly
//! and through the `ColdStorage` handle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use coldchain::testing::{self, ThroughHandle};
use coldchain_mdbx::{MdbxBackend, MdbxOptions};
use std::sync::Mutex;
use tempfile::TempDir;

/// Opens a fresh store in a new temporary directory kept in `dirs`.
fn fresh_with(dirs: &Mutex<Vec<TempDir>>, options: MdbxOptions) -> MdbxBackend {
    let dir = TempDir::new().expect("temp dir");
    let backend = MdbxBackend::open(dir.path(), options).expect("open store");
    dirs.lock().expect("lock").push(dir);
    backend
}

fn fresh(dirs: &Mutex<Vec<TempDir>>) -> MdbxBackend {
    fresh_with(dirs, MdbxOptions::for_tests())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_mdbx_small_journal() {
    // Flushes and compactions every few blocks: reads, logs and
    // truncations cross the journal and index runs of several levels.
    let dirs = Mutex::new(Vec::new());
    testing::conformance(|| {
        let b = fresh_with(&dirs, MdbxOptions::for_tests_small_journal());
        async move { b }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_mdbx() {
    let dirs = Mutex::new(Vec::new());
    testing::conformance(|| {
        let b = fresh(&dirs);
        async move { b }
    })
    .await;
}

#[test]
fn conformance_streams_mdbx_current_thread() {
    // Streams send from a blocking thread: check it also works when the
    // runtime has a single thread (as in the model test).
    let dirs = Mutex::new(Vec::new());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(testing::conformance_streams(|| {
        let b = fresh(&dirs);
        async move { b }
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_mdbx_through_handle() {
    let dirs = Mutex::new(Vec::new());
    testing::conformance(|| {
        let b = fresh(&dirs);
        async move { ThroughHandle::new(b).await }
    })
    .await;
}
