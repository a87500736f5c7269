//! JSON-RPC errors with the codes Ethereum nodes use.
//!
//! | code | when | source |
//! |---|---|---|
//! | -32700 | malformed JSON | JSON-RPC 2.0 (answered by jsonrpsee) |
//! | -32600 | not a JSON-RPC request (also an object, array or boolean `id`, answered with `id: null` as geth does), empty or oversized batch | JSON-RPC 2.0 |
//! | -32601 | unknown method, subscriptions over HTTP | JSON-RPC 2.0, geth's wording |
//! | -32602 | bad parameters, bad block ranges, range above the limit | geth, reth |
//! | -32002 | the call ran past its deadline | geth ("request timed out") |
//! | -32005 | more logs than the limit (with a block range that fits) | EIP-1474, Infura |
//! | -32008 | the answer is above the response size limit | jsonrpsee, as reth |
//! | -32000 | unknown block hash in a filter, shutting down, reorg during a read | geth |
//! | -32603 | anything else (a store failure; a call that panicked: `"internal error (panic)"`) | JSON-RPC 2.0 |
//! | 4444 | blocks below the first stored block | execution-apis ("pruned history unavailable") |

use coldchain::ColdError;
use jsonrpsee::types::ErrorObjectOwned;
use serde::Serialize;

/// Result of a method.
pub type RpcResult<T> = Result<T, ErrorObjectOwned>;

/// Invalid parameters (JSON-RPC 2.0).
pub const INVALID_PARAMS: i32 = -32602;
/// Method not found (JSON-RPC 2.0).
pub const METHOD_NOT_FOUND: i32 = -32601;
/// Internal error (JSON-RPC 2.0).
pub const INTERNAL_ERROR: i32 = -32603;
/// Generic server error (geth's default code).
pub const SERVER_ERROR: i32 = -32000;
/// Request timed out (geth).
pub const TIMEOUT: i32 = -32002;
/// Limit exceeded (EIP-1474; Infura's "query returned more than N results").
pub const LIMIT_EXCEEDED: i32 = -32005;
/// Pruned history unavailable (execution-apis, EIP-4444).
pub const PRUNED_HISTORY: i32 = 4444;

/// An error with a code and a message.
pub fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned::<()>(code, message.into(), None)
}

/// An error with a code, a message and `data`.
pub fn error_with_data(
    code: i32,
    message: impl Into<String>,
    data: impl Serialize,
) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), Some(data))
}

/// `-32602` with a message.
pub fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    error(INVALID_PARAMS, message)
}

/// `-32602 "invalid argument N: ..."` (geth's wording).
pub fn invalid_argument(index: usize, message: impl std::fmt::Display) -> ErrorObjectOwned {
    invalid_params(format!("invalid argument {index}: {message}"))
}

/// `-32002 "request timed out"`.
pub fn timeout() -> ErrorObjectOwned {
    error(TIMEOUT, "request timed out")
}

/// `4444 "pruned history unavailable"`.
pub fn pruned() -> ErrorObjectOwned {
    error(PRUNED_HISTORY, "pruned history unavailable")
}

/// `-32601` in geth's words.
pub fn method_not_found(method: &str) -> ErrorObjectOwned {
    error(METHOD_NOT_FOUND, format!("the method {method} does not exist/is not available"))
}

/// Maps a store error to the code a node would use. Store failures are
/// logged here, with their detail; the client gets a short message.
pub fn from_cold(err: ColdError) -> ErrorObjectOwned {
    match err {
        ColdError::Timeout { .. } => timeout(),
        ColdError::TaskTerminated => error(SERVER_ERROR, "server is shutting down"),
        ColdError::InvalidFilter(reason) => invalid_params(reason),
        ColdError::UnknownBlockHash(_) => error(SERVER_ERROR, "unknown block"),
        ColdError::TooManyLogs { limit, .. } => error_with_data(
            LIMIT_EXCEEDED,
            format!("query returned more than {limit} results"),
            serde_json::json!({ "limit": limit }),
        ),
        ColdError::ReorgDetected { number } => error(
            SERVER_ERROR,
            format!("block {number} was replaced while it was being read; retry"),
        ),
        other => {
            tracing::error!(kind = other.kind(), error = %other, "store error while serving a call");
            error(INTERNAL_ERROR, format!("internal error ({})", other.kind()))
        }
    }
}
