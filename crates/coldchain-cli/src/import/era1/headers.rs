//! Pass 1: headers and total difficulties only, checked for the hash chain,
//! total difficulty and epoch accumulator before anything is written.

#[allow(unused_imports)]
use super::*;

/// The last block of a verified file, to link the next file to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Its number.
    pub number: BlockNumber,
    /// Its hash.
    pub hash: B256,
    /// Its total difficulty.
    pub total_difficulty: U256,
}

/// The verified headers of one file.
#[derive(Debug, Clone)]
pub struct Epoch {
    /// The headers, sealed with their computed hashes.
    pub headers: Vec<SealedHeader>,
    /// The last block, for the next file.
    pub link: Link,
}

/// Pass 1: reads and verifies every header, total difficulty and the
/// accumulator of `layout`; see the [module docs](self). `prev` is the last
/// block of the previous file of this run, if it precedes this one.
pub fn scan_headers(layout: &Era1Layout, prev: Option<Link>) -> Result<Epoch, ImportError> {
    let path = &layout.path;
    let origin = path.display().to_string();
    let mut r = E2Reader::open(path)?;
    let version = r.expect(types::VERSION, "Version")?;
    r.skip_data(&version)?;
    let mut prev = prev.filter(|p| p.number + 1 == layout.start);
    let mut headers = Vec::with_capacity(layout.offsets.len());
    let mut records = Vec::with_capacity(layout.offsets.len());
    for (i, offset) in layout.offsets.iter().enumerate() {
        let number = layout.start + i as u64;
        let at = r.offset();
        if at != *offset {
            return Err(ImportError::malformed(
                format!("{origin} at byte {at}"),
                format!("the block index puts block {number} at byte {offset}"),
            ));
        }
        let rec = r.expect(types::COMPRESSED_HEADER, "CompressedHeader")?;
        let data = r.read_data(&rec)?;
        let header: Header = unsnappy(&data)
            .and_then(|rlp| decode_exact(&rlp))
            .map_err(|e| ImportError::malformed(format!("{origin}: block {number}: header"), e))?;
        if header.number != number {
            return Err(ImportError::Mismatch {
                origin,
                number,
                field: "number",
                expected: number.to_string(),
                got: header.number.to_string(),
            });
        }
        let header = header.seal_slow();
        let body = r.expect(types::COMPRESSED_BODY, "CompressedBody")?;
        r.skip_data(&body)?;
        let receipts = r.expect(types::COMPRESSED_RECEIPTS, "CompressedReceipts")?;
        r.skip_data(&receipts)?;
        let td = r.expect(types::TOTAL_DIFFICULTY, "TotalDifficulty")?;
        if td.len != 32 {
            return Err(ImportError::malformed(
                format!("{origin}: block {number}"),
                format!("the TotalDifficulty record holds {} bytes, 32 expected", td.len),
            ));
        }
        let td = U256::from_le_slice(&r.read_data(&td)?);
        if let Some(p) = prev
            && header.parent_hash != p.hash
        {
            return Err(ImportError::Mismatch {
                origin,
                number,
                field: "parentHash",
                expected: format!("{} (the hash of block {})", p.hash, p.number),
                got: header.parent_hash.to_string(),
            });
        }
        let expected_td = match prev {
            Some(p) => Some(p.total_difficulty.checked_add(header.difficulty)),
            None if number == 0 => Some(Some(header.difficulty)),
            None => None,
        };
        if let Some(expected) = expected_td
            && expected != Some(td)
        {
            return Err(ImportError::Mismatch {
                origin,
                number,
                field: "totalDifficulty",
                expected: expected.map_or("an overflow".to_owned(), |e| e.to_string()),
                got: td.to_string(),
            });
        }
        prev = Some(Link { number, hash: header.hash(), total_difficulty: td });
        records.push((header.hash(), td));
        headers.push(header);
    }
    // Other entries may follow the tuples; the Accumulator ends them.
    while r.offset() < layout.accumulator_offset {
        let Some(rec) = r.next_header()? else { break };
        if rec.end() > layout.accumulator_offset {
            return Err(ImportError::malformed(
                format!("{origin} at byte {}", rec.offset),
                "a record overlaps the Accumulator record",
            ));
        }
        r.skip_data(&rec)?;
    }
    let got = epoch_accumulator(&records);
    if got != layout.accumulator {
        return Err(ImportError::Accumulator {
            file: path.clone(),
            expected: layout.accumulator,
            got,
            blocks: records.len(),
        });
    }
    let link = prev.ok_or_else(|| ImportError::malformed(origin, "no blocks"))?;
    Ok(Epoch { headers, link })
}
