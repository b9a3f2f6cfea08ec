//! PostgreSQL's own client programs (`psql`, `pgbench`), run as child processes: the load
//! tool reaches a server's database only for what a benchmark's setup cannot do through
//! the API in reasonable time (and `limit`'s pgbench), never during a measured phase.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{anyhow, bail, Context};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// `explicit`, else `name` on PATH, else the newest /usr/lib/postgresql/*/bin/`name`.
pub fn find_program(name: &str, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("{} does not exist", path.display());
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let path = entry.path().join("bin").join(name);
            path.is_file().then_some((version, path))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, path)| path).ok_or_else(|| {
        anyhow!(
            "{name} not found on PATH or under /usr/lib/postgresql/*/bin \
             (Debian: apt-get install postgresql-client), or pass its path"
        )
    })
}

/// The database URL with its password hidden.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `psql` against one database.
#[derive(Debug, Clone)]
pub struct Psql {
    program: PathBuf,
    url: String,
}

impl Psql {
    /// `url` must be a `postgres://` URL (the servers' `DATABASE_URL`).
    pub fn new(url: &str, explicit: Option<&Path>) -> anyhow::Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!("--database-url must be a postgres:// URL (the servers' database)");
        }
        Ok(Self {
            program: find_program("psql", explicit)?,
            url: url.to_string(),
        })
    }

    /// Runs `script` (read from standard input, so it may carry `COPY … FROM STDIN` data
    /// inline), stopping at the first error; returns what it printed (unaligned, tuples
    /// only).
    pub async fn run(&self, script: &str) -> anyhow::Result<String> {
        let mut child = Command::new(&self.program)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .arg(&self.url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        let mut stdin = child.stdin.take().context("psql's standard input")?;
        let input = script.as_bytes().to_vec();
        let writer = tokio::spawn(async move {
            let written = stdin.write_all(&input).await;
            drop(stdin);
            written
        });
        let output = child.wait_with_output().await.context("waiting for psql")?;
        writer
            .await
            .context("writing to psql")?
            .context("writing to psql")?;
        if !output.status.success() {
            bail!(
                "psql on {} failed ({}): {}",
                redact(&self.url),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// One value (the first line of the output).
    pub async fn scalar(&self, query: &str) -> anyhow::Result<String> {
        let out = self.run(&format!("{query};\n")).await?;
        Ok(out.lines().next().unwrap_or_default().trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgres://me:secret@db:5432/x"),
            "postgres://me:***@db:5432/x"
        );
        assert_eq!(redact("postgres://me@db/x"), "postgres://me@db/x");
    }
}
