//! Test utilities (feature `test-utils`): synthetic chains, the backend
//! conformance suite, the reference model and property test, and the gated
//! backend for concurrency tests.

pub mod chain;

pub use chain::{
    ChainShape, TestRng, test_address, test_block, test_chain, test_chain_with, test_topic,
};
pub mod gated;
pub use gated::GatedBackend;
