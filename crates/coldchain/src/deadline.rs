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

#[cfg(test)]
mod tests {
    use super::*;

    const OP: &str = "test_op";

    #[tokio::test(start_paused = true)]
    async fn a_deadline_expires_at_its_instant_and_names_its_op() {
        let start = Instant::now();
        let d = Deadline::after(OP, Duration::from_secs(5));
        assert_eq!(d.op(), OP);
        assert_eq!(d.instant(), start + Duration::from_secs(5));
        assert_eq!(d.remaining(), Duration::from_secs(5));
        assert!(!d.is_expired() && !d.is_stopped());
        assert!(d.check().is_ok());

        tokio::time::advance(Duration::from_millis(4_999)).await;
        assert!(!d.is_expired());
        assert_eq!(d.remaining(), Duration::from_millis(1));

        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(d.is_expired(), "expired at its instant exactly");
        assert!(!d.is_stopped(), "time passing is not the stop signal");
        assert_eq!(d.remaining(), Duration::ZERO);
        assert!(matches!(d.check(), Err(ColdError::Timeout { op: OP })));
    }

    #[tokio::test(start_paused = true)]
    async fn none_is_a_year_away() {
        let d = Deadline::none(OP);
        assert!(d.remaining() >= Duration::from_secs(364 * 86_400));
        assert!(d.check().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn stop_expires_a_deadline_whatever_the_time() {
        let d = Deadline::after(OP, Duration::from_secs(60));
        let clone = d.clone();
        d.stop();
        assert!(clone.is_stopped() && clone.is_expired(), "clones share the signal");
        assert!(matches!(clone.check(), Err(ColdError::Timeout { op: OP })));
        let started = Instant::now();
        clone.expired().await;
        assert_eq!(started.elapsed(), Duration::ZERO, "expired() resolves at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_parent_token_stops_its_children_not_the_other_way() {
        let parent = CancellationToken::new();
        let a = Deadline::at_or_stopped_by(OP, Instant::now() + Duration::from_secs(60), &parent);
        let b = Deadline::at_or_stopped_by(OP, Instant::now() + Duration::from_secs(60), &parent);
        a.stop();
        assert!(a.is_stopped());
        assert!(!parent.is_cancelled() && !b.is_stopped(), "a child's stop stays its own");
        parent.cancel();
        assert!(b.is_stopped() && b.is_expired());
    }

    #[tokio::test(start_paused = true)]
    async fn expired_resolves_at_the_deadline() {
        let d = Deadline::after(OP, Duration::from_secs(3));
        let started = Instant::now();
        d.expired().await;
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn run_answers_the_future_or_a_timeout() {
        let d = Deadline::after(OP, Duration::from_secs(2));
        let quick = d.run(async { Ok::<_, ColdError>(7) }).await;
        assert!(matches!(quick, Ok(7)));

        let started = Instant::now();
        let slow = d.run(std::future::pending::<Result<u8, ColdError>>()).await;
        assert!(matches!(slow, Err(ColdError::Timeout { op: OP })));
        assert_eq!(started.elapsed(), Duration::from_secs(2));

        // `biased`: a future that is ready wins even at an expired deadline.
        let late = d.run(async { Ok::<_, ColdError>(9) }).await;
        assert!(matches!(late, Ok(9)));
    }
}
