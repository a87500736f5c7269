//! Data (`hexutil.Decode`): never panics; what decodes re-encodes to the
//! input (up to letter case).
#![no_main]

use coldchain_rpc::params::decode_data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(bytes) = decode_data(s) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(format!("0x{hex}"), s.to_ascii_lowercase());
    }
});
