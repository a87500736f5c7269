//! Tests of the W1 generator: determinism, standalone blocks, chain and
//! root consistency, pools, and statistics against the expected means.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::{
    consensus::{
        Transaction, TxEnvelope, TxReceipt,
        proofs::{calculate_receipt_root, calculate_transaction_root},
    },
    eips::eip2718::Encodable2718,
    primitives::{Address, B256, Bloom, keccak256},
    rlp::Encodable,
};
use coldchain::BlockData;
use coldchain_w1::{W1, W1Params, W1Rng, Zipf};
use std::collections::HashSet;

/// Header RLP, then every transaction's and receipt's EIP-2718 encoding,
/// plus the senders.
fn encode(block: &BlockData) -> Vec<u8> {
    let mut out = Vec::new();
    block.header.inner().encode(&mut out);
    for tx in &block.transactions {
        tx.inner().encode_2718(&mut out);
        out.extend_from_slice(tx.signer().as_slice());
    }
    for r in &block.receipts {
        r.encode_2718(&mut out);
    }
    out
}

fn small(seed: u64, blocks: u64, txs_per_block: u64) -> W1Params {
    W1Params { seed, blocks, txs_per_block, ..W1Params::default() }
}

#[test]
fn defaults_are_workload_w1() {
    let p = W1Params::default();
    assert_eq!((p.blocks, p.start, p.txs_per_block), (5_000, 1_000_000, 150));
    assert_eq!((p.accounts, p.contracts, p.signatures), (100_000, 2_000, 64));
    assert_eq!((p.zipf_address_s, p.zipf_topic0_s), (1.1, 1.0));
    assert_eq!((p.p_zero_logs, p.p_one_log, p.many_logs_min, p.many_logs_max), (0.25, 0.25, 2, 6));
    assert_eq!((p.topic3_prob, p.data_min, p.data_max, p.failed_prob), (0.10, 32, 128, 0.02));
    assert_eq!((p.tx_gas_min, p.tx_gas_limit_max, p.input_len), (21_000, 300_000, 68));
    assert_eq!((p.block_gas_limit, p.base_fee, p.block_time), (60_000_000, 7_000_000_000, 12));
    assert!((p.expected_logs_per_successful_tx() - 2.25).abs() < 1e-12);
    assert!((p.expected_logs_per_tx() - 2.205).abs() < 1e-12);
    fn send_sync<T: Send + Sync>() {}
    send_sync::<W1>();
    assert!(W1::try_new(W1Params { contracts: 0, ..W1Params::default() }).is_err());
    assert!(W1::try_new(W1Params { p_one_log: 0.9, ..W1Params::default() }).is_err());
}

#[test]
fn pools_follow_the_definition() {
    let w1 = W1::new(small(1, 1, 1));
    let mut pre = b"W1-account".to_vec();
    pre.extend_from_slice(&7u64.to_be_bytes());
    assert_eq!(w1.account(7), Address::from_slice(&keccak256(&pre)[12..]));
    let mut pre = b"W1-contract".to_vec();
    pre.extend_from_slice(&0u64.to_be_bytes());
    assert_eq!(w1.hot_contract(), Address::from_slice(&keccak256(&pre)[12..]));
    assert_eq!(w1.contract(0), w1.hot_contract());
    assert_eq!(w1.signature(0), keccak256("Event0(address,address,uint256)"));
    assert_eq!(w1.signature(63), keccak256("Event63(address,address,uint256)"));
    assert_eq!(w1.accounts().len(), 100_000);
    assert_eq!(w1.contracts().len(), 2_000);
    assert_eq!(w1.signatures().len(), 64);
    assert_eq!(w1.accounts().iter().collect::<HashSet<_>>().len(), 100_000);
}

#[test]
fn same_seed_is_byte_identical() {
    let a = W1::new(small(42, 6, 150));
    let b = W1::new(small(42, 6, 150));
    let ea: Vec<_> = a.blocks().map(|b| encode(&b)).collect();
    let eb: Vec<_> = b.blocks().map(|b| encode(&b)).collect();
    assert_eq!(ea, eb);
    assert_eq!(a.chunk(1_000_000, 6, B256::ZERO), b.blocks().collect::<Vec<_>>());
}

#[test]
fn different_seed_differs() {
    let a = W1::new(small(42, 3, 20));
    let b = W1::new(small(43, 3, 20));
    for (x, y) in a.blocks().zip(b.blocks()) {
        assert_ne!(x.hash(), y.hash());
        assert_ne!(x.header.transactions_root, y.header.transactions_root);
        assert_ne!(x.header.receipts_root, y.header.receipts_root);
    }
}

#[test]
fn standalone_block_equals_iterated_block() {
    let w1 = W1::new(small(7, 8, 30));
    let chain: Vec<_> = w1.blocks().collect();
    for n in [0usize, 3, 7] {
        let parent = if n == 0 { B256::ZERO } else { chain[n - 1].hash() };
        let alone = w1.block(1_000_000 + n as u64, parent);
        assert_eq!(encode(&alone), encode(&chain[n]));
        assert_eq!(alone, chain[n]);
    }
    // The body does not depend on the parent, only the header's parent field.
    let other = w1.block(1_000_005, B256::repeat_byte(9));
    assert_eq!(other.transactions, chain[5].transactions);
    assert_eq!(other.receipts, chain[5].receipts);
    assert_ne!(other.hash(), chain[5].hash());
    // Parallel generation matches, sealing included.
    assert_eq!(w1.chunk_par(1_000_000, 8, B256::ZERO, 3), chain);
    assert_eq!(w1.chunk_par(1_000_002, 5, chain[1].hash(), 0), chain[2..7]);
}

#[test]
fn chain_links_and_roots_verify() {
    let w1 = W1::new(small(3, 12, 150));
    let p = w1.params().clone();
    let mut parent = B256::ZERO;
    let mut tx_hashes = HashSet::new();
    let accounts: HashSet<Address> = w1.accounts().iter().copied().collect();
    let contracts: HashSet<Address> = w1.contracts().iter().copied().collect();
    let signatures: HashSet<B256> = w1.signatures().iter().copied().collect();
    for (k, block) in w1.blocks().enumerate() {
        let h = block.header.inner();
        let number = p.start + k as u64;
        assert_eq!(h.number, number);
        assert_eq!(h.parent_hash, parent);
        assert_eq!(block.hash(), h.hash_slow());
        assert_eq!(h.timestamp, 1_700_000_000 + 12 * k as u64);
        assert_eq!(h.gas_limit, 60_000_000);
        assert_eq!(h.base_fee_per_gas, Some(7_000_000_000));
        block.validate().expect("valid shape");
        coldchain::verify::verify_block(&block).expect("commitments verify");
        assert_eq!(block.transactions.len(), 150);

        let envelopes: Vec<&TxEnvelope> = block.transactions.iter().map(|t| t.inner()).collect();
        assert_eq!(h.transactions_root, calculate_transaction_root(&envelopes));
        assert_eq!(h.receipts_root, calculate_receipt_root(&block.receipts));
        let mut bloom = Bloom::ZERO;
        let mut prev = 0u64;
        for (i, (tx, r)) in block.transactions.iter().zip(&block.receipts).enumerate() {
            let mut own = Bloom::ZERO;
            for log in r.logs() {
                own.accrue_log(log);
            }
            assert_eq!(r.bloom(), own);
            bloom.accrue_bloom(&own);
            let env = tx.inner();
            assert_eq!(env.chain_id(), Some(1));
            assert_eq!(env.nonce(), (number - p.start) * 150 + i as u64);
            assert!((21_000..300_000).contains(&env.gas_limit()));
            let used = r.cumulative_gas_used() - prev;
            assert!(used >= 21_000 && used <= env.gas_limit());
            assert!((1_000_000_000..100_000_000_000).contains(&env.max_fee_per_gas()));
            let prio = env.max_priority_fee_per_gas().expect("1559");
            assert!(prio < 2_000_000_000 && prio <= env.max_fee_per_gas());
            assert_eq!(env.input().len(), 68);
            assert!(contracts.contains(&env.to().expect("call")));
            assert!(!env.signature().r().is_zero());
            assert!(accounts.contains(&tx.signer()));
            if !r.status() {
                assert!(r.logs().is_empty());
            }
            for log in r.logs() {
                let t = log.topics();
                assert!(t.len() == 3 || t.len() == 4);
                assert!(contracts.contains(&log.address));
                assert!(signatures.contains(&t[0]));
                assert!(accounts.contains(&Address::from_word(t[1])));
                assert!(accounts.contains(&Address::from_word(t[2])));
                assert!((32..=128).contains(&log.data.data.len()));
            }
            assert!(tx_hashes.insert(*env.tx_hash()));
            prev = r.cumulative_gas_used();
        }
        assert_eq!(h.logs_bloom, bloom);
        assert_eq!(h.gas_used, prev);
        parent = block.hash();
    }
}

#[test]
fn q3_topic2_is_first_rank0_log_of_middle_block() {
    let w1 = W1::new(small(1, 10, 150));
    assert_eq!(w1.middle_block(), 1_000_005);
    let mid = w1.block(w1.middle_block(), B256::ZERO);
    let first = mid
        .receipts
        .iter()
        .flat_map(|r| r.logs())
        .find(|l| l.topics()[0] == w1.signature(0))
        .expect("a rank-0 log");
    assert_eq!(w1.q3_topic2(), first.topics()[2]);
}

#[test]
fn rng_and_zipf_basics() {
    let mut a = W1Rng::new(5);
    let mut b = W1Rng::new(5);
    let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
    let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
    assert_eq!(xs, ys);
    assert_ne!(W1Rng::new(6).next_u64(), xs[0]);
    let z = Zipf::new(2_000, 1.1);
    let total: f64 = (0..2_000).map(|r| z.probability(r)).sum();
    assert!((total - 1.0).abs() < 1e-9);
    let mut rng = W1Rng::new(1);
    let draws = 200_000;
    let hits = (0..draws).filter(|_| z.sample(&mut rng) == 0).count();
    let share = hits as f64 / draws as f64;
    assert!((share - z.probability(0)).abs() < 0.005, "{share} vs {}", z.probability(0));
    assert!((0..1_000).all(|_| z.sample(&mut rng) < 2_000));
}

#[test]
fn statistics_match_expected_means() {
    let w1 = W1::new(small(11, 200, 20));
    let p = w1.params().clone();
    let (mut txs, mut failed, mut logs, mut ok_txs) = (0u64, 0u64, 0u64, 0u64);
    let (mut hot, mut sig0, mut topic3, mut data_bytes, mut to_hot) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for block in w1.blocks() {
        for (tx, r) in block.transactions.iter().zip(&block.receipts) {
            txs += 1;
            if r.status() {
                ok_txs += 1;
            } else {
                failed += 1;
            }
            if tx.inner().to() == Some(w1.hot_contract()) {
                to_hot += 1;
            }
            for log in r.logs() {
                logs += 1;
                hot += u64::from(log.address == w1.hot_contract());
                sig0 += u64::from(log.topics()[0] == w1.signature(0));
                topic3 += u64::from(log.topics().len() == 4);
                data_bytes += log.data.data.len() as u64;
            }
        }
    }
    let per_tx = logs as f64 / txs as f64;
    let per_ok_tx = logs as f64 / ok_txs as f64;
    let hot_share = hot as f64 / logs as f64;
    let sig0_share = sig0 as f64 / logs as f64;
    let to_hot_share = to_hot as f64 / txs as f64;
    let topic3_share = topic3 as f64 / logs as f64;
    let failed_share = failed as f64 / txs as f64;
    let mean_data = data_bytes as f64 / logs as f64;
    eprintln!(
        "txs {txs} logs {logs}: logs/tx {per_tx:.4} (expected {:.4}), logs/ok tx {per_ok_tx:.4} \
         (expected {:.4}), rank-0 contract share {hot_share:.4} (expected {:.4}), to rank-0 \
         {to_hot_share:.4}, rank-0 signature share {sig0_share:.4} (expected {:.4}), topic3 \
         {topic3_share:.4}, failed {failed_share:.4}, mean data {mean_data:.1}",
        p.expected_logs_per_tx(),
        p.expected_logs_per_successful_tx(),
        w1.address_zipf().probability(0),
        w1.topic0_zipf().probability(0),
    );
    assert_eq!(txs, 4_000);
    assert!((per_tx - p.expected_logs_per_tx()).abs() < 0.1);
    assert!((per_ok_tx - 2.25).abs() < 0.1);
    assert!((hot_share - w1.address_zipf().probability(0)).abs() < 0.015);
    assert!((to_hot_share - w1.address_zipf().probability(0)).abs() < 0.025);
    assert!((sig0_share - w1.topic0_zipf().probability(0)).abs() < 0.015);
    assert!((topic3_share - 0.10).abs() < 0.01);
    assert!((failed_share - 0.02).abs() < 0.007);
    assert!((mean_data - 80.0).abs() < 2.0);
}
