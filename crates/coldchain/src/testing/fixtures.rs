//! Real Ethereum mainnet blocks for tests, from `tests/data/` (see the
//! licenses there and `/work/shared/data/README.md` for their provenance).
//!
//! - `mainnet-rlp/`: 13 blocks as YAML with `header`, `body` and `receipts`
//!   as RLP hex. Receipts are in the eth/69 form
//!   `[type, status, cumulativeGas, logs]` without bloom; the loader rebuilds
//!   each bloom from the logs and recovers each sender from its signature.
//! - `mainnet-jsonrpc/`: 3 blocks as JSON-RPC responses
//!   (`eth_getBlockByNumber(n, true)` and the block's receipts), converted by
//!   [`crate::convert::block_from_rpc`].
//!
//! Loading parses ~10 MB and recovers ~1,700 signatures, so each set is
//! loaded once per process and cloned out.

use crate::{
    BlockData, Receipt, RecoveredTx, SealedHeader,
    convert::{ConvertError, block_from_rpc},
};
use alloy::{
    consensus::{
        BlockBody, Eip658Value, Header, Receipt as ConsensusReceipt, TxEnvelope, TxType,
        transaction::SignerRecoverable,
    },
    primitives::{Log, Sealable},
    rlp::{Decodable, Header as RlpHeader},
    rpc::types::{Block, TransactionReceipt},
};
use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

/// Numbers of the blocks in `mainnet-rlp/`, ascending.
pub const MAINNET_RLP_NUMBERS: [u64; 13] = [
    14764013, 15537393, 15537394, 15547621, 17034869, 17034870, 17062257, 19426586, 19426587,
    22162263, 22431083, 22431084, 22869878,
];

/// Numbers of the blocks in `mainnet-jsonrpc/`, ascending.
pub const MAINNET_JSONRPC_NUMBERS: [u64; 3] = [15573637, 19433902, 19433903];

/// A fixture file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's content is malformed.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file (or a description of the input).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The JSON-RPC objects do not make a consistent block.
    #[error("{path}: {source}")]
    Convert {
        /// The block file.
        path: PathBuf,
        /// The conversion error.
        source: ConvertError,
    },
}

/// The directory holding the fixture folders (`tests/data` of this crate).
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("data")
}

/// The 13 blocks of `mainnet-rlp/`, ascending by number, senders recovered.
///
/// # Panics
/// If a fixture file is missing or malformed (a broken checkout).
pub fn mainnet_rlp_blocks() -> Vec<BlockData> {
    static CACHE: OnceLock<Vec<BlockData>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            MAINNET_RLP_NUMBERS
                .iter()
                .map(|n| {
                    let path = data_dir().join("mainnet-rlp").join(format!("block-data-{n}.yaml"));
                    load_rlp_block(&path).unwrap_or_else(|e| panic!("fixture: {e}"))
                })
                .collect()
        })
        .clone()
}

/// The raw RLP of each block of `mainnet-rlp/` as the file holds it:
/// (number, header RLP, body RLP), ascending by number. The body is
/// `rlp([transactions, ommers, withdrawals?])`, so the block's own RLP is
/// the list of the header and the body's items.
///
/// # Panics
/// If a fixture file is missing or malformed (a broken checkout).
pub fn mainnet_rlp_raw() -> Vec<(u64, Vec<u8>, Vec<u8>)> {
    MAINNET_RLP_NUMBERS
        .iter()
        .map(|n| {
            let path = data_dir().join("mainnet-rlp").join(format!("block-data-{n}.yaml"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture: {e}"));
            let yaml: YamlBlock = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
            let header = unhex("header", &yaml.header).unwrap_or_else(|e| panic!("{e}"));
            let body = unhex("body", &yaml.body).unwrap_or_else(|e| panic!("{e}"));
            (*n, header, body)
        })
        .collect()
}

/// The 3 blocks of `mainnet-jsonrpc/` converted to [`BlockData`], ascending.
///
/// # Panics
/// If a fixture file is missing or malformed (a broken checkout).
pub fn mainnet_jsonrpc_blocks() -> Vec<BlockData> {
    static CACHE: OnceLock<Vec<BlockData>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            mainnet_jsonrpc_fixtures()
                .into_iter()
                .map(|f| {
                    let path = f.path.clone();
                    block_from_rpc(f.block, f.receipts)
                        .map_err(|source| FixtureError::Convert { path, source })
                        .unwrap_or_else(|e| panic!("fixture: {e}"))
                })
                .collect()
        })
        .clone()
}

/// One JSON-RPC block with its receipts, as the node returned them.
#[derive(Debug, Clone)]
pub struct RpcFixture {
    /// The block file.
    pub path: PathBuf,
    /// `eth_getBlockByNumber(n, true)`.
    pub block: Block,
    /// The block's receipts, in order.
    pub receipts: Vec<TransactionReceipt>,
}

/// The raw JSON-RPC objects of `mainnet-jsonrpc/`, ascending by number.
///
/// # Panics
/// If a fixture file is missing or malformed (a broken checkout).
pub fn mainnet_jsonrpc_fixtures() -> Vec<RpcFixture> {
    MAINNET_JSONRPC_NUMBERS
        .iter()
        .map(|n| load_rpc_fixture(*n).unwrap_or_else(|e| panic!("fixture: {e}")))
        .collect()
}

/// Loads `block-N.json` and `receipts-N.json` of `mainnet-jsonrpc/`.
pub fn load_rpc_fixture(number: u64) -> Result<RpcFixture, FixtureError> {
    let dir = data_dir().join("mainnet-jsonrpc");
    let path = dir.join(format!("block-{number}.json"));
    let block = read_rpc_result(&path)?;
    let receipts = read_rpc_result(&dir.join(format!("receipts-{number}.json")))?;
    Ok(RpcFixture { path, block, receipts })
}

/// Reads a JSON-RPC response (or a one-element batch of them) and
/// deserializes its `result`.
fn read_rpc_result<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, FixtureError> {
    let malformed =
        |reason: String| FixtureError::Malformed { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path)
        .map_err(|source| FixtureError::Io { path: path.to_path_buf(), source })?;
    let mut value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    if let serde_json::Value::Array(items) = &mut value {
        if items.len() != 1 {
            return Err(malformed(format!("a batch of {} responses, expected 1", items.len())));
        }
        value = items.swap_remove(0);
    }
    let result = value
        .get_mut("result")
        .map(serde_json::Value::take)
        .ok_or_else(|| malformed("no `result` field".into()))?;
    serde_json::from_value(result).map_err(|e| malformed(e.to_string()))
}

/// Loads one `block-data-N.yaml` file.
pub fn load_rlp_block(path: &Path) -> Result<BlockData, FixtureError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| FixtureError::Io { path: path.to_path_buf(), source })?;
    block_from_yaml(&text).map_err(|reason| FixtureError::Malformed {
        path: path.display().to_string(),
        reason: reason.to_string(),
    })
}

#[derive(serde::Deserialize)]
struct YamlBlock {
    header: String,
    body: String,
    receipts: String,
}

/// Parses the YAML form of `mainnet-rlp/` (`header`, `body`, `receipts` as
/// `0x`-prefixed RLP hex; eth/69 receipts) into a block: blooms rebuilt,
/// senders recovered, header hash computed.
pub fn block_from_yaml(text: &str) -> Result<BlockData, String> {
    let yaml: YamlBlock = serde_yaml::from_str(text).map_err(|e| format!("yaml: {e}"))?;
    let header_rlp = unhex("header", &yaml.header)?;
    let body_rlp = unhex("body", &yaml.body)?;
    let receipts_rlp = unhex("receipts", &yaml.receipts)?;

    let header = decode_exact::<Header>("header", &header_rlp)?;
    let header: SealedHeader = header.seal_slow();
    let body = decode_exact::<BlockBody<TxEnvelope>>("body", &body_rlp)?;
    let transactions = body
        .transactions
        .into_iter()
        .enumerate()
        .map(|(i, tx)| {
            let sender = tx.recover_signer().map_err(|e| format!("transaction {i}: {e}"))?;
            Ok(RecoveredTx::new_unchecked(tx, sender))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let receipts = decode_eth69_receipts(&receipts_rlp)?;
    let extras = crate::BlockExtras { ommers: body.ommers, withdrawals: body.withdrawals };
    let block = BlockData { header, transactions, receipts, extras };
    block.validate().map_err(|e| e.to_string())?;
    Ok(block)
}

fn unhex(what: &str, s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).map_err(|e| format!("{what}: bad hex: {e}"))
}

fn decode_exact<T: Decodable>(what: &str, mut buf: &[u8]) -> Result<T, String> {
    let value = T::decode(&mut buf).map_err(|e| format!("{what}: rlp: {e}"))?;
    if !buf.is_empty() {
        return Err(format!("{what}: {} trailing bytes", buf.len()));
    }
    Ok(value)
}

/// Decodes an eth/69 receipt list: `[[type, status, cumulativeGas, logs], ..]`
/// (no bloom), rebuilding each bloom.
pub fn decode_eth69_receipts(mut buf: &[u8]) -> Result<Vec<Receipt>, String> {
    let err = |i: usize, e: alloy::rlp::Error| format!("receipt {i}: rlp: {e}");
    let outer = RlpHeader::decode(&mut buf).map_err(|e| err(0, e))?;
    if !outer.list || outer.payload_length != buf.len() {
        return Err("receipts: not one RLP list".into());
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let i = out.len();
        let h = RlpHeader::decode(&mut buf).map_err(|e| err(i, e))?;
        if !h.list || h.payload_length > buf.len() {
            return Err(format!("receipt {i}: not an RLP list"));
        }
        let (mut item, rest) = buf.split_at(h.payload_length);
        buf = rest;
        let ty = u8::decode(&mut item).map_err(|e| err(i, e))?;
        let ty = TxType::try_from(ty).map_err(|e| format!("receipt {i}: {e}"))?;
        let status = Eip658Value::decode(&mut item).map_err(|e| err(i, e))?;
        let cumulative_gas_used = u64::decode(&mut item).map_err(|e| err(i, e))?;
        let logs = Vec::<Log>::decode(&mut item).map_err(|e| err(i, e))?;
        if !item.is_empty() {
            return Err(format!("receipt {i}: {} trailing bytes", item.len()));
        }
        let receipt = ConsensusReceipt { status, cumulative_gas_used, logs };
        out.push(Receipt::from_typed(ty, receipt.with_bloom()));
    }
    Ok(out)
}

/// The RLP of a whole block from its header RLP and its body RLP (`[txs,
/// ommers, withdrawals?]`, as era1 and the mainnet RLP fixtures hold them):
/// one list of the header and the body's items.
pub fn block_rlp(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut rest = body;
    let h = alloy::rlp::Header::decode(&mut rest).unwrap_or_else(|e| panic!("fixture body: {e}"));
    assert!(h.list && h.payload_length == rest.len(), "fixture body: not one RLP list");
    let mut out = Vec::new();
    alloy::rlp::Header { list: true, payload_length: header.len() + rest.len() }.encode(&mut out);
    out.extend_from_slice(header);
    out.extend_from_slice(rest);
    out
}
