//! Measures the PostgreSQL backend on the reference workload W1, directly
//! on the backend (no handle, no cache): ingest, size, Q1-Q4, Q6, R1.
//!
//! ```text
//! cargo run --release -p coldchain-postgres --example w1_pg -- postgres://postgres@127.0.0.1/EMPTY_DB [blocks]
//! ```
//!
//! The database must exist and be empty of coldchain data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::B256;
use coldchain::{
    ColdBackend, ColdRead, ColdWrite, Deadline, HeaderSpec, LogFilter, ReceiptSpec, StreamParams,
    TxSpec,
};
use coldchain_postgres::{PgOptions, PostgresBackend};
use coldchain_w1::{W1, W1Params, W1Rng};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

fn dl() -> Deadline {
    Deadline::after("bench", Duration::from_secs(600))
}

fn stats(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!("{name:<28} n={:<5} median {:>8.3} ms  p99 {:>8.3} ms", ms.len(), p(0.5), p(0.99));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).expect("usage: w1_pg URL [blocks] [skip-ingest]").clone();
    let blocks: u64 = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(5_000);
    let skip_ingest = args.get(3).is_some_and(|s| s == "skip-ingest");
    let conns: usize = std::env::var("PG_CONNS").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let mut store =
        PostgresBackend::open(&url, PgOptions { max_connections: conns, ..PgOptions::default() })
            .await
            .unwrap();
    let params = W1Params { blocks, ..W1Params::default() };
    let w1 = Arc::new(W1::new(params.clone()));
    let start = params.start;
    let end = start + blocks - 1;

    let mut tx_hashes = Vec::new();
    let mut block_hashes = Vec::new();
    if !skip_ingest {
        // I2: 100 blocks per write; generation is not timed.
        let mut parent = B256::ZERO;
        let mut from = start;
        let mut append_time = Duration::ZERO;
        let mut batch_ms = Vec::new();
        while from <= end {
            let count = 100.min(end + 1 - from);
            let chunk = w1.chunk_par(from, count, parent, 0);
            parent = chunk.last().unwrap().hash();
            for b in &chunk {
                block_hashes.push(b.hash());
                tx_hashes.extend(b.transactions.iter().map(|t| *t.inner().tx_hash()));
            }
            let t = Instant::now();
            store.append_blocks(chunk, dl()).await.unwrap();
            let e = t.elapsed();
            append_time += e;
            batch_ms.push(e.as_secs_f64() * 1e3);
            if std::env::var("VERBOSE").is_ok() {
                println!("  append {from}..+{count}: {:.0} ms", e.as_secs_f64() * 1e3);
            }
            from += count;
        }
        println!(
            "I2 append 100/write: {blocks} blocks in {:.2} s = {:.0} blocks/s",
            append_time.as_secs_f64(),
            blocks as f64 / append_time.as_secs_f64()
        );
        stats("I2 batch", batch_ms);
    } else {
        for n in start..=end {
            let h = store.header(HeaderSpec::Number(n), dl()).await.unwrap().unwrap();
            block_hashes.push(h.hash());
            if n % 10 == 0 {
                let txs =
                    store.block_transactions(HeaderSpec::Number(n), dl()).await.unwrap().unwrap();
                tx_hashes.extend(txs.iter().map(|t| *t.inner().tx_hash()));
            }
        }
    }
    let t = Instant::now();
    store.analyze().await.unwrap();
    println!("ANALYZE {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let bytes = store.disk_bytes().await.unwrap();
    println!(
        "disk: {} MB, {:.1} KB per block",
        bytes / 1_000_000,
        bytes as f64 / blocks as f64 / 1024.0
    );
    for (name, size) in store.relation_sizes().await.unwrap().into_iter().take(12) {
        println!("  {name:<22} {:>7.1} KB/block", size as f64 / blocks as f64 / 1024.0);
    }

    let mut rng = W1Rng::new(0xBE7C_4000);
    let only_q4 = std::env::var("ONLY_Q4").is_ok();
    // Q1: 50 windows of 100 blocks, hot contract.
    let hot = w1.hot_contract();
    let mut q1 = Vec::new();
    let mut q1_logs = 0;
    for _ in 0..(if only_q4 { 0 } else { 3 }) {
        for _ in 0..50 {
            let s = start + rng.below(blocks - 100);
            let f = LogFilter::range(s, s + 99).address(hot);
            let t = Instant::now();
            q1_logs = store.get_logs(&f, usize::MAX, dl()).await.unwrap().len();
            q1.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    if !q1.is_empty() {
        stats(&format!("Q1 hot 100 blocks (~{q1_logs} logs)"), q1);
    }
    let q2 = LogFilter::range(start, end).address(w1.contract(1_900));
    let q3 =
        LogFilter::range(start, end).topic(0, vec![w1.signature(0)]).topic(2, vec![w1.q3_topic2()]);
    for (name, f) in [("Q2", &q2), ("Q3", &q3)].into_iter().filter(|_| !only_q4) {
        let mut ms = Vec::new();
        let mut n = 0;
        for _ in 0..30 {
            let t = Instant::now();
            n = store.get_logs(f, usize::MAX, dl()).await.unwrap().len();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        stats(&format!("{name} ({n} logs)"), ms);
    }

    // Q4: 64 tasks, 5 s, uniform over five point reads (Q4_TASKS and
    // Q4_KIND=0..4 to measure one kind alone).
    let q4_tasks: u64 = std::env::var("Q4_TASKS").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let q4_kind: Option<u64> = std::env::var("Q4_KIND").ok().and_then(|v| v.parse().ok());
    let tx_hashes = Arc::new(tx_hashes);
    let block_hashes = Arc::new(block_hashes);
    let ops = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for i in 0..q4_tasks {
        let store = store.clone();
        let txs = tx_hashes.clone();
        let bh = block_hashes.clone();
        let ops = ops.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = W1Rng::new(i * 7919 + 1);
            let mut lat = [Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()];
            while Instant::now() < stop_at {
                let kind = q4_kind.unwrap_or_else(|| rng.below(5)) as usize;
                let t = Instant::now();
                match kind {
                    0 => {
                        let h = txs[rng.below(txs.len() as u64) as usize];
                        assert!(store.transaction(TxSpec::Hash(h), dl()).await.unwrap().is_some());
                    }
                    1 => {
                        let h = txs[rng.below(txs.len() as u64) as usize];
                        assert!(
                            store.receipt(ReceiptSpec::TxHash(h), dl()).await.unwrap().is_some()
                        );
                    }
                    2 => {
                        let n = start + rng.below(blocks);
                        assert!(store.header(HeaderSpec::Number(n), dl()).await.unwrap().is_some());
                    }
                    3 => {
                        let h = bh[rng.below(bh.len() as u64) as usize];
                        assert!(store.header(HeaderSpec::Hash(h), dl()).await.unwrap().is_some());
                    }
                    _ => {
                        let n = start + rng.below(blocks);
                        assert!(
                            store
                                .block_receipts(HeaderSpec::Number(n), dl())
                                .await
                                .unwrap()
                                .is_some()
                        );
                    }
                }
                lat[kind].push(t.elapsed().as_secs_f64() * 1e3);
                ops.fetch_add(1, Ordering::Relaxed);
            }
            lat
        }));
    }
    let mut all: [Vec<f64>; 5] = Default::default();
    for t in tasks {
        for (k, v) in t.await.unwrap().into_iter().enumerate() {
            all[k].extend(v);
        }
    }
    println!("Q4: {:.0} ops/s", ops.load(Ordering::Relaxed) as f64 / 5.0);
    let names =
        ["tx by hash", "receipt by hash", "header by number", "header by hash", "block receipts"];
    let mut every = Vec::new();
    for (k, v) in all.into_iter().enumerate() {
        every.extend(v.iter().copied());
        stats(&format!("  Q4 {}", names[k]), v);
    }
    stats("  Q4 all", every);

    // Q6: stream of the hot contract over the whole chain.
    if only_q4 {
        return;
    }
    let tip = store.tip(dl()).await.unwrap().unwrap();
    for _ in 0..2 {
        let (tx, mut rx) = tokio::sync::mpsc::channel(256);
        let s2 = store.clone();
        let f = LogFilter::range(start, end).address(hot);
        let t = Instant::now();
        let producer = tokio::spawn(async move {
            s2.produce_logs(f, start..=end, tip, StreamParams::default(), tx, dl()).await
        });
        let mut n = 0u64;
        let mut first = None;
        while let Some(item) = rx.recv().await {
            item.unwrap();
            if first.is_none() {
                first = Some(t.elapsed());
            }
            n += 1;
        }
        producer.await.unwrap();
        let e = t.elapsed().as_secs_f64();
        println!(
            "Q6 stream hot: {n} logs in {e:.2} s = {:.0} logs/s, first after {:.1} ms",
            n as f64 / e,
            first.unwrap_or_default().as_secs_f64() * 1e3
        );
    }

    // R1: truncate and drain 64 blocks, appending them back.
    let last64 = w1.chunk_par(end - 63, 64, block_hashes[(blocks - 65) as usize], 0);
    for _ in 0..3 {
        let t = Instant::now();
        store.truncate_above(end - 64, dl()).await.unwrap();
        let tr = t.elapsed();
        store.append_blocks(last64.clone(), dl()).await.unwrap();
        let t = Instant::now();
        let drained = store.drain_above(end - 64, dl()).await.unwrap();
        let dr = t.elapsed();
        assert_eq!(drained.len(), 64);
        let t = Instant::now();
        store.append_blocks(last64.clone(), dl()).await.unwrap();
        println!(
            "R1 truncate 64: {:.1} ms, drain 64: {:.1} ms, append 64 back: {:.1} ms",
            tr.as_secs_f64() * 1e3,
            dr.as_secs_f64() * 1e3,
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let bytes = store.disk_bytes().await.unwrap();
    println!("disk after R1: {:.1} KB per block", bytes as f64 / blocks as f64 / 1024.0);
}
