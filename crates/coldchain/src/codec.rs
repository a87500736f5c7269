//! Compact, versioned storage encodings.

/// A stored value could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);
