use anyhow::Context;
use taskstream::config::{Command, Config};
use taskstream::startup::{shutdown_signal, App};
use taskstream::{store, telemetry};

/// Every socket is a file descriptor: take the most the hard limit allows.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit raised to the hard limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open-file limit"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A missing .env is fine; a malformed one is worth knowing about.
    if let Err(err) = dotenvy::dotenv() {
        if !err.not_found() {
            eprintln!("warning: ignoring .env: {err}");
        }
    }
    let cli = Config::from_env_and_args();
    telemetry::init(cli.config.log_format);
    let config = cli.config;
    raise_open_file_limit();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            let database = config.database();
            store::connect(&database, 1)
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
