//! Block numbers, tags, hashes and EIP-1898 objects: never panic; a tag is
//! also a block id.
#![no_main]

use coldchain_rpc::params::{BlockId, parse_block_id, parse_block_tag};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check(v: &Value) {
    let tag = parse_block_tag(v);
    let id = parse_block_id(v);
    if let Ok(t) = tag {
        assert_eq!(id, Ok(BlockId::Tag(t)), "{v}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        check(&Value::String(s.to_owned()));
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        check(&v);
    }
});
