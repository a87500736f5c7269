//! Real mainnet blocks (coldchain's fixtures) through PostgreSQL: every read
//! path gives back exactly what was appended, and the rebuilt blocks verify
//! against their roots and blooms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use coldchain::{
    BlockData, ColdBackend, ColdRead, ColdWrite, HeaderSpec, LogFilter, ReceiptSpec, TxSpec,
    testing::fixtures::{mainnet_jsonrpc_blocks, mainnet_rlp_blocks},
    verify::verify_block,
};
use coldchain_postgres::PostgresBackend;
use common::{TestDb, dl, server_available};

async fn check_block(store: &PostgresBackend, block: &BlockData) {
    let n = block.number();
    let hash = block.hash();
    let header = store.header(HeaderSpec::Number(n), dl()).await.unwrap().unwrap();
    assert_eq!(header, block.header);
    assert_eq!(header.hash(), hash);
    assert_eq!(store.header(HeaderSpec::Hash(hash), dl()).await.unwrap().unwrap(), header);

    let txs = store.block_transactions(HeaderSpec::Hash(hash), dl()).await.unwrap().unwrap();
    assert_eq!(txs, block.transactions, "block {n}: transactions");
    let receipts = store.block_receipts(HeaderSpec::Number(n), dl()).await.unwrap().unwrap();
    let expected = block.stored_receipts();
    assert_eq!(receipts, expected, "block {n}: receipts");
    let by_hash = store.block_receipts(HeaderSpec::Hash(hash), dl()).await.unwrap().unwrap();
    assert_eq!(by_hash, expected);

    for (i, tx) in block.transactions.iter().enumerate() {
        let tx_hash = *tx.inner().tx_hash();
        let found = store.transaction(TxSpec::Hash(tx_hash), dl()).await.unwrap().unwrap();
        assert_eq!(&found.tx, tx);
        assert_eq!(found.meta, block.tx_meta(i).unwrap());
        let r = store.receipt(ReceiptSpec::TxHash(tx_hash), dl()).await.unwrap().unwrap();
        assert_eq!(r, expected[i], "block {n}: receipt {i} by hash");
        if i % 17 == 0 {
            let r = store.receipt(ReceiptSpec::BlockHashIndex(hash, i as u64), dl()).await;
            assert_eq!(r.unwrap().unwrap(), expected[i]);
            let t = store.transaction(TxSpec::BlockNumberIndex(n, i as u64), dl()).await;
            assert_eq!(&t.unwrap().unwrap().tx, tx);
        }
    }

    let logs = store.get_logs(&LogFilter::at_hash(hash), usize::MAX, dl()).await.unwrap();
    let want: Vec<_> = expected.iter().flat_map(|r| r.rpc_logs()).collect();
    assert_eq!(logs, want, "block {n}: logs");
    if let Some(first) = want.first() {
        let f = LogFilter::range(n, n).address(first.inner.address);
        let got = store.get_logs(&f, usize::MAX, dl()).await.unwrap();
        let want: Vec<_> =
            want.iter().filter(|l| l.inner.address == first.inner.address).cloned().collect();
        assert_eq!(got, want);
    }

    let extras = store.block_extras(HeaderSpec::Hash(hash), dl()).await.unwrap().unwrap();
    let rebuilt = BlockData {
        header,
        transactions: txs,
        receipts: receipts.iter().map(|r| r.receipt.clone()).collect(),
        extras,
    };
    verify_block(&rebuilt).unwrap_or_else(|e| panic!("block {n} rebuilt from PostgreSQL: {e}"));
    assert_eq!(&rebuilt, block);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_blocks_round_trip_pg() {
    if !server_available("real_blocks_round_trip_pg").await {
        return;
    }
    let db = TestDb::create().await;
    let mut store = db.open().await;
    let mut blocks = mainnet_rlp_blocks();
    blocks.extend(mainnet_jsonrpc_blocks());
    for block in &blocks {
        // Each block alone in the store: it is not the child of the previous.
        store.append_blocks(vec![block.clone()], dl()).await.unwrap();
        check_block(&store, block).await;
        store.truncate_above(block.number() - 1, dl()).await.unwrap();
        assert_eq!(store.tip(dl()).await.unwrap(), None);
    }
    // 19433902 and 19433903 are parent and child: one batch.
    let pair: Vec<BlockData> = mainnet_jsonrpc_blocks().into_iter().skip(1).collect();
    store.append_blocks(pair.clone(), dl()).await.unwrap();
    for block in &pair {
        check_block(&store, block).await;
    }
    let drained = store.drain_above(pair[0].number(), dl()).await.unwrap();
    assert_eq!(drained.len(), 1);
    assert_eq!(drained[0].header, pair[1].header);
    assert_eq!(drained[0].receipts, pair[1].stored_receipts());
    let bytes = store.disk_bytes().await.unwrap();
    eprintln!("real data: {} bytes on disk after the round trips", bytes);
}
