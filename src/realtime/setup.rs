//! Where new sockets are set up: authentication, registration, `ready` and the replay a
//! client asks for. A wave of connects (an instance restarted, a network came back)
//! costs far more than the live delivery it competes with, so setup runs on a runtime of
//! its own whose threads run at low priority (nice [`crate::cpu::NICE`], like the CPU
//! pool's): the kernel gives live delivery the cores first, and setup takes what is left.
//! Once set up, a socket is served on the main runtime.

/// The setup runtime, stopped when dropped (with the server).
pub struct SetupRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl SetupRuntime {
    pub fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("taskstream-ws-setup")
            .enable_all()
            .on_thread_start(crate::cpu::lower_priority)
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Where to spawn a socket's setup; once the runtime stopped, spawned tasks end at
    /// once (with an error).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for SetupRuntime {
    fn drop(&mut self) {
        // Not a blocking shutdown: the server may be dropped inside another runtime's task.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn setup_threads_run_at_low_priority() {
        let setup = SetupRuntime::start().expect("runtime");
        let nice = setup
            .handle()
            .block_on(async {
                tokio::spawn(async {
                    rustix::process::getpriority_process(Some(rustix::thread::gettid()))
                })
                .await
            })
            .expect("task")
            .expect("priority");
        assert_eq!(nice, crate::cpu::NICE);
    }
}
