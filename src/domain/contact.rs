//! A message sent through the public contact form (`POST /contact`).

use super::validation::required_text;
use super::{Email, Violations};
use crate::error::Result;

pub const NAME_MAX: usize = 100;
pub const SUBJECT_MAX: usize = 200;
pub const MESSAGE_MAX: usize = 5000;

/// A contact message whose every field is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactMessage {
    pub name: String,
    pub email: Email,
    pub subject: String,
    pub message: String,
}

impl ContactMessage {
    /// Checks every field, listing all that are invalid.
    pub fn parse(
        name: Option<&str>,
        email: Option<&str>,
        subject: Option<&str>,
        message: Option<&str>,
    ) -> Result<Self> {
        let mut v = Violations::new();
        let name = v.check("name", required_text(name, NAME_MAX));
        let email = v.check(
            "email",
            email
                .ok_or_else(|| "email is required".to_string())
                .and_then(Email::parse),
        );
        let subject = v.check("subject", required_text(subject, SUBJECT_MAX));
        let message = v.check("message", required_text(message, MESSAGE_MAX));
        v.finish(|| {
            Some(Self {
                name: name?,
                email: email?,
                subject: subject?,
                message: message?,
            })
        })
    }
}
