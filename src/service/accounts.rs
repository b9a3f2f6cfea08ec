//! Sign-up, sign-in, logout and refresh. Turning a bearer token into a user is
//! `auth::Authenticator`'s.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Services;
use crate::auth::{Authenticated, IssuedToken};
use crate::domain::{
    Email, EventDraft, EventKind, NotificationDraft, NotificationKind, Password, User, UserName,
};
use crate::error::{Error, Result};
use crate::limits::Limit;
use crate::store::{NewUser, StoreError, USERS_EMAIL_KEY, USERS_NAME_KEY};

/// A freshly issued token and the user it belongs to.
#[derive(Debug, Clone)]
pub struct AuthSession {
    pub token: IssuedToken,
    pub user: User,
}

pub struct Signup {
    pub name: UserName,
    pub email: Email,
    pub password: Password,
}

const EMAIL_TAKEN: &str = "An account with this email already exists";
pub(super) const NAME_TAKEN: &str = "This name is already taken";

/// The conflict a write of a user row lost to a concurrent one (the checks before it saw
/// nothing yet): each unique constraint of `users` says which value is taken.
pub(super) fn user_conflict(err: StoreError) -> Error {
    if err.is_unique(USERS_EMAIL_KEY) {
        Error::Conflict(EMAIL_TAKEN.into())
    } else if err.is_unique(USERS_NAME_KEY) {
        Error::Conflict(NAME_TAKEN.into())
    } else {
        err.into()
    }
}

pub async fn signup(svc: &Services, input: Signup) -> Result<AuthSession> {
    // The cheap duplicate checks come first, so a taken address or name costs no hashing
    // (the 409 says it is taken anyway). They run in a transaction of their own, dropped
    // (rolled back) before hashing: the hash is the slow part and must hold no lock. A
    // sign-up that wins a race after these checks is caught by the unique constraints.
    {
        let (mut tx, _) = svc.writes.begin().await?;
        if tx.email_taken(&input.email).await? {
            return Err(Error::Conflict(EMAIL_TAKEN.into()));
        }
        if tx.name_taken(input.name.as_str(), None).await? {
            return Err(Error::Conflict(NAME_TAKEN.into()));
        }
    }
    let hash = svc.passwords.hash(&input.password).await?;
    let (mut tx, now) = svc.writes.begin().await?;
    let profile = tx
        .insert_user(NewUser {
            id: Uuid::new_v4(),
            name: input.name.as_str(),
            email: &input.email,
            password_hash: &hash,
            now,
        })
        .await
        .map_err(user_conflict)?;
    let welcome = NotificationDraft::for_account(
        profile.id,
        NotificationKind::Signup,
        format!("Welcome, {}! Your account is ready.", profile.name),
    );
    let note = tx.insert_notification(&welcome, now).await?;
    let events = [EventDraft::new(EventKind::NotificationCreated, &note)];
    svc.writes
        .commit(tx, profile.id, &events, now, None)
        .await?;
    tracing::info!(user_id = %profile.id, "account created");
    Ok(AuthSession {
        token: svc.tokens.issue(profile.id)?,
        user: profile.user(),
    })
}

pub async fn signin(svc: &Services, email: &Email, password: &Password) -> Result<AuthSession> {
    // An address whose failures are spent is refused even with the right password, so
    // guessing cannot go on by spreading attempts over time within the window.
    svc.limits
        .ensure_available(Limit::Signin, email.as_str())
        .await?;
    let account = svc.store.user_for_sign_in(email).await?;
    let verification = svc
        .passwords
        .verify(password, account.as_ref().map(|a| a.password_hash.as_str()))
        .await?;
    let account = match account {
        Some(account) if verification.matched => account,
        _ => {
            svc.limits.enforce(Limit::Signin, email.as_str()).await?;
            return Err(Error::InvalidCredentials);
        }
    };
    let user = account.user;
    let rehashed = if verification.needs_rehash {
        Some(svc.passwords.hash(password).await?)
    } else {
        None
    };
    let (mut tx, now) = svc.writes.begin().await?;
    if let Some(hash) = &rehashed {
        tx.set_password_hash(user.id, hash).await?;
    }
    let note = NotificationDraft::for_account(
        user.id,
        NotificationKind::Login,
        format!("You signed in at {}.", now.format("%Y-%m-%d %H:%M UTC")),
    );
    let note = tx.insert_notification(&note, now).await?;
    let events = [EventDraft::new(EventKind::NotificationCreated, &note)];
    svc.writes.commit(tx, user.id, &events, now, None).await?;
    if rehashed.is_some() {
        tracing::info!(user_id = %user.id, "password hash upgraded to current parameters");
    }
    Ok(AuthSession {
        token: svc.tokens.issue(user.id)?,
        user,
    })
}

/// Revokes the presented token for the rest of its life.
pub async fn logout(svc: &Services, auth: &Authenticated) -> Result<DateTime<Utc>> {
    let (mut tx, now) = svc.writes.begin().await?;
    tx.revoke_token(auth.claims.jti, auth.user_id, auth.claims.expires_at())
        .await?;
    let note = NotificationDraft::for_account(
        auth.user_id,
        NotificationKind::Logout,
        format!("You signed out at {}.", now.format("%Y-%m-%d %H:%M UTC")),
    );
    let note = tx.insert_notification(&note, now).await?;
    let events = [EventDraft::new(EventKind::NotificationCreated, &note)];
    // The revocation rides with the commit so that every instance closes the token's
    // sockets (4003).
    svc.writes
        .commit(tx, auth.user_id, &events, now, Some(auth.claims.jti))
        .await?;
    Ok(now)
}

/// A new token for the same user; the presented one stays valid until it expires.
pub async fn refresh(svc: &Services, auth: &Authenticated) -> Result<AuthSession> {
    let user = me(svc, auth).await?;
    Ok(AuthSession {
        token: svc.tokens.issue(user.id)?,
        user,
    })
}

pub async fn me(svc: &Services, auth: &Authenticated) -> Result<User> {
    svc.store
        .profile(auth.user_id)
        .await?
        .map(|p| p.user())
        .ok_or(Error::InvalidToken)
}
