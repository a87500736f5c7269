//! Test utilities (feature `test-utils`): synthetic chains, the backend
//! conformance suite, the reference model and property test, and the gated
//! backend for concurrency tests.

pub mod chain;

pub use chain::{
    ChainShape, TestRng, test_address, test_block, test_chain, test_chain_with, test_topic,
};
pub mod gated;
pub use gated::GatedBackend;
pub mod conformance;
pub use conformance::{conformance, conformance_streams};
pub mod fixtures;
pub mod model;
pub mod prop;
pub use model::ReferenceModel;
pub use prop::{ModelCase, Op, model_case, run_model_test};
pub mod through_handle;
pub use through_handle::ThroughHandle;
