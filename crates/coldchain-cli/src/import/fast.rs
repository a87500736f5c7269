//! A fast decoder of JSON lines.
//!
//! alloy's RPC types deserialize through `#[serde(flatten)]` and tagged
//! enums, which make serde buffer every block, transaction and receipt
//! object before decoding it: most of a JSON import's time. This decoder
//! reads the same JSON into plain structs (no buffering) and builds the
//! consensus types directly.
//!
//! It is only a shortcut: [`decode`] answers `None` for anything it does not
//! handle exactly (an unknown transaction type, a missing field, block
//! context that does not match, ...), and its result is trusted only after
//! [`coldchain::verify::verify_block`] passed, which recomputes every hash
//! and root from the decoded data (header hash: every header field;
//! transaction hashes: every signed field and the signature; receipts root:
//! type, status, gas, bloom and logs). Otherwise the caller decodes the line
//! with alloy's types ([`coldchain::convert::block_from_rpc`]), which also
//! gives the canonical error. The sender is the `from` field on both paths.

use alloy::{
    consensus::{
        Eip658Value, Header, Receipt as ConsensusReceipt, ReceiptWithBloom, Signed, TxEip1559,
        TxEip2930, TxEip4844, TxEip4844Variant, TxEip7702, TxEnvelope, TxLegacy, TxType,
    },
    eips::{eip2930::AccessList, eip4895::Withdrawals, eip7702::SignedAuthorization},
    primitives::{Address, B64, B256, Bloom, Bytes, Log, Sealed, Signature, TxKind, U256},
};
use coldchain::{BlockData, BlockExtras, Receipt, RecoveredTx};
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    block: FastBlock,
    receipts: Vec<FastReceipt>,
    /// Uncle headers: the fast path handles blocks without uncles only.
    #[serde(default)]
    uncles: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FastBlock {
    hash: B256,
    parent_hash: B256,
    #[serde(rename = "sha3Uncles")]
    ommers_hash: B256,
    #[serde(rename = "miner")]
    beneficiary: Address,
    state_root: B256,
    transactions_root: B256,
    receipts_root: B256,
    logs_bloom: Bloom,
    #[serde(deserialize_with = "q::u256")]
    difficulty: U256,
    #[serde(deserialize_with = "q::u64")]
    number: u64,
    #[serde(deserialize_with = "q::u64")]
    gas_limit: u64,
    #[serde(deserialize_with = "q::u64")]
    gas_used: u64,
    #[serde(deserialize_with = "q::u64")]
    timestamp: u64,
    extra_data: Bytes,
    mix_hash: B256,
    nonce: B64,
    #[serde(default, deserialize_with = "q::opt_u64")]
    base_fee_per_gas: Option<u64>,
    #[serde(default)]
    withdrawals_root: Option<B256>,
    #[serde(default, deserialize_with = "q::opt_u64")]
    blob_gas_used: Option<u64>,
    #[serde(default, deserialize_with = "q::opt_u64")]
    excess_blob_gas: Option<u64>,
    #[serde(default)]
    parent_beacon_block_root: Option<B256>,
    #[serde(default)]
    requests_hash: Option<B256>,
    #[serde(default)]
    block_access_list_hash: Option<B256>,
    #[serde(default, deserialize_with = "q::opt_u64")]
    slot_number: Option<u64>,
    transactions: Vec<FastTx>,
    #[serde(default)]
    uncles: Vec<B256>,
    #[serde(default)]
    withdrawals: Option<Withdrawals>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FastTx {
    #[serde(rename = "type", default, deserialize_with = "q::opt_u64")]
    ty: Option<u64>,
    hash: B256,
    from: Address,
    #[serde(deserialize_with = "q::u64")]
    nonce: u64,
    #[serde(deserialize_with = "q::u64")]
    gas: u64,
    #[serde(default)]
    to: Option<Address>,
    #[serde(deserialize_with = "q::u256")]
    value: U256,
    input: Bytes,
    #[serde(default, deserialize_with = "q::opt_u128")]
    gas_price: Option<u128>,
    #[serde(default, deserialize_with = "q::opt_u128")]
    max_fee_per_gas: Option<u128>,
    #[serde(default, deserialize_with = "q::opt_u128")]
    max_priority_fee_per_gas: Option<u128>,
    #[serde(default, deserialize_with = "q::opt_u128")]
    max_fee_per_blob_gas: Option<u128>,
    #[serde(default, deserialize_with = "q::opt_u64")]
    chain_id: Option<u64>,
    #[serde(default)]
    access_list: Option<AccessList>,
    #[serde(default)]
    blob_versioned_hashes: Option<Vec<B256>>,
    #[serde(default)]
    authorization_list: Option<Vec<SignedAuthorization>>,
    #[serde(default, deserialize_with = "q::opt_u256")]
    v: Option<U256>,
    #[serde(deserialize_with = "q::u256")]
    r: U256,
    #[serde(deserialize_with = "q::u256")]
    s: U256,
    #[serde(default, deserialize_with = "q::opt_u64")]
    y_parity: Option<u64>,
    #[serde(default)]
    block_hash: Option<B256>,
    #[serde(default, deserialize_with = "q::opt_u64")]
    block_number: Option<u64>,
    #[serde(default, deserialize_with = "q::opt_u64")]
    transaction_index: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FastReceipt {
    #[serde(rename = "type", default, deserialize_with = "q::opt_u64")]
    ty: Option<u64>,
    #[serde(default, deserialize_with = "q::opt_u64")]
    status: Option<u64>,
    #[serde(default)]
    root: Option<B256>,
    #[serde(deserialize_with = "q::u64")]
    cumulative_gas_used: u64,
    logs_bloom: Bloom,
    logs: Vec<FastLog>,
    transaction_hash: B256,
    #[serde(default)]
    block_hash: Option<B256>,
    #[serde(default, deserialize_with = "q::opt_u64")]
    block_number: Option<u64>,
    #[serde(default, deserialize_with = "q::opt_u64")]
    transaction_index: Option<u64>,
    from: Address,
}

#[derive(Deserialize)]
struct FastLog {
    address: Address,
    topics: Vec<B256>,
    data: Bytes,
}

/// Decodes a JSON line into a block, or `None` when this decoder does not
/// handle it exactly; see the [module docs](self). The result must still be
/// verified.
pub fn decode(line: &[u8]) -> Option<BlockData> {
    // One UTF-8 check of the whole line (fast on ASCII) instead of one per
    // string, which is what reading from bytes does.
    let Line { block, receipts, uncles } =
        serde_json::from_str(std::str::from_utf8(line).ok()?).ok()?;
    let FastBlock { hash, number, transactions, .. } = &block;
    let (hash, number) = (*hash, *number);
    if transactions.len() != receipts.len() || !uncles.is_empty() || !block.uncles.is_empty() {
        return None;
    }
    let context_ok = |h: Option<B256>, n: Option<u64>, i: Option<u64>, index: usize| {
        h.is_none_or(|h| h == hash)
            && n.is_none_or(|n| n == number)
            && i.is_none_or(|i| i == index as u64)
    };
    let mut txs = Vec::with_capacity(receipts.len());
    let mut out_receipts = Vec::with_capacity(receipts.len());
    let FastBlock {
        parent_hash,
        ommers_hash,
        beneficiary,
        state_root,
        transactions_root,
        receipts_root,
        logs_bloom,
        difficulty,
        gas_limit,
        gas_used,
        timestamp,
        extra_data,
        mix_hash,
        nonce,
        base_fee_per_gas,
        withdrawals_root,
        blob_gas_used,
        excess_blob_gas,
        parent_beacon_block_root,
        requests_hash,
        block_access_list_hash,
        slot_number,
        transactions,
        withdrawals,
        ..
    } = block;
    for (index, (tx, receipt)) in transactions.into_iter().zip(receipts).enumerate() {
        if !context_ok(tx.block_hash, tx.block_number, tx.transaction_index, index)
            || !context_ok(
                receipt.block_hash,
                receipt.block_number,
                receipt.transaction_index,
                index,
            )
            || receipt.transaction_hash != tx.hash
            || receipt.from != tx.from
            || receipt.ty.unwrap_or(0) != tx.ty.unwrap_or(0)
        {
            return None;
        }
        let (envelope, from) = envelope(tx)?;
        txs.push(RecoveredTx::new_unchecked(envelope, from));
        out_receipts.push(consensus_receipt(receipt)?);
    }
    let header = Header {
        parent_hash,
        ommers_hash,
        beneficiary,
        state_root,
        transactions_root,
        receipts_root,
        logs_bloom,
        difficulty,
        number,
        gas_limit,
        gas_used,
        timestamp,
        extra_data,
        mix_hash,
        nonce,
        base_fee_per_gas,
        withdrawals_root,
        blob_gas_used,
        excess_blob_gas,
        parent_beacon_block_root,
        requests_hash,
        block_access_list_hash,
        slot_number,
    };
    Some(BlockData {
        header: Sealed::new_unchecked(header, hash),
        transactions: txs,
        receipts: out_receipts,
        extras: BlockExtras { ommers: Vec::new(), withdrawals },
    })
}

/// The signed transaction and its sender.
fn envelope(t: FastTx) -> Option<(TxEnvelope, Address)> {
    let ty = t.ty.map_or(Some(0), |t| u8::try_from(t).ok())?;
    let kind = t.to.map_or(TxKind::Create, TxKind::Call);
    let v = t.v.map(u64::try_from).transpose().ok()?;
    // Typed transactions: yParity, or v as 0 / 1.
    let typed_parity = match (t.y_parity, v) {
        (Some(p), _) => Some(p),
        (None, v) => v,
    }
    .filter(|p| *p <= 1)
    .map(|p| p == 1);
    let FastTx { hash, from, nonce, gas, value, input, .. } = t;
    let sig = |parity: bool| Signature::new(t.r, t.s, parity);
    let envelope = match ty {
        0 => {
            let (parity, chain_id) = match v? {
                v @ (27 | 28) => (v == 28, None),
                v if v >= 35 => ((v - 35) % 2 == 1, Some((v - 35) / 2)),
                _ => return None,
            };
            if t.chain_id.is_some() && chain_id.is_some() && t.chain_id != chain_id {
                return None;
            }
            let gas_price = t.gas_price?;
            let tx =
                TxLegacy { chain_id, nonce, gas_price, gas_limit: gas, to: kind, value, input };
            TxEnvelope::Legacy(Signed::new_unchecked(tx, sig(parity), hash))
        }
        1 => {
            let tx = TxEip2930 {
                chain_id: t.chain_id?,
                nonce,
                gas_price: t.gas_price?,
                gas_limit: gas,
                to: kind,
                value,
                access_list: t.access_list?,
                input,
            };
            TxEnvelope::Eip2930(Signed::new_unchecked(tx, sig(typed_parity?), hash))
        }
        2 => {
            let tx = TxEip1559 {
                chain_id: t.chain_id?,
                nonce,
                gas_limit: gas,
                max_fee_per_gas: t.max_fee_per_gas?,
                max_priority_fee_per_gas: t.max_priority_fee_per_gas?,
                to: kind,
                value,
                access_list: t.access_list?,
                input,
            };
            TxEnvelope::Eip1559(Signed::new_unchecked(tx, sig(typed_parity?), hash))
        }
        3 => {
            let tx = TxEip4844 {
                chain_id: t.chain_id?,
                nonce,
                gas_limit: gas,
                max_fee_per_gas: t.max_fee_per_gas?,
                max_priority_fee_per_gas: t.max_priority_fee_per_gas?,
                to: t.to?,
                value,
                access_list: t.access_list?,
                blob_versioned_hashes: t.blob_versioned_hashes?,
                max_fee_per_blob_gas: t.max_fee_per_blob_gas?,
                input,
            };
            let tx = TxEip4844Variant::TxEip4844(tx);
            TxEnvelope::Eip4844(Signed::new_unchecked(tx, sig(typed_parity?), hash))
        }
        4 => {
            let tx = TxEip7702 {
                chain_id: t.chain_id?,
                nonce,
                gas_limit: gas,
                max_fee_per_gas: t.max_fee_per_gas?,
                max_priority_fee_per_gas: t.max_priority_fee_per_gas?,
                to: t.to?,
                value,
                access_list: t.access_list?,
                authorization_list: t.authorization_list?,
                input,
            };
            TxEnvelope::Eip7702(Signed::new_unchecked(tx, sig(typed_parity?), hash))
        }
        _ => return None,
    };
    Some((envelope, from))
}

fn consensus_receipt(r: FastReceipt) -> Option<Receipt> {
    let ty = TxType::try_from(r.ty.map_or(Some(0), |t| u8::try_from(t).ok())?).ok()?;
    // As alloy: `status` wins over `root` when both are present.
    let status = match (r.status, r.root) {
        (Some(s), _) => Eip658Value::Eip658(match s {
            0 => false,
            1 => true,
            _ => return None,
        }),
        (None, Some(root)) => Eip658Value::PostState(root),
        (None, None) => return None,
    };
    let logs =
        r.logs.into_iter().map(|l| Log::new_unchecked(l.address, l.topics, l.data)).collect();
    let receipt = ConsensusReceipt { status, cumulative_gas_used: r.cumulative_gas_used, logs };
    Some(Receipt::from_typed(ty, ReceiptWithBloom { receipt, logs_bloom: r.logs_bloom }))
}

/// Quantities (`"0x1a"`) read in place: ruint's generic string parser was
/// ~4% of a JSON import's CPU. The canonical form (`0x`, then 1 to 64 hex
/// digits without a leading zero) is parsed here; anything else goes to
/// the deserializer alloy's types use, on the same string, so both accept
/// and reject the same inputs and give the same values.
mod q {
    use alloy::primitives::U256;
    use serde::{
        Deserialize, Deserializer,
        de::{Error, IntoDeserializer, Visitor},
    };
    use std::fmt;

    /// The limbs (least significant first) of a canonical quantity of at
    /// most `max_digits` hex digits.
    fn limbs(s: &str, max_digits: usize) -> Option<[u64; 4]> {
        let digits = s.strip_prefix("0x")?.as_bytes();
        if digits.is_empty() || digits.len() > max_digits || (digits.len() > 1 && digits[0] == b'0')
        {
            return None;
        }
        let mut out = [0u64; 4];
        for (i, chunk) in digits.rchunks(16).enumerate() {
            let mut limb = 0u64;
            for &c in chunk {
                let d = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    b'A'..=b'F' => c - b'A' + 10,
                    _ => return None,
                };
                limb = (limb << 4) | u64::from(d);
            }
            out[i] = limb;
        }
        Some(out)
    }

    /// Reads the string and parses it with `fast`, else with `slow`.
    struct Quantity<F, S>(F, S);

    impl<'de, T, F, S> Visitor<'de> for Quantity<F, S>
    where
        F: Fn(&str) -> Option<T>,
        S: Fn(&str) -> Result<T, serde::de::value::Error>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a hex quantity")
        }

        fn visit_str<E: Error>(self, s: &str) -> Result<T, E> {
            match (self.0)(s) {
                Some(v) => Ok(v),
                None => (self.1)(s).map_err(E::custom),
            }
        }
    }

    fn read<'de, D, T>(
        d: D,
        fast: impl Fn(&str) -> Option<T>,
        slow: impl Fn(&str) -> Result<T, serde::de::value::Error>,
    ) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
    {
        d.deserialize_str(Quantity(fast, slow))
    }

    /// A `u64` quantity, as `alloy::serde::quantity` reads it.
    pub(super) fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        read(
            d,
            |s| limbs(s, 16).map(|l| l[0]),
            |s| alloy::serde::quantity::deserialize(s.into_deserializer()),
        )
    }

    /// A `u128` quantity, as `alloy::serde::quantity` reads it.
    fn u128<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        read(
            d,
            |s| limbs(s, 32).map(|l| u128::from(l[0]) | (u128::from(l[1]) << 64)),
            |s| alloy::serde::quantity::deserialize(s.into_deserializer()),
        )
    }

    /// A `U256`, as its own `Deserialize` reads it.
    pub(super) fn u256<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        read(
            d,
            |s| limbs(s, 64).map(U256::from_limbs),
            |s| U256::deserialize(s.into_deserializer()),
        )
    }

    /// Wraps a reader of `T` for `Option<T>` fields (`null` is `None`).
    macro_rules! opt {
        ($name:ident, $inner:ident, $t:ty) => {
            pub(super) fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$t>, D::Error> {
                struct Some_;
                impl<'de> Visitor<'de> for Some_ {
                    type Value = Option<$t>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a hex quantity or null")
                    }
                    fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
                        Ok(None)
                    }
                    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
                        Ok(None)
                    }
                    fn visit_some<D2: Deserializer<'de>>(
                        self,
                        d: D2,
                    ) -> Result<Self::Value, D2::Error> {
                        $inner(d).map(Some)
                    }
                }
                d.deserialize_option(Some_)
            }
        };
    }

    opt!(opt_u64, u64, u64);
    opt!(opt_u128, u128, u128);
    opt!(opt_u256, u256, U256);

    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    mod tests {
        use super::*;

        #[test]
        fn canonical_and_fallback_agree_with_alloy() {
            for s in [
                "0x0",
                "0x1",
                "0x1a",
                "0xFF",
                "0xffffffffffffffff",
                "0x10000000000000000",
                "0x00",
                "0x01",
                "0x",
                "1",
                "12",
                "0xg",
                "-0x1",
                "0x0000000000000000001",
            ] {
                let json = format!("\"{s}\"");
                let ours = u64(&mut serde_json::Deserializer::from_str(&json)).ok();
                let theirs: Option<u64> = alloy::serde::quantity::deserialize(
                    &mut serde_json::Deserializer::from_str(&json),
                )
                .ok();
                assert_eq!(ours, theirs, "u64 {s}");
                let ours = u256(&mut serde_json::Deserializer::from_str(&json)).ok();
                let theirs: Option<U256> = serde_json::from_str(&json).ok();
                assert_eq!(ours, theirs, "U256 {s}");
                let ours = u128(&mut serde_json::Deserializer::from_str(&json)).ok();
                let theirs: Option<u128> = alloy::serde::quantity::deserialize(
                    &mut serde_json::Deserializer::from_str(&json),
                )
                .ok();
                assert_eq!(ours, theirs, "u128 {s}");
            }
            let big = format!("\"0x{}\"", "f".repeat(64));
            let ours = u256(&mut serde_json::Deserializer::from_str(&big)).unwrap();
            assert_eq!(ours, U256::MAX);
            let ours = opt_u64(&mut serde_json::Deserializer::from_str("null")).unwrap();
            assert_eq!(ours, None);
            let ours = opt_u64(&mut serde_json::Deserializer::from_str("\"0x2a\"")).unwrap();
            assert_eq!(ours, Some(42));
        }
    }
}
