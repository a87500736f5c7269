//! Generates W1 and prints its statistics and the generation rate.
//!
//! `cargo run -p coldchain-w1 --example w1_gen -- [blocks] [threads]`
//! (defaults: the reference 5,000 blocks, on one thread; `threads = 0` uses
//! every core).

use alloy::primitives::B256;
use coldchain::BlockData;
use coldchain_w1::{W1, W1Params};
use std::time::Instant;

#[derive(Default)]
struct Stats {
    txs: u64,
    failed: u64,
    logs: u64,
    hot_logs: u64,
    cold_logs: u64,
    q3_matches: u64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let defaults = W1Params::default();
    let blocks = args.next().and_then(|a| a.parse().ok()).unwrap_or(defaults.blocks);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);

    let t0 = Instant::now();
    let w1 = W1::new(W1Params { blocks, ..defaults });
    let setup = t0.elapsed();
    let (hot, cold) = (w1.hot_contract(), w1.contract(1_900));
    let t1 = Instant::now();
    let (sig0, q3_topic2) = (w1.signature(0), w1.q3_topic2());
    let q3_time = t1.elapsed();

    let mut stats = Stats::default();
    let mut count = |block: &BlockData| {
        stats.txs += block.transactions.len() as u64;
        for r in &block.receipts {
            stats.failed += u64::from(!r.status());
            for log in r.logs() {
                let t = log.topics();
                stats.logs += 1;
                stats.hot_logs += u64::from(log.address == hot);
                stats.cold_logs += u64::from(log.address == cold);
                stats.q3_matches += u64::from(t[0] == sig0 && t[2] == q3_topic2);
            }
        }
    };

    // Generated in chunks, so that memory stays small.
    const CHUNK: u64 = 250;
    let t2 = Instant::now();
    let (mut parent, mut from, end) = (B256::ZERO, w1.params().start, w1.numbers().end);
    while from < end {
        let n = CHUNK.min(end - from);
        let chunk = if threads == 1 {
            w1.chunk(from, n, parent)
        } else {
            w1.chunk_par(from, n, parent, threads)
        };
        chunk.iter().for_each(&mut count);
        if let Some(last) = chunk.last() {
            parent = last.hash();
        }
        from += n;
    }
    let gen_time = t2.elapsed();

    let Stats { txs, failed, logs, hot_logs, cold_logs, q3_matches } = stats;
    let secs = gen_time.as_secs_f64();
    println!("setup {setup:?}; generated {blocks} blocks in {gen_time:?} ({threads} thread(s))");
    println!("{:.0} blocks/s, {:.0} txs/s", blocks as f64 / secs, txs as f64 / secs);
    println!(
        "txs {txs}, failed {failed}, logs {logs} ({:.1}/block, {:.4}/tx; expected {:.4}/tx)",
        logs as f64 / blocks as f64,
        logs as f64 / txs as f64,
        w1.params().expected_logs_per_tx()
    );
    println!(
        "rank-0 logs {hot_logs} (expected {:.0}), rank-1900 logs {cold_logs} (expected {:.1})",
        w1.expected_contract_logs(0),
        w1.expected_contract_logs(1_900)
    );
    println!("q3 topic2 {q3_topic2} ({q3_time:?}): {q3_matches} matching logs");
    println!("last block {} hash {parent}", end.saturating_sub(1));
}
