//! Values that cannot be invalid once parsed, and the records the service stores.
//!
//! Every `parse` returns the human-readable reason on failure; request types collect those
//! reasons per field (see [`Violations`]) so one response lists every invalid field.

mod contact;
mod delivery;
mod event;
mod notification;
mod project;
mod reminder;
mod search;
mod tag;
mod task;
mod user;
mod validation;

pub use contact::ContactMessage;
pub use delivery::{
    Channel, ClaimedDelivery, DeliveryJob, DeliveryOutcome, MailToken, PushMessage, TokenPurpose,
};
pub use event::{held_deltas, Event, EventDraft, EventKind, StreamKey, StreamUpdate};
pub use notification::{Notification, NotificationDraft, NotificationKind};
pub use project::{Invitation, Member, Membership, Project, ProjectName, Role};
pub use reminder::{fire as fire_reminder, ReminderSchedule, ReminderStage};
pub use search::TextSearch;
pub use tag::{tag_counts, Tag, TagCount, TagFilter, TagScope, Tags};
pub use task::{
    NewTask, Priority, Task, TaskChanges, TaskDescription, TaskFilter, TaskScope, TaskSort,
    TaskStatus, TaskTitle,
};
pub use user::{
    media_url, Email, Password, Profile, ProfileChanges, User, UserName, UserWithPassword,
};
pub use validation::{optional_text, plain_text, required_text, Violations};

/// The current time, truncated to microseconds: what both databases store exactly, so a
/// value read back equals the value written.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    truncate_to_micros(chrono::Utc::now())
}

pub fn truncate_to_micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::{SubsecRound, Timelike};
    let micros = t.nanosecond() / 1_000;
    t.trunc_subsecs(0) + chrono::Duration::microseconds(i64::from(micros))
}

/// Which end of a day a plain date stands for when it bounds a time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayEdge {
    Start,
    End,
}

/// The years a date may fall in: what both databases store (PostgreSQL refuses some
/// that SQLite keeps as text) and any client can show.
const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

fn year_in_range<T: chrono::Datelike>(value: T) -> Result<T, String> {
    if YEARS.contains(&value.year()) {
        Ok(value)
    } else {
        Err(format!(
            "must be within the years {} to {}",
            YEARS.start(),
            YEARS.end()
        ))
    }
}

/// An RFC 3339 date-time, a date-time without offset (taken as UTC), or a plain
/// `YYYY-MM-DD` date (its first or last instant, per `edge`), in the years 1 to 9999 (UTC).
pub fn parse_time(raw: &str, edge: DayEdge) -> Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc};
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return year_in_range(truncate_to_micros(t.with_timezone(&Utc)));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f") {
        return year_in_range(truncate_to_micros(t.and_utc()));
    }
    if let Ok(date) = parse_plain_date(raw) {
        let time = match edge {
            DayEdge::Start => NaiveTime::MIN,
            DayEdge::End => {
                NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).ok_or("invalid end of day")?
            }
        };
        return year_in_range(date.and_time(time).and_utc());
    }
    Err("must be a date (YYYY-MM-DD) or an RFC 3339 date-time".into())
}

fn parse_plain_date(raw: &str) -> chrono::ParseResult<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
}

/// A plain `YYYY-MM-DD` date in the years 1 to 9999.
pub fn parse_date(raw: &str) -> Result<chrono::NaiveDate, String> {
    let date = parse_plain_date(raw.trim())
        .map_err(|_| "must be a date in the form YYYY-MM-DD".to_string())?;
    year_in_range(date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_dates_cover_the_whole_day() {
        let start = parse_time("2026-11-27", DayEdge::Start).unwrap();
        let end = parse_time("2026-11-27", DayEdge::End).unwrap();
        assert_eq!(start.to_rfc3339(), "2026-11-27T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-11-27T23:59:59.999999+00:00");
        let t = parse_time("2026-11-27T10:00:00+02:00", DayEdge::Start).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T08:00:00+00:00");
        assert!(parse_time("27/11/2026", DayEdge::Start).is_err());
        assert!(parse_time("2026-13-01", DayEdge::Start).is_err());
    }

    #[test]
    fn absurd_years_are_refused() {
        for raw in [
            "-200000-01-01",
            "+200000-01-01",
            "-200000-01-01T00:00:00Z",
            "-200000-01-01T00:00:00",
            "0000-12-31",
            "0001-01-01T00:00:00+01:00",
            "+10000-01-01",
        ] {
            assert!(parse_time(raw, DayEdge::Start).is_err(), "{raw}");
        }
        assert!(parse_date("-200000-01-01").is_err());
        assert!(parse_date("0000-01-01").is_err());
        assert_eq!(
            parse_date("0001-01-01").map(|d| d.to_string()),
            Ok("0001-01-01".into())
        );
        assert!(parse_time("0001-01-01", DayEdge::Start).is_ok());
        assert!(parse_time("9999-12-31", DayEdge::End).is_ok());
    }

    proptest! {
        #[test]
        fn parse_time_never_panics(s in "\\PC{0,40}") {
            let _ = parse_time(&s, DayEdge::Start);
            let _ = parse_time(&s, DayEdge::End);
        }
    }
}
