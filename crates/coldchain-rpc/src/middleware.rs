//! Middleware: per-call deadlines, metrics and geth-style errors (RPC
//! layer), and the `/health` and `/metrics` routes (HTTP layer).

use crate::{
    error::{INTERNAL_ERROR, METHOD_NOT_FOUND, error, method_not_found, timeout},
    eth::Api,
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
    types::{ErrorCode, Request},
};
use metrics_exporter_prometheus::PrometheusHandle;
use std::{
    collections::HashSet,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Calls of one batch that run at once (answers keep the batch's order).
const BATCH_CONCURRENCY: usize = 16;

/// Settings shared by every connection's RPC middleware.
#[derive(Debug, Clone)]
pub(crate) struct RpcMiddlewareConfig {
    pub(crate) timeout: Duration,
    pub(crate) max_response_body: usize,
    pub(crate) methods: Arc<HashSet<&'static str>>,
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
        self.clone().call_inner(req)
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let this = self.clone();
        async move {
            let mut got_notification = false;
            let mut futures = Vec::new();
            for entry in batch {
                match entry {
                    Ok(BatchEntry::Call(req)) => futures.push(this.clone().call_inner(req).boxed()),
                    Ok(BatchEntry::Notification(n)) => {
                        got_notification = true;
                        this.inner.notification(n).await;
                    }
                    Err(err) => {
                        let (err, id) = err.into_parts();
                        futures
                            .push(futures::future::ready(MethodResponse::error(id, err)).boxed());
                    }
                }
            }
            let responses: Vec<MethodResponse> =
                futures::stream::iter(futures).buffered(BATCH_CONCURRENCY).collect().await;
            let mut builder = BatchResponseBuilder::new_with_limit(this.config.max_response_body);
            for rp in responses {
                if let Err(too_big) = builder.append(rp) {
                    return too_big;
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

/// Serves `GET /health` and `GET /metrics` before the JSON-RPC service.
pub(crate) struct HttpExtrasLayer<B> {
    pub(crate) api: Arc<Api<B>>,
    pub(crate) prometheus: Option<PrometheusHandle>,
}

impl<B> Clone for HttpExtrasLayer<B> {
    fn clone(&self) -> Self {
        Self { api: self.api.clone(), prometheus: self.prometheus.clone() }
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
        let is_get = req.method() == http::Method::GET;
        match (is_get, req.uri().path()) {
            (true, "/health") => {
                let api = self.extras.api.clone();
                async move { Ok(health(&api).await) }.boxed()
            }
            (true, "/metrics") => {
                let body = match &self.extras.prometheus {
                    Some(handle) => handle.render(),
                    None => String::new(),
                };
                let rp = response(http::StatusCode::OK, "text/plain; version=0.0.4", body);
                futures::future::ready(Ok(rp)).boxed()
            }
            _ => self.inner.call(req).map(|r| r.map_err(Into::into)).boxed(),
        }
    }
}

fn response(status: http::StatusCode, content_type: &'static str, body: String) -> HttpResponse {
    let mut rp = HttpResponse::new(HttpBody::from(body));
    *rp.status_mut() = status;
    rp.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    rp
}

/// `/health`: 200 with `{"status":"ok","tip":N|null,"tipHash":...,"lagSeconds":S,
/// "backend":"...","chainId":N}`; 503 with `"status":"shutting down"` once
/// the server is stopping. `lagSeconds` is wall clock minus the tip's
/// timestamp (0 for an empty store or a tip from the future).
async fn health<B: ColdBackend>(api: &Api<B>) -> HttpResponse {
    let tip = api.handle.durable_tip();
    let timestamp = match tip {
        Some(t) => api.handle.header(t.hash).await.ok().flatten().map(|h| h.timestamp),
        None => None,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let lag = timestamp.map_or(0, |t| now.saturating_sub(t));
    let stopping = api.shutdown.is_cancelled() || api.handle.is_shut_down();
    let body = serde_json::json!({
        "status": if stopping { "shutting down" } else { "ok" },
        "tip": tip.map(|t| t.number),
        "tipHash": tip.map(|t| t.hash),
        "lagSeconds": lag,
        "backend": api.config.backend_name,
        "chainId": api.config.chain_id,
    });
    let status =
        if stopping { http::StatusCode::SERVICE_UNAVAILABLE } else { http::StatusCode::OK };
    response(status, "application/json", body.to_string())
}
