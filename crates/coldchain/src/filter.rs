//! Log filters with exact `eth_getLogs` semantics.
//!
//! - Blocks: a numeric range with optional ends (open ends resolve against the
//!   tip; a range beyond the tip is clamped to it; a range starting above the
//!   tip matches nothing) or one block hash (an unknown hash is
//!   [`ColdError::UnknownBlockHash`]).
//! - Addresses: a set, OR-ed; empty matches every address.
//! - Topics: up to four positions, AND-ed; each position is `None` (wildcard)
//!   or a set OR-ed within; an empty set is a wildcard too, as in geth.
//! - Results are ordered by (block, transaction index, log index).
//! - The `max_logs` limit of `get_logs` applies at block boundaries: a query
//!   never splits a block. The first block with a match is always returned
//!   whole, however many logs it has (so a one-block query, or one by hash,
//!   always answers); when the matches of a later block would bring the
//!   total above `max_logs`, the query fails with
//!   [`ColdError::TooManyLogs`] whose `fits_to` is the block before that one:
//!   the range from the query's start to `fits_to` is the longest that fits
//!   (at most `max_logs` matches, or just the first block). Never a partial
//!   answer. [`LogLimit`] is the rule, [`LogCollector`] applies it.
//! - Log streams keep a plain cut: exactly `max_logs` logs, then
//!   `TooManyLogs` with `fits_to: None` (a stream is consumed as it comes,
//!   so there is no answer to keep whole).

use crate::{ColdError, ColdResult};
use alloy::primitives::{Address, B256, BlockNumber, Bloom, BloomInput, Log};

/// Most topic positions a filter may have.
pub const MAX_TOPICS: usize = 4;

/// Which blocks a filter covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockSelector {
    /// A numeric range; `None` ends mean the tip.
    Range {
        /// First block (inclusive); `None` means the tip.
        from: Option<BlockNumber>,
        /// Last block (inclusive); `None` means the tip.
        to: Option<BlockNumber>,
    },
    /// Exactly one block, by hash (EIP-234).
    Hash(B256),
}

/// A log filter in the shape of `eth_getLogs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogFilter {
    /// Which blocks to search.
    pub blocks: BlockSelector,
    /// Addresses to match (OR); empty matches all.
    pub addresses: Vec<Address>,
    /// Topic positions (AND across, OR within); `None` is a wildcard.
    pub topics: Vec<Option<Vec<B256>>>,
}

impl Default for LogFilter {
    fn default() -> Self {
        Self {
            blocks: BlockSelector::Range { from: None, to: None },
            addresses: vec![],
            topics: vec![],
        }
    }
}

impl LogFilter {
    /// A filter over blocks `from..=to` with no address or topic condition.
    pub fn range(from: BlockNumber, to: BlockNumber) -> Self {
        Self {
            blocks: BlockSelector::Range { from: Some(from), to: Some(to) },
            ..Default::default()
        }
    }

    /// A filter over one block by hash.
    pub fn at_hash(hash: B256) -> Self {
        Self { blocks: BlockSelector::Hash(hash), ..Default::default() }
    }

    /// Adds an address to match.
    pub fn address(mut self, address: Address) -> Self {
        self.addresses.push(address);
        self
    }

    /// Sets topic position `pos` (0..4) to the given set.
    pub fn topic(mut self, pos: usize, values: Vec<B256>) -> Self {
        if self.topics.len() <= pos {
            self.topics.resize(pos + 1, None);
        }
        self.topics[pos] = Some(values);
        self
    }

    /// Rejects malformed filters: more than four topic positions, or an
    /// explicit `from` above an explicit `to`.
    pub fn validate(&self) -> ColdResult<()> {
        if self.topics.len() > MAX_TOPICS {
            return Err(ColdError::InvalidFilter(format!(
                "{} topic positions given, at most {MAX_TOPICS} allowed",
                self.topics.len()
            )));
        }
        if let BlockSelector::Range { from: Some(from), to: Some(to) } = self.blocks
            && from > to
        {
            return Err(ColdError::InvalidFilter(format!(
                "fromBlock {from} is above toBlock {to}"
            )));
        }
        Ok(())
    }

    /// Resolves a range selector against the tip: the inclusive block range to
    /// search, or `None` when nothing can match (empty store, or start above
    /// the tip). Errors when an open `from` resolves above an explicit `to`.
    /// For a hash selector, returns `None`; backends look the hash up.
    pub fn resolve_range(
        &self,
        tip: Option<BlockNumber>,
    ) -> ColdResult<Option<std::ops::RangeInclusive<BlockNumber>>> {
        self.validate()?;
        let BlockSelector::Range { from, to } = self.blocks else { return Ok(None) };
        let Some(tip) = tip else { return Ok(None) };
        let from = from.unwrap_or(tip);
        // An explicit start above the tip matches nothing, even with an open
        // end (which would resolve below it).
        if from > tip {
            return Ok(None);
        }
        let to = to.unwrap_or(tip);
        if from > to {
            return Err(ColdError::InvalidFilter(format!(
                "fromBlock {from} is above toBlock {to}"
            )));
        }
        Ok(Some(from..=to.min(tip)))
    }

    /// Whether a log matches the address and topic conditions.
    pub fn matches(&self, log: &Log) -> bool {
        self.matches_address(&log.address) && self.matches_topics(log.topics())
    }

    /// Whether a log with this address passes the address condition.
    pub fn matches_address(&self, address: &Address) -> bool {
        self.addresses.is_empty() || self.addresses.contains(address)
    }

    /// Whether a log with these topics passes the topic conditions (for
    /// readers that check a log before building it).
    pub fn matches_topics(&self, topics: &[B256]) -> bool {
        for (pos, want) in self.topics.iter().enumerate() {
            let Some(set) = want else { continue };
            if set.is_empty() {
                continue;
            }
            match topics.get(pos) {
                Some(t) if set.contains(t) => {}
                _ => return false,
            }
        }
        true
    }

    /// Whether a block with this bloom may contain a match (no false
    /// negatives).
    pub fn may_match_bloom(&self, bloom: &Bloom) -> bool {
        if !self.addresses.is_empty()
            && !self.addresses.iter().any(|a| bloom.contains_input(BloomInput::Raw(a.as_slice())))
        {
            return false;
        }
        self.topics
            .iter()
            .flatten()
            .filter(|set| !set.is_empty())
            .all(|set| set.iter().any(|t| bloom.contains_input(BloomInput::Raw(t.as_slice()))))
    }
}

/// The `max_logs` rule of `get_logs`, at block boundaries (see the
/// [module docs](self)), for matches admitted in order.
#[derive(Debug, Clone, Copy)]
pub struct LogLimit {
    limit: usize,
    count: usize,
    first_block: Option<BlockNumber>,
}

impl LogLimit {
    /// A limit of `limit` matches.
    pub const fn new(limit: usize) -> Self {
        Self { limit, count: 0, first_block: None }
    }

    /// Admits one more match, in block `block` (blocks never decrease):
    /// fine while the total is at most the limit or the match is in the
    /// first block; else `TooManyLogs` with `fits_to: block - 1`.
    pub fn admit(&mut self, block: BlockNumber) -> ColdResult<()> {
        let first = *self.first_block.get_or_insert(block);
        if self.count >= self.limit && block != first {
            return Err(ColdError::TooManyLogs {
                limit: self.limit,
                fits_to: Some(block.saturating_sub(1).max(first)),
            });
        }
        self.count += 1;
        Ok(())
    }

    /// Matches admitted so far.
    pub const fn count(&self) -> usize {
        self.count
    }
}

/// Collects matches under [`LogLimit`]: the first block whole, then at most
/// `limit` matches in all. Exactly `limit` matches is fine.
#[derive(Debug)]
pub struct LogCollector {
    limit: LogLimit,
    logs: Vec<crate::RpcLog>,
}

impl LogCollector {
    /// A collector with a limit of `limit` logs.
    pub fn new(limit: usize) -> Self {
        Self { limit: LogLimit::new(limit), logs: Vec::new() }
    }

    /// Adds one match (in order; a stored log always has its block number).
    pub fn push(&mut self, log: crate::RpcLog) -> ColdResult<()> {
        self.limit.admit(log.block_number.unwrap_or_default())?;
        self.logs.push(log);
        Ok(())
    }

    /// The collected logs, in insertion order.
    pub fn finish(self) -> Vec<crate::RpcLog> {
        self.logs
    }
}
