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

/// Refuses control characters other than tab and line breaks: NUL, for one, is stored by
/// SQLite but refused by PostgreSQL, and none of them belongs in text a person typed.
pub fn plain_text(text: &str) -> Result<&str, String> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err("must not contain control characters".into());
    }
    Ok(text)
}

/// An optional free text of at most `max` characters: trimmed, blank means none.
pub fn optional_text(raw: Option<&str>, max: usize) -> Result<Option<String>, String> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > max => Err(format!("must be at most {max} characters")),
        Some(s) => plain_text(s).map(|s| Some(s.to_string())),
        None => Ok(None),
    }
}

/// A required free text of at most `max` characters, trimmed.
pub fn required_text(raw: Option<&str>, max: usize) -> Result<String, String> {
    optional_text(raw, max)?.ok_or_else(|| "is required".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_but_line_breaks_are_not() {
        assert!(plain_text("a\u{0}b").is_err());
        assert!(plain_text("bell\u{7}").is_err());
        assert!(plain_text("\u{9b}csi").is_err());
        assert_eq!(
            plain_text("two\nlines\r\n\ttabbed"),
            Ok("two\nlines\r\n\ttabbed")
        );
        assert_eq!(optional_text(Some("  x "), 5), Ok(Some("x".into())));
        assert_eq!(optional_text(Some("   "), 5), Ok(None));
        assert!(optional_text(Some("abcdef"), 5).is_err());
        assert!(optional_text(Some("nul\u{0}"), 50).is_err());
        assert_eq!(required_text(Some(" y "), 5), Ok("y".into()));
        assert!(required_text(Some("  "), 5).is_err());
        assert!(required_text(None, 5).is_err());
    }
}
