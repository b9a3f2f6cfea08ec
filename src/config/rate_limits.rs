//! The rate limits as configured: what each one counts, its default budget, and
//! `RATE_LIMITS` (the limiter itself lives in `src/limits/`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Every budget the server enforces. The name is what `RATE_LIMITS` and the
/// `taskstream_rate_limited_total{limit}` label use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Sign-ups per client IP.
    Signup,
    /// Failed sign-ins per e-mail address (once spent, even the right password is refused).
    Signin,
    /// Sign-in attempts per client IP, so one address cannot spray many accounts.
    SigninIp,
    /// Profile updates per user.
    Profile,
    /// Photo uploads per user.
    Photo,
    /// Reads (GET) per user.
    UserRead,
    /// Writes (POST, PUT, PATCH, DELETE) per user.
    UserWrite,
    /// Requests without a token per client IP.
    Anonymous,
    /// WebSocket upgrades per client IP.
    WsUpgrade,
    /// Contact-form messages per client IP.
    Contact,
    /// Verification mails an account may ask for.
    VerifyEmail,
    /// Password-reset requests per client IP.
    PasswordForgot,
    /// Password-reset requests per e-mail address (whether or not it has an account).
    PasswordForgotEmail,
    /// Push test messages per user.
    PushTest,
    /// Project invitations (each mails an address) per user.
    Invite,
}

impl Limit {
    pub const ALL: [Self; 15] = [
        Self::Signup,
        Self::Signin,
        Self::SigninIp,
        Self::Profile,
        Self::Photo,
        Self::UserRead,
        Self::UserWrite,
        Self::Anonymous,
        Self::WsUpgrade,
        Self::Contact,
        Self::VerifyEmail,
        Self::PasswordForgot,
        Self::PasswordForgotEmail,
        Self::PushTest,
        Self::Invite,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Signin => "signin",
            Self::SigninIp => "signin_ip",
            Self::Profile => "profile",
            Self::Photo => "photo",
            Self::UserRead => "user_read",
            Self::UserWrite => "user_write",
            Self::Anonymous => "anonymous",
            Self::WsUpgrade => "ws_upgrade",
            Self::Contact => "contact",
            Self::VerifyEmail => "verify_email",
            Self::PasswordForgot => "password_forgot",
            Self::PasswordForgotEmail => "password_forgot_email",
            Self::PushTest => "push_test",
            Self::Invite => "invite",
        }
    }

    /// The default budget: the seed's numbers where it has them.
    pub const fn default_quota(self) -> Quota {
        const MINUTE: u64 = 60;
        const HOUR: u64 = 3600;
        let (count, seconds) = match self {
            Self::Signup => (3, HOUR),
            Self::Signin => (5, 15 * MINUTE),
            Self::SigninIp => (50, 15 * MINUTE),
            Self::Profile => (10, HOUR),
            Self::Photo => (5, HOUR),
            Self::UserRead => (1200, MINUTE),
            Self::UserWrite => (300, MINUTE),
            Self::Anonymous => (300, MINUTE),
            Self::WsUpgrade => (60, MINUTE),
            Self::Contact => (5, HOUR),
            Self::VerifyEmail => (3, HOUR),
            Self::PasswordForgot => (10, HOUR),
            Self::PasswordForgotEmail => (3, HOUR),
            Self::PushTest => (5, HOUR),
            Self::Invite => (50, HOUR),
        };
        Quota {
            count,
            period: Duration::from_secs(seconds),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `count` per `period`, spread evenly (GCRA): a full budget can be spent at once, then
/// one more is allowed every `period / count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub count: u32,
    pub period: Duration,
}

impl Quota {
    /// The time one unit of the budget takes to come back.
    pub fn interval(&self) -> Duration {
        self.period / self.count.max(1)
    }
}

impl FromStr for Quota {
    type Err = String;

    /// `5/15m`, `3/1h`, `100/1s`, `1000/1d`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (count, period) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not COUNT/PERIOD (e.g. 5/15m)"))?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("`{count}` is not a positive count"))?;
        let period = period.trim();
        let split = period
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{period}` needs a unit: s, m, h or d"))?;
        let (amount, unit) = period.split_at(split);
        let amount: u64 = if amount.is_empty() {
            1
        } else {
            amount
                .parse()
                .map_err(|_| format!("`{period}` is not a period"))?
        };
        let unit_seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("`{unit}` is not a unit (s, m, h or d)")),
        };
        let seconds = amount
            .checked_mul(unit_seconds)
            .filter(|s| *s > 0 && *s <= 366 * 86_400)
            .ok_or_else(|| format!("`{period}` must be between 1s and 366d"))?;
        Ok(Self {
            count,
            period: Duration::from_secs(seconds),
        })
    }
}

/// What `RATE_LIMITS` says: `off`, or overrides of the defaults
/// (`signin=5/15m,signup=3/1h`). Unnamed limits keep their default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    Off,
    On(HashMap<Limit, Quota>),
}

impl Policy {
    /// The quota of `limit`, or `None` when limits are off.
    pub fn quota(&self, limit: Limit) -> Option<Quota> {
        match self {
            Self::Off => None,
            Self::On(overrides) => Some(
                overrides
                    .get(&limit)
                    .copied()
                    .unwrap_or_else(|| limit.default_quota()),
            ),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::On(HashMap::new())
    }
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        let mut overrides = HashMap::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, quota) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not NAME=COUNT/PERIOD"))?;
            let name = name.trim();
            let limit = Limit::ALL
                .into_iter()
                .find(|l| l.name() == name)
                .ok_or_else(|| {
                    let names: Vec<_> = Limit::ALL.iter().map(|l| l.name()).collect();
                    format!("unknown limit `{name}` (known: {})", names.join(", "))
                })?;
            overrides.insert(limit, quota.parse()?);
        }
        Ok(Self::On(overrides))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_with_units() {
        assert_eq!(
            "5/15m".parse::<Quota>(),
            Ok(Quota {
                count: 5,
                period: Duration::from_secs(900)
            })
        );
        assert_eq!(
            "3/h".parse::<Quota>().map(|q| q.period),
            Ok(Duration::from_secs(3600))
        );
        for bad in ["", "5", "0/1m", "5/0m", "5/1y", "x/1m", "5/m1", "5/400d"] {
            assert!(bad.parse::<Quota>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn policies_override_defaults_or_turn_everything_off() {
        assert_eq!("off".parse::<Policy>(), Ok(Policy::Off));
        let policy: Policy = "signin=10/1m, signup=100/1h".parse().unwrap();
        assert_eq!(policy.quota(Limit::Signin).map(|q| q.count), Some(10));
        assert_eq!(
            policy.quota(Limit::Photo),
            Some(Limit::Photo.default_quota())
        );
        assert!("dance=1/1m".parse::<Policy>().is_err());
        assert!("signin".parse::<Policy>().is_err());
        assert_eq!(Policy::Off.quota(Limit::Signin), None);
    }
}
