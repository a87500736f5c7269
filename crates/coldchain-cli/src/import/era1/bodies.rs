//! Pass 2: bodies and receipts decoded on worker threads, ommers hashes
//! checked, senders recovered, each block verified.

#[allow(unused_imports)]
use super::*;

/// One block's raw body and receipts, with its verified header.
pub struct RawTuple {
    header: SealedHeader,
    body: Vec<u8>,
    receipts: Vec<u8>,
}

/// A worker job: consecutive tuples.
pub struct TupleJob {
    tuples: Vec<RawTuple>,
    /// Blocks of the run done after this job.
    progress: u64,
    skipped: Vec<Skipped>,
}

/// Pass 2's reader: the tuples of `layout`, grouped into jobs; blocks below
/// `skip_below` are not read.
pub(super) struct Tuples {
    pub(super) reader: E2Reader,
    pub(super) headers: std::vec::IntoIter<SealedHeader>,
    pub(super) skip_below: Option<BlockNumber>,
    pub(super) to: Option<BlockNumber>,
    pub(super) progress: u64,
    pub(super) failed: bool,
}

impl Tuples {
    fn next_job(&mut self) -> Result<Option<TupleJob>, ImportError> {
        let mut job = TupleJob {
            tuples: Vec::with_capacity(BLOCKS_PER_JOB),
            progress: 0,
            skipped: Vec::new(),
        };
        while job.tuples.len() < BLOCKS_PER_JOB {
            let Some(header) = self.headers.next() else { break };
            if self.to.is_some_and(|to| header.number > to) {
                self.headers = Vec::new().into_iter();
                break;
            }
            self.progress += 1;
            let rec = self.reader.expect(types::COMPRESSED_HEADER, "CompressedHeader")?;
            self.reader.skip_data(&rec)?;
            let body = self.reader.expect(types::COMPRESSED_BODY, "CompressedBody")?;
            if self.skip_below.is_some_and(|tip| header.number < tip) {
                self.reader.skip_data(&body)?;
                let rec = self.reader.expect(types::COMPRESSED_RECEIPTS, "CompressedReceipts")?;
                self.reader.skip_data(&rec)?;
                job.skipped.push(Skipped {
                    number: header.number,
                    hash: header.hash(),
                    line: None,
                });
                let td = self.reader.expect(types::TOTAL_DIFFICULTY, "TotalDifficulty")?;
                self.reader.skip_data(&td)?;
                continue;
            }
            let body = self.reader.read_data(&body)?;
            let rec = self.reader.expect(types::COMPRESSED_RECEIPTS, "CompressedReceipts")?;
            let receipts = self.reader.read_data(&rec)?;
            let td = self.reader.expect(types::TOTAL_DIFFICULTY, "TotalDifficulty")?;
            self.reader.skip_data(&td)?;
            job.tuples.push(RawTuple { header, body, receipts });
        }
        job.progress = self.progress;
        Ok((!job.skipped.is_empty() || !job.tuples.is_empty()).then_some(job))
    }
}

impl Iterator for Tuples {
    type Item = Result<TupleJob, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_job();
        self.failed = next.is_err();
        next.transpose()
    }
}

/// The number and hash of the last block of `layout`, from its header
/// record alone.
pub(super) fn last_block(layout: &Era1Layout) -> Result<Skipped, ImportError> {
    let number = layout.last();
    let offset = layout.offsets.last().copied().unwrap_or(layout.accumulator_offset);
    let mut r = E2Reader::open(&layout.path)?;
    r.seek(offset)?;
    let rec = r.expect(types::COMPRESSED_HEADER, "CompressedHeader")?;
    let rlp = unsnappy(&r.read_data(&rec)?).map_err(|e| {
        ImportError::malformed(format!("{}: block {number}: header", layout.path.display()), e)
    })?;
    Ok(Skipped { number, hash: alloy::primitives::keccak256(&rlp), line: None })
}

/// Decodes one tuple into a verified block; see the [module docs](self).
pub fn decode_tuple(origin: &str, tuple: RawTuple) -> Result<BlockData, ImportError> {
    let RawTuple { header, body, receipts } = tuple;
    let number = header.number;
    let at = |what: &str| format!("{origin}: block {number}: {what}");
    let body: BlockBody<TxEnvelope, Header> = unsnappy(&body)
        .and_then(|rlp| decode_exact(&rlp))
        .map_err(|e| ImportError::malformed(at("body"), e))?;
    let ommers_hash = calculate_ommers_root(&body.ommers);
    if ommers_hash != header.ommers_hash {
        return Err(ImportError::Mismatch {
            origin: origin.to_owned(),
            number,
            field: "ommersHash",
            expected: header.ommers_hash.to_string(),
            got: format!("{ommers_hash} (the hash of the body's {} ommers)", body.ommers.len()),
        });
    }
    let transactions = body
        .transactions
        .into_iter()
        .enumerate()
        .map(|(i, tx)| {
            let sender = tx.recover_signer_unchecked().map_err(|e| {
                ImportError::malformed(at(&format!("transaction {i}")), format!("signature: {e}"))
            })?;
            Ok(RecoveredTx::new_unchecked(tx, sender))
        })
        .collect::<Result<Vec<_>, ImportError>>()?;
    let receipts: Vec<Receipt> = unsnappy(&receipts)
        .and_then(|rlp| decode_exact(&rlp))
        .map_err(|e| ImportError::malformed(at("receipts"), e))?;
    // Ommers and (should an archive carry any) withdrawals are kept;
    // `verify_block` checks the withdrawals against the header's root.
    let extras = BlockExtras { ommers: body.ommers, withdrawals: body.withdrawals };
    let block = BlockData { header, transactions, receipts, extras };
    verify_block(&block).map_err(|e| ImportError::verify(origin, e))?;
    Ok(block)
}

/// Decodes and verifies the blocks of one job; a failure ends the chunk
/// after the blocks before it (which are written).
pub(super) fn decode_job(origin: &str, job: TupleJob) -> ChunkResult {
    let mut blocks = Vec::with_capacity(job.tuples.len());
    for tuple in job.tuples {
        match decode_tuple(origin, tuple) {
            Ok(block) => blocks.push(block),
            Err(e) => {
                return Ok(Chunk::failed_after(
                    blocks,
                    job.progress,
                    origin.to_owned(),
                    job.skipped,
                    e,
                ));
            }
        }
    }
    Ok(Chunk {
        blocks,
        progress: job.progress,
        origin: origin.to_owned(),
        skipped: job.skipped,
        error: None,
        lines: Vec::new(),
    })
}
