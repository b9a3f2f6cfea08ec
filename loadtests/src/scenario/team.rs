//! Teams for the project benchmarks (`team-fanout`, `presence-churn`, `team-write-cost`):
//! users, projects and memberships, made before anything is measured.
//!
//! Users sign up and owners create their projects through the API, as anyone would. The
//! other members are written straight into `project_members` with `psql`: through the API
//! each would take an invitation, a verified address (a mailed link) and an acceptance,
//! which for 10,000 members is most of an hour of setup and nothing the benchmarks
//! measure. A member added this way is what an accepted invitation leaves behind (the
//! `project_members` row, role `editor`, joined at the project's current seq) without
//! its events (`member.added`, `project.joined`) and notification; the sockets connect
//! afterwards, so none of them expects those events. Then the setup waits until the
//! servers' outbox (the welcome mails of the sign-ups) is empty, so that the measured
//! phase does not share the machine with it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use serde::Serialize;

use crate::client::{sign_up_users, Account, Api};
use crate::metrics::{delta, ServerProbe};
use crate::pg::Psql;
use crate::progress::{warn, Progress, Ui};
use crate::sys::{load_average, CpuTimes, Rng};

/// Who belongs where.
#[derive(Debug, Clone, Default)]
pub struct TeamPlan {
    /// Users to sign up (indices 0..users).
    pub users: usize,
    /// Each project's owner (a user index): the owner creates the project through the API.
    pub owners: Vec<usize>,
    /// (project index, user index): the other members, added with SQL as editors.
    pub members: Vec<(usize, usize)>,
}

/// What the setup made.
#[derive(Debug, Clone)]
pub struct Teams {
    pub accounts: Vec<Account>,
    /// Project ids, by project index.
    pub projects: Vec<String>,
    pub stats: SetupStats,
}

/// How the setup went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetupStats {
    pub users: usize,
    pub projects: usize,
    /// Members written with SQL (owners not included).
    pub memberships_by_sql: usize,
    pub signup_seconds: f64,
    pub projects_seconds: f64,
    pub sql_seconds: f64,
    /// Waiting for the outbox (welcome mails) to empty.
    pub outbox_seconds: f64,
    /// Deliveries still pending when the wait gave up (0 normally).
    pub outbox_pending_at_start: i64,
}

/// Most seconds to wait for the outbox.
const OUTBOX_WAIT: Duration = Duration::from_secs(600);

/// Signs the users up, creates the projects and adds the members; see the module docs.
pub async fn build(
    apis: &[Api],
    psql: &Psql,
    plan: &TeamPlan,
    signup_concurrency: usize,
    ui: Ui,
) -> anyhow::Result<Teams> {
    if apis.is_empty() {
        bail!("no instance");
    }
    let mut stats = SetupStats {
        users: plan.users,
        projects: plan.owners.len(),
        memberships_by_sql: plan.members.len(),
        ..SetupStats::default()
    };
    let t = Instant::now();
    let accounts = sign_up_users(apis, plan.users, signup_concurrency, ui).await?;
    stats.signup_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let tag = Rng::from_entropy(plan.owners.len() as u64).letters(6);
    let progress = Progress::new(ui, "projects", Some(plan.owners.len() as u64));
    let done = Arc::new(AtomicU64::new(0));
    let results: Vec<anyhow::Result<String>> =
        futures_util::stream::iter(plan.owners.iter().enumerate())
            .map(|(p, &owner)| {
                let api = apis[p % apis.len()].clone();
                let token = accounts[owner].token.clone();
                let name = format!("Load team {tag} {p}");
                let (progress, done) = (&progress, done.clone());
                async move {
                    let id = api.create_project(&token, &name).await;
                    progress.set_position(done.fetch_add(1, Ordering::Relaxed) + 1);
                    id
                }
            })
            .buffered(signup_concurrency.max(1))
            .collect()
            .await;
    let projects = results
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()
        .context("creating the projects")?;
    progress.finish(format!("{} projects", projects.len()));
    stats.projects_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    if !plan.members.is_empty() {
        let progress = Progress::new(ui, "members (SQL)", None);
        let rows: Vec<(&str, &str)> = plan
            .members
            .iter()
            .map(|&(p, u)| (projects[p].as_str(), accounts[u].id.as_str()))
            .collect();
        psql.run(&membership_script(&rows))
            .await
            .context("adding the members with SQL")?;
        let ids = projects
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",");
        let count: usize = psql
            .scalar(&format!(
                "SELECT count(*) FROM project_members WHERE project_id IN ({ids})"
            ))
            .await?
            .parse()
            .context("counting the members")?;
        let expected = plan.members.len() + plan.owners.len();
        if count != expected {
            bail!("the projects have {count} members, {expected} expected");
        }
        progress.finish(format!("{} members added", plan.members.len()));
    }
    stats.sql_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    stats.outbox_pending_at_start = wait_for_outbox(psql, ui).await?;
    stats.outbox_seconds = t.elapsed().as_secs_f64();
    Ok(Teams {
        accounts,
        projects,
        stats,
    })
}

/// The SQL that adds `rows` (project id, user id) as editors, joined at each project's
/// current seq, in one transaction; then fresh planner statistics for the tables the
/// setup filled.
pub fn membership_script(rows: &[(&str, &str)]) -> String {
    let mut script = String::from(
        "BEGIN;\n\
         CREATE TEMP TABLE load_members (project_id uuid, user_id uuid) ON COMMIT DROP;\n\
         COPY load_members FROM STDIN WITH (FORMAT csv);\n",
    );
    for (project, user) in rows {
        script.push_str(project);
        script.push(',');
        script.push_str(user);
        script.push('\n');
    }
    script.push_str(
        "\\.\n\
         INSERT INTO project_members (project_id, user_id, role, joined_seq, created_at)\n\
         SELECT m.project_id, m.user_id, 'editor', p.last_event_seq, now()\n\
         FROM load_members m JOIN projects p ON p.id = m.project_id;\n\
         COMMIT;\n\
         ANALYZE users;\nANALYZE projects;\nANALYZE project_members;\n",
    );
    script
}

/// Waits until no delivery is pending (or `OUTBOX_WAIT`); returns how many still are.
async fn wait_for_outbox(psql: &Psql, ui: Ui) -> anyhow::Result<i64> {
    let progress = Progress::new(ui, "outbox", None);
    let deadline = Instant::now() + OUTBOX_WAIT;
    loop {
        let pending: i64 = psql
            .scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'")
            .await?
            .parse()
            .context("counting pending deliveries")?;
        progress.set_message(format!("{pending} deliveries pending"));
        if pending == 0 {
            progress.finish("empty");
            return Ok(0);
        }
        if Instant::now() >= deadline {
            progress.finish(format!("{pending} still pending"));
            warn(format!(
                "{pending} deliveries still pending after {} s; measuring anyway",
                OUTBOX_WAIT.as_secs()
            ));
            return Ok(pending);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The machine and the processes over a measured phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MachineState {
    /// 1, 5 and 15 minute load averages when the phase began and ended.
    pub load_before: Option<[f64; 3]>,
    pub load_after: Option<[f64; 3]>,
    /// Share of both cores busy over the phase (every process on the machine).
    pub busy_share: Option<f64>,
    pub seconds: f64,
    /// CPU seconds of this load tool over the phase.
    pub tool_cpu_s: Option<f64>,
    /// CPU seconds of each instance over the phase (from its metrics listener), by URL.
    pub server_cpu_s: BTreeMap<String, Option<f64>>,
}

/// Readings at the start of a phase; [`MachineProbe::finish`] turns them into a
/// [`MachineState`].
pub struct MachineProbe {
    probes: Vec<(String, ServerProbe)>,
    tool: ServerProbe,
    start: Instant,
    load: Option<[f64; 3]>,
    cpu: Option<CpuTimes>,
    tool_cpu: Option<f64>,
    server_cpu: Vec<Option<f64>>,
}

impl MachineProbe {
    /// `metrics`: the instances' metrics listeners (`http://127.0.0.1:9091`), if any.
    pub async fn start(metrics: &[String]) -> Self {
        let probes: Vec<(String, ServerProbe)> = metrics
            .iter()
            .filter(|m| !m.trim().is_empty())
            .map(|m| (m.clone(), ServerProbe::new(m, None)))
            .collect();
        let tool = ServerProbe::new("", Some(std::process::id()));
        let mut server_cpu = Vec::new();
        for (_, probe) in &probes {
            server_cpu.push(probe.sample().await.cpu_seconds);
        }
        Self {
            tool_cpu: tool.sample().await.cpu_seconds,
            probes,
            tool,
            start: Instant::now(),
            load: load_average(),
            cpu: CpuTimes::read(),
            server_cpu,
        }
    }

    pub async fn finish(&self) -> MachineState {
        let mut server_cpu_s = BTreeMap::new();
        for ((url, probe), before) in self.probes.iter().zip(&self.server_cpu) {
            server_cpu_s.insert(
                url.clone(),
                delta(*before, probe.sample().await.cpu_seconds),
            );
        }
        let busy_share = match (self.cpu, CpuTimes::read()) {
            (Some(before), Some(after)) => before.busy_share(&after),
            _ => None,
        };
        MachineState {
            load_before: self.load,
            load_after: load_average(),
            busy_share,
            seconds: self.start.elapsed().as_secs_f64(),
            tool_cpu_s: delta(self.tool_cpu, self.tool.sample().await.cpu_seconds),
            server_cpu_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_membership_script_copies_every_row() {
        let script = membership_script(&[("p1", "u1"), ("p1", "u2")]);
        assert!(script.contains("COPY load_members FROM STDIN"));
        assert!(script.contains("p1,u1\np1,u2\n\\.\n"));
        assert!(script.contains("'editor', p.last_event_seq"));
        assert!(script.trim_end().ends_with("ANALYZE project_members;"));
    }
}
