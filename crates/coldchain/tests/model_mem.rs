//! The model-based property test on the in-memory backend, directly and
//! through the `ColdStorage` handle.

use coldchain::{
    MemBackend,
    testing::{ThroughHandle, run_model_test},
};

#[test]
fn model_mem() {
    run_model_test(MemBackend::new, 256);
}

#[test]
fn model_mem_through_handle() {
    // `make` runs inside the test's runtime; building a handle over the
    // in-memory store completes without yielding.
    run_model_test(|| futures::executor::block_on(ThroughHandle::new(MemBackend::new())), 256);
}
