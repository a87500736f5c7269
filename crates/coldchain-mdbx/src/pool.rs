//! A small fixed pool of threads for point reads.
//!
//! Point reads (a header, a transaction, a receipt, a block's receipts) take
//! microseconds. On tokio's blocking pool each one wakes a thread of its
//! own: with 64 callers that is 64 threads taking turns on a few cores, and
//! under load about a quarter of the CPU went to switching between them.
//! Here a few threads take reads from one queue and run them back to back,
//! and an idle thread looks for the next read for a few microseconds
//! before it sleeps: waking a sleeping thread costs more than most reads.
//! Streams, which can run for minutes, stay on tokio's blocking pool; log
//! queries (bounded by `max_logs` and their deadline) take at most half of
//! the threads (`MdbxBackend::get_logs`), so point reads always have some.
//!
//! A queued read keeps its deadline: it checks it when it starts (see
//! `MdbxBackend::read`), so a read that waited too long ends at once. The
//! threads exit when the last clone of the backend is dropped.

use coldchain::{ColdError, ColdResult};
use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
        mpsc::{self, TryRecvError},
    },
    time::{Duration, Instant},
};

/// How long an idle thread keeps looking for the next job before it sleeps.
const SPIN: Duration = Duration::from_micros(50);

type Job = Box<dyn FnOnce() + Send>;

/// The queue and its threads.
#[derive(Debug)]
pub(crate) struct ReadPool {
    queue: mpsc::Sender<Job>,
    threads: usize,
    /// Log queries running or queued on the pool.
    log_queries: AtomicUsize,
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
        let threads = threads.max(1);
        for i in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new().name(format!("coldchain-read-{i}")).spawn(move || {
                // `None`: every sender is gone, the backend was dropped.
                while let Some(job) = next_job(&jobs) {
                    job();
                }
            })?;
        }
        Ok(Self {
            queue,
            threads,
            log_queries: AtomicUsize::new(0),
            #[cfg(test)]
            threads_hold,
        })
    }

    /// Takes a place for a log query on the pool, if fewer than half of the
    /// threads have one; the place is given back when the guard drops.
    pub(crate) fn log_query_place(self: &Arc<Self>) -> Option<LogQueryPlace> {
        let cap = (self.threads / 2).max(1);
        self.log_queries
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < cap).then_some(n + 1))
            .ok()
            .map(|_| LogQueryPlace(self.clone()))
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

/// A log query's place on the pool (see [`ReadPool::log_query_place`]).
pub(crate) struct LogQueryPlace(Arc<ReadPool>);

impl Drop for LogQueryPlace {
    fn drop(&mut self) {
        self.0.log_queries.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The next job: the thread holding the queue looks for one for [`SPIN`],
/// then sleeps until one comes; the other threads wait for the queue.
fn next_job(jobs: &Mutex<mpsc::Receiver<Job>>) -> Option<Job> {
    let jobs = jobs.lock().unwrap_or_else(PoisonError::into_inner);
    let started = Instant::now();
    loop {
        match jobs.try_recv() {
            Ok(job) => return Some(job),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if started.elapsed() < SPIN => std::hint::spin_loop(),
            Err(TryRecvError::Empty) => return jobs.recv().ok(),
        }
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

    #[test]
    fn log_queries_take_at_most_half_the_threads() {
        let pool = Arc::new(ReadPool::new(4).unwrap());
        let a = pool.log_query_place().unwrap();
        let b = pool.log_query_place().unwrap();
        assert!(pool.log_query_place().is_none(), "two of four threads are taken");
        drop(a);
        let c = pool.log_query_place().unwrap();
        drop((b, c));
        assert_eq!(pool.log_queries.load(Ordering::Acquire), 0);
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
