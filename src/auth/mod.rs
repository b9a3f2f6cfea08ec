//! Passwords (argon2id, off the async runtime), tokens (HS256 JWTs naming their session,
//! `sid`, and themselves, `jti`), a short memory of tokens found usable, and the
//! [`Authenticator`] that HTTP requests and sockets both use to turn a bearer token into a
//! user.

mod authenticator;
mod password;
mod token;
mod token_checks;

pub use authenticator::{Authenticated, Authenticator};
pub use password::{HashBounds, PasswordHasher, PasswordParams};
pub use token::{Claims, IssuedToken, TokenIssuer};
pub use token_checks::TokenChecks;
