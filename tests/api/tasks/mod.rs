//! `/tasks`: creating, listing, updating, deleting; each user's own.

mod access;
mod creating;
mod deleting;
mod listing;
mod search;
mod tags;
mod updating;
