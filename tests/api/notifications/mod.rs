//! `/notifications`: reading, marking read, deleting; who may reach which; what tasks leave.

mod access;
mod deleting;
mod from_tasks;
mod listing;
mod marking_read;

use serde_json::Value;

fn assert_timestamp(value: &Value) {
    let t = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    assert!(
        chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z'),
        "timestamp: {t}"
    );
}
