//! The public contact form: anyone may write, within the `contact` rate limit per client
//! address. Messages are stored for the team and, when `CONTACT_EMAIL` is set, mailed there
//! (through the delivery outbox, in the same transaction); nobody's stream hears of them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::accounts::Device;
use super::Services;
use crate::domain::{ContactMessage, DeliveryJob};
use crate::error::Result;
use crate::limits::Limit;
use crate::store::NewContactMessage;

/// What the sender is told: the message's id and when it was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
}

/// Stores the message, after spending from the sender's `contact` budget.
pub async fn submit(svc: &Services, message: &ContactMessage, sender: &Device) -> Result<Receipt> {
    if let Some(ip) = &sender.ip {
        svc.limits.enforce(Limit::Contact, ip).await?;
    }
    let (mut tx, now) = svc.writes.begin().await?;
    let receipt = Receipt {
        id: Uuid::new_v4(),
        received_at: now,
    };
    tx.insert_contact_message(NewContactMessage {
        id: receipt.id,
        message,
        ip: sender.ip.as_deref(),
        user_agent: sender.user_agent.as_deref(),
        now,
    })
    .await?;
    if svc.contact_email.is_some() {
        let job = DeliveryJob::contact(receipt.id, message, now);
        tx.enqueue_delivery(None, &job, now).await?;
    }
    svc.writes.commit_unannounced(tx).await?;
    tracing::info!(contact_id = %receipt.id, "contact message received");
    Ok(receipt)
}
