//! The backend conformance suite on the in-memory backend.

use coldchain::{MemBackend, testing};

#[tokio::test]
async fn conformance_mem() {
    testing::conformance(|| async { MemBackend::new() }).await;
}

#[tokio::test]
async fn conformance_streams_mem() {
    testing::conformance_streams(|| async { MemBackend::new() }).await;
}
