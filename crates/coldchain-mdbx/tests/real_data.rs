//! Real mainnet blocks (coldchain's `tests/data`) through an MDBX store:
//! every read and a range of log filters must answer exactly what the
//! in-memory backend answers for the same blocks, before and after a
//! reopen, and after a truncation; `verify` must find the store consistent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::{Address, B256};
use coldchain::{
    BlockData, ColdBackend, ColdRead, ColdWrite, Deadline, HeaderSpec, LogFilter, MemBackend,
    ReceiptSpec, TxSpec,
    testing::fixtures::{mainnet_jsonrpc_blocks, mainnet_rlp_blocks},
};
use coldchain_mdbx::{MdbxBackend, MdbxOptions};
use std::{collections::BTreeMap, time::Duration};
use tempfile::TempDir;

fn d() -> Deadline {
    Deadline::after("test", Duration::from_secs(120))
}

/// Groups blocks into runs of consecutive, linked blocks.
fn runs(mut blocks: Vec<BlockData>) -> Vec<Vec<BlockData>> {
    blocks.sort_by_key(BlockData::number);
    let mut out: Vec<Vec<BlockData>> = Vec::new();
    for b in blocks {
        match out.last_mut() {
            Some(run)
                if run.last().is_some_and(|l| {
                    l.number() + 1 == b.number() && b.header.parent_hash == l.hash()
                }) =>
            {
                run.push(b)
            }
            _ => out.push(vec![b]),
        }
    }
    out
}

/// Filters that exercise the index on real data: the most frequent
/// addresses and topics of the run, pairs of them, a rare one, and misses.
fn filters(run: &[BlockData]) -> Vec<LogFilter> {
    let (from, to) = (run[0].number(), run[run.len() - 1].number());
    let mut addresses: BTreeMap<Address, usize> = BTreeMap::new();
    let mut topics: [BTreeMap<B256, usize>; 4] = Default::default();
    for log in run.iter().flat_map(|b| &b.receipts).flat_map(|r| r.logs()) {
        *addresses.entry(log.address).or_default() += 1;
        for (i, t) in log.topics().iter().enumerate() {
            *topics[i].entry(*t).or_default() += 1;
        }
    }
    let top = |m: &BTreeMap<B256, usize>, n: usize| {
        let mut v: Vec<(usize, B256)> = m.iter().map(|(k, c)| (*c, *k)).collect();
        v.sort_by(|a, b| b.cmp(a));
        v.into_iter().take(n).map(|(_, k)| k).collect::<Vec<_>>()
    };
    let mut by_count: Vec<(usize, Address)> = addresses.iter().map(|(a, c)| (*c, *a)).collect();
    by_count.sort_by(|a, b| b.cmp(a));
    let range = LogFilter::range(from, to);
    let mut out = vec![range.clone(), LogFilter::at_hash(run[run.len() - 1].hash())];
    for (_, a) in by_count.iter().take(3) {
        out.push(range.clone().address(*a));
    }
    if let Some((_, rare)) = by_count.last() {
        out.push(range.clone().address(*rare));
    }
    if by_count.len() >= 2 {
        out.push(range.clone().address(by_count[0].1).address(by_count[by_count.len() - 1].1));
    }
    let t0 = top(&topics[0], 3);
    for t in &t0 {
        out.push(range.clone().topic(0, vec![*t]));
    }
    if let (Some(t), Some((_, a))) = (t0.first(), by_count.first()) {
        out.push(range.clone().address(*a).topic(0, vec![*t]));
    }
    let t1 = top(&topics[1], 2);
    let t2 = top(&topics[2], 2);
    if let (Some(a), Some(b)) = (t0.first(), t2.first()) {
        out.push(range.clone().topic(0, vec![*a]).topic(2, vec![*b]));
    }
    if !t1.is_empty() {
        out.push(range.clone().topic(1, t1.clone()));
        out.push(LogFilter::range(from, to).topic(0, t0.clone()).topic(1, t1));
    }
    if let Some(t) = top(&topics[3], 1).first() {
        out.push(range.clone().topic(3, vec![*t]));
    }
    out.push(range.clone().address(Address::repeat_byte(0xEE)));
    out.push(range.topic(0, vec![B256::repeat_byte(0xEE)]));
    out
}

/// Every read of `mdbx` equals the same read of `mem`.
async fn same_answers(mdbx: &MdbxBackend, mem: &MemBackend, run: &[BlockData], what: &str) {
    assert_eq!(mdbx.tip(d()).await.unwrap(), mem.tip(d()).await.unwrap(), "{what}: tip");
    for block in run {
        let n = block.number();
        let h = block.hash();
        for spec in [HeaderSpec::Number(n), HeaderSpec::Hash(h)] {
            assert_eq!(
                mdbx.header(spec, d()).await.unwrap(),
                mem.header(spec, d()).await.unwrap(),
                "{what}: header {spec:?}"
            );
            assert_eq!(
                mdbx.block_transactions(spec, d()).await.unwrap(),
                mem.block_transactions(spec, d()).await.unwrap(),
                "{what}: block_transactions {spec:?}"
            );
            assert_eq!(
                mdbx.block_receipts(spec, d()).await.unwrap(),
                mem.block_receipts(spec, d()).await.unwrap(),
                "{what}: block_receipts {spec:?}"
            );
        }
        for (i, tx) in block.transactions.iter().enumerate() {
            let th = *tx.inner().tx_hash();
            for spec in [TxSpec::Hash(th), TxSpec::BlockNumberIndex(n, i as u64)] {
                assert_eq!(
                    mdbx.transaction(spec, d()).await.unwrap(),
                    mem.transaction(spec, d()).await.unwrap(),
                    "{what}: transaction {spec:?}"
                );
            }
            let spec = ReceiptSpec::TxHash(th);
            assert_eq!(
                mdbx.receipt(spec, d()).await.unwrap(),
                mem.receipt(spec, d()).await.unwrap(),
                "{what}: receipt {spec:?}"
            );
        }
    }
    for f in filters(run) {
        let got = mdbx.get_logs(&f, usize::MAX, d()).await;
        let want = mem.get_logs(&f, usize::MAX, d()).await;
        match (got, want) {
            (Ok(g), Ok(w)) => {
                assert!(g == w, "{what}: get_logs {f:?}: {} vs {} logs", g.len(), w.len())
            }
            (g, w) => assert_eq!(
                g.map(|l| l.len()).map_err(|e| e.kind()),
                w.map(|l| l.len()).map_err(|e| e.kind()),
                "{what}: get_logs {f:?}"
            ),
        }
    }
}

async fn check_run(run: Vec<BlockData>) {
    let dir = TempDir::new().unwrap();
    let label = format!("blocks {}..={}", run[0].number(), run[run.len() - 1].number());
    let mut mem = MemBackend::new();
    mem.append_blocks(run.clone(), d()).await.unwrap();
    {
        let mut mdbx = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
        mdbx.append_blocks(run.clone(), d()).await.unwrap();
        same_answers(&mdbx, &mem, &run, &label).await;
        let report = mdbx.verify().unwrap();
        assert!(report.is_ok(), "{label}: {report}");
        let logs: usize = run.iter().flat_map(|b| &b.receipts).map(|r| r.logs().len()).sum();
        assert_eq!(report.logs, logs as u64, "{label}: logs counted by verify");
    }
    // Reopened: everything is still there.
    let mut mdbx = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
    same_answers(&mdbx, &mem, &run, &format!("{label} after reopen")).await;
    if run.len() > 1 {
        let keep = run[0].number();
        let drained = mdbx.drain_above(keep, d()).await.unwrap();
        let expected = mem.drain_above(keep, d()).await.unwrap();
        assert_eq!(drained, expected, "{label}: drained blocks");
        same_answers(&mdbx, &mem, &run[..1], &format!("{label} after drain")).await;
        let report = mdbx.verify().unwrap();
        assert!(report.is_ok(), "{label} after drain: {report}");
        // And back again.
        mdbx.append_blocks(run[1..].to_vec(), d()).await.unwrap();
        mem.append_blocks(run[1..].to_vec(), d()).await.unwrap();
        same_answers(&mdbx, &mem, &run, &format!("{label} re-appended")).await;
    }
    mdbx.truncate_above(0, d()).await.unwrap();
    assert_eq!(mdbx.tip(d()).await.unwrap(), None, "{label}: emptied");
    let report = mdbx.verify().unwrap();
    assert!(report.is_ok() && report.index_entries == 0 && report.tx_hash_entries == 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainnet_rlp_blocks_round_trip() {
    for run in runs(mainnet_rlp_blocks()) {
        check_run(run).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainnet_jsonrpc_blocks_round_trip() {
    for run in runs(mainnet_jsonrpc_blocks()) {
        check_run(run).await;
    }
}
