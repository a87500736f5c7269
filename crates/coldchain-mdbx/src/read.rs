//! Point reads on one transaction (read-only, or the writer's own).

use crate::{
    error::{MdbxError, OrCold},
    journal::Journal,
    layout::{BlockTxs, Run, be, hash_key, read_be, skip_bloom_bits, take_bloom_bits},
    scan,
    store::Tables,
};
use alloy::{
    eips::BlockNumHash,
    primitives::{B256, BlockNumber, Bytes},
};
use coldchain::{
    BlockExtras, ColdResult, HeaderSpec, ReceiptSpec, RecoveredTx, SealedHeader, StoredReceipt,
    TxSpec, TxWithMeta,
    codec::{self, HEADER_FORMAT},
    model::tx_meta,
};
use signet_libmdbx::{TransactionKind, tx::Tx};
use std::borrow::Cow;

/// Tables seen through one transaction: one consistent snapshot.
pub(crate) struct View<'t, K: TransactionKind> {
    pub(crate) txn: &'t Tx<K>,
    pub(crate) t: Tables,
}

/// The hash stored in a header value (`codec` header format: format byte,
/// then the 32-byte hash).
pub(crate) fn header_hash(value: &[u8]) -> Result<B256, MdbxError> {
    match value.get(1..33) {
        Some(hash) if value[0] == HEADER_FORMAT => Ok(B256::from_slice(hash)),
        _ => Err(MdbxError::Corrupt(format!(
            "header value of {} bytes does not start with a {HEADER_FORMAT:#04x} header",
            value.len()
        ))),
    }
}

impl<'t, K: TransactionKind> View<'t, K> {
    pub(crate) fn new(txn: &'t Tx<K>, t: Tables) -> Self {
        Self { txn, t }
    }

    /// The highest stored block.
    pub(crate) fn tip(&self) -> ColdResult<Option<BlockNumHash>> {
        let mut cursor = self.txn.cursor(self.t.headers).cold()?;
        let Some((key, value)) = cursor.last::<Cow<'_, [u8]>, Cow<'_, [u8]>>().cold()? else {
            return Ok(None);
        };
        let number = read_be(&key, "header key").cold()?;
        Ok(Some(BlockNumHash::new(number, header_hash(&value).cold()?)))
    }

    /// The lowest stored block number.
    pub(crate) fn first_block(&self) -> ColdResult<Option<BlockNumber>> {
        let mut cursor = self.txn.cursor(self.t.headers).cold()?;
        match cursor.first::<Cow<'_, [u8]>, ()>().cold()? {
            Some((key, ())) => Ok(Some(read_be(&key, "header key").cold()?)),
            None => Ok(None),
        }
    }

    /// The number of the block `spec` names, if stored.
    pub(crate) fn block_number(&self, spec: HeaderSpec) -> ColdResult<Option<BlockNumber>> {
        match spec {
            HeaderSpec::Number(n) => {
                let found: Option<()> = self.txn.get(self.t.headers.dbi(), &be(n)).cold()?;
                Ok(found.map(|()| n))
            }
            HeaderSpec::Hash(h) => {
                let found: Option<Cow<'_, [u8]>> =
                    self.txn.get(self.t.block_hashes.dbi(), h.as_slice()).cold()?;
                found.map(|v| read_be(&v, "block number").cold()).transpose()
            }
        }
    }

    /// A header by number.
    pub(crate) fn header_at(&self, n: BlockNumber) -> ColdResult<Option<SealedHeader>> {
        let value: Option<Cow<'_, [u8]>> = self.txn.get(self.t.headers.dbi(), &be(n)).cold()?;
        value.map(|v| codec::decode_header(&v).cold()).transpose()
    }

    /// The hash of the header stored at `n`, without decoding it.
    pub(crate) fn hash_at(&self, n: BlockNumber) -> ColdResult<Option<B256>> {
        let value: Option<Cow<'_, [u8]>> = self.txn.get(self.t.headers.dbi(), &be(n)).cold()?;
        value.map(|v| header_hash(&v).cold()).transpose()
    }

    /// A header by number or hash.
    pub(crate) fn header(&self, spec: HeaderSpec) -> ColdResult<Option<SealedHeader>> {
        let Some(n) = self.block_number(spec)? else { return Ok(None) };
        let header = self.header_at(n)?;
        // A hash entry always points at a header with that hash; check anyway
        // so that a broken index can never serve another block.
        if let (HeaderSpec::Hash(h), Some(header)) = (spec, &header)
            && header.hash() != h
        {
            return Err(MdbxError::Corrupt(format!(
                "block hash {h} points at block {n}, whose hash is {}",
                header.hash()
            ))
            .into());
        }
        Ok(header)
    }

    /// Where the transactions of block `n` are.
    pub(crate) fn block_txs(&self, n: BlockNumber) -> ColdResult<Option<BlockTxs>> {
        let value: Option<Cow<'_, [u8]>> = self.txn.get(self.t.block_txs.dbi(), &be(n)).cold()?;
        value.map(|v| BlockTxs::decode(&v).cold()).transpose()
    }

    /// The block holding transaction number `txn`.
    pub(crate) fn block_of_tx(&self, tx: u64) -> ColdResult<Option<BlockNumber>> {
        let mut cursor = self.txn.cursor(self.t.tx_blocks).cold()?;
        // The last non-empty block starting at or before `tx`.
        let entry = match tx.checked_add(1) {
            Some(next) => match cursor.set_range::<(), ()>(&be(next)).cold()? {
                Some(_) => cursor.prev::<Cow<'_, [u8]>, Cow<'_, [u8]>>().cold()?,
                None => cursor.last::<Cow<'_, [u8]>, Cow<'_, [u8]>>().cold()?,
            },
            None => cursor.last::<Cow<'_, [u8]>, Cow<'_, [u8]>>().cold()?,
        };
        let Some((key, value)) = entry else { return Ok(None) };
        let first = read_be(&key, "tx_blocks key").cold()?;
        if first > tx {
            return Ok(None);
        }
        let block = read_be(&value, "tx_blocks value").cold()?;
        match self.block_txs(block)? {
            Some(bt) if bt.end() > tx => Ok(Some(block)),
            _ => Ok(None),
        }
    }

    /// The number of the transaction with hash `h`: in `tx_hashes` for
    /// merged blocks, else in the journal of the newest blocks.
    pub(crate) fn tx_number(&self, h: &B256) -> ColdResult<Option<u64>> {
        if let Some(tx) = self.merged_tx_number(h)? {
            return Ok(Some(tx));
        }
        let mut cursor = self.txn.cursor(self.t.journal).cold()?;
        let mut item = cursor.first::<Cow<'_, [u8]>, Cow<'_, [u8]>>().cold()?;
        while let Some((key, value)) = item {
            if let Some(off) = Journal::parse(&value).cold()?.find_hash(h) {
                let n = read_be(&key, "journal key").cold()?;
                let Some(bt) = self.block_txs(n)? else {
                    return Err(
                        MdbxError::Corrupt(format!("journal block {n} has no range")).into()
                    );
                };
                return Ok(Some(bt.first + u64::from(off)));
            }
            item = cursor.next().cold()?;
        }
        Ok(None)
    }

    /// The number of the merged transaction with hash `h`: in each run,
    /// oldest first, the entries under its 8-byte prefix, checked against
    /// each transaction's stored hash (so a repeated hash gives its first
    /// transaction, like the reference model).
    pub(crate) fn merged_tx_number(&self, h: &B256) -> ColdResult<Option<u64>> {
        let mut runs = self.txn.cursor(self.t.runs).cold()?;
        let mut run = runs.first::<Cow<'_, [u8]>, Cow<'_, [u8]>>().cold()?;
        while let Some((k, v)) = run {
            let found = Run::decode(&k, &v).cold()?;
            let mut cursor = self.txn.cursor(self.t.tx_hashes[found.lvl()]).cold()?;
            let mut item = cursor.set_key::<(), Cow<'_, [u8]>>(&hash_key(found.id, h)).cold()?;
            while let Some(((), value)) = item {
                let tx = read_be(&value, "tx number").cold()?;
                let receipt: Option<Cow<'_, [u8]>> =
                    self.txn.get(self.t.receipts.dbi(), &be(tx)).cold()?;
                match receipt {
                    Some(r) if scan::receipt_tx_hash(&r)? == *h => return Ok(Some(tx)),
                    Some(_) => {}
                    None => {
                        return Err(MdbxError::Corrupt(format!(
                            "tx hash prefix of {h} points at tx {tx}, which is not stored"
                        ))
                        .into());
                    }
                }
                item = cursor.next_dup().cold()?;
            }
            run = runs.next().cold()?;
        }
        Ok(None)
    }

    /// The index runs, in id order (which is block order).
    pub(crate) fn runs(&self) -> ColdResult<Vec<Run>> {
        let mut cursor = self.txn.cursor(self.t.runs).cold()?;
        let mut out = Vec::new();
        let mut item = cursor.first::<Cow<'_, [u8]>, Cow<'_, [u8]>>().cold()?;
        while let Some((k, v)) = item {
            out.push(Run::decode(&k, &v).cold()?);
            item = cursor.next().cold()?;
        }
        Ok(out)
    }

    /// The first journal block, if the journal is not empty.
    pub(crate) fn journal_first(&self) -> ColdResult<Option<BlockNumber>> {
        let mut cursor = self.txn.cursor(self.t.journal).cold()?;
        match cursor.first::<Cow<'_, [u8]>, ()>().cold()? {
            Some((k, ())) => Ok(Some(read_be(&k, "journal key").cold()?)),
            None => Ok(None),
        }
    }

    /// A transaction by number.
    pub(crate) fn tx_at(&self, tx: u64) -> ColdResult<Option<RecoveredTx>> {
        let value: Option<Cow<'_, [u8]>> =
            self.txn.get(self.t.transactions.dbi(), &be(tx)).cold()?;
        value.map(|v| codec::decode_tx(&v).cold()).transpose()
    }

    /// The `receipt_blooms` value of block `n` (an error when missing).
    fn receipt_blooms(&self, n: BlockNumber) -> ColdResult<Cow<'t, [u8]>> {
        let value: Option<Cow<'t, [u8]>> =
            self.txn.get(self.t.receipt_blooms.dbi(), &be(n)).cold()?;
        value.ok_or_else(|| {
            MdbxError::Corrupt(format!("block {n} has no receipt_blooms value")).into()
        })
    }

    /// The receipt of tx number `tx`, number `index` in block `block`.
    pub(crate) fn receipt_at(
        &self,
        block: BlockNumber,
        index: u64,
        tx: u64,
    ) -> ColdResult<Option<StoredReceipt>> {
        let value: Option<Cow<'_, [u8]>> = self.txn.get(self.t.receipts.dbi(), &be(tx)).cold()?;
        let Some(value) = value else { return Ok(None) };
        let blooms = self.receipt_blooms(block)?;
        let mut rest: &[u8] = &blooms;
        for _ in 0..index {
            skip_bloom_bits(&mut rest).cold()?;
        }
        let bloom = take_bloom_bits(&mut rest).cold()?;
        Ok(Some(codec::decode_receipt_with(&value, &mut |_| bloom).cold()?))
    }

    /// Resolves a transaction specifier to (block number, index, tx number).
    fn locate(&self, spec: TxSpec) -> ColdResult<Option<(BlockNumber, u64, u64)>> {
        let (block, index) = match spec {
            TxSpec::Hash(h) => {
                let Some(tx) = self.tx_number(&h)? else { return Ok(None) };
                let Some(block) = self.block_of_tx(tx)? else {
                    return Err(MdbxError::Corrupt(format!(
                        "tx hash {h} points at tx {tx}, which no block holds"
                    ))
                    .into());
                };
                let Some(bt) = self.block_txs(block)? else { return Ok(None) };
                return Ok(Some((block, tx - bt.first, tx)));
            }
            TxSpec::BlockNumberIndex(n, i) => (self.block_number(HeaderSpec::Number(n))?, i),
            TxSpec::BlockHashIndex(h, i) => (self.block_number(HeaderSpec::Hash(h))?, i),
        };
        let Some(block) = block else { return Ok(None) };
        let Some(bt) = self.block_txs(block)? else { return Ok(None) };
        if index >= u64::from(bt.count) {
            return Ok(None);
        }
        Ok(Some((block, index, bt.first + index)))
    }

    /// A transaction with its confirmation metadata.
    pub(crate) fn transaction(&self, spec: TxSpec) -> ColdResult<Option<TxWithMeta>> {
        let Some((block, index, tx)) = self.locate(spec)? else { return Ok(None) };
        let Some(header) = self.header_at(block)? else {
            return Err(MdbxError::Corrupt(format!(
                "block {block} has transactions but no header"
            ))
            .into());
        };
        let Some(tx) = self.tx_at(tx)? else {
            return Err(MdbxError::Corrupt(format!("tx {tx} of block {block} is missing")).into());
        };
        if let TxSpec::Hash(h) = spec
            && *tx.inner().tx_hash() != h
        {
            return Err(MdbxError::Corrupt(format!(
                "tx hash {h} points at a transaction with hash {}",
                tx.inner().tx_hash()
            ))
            .into());
        }
        let meta = tx_meta(&header, tx.inner().tx_hash(), index);
        Ok(Some(TxWithMeta { tx, meta }))
    }

    /// A receipt with its context.
    pub(crate) fn receipt(&self, spec: ReceiptSpec) -> ColdResult<Option<StoredReceipt>> {
        let spec = match spec {
            ReceiptSpec::TxHash(h) => TxSpec::Hash(h),
            ReceiptSpec::BlockNumberIndex(n, i) => TxSpec::BlockNumberIndex(n, i),
            ReceiptSpec::BlockHashIndex(h, i) => TxSpec::BlockHashIndex(h, i),
        };
        let Some((block, index, tx)) = self.locate(spec)? else { return Ok(None) };
        match self.receipt_at(block, index, tx)? {
            Some(r) => Ok(Some(r)),
            None => {
                Err(MdbxError::Corrupt(format!("receipt {tx} of block {block} is missing")).into())
            }
        }
    }

    /// Visits the raw values of `table` for transactions `first..first+count`.
    fn range_values(
        &self,
        table: signet_libmdbx::Database,
        bt: BlockTxs,
        mut f: impl FnMut(Cow<'t, [u8]>) -> ColdResult<()>,
    ) -> ColdResult<()> {
        if bt.count == 0 {
            return Ok(());
        }
        let mut cursor = self.txn.cursor(table).cold()?;
        let mut item = cursor.set_key::<Cow<'t, [u8]>, Cow<'t, [u8]>>(&be(bt.first)).cold()?;
        let mut expected = bt.first;
        while expected < bt.end() {
            let Some((key, value)) = item.take() else { break };
            if read_be(&key, "tx key").cold()? != expected {
                break;
            }
            f(value)?;
            expected += 1;
            if expected < bt.end() {
                item = cursor.next().cold()?;
            }
        }
        if expected != bt.end() {
            return Err(MdbxError::Corrupt(format!(
                "transactions {}..{} are incomplete at {expected}",
                bt.first,
                bt.end()
            ))
            .into());
        }
        Ok(())
    }

    /// All transactions of a block.
    pub(crate) fn block_transactions(
        &self,
        spec: HeaderSpec,
    ) -> ColdResult<Option<Vec<RecoveredTx>>> {
        let Some(block) = self.block_number(spec)? else { return Ok(None) };
        let Some(bt) = self.block_txs(block)? else { return Ok(None) };
        let mut out = Vec::with_capacity(bt.count as usize);
        self.range_values(self.t.transactions, bt, |v| {
            out.push(codec::decode_tx(&v).cold()?);
            Ok(())
        })?;
        Ok(Some(out))
    }

    /// A block's ommer headers and withdrawals.
    pub(crate) fn block_extras(&self, spec: HeaderSpec) -> ColdResult<Option<BlockExtras>> {
        let Some(block) = self.block_number(spec)? else { return Ok(None) };
        let value: Option<Cow<'_, [u8]>> =
            self.txn.get(self.t.block_extras.dbi(), &be(block)).cold()?;
        let Some(value) = value else {
            return Err(MdbxError::Corrupt(format!(
                "block {block} has no block_extras value (ommers and withdrawals)"
            ))
            .into());
        };
        codec::decode_extras(&value)
            .map(Some)
            .map_err(|e| MdbxError::Corrupt(format!("block_extras of block {block}: {e}")).into())
    }

    /// All receipts of a block.
    pub(crate) fn block_receipts(
        &self,
        spec: HeaderSpec,
    ) -> ColdResult<Option<Vec<StoredReceipt>>> {
        let Some(block) = self.block_number(spec)? else { return Ok(None) };
        let Some(bt) = self.block_txs(block)? else { return Ok(None) };
        // The values are copied into one buffer, sized first, that the logs'
        // data then slices: one allocation for the block instead of one per
        // log.
        let mut values = Vec::with_capacity(bt.count as usize);
        self.range_values(self.t.receipts, bt, |v| {
            values.push(v);
            Ok(())
        })?;
        let mut buffer = Vec::with_capacity(values.iter().map(|v| v.len()).sum());
        let mut ends = Vec::with_capacity(values.len());
        for v in values {
            buffer.extend_from_slice(&v);
            ends.push(buffer.len());
        }
        let buffer = Bytes::from(buffer);
        let blooms = self.receipt_blooms(block)?;
        let mut rest: &[u8] = &blooms;
        let mut out = Vec::with_capacity(ends.len());
        let mut start = 0;
        for end in ends {
            let bloom = take_bloom_bits(&mut rest).cold()?;
            let value = buffer.slice(start..end);
            out.push(codec::decode_receipt_shared(&value, &mut |_| bloom).cold()?);
            start = end;
        }
        Ok(Some(out))
    }
}
