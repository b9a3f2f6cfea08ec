//! Reaching people who are not connected: the delivery outbox's workers (e-mail, web
//! push) and the reminder scheduler.
//!
//! Deliveries are rows written in the transaction of the change that causes them
//! (`StoreTx::enqueue_delivery`, `enqueue_push`), so none is lost if an instance dies and
//! none exists for a change that rolled back. Every instance runs a [`DeliveryWorker`]: it
//! claims due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two instances never take the
//! same row; SQLite has one writer), holding each for `DELIVERY_LEASE`, sends them, and
//! settles them: sent, skipped, failed for good, or back to pending with exponential
//! backoff. A worker that dies leaves its rows to be claimed again once the lease passes.
//! Sending never happens on a request's path: a commit only wakes the local worker.
//!
//! This module depends on `service` and `store`, and on the senders (`mail`, `push`);
//! nothing below it knows it exists.

pub mod mail;
pub mod push;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use lettre::message::Mailbox;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::config::DeliverySettings;
use crate::domain::{
    ClaimedDelivery, DeliveryJob, DeliveryOutcome, Email, MailToken, PushMessage, TokenPurpose,
};
use crate::service::Services;
use crate::store::{Settlement, Store};

use self::mail::{Mail, Mailer, Template};
use self::push::{PushError, PushSender, PushSubscription};

/// How often an idle worker looks for deliveries other instances wrote (its own commits
/// wake it at once).
const POLL: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long a push service keeps a message for a device that is offline.
const PUSH_TTL: Duration = Duration::from_secs(24 * 3600);
/// Settled deliveries are kept this long (their status and error, not their content).
const KEEP_SETTLED: chrono::Duration = chrono::Duration::days(7);

/// Whether a user has a socket open on any instance (the real-time layer answers).
#[async_trait::async_trait]
pub trait Presence: Send + Sync + 'static {
    async fn is_connected(&self, user_id: Uuid) -> bool;
}

/// The addresses mails link to: the dashboard's pages for verification and reset.
#[derive(Debug, Clone)]
pub struct Links {
    /// `PUBLIC_URL`, or the listener's address.
    pub base: String,
}

impl Links {
    fn with_token(&self, page: &str, token: &str) -> String {
        format!("{}/{page}?token={token}", self.base.trim_end_matches('/'))
    }
}

/// Sends what the outbox holds.
pub struct DeliveryWorker {
    store: Arc<dyn Store>,
    mailer: Mailer,
    from: Mailbox,
    contact: Option<Mailbox>,
    push: PushSender,
    presence: Arc<dyn Presence>,
    links: Links,
    settings: DeliverySettings,
    wake: Arc<Notify>,
}

impl DeliveryWorker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        mailer: Mailer,
        from: Mailbox,
        contact: Option<Mailbox>,
        push: PushSender,
        presence: Arc<dyn Presence>,
        links: Links,
        settings: DeliverySettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            mailer,
            from,
            contact,
            push,
            presence,
            links,
            settings,
            wake,
        }
    }

    /// Claims and sends deliveries until `shutdown` resolves; then stops claiming and
    /// lets what is in flight finish (for up to the lease).
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()> + Send) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        tokio::pin!(shutdown);
        loop {
            // A free slot first (a send finishing frees one at once), then as many rows as
            // there are free slots.
            let first = tokio::select! {
                () = &mut shutdown => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let free = slots.available_permits() + 1;
            let claimed = self.claim(free).await;
            let drained = claimed.len() < free;
            let mut spare = Some(first);
            for delivery in claimed {
                let slot = match spare.take() {
                    Some(slot) => slot,
                    None => match slots.clone().acquire_owned().await {
                        Ok(slot) => slot,
                        Err(_) => return,
                    },
                };
                let worker = self.clone();
                tokio::spawn(async move {
                    worker.deliver(delivery).await;
                    drop(slot);
                });
            }
            drop(spare);
            if drained {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        }
        let all = u32::try_from(self.settings.concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(self.settings.lease, slots.acquire_many(all)).await;
    }

    async fn claim(&self, limit: usize) -> Vec<ClaimedDelivery> {
        let now = crate::domain::now();
        // Nothing due is the usual answer: found on the read pool, without a write.
        if let Ok(false) = self.store.delivery_due(now).await {
            return Vec::new();
        }
        let lease =
            chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::minutes(2));
        match self
            .store
            .claim_deliveries(Uuid::new_v4(), now, now + lease, limit as i64)
            .await
        {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %err, "claiming deliveries failed");
                Vec::new()
            }
        }
    }

    /// Sends one delivery and settles it.
    async fn deliver(&self, delivery: ClaimedDelivery) {
        let channel = delivery.job.channel().as_str();
        let started = std::time::Instant::now();
        let outcome = self.send(&delivery).await;
        metrics::histogram!(crate::metrics::DELIVERY_SEND, "channel" => channel)
            .record(started.elapsed().as_secs_f64());
        let outcome = match outcome {
            DeliveryOutcome::Retry(error) if delivery.attempt >= self.settings.max_attempts => {
                DeliveryOutcome::Failed(format!(
                    "gave up after {} attempts: {error}",
                    delivery.attempt
                ))
            }
            other => other,
        };
        metrics::counter!(crate::metrics::DELIVERIES, "channel" => channel, "outcome" => outcome.label())
            .increment(1);
        match &outcome {
            DeliveryOutcome::Failed(error) => tracing::warn!(
                delivery = delivery.id, kind = delivery.job.kind(), %error, "delivery failed for good"
            ),
            DeliveryOutcome::Gone => tracing::info!(
                delivery = delivery.id,
                "push subscription gone at its push service; removed"
            ),
            DeliveryOutcome::Retry(error) => tracing::info!(
                delivery = delivery.id, kind = delivery.job.kind(), attempt = delivery.attempt, %error,
                "delivery failed; will retry"
            ),
            _ => {}
        }
        let now = crate::domain::now();
        if outcome == DeliveryOutcome::Gone {
            // Its deliveries, this one included, go with it.
            if let Some(subscription) = delivery.subscription_id {
                if let Err(err) = self
                    .store
                    .delete_push_subscription_by_id(subscription)
                    .await
                {
                    tracing::warn!(error = %err, "removing a gone push subscription failed");
                }
                return;
            }
        }
        let settlement = match outcome {
            DeliveryOutcome::Sent => Settlement::Final {
                status: "sent",
                error: None,
            },
            DeliveryOutcome::Skipped(reason) => Settlement::Final {
                status: "skipped",
                error: Some(reason.to_string()),
            },
            DeliveryOutcome::Failed(error) => Settlement::Final {
                status: "failed",
                error: Some(error),
            },
            DeliveryOutcome::Gone => Settlement::Final {
                status: "failed",
                error: Some("the push subscription is gone".into()),
            },
            DeliveryOutcome::Retry(error) => Settlement::RetryAt {
                at: now + backoff(self.settings.retry_base, delivery.attempt),
                error,
            },
        };
        match self
            .store
            .settle_delivery(delivery.id, delivery.claim_id, settlement, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                delivery = delivery.id,
                "a delivery's lease passed before it was settled; another worker may send it again"
            ),
            // The row stays claimed; once the lease passes it is sent again.
            Err(err) => {
                tracing::warn!(delivery = delivery.id, error = %err, "settling a delivery failed")
            }
        }
    }

    async fn send(&self, delivery: &ClaimedDelivery) -> DeliveryOutcome {
        let name = format!(
            "{}-{}-{}",
            crate::domain::now().format("%Y%m%dT%H%M%S%.6fZ"),
            delivery.id,
            delivery.job.kind()
        );
        match &delivery.job {
            DeliveryJob::Welcome | DeliveryJob::VerifyEmail => {
                self.send_verification(delivery, &name).await
            }
            DeliveryJob::PasswordReset { email } => self.send_reset(email, &name).await,
            DeliveryJob::PasswordChanged => {
                let Some(user) = self.recipient(delivery).await else {
                    return DeliveryOutcome::Skipped("the account is gone");
                };
                let at = crate::domain::now()
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string();
                self.mail(
                    &user,
                    "Your taskstream password was changed",
                    &mail::PASSWORD_CHANGED,
                    &[("at", &at), ("base", &self.links.base)],
                    &name,
                )
                .await
            }
            DeliveryJob::Contact {
                id,
                name: sender,
                email,
                subject,
                message,
                received_at,
            } => {
                let Some(contact) = &self.contact else {
                    return DeliveryOutcome::Skipped("CONTACT_EMAIL is not set");
                };
                let reply_to = format!("{sender} <{email}>").parse::<Mailbox>().ok();
                let (text, html) = mail::CONTACT.render(&[
                    ("name", sender),
                    ("email", email),
                    ("subject", subject),
                    (
                        "at",
                        &received_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                    ),
                    ("id", &id.to_string()),
                    ("message", message),
                ]);
                let mail = Mail {
                    to: contact.clone(),
                    reply_to,
                    subject: format!("[contact] {subject}"),
                    text,
                    html,
                };
                self.mailer.send(&self.from, mail, &name).await
            }
            DeliveryJob::ProjectInvitation {
                email,
                project,
                inviter,
                role,
                expires_at,
            } => {
                let Ok(to) = email.parse::<Mailbox>() else {
                    return DeliveryOutcome::Failed("not an e-mail address".into());
                };
                let expires = expires_at.format("%Y-%m-%d %H:%M UTC").to_string();
                let (text, html) = mail::INVITATION.render(&[
                    ("inviter", inviter),
                    ("project", project),
                    ("role", role),
                    ("email", email),
                    ("link", &self.links.base),
                    ("expires", &expires),
                ]);
                let mail = Mail {
                    to,
                    reply_to: None,
                    subject: format!("{inviter} invited you to \"{project}\" on taskstream"),
                    text,
                    html,
                };
                self.mailer.send(&self.from, mail, &name).await
            }
            DeliveryJob::Reminder { message, title, .. } => {
                let Some(user) = self.recipient(delivery).await else {
                    return DeliveryOutcome::Skipped("the account is gone");
                };
                if !user.email_reminders {
                    return DeliveryOutcome::Skipped("reminders by e-mail were turned off");
                }
                self.mail(
                    &user,
                    title,
                    &mail::REMINDER,
                    &[("message", message), ("base", &self.links.base)],
                    &name,
                )
                .await
            }
            DeliveryJob::Push {
                message,
                only_if_offline,
            } => self.send_push(delivery, message, *only_if_offline).await,
        }
    }

    /// The account a delivery is for, as it is now.
    async fn recipient(&self, delivery: &ClaimedDelivery) -> Option<crate::domain::Profile> {
        let user_id = delivery.user_id?;
        self.store.profile(user_id).await.ok().flatten()
    }

    async fn mail(
        &self,
        user: &crate::domain::Profile,
        subject: &str,
        template: &Template,
        values: &[(&str, &str)],
        name: &str,
    ) -> DeliveryOutcome {
        let to = match format!("{} <{}>", user.name, user.email).parse::<Mailbox>() {
            Ok(to) => to,
            Err(err) => return DeliveryOutcome::Failed(format!("bad address: {err}")),
        };
        let mut all = vec![("name", user.name.as_str())];
        all.extend_from_slice(values);
        let (text, html) = template.render(&all);
        let mail = Mail {
            to,
            reply_to: None,
            subject: subject.to_string(),
            text,
            html,
        };
        self.mailer.send(&self.from, mail, name).await
    }

    /// A welcome or verification mail, with a fresh verification token (made now, so no
    /// usable token ever waits in the outbox).
    async fn send_verification(&self, delivery: &ClaimedDelivery, name: &str) -> DeliveryOutcome {
        let Some(user) = self.recipient(delivery).await else {
            return DeliveryOutcome::Skipped("the account is gone");
        };
        let welcome = matches!(delivery.job, DeliveryJob::Welcome);
        if user.is_email_verified && !welcome {
            return DeliveryOutcome::Skipped("the address is verified already");
        }
        let token = match self
            .new_token(user.id, TokenPurpose::VerifyEmail, &user.email)
            .await
        {
            Ok(token) => token,
            Err(outcome) => return outcome,
        };
        let link = self.links.with_token("verify-email", &token);
        let (subject, template) = if welcome {
            ("Welcome to taskstream", &mail::WELCOME)
        } else {
            ("Verify your e-mail address", &mail::VERIFY_EMAIL)
        };
        self.mail(
            &user,
            subject,
            template,
            &[("link", &link), ("token", &token)],
            name,
        )
        .await
    }

    /// A password-reset mail, if an account holds the address.
    async fn send_reset(&self, email: &str, name: &str) -> DeliveryOutcome {
        let Ok(email) = Email::parse(email) else {
            return DeliveryOutcome::Failed("not an e-mail address".into());
        };
        let account = match self.store.user_for_sign_in(&email).await {
            Ok(account) => account,
            Err(err) => return DeliveryOutcome::Retry(err.to_string()),
        };
        let Some(account) = account else {
            return DeliveryOutcome::Skipped("no account has this address");
        };
        let Ok(Some(user)) = self.store.profile(account.user.id).await else {
            return DeliveryOutcome::Retry("the account could not be read".into());
        };
        let token = match self
            .new_token(user.id, TokenPurpose::PasswordReset, &user.email)
            .await
        {
            Ok(token) => token,
            Err(outcome) => return outcome,
        };
        let link = self.links.with_token("reset-password", &token);
        self.mail(
            &user,
            "Reset your taskstream password",
            &mail::PASSWORD_RESET,
            &[("link", &link), ("token", &token)],
            name,
        )
        .await
    }

    async fn new_token(
        &self,
        user_id: Uuid,
        purpose: TokenPurpose,
        email: &str,
    ) -> Result<String, DeliveryOutcome> {
        let token = MailToken::generate();
        self.store
            .insert_mail_token(&token.hash, user_id, purpose, email, crate::domain::now())
            .await
            .map_err(|err| DeliveryOutcome::Retry(err.to_string()))?;
        Ok(token.secret)
    }

    async fn send_push(
        &self,
        delivery: &ClaimedDelivery,
        message: &PushMessage,
        only_if_offline: bool,
    ) -> DeliveryOutcome {
        let Some(subscription_id) = delivery.subscription_id else {
            return DeliveryOutcome::Skipped("the subscription is gone");
        };
        let subscription = match self.store.push_subscription(subscription_id).await {
            Ok(Some(subscription)) => subscription,
            Ok(None) => return DeliveryOutcome::Skipped("the subscription is gone"),
            Err(err) => return DeliveryOutcome::Retry(err.to_string()),
        };
        if only_if_offline && self.presence.is_connected(subscription.user_id).await {
            return DeliveryOutcome::Skipped("the user was online");
        }
        let payload = match serde_json::to_vec(message) {
            Ok(payload) => payload,
            Err(err) => return DeliveryOutcome::Failed(err.to_string()),
        };
        let target = PushSubscription {
            endpoint: subscription.endpoint,
            p256dh: subscription.p256dh,
            auth: subscription.auth,
        };
        match self.push.send(&target, &payload, PUSH_TTL).await {
            Ok(()) => DeliveryOutcome::Sent,
            Err(PushError::Gone) => DeliveryOutcome::Gone,
            Err(PushError::Permanent(error)) => DeliveryOutcome::Failed(error),
            Err(PushError::Transient(error)) => DeliveryOutcome::Retry(error),
        }
    }

    /// Reports the backlog (pending deliveries, the oldest one's age) every few seconds,
    /// and forgets settled deliveries and expired tokens every hour.
    pub async fn report_and_prune(store: Arc<dyn Store>) {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        let mut ticks: u64 = 0;
        loop {
            every.tick().await;
            match store.delivery_backlog().await {
                Ok((pending, oldest)) => {
                    metrics::gauge!(crate::metrics::DELIVERIES_PENDING).set(pending as f64);
                    let age = oldest.map_or(0.0, crate::metrics::seconds_since);
                    metrics::gauge!(crate::metrics::DELIVERY_OLDEST_PENDING).set(age);
                }
                Err(err) => tracing::warn!(error = %err, "reading the delivery backlog failed"),
            }
            if ticks % 720 == 0 {
                let now = crate::domain::now();
                match store.prune_deliveries(now - KEEP_SETTLED, now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(pruned = n, "old deliveries and tokens removed"),
                    Err(err) => tracing::warn!(error = %err, "pruning deliveries failed"),
                }
            }
            ticks += 1;
        }
    }
}

/// The wait before attempt `attempt + 1`: `base` doubled per attempt, at most an hour,
/// give or take a fifth (so that deliveries that failed together do not retry together).
fn backoff(base: Duration, attempt: u32) -> chrono::Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let wait = base.saturating_mul(1u32 << exponent).min(MAX_BACKOFF);
    let jitter = 0.8 + f64::from(OsRng.next_u32() % 1000) / 2500.0;
    chrono::Duration::from_std(wait.mul_f64(jitter)).unwrap_or(chrono::Duration::hours(1))
}

/// Fires due reminders on this instance, as fast as they come due, then looking every
/// second. `loops` run at once (several on PostgreSQL, where each takes a different task;
/// one on SQLite). Runs until the task is aborted.
pub async fn run_reminders(svc: Services, loops: usize) {
    const BATCH: usize = 200;
    let fire = |svc: Services| async move {
        loop {
            // An idle instance looks on the read pool, without taking the writer, and
            // sleeps until the next reminder is due (looking again within a second, for
            // reminders scheduled meanwhile).
            match svc.store.next_reminder_at().await {
                Ok(None) => {
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                Ok(Some(at)) => {
                    let wait = (at - crate::domain::now()).to_std().unwrap_or_default();
                    if !wait.is_zero() {
                        tokio::time::sleep(wait.min(POLL)).await;
                        continue;
                    }
                }
                Err(err) => tracing::warn!(error = %err, "reading the next reminder's time failed"),
            }
            match crate::service::reminders::fire_due(&svc, BATCH).await {
                Ok(fired) if fired == BATCH => continue,
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "firing reminders failed"),
            }
            tokio::time::sleep(POLL).await;
        }
    };
    futures_util::future::join_all((0..loops.max(1)).map(|_| fire(svc.clone()))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour_with_jitter() {
        let base = Duration::from_secs(10);
        for (attempt, nominal) in [(1u32, 10i64), (2, 20), (3, 40), (10, 3600), (40, 3600)] {
            let wait = backoff(base, attempt).num_milliseconds();
            let nominal = nominal * 1000;
            assert!(
                wait >= nominal * 8 / 10 && wait <= nominal * 12 / 10,
                "attempt {attempt}: {wait} ms"
            );
        }
    }

    #[test]
    fn links_carry_the_token() {
        let links = Links {
            base: "https://tasks.example.com/".into(),
        };
        assert_eq!(
            links.with_token("reset-password", "abc"),
            "https://tasks.example.com/reset-password?token=abc"
        );
    }
}
