//! `coldchain serve` and `coldchain import rpc` as processes: start, answer,
//! stop on SIGTERM/SIGINT with exit code 0, and a round trip of a chain from
//! one server into another through JSON-RPC.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use coldchain_client::HttpClient;
use common::Served;
use serde_json::{Value, json};
use std::{process::Command, time::Duration};

#[tokio::test]
async fn sigterm_and_sigint_stop_the_server_with_exit_code_0() {
    for signal in ["-TERM", "-INT"] {
        let served = Served::start(&[
            "--store",
            "mem",
            "--dev",
            "--dev-blocks",
            "5",
            "--dev-txs-per-block",
            "3",
        ]);
        let client = HttpClient::new(&served.url).unwrap();
        let tip: String = client.call("eth_blockNumber", json!([])).await.unwrap();
        assert_eq!(tip, "0xf4244");
        // An open WebSocket connection with a subscription does not hold the
        // shutdown up.
        let socket = tokio::net::TcpStream::connect(&served.addr).await.unwrap();
        let (sender, receiver) = {
            use tokio_util::compat::TokioAsyncReadCompatExt;
            let mut ws = soketto::handshake::Client::new(socket.compat(), &served.addr, "/");
            ws.handshake().await.unwrap();
            ws.into_builder().finish()
        };
        let mut sender = sender;
        sender
            .send_text(r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#)
            .await
            .unwrap();
        sender.flush().await.unwrap();
        let (ok, took, lines, _) =
            tokio::task::spawn_blocking(move || served.signal_and_wait(signal)).await.unwrap();
        drop((sender, receiver));
        assert!(ok, "exit code 0 after {signal}: {lines:?}");
        assert!(took < Duration::from_secs(5), "{signal} took {took:?}");
        assert!(lines.iter().any(|l| l.contains("shutting down")), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("stopped")), "{lines:?}");
    }
}

#[tokio::test]
async fn dev_prints_examples_with_real_values() {
    // On the embedded store, as the README's first command runs it.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("coldchain-data");
    let store = store.to_str().unwrap();
    let served = Served::start(&[
        "--store",
        store,
        "--dev",
        "--dev-blocks",
        "5",
        "--dev-txs-per-block",
        "4",
    ]);
    let url = served.url.clone();
    let health: Value = {
        let answer = raw_get(&served.addr, "/health").await;
        serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap()
    };
    assert_eq!(health["tip"], 1_000_004);
    assert_eq!(health["backend"], "mdbx");
    let (ok, _, _, stdout) =
        tokio::task::spawn_blocking(move || served.signal_and_wait("-TERM")).await.unwrap();
    assert!(ok);
    assert!(stdout.contains(&format!("curl -s {url}")), "{stdout}");
    assert!(stdout.contains("cast block 1000002"), "{stdout}");
    assert!(stdout.contains("eth_getLogs"), "{stdout}");
    assert!(stdout.contains("eth_getTransactionByHash"), "{stdout}");
    // A second start serves the kept chain as it is.
    let again = Served::start(&[
        "--store",
        store,
        "--dev",
        "--dev-blocks",
        "5",
        "--dev-txs-per-block",
        "4",
    ]);
    let answer = raw_get(&again.addr, "/health").await;
    let health: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(health["tip"], 1_000_004);
    let (ok, _, _, _) =
        tokio::task::spawn_blocking(move || again.signal_and_wait("-TERM")).await.unwrap();
    assert!(ok);
}

async fn raw_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// A chain served by one coldchain is imported by another through JSON-RPC
/// (every block converted and verified: hashes, roots, blooms), and both
/// then answer the same requests identically.
#[tokio::test]
async fn import_rpc_round_trip_between_two_servers() {
    let source = Served::start(&[
        "--store",
        "mem",
        "--dev",
        "--dev-blocks",
        "12",
        "--dev-txs-per-block",
        "6",
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_coldchain"))
        .args(["import", "rpc", "--url", &source.url, "--store", "mem", "--batch", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("import done"), "{stderr}");
    assert!(stderr.contains("blocks") && stderr.contains("12"), "{stderr}");
    // Continuing at a gap is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_coldchain"))
        .args(["import", "rpc", "--url", "ftp://nowhere", "--store", "mem"])
        .output()
        .unwrap();
    assert!(!out.status.success());

    let copy = Served::start(&["--store", "mem", "--import-rpc", &source.url, "--batch", "4"]);
    let a = HttpClient::new(&source.url).unwrap();
    let b = HttpClient::new(&copy.url).unwrap();
    let mut requests = vec![
        ("eth_blockNumber", json!([])),
        ("eth_getLogs", json!([{"fromBlock": "earliest", "toBlock": "latest"}])),
        ("eth_getBlockByNumber", json!(["earliest", true])),
    ];
    for n in 1_000_000u64..1_000_012 {
        requests.push(("eth_getBlockByNumber", json!([format!("{n:#x}"), true])));
        requests.push(("eth_getBlockReceipts", json!([format!("{n:#x}")])));
    }
    for (method, params) in requests {
        let x: Value = a.call(method, params.clone()).await.unwrap();
        let y: Value = b.call(method, params.clone()).await.unwrap();
        assert_eq!(x, y, "{method} {params}");
    }
    let (ok, _, _, _) =
        tokio::task::spawn_blocking(move || copy.signal_and_wait("-TERM")).await.unwrap();
    assert!(ok);
    drop(source);
}

#[tokio::test]
async fn bench_rpc_sweeps_a_running_server() {
    let served = Served::start(&[
        "--store",
        "mem",
        "--dev",
        "--dev-blocks",
        "120",
        "--dev-txs-per-block",
        "3",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("sweep.json");
    let out = Command::new(env!("CARGO_BIN_EXE_coldchain"))
        .args(["bench-rpc", "--url", &served.url, "--rates", "20,40", "--step-seconds", "0.5"])
        .args(["--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["blocks"], json!([1_000_000, 1_000_119]));
    let methods = report["methods"].as_array().unwrap();
    let names: Vec<&str> = methods.iter().map(|m| m["method"].as_str().unwrap()).collect();
    assert_eq!(names, ["eth_getLogs", "eth_getBlockReceipts", "eth_getTransactionReceipt"]);
    for m in methods {
        let steps = m["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2, "{m}");
        for (step, rate) in steps.iter().zip([20, 40]) {
            assert_eq!(step["offered"], rate);
            // Every request of the step answered with a result: none shed,
            // failed or errored (a wrong parameter would be an error).
            assert_eq!(step["ok"], step["sent"], "{step}");
            assert!(step["p99_ms"].as_f64().unwrap() > 0.0, "{step}");
        }
    }
    // One line per step and a verdict per method (the knee itself depends
    // on how loaded the machine is).
    assert_eq!(stderr.matches(" offered ").count(), 6, "{stderr}");
    assert_eq!(stderr.matches("eth_getLogs: ").count(), 1, "{stderr}");
    let (ok, _, _, _) =
        tokio::task::spawn_blocking(move || served.signal_and_wait("-TERM")).await.unwrap();
    assert!(ok);
}
