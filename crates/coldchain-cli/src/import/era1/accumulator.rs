//! The epoch accumulator: the SSZ hash tree root of an epoch's (block
//! hash, total difficulty) records.

#[allow(unused_imports)]
use super::*;

fn sha256_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

/// The epoch accumulator: `hash_tree_root` of the SSZ
/// `List[HeaderRecord, 8192]` of `(block hash, total difficulty)` records.
pub fn epoch_accumulator(records: &[(B256, U256)]) -> B256 {
    // 2^13 = 8192 leaves.
    const DEPTH: usize = 13;
    let mut layer: Vec<[u8; 32]> =
        records.iter().map(|(hash, td)| sha256_pair(&hash.0, &td.to_le_bytes::<32>())).collect();
    let mut zero = [0u8; 32];
    for _ in 0..DEPTH {
        if layer.len() % 2 == 1 {
            layer.push(zero);
        }
        layer = layer.chunks_exact(2).map(|p| sha256_pair(&p[0], &p[1])).collect();
        zero = sha256_pair(&zero, &zero);
    }
    let root = layer.first().copied().unwrap_or(zero);
    let mut length = [0u8; 32];
    length[..8].copy_from_slice(&(records.len() as u64).to_le_bytes());
    B256::from(sha256_pair(&root, &length))
}
