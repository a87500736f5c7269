//! `eth_getLogs` filter objects: never panic; limits hold on what parses.
#![no_main]

use coldchain_rpc::params::parse_filter;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok(f) = parse_filter(&v, 4) {
        assert!(f.addresses.len() <= 4);
        assert!(f.topics.len() <= 4);
        assert!(f.topics.iter().flatten().all(|set| !set.is_empty() && set.len() <= 4));
        assert!(f.block_hash.is_none() || (f.from_block.is_none() && f.to_block.is_none()));
    }
});
