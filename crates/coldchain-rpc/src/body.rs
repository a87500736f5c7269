//! The HTTP request body, read before jsonrpsee sees it, so that bad bodies
//! get the answers a node gives:
//!
//! - a body above [`crate::Limits::max_request_body`] is HTTP 413, also when
//!   it comes chunked, without a `Content-Length` (jsonrpsee alone answers
//!   that case 500 `-32603`);
//! - a body that is not complete JSON (a truncated `{"jsonrpc": ...`) is
//!   HTTP 400 `-32700`, like every other parse error (jsonrpsee alone
//!   answers a truncated object HTTP 200);
//! - a request whose `id` is an object, an array or a boolean is `-32600
//!   "Invalid request"` with `id: null`, in a batch too (jsonrpsee alone
//!   takes it for a notification and answers nothing). geth answers objects
//!   and arrays the same way; it echoes a boolean id, which JSON-RPC 2.0
//!   does not allow and jsonrpsee cannot represent.
//!
//! Over WebSocket, messages do not pass here: jsonrpsee's own rules apply.

use futures::{FutureExt, future::BoxFuture};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use jsonrpsee::{
    core::BoxError,
    server::{HttpBody, HttpRequest, HttpResponse, http::response},
};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::task::{Context, Poll};

/// Reads JSON-RPC POST bodies up to `max` bytes first; see the module docs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLayer {
    pub(crate) max: u32,
}

impl<S> tower::Layer<S> for BodyLayer {
    type Service = Body<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Body { inner, max: self.max }
    }
}

/// The service of [`BodyLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Body<S> {
    inner: S,
    max: u32,
}

fn is_json_post(req: &HttpRequest) -> bool {
    req.method() == http::Method::POST
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

impl<S> tower::Service<HttpRequest> for Body<S>
where
    S: tower::Service<HttpRequest, Response = HttpResponse> + Clone + Send + 'static,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<HttpResponse, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: HttpRequest) -> Self::Future {
        if !is_json_post(&req) {
            return self.inner.call(req).map(|r| r.map_err(Into::into)).boxed();
        }
        // The service that was made ready serves this call; its clone the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max = self.max;
        async move {
            let (mut parts, body) = req.into_parts();
            let declared = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > u64::from(max)) {
                return Ok(response::too_large(max));
            }
            let bytes = match Limited::new(body, max as usize).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<LengthLimitError>() => return Ok(response::too_large(max)),
                Err(e) => {
                    tracing::debug!(error = %e, "reading a request body failed");
                    return Ok(response::malformed());
                }
            };
            let body = match check(&bytes) {
                Checked::Pass => bytes.to_vec(),
                Checked::Rewritten(body) => body,
                Checked::ParseError => return Ok(response::malformed()),
            };
            parts.headers.remove(http::header::CONTENT_LENGTH);
            parts.headers.remove(http::header::TRANSFER_ENCODING);
            let req = HttpRequest::from_parts(parts, HttpBody::from(body));
            inner.call(req).await.map_err(Into::into)
        }
        .boxed()
    }
}

/// What [`check`] found.
#[derive(Debug, PartialEq, Eq)]
enum Checked {
    /// Send the body on as it is.
    Pass,
    /// Send this body instead (calls with a bad id replaced by
    /// `{"id":null}`, which jsonrpsee answers `-32600` with `id: null`).
    Rewritten(Vec<u8>),
    /// Not JSON: 400 `-32700`.
    ParseError,
}

/// Only the `id` member of a call.
#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

/// Whether a call's `id` is one JSON-RPC does not allow (object, array,
/// boolean). `None` when the call is not an object.
fn bad_id(call: &RawValue) -> bool {
    serde_json::from_str::<IdOnly<'_>>(call.get())
        .ok()
        .and_then(|c| c.id)
        .is_some_and(|id| matches!(id.get().as_bytes().first(), Some(b'{' | b'[' | b't' | b'f')))
}

/// What a call with a bad id is replaced by.
const INVALID: &[u8] = br#"{"id":null}"#;

/// Checks a body: valid JSON, and ids JSON-RPC allows.
fn check(body: &[u8]) -> Checked {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        // jsonrpsee answers anything else 400 `-32700` itself.
        Some(b'{') => match serde_json::from_slice::<&RawValue>(body) {
            Err(_) => Checked::ParseError,
            Ok(call) if bad_id(call) => Checked::Rewritten(INVALID.to_vec()),
            Ok(_) => Checked::Pass,
        },
        Some(b'[') => match serde_json::from_slice::<Vec<&RawValue>>(body) {
            // Valid JSON that is not an array of values (cannot happen after
            // `[`) or invalid JSON.
            Err(_) => Checked::ParseError,
            Ok(calls) if calls.iter().any(|c| bad_id(c)) => {
                let mut out = Vec::with_capacity(body.len());
                out.push(b'[');
                for (i, call) in calls.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let text = if bad_id(call) { INVALID } else { call.get().as_bytes() };
                    out.extend_from_slice(text);
                }
                out.push(b']');
                Checked::Rewritten(out)
            }
            Ok(_) => Checked::Pass,
        },
        _ => Checked::Pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert_eq!(check(br#"{"jsonrpc":"2.0","id":1,"method":"m"}"#), Checked::Pass);
        assert_eq!(check(br#"  {"jsonrpc":"2.0","id":"a","method":"m"}"#), Checked::Pass);
        assert_eq!(check(br#"{"jsonrpc":"2.0","method":"m"}"#), Checked::Pass);
        assert_eq!(check(br#"{"jsonrpc":"2.0","id":null,"method":"m"}"#), Checked::Pass);
        assert_eq!(check(br#"{"jsonrpc":"2.0","id":1,"method":"m""#), Checked::ParseError);
        assert_eq!(check(br#"[{"id":1},"#), Checked::ParseError);
        assert_eq!(check(b"not json"), Checked::Pass);
        for id in ["{}", "[1]", "true", "false", r#"{"a":1}"#] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"m"}}"#);
            assert_eq!(check(body.as_bytes()), Checked::Rewritten(INVALID.to_vec()), "{id}");
        }
        assert_eq!(
            check(br#"[{"id":1,"method":"a"}, {"id":[],"method":"b"}, 5]"#),
            Checked::Rewritten(br#"[{"id":1,"method":"a"},{"id":null},5]"#.to_vec())
        );
        assert_eq!(check(br#"[{"id":1,"method":"a"}]"#), Checked::Pass);
    }
}
