//! Deterministic synthetic chains for tests: every transaction type 0-4,
//! contract creations, failed transactions, logs with 0-4 topics, real
//! hashes, roots and blooms.

use crate::{BlockData, BlockExtras, Receipt, RecoveredTx, model::SealedHeader};
use alloy::{
    consensus::{
        Eip658Value, Header, Receipt as ConsensusReceipt, SignableTransaction, TxEip1559,
        TxEip2930, TxEip4844, TxEip7702, TxEnvelope, TxLegacy, TxType,
        proofs::{
            calculate_ommers_root, calculate_receipt_root, calculate_transaction_root,
            calculate_withdrawals_root,
        },
        transaction::Recovered,
    },
    eips::{
        eip2930::{AccessList, AccessListItem},
        eip4895::{Withdrawal, Withdrawals},
        eip7702::{Authorization, SignedAuthorization},
    },
    primitives::{Address, B256, Bloom, Bytes, Log, LogData, Sealable, Signature, TxKind, U256},
};

/// A small deterministic pseudo-random generator (splitmix64).
#[derive(Debug, Clone)]
pub struct TestRng(u64);

impl TestRng {
    /// Seeds the generator.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A random 32-byte word.
    pub fn b256(&mut self) -> B256 {
        let mut b = [0u8; 32];
        for chunk in b.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        B256::from(b)
    }
}

/// A small pool of addresses, so that filters find repeats.
pub fn test_address(i: u64) -> Address {
    Address::left_padding_from(&(0xC0DE_0000 + i).to_be_bytes())
}

/// A small pool of topics: even ones start with 12 zero bytes (as an
/// address in a topic does, which stores keep in 20 bytes), odd ones do not
/// (as an event signature).
pub fn test_topic(i: u64) -> B256 {
    let mut topic = B256::left_padding_from(&(0x7091_C000 + i).to_be_bytes());
    if i % 2 == 1 {
        topic[0] = 0x5e;
    }
    topic
}

/// Shape of a generated chain.
#[derive(Debug, Clone, Copy)]
pub struct ChainShape {
    /// Most transactions per block (0..=max, uniform).
    pub max_txs: u64,
    /// Most logs per receipt.
    pub max_logs: u64,
    /// Size of the address pool logs draw from.
    pub addresses: u64,
    /// Size of the topic pool logs draw from.
    pub topics: u64,
}

impl Default for ChainShape {
    fn default() -> Self {
        Self { max_txs: 6, max_logs: 4, addresses: 4, topics: 6 }
    }
}

/// `len` linked blocks from `start`, the first with parent `parent`.
pub fn test_chain(start: u64, len: u64, parent: B256, seed: u64) -> Vec<BlockData> {
    test_chain_with(start, len, parent, seed, ChainShape::default())
}

/// Like [`test_chain`] with a chosen shape.
pub fn test_chain_with(
    start: u64,
    len: u64,
    mut parent: B256,
    seed: u64,
    shape: ChainShape,
) -> Vec<BlockData> {
    let mut out = Vec::new();
    for number in start..start + len {
        let block = test_block(number, parent, seed, shape);
        parent = block.hash();
        out.push(block);
    }
    out
}

/// One block: deterministic in (number, parent, seed, shape).
pub fn test_block(number: u64, parent: B256, seed: u64, shape: ChainShape) -> BlockData {
    let mut rng =
        TestRng::new(seed ^ number.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ parent[0] as u64);
    let n_txs = rng.below(shape.max_txs + 1);
    let base_fee = 7_000_000_000u64;
    let mut txs = Vec::new();
    let mut receipts = Vec::new();
    let mut cumulative = 0u64;
    for i in 0..n_txs {
        let ty = rng.below(5) as u8;
        let sender = test_address(1000 + rng.below(50));
        let create = ty != 3 && ty != 4 && rng.below(8) == 0;
        let to = if create {
            TxKind::Create
        } else {
            TxKind::Call(test_address(rng.below(shape.addresses)))
        };
        let nonce = number * 1000 + i;
        let gas_limit = 21_000 + rng.below(300_000);
        let gas_used = 21_000 + rng.below(gas_limit - 21_000 + 1);
        let input = Bytes::from(rng.b256().to_vec());
        let value = U256::from(rng.below(1_000_000));
        let access_list = AccessList(vec![AccessListItem {
            address: test_address(rng.below(shape.addresses)),
            storage_keys: vec![rng.b256()],
        }]);
        let sig = Signature::new(
            U256::from(1 + rng.below(u64::MAX - 1)),
            U256::from(1 + rng.below(1 << 60)),
            rng.below(2) == 1,
        );
        let (envelope, tx_type): (TxEnvelope, TxType) = match ty {
            0 => (
                TxLegacy {
                    chain_id: Some(1),
                    nonce,
                    gas_price: 8_000_000_000,
                    gas_limit,
                    to,
                    value,
                    input,
                }
                .into_signed(sig)
                .into(),
                TxType::Legacy,
            ),
            1 => (
                TxEip2930 {
                    chain_id: 1,
                    nonce,
                    gas_price: 8_000_000_000,
                    gas_limit,
                    to,
                    value,
                    access_list,
                    input,
                }
                .into_signed(sig)
                .into(),
                TxType::Eip2930,
            ),
            2 => (
                TxEip1559 {
                    chain_id: 1,
                    nonce,
                    gas_limit,
                    max_fee_per_gas: 9_000_000_000,
                    max_priority_fee_per_gas: rng.below(2_000_000_000) as u128,
                    to,
                    value,
                    access_list,
                    input,
                }
                .into_signed(sig)
                .into(),
                TxType::Eip1559,
            ),
            3 => (
                (TxEip4844 {
                    chain_id: 1,
                    nonce,
                    gas_limit,
                    max_fee_per_gas: 9_000_000_000,
                    max_priority_fee_per_gas: 1_000_000_000,
                    to: test_address(rng.below(shape.addresses)),
                    value,
                    access_list,
                    blob_versioned_hashes: vec![rng.b256(), rng.b256()],
                    max_fee_per_blob_gas: 10,
                    input,
                })
                .into_signed(sig)
                .into(),
                TxType::Eip4844,
            ),
            _ => (
                TxEip7702 {
                    chain_id: 1,
                    nonce,
                    gas_limit,
                    max_fee_per_gas: 9_000_000_000,
                    max_priority_fee_per_gas: 1_000_000_000,
                    to: test_address(rng.below(shape.addresses)),
                    value,
                    access_list,
                    authorization_list: vec![SignedAuthorization::new_unchecked(
                        Authorization {
                            chain_id: U256::from(1),
                            address: test_address(7),
                            nonce: rng.below(100),
                        },
                        rng.below(2) as u8,
                        U256::from(1 + rng.below(1 << 60)),
                        U256::from(1 + rng.below(1 << 60)),
                    )],
                    input,
                }
                .into_signed(sig)
                .into(),
                TxType::Eip7702,
            ),
        };
        cumulative += gas_used;
        let success = rng.below(10) != 0;
        let n_logs = if success { rng.below(shape.max_logs + 1) } else { 0 };
        let logs = (0..n_logs)
            .map(|_| {
                let n_topics = rng.below(5) as usize;
                let topics = (0..n_topics).map(|_| test_topic(rng.below(shape.topics))).collect();
                let data = Bytes::from(vec![rng.below(256) as u8; rng.below(40) as usize]);
                Log {
                    address: test_address(rng.below(shape.addresses)),
                    data: LogData::new_unchecked(topics, data),
                }
            })
            .collect();
        let receipt = ConsensusReceipt {
            status: Eip658Value::Eip658(success),
            cumulative_gas_used: cumulative,
            logs,
        };
        receipts.push(Receipt::from_typed(tx_type, receipt.with_bloom()));
        txs.push(Recovered::new_unchecked(envelope, sender));
    }
    let mut bloom = Bloom::ZERO;
    for r in &receipts {
        bloom.accrue_bloom(r.logs_bloom());
    }
    let envelopes: Vec<&TxEnvelope> = txs.iter().map(|t: &RecoveredTx| t.inner()).collect();
    // Withdrawals on most blocks (0..=3), an ommer or two on some: stores
    // must keep both whatever the header's era.
    let withdrawals = Withdrawals::new(
        (0..rng.below(4))
            .map(|i| Withdrawal {
                index: number * 4 + i,
                validator_index: rng.below(1_000_000),
                address: test_address(rng.below(shape.addresses)),
                amount: rng.below(40_000_000_000),
            })
            .collect(),
    );
    let ommers: Vec<Header> = (0..if rng.below(5) == 0 { 1 + rng.below(2) } else { 0 })
        .map(|i| Header {
            parent_hash: rng.b256(),
            number: number.saturating_sub(1 + i),
            beneficiary: test_address(rng.below(shape.addresses)),
            difficulty: U256::from(rng.below(1 << 40)),
            gas_limit: 30_000_000,
            timestamp: 1_700_000_000 + number * 12 - 6,
            extra_data: Bytes::from(vec![0xee; rng.below(8) as usize]),
            ..Default::default()
        })
        .collect();
    let header = Header {
        parent_hash: parent,
        number,
        timestamp: 1_700_000_000 + number * 12,
        gas_limit: 60_000_000,
        gas_used: cumulative,
        base_fee_per_gas: Some(base_fee),
        // A Cancun-shaped header: RLP fields are positional, so the blob
        // fields need the withdrawals root and beacon root before them.
        withdrawals_root: Some(calculate_withdrawals_root(&withdrawals)),
        ommers_hash: calculate_ommers_root(&ommers),
        excess_blob_gas: Some(0),
        blob_gas_used: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        logs_bloom: bloom,
        transactions_root: calculate_transaction_root(&envelopes),
        receipts_root: calculate_receipt_root(&receipts),
        beneficiary: test_address(99),
        ..Default::default()
    };
    let header: SealedHeader = header.seal_slow();
    let extras = BlockExtras { ommers, withdrawals: Some(withdrawals) };
    BlockData { header, transactions: txs, receipts, extras }
}
