//! The store's chain id through the binary, on the embedded store: recorded
//! by the first write that knows it (a node's `eth_chainId`, an era1
//! archive's network, `--chain-id`, W1's), answered by `serve` for
//! `eth_chainId` and `net_version`, another chain refused naming both ids,
//! and a store without one (as written before chain ids were recorded)
//! given one by the next import or by `coldchain chain-id --set`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use coldchain_client::HttpClient;
use common::{Served, coldchain, fails, s};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Runs a command that must succeed; returns (stdout, stderr).
fn ok(args: &[&str]) -> (String, String) {
    let out = coldchain(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// Runs a command that must fail; returns its stderr.
/// What `coldchain chain-id --store S` prints.
fn chain_id(store: &Path) -> String {
    ok(&["chain-id", "--store", s(store)]).0.trim().to_owned()
}

fn tip(store: &Path, dir: &Path) -> String {
    let file = dir.join("tip.jsonl");
    ok(&["export", "jsonl", s(&file), "--store", s(store)]);
    let text = std::fs::read_to_string(file).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    last["block"]["hash"].as_str().unwrap().to_owned()
}

/// A W1 store (chain 1) and its blocks as JSON lines.
fn w1_store(dir: &Path) -> (PathBuf, PathBuf) {
    let store = dir.join("w1");
    ok(&["synth", "--store", s(&store), "--blocks", "6", "--txs-per-block", "2"]);
    let file = dir.join("w1.jsonl");
    ok(&["export", "jsonl", s(&file), "--store", s(&store)]);
    (store, file)
}

#[tokio::test]
async fn serve_answers_the_stored_chain_id_and_another_chain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (w1, file) = w1_store(dir.path());
    assert_eq!(chain_id(&w1), "1", "synth records W1's chain id");
    // The same blocks, recorded as chain 5.
    let five = dir.path().join("five");
    ok(&["import", "jsonl", s(&file), "--store", s(&five), "--chain-id", "5"]);
    assert_eq!(chain_id(&five), "5");

    // serve answers the stored id, without --chain-id.
    let served = Served::start(&["--store", s(&five)]);
    let client = HttpClient::new(&served.url).unwrap();
    let id: String = client.call("eth_chainId", json!([])).await.unwrap();
    let version: String = client.call("net_version", json!([])).await.unwrap();
    assert_eq!((id.as_str(), version.as_str()), ("0x5", "5"));

    // A node of chain 5 into a store of chain 1: refused before any write,
    // naming both ids. (The blocks are the same: without the check this
    // import would succeed with nothing to do.)
    let before = tip(&w1, dir.path());
    let stderr = fails(&["import", "rpc", "--url", &served.url, "--store", s(&w1)]);
    assert!(stderr.contains("the store holds chain 1, not chain 5"), "{stderr}");
    assert!(stderr.contains(&format!("eth_chainId of {}", served.url)), "{stderr}");
    assert_eq!(tip(&w1, dir.path()), before);
    assert_eq!(chain_id(&w1), "1");
    // The same through `serve --import-rpc`.
    let out = coldchain(&[
        "serve",
        "--store",
        s(&w1),
        "--addr",
        "127.0.0.1:0",
        "--import-rpc",
        &served.url,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("the store holds chain 1, not chain 5"), "{stderr}");
    drop(served);

    // A --chain-id that disagrees with the store: refused at start.
    let out =
        coldchain(&["serve", "--store", s(&five), "--addr", "127.0.0.1:0", "--chain-id", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--chain-id 1 disagrees") && stderr.contains("holds chain 5"),
        "{stderr}"
    );
    // A JSON lines import of another chain too.
    let stderr = fails(&["import", "jsonl", s(&file), "--store", s(&five), "--chain-id", "1"]);
    assert!(stderr.contains("the store holds chain 5, not chain 1"), "{stderr}");
}

#[tokio::test]
async fn a_store_without_a_chain_id_gets_one_from_the_next_import_or_chain_id_set() {
    let dir = tempfile::tempdir().unwrap();
    let (w1, file) = w1_store(dir.path());
    // A JSON lines import without --chain-id records none: the state of a
    // store written before chain ids were recorded.
    let old = dir.path().join("old");
    let (_, stderr) = ok(&["import", "jsonl", s(&file), "--store", s(&old)]);
    assert!(stderr.contains("records no chain id"), "{stderr}");
    assert_eq!(chain_id(&old), "none");
    // Served as before: --chain-id names the id (the start-up log warns).
    let served = Served::start(&["--store", s(&old), "--chain-id", "7"]);
    let client = HttpClient::new(&served.url).unwrap();
    let id: String = client.call("eth_chainId", json!([])).await.unwrap();
    assert_eq!(id, "0x7");
    let (ok_exit, _, _, _) =
        tokio::task::spawn_blocking(move || served.signal_and_wait("-TERM")).await.unwrap();
    assert!(ok_exit);
    assert_eq!(chain_id(&old), "none", "serve does not write the id");

    // The next import that knows the chain records it: a node of chain 1
    // with the same blocks (nothing new to write).
    let source = Served::start(&["--store", s(&w1)]);
    ok(&["import", "rpc", "--url", &source.url, "--store", s(&old)]);
    drop(source);
    assert_eq!(chain_id(&old), "1");
    // Never changed afterwards.
    let stderr = fails(&["chain-id", "--store", s(&old), "--set", "2"]);
    assert!(stderr.contains("the store holds chain 1, not chain 2"), "{stderr}");
    assert_eq!(chain_id(&old), "1");

    // Or recorded explicitly.
    let other = dir.path().join("other");
    ok(&["import", "jsonl", s(&file), "--store", s(&other)]);
    assert_eq!(ok(&["chain-id", "--store", s(&other), "--set", "7"]).0.trim(), "7");
    assert_eq!(ok(&["chain-id", "--store", s(&other), "--set", "7"]).0.trim(), "7");
    assert_eq!(chain_id(&other), "7");
    // chain-id opens, never creates.
    let stderr = fails(&["chain-id", "--store", s(&dir.path().join("missing")), "--set", "1"]);
    assert!(stderr.contains("missing"), "{stderr}");
}

fn era1(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/era1").join(name)
}

#[test]
fn era1_archives_record_their_network_and_another_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sepolia = era1("sepolia-00021-b8814b14.era1");
    let mainnet = era1("mainnet-00000-5ec1ffb8.era1");
    let store = dir.path().join("sepolia");
    ok(&["import", "era1", s(&sepolia), "--store", s(&store), "--to", "172100"]);
    assert_eq!(chain_id(&store), "11155111");
    // A mainnet archive into the Sepolia store: refused, naming both.
    let stderr = fails(&["import", "era1", s(&mainnet), "--store", s(&store), "--to", "10"]);
    assert!(stderr.contains("the store holds chain 11155111, not chain 1"), "{stderr}");
    assert!(stderr.contains("the network of"), "{stderr}");
    // A --chain-id that contradicts the file's network.
    let fresh = dir.path().join("fresh");
    let stderr = fails(&[
        "import",
        "era1",
        s(&mainnet),
        "--store",
        s(&fresh),
        "--to",
        "10",
        "--chain-id",
        "5",
    ]);
    assert!(stderr.contains("is a mainnet archive (chain id 1) but --chain-id is 5"), "{stderr}");
    // A renamed file names no network: --chain-id is needed, and block 0
    // must be that chain's genesis.
    let renamed = dir.path().join("epoch0.era1");
    std::fs::copy(&mainnet, &renamed).unwrap();
    let stderr = fails(&["import", "era1", s(&renamed), "--store", s(&fresh), "--to", "10"]);
    assert!(
        stderr.contains("cannot tell the chain of") && stderr.contains("--chain-id"),
        "{stderr}"
    );
    let stderr = fails(&[
        "import",
        "era1",
        s(&renamed),
        "--store",
        s(&fresh),
        "--to",
        "10",
        "--chain-id",
        "11155111",
    ]);
    assert!(
        stderr.contains("block 0: hash mismatch")
            && stderr.contains("the genesis of chain 11155111"),
        "{stderr}"
    );
    let mainnet_store = dir.path().join("mainnet");
    ok(&[
        "import",
        "era1",
        s(&renamed),
        "--store",
        s(&mainnet_store),
        "--to",
        "10",
        "--chain-id",
        "1",
    ]);
    assert_eq!(chain_id(&mainnet_store), "1");
}
