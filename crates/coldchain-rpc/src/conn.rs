//! Connections: the accept loop with its per-address and total limits, the
//! separate HTTP and WebSocket slot pools, header and body read deadlines,
//! and the memory ledger that charges each answer until its bytes are
//! written to the socket.

use crate::config::Limits;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use jsonrpsee::server::HttpBody;
use std::{
    collections::{HashMap, VecDeque},
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The server's shared pools and budget.
#[derive(Debug)]
pub(crate) struct Pools {
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) http: Arc<Semaphore>,
    pub(crate) ws: Arc<Semaphore>,
    pub(crate) budget: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    pub(crate) limits: Limits,
}

/// Most permits a tokio semaphore holds.
fn permits(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS)
}

impl Pools {
    pub(crate) fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            connections: Arc::new(Semaphore::new(permits(limits.max_connections.into()))),
            http: Arc::new(Semaphore::new(permits(limits.max_http_requests.into()))),
            ws: Arc::new(Semaphore::new(permits(limits.max_ws_connections.into()))),
            budget: Arc::new(Semaphore::new(permits(limits.memory_budget))),
            per_ip: Mutex::new(HashMap::new()),
            limits,
        })
    }

    /// The memory budget's bytes in use.
    pub(crate) fn budget_used(&self) -> u64 {
        let total = permits(self.limits.memory_budget);
        (total - self.budget.available_permits().min(total)) as u64
    }

    fn admit_ip(self: &Arc<Self>, ip: IpAddr) -> Option<IpGuard> {
        let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.limits.max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(IpGuard { pools: self.clone(), ip })
    }
}

/// One connection's slot for its address.
#[derive(Debug)]
struct IpGuard {
    pools: Arc<Pools>,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut map = self.pools.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Bytes of answers charged to a connection, released as the socket takes
/// them.
#[derive(Debug, Default)]
struct Ledger {
    /// End offset (in bytes written) at which each charge is released.
    queued_end: u64,
    written: u64,
    charges: VecDeque<(u64, OwnedSemaphorePermit)>,
}

/// What the server knows of one TCP connection; in every request's
/// extensions, and held by its socket until it closes.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    pub(crate) remote: SocketAddr,
    _ip: IpGuard,
    _connection: OwnedSemaphorePermit,
    /// The WebSocket slot, once the connection upgraded.
    pub(crate) ws_slot: Mutex<Option<OwnedSemaphorePermit>>,
    ledger: Mutex<Ledger>,
    max_pending: u64,
    kill: CancellationToken,
    /// Calls of this connection that run at once.
    pub(crate) calls: Semaphore,
}

/// Calls of one connection that run at once (a WebSocket client may send
/// many without waiting); the others wait their turn.
pub(crate) const CONNECTION_CONCURRENCY: usize = 16;

/// Why an answer could not be charged.
#[derive(Debug)]
pub(crate) enum ChargeError {
    /// The server's budget is used up.
    Budget,
    /// The client does not read: the connection is being closed.
    SlowClient,
}

impl ConnCtx {
    /// Charges `bytes` of an answer against the server's budget and this
    /// connection's pending bytes, until the socket has taken them.
    /// With `check_backlog`, a connection whose unread bytes are already
    /// past its limit is closed instead.
    pub(crate) fn charge(
        &self,
        pools: &Pools,
        bytes: usize,
        check_backlog: bool,
    ) -> Result<(), ChargeError> {
        let n = u32::try_from(bytes).unwrap_or(u32::MAX);
        let permit = pools.budget.clone().try_acquire_many_owned(n).map_err(|_| {
            metrics::counter!("coldchain_rpc_shed_total", "reason" => "memory_budget").increment(1);
            ChargeError::Budget
        })?;
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        // Unread bytes before this answer: one answer (or one batch) of any
        // size is fine, a backlog past the limit is a client that does not
        // read.
        let backlog = ledger.queued_end.saturating_sub(ledger.written);
        if check_backlog && backlog > self.max_pending {
            drop(ledger);
            drop(permit);
            tracing::info!(remote = %self.remote, "client does not read its answers; closing");
            metrics::counter!("coldchain_rpc_shed_total", "reason" => "slow_client").increment(1);
            self.kill.cancel();
            return Err(ChargeError::SlowClient);
        }
        let end = ledger.queued_end.max(ledger.written) + bytes as u64;
        ledger.queued_end = end;
        ledger.charges.push_back((end, permit));
        Ok(())
    }

    /// Whether the unread bytes are past the limit; if so, closes the
    /// connection.
    pub(crate) fn over_backlog(&self) -> bool {
        let ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        let over = ledger.queued_end.saturating_sub(ledger.written) > self.max_pending;
        drop(ledger);
        if over {
            tracing::info!(remote = %self.remote, "client does not read its answers; closing");
            metrics::counter!("coldchain_rpc_shed_total", "reason" => "slow_client").increment(1);
            self.kill.cancel();
        }
        over
    }

    /// Whether the connection is being closed for not reading.
    pub(crate) fn is_killed(&self) -> bool {
        self.kill.is_cancelled()
    }

    fn written(&self, n: usize) {
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        ledger.written += n as u64;
        let written = ledger.written;
        while ledger.charges.front().is_some_and(|(end, _)| *end <= written) {
            ledger.charges.pop_front();
        }
    }
}

/// A socket that releases its connection's charges as it writes, and fails
/// once the connection is killed.
struct ConnIo {
    inner: TcpStream,
    ctx: Arc<ConnCtx>,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl ConnIo {
    fn check_killed(&mut self, cx: &mut Context<'_>) -> Result<(), io::Error> {
        if self.killed.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "client too slow"));
        }
        Ok(())
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check_killed(cx)?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_killed(cx)?;
        let rp = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = rp {
            self.ctx.written(n);
        }
        rp
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_killed(cx)?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that fails once its deadline passes, marking `expired`.
pub(crate) struct DeadlineBody {
    inner: HttpBody,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl DeadlineBody {
    pub(crate) fn new(inner: HttpBody, within: Duration, expired: Arc<AtomicBool>) -> Self {
        Self { inner, sleep: Box::pin(tokio::time::sleep(within)), expired }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = jsonrpsee::core::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err("request body not received in time".into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Accepts connections until `stop` is cancelled, serving each with a fresh
/// `service` from `make`.
pub(crate) async fn accept_loop<S, F>(
    listener: TcpListener,
    pools: Arc<Pools>,
    stop: CancellationToken,
    make: F,
) where
    F: Fn(Arc<ConnCtx>) -> S,
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<HttpBody>,
            Error = jsonrpsee::core::BoxError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let (socket, remote) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    // Out of descriptors and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Some(ip) = pools.admit_ip(remote.ip()) else {
            metrics::counter!("coldchain_rpc_refused_total", "reason" => "per_ip").increment(1);
            refuse(socket);
            continue;
        };
        let Ok(connection) = pools.connections.clone().try_acquire_owned() else {
            metrics::counter!("coldchain_rpc_refused_total", "reason" => "connections")
                .increment(1);
            refuse(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        let kill = CancellationToken::new();
        let ctx = Arc::new(ConnCtx {
            remote,
            _ip: ip,
            _connection: connection,
            ws_slot: Mutex::new(None),
            ledger: Mutex::new(Ledger::default()),
            max_pending: pools.limits.max_connection_pending.into(),
            kill: kill.clone(),
            calls: Semaphore::new(CONNECTION_CONCURRENCY),
        });
        let io =
            ConnIo { inner: socket, ctx: ctx.clone(), killed: Box::pin(kill.cancelled_owned()) };
        let service = hyper_util::service::TowerToHyperService::new(make(ctx));
        let header_timeout = pools.limits.header_read_timeout;
        let stop = stop.clone();
        tracker.spawn(async move {
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn =
                builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(io), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// Answers a refused connection with HTTP 429 if the socket takes it at
/// once, then closes it.
fn refuse(socket: TcpStream) {
    let _ = socket.try_write(
        b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
}

/// One connection's service: puts the connection's [`ConnCtx`] into each
/// request, gives the body its deadline, and answers 408 when it passes.
#[derive(Clone)]
pub(crate) struct ConnService<S> {
    pub(crate) inner: S,
    pub(crate) ctx: Arc<ConnCtx>,
    pub(crate) body_timeout: Duration,
}

impl<S> tower::Service<http::Request<hyper::body::Incoming>> for ConnService<S>
where
    S: tower::Service<
            http::Request<HttpBody>,
            Response = http::Response<HttpBody>,
            Error = jsonrpsee::core::BoxError,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<HttpBody>;
    type Error = jsonrpsee::core::BoxError;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let expired = Arc::new(AtomicBool::new(false));
        let within = self.body_timeout;
        let flag = expired.clone();
        let mut req = req
            .map(move |body| HttpBody::new(DeadlineBody::new(HttpBody::new(body), within, flag)));
        req.extensions_mut().insert(self.ctx.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let rp = fut.await?;
            if expired.load(Ordering::Relaxed) {
                metrics::counter!("coldchain_rpc_refused_total", "reason" => "body_timeout")
                    .increment(1);
                let mut rp =
                    http::Response::new(HttpBody::from("request body not received in time\n"));
                *rp.status_mut() = http::StatusCode::REQUEST_TIMEOUT;
                rp.headers_mut()
                    .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                return Ok(rp);
            }
            Ok(rp)
        })
    }
}
