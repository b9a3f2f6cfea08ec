//! What the load generator needs from the machine: the open-file limit, source addresses
//! on loopback, and a small random number generator.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The process's open-file limit after [`raise_fd_limit`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (an unprivileged process may go that
/// far, not beyond) and returns the limits in force. Never fails: if the limit cannot be
/// read or raised, it says what it could read.
pub fn raise_fd_limit() -> FdLimit {
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    let soft = match rlimit::increase_nofile_limit(hard) {
        Ok(raised) => raised,
        Err(_) => soft,
    };
    FdLimit { soft, hard }
}

/// Files a process keeps open besides its sockets (stdio, the runtime, the HTTP pool).
pub const FD_RESERVE: u64 = 200;

/// Client sockets one process can open under `limit`.
pub fn sockets_per_process(limit: FdLimit) -> usize {
    limit.soft.saturating_sub(FD_RESERVE).max(1) as usize
}

/// Loopback address number `index` of block `block`: 127.block.(index / 250).(index % 250 + 1),
/// so 62,500 distinct client addresses per block (Linux routes all of 127/8 to `lo`).
/// Scenarios that need clients the server tells apart by address use separate blocks.
pub fn loopback(block: u8, index: usize) -> IpAddr {
    let index = index % 62_500;
    IpAddr::V4(Ipv4Addr::new(
        127,
        block,
        (index / 250) as u8,
        (index % 250 + 1) as u8,
    ))
}

/// Source addresses to spread client sockets over: 127.0.0.2, 127.0.0.3, ... when the
/// target is on IPv4 loopback (every 127.x address is local there), none otherwise.
#[derive(Debug, Clone, Default)]
pub struct SourceAddrs {
    addrs: Vec<IpAddr>,
}

impl SourceAddrs {
    /// `count` addresses for `target`; 0 (or a target off loopback) means "let the kernel
    /// choose".
    pub fn for_target(target: SocketAddr, count: usize) -> Self {
        let loopback_v4 = matches!(target.ip(), IpAddr::V4(ip) if ip.is_loopback());
        if !loopback_v4 || count == 0 {
            return Self::default();
        }
        // 127.0.0.2 up to 127.255.255.254; more than a few hundred is never needed.
        let first = u32::from(Ipv4Addr::new(127, 0, 0, 2));
        let addrs = (0..count.min(60_000) as u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(first + i)))
            .collect();
        Self { addrs }
    }

    /// The default number of source addresses for `clients` sockets: one per 10,000, so
    /// that no address runs short of ephemeral ports (about 28,000 each).
    pub fn default_count(clients: usize) -> usize {
        clients.div_ceil(10_000).max(1)
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The address for client `index`, round robin.
    pub fn pick(&self, index: usize) -> Option<IpAddr> {
        if self.addrs.is_empty() {
            None
        } else {
            Some(self.addrs[index % self.addrs.len()])
        }
    }

    pub fn as_slice(&self) -> &[IpAddr] {
        &self.addrs
    }

    pub fn from_list(addrs: Vec<IpAddr>) -> Self {
        Self { addrs }
    }
}

/// The load averages (1, 5 and 15 min) from /proc/loadavg (Linux); `None` elsewhere.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// The whole machine's CPU time so far, from the first line of /proc/stat (in clock ticks).
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

impl CpuTimes {
    pub fn read() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let line = text.lines().next()?.strip_prefix("cpu ")?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let total: u64 = ticks.iter().take(8).sum();
        let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
        Some(Self {
            busy: total.saturating_sub(idle),
            total,
        })
    }

    /// The share of every core that was busy between `self` and `later` (0 to 1).
    pub fn busy_share(&self, later: &Self) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        let busy = later.busy.checked_sub(self.busy)?;
        (total > 0).then(|| busy as f64 / total as f64)
    }
}

/// SplitMix64: small, fast, and good enough to pick operations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Seeded from the clock, the process id and `salt`.
    pub fn from_entropy(salt: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self(nanos ^ (u64::from(std::process::id()) << 32) ^ salt.wrapping_mul(0x9E37_79B9))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// `len` lower-case ASCII letters.
    pub fn letters(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect()
    }
}

/// `n` written with the letters a-z (0 = "a", 25 = "z", 26 = "ba", ...): user names may
/// hold letters only.
pub fn letters_for(mut n: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'a' + (n % 26) as u8);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Where a scenario runs load it does not measure (attackers, sockets that only come and
/// go): on the measured clients' runtime, or on a runtime of its own whose threads run at
/// a lower priority. In production that load comes from other machines; on one machine its
/// own client work would otherwise take cores from the measured clients and the server
/// (what the server does for it is unaffected).
pub enum UnmeasuredLoad {
    Shared(tokio::runtime::Handle),
    Own(tokio::runtime::Runtime),
}

impl UnmeasuredLoad {
    /// `nice` 0: the current runtime; otherwise a runtime of its own, threads named `name`,
    /// at that nice value (Linux).
    pub fn start(name: &str, nice: i32) -> std::io::Result<Self> {
        if nice == 0 {
            return Ok(Self::Shared(tokio::runtime::Handle::current()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name(name)
            .enable_all()
            .on_thread_start(move || {
                // On Linux a priority set on a thread id applies to that thread alone.
                let me = rustix::thread::gettid();
                if let Err(err) = rustix::process::setpriority_process(Some(me), nice) {
                    eprintln!("warning: cannot lower a thread's priority: {err}");
                }
            })
            .build()?;
        Ok(Self::Own(runtime))
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        match self {
            Self::Shared(handle) => handle,
            Self::Own(runtime) => runtime.handle(),
        }
    }

    /// Ends its runtime (a runtime may not be dropped inside another's task).
    pub fn stop(self) {
        if let Self::Own(runtime) = self {
            runtime.shutdown_background();
        }
    }
}

/// Resolves on ctrl-c or SIGTERM (what `kill` and the bench script send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                () = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => ctrl_c.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letter_numbers_are_distinct() {
        assert_eq!(letters_for(0), "a");
        assert_eq!(letters_for(25), "z");
        assert_eq!(letters_for(26), "ba");
        let all: std::collections::HashSet<String> = (0..5000).map(letters_for).collect();
        assert_eq!(all.len(), 5000);
    }

    #[test]
    fn source_addresses_only_on_loopback() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:8080".parse().unwrap();
        let addrs = SourceAddrs::for_target(local, 3);
        assert_eq!(addrs.len(), 3);
        assert_eq!(addrs.pick(0), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(addrs.pick(4), Some("127.0.0.3".parse().unwrap()));
        assert!(SourceAddrs::for_target(remote, 3).is_empty());
        assert_eq!(SourceAddrs::default_count(19_000), 2);
    }

    #[test]
    fn reads_the_machine_state() {
        let load = load_average().expect("/proc/loadavg");
        assert!(load.iter().all(|l| *l >= 0.0));
        let before = CpuTimes::read().expect("/proc/stat");
        let after = CpuTimes::read().expect("/proc/stat");
        assert!(after.total >= before.total && before.total > 0);
        if let Some(share) = before.busy_share(&after) {
            assert!((0.0..=1.0).contains(&share));
        }
    }

    #[test]
    fn rng_stays_in_range() {
        let mut rng = Rng::new(7);
        assert!((0..1000).all(|_| rng.below(10) < 10));
        assert_eq!(rng.letters(8).len(), 8);
    }
}
