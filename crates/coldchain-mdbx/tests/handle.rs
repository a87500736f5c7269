//! Smoke test of the `ColdStorage` handle over MDBX: appends, reads, logs,
//! streams, truncate and drain through the handle; readers and a stream
//! running while a writer appends (snapshot reads: no drain before writes);
//! persistence across a reopen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::B256;
use coldchain::{
    BlockData, ColdStorage, HeaderSpec, LogFilter, ReceiptSpec, RpcLog, StreamParams, TxSpec,
    testing::{ChainShape, TestRng, test_address, test_chain_with, test_topic},
};
use coldchain_mdbx::{MdbxBackend, MdbxOptions};
use futures::StreamExt;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};
use tempfile::TempDir;

const SHAPE: ChainShape = ChainShape { max_txs: 8, max_logs: 4, addresses: 6, topics: 8 };

fn brute_force(blocks: &[BlockData], filter: &LogFilter, from: u64, to: u64) -> Vec<RpcLog> {
    blocks
        .iter()
        .filter(|b| (from..=to).contains(&b.number()))
        .flat_map(|b| b.stored_receipts())
        .flat_map(|r| r.rpc_logs().collect::<Vec<_>>())
        .filter(|l| filter.matches(&l.inner))
        .collect()
}

async fn collect(storage: &ColdStorage<MdbxBackend>, filter: LogFilter) -> Vec<RpcLog> {
    let mut stream = storage.stream_logs(filter, StreamParams::default()).await.unwrap();
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_smoke() {
    let dir = TempDir::new().unwrap();
    let blocks = Arc::new(test_chain_with(0, 160, B256::ZERO, 0x5EED, SHAPE));
    let backend = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
    let storage = ColdStorage::new(backend).await.unwrap();
    assert_eq!(storage.tip().await.unwrap(), None);

    for chunk in blocks[..40].chunks(10) {
        storage.append_blocks(chunk.to_vec()).await.unwrap();
    }
    assert_eq!(storage.tip().await.unwrap(), Some(blocks[39].num_hash()));
    assert_eq!(storage.durable_tip(), Some(blocks[39].num_hash()));
    for block in &blocks[..40] {
        let n = block.number();
        assert_eq!(storage.header(n).await.unwrap().as_ref(), Some(&block.header));
        assert_eq!(storage.header(block.hash()).await.unwrap().as_ref(), Some(&block.header));
        let receipts = storage.block_receipts(n).await.unwrap().unwrap();
        assert_eq!(*receipts, block.stored_receipts());
        for (i, tx) in block.transactions.iter().enumerate() {
            let h = *tx.inner().tx_hash();
            let got = storage.transaction(TxSpec::Hash(h)).await.unwrap().unwrap();
            assert_eq!(&got.tx, tx);
            assert_eq!(got.meta.index, i as u64);
            let r = storage.receipt(ReceiptSpec::TxHash(h)).await.unwrap().unwrap();
            assert_eq!(r, receipts[i]);
        }
    }
    let filters = [
        (0, 39, LogFilter::range(0, 39)),
        (5, 30, LogFilter::range(5, 30).address(test_address(1))),
        (
            0,
            39,
            LogFilter::range(0, 39)
                .topic(0, vec![test_topic(2), test_topic(3)])
                .topic(1, vec![test_topic(4)]),
        ),
    ];
    for (from, to, f) in &filters {
        let logs = storage.get_logs(f.clone(), usize::MAX).await.unwrap();
        assert!(logs == brute_force(&blocks, f, *from, *to), "{f:?}");
        assert!(!logs.is_empty(), "{f:?} matches something");
        assert_eq!(collect(&storage, f.clone()).await, logs, "stream of {f:?}");
        let n = logs.len();
        assert!(storage.get_logs(f.clone(), n).await.is_ok());
        // One log fewer: too many, unless every match is in one block (the
        // first matching block comes back whole).
        if logs.first().map(|l| l.block_number) != logs.last().map(|l| l.block_number) {
            let err = storage.get_logs(f.clone(), n - 1).await.unwrap_err();
            assert_eq!(err.kind(), "too_many_logs", "{f:?}");
        }
    }

    // Readers and streams while a writer appends block by block.
    let done = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let writer = {
        let storage = storage.clone();
        let blocks = blocks.clone();
        tokio::spawn(async move {
            for block in &blocks[40..] {
                storage.append_block(block.clone()).await.unwrap();
            }
        })
    };
    let mut readers = Vec::new();
    for r in 0..6u64 {
        let storage = storage.clone();
        let blocks = blocks.clone();
        let done = done.clone();
        let checks = checks.clone();
        readers.push(tokio::spawn(async move {
            let mut rng = TestRng::new(r);
            while !done.load(Ordering::Relaxed) {
                let n = rng.below(blocks.len() as u64);
                let block = &blocks[n as usize];
                match storage.header(n).await.unwrap() {
                    None => {}
                    Some(h) => {
                        assert_eq!(h, block.header, "reader {r}: header {n}");
                        // Blocks only come, so everything up to n is there.
                        let receipts = storage.block_receipts(HeaderSpec::Hash(block.hash())).await;
                        assert_eq!(*receipts.unwrap().unwrap(), block.stored_receipts());
                        let f =
                            LogFilter::range(n.saturating_sub(20), n).address(test_address(r % 6));
                        let logs = storage.get_logs(f.clone(), usize::MAX).await.unwrap();
                        assert!(logs == brute_force(&blocks, &f, n.saturating_sub(20), n), "{f:?}");
                        if let Some(tx) = block.transactions.first() {
                            let got =
                                storage.transaction(TxSpec::Hash(*tx.inner().tx_hash())).await;
                            assert_eq!(&got.unwrap().unwrap().tx, tx);
                        }
                        checks.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if rng.below(10) == 0 {
                    // A stream sees one snapshot: the logs of 0..=k for the
                    // tip k it started at.
                    let before = storage.tip().await.unwrap().map_or(0, |t| t.number);
                    let f = LogFilter {
                        blocks: coldchain::BlockSelector::Range { from: Some(0), to: None },
                        ..Default::default()
                    }
                    .topic(0, vec![test_topic(1)]);
                    let got = collect(&storage, f.clone()).await;
                    let after = storage.tip().await.unwrap().map_or(0, |t| t.number);
                    assert!(
                        (before..=after).any(|k| got == brute_force(&blocks, &f, 0, k)),
                        "reader {r}: a stream is the logs of a prefix"
                    );
                }
            }
        }));
    }
    writer.await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(checks.load(Ordering::Relaxed) > 50, "readers ran during the writes");
    let tip = storage.tip().await.unwrap().unwrap();
    assert_eq!(tip, blocks[159].num_hash());
    assert_eq!(storage.wait_for_block(159).await.unwrap(), tip);

    // Truncate and drain through the handle.
    storage.truncate_above(120).await.unwrap();
    assert_eq!(storage.tip().await.unwrap(), Some(blocks[120].num_hash()));
    assert_eq!(storage.header(121u64).await.unwrap(), None);
    let all = LogFilter::range(0, 200);
    assert_eq!(
        storage.get_logs(all.clone(), usize::MAX).await.unwrap(),
        brute_force(&blocks, &all, 0, 120)
    );
    let drained = storage.drain_above(110).await.unwrap();
    let numbers: Vec<u64> = drained.iter().map(|d| d.header.number).collect();
    assert_eq!(numbers, (111..=120).collect::<Vec<_>>());
    for (d, b) in drained.iter().zip(&blocks[111..]) {
        assert_eq!(d.receipts, b.stored_receipts());
    }
    assert_eq!(collect(&storage, all.clone()).await, brute_force(&blocks, &all, 0, 110));
    storage.shutdown().await;
    drop(storage);

    // Persisted.
    let backend = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
    let report = backend.verify().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.tip, Some(110));
    let storage = ColdStorage::new(backend).await.unwrap();
    assert_eq!(storage.durable_tip(), Some(blocks[110].num_hash()));
    assert_eq!(
        storage.get_logs(all.clone(), usize::MAX).await.unwrap(),
        brute_force(&blocks, &all, 0, 110)
    );
    storage.append_blocks(blocks[111..].to_vec()).await.unwrap();
    assert_eq!(storage.tip().await.unwrap(), Some(blocks[159].num_hash()));
    storage.shutdown().await;
}
