//! The e2store container: record headers, a reader that walks records in
//! file order, and snappy-framed record data.

#[allow(unused_imports)]
use super::*;

/// The header of one e2store record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The two type bytes.
    pub ty: [u8; 2],
    /// Data length.
    pub len: u32,
    /// Where the record (its header) starts in the file.
    pub offset: u64,
}

impl RecordHeader {
    /// Where the next record starts.
    pub fn end(&self) -> u64 {
        self.offset + 8 + u64::from(self.len)
    }
}

/// Reads e2store records in file order.
pub struct E2Reader {
    pub(super) reader: BufReader<File>,
    path: PathBuf,
    offset: u64,
    len: u64,
}

impl E2Reader {
    /// Opens `path` at its start.
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        let file = File::open(path).map_err(|e| ImportError::io(path, e))?;
        let len = file.metadata().map_err(|e| ImportError::io(path, e))?.len();
        Ok(Self {
            reader: BufReader::with_capacity(1 << 20, file),
            path: path.to_owned(),
            offset: 0,
            len,
        })
    }

    /// The file's length.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Where the next record starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn bad(&self, offset: u64, reason: impl Into<String>) -> ImportError {
        ImportError::malformed(format!("{} at byte {offset}", self.path.display()), reason)
    }

    /// Moves to `offset` (a record boundary).
    pub fn seek(&mut self, offset: u64) -> Result<(), ImportError> {
        self.reader.seek(SeekFrom::Start(offset)).map_err(|e| ImportError::io(&self.path, e))?;
        self.offset = offset;
        Ok(())
    }

    /// The next record's header, `None` at the end of the file.
    pub fn next_header(&mut self) -> Result<Option<RecordHeader>, ImportError> {
        if self.offset == self.len {
            return Ok(None);
        }
        let offset = self.offset;
        if self.len - offset < 8 {
            return Err(self.bad(offset, "a truncated record header"));
        }
        let mut raw = [0u8; 8];
        self.reader.read_exact(&mut raw).map_err(|e| ImportError::io(&self.path, e))?;
        self.offset += 8;
        let header = RecordHeader {
            ty: [raw[0], raw[1]],
            len: u32::from_le_bytes([raw[2], raw[3], raw[4], raw[5]]),
            offset,
        };
        if raw[6..8] != [0, 0] {
            return Err(self.bad(offset, "the record header's reserved bytes are not zero"));
        }
        if header.end() > self.len {
            return Err(self.bad(
                offset,
                format!("a record of {} bytes runs past the end of the file", header.len),
            ));
        }
        Ok(Some(header))
    }

    /// The data of the record whose header was just read.
    pub fn read_data(&mut self, header: &RecordHeader) -> Result<Vec<u8>, ImportError> {
        let mut data = vec![0u8; header.len as usize];
        self.reader.read_exact(&mut data).map_err(|e| ImportError::io(&self.path, e))?;
        self.offset += u64::from(header.len);
        Ok(data)
    }

    /// Skips the data of the record whose header was just read.
    pub fn skip_data(&mut self, header: &RecordHeader) -> Result<(), ImportError> {
        self.reader
            .seek_relative(i64::from(header.len))
            .map_err(|e| ImportError::io(&self.path, e))?;
        self.offset += u64::from(header.len);
        Ok(())
    }

    /// The next record, which must be of type `ty`.
    pub fn expect(&mut self, ty: [u8; 2], what: &str) -> Result<RecordHeader, ImportError> {
        let offset = self.offset;
        let header = self.next_header()?.ok_or_else(|| {
            self.bad(offset, format!("the file ends where a {what} record should be"))
        })?;
        if header.ty != ty {
            return Err(self.bad(
                offset,
                format!(
                    "expected a {what} record (type {:02x}{:02x}), found type {:02x}{:02x}",
                    ty[0], ty[1], header.ty[0], header.ty[1]
                ),
            ));
        }
        Ok(header)
    }
}

/// Decompresses a snappy-framed record.
pub fn unsnappy(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len() * 3);
    snap::read::FrameDecoder::new(data)
        .take(MAX_RECORD + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("snappy: {e}"))?;
    if out.len() as u64 > MAX_RECORD {
        return Err(format!("decompresses to more than {MAX_RECORD} bytes"));
    }
    Ok(out)
}

pub(super) fn decode_exact<T: Decodable>(mut buf: &[u8]) -> Result<T, String> {
    let value = T::decode(&mut buf).map_err(|e| format!("rlp: {e}"))?;
    if !buf.is_empty() {
        return Err(format!("{} bytes after the RLP item", buf.len()));
    }
    Ok(value)
}
