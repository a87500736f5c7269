//! `coldchain import jsonl|era1` and `coldchain export jsonl` as processes on
//! the embedded store: byte-exact round trips, the summary line, checksums,
//! corrupted files refused with the block and the field named and the store
//! left as it was, and a resume after the process is killed mid-import.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::{coldchain, fails, ok, s};

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The store's whole content as JSON lines (empty for an empty store).
fn snapshot(store: &Path, dir: &Path) -> Vec<u8> {
    let file = dir.join("snapshot.jsonl");
    let out = coldchain(&["export", "jsonl", s(&file), "--store", s(store)]);
    if !out.status.success() {
        assert!(String::from_utf8_lossy(&out.stderr).contains("the store is empty"));
        return Vec::new();
    }
    std::fs::read(file).unwrap()
}

fn era1(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/era1").join(name)
}

#[test]
fn jsonl_round_trip_through_the_binary_is_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(&["synth", "--store", s(&a), "--blocks", "40", "--txs-per-block", "10", "--batch", "7"]);
    let (fa, fb) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let stderr = ok(&["export", "jsonl", s(&fa), "--store", s(&a)]);
    assert!(stderr.contains("export done: 40 blocks, 400 transactions"), "{stderr}");
    assert!(!dir.path().join("a.jsonl.partial").exists());
    let stderr = ok(&["import", "jsonl", s(&fa), "--store", s(&b), "--batch", "9"]);
    // One summary line: blocks, transactions, logs, time, rate, tip.
    let summary = stderr.lines().find(|l| l.contains("import done")).expect(&stderr);
    for part in ["40 blocks", "400 transactions", " logs in ", "blocks/s", "store tip 1000039"] {
        assert!(summary.contains(part), "{summary}");
    }
    // No progress bar drawn on a pipe.
    assert!(!stderr.contains('\r'), "{stderr:?}");
    ok(&["export", "jsonl", s(&fb), "--store", s(&b)]);
    assert!(std::fs::read(&fa).unwrap() == std::fs::read(&fb).unwrap());
    // A sub-range.
    let fc = dir.path().join("c.jsonl");
    ok(&["export", "jsonl", s(&fc), "--store", s(&b), "--from", "1000010", "--to", "1000012"]);
    let lines: Vec<Vec<u8>> =
        std::fs::read(&fa).unwrap().split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    assert_eq!(
        std::fs::read(&fc).unwrap(),
        [&lines[10][..], &lines[11], &lines[12], b""].join(&b'\n')
    );
    let stderr = fails(&["export", "jsonl", s(&fc), "--store", s(&b), "--to", "2000000"]);
    assert!(stderr.contains("holds blocks 1000000..=1000039"), "{stderr}");
}

#[test]
fn era1_import_checks_checksums_resumes_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("m");
    let file = era1("mainnet-00000-5ec1ffb8.era1");
    let list = era1("checksums.txt");
    let stderr = ok(&[
        "import",
        "era1",
        s(&file),
        "--store",
        s(&store),
        "--checksums",
        s(&list),
        "--to",
        "999",
    ]);
    assert!(stderr.contains("checksums match"), "{stderr}");
    assert!(stderr.contains("import done: 1000 blocks"), "{stderr}");
    let stderr = ok(&["import", "era1", s(&file), "--store", s(&store)]);
    assert!(stderr.contains("import done: 7192 blocks"), "{stderr}");
    assert!(stderr.contains("1000 already stored"), "{stderr}");
    // Genesis as serve would answer it.
    let out = dir.path().join("m.jsonl");
    ok(&["export", "jsonl", s(&out), "--store", s(&store), "--to", "0"]);
    let line: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        line["block"]["hash"],
        "0xd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"
    );
    assert_eq!(line["receipts"], serde_json::json!([]));
}

// ---------------------------------------------------------------- corruption

/// Rewrites an era1 file: `edit(block, type, data)` sees each record's data
/// (decompressed for snappy records); the block index is rebuilt.
fn rewrite_era1(src: &Path, dst: &Path, edit: impl Fn(u64, [u8; 2], &mut Vec<u8>)) {
    let bytes = std::fs::read(src).unwrap();
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let ty = [bytes[at], bytes[at + 1]];
        let len = u32::from_le_bytes(bytes[at + 2..at + 6].try_into().unwrap()) as usize;
        records.push((ty, bytes[at + 8..at + 8 + len].to_vec()));
        at += 8 + len;
    }
    let (index_ty, index) = records.pop().unwrap();
    assert_eq!(index_ty, [0x66, 0x32]);
    let start = u64::from_le_bytes(index[..8].try_into().unwrap());
    let (mut out, mut offsets, mut block) = (Vec::new(), Vec::new(), start.wrapping_sub(1));
    for (ty, mut data) in records {
        if ty == [3, 0] {
            block = block.wrapping_add(1);
            offsets.push(out.len() as i64);
        }
        if [[3, 0], [4, 0], [5, 0]].contains(&ty) {
            let mut raw = Vec::new();
            snap::read::FrameDecoder::new(&data[..]).read_to_end(&mut raw).unwrap();
            let before = raw.clone();
            edit(block, ty, &mut raw);
            if raw != before {
                let mut enc = snap::write::FrameEncoder::new(Vec::new());
                std::io::Write::write_all(&mut enc, &raw).unwrap();
                data = enc.into_inner().unwrap();
            }
        } else {
            edit(block, ty, &mut data);
        }
        out.extend_from_slice(&ty);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&data);
    }
    let index_at = out.len() as i64;
    let mut index = start.to_le_bytes().to_vec();
    for o in &offsets {
        index.extend_from_slice(&(o - index_at).to_le_bytes());
    }
    index.extend_from_slice(&(offsets.len() as u64).to_le_bytes());
    out.extend_from_slice(&[0x66, 0x32]);
    out.extend_from_slice(&(index.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&index);
    std::fs::write(dst, out).unwrap();
}

/// A corrupt block stops the import right after the block before it; the
/// message says the cause once.
#[test]
fn corrupted_era1_files_keep_the_blocks_before_the_bad_one() {
    use alloy::{
        consensus::{BlockBody, Header, ReceiptEnvelope, TxEnvelope},
        rlp::{Decodable, Encodable},
    };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sepolia");
    let src = era1("sepolia-00021-b8814b14.era1");
    ok(&["import", "era1", s(&src), "--store", s(&store), "--to", "175200"]);
    assert!(!snapshot(&store, dir.path()).is_empty());

    // Two transactions of block 175229 swapped.
    let swapped = dir.path().join("swapped.era1");
    rewrite_era1(&src, &swapped, |n, ty, data| {
        if n == 175_229 && ty == [4, 0] {
            let mut body = BlockBody::<TxEnvelope, Header>::decode(&mut data.as_slice()).unwrap();
            body.transactions.swap(0, 1);
            data.clear();
            body.encode(data);
        }
    });
    // A flipped status byte in block 175223's receipt.
    let flipped = dir.path().join("flipped.era1");
    rewrite_era1(&src, &flipped, |n, ty, data| {
        if n == 175_223 && ty == [5, 0] {
            let mut receipts = Vec::<ReceiptEnvelope>::decode(&mut data.as_slice()).unwrap();
            let r = receipts[0].as_receipt_with_bloom_mut().unwrap();
            r.receipt.status = (!r.receipt.status.coerce_status()).into();
            data.clear();
            receipts.encode(data);
        }
    });
    let stderr = fails(&["import", "era1", s(&flipped), "--store", s(&store)]);
    assert!(stderr.contains("flipped.era1: block 175223: receipts root mismatch"), "{stderr}");
    assert!(stderr.contains("import stopped: 22 blocks"), "{stderr}");
    assert!(stderr.contains("store tip 175222"), "{stderr}");
    let stderr = fails(&["import", "era1", s(&swapped), "--store", s(&store)]);
    assert!(stderr.contains("swapped.era1: block 175229: transactions root mismatch"), "{stderr}");
    assert!(stderr.contains("store tip 175228"), "{stderr}");
    assert_eq!(stderr.matches("transactions root mismatch").count(), 1, "{stderr}");

    // The untouched file continues from there.
    let stderr = ok(&["import", "era1", s(&src), "--store", s(&store)]);
    assert!(stderr.contains("import done: 4995 blocks"), "{stderr}");
}

#[test]
fn corrupted_jsonl_files_keep_the_blocks_before_the_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(&["synth", "--store", s(&a), "--blocks", "30", "--txs-per-block", "8"]);
    let file = dir.path().join("a.jsonl");
    ok(&["export", "jsonl", s(&file), "--store", s(&a)]);
    ok(&["import", "jsonl", s(&file), "--store", s(&b), "--to", "1000009"]);
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Block 1000012 loses a log.
    let receipts = lines[12]["receipts"].as_array_mut().unwrap();
    let r = receipts.iter_mut().find(|r| !r["logs"].as_array().unwrap().is_empty()).unwrap();
    r["logs"].as_array_mut().unwrap().pop();
    let corrupt = dir.path().join("corrupt.jsonl");
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&corrupt, body).unwrap();
    let stderr = fails(&["import", "jsonl", s(&corrupt), "--store", s(&b)]);
    assert!(stderr.contains("corrupt.jsonl line 13: block 1000012: bloom of receipt"), "{stderr}");
    assert!(stderr.contains("import stopped: 2 blocks"), "{stderr}");
    assert!(stderr.contains("store tip 1000011"), "{stderr}");
    // Each clause once.
    assert_eq!(stderr.matches("fetch it again").count(), 1, "{stderr}");
}

/// The importer is killed (SIGKILL) mid-import; the same command then
/// resumes after the store's tip and the result is the source, byte for byte.
#[test]
fn a_killed_import_resumes_after_the_tip() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(&["synth", "--store", s(&a), "--blocks", "400", "--txs-per-block", "60"]);
    let file = dir.path().join("a.jsonl");
    ok(&["export", "jsonl", s(&file), "--store", s(&a)]);
    let args = ["import", "jsonl", s(&file), "--store", s(&b), "--batch", "20"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_coldchain"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once something is written (or let it finish if it is fast).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let size = std::fs::read_dir(&b)
            .map(|d| d.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum::<u64>())
            .unwrap_or(0);
        if size > 0 || child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            std::thread::sleep(Duration::from_millis(300));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().unwrap();
    let stderr = ok(&args);
    let summary = stderr.lines().find(|l| l.contains("import done")).expect(&stderr);
    eprintln!("after the kill: {summary}");
    let out = dir.path().join("b.jsonl");
    ok(&["export", "jsonl", s(&out), "--store", s(&b)]);
    assert!(std::fs::read(&file).unwrap() == std::fs::read(&out).unwrap());
}

/// Commands that only read never create a store: a missing one, and a data
/// file emptied or truncated, are errors that name the path, and nothing is
/// created in their place.
#[test]
fn reading_commands_open_but_never_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo");
    let out = dir.path().join("out.jsonl");
    let serve = |store: &Path| {
        let args = ["serve", "--store", s(store), "--addr", "127.0.0.1:0"];
        let out = coldchain(&args);
        assert!(!out.status.success(), "serve started on {}", store.display());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for stderr in [
        fails(&["export", "jsonl", s(&out), "--store", s(&typo)]),
        fails(&["verify", "--store", s(&typo)]),
        serve(&typo),
    ] {
        assert!(stderr.contains(&format!("no coldchain store at {}", typo.display())), "{stderr}");
        assert!(!typo.exists(), "a store was created: {stderr}");
    }
    // A store whose data file was truncated.
    let store = dir.path().join("store");
    ok(&["synth", "--store", s(&store), "--blocks", "20", "--txs-per-block", "4"]);
    let data = store.join("mdbx.dat");
    let bytes = std::fs::read(&data).unwrap();
    for len in [0usize, 8 << 10, 16 << 10] {
        std::fs::write(&data, &bytes[..len]).unwrap();
        for stderr in [
            fails(&["verify", "--store", s(&store)]),
            fails(&["export", "jsonl", s(&out), "--store", s(&store)]),
            serve(&store),
        ] {
            assert!(stderr.contains("mdbx.dat"), "{len} bytes: {stderr}");
            assert!(!stderr.contains("consistent"), "{len} bytes: {stderr}");
        }
    }
}
