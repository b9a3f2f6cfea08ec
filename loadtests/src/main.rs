//! `taskstream-load`: the command line over the scenarios in the library.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use taskstream_load::bare_ws::{self, BareWsArgs};
use taskstream_load::progress::Ui;
use taskstream_load::report::{self, OutputArgs, ScenarioReport};
use taskstream_load::scenario::abuse::{self, AbuseArgs};
use taskstream_load::scenario::connections::{self, ConnectionsArgs};
use taskstream_load::scenario::fanout::{self, FanoutArgs};
use taskstream_load::scenario::limit::{self, LimitArgs};
use taskstream_load::scenario::reminders::{self, RemindersArgs};
use taskstream_load::scenario::rest::{self, RestArgs};
use taskstream_load::scenario::team_fanout::{self, TeamFanoutArgs};
use taskstream_load::scenario::team_write::{self, TeamWriteArgs};
use taskstream_load::sys;

const ABOUT: &str = "Load generator for taskstream: WebSocket connections, event fan-out, \
                     the REST mix, the server against its database's limit, abuse, \
                     due-date reminders, and projects (team fan-out, presence churn, write \
                     cost by team size).";

const LONG_ABOUT: &str = "\
Load generator for taskstream: WebSocket connections, event fan-out, the REST mix, the
server against its database's limit, abuse, due-date reminders, and projects (team fan-out,
presence churn, write cost by team size).

Every scenario signs up its own users (random names, so runs never collide), shows progress
on stderr, writes a JSON result (--out, default loadtest-<scenario>-<timestamp>.json) and
prints a one-line summary on stdout. The exit code is 0 when the run passed, 1 when it ran
but failed its criteria (e.g. fanout lost, duplicated or reordered an event), 2 on error.

Preparing the server for a load run:
  ARGON2_MEMORY_KIB=256 ARGON2_ITERATIONS=1   cheap password hashing, so that sign-ups do
                                              not dominate (never in production)
  WS_MAX_CONNECTIONS_PER_USER (default 20)    sockets per user; pass the same number as
                                              --max-per-user
  WS_MAX_CONNECTIONS (default 20000)          sockets per instance
  METRICS_BIND (default 127.0.0.1:9091)       where `connections` reads the server's RSS,
                                              open files and socket gauge (--metrics);
                                              without it, --server-pid reads /proc
  e.g.  ARGON2_MEMORY_KIB=256 ARGON2_ITERATIONS=1 DATA_DIR=/tmp/lt target/release/taskstream

Open files: the tool raises its soft RLIMIT_NOFILE to the hard limit and reports it. Each
socket is a file on both sides: `connections` spreads its sockets over worker processes
(--workers) and over source addresses 127.0.0.2, 127.0.0.3, ... (--source-addrs) so one
machine can open tens of thousands of sockets to one server; the server process needs a
limit above its socket count too. Measure memory per socket on a freshly started server:
the allocator keeps what earlier runs used, so later deltas come out too small (or < 0).

abuse and `rest --source-block` give clients their own addresses on 127/8 (Linux routes it
all to lo) so that the server's per-address limits treat them as distinct machines; abuse
passes when the honest users got no error, no attack signed in, and the honest p99 under
attack is at most twice its baseline. Run its server with the default RATE_LIMITS and
argon2 parameters: those are what it measures.

fanout passes when some writes succeeded, every client connected, and every client's
stream held exactly its user's seqs (none lost, duplicated or out of order); clients closed
with 4008 or 1012 (or dropped) resume with ?since=<last seq> and are counted as reconnects.
limit writes real tasks (through pgbench) for the users it signs up on that database.
reminders gives every task a due date so that its TASK_DUE_SOON reminder (due_date minus
the servers' REMINDER_LEAD, which --lead must equal) falls in a --window seconds long that
opens --setup seconds after task creation starts; it passes when every task was created,
every reminder arrived exactly once (on the sockets, and in the REST audit of the users'
notifications), none fired early, and every socket's stream was whole. Run the servers with
RATE_LIMITS=off (each user creates its tasks far above the write budget).
team-fanout, presence-churn and team-write-cost need PostgreSQL (--database-url, the
servers' DATABASE_URL, and psql): users sign up and owners create projects through the API,
the other members are written into project_members with SQL (no events, no invitations),
and the setup waits for the outbox to empty before anything is measured. team-fanout passes
when every client connected and both of each client's streams (its project's and its own)
held exactly their seqs; its targets (p99 < 15 ms; with churn, p99 at most +20 %) are
reported, not enforced. team-write-cost passes when every create succeeded; its ratio
(target >= 0.9) is reported. Run its server with MAX_TASKS_PER_PROJECT above what the
phases create (default 10,000).
Plots need a build with the `plot` feature (loadtests/bench.sh builds it) and a TrueType
font: DejaVu Sans or Liberation Sans from the usual system folders, or
TASKSTREAM_LOAD_FONT=/path/to/font.ttf (`none`: no text); nothing is downloaded.

Examples:
  taskstream-load connections --count 19000 --workers 2
  taskstream-load fanout --clients 2000 --users 200 --rate 100 --duration 30 --plot fanout.png
  taskstream-load fanout --clients 400 --users 40 --rate 50 --duration 10 \\
      --instances http://127.0.0.1:8080,http://127.0.0.1:8081
  taskstream-load rest --concurrency 32 --duration 20 --plot rest.png
  taskstream-load limit --database-url postgres://postgres@127.0.0.1:5432/taskstream
  taskstream-load rest --concurrency 64 --source-block 50   (one source address per user)
  taskstream-load abuse --baseline 20 --attack 20            (server with its default limits)
  taskstream-load reminders --tasks 100000 --users 1000 --window 60 --lead 3600 --setup 180 \\
      --instances http://127.0.0.1:8080,http://127.0.0.1:8081
  taskstream-load team-fanout --projects 200 --members 50 --rate 500 --duration 30 \\
      --instances http://127.0.0.1:8080,http://127.0.0.1:8081 --database-url postgres://...
  taskstream-load presence-churn --churn-rate 1000 --phase 15 --duration 60 \\
      --instances http://127.0.0.1:8080,http://127.0.0.1:8081 --database-url postgres://...
  taskstream-load bare-ws --bind 127.0.0.1:8090 &   (then presence-churn ... --churn-url
      http://127.0.0.1:8090: the same churn against a server that does nothing)
  taskstream-load team-write-cost --members 1000 --rounds 3 --phase 10 --database-url postgres://...";

#[derive(Debug, Parser)]
#[command(name = "taskstream-load", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Open N authenticated WebSockets to one instance and hold them: connect rate,
    /// failures, server RSS per connection.
    Connections {
        #[command(flatten)]
        args: ConnectionsArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// N clients over U users check their event streams while writers make R mutations
    /// per second: delivered / lost / duplicated / out-of-order, end-to-end latency.
    Fanout {
        #[command(flatten)]
        args: FanoutArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A realistic REST mix (or creates only) at C concurrent workers: per-route
    /// throughput, latency percentiles, errors.
    Rest {
        #[command(flatten)]
        args: RestArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// pgbench running the server's task-create transaction on its PostgreSQL, then the
    /// server creating tasks at the same concurrency: the ratio server/pgbench.
    Limit {
        #[command(flatten)]
        args: LimitArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Honest users' REST p99 alone, then while attackers flood sign-in from many
    /// addresses, hold tokenless WebSockets and upload PNG bombs: the ratio (target 2x at
    /// most) and what each attack was answered.
    Abuse {
        #[command(flatten)]
        args: AbuseArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// T tasks whose due-date reminders all fall in one window, one socket per user:
    /// lag from `remind_at` to receipt, reminders fired per second, lost and duplicates.
    Reminders {
        #[command(flatten)]
        args: RemindersArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// P projects of M members (one socket each, `?projects=true`) over the instances,
    /// R project-task writes per second: every client's project and own streams checked
    /// by seq, commit-to-client latency (PostgreSQL; members added with SQL).
    TeamFanout {
        #[command(flatten)]
        args: TeamFanoutArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// team-fanout with sockets joining and leaving projects (--churn-rate per second) in
    /// every other --phase: p99 delivery without and with the churn, from one run.
    PresenceChurn {
        #[command(flatten)]
        args: TeamFanoutArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Task creation in a project of --members members against a project of one,
    /// alternating phases on one server: the ratio (target 0.9 or more).
    TeamWriteCost {
        #[command(flatten)]
        args: TeamWriteArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A WebSocket server that accepts any upgrade, says `ready` and does nothing else:
    /// point `presence-churn --churn-url` at it to measure what the connects alone cost
    /// the machine (the floor no server can go below).
    #[command(name = "bare-ws")]
    BareWs {
        #[command(flatten)]
        args: BareWsArgs,
    },
    /// A `connections` worker process (started by `connections --workers N`).
    #[command(name = "connections-worker", hide = true)]
    ConnectionsWorker,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any socket: every scenario may need more than the default 1024.
    sys::raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn ui(output: &OutputArgs) -> Ui {
    Ui {
        progress: !output.quiet,
    }
}

/// Runs the scenario and reports; `Ok(passed)`.
async fn run(scenario: Scenario) -> anyhow::Result<bool> {
    if let Scenario::Connections { output, .. }
    | Scenario::Fanout { output, .. }
    | Scenario::Rest { output, .. }
    | Scenario::Limit { output, .. }
    | Scenario::Abuse { output, .. }
    | Scenario::Reminders { output, .. }
    | Scenario::TeamFanout { output, .. }
    | Scenario::PresenceChurn { output, .. }
    | Scenario::TeamWriteCost { output, .. } = &scenario
    {
        output.check()?;
    }
    match scenario {
        Scenario::Connections { args, output } => {
            let report = connections::run(&args, ui(&output)).await?;
            report::finish(&report, &output, None)?;
            Ok(report.passed())
        }
        Scenario::Fanout { args, output } => {
            let (report, plot) = fanout::run(&args, ui(&output)).await?;
            report::finish(&report, &output, Some(&plot))?;
            Ok(report.passed())
        }
        Scenario::Rest { args, output } => {
            let (report, plot) = rest::run(&args, ui(&output)).await?;
            report::finish(&report, &output, Some(&plot))?;
            Ok(report.passed())
        }
        Scenario::Limit { args, output } => {
            let report = limit::run(&args, ui(&output)).await?;
            report::finish(&report, &output, None)?;
            Ok(report.passed())
        }
        Scenario::Abuse { args, output } => {
            let (report, plot) = abuse::run(&args, ui(&output)).await?;
            report::finish(&report, &output, Some(&plot))?;
            Ok(report.passed())
        }
        Scenario::Reminders { args, output } => {
            let (report, plot) = reminders::run(&args, ui(&output)).await?;
            report::finish(&report, &output, Some(&plot))?;
            Ok(report.passed())
        }
        Scenario::TeamFanout { args, output } => {
            let (report, plot) = team_fanout::run(&args, "team-fanout", ui(&output)).await?;
            report::finish(&report, &output, Some(&plot))?;
            Ok(report.passed())
        }
        Scenario::PresenceChurn { args, output } => {
            if args.churn_rate <= 0.0 || args.phase == 0 {
                anyhow::bail!(
                    "presence-churn needs --churn-rate (e.g. 1000) and --phase (e.g. 15): \
                     the phases without churn are its baseline"
                );
            }
            let (report, plot) = team_fanout::run(&args, "presence-churn", ui(&output)).await?;
            report::finish(&report, &output, Some(&plot))?;
            Ok(report.passed())
        }
        Scenario::TeamWriteCost { args, output } => {
            let report = team_write::run(&args, ui(&output)).await?;
            report::finish(&report, &output, None)?;
            Ok(report.passed())
        }
        Scenario::BareWs { args } => {
            bare_ws::run(&args).await?;
            Ok(true)
        }
        Scenario::ConnectionsWorker => {
            connections::worker_main().await?;
            Ok(true)
        }
    }
}
