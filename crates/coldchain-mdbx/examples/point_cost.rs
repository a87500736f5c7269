//! Cost of the Q4 point reads, one op kind at a time (release; for
//! `valgrind --tool=callgrind`, diff a run with `iters` 0 against one with
//! `iters` N):
//!
//! `cargo run --release -p coldchain-mdbx --example point_cost -- DIR BLOCKS OP ITERS`
//!
//! OP: `tx` (tx by hash), `rcpt` (receipt by tx hash), `hdrn` (header by
//! number), `hdrh` (header by hash), `brcpt` (all receipts of a block),
//! `all` (each in turn), `q4` (64 tasks through the handle for ITERS
//! seconds, the W1 Q4 mix), `q5` (q4 with a block appended every 100 ms). Builds a W1 chain of BLOCKS blocks in DIR first if
//! DIR does not hold it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::B256;
use coldchain::{ColdRead, ColdWrite, Deadline, HeaderSpec, ReceiptSpec, TxSpec};
use coldchain_mdbx::{MdbxBackend, MdbxOptions};
use coldchain_w1::{W1, W1Params, W1Rng};
use std::time::{Duration, Instant};

fn d() -> Deadline {
    Deadline::after("probe", Duration::from_secs(600))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let blocks: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let op = args.next().unwrap_or_else(|| "all".into());
    let iters: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let w1 = W1::new(W1Params { blocks, ..W1Params::default() });
    let start = w1.params().start;
    let mut backend = MdbxBackend::open(&dir, MdbxOptions::default()).expect("open");
    let tip = backend.tip(d()).await.expect("tip");
    if tip.is_none() {
        let (mut parent, mut next) = (B256::ZERO, start);
        let t = Instant::now();
        while next < start + blocks {
            let n = 100.min(start + blocks - next);
            let chunk = w1.chunk_par(next, n, parent, 2);
            parent = chunk[chunk.len() - 1].hash();
            backend.append_blocks(chunk, d()).await.expect("append");
            next += n;
        }
        eprintln!("built {blocks} blocks in {:.2?}", t.elapsed());
    }
    // Targets: 200 blocks' hashes and a tx hash of each.
    let mut rng = W1Rng::new(7);
    let mut targets = Vec::new();
    for _ in 0..200 {
        let n = start + rng.below(blocks);
        let h = backend.header(HeaderSpec::Number(n), d()).await.unwrap().unwrap().hash();
        let txs = backend.block_transactions(HeaderSpec::Number(n), d()).await.unwrap().unwrap();
        let tx = *txs[rng.below(txs.len() as u64) as usize].inner().tx_hash();
        targets.push((n, h, tx));
    }
    if op == "q4" || op == "q5" {
        return q4(backend, &w1, targets, iters as f64, op == "q5").await;
    }
    let ops: Vec<&str> =
        if op == "all" { vec!["tx", "rcpt", "hdrn", "hdrh", "brcpt"] } else { vec![op.as_str()] };
    for op in ops {
        let t = Instant::now();
        for i in 0..iters {
            let (n, h, tx) = targets[i % targets.len()];
            match op {
                "tx" => {
                    assert!(backend.transaction(TxSpec::Hash(tx), d()).await.unwrap().is_some())
                }
                "rcpt" => {
                    assert!(backend.receipt(ReceiptSpec::TxHash(tx), d()).await.unwrap().is_some())
                }
                "hdrn" => {
                    assert!(backend.header(HeaderSpec::Number(n), d()).await.unwrap().is_some())
                }
                "hdrh" => {
                    assert!(backend.header(HeaderSpec::Hash(h), d()).await.unwrap().is_some())
                }
                "brcpt" => assert!(
                    backend.block_receipts(HeaderSpec::Number(n), d()).await.unwrap().is_some()
                ),
                other => panic!("unknown op {other}"),
            }
        }
        let e = t.elapsed();
        println!(
            "{op:>6}: {iters} in {e:.2?}: {:.1} us/op",
            e.as_secs_f64() * 1e6 / iters.max(1) as f64
        );
    }
}

async fn q4(
    backend: MdbxBackend,
    w1: &W1,
    targets: Vec<(u64, B256, B256)>,
    seconds: f64,
    writes: bool,
) {
    use std::sync::Arc;
    let handle = coldchain::ColdStorage::builder(backend).build().await.expect("handle");
    let targets = Arc::new(targets);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = writes.then(|| {
        let handle = handle.clone();
        let stop = stop.clone();
        let w1 = w1.clone();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let tip = handle.tip().await.unwrap().unwrap();
            let (mut number, mut parent) = (tip.number + 1, tip.hash);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let block = w1.block(number, parent);
                parent = block.hash();
                number += 1;
                let t = Instant::now();
                handle.append_block(block).await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        })
    });
    let started = Instant::now();
    let duration = Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for task in 0..64u64 {
        let handle = handle.clone();
        let targets = targets.clone();
        let mut rng = W1Rng::new(99 ^ task);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while started.elapsed() < duration {
                let (n, h, _) = targets[rng.below(targets.len() as u64) as usize];
                let (_, _, tx) = targets[rng.below(targets.len() as u64) as usize];
                let t = Instant::now();
                match rng.below(5) {
                    0 => drop(handle.transaction(TxSpec::Hash(tx)).await.unwrap()),
                    1 => drop(handle.receipt(ReceiptSpec::TxHash(tx)).await.unwrap()),
                    2 => drop(handle.header(HeaderSpec::Number(n)).await.unwrap()),
                    3 => drop(handle.header(HeaderSpec::Hash(h)).await.unwrap()),
                    _ => drop(handle.block_receipts(HeaderSpec::Number(n)).await.unwrap()),
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    all.sort();
    let p = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
    println!(
        "{}: {} ops in {elapsed:.2?}: {:.0} ops/s, p50 {:.2?}, p99 {:.2?}",
        if writes { "q5" } else { "q4" },
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64(),
        p(0.5),
        p(0.99)
    );
    if let Some(w) = writer {
        let mut lat = w.await.unwrap();
        lat.sort();
        if !lat.is_empty() {
            println!(
                "  writes: {} appends, p50 {:.2?}, max {:.2?}",
                lat.len(),
                lat[lat.len() / 2],
                lat[lat.len() - 1]
            );
        }
    }
}
