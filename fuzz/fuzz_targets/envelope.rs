//! Whole JSON-RPC bodies through the server's HTTP service, in process:
//! every body gets an HTTP answer, a JSON one unless it is empty, and no
//! call panics (a caught panic would answer "internal error (panic)").
#![no_main]

use coldchain::{
    ColdStorage, MemBackend,
    testing::{ChainShape, test_chain_with},
};
use coldchain_rpc::{Limits, RpcConfig, testing::InProcess};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tokio::runtime::Runtime;

fn server() -> &'static (Runtime, InProcess) {
    static SERVER: OnceLock<(Runtime, InProcess)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dispatch = rt.block_on(async {
            let handle = ColdStorage::new(MemBackend::new()).await.unwrap();
            let shape = ChainShape { max_txs: 4, max_logs: 3, addresses: 3, topics: 4 };
            let blocks = test_chain_with(0, 8, Default::default(), 7, shape);
            handle.append_blocks(blocks).await.unwrap();
            let limits = Limits { max_request_body: 64 * 1024, max_logs: 20, ..Limits::default() };
            InProcess::new(handle, RpcConfig { limits, ..RpcConfig::default() }).unwrap()
        });
        (rt, dispatch)
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, dispatch) = server();
    let (status, body) = rt.block_on(dispatch.post(data.to_vec()));
    assert!(status < 500, "HTTP {status}: {}", String::from_utf8_lossy(&body));
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("internal error (panic)"), "{text}");
    if !body.is_empty() {
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok(), "not JSON: {text}");
    }
});
