//! Strict parsing of JSON-RPC parameters, with geth's rules and messages.
//!
//! - Parameters are a JSON array; `"params": null`, `[]` and a missing
//!   `params` all mean "no arguments". Trailing optional arguments may be
//!   left out or `null`. Named (object) parameters are refused, as by geth.
//! - Hex follows geth's `hexutil` exactly, with its error messages: a `0x`
//!   (or `0X`) prefix, then only the digits `0-9a-fA-F` (no sign, space or
//!   underscore: `"0x+1a"` is refused). Quantities have at least one digit
//!   and no leading zero (`"0x0"`, `"0x1a"`; not `"0x"`, `"0x01"`, JSON
//!   numbers) and at most 64 bits (256 for [`decode_big`]); data has an even
//!   number of digits; hashes are 32 bytes and addresses 20, exactly. Every
//!   check is on bytes, so no input, however encoded, can panic a parser.
//! - Block numbers are at most `i64::MAX`, as in geth; a block id string of
//!   66 bytes is a hash, any other a number or tag (geth's
//!   `BlockNumberOrHash`).
//! - Block tags are `earliest`, `latest`, `safe`, `finalized` and `pending`.

use crate::error::{RpcResult, invalid_argument, invalid_params};
use alloy::primitives::{Address, B256, U256};
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

// geth's `hexutil` errors, word for word.
const EMPTY_STRING: &str = "empty hex string";
const SYNTAX: &str = "invalid hex string";
const MISSING_PREFIX: &str = "hex string without 0x prefix";
const ODD_LENGTH: &str = "hex string of odd length";
const EMPTY_NUMBER: &str = "hex string \"0x\"";
const LEADING_ZERO: &str = "hex number with leading zero digits";
const UINT64_RANGE: &str = "hex number > 64 bits";
const BIG256_RANGE: &str = "hex number > 256 bits";

/// geth's wrapping of a `hexutil` error met while decoding a JSON value into
/// a Go type (`json.UnmarshalTypeError`).
fn type_error(message: &str, go_type: &str) -> String {
    format!("json: cannot unmarshal {message} into Go value of type {go_type}")
}

/// The bytes after a `0x` or `0X` prefix (checked on bytes: never slices
/// inside a UTF-8 character).
fn strip_0x(s: &str) -> Option<&[u8]> {
    match s.as_bytes() {
        [b'0', b'x' | b'X', rest @ ..] => Some(rest),
        _ => None,
    }
}

/// One hex digit's value: only `0-9`, `a-f`, `A-F` (no signs, no spaces,
/// no underscores).
fn nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The digits of a quantity: `0x` prefix, at least one digit, no leading
/// zero (geth's `checkNumber`).
fn number_digits(s: &str) -> Result<&[u8], &'static str> {
    if s.is_empty() {
        return Err(EMPTY_STRING);
    }
    let digits = strip_0x(s).ok_or(MISSING_PREFIX)?;
    if digits.is_empty() {
        return Err(EMPTY_NUMBER);
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return Err(LEADING_ZERO);
    }
    Ok(digits)
}

/// geth's `hexutil.DecodeUint64`: a quantity of at most 64 bits; errors in
/// the order the digits are read (a bad digit before the 17th is a syntax
/// error, an overflow before a bad digit a range error).
pub fn decode_uint64(s: &str) -> Result<u64, &'static str> {
    let mut n: u64 = 0;
    for &b in number_digits(s)? {
        let d = nibble(b).ok_or(SYNTAX)?;
        n = n.checked_mul(16).and_then(|n| n.checked_add(u64::from(d))).ok_or(UINT64_RANGE)?;
    }
    Ok(n)
}

/// geth's `hexutil.DecodeBig`: a quantity of at most 256 bits.
pub fn decode_big(s: &str) -> Result<U256, &'static str> {
    let digits = number_digits(s)?;
    if digits.len() > 64 {
        return Err(BIG256_RANGE);
    }
    let mut n = U256::ZERO;
    for &b in digits {
        n = (n << 4) | U256::from(nibble(b).ok_or(SYNTAX)?);
    }
    Ok(n)
}

/// geth's `hexutil.Decode`: data, `0x`-prefixed, an even number of digits
/// (`"0x"` is no bytes).
pub fn decode_data(s: &str) -> Result<Vec<u8>, &'static str> {
    if s.is_empty() {
        return Err(EMPTY_STRING);
    }
    let digits = strip_0x(s).ok_or(MISSING_PREFIX)?;
    let mut out = Vec::with_capacity(digits.len() / 2);
    // As Go's `hex.DecodeString`: a bad digit anywhere, even a lone last
    // one, is reported before an odd length.
    for pair in digits.chunks(2) {
        let hi = nibble(pair[0]).ok_or(SYNTAX)?;
        let [_, lo] = pair else { return Err(ODD_LENGTH) };
        out.push((hi << 4) | nibble(*lo).ok_or(SYNTAX)?);
    }
    Ok(out)
}

/// geth's `hexutil.UnmarshalFixedText`: exactly `N` bytes, `0x`-prefixed.
/// The length is checked in bytes of the text, before any digit.
pub fn decode_fixed<const N: usize>(s: &str, go_type: &str) -> Result<[u8; N], String> {
    let digits = match strip_0x(s) {
        Some(digits) => digits,
        None if s.is_empty() => &[][..],
        None => return Err(MISSING_PREFIX.to_owned()),
    };
    if digits.len() % 2 != 0 {
        return Err(ODD_LENGTH.to_owned());
    }
    if digits.len() != 2 * N {
        return Err(format!(
            "hex string has length {}, want {} for {go_type}",
            digits.len(),
            2 * N
        ));
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0]).ok_or(SYNTAX)? << 4) | nibble(pair[1]).ok_or(SYNTAX)?;
    }
    Ok(out)
}

/// Parses a quantity argument as geth's `hexutil.Uint64`/`hexutil.Uint`: a
/// JSON string, `0x`-prefixed hex, no leading zeros, at most 64 bits. (geth
/// reads `""` as 0 here; coldchain refuses it as `hexutil.Decode*` do.)
pub fn parse_quantity(v: &Value) -> Result<u64, String> {
    let Value::String(s) = v else {
        return Err(type_error("non-string", "hexutil.Uint64"));
    };
    parse_quantity_str(s).map_err(|e| type_error(e, "hexutil.Uint64"))
}

/// [`parse_quantity`] on a string, with the bare `hexutil` message: the
/// length is checked before the digits, as `Uint64.UnmarshalText` does.
pub fn parse_quantity_str(s: &str) -> Result<u64, &'static str> {
    let digits = number_digits(s)?;
    if digits.len() > 16 {
        return Err(UINT64_RANGE);
    }
    decode_uint64(s)
}

/// A block tag's name, if `s` is one.
fn tag_of(s: &str) -> Option<BlockTag> {
    Some(match s {
        "earliest" => BlockTag::Earliest,
        "latest" => BlockTag::Latest,
        "safe" => BlockTag::Safe,
        "finalized" => BlockTag::Finalized,
        "pending" => BlockTag::Pending,
        _ => return None,
    })
}

/// Parses a block number or tag (geth's `rpc.BlockNumber`): a tag, or a
/// quantity of at most `i64::MAX`.
pub fn parse_block_tag(v: &Value) -> Result<BlockTag, String> {
    let Value::String(s) = v else {
        // geth decodes the raw JSON text, so a number is "without 0x prefix".
        return match v {
            Value::Number(_) => Err(MISSING_PREFIX.to_owned()),
            other => Err(format!("cannot unmarshal {} into a block number", kind(other))),
        };
    };
    if let Some(tag) = tag_of(s) {
        return Ok(tag);
    }
    let n = decode_uint64(s)?;
    if n > i64::MAX as u64 {
        return Err("block number larger than int64".to_owned());
    }
    Ok(BlockTag::Number(n))
}

/// Parses a block number, tag or hash, or an EIP-1898 object
/// (`{"blockHash": h, "requireCanonical": b}` or `{"blockNumber": n}`), as
/// geth's `rpc.BlockNumberOrHash`: a string of 66 bytes is a hash, any
/// other a number or tag.
pub fn parse_block_id(v: &Value) -> Result<BlockId, String> {
    match v {
        Value::String(s) if s.len() == 66 => {
            Ok(BlockId::Hash(decode_fixed::<32>(s, "common.Hash")?.into()))
        }
        Value::String(s) => {
            if let Some(tag) = tag_of(s) {
                return Ok(BlockId::Tag(tag));
            }
            let n = decode_uint64(s)?;
            if n > i64::MAX as u64 {
                return Err("blocknumber too high".to_owned());
            }
            Ok(BlockId::Tag(BlockTag::Number(n)))
        }
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

/// A fixed-size value as geth decodes it from JSON: a string, else a type
/// error; `hexutil` errors wrapped, the length error bare.
fn parse_fixed_json<const N: usize>(v: &Value, go_type: &str) -> Result<[u8; N], String> {
    let Value::String(s) = v else { return Err(type_error("non-string", go_type)) };
    decode_fixed::<N>(s, go_type).map_err(|e| {
        if e.starts_with("hex string has length") { e } else { type_error(&e, go_type) }
    })
}

/// Parses a 32-byte hash.
pub fn parse_hash(v: &Value) -> Result<B256, String> {
    parse_fixed_json::<32>(v, "common.Hash").map(B256::from)
}

/// Parses a 20-byte address (any letter case; the checksum is not checked).
pub fn parse_address(v: &Value) -> Result<Address, String> {
    parse_fixed_json::<20>(v, "common.Address").map(Address::from)
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

    /// geth's `TestDecodeUint64` cases (common/hexutil/hexutil_test.go),
    /// plus the inputs of issue #19.
    #[test]
    fn decode_uint64_table() {
        let ok: &[(&str, u64)] = &[
            ("0x0", 0),
            ("0x2", 0x2),
            ("0x2F2", 0x2f2),
            ("0X2F2", 0x2f2),
            ("0x1122aaff", 0x1122aaff),
            ("0xbbb", 0xbbb),
            ("0xffffffffffffffff", 0xffffffffffffffff),
        ];
        for (input, want) in ok {
            assert_eq!(decode_uint64(input), Ok(*want), "{input:?}");
            assert_eq!(parse_quantity_str(input), Ok(*want), "{input:?}");
        }
        let bad: &[(&str, &str)] = &[
            ("", EMPTY_STRING),
            ("0", MISSING_PREFIX),
            ("0x", EMPTY_NUMBER),
            ("0x01", LEADING_ZERO),
            ("0xfffffffffffffffff", UINT64_RANGE),
            ("0xx", SYNTAX),
            ("0x1zz01", SYNTAX),
            ("0x+1a", SYNTAX),
            ("0x-1", SYNTAX),
            ("0x 1", SYNTAX),
            ("0x1_0", SYNTAX),
            ("0xé", SYNTAX),
            ("0x1é", SYNTAX),
            ("é", MISSING_PREFIX),
            ("0é", MISSING_PREFIX),
        ];
        for (input, want) in bad {
            assert_eq!(decode_uint64(input), Err(*want), "{input:?}");
            assert_eq!(parse_quantity_str(input), Err(*want), "{input:?}");
        }
        // The JSON reading checks the length first; DecodeUint64 reads in order.
        assert_eq!(parse_quantity_str("0xz0000000000000000"), Err(UINT64_RANGE));
        assert_eq!(decode_uint64("0xz0000000000000000"), Err(SYNTAX));
        assert_eq!(
            parse_quantity(&json!("0x+1a")),
            Err("json: cannot unmarshal invalid hex string into Go value of type hexutil.Uint64"
                .to_owned())
        );
        assert_eq!(
            parse_quantity(&json!(26)),
            Err("json: cannot unmarshal non-string into Go value of type hexutil.Uint64".to_owned())
        );
    }

    /// geth's `TestDecodeBig` cases.
    #[test]
    fn decode_big_table() {
        assert_eq!(decode_big("0x0"), Ok(U256::ZERO));
        assert_eq!(decode_big("0x2F2"), Ok(U256::from(0x2f2)));
        assert_eq!(decode_big("0x1122aaff"), Ok(U256::from(0x1122aaff)));
        assert_eq!(decode_big(&format!("0x{}", "f".repeat(64))), Ok(U256::MAX));
        assert_eq!(decode_big(&format!("0x1{}", "0".repeat(64))), Err(BIG256_RANGE));
        assert_eq!(decode_big(""), Err(EMPTY_STRING));
        assert_eq!(decode_big("0"), Err(MISSING_PREFIX));
        assert_eq!(decode_big("0x"), Err(EMPTY_NUMBER));
        assert_eq!(decode_big("0x01"), Err(LEADING_ZERO));
        assert_eq!(decode_big("0xx"), Err(SYNTAX));
        assert_eq!(decode_big("0x1zz01"), Err(SYNTAX));
        assert_eq!(decode_big("0x+1"), Err(SYNTAX));
        assert_eq!(decode_big("0xé"), Err(SYNTAX));
    }

    /// geth's `TestDecode` cases (bytes).
    #[test]
    fn decode_data_table() {
        assert_eq!(decode_data("0x"), Ok(vec![]));
        assert_eq!(decode_data("0x02"), Ok(vec![0x02]));
        assert_eq!(decode_data("0X02"), Ok(vec![0x02]));
        assert_eq!(decode_data("0xffffffffff"), Ok(vec![0xff; 5]));
        assert_eq!(decode_data("0xAbCd"), Ok(vec![0xab, 0xcd]));
        assert_eq!(decode_data(""), Err(EMPTY_STRING));
        assert_eq!(decode_data("0"), Err(MISSING_PREFIX));
        assert_eq!(decode_data("0x0"), Err(ODD_LENGTH));
        assert_eq!(decode_data("0x023"), Err(ODD_LENGTH));
        assert_eq!(decode_data("0xxx"), Err(SYNTAX));
        assert_eq!(decode_data("0x01zz01"), Err(SYNTAX));
        assert_eq!(decode_data("0x+1"), Err(SYNTAX));
        // "é" is two bytes: even length, bad digits, no panic.
        assert_eq!(decode_data("0xé"), Err(SYNTAX));
        assert_eq!(decode_data("0x1é"), Err(SYNTAX));
        assert_eq!(decode_data("0x02z"), Err(SYNTAX));
    }

    /// geth's `UnmarshalFixedText` rules, and the non-ASCII inputs of issue
    /// #19 that used to panic (byte slicing inside a character).
    #[test]
    fn fixed_size_values() {
        let h = format!("0x{}", "ab".repeat(32));
        assert_eq!(parse_hash(&json!(h)), Ok(B256::repeat_byte(0xab)));
        assert_eq!(
            parse_hash(&json!(h.to_uppercase().replace("0X", "0x"))).unwrap(),
            B256::repeat_byte(0xab)
        );
        let a = format!("0x{}", "Cd".repeat(20));
        assert_eq!(parse_address(&json!(a)), Ok(Address::repeat_byte(0xcd)));
        let cases: &[(String, String)] = &[
            (String::new(), "hex string has length 0, want 64 for common.Hash".into()),
            ("0x".into(), "hex string has length 0, want 64 for common.Hash".into()),
            ("0xabc".into(), type_error(ODD_LENGTH, "common.Hash")),
            ("0xabcd".into(), "hex string has length 4, want 64 for common.Hash".into()),
            ("ab".repeat(33), type_error(MISSING_PREFIX, "common.Hash")),
            (format!("0x{}", "zz".repeat(32)), type_error(SYNTAX, "common.Hash")),
            (format!("0x+{}", "1".repeat(63)), type_error(SYNTAX, "common.Hash")),
            // 66 bytes with a two-byte character across a digit pair.
            (format!("0x{}é{}", "a".repeat(31), "b".repeat(31)), type_error(SYNTAX, "common.Hash")),
            (format!("0x{}é", "a".repeat(62)), type_error(SYNTAX, "common.Hash")),
            (format!("0x{}€", "a".repeat(61)), type_error(SYNTAX, "common.Hash")),
            (format!("0x{}", "é".repeat(32)), type_error(SYNTAX, "common.Hash")),
            (format!("é{}", "a".repeat(64)), type_error(MISSING_PREFIX, "common.Hash")),
        ];
        for (input, want) in cases {
            assert_eq!(parse_hash(&json!(input)).as_ref(), Err(want), "{input:?}");
        }
        assert_eq!(parse_hash(&json!(1)), Err(type_error("non-string", "common.Hash")),);
        assert_eq!(
            parse_address(&json!(format!("0x{}é{}", "a".repeat(19), "b".repeat(19)))),
            Err(type_error(SYNTAX, "common.Address"))
        );
        // The fuzz target `address` flagged these seeds: the harness compared
        // `{:x}` (no prefix); the parser was right. They round-trip.
        for s in [
            "0xdac17f958d2ee523a2206206994597c13d831ec7",
            "0xdAC17F958D2ee523a2206206994597C13D831ec7",
        ] {
            let a = parse_address(&json!(s)).unwrap();
            assert_eq!(format!("{a:#x}"), s.to_ascii_lowercase());
        }
        assert_eq!(
            parse_address(&json!("0x12")),
            Err("hex string has length 2, want 40 for common.Address".to_owned())
        );
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
        assert!(parse_hash(&json!("0xabc")).unwrap_err().contains("odd length"));
    }

    /// Block numbers, tags and EIP-1898 objects by geth's rules
    /// (`rpc.BlockNumber`, `rpc.BlockNumberOrHash`).
    #[test]
    fn block_id_table() {
        let tags = [
            ("earliest", BlockTag::Earliest),
            ("latest", BlockTag::Latest),
            ("safe", BlockTag::Safe),
            ("finalized", BlockTag::Finalized),
            ("pending", BlockTag::Pending),
            ("0x0", BlockTag::Number(0)),
            ("0X1F", BlockTag::Number(31)),
            ("0x7fffffffffffffff", BlockTag::Number(i64::MAX as u64)),
        ];
        for (input, want) in tags {
            assert_eq!(parse_block_tag(&json!(input)), Ok(want), "{input}");
            assert_eq!(parse_block_id(&json!(input)), Ok(BlockId::Tag(want)), "{input}");
            assert_eq!(
                parse_block_id(&json!({"blockNumber": input})),
                Ok(BlockId::Tag(want)),
                "{input}"
            );
        }
        let bad_tags: &[(&str, &str)] = &[
            ("", EMPTY_STRING),
            ("Latest", MISSING_PREFIX),
            ("latest ", MISSING_PREFIX),
            ("0x", EMPTY_NUMBER),
            ("0x01", LEADING_ZERO),
            ("0x+1a", SYNTAX),
            ("0xé", SYNTAX),
            ("0x1é", SYNTAX),
            ("0x10000000000000000", UINT64_RANGE),
        ];
        for (input, want) in bad_tags {
            assert_eq!(parse_block_tag(&json!(input)), Err((*want).to_owned()), "{input:?}");
            assert_eq!(parse_block_id(&json!(input)), Err((*want).to_owned()), "{input:?}");
        }
        assert_eq!(parse_block_tag(&json!(5)), Err(MISSING_PREFIX.to_owned()));
        assert_eq!(
            parse_block_tag(&json!("0x8000000000000000")),
            Err("block number larger than int64".to_owned())
        );
        assert_eq!(
            parse_block_id(&json!("0x8000000000000000")),
            Err("blocknumber too high".to_owned())
        );
        // A 66-byte string is a hash, whatever it holds.
        let non_ascii = format!("0x{}é{}", "a".repeat(31), "b".repeat(31));
        assert_eq!(non_ascii.len(), 66);
        assert_eq!(parse_block_id(&json!(non_ascii)), Err(SYNTAX.to_owned()));
        assert_eq!(parse_block_id(&json!("x".repeat(66))), Err(MISSING_PREFIX.to_owned()));
        assert_eq!(
            parse_block_id(&json!({"blockHash": non_ascii})),
            Err(type_error(SYNTAX, "common.Hash"))
        );
        assert_eq!(parse_block_id(&json!({"blockNumber": "0x+1a"})), Err(SYNTAX.to_owned()));
        let h = format!("0x{}", "ab".repeat(32));
        assert!(parse_block_id(&json!({"blockHash": h, "requireCanonical": "yes"})).is_err());
        assert!(parse_block_id(&json!({})).is_err());
        assert!(parse_block_id(&json!([])).is_err());
        assert!(parse_block_id(&json!(true)).is_err());
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
