//! `abuse`: honest users run a paced REST mix, first alone (the baseline), then while
//! attackers flood sign-in from many addresses, open WebSockets that never authenticate,
//! and upload PNG bombs. Reports the honest users' p99 in both phases, their ratio (the
//! target is 2x at most), and what each attack was answered.
//!
//! Every client gets its own loopback address (`127.<block>.x.y`, one block per role), so
//! the server's per-address limits see the attack as coming from many machines, and the
//! honest users as distinct ones, as they would in production.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::Utc;
use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::bomb;
use crate::client::{sign_up_users, upgrade_ws, Api, WsTarget};
use crate::progress::{Progress, Ui};
use crate::report::{self, bump, Counts, PlotData, ScenarioReport};
use crate::scenario::rest::{self, Load, RestReport};
use crate::sys::{loopback, Rng, UnmeasuredLoad};
use crate::workload::Mix;
use crate::DEFAULT_URL;

/// Address blocks (`127.<block>.x.y`) of the roles.
const HONEST_BLOCK: u8 = 11;
const SIGNIN_BLOCK: u8 = 21;
const SOCKET_BLOCK: u8 = 31;
const BOMB_BLOCK: u8 = 41;

/// The most the honest p99 under attack may be, as a multiple of its baseline.
pub const TARGET_RATIO: f64 = 2.0;

#[derive(Debug, Clone, Args)]
pub struct AbuseArgs {
    /// Base URL of the server.
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// Honest users, one worker each, each from its own address.
    #[arg(long, default_value_t = 32)]
    pub honest_users: usize,
    /// Honest requests per second, all users together (paced: an open loop per user).
    #[arg(long, default_value_t = 200.0)]
    pub honest_rate: f64,
    /// Seconds of honest load alone (the baseline).
    #[arg(long, default_value_t = 20)]
    pub baseline: u64,
    /// Seconds of honest load while the attacks run.
    #[arg(long, default_value_t = 20)]
    pub attack: u64,
    /// Sign-in attempts per second (0: no sign-in flood), with wrong passwords for random
    /// e-mail addresses.
    #[arg(long, default_value_t = 400.0)]
    pub signin_rate: f64,
    /// Concurrent sign-in flooders.
    #[arg(long, default_value_t = 64)]
    pub signin_workers: usize,
    /// Source addresses the sign-in flood rotates through.
    #[arg(long, default_value_t = 4000)]
    pub signin_addresses: usize,
    /// Attempts from one address before moving to the next (the default per-address
    /// budget is 50 per 15 minutes: a patient attacker stays under it).
    #[arg(long, default_value_t = 50)]
    pub signin_per_address: usize,
    /// Tokenless WebSocket upgrades per second (0: no socket flood); each socket is held
    /// open, never authenticating, until the server closes it or the attack ends.
    #[arg(long, default_value_t = 200.0)]
    pub socket_rate: f64,
    /// Source addresses the socket flood rotates through.
    #[arg(long, default_value_t = 500)]
    pub socket_addresses: usize,
    /// Most sockets the flood holds at once.
    #[arg(long, default_value_t = 4000)]
    pub socket_max_held: usize,
    /// Attacker accounts uploading photo bombs (0: none), each signed up from its own
    /// address.
    #[arg(long, default_value_t = 16)]
    pub bomb_accounts: usize,
    /// Uploads per second, all attacker accounts together.
    #[arg(long, default_value_t = 20.0)]
    pub bomb_rate: f64,
    /// Side of the real (all-zero, valid) bomb; the others only declare 8192x8192 and
    /// 20000x20000. The server's default PHOTO_MAX_PIXELS is 4096x4096.
    #[arg(long, default_value_t = 4096)]
    pub bomb_side: u32,
    /// The attackers run on a runtime of their own whose threads have this nice value
    /// (0-19; Linux). Their CPU is the attacker's, on another machine in production: here,
    /// on one machine, the attack's own client work would otherwise compete with the
    /// honest clients and the server for the same cores. The server's side of the attack
    /// (its handling of every request and socket) is unaffected. `--attack-nice 0` runs
    /// them on the honest clients' runtime, as before.
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub attack_nice: i32,
}

impl AbuseArgs {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            honest_users: 32,
            honest_rate: 200.0,
            baseline: 20,
            attack: 20,
            signin_rate: 400.0,
            signin_workers: 64,
            signin_addresses: 4000,
            signin_per_address: 50,
            socket_rate: 200.0,
            socket_addresses: 500,
            socket_max_held: 4000,
            bomb_accounts: 16,
            bomb_rate: 20.0,
            bomb_side: 4096,
            attack_nice: 19,
        }
    }
}

/// What one attack did and what it was answered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttackReport {
    pub attempts: u64,
    /// Answers by HTTP status (or transport failure), e.g. `"429": 812`.
    pub answers: Counts,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SocketFloodReport {
    /// Upgrades tried; `answers` says how each went (`101` = upgraded and held).
    pub attempts: u64,
    pub answers: Counts,
    /// How the held sockets ended: the server's close code, or `held to the end`.
    pub held_sockets_ended: Counts,
    pub most_held_at_once: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttacksReport {
    pub signin: AttackReport,
    pub sockets: SocketFloodReport,
    /// Keyed `<kind> <answer>`, e.g. `4096x4096 (decoded) 200`, `20000x20000 (declared) 422`.
    pub uploads: AttackReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct AbuseReport {
    pub scenario: &'static str,
    pub started_at: String,
    pub url: String,
    pub honest_users: usize,
    pub honest_rate: f64,
    /// The nice value of the attackers' threads (0: on the honest clients' runtime).
    pub attack_nice: i32,
    pub baseline: RestReport,
    pub under_attack: RestReport,
    /// Honest p99 under attack / honest p99 alone.
    pub p99_ratio: f64,
    pub target_ratio: f64,
    pub attacks: AttacksReport,
    /// The honest users got no error in either phase, no attack signed in or stored a
    /// bomb of declared size, and the ratio is within the target.
    pub passed: bool,
}

impl ScenarioReport for AbuseReport {
    fn scenario(&self) -> &'static str {
        "abuse"
    }

    fn summary(&self) -> String {
        let answers = |c: &Counts| {
            c.iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "abuse: honest p99 {} alone, {} under attack: {:.2}x (target <= {TARGET_RATIO}x); \
             honest errors {} / {}; sign-in flood {} [{}]; socket flood {} [{}], held sockets \
             ended [{}]; uploads {} [{}] => {}",
            report::fmt_ms(self.baseline.latency.p99_ms),
            report::fmt_ms(self.under_attack.latency.p99_ms),
            self.p99_ratio,
            self.baseline.errors,
            self.under_attack.errors,
            self.attacks.signin.attempts,
            answers(&self.attacks.signin.answers),
            self.attacks.sockets.attempts,
            answers(&self.attacks.sockets.answers),
            answers(&self.attacks.sockets.held_sockets_ended),
            self.attacks.uploads.attempts,
            answers(&self.attacks.uploads.answers),
            if self.passed { "PASS" } else { "FAIL" }
        )
    }

    fn passed(&self) -> bool {
        self.passed
    }
}

/// Counts shared by an attack's workers (a lock per answer is nothing at these rates).
type Tally = Arc<Mutex<Counts>>;

fn tally_bump(tally: &Tally, key: impl Into<String>) {
    if let Ok(mut counts) = tally.lock() {
        bump(&mut counts, key);
    }
}

fn tally_take(tally: &Tally) -> Counts {
    tally.lock().map(|c| c.clone()).unwrap_or_default()
}

/// `workers` loops until `until`, together starting `rate` calls per second on a fixed
/// schedule; `call(worker, n)` makes call `n` of that worker.
async fn paced<F, Fut>(workers: usize, rate: f64, until: Instant, call: F)
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    if rate <= 0.0 || workers == 0 {
        return;
    }
    let interval = Duration::from_secs_f64(workers as f64 / rate);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..workers {
        let call = call.clone();
        set.spawn(async move {
            let mut at = start + interval.mul_f64(w as f64 / workers as f64);
            let mut n = 0;
            while at < until {
                tokio::time::sleep_until(at.into()).await;
                call(w, n).await;
                n += 1;
                at += interval;
            }
        });
    }
    while set.join_next().await.is_some() {}
}

pub async fn run(args: &AbuseArgs, ui: Ui) -> anyhow::Result<(AbuseReport, PlotData)> {
    if args.honest_users == 0 || args.honest_rate <= 0.0 || args.baseline == 0 || args.attack == 0 {
        bail!("--honest-users, --honest-rate, --baseline and --attack must be above 0");
    }
    let started_at = Utc::now().to_rfc3339();
    let honest_apis = Api::per_source(
        &args.url,
        &(0..args.honest_users)
            .map(|i| loopback(HONEST_BLOCK, i))
            .collect::<Vec<_>>(),
    )?;
    let honest = sign_up_users(&honest_apis, args.honest_users, 8, ui).await?;
    let bomb_apis = Api::per_source(
        &args.url,
        &(0..args.bomb_accounts)
            .map(|i| loopback(BOMB_BLOCK, i))
            .collect::<Vec<_>>(),
    )?;
    let bombers = if args.bomb_accounts > 0 {
        sign_up_users(&bomb_apis, args.bomb_accounts, 8, ui).await?
    } else {
        Vec::new()
    };
    let load = |seconds: u64| Load {
        concurrency: args.honest_users,
        duration: Duration::from_secs(seconds),
        mix: Mix::realistic(),
        pace: Some(Duration::from_secs_f64(
            args.honest_users as f64 / args.honest_rate,
        )),
    };

    let (baseline, _) = rest::run_load(&honest_apis, &honest, &load(args.baseline), ui).await?;

    // The attacks start a second before the honest load's second phase (so it runs
    // entirely under attack) and stop when it ends.
    let lead = Duration::from_secs(1);
    let until = Instant::now() + lead + Duration::from_secs(args.attack);
    let progress = Progress::new(ui, "attacks", None);
    progress.set_message("sign-in flood, socket flood, upload bombs");
    let attackers = UnmeasuredLoad::start("attacker", args.attack_nice)?;
    let signin = spawn_signin_flood(args, until, attackers.handle());
    let sockets = spawn_socket_flood(args, until, attackers.handle()).await?;
    let uploads = spawn_upload_bombs(args, bomb_apis, bombers, until, attackers.handle());
    tokio::time::sleep(lead).await;
    let (under_attack, plot) =
        rest::run_load(&honest_apis, &honest, &load(args.attack), ui).await?;
    let signin = signin.await?;
    let sockets = sockets.await?;
    let uploads = uploads.await?;
    attackers.stop();
    progress.finish(format!(
        "{} sign-ins, {} upgrades, {} uploads",
        signin.attempts, sockets.attempts, uploads.attempts
    ));

    let p99_ratio = if baseline.latency.p99_ms > 0.0 {
        under_attack.latency.p99_ms / baseline.latency.p99_ms
    } else {
        f64::INFINITY
    };
    let attack_succeeded = signin.answers.contains_key("200")
        || uploads
            .answers
            .iter()
            .any(|(k, _)| k.contains("(declared)") && k.ends_with(" 200"));
    let passed = baseline.requests > 0
        && under_attack.requests > 0
        && baseline.errors == 0
        && under_attack.errors == 0
        && !attack_succeeded
        && p99_ratio <= TARGET_RATIO;
    let report = AbuseReport {
        scenario: "abuse",
        started_at,
        url: args.url.clone(),
        honest_users: args.honest_users,
        honest_rate: args.honest_rate,
        attack_nice: args.attack_nice,
        baseline,
        under_attack,
        p99_ratio,
        target_ratio: TARGET_RATIO,
        attacks: AttacksReport {
            signin,
            sockets,
            uploads,
        },
        passed,
    };
    let plot = PlotData {
        title: "abuse: honest users under attack".into(),
        ..plot
    };
    Ok((report, plot))
}

/// A flooder's client: its source address, the attempts made from it, the client.
type SourceClient = (IpAddr, usize, Api);

/// Wrong passwords for random e-mail addresses: every attempt the server lets through
/// costs it a password verification.
fn spawn_signin_flood(
    args: &AbuseArgs,
    until: Instant,
    runtime: &tokio::runtime::Handle,
) -> tokio::task::JoinHandle<AttackReport> {
    let tally: Tally = Arc::default();
    let (workers, rate) = (args.signin_workers, args.signin_rate);
    let (addresses, per_address) = (args.signin_addresses.max(1), args.signin_per_address.max(1));
    let url = args.url.clone();
    let next_address = Arc::new(AtomicUsize::new(0));
    // Each worker keeps a client per address for `per_address` attempts, then takes the
    // next address.
    let clients: Arc<Vec<Mutex<Option<SourceClient>>>> =
        Arc::new((0..workers).map(|_| Mutex::new(None)).collect());
    let counted = tally.clone();
    runtime.spawn(async move {
        paced(workers, rate, until, move |w, n| {
            let (tally, url, next_address, clients) = (
                counted.clone(),
                url.clone(),
                next_address.clone(),
                clients.clone(),
            );
            async move {
                let api = {
                    let Ok(mut slot) = clients[w].lock() else {
                        return;
                    };
                    let fresh = match slot.as_ref() {
                        Some((_, used, _)) => *used >= per_address,
                        None => true,
                    };
                    if fresh {
                        let i = next_address.fetch_add(1, Ordering::Relaxed) % addresses;
                        let source = loopback(SIGNIN_BLOCK, i);
                        match Api::with_source(&url, Some(source)) {
                            Ok(api) => *slot = Some((source, 0, api)),
                            Err(_) => {
                                tally_bump(&tally, "client error");
                                return;
                            }
                        }
                    }
                    match slot.as_mut() {
                        Some((_, used, api)) => {
                            *used += 1;
                            api.clone()
                        }
                        None => return,
                    }
                };
                let mut rng = Rng::from_entropy((w * 1_000_003 + n) as u64);
                let email = format!("victim-{}@example.com", rng.letters(10));
                let outcome = api.signin(&email, "Wrong-Guess-42!").await;
                tally_bump(&tally, outcome.error_key());
            }
        })
        .await;
        let answers = tally_take(&tally);
        AttackReport {
            attempts: answers.values().sum(),
            answers,
        }
    })
}

/// Tokenless upgrades held open without ever authenticating.
async fn spawn_socket_flood(
    args: &AbuseArgs,
    until: Instant,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<tokio::task::JoinHandle<SocketFloodReport>> {
    let target = Arc::new(WsTarget::resolve(&args.url).await?);
    let answers: Tally = Arc::default();
    let ended: Tally = Arc::default();
    let held = Arc::new(Semaphore::new(args.socket_max_held.max(1)));
    let max_held = args.socket_max_held.max(1);
    let most = Arc::new(AtomicUsize::new(0));
    let addresses = args.socket_addresses.max(1);
    let rate = args.socket_rate;
    let next_address = Arc::new(AtomicUsize::new(0));
    let holders = Arc::new(Mutex::new(tokio::task::JoinSet::new()));
    let (a, e, m, h) = (
        answers.clone(),
        ended.clone(),
        most.clone(),
        holders.clone(),
    );
    Ok(runtime.spawn(async move {
        // Enough workers that a slow upgrade does not hold the rate back.
        let workers = ((rate / 20.0).ceil() as usize).clamp(1, 64);
        paced(workers, rate, until, move |_, _| {
            let (target, answers, ended, held, most, next_address, holders) = (
                target.clone(),
                a.clone(),
                e.clone(),
                held.clone(),
                m.clone(),
                next_address.clone(),
                h.clone(),
            );
            async move {
                let Ok(permit) = held.clone().try_acquire_owned() else {
                    tally_bump(&answers, "not tried (client at its maximum)");
                    return;
                };
                let i = next_address.fetch_add(1, Ordering::Relaxed) % addresses;
                let source = loopback(SOCKET_BLOCK, i);
                let upgrade = tokio::time::timeout(
                    Duration::from_secs(5),
                    upgrade_ws(&target, None, None, Some(source)),
                )
                .await;
                let mut ws = match upgrade {
                    Ok(Ok(ws)) => ws,
                    Ok(Err(err)) => {
                        tally_bump(&answers, err.key());
                        return;
                    }
                    Err(_) => {
                        tally_bump(&answers, "timeout");
                        return;
                    }
                };
                tally_bump(&answers, "101");
                most.fetch_max(max_held - held.available_permits(), Ordering::Relaxed);
                let hold = async move {
                    let _permit = permit;
                    let end = tokio::time::timeout_at(until.into(), async {
                        while let Some(message) = ws.next().await {
                            match message {
                                Ok(Message::Close(frame)) => {
                                    return match frame {
                                        Some(f) => format!("closed {}", u16::from(f.code)),
                                        None => "closed".to_string(),
                                    }
                                }
                                Ok(_) => continue,
                                Err(_) => return "dropped".to_string(),
                            }
                        }
                        "dropped".to_string()
                    })
                    .await
                    .unwrap_or_else(|_| "held to the end".to_string());
                    tally_bump(&ended, end);
                };
                if let Ok(mut holders) = holders.lock() {
                    holders.spawn(hold);
                }
            }
        })
        .await;
        let mut holders = match holders.lock() {
            Ok(mut holders) => std::mem::take(&mut *holders),
            Err(_) => tokio::task::JoinSet::new(),
        };
        while holders.join_next().await.is_some() {}
        let answers = tally_take(&answers);
        SocketFloodReport {
            attempts: answers.values().sum(),
            answers,
            held_sockets_ended: tally_take(&ended),
            most_held_at_once: most.load(Ordering::Relaxed),
        }
    }))
}

/// Signed-up attackers posting PNGs that decode to far more than they weigh, or that
/// declare more pixels than the server accepts.
fn spawn_upload_bombs(
    args: &AbuseArgs,
    apis: Vec<Api>,
    accounts: Vec<crate::client::Account>,
    until: Instant,
    runtime: &tokio::runtime::Handle,
) -> tokio::task::JoinHandle<AttackReport> {
    let tally: Tally = Arc::default();
    let side = args.bomb_side;
    let rate = args.bomb_rate;
    let counted = tally.clone();
    runtime.spawn(async move {
        if accounts.is_empty() {
            return AttackReport::default();
        }
        let real = format!("{side}x{side} (decoded)");
        let kinds: Arc<BTreeMap<usize, (String, Vec<u8>)>> = Arc::new(
            [
                (0, (real.clone(), bomb::zeros(side, side))),
                (
                    1,
                    (
                        "20000x20000 (declared)".to_string(),
                        bomb::declared(20_000, 20_000),
                    ),
                ),
                (2, (real, bomb::zeros(side, side))),
                (
                    3,
                    (
                        "8192x8192 (declared)".to_string(),
                        bomb::declared(8192, 8192),
                    ),
                ),
            ]
            .into_iter()
            .collect(),
        );
        let apis = Arc::new(apis);
        let accounts = Arc::new(accounts);
        let workers = accounts.len();
        paced(workers, rate, until, move |w, n| {
            let (tally, kinds, apis, accounts) = (
                counted.clone(),
                kinds.clone(),
                apis.clone(),
                accounts.clone(),
            );
            async move {
                let Some((name, bytes)) = kinds.get(&(n % 4)) else {
                    return;
                };
                let outcome = apis[w % apis.len()]
                    .upload_photo(&accounts[w].token, bytes, "bomb.png")
                    .await;
                tally_bump(&tally, format!("{name} {}", outcome.error_key()));
            }
        })
        .await;
        let answers = tally_take(&tally);
        AttackReport {
            attempts: answers.values().sum(),
            answers,
        }
    })
}
