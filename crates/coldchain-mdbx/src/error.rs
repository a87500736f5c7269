//! Errors of the MDBX backend.

use coldchain::{ColdError, codec::CodecError};
use std::path::PathBuf;

/// What can go wrong opening or using an MDBX store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MdbxError {
    /// The store's directory cannot be created or written.
    #[error(
        "cannot use {path} as a coldchain store: {source}; check that the path is a writable \
         directory (or can be created)"
    )]
    NotWritable {
        /// The store path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No store at the path, and the options say not to create one.
    #[error(
        "no coldchain store at {}: {reason}; check the path (only commands that write, \
         such as import, synth or serve --dev, create a store)",
        path.display()
    )]
    Missing {
        /// The store path.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The path holds something that is not a coldchain MDBX store.
    #[error("{path} does not hold a coldchain MDBX store: {reason}")]
    ForeignFormat {
        /// The store path.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The store was written by a newer coldchain with a format this build
    /// cannot read.
    #[error(
        "the store at {path} has format version {found}, newer than version {supported} that \
         this build reads; upgrade coldchain"
    )]
    NewerVersion {
        /// The store path.
        path: PathBuf,
        /// The version found in the store.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The store was written in an older format that this build cannot read.
    #[error(
        "the store at {path} has format version {found}, older than version {supported} that \
         this build reads; re-import it with this version"
    )]
    OlderVersion {
        /// The store path.
        path: PathBuf,
        /// The version found in the store.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// An option of [`crate::MdbxOptions`] is out of range.
    #[error("invalid MDBX options: {0}")]
    Options(String),
    /// An MDBX call failed.
    #[error("mdbx: {0}")]
    Mdbx(#[from] signet_libmdbx::MdbxError),
    /// A read failed in MDBX or while decoding.
    #[error("mdbx read: {0}")]
    Read(#[from] signet_libmdbx::ReadError),
    /// A stored value could not be decoded (or a value cannot be encoded).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The store's tables disagree with each other.
    #[error("the store is inconsistent: {0}")]
    Corrupt(String),
    /// A blocking task failed to run to completion.
    #[error("background task failed: {0}")]
    Task(String),
    /// The threads for point reads could not be started.
    #[error("cannot start the read threads: {0}")]
    Threads(#[source] std::io::Error),
}

impl From<MdbxError> for ColdError {
    fn from(err: MdbxError) -> Self {
        match err {
            MdbxError::Codec(e) => ColdError::Codec(e),
            other => ColdError::backend(other),
        }
    }
}

/// Maps a raw MDBX error into a [`ColdError`].
pub(crate) fn raw(err: signet_libmdbx::MdbxError) -> ColdError {
    MdbxError::Mdbx(err).into()
}

/// Maps a raw MDBX read error into a [`ColdError`].
pub(crate) fn read(err: signet_libmdbx::ReadError) -> ColdError {
    MdbxError::Read(err).into()
}

/// Converts the errors of MDBX, decoding and this crate into [`ColdError`]
/// at the `?` of a backend function: `.cold()?`.
pub(crate) trait OrCold<T> {
    /// The result with its error as a [`ColdError`].
    fn cold(self) -> Result<T, ColdError>;
}

impl<T> OrCold<T> for Result<T, signet_libmdbx::MdbxError> {
    fn cold(self) -> Result<T, ColdError> {
        self.map_err(raw)
    }
}

impl<T> OrCold<T> for Result<T, signet_libmdbx::ReadError> {
    fn cold(self) -> Result<T, ColdError> {
        self.map_err(read)
    }
}

impl<T> OrCold<T> for Result<T, MdbxError> {
    fn cold(self) -> Result<T, ColdError> {
        self.map_err(Into::into)
    }
}

impl<T> OrCold<T> for Result<T, CodecError> {
    fn cold(self) -> Result<T, ColdError> {
        self.map_err(ColdError::Codec)
    }
}
