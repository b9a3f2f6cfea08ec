//! Projects: members and roles, invitations, project tasks, and project streams.

mod invitations;
mod presence;
mod roles;
mod streams;
mod tasks;
