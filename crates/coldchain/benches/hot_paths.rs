//! Micro-benchmarks of the hot paths every backend shares: receipt, header
//! and transaction encoding and decoding, bloom pre-checks and log matching.
//! `cargo bench -p coldchain --features test-utils`; criterion prints medians.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::B256;
use coldchain::{
    LogFilter, codec,
    testing::{ChainShape, test_address, test_chain_with, test_topic},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn blocks() -> Vec<coldchain::BlockData> {
    // W1-like density: many transactions, several logs each.
    let shape = ChainShape { max_txs: 150, max_logs: 6, addresses: 2_000, topics: 64 };
    test_chain_with(1, 8, B256::ZERO, 1, shape)
}

fn codec_benches(c: &mut Criterion) {
    let blocks = blocks();
    let receipts: Vec<_> = blocks.iter().flat_map(|b| b.stored_receipts()).collect();
    let encoded: Vec<Vec<u8>> =
        receipts.iter().map(|r| codec::encode_receipt(r).unwrap()).collect();
    let txs: Vec<_> = blocks.iter().flat_map(|b| b.transactions.clone()).collect();
    let encoded_txs: Vec<Vec<u8>> = txs.iter().map(codec::encode_tx).collect();

    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(receipts.len() as u64));
    g.bench_function("encode_receipt", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            for r in &receipts {
                out.clear();
                codec::encode_receipt_into(black_box(r), &mut out).unwrap();
            }
        })
    });
    g.bench_function("decode_receipt", |b| {
        b.iter(|| {
            for e in &encoded {
                black_box(codec::decode_receipt(black_box(e)).unwrap());
            }
        })
    });
    g.throughput(Throughput::Elements(txs.len() as u64));
    g.bench_function("encode_tx", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            for t in &txs {
                out.clear();
                codec::encode_tx_into(black_box(t), &mut out);
            }
        })
    });
    g.bench_function("decode_tx", |b| {
        b.iter(|| {
            for e in &encoded_txs {
                black_box(codec::decode_tx(black_box(e)).unwrap());
            }
        })
    });
    g.finish();
}

fn filter_benches(c: &mut Criterion) {
    let blocks = blocks();
    let logs: Vec<_> =
        blocks.iter().flat_map(|b| b.receipts.iter().flat_map(|r| r.logs().to_vec())).collect();
    let one_address = LogFilter::range(1, 8).address(test_address(3));
    let two_topics = LogFilter::range(1, 8)
        .topic(0, vec![test_topic(0)])
        .topic(2, vec![test_topic(5), test_topic(6)]);
    let mut g = c.benchmark_group("filter");
    g.throughput(Throughput::Elements(logs.len() as u64));
    for (name, f) in [("matches_address", &one_address), ("matches_two_topics", &two_topics)] {
        g.bench_function(name, |b| {
            b.iter(|| logs.iter().filter(|l| f.matches(black_box(l))).count())
        });
    }
    g.throughput(Throughput::Elements(blocks.len() as u64));
    g.bench_function("bloom_precheck", |b| {
        b.iter(|| {
            blocks
                .iter()
                .filter(|bl| two_topics.may_match_bloom(black_box(&bl.header.logs_bloom)))
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, codec_benches, filter_benches);
criterion_main!(benches);
