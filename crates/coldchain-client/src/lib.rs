//! JSON-RPC over HTTP(S): how `coldchain import rpc` and `serve
//! --import-rpc` talk to a node or a hosted provider.
//!
//! [`HttpClient`] is [reqwest] (hyper underneath) with rustls:
//!
//! - `https://` with the system's roots (`rustls-platform-verifier`, which
//!   reads `SSL_CERT_FILE` and `SSL_CERT_DIR` as OpenSSL does), HTTP/2 by
//!   ALPN, gzip, brotli and zstd answers;
//! - one pool of keep-alive connections shared by every call;
//! - extra headers on every request ([`ClientConfig::headers`], e.g. an
//!   `Authorization` key; marked sensitive so they are never logged);
//! - a deadline per call, connecting included ([`ClientConfig::timeout`]);
//! - at most [`ClientConfig::concurrency`] requests in flight and at most
//!   [`ClientConfig::rps`] started per second;
//! - an answer is read as a stream and refused as soon as it passes
//!   [`ClientConfig::max_response_bytes`] (a declared `Content-Length` above
//!   it is refused before any byte of the body is read), so a hostile or
//!   broken peer cannot make the importer allocate more than the limit;
//! - a `429` or `503` with `Retry-After` holds back every request of the
//!   client until then (the provider limits the key, not one request), and
//!   the status and the delay are typed fields of [`ClientError::Http`] so
//!   the caller's retry policy never parses error text.
//!
//! Retrying is the caller's policy (`coldchain import rpc` retries
//! transient failures with backoff and jitter, at least `Retry-After`).
//!
//! **Why reqwest.** It is the maintained client most Rust programs use,
//! with TLS, HTTP/2, compression, pooling and streamed bodies in one
//! crate. The other candidates: alloy's HTTP transport is reqwest with a
//! provider stack this crate does not need, and hides the status code
//! behind its own error type; jsonrpsee's HTTP client reads a whole body
//! before its size check applies per request, has no `Retry-After` and
//! pulls a second TLS setup. Measured against a local node (`coldchain
//! serve --dev --dev-blocks 1500` on 127.0.0.1, W1 blocks of 150
//! transactions, `import rpc --store mem` with the default batch and
//! concurrency, debug builds on the shared 2-core machine, runs alternated):
//! the hand-written HTTP/1.1 client took 142 s and 120 s, this one 138 s and
//! 112 s: the same rate within noise, the import being bound by decoding and
//! verification, not transport. rustls uses `ring` (no cmake or NASM
//! needed, unlike aws-lc-rs).

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime},
};
use tokio::{sync::Semaphore, time::Instant};

/// The longest hold a `Retry-After` can put on the client.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// What can go wrong with a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not `http://` or `https://` with a host.
    #[error("unsupported URL {url:?}: {reason}; expected http(s)://host[:port][/path]")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration cannot make a client (a bad header, no TLS roots).
    #[error("cannot set up the HTTP client: {0}")]
    Config(String),
    /// No connection could be made (refused, DNS, TLS handshake).
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The endpoint.
        url: String,
        /// The cause, innermost last.
        reason: String,
    },
    /// The exchange broke after connecting: a reset, a body cut short, a
    /// malformed HTTP answer.
    #[error("{url}: {reason}")]
    Transport {
        /// The endpoint.
        url: String,
        /// The cause, innermost last.
        reason: String,
    },
    /// The call did not finish in time.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// The endpoint.
        url: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The answer's status is not 200.
    #[error("{url} answered HTTP {status}{}{}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default(), if body.is_empty() { String::new() } else { format!(": {body}") })]
    Http {
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
        /// The start of the body (at most 200 characters).
        body: String,
    },
    /// The answer is larger than the limit.
    #[error(
        "the answer from {url} is larger than the response limit of {limit} bytes{}",
        declared.map(|d| format!(" (Content-Length {d})")).unwrap_or_default()
    )]
    TooLarge {
        /// The endpoint.
        url: String,
        /// The limit.
        limit: u64,
        /// The declared length, when the server declared one.
        declared: Option<u64>,
    },
    /// The body is not a JSON-RPC answer.
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

impl ClientError {
    /// The HTTP status of a non-200 answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body (decompressed).
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// How a client talks to its endpoint; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The deadline of one call: connecting, sending, and reading the
    /// whole answer.
    pub timeout: Duration,
    /// The deadline of connecting (TCP and TLS).
    pub connect_timeout: Duration,
    /// Headers sent with every request (`Authorization`, an API key).
    pub headers: Vec<(String, String)>,
    /// The largest answer accepted, in bytes (after decompression).
    pub max_response_bytes: u64,
    /// Requests started per second at most (`None`: no limit).
    pub rps: Option<f64>,
    /// Requests in flight at most.
    pub concurrency: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            headers: Vec::new(),
            max_response_bytes: 64 << 20,
            rps: None,
            concurrency: 16,
        }
    }
}

/// Parses `Name: value` (as curl's `-H`) into a header pair.
pub fn parse_header(line: &str) -> Result<(String, String), String> {
    let (name, value) =
        line.split_once(':').ok_or_else(|| format!("header {line:?} is not 'Name: value'"))?;
    let (name, value) = (name.trim(), value.trim());
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("header {line:?}: {name:?} is not a header name"))?;
    HeaderValue::from_str(value)
        .map_err(|_| format!("header {line:?}: the value has characters a header cannot hold"))?;
    Ok((name.to_owned(), value.to_owned()))
}

/// When the next request may start: the `--rps` pacing and any
/// `Retry-After` hold, shared by every request of a client.
#[derive(Debug)]
struct Gate {
    /// The gap between two request starts (zero: no pacing).
    interval: Duration,
    /// The earliest start of the next request.
    next: std::sync::Mutex<Instant>,
}

impl Gate {
    /// Waits for this request's slot.
    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Starts no request before `delay` from now.
    fn hold(&self, delay: Duration) {
        let until = Instant::now() + delay.min(MAX_RETRY_AFTER);
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        *next = (*next).max(until);
    }
}

/// A JSON-RPC client over HTTP(S); see the [module docs](self). Cheap to
/// share behind an `Arc`; every call uses the same connection pool,
/// limits and gate.
#[derive(Debug)]
pub struct HttpClient {
    url: reqwest::Url,
    http: reqwest::Client,
    timeout: Duration,
    limit: u64,
    permits: Semaphore,
    gate: Gate,
    next_id: AtomicU64,
}

impl HttpClient {
    /// A client for `url` with the [default](ClientConfig::default) settings.
    pub fn new(url: &str) -> Result<Self, ClientError> {
        Self::with_config(url, &ClientConfig::default())
    }

    /// A client for `url` (`http://` or `https://`).
    pub fn with_config(url: &str, config: &ClientConfig) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::Url { url: url.to_owned(), reason: reason.into() };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("the scheme is not http or https"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ClientError::Config(format!("header {name:?}: {e}")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|e| ClientError::Config(format!("header {name}: {e}")))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        // The process-wide rustls provider: ring (rustls marks it
        // deprecated for lacking post-quantum key exchange; aws-lc-rs, which
        // has it, needs cmake and a much longer build). An error means one
        // is installed already, which is as good.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("coldchain/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .pool_max_idle_per_host(config.concurrency.max(1))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ClientError::Config(cause(&e)))?;
        let interval = match config.rps {
            Some(rps) if rps > 0.0 && rps.is_finite() => Duration::from_secs_f64(1.0 / rps),
            Some(rps) => {
                return Err(ClientError::Config(format!(
                    "the request rate must be a positive number, got {rps}"
                )));
            }
            None => Duration::ZERO,
        };
        Ok(Self {
            url: parsed,
            http,
            timeout: config.timeout,
            limit: config.max_response_bytes,
            permits: Semaphore::new(config.concurrency.max(1)),
            gate: Gate { interval, next: std::sync::Mutex::new(Instant::now()) },
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
        self.url.as_str()
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
            return Err(self.protocol(format!("expected a batch answer, got {}", snippet(&answer))));
        };
        let mut out: Vec<Option<Result<Value, ClientError>>> =
            (0..calls.len()).map(|_| None).collect();
        for item in items {
            let index = item
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| id.checked_sub(first))
                .filter(|i| (*i as usize) < calls.len())
                .ok_or_else(|| {
                    self.protocol(format!("batch answer with unknown id: {}", snippet(&item)))
                })? as usize;
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
            None => Err(self.protocol(format!("no result and no error in {}", snippet(&answer)))),
        }
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol { url: self.url.to_string(), reason }
    }

    async fn post_json(&self, body: &Value) -> Result<Value, ClientError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| self.protocol(format!("cannot encode the request: {e}")))?;
        let answer = self.post(&bytes).await?;
        if answer.status != 200 {
            let text = String::from_utf8_lossy(&answer.body);
            return Err(ClientError::Http {
                url: self.url.to_string(),
                status: answer.status,
                retry_after: answer.header("retry-after").and_then(parse_retry_after),
                body: text.trim().chars().take(200).collect(),
            });
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| self.protocol(format!("the body is not JSON: {e}")))
    }

    /// POSTs `body` as `application/json` and returns the HTTP answer,
    /// whatever its status; see the [module docs](self) for the limits.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the request; the connection is not reused.
    pub async fn post(&self, body: &[u8]) -> Result<HttpAnswer, ClientError> {
        // The semaphore is never closed.
        let _permit = self.permits.acquire().await.ok();
        let work = async {
            self.gate.wait().await;
            self.exchange(body.to_vec()).await
        };
        let answer = match tokio::time::timeout(self.timeout, work).await {
            Ok(answer) => answer?,
            Err(_) => return Err(self.timed_out()),
        };
        if answer.status != 200 {
            metrics::counter!("coldchain_client_http_errors_total", "status" => answer.status.to_string())
                .increment(1);
            if matches!(answer.status, 429 | 503)
                && let Some(delay) = answer.header("retry-after").and_then(parse_retry_after)
            {
                self.gate.hold(delay);
            }
        }
        Ok(answer)
    }

    fn timed_out(&self) -> ClientError {
        ClientError::Timeout { url: self.url.to_string(), timeout: self.timeout }
    }

    /// One request and its whole answer, the body streamed under the limit.
    async fn exchange(&self, body: Vec<u8>) -> Result<HttpAnswer, ClientError> {
        let mut response = self
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.failed(&e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())
            })
            .collect();
        let declared = response.content_length();
        if declared.is_some_and(|len| len > self.limit) {
            return Err(self.too_large(declared));
        }
        // Reserve what was declared (at most 1 MiB up front: the peer may lie).
        let mut out = Vec::with_capacity(declared.unwrap_or(0).min(1 << 20) as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| self.failed(&e))? {
            if (out.len() + chunk.len()) as u64 > self.limit {
                return Err(self.too_large(declared));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(HttpAnswer { status, headers, body: out })
    }

    fn too_large(&self, declared: Option<u64>) -> ClientError {
        ClientError::TooLarge { url: self.url.to_string(), limit: self.limit, declared }
    }

    fn failed(&self, e: &reqwest::Error) -> ClientError {
        let url = self.url.to_string();
        if e.is_timeout() {
            self.timed_out()
        } else if e.is_connect() {
            ClientError::Connect { url, reason: cause(e) }
        } else if e.is_body() || e.is_decode() {
            ClientError::Transport { url, reason: format!("the answer broke off: {}", cause(e)) }
        } else {
            ClientError::Transport { url, reason: cause(e) }
        }
    }
}

/// The innermost cause of a transport error: the outer layers of reqwest
/// and hyper only say which layer it passed ("error sending request",
/// "client error (Connect)"), the innermost says what happened ("invalid
/// peer certificate: UnknownIssuer", "connection reset by peer").
fn cause(e: &reqwest::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

/// The start of a JSON value for an error message.
fn snippet(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 200 {
        return text;
    }
    let mut end = 200;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A `Retry-After` value: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn headers_are_name_colon_value() {
        assert_eq!(
            parse_header("Authorization: Bearer abc").unwrap(),
            ("Authorization".to_owned(), "Bearer abc".to_owned())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    #[test]
    fn only_http_urls() {
        assert!(matches!(HttpClient::new("ftp://x"), Err(ClientError::Url { .. })));
        assert!(matches!(HttpClient::new("localhost:8545"), Err(ClientError::Url { .. })));
        assert!(HttpClient::new("https://example.invalid/v1/key").is_ok());
    }
}
