//! Passwords (argon2id, off the async runtime), tokens (HS256 JWTs with a revocable `jti`)
//! and a short memory of tokens found unrevoked. The HTTP extractor that turns a bearer
//! token into a user is in `http::extract`.

mod password;
mod token;
mod token_checks;

pub use password::{PasswordHasher, PasswordParams};
pub use token::{Claims, IssuedToken, TokenIssuer};
pub use token_checks::TokenChecks;
