//! `--checksums LIST`: each file's SHA-256 against a published list.

#[allow(unused_imports)]
use super::*;

/// Parses a checksum list: `sha256  name` per line (`*name` allowed).
pub fn read_checksums(path: &Path) -> Result<HashMap<String, String>, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ImportError::io(path, e))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(hash), Some(name)) = (parts.next(), parts.next()) else {
            return Err(ImportError::malformed(
                format!("{} line {}", path.display(), i + 1),
                "expected `sha256  file-name`",
            ));
        };
        out.insert(name.trim_start_matches('*').to_owned(), hash.to_ascii_lowercase());
    }
    Ok(out)
}

/// The SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, ImportError> {
    let mut file = File::open(path).map_err(|e| ImportError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| ImportError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(alloy::hex::encode(hasher.finalize()))
}

pub(super) fn check_checksum(
    path: &Path,
    list: &HashMap<String, String>,
) -> Result<(), ImportError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let got = sha256_file(path)?;
    match list.get(name) {
        Some(expected) if *expected == got => Ok(()),
        Some(expected) => {
            Err(ImportError::Checksum { file: path.to_owned(), expected: expected.clone(), got })
        }
        None => Err(ImportError::Checksum {
            file: path.to_owned(),
            expected: format!("no entry for {name}"),
            got,
        }),
    }
}
