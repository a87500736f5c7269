//! Zipf sampling by inverse CDF.

use crate::rng::{W1Rng, prob_threshold};

/// A Zipf distribution over ranks `0..n` (rank `r` has weight
/// `(r + 1)^-s`, i.e. ranks 1..n of the textbook definition), sampled by
/// inverse CDF: one 64-bit word `x`, then a binary search for the first rank
/// whose cumulative threshold exceeds `x`.
///
/// The thresholds are `floor(cdf(r) * 2^64)`, with the weights summed in rank
/// order in `f64`; the last one is `u64::MAX`. (`powf` is the only
/// floating-point function involved; a platform whose `pow` differs in the
/// last bit could at most move a boundary by one part in 2^52.)
#[derive(Debug, Clone)]
pub struct Zipf {
    thresholds: Box<[u64]>,
    s: f64,
    total: f64,
}

impl Zipf {
    /// The distribution over `n` ranks with exponent `s` (`n >= 1`, `s`
    /// finite; `s = 0` is uniform).
    pub fn new(n: usize, s: f64) -> Self {
        let n = n.max(1);
        let total: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
        let mut thresholds = Vec::with_capacity(n);
        let mut cumulative = 0.0f64;
        for k in 1..n {
            cumulative += (k as f64).powf(-s);
            thresholds.push(prob_threshold(cumulative / total));
        }
        thresholds.push(u64::MAX);
        Self { thresholds: thresholds.into_boxed_slice(), s, total }
    }

    /// Number of ranks.
    pub fn len(&self) -> usize {
        self.thresholds.len()
    }

    /// Always `false` (a distribution has at least one rank).
    pub fn is_empty(&self) -> bool {
        self.thresholds.is_empty()
    }

    /// The exponent.
    pub fn exponent(&self) -> f64 {
        self.s
    }

    /// Probability of rank `rank` (0-based): `(rank + 1)^-s / H(n, s)`; `0`
    /// outside `0..n`.
    pub fn probability(&self, rank: usize) -> f64 {
        if rank >= self.len() { 0.0 } else { ((rank + 1) as f64).powf(-self.s) / self.total }
    }

    /// Draws a rank in `0..n` (one word).
    #[inline]
    pub fn sample(&self, rng: &mut W1Rng) -> usize {
        let x = rng.next_u64();
        self.thresholds.partition_point(|&t| t <= x).min(self.thresholds.len() - 1)
    }
}
