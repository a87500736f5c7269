//! A small fixed pool of threads for point reads.
//!
//! Point reads (a header, a transaction, a receipt, a block's receipts) take
//! microseconds. On tokio's blocking pool each one wakes a thread of its
//! own: with 64 callers that is 64 threads taking turns on a few cores, and
//! under load about a quarter of the CPU went to switching between them.
//! Here a few threads take reads from one queue and run them back to back.
//! Log queries and streams, which can run for seconds, stay on tokio's
//! blocking pool so that they never hold up point reads.
//!
//! A queued read keeps its deadline: it checks it when it starts (see
//! `MdbxBackend::read`), so a read that waited too long ends at once. The
//! threads exit when the last clone of the backend is dropped.

use coldchain::{ColdError, ColdResult};
use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, PoisonError, mpsc},
};

type Job = Box<dyn FnOnce() + Send>;

/// The queue and its threads.
#[derive(Debug)]
pub(crate) struct ReadPool {
    queue: mpsc::Sender<Job>,
    /// The queue's receiving end, held by each thread while it runs.
    #[cfg(test)]
    threads_hold: std::sync::Weak<Mutex<mpsc::Receiver<Job>>>,
}

impl ReadPool {
    /// Starts `threads` threads (at least one).
    pub(crate) fn new(threads: usize) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        #[cfg(test)]
        let threads_hold = Arc::downgrade(&jobs);
        for i in 0..threads.max(1) {
            let jobs = jobs.clone();
            std::thread::Builder::new().name(format!("coldchain-read-{i}")).spawn(move || {
                loop {
                    // The guard is a temporary: released before the job runs.
                    let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match next {
                        Ok(job) => job(),
                        // Every sender is gone: the backend was dropped.
                        Err(_) => return,
                    }
                }
            })?;
        }
        Ok(Self {
            queue,
            #[cfg(test)]
            threads_hold,
        })
    }

    /// Runs `f` on a pool thread; a panic in it becomes
    /// [`ColdError::Panicked`].
    pub(crate) async fn run<T, F>(&self, op: &'static str, f: F) -> ColdResult<T>
    where
        T: Send + 'static,
        F: FnOnce() -> ColdResult<T> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let r = std::panic::catch_unwind(AssertUnwindSafe(f))
                .unwrap_or_else(|panic| Err(ColdError::from_panic(op, panic)));
            // The caller may have given up; then nobody wants the result.
            let _ = done.send(r);
        });
        if self.queue.send(job).is_err() {
            return Err(ColdError::TaskTerminated);
        }
        result.await.unwrap_or(Err(ColdError::TaskTerminated))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_reports_panics() {
        let pool = ReadPool::new(2).unwrap();
        assert_eq!(pool.run("add", || Ok(1 + 1)).await.unwrap(), 2);
        let err = pool.run::<(), _>("boom", || panic!("kaboom")).await.unwrap_err();
        assert!(
            matches!(&err, ColdError::Panicked { op: "boom", message } if message == "kaboom"),
            "{err:?}"
        );
        // The thread that ran the panicking job still serves.
        for i in 0..16 {
            assert_eq!(pool.run("id", move || Ok(i)).await.unwrap(), i);
        }
    }

    #[tokio::test]
    async fn threads_exit_with_the_pool() {
        let pool = ReadPool::new(3).unwrap();
        assert_eq!(pool.run("id", || Ok(7)).await.unwrap(), 7);
        let held = pool.threads_hold.clone();
        assert_eq!(held.strong_count(), 3, "three threads wait for jobs");
        drop(pool);
        // Each thread sees the queue closed and drops its hold on exit.
        let started = std::time::Instant::now();
        while held.strong_count() > 0 {
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "threads still run");
            std::thread::yield_now();
        }
    }
}
