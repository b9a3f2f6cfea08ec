//! Sign-up, sign-in, sessions (refresh, logout, listing, ending), password changes and
//! resets, and e-mail verification.
//! Turning a bearer token into a user is `auth::Authenticator`'s.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Services;
use crate::auth::{Authenticated, IssuedToken};
use crate::domain::{
    DeliveryJob, Email, EventDraft, EventKind, MailToken, NotificationDraft, NotificationKind,
    Password, Profile, TokenPurpose, User, UserName,
};
use crate::error::{Error, Result};
use crate::limits::Limit;
use crate::store::{
    NewSession, NewUser, Session, StoreError, StoreTx, UsedMailToken, USERS_EMAIL_KEY,
    USERS_NAME_KEY,
};

/// Where a sign-in comes from, as recorded on its session.
#[derive(Debug, Clone, Default)]
pub struct Device {
    /// The `User-Agent` header, cut to [`Device::MAX_USER_AGENT`] characters.
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl Device {
    pub const MAX_USER_AGENT: usize = 256;

    pub fn new(user_agent: Option<&str>, ip: Option<String>) -> Self {
        let user_agent = user_agent
            .map(|ua| ua.chars().take(Self::MAX_USER_AGENT).collect::<String>())
            .filter(|ua| !ua.trim().is_empty());
        Self { user_agent, ip }
    }
}

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

/// How many waiting invitations a sign-up is notified of (all are in `GET /invitations`).
const MAX_INVITATIONS_ANNOUNCED: usize = 20;

pub async fn signup(svc: &Services, input: Signup, device: &Device) -> Result<AuthSession> {
    // The cheap duplicate checks come first, on the read pool, so a taken address or name
    // costs no hashing and no writer (the 409 says it is taken anyway). A sign-up that
    // wins a race after these checks is caught by the unique constraints.
    if svc.store.email_taken(&input.email).await? {
        return Err(Error::Conflict(EMAIL_TAKEN.into()));
    }
    if svc.store.name_taken(input.name.as_str(), None).await? {
        return Err(Error::Conflict(NAME_TAKEN.into()));
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
    let (_, mut events) = super::notifications::add(svc, &mut tx, &welcome, now).await?;
    // Invitations to the address that waited for this sign-up (a handful at most: a
    // project's members and invitations are bounded, and so is the list here).
    let waiting = svc.store.invitations_to(input.email.as_str(), now).await?;
    for invitation in waiting.iter().take(MAX_INVITATIONS_ANNOUNCED) {
        let draft = super::projects::invitation_notice(profile.id, invitation);
        let (_, noted) = super::notifications::add(svc, &mut tx, &draft, now).await?;
        events.extend(noted);
    }
    tx.enqueue_delivery(Some(profile.id), &DeliveryJob::Welcome, now)
        .await?;
    let (token, _) = open_session(svc, tx.as_mut(), profile.id, device, now).await?;
    svc.writes
        .commit(tx, profile.id, &events, now, Vec::new())
        .await?;
    tracing::info!(user_id = %profile.id, "account created");
    Ok(AuthSession {
        token,
        user: profile.user(),
    })
}

/// Records a new session in `tx` and issues its first token. Also returns the tokens of
/// the sessions it ended to stay within MAX_SESSIONS_PER_USER (the least recently used),
/// for the commit to stop.
async fn open_session(
    svc: &Services,
    tx: &mut dyn StoreTx,
    user_id: Uuid,
    device: &Device,
    now: DateTime<Utc>,
) -> Result<(IssuedToken, Vec<Uuid>)> {
    let id = Uuid::new_v4();
    let expires_at = now + svc.tokens.session_max_age();
    let token = svc.tokens.issue(user_id, id, expires_at)?;
    tx.insert_session(NewSession {
        id,
        user_id,
        now,
        expires_at,
        user_agent: device.user_agent.as_deref(),
        ip: device.ip.as_deref(),
        token_jti: token.claims.jti,
    })
    .await?;
    let ended = tx
        .end_sessions_beyond(user_id, svc.quotas.max_sessions_per_user, now)
        .await?;
    Ok((token, ended))
}

pub async fn signin(
    svc: &Services,
    email: &Email,
    password: &Password,
    device: &Device,
    origin: &str,
) -> Result<AuthSession> {
    // An address whose failures are spent is refused even with the right password, so
    // guessing cannot go on by spreading attempts over time within the window.
    svc.limits
        .ensure_available(Limit::Signin, email.as_str())
        .await?;
    // A hashing place first: a flood the hasher cannot take is refused before it reads
    // the database.
    let admission = svc.passwords.admit()?;
    let account = svc.store.user_for_sign_in(email).await?;
    let stored = account.as_ref().map(|a| a.password_hash.as_str());
    let verification = svc
        .passwords
        .verify_admitted(admission, password, stored)
        .await?;
    let account = match account {
        Some(account) if verification.matched => account,
        _ => {
            svc.limits.enforce(Limit::Signin, email.as_str()).await?;
            return Err(Error::InvalidCredentials);
        }
    };
    let user = account.user.located(origin);
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
    let (_, events) = super::notifications::add(svc, &mut tx, &note, now).await?;
    let (token, ended) = open_session(svc, tx.as_mut(), user.id, device, now).await?;
    svc.writes.commit(tx, user.id, &events, now, ended).await?;
    if rehashed.is_some() {
        tracing::info!(user_id = %user.id, "password hash upgraded to current parameters");
    }
    Ok(AuthSession { token, user })
}

/// Ends the sessions of `user_id` that `end` ends in the transaction, with a notification
/// of `kind`, and announces their tokens so that every instance stops them and closes their
/// sockets (4003).
async fn end_sessions_with(
    svc: &Services,
    mut tx: Box<dyn StoreTx>,
    now: DateTime<Utc>,
    user_id: Uuid,
    ended: Vec<Uuid>,
    kind: NotificationKind,
    message: String,
) -> Result<()> {
    let note = NotificationDraft::for_account(user_id, kind, message);
    let (_, events) = super::notifications::add(svc, &mut tx, &note, now).await?;
    svc.writes.commit(tx, user_id, &events, now, ended).await
}

/// Ends the presented token's session.
pub async fn logout(svc: &Services, auth: &Authenticated) -> Result<DateTime<Utc>> {
    let (mut tx, now) = svc.writes.begin().await?;
    let ended = tx.end_session(auth.user_id, auth.claims.sid, now).await?;
    let message = format!("You signed out at {}.", now.format("%Y-%m-%d %H:%M UTC"));
    end_sessions_with(
        svc,
        tx,
        now,
        auth.user_id,
        ended.into_iter().collect(),
        NotificationKind::Logout,
        message,
    )
    .await?;
    Ok(now)
}

/// Ends every session of the user, the presented one included; returns how many.
pub async fn logout_all(svc: &Services, auth: &Authenticated) -> Result<(DateTime<Utc>, usize)> {
    let (mut tx, now) = svc.writes.begin().await?;
    let ended = tx.end_sessions(auth.user_id, None, now).await?;
    let count = ended.len();
    let message = format!(
        "You signed out of every device at {}.",
        now.format("%Y-%m-%d %H:%M UTC")
    );
    end_sessions_with(
        svc,
        tx,
        now,
        auth.user_id,
        ended,
        NotificationKind::Logout,
        message,
    )
    .await?;
    Ok((now, count))
}

/// The user's open sessions.
pub async fn sessions(svc: &Services, auth: &Authenticated) -> Result<Vec<Session>> {
    Ok(svc
        .store
        .active_sessions(auth.user_id, crate::domain::now())
        .await?)
}

/// Ends one of the user's open sessions; `NotFound` for any other id (another user's
/// included, so that ids cannot be probed).
pub async fn end_session(svc: &Services, auth: &Authenticated, id: Uuid) -> Result<()> {
    let (mut tx, now) = svc.writes.begin().await?;
    let Some(ended) = tx.end_session(auth.user_id, id, now).await? else {
        return Err(Error::not_found("Session"));
    };
    let message = format!(
        "A session was signed out at {}.",
        now.format("%Y-%m-%d %H:%M UTC")
    );
    end_sessions_with(
        svc,
        tx,
        now,
        auth.user_id,
        vec![ended],
        NotificationKind::Logout,
        message,
    )
    .await
}

/// Changes the password after checking the current one, and ends every other session;
/// returns how many were ended.
pub async fn change_password(
    svc: &Services,
    auth: &Authenticated,
    current: &Password,
    new: &Password,
) -> Result<usize> {
    let user = account(svc, auth).await?;
    // Guessing the current password with a stolen token spends the sign-in budget of the
    // account's address, like guessing it at sign-in.
    svc.limits
        .ensure_available(Limit::Signin, user.email.as_str())
        .await?;
    let stored = svc.store.password_hash(auth.user_id).await?;
    let verification = svc.passwords.verify(current, stored.as_deref()).await?;
    if !verification.matched {
        svc.limits
            .enforce(Limit::Signin, user.email.as_str())
            .await?;
        return Err(Error::InvalidCredentials);
    }
    let hash = svc.passwords.hash(new).await?;
    let (mut tx, now) = svc.writes.begin().await?;
    tx.set_password_hash(auth.user_id, &hash).await?;
    let ended = tx
        .end_sessions(auth.user_id, Some(auth.claims.sid), now)
        .await?;
    let count = ended.len();
    tx.enqueue_delivery(Some(auth.user_id), &DeliveryJob::PasswordChanged, now)
        .await?;
    let message = format!(
        "Your password was changed at {}; your other sessions were signed out.",
        now.format("%Y-%m-%d %H:%M UTC")
    );
    end_sessions_with(
        svc,
        tx,
        now,
        auth.user_id,
        ended,
        NotificationKind::ProfileUpdated,
        message,
    )
    .await?;
    tracing::info!(user_id = %auth.user_id, sessions_ended = count, "password changed");
    Ok(count)
}

/// Rotates the token's session: a new token, and the presented one stops working at once.
/// Refused past the session's absolute lifetime. A token that was already rotated out is
/// taken for a stolen copy: its whole session ends.
pub async fn refresh(svc: &Services, token: &str, origin: &str) -> Result<AuthSession> {
    let claims = svc.tokens.verify(token)?;
    // Spends from the user's write budget, as every authenticated write does (the token
    // is checked here rather than by the extractor, which would refuse a rotated one).
    svc.limits
        .enforce(Limit::UserWrite, &claims.sub.to_string())
        .await?;
    let (mut tx, now) = svc.writes.begin().await?;
    let session = tx
        .session_for_update(claims.sid)
        .await?
        .filter(|s| s.user_id == claims.sub && s.ended_at.is_none())
        .ok_or(Error::InvalidToken)?;
    if session.token_jti != claims.jti {
        tx.end_session(claims.sub, session.id, now).await?;
        tracing::warn!(user_id = %claims.sub, session_id = %session.id,
            "a rotated token was presented for refresh; session ended");
        metrics::counter!(crate::metrics::TOKEN_REUSE).increment(1);
        let message = format!(
            "A session was signed out at {}: an old token of it was used again.",
            now.format("%Y-%m-%d %H:%M UTC")
        );
        end_sessions_with(
            svc,
            tx,
            now,
            claims.sub,
            vec![session.token_jti],
            NotificationKind::Logout,
            message,
        )
        .await?;
        return Err(Error::InvalidToken);
    }
    if session.expires_at <= now {
        return Err(Error::InvalidToken);
    }
    let issued = svc
        .tokens
        .issue(claims.sub, session.id, session.expires_at)?;
    tx.rotate_session(session.id, issued.claims.jti, now)
        .await?;
    svc.writes
        .commit_rotation(tx, claims.sub, now, claims.jti)
        .await?;
    let user = svc
        .store
        .profile(claims.sub)
        .await?
        .map(|p| p.user().located(origin))
        .ok_or(Error::InvalidToken)?;
    Ok(AuthSession {
        token: issued,
        user,
    })
}

pub async fn me(svc: &Services, auth: &Authenticated, origin: &str) -> Result<User> {
    Ok(account(svc, auth).await?.user().located(origin))
}

/// The authenticated user's profile; a token whose user is gone is invalid.
async fn account(svc: &Services, auth: &Authenticated) -> Result<Profile> {
    svc.store
        .profile(auth.user_id)
        .await?
        .ok_or(Error::InvalidToken)
}

/// Mails a new verification link to the account's address; 409 if it is verified already.
/// Within the `verify_email` budget of the account.
pub async fn request_email_verification(svc: &Services, auth: &Authenticated) -> Result<()> {
    let user = account(svc, auth).await?;
    if user.is_email_verified {
        return Err(Error::Conflict(
            "Your e-mail address is already verified".into(),
        ));
    }
    svc.limits
        .enforce(Limit::VerifyEmail, &auth.user_id.to_string())
        .await?;
    let (mut tx, now) = svc.writes.begin().await?;
    tx.enqueue_delivery(Some(auth.user_id), &DeliveryJob::VerifyEmail, now)
        .await?;
    svc.writes
        .commit(tx, auth.user_id, &[], now, Vec::new())
        .await
}

/// Uses up a mailed token of `purpose` in `tx`; refused when it is malformed, unknown,
/// already used or expired (all alike, so that nothing can be learnt from the answer).
async fn use_mail_token(
    tx: &mut Box<dyn StoreTx>,
    presented: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<UsedMailToken> {
    let hash = MailToken::parse_presented(presented).ok_or(Error::InvalidMailToken)?;
    tx.use_mail_token(&hash, purpose)
        .await?
        .filter(|token| token.expires_at > now)
        .ok_or(Error::InvalidMailToken)
}

/// Marks the address a verification link was sent to as verified (if it is still the
/// account's); every other verification link of the account stops working.
pub async fn verify_email(svc: &Services, token: &str, origin: &str) -> Result<Profile> {
    let (mut tx, now) = svc.writes.begin().await?;
    let used = use_mail_token(&mut tx, token, TokenPurpose::VerifyEmail, now).await?;
    let profile = tx
        .set_email_verified(used.user_id, &used.email, now)
        .await?
        .ok_or(Error::InvalidMailToken)?
        .located(origin);
    tx.delete_mail_tokens(used.user_id, TokenPurpose::VerifyEmail)
        .await?;
    let note = NotificationDraft::for_account(
        used.user_id,
        NotificationKind::ProfileUpdated,
        "Your e-mail address is verified.",
    );
    let (_, noted) = super::notifications::add(svc, &mut tx, &note, now).await?;
    let mut events = vec![EventDraft::new(EventKind::ProfileUpdated, &profile)];
    events.extend(noted);
    svc.writes
        .commit(tx, used.user_id, &events, now, Vec::new())
        .await?;
    tracing::info!(user_id = %used.user_id, "e-mail address verified");
    Ok(profile)
}

/// Queues a password-reset mail for whoever holds `email`. The answer and the work are the
/// same whether or not an account has that address (the worker finds out when it sends),
/// so neither the response nor its timing tells. Within the `password_forgot` budgets of
/// the client's address and of the e-mail address.
pub async fn forgot_password(svc: &Services, email: &Email, device: &Device) -> Result<()> {
    if let Some(ip) = &device.ip {
        svc.limits.enforce(Limit::PasswordForgot, ip).await?;
    }
    svc.limits
        .enforce(Limit::PasswordForgotEmail, email.as_str())
        .await?;
    let (mut tx, now) = svc.writes.begin().await?;
    let job = DeliveryJob::PasswordReset {
        email: email.as_str().to_string(),
    };
    tx.enqueue_delivery(None, &job, now).await?;
    svc.writes.commit_unannounced(tx).await
}

/// Sets a new password with a reset link's token and ends every session of the account
/// (their sockets close with 4003); returns how many were ended. The account's owner is
/// told by e-mail.
pub async fn reset_password(svc: &Services, token: &str, new: &Password) -> Result<usize> {
    // A token that cannot be one of ours costs no hashing.
    MailToken::parse_presented(token).ok_or(Error::InvalidMailToken)?;
    let hash = svc.passwords.hash(new).await?;
    let (mut tx, now) = svc.writes.begin().await?;
    let used = use_mail_token(&mut tx, token, TokenPurpose::PasswordReset, now).await?;
    let user_id = used.user_id;
    tx.set_password_hash(user_id, &hash).await?;
    tx.delete_mail_tokens(user_id, TokenPurpose::PasswordReset)
        .await?;
    let ended = tx.end_sessions(user_id, None, now).await?;
    let count = ended.len();
    tx.enqueue_delivery(Some(user_id), &DeliveryJob::PasswordChanged, now)
        .await?;
    let message = format!(
        "Your password was reset at {}; every session was signed out.",
        now.format("%Y-%m-%d %H:%M UTC")
    );
    end_sessions_with(
        svc,
        tx,
        now,
        user_id,
        ended,
        NotificationKind::ProfileUpdated,
        message,
    )
    .await?;
    tracing::info!(user_id = %user_id, sessions_ended = count, "password reset");
    Ok(count)
}
