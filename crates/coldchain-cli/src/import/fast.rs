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
    eips::{eip2930::AccessList, eip7702::SignedAuthorization},
    primitives::{Address, B64, B256, Bloom, Bytes, Log, Sealed, Signature, TxKind, U64, U256},
    serde::quantity,
};
use coldchain::{BlockData, Receipt, RecoveredTx};
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    block: FastBlock,
    receipts: Vec<FastReceipt>,
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
    difficulty: U256,
    #[serde(with = "quantity")]
    number: u64,
    #[serde(with = "quantity")]
    gas_limit: u64,
    #[serde(with = "quantity")]
    gas_used: u64,
    #[serde(with = "quantity")]
    timestamp: u64,
    extra_data: Bytes,
    mix_hash: B256,
    nonce: B64,
    #[serde(default, with = "quantity::opt")]
    base_fee_per_gas: Option<u64>,
    #[serde(default)]
    withdrawals_root: Option<B256>,
    #[serde(default, with = "quantity::opt")]
    blob_gas_used: Option<u64>,
    #[serde(default, with = "quantity::opt")]
    excess_blob_gas: Option<u64>,
    #[serde(default)]
    parent_beacon_block_root: Option<B256>,
    #[serde(default)]
    requests_hash: Option<B256>,
    #[serde(default)]
    block_access_list_hash: Option<B256>,
    #[serde(default, with = "quantity::opt")]
    slot_number: Option<u64>,
    transactions: Vec<FastTx>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FastTx {
    #[serde(rename = "type", default)]
    ty: Option<U64>,
    hash: B256,
    from: Address,
    #[serde(with = "quantity")]
    nonce: u64,
    #[serde(with = "quantity")]
    gas: u64,
    #[serde(default)]
    to: Option<Address>,
    value: U256,
    input: Bytes,
    #[serde(default, with = "quantity::opt")]
    gas_price: Option<u128>,
    #[serde(default, with = "quantity::opt")]
    max_fee_per_gas: Option<u128>,
    #[serde(default, with = "quantity::opt")]
    max_priority_fee_per_gas: Option<u128>,
    #[serde(default, with = "quantity::opt")]
    max_fee_per_blob_gas: Option<u128>,
    #[serde(default, with = "quantity::opt")]
    chain_id: Option<u64>,
    #[serde(default)]
    access_list: Option<AccessList>,
    #[serde(default)]
    blob_versioned_hashes: Option<Vec<B256>>,
    #[serde(default)]
    authorization_list: Option<Vec<SignedAuthorization>>,
    #[serde(default)]
    v: Option<U256>,
    r: U256,
    s: U256,
    #[serde(default)]
    y_parity: Option<U64>,
    #[serde(default)]
    block_hash: Option<B256>,
    #[serde(default, with = "quantity::opt")]
    block_number: Option<u64>,
    #[serde(default, with = "quantity::opt")]
    transaction_index: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FastReceipt {
    #[serde(rename = "type", default)]
    ty: Option<U64>,
    #[serde(default)]
    status: Option<U64>,
    #[serde(default)]
    root: Option<B256>,
    #[serde(with = "quantity")]
    cumulative_gas_used: u64,
    logs_bloom: Bloom,
    logs: Vec<FastLog>,
    transaction_hash: B256,
    #[serde(default)]
    block_hash: Option<B256>,
    #[serde(default, with = "quantity::opt")]
    block_number: Option<u64>,
    #[serde(default, with = "quantity::opt")]
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
    let Line { block, receipts } = serde_json::from_slice(line).ok()?;
    let FastBlock { hash, number, transactions, .. } = &block;
    let (hash, number) = (*hash, *number);
    if transactions.len() != receipts.len() {
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
            || receipt.ty.map_or(0, |t| t.to::<u64>()) != tx.ty.map_or(0, |t| t.to::<u64>())
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
    })
}

/// The signed transaction and its sender.
fn envelope(t: FastTx) -> Option<(TxEnvelope, Address)> {
    let ty = t.ty.map_or(Some(0), |t| u8::try_from(t).ok())?;
    let kind = t.to.map_or(TxKind::Create, TxKind::Call);
    let v = t.v.map(u64::try_from).transpose().ok()?;
    // Typed transactions: yParity, or v as 0 / 1.
    let typed_parity = match (t.y_parity, v) {
        (Some(p), _) => Some(p.to::<u64>()),
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
        (Some(s), _) => Eip658Value::Eip658(match s.to::<u64>() {
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
