//! Schemas of the OpenAPI document that no Rust type spells out: the text and date
//! shapes the domain parsers accept, written so that a value the document allows is one
//! the server takes, and the other way round.

use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

fn string(format: KnownFormat) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(format)))
        .into()
}

fn date_or_time(clearable: bool) -> Schema {
    let mut any = AnyOfBuilder::new()
        .item(string(KnownFormat::Date))
        .item(string(KnownFormat::DateTime));
    if clearable {
        any = any
            .item(blank())
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .description(Some(
                "A date (`YYYY-MM-DD`) or an RFC 3339 date-time, in the years 1 to 9999; blank or `null` for none",
            ));
    } else {
        any = any.description(Some(
            "A date (`YYYY-MM-DD`) or an RFC 3339 date-time, in the years 1 to 9999",
        ));
    }
    any.into()
}

/// A string of white space only, which the parsers take as no value.
fn blank() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^[ \t\n\r]*$"))
        .into()
}

/// A date or an RFC 3339 date-time (`domain::parse_time`).
pub struct DateOrTime;

impl PartialSchema for DateOrTime {
    fn schema() -> RefOr<Schema> {
        date_or_time(false).into()
    }
}

impl ToSchema for DateOrTime {}

/// A date or date-time, or blank or `null` for none.
pub fn date_or_time_or_null() -> Schema {
    date_or_time(true)
}

/// A date of birth: `YYYY-MM-DD` from the year 1 and not in the future (the document says
/// up to 2025, a bound that never moves into the future), blank or `null` to clear it.
pub fn birth_date() -> Schema {
    let past_date = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .pattern(Some(
            r"^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|1[0-9]{3}|20[01][0-9]|202[0-5])-[0-9]{2}-[0-9]{2}$",
        ));
    AnyOfBuilder::new()
        .item(past_date)
        .item(blank())
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

/// One tag (`domain::Tag`): at most 32 characters as sent, not blank, one line, no comma.
fn tag_text() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(crate::domain::Tag::MAX_CHARS))
        .pattern(Some(
            r"^[^,\u0000-\u001F\u007F-\u009F]*[^\s,\u0000-\u001F\u007F-\u009F][^,\u0000-\u001F\u007F-\u009F]*$",
        ))
}

/// A tag, as a query parameter takes it.
pub struct TagText;

impl PartialSchema for TagText {
    fn schema() -> RefOr<Schema> {
        Schema::from(tag_text()).into()
    }
}

impl ToSchema for TagText {}

/// A task's tags (`domain::Tags`): at most 10.
fn tags() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(tag_text())
        .max_items(Some(crate::domain::Tags::MAX))
}

/// Tags to replace a task's with (`PATCH`): `null` is refused.
pub fn tag_list() -> Schema {
    tags()
        .description(Some(
            "Replaces the task's tags: up to 10, each 1–32 characters, one line, no comma; \
             repeats (regardless of case) are dropped, the first spelling kept. `[]` removes \
             them; `null` is refused",
        ))
        .into()
}

/// A task's tags as `POST` and `PUT` take them: `null` is as good as absent.
pub fn tag_list_or_null() -> Schema {
    AnyOfBuilder::new()
        .item(tags())
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "Up to 10 tags, each 1–32 characters, one line, no comma; repeats (regardless of \
             case) are dropped, the first spelling kept. `POST` without it (or `null`): \
             none; `PUT` without it (or `null`) keeps the task's tags, `[]` removes them",
        ))
        .into()
}
