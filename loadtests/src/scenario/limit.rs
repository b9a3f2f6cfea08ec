//! `limit`: how close the server comes to what its database can do. pgbench runs the
//! server's own task-create transaction (the statements of `store/sql.rs` as
//! `service::tasks::create` and the PostgreSQL bus issue them) against the same
//! PostgreSQL at the same concurrency, for users made through the API; then `rest` runs
//! creates only; the ratio server/pgbench says how much the server's own work costs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use chrono::Utc;
use clap::Args;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::client::{sign_up_users, Api};
use crate::progress::{Progress, Ui};
use crate::report::ScenarioReport;
use crate::scenario::rest::{self, RestReport};
use crate::workload::Mix;
use crate::DEFAULT_URL;

/// pgbench takes at most 128 scripts; each user gets one.
pub const MAX_USERS: usize = 128;

#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// The server's PostgreSQL database (the same one it runs on).
    #[arg(long)]
    pub database_url: String,
    /// pgbench clients, then REST workers.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds of each run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Base URL of the server.
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// Users the transactions are spread over (at most 128).
    #[arg(long, default_value_t = 32)]
    pub users: usize,
    /// The pgbench program (default: on PATH, or /usr/lib/postgresql/*/bin/pgbench).
    #[arg(long)]
    pub pgbench: Option<PathBuf>,
    /// Sign-ups at once.
    #[arg(long, default_value_t = 16)]
    pub signup_concurrency: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PgbenchResult {
    pub program: String,
    /// The command line, with the database password hidden.
    pub command: String,
    pub exit_code: Option<i32>,
    pub transactions: Option<u64>,
    pub failed_transactions: Option<u64>,
    pub tps: Option<f64>,
    pub latency_avg_ms: Option<f64>,
    /// What pgbench said on stderr, besides its progress lines (last lines only).
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LimitReport {
    pub scenario: &'static str,
    pub started_at: String,
    pub url: String,
    pub database: String,
    pub concurrency: usize,
    pub duration_s: u64,
    pub users: usize,
    pub pgbench: PgbenchResult,
    /// `rest --mix create` at the same concurrency, against the server.
    pub server: RestReport,
    pub server_creates_per_s: f64,
    /// server / pgbench: the share of the database's limit the server reaches.
    pub ratio: Option<f64>,
    pub passed: bool,
}

impl ScenarioReport for LimitReport {
    fn scenario(&self) -> &'static str {
        "limit"
    }

    fn summary(&self) -> String {
        format!(
            "limit: server {:.0} creates/s (p99={}, {} errors) vs pgbench {} tx/s (latency avg {}, {} failed) at concurrency {} => ratio server/pgbench {} => {}",
            self.server_creates_per_s,
            crate::report::fmt_ms(self.server.latency.p99_ms),
            self.server.errors,
            crate::report::or_na(self.pgbench.tps, |t| format!("{t:.0}")),
            crate::report::or_na(self.pgbench.latency_avg_ms, crate::report::fmt_ms),
            self.pgbench
                .failed_transactions
                .map_or_else(|| "n/a".to_string(), |f| f.to_string()),
            self.concurrency,
            crate::report::or_na(self.ratio, |r| format!("{r:.2}")),
            if self.passed { "PASS" } else { "FAIL" }
        )
    }

    fn passed(&self) -> bool {
        self.passed
    }
}

pub async fn run(args: &LimitArgs, ui: Ui) -> anyhow::Result<LimitReport> {
    if !(args.database_url.starts_with("postgres://")
        || args.database_url.starts_with("postgresql://"))
    {
        bail!("--database-url must be a postgres:// URL (the server's database)");
    }
    if args.concurrency == 0 || args.duration == 0 {
        bail!("--concurrency and --duration must be at least 1");
    }
    let users = args.users.clamp(1, MAX_USERS);
    let program = find_pgbench(args.pgbench.as_deref())?;
    let started_at = Utc::now().to_rfc3339();
    let api = Api::new(&args.url)?;
    let accounts = sign_up_users(
        std::slice::from_ref(&api),
        users,
        args.signup_concurrency,
        ui,
    )
    .await?;

    let scripts = tempfile::tempdir().context("a folder for the pgbench scripts")?;
    let origin = uuid::Uuid::new_v4().to_string();
    let mut script_paths = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        let path = scripts.path().join(format!("create-task-{i}.sql"));
        std::fs::write(&path, create_task_script(&account.id, &origin))
            .with_context(|| format!("writing {}", path.display()))?;
        script_paths.push(path);
    }
    let pgbench = run_pgbench(
        &program,
        &args.database_url,
        &script_paths,
        args.concurrency,
        args.duration,
        ui,
    )
    .await?;

    let (server, _) = rest::run_with_accounts(
        &api,
        &accounts,
        args.concurrency,
        Duration::from_secs(args.duration),
        Mix::creates(),
        ui,
    )
    .await?;
    let server_creates_per_s = server
        .routes
        .iter()
        .filter(|r| r.route == crate::workload::Route::CreateTask.name())
        .map(|r| (r.requests - r.errors) as f64 / server.elapsed_s.max(0.001))
        .sum::<f64>();
    let ratio = pgbench
        .tps
        .filter(|tps| *tps > 0.0)
        .map(|tps| server_creates_per_s / tps);
    let passed = pgbench.exit_code == Some(0)
        && pgbench.failed_transactions.unwrap_or(0) == 0
        && pgbench.tps.is_some()
        && server.passed;
    Ok(LimitReport {
        scenario: "limit",
        started_at,
        url: args.url.clone(),
        database: redact(&args.database_url),
        concurrency: args.concurrency,
        duration_s: args.duration,
        users,
        pgbench,
        server,
        server_creates_per_s,
        ratio,
        passed,
    })
}

/// `explicit`, else `pgbench` on PATH, else the newest /usr/lib/postgresql/*/bin/pgbench.
pub fn find_pgbench(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    crate::pg::find_program("pgbench", explicit)
}

pub use crate::pg::redact;

/// The server's task-create transaction for one user, as a pgbench script.
///
/// pgbench's prepared mode reads every `:word` in a command as a variable, so the JSON
/// written here keeps a space after each colon (`"id": 1`) and casts use `CAST(.. AS ..)`
/// rather than `::`. Timestamps come from `now()`, as the server's single `now` per
/// transaction; `at` is read as RFC 3339 (`to_json`) so the bus message parses.
pub fn create_task_script(user_id: &str, origin: &str) -> String {
    let task_json = format!(
        "'{{\"id\": ' || CAST(:t_id AS text) || ', \"user_id\": \"{user_id}\", \
         \"title\": \"Load test task\", \"description\": \"Created by taskstream-load\", \
         \"completed\": false, \"priority\": \"MEDIUM\", \"due_date\": null, \
         \"is_deleted\": false, \"deleted_at\": null, \"created_at\": \"' || :at || '\", \
         \"updated_at\": \"' || :at || '\"}}'"
    );
    let note_json = format!(
        "'{{\"id\": ' || CAST(:n_id AS text) || ', \"user_id\": \"{user_id}\", \
         \"type\": \"TASK_CREATED\", \"title\": \"Task created\", \
         \"message\": \"Task \\\"Load test task\\\" was created.\", \"is_read\": false, \
         \"task_id\": ' || CAST(:t_id AS text) || ', \"created_at\": \"' || :at || '\"}}'"
    );
    let event = |seq: &str, kind: &str, data: &str| {
        format!(
            "'{{\"type\": \"event\", \"seq\": ' || {seq} || ', \"event\": \"{kind}\", \
             \"at\": \"' || :at || '\", \"data\": ' || {data} || '}}'"
        )
    };
    let first_seq = "CAST(CAST(:last_event_seq AS bigint) - 1 AS text)";
    let last_seq = "CAST(:last_event_seq AS text)";
    let payload = format!(
        "'{{\"o\": \"{origin}\", \"u\": \"{user_id}\", \"s\": ' || {last_seq} || ', \"e\": [' \
         || {} || ', ' || {} || ']}}'",
        event(first_seq, "task.created", &task_json),
        event(last_seq, "notification.created", &note_json),
    );
    format!(
        "-- taskstream POST /tasks, as service::tasks::create runs it on PostgreSQL\n\
         BEGIN;\n\
         INSERT INTO tasks (user_id, title, description, completed, priority, due_date, created_at, updated_at) \
         VALUES ('{user_id}', 'Load test task', 'Created by taskstream-load', false, 'MEDIUM', NULL, now(), now()) \
         RETURNING id, user_id, title, description, completed, priority, due_date, is_deleted, deleted_at, created_at, updated_at \\gset t_\n\
         INSERT INTO notifications (user_id, kind, title, message, task_id, created_at) \
         VALUES ('{user_id}', 'TASK_CREATED', 'Task created', 'Task \"Load test task\" was created.', CAST(:t_id AS bigint), now()) \
         RETURNING id, user_id, kind, title, message, is_read, task_id, created_at \\gset n_\n\
         UPDATE users SET last_event_seq = last_event_seq + 2 WHERE id = '{user_id}' \
         RETURNING last_event_seq, to_json(now()) #>> '{{}}' AS at \\gset\n\
         INSERT INTO events (user_id, seq, kind, at, data) VALUES \
         ('{user_id}', CAST(:last_event_seq AS bigint) - 1, 'task.created', now(), {task_json}), \
         ('{user_id}', CAST(:last_event_seq AS bigint), 'notification.created', now(), {note_json});\n\
         SELECT pg_notify('taskstream_events', {payload});\n\
         COMMIT;\n"
    )
}

async fn run_pgbench(
    program: &Path,
    database_url: &str,
    scripts: &[PathBuf],
    concurrency: usize,
    duration: u64,
    ui: Ui,
) -> anyhow::Result<PgbenchResult> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(concurrency)
        .max(1);
    let mut arguments: Vec<String> = vec![
        "--no-vacuum".into(),
        "--protocol=prepared".into(),
        format!("--client={concurrency}"),
        format!("--jobs={threads}"),
        format!("--time={duration}"),
        "--progress=1".into(),
    ];
    for script in scripts {
        arguments.push(format!("--file={}", script.display()));
    }
    let command = format!(
        "{} {} {}",
        program.display(),
        arguments.join(" "),
        redact(database_url)
    );
    arguments.push(database_url.to_string());
    let mut child = Command::new(program)
        .args(&arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("pgbench stdout"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("pgbench stderr"))?;
    let reading = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text).await;
        text
    });
    let progress = Progress::new(ui, "pgbench", Some(duration));
    let mut messages = Vec::new();
    let mut lines = BufReader::new(stderr).lines();
    let mut second = 0u64;
    let lines_done = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("progress: ") {
                second += 1;
                progress.set_position(second.min(duration));
                progress.set_message(rest.to_string());
            } else if !line.trim().is_empty() {
                messages.push(line);
                if messages.len() > 20 {
                    messages.remove(0);
                }
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(duration + 120), lines_done)
        .await
        .is_err()
    {
        let _ = child.kill().await;
        bail!("pgbench did not finish within {} s", duration + 120);
    }
    let status = child.wait().await.context("waiting for pgbench")?;
    let stdout = reading.await.unwrap_or_default();
    let mut result = parse_pgbench(&stdout);
    result.program = program.display().to_string();
    result.command = command;
    result.exit_code = status.code();
    result.messages = messages;
    progress.finish(format!(
        "{} tx/s",
        crate::report::or_na(result.tps, |t| format!("{t:.0}"))
    ));
    if !status.success() || result.tps.is_none() {
        crate::progress::warn(format!(
            "pgbench failed ({status}); it said:\n{}",
            result.messages.join("\n")
        ));
    }
    Ok(result)
}

/// Reads pgbench's closing report.
pub fn parse_pgbench(stdout: &str) -> PgbenchResult {
    let mut result = PgbenchResult::default();
    let first_number = |s: &str| -> Option<f64> {
        s.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .find(|part| !part.is_empty())
            .and_then(|n| n.parse().ok())
    };
    for line in stdout.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("number of transactions actually processed:") {
            result.transactions = first_number(rest).map(|n| n as u64);
        } else if let Some(rest) = line.strip_prefix("number of failed transactions:") {
            result.failed_transactions = first_number(rest).map(|n| n as u64);
        } else if let Some(rest) = line.strip_prefix("latency average =") {
            result.latency_avg_ms = first_number(rest);
        } else if let Some(rest) = line.strip_prefix("tps =") {
            // The first `tps =` line is the whole run's (per-script lines are indented
            // differently in some versions: keep the first).
            if result.tps.is_none() {
                result.tps = first_number(rest);
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pgbench_report() {
        let out = "\
transaction type: multiple scripts
scaling factor: 1
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 12345
number of failed transactions: 0 (0.000%)
latency average = 3.236 ms
latency stddev = 1.100 ms
initial connection time = 12.345 ms
tps = 2469.123456 (without initial connection time)
SQL script 1: /tmp/x/create-task-0.sql
 - weight: 1 (targets 50.0% of total)
 - 6170 transactions (50.0% of total, tps = 1234.000000)
";
        let r = parse_pgbench(out);
        assert_eq!(r.transactions, Some(12345));
        assert_eq!(r.failed_transactions, Some(0));
        assert_eq!(r.latency_avg_ms, Some(3.236));
        assert_eq!(r.tps, Some(2469.123456));
    }

    #[test]
    fn scripts_have_no_stray_variables() {
        let script = create_task_script("0b7a1a6e-3c1d-4c57-9b43-4f0f4b7b7f00", "origin");
        // Every `:name` pgbench would substitute must be one the script sets.
        let known = ["t_id", "n_id", "last_event_seq", "at"];
        let bytes = script.as_bytes();
        for (i, _) in script.match_indices(':') {
            let name: String = script[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.is_empty() || (i > 0 && bytes[i - 1] == b':') {
                continue;
            }
            assert!(known.contains(&name.as_str()), "stray variable :{name}");
        }
        assert!(script.contains("\\gset t_"));
        assert!(script.trim_end().ends_with("COMMIT;"));
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/tasks"),
            "postgres://app:***@db:5432/tasks"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
    }
}
