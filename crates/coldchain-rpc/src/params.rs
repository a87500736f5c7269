//! Strict parsing of JSON-RPC parameters, with geth's rules and messages.
//!
//! - Parameters are a JSON array; `"params": null`, `[]` and a missing
//!   `params` all mean "no arguments". Trailing optional arguments may be
//!   left out or `null`. Named (object) parameters are refused, as by geth.
//! - Quantities are hex strings with a `0x` prefix and no leading zeros
//!   (`"0x0"`, `"0x1a"`); JSON numbers and `"0x01"` are refused (geth's
//!   `hexutil` rules; anvil is more lenient).
//! - Hashes are 32 bytes and addresses 20 bytes, as `0x`-prefixed hex.
//! - Block tags are `earliest`, `latest`, `safe`, `finalized` and `pending`.

use crate::error::{RpcResult, invalid_argument, invalid_params};
use alloy::primitives::{Address, B256};
use serde_json::Value;

/// A block named by number or tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockTag {
    /// A number.
    Number(u64),
    /// `earliest`: the first stored block.
    Earliest,
    /// `latest`: the durable tip.
    Latest,
    /// `safe`: the durable tip (a history store holds only final blocks).
    Safe,
    /// `finalized`: the durable tip.
    Finalized,
    /// `pending`: the durable tip (a history store has no pending block).
    Pending,
}

/// A block named by number, tag or hash (EIP-1898).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockId {
    /// By number or tag.
    Tag(BlockTag),
    /// By hash.
    Hash(B256),
}

/// A log filter as given, before it is resolved against the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterParams {
    /// `fromBlock`.
    pub from_block: Option<BlockTag>,
    /// `toBlock`.
    pub to_block: Option<BlockTag>,
    /// `blockHash` (EIP-234).
    pub block_hash: Option<B256>,
    /// `address`: one or many, OR-ed; empty matches all.
    pub addresses: Vec<Address>,
    /// `topics`: per position, `None` is a wildcard.
    pub topics: Vec<Option<Vec<B256>>>,
}

/// The positional arguments of one call.
#[derive(Debug)]
pub struct Args {
    values: Vec<Value>,
}

impl Args {
    /// Parses raw parameters (`None` when absent) and checks that at most
    /// `max` were given.
    pub fn parse(raw: Option<&str>, max: usize) -> RpcResult<Self> {
        let values = match raw.map(str::trim) {
            None | Some("") | Some("null") => Vec::new(),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Array(values)) => values,
                Ok(Value::Null) => Vec::new(),
                Ok(_) => return Err(invalid_params("non-array args")),
                Err(e) => return Err(invalid_params(format!("invalid params: {e}"))),
            },
        };
        if values.len() > max {
            return Err(invalid_params(format!("too many arguments, want at most {max}")));
        }
        Ok(Self { values })
    }

    /// Argument `i`, `None` when absent or `null`.
    pub fn optional(&self, i: usize) -> Option<&Value> {
        self.values.get(i).filter(|v| !v.is_null())
    }

    /// Argument `i`, an error when absent or `null`.
    pub fn required(&self, i: usize) -> RpcResult<&Value> {
        self.optional(i)
            .ok_or_else(|| invalid_params(format!("missing value for required argument {i}")))
    }

    /// Argument `i` as a block number or tag.
    pub fn block_tag(&self, i: usize) -> RpcResult<BlockTag> {
        parse_block_tag(self.required(i)?).map_err(|e| invalid_argument(i, e))
    }

    /// Argument `i` as a block number, tag or hash.
    pub fn block_id(&self, i: usize) -> RpcResult<BlockId> {
        parse_block_id(self.required(i)?).map_err(|e| invalid_argument(i, e))
    }

    /// Argument `i` as a 32-byte hash.
    pub fn hash(&self, i: usize) -> RpcResult<B256> {
        parse_hash(self.required(i)?).map_err(|e| invalid_argument(i, e))
    }

    /// Argument `i` as a quantity.
    pub fn quantity(&self, i: usize) -> RpcResult<u64> {
        parse_quantity(self.required(i)?).map_err(|e| invalid_argument(i, e))
    }

    /// Argument `i` as a boolean.
    pub fn bool(&self, i: usize) -> RpcResult<bool> {
        match self.required(i)? {
            Value::Bool(b) => Ok(*b),
            other => {
                Err(invalid_argument(i, format!("cannot unmarshal {} into a boolean", kind(other))))
            }
        }
    }

    /// Argument `i` as a string.
    pub fn string(&self, i: usize) -> RpcResult<&str> {
        match self.required(i)? {
            Value::String(s) => Ok(s),
            other => {
                Err(invalid_argument(i, format!("cannot unmarshal {} into a string", kind(other))))
            }
        }
    }

    /// Argument `i` as a log filter; an absent argument is the empty filter
    /// when `optional`.
    pub fn filter(&self, i: usize, optional: bool, max_values: usize) -> RpcResult<FilterParams> {
        let value = if optional {
            match self.optional(i) {
                Some(v) => v,
                None => return Ok(FilterParams::default()),
            }
        } else {
            self.required(i)?
        };
        parse_filter(value, max_values).map_err(|e| invalid_argument(i, e))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Parses a quantity: `0x`-prefixed hex, no leading zeros, at most 64 bits.
pub fn parse_quantity(v: &Value) -> Result<u64, String> {
    let Value::String(s) = v else {
        return Err(format!("cannot unmarshal {} into a hex quantity", kind(v)));
    };
    parse_quantity_str(s)
}

/// [`parse_quantity`] on a string.
pub fn parse_quantity_str(s: &str) -> Result<u64, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(|| "hex string without 0x prefix".to_owned())?;
    if digits.is_empty() {
        return Err("hex string \"0x\"".to_owned());
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err("hex number with leading zero digits".to_owned());
    }
    if digits.len() > 16 {
        return Err("hex number > 64 bits".to_owned());
    }
    u64::from_str_radix(digits, 16).map_err(|_| "invalid hex string".to_owned())
}

/// Parses a block number or tag.
pub fn parse_block_tag(v: &Value) -> Result<BlockTag, String> {
    let Value::String(s) = v else {
        return Err(format!("cannot unmarshal {} into a block number", kind(v)));
    };
    Ok(match s.as_str() {
        "earliest" => BlockTag::Earliest,
        "latest" => BlockTag::Latest,
        "safe" => BlockTag::Safe,
        "finalized" => BlockTag::Finalized,
        "pending" => BlockTag::Pending,
        other => BlockTag::Number(parse_quantity_str(other)?),
    })
}

/// Parses a block number, tag or hash, or an EIP-1898 object
/// (`{"blockHash": h, "requireCanonical": b}` or `{"blockNumber": n}`).
pub fn parse_block_id(v: &Value) -> Result<BlockId, String> {
    match v {
        Value::String(s) if s.len() == 66 && s.starts_with("0x") => {
            Ok(BlockId::Hash(parse_fixed::<32>(s, "common.Hash")?.into()))
        }
        Value::String(_) => parse_block_tag(v).map(BlockId::Tag),
        Value::Object(map) => {
            for key in map.keys() {
                if !matches!(key.as_str(), "blockHash" | "blockNumber" | "requireCanonical") {
                    return Err(format!("unknown field {key:?} in block specifier"));
                }
            }
            match (map.get("blockHash"), map.get("blockNumber")) {
                (Some(_), Some(_)) => {
                    Err("cannot specify both BlockHash and BlockNumber, choose one or the other"
                        .to_owned())
                }
                (Some(h), None) => {
                    if let Some(rc) = map.get("requireCanonical")
                        && !rc.is_boolean()
                    {
                        return Err("requireCanonical must be a boolean".to_owned());
                    }
                    parse_hash(h).map(BlockId::Hash)
                }
                (None, Some(n)) => parse_block_tag(n).map(BlockId::Tag),
                (None, None) => Err("expected blockHash or blockNumber".to_owned()),
            }
        }
        other => Err(format!("cannot unmarshal {} into a block specifier", kind(other))),
    }
}

fn parse_fixed<const N: usize>(s: &str, type_name: &str) -> Result<[u8; N], String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(|| "hex string without 0x prefix".to_owned())?;
    if digits.len() != 2 * N {
        return Err(format!(
            "hex string has length {}, want {} for {type_name}",
            digits.len(),
            2 * N
        ));
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16)
            .map_err(|_| "invalid hex string".to_owned())?;
    }
    Ok(out)
}

/// Parses a 32-byte hash.
pub fn parse_hash(v: &Value) -> Result<B256, String> {
    match v {
        Value::String(s) => parse_fixed::<32>(s, "common.Hash").map(B256::from),
        other => Err(format!("cannot unmarshal {} into a hash", kind(other))),
    }
}

/// Parses a 20-byte address (any letter case; the checksum is not checked).
pub fn parse_address(v: &Value) -> Result<Address, String> {
    match v {
        Value::String(s) => parse_fixed::<20>(s, "common.Address").map(Address::from),
        other => Err(format!("cannot unmarshal {} into an address", kind(other))),
    }
}

/// Parses an `eth_getLogs` filter object with geth's rules: `address` is one
/// address or an array; `topics` has at most four positions, each `null`
/// (wildcard), a hash, or an array of hashes (OR; a `null` inside makes the
/// position a wildcard); unknown fields are ignored.
pub fn parse_filter(v: &Value, max_values: usize) -> Result<FilterParams, String> {
    let Value::Object(map) = v else {
        return Err(format!("cannot unmarshal {} into a filter object", kind(v)));
    };
    let mut out = FilterParams::default();
    let tag = |key: &str| -> Result<Option<BlockTag>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => parse_block_tag(v).map(Some).map_err(|e| format!("{key}: {e}")),
        }
    };
    out.from_block = tag("fromBlock")?;
    out.to_block = tag("toBlock")?;
    match map.get("blockHash") {
        None | Some(Value::Null) => {}
        Some(v) => out.block_hash = Some(parse_hash(v).map_err(|e| format!("blockHash: {e}"))?),
    }
    if out.block_hash.is_some() && (out.from_block.is_some() || out.to_block.is_some()) {
        return Err("cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"
            .to_owned());
    }
    match map.get("address") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items.len() > max_values {
                return Err("exceed max addresses or topics per search position".to_owned());
            }
            for item in items {
                out.addresses.push(parse_address(item).map_err(|e| format!("address: {e}"))?);
            }
        }
        Some(v) => out.addresses.push(parse_address(v).map_err(|e| format!("address: {e}"))?),
    }
    match map.get("topics") {
        None | Some(Value::Null) => {}
        Some(Value::Array(positions)) => {
            if positions.len() > coldchain::filter::MAX_TOPICS {
                return Err("exceed max topics".to_owned());
            }
            for position in positions {
                out.topics.push(parse_topic_position(position, max_values)?);
            }
        }
        Some(other) => return Err(format!("cannot unmarshal {} into topics", kind(other))),
    }
    Ok(out)
}

fn parse_topic_position(v: &Value, max_values: usize) -> Result<Option<Vec<B256>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(_) => Ok(Some(vec![parse_hash(v).map_err(|e| format!("topic: {e}"))?])),
        Value::Array(items) => {
            if items.len() > max_values {
                return Err("exceed max addresses or topics per search position".to_owned());
            }
            let mut set = Vec::with_capacity(items.len());
            for item in items {
                if item.is_null() {
                    // geth: a null inside the OR-list matches anything.
                    return Ok(None);
                }
                set.push(parse_hash(item).map_err(|e| format!("topic: {e}"))?);
            }
            // An empty list is a wildcard too (geth, anvil).
            Ok(if set.is_empty() { None } else { Some(set) })
        }
        other => Err(format!("invalid topic: cannot unmarshal {}", kind(other))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_follow_geth() {
        assert_eq!(parse_quantity(&json!("0x0")), Ok(0));
        assert_eq!(parse_quantity(&json!("0x1a")), Ok(26));
        assert_eq!(parse_quantity(&json!("0xffffffffffffffff")), Ok(u64::MAX));
        assert!(parse_quantity(&json!("0x01")).unwrap_err().contains("leading zero"));
        assert!(parse_quantity(&json!("1")).unwrap_err().contains("without 0x"));
        assert!(parse_quantity(&json!("0x")).is_err());
        assert!(parse_quantity(&json!("0x1ffffffffffffffff")).unwrap_err().contains("64 bits"));
        assert!(parse_quantity(&json!("0xzz")).is_err());
        assert!(parse_quantity(&json!(1)).is_err());
    }

    #[test]
    fn block_ids() {
        assert_eq!(parse_block_tag(&json!("latest")), Ok(BlockTag::Latest));
        assert_eq!(parse_block_tag(&json!("0x10")), Ok(BlockTag::Number(16)));
        assert!(parse_block_tag(&json!("newest")).is_err());
        let h = format!("0x{}", "ab".repeat(32));
        assert_eq!(parse_block_id(&json!(h)), Ok(BlockId::Hash(B256::repeat_byte(0xab))));
        assert_eq!(
            parse_block_id(&json!({"blockHash": h, "requireCanonical": true})),
            Ok(BlockId::Hash(B256::repeat_byte(0xab)))
        );
        assert_eq!(
            parse_block_id(&json!({"blockNumber": "0x5"})),
            Ok(BlockId::Tag(BlockTag::Number(5)))
        );
        assert!(parse_block_id(&json!({"blockNumber": "0x5", "blockHash": h})).is_err());
        assert!(parse_block_id(&json!("0xabc")).is_ok());
        assert!(parse_hash(&json!("0xabc")).unwrap_err().contains("want 64"));
    }

    #[test]
    fn args_counts() {
        assert!(Args::parse(None, 0).is_ok());
        assert!(Args::parse(Some("null"), 0).is_ok());
        assert!(Args::parse(Some("[]"), 0).is_ok());
        assert!(Args::parse(Some("[1]"), 0).is_err());
        assert!(Args::parse(Some("{\"a\":1}"), 2).is_err());
        let args = Args::parse(Some("[\"0x1\", null]"), 2).unwrap();
        assert!(args.optional(1).is_none());
        assert!(args.required(1).is_err());
    }

    #[test]
    fn filters() {
        let t = format!("0x{}", "11".repeat(32));
        let a = format!("0x{}", "22".repeat(20));
        let f = parse_filter(
            &json!({"fromBlock": "0x1", "toBlock": "latest", "address": a, "topics": [null, [t, t], []]}),
            10,
        )
        .unwrap();
        assert_eq!(f.from_block, Some(BlockTag::Number(1)));
        assert_eq!(f.addresses.len(), 1);
        assert_eq!(f.topics, vec![None, Some(vec![B256::repeat_byte(0x11); 2]), None]);
        assert!(parse_filter(&json!({"blockHash": t, "fromBlock": "0x1"}), 10).is_err());
        assert!(parse_filter(&json!({"topics": [null, null, null, null, null]}), 10).is_err());
        assert!(parse_filter(&json!({"address": [a, a, a]}), 2).is_err());
        assert!(parse_filter(&json!({"topics": [[t, null]]}), 10).unwrap().topics == vec![None]);
        assert!(parse_filter(&json!({"topics": [1]}), 10).is_err());
        assert!(parse_filter(&json!([]), 10).is_err());
    }
}
