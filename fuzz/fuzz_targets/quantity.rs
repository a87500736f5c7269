//! Quantities: `parse_quantity_str`, `decode_uint64`, `decode_big` and the
//! JSON reading agree, and never panic.
#![no_main]

use alloy_primitives::U256;
use coldchain_rpc::params::{decode_big, decode_uint64, parse_quantity, parse_quantity_str};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let json = parse_quantity(&Value::String(s.to_owned()));
    let text = parse_quantity_str(s);
    let ordered = decode_uint64(s);
    let big = decode_big(s);
    assert_eq!(json.is_ok(), text.is_ok());
    if let Ok(n) = text {
        assert_eq!(ordered, Ok(n));
        assert_eq!(big, Ok(U256::from(n)));
        // Only the canonical spelling is accepted.
        assert_eq!(format!("{n:#x}"), s.to_ascii_lowercase());
    }
    if let Ok(n) = ordered {
        assert_eq!(text, Ok(n));
    }
    if let Ok(n) = big {
        assert_eq!(format!("{n:#x}"), s.to_ascii_lowercase());
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        let _ = parse_quantity(&v);
    }
});
