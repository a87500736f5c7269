//! Helpers for tests and fuzzing (feature `test-utils`).
//!
//! - [`InProcess`]: the server's HTTP JSON-RPC service without a socket, for
//!   the request-envelope fuzz target: a body goes through jsonrpsee's
//!   request parsing, the RPC middleware (deadline, panic catching, error
//!   wording) and the methods, exactly as over TCP.
//! - With this feature every server also has the method
//!   `coldchain_testPanic`, which panics (with its first argument as the
//!   message, if any): the tests of [`crate`]'s panic catching use it.

use crate::{
    Limits, RpcConfig,
    eth::{self, Api},
    middleware::{RpcMiddleware, RpcMiddlewareConfig},
    pubsub,
};
use coldchain::{ColdBackend, ColdStorage};
use futures::future::BoxFuture;
use jsonrpsee::{
    RpcModule,
    core::http_helpers::read_body,
    server::{
        BatchRequestConfig, HttpBody, HttpRequest, ServerConfig, ServerHandle,
        middleware::rpc::RpcServiceBuilder, stop_channel,
    },
};
use std::{collections::HashSet, sync::Arc};
use tower::Service;

type Call = Box<dyn Fn(HttpRequest) -> BoxFuture<'static, (u16, Vec<u8>)> + Send + Sync>;

/// The server's JSON-RPC-over-HTTP service, called in process.
pub struct InProcess {
    call: Call,
    _server: ServerHandle,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").finish_non_exhaustive()
    }
}

impl InProcess {
    /// The service over `handle` with `config`'s limits (HTTP only: no
    /// `/health`, no subscriptions without a WebSocket).
    pub fn new<B: ColdBackend>(
        handle: ColdStorage<B>,
        config: RpcConfig,
    ) -> Result<Self, jsonrpsee::core::RegisterMethodError> {
        let limits: Limits = config.limits;
        let api = Arc::new(Api::new(handle, config));
        let mut module = RpcModule::from_arc(api);
        eth::register(&mut module)?;
        pubsub::register(&mut module)?;
        let methods: HashSet<&'static str> = module.method_names().collect();
        let rpc_config = RpcMiddlewareConfig {
            timeout: limits.request_timeout,
            max_response_body: limits.max_response_body as usize,
            max_batch_response: limits.max_batch_response as usize,
            methods: Arc::new(methods),
            pools: crate::conn::Pools::new(limits),
        };
        let rpc_middleware = RpcServiceBuilder::new()
            .layer_fn(move |inner| RpcMiddleware { inner, config: rpc_config.clone() });
        let server_config = ServerConfig::builder()
            .max_request_body_size(limits.max_request_body)
            .max_response_body_size(limits.max_response_body)
            .set_batch_request_config(BatchRequestConfig::Limit(limits.max_batch))
            .http_only()
            .build();
        let (stop, server) = stop_channel();
        let service = jsonrpsee::server::Server::builder()
            .set_config(server_config)
            .set_rpc_middleware(rpc_middleware)
            .to_service_builder()
            .build(module, stop);
        let max = limits.max_response_body;
        let call: Call = Box::new(move |request| {
            let mut service = service.clone();
            Box::pin(async move {
                let response = match service.call(request).await {
                    Ok(r) => r,
                    Err(e) => return (500, e.to_string().into_bytes()),
                };
                let status = response.status().as_u16();
                let (parts, body) = response.into_parts();
                let body = read_body(&parts.headers, body, max.saturating_mul(2))
                    .await
                    .map(|(b, _)| b)
                    .unwrap_or_default();
                (status, body)
            })
        });
        Ok(Self { call, _server: server })
    }

    /// POSTs `body` as `application/json`: the HTTP status and the body of
    /// the answer.
    pub async fn post(&self, body: Vec<u8>) -> (u16, Vec<u8>) {
        let mut request = HttpRequest::new(HttpBody::from(body));
        *request.method_mut() = http::Method::POST;
        request
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        (self.call)(request).await
    }
}
