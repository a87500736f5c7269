//! Middleware: per-call deadlines, metrics, geth-style errors, batch limits
//! and the memory charge of each answer (RPC layer); `Host`/`Origin`
//! checks, CORS, the HTTP and WebSocket slot pools, and the `/health` and
//! `/metrics` routes (HTTP layer).

use crate::{
    conn::{ChargeError, ConnCtx, Pools},
    error::{INTERNAL_ERROR, METHOD_NOT_FOUND, error, method_not_found, timeout},
    eth::Api,
    health::{self, Components},
};
use coldchain::ColdBackend;
use futures::{FutureExt, StreamExt, future::BoxFuture};
use jsonrpsee::{
    core::{
        BoxError,
        middleware::{Batch, BatchEntry, Notification, RpcServiceT},
        server::BatchResponseBuilder,
    },
    server::{HttpBody, HttpRequest, HttpResponse, MethodResponse},
    types::{ErrorCode, Id, Request},
};
use metrics_exporter_prometheus::PrometheusHandle;
use std::{
    collections::HashSet,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

/// Calls of one batch that run at once (answers keep the batch's order).
const BATCH_CONCURRENCY: usize = 16;

/// geth's code for a batch whose answers passed the size limit.
pub(crate) const RESPONSE_TOO_LARGE: i32 = -32003;
/// EIP-1474's "limit exceeded": the server sheds the call.
pub(crate) const LIMIT_EXCEEDED: i32 = -32005;

const SLOW_CLIENT: &str = "client does not read its answers";

/// Settings shared by every connection's RPC middleware.
#[derive(Debug, Clone)]
pub(crate) struct RpcMiddlewareConfig {
    pub(crate) timeout: Duration,
    pub(crate) max_response_body: usize,
    pub(crate) max_batch_response: usize,
    pub(crate) methods: Arc<HashSet<&'static str>>,
    pub(crate) pools: Arc<Pools>,
}

/// Charges an answer to its connection's ledger and the server's budget;
/// an answer that does not fit is replaced by a small error.
/// Within a batch the backlog is not checked per answer: the batch is
/// bounded as a whole, and checked before it starts.
fn charge(
    config: &RpcMiddlewareConfig,
    ctx: Option<&Arc<ConnCtx>>,
    id: Id<'static>,
    rp: MethodResponse,
    in_batch: bool,
) -> MethodResponse {
    let Some(ctx) = ctx else { return rp };
    let size = rp.as_json().get().len();
    match ctx.charge(&config.pools, size, !in_batch) {
        Ok(()) => rp,
        Err(why) => {
            let message = match why {
                ChargeError::Budget => "server is busy: memory budget exhausted, try again later",
                ChargeError::SlowClient => SLOW_CLIENT,
            };
            MethodResponse::error(id, error(LIMIT_EXCEEDED, message))
        }
    }
}

/// The RPC middleware: deadline, metrics, error wording.
#[derive(Debug, Clone)]
pub(crate) struct RpcMiddleware<S> {
    pub(crate) inner: S,
    pub(crate) config: RpcMiddlewareConfig,
}

impl<S> RpcMiddleware<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    /// A call, within its connection's turns, charged for its answer.
    async fn charged_call(self, req: Request<'_>, in_batch: bool) -> MethodResponse {
        let ctx = req.extensions().get::<Arc<ConnCtx>>().cloned();
        let id = req.id().into_owned();
        // One connection runs a bounded number of calls at once, and none
        // once it is being closed for not reading.
        let _turn = match &ctx {
            Some(ctx) => ctx.calls.acquire().await.ok(),
            None => None,
        };
        if ctx.as_ref().is_some_and(|c| c.is_killed()) {
            return MethodResponse::error(id, error(LIMIT_EXCEEDED, SLOW_CLIENT));
        }
        let config = self.config.clone();
        let rp = self.call_inner(req).await;
        charge(&config, ctx.as_ref(), id, rp, in_batch)
    }

    async fn call_inner(self, req: Request<'_>) -> MethodResponse {
        let id = req.id().into_owned();
        let Some(&label) = self.config.methods.get(req.method_name()) else {
            metrics::counter!("coldchain_rpc_requests_total", "method" => "unknown", "status" => "error")
                .increment(1);
            return MethodResponse::error(id, method_not_found(req.method_name()));
        };
        let started = Instant::now();
        let call = tokio::time::timeout(self.config.timeout, self.inner.call(req));
        let mut rp = match crate::panics::catch(call).await {
            Ok(Ok(rp)) => rp,
            Ok(Err(_)) => {
                tracing::warn!(method = label, "call timed out");
                MethodResponse::error(id.clone(), timeout())
            }
            Err(panic) => {
                tracing::error!(
                    method = label,
                    message = %panic.message,
                    location = panic.location.as_deref().unwrap_or("unknown"),
                    "call panicked; answered -32603"
                );
                MethodResponse::error(id.clone(), error(INTERNAL_ERROR, "internal error (panic)"))
            }
        };
        // Over HTTP, jsonrpsee answers a subscription with a bare internal
        // error; geth says what is wrong.
        if label == "eth_subscribe" && rp.as_error_code() == Some(ErrorCode::InternalError.code()) {
            rp = MethodResponse::error(id, error(METHOD_NOT_FOUND, "notifications not supported"));
        }
        let status = if rp.is_error() { "error" } else { "ok" };
        metrics::counter!("coldchain_rpc_requests_total", "method" => label, "status" => status)
            .increment(1);
        metrics::histogram!("coldchain_rpc_request_duration_seconds", "method" => label)
            .record(started.elapsed().as_secs_f64());
        rp
    }
}

impl<S> RpcServiceT for RpcMiddleware<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.clone().charged_call(req, false)
    }

    /// Answers a batch's calls (16 at a time, in order) until its answers
    /// pass [`crate::Limits::max_batch_response`] or its deadline
    /// ([`crate::Limits::request_timeout`]) passes; the calls not answered
    /// by then get `-32003 "response too large"` or `-32002 "request timed
    /// out"`, as geth answers.
    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let this = self.clone();
        let mut batch = batch;
        async move {
            if let Some(ctx) = batch.extensions().get::<Arc<ConnCtx>>()
                && ctx.over_backlog()
            {
                return MethodResponse::error(Id::Null, error(LIMIT_EXCEEDED, SLOW_CLIENT));
            }
            let deadline = tokio::time::Instant::now() + this.config.timeout;
            let mut got_notification = false;
            let mut ids: Vec<Id<'static>> = Vec::new();
            let mut futures = Vec::new();
            for entry in batch {
                match entry {
                    Ok(BatchEntry::Call(req)) => {
                        ids.push(req.id().into_owned());
                        futures.push(this.clone().charged_call(req, true).boxed());
                    }
                    Ok(BatchEntry::Notification(n)) => {
                        got_notification = true;
                        this.inner.notification(n).await;
                    }
                    Err(err) => {
                        let (err, id) = err.into_parts();
                        ids.push(id.clone().into_owned());
                        futures
                            .push(futures::future::ready(MethodResponse::error(id, err)).boxed());
                    }
                }
            }
            let mut builder = BatchResponseBuilder::new_with_limit(this.config.max_response_body);
            let mut answered = 0;
            let mut bytes = 0usize;
            let mut stopped = None;
            {
                let mut stream = futures::stream::iter(futures).buffered(BATCH_CONCURRENCY);
                while answered < ids.len() {
                    let rp = match tokio::time::timeout_at(deadline, stream.next()).await {
                        Ok(Some(rp)) => rp,
                        Ok(None) => break,
                        Err(_) => {
                            tracing::warn!(answered, calls = ids.len(), "batch timed out");
                            stopped = Some(timeout());
                            break;
                        }
                    };
                    bytes += rp.as_json().get().len();
                    answered += 1;
                    if let Err(too_big) = builder.append(rp) {
                        return too_big;
                    }
                    if bytes > this.config.max_batch_response && answered < ids.len() {
                        tracing::info!(
                            answered,
                            calls = ids.len(),
                            bytes,
                            "batch response too large"
                        );
                        stopped = Some(error(RESPONSE_TOO_LARGE, "response too large"));
                        break;
                    }
                }
            }
            if let Some(err) = stopped {
                for id in ids.drain(answered..) {
                    if let Err(too_big) = builder.append(MethodResponse::error(id, err.clone())) {
                        return too_big;
                    }
                }
            }
            if builder.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(builder.finish())
            }
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.inner.notification(n)
    }
}

/// Settings of the HTTP layer.
pub(crate) struct HttpSettings {
    pub(crate) vhosts: Vec<String>,
    pub(crate) ws_origins: Vec<String>,
    pub(crate) cors_domains: Vec<String>,
}

/// Checks `Host` and `Origin`, answers CORS, takes a slot from the HTTP or
/// WebSocket pool, and serves `/health*` and `/metrics` before the JSON-RPC
/// service.
pub(crate) struct HttpExtrasLayer<B> {
    pub(crate) api: Arc<Api<B>>,
    pub(crate) prometheus: Option<PrometheusHandle>,
    pub(crate) pools: Arc<Pools>,
    pub(crate) components: Components,
    pub(crate) settings: Arc<HttpSettings>,
}

impl<B> Clone for HttpExtrasLayer<B> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            prometheus: self.prometheus.clone(),
            pools: self.pools.clone(),
            components: self.components.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<S, B> tower::Layer<S> for HttpExtrasLayer<B> {
    type Service = HttpExtras<S, B>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpExtras { inner, extras: self.clone() }
    }
}

/// The service of [`HttpExtrasLayer`].
pub(crate) struct HttpExtras<S, B> {
    inner: S,
    extras: HttpExtrasLayer<B>,
}

impl<S: Clone, B> Clone for HttpExtras<S, B> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), extras: self.extras.clone() }
    }
}

/// The host part of a `Host` header or an origin (`scheme://host:port`),
/// lower-cased, without port or IPv6 brackets.
fn host_of(value: &str) -> String {
    let rest = value.split_once("://").map_or(value, |(_, rest)| rest);
    let rest = rest.split('/').next().unwrap_or(rest);
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        rest.rsplit_once(':').map_or(rest, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) { h } else { rest }
        })
    };
    host.to_ascii_lowercase()
}

/// geth's `--http.vhosts` rule: `*` allows any `Host`, an IP address is
/// always allowed, otherwise the host name must be listed.
pub(crate) fn vhost_allowed(allowed: &[String], host: Option<&str>) -> bool {
    if allowed.iter().any(|a| a == "*") {
        return true;
    }
    // HTTP/1.0 without Host: as geth, serve it.
    let Some(host) = host else { return true };
    let name = host_of(host);
    name.parse::<std::net::IpAddr>().is_ok()
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(&name))
}

/// Whether an `Origin` is allowed by a list of origins (`*`, a full origin,
/// or a host name; `localhost` also allows `127.0.0.1` and `::1`).
pub(crate) fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    let host = host_of(&origin);
    allowed.iter().any(|a| {
        let a = a.trim_end_matches('/').to_ascii_lowercase();
        if a == "*" || a == origin {
            return true;
        }
        if a.contains("://") {
            return false;
        }
        a == host || (a == "localhost" && matches!(host.as_str(), "127.0.0.1" | "::1"))
    })
}

impl<S, B> tower::Service<HttpRequest> for HttpExtras<S, B>
where
    S: tower::Service<HttpRequest, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
    B: ColdBackend,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<HttpResponse, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: HttpRequest) -> Self::Future {
        let settings = &self.extras.settings;
        let ready = |rp: HttpResponse| futures::future::ready(Ok(rp)).boxed();
        let header = |name: http::header::HeaderName| {
            req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let host =
            header(http::header::HOST).or_else(|| req.uri().authority().map(|a| a.to_string()));
        let origin = header(http::header::ORIGIN);
        let is_upgrade = jsonrpsee::server::ws::is_upgrade_request(&req);
        // As geth: Host is checked for HTTP; a WebSocket by its Origin.
        if !is_upgrade && !vhost_allowed(&settings.vhosts, host.as_deref()) {
            metrics::counter!("coldchain_rpc_refused_total", "reason" => "vhost").increment(1);
            return ready(response(
                http::StatusCode::FORBIDDEN,
                "text/plain",
                "invalid host specified\n".to_owned(),
            ));
        }
        if is_upgrade {
            if let Some(origin) = &origin
                && !origin_allowed(&settings.ws_origins, origin)
            {
                metrics::counter!("coldchain_rpc_refused_total", "reason" => "origin").increment(1);
                return ready(response(
                    http::StatusCode::FORBIDDEN,
                    "text/plain",
                    format!("origin {origin} not allowed\n"),
                ));
            }
            let Ok(slot) = self.extras.pools.ws.clone().try_acquire_owned() else {
                metrics::counter!("coldchain_rpc_refused_total", "reason" => "ws_slots")
                    .increment(1);
                return ready(too_many("every WebSocket slot is taken"));
            };
            // The slot lives as long as the connection's socket.
            if let Some(ctx) = req.extensions().get::<Arc<ConnCtx>>() {
                *ctx.ws_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(slot);
            }
            return self.inner.call(req).map(|r| r.map_err(Into::into)).boxed();
        }
        // CORS for browsers calling over HTTP, when enabled.
        let cors = origin.filter(|o| {
            !settings.cors_domains.is_empty() && origin_allowed(&settings.cors_domains, o)
        });
        if req.method() == http::Method::OPTIONS {
            let mut rp = response(http::StatusCode::NO_CONTENT, "text/plain", String::new());
            if let Some(origin) = &cors {
                add_cors(&mut rp, origin);
                let headers = rp.headers_mut();
                headers.insert(
                    http::header::ACCESS_CONTROL_ALLOW_METHODS,
                    http::HeaderValue::from_static("POST, GET, OPTIONS"),
                );
                headers.insert(
                    http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                    http::HeaderValue::from_static("content-type"),
                );
                headers.insert(
                    http::header::ACCESS_CONTROL_MAX_AGE,
                    http::HeaderValue::from_static("600"),
                );
            }
            return ready(rp);
        }
        let is_get = req.method() == http::Method::GET;
        let fut = match (is_get, req.uri().path()) {
            (true, "/health" | "/health/ready") => {
                let api = self.extras.api.clone();
                let pools = self.extras.pools.clone();
                let components = self.extras.components.clone();
                async move {
                    let (ok, body) = health::check(&api, &pools, &components).await;
                    let status = if ok {
                        http::StatusCode::OK
                    } else {
                        http::StatusCode::SERVICE_UNAVAILABLE
                    };
                    Ok(response(status, "application/json", body.to_string()))
                }
                .boxed()
            }
            (true, "/health/live") => {
                let api = &self.extras.api;
                let stopping = api.shutdown.is_cancelled() || api.handle.is_shut_down();
                let (status, word) = if stopping {
                    (http::StatusCode::SERVICE_UNAVAILABLE, "shutting down")
                } else {
                    (http::StatusCode::OK, "ok")
                };
                ready(response(
                    status,
                    "application/json",
                    serde_json::json!({ "status": word }).to_string(),
                ))
            }
            (true, "/metrics") => {
                let body = match &self.extras.prometheus {
                    Some(handle) => handle.render(),
                    None => String::new(),
                };
                ready(response(http::StatusCode::OK, "text/plain; version=0.0.4", body))
            }
            _ => {
                // The slot is held while the body is read and the call runs.
                let Ok(slot) = self.extras.pools.http.clone().try_acquire_owned() else {
                    metrics::counter!("coldchain_rpc_refused_total", "reason" => "http_slots")
                        .increment(1);
                    return ready(too_many("every HTTP request slot is taken"));
                };
                let fut = self.inner.call(req);
                async move {
                    let rp = fut.await.map_err(Into::into);
                    drop(slot);
                    rp
                }
                .boxed()
            }
        };
        match cors {
            Some(origin) => fut
                .map(move |rp| {
                    rp.map(|mut rp| {
                        add_cors(&mut rp, &origin);
                        rp
                    })
                })
                .boxed(),
            None => fut,
        }
    }
}

fn add_cors(rp: &mut HttpResponse, origin: &str) {
    if let Ok(value) = http::HeaderValue::from_str(origin) {
        let headers = rp.headers_mut();
        headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(http::header::VARY, http::HeaderValue::from_static("origin"));
    }
}

fn too_many(why: &str) -> HttpResponse {
    response(http::StatusCode::TOO_MANY_REQUESTS, "text/plain", format!("{why}\n"))
}

fn response(status: http::StatusCode, content_type: &'static str, body: String) -> HttpResponse {
    let mut rp = HttpResponse::new(HttpBody::from(body));
    *rp.status_mut() = status;
    rp.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    rp
}
