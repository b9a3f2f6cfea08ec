use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// An e-mail address, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("email is required".into());
        }
        if email.len() > 254 {
            return Err("email must be at most 254 characters".into());
        }
        let invalid = || "must be a valid email address".to_string();
        let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
        if local_ok && domain_ok {
            Ok(Self(email))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: 2–100 characters of letters, spaces, `-`, `'` and `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        let length = name.chars().count();
        if length < 2 {
            return Err("name must be at least 2 characters".into());
        }
        if length > 100 {
            return Err("name must be at most 100 characters".into());
        }
        if !name
            .chars()
            .all(|c| c.is_alphabetic() || c == ' ' || c == '-' || c == '\'' || c == '.')
        {
            return Err(
                "name may contain only letters, spaces, hyphens, apostrophes and periods".into(),
            );
        }
        if !name.chars().any(char::is_alphabetic) {
            return Err("name must contain a letter".into());
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What uniqueness is checked on: the name in lower case (full Unicode), so "Zoë" and
    /// "ZOË" are the same name on every backend.
    pub fn key_of(name: &str) -> String {
        name.to_lowercase()
    }
}

/// A password that meets the strength rules. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Bundled list of common password stems (lower case, one per line). A password whose
/// stem, after undoing the usual letter-for-symbol swaps and dropping the digits and
/// symbols around it, is on this list is refused.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

impl Password {
    pub fn parse(raw: String) -> Result<Self, String> {
        let length = raw.chars().count();
        if length < 8 {
            return Err("password must be at least 8 characters".into());
        }
        if length > 128 {
            return Err("password must be at most 128 characters".into());
        }
        let mut missing = Vec::new();
        if !raw.chars().any(char::is_uppercase) {
            missing.push("an uppercase letter");
        }
        if !raw.chars().any(char::is_lowercase) {
            missing.push("a lowercase letter");
        }
        if !raw.chars().any(|c| c.is_ascii_digit()) {
            missing.push("a digit");
        }
        if !raw
            .chars()
            .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
        {
            missing.push("a special character");
        }
        if !missing.is_empty() {
            return Err(format!("password must contain {}", missing.join(", ")));
        }
        if is_common_password(&raw) {
            return Err("password is too common; choose a less predictable one".into());
        }
        Ok(Self(raw))
    }

    /// A password as typed at sign-in: not checked against the rules (they may have
    /// changed since it was chosen), only bounded.
    pub fn for_sign_in(raw: String) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("password is required".into());
        }
        if raw.chars().count() > 128 {
            return Err("password must be at most 128 characters".into());
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn is_common_password(raw: &str) -> bool {
    let lower = raw.to_lowercase();
    let stems = COMMON_PASSWORDS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    // Undo leetspeak; '1' may stand for 'i' or 'l', so try both readings.
    let readings = [deleet(&lower, 'i'), deleet(&lower, 'l')];
    let cores: Vec<String> = readings
        .iter()
        .map(|r| r.trim_matches(|c: char| !c.is_alphabetic()).to_string())
        .collect();
    stems.into_iter().any(|stem| {
        lower == stem || readings.iter().any(|r| r == stem) || cores.iter().any(|core| core == stem)
    })
}

fn deleet(s: &str, one: char) -> String {
    // Digits at the very end are usually a suffix ("Welcome1!"), not a letter swap: keep
    // them as digits so trimming drops them.
    let trailing = s.chars().rev().take_while(|c| !c.is_alphabetic()).count();
    let keep_from = s.chars().count() - trailing;
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if i >= keep_from {
                return c;
            }
            match c {
                '@' | '4' => 'a',
                '0' => 'o',
                '1' | '!' | '|' => one,
                '3' => 'e',
                '$' | '5' => 's',
                '7' | '+' => 't',
                '8' => 'b',
                '9' => 'g',
                other => other,
            }
        })
        .collect()
}

/// A user as the API shows it (`/auth/me`, the `user` of sign-in responses).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub profile_photo_url: Option<String>,
    pub is_email_verified: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user with the stored password hash, for sign-in only.
#[derive(Debug, Clone)]
pub struct UserWithPassword {
    pub user: User,
    pub password_hash: String,
}

/// The full profile (`GET /profile`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Profile {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    #[schema(value_type = Option<String>, format = Date)]
    pub date_of_birth: Option<NaiveDate>,
    pub gender: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub bio: Option<String>,
    pub profile_photo_url: Option<String>,
    pub is_email_verified: bool,
    /// Due-date reminders also by e-mail (off unless the user turns it on).
    pub email_reminders: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `path` (a stored `/media/…` path) as seen from `origin` (see `http::client::RequestOrigin`).
pub fn media_url(origin: &str, path: &str) -> String {
    format!("{origin}{path}")
}

impl User {
    /// The user with the photo's URL absolute for clients that reached us at `origin`.
    pub fn located(mut self, origin: &str) -> Self {
        self.profile_photo_url = self.profile_photo_url.map(|p| media_url(origin, &p));
        self
    }
}

impl Profile {
    /// The profile with the photo's URL absolute for clients that reached us at `origin`.
    pub fn located(mut self, origin: &str) -> Self {
        self.profile_photo_url = self.profile_photo_url.map(|p| media_url(origin, &p));
        self
    }

    pub fn user(&self) -> User {
        User {
            id: self.id,
            name: self.name.clone(),
            email: self.email.clone(),
            profile_photo_url: self.profile_photo_url.clone(),
            is_email_verified: self.is_email_verified,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A validated profile update: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileChanges {
    pub name: Option<UserName>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub date_of_birth: Option<Option<NaiveDate>>,
    pub gender: Option<Option<String>>,
    pub address: Option<Option<String>>,
    pub city: Option<Option<String>>,
    pub country: Option<Option<String>>,
    pub bio: Option<Option<String>>,
    pub email_reminders: Option<bool>,
}

impl ProfileChanges {
    /// The names of the fields this update sets, in a stable order.
    pub fn field_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let fields: [(&'static str, bool); 11] = [
            ("name", self.name.is_some()),
            ("first_name", self.first_name.is_some()),
            ("last_name", self.last_name.is_some()),
            ("phone", self.phone.is_some()),
            ("date_of_birth", self.date_of_birth.is_some()),
            ("gender", self.gender.is_some()),
            ("address", self.address.is_some()),
            ("city", self.city.is_some()),
            ("country", self.country.is_some()),
            ("bio", self.bio.is_some()),
            ("email_reminders", self.email_reminders.is_some()),
        ];
        for (name, set) in fields {
            if set {
                names.push(name);
            }
        }
        names
    }

    /// Applies the update to a profile; the store writes the result back whole.
    pub fn apply(&self, profile: &mut Profile) {
        fn set<T: Clone>(target: &mut T, change: &Option<T>) {
            if let Some(value) = change {
                *target = value.clone();
            }
        }
        if let Some(name) = &self.name {
            profile.name = name.as_str().to_string();
        }
        set(&mut profile.first_name, &self.first_name);
        set(&mut profile.last_name, &self.last_name);
        set(&mut profile.phone, &self.phone);
        set(&mut profile.date_of_birth, &self.date_of_birth);
        set(&mut profile.gender, &self.gender);
        set(&mut profile.address, &self.address);
        set(&mut profile.city, &self.city);
        set(&mut profile.country, &self.country);
        set(&mut profile.bio, &self.bio);
        set(&mut profile.email_reminders, &self.email_reminders);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse("  Ada.Lovelace@Example.COM ").map(|e| e.0),
            Ok("ada.lovelace@example.com".to_string())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@@example.com",
            "ada@-x.com",
            "ada@example.c0m",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn names_follow_the_rules() {
        assert!(UserName::parse("Ada Lovelace").is_ok());
        assert!(UserName::parse("Jean-Luc O'Neil Jr.").is_ok());
        assert!(UserName::parse("Zoë Ångström").is_ok());
        assert!(UserName::parse("A").is_err());
        assert!(UserName::parse("Ada1").is_err());
        assert!(UserName::parse("--").is_err());
        assert!(UserName::parse(&"a".repeat(101)).is_err());
    }

    #[test]
    fn passwords_need_every_class() {
        assert!(Password::parse("Tr0ub4dor&3x".into()).is_ok());
        assert!(Password::parse("short1!A".into()).is_ok());
        assert!(Password::parse("Sh0rt!".into()).is_err());
        assert!(Password::parse("alllowercase1!".into()).is_err());
        assert!(Password::parse("ALLUPPERCASE1!".into()).is_err());
        assert!(Password::parse("NoDigitsHere!".into()).is_err());
        assert!(Password::parse("NoSpecial123".into()).is_err());
        assert!(Password::parse(format!("Aa1!{}", "x".repeat(125))).is_err());
    }

    #[test]
    fn common_passwords_are_refused_even_when_they_pass_the_rules() {
        for common in [
            "P@ssw0rd",
            "Passw0rd!",
            "Welcome1!",
            "Password1!",
            "P@ssword123",
            "Qwerty123!",
            "Admin@123",
            "Letmein1!",
            "Iloveyou1!",
            "Summer2024!",
            "Football1!",
            "Monkey123!",
            "Dragon12!",
            "Sunshine1!",
            "Changeme1!",
            "Abc12345!",
            "Trustno1!",
        ] {
            assert!(
                Password::parse(common.into()).is_err(),
                "{common} should be refused"
            );
        }
    }

    proptest! {
        #[test]
        fn email_parse_never_panics_and_output_is_normal(s in "\\PC{0,80}") {
            if let Ok(email) = Email::parse(&s) {
                prop_assert_eq!(email.as_str(), email.as_str().trim().to_lowercase());
                prop_assert!(email.as_str().contains('@'));
            }
        }

        #[test]
        fn valid_looking_emails_are_accepted(local in "[a-z0-9]{1,20}", domain in "[a-z]{1,20}", tld in "[a-z]{2,6}") {
            let raw = format!("{local}@{domain}.{tld}");
            prop_assert!(Email::parse(&raw).is_ok());
        }

        #[test]
        fn accepted_passwords_meet_every_rule(s in "\\PC{0,140}") {
            if let Ok(p) = Password::parse(s.clone()) {
                let n = p.expose().chars().count();
                prop_assert!((8..=128).contains(&n));
                prop_assert!(s.chars().any(char::is_uppercase));
                prop_assert!(s.chars().any(char::is_lowercase));
                prop_assert!(s.chars().any(|c| c.is_ascii_digit()));
            }
        }

        #[test]
        fn accepted_names_are_trimmed_and_bounded(s in "\\PC{0,120}") {
            if let Ok(name) = UserName::parse(&s) {
                let n = name.as_str().chars().count();
                prop_assert!((2..=100).contains(&n));
                prop_assert_eq!(name.as_str(), name.as_str().trim());
            }
        }
    }
}
