//! A fault-injecting server: each broken or hostile answer gives a clear,
//! typed error, no panic, and memory bounded by the response limit (the
//! process's peak RSS stays far below what the peer announced).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use coldchain_client::{ClientConfig, ClientError, HttpClient};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What the server answers.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// A body shorter than its `Content-Length`, then the connection closes.
    Truncated,
    /// A `Content-Length` of a terabyte (nothing follows).
    HugeLength,
    /// A `Content-Length` that is not a number a u64 holds.
    OverflowLength,
    /// A chunked body whose chunk size is not hex.
    BadChunk,
    /// A chunk that announces 2^60 bytes and streams until the client stops.
    EndlessChunk,
    /// The connection closes as soon as the request is read.
    Reset,
    /// One byte of the body every 200 ms.
    Slow,
    /// HTTP 429 with `Retry-After: 1`.
    TooMany,
    /// Header lines that never end.
    EndlessHeaders,
    /// A good answer.
    Good,
}

/// Serves `fault` to every connection; returns the URL.
async fn server(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(answer(sock, fault));
        }
    });
    url
}

/// Reads one request (headers and a `Content-Length` body).
async fn read_request(sock: &mut TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if sock.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    sock.read_exact(&mut body).await.ok()?;
    serde_json::from_slice(&body).ok()
}

async fn answer(mut sock: TcpStream, fault: Fault) {
    while let Some(request) = read_request(&mut sock).await {
        let good = json!({"jsonrpc": "2.0", "id": request["id"], "result": "0x10"}).to_string();
        let ok = |extra: &str, body: &str| {
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}\r\n{body}")
        };
        let reply = match fault {
            Fault::Good => ok(&format!("Content-Length: {}\r\n", good.len()), &good),
            Fault::Truncated => {
                let _ =
                    sock.write_all(ok("Content-Length: 1000\r\n", &good[..10]).as_bytes()).await;
                return;
            }
            Fault::HugeLength => ok("Content-Length: 1000000000000\r\n", ""),
            Fault::OverflowLength => ok("Content-Length: 99999999999999999999999999\r\n", ""),
            Fault::BadChunk => ok("Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n"),
            Fault::EndlessChunk => {
                let head = ok("Transfer-Encoding: chunked\r\n", "1000000000000000\r\n");
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                // At most 1 GiB, until the client hangs up.
                let block = vec![b'x'; 1 << 20];
                for _ in 0..1024 {
                    if sock.write_all(&block).await.is_err() {
                        return;
                    }
                }
                return;
            }
            Fault::Reset => return,
            Fault::Slow => {
                let head = ok(&format!("Content-Length: {}\r\n", good.len()), "");
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for b in good.bytes() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if sock.write_all(&[b]).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            Fault::TooMany => {
                let body = "rate limited";
                format!(
                    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
            Fault::EndlessHeaders => {
                if sock.write_all(b"HTTP/1.1 200 OK\r\n").await.is_err() {
                    return;
                }
                for i in 0..1_000_000u64 {
                    let line = format!("X-Filler-{i}: {}\r\n", "y".repeat(100));
                    if sock.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                }
                return;
            }
        };
        if sock.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn config() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(2),
        max_response_bytes: 1 << 20,
        ..ClientConfig::default()
    }
}

async fn call(url: &str) -> Result<Value, ClientError> {
    HttpClient::with_config(url, &config()).unwrap().call("eth_blockNumber", json!([])).await
}

/// The peak resident memory of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_a_clear_error_with_memory_bounded() {
    assert_eq!(call(&server(Fault::Good).await).await.unwrap(), json!("0x10"));
    let cases: [(Fault, &str); 8] = [
        (Fault::Truncated, "the answer broke off: end of file before message length reached"),
        (
            Fault::HugeLength,
            "larger than the response limit of 1048576 bytes (Content-Length 1000000000000)",
        ),
        (Fault::OverflowLength, "invalid"),
        (Fault::BadChunk, "chunk"),
        (Fault::EndlessChunk, "larger than the response limit of 1048576 bytes"),
        (Fault::Reset, "closed"),
        (Fault::Slow, "did not answer within 2s"),
        (Fault::EndlessHeaders, "message head is too large"),
    ];
    for (fault, expected) in cases {
        let url = server(fault).await;
        let started = Instant::now();
        let err = call(&url).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains(expected), "{fault:?}: {text}");
        assert!(text.contains(&url), "{fault:?} names the endpoint: {text}");
        assert!(started.elapsed() < Duration::from_secs(10), "{fault:?}: {:?}", started.elapsed());
        match fault {
            Fault::HugeLength | Fault::EndlessChunk => {
                assert!(matches!(err, ClientError::TooLarge { .. }), "{fault:?}: {err:?}")
            }
            Fault::Slow => assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}"),
            _ => assert!(
                matches!(err, ClientError::Transport { .. } | ClientError::Connect { .. }),
                "{fault:?}: {err:?}"
            ),
        }
        // No clause said twice.
        let parts: Vec<&str> = text.split(": ").collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(p), "{fault:?} repeats {p:?}: {text}");
        }
    }
    // A terabyte announced, a gigabyte streamed: the peak stays small.
    let peak = peak_rss();
    assert!(peak < 200 << 20, "peak RSS {} MiB", peak >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_carries_the_status_and_holds_back_the_client() {
    let client = HttpClient::with_config(&server(Fault::TooMany).await, &config()).unwrap();
    let err = client.call::<Value>("eth_blockNumber", json!([])).await.unwrap_err();
    assert_eq!(err.status(), Some(429), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)), "{err}");
    assert!(err.to_string().contains("HTTP 429 (retry after 1s): rate limited"), "{err}");
    // The next request of the client waits for the Retry-After.
    let started = Instant::now();
    let _ = client.call::<Value>("eth_blockNumber", json!([])).await;
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_second_are_paced() {
    let config = ClientConfig { rps: Some(10.0), ..config() };
    let client = HttpClient::with_config(&server(Fault::Good).await, &config).unwrap();
    let started = Instant::now();
    for _ in 0..6 {
        let _: Value = client.call("eth_blockNumber", json!([])).await.unwrap();
    }
    // Six starts 100 ms apart: at least 500 ms.
    assert!(started.elapsed() >= Duration::from_millis(480), "{:?}", started.elapsed());
}
