//! Tags: a task's labels, and a scope's vocabulary of them with counts.
//!
//! A tag is shown as its user first spelt it and matched regardless of case: its key is
//! the tag lower-cased in Rust (full Unicode, like `users.name_key`), so both backends
//! compare the same keys.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::validation::plain_text;

/// One tag: 1–32 characters after trimming, no control characters (line breaks and tabs
/// included: a tag is one line) and no comma.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag(String);

impl Tag {
    pub const MAX_CHARS: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let tag = raw.trim();
        if tag.is_empty() {
            return Err("a tag must not be empty".into());
        }
        // As sent, surrounding spaces included, like a title: what the API documents.
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!(
                "a tag must be at most {} characters",
                Self::MAX_CHARS
            ));
        }
        let tag = plain_text(tag).map_err(|e| format!("a tag {e}"))?;
        if tag.chars().any(char::is_control) {
            return Err("a tag must be one line".into());
        }
        if tag.contains(',') {
            return Err("a tag must not contain a comma".into());
        }
        Ok(Self(tag.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What tags are matched and counted by: the tag in lower case.
    pub fn key(&self) -> String {
        Self::key_of(&self.0)
    }

    pub fn key_of(tag: &str) -> String {
        tag.to_lowercase()
    }
}

/// A task's tags, in the order given, no two with the same key (a later duplicate is
/// dropped, the first spelling kept), at most [`Tags::MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Tags(Vec<String>);

impl Tags {
    pub const MAX: usize = 10;

    /// Every tag checked; more than [`Tags::MAX`] given (duplicates included) is refused.
    pub fn parse(raw: &[String]) -> Result<Self, String> {
        if raw.len() > Self::MAX {
            return Err(format!("a task has at most {} tags", Self::MAX));
        }
        let mut tags: Vec<String> = Vec::with_capacity(raw.len());
        let mut keys = std::collections::HashSet::with_capacity(raw.len());
        for (i, raw) in raw.iter().enumerate() {
            let tag = Tag::parse(raw).map_err(|e| format!("tags[{i}]: {e}"))?;
            if keys.insert(tag.key()) {
                tags.push(tag.0);
            }
        }
        Ok(Self(tags))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each tag with its key.
    pub fn keyed(&self) -> impl Iterator<Item = (String, &str)> {
        self.0.iter().map(|tag| (Tag::key_of(tag), tag.as_str()))
    }

    /// As stored in `tasks.tags`: a JSON array of strings.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".into())
    }
}

/// Read back from `tasks.tags` (written by [`Tags::to_json`], so not checked again).
impl TryFrom<String> for Tags {
    type Error = String;
    fn try_from(json: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&json)
            .map(Self)
            .map_err(|e| format!("tasks.tags is not a JSON array of strings: {e}"))
    }
}

/// The keys a task list must have every one of (`?tag=a&tag=b`): no two the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagFilter(Vec<String>);

impl TagFilter {
    /// More than [`Tags::MAX`] given (repeats included) is refused, as for a task.
    pub fn parse<'a>(raw: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut keys: Vec<String> = Vec::new();
        for (i, raw) in raw.into_iter().enumerate() {
            if i == Tags::MAX {
                return Err(format!("at most {} tags (no task has more)", Tags::MAX));
            }
            let key = Tag::parse(raw)?.key();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(Self(keys))
    }

    pub fn keys(&self) -> &[String] {
        &self.0
    }
}

/// Whose tags `GET /tags` counts. Only a user's personal tasks for now; a project's
/// vocabulary is its own scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagScope {
    /// The user's personal tasks that are not in the trash.
    User(Uuid),
    /// A project's tasks that are not in the trash.
    Project(Uuid),
}

/// One tag of a vocabulary and how many tasks carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TagCount {
    /// As first spelt (on the oldest task carrying it).
    pub tag: String,
    pub count: i64,
}

/// The vocabulary from rows of `(key, spelling, tasks with that spelling, the oldest of
/// them)`: spellings of one key merged under the oldest one, most used first, then by tag.
pub fn tag_counts(rows: Vec<(String, String, i64, i64)>) -> Vec<TagCount> {
    let mut merged: std::collections::HashMap<String, (String, i64, i64)> =
        std::collections::HashMap::new();
    for (key, tag, count, first) in rows {
        let entry = merged.entry(key).or_insert_with(|| (tag.clone(), 0, first));
        entry.1 += count;
        if first < entry.2 {
            entry.0 = tag;
            entry.2 = first;
        }
    }
    let mut counts: Vec<(String, TagCount)> = merged
        .into_iter()
        .map(|(key, (tag, count, _))| (key, TagCount { tag, count }))
        .collect();
    counts.sort_by(|(a_key, a), (b_key, b)| {
        b.count
            .cmp(&a.count)
            .then_with(|| a_key.cmp(b_key))
            .then_with(|| a.tag.cmp(&b.tag))
    });
    counts.into_iter().map(|(_, count)| count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strings(raw: &[&str]) -> Vec<String> {
        raw.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tags_are_trimmed_checked_and_deduplicated_regardless_of_case() {
        let tags = Tags::parse(&strings(&[" Urgent ", "home", "URGENT", "Zoë", "ZOË"])).unwrap();
        assert_eq!(tags.as_slice(), ["Urgent", "home", "Zoë"]);
        assert_eq!(
            tags.keyed().map(|(k, _)| k).collect::<Vec<_>>(),
            ["urgent", "home", "zoë"]
        );
        assert!(Tag::parse("   ").is_err());
        assert!(Tag::parse("a,b").is_err());
        assert!(Tag::parse("two\nlines").is_err());
        assert!(Tag::parse("tab\tbed").is_err());
        assert!(Tag::parse("nul\u{0}").is_err());
        assert!(Tag::parse(&"x".repeat(32)).is_ok());
        assert!(Tag::parse(&"x".repeat(33)).is_err());
        assert!(Tag::parse(&"é".repeat(32)).is_ok(), "characters, not bytes");
        assert!(Tags::parse(&strings(&["a"; 10])).is_ok());
        assert!(Tags::parse(&strings(&["a"; 11])).is_err());
        let err = Tags::parse(&strings(&["ok", ""])).unwrap_err();
        assert!(err.starts_with("tags[1]"), "{err}");
    }

    #[test]
    fn tags_round_trip_through_their_stored_form() {
        let tags = Tags::parse(&strings(&["a \"quoted\" tag", "ünï"])).unwrap();
        assert_eq!(Tags::try_from(tags.to_json()), Ok(tags));
        assert_eq!(Tags::try_from("[]".to_string()), Ok(Tags::default()));
        assert!(Tags::try_from("{}".to_string()).is_err());
    }

    #[test]
    fn tag_filters_are_keys_without_repeats() {
        let filter = TagFilter::parse(["Urgent", "urgent", " home "]).unwrap();
        assert_eq!(filter.keys(), ["urgent", "home"]);
        assert!(TagFilter::parse(["a,b"]).is_err());
        let many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        assert!(TagFilter::parse(many.iter().map(String::as_str)).is_err());
        assert!(
            TagFilter::parse(["a"; 11]).is_err(),
            "as many as a task may have"
        );
        assert_eq!(TagFilter::parse(["a"; 10]).unwrap().keys(), ["a"]);
    }

    #[test]
    fn counts_merge_spellings_under_the_oldest_and_sort() {
        let rows = vec![
            ("urgent".into(), "URGENT".into(), 1, 7),
            ("urgent".into(), "Urgent".into(), 2, 3),
            ("home".into(), "home".into(), 3, 5),
            ("b".into(), "b".into(), 1, 1),
            ("a".into(), "A".into(), 1, 9),
        ];
        let counts: Vec<(String, i64)> = tag_counts(rows)
            .into_iter()
            .map(|c| (c.tag, c.count))
            .collect();
        assert_eq!(
            counts,
            [
                ("home".into(), 3),
                ("Urgent".into(), 3),
                ("A".into(), 1),
                ("b".into(), 1)
            ]
        );
    }

    proptest! {
        #[test]
        fn tags_parse_is_total_and_bounded(raw in proptest::collection::vec("\\PC{0,40}", 0..14)) {
            if let Ok(tags) = Tags::parse(&raw) {
                prop_assert!(tags.as_slice().len() <= Tags::MAX);
                let mut keys: Vec<String> = tags.keyed().map(|(k, _)| k).collect();
                let n = keys.len();
                keys.sort();
                keys.dedup();
                prop_assert_eq!(keys.len(), n);
                for tag in tags.as_slice() {
                    prop_assert!((1..=Tag::MAX_CHARS).contains(&tag.chars().count()));
                    prop_assert!(!tag.contains(','));
                }
            }
        }
    }
}
