//! The plans of W1's log queries: on a W1 chain (enough rows, statistics
//! refreshed), Q2 (one rare address over the whole chain) and Q3 (topic0
//! AND topic2 over the whole chain) use an index and never scan the logs
//! table sequentially; Q1 (the hot contract over 100 blocks) neither, and
//! it reads its blocks apart instead of joining them. A truncate of the
//! last blocks reads their rows by bitmap scans.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use coldchain::{ColdRead, LogFilter};
use coldchain_w1::{W1, W1Params};
use common::{TestDb, append_w1, dl, server_available};

fn assert_indexed(what: &str, plan: &str) {
    eprintln!("{what}:\n{plan}\n");
    assert!(
        !plan.contains("Seq Scan on logs"),
        "{what}: sequential scan of the logs table:\n{plan}"
    );
    assert!(plan.contains("Index"), "{what}: no index in the plan:\n{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w1_log_queries_use_indexes() {
    if !server_available("w1_log_queries_use_indexes").await {
        return;
    }
    let db = TestDb::create().await;
    let mut store = db.open().await;
    let params = W1Params { blocks: 400, ..W1Params::default() };
    let w1 = W1::new(params.clone());
    let start = params.start;
    let end = start + params.blocks - 1;
    append_w1(&mut store, &w1, start, params.blocks, 50, alloy::primitives::B256::ZERO).await;
    store.analyze().await.unwrap();
    let logs: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM coldchain.logs", &[])
        .await
        .unwrap()
        .get(0);
    assert!(logs > 100_000, "{logs} logs");

    let q2 = LogFilter::range(start, end).address(w1.contract(1_900));
    let q3 =
        LogFilter::range(start, end).topic(0, vec![w1.signature(0)]).topic(2, vec![w1.q3_topic2()]);
    let q1 = LogFilter::range(start + 100, start + 199).address(w1.hot_contract());
    for (what, filter) in [("Q2", &q2), ("Q3", &q3), ("Q1", &q1)] {
        let plan = store.explain_get_logs(filter, usize::MAX, true).await.unwrap();
        assert_indexed(what, &plan);
        // A short range reads its blocks' rows with a statement of its
        // own; the whole-chain queries join them.
        assert_eq!(plan.contains(" on blocks "), what != "Q1", "{what}: join to blocks:\n{plan}");
        // And the answer is the model's.
        let got = store.get_logs(filter, usize::MAX, dl()).await.unwrap();
        assert!(!got.is_empty(), "{what} found nothing");
        assert!(got.iter().all(|l| filter.matches(&l.inner)), "{what}");
    }
    // Open ends (resolved against the tip in SQL) and a two-address OR.
    let q2_open = LogFilter {
        blocks: coldchain::BlockSelector::Range { from: Some(start), to: None },
        ..q2.clone()
    }
    .address(w1.contract(1_901));
    assert_indexed("Q2 open end", &store.explain_get_logs(&q2_open, 10_000, false).await.unwrap());
    // A truncate of the last 64 blocks reads the logs' and transactions'
    // rows by bitmap scans: neither row by row through an index nor the
    // whole table. (The blocks table is small enough here to scan.)
    let plans = store.explain_truncate(end - 64).await.unwrap();
    assert_eq!(plans.len(), 3);
    for (table, plan) in ["logs", "txs"].iter().zip(&plans) {
        eprintln!("truncate, {table}:\n{plan}\n");
        assert!(
            plan.contains(&format!("Bitmap Heap Scan on {table}")),
            "truncate without a bitmap scan of {table}:\n{plan}"
        );
    }
    let bytes = store.disk_bytes().await.unwrap();
    eprintln!(
        "{} blocks, {logs} logs: {} bytes, {:.0} bytes per block",
        params.blocks,
        bytes,
        bytes as f64 / params.blocks as f64
    );
    for (name, size) in store.relation_sizes().await.unwrap() {
        eprintln!("  {name:<24} {:>8.1} KB/block", size as f64 / params.blocks as f64 / 1024.0);
    }
    assert!(store.tip(dl()).await.unwrap().is_some());
}
