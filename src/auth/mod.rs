//! Passwords (argon2id, off the async runtime) and tokens (HS256 JWTs with a revocable
//! `jti`). The HTTP extractor that turns a bearer token into a user is in
//! `http::extract`.

mod password;
mod token;

pub use password::{PasswordHasher, PasswordParams};
pub use token::{Claims, IssuedToken, TokenIssuer};
