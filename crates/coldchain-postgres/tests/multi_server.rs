//! Two servers on one database: two backends (two pools), two handles. One
//! writes while both read; both stay consistent; the other's tip follows
//! through LISTEN/NOTIFY (and the polling fallback); two writers never
//! interleave.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use alloy::{eips::BlockNumHash, primitives::B256};
use coldchain::{
    ColdError, ColdRead, ColdStorage, ColdWrite, HeaderSpec, LogFilter,
    testing::{ChainShape, test_chain, test_chain_with},
};
use coldchain_postgres::PgOptions;
use common::{TestDb, dl, server_available};
use std::{sync::Arc, time::Duration};

async fn wait_tip(
    rx: &mut tokio::sync::watch::Receiver<Option<BlockNumHash>>,
    want: Option<BlockNumHash>,
    within: Duration,
) {
    let reached = tokio::time::timeout(within, rx.wait_for(|t| *t == want)).await.is_ok();
    assert!(reached, "tip did not become {want:?} within {within:?}: {:?}", *rx.borrow());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_one_database() {
    if !server_available("two_handles_one_database").await {
        return;
    }
    let db = TestDb::create().await;
    // The reader polls only every minute: its tip must follow by NOTIFY.
    let slow_poll =
        PgOptions { tip_poll_interval: Duration::from_secs(60), ..PgOptions::default() };
    let writer = ColdStorage::new(db.open().await).await.unwrap();
    let reader = ColdStorage::new(db.open_with(slow_poll).await).await.unwrap();
    let shape = ChainShape { max_txs: 8, max_logs: 3, addresses: 4, topics: 5 };
    let chain = Arc::new(test_chain_with(0, 40, B256::ZERO, 0xAB, shape));

    let mut reader_tip = reader.tip_watch();
    let mut readers = Vec::new();
    for handle in [writer.clone(), reader.clone()] {
        let chain = chain.clone();
        readers.push(tokio::spawn(async move {
            let mut last = 0;
            while last < 39 {
                let Some(tip) = handle.tip().await.unwrap() else {
                    tokio::task::yield_now().await;
                    continue;
                };
                assert!(tip.number >= last, "tip went back");
                last = tip.number;
                let i = tip.number as usize;
                assert_eq!(tip.hash, chain[i].hash());
                let receipts = handle.block_receipts(tip.number).await.unwrap().unwrap();
                assert_eq!(*receipts, chain[i].stored_receipts());
            }
        }));
    }
    for batch in chain.chunks(5) {
        writer.append_blocks(batch.to_vec()).await.unwrap();
        let tip = batch.last().unwrap().num_hash();
        // The reader's tip watch follows the other server's write.
        wait_tip(&mut reader_tip, Some(tip), Duration::from_secs(5)).await;
        assert_eq!(reader.durable_tip(), Some(tip));
    }
    for r in readers {
        r.await.unwrap();
    }
    reader.wait_for_block(39).await.unwrap();
    for n in [0u64, 17, 39] {
        assert_eq!(
            reader.block_receipts(n).await.unwrap(),
            writer.block_receipts(n).await.unwrap()
        );
    }
    let all = LogFilter::range(0, 39);
    assert_eq!(
        reader.get_logs(all.clone(), usize::MAX).await.unwrap(),
        writer.get_logs(all, usize::MAX).await.unwrap()
    );

    // The reader caches block 30; the writer reorgs it away: the reader's
    // tip follows and its cache does not serve the old block.
    let old30 = reader.header(30u64).await.unwrap().unwrap();
    assert_eq!(old30, chain[30].header);
    writer.truncate_above(25).await.unwrap();
    let fork = test_chain_with(26, 10, chain[25].hash(), 0xCD, shape);
    writer.append_blocks(fork.clone()).await.unwrap();
    wait_tip(&mut reader_tip, Some(fork.last().unwrap().num_hash()), Duration::from_secs(5)).await;
    assert_eq!(reader.header(30u64).await.unwrap().unwrap(), fork[4].header);
    assert_eq!(reader.header(HeaderSpec::Hash(chain[30].hash())).await.unwrap(), None);
    writer.shutdown().await;
    reader.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tip_updates_follow_notify_and_polling() {
    if !server_available("tip_updates_follow_notify_and_polling").await {
        return;
    }
    let db = TestDb::create().await;
    let fast_poll =
        PgOptions { tip_poll_interval: Duration::from_millis(200), ..PgOptions::default() };
    let mut a = db.open().await;
    let b = db.open_with(fast_poll).await;
    let mut rx = b.tip_updates().expect("tip updates need a runtime");
    wait_tip(&mut rx, None, Duration::from_secs(5)).await;
    let chain = test_chain(0, 6, B256::ZERO, 3);
    a.append_blocks(chain[..3].to_vec(), dl()).await.unwrap();
    wait_tip(&mut rx, Some(chain[2].num_hash()), Duration::from_secs(5)).await;
    a.truncate_above(0, dl()).await.unwrap();
    wait_tip(&mut rx, Some(chain[0].num_hash()), Duration::from_secs(5)).await;

    // A change without NOTIFY (as an old writer would make) arrives by
    // polling, within the poll interval.
    let client = db.client().await;
    client
        .execute(
            "UPDATE coldchain.meta SET tip_number = 77, tip_hash = $1",
            &[&B256::repeat_byte(7).as_slice()],
        )
        .await
        .unwrap();
    wait_tip(&mut rx, Some(BlockNumHash::new(77, B256::repeat_byte(7))), Duration::from_secs(2))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_never_interleave() {
    if !server_available("two_writers_never_interleave").await {
        return;
    }
    let db = TestDb::create().await;
    let mut a = db.open().await;
    let base = test_chain(0, 5, B256::ZERO, 21);
    a.append_blocks(base.clone(), dl()).await.unwrap();
    // Rounds of two competing forks on top of the same tip, from two
    // backends at once: exactly one wins each round.
    for round in 0..10u64 {
        let tip = a.tip(dl()).await.unwrap().unwrap();
        let fork_a = test_chain(tip.number + 1, 3, tip.hash, 100 + round);
        let fork_b = test_chain(tip.number + 1, 3, tip.hash, 200 + round);
        let mut b = db.open().await;
        let mut a2 = a.clone();
        let (ra, rb) = tokio::join!(
            a2.append_blocks(fork_a.clone(), dl()),
            b.append_blocks(fork_b.clone(), dl())
        );
        let winner = match (ra, rb) {
            (Ok(()), Err(e)) => {
                assert!(matches!(e, ColdError::NotContiguous { .. }), "{e:?}");
                &fork_a
            }
            (Err(e), Ok(())) => {
                assert!(matches!(e, ColdError::NotContiguous { .. }), "{e:?}");
                &fork_b
            }
            other => panic!("round {round}: {other:?}"),
        };
        assert_eq!(a.tip(dl()).await.unwrap(), Some(winner.last().unwrap().num_hash()));
        for block in winner {
            let got = b.block_receipts(HeaderSpec::Number(block.number()), dl()).await.unwrap();
            assert_eq!(got.unwrap(), block.stored_receipts());
        }
    }
}
