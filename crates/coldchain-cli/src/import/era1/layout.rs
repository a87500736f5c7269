//! Where things are in an era1 file: its BlockIndex and Accumulator, its
//! name, and the diagnosis of a truncated file.

#[allow(unused_imports)]
use super::*;

/// Where things are in an era1 file, from its BlockIndex.
#[derive(Debug, Clone)]
pub struct Era1Layout {
    /// The file.
    pub path: PathBuf,
    /// The first block.
    pub start: BlockNumber,
    /// Absolute offset of each block's CompressedHeader record.
    pub offsets: Vec<u64>,
    /// Where the Accumulator record starts.
    pub accumulator_offset: u64,
    /// The Accumulator record's root.
    pub accumulator: B256,
}

impl Era1Layout {
    /// Blocks in the file.
    pub fn count(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// The last block.
    pub fn last(&self) -> BlockNumber {
        self.start + self.count() - 1
    }
}

/// Reads the BlockIndex and the Accumulator at the end of `path`. A file
/// whose end is not a block index is walked from the start, so that a
/// truncated file is reported as truncated (not as a nonsensical index).
pub fn read_layout(path: &Path) -> Result<Era1Layout, ImportError> {
    read_index(path).map_err(|e| match (&e, truncation(path)) {
        (ImportError::Malformed { .. }, Some(reason)) => {
            ImportError::malformed(path.display().to_string(), reason)
        }
        _ => e,
    })
}

/// Why `path` looks truncated, walking its records from the start: a record
/// that runs past the end of the file, or records that end without the
/// BlockIndex that ends an era1 file. `None` if it is whole.
fn truncation(path: &Path) -> Option<String> {
    let mut r = E2Reader::open(path).ok()?;
    let (mut headers, mut last) = (0u64, None);
    loop {
        let offset = r.offset();
        match r.next_header() {
            Ok(Some(record)) => {
                headers += u64::from(record.ty == types::COMPRESSED_HEADER);
                last = Some(record.ty);
                r.skip_data(&record).ok()?;
            }
            Ok(None) if last == Some(types::BLOCK_INDEX) => return None,
            Ok(None) => {
                return Some(format!(
                    "the file is truncated: it ends after {headers} blocks' records without the                      BlockIndex that ends an era1 file; download it again"
                ));
            }
            Err(_) => {
                return Some(format!(
                    "the file is truncated: the record at byte {offset} runs past its end ({}                      bytes, after {headers} blocks' records); download it again",
                    r.len()
                ));
            }
        }
    }
}

fn read_index(path: &Path) -> Result<Era1Layout, ImportError> {
    let mut r = E2Reader::open(path)?;
    let len = r.len();
    let bad = |reason: String| ImportError::malformed(path.display().to_string(), reason);
    if len < 8 + 8 + 40 + 8 + 24 {
        return Err(bad(format!("{len} bytes is too short for an era1 file")));
    }
    r.seek(len - 8)?;
    let mut raw = [0u8; 8];
    r.reader.read_exact(&mut raw).map_err(|e| ImportError::io(path, e))?;
    let count = u64::from_le_bytes(raw);
    if count == 0 || count > MAX_BLOCKS {
        return Err(bad(format!(
            "the block index counts {count} blocks (1..={MAX_BLOCKS} allowed)"
        )));
    }
    let index_len = 16 + 8 * count;
    let Some(index_offset) = len.checked_sub(8 + index_len).filter(|o| *o >= 8 + 40) else {
        return Err(bad(format!("a block index of {count} blocks does not fit in the file")));
    };
    r.seek(index_offset)?;
    let index = r.expect(types::BLOCK_INDEX, "BlockIndex")?;
    if u64::from(index.len) != index_len {
        return Err(bad(format!(
            "the BlockIndex record holds {} bytes, {index_len} expected for {count} blocks",
            index.len
        )));
    }
    let data = r.read_data(&index)?;
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&data[8 * i..8 * i + 8]);
        w
    };
    let start = u64::from_le_bytes(word(0));
    let accumulator_offset = index_offset - 40;
    let mut offsets = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let relative = i64::from_le_bytes(word(1 + i));
        let offset = index_offset
            .checked_add_signed(relative)
            .filter(|o| *o >= 8 && *o < accumulator_offset);
        let Some(offset) = offset else {
            return Err(bad(format!(
                "the block index points block {} outside the file",
                start + i as u64
            )));
        };
        offsets.push(offset);
    }
    r.seek(accumulator_offset)?;
    let acc = r.expect(types::ACCUMULATOR, "Accumulator (just before the BlockIndex)")?;
    if acc.len != 32 {
        return Err(bad(format!("the Accumulator record holds {} bytes, 32 expected", acc.len)));
    }
    let accumulator = B256::from_slice(&r.read_data(&acc)?);
    let layout =
        Era1Layout { path: path.to_owned(), start, offsets, accumulator_offset, accumulator };
    check_name(&layout)?;
    Ok(layout)
}

/// Checks a `<network>-<epoch>-<hash>.era1` name against the content: the
/// epoch's first block and the accumulator's first 4 bytes. Other names are
/// not checked.
fn check_name(layout: &Era1Layout) -> Result<(), ImportError> {
    let Some(stem) = layout.path.file_stem().and_then(|s| s.to_str()) else { return Ok(()) };
    let parts: Vec<&str> = stem.rsplitn(3, '-').collect();
    let [hash, epoch, _network] = parts.as_slice() else { return Ok(()) };
    let (Ok(epoch), true) = (epoch.parse::<u64>(), hash.len() == 8) else { return Ok(()) };
    let short = alloy::hex::encode(&layout.accumulator[..4]);
    if !hash.eq_ignore_ascii_case(&short) {
        return Err(ImportError::malformed(
            layout.path.display().to_string(),
            format!(
                "the name says accumulator {hash}.. but the file's Accumulator record is {}; \
                 the file is corrupt or misnamed",
                layout.accumulator
            ),
        ));
    }
    if epoch * MAX_BLOCKS != layout.start {
        return Err(ImportError::malformed(
            layout.path.display().to_string(),
            format!("the name says epoch {epoch} but the file starts at block {}", layout.start),
        ));
    }
    Ok(())
}
