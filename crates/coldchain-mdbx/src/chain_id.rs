//! The store's chain id: one entry of the `meta` table (`"chain_id"`, u64
//! BE), written by `set_chain_id` in its own write transaction. A store
//! without the entry (new, or written before chain ids were recorded) has
//! none; older builds ignore the entry, so it needs no format version.

use crate::{
    error::OrCold,
    layout::{META_CHAIN_ID, read_be},
    read::View,
    store::Store,
};
use coldchain::{ColdError, ColdResult, Deadline};
use signet_libmdbx::{TransactionKind, WriteFlags};
use std::borrow::Cow;

/// The recorded chain id, if any.
pub(crate) fn read<K: TransactionKind>(view: &View<'_, K>) -> ColdResult<Option<u64>> {
    let value: Option<Cow<'_, [u8]>> = view.txn.get(view.t.meta.dbi(), META_CHAIN_ID).cold()?;
    value.map(|v| read_be(&v, "chain id").cold()).transpose()
}

/// Records `chain_id` unless the store has one: one write transaction that
/// reads and writes the entry (MDBX has one writer at a time, so this is a
/// compare-and-set).
pub(crate) fn set(store: &Store, chain_id: u64, deadline: &Deadline) -> ColdResult<()> {
    deadline.check()?;
    let txn = store.begin_write()?;
    let view = View::new(&txn, store.tables);
    match read(&view)? {
        Some(stored) if stored == chain_id => Ok(()),
        Some(stored) => Err(ColdError::ChainIdMismatch { stored, given: chain_id }),
        None => {
            txn.put(store.tables.meta, META_CHAIN_ID, chain_id.to_be_bytes(), WriteFlags::empty())
                .cold()?;
            deadline.check()?;
            txn.commit().cold()?;
            Ok(())
        }
    }
}
