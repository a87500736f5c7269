//! Tests of the import paths: a node's JSON-RPC (a local fake node: a
//! coldchain server over an in-memory store behind a proxy that injects
//! faults), JSON lines (round trips on W1 and real mainnet blocks,
//! corruptions), era1 (the real archives of `tests/data/era1`, corruptions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    ImportError, ImportStats,
    era1::{self, Era1ImportArgs, types},
    jsonl::{JsonlImportArgs, import_jsonl},
    rpc::{RpcRange, import_rpc},
};
use crate::export::{JsonlExportArgs, export_jsonl};
use crate::store::StoreSpec;
use alloy::{
    consensus::{
        Eip658Value, Header, Receipt as ConsensusReceipt, ReceiptEnvelope, Signed, TxEnvelope,
        TxLegacy,
        proofs::{calculate_receipt_root, calculate_transaction_root},
    },
    primitives::{Address, B256, Bytes, Log, LogData, Sealable, Signature, TxKind, U256},
};
use coldchain::{BlockData, ColdStorage, MemBackend, RecoveredTx, testing};
use coldchain_client::HttpClient;
use coldchain_rpc::{RpcConfig, RpcServer};
use serde_json::{Value, json};
use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

type Mem = ColdStorage<MemBackend>;

async fn mem_with(blocks: Vec<BlockData>) -> Mem {
    let handle = ColdStorage::new(MemBackend::new()).await.unwrap();
    if !blocks.is_empty() {
        handle.append_blocks(blocks).await.unwrap();
    }
    handle
}

fn chain(start: u64, len: u64, parent: B256, seed: u64) -> Vec<BlockData> {
    let shape = testing::ChainShape { max_txs: 5, max_logs: 3, ..Default::default() };
    testing::test_chain_with(start, len, parent, seed, shape)
}

/// Every block of `a` in `from..=to` is in `b`, equal in every read.
async fn assert_same(a: &Mem, b: &Mem, from: u64, to: u64) {
    for n in from..=to {
        assert_eq!(a.header(n).await.unwrap(), b.header(n).await.unwrap(), "header {n}");
        assert_eq!(
            a.block_transactions(n).await.unwrap(),
            b.block_transactions(n).await.unwrap(),
            "transactions {n}"
        );
        assert_eq!(
            a.block_receipts(n).await.unwrap(),
            b.block_receipts(n).await.unwrap(),
            "receipts {n}"
        );
        assert_eq!(
            a.block_extras(n).await.unwrap(),
            b.block_extras(n).await.unwrap(),
            "ommers and withdrawals {n}"
        );
    }
}

// ---------------------------------------------------------------- fake node

/// What the proxy does to one request instead of forwarding it.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Close the connection without answering.
    Close,
    /// Answer with this HTTP status.
    Http(u16),
    /// Answer every call with this JSON-RPC error code.
    Rpc(i64),
    /// Answer HTTP 200 with a body that is not JSON.
    Garbage,
    /// Never answer.
    Hang,
}

/// The next `eth_blockNumber` call is held until `release` is notified,
/// then answered with `head` instead of being forwarded: a node's answer
/// that was true when it left and is stale when it arrives.
struct StaleHead {
    head: u64,
    release: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct ProxyState {
    faults: parking_lot::Mutex<VecDeque<Fault>>,
    stale_head: parking_lot::Mutex<Option<StaleHead>>,
    /// `eth_blockNumber` calls now held by a [`StaleHead`].
    held: AtomicUsize,
    /// After this many forwarded requests, answer every request with the fault.
    fail_after: parking_lot::Mutex<Option<(usize, Fault)>>,
    forwarded: AtomicUsize,
    faulted: AtomicUsize,
    /// Forwarded answers carry this block with a wrong `gasLimit`.
    corrupt: parking_lot::Mutex<Option<u64>>,
}

/// `answer` with block `n`'s `gasLimit` changed, wherever it is.
fn corrupt_block(answer: Vec<u8>, n: u64) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(&answer) else { return answer };
    let items: Vec<&mut Value> = match &mut value {
        Value::Array(items) => items.iter_mut().collect(),
        one => vec![one],
    };
    for item in items {
        let result = &mut item["result"];
        if result.get("number") == Some(&json!(format!("{n:#x}")))
            && result.get("gasLimit").is_some()
        {
            result["gasLimit"] = json!("0x1");
        }
    }
    serde_json::to_vec(&value).unwrap()
}

impl ProxyState {
    fn next_fault(&self) -> Option<Fault> {
        if let Some(f) = self.faults.lock().pop_front() {
            return Some(f);
        }
        if let Some((n, f)) = *self.fail_after.lock()
            && self.forwarded.load(Ordering::SeqCst) >= n
        {
            return Some(f);
        }
        None
    }
}

/// A node: a coldchain server over `handle`, reached through a proxy that
/// injects faults.
struct FakeNode {
    url: String,
    direct: String,
    state: Arc<ProxyState>,
    _server: coldchain_rpc::RunningServer,
}

async fn serve(handle: &Mem) -> coldchain_rpc::RunningServer {
    RpcServer::new(handle.clone(), RpcConfig::default())
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

impl FakeNode {
    async fn start(handle: &Mem, faults: Vec<Fault>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(handle, listener, faults).await
    }

    async fn start_on(handle: &Mem, listener: TcpListener, faults: Vec<Fault>) -> Self {
        let server = serve(handle).await;
        let direct = format!("http://{}", server.local_addr());
        let state = Arc::new(ProxyState::default());
        state.faults.lock().extend(faults);
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (st, up) = (state.clone(), direct.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(proxy_conn(sock, st.clone(), up.clone()));
            }
        });
        Self { url, direct, state, _server: server }
    }
}

async fn proxy_conn(sock: TcpStream, state: Arc<ProxyState>, upstream: String) {
    let upstream = HttpClient::new(&upstream).unwrap();
    let (read, mut write) = sock.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let stale = if request["method"] == "eth_blockNumber" {
            state.stale_head.lock().take()
        } else {
            None
        };
        let (status, answer) = if let Some(StaleHead { head, release }) = stale {
            state.held.fetch_add(1, Ordering::SeqCst);
            release.notified().await;
            state.held.fetch_sub(1, Ordering::SeqCst);
            let answer =
                json!({"jsonrpc": "2.0", "id": request["id"], "result": format!("{head:#x}")});
            (200, serde_json::to_vec(&answer).unwrap())
        } else {
            let fault = state.next_fault();
            if fault.is_some() {
                state.faulted.fetch_add(1, Ordering::SeqCst);
            }
            match fault {
                Some(Fault::Close) => return,
                Some(Fault::Hang) => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                Some(Fault::Http(code)) => (code, b"busy, try later".to_vec()),
                Some(Fault::Garbage) => (200, b"<html>bad gateway</html>".to_vec()),
                Some(Fault::Rpc(code)) => {
                    let error = |id: &Value| json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": "limit exceeded"}});
                    let answer = match &request {
                        Value::Array(calls) => {
                            Value::Array(calls.iter().map(|c| error(&c["id"])).collect())
                        }
                        call => error(&call["id"]),
                    };
                    (200, serde_json::to_vec(&answer).unwrap())
                }
                None => {
                    state.forwarded.fetch_add(1, Ordering::SeqCst);
                    let a = upstream.post(&body).await.unwrap();
                    let corrupt = *state.corrupt.lock();
                    (a.status, corrupt.map_or(a.body.clone(), |n| corrupt_block(a.body, n)))
                }
            }
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        if write.write_all(head.as_bytes()).await.is_err()
            || write.write_all(&answer).await.is_err()
        {
            return;
        }
    }
}

fn range() -> RpcRange {
    RpcRange {
        from: None,
        to: None,
        batch: 4,
        write_batch: 8,
        concurrency: 3,
        follow: false,
        poll_ms: 20,
        confirmations: 0,
        retries: 7,
        retry_backoff_ms: 1,
        rpc_timeout: 5.0,
        rps: None,
        headers: Vec::new(),
        max_response_mb: 64,
    }
}

async fn import(url: &str, into: &Mem, range: &RpcRange) -> Result<ImportStats, ImportError> {
    import_rpc(into, url, range, false, &CancellationToken::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_import_is_concurrent_ordered_and_verified() {
    let blocks = chain(1000, 61, B256::ZERO, 1);
    let with_uncles = blocks.iter().filter(|b| !b.extras.ommers.is_empty()).count();
    assert!(with_uncles > 0, "the chain has blocks with uncles");
    let source = mem_with(blocks).await;
    let node = FakeNode::start(&source, vec![]).await;
    let target = mem_with(vec![]).await;
    let stats = import(&node.url, &target, &range()).await.unwrap();
    assert_eq!(stats.blocks, 61);
    assert_same(&source, &target, 1000, 1060).await;
    // 16 batch requests of 4 blocks, plus chain id, head and earliest,
    // plus one batch of uncle headers per block with uncles.
    assert_eq!(node.state.forwarded.load(Ordering::SeqCst), 16 + 3 + with_uncles);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_import_retries_every_kind_of_transient_failure() {
    let source = mem_with(chain(50, 40, B256::ZERO, 2)).await;
    let faults = vec![
        Fault::Close,
        Fault::Http(503),
        Fault::Rpc(-32005),
        Fault::Http(429),
        Fault::Garbage,
        Fault::Rpc(-32603),
        Fault::Hang,
        Fault::Http(502),
    ];
    let node = FakeNode::start(&source, faults).await;
    let target = mem_with(vec![]).await;
    let range = RpcRange { rpc_timeout: 0.3, retries: 10, ..range() };
    let stats = import(&node.url, &target, &range).await.unwrap();
    assert_eq!(stats.blocks, 40);
    assert_eq!(node.state.faulted.load(Ordering::SeqCst), 8);
    assert_same(&source, &target, 50, 89).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_import_waits_for_a_node_that_refuses_connections() {
    let source = mem_with(chain(0, 10, B256::ZERO, 3)).await;
    // A port nobody listens on (yet): connections are refused.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let target = mem_with(vec![]).await;
    let range = RpcRange { retry_backoff_ms: 50, retries: 10, ..range() };
    let url = format!("http://{addr}");
    let started = Instant::now();
    let importing = tokio::spawn({
        let target = target.clone();
        async move { import(&url, &target, &range).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = TcpListener::bind(addr).await.unwrap();
    let _node = FakeNode::start_on(&source, listener, vec![]).await;
    let stats = importing.await.unwrap().unwrap();
    assert_eq!(stats.blocks, 10);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_same(&source, &target, 0, 9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_import_gives_up_with_a_clear_error_and_resumes_from_the_tip() {
    let blocks = chain(200, 50, B256::ZERO, 4);
    // Chain id, head and earliest, then 5 batches of 4 blocks (and one
    // uncle batch per block with uncles); then HTTP 503 forever.
    let uncle_batches = blocks[..20].iter().filter(|b| !b.extras.ommers.is_empty()).count();
    let source = mem_with(blocks).await;
    let node = FakeNode::start(&source, vec![]).await;
    *node.state.fail_after.lock() = Some((8 + uncle_batches, Fault::Http(503)));
    let target = mem_with(vec![]).await;
    let range = RpcRange { concurrency: 1, retries: 2, ..range() };
    let started = Instant::now();
    let err = import(&node.url, &target, &range).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("fetching blocks 220..=223"), "{text}");
    assert!(text.contains("gave up after 3 attempts"), "{text}");
    assert!(text.contains("HTTP 503"), "{text}");
    assert!(text.contains(&node.url), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The verified blocks before the failure were written.
    assert_eq!(target.tip().await.unwrap().unwrap().number, 219);

    // The same import, the node healthy again: it resumes after the tip.
    let stats = import(&node.direct, &target, &range).await.unwrap();
    assert_eq!(stats.blocks, 30);
    assert_same(&source, &target, 200, 249).await;
    // --from at or below the tip resumes after it too.
    source
        .append_blocks(chain(250, 3, source.tip().await.unwrap().unwrap().hash, 4))
        .await
        .unwrap();
    let stats = import(&node.direct, &target, &RpcRange { from: Some(200), ..range.clone() })
        .await
        .unwrap();
    assert_eq!(stats.blocks, 3);
    // A gap is refused.
    let err =
        import(&node.direct, &target, &RpcRange { from: Some(300), ..range }).await.unwrap_err();
    assert!(err.to_string().contains("must continue at block 253"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_import_does_not_retry_permanent_errors() {
    let source = mem_with(chain(0, 5, B256::ZERO, 5)).await;
    let node = FakeNode::start(&source, vec![Fault::Rpc(-32601)]).await;
    let target = mem_with(vec![]).await;
    let err = import(&node.url, &target, &range()).await.unwrap_err();
    assert!(matches!(err, ImportError::Client(_)), "{err}");
    assert!(err.to_string().contains("-32601"), "{err}");
    assert_eq!(node.state.faulted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_import_refuses_another_chain() {
    let source = mem_with(chain(0, 10, B256::ZERO, 6)).await;
    let node = FakeNode::start(&source, vec![]).await;
    let target = mem_with(chain(0, 5, B256::ZERO, 7)).await;
    let err = import(&node.url, &target, &range()).await.unwrap_err();
    assert!(matches!(err, ImportError::Diverged { number: 4, .. }), "{err}");
    assert_eq!(target.tip().await.unwrap().unwrap().number, 4);
}

/// A block that fails verification stops the import right after the block
/// before it, whatever the write batch: the verified prefix is written, and
/// a rerun continues from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_import_keeps_the_verified_prefix_before_a_bad_block() {
    let source = mem_with(chain(0, 150, B256::ZERO, 8)).await;
    let node = FakeNode::start(&source, vec![]).await;
    for (write_batch, batch) in [(100, 4), (1000, 16), (1, 1)] {
        *node.state.corrupt.lock() = Some(113);
        let target = mem_with(vec![]).await;
        let range = RpcRange { write_batch, batch, ..range() };
        let err = import(&node.url, &target, &range).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("block 113"), "{text}");
        assert_eq!(target.tip().await.unwrap().unwrap().number, 112, "write batch {write_batch}");
        assert_same(&source, &target, 0, 112).await;
        *node.state.corrupt.lock() = None;
        let stats = import(&node.url, &target, &range).await.unwrap();
        assert_eq!(stats.blocks, 150 - 113, "the rerun continues at block 113");
        assert_same(&source, &target, 0, 149).await;
    }
}

/// A follower that meets a bad block keeps the blocks before it, retries
/// with backoff while its status says why it is stuck, and catches up once
/// the node serves a good block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_follow_survives_a_bad_block_and_recovers() {
    let source = mem_with(chain(0, 40, B256::ZERO, 9)).await;
    let node = FakeNode::start(&source, vec![]).await;
    *node.state.corrupt.lock() = Some(25);
    let target = mem_with(vec![]).await;
    let status = super::rpc::FollowerStatus::new();
    let cancel = CancellationToken::new();
    let following = tokio::spawn({
        let (target, cancel, url, status) =
            (target.clone(), cancel.clone(), node.url.clone(), status.clone());
        async move {
            let range = RpcRange { follow: true, ..range() };
            super::rpc::follow_rpc(&target, &url, &range, &cancel, &status).await
        }
    });
    wait_until("two failed rounds", async || status.failures() >= 2).await;
    let (ok, detail) = status.health();
    assert!(!ok, "{detail}");
    assert_eq!(detail["alive"], true, "{detail}");
    assert_eq!(detail["store_tip"], 24, "the verified prefix is written: {detail}");
    assert_eq!(detail["lag"], 15, "{detail}");
    assert!(detail["last_error"].as_str().unwrap().contains("block 25"), "{detail}");
    assert_eq!(target.tip().await.unwrap().unwrap().number, 24);
    assert!(!following.is_finished(), "the follower keeps retrying");
    // The node repairs the block: the follower catches up and is healthy.
    *node.state.corrupt.lock() = None;
    source.append_blocks(chain(40, 5, source.tip().await.unwrap().unwrap().hash, 9)).await.unwrap();
    wait_until("the follower to catch up", async || {
        target.tip().await.unwrap().is_some_and(|t| t.number == 44)
    })
    .await;
    wait_until("a healthy status", async || status.health().0).await;
    let (_, detail) = status.health();
    assert_eq!(detail["lag"], 0, "{detail}");
    assert!(detail["total_failures"].as_u64().unwrap() >= 2, "{detail}");
    assert_same(&source, &target, 0, 44).await;
    cancel.cancel();
    following.await.unwrap().unwrap();
    assert_eq!(status.health().1["alive"], false, "a stopped follower says so");
}

async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Replaces the node's blocks above `keep` with `count` new ones (test
/// chain `seed`), which it returns.
async fn reorg(node: &Mem, keep: u64, count: u64, seed: u64) -> Vec<BlockData> {
    let parent = node.header(keep).await.unwrap().unwrap().hash();
    node.truncate_above(keep).await.unwrap();
    let blocks = chain(keep + 1, count, parent, seed);
    node.append_blocks(blocks.clone()).await.unwrap();
    blocks
}

/// Starts `import rpc --follow --confirmations 2` from `node` into
/// `target`; stop it with the token.
fn follow_two_below(
    node: &FakeNode,
    target: &Mem,
) -> (CancellationToken, tokio::task::JoinHandle<Result<ImportStats, ImportError>>) {
    let cancel = CancellationToken::new();
    let following = tokio::spawn({
        let (target, cancel, url) = (target.clone(), cancel.clone(), node.url.clone());
        async move {
            let range = RpcRange { follow: true, confirmations: 2, ..range() };
            import_rpc(&target, &url, &range, false, &cancel).await
        }
    });
    (cancel, following)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_follow_unwinds_reorgs_and_keeps_confirmations() {
    let source = mem_with(chain(100, 20, B256::ZERO, 8)).await;
    let node = FakeNode::start(&source, vec![]).await;
    let target = mem_with(vec![]).await;
    let (cancel, following) = follow_two_below(&node, &target);
    // Two blocks below the head.
    wait_until("block 117", async || target.durable_tip().is_some_and(|t| t.number == 117)).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(target.durable_tip().unwrap().number, 117);

    // The node replaces blocks 114.. with a longer fork.
    let fork = reorg(&source, 113, 12, 9).await;
    let new_tip = fork.last().unwrap().num_hash();
    wait_until("the fork", async || {
        target.durable_tip().is_some_and(|t| t.number == new_tip.number - 2)
    })
    .await;
    for block in &fork[..fork.len() - 2] {
        assert_eq!(target.header(block.number()).await.unwrap().unwrap().hash(), block.hash());
    }
    // A reorg to a shorter chain: the node's head drops below the store's tip.
    let short = reorg(&source, 110, 4, 10).await;
    wait_until("the short fork", async || {
        target.durable_tip().is_some_and(|t| t.number == 112)
            && target.header(112).await.unwrap().is_some_and(|h| h.hash() == short[1].hash())
    })
    .await;
    cancel.cancel();
    let stats = following.await.unwrap().unwrap();
    // 114..=117 unwound for the first fork, 111..=123 for the second.
    assert_eq!(stats.reorged, 4 + 13);
    assert_same(&source, &target, 100, 112).await;
}

/// A head read before the node reorged to a shorter chain must not set the
/// target after the unwind: the store then stays `confirmations` below the
/// new head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_follow_reads_the_head_again_after_an_unwind() {
    let source = mem_with(chain(100, 24, B256::ZERO, 8)).await;
    let node = FakeNode::start(&source, vec![]).await;
    let target = mem_with(vec![]).await;
    let (cancel, following) = follow_two_below(&node, &target);
    wait_until("block 121", async || target.durable_tip().is_some_and(|t| t.number == 121)).await;

    // The follower's next head read leaves while the node is at 123 ...
    let release = Arc::new(tokio::sync::Notify::new());
    *node.state.stale_head.lock() = Some(StaleHead { head: 123, release: release.clone() });
    wait_until("a held head read", async || node.state.held.load(Ordering::SeqCst) == 1).await;
    // ... and arrives after the node reorged to a chain with head 114.
    let short = reorg(&source, 110, 4, 10).await;
    release.notify_one();

    wait_until("the short fork", async || {
        target.header(111).await.unwrap().is_some_and(|h| h.hash() == short[0].hash())
    })
    .await;
    // Several polls later, still two blocks below the new head (112), not
    // at the old head's target.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tip = target.durable_tip().unwrap();
    assert_eq!((tip.number, tip.hash), (112, short[1].hash()));
    cancel.cancel();
    following.await.unwrap().unwrap();
}

// ---------------------------------------------------------------- JSON lines

fn jsonl_import_args(file: &Path) -> JsonlImportArgs {
    JsonlImportArgs {
        file: file.to_owned(),
        store: StoreSpec::Mem,
        batch: 7,
        workers: Some(2),
        to: None,
        chain_id: None,
    }
}

fn export_args(file: &Path) -> JsonlExportArgs {
    JsonlExportArgs {
        file: file.to_owned(),
        store: StoreSpec::Mem,
        from: None,
        to: None,
        concurrency: 4,
        read_only: false,
    }
}

async fn export_to(handle: &Mem, file: &Path) -> Vec<u8> {
    export_jsonl(handle, &export_args(file), false).await.unwrap();
    std::fs::read(file).unwrap()
}

async fn import_file(handle: &Mem, args: &JsonlImportArgs) -> Result<ImportStats, ImportError> {
    let mut stats = ImportStats::default();
    import_jsonl(handle, args, false, &CancellationToken::new(), &mut stats).await.map(|()| stats)
}

/// Export, import into an empty store, export again: the same bytes; the
/// lines are what `serve` answers.
async fn round_trip(blocks: Vec<BlockData>, dir: &Path) -> Vec<u8> {
    let (first, last) = (blocks[0].number(), blocks.last().unwrap().number());
    let a = mem_with(blocks).await;
    let first_export = export_to(&a, &dir.join("a.jsonl")).await;
    let b = mem_with(vec![]).await;
    let stats = import_file(&b, &jsonl_import_args(&dir.join("a.jsonl"))).await.unwrap();
    assert_eq!(stats.blocks, last - first + 1);
    let second_export = export_to(&b, &dir.join("b.jsonl")).await;
    assert!(first_export == second_export, "the round trip changed the export");
    assert_same(&a, &b, first, last).await;
    // Each line is what the JSON-RPC server answers.
    let server = serve(&a).await;
    let client = HttpClient::new(&format!("http://{}", server.local_addr())).unwrap();
    for line in first_export.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line: Value = serde_json::from_slice(line).unwrap();
        let n = &line["block"]["number"];
        let block: Value = client.call("eth_getBlockByNumber", json!([n, true])).await.unwrap();
        let receipts: Value = client.call("eth_getBlockReceipts", json!([n])).await.unwrap();
        assert_eq!(line["block"], block, "block {n}");
        assert_eq!(line["receipts"], receipts, "receipts {n}");
    }
    first_export
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_round_trip_is_byte_exact_on_w1() {
    let dir = tempfile::tempdir().unwrap();
    let w1 = coldchain_w1::W1::new(coldchain_w1::W1Params {
        blocks: 30,
        txs_per_block: 20,
        ..Default::default()
    });
    let blocks: Vec<_> = w1.blocks().collect();
    let bytes = round_trip(blocks, dir.path()).await;
    assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 30);
}

/// The fixture blocks, grouped into runs of consecutive blocks.
fn fixture_runs() -> Vec<Vec<BlockData>> {
    let mut blocks = testing::fixtures::mainnet_rlp_blocks();
    blocks.extend(testing::fixtures::mainnet_jsonrpc_blocks());
    blocks.sort_by_key(BlockData::number);
    let mut runs: Vec<Vec<BlockData>> = Vec::new();
    for block in blocks {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|p| p.hash() == block.header.parent_hash) => {
                run.push(block)
            }
            _ => runs.push(vec![block]),
        }
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_round_trip_is_byte_exact_on_mainnet_fixtures() {
    let runs = fixture_runs();
    // 16 blocks; 15537393-4, 17034869-70, 19426586-7, 19433902-3 and
    // 22431083-4 are consecutive.
    assert_eq!(runs.len(), 11);
    assert_eq!(runs.iter().map(Vec::len).sum::<usize>(), 16);
    let dir = tempfile::tempdir().unwrap();
    for run in runs {
        round_trip(run, dir.path()).await;
    }
}

/// A pre-Byzantium block: a legacy transaction and a receipt with a
/// post-state root instead of a status, no base fee.
fn pre_byzantium_block() -> BlockData {
    let tx = TxLegacy {
        chain_id: None,
        nonce: 7,
        gas_price: 50_000_000_000,
        gas_limit: 90_000,
        to: TxKind::Call(Address::repeat_byte(0x22)),
        value: U256::from(1_000_000u64),
        input: Bytes::from_static(&[1, 2, 3]),
    };
    let signature = Signature::new(U256::from(12345u64), U256::from(6789u64), false);
    let tx = TxEnvelope::Legacy(Signed::new_unhashed(tx, signature));
    let tx = RecoveredTx::new_unchecked(tx, Address::repeat_byte(0x11));
    let log = Log {
        address: Address::repeat_byte(0x33),
        data: LogData::new_unchecked(vec![B256::repeat_byte(0x44)], Bytes::from_static(&[9; 40])),
    };
    let receipt = ConsensusReceipt {
        status: Eip658Value::PostState(B256::repeat_byte(0x55)),
        cumulative_gas_used: 30_000,
        logs: vec![log],
    };
    let receipt = ReceiptEnvelope::Legacy(receipt.with_bloom());
    let header = Header {
        number: 1_000_000,
        gas_limit: 3_000_000,
        gas_used: 30_000,
        timestamp: 1_455_000_000,
        difficulty: U256::from(20_000_000_000_000u64),
        transactions_root: calculate_transaction_root(&[tx.inner().clone()]),
        receipts_root: calculate_receipt_root(std::slice::from_ref(&receipt)),
        logs_bloom: *receipt.logs_bloom(),
        ..Header::default()
    };
    BlockData::new(header.seal_slow(), vec![tx], vec![receipt]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_round_trip_keeps_pre_byzantium_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let block = pre_byzantium_block();
    coldchain::verify::verify_block(&block).unwrap();
    let bytes = round_trip(vec![block], dir.path()).await;
    let line: Value = serde_json::from_slice(&bytes).unwrap();
    let receipt = &line["receipts"][0];
    assert_eq!(receipt["root"], json!(B256::repeat_byte(0x55)));
    assert!(receipt.get("status").is_none(), "{receipt}");
    assert!(line["block"].get("baseFeePerGas").is_none());
}

/// A file of W1 lines and the store it came from.
async fn w1_file(dir: &Path, blocks: u64) -> (Mem, PathBuf, Vec<Value>) {
    let w1 = coldchain_w1::W1::new(coldchain_w1::W1Params {
        blocks,
        txs_per_block: 12,
        ..Default::default()
    });
    let a = mem_with(w1.blocks().collect()).await;
    let file = dir.join("w1.jsonl");
    let bytes = export_to(&a, &file).await;
    let lines = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    (a, file, lines)
}

fn write_lines(path: &Path, lines: &[Value]) {
    let mut out = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut out, line).unwrap();
        out.push(b'\n');
    }
    std::fs::write(path, out).unwrap();
}

/// The first receipt index of `line` with at least `logs` logs.
fn receipt_with_logs(line: &Value, logs: usize) -> usize {
    line["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["logs"].as_array().unwrap().len() >= logs)
        .expect("a receipt with logs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_corruptions_stop_right_before_the_bad_block_naming_block_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let (source, file, lines) = w1_file(dir.path(), 30).await;
    let first = 1_000_000u64;
    // The target holds blocks ..=first+9; the corruption is at first+12,
    // in the first batch after the tip (batch 7: first+10..=first+16):
    // first+10 and first+11 are written, nothing after them.
    let target = mem_with(vec![]).await;
    import_file(&target, &JsonlImportArgs { to: Some(first + 9), ..jsonl_import_args(&file) })
        .await
        .unwrap();
    let bad = 12usize;
    let number = first + bad as u64;

    type Corrupt = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Corrupt, Vec<String>)> = vec![
        (
            "a flipped byte in a receipt's log data",
            Box::new(|line: &mut Value| {
                let i = receipt_with_logs(line, 1);
                let data = line["receipts"][i]["logs"][0]["data"].as_str().unwrap().to_owned();
                let flipped = if data.ends_with('0') { "1" } else { "0" };
                line["receipts"][i]["logs"][0]["data"] =
                    json!(format!("{}{flipped}", &data[..data.len() - 1]));
            }),
            vec![format!("block {number}: receipts root mismatch")],
        ),
        (
            "a missing log",
            Box::new(|line: &mut Value| {
                let i = receipt_with_logs(line, 1);
                line["receipts"][i]["logs"].as_array_mut().unwrap().pop();
            }),
            vec![format!("block {number}: bloom of receipt"), "mismatch".into()],
        ),
        (
            "two transactions swapped, with their receipts and indexes",
            Box::new(|line: &mut Value| {
                let txs = line["block"]["transactions"].as_array_mut().unwrap();
                txs.swap(0, 1);
                txs[0]["transactionIndex"] = json!("0x0");
                txs[1]["transactionIndex"] = json!("0x1");
                let receipts = line["receipts"].as_array_mut().unwrap();
                receipts.swap(0, 1);
                let (g0, g1) =
                    (quantity(&receipts[0]["gasUsed"]), quantity(&receipts[1]["gasUsed"]));
                receipts[0]["transactionIndex"] = json!("0x0");
                receipts[1]["transactionIndex"] = json!("0x1");
                receipts[0]["cumulativeGasUsed"] = json!(format!("{g0:#x}"));
                receipts[1]["cumulativeGasUsed"] = json!(format!("{:#x}", g0 + g1));
            }),
            vec![format!("block {number}: transactions root mismatch")],
        ),
        (
            "two transactions swapped, nothing else",
            Box::new(|line: &mut Value| {
                line["block"]["transactions"].as_array_mut().unwrap().swap(0, 1);
            }),
            vec![format!("block {number}: transaction 0 has transactionIndex 1, expected 0")],
        ),
        (
            "a changed header field",
            Box::new(|line: &mut Value| line["block"]["gasLimit"] = json!("0x1")),
            vec![format!("block {number}: the converted header hashes to")],
        ),
    ];
    for (what, corrupt, expected) in cases {
        let mut lines = lines.clone();
        corrupt(&mut lines[bad]);
        let path = dir.path().join("corrupt.jsonl");
        write_lines(&path, &lines);
        let err = import_file(&target, &jsonl_import_args(&path)).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("corrupt.jsonl line {}", bad + 1)), "{what}: {text}");
        for e in expected {
            assert!(text.contains(&e), "{what}: {text}");
        }
        // The verified prefix is written, nothing of the bad block.
        assert_eq!(target.tip().await.unwrap().unwrap().number, number - 1, "{what}");
    }
    assert_same(&source, &target, first, number - 1).await;
    // The good file resumes after the tip.
    let stats = import_file(&target, &jsonl_import_args(&file)).await.unwrap();
    assert_eq!((stats.blocks, stats.skipped), (18, 12));
    assert_same(&source, &target, first, first + 29).await;
}

/// A bad line 114 (block 113 of the file) keeps the 113 lines before it,
/// whatever the write batch; a rerun of the fixed file continues there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_keeps_the_verified_prefix_before_a_bad_block() {
    let dir = tempfile::tempdir().unwrap();
    let (source, file, lines) = w1_file(dir.path(), 150).await;
    let first = 1_000_000u64;
    let mut bad = lines.clone();
    bad[113]["block"]["gasLimit"] = json!("0x1");
    let path = dir.path().join("bad.jsonl");
    write_lines(&path, &bad);
    for batch in [100, 1000] {
        let target = mem_with(vec![]).await;
        let args = JsonlImportArgs { batch, ..jsonl_import_args(&path) };
        let err = import_file(&target, &args).await.unwrap_err();
        assert!(err.to_string().contains("bad.jsonl line 114"), "{err}");
        assert_eq!(target.tip().await.unwrap().unwrap().number, first + 112, "batch {batch}");
        let args = JsonlImportArgs { batch, ..jsonl_import_args(&file) };
        let stats = import_file(&target, &args).await.unwrap();
        assert_eq!((stats.blocks, stats.skipped), (150 - 113, 113), "batch {batch}");
        assert_same(&source, &target, first, first + 149).await;
    }
}

fn quantity(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_refuses_gaps_other_chains_and_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file, lines) = w1_file(dir.path(), 12).await;
    // A gap inside the file.
    let mut gap = lines.clone();
    gap.remove(5);
    let path = dir.path().join("gap.jsonl");
    write_lines(&path, &gap);
    let target = mem_with(vec![]).await;
    let err = import_file(&target, &jsonl_import_args(&path)).await.unwrap_err();
    assert!(err.to_string().contains("the next block must be 1000005"), "{err}");
    assert!(err.to_string().starts_with(&format!("{} line 6:", path.display())), "{err}");
    let tip = target.tip().await.unwrap().unwrap().number;
    assert_eq!(tip, 1_000_004, "the blocks before the gap are written");
    // A store on another chain: the first block it holds differs.
    let other = mem_with(chain(1_000_000, 3, B256::ZERO, 1)).await;
    let err = import_file(&other, &jsonl_import_args(&file)).await.unwrap_err();
    assert!(matches!(err, ImportError::Diverged { number: 1_000_000, .. }), "{err}");
    // A store of another chain whose tip lies above the whole file: the
    // overlapping blocks are compared, not counted as "already stored".
    let above = chain(1_000_000, 40, B256::ZERO, 2);
    let store_hash = above[0].hash();
    let other = mem_with(above).await;
    let err = import_file(&other, &jsonl_import_args(&file)).await.unwrap_err();
    assert!(
        matches!(err, ImportError::Diverged { number: 1_000_000, store_hash: s, .. } if s == store_hash),
        "{err}"
    );
    let text = says_once(&err);
    assert!(text.contains(&format!("{} line 1: block 1000000 has hash", file.display())), "{text}");
    assert_eq!(other.tip().await.unwrap().unwrap().number, 1_000_039, "nothing changed");
    // An empty file.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let err = import_file(&other, &jsonl_import_args(&empty)).await.unwrap_err();
    assert!(err.to_string().contains("empty.jsonl: the file is empty"), "{err}");
    // Not JSON.
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, "\n{\"block\": 1}\n").unwrap();
    let err = import_file(&target, &jsonl_import_args(&path)).await.unwrap_err();
    assert!(err.to_string().contains("bad.jsonl line 2: not a block line"), "{err}");
}

// ---------------------------------------------------------------- era1

fn era1_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/era1")
}

const MAINNET_0: &str = "mainnet-00000-5ec1ffb8.era1";
const SEPOLIA_21: &str = "sepolia-00021-b8814b14.era1";

fn era1_args(path: PathBuf) -> Era1ImportArgs {
    Era1ImportArgs {
        path,
        store: StoreSpec::Mem,
        batch: 100,
        workers: Some(2),
        checksums: None,
        to: None,
        chain_id: None,
    }
}

async fn import_era1(handle: &Mem, args: &Era1ImportArgs) -> Result<ImportStats, ImportError> {
    let mut stats = ImportStats::default();
    era1::import_era1(handle, args, false, &CancellationToken::new(), &mut stats)
        .await
        .map(|()| stats)
}

#[test]
fn era1_copies_match_the_published_checksums() {
    let list = era1::read_checksums(&era1_dir().join("checksums.txt")).unwrap();
    assert_eq!(list.len(), 2);
    for name in [MAINNET_0, SEPOLIA_21] {
        let got = era1::sha256_file(&era1_dir().join(name)).unwrap();
        assert_eq!(list.get(name), Some(&got), "{name}");
    }
}

#[test]
fn era1_layout_and_epoch_accumulator_of_the_real_files() {
    let layout = era1::read_layout(&era1_dir().join(MAINNET_0)).unwrap();
    assert_eq!((layout.start, layout.count()), (0, 8192));
    let epoch = era1::scan_headers(&layout, None).unwrap();
    // Mainnet's genesis and block 1.
    assert_eq!(
        epoch.headers[0].hash(),
        "0xd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"
            .parse::<B256>()
            .unwrap()
    );
    assert_eq!(
        epoch.headers[1].hash(),
        "0x88e96d4537bea4d9c05d12549907b32561d3bf31f45aae734cdc119f13406cb6"
            .parse::<B256>()
            .unwrap()
    );
    assert!(epoch.headers.iter().all(|h| h.base_fee_per_gas.is_none()));
    assert!(epoch.headers.iter().any(|h| h.ommers_hash != alloy::consensus::EMPTY_OMMER_ROOT_HASH));
    // The published root of epoch 0 (its file name says 5ec1ffb8).
    assert_eq!(
        layout.accumulator,
        "0x5ec1ffb8c3b146f42606c74ced973dc16ec5a107c0345858c343fc94780b4218"
            .parse::<B256>()
            .unwrap()
    );
    let sepolia = era1::read_layout(&era1_dir().join(SEPOLIA_21)).unwrap();
    assert_eq!((sepolia.start, sepolia.count()), (172_032, 8192));
    era1::scan_headers(&sepolia, None).unwrap();
    // An empty list's root is the zero subtree root mixed with length 0.
    assert_ne!(era1::epoch_accumulator(&[]), B256::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn era1_imports_verify_recover_senders_and_round_trip_through_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let target = mem_with(vec![]).await;
    let args = Era1ImportArgs {
        checksums: Some(era1_dir().join("checksums.txt")),
        ..era1_args(era1_dir().join(SEPOLIA_21))
    };
    let stats = import_era1(&target, &args).await.unwrap();
    assert_eq!((stats.blocks, stats.transactions, stats.logs), (8192, 93, 0));
    // Senders: the recovered sender of every transaction, with the checked
    // (low-s) recovery too.
    use alloy::consensus::transaction::SignerRecoverable;
    let mut seen = 0;
    for n in [175_229u64, 175_434, 175_881, 175_990] {
        for tx in target.block_transactions(n).await.unwrap().unwrap() {
            assert_eq!(tx.inner().recover_signer().unwrap(), tx.signer());
            seen += 1;
        }
    }
    assert_eq!(seen, 9);
    // Exported and imported again: byte-exact.
    let a = export_to(&target, &dir.path().join("a.jsonl")).await;
    let b = mem_with(vec![]).await;
    import_file(&b, &jsonl_import_args(&dir.path().join("a.jsonl"))).await.unwrap();
    assert!(a == export_to(&b, &dir.path().join("b.jsonl")).await);

    // Mainnet's genesis epoch (ommers, Frontier headers), resumed after an
    // interruption (--to), then again with nothing left to do.
    let mainnet = mem_with(vec![]).await;
    let path = era1_dir().join(MAINNET_0);
    let stats =
        import_era1(&mainnet, &Era1ImportArgs { to: Some(1234), ..era1_args(path.clone()) })
            .await
            .unwrap();
    assert_eq!(stats.blocks, 1235);
    let stats = import_era1(&mainnet, &era1_args(path.clone())).await.unwrap();
    assert_eq!((stats.blocks, stats.skipped), (8192 - 1235, 1235));
    let stats = import_era1(&mainnet, &era1_args(path)).await.unwrap();
    assert_eq!((stats.blocks, stats.skipped), (0, 8192));
    assert_eq!(mainnet.tip().await.unwrap().unwrap().number, 8191);
    // One network per directory.
    let err = era1::list_files(&era1_dir()).unwrap_err();
    assert!(err.to_string().contains("is a mainnet archive but"), "{err}");
    // A store of another chain above the whole archive: the file's last
    // block is compared, not counted as "already stored".
    let other = mem_with(chain(0, 8300, B256::ZERO, 3)).await;
    let args = Era1ImportArgs { chain_id: Some(1), ..era1_args(era1_dir().join(MAINNET_0)) };
    let err = import_era1(&other, &args).await.unwrap_err();
    assert!(matches!(err, ImportError::Diverged { number: 8191, .. }), "{err}");
    says_once(&err);
    // Below the tip inside the archive: each skipped block is compared.
    let other = mem_with(chain(0, 300, B256::ZERO, 3)).await;
    let err = import_era1(&other, &args).await.unwrap_err();
    assert!(matches!(err, ImportError::Diverged { number: 0, .. }), "{err}");
    // The checksum list refuses a file it does not list correctly.
    let list = dir.path().join("list.txt");
    std::fs::write(&list, format!("{}  {SEPOLIA_21}\n", "00".repeat(32))).unwrap();
    let args = Era1ImportArgs { checksums: Some(list), ..era1_args(era1_dir().join(SEPOLIA_21)) };
    let err = import_era1(&mem_with(vec![]).await, &args).await.unwrap_err();
    assert!(err.to_string().contains("does not match the checksum list"), "{err}");
}

/// Each block's header and body RLP as an era1 archive holds them.
fn era1_raw_blocks(path: &Path) -> Vec<(u64, Vec<u8>, Vec<u8>)> {
    let layout = era1::read_layout(path).unwrap();
    let mut r = era1::E2Reader::open(path).unwrap();
    let mut out: Vec<(u64, Vec<u8>, Vec<u8>)> = Vec::new();
    while let Some(h) = r.next_header().unwrap() {
        let data = r.read_data(&h).unwrap();
        if h.ty == types::COMPRESSED_HEADER {
            let n = layout.start + out.len() as u64;
            out.push((n, era1::unsnappy(&data).unwrap(), Vec::new()));
        } else if h.ty == types::COMPRESSED_BODY {
            out.last_mut().unwrap().2 = era1::unsnappy(&data).unwrap();
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn era1_uncles_and_sizes_are_served_as_the_archive_holds_them() {
    use alloy::{consensus::BlockBody, rlp::Decodable};
    let path = era1_dir().join(MAINNET_0);
    let raw = era1_raw_blocks(&path);
    assert_eq!(raw.len(), 8192);
    let mainnet = mem_with(vec![]).await;
    import_era1(&mainnet, &era1_args(path)).await.unwrap();
    let server = serve(&mainnet).await;
    let client = HttpClient::new(&format!("http://{}", server.local_addr())).unwrap();
    let (mut with_uncles, mut uncles_seen) = (0, 0);
    for (n, header, body) in &raw {
        let decoded = BlockBody::<TxEnvelope>::decode(&mut body.as_slice()).unwrap();
        // Every block with uncles, and every 500th block.
        if decoded.ommers.is_empty() && n % 500 != 0 {
            continue;
        }
        with_uncles += usize::from(!decoded.ommers.is_empty());
        let q = format!("{n:#x}");
        let expected = testing::fixtures::block_rlp(header, body);
        let block: Value = client.call("eth_getBlockByNumber", json!([q, false])).await.unwrap();
        assert_eq!(quantity(&block["size"]), expected.len() as u64, "size of block {n}");
        let hashes: Vec<B256> = decoded.ommers.iter().map(Header::hash_slow).collect();
        assert_eq!(block["uncles"], json!(hashes), "uncles of block {n}");
        assert!(block.get("withdrawals").is_none(), "block {n} predates withdrawals");
        let raw_block: Bytes = client.call("debug_getRawBlock", json!([q])).await.unwrap();
        assert!(raw_block.as_ref() == expected.as_slice(), "raw block {n}");
        let raw_header: Bytes = client.call("debug_getRawHeader", json!([q])).await.unwrap();
        assert!(raw_header.as_ref() == header.as_slice(), "raw header {n}");
        assert_eq!(
            alloy::primitives::keccak256(&raw_header),
            block["hash"].as_str().unwrap().parse::<B256>().unwrap()
        );
        let count: Value =
            client.call("eth_getUncleCountByBlockHash", json!([block["hash"]])).await.unwrap();
        assert_eq!(quantity(&count), hashes.len() as u64);
        for (i, (hash, ommer)) in hashes.iter().zip(&decoded.ommers).enumerate() {
            let by_number: Value = client
                .call("eth_getUncleByBlockNumberAndIndex", json!([q, format!("{i:#x}")]))
                .await
                .unwrap();
            assert_eq!(by_number["hash"], json!(hash), "uncle {i} of block {n}");
            assert_eq!(quantity(&by_number["number"]), ommer.number);
            assert_eq!(by_number["uncles"], json!([]));
            assert!(by_number.get("transactions").is_none());
            let alone = testing::fixtures::block_rlp(
                &alloy::rlp::encode(ommer),
                &alloy::rlp::encode(BlockBody::<TxEnvelope>::default()),
            );
            assert_eq!(quantity(&by_number["size"]), alone.len() as u64, "size of uncle {i}");
            let by_hash: Value = client
                .call("eth_getUncleByBlockHashAndIndex", json!([block["hash"], format!("{i:#x}")]))
                .await
                .unwrap();
            assert_eq!(by_hash, by_number);
            uncles_seen += 1;
        }
        let past: Value = client
            .call("eth_getUncleByBlockNumberAndIndex", json!([q, format!("{:#x}", hashes.len())]))
            .await
            .unwrap();
        assert_eq!(past, Value::Null);
    }
    assert!(
        with_uncles > 100 && uncles_seen > with_uncles,
        "{with_uncles} blocks, {uncles_seen} uncles"
    );
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn era1_mainnet_with_uncles_round_trips_through_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let mainnet = mem_with(vec![]).await;
    let args = Era1ImportArgs { to: Some(2047), ..era1_args(era1_dir().join(MAINNET_0)) };
    import_era1(&mainnet, &args).await.unwrap();
    let a = export_to(&mainnet, &dir.path().join("a.jsonl")).await;
    let text = String::from_utf8(a.clone()).unwrap();
    assert!(text.lines().filter(|l| l.contains("\"uncles\":[{")).count() > 10, "lines with uncles");
    let b = mem_with(vec![]).await;
    import_file(&b, &jsonl_import_args(&dir.path().join("a.jsonl"))).await.unwrap();
    assert_same(&mainnet, &b, 0, 2047).await;
    assert!(a == export_to(&b, &dir.path().join("b.jsonl")).await);
}

/// Rewrites an era1 file record by record: `edit(block, type, data)` sees
/// every record's data (decompressed for the snappy records) and may change
/// it; the block index is rebuilt.
pub fn rewrite_era1(src: &Path, dst: &Path, edit: impl Fn(u64, [u8; 2], &mut Vec<u8>)) {
    let layout = era1::read_layout(src).unwrap();
    let mut r = era1::E2Reader::open(src).unwrap();
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    let mut block = layout.start;
    let mut seen_header = false;
    while let Some(h) = r.next_header().unwrap() {
        let mut data = r.read_data(&h).unwrap();
        if h.ty == types::BLOCK_INDEX {
            break;
        }
        if h.ty == types::COMPRESSED_HEADER {
            if seen_header {
                block += 1;
            }
            seen_header = true;
            offsets.push(out.len() as u64);
        }
        let snappy = [types::COMPRESSED_HEADER, types::COMPRESSED_BODY, types::COMPRESSED_RECEIPTS]
            .contains(&h.ty);
        if snappy {
            let mut raw = era1::unsnappy(&data).unwrap();
            let before = raw.clone();
            edit(block, h.ty, &mut raw);
            if raw != before {
                let mut enc = snap::write::FrameEncoder::new(Vec::new());
                std::io::Write::write_all(&mut enc, &raw).unwrap();
                data = enc.into_inner().unwrap();
            }
        } else {
            edit(block, h.ty, &mut data);
        }
        out.extend_from_slice(&h.ty);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&data);
    }
    let index_at = out.len() as u64;
    let mut index = layout.start.to_le_bytes().to_vec();
    for o in &offsets {
        index.extend_from_slice(&(*o as i64 - index_at as i64).to_le_bytes());
    }
    index.extend_from_slice(&(offsets.len() as u64).to_le_bytes());
    out.extend_from_slice(&types::BLOCK_INDEX);
    out.extend_from_slice(&(index.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&index);
    std::fs::write(dst, out).unwrap();
}

/// Swaps the first two transactions of an RLP body `[txs, ommers]`.
fn swap_first_two_txs(body: &mut Vec<u8>) {
    use alloy::rlp::{Decodable, Encodable};
    let mut decoded =
        alloy::consensus::BlockBody::<TxEnvelope, Header>::decode(&mut body.as_slice()).unwrap();
    decoded.transactions.swap(0, 1);
    body.clear();
    decoded.encode(body);
}

/// Adds 1 to the cumulative gas of the first receipt of an RLP receipt list.
fn bump_first_receipt_gas(receipts: &mut Vec<u8>) {
    use alloy::rlp::{Decodable, Encodable};
    let mut decoded = Vec::<ReceiptEnvelope>::decode(&mut receipts.as_slice()).unwrap();
    decoded[0].as_receipt_with_bloom_mut().unwrap().receipt.cumulative_gas_used += 1;
    receipts.clear();
    decoded.encode(receipts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn era1_corruptions_stop_right_before_the_bad_block_naming_block_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let src = era1_dir().join(SEPOLIA_21);
    // Written up to 175200; blocks 175223 (1 tx) and 175229 (2 txs) are in
    // the next batch (175201..=175300). A bad body or receipt keeps the
    // blocks before it; a header, total difficulty or accumulator that does
    // not verify (pass 1) refuses the file as a whole. The cases run in
    // block order on one store: each one's store is the last one's.
    let target = mem_with(vec![]).await;
    import_era1(&target, &Era1ImportArgs { to: Some(175_200), ..era1_args(src.clone()) })
        .await
        .unwrap();
    type Edit = Box<dyn Fn(u64, [u8; 2], &mut Vec<u8>)>;
    let cases: Vec<(&str, &str, Edit, Vec<&str>, u64)> = vec![
        (
            "a changed receipt",
            "receipt.era1",
            Box::new(|n, ty, data: &mut Vec<u8>| {
                if n == 175_223 && ty == types::COMPRESSED_RECEIPTS {
                    bump_first_receipt_gas(data);
                }
            }),
            vec!["block 175223: receipts root mismatch"],
            175_222,
        ),
        (
            "a flipped byte in a compressed receipt record",
            "flipped.era1",
            Box::new(|_, _, _: &mut Vec<u8>| {}),
            vec!["block 175223: receipts: snappy"],
            175_222,
        ),
        (
            "swapped transactions",
            "swapped.era1",
            Box::new(|n, ty, data: &mut Vec<u8>| {
                if n == 175_229 && ty == types::COMPRESSED_BODY {
                    swap_first_two_txs(data);
                }
            }),
            vec!["block 175229: transactions root mismatch"],
            175_228,
        ),
        (
            "a wrong total difficulty",
            "td.era1",
            Box::new(|n, ty, data: &mut Vec<u8>| {
                if n == 176_000 && ty == types::TOTAL_DIFFICULTY {
                    data[0] ^= 1;
                }
            }),
            vec!["block 176000: totalDifficulty mismatch"],
            175_228,
        ),
        (
            "a changed header",
            "header.era1",
            Box::new(|n, ty, data: &mut Vec<u8>| {
                if n == 180_000 && ty == types::COMPRESSED_HEADER {
                    use alloy::rlp::{Decodable, Encodable};
                    let mut h = Header::decode(&mut data.as_slice()).unwrap();
                    h.timestamp += 1;
                    data.clear();
                    h.encode(data);
                }
            }),
            vec!["block 180001: parentHash mismatch"],
            175_228,
        ),
        (
            "a wrong accumulator record",
            "accumulator.era1",
            Box::new(|_, ty, data: &mut Vec<u8>| {
                if ty == types::ACCUMULATOR {
                    data[31] ^= 1;
                }
            }),
            vec!["epoch accumulator mismatch"],
            175_228,
        ),
    ];
    for (what, name, edit, expected, tip) in cases {
        let path = dir.path().join(name);
        rewrite_era1(&src, &path, edit);
        if name == "flipped.era1" {
            flip_in_record(&path, 175_223, types::COMPRESSED_RECEIPTS);
        }
        let err = import_era1(&target, &era1_args(path)).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains(name), "{what}: {text}");
        for e in expected {
            assert!(text.contains(e), "{what}: {text}");
        }
        assert_eq!(target.tip().await.unwrap().unwrap().number, tip, "{what}");
    }
}

/// A truncated archive says so, wherever it was cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_era1_file_says_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(era1_dir().join(SEPOLIA_21)).unwrap();
    for cut in [bytes.len() - 1, bytes.len() - 20_000, bytes.len() / 2, 100] {
        let path = dir.path().join("cut.era1");
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let args = Era1ImportArgs { chain_id: Some(11_155_111), ..era1_args(path) };
        let target = mem_with(vec![]).await;
        let err = import_era1(&target, &args).await.unwrap_err();
        let text = says_once(&err);
        assert!(text.contains("cut.era1: the file is truncated"), "cut at {cut}: {text}");
        assert!(!text.contains("block index counts"), "{text}");
        assert!(target.tip().await.unwrap().is_none());
    }
}

/// A bad receipt in block 175223 keeps the blocks before it with write
/// batches of 100 and 1000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn era1_keeps_the_verified_prefix_before_a_bad_block() {
    let dir = tempfile::tempdir().unwrap();
    let src = era1_dir().join(SEPOLIA_21);
    let path = dir.path().join("receipt.era1");
    rewrite_era1(&src, &path, |n, ty, data: &mut Vec<u8>| {
        if n == 175_223 && ty == types::COMPRESSED_RECEIPTS {
            bump_first_receipt_gas(data);
        }
    });
    for batch in [100, 1000] {
        let target = mem_with(vec![]).await;
        // A renamed file names no network: the chain id is given.
        let args = Era1ImportArgs {
            batch,
            to: Some(175_300),
            chain_id: Some(11_155_111),
            ..era1_args(path.clone())
        };
        let err = import_era1(&target, &args).await.unwrap_err();
        assert!(err.to_string().contains("block 175223"), "{err}");
        assert_eq!(target.tip().await.unwrap().unwrap().number, 175_222, "batch {batch}");
    }
}

/// Flips a byte in the middle of the data of block `n`'s record of type `ty`.
fn flip_in_record(path: &Path, n: u64, ty: [u8; 2]) {
    let layout = era1::read_layout(path).unwrap();
    let mut r = era1::E2Reader::open(path).unwrap();
    r.seek(layout.offsets[(n - layout.start) as usize]).unwrap();
    loop {
        let h = r.next_header().unwrap().unwrap();
        if h.ty == ty {
            let mut bytes = std::fs::read(path).unwrap();
            bytes[(h.offset + 8 + u64::from(h.len) / 2) as usize] ^= 0x40;
            std::fs::write(path, bytes).unwrap();
            return;
        }
        r.skip_data(&h).unwrap();
    }
}

/// The fast decoder gives exactly the block alloy's types give, for every
/// kind of line at hand: W1, the mainnet fixtures (all five transaction
/// types, blobs, withdrawals), a pre-Byzantium receipt, Sepolia's legacy and
/// EIP-1559 transactions from an era1 archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_decoder_agrees_with_alloy_types() {
    let dir = tempfile::tempdir().unwrap();
    let mut sources: Vec<Vec<BlockData>> = fixture_runs();
    let w1 = coldchain_w1::W1::new(coldchain_w1::W1Params {
        blocks: 5,
        txs_per_block: 20,
        ..Default::default()
    });
    sources.push(w1.blocks().collect());
    sources.push(vec![pre_byzantium_block()]);
    let sepolia = mem_with(vec![]).await;
    import_era1(
        &sepolia,
        &Era1ImportArgs { to: Some(176_000), ..era1_args(era1_dir().join(SEPOLIA_21)) },
    )
    .await
    .unwrap();
    let mut types = std::collections::BTreeSet::new();
    let mut lines = 0;
    for (i, blocks) in sources.into_iter().enumerate() {
        let store = mem_with(blocks).await;
        let bytes = export_to(&store, &dir.path().join(format!("{i}.jsonl"))).await;
        lines += check_fast_lines(&bytes, &mut types);
    }
    let path = dir.path().join("sepolia.jsonl");
    let args = JsonlExportArgs { from: Some(175_800), ..export_args(&path) };
    export_jsonl(&sepolia, &args, false).await.unwrap();
    lines += check_fast_lines(&std::fs::read(&path).unwrap(), &mut types);
    assert_eq!(types.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert!(lines > 200, "{lines}");
    // Lines it does not handle fall back: an unknown transaction type.
    let line = br#"{"block":{"hash":"0x00"},"receipts":[]}"#;
    assert!(super::fast::decode(line).is_none());
}

fn check_fast_lines(bytes: &[u8], types: &mut std::collections::BTreeSet<u8>) -> usize {
    let mut n = 0;
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let slow = super::jsonl::parse_line_alloy(line).unwrap();
        if !slow.extras.ommers.is_empty() {
            // Blocks with uncles take the alloy path.
            assert!(super::fast::decode(line).is_none());
            continue;
        }
        let fast = super::fast::decode(line).expect("the fast decoder handles the line");
        assert_eq!(fast, slow);
        coldchain::verify::verify_block(&fast).unwrap();
        for tx in &fast.transactions {
            types.insert(alloy::eips::Typed2718::ty(tx.inner()));
        }
        n += 1;
    }
    n
}

/// A worker that panics becomes that job's `Panicked` error with the panic's
/// message (the payload, not the box holding it).
#[tokio::test]
async fn a_panicking_worker_reports_its_message() {
    use super::pipeline::{ordered, run_parallel};
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let producer = tokio::task::spawn_blocking(move || {
        let jobs = (0..3u32).map(Ok);
        run_parallel(
            jobs,
            2,
            |n| {
                assert!(n != 1, "worker gave up on job {n}");
                Ok(super::pipeline::Chunk::default())
            },
            &tx,
        );
    });
    let results: Vec<_> = ordered(rx).collect().await;
    producer.await.unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[2].is_ok());
    match &results[1] {
        Err(ImportError::Panicked(message)) => {
            assert_eq!(message, "worker gave up on job 1");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
}

/// The message `coldchain` prints for `err` (the error and its causes),
/// checked to say each clause once ([`crate::assert_no_repeated_clause`]).
fn says_once(err: &ImportError) -> String {
    let text = crate::causes(err);
    crate::assert_no_repeated_clause(&text);
    text
}
