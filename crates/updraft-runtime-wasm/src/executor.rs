//! Where guest code runs: a Tokio runtime of its own, apart from the one that serves
//! the gateway, the control plane, the event layer and the timers.
//!
//! A guest that computes without yielding holds the thread it runs on until its next
//! epoch check. On the server's own runtime that froze the node (three spinning guests
//! on two workers: `/healthz` took 8 s). Guests therefore run on their own worker
//! threads, as many as there are cores and at a lower scheduling priority, so the
//! kernel preempts them for the server's threads; and every store yields to this
//! executor at each epoch tick (see `invoke.rs`), so spinning guests share its threads
//! with each other and with every other function's requests instead of queueing.

use std::future::Future;
use std::sync::Arc;

/// The guests' runtime. Dropped without waiting: a guest still running is stopped by its
/// own deadline, and nothing a guest does must delay the server's shutdown.
pub(crate) struct GuestExecutor {
    runtime: Option<tokio::runtime::Runtime>,
}

/// How much lower the guests' threads are scheduled than the server's (Linux nice).
const GUEST_NICENESS: i32 = 10;

impl GuestExecutor {
    pub(crate) fn start() -> std::io::Result<Arc<GuestExecutor>> {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("updraft-guest")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        Ok(Arc::new(GuestExecutor { runtime: Some(runtime) }))
    }

    /// Runs `job` on a guest thread and waits for it from wherever the caller runs.
    /// If the caller stops waiting, the job still runs to its own end (a guest is
    /// stopped by its deadline, never abandoned mid-instruction).
    pub(crate) async fn run<F>(&self, job: F) -> Result<F::Output, tokio::task::JoinError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        runtime.spawn(job).await
    }
}

impl GuestExecutor {
    /// Starts `job` on a guest thread; the handle waits for it from anywhere, and the
    /// job runs to its own end if nobody does.
    pub(crate) fn spawn<F>(&self, job: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.as_ref().expect("the runtime lives until drop").spawn(job)
    }
}

impl Drop for GuestExecutor {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its workers stop, which panics inside another
        // runtime's task; this returns at once instead.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lowers the calling thread's scheduling priority (on Linux, `setpriority` with a
/// thread id applies to that thread alone). Failing leaves the default: the separate
/// threads and the epoch yields already keep guests off the server's threads.
#[allow(unsafe_code)]
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` has no preconditions; `setpriority` with `PRIO_PROCESS` and a
        // thread id of this process only changes that thread's nice value.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, GUEST_NICENESS)
        };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a guest thread's priority");
        }
    }
}
