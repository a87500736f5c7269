//! The reference workload **W1** (mainnet-shaped EVM history), generated
//! deterministically as `/work/shared/WORKLOAD.md` defines it: the same seed
//! and parameters give byte-identical blocks, and any block can be generated
//! on its own.
//!
//! ```
//! use coldchain_w1::{W1, W1Params};
//! use alloy::primitives::B256;
//!
//! // A small chain; `W1Params::default()` is the reference shape
//! // (5,000 blocks of 150 transactions from block 1,000,000).
//! let w1 = W1::new(W1Params { blocks: 4, txs_per_block: 10, ..W1Params::default() });
//! let blocks: Vec<_> = w1.blocks().collect();
//! assert_eq!(blocks.len(), 4);
//! assert_eq!(blocks[0].number(), 1_000_000);
//! assert_eq!(blocks[0].header.parent_hash, B256::ZERO);
//! assert_eq!(blocks[1].header.parent_hash, blocks[0].hash());
//! // Any block on its own, given its parent hash:
//! assert_eq!(w1.block(1_000_001, blocks[0].hash()), blocks[1]);
//! // Query targets for the benchmark:
//! let _hot = w1.hot_contract();
//! let _cold = w1.contract(1_900);
//! let _q3 = (w1.signature(0), w1.q3_topic2());
//! ```
//!
//! # Generation, in full
//!
//! **Pools** (built by [`W1::new`]): account `i` is the last 20 bytes of
//! `keccak256("W1-account" ++ i as 8 big-endian bytes)`, contract `i` the
//! same with `"W1-contract"`, event signature `i` is
//! `keccak256("Event{i}(address,address,uint256)")` with `i` in decimal
//! (`Event0(...)`, `Event1(...)`, ...). Contract rank `r` and signature rank
//! `r` are pool entries `r`; rank 0 is the most frequent.
//!
//! **Randomness**: block `number` uses its own [`W1Rng`] seeded with
//! `seed ^ number.wrapping_mul(`[`BLOCK_SEED_MULTIPLIER`]`)`. Zipf draws are
//! inverse-CDF ([`Zipf`]). For each transaction `i` in `0..txs_per_block`
//! the draws are, in this order:
//! 1. sender: `below(accounts)` (uniform);
//! 2. `to`: contract rank, Zipf(`zipf_address_s`) over the contracts;
//! 3. gas limit: uniform in `tx_gas_min..tx_gas_limit_max` (half-open);
//! 4. gas used: uniform in `tx_gas_min..=gas_limit`;
//! 5. max fee per gas (wei): uniform in `max_fee_min..max_fee_max`;
//! 6. priority fee (wei): uniform in `priority_fee_min..priority_fee_max`,
//!    then capped at the max fee (EIP-1559 validity; only matters when the max
//!    fee is below 2 gwei);
//! 7. input: `input_len` random bytes;
//! 8. signature: `r` (32 bytes, top bit cleared, low bit set), `s` (32 bytes,
//!    top two bits cleared, so low-s, low bit set), y parity (one word, low
//!    bit); the signature is a dummy: the sender is set, never recovered;
//! 9. failed: `chance(failed_prob)`; a failed transaction has status 0 and no
//!    logs, and draws nothing more;
//! 10. log count: one word `x`: `0` if `x < p_zero_logs`, `1` if
//!     `x < p_zero_logs + p_one_log` (as thresholds), otherwise one more draw,
//!     uniform in `many_logs_min..=many_logs_max`;
//! 11. per log: address (contract rank, Zipf(`zipf_address_s`)), topic0
//!     (signature rank, Zipf(`zipf_topic0_s`)), topic1 (`below(accounts)`),
//!     topic2 (`below(accounts)`), has-topic3 (`chance(topic3_prob)`), topic3
//!     (32 random bytes, only if present), data length (uniform in
//!     `data_min..=data_max`), data bytes.
//!
//! **Transactions**: EIP-1559, chain id `chain_id`, nonce
//! `(number - start) * txs_per_block + i` (a global counter, so hashes are
//! unique and any block stands alone), value 0, empty access list, `to` the
//! drawn contract.
//!
//! **Receipts**: EIP-1559 receipts, status as drawn, cumulative gas the
//! running sum of the drawn gas used, bloom computed from the logs.
//!
//! **Header**: parent hash as given, `number`, timestamp
//! `timestamp_base + (number - start) * block_time` (block `start` at
//! 1,700,000,000 by default), gas limit `block_gas_limit`, gas used the
//! block's total, base fee `base_fee`, bloom the OR of the receipts' blooms,
//! real transactions and receipts roots; everything else is
//! [`Header::default`] (empty ommers, empty state root, zero beneficiary; no
//! withdrawals or blob fields). Sealed with `seal_slow`.

use alloy::{
    consensus::{
        Eip658Value, Header, Receipt as ConsensusReceipt, ReceiptEnvelope, SignableTransaction,
        TxEip1559, TxEnvelope,
        proofs::{calculate_receipt_root, calculate_transaction_root},
        transaction::Recovered,
    },
    eips::eip2930::AccessList,
    primitives::{
        Address, B256, Bloom, Bytes, Log, LogData, Sealable, Signature, TxKind, U256, keccak256,
    },
};
use coldchain::{BlockData, Receipt, RecoveredTx};
use std::ops::Range;

mod rng;
mod zipf;

pub use rng::{W1Rng, prob_threshold};
pub use zipf::Zipf;

/// The block seed is `seed ^ number.wrapping_mul(BLOCK_SEED_MULTIPLIER)`
/// (a large odd constant, so distinct numbers give distinct seeds).
pub const BLOCK_SEED_MULTIPLIER: u64 = 0xD1B5_4A32_D192_ED03;

/// Errors of [`W1::try_new`].
#[derive(Debug, thiserror::Error)]
pub enum W1Error {
    /// A parameter is out of its domain.
    #[error("invalid W1 parameter `{field}`: {reason}")]
    InvalidParams {
        /// The parameter.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Every number of the workload. [`Default`] is W1 as `WORKLOAD.md` defines
/// it. Ranges written `a..b` are half-open, `a..=b` inclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct W1Params {
    /// Seed of the whole chain (default 1; WORKLOAD.md fixes none).
    pub seed: u64,
    /// Number of blocks N (5,000).
    pub blocks: u64,
    /// Number of the first block (1,000,000).
    pub start: u64,
    /// Transactions in every block (150).
    pub txs_per_block: u64,
    /// Size of the account pool: senders and topics 1 and 2 (100,000).
    pub accounts: u64,
    /// Size of the contract pool: `to` and log addresses (2,000).
    pub contracts: u64,
    /// Number of event signatures: topic0 (64).
    pub signatures: u64,
    /// Zipf exponent of contract ranks, for `to` and log addresses (1.1).
    pub zipf_address_s: f64,
    /// Zipf exponent of topic0 signature ranks (1.0).
    pub zipf_topic0_s: f64,
    /// Probability that a successful receipt has no log (0.25).
    pub p_zero_logs: f64,
    /// Probability that a successful receipt has exactly one log (0.25).
    pub p_one_log: f64,
    /// Fewest logs of a receipt that has "many" (2).
    pub many_logs_min: u64,
    /// Most logs of a receipt that has "many" (6).
    pub many_logs_max: u64,
    /// Probability that a log has a topic3 (0.10).
    pub topic3_prob: f64,
    /// Shortest log data, bytes (32).
    pub data_min: u64,
    /// Longest log data, bytes, inclusive (128).
    pub data_max: u64,
    /// Probability that a transaction fails: status 0, no logs (0.02).
    pub failed_prob: f64,
    /// Chain id of the transactions (1).
    pub chain_id: u64,
    /// Least gas limit and least gas used of a transaction (21,000).
    pub tx_gas_min: u64,
    /// Gas limits are drawn in `tx_gas_min..tx_gas_limit_max` (300,000).
    pub tx_gas_limit_max: u64,
    /// Least max fee per gas, wei (1 gwei).
    pub max_fee_min: u64,
    /// Max fees are drawn in `max_fee_min..max_fee_max`, wei (100 gwei).
    pub max_fee_max: u64,
    /// Least priority fee per gas, wei (0).
    pub priority_fee_min: u64,
    /// Priority fees are drawn in `priority_fee_min..priority_fee_max`, wei
    /// (2 gwei), then capped at the max fee.
    pub priority_fee_max: u64,
    /// Length of every transaction's input, bytes (68).
    pub input_len: u64,
    /// Timestamp of block `start` (1,700,000,000).
    pub timestamp_base: u64,
    /// Seconds between blocks (12).
    pub block_time: u64,
    /// Header gas limit (60,000,000).
    pub block_gas_limit: u64,
    /// Header base fee, wei (7 gwei).
    pub base_fee: u64,
}

impl Default for W1Params {
    fn default() -> Self {
        const GWEI: u64 = 1_000_000_000;
        Self {
            seed: 1,
            blocks: 5_000,
            start: 1_000_000,
            txs_per_block: 150,
            accounts: 100_000,
            contracts: 2_000,
            signatures: 64,
            zipf_address_s: 1.1,
            zipf_topic0_s: 1.0,
            p_zero_logs: 0.25,
            p_one_log: 0.25,
            many_logs_min: 2,
            many_logs_max: 6,
            topic3_prob: 0.10,
            data_min: 32,
            data_max: 128,
            failed_prob: 0.02,
            chain_id: 1,
            tx_gas_min: 21_000,
            tx_gas_limit_max: 300_000,
            max_fee_min: GWEI,
            max_fee_max: 100 * GWEI,
            priority_fee_min: 0,
            priority_fee_max: 2 * GWEI,
            input_len: 68,
            timestamp_base: 1_700_000_000,
            block_time: 12,
            block_gas_limit: 60_000_000,
            base_fee: 7 * GWEI,
        }
    }
}

impl W1Params {
    /// Checks every parameter's domain.
    pub fn validate(&self) -> Result<(), W1Error> {
        fn bad(field: &'static str, reason: impl Into<String>) -> Result<(), W1Error> {
            Err(W1Error::InvalidParams { field, reason: reason.into() })
        }
        for (field, n) in [
            ("accounts", self.accounts),
            ("contracts", self.contracts),
            ("signatures", self.signatures),
        ] {
            if n == 0 {
                return bad(field, "the pool must not be empty");
            }
            if usize::try_from(n).is_err() {
                return bad(field, "the pool does not fit in memory");
            }
        }
        if self.start.checked_add(self.blocks).is_none() {
            return bad("blocks", "start + blocks overflows");
        }
        for (field, s) in
            [("zipf_address_s", self.zipf_address_s), ("zipf_topic0_s", self.zipf_topic0_s)]
        {
            if !s.is_finite() || s < 0.0 {
                return bad(field, format!("{s} is not a finite non-negative exponent"));
            }
        }
        for (field, p) in [
            ("p_zero_logs", self.p_zero_logs),
            ("p_one_log", self.p_one_log),
            ("topic3_prob", self.topic3_prob),
            ("failed_prob", self.failed_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(field, format!("{p} is not a probability"));
            }
        }
        if self.p_zero_logs + self.p_one_log > 1.0 {
            return bad("p_one_log", "p_zero_logs + p_one_log exceeds 1");
        }
        if self.many_logs_min > self.many_logs_max {
            return bad("many_logs_min", "exceeds many_logs_max");
        }
        if self.data_min > self.data_max {
            return bad("data_min", "exceeds data_max");
        }
        if usize::try_from(self.data_max).is_err() || usize::try_from(self.input_len).is_err() {
            return bad("data_max", "does not fit in memory");
        }
        if self.tx_gas_min >= self.tx_gas_limit_max {
            return bad("tx_gas_min", "the gas limit range tx_gas_min..tx_gas_limit_max is empty");
        }
        if self.max_fee_min >= self.max_fee_max {
            return bad("max_fee_min", "the range max_fee_min..max_fee_max is empty");
        }
        if self.priority_fee_min >= self.priority_fee_max {
            return bad(
                "priority_fee_min",
                "the range priority_fee_min..priority_fee_max is empty",
            );
        }
        Ok(())
    }

    /// Expected logs per transaction, failed transactions (no logs) included:
    /// `(1 - failed_prob) * (p_one_log + p_many * (min + max) / 2)`; 2.205 by
    /// default (2.25 per successful transaction).
    pub fn expected_logs_per_tx(&self) -> f64 {
        (1.0 - self.failed_prob) * self.expected_logs_per_successful_tx()
    }

    /// Expected logs per successful transaction (2.25 by default).
    pub fn expected_logs_per_successful_tx(&self) -> f64 {
        let p_many = 1.0 - self.p_zero_logs - self.p_one_log;
        self.p_one_log + p_many * (self.many_logs_min + self.many_logs_max) as f64 / 2.0
    }

    /// The block numbers `start..start + blocks`.
    pub fn numbers(&self) -> Range<u64> {
        self.start..self.start.saturating_add(self.blocks)
    }
}

/// A block before its parent hash is known: header without parent, body
/// complete.
struct Unsealed {
    header: Header,
    transactions: Vec<RecoveredTx>,
    receipts: Vec<Receipt>,
}

impl Unsealed {
    fn seal(mut self, parent: B256) -> BlockData {
        self.header.parent_hash = parent;
        // W1 blocks have no uncles and no withdrawals.
        let extras = coldchain::BlockExtras::empty_for(&self.header);
        BlockData {
            header: self.header.seal_slow(),
            transactions: self.transactions,
            receipts: self.receipts,
            extras,
        }
    }
}

/// The W1 generator: parameters, pools and Zipf tables. Immutable and
/// [`Sync`]: [`W1::block`] can run on several threads at once.
#[derive(Debug, Clone)]
pub struct W1 {
    params: W1Params,
    accounts: Vec<Address>,
    contracts: Vec<Address>,
    signatures: Vec<B256>,
    address_zipf: Zipf,
    topic0_zipf: Zipf,
    t_failed: u64,
    t_zero_logs: u64,
    t_at_most_one_log: u64,
    t_topic3: u64,
}

/// `keccak256(prefix ++ i as 8 big-endian bytes)`, last 20 bytes.
fn pool_address(prefix: &[u8], i: u64) -> Address {
    let mut buf = Vec::with_capacity(prefix.len() + 8);
    buf.extend_from_slice(prefix);
    buf.extend_from_slice(&i.to_be_bytes());
    Address::from_word(keccak256(&buf))
}

impl W1 {
    /// Builds the generator (pools and Zipf tables).
    ///
    /// # Panics
    ///
    /// If the parameters are invalid (see [`W1Params::validate`]); use
    /// [`W1::try_new`] to get the error instead.
    pub fn new(params: W1Params) -> Self {
        match Self::try_new(params) {
            Ok(w1) => w1,
            Err(e) => panic!("{e}"),
        }
    }

    /// Builds the generator, or says which parameter is invalid.
    pub fn try_new(params: W1Params) -> Result<Self, W1Error> {
        params.validate()?;
        let accounts = (0..params.accounts).map(|i| pool_address(b"W1-account", i)).collect();
        let contracts: Vec<Address> =
            (0..params.contracts).map(|i| pool_address(b"W1-contract", i)).collect();
        let signatures: Vec<B256> = (0..params.signatures)
            .map(|i| keccak256(format!("Event{i}(address,address,uint256)")))
            .collect();
        let address_zipf = Zipf::new(contracts.len(), params.zipf_address_s);
        let topic0_zipf = Zipf::new(signatures.len(), params.zipf_topic0_s);
        Ok(Self {
            t_failed: prob_threshold(params.failed_prob),
            t_zero_logs: prob_threshold(params.p_zero_logs),
            t_at_most_one_log: prob_threshold(params.p_zero_logs + params.p_one_log),
            t_topic3: prob_threshold(params.topic3_prob),
            params,
            accounts,
            contracts,
            signatures,
            address_zipf,
            topic0_zipf,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &W1Params {
        &self.params
    }

    /// The block numbers of the chain, `start..start + blocks`.
    pub fn numbers(&self) -> Range<u64> {
        self.params.numbers()
    }

    /// The account pool (senders, topic1, topic2).
    pub fn accounts(&self) -> &[Address] {
        &self.accounts
    }

    /// The contract pool, by rank (rank 0 is the hot contract).
    pub fn contracts(&self) -> &[Address] {
        &self.contracts
    }

    /// The event signatures (topic0), by rank.
    pub fn signatures(&self) -> &[B256] {
        &self.signatures
    }

    /// Account `i`.
    ///
    /// # Panics
    ///
    /// If `i >= accounts`.
    pub fn account(&self, i: usize) -> Address {
        self.accounts[i]
    }

    /// The contract of rank `rank` (0 = hot, `>= 1,500` cold by default).
    ///
    /// # Panics
    ///
    /// If `rank >= contracts`.
    pub fn contract(&self, rank: usize) -> Address {
        self.contracts[rank]
    }

    /// The hot contract: rank 0 (Q1, Q6).
    pub fn hot_contract(&self) -> Address {
        self.contract(0)
    }

    /// The event signature (topic0) of rank `rank`.
    ///
    /// # Panics
    ///
    /// If `rank >= signatures`.
    pub fn signature(&self, rank: usize) -> B256 {
        self.signatures[rank]
    }

    /// The Zipf distribution of contract ranks (`to` and log addresses).
    pub fn address_zipf(&self) -> &Zipf {
        &self.address_zipf
    }

    /// The Zipf distribution of topic0 signature ranks.
    pub fn topic0_zipf(&self) -> &Zipf {
        &self.topic0_zipf
    }

    /// Expected number of logs of contract `rank` over the whole chain
    /// (about 280,000 for rank 0 and 70 for rank 1,900 by default).
    pub fn expected_contract_logs(&self, rank: usize) -> f64 {
        let p = &self.params;
        (p.blocks * p.txs_per_block) as f64
            * p.expected_logs_per_tx()
            * self.address_zipf.probability(rank)
    }

    /// The random generator of block `number`, as [`W1::block`] starts it.
    pub fn block_rng(&self, number: u64) -> W1Rng {
        W1Rng::new(self.params.seed ^ number.wrapping_mul(BLOCK_SEED_MULTIPLIER))
    }

    /// Block `number` with parent hash `parent`, generated on its own. Its
    /// content depends only on the parameters and `number`; `parent` only
    /// enters the header (and so the hash).
    pub fn block(&self, number: u64, parent: B256) -> BlockData {
        self.unsealed(number).seal(parent)
    }

    /// The whole chain in order: `blocks` blocks from `start`, the first
    /// with parent [`B256::ZERO`], each next one the child of the previous.
    pub fn blocks(&self) -> W1Blocks<'_> {
        self.blocks_from(self.params.start, self.params.blocks, B256::ZERO)
    }

    /// `count` chained blocks from `from`, the first with parent `parent`.
    pub fn blocks_from(&self, from: u64, count: u64, parent: B256) -> W1Blocks<'_> {
        W1Blocks { w1: self, next: from, end: from.saturating_add(count), parent }
    }

    /// Like [`W1::blocks_from`], collected.
    pub fn chunk(&self, from: u64, count: u64, parent: B256) -> Vec<BlockData> {
        self.blocks_from(from, count, parent).collect()
    }

    /// Like [`W1::chunk`], the bodies generated on `threads` threads
    /// (`0` = the available parallelism), then sealed in order. Equal to
    /// [`W1::chunk`].
    pub fn chunk_par(&self, from: u64, count: u64, parent: B256, threads: usize) -> Vec<BlockData> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let end = from.saturating_add(count);
        let count = end - from;
        let per_thread = count.div_ceil(threads as u64).max(1);
        let parts: Vec<Vec<Unsealed>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads as u64)
                .map(|t| {
                    let lo = from.saturating_add(t * per_thread).min(end);
                    let hi = lo.saturating_add(per_thread).min(end);
                    scope.spawn(move || (lo..hi).map(|n| self.unsealed(n)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut parent = parent;
        let mut out = Vec::with_capacity(count as usize);
        for unsealed in parts.into_iter().flatten() {
            let block = unsealed.seal(parent);
            parent = block.hash();
            out.push(block);
        }
        out
    }

    /// The number of the middle block, `start + blocks / 2` (Q3).
    pub fn middle_block(&self) -> u64 {
        self.params.start + self.params.blocks / 2
    }

    /// The Q3 topic2: topic2 of the first log with topic0 = signature rank 0
    /// in the middle block ([`W1::middle_block`]). Should that block have no
    /// such log, the following blocks (wrapping to `start`) are searched;
    /// [`B256::ZERO`] if the chain has none.
    pub fn q3_topic2(&self) -> B256 {
        let p = &self.params;
        let sig0 = self.signatures[0];
        for offset in 0..p.blocks {
            let number = p.start + (p.blocks / 2 + offset) % p.blocks;
            let found =
                self.unsealed(number).receipts.iter().flat_map(|r| r.logs()).find_map(|log| {
                    match log.topics() {
                        [t0, _, t2, ..] if *t0 == sig0 => Some(*t2),
                        _ => None,
                    }
                });
            if let Some(t2) = found {
                return t2;
            }
        }
        B256::ZERO
    }

    fn dummy_signature(rng: &mut W1Rng) -> Signature {
        let mut r = [0u8; 32];
        rng.fill_bytes(&mut r);
        r[0] &= 0x7f;
        r[31] |= 1;
        let mut s = [0u8; 32];
        rng.fill_bytes(&mut s);
        s[0] &= 0x3f;
        s[31] |= 1;
        let y_parity = rng.next_u64() & 1 == 1;
        Signature::new(U256::from_be_bytes(r), U256::from_be_bytes(s), y_parity)
    }

    fn logs(&self, rng: &mut W1Rng) -> Vec<Log> {
        let p = &self.params;
        let x = rng.next_u64();
        let count = if x < self.t_zero_logs {
            0
        } else if x < self.t_at_most_one_log {
            1
        } else {
            rng.range_inclusive(p.many_logs_min, p.many_logs_max)
        };
        let accounts = self.accounts.len() as u64;
        let mut logs = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let address = self.contracts[self.address_zipf.sample(rng)];
            let topic0 = self.signatures[self.topic0_zipf.sample(rng)];
            let topic1 = self.accounts[rng.below(accounts) as usize].into_word();
            let topic2 = self.accounts[rng.below(accounts) as usize].into_word();
            let has_topic3 = rng.chance(self.t_topic3);
            let mut topics = Vec::with_capacity(3 + usize::from(has_topic3));
            topics.extend([topic0, topic1, topic2]);
            if has_topic3 {
                topics.push(rng.b256());
            }
            let mut data = vec![0u8; rng.range_inclusive(p.data_min, p.data_max) as usize];
            rng.fill_bytes(&mut data);
            logs.push(Log { address, data: LogData::new_unchecked(topics, Bytes::from(data)) });
        }
        logs
    }

    /// Block `number` without its parent hash: the draws, in the documented
    /// order, and the roots.
    fn unsealed(&self, number: u64) -> Unsealed {
        let p = &self.params;
        let mut rng = self.block_rng(number);
        let index = number.wrapping_sub(p.start);
        let n = p.txs_per_block as usize;
        let accounts = self.accounts.len() as u64;
        let nonce_base = index.wrapping_mul(p.txs_per_block);
        let mut envelopes = Vec::with_capacity(n);
        let mut senders = Vec::with_capacity(n);
        let mut receipts = Vec::with_capacity(n);
        let mut bloom = Bloom::ZERO;
        let mut cumulative = 0u64;
        for i in 0..p.txs_per_block {
            let sender = self.accounts[rng.below(accounts) as usize];
            let to = self.contracts[self.address_zipf.sample(&mut rng)];
            let gas_limit = rng.range(p.tx_gas_min, p.tx_gas_limit_max);
            let gas_used = rng.range_inclusive(p.tx_gas_min, gas_limit);
            let max_fee = rng.range(p.max_fee_min, p.max_fee_max);
            let priority_fee = rng.range(p.priority_fee_min, p.priority_fee_max).min(max_fee);
            let mut input = vec![0u8; p.input_len as usize];
            rng.fill_bytes(&mut input);
            let signature = Self::dummy_signature(&mut rng);
            let tx = TxEip1559 {
                chain_id: p.chain_id,
                nonce: nonce_base.wrapping_add(i),
                gas_limit,
                max_fee_per_gas: u128::from(max_fee),
                max_priority_fee_per_gas: u128::from(priority_fee),
                to: TxKind::Call(to),
                value: U256::ZERO,
                access_list: AccessList::default(),
                input: Bytes::from(input),
            };
            envelopes.push(TxEnvelope::from(tx.into_signed(signature)));
            senders.push(sender);

            cumulative = cumulative.saturating_add(gas_used);
            let failed = rng.chance(self.t_failed);
            let logs = if failed { Vec::new() } else { self.logs(&mut rng) };
            let receipt = ConsensusReceipt {
                status: Eip658Value::Eip658(!failed),
                cumulative_gas_used: cumulative,
                logs,
            }
            .with_bloom();
            bloom.accrue_bloom(&receipt.logs_bloom);
            receipts.push(ReceiptEnvelope::Eip1559(receipt));
        }
        let header = Header {
            number,
            timestamp: p.timestamp_base.wrapping_add(index.wrapping_mul(p.block_time)),
            gas_limit: p.block_gas_limit,
            gas_used: cumulative,
            base_fee_per_gas: Some(p.base_fee),
            logs_bloom: bloom,
            transactions_root: calculate_transaction_root(&envelopes),
            receipts_root: calculate_receipt_root(&receipts),
            ..Header::default()
        };
        let transactions = envelopes
            .into_iter()
            .zip(senders)
            .map(|(tx, sender)| Recovered::new_unchecked(tx, sender))
            .collect();
        Unsealed { header, transactions, receipts }
    }
}

/// The iterator of [`W1::blocks`] and [`W1::blocks_from`]: chained blocks,
/// generated one at a time.
#[derive(Debug, Clone)]
pub struct W1Blocks<'a> {
    w1: &'a W1,
    next: u64,
    end: u64,
    parent: B256,
}

impl W1Blocks<'_> {
    /// The parent hash the next block will have.
    pub fn parent(&self) -> B256 {
        self.parent
    }
}

impl Iterator for W1Blocks<'_> {
    type Item = BlockData;

    fn next(&mut self) -> Option<BlockData> {
        if self.next >= self.end {
            return None;
        }
        let block = self.w1.block(self.next, self.parent);
        self.parent = block.hash();
        self.next += 1;
        Some(block)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.end - self.next).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

impl ExactSizeIterator for W1Blocks<'_> {}

impl std::iter::FusedIterator for W1Blocks<'_> {}
