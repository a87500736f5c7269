//! A panic in one call is that call's `-32603`, nothing more.
//!
//! The RPC middleware runs each call through [`catch`]: a panic while the
//! call is polled (parameter parsing, conversion, a method's own code) is
//! caught there, answered `-32603 "internal error (panic)"` for that call
//! only, and logged once at ERROR as one line (method, message, location).
//! The other calls of a batch, the connection and a WebSocket's later
//! answers are untouched.
//!
//! While a call is polled, a panic hook (installed once, chained to the one
//! before it) keeps the panic's message and location for that log line
//! instead of printing the default report with its backtrace: a client
//! that can make a call panic cannot fill the log with one 3 KB backtrace
//! per request. Panics elsewhere in the process go to the previous hook as
//! before.

use futures::FutureExt;
use std::{
    cell::{Cell, RefCell},
    future::Future,
    panic::{AssertUnwindSafe, PanicHookInfo},
    pin::Pin,
    sync::Once,
    task::{Context, Poll},
};

thread_local! {
    /// Whether this thread is polling a call right now.
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
    /// The location of the last panic caught while polling a call.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs the panic hook that silences panics inside calls (once per
/// process; later calls do nothing).
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if IN_CALL.with(Cell::get) {
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
                LAST.with(|last| *last.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Marks the thread as inside a call for the duration of each poll.
struct Marked<F>(F);

impl<F: Future + Unpin> Future for Marked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let outer = IN_CALL.with(|c| c.replace(true));
        // Restores the flag even when the poll unwinds.
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                IN_CALL.with(|c| c.set(self.0));
            }
        }
        let _reset = Reset(outer);
        Pin::new(&mut self.0).poll(cx)
    }
}

/// A caught panic: its message and where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caught {
    /// The panic's message (`non-string panic payload` if it had none).
    pub(crate) message: String,
    /// `file:line`, when the hook saw it.
    pub(crate) location: Option<String>,
}

/// Runs `fut`, turning a panic while it is polled into `Err`.
pub(crate) async fn catch<F: Future>(fut: F) -> Result<F::Output, Caught> {
    install_hook();
    let fut = std::pin::pin!(fut);
    match AssertUnwindSafe(Marked(fut)).catch_unwind().await {
        Ok(out) => Ok(out),
        Err(payload) => Err(Caught {
            message: coldchain::error::panic_message(&*payload),
            location: LAST.with(|last| last.borrow_mut().take()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_with_its_location() {
        assert_eq!(catch(async { 5 }).await, Ok(5));
        let caught = catch(async {
            tokio::task::yield_now().await;
            let v: Vec<u8> = Vec::new();
            v[3]
        })
        .await
        .err();
        let caught = caught.as_ref();
        assert!(caught.is_some_and(|c| c.message.contains("out of bounds")), "{caught:?}");
        assert!(
            caught.is_some_and(|c| c.location.as_deref().is_some_and(|l| l.contains("panics.rs"))),
            "{caught:?}"
        );
        assert!(!IN_CALL.with(Cell::get), "the flag is reset after an unwind");
    }
}
