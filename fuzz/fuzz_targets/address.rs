//! 20-byte addresses: never panic; what parses re-encodes to the input.
#![no_main]

use coldchain_rpc::params::parse_address;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(a) = parse_address(&Value::String(s.to_owned()))
    {
        assert_eq!(format!("{a:#x}"), s.to_ascii_lowercase());
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        let _ = parse_address(&v);
    }
});
