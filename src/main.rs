use anyhow::Context;
use taskstream::config::{Cli, Command, Config};
use taskstream::startup::{shutdown_signal, App};
use taskstream::{store, telemetry};

/// glibc gives every thread that allocates its own arena (up to 8 per core); tens of
/// thousands of small, long-lived per-socket allocations then fragment across them, and
/// RSS per idle socket grows by half (measured in BENCHMARKS.md). Two arenas are plenty for
/// a runtime with one worker per core.
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Every socket is a file descriptor: take the most the hard limit allows.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit raised to the hard limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open-file limit"),
    }
}

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    // A missing .env is fine; a malformed one is worth knowing about.
    if let Err(err) = dotenvy::dotenv() {
        if !err.not_found() {
            eprintln!("warning: ignoring .env: {err}");
        }
    }
    let cli = Cli::from_env_and_args();
    let command = cli.command.unwrap_or(Command::Serve);
    // Only serving uses the whole configuration; `migrate` runs with whatever names the
    // database, as it always has.
    if matches!(command, Command::Serve) {
        if let Err(err) = cli.config.validate() {
            // Exit status 2, as for a flag clap cannot parse.
            eprintln!("taskstream: {err}");
            std::process::exit(2);
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(command, cli.config))
}

async fn serve(command: Command, config: Config) -> anyhow::Result<()> {
    telemetry::init(config.log_format);
    raise_open_file_limit();
    match command {
        Command::Migrate => {
            let database = config.database_url();
            store::connect(&database, store::PoolSizes::SINGLE)
                .await
                .context("migration failed")?;
            tracing::info!(database = %database.redacted(), "migrations applied");
            Ok(())
        }
        Command::Serve => {
            let app = App::build(&config).await?;
            app.run(shutdown_signal()).await
        }
    }
}
