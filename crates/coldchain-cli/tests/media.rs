//! Stores on media that cannot be written or that fill up, through the
//! binary: a store on a read-only mount is served, exported and verified
//! (opened read-only by itself), and a full disk is reported once, naming
//! the store, instead of as a chain of unrelated errors.
//!
//! Both need mounts (a read-only bind mount stops root, for whom file modes
//! do not; a small tmpfs fills up): run as root. Elsewhere they say loudly
//! that they were skipped; under `CI=true` they fail instead.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Served, coldchain, fails, ok, s};
use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::Command,
};

/// A mount that is unmounted when dropped, also when the test fails.
struct Mount(PathBuf);

impl Mount {
    /// Runs `mount ARGS... TARGET`; `None` (after a loud notice) when
    /// mounting is not allowed here, except under `CI=true`, where it fails.
    fn new(args: &[&str], target: &Path) -> Option<Self> {
        std::fs::create_dir_all(target).unwrap();
        let out = Command::new("mount").args(args).arg(target).output();
        match out {
            Ok(out) if out.status.success() => Some(Self(target.to_path_buf())),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true: `mount {}` is needed (run as root): {why}",
                    args.join(" ")
                );
                eprintln!("SKIPPED: `mount {}` failed (not root?): {why}", args.join(" "));
                None
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// One JSON-RPC call over HTTP/1.1 (no keep-alive); the parsed answer.
fn call(addr: &str, method: &str) -> serde_json::Value {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":[]}}"#);
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let json = answer.split("\r\n\r\n").nth(1).expect(&answer);
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[test]
fn a_store_on_read_only_media_is_served_exported_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("store");
    ok(&["synth", "--store", s(&src), "--blocks", "20", "--txs-per-block", "4"]);
    let Some(ro) = Mount::new(&["--bind", "-o", "ro", s(&src)], &dir.path().join("ro")) else {
        return;
    };
    let store = ro.0.clone();
    let chosen = "opening it read-only";

    let out = dir.path().join("out.jsonl");
    let stderr = ok(&["export", "jsonl", s(&out), "--store", s(&store)]);
    assert!(stderr.contains(chosen), "{stderr}");
    assert!(stderr.contains("export done: 20 blocks"), "{stderr}");
    // The same bytes as from the writable store, opened read-only on request.
    let again = dir.path().join("again.jsonl");
    ok(&["export", "jsonl", s(&again), "--store", s(&src), "--read-only"]);
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&again).unwrap());

    let out = coldchain(&["verify", "--store", s(&store)]);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains(chosen), "{stderr}");

    let served = Served::start(&["--store", s(&store)]);
    let tip = call(&served.addr, "eth_blockNumber");
    assert_eq!(tip["result"], format!("{:#x}", 1_000_019), "{tip}");
    let (exited, _, lines, _) = served.signal_and_wait("-TERM");
    assert!(exited, "{lines:?}");

    // A server that would write cannot be read-only.
    let stderr = fails(&["serve", "--store", s(&src), "--read-only", "--dev"]);
    assert!(stderr.contains("--read-only") && stderr.contains("--dev"), "{stderr}");
    // Nothing was written on the way: the source store is as it was.
    assert!(!src.join(".coldchain-write-probe").exists());
}

/// Each error the disk-full runs print: said once, naming the store, and
/// none of the follow-on errors it used to hide behind.
fn assert_full_disk_reported_once(stderr: &str, store: &Path) {
    eprintln!("{stderr}");
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    let expected = format!("no space left on the device that holds {}", store.display());
    assert!(error[0].contains(&expected), "{stderr}");
    assert_eq!(stderr.matches("no space left").count(), 1, "{stderr}");
    for hidden in ["does not extend", "unknown error code", "earlier write"] {
        assert!(!stderr.contains(hidden), "{hidden}: {stderr}");
    }
}

#[test]
fn a_full_disk_says_so_once_naming_the_store() {
    let dir = tempfile::tempdir().unwrap();
    // A chain that does not fit in 2 MiB, exported on the roomy disk.
    let big = dir.path().join("big");
    ok(&["synth", "--store", s(&big), "--blocks", "300", "--txs-per-block", "40"]);
    let file = dir.path().join("big.jsonl");
    ok(&["export", "jsonl", s(&file), "--store", s(&big)]);

    let Some(tmpfs) =
        Mount::new(&["-t", "tmpfs", "-o", "size=2m", "tmpfs"], &dir.path().join("full"))
    else {
        return;
    };
    let store = tmpfs.0.join("jsonl");
    let stderr = fails(&["import", "jsonl", s(&file), "--store", s(&store), "--batch", "10"]);
    assert_full_disk_reported_once(&stderr, &store);
    // The verified prefix that fitted is kept and readable.
    assert!(stderr.contains("import stopped"), "{stderr}");
    std::fs::remove_dir_all(&store).unwrap();

    let store = tmpfs.0.join("synth");
    let stderr =
        fails(&["synth", "--store", s(&store), "--blocks", "300", "--txs-per-block", "40"]);
    assert_full_disk_reported_once(&stderr, &store);
}
