//! Fee methods: `eth_feeHistory` and `eth_blobBaseFee`, computed from stored
//! headers and receipts as geth computes them (go-ethereum
//! `eth/gasprice/feehistory.go`, `consensus/misc/eip1559`,
//! `consensus/misc/eip4844`).
//!
//! # `eth_feeHistory(blockCount, newestBlock, rewardPercentiles?)`
//!
//! - `blockCount`: a hex (`"0x5"`) or decimal (`"5"`, `5`) integer, as geth's
//!   `math.HexOrDecimal64` takes it. `0` answers `{"oldestBlock": "0x0",
//!   "gasUsedRatio": null}`, as geth does. More than [`MAX_FEE_HISTORY`]
//!   (1024, geth's default for both header and block history) is cut to it.
//! - `newestBlock`: a number or tag. A number above the tip is `-32000
//!   "request beyond head block: requested N, head M"`; one below the first
//!   stored block is `4444`.
//! - `rewardPercentiles`: at most 100 numbers, each in `[0, 100]`, strictly
//!   increasing, else `-32000 "invalid reward percentile: ..."` in geth's
//!   words. geth requires the argument; coldchain also takes it left out or
//!   `null` (no `reward` then), as reth does.
//! - The range ends at `newestBlock` and starts `blockCount - 1` blocks
//!   before, but never below the first stored block: where geth stops at
//!   genesis, coldchain stops at the first block it holds, and `oldestBlock`
//!   says where the answer starts.
//!
//! Per block: `baseFeePerGas` (0 before London) and, one entry more, the next
//! block's base fee (EIP-1559 with mainnet's parameters; the block before
//! London gets the initial 1 gwei on mainnet, chain id 1, and 0 elsewhere as
//! the chain's London block is unknown); `gasUsedRatio` = `gasUsed /
//! gasLimit`; `baseFeePerBlobGas` (0 before Cancun) with the next block's
//! (from the block's excess blob gas, blob gas used and base fee, EIP-7918
//! included where the parameters have a blob base cost); `blobGasUsedRatio`
//! = blob gas used over the maximum of the block's blob parameters.
//! `reward[i][j]`: the effective priority fee (`effectiveGasPrice - baseFee`)
//! of the transaction at which the gas used, summed over the block's
//! transactions sorted by that fee, reaches percentile `j` of the block's gas
//! used; all zeros for a block without transactions.
//!
//! # `eth_blobBaseFee`
//!
//! The blob base fee of the block after the tip: from the tip's excess blob
//! gas, blob gas used and base fee, with the tip's blob parameters (the next
//! block's timestamp is not known; geth's `eth_feeHistory` makes the same
//! choice for its last entry, which this equals). `null` while the tip
//! predates Cancun or the store is empty. geth answers the tip's own blob
//! base fee here; reth and anvil answer the next block's, as coldchain does.
//!
//! # Blob parameters
//!
//! coldchain does not know a chain's fork schedule, so blob parameters come
//! from Ethereum mainnet's schedule by timestamp
//! ([`coldchain::model::blob_params`]: Cancun, Prague, Osaka, BPO1, BPO2), the
//! same rule receipts use for `blobGasPrice`. On a chain with another
//! schedule, blob fees of blocks whose excess blob gas is not zero can differ
//! from that chain's nodes.

use crate::{
    error::{RpcResult, SERVER_ERROR, error, from_cold, invalid_argument, pruned},
    eth::{Api, method},
    params::BlockTag,
};
use alloy::{
    eips::eip1559::BaseFeeParams,
    primitives::{BlockNumber, U64, U256},
};
use coldchain::{ColdBackend, SealedHeader, StoredReceipt, model::blob_params};
use futures::{StreamExt, TryStreamExt, stream};
use jsonrpsee::{RpcModule, core::RegisterMethodError};
use serde::Serialize;
use serde_json::Value;

/// Most blocks in one `eth_feeHistory` answer (geth's `MaxHeaderHistory` and
/// `MaxBlockHistory` defaults).
pub const MAX_FEE_HISTORY: u64 = 1024;
/// Most reward percentiles in one call (geth's `maxQueryLimit`).
pub const MAX_PERCENTILES: usize = 100;
/// Blocks read at once (geth's `maxBlockFetchers`).
const FETCHERS: usize = 4;
/// The base fee of the first London block (EIP-1559 `INITIAL_BASE_FEE`).
const INITIAL_BASE_FEE: u64 = 1_000_000_000;
/// Mainnet's London block.
const MAINNET_LONDON: BlockNumber = 12_965_000;

/// The answer of `eth_feeHistory`, with geth's field names and omissions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeeHistory {
    /// First block of the answer.
    pub oldest_block: U64,
    /// Reward percentiles per block (left out when none were asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward: Option<Vec<Vec<U256>>>,
    /// Base fee per block, and the next block's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_fee_per_gas: Option<Vec<U256>>,
    /// `gasUsed / gasLimit` per block (`null` for an empty answer, as geth).
    pub gas_used_ratio: Option<Vec<f64>>,
    /// Blob base fee per block, and the next block's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_fee_per_blob_gas: Option<Vec<U256>>,
    /// Blob gas used over the block's maximum, per block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob_gas_used_ratio: Option<Vec<f64>>,
}

/// What one block contributes.
#[derive(Debug, Clone, PartialEq)]
struct BlockFees {
    base_fee: u64,
    next_base_fee: u64,
    gas_used_ratio: f64,
    blob_base_fee: u128,
    next_blob_base_fee: u128,
    blob_gas_used_ratio: f64,
    reward: Option<Vec<u128>>,
}

/// The base fee of the block after `header` (geth's `eip1559.CalcBaseFee`).
fn next_base_fee(header: &SealedHeader, chain_id: u64) -> u64 {
    match header.next_block_base_fee(BaseFeeParams::ethereum()) {
        Some(fee) => fee,
        None if chain_id == 1 && header.number + 1 == MAINNET_LONDON => INITIAL_BASE_FEE,
        None => 0,
    }
}

/// The blob base fee of `header` and of the block after it (geth's
/// `CalcBlobFee` and `CalcExcessBlobGas` with the header's timestamp).
/// `None` before Cancun.
fn blob_fees(header: &SealedHeader) -> Option<(u128, u128)> {
    let excess = header.excess_blob_gas?;
    let params = blob_params(header.timestamp);
    let next_excess = params.next_block_excess_blob_gas_osaka(
        excess,
        header.blob_gas_used.unwrap_or(0),
        header.base_fee_per_gas.unwrap_or(0),
    );
    Some((params.calc_blob_fee(excess), params.calc_blob_fee(next_excess)))
}

/// One block's fees; `receipts` are given when percentiles are asked for.
fn block_fees(
    header: &SealedHeader,
    receipts: Option<&[StoredReceipt]>,
    percentiles: &[f64],
    chain_id: u64,
) -> BlockFees {
    let (blob_base_fee, next_blob_base_fee) = blob_fees(header).unwrap_or((0, 0));
    let blob_gas_used_ratio = match header.blob_gas_used {
        Some(used) => {
            let max = blob_params(header.timestamp).max_blob_gas_per_block();
            if max == 0 { 0.0 } else { used as f64 / max as f64 }
        }
        None => 0.0,
    };
    BlockFees {
        base_fee: header.base_fee_per_gas.unwrap_or(0),
        next_base_fee: next_base_fee(header, chain_id),
        gas_used_ratio: header.gas_used as f64 / header.gas_limit as f64,
        blob_base_fee,
        next_blob_base_fee,
        blob_gas_used_ratio,
        reward: receipts.map(|r| rewards(header, r, percentiles)),
    }
}

/// geth's reward percentiles: effective priority fees sorted ascending
/// (stably), weighted by each transaction's gas used.
fn rewards(header: &SealedHeader, receipts: &[StoredReceipt], percentiles: &[f64]) -> Vec<u128> {
    if receipts.is_empty() {
        return vec![0; percentiles.len()];
    }
    let base_fee = u128::from(header.base_fee_per_gas.unwrap_or(0));
    let mut sorted: Vec<(u64, u128)> = receipts
        .iter()
        .map(|r| (r.gas_used, r.effective_gas_price.saturating_sub(base_fee)))
        .collect();
    sorted.sort_by_key(|&(_, reward)| reward);
    let mut index = 0;
    let mut sum = sorted[0].0;
    percentiles
        .iter()
        .map(|p| {
            // As geth: float64(gasUsed) * p / 100, truncated.
            let threshold = (header.gas_used as f64 * p / 100.0) as u64;
            while sum < threshold && index < sorted.len() - 1 {
                index += 1;
                sum += sorted[index].0;
            }
            sorted[index].1
        })
        .collect()
}

/// geth's `math.HexOrDecimal64`: a JSON number or string, hex with `0x` or
/// decimal.
fn parse_hex_or_decimal(v: &Value) -> Result<u64, String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("invalid hex or decimal integer {:?}", other.to_string())),
    };
    let invalid = || format!("invalid hex or decimal integer {:?}", text);
    if text.is_empty() {
        return Ok(0);
    }
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text.as_str(), 10),
    };
    // `from_str_radix` takes a leading `+`; Go's `ParseUint` does not.
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return Err(invalid());
    }
    u64::from_str_radix(digits, radix).map_err(|_| invalid())
}

/// `rewardPercentiles`: an array of numbers, or absent.
fn parse_percentiles(v: Option<&Value>) -> Result<Vec<f64>, String> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let Value::Array(items) = v else {
        return Err("json: cannot unmarshal non-array into Go value of type []float64".to_owned());
    };
    items
        .iter()
        .map(|item| {
            item.as_f64().ok_or_else(|| {
                "json: cannot unmarshal non-number into Go value of type float64".to_owned()
            })
        })
        .collect()
}

fn invalid_percentile(detail: String) -> jsonrpsee::types::ErrorObjectOwned {
    error(SERVER_ERROR, format!("invalid reward percentile: {detail}"))
}

/// geth's checks of the percentiles, in its order and words.
fn check_percentiles(percentiles: &[f64]) -> RpcResult<()> {
    for (i, &p) in percentiles.iter().enumerate() {
        if !(0.0..=100.0).contains(&p) {
            return Err(invalid_percentile(format!("{p:.6}")));
        }
        if i > 0 && p <= percentiles[i - 1] {
            return Err(invalid_percentile(format!(
                "#{}:{:.6} >= #{}:{:.6}",
                i - 1,
                percentiles[i - 1],
                i,
                p
            )));
        }
    }
    Ok(())
}

impl<B: ColdBackend> Api<B> {
    /// `eth_feeHistory`; see the module docs.
    pub(crate) async fn fee_history(
        &self,
        count: u64,
        newest: BlockTag,
        percentiles: Vec<f64>,
    ) -> RpcResult<FeeHistory> {
        if count == 0 {
            return Ok(FeeHistory::default());
        }
        if percentiles.len() > MAX_PERCENTILES {
            return Err(invalid_percentile(format!("over the query limit {MAX_PERCENTILES}")));
        }
        let count = count.min(MAX_FEE_HISTORY);
        check_percentiles(&percentiles)?;
        let Some(head) = self.head() else { return Ok(FeeHistory::default()) };
        if let BlockTag::Number(n) = newest
            && n > head
        {
            return Err(error(
                SERVER_ERROR,
                format!("request beyond head block: requested {n}, head {head}"),
            ));
        }
        let Some(newest) = self.resolve_tag(newest).await? else {
            return Ok(FeeHistory::default());
        };
        let Some(first) = self.first_block().await? else { return Ok(FeeHistory::default()) };
        if newest < first {
            return Err(pruned());
        }
        let count = count.min(newest - first + 1);
        let oldest = newest + 1 - count;

        let chain_id = self.config.chain_id;
        let with_rewards = !percentiles.is_empty();
        let percentiles = &percentiles;
        // In order, a few at a time; a block gone in between (truncated
        // while the call ran) ends the answer there, as in geth.
        let per_block: Vec<Option<BlockFees>> = stream::iter(oldest..=newest)
            .map(|n| async move {
                let Some(header) = self.handle.header(n).await.map_err(from_cold)? else {
                    return Ok(None);
                };
                let receipts = if with_rewards {
                    match self.handle.block_receipts(header.hash()).await.map_err(from_cold)? {
                        Some(r) => Some(r),
                        None => return Ok(None),
                    }
                } else {
                    None
                };
                let receipts = receipts.as_ref().map(|r| r.as_slice());
                RpcResult::Ok(Some(block_fees(&header, receipts, percentiles, chain_id)))
            })
            .buffered(FETCHERS)
            .try_collect()
            .await?;
        let blocks: Vec<BlockFees> = per_block.into_iter().map_while(|b| b).collect();
        let Some(last) = blocks.last() else { return Ok(FeeHistory::default()) };

        let mut base_fees: Vec<U256> = blocks.iter().map(|b| U256::from(b.base_fee)).collect();
        base_fees.push(U256::from(last.next_base_fee));
        let mut blob_fees: Vec<U256> = blocks.iter().map(|b| U256::from(b.blob_base_fee)).collect();
        blob_fees.push(U256::from(last.next_blob_base_fee));
        let reward = with_rewards.then(|| {
            blocks
                .iter()
                .map(|b| b.reward.iter().flatten().map(|&r| U256::from(r)).collect())
                .collect()
        });
        Ok(FeeHistory {
            oldest_block: U64::from(oldest),
            reward,
            base_fee_per_gas: Some(base_fees),
            gas_used_ratio: Some(blocks.iter().map(|b| b.gas_used_ratio).collect()),
            base_fee_per_blob_gas: Some(blob_fees),
            blob_gas_used_ratio: Some(blocks.iter().map(|b| b.blob_gas_used_ratio).collect()),
        })
    }

    /// `eth_blobBaseFee`: the next block's blob base fee.
    pub(crate) async fn blob_base_fee(&self) -> RpcResult<Option<U256>> {
        let Some(head) = self.head() else { return Ok(None) };
        let Some(header) = self.handle.header(head).await.map_err(from_cold)? else {
            return Ok(None);
        };
        Ok(blob_fees(&header).map(|(_, next)| U256::from(next)))
    }
}

/// Registers the methods of this module.
pub(crate) fn register<B: ColdBackend>(
    module: &mut RpcModule<Api<B>>,
) -> Result<(), RegisterMethodError> {
    method(module, "eth_feeHistory", 3, |api, args| async move {
        let count = parse_hex_or_decimal(args.required(0)?).map_err(|e| invalid_argument(0, e))?;
        let newest = args.block_tag(1)?;
        let percentiles =
            parse_percentiles(args.optional(2)).map_err(|e| invalid_argument(2, e))?;
        api.fee_history(count, newest, percentiles).await
    })?;
    method(module, "eth_blobBaseFee", 0, |api, _| async move { api.blob_base_fee().await })?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_count_is_hex_or_decimal_as_in_geth() {
        assert_eq!(parse_hex_or_decimal(&json!("0x10")), Ok(16));
        assert_eq!(parse_hex_or_decimal(&json!("0X0a")), Ok(10));
        assert_eq!(parse_hex_or_decimal(&json!("10")), Ok(10));
        assert_eq!(parse_hex_or_decimal(&json!(7)), Ok(7));
        for bad in [json!("+5"), json!("0x"), json!("0x+5"), json!("-1"), json!("5.0"), json!(1.5)]
        {
            assert!(parse_hex_or_decimal(&bad).is_err(), "{bad}");
        }
        assert!(parse_hex_or_decimal(&json!(true)).is_err());
    }

    #[test]
    fn percentiles_are_checked_in_geth_words() {
        assert!(check_percentiles(&[0.0, 25.5, 100.0]).is_ok());
        let e = check_percentiles(&[101.0]).unwrap_err();
        assert_eq!(e.message(), "invalid reward percentile: 101.000000");
        assert_eq!(e.code(), SERVER_ERROR);
        let e = check_percentiles(&[50.0, 40.0]).unwrap_err();
        assert_eq!(e.message(), "invalid reward percentile: #0:50.000000 >= #1:40.000000");
        let e = check_percentiles(&[10.0, 10.0]).unwrap_err();
        assert_eq!(e.message(), "invalid reward percentile: #0:10.000000 >= #1:10.000000");
        assert!(check_percentiles(&[-0.5]).is_err());
    }
}
