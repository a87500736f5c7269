//! Index runs: journal flushes and compactions keep every answer the same as
//! the in-memory backend's, `verify` stays clean after each step, and
//! truncations into compacted runs remove exactly what they must.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::B256;
use coldchain::{
    BlockData, ColdRead, ColdWrite, Deadline, LogFilter, MemBackend, TxSpec,
    testing::{ChainShape, test_address, test_chain_with, test_topic},
};
use coldchain_mdbx::{MdbxBackend, MdbxOptions};
use std::time::Duration;
use tempfile::TempDir;

fn d() -> Deadline {
    Deadline::after("test", Duration::from_secs(60))
}

const SHAPE: ChainShape = ChainShape { max_txs: 5, max_logs: 4, addresses: 5, topics: 7 };
const START: u64 = 100;

/// Every address and topic query over the whole chain and over a few
/// windows, and every tx by hash, answered the same by both backends.
async fn same_answers(mdbx: &MdbxBackend, mem: &MemBackend, chain: &[BlockData], tip: u64) {
    let mut filters = Vec::new();
    let windows = [(START, tip), (START + 3, tip.saturating_sub(4).max(START + 3)), (tip, tip)];
    for (from, to) in windows {
        for i in 0..SHAPE.addresses {
            filters.push(LogFilter::range(from, to).address(test_address(i)));
        }
        for pos in 0..3 {
            for i in 0..SHAPE.topics {
                filters.push(LogFilter::range(from, to).topic(pos, vec![test_topic(i)]));
            }
        }
        filters.push(
            LogFilter::range(from, to)
                .address(test_address(0))
                .address(test_address(2))
                .topic(0, vec![test_topic(1), test_topic(3)]),
        );
    }
    for f in &filters {
        let a = mdbx.get_logs(f, usize::MAX, d()).await.unwrap();
        let b = mem.get_logs(f, usize::MAX, d()).await.unwrap();
        assert_eq!(a, b, "get_logs {f:?} at tip {tip}");
    }
    for block in chain {
        for tx in &block.transactions {
            let h = *tx.inner().tx_hash();
            let a = mdbx.transaction(TxSpec::Hash(h), d()).await.unwrap();
            let b = mem.transaction(TxSpec::Hash(h), d()).await.unwrap();
            assert_eq!(a, b, "tx {h} at tip {tip}");
        }
    }
    assert_eq!(mdbx.transaction(TxSpec::Hash(B256::repeat_byte(7)), d()).await.unwrap(), None);
}

fn verify(mdbx: &MdbxBackend, at: &str) -> u64 {
    let report = mdbx.verify().unwrap();
    assert!(report.is_ok(), "{at}: {report}");
    report.index_runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_compact_and_truncate_like_the_model() {
    let dir = TempDir::new().unwrap();
    // Journal of 5, keep 2: a flush of 3 blocks every 3 appends; fanout 2.
    let mut mdbx = MdbxBackend::open(dir.path(), MdbxOptions::for_tests_small_journal()).unwrap();
    let mut mem = MemBackend::new();
    let chain = test_chain_with(START, 100, B256::ZERO, 11, SHAPE);

    let mut most_runs = 0;
    for (i, block) in chain.iter().enumerate() {
        mdbx.append_blocks(vec![block.clone()], d()).await.unwrap();
        mem.append_blocks(vec![block.clone()], d()).await.unwrap();
        let runs = verify(&mdbx, &format!("after block {}", block.number()));
        most_runs = most_runs.max(runs);
        if i % 17 == 16 {
            same_answers(&mdbx, &mem, &chain[..=i], block.number()).await;
        }
    }
    // 98 merged blocks in 32 flushes: compactions keep at most one run per
    // level (fanout 2), so never more than 6 runs; without them, 32.
    assert!(most_runs <= 6, "{most_runs} runs at once");
    assert!(most_runs >= 2, "{most_runs} runs at most: the flushes did not run");
    let tip = START + 99;
    same_answers(&mdbx, &mem, &chain, tip).await;

    // Truncate into the oldest (most compacted) run, then into the middle,
    // then by one block; append back each time.
    for cut in [START + 5, START + 50, START + 97, START] {
        mdbx.truncate_above(cut, d()).await.unwrap();
        mem.truncate_above(cut, d()).await.unwrap();
        verify(&mdbx, &format!("after truncating above {cut}"));
        let kept = (cut - START + 1) as usize;
        same_answers(&mdbx, &mem, &chain[..kept], cut).await;
        mdbx.append_blocks(chain[kept..].to_vec(), d()).await.unwrap();
        mem.append_blocks(chain[kept..].to_vec(), d()).await.unwrap();
        verify(&mdbx, &format!("after appending back above {cut}"));
        same_answers(&mdbx, &mem, &chain, tip).await;
    }
}
