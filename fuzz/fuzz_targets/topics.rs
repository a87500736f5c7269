//! The `topics` member of a filter, alone: never panics.
#![no_main]

use coldchain_rpc::params::parse_filter;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok(f) = parse_filter(&json!({ "topics": v }), 4) {
        assert!(f.topics.len() <= 4);
        assert!(f.topics.iter().flatten().all(|set| !set.is_empty() && set.len() <= 4));
    }
});
