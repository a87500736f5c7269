//! The backend under the `ColdStorage` handle: reads during writes see whole
//! blocks only (snapshot reads, no drain), streams and truncation through
//! the handle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use alloy::primitives::B256;
use coldchain::{
    ColdStorage, HeaderSpec, LogFilter, StreamParams,
    testing::{ChainShape, test_chain_with},
};
use common::{TestDb, server_available};
use futures::StreamExt;
use std::{sync::Arc, time::Duration};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_reads_during_writes_see_whole_blocks() {
    if !server_available("handle_reads_during_writes_see_whole_blocks").await {
        return;
    }
    let db = TestDb::create().await;
    let backend = db.open().await;
    let handle = ColdStorage::builder(backend)
        .read_timeout(Duration::from_secs(30))
        .write_timeout(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let shape = ChainShape { max_txs: 12, max_logs: 4, addresses: 5, topics: 6 };
    let chain = Arc::new(test_chain_with(100, 60, B256::ZERO, 0xFEED, shape));

    let writer = {
        let handle = handle.clone();
        let chain = chain.clone();
        tokio::spawn(async move {
            for batch in chain.chunks(4) {
                handle.append_blocks(batch.to_vec()).await.unwrap();
            }
        })
    };
    let mut readers = Vec::new();
    for r in 0..6u64 {
        let handle = handle.clone();
        let chain = chain.clone();
        readers.push(tokio::spawn(async move {
            let mut checks = 0;
            loop {
                let tip = handle.tip().await.unwrap();
                let Some(tip) = tip else {
                    tokio::task::yield_now().await;
                    continue;
                };
                let i = (tip.number - 100) as usize;
                assert_eq!(tip.hash, chain[i].hash());
                // The tip block is whole: all receipts and all logs.
                let receipts = handle.block_receipts(tip.number).await.unwrap().unwrap();
                assert_eq!(*receipts, chain[i].stored_receipts());
                let logs = handle.get_logs(LogFilter::range(100, tip.number), usize::MAX).await;
                let want: usize =
                    chain[..=i].iter().flat_map(|b| &b.receipts).map(|r| r.logs().len()).sum();
                assert_eq!(logs.unwrap().len(), want, "reader {r} at tip {}", tip.number);
                checks += 1;
                if tip.number == 159 {
                    return checks;
                }
            }
        }));
    }
    writer.await.unwrap();
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }

    // A stream through the handle equals get_logs.
    let filter = LogFilter::range(100, 159).address(coldchain::testing::test_address(2));
    let want = handle.get_logs(filter.clone(), usize::MAX).await.unwrap();
    let got: Vec<_> = handle
        .stream_logs(filter, StreamParams::default())
        .await
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert!(!want.is_empty());
    assert_eq!(got, want);

    // Truncate through the handle: no read serves a removed block.
    assert!(handle.header(150u64).await.unwrap().is_some());
    let drained = handle.drain_above(149).await.unwrap();
    assert_eq!(drained.len(), 10);
    assert_eq!(handle.header(150u64).await.unwrap(), None);
    assert_eq!(handle.header(HeaderSpec::Hash(chain[50].hash())).await.unwrap(), None);
    assert_eq!(handle.durable_tip().unwrap().number, 149);
    handle.shutdown().await;
}
