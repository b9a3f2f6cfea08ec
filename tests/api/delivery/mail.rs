//! E-mail: welcome and verification, password reset, the contact form, and what happens
//! while the SMTP server is down. Every message is received by a real SMTP server and read
//! as a person would (subject, text and HTML parts, the link's token).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::api::{auth, expect_error, expect_json, send, TestUser};
use testkit::{Backend, SmtpServer, TestApp};

use super::{app_with_smtp, wait_until_settled};
use crate::per_backend;

per_backend!(
    signup_mails_a_welcome_whose_link_verifies_the_address,
    verification_can_be_asked_for_again_until_verified,
    a_reset_link_sets_the_password_and_ends_every_session,
    forgot_answers_alike_whether_or_not_the_address_has_an_account,
    contact_messages_are_mailed_to_the_team,
    mail_waits_while_the_smtp_server_is_down_and_none_is_lost,
    without_smtp_mail_is_written_to_files,
);

async fn post(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    app.api(Method::POST, path, token)
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn signup_mails_a_welcome_whose_link_verifies_the_address(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(backend, &smtp, |_| {}).await;
    let ada = app.signup("Ada").await;

    let welcome = smtp.wait_for_mail(&ada.email, "Welcome").await;
    assert_eq!(welcome.from, "noreply@taskstream.test");
    assert!(
        welcome.text.contains("Hello Ada Tester"),
        "{}",
        welcome.text
    );
    assert!(
        welcome.html.contains("Verify my e-mail address"),
        "{}",
        welcome.html
    );
    let token = welcome.link_token().expect("a link with a token");
    assert!(
        welcome
            .text
            .contains(&format!("{}/verify-email?token={token}", app.address)),
        "{}",
        welcome.text
    );
    assert!(welcome.html.contains(&token));

    let verified = expect_json(
        post(&app, "/auth/verify-email", None, json!({ "token": token })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(verified["profile"]["is_email_verified"], true, "{verified}");
    assert_eq!(verified["profile"]["email"], ada.email.as_str());
    let me = expect_json(auth::me(&app, &ada).await, StatusCode::OK).await;
    assert_eq!(me["is_email_verified"], true, "{me}");

    // Single use, and nothing else works either.
    for token in [token.as_str(), "not-a-token", &"A".repeat(43)] {
        expect_error(
            post(&app, "/auth/verify-email", None, json!({ "token": token })).await,
            StatusCode::BAD_REQUEST,
            "INVALID_MAIL_TOKEN",
        )
        .await;
    }
    expect_error(
        post(&app, "/auth/verify-email", None, json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    // The stored token is a hash: the mailed one appears nowhere in the database.
    let stored = app
        .sql_number(&format!(
            "SELECT count(*) FROM email_tokens WHERE token_hash = '{token}'"
        ))
        .await;
    assert_eq!(stored, 0);
}

async fn verification_can_be_asked_for_again_until_verified(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(backend, &smtp, |_| {}).await;
    let ada = app.signup("Ada").await;
    let welcome = smtp.wait_for_mail(&ada.email, "Welcome").await;

    let asked = expect_json(
        post(
            &app,
            "/auth/verify-email/request",
            Some(&ada.token),
            json!({}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert!(asked["message"].is_string(), "{asked}");
    let again = smtp.wait_for_mail(&ada.email, "Verify your e-mail").await;
    let token = again.link_token().expect("token");
    assert_ne!(Some(token.clone()), welcome.link_token());

    // An expired link is refused like an unknown one.
    let other = app.signup("Grace").await;
    let grace_welcome = smtp.wait_for_mail(&other.email, "Welcome").await;
    app.sql_for_user(
        "UPDATE email_tokens SET expires_at = created_at WHERE user_id = $1",
        &other.id,
    )
    .await;
    expect_error(
        post(
            &app,
            "/auth/verify-email",
            None,
            json!({ "token": grace_welcome.link_token().expect("token") }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "INVALID_MAIL_TOKEN",
    )
    .await;

    expect_json(
        post(&app, "/auth/verify-email", None, json!({ "token": token })).await,
        StatusCode::OK,
    )
    .await;
    // Verifying spends the other links of the account too.
    expect_error(
        post(
            &app,
            "/auth/verify-email",
            None,
            json!({ "token": welcome.link_token().expect("token") }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "INVALID_MAIL_TOKEN",
    )
    .await;
    expect_error(
        post(
            &app,
            "/auth/verify-email/request",
            Some(&ada.token),
            json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    expect_error(
        post(&app, "/auth/verify-email/request", None, json!({})).await,
        StatusCode::UNAUTHORIZED,
        "AUTH_REQUIRED",
    )
    .await;
}

async fn a_reset_link_sets_the_password_and_ends_every_session(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(backend, &smtp, |_| {}).await;
    let ada = app.signup("Ada").await;

    expect_json(
        post(
            &app,
            "/auth/password/forgot",
            None,
            json!({ "email": "ADA@example.com" }),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let mail = smtp
        .wait_for_mail(&ada.email, "Reset your taskstream password")
        .await;
    let token = mail.link_token().expect("token");
    assert!(mail
        .text
        .contains(&format!("/reset-password?token={token}")));

    // A weak password is refused before the token is spent.
    let weak = expect_error(
        post(
            &app,
            "/auth/password/reset",
            None,
            json!({ "token": token, "new_password": "short" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(weak.to_string().contains("new_password"), "{weak}");

    let new_password = "N3w-Passphrase!Strong";
    let reset = expect_json(
        post(
            &app,
            "/auth/password/reset",
            None,
            json!({ "token": token, "new_password": new_password }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(reset["sessions_ended"], 1, "{reset}");
    expect_error(
        auth::me(&app, &ada).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_TOKEN",
    )
    .await;
    // The link works once.
    expect_error(
        post(
            &app,
            "/auth/password/reset",
            None,
            json!({ "token": token, "new_password": "An0ther-Passphrase!" }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "INVALID_MAIL_TOKEN",
    )
    .await;
    // The new password signs in, the old one does not.
    let signin = |password: &str| {
        post(
            &app,
            "/auth/signin",
            None,
            json!({ "email": ada.email, "password": password }),
        )
    };
    expect_json(signin(new_password).await, StatusCode::OK).await;
    expect_error(
        signin(&ada.password).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
    )
    .await;
    // And the owner hears of it, whoever did it.
    let told = smtp
        .wait_for_mail(&ada.email, "Your taskstream password was changed")
        .await;
    assert!(told.text.contains("was changed"), "{}", told.text);
}

async fn forgot_answers_alike_whether_or_not_the_address_has_an_account(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(backend, &smtp, |_| {}).await;
    let ada = app.signup("Ada").await;
    smtp.wait_for_mail(&ada.email, "Welcome").await;

    let app = &app;
    let answer = |email: &'static str| async move {
        let response = post(
            app,
            "/auth/password/forgot",
            None,
            json!({ "email": email }),
        )
        .await;
        let status = response.status();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_string()))
            .collect();
        headers.sort();
        (status, headers, response.text().await.expect("body"))
    };
    let known = answer("ada@example.com").await;
    let unknown = answer("nobody@example.com").await;
    assert_eq!(known.0, StatusCode::ACCEPTED);
    assert_eq!(known, unknown);

    wait_until_settled(app).await;
    let mails = smtp.messages();
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.subject.contains("Reset"))
            .map(|m| m.to.clone())
            .collect::<Vec<_>>(),
        vec![vec![ada.email.clone()]]
    );
    assert!(mails
        .iter()
        .all(|m| !m.to.contains(&"nobody@example.com".to_string())));
    expect_error(
        post(
            app,
            "/auth/password/forgot",
            None,
            json!({ "email": "not an address" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
}

async fn contact_messages_are_mailed_to_the_team(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(backend, &smtp, |config| {
        config.delivery.contact_email = Some("Team <team@taskstream.test>".into());
    })
    .await;
    let response = app
        .client
        .post(app.url("/api/contact"))
        .json(&json!({
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "subject": "Board <ideas>",
            "message": "Hello,\nthe board is great.",
        }))
        .send()
        .await
        .expect("contact");
    let receipt = expect_json(response, StatusCode::CREATED).await;
    let mail = smtp
        .wait_for_mail("team@taskstream.test", "[contact] Board <ideas>")
        .await;
    assert_eq!(mail.reply_to.as_deref(), Some("ada@example.com"));
    assert!(mail.text.contains("the board is great."), "{}", mail.text);
    assert!(mail.text.contains(receipt["id"].as_str().expect("id")));
    assert!(mail.html.contains("Board &lt;ideas&gt;"), "{}", mail.html);
}

async fn mail_waits_while_the_smtp_server_is_down_and_none_is_lost(backend: Backend) {
    let smtp = SmtpServer::stopped().await;
    let app = app_with_smtp(backend, &smtp, |_| {}).await;
    // The API does not wait for mail.
    let mut users: Vec<TestUser> = Vec::new();
    for who in ["Ada", "Grace", "Alan", "Edsger", "Barbara"] {
        users.push(app.signup(who).await);
    }
    let tasks = send(&app, Method::GET, "/tasks", &users[0], None).await;
    assert_eq!(tasks.status(), StatusCode::OK);
    // Each welcome is tried, fails, and is put back for later.
    app.wait_for_number(
        "SELECT count(*) FROM deliveries WHERE status = 'pending' AND attempts >= 2 \
         AND last_error IS NOT NULL",
        |retried| retried == 5,
    )
    .await;
    assert!(smtp.messages().is_empty());

    smtp.resume().await;
    let mails = smtp.wait_for(5, Duration::from_secs(30)).await;
    wait_until_settled(&app).await;
    let mut recipients: Vec<String> = smtp.messages().iter().flat_map(|m| m.to.clone()).collect();
    recipients.sort();
    let mut expected: Vec<String> = users.iter().map(|u| u.email.clone()).collect();
    expected.sort();
    assert_eq!(recipients, expected, "each welcome once: {mails:?}");
    let sent = app
        .sql_number("SELECT count(*) FROM deliveries WHERE status = 'sent'")
        .await;
    assert_eq!(sent, 5);
}

async fn without_smtp_mail_is_written_to_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup("Ada").await;
    wait_until_settled(&app).await;
    let dir = app.config.data_dir.join("mail");
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .expect("DATA_DIR/mail exists")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let raw = std::fs::read_to_string(&files[0]).expect("read");
    assert!(
        raw.contains(&format!("To: \"Ada Tester\" <{}>", ada.email)) || raw.contains(&ada.email),
        "{raw}"
    );
    assert!(raw.contains("Subject: Welcome to taskstream"), "{raw}");
    assert!(raw.contains("verify-email?token="), "{raw}");
}
