use anyhow::Context;
use taskstream::config::{Command, Config};
use taskstream::startup::{shutdown_signal, App};
use taskstream::{store, telemetry};

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
