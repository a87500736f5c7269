//! Helpers for tests that run the `coldchain` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod clauses;

use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// Runs the `coldchain` binary with `args` to completion.
pub fn coldchain(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coldchain")).args(args).output().unwrap()
}

/// Runs `coldchain args`, asserts success, returns its stderr.
pub fn ok(args: &[&str]) -> String {
    let out = coldchain(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    stderr
}

/// Runs `coldchain args`, asserts failure whose error says each clause
/// once, returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = coldchain(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
    clauses::assert_errors_say_each_clause_once(&stderr);
    stderr
}

/// A path as an argument.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// A running `coldchain serve`.
pub struct Served {
    pub child: Child,
    pub url: String,
    pub addr: String,
    pub stderr: mpsc::Receiver<String>,
    pub stdout: String,
}

impl Served {
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_coldchain"))
            .arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the server logs where it serves within 60 s");
            if let Some(i) = line.find("serving JSON-RPC on http://") {
                let rest = &line[i + "serving JSON-RPC on http://".len()..];
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        Self { child, url: format!("http://{addr}"), addr, stderr: rx, stdout: String::new() }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Sends a signal and waits for the exit; returns (success, time taken,
    /// stderr lines since start-up, stdout).
    pub fn signal_and_wait(mut self, signal: &str) -> (bool, Duration, Vec<String>, String) {
        let started = Instant::now();
        let status = Command::new("kill").args([signal, &self.pid()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not exit within 20 s of {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // All of stderr: the reader thread ends at EOF.
        let mut lines = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(5)) {
            lines.push(line);
        }
        lines.push(format!("exit status: {exit:?}"));
        if let Some(mut out) = self.child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut out, &mut self.stdout);
        }
        (exit.success(), started.elapsed(), lines, std::mem::take(&mut self.stdout))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal WebSocket JSON-RPC client.
pub struct Ws {
    sender: soketto::connection::Sender<Compat<TcpStream>>,
    receiver: soketto::connection::Receiver<Compat<TcpStream>>,
    next_id: u64,
}

impl Ws {
    pub async fn connect(addr: &str) -> Self {
        let socket = TcpStream::connect(addr).await.unwrap();
        let mut client = soketto::handshake::Client::new(socket.compat(), addr, "/");
        match client.handshake().await.unwrap() {
            soketto::handshake::ServerResponse::Accepted { .. } => {}
            other => panic!("WebSocket upgrade refused: {other:?}"),
        }
        let (sender, receiver) = client.into_builder().finish();
        Self { sender, receiver, next_id: 1 }
    }

    /// Sends a call; returns its id.
    pub async fn request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.sender.send_text(body.to_string()).await.unwrap();
        self.sender.flush().await.unwrap();
        id
    }

    /// The next message, or `None` if none comes within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let mut data = Vec::new();
        match tokio::time::timeout(wait, self.receiver.receive_data(&mut data)).await {
            Ok(Ok(_)) => Some(serde_json::from_slice(&data).unwrap()),
            Ok(Err(e)) => panic!("WebSocket error: {e}"),
            Err(_) => None,
        }
    }

    /// Subscribes and returns the subscription id.
    pub async fn subscribe(&mut self, params: Value) -> String {
        let id = self.request("eth_subscribe", params).await;
        loop {
            let msg = self.recv_within(Duration::from_secs(10)).await.expect("an answer");
            if msg["id"] == id {
                return msg["result"].as_str().unwrap_or_else(|| panic!("{msg}")).to_owned();
            }
        }
    }
}
