//! The model-based property test (`coldchain::testing::prop`) on MDBX.
//!
//! `model_mdbx` runs coldchain's runner (256 cases by default; set
//! `COLDCHAIN_MODEL_CASES`); `model_mdbx_small_journal_then_verify` runs the
//! same generated cases with a journal that flushes every few blocks into
//! index runs compacted two by two, and
//! checks `verify` after each case (128 cases).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use coldchain::testing::prop::{model_case, run_case, run_model_test};
use coldchain_mdbx::{MdbxBackend, MdbxOptions};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::RefCell;
use tempfile::TempDir;

fn cases(default: u32) -> u32 {
    std::env::var("COLDCHAIN_MODEL_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[test]
fn model_mdbx() {
    // The directory of the previous case goes when the next case starts.
    let dir: RefCell<Option<TempDir>> = RefCell::new(None);
    run_model_test(
        || {
            let d = TempDir::new().expect("temp dir");
            let backend = MdbxBackend::open(d.path(), MdbxOptions::for_tests()).expect("open");
            *dir.borrow_mut() = Some(d);
            backend
        },
        cases(256),
    );
}

#[test]
fn model_mdbx_small_journal_then_verify() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config { cases: cases(128), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&model_case(), |case| {
        let dir = TempDir::new().expect("temp dir");
        let options = MdbxOptions::for_tests_small_journal();
        let backend = MdbxBackend::open(dir.path(), options).expect("open");
        rt.block_on(run_case(backend.clone(), &case)).map_err(TestCaseError::fail)?;
        let report = backend.verify().expect("verify");
        if !report.is_ok() {
            return Err(TestCaseError::fail(format!("verify after the case: {report}")));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("model test (small journal) failed: {e}");
    }
}
