//! A small JSON-RPC client over plain HTTP/1.1 (`http://` only, one
//! keep-alive connection), for importing from a local node and for tests. It
//! needs no HTTP or TLS library; use a full client for remote `https://`
//! endpoints.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    sync::Mutex,
};

/// What can go wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host[:port][/path]`.
    #[error("unsupported URL {0:?}: expected http://host[:port][/path]")]
    Url(String),
    /// Connecting, sending or receiving failed.
    #[error("I/O error talking to {url}: {source}")]
    Io {
        /// The endpoint.
        url: String,
        /// The error.
        source: std::io::Error,
    },
    /// The call did not finish in time.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// The endpoint.
        url: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The answer is not HTTP 200 with a JSON-RPC body.
    #[error("bad answer from {url}: {reason}")]
    Protocol {
        /// The endpoint.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("{method} failed: JSON-RPC error {code}: {message}")]
    Rpc {
        /// The method called.
        method: String,
        /// The error code.
        code: i64,
        /// The error message.
        message: String,
        /// The error's `data`, if any.
        data: Option<Value>,
    },
    /// The result could not be decoded into the wanted type.
    #[error("{method}: cannot decode the result: {source}")]
    Decode {
        /// The method called.
        method: String,
        /// The decoding error.
        source: serde_json::Error,
    },
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

type Conn = BufReader<TcpStream>;

/// A JSON-RPC client over HTTP/1.1; see the [module docs](self).
#[derive(Debug)]
pub struct HttpClient {
    url: String,
    authority: String,
    path: String,
    timeout: Duration,
    conn: Mutex<Option<Conn>>,
    next_id: AtomicU64,
}

impl HttpClient {
    /// A client for `http://host[:port][/path]` with a 30 s deadline per call.
    pub fn new(url: &str) -> Result<Self, ClientError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| ClientError::Url(url.to_owned()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(ClientError::Url(url.to_owned()));
        }
        let authority =
            if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
        Ok(Self {
            url: url.to_owned(),
            authority,
            path: path.to_owned(),
            timeout: Duration::from_secs(30),
            conn: Mutex::new(None),
            next_id: AtomicU64::new(1),
        })
    }

    /// Sets the deadline of each call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` and decodes its result.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let answer = self.post_json(&request).await?;
        let result = self.result_of(method, answer)?;
        serde_json::from_value(result)
            .map_err(|source| ClientError::Decode { method: method.to_owned(), source })
    }

    /// Sends several calls in one batch; the results come back in the order
    /// of `calls`, each a result or the JSON-RPC error of that call.
    pub async fn batch(
        &self,
        calls: &[(&str, Value)],
    ) -> Result<Vec<Result<Value, ClientError>>, ClientError> {
        let first = self.next_id.fetch_add(calls.len() as u64, Ordering::Relaxed);
        let request: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (method, params))| {
                json!({"jsonrpc": "2.0", "id": first + i as u64, "method": method, "params": params})
            })
            .collect();
        let answer = self.post_json(&Value::Array(request)).await?;
        let Value::Array(items) = answer else {
            return Err(self.protocol(format!("expected a batch answer, got {answer}")));
        };
        let mut out: Vec<Option<Result<Value, ClientError>>> =
            (0..calls.len()).map(|_| None).collect();
        for item in items {
            let index = item
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| id.checked_sub(first))
                .filter(|i| (*i as usize) < calls.len())
                .ok_or_else(|| self.protocol(format!("batch answer with unknown id: {item}")))?
                as usize;
            out[index] = Some(self.result_of(calls[index].0, item));
        }
        out.into_iter()
            .enumerate()
            .map(|(i, r)| r.ok_or_else(|| self.protocol(format!("no answer to batch call {i}"))))
            .collect()
    }

    fn result_of(&self, method: &str, mut answer: Value) -> Result<Value, ClientError> {
        if let Some(err) = answer.get("error") {
            return Err(ClientError::Rpc {
                method: method.to_owned(),
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err.get("message").and_then(Value::as_str).unwrap_or("").to_owned(),
                data: err.get("data").cloned(),
            });
        }
        match answer.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => Err(self.protocol(format!("no result and no error in {answer}"))),
        }
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol { url: self.url.clone(), reason }
    }

    async fn post_json(&self, body: &Value) -> Result<Value, ClientError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| self.protocol(format!("cannot encode the request: {e}")))?;
        let answer = self.post(&bytes).await?;
        if answer.status != 200 {
            return Err(self.protocol(format!(
                "HTTP {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )));
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| self.protocol(format!("the body is not JSON: {e}")))
    }

    /// POSTs `body` as `application/json` and returns the HTTP answer, on
    /// the kept connection when there is one (retried once on a fresh
    /// connection if the kept one was closed by the server).
    pub async fn post(&self, body: &[u8]) -> Result<HttpAnswer, ClientError> {
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json\r\nContent-Length: {}\r\n\r\n",
            self.path,
            self.authority,
            body.len()
        );
        let mut message = request.into_bytes();
        message.extend_from_slice(body);
        let work = async {
            let mut slot = self.conn.lock().await;
            let reused = slot.is_some();
            let first = match slot.take() {
                Some(conn) => exchange(conn, &message).await,
                None => exchange(self.connect().await?, &message).await,
            };
            let (answer, conn) = match first {
                Ok(ok) => ok,
                Err(_) if reused => exchange(self.connect().await?, &message).await?,
                Err(e) => return Err(e),
            };
            *slot = conn;
            Ok(answer)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r.map_err(|source| match source {
                Exchange::Io(source) => ClientError::Io { url: self.url.clone(), source },
                Exchange::Protocol(reason) => self.protocol(reason),
            }),
            Err(_) => Err(ClientError::Timeout { url: self.url.clone(), timeout: self.timeout }),
        }
    }

    async fn connect(&self) -> Result<Conn, Exchange> {
        let stream = TcpStream::connect(&self.authority).await.map_err(Exchange::Io)?;
        stream.set_nodelay(true).map_err(Exchange::Io)?;
        Ok(BufReader::new(stream))
    }
}

enum Exchange {
    Io(std::io::Error),
    Protocol(String),
}

fn bad(reason: impl Into<String>) -> Exchange {
    Exchange::Protocol(reason.into())
}

/// Writes one request and reads one answer; returns the connection when it
/// may be kept.
async fn exchange(mut conn: Conn, message: &[u8]) -> Result<(HttpAnswer, Option<Conn>), Exchange> {
    conn.get_mut().write_all(message).await.map_err(Exchange::Io)?;
    let mut line = String::new();
    if conn.read_line(&mut line).await.map_err(Exchange::Io)? == 0 {
        return Err(Exchange::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        conn.read_line(&mut line).await.map_err(Exchange::Io)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) =
            trimmed.split_once(':').ok_or_else(|| bad(format!("bad header {trimmed:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let keep = !get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            conn.read_line(&mut line).await.map_err(Exchange::Io)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    line.clear();
                    conn.read_line(&mut line).await.map_err(Exchange::Io)?;
                    if line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            conn.read_exact(&mut body[start..]).await.map_err(Exchange::Io)?;
            let mut crlf = [0u8; 2];
            conn.read_exact(&mut crlf).await.map_err(Exchange::Io)?;
        }
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|_| bad(format!("bad content-length {len:?}")))?;
        body.resize(len, 0);
        conn.read_exact(&mut body).await.map_err(Exchange::Io)?;
    } else {
        conn.read_to_end(&mut body).await.map_err(Exchange::Io)?;
        return Ok((HttpAnswer { status, headers, body }, None));
    }
    Ok((HttpAnswer { status, headers, body }, keep.then_some(conn)))
}
