//! Browsers' push subscriptions: saved, listed, removed, and a test message. What is
//! pushed when is decided where notifications are written (`notifications::add`); the
//! sending is the delivery worker's.

use uuid::Uuid;

use super::Services;
use crate::domain::PushMessage;
use crate::error::{Error, Result};
use crate::limits::Limit;
use crate::store::PushSubscriptionRecord;

/// Subscriptions an account keeps (browsers and devices); a new one past it replaces the
/// oldest.
pub const MAX_PUSH_SUBSCRIPTIONS_PER_USER: i64 = 20;

/// A subscription whose endpoint and keys were checked (see `delivery::push`).
#[derive(Debug, Clone)]
pub struct NewPushSubscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub user_agent: Option<String>,
}

/// Saves the subscription for the user; the same endpoint again updates its keys.
pub async fn subscribe(
    svc: &Services,
    user_id: Uuid,
    new: NewPushSubscription,
) -> Result<PushSubscriptionRecord> {
    let (mut tx, now) = svc.writes.begin().await?;
    let record = PushSubscriptionRecord {
        id: Uuid::new_v4(),
        user_id,
        endpoint: new.endpoint,
        p256dh: new.p256dh,
        auth: new.auth,
        user_agent: new.user_agent,
        created_at: now,
    };
    let saved = tx
        .save_push_subscription(&record, MAX_PUSH_SUBSCRIPTIONS_PER_USER)
        .await?;
    svc.writes.commit(tx, user_id, &[], now, Vec::new()).await?;
    Ok(saved)
}

/// Removes the user's subscription of `endpoint`; 404 if the user has none.
pub async fn unsubscribe(svc: &Services, user_id: Uuid, endpoint: &str) -> Result<()> {
    let (mut tx, now) = svc.writes.begin().await?;
    if !tx.delete_push_subscription(user_id, endpoint).await? {
        return Err(Error::not_found("Push subscription"));
    }
    svc.writes.commit(tx, user_id, &[], now, Vec::new()).await
}

pub async fn list(svc: &Services, user_id: Uuid) -> Result<Vec<PushSubscriptionRecord>> {
    Ok(svc.store.push_subscriptions(user_id).await?)
}

/// Pushes a test message to every subscription of the user (whether or not a socket is
/// open); returns to how many. 404 when there is none. Within the `push_test` budget.
pub async fn send_test(svc: &Services, user_id: Uuid) -> Result<u64> {
    svc.limits
        .enforce(Limit::PushTest, &user_id.to_string())
        .await?;
    let (mut tx, now) = svc.writes.begin().await?;
    let message = PushMessage {
        title: "taskstream".into(),
        body: "Push notifications work on this device.".into(),
        kind: "TEST".into(),
        notification_id: None,
        task_id: None,
    };
    let queued = tx.enqueue_push(user_id, &message, false, now).await?;
    if queued == 0 {
        return Err(Error::not_found("Push subscription"));
    }
    svc.writes.commit(tx, user_id, &[], now, Vec::new()).await?;
    Ok(queued)
}
