//! Deadlines passed into every backend call.
//!
//! A [`Deadline`] is an instant plus a stop signal. The handle sets the stop
//! signal when the deadline passes, when a stream's consumer drops it, and on
//! shutdown: every deadline the handle makes has a stop signal that is a
//! child of the handle's shutdown token, so `cancel()` stops all backend work
//! at once. A backend that checks [`Deadline::check`] between steps (or waits
//! on [`Deadline::expired`]) therefore stops promptly, even when its clock and
//! the handle's disagree. Times use tokio's clock, so tests with a paused
//! clock control them.

use crate::ColdError;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// When a backend call must stop, and a signal that tells it to stop now.
#[derive(Debug, Clone)]
pub struct Deadline {
    op: &'static str,
    at: Instant,
    stop: CancellationToken,
}

impl Deadline {
    /// A deadline `timeout` from now for operation `op`.
    pub fn after(op: &'static str, timeout: Duration) -> Self {
        Self::at(op, Instant::now() + timeout)
    }

    /// A deadline at `at` for operation `op`.
    pub fn at(op: &'static str, at: Instant) -> Self {
        Self { op, at, stop: CancellationToken::new() }
    }

    /// A deadline at `at` for operation `op` whose stop signal is also set
    /// when `parent` is cancelled (the handle passes its shutdown token).
    /// Stopping the deadline does not cancel `parent`.
    pub fn at_or_stopped_by(op: &'static str, at: Instant, parent: &CancellationToken) -> Self {
        Self { op, at, stop: parent.child_token() }
    }

    /// A deadline far in the future (for tests and offline tools).
    pub fn none(op: &'static str) -> Self {
        Self::after(op, Duration::from_secs(86_400 * 365))
    }

    /// The operation this deadline belongs to.
    pub const fn op(&self) -> &'static str {
        self.op
    }

    /// The instant at which the call must stop.
    pub const fn instant(&self) -> Instant {
        self.at
    }

    /// Time left, zero when expired.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Tells the backend to stop now.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Whether the stop signal is set ([`Self::stop`], or the handle's
    /// shutdown), whatever the time.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Whether the backend was told to stop or the deadline has passed.
    pub fn is_expired(&self) -> bool {
        self.stop.is_cancelled() || Instant::now() >= self.at
    }

    /// `Err(Timeout)` naming the operation once expired or stopped; call it
    /// between steps of long work.
    pub fn check(&self) -> Result<(), ColdError> {
        if self.is_expired() { Err(ColdError::Timeout { op: self.op }) } else { Ok(()) }
    }

    /// Resolves when the backend must stop (deadline passed or stop signal).
    pub async fn expired(&self) {
        tokio::select! {
            _ = tokio::time::sleep_until(self.at) => {}
            _ = self.stop.cancelled() => {}
        }
    }

    /// Runs `fut`, failing with `Timeout` if it is still running at the
    /// deadline. For async backends.
    pub async fn run<T>(
        &self,
        fut: impl Future<Output = Result<T, ColdError>>,
    ) -> Result<T, ColdError> {
        tokio::select! {
            biased;
            r = fut => r,
            _ = self.expired() => Err(ColdError::Timeout { op: self.op }),
        }
    }
}
