//! 32-byte hashes: never panic; what parses re-encodes to the input.
#![no_main]

use coldchain_rpc::params::{decode_fixed, parse_hash};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let parsed = parse_hash(&Value::String(s.to_owned()));
        assert_eq!(parsed.is_ok(), decode_fixed::<32>(s, "common.Hash").is_ok());
        if let Ok(h) = parsed {
            assert_eq!(format!("{h}"), s.to_ascii_lowercase());
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        let _ = parse_hash(&v);
    }
});
