//! The public contact form: anyone may write, within the `contact` rate limit per client
//! address. Messages are stored for the team; nobody's stream hears of them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::accounts::Device;
use super::Services;
use crate::domain::ContactMessage;
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
    let receipt = Receipt {
        id: Uuid::new_v4(),
        received_at: crate::domain::now(),
    };
    svc.store
        .insert_contact_message(NewContactMessage {
            id: receipt.id,
            message,
            ip: sender.ip.as_deref(),
            user_agent: sender.user_agent.as_deref(),
            now: receipt.received_at,
        })
        .await?;
    tracing::info!(contact_id = %receipt.id, "contact message received");
    Ok(receipt)
}
