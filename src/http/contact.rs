//! `POST /contact`: the public contact form (no account needed).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::client::ClientIp;
use super::extract::Json;
use crate::domain::ContactMessage;
use crate::error::{ErrorEnvelope, Result};
use crate::service::{contact, Services};

pub fn router() -> OpenApiRouter<Services> {
    OpenApiRouter::new().routes(routes!(send_message))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ContactInput {
    /// 1–100 characters after trimming.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    name: Option<String>,
    /// Where to answer.
    #[schema(value_type = String, required = true, max_length = 254, pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,30})?@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?){0,2}\.[A-Za-z]{2,20}$")]
    email: Option<String>,
    /// 1–200 characters after trimming.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    subject: Option<String>,
    /// 1–5000 characters after trimming; line breaks and tabs are kept.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 5000, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactReceipt {
    /// The stored message's id, to quote when following up.
    id: Uuid,
    message: String,
    received_at: DateTime<Utc>,
}

/// Send a message to the team (no authentication). Limited per client address (the
/// `contact` rate limit, 5 per hour by default).
#[utoipa::path(post, path = "/contact", tag = "contact", request_body = ContactInput,
    responses(
        (status = 201, description = "Received and stored", body = ContactReceipt),
        (status = 422, description = "Invalid body", body = ErrorEnvelope),
    ))]
async fn send_message(
    State(svc): State<Services>,
    client: ClientIp,
    headers: HeaderMap,
    Json(input): Json<ContactInput>,
) -> Result<(StatusCode, Json<ContactReceipt>)> {
    let message = ContactMessage::parse(
        input.name.as_deref(),
        input.email.as_deref(),
        input.subject.as_deref(),
        input.message.as_deref(),
    )?;
    let sender = super::auth::device(&headers, client);
    let receipt = contact::submit(&svc, &message, &sender).await?;
    Ok((
        StatusCode::CREATED,
        Json(ContactReceipt {
            id: receipt.id,
            message: "Thank you, your message was received".into(),
            received_at: receipt.received_at,
        }),
    ))
}
