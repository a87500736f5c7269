//! A rough timing probe of the MDBX backend on the W1 workload (not the
//! project's bench tool; run it in release):
//!
//! `cargo run --release -p coldchain-mdbx --example w1_probe -- [blocks] [single] [dir]`
//!
//! Appends `blocks` W1 blocks (default 5,000), all but the last `single`
//! (default 500) in 100-block writes (I2), the rest one block per durable
//! write (I1); then times Q1, Q2, Q3, Q6 (stream through the handle), R1
//! (truncate and drain 64 blocks) and `verify`, and prints the disk use.
//! Only the store calls are timed, not the block generation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::B256;
use coldchain::{
    BlockData, ColdBackend, ColdRead, ColdStorage, ColdWrite, Deadline, LogFilter, StreamParams,
};
use coldchain_mdbx::{MdbxBackend, MdbxOptions};
use coldchain_w1::{W1, W1Params};
use futures::StreamExt;
use std::time::{Duration, Instant};

fn d() -> Deadline {
    Deadline::after("probe", Duration::from_secs(600))
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let blocks: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let single: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(500).min(blocks);
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let dir = args.next().map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().join("db"));

    let w1 = W1::new(W1Params { blocks, ..W1Params::default() });
    let start = w1.params().start;
    let mut backend = MdbxBackend::open(&dir, MdbxOptions::default()).expect("open");
    println!("store: {}", dir.display());

    // I2: 100 blocks per write (skipped, with I1, when `dir` already holds
    // the chain: then only the queries run).
    let existing = backend.tip(d()).await.expect("tip");
    let reuse = existing.is_some_and(|t| t.number == start + blocks - 1);
    let batched = if reuse { 0 } else { blocks - single };
    let single = if reuse { 0 } else { single };
    let (mut parent, mut next) = (B256::ZERO, start);
    let mut i2 = Duration::ZERO;
    let mut kept: Vec<BlockData> = Vec::new();
    while next < start + batched {
        let n = 100.min(start + batched - next);
        let chunk = w1.chunk_par(next, n, parent, 2);
        parent = chunk[chunk.len() - 1].hash();
        let t = Instant::now();
        backend.append_blocks(chunk, d()).await.expect("append");
        i2 += t.elapsed();
        next += n;
    }
    if batched > 0 {
        println!(
            "I2 append, 100 blocks per write: {batched} blocks in {i2:.2?}: {:.0} blocks/s",
            batched as f64 / i2.as_secs_f64()
        );
    }
    // I1: one block per write.
    let mut i1 = Duration::ZERO;
    let mut lat = Vec::new();
    while !reuse && next < start + blocks {
        let n = 100.min(start + blocks - next);
        let chunk = w1.chunk_par(next, n, parent, 2);
        parent = chunk[chunk.len() - 1].hash();
        for b in chunk {
            if next + 64 >= start + blocks {
                kept.push(b.clone());
            }
            let t = Instant::now();
            backend.append_blocks(vec![b], d()).await.expect("append");
            let e = t.elapsed();
            lat.push(e);
            i1 += e;
            next += 1;
        }
    }
    if single > 0 {
        lat.sort();
        println!(
            "I1 append, 1 block per durable write: {single} blocks in {i1:.2?}: {:.0} blocks/s \
             (p50 {:.2?}, p99 {:.2?})",
            single as f64 / i1.as_secs_f64(),
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
    }
    let usage = backend.disk_usage().expect("disk usage");
    println!(
        "disk: file {:.1} MiB, used {:.1} MiB: {:.1} KiB per block (used {:.1} KiB), page {} B",
        usage.file_bytes as f64 / 1048576.0,
        usage.used_bytes as f64 / 1048576.0,
        usage.file_bytes as f64 / 1024.0 / blocks as f64,
        usage.used_bytes as f64 / 1024.0 / blocks as f64,
        usage.page_size
    );
    for t in backend.table_sizes().expect("table sizes") {
        println!(
            "  table {:<13} {:>10} entries {:>9.1} MiB {:>7.1} KiB per block",
            t.name,
            t.entries,
            t.bytes as f64 / 1048576.0,
            t.bytes as f64 / 1024.0 / blocks as f64
        );
    }
    let tip = start + blocks - 1;

    // Q1: hot contract, 50 random 100-block windows.
    let hot = w1.hot_contract();
    let mut rng = coldchain_w1::W1Rng::new(42);
    let mut q1 = Vec::new();
    let mut q1_logs = 0;
    for _ in 0..50 {
        let from = start + rng.below(blocks.saturating_sub(100).max(1));
        let f = LogFilter::range(from, from + 99).address(hot);
        let t = Instant::now();
        let logs = backend.get_logs(&f, usize::MAX, d()).await.expect("q1");
        q1.push(t.elapsed());
        q1_logs += logs.len();
    }
    q1.sort();
    println!(
        "Q1 hot contract, 100 blocks: p50 {:.2?}, p99 {:.2?} ({} logs per query)",
        pct(&q1, 0.5),
        pct(&q1, 0.99),
        q1_logs / 50
    );
    let timed = |f: LogFilter| {
        let backend = backend.clone();
        async move {
            let mut times = Vec::new();
            let mut n = 0;
            for _ in 0..21 {
                let t = Instant::now();
                n = backend.get_logs(&f, usize::MAX, d()).await.expect("query").len();
                times.push(t.elapsed());
            }
            times.sort();
            (pct(&times, 0.5), n)
        }
    };
    let (q2, n) = timed(LogFilter::range(start, tip).address(w1.contract(1_900))).await;
    println!("Q2 cold contract, whole chain: median {q2:.3?} ({n} logs)");
    let q3f =
        LogFilter::range(start, tip).topic(0, vec![w1.signature(0)]).topic(2, vec![w1.q3_topic2()]);
    let (q3, n) = timed(q3f).await;
    println!("Q3 topic0 AND topic2, whole chain: median {q3:.3?} ({n} logs)");

    // Q6: stream of the hot contract through the handle.
    let storage = ColdStorage::new(backend.clone()).await.expect("handle");
    for _ in 0..2 {
        let t = Instant::now();
        let f = LogFilter::range(start, tip).address(hot);
        let mut stream = storage.stream_logs(f, StreamParams::default()).await.expect("stream");
        let mut first = None;
        let mut n = 0u64;
        while let Some(item) = stream.next().await {
            item.expect("stream item");
            first.get_or_insert_with(|| t.elapsed());
            n += 1;
        }
        let total = t.elapsed();
        println!(
            "Q6 stream hot contract, whole chain: {n} logs in {total:.2?}: {:.0} logs/s, first \
             log after {:.2?}",
            n as f64 / total.as_secs_f64(),
            first.unwrap_or_default()
        );
    }
    storage.shutdown().await;
    drop(storage);

    if let Some(extra) = std::env::var("PROBE_EXTRA").ok().and_then(|v| v.parse::<u64>().ok()) {
        // More single-block appends on top of the existing chain.
        let tip = backend.tip(d()).await.expect("tip").expect("a chain");
        let (mut parent, mut next) = (tip.hash, tip.number + 1);
        let mut lat = Vec::new();
        for _ in 0..extra {
            let b = w1.block(next, parent);
            parent = b.hash();
            next += 1;
            let t = Instant::now();
            backend.append_blocks(vec![b], d()).await.expect("append");
            lat.push(t.elapsed());
        }
        let total: Duration = lat.iter().sum();
        lat.sort();
        println!(
            "extra single-block appends: {extra} in {total:.2?}: {:.0} blocks/s (p50 {:.2?}, p99 \
             {:.2?})",
            extra as f64 / total.as_secs_f64(),
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
    }
    if reuse || std::env::var_os("PROBE_QUERIES_ONLY").is_some() {
        return;
    }
    // R1: truncate the last 64 blocks, re-append, drain them.
    let t = Instant::now();
    backend.truncate_above(tip - 64, d()).await.expect("truncate");
    let r1t = t.elapsed();
    backend.append_blocks(kept, d()).await.expect("re-append");
    let t = Instant::now();
    let drained = backend.drain_above(tip - 64, d()).await.expect("drain");
    let r1d = t.elapsed();
    println!(
        "R1 truncate 64 blocks: {r1t:.2?}; drain 64 blocks: {r1d:.2?} ({} blocks)",
        drained.len()
    );

    let t = Instant::now();
    let report = backend.verify().expect("verify");
    println!("verify: {:.2?}: {report}", t.elapsed());
}
