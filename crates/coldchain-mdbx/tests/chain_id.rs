//! The chain id outlives the process: it is read back after reopening, and
//! a store written without one (as before chain ids were recorded) opens
//! with none and takes one; the format version is unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::B256;
use coldchain::{ColdError, ColdRead, ColdWrite, Deadline, testing::test_chain};
use coldchain_mdbx::{MdbxBackend, MdbxOptions};

fn dl() -> Deadline {
    Deadline::none("test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_id_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A store with blocks and no chain id.
        let mut b = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
        b.append_blocks(test_chain(0, 3, B256::ZERO, 1), dl()).await.unwrap();
    }
    let mut b = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
    assert_eq!(b.chain_id(dl()).await.unwrap(), None);
    b.set_chain_id(17_000, dl()).await.unwrap();
    drop(b);
    let mut b = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
    assert_eq!(b.chain_id(dl()).await.unwrap(), Some(17_000));
    let err = b.set_chain_id(1, dl()).await.unwrap_err();
    assert!(matches!(err, ColdError::ChainIdMismatch { stored: 17_000, given: 1 }), "{err:?}");
    assert_eq!(b.tip(dl()).await.unwrap().unwrap().number, 2);
    // The store still verifies: the entry is metadata, not an index.
    assert!(b.verify().unwrap().is_ok());
}
