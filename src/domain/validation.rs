use crate::error::{Error, FieldError};

/// Collects the invalid fields of one request, so the client learns about all of them at
/// once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value when it parsed, records the reason under `field` when it did not.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(message) => {
                self.0.push(FieldError::new(field, message));
                None
            }
        }
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was recorded, else the 422 listing every field.
    pub fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, Error> {
        if !self.0.is_empty() {
            return Err(Error::validation(self.0));
        }
        value().ok_or_else(|| Error::Internal(anyhow::anyhow!("validated value missing")))
    }
}
