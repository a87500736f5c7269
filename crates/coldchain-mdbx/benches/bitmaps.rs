//! Micro-benchmarks of the log index's set operations, at W1 shapes: a
//! shard holds up to 1,024 transaction offsets; a hot key (the rank-0
//! contract, ~17% of transactions) fills shards densely, a cold key (an
//! account topic) has a few positions in the whole chain. A query unions the
//! shards within one filter position and intersects across positions.
//! `cargo bench -p coldchain-mdbx --bench bitmaps`; criterion prints medians.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use roaring::RoaringBitmap;
use std::hint::black_box;

/// 750,000 transactions (W1): every `step`-th position, jittered.
fn positions(count: u32, step: u32, seed: u32) -> RoaringBitmap {
    (0..count).map(|i| i * step + (i.wrapping_mul(2_654_435_761) ^ seed) % step.max(1)).collect()
}

fn shard_bytes(b: &RoaringBitmap) -> Vec<u8> {
    let mut out = Vec::new();
    b.serialize_into(&mut out).unwrap();
    out
}

fn bitmaps(c: &mut Criterion) {
    let hot = positions(127_000, 6, 1); // rank-0 contract: ~1 in 6 transactions
    let topic0 = positions(158_000, 5, 2); // rank-0 signature
    let account = positions(9, 80_000, 3); // one account as topic2
    let cold = positions(67, 11_000, 4); // rank-1,900 contract

    let mut g = c.benchmark_group("bitmaps");
    g.bench_function("intersect_topic0_and_account (Q3 shape)", |b| {
        b.iter(|| black_box(&topic0) & black_box(&account))
    });
    g.bench_function("intersect_hot_and_topic0", |b| {
        b.iter(|| black_box(&hot) & black_box(&topic0))
    });
    g.bench_function("union_two_addresses", |b| b.iter(|| black_box(&hot) | black_box(&cold)));
    g.bench_function("range_cardinality_100_blocks (Q1 shape)", |b| {
        b.iter(|| black_box(&hot).range_cardinality(black_box(300_000..315_000)))
    });
    let dense = shard_bytes(&positions(1_024, 6, 5));
    let sparse = shard_bytes(&positions(9, 100, 6));
    g.bench_function("deserialize_dense_shard", |b| {
        b.iter(|| RoaringBitmap::deserialize_unchecked_from(black_box(&dense[..])).unwrap())
    });
    g.bench_function("deserialize_sparse_shard", |b| {
        b.iter(|| RoaringBitmap::deserialize_unchecked_from(black_box(&sparse[..])).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bitmaps);
criterion_main!(benches);
