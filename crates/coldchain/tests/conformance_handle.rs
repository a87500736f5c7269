//! The backend conformance suite through the `ColdStorage` handle over the
//! in-memory backend: the handle's paths (permits, writer, cache, streams)
//! must not change any answer.

use coldchain::{
    MemBackend,
    testing::{self, ThroughHandle},
};

#[tokio::test]
async fn conformance_through_handle_mem() {
    testing::conformance(|| ThroughHandle::new(MemBackend::new())).await;
}

#[tokio::test]
async fn conformance_streams_through_handle_mem() {
    testing::conformance_streams(|| ThroughHandle::new(MemBackend::new())).await;
}
