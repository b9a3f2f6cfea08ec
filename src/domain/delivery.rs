//! What the delivery outbox holds: one [`DeliveryJob`] per message to send, written in
//! the transaction of the change that causes it and sent by a worker after commit.
//!
//! A job names what to send, not the finished message: a password-reset or verification
//! mail makes its single-use token when it is sent, so no usable token ever sits in the
//! outbox, and a welcome mail greets the account by its name at that moment.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ContactMessage, Notification, NotificationKind};

/// How a delivery travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Push,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Push => "push",
        }
    }
}

/// A notification as a push message carries it (and as the browser's service worker
/// reads it: the JSON is the push payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushMessage {
    pub title: String,
    pub body: String,
    /// The notification's type (`TASK_DUE_SOON`, …), or `TEST`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub notification_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub task_id: Option<i64>,
}

impl PushMessage {
    pub fn for_notification(notification: &Notification) -> Self {
        Self {
            title: notification.title.clone(),
            body: notification.message.clone(),
            kind: notification.kind.as_str().to_string(),
            notification_id: Some(notification.id),
            task_id: notification.task_id,
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeliveryJob {
    /// Welcome mail on signup, with an e-mail verification link.
    Welcome,
    /// A verification link, asked for by the account.
    VerifyEmail,
    /// A password-reset link for whoever holds this address, if anyone does (the request
    /// answers the same either way; the worker finds out).
    PasswordReset { email: String },
    /// "Your password was changed": the account's owner hears of it even if it was not them.
    PasswordChanged,
    /// A contact-form message, to `CONTACT_EMAIL`.
    Contact {
        id: Uuid,
        name: String,
        /// The sender's address: replies go there.
        email: String,
        subject: String,
        message: String,
        received_at: DateTime<Utc>,
    },
    /// An invitation to a project, to the invited address (an account or not).
    ProjectInvitation {
        email: String,
        project: String,
        inviter: String,
        role: String,
        expires_at: DateTime<Utc>,
    },
    /// A due-date reminder by e-mail (users who opted in).
    Reminder {
        kind: NotificationKind,
        title: String,
        message: String,
        task_id: Option<i64>,
    },
    /// A notification to one push subscription. `only_if_offline`: dropped if the user
    /// has a socket open when it is sent (they saw it live).
    Push {
        message: PushMessage,
        only_if_offline: bool,
    },
}

impl DeliveryJob {
    pub fn contact(id: Uuid, message: &ContactMessage, received_at: DateTime<Utc>) -> Self {
        Self::Contact {
            id,
            name: message.name.clone(),
            email: message.email.as_str().to_string(),
            subject: message.subject.clone(),
            message: message.message.clone(),
            received_at,
        }
    }

    pub fn channel(&self) -> Channel {
        match self {
            Self::Push { .. } => Channel::Push,
            _ => Channel::Email,
        }
    }

    /// A short name for logs, metrics and the `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset { .. } => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::Contact { .. } => "contact",
            Self::ProjectInvitation { .. } => "project_invitation",
            Self::Reminder { .. } => "reminder",
            Self::Push { .. } => "push",
        }
    }
}

/// A delivery claimed by a worker.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub user_id: Option<Uuid>,
    pub subscription_id: Option<Uuid>,
    pub job: DeliveryJob,
    /// This claim's attempt, from 1.
    pub attempt: u32,
    pub claim_id: Uuid,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Sent,
    /// Nothing to send after all (no such account, the user was online, opted out).
    Skipped(&'static str),
    /// Will not work however often it is tried (bad address, push endpoint gone).
    Failed(String),
    /// Might work later (server down, timeout).
    Retry(String),
    /// The push subscription no longer exists at its push service (404, 410): it is
    /// removed, with what was still on its way to it.
    Gone,
}

impl DeliveryOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Skipped(_) => "skipped",
            Self::Failed(_) | Self::Gone => "failed",
            Self::Retry(_) => "retried",
        }
    }
}

/// What a mailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    PasswordReset,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
        }
    }

    /// How long a mailed token works.
    pub fn lifetime(self) -> chrono::Duration {
        match self {
            Self::VerifyEmail => chrono::Duration::hours(24),
            Self::PasswordReset => chrono::Duration::hours(1),
        }
    }
}

/// A single-use token as mailed (`secret`) and as stored (`hash`, SHA-256 in hex): the
/// database never holds a usable one.
#[derive(Debug, Clone)]
pub struct MailToken {
    pub secret: String,
    pub hash: String,
}

impl MailToken {
    /// 32 random bytes, base64url.
    pub fn generate() -> Self {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        use base64::Engine;
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let hash = Self::hash_of(&secret);
        Self { secret, hash }
    }

    /// The stored form of a presented token; `None` for what cannot be one of ours (so
    /// nothing arbitrary is hashed or looked up).
    pub fn parse_presented(presented: &str) -> Option<String> {
        let token = presented.trim();
        let well_formed = token.len() == 43
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self::hash_of(token))
    }

    fn hash_of(secret: &str) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(secret.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_recognised_and_its_hash_matches() {
        let token = MailToken::generate();
        assert_eq!(token.secret.len(), 43);
        assert_eq!(
            MailToken::parse_presented(&token.secret),
            Some(token.hash.clone())
        );
        assert_ne!(token.secret, token.hash);
    }

    #[test]
    fn malformed_tokens_are_not_looked_up() {
        for presented in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}!", "a".repeat(42)),
        ] {
            assert_eq!(MailToken::parse_presented(presented), None, "{presented:?}");
        }
    }

    #[test]
    fn jobs_round_trip_through_json() {
        let job = DeliveryJob::Push {
            message: PushMessage {
                title: "Task due soon".into(),
                body: "Task \"x\" is due soon.".into(),
                kind: "TASK_DUE_SOON".into(),
                notification_id: Some(3),
                task_id: Some(4),
            },
            only_if_offline: false,
        };
        let json = serde_json::to_string(&job).expect("serialises");
        assert_eq!(
            serde_json::from_str::<DeliveryJob>(&json).expect("parses"),
            job
        );
        assert_eq!(job.channel(), Channel::Push);
        assert_eq!(DeliveryJob::Welcome.channel(), Channel::Email);
    }
}
