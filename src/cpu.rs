//! A small pool of low-priority threads for the CPU-heavy work a client can ask for:
//! password hashing (argon2) and photo decoding. They run below every other thread of the
//! process (nice [`NICE`] on Linux), so a flood of sign-ins or upload bombs, each bounded by
//! its own admission limits, takes the cores only when nothing else wants them: requests,
//! sockets and the database keep their share. One pool for both kinds, so together they
//! never run on more threads than it has.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// How far below normal priority the pool's threads run (0 normal, 19 lowest): low enough
/// that the scheduler serves everything else first (weight 110 against 1024), not so low
/// that sign-ins starve on a busy but healthy server.
pub const NICE: i32 = 10;

/// The pool. Dropping it lets its threads finish their jobs and exit.
#[derive(Debug)]
pub struct CpuPool {
    jobs: mpsc::Sender<Job>,
    threads: usize,
}

/// The job's thread panicked (the panic was logged by the panic hook).
#[derive(Debug, thiserror::Error)]
#[error("a CPU pool job panicked")]
pub struct JobPanicked;

impl CpuPool {
    /// Starts `threads` workers (at least one).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("taskstream-cpu-{n}"))
                .spawn(move || worker(&receiver))?;
        }
        Ok(Self {
            jobs: sender,
            threads,
        })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `work` on a pool thread. Callers bound how much they submit (each kind has its
    /// admission limit); the queue itself is not bounded.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JobPanicked> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A closed receiver means the caller went away: the work is done anyway.
            let _ = done.send(work());
        });
        self.jobs.send(job).map_err(|_| JobPanicked)?;
        result.await.map_err(|_| JobPanicked)
    }
}

fn worker(receiver: &Mutex<mpsc::Receiver<Job>>) {
    lower_priority();
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A panicking job drops its sender (the caller sees `JobPanicked`); the thread
        // lives on for the next one.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // On Linux a priority set on a thread id applies to that thread alone.
    let me = rustix::thread::gettid();
    if let Err(err) = rustix::process::setpriority_process(Some(me), NICE) {
        tracing::warn!(error = %err, "could not lower the CPU pool's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_at_low_priority_and_survive_panics() {
        let pool = CpuPool::new(2).expect("pool");
        let nice = pool
            .run(|| rustix::process::getpriority_process(None))
            .await
            .expect("job");
        #[cfg(target_os = "linux")]
        assert_eq!(nice.ok(), Some(NICE), "the thread's own priority");
        let _ = nice;
        assert!(pool.run(|| panic!("boom")).await.is_err());
        assert_eq!(pool.run(|| 6 * 7).await.ok(), Some(42));
    }
}
