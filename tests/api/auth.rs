use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::api::notifications::notification_types;
use testkit::api::{detail_fields, expect_error, expect_json, TestUser, PASSWORD};
use testkit::TestApp;

use crate::backend_tests;

backend_tests!(
    signup_returns_a_token_and_the_user,
    signup_validates_every_field,
    signup_refuses_common_passwords,
    duplicate_email_and_name_conflict_regardless_of_case,
    signin_works_with_normalised_email,
    wrong_password_and_unknown_email_look_the_same,
    me_returns_the_user,
    logout_revokes_the_token_and_notifies,
    refresh_issues_a_working_token,
    missing_and_blank_credentials_are_auth_required,
    tampered_tokens_are_invalid,
    token_of_a_deleted_user_is_invalid,
    outdated_password_hash_is_upgraded_on_signin,
    seed_paths_under_api_work_too,
);

async fn signup_returns_a_token_and_the_user(app: TestApp) {
    let response = app
        .api(Method::POST, "/auth/signup", None)
        .json(
            &json!({"name": "  Ada Lovelace ", "email": " Ada@Example.COM ", "password": PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::CREATED).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86_400);
    assert!(body["token"].as_str().unwrap().split('.').count() == 3);
    let user = &body["user"];
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["profile_photo_url"], Value::Null);
    assert_eq!(user["is_email_verified"], false);
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    for key in ["created_at", "updated_at"] {
        let t = user[key].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z'),
            "{key}: {t}"
        );
    }
    let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    assert!(
        !keys.iter().any(|k| k.contains("password")),
        "no hash leaks: {keys:?}"
    );

    let me = TestUser {
        id: user["id"].as_str().unwrap().into(),
        email: "ada@example.com".into(),
        password: PASSWORD.into(),
        token: body["token"].as_str().unwrap().into(),
    };
    assert_eq!(notification_types(&app, &me).await, vec!["SIGNUP"]);
}

async fn signup_validates_every_field(app: TestApp) {
    let cases = [
        (
            json!({"name": "A", "email": "a@example.com", "password": PASSWORD}),
            vec!["name"],
        ),
        (
            json!({"name": "R2D2 Droid", "email": "r@example.com", "password": PASSWORD}),
            vec!["name"],
        ),
        (
            json!({"name": "Ada", "email": "not-an-email", "password": PASSWORD}),
            vec!["email"],
        ),
        (
            json!({"name": "Ada", "email": "a@example.com", "password": "Sh0rt!"}),
            vec!["password"],
        ),
        (
            json!({"name": "Ada", "email": "a@example.com", "password": "nouppercase1!"}),
            vec!["password"],
        ),
        (
            json!({"name": "Ada", "email": "a@example.com", "password": "NoDigits!!xx"}),
            vec!["password"],
        ),
        (
            json!({"name": "Ada", "email": "a@example.com", "password": "NoSpecial123"}),
            vec!["password"],
        ),
        (
            json!({"name": "Ada", "email": "a@example.com", "password": format!("Aa1!{}", "x".repeat(125))}),
            vec!["password"],
        ),
        (json!({}), vec!["name", "email", "password"]),
        (
            json!({"name": "", "email": "", "password": ""}),
            vec!["name", "email", "password"],
        ),
    ];
    for (body, fields) in cases {
        let response = app
            .api(Method::POST, "/auth/signup", None)
            .json(&body)
            .send()
            .await
            .unwrap();
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), fields, "for {body}");
    }
    // Malformed JSON and wrong types are validation errors in the envelope too.
    let response = app
        .api(Method::POST, "/auth/signup", None)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let response = app
        .api(Method::POST, "/auth/signup", None)
        .json(&json!({"name": 5, "email": [], "password": true}))
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    // A body that is not declared as JSON.
    let response = app
        .api(Method::POST, "/auth/signup", None)
        .body("name=Ada")
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
}

async fn signup_refuses_common_passwords(app: TestApp) {
    for (i, password) in [
        "P@ssw0rd",
        "Passw0rd!",
        "Welcome1!",
        "Password123!",
        "Qwerty12#",
    ]
    .iter()
    .enumerate()
    {
        let response = app
            .api(Method::POST, "/auth/signup", None)
            .json(&json!({"name": "Ada Lovelace", "email": format!("ada{i}@example.com"), "password": password}))
            .send()
            .await
            .unwrap();
        let envelope = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(detail_fields(&envelope), vec!["password"], "{password}");
    }
}

async fn duplicate_email_and_name_conflict_regardless_of_case(app: TestApp) {
    app.signup_as("Ada Lovelace", "ada@example.com").await;
    let response = app
        .api(Method::POST, "/auth/signup", None)
        .json(&json!({"name": "Someone Else", "email": "ADA@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::CONFLICT, "CONFLICT").await;
    let response = app
        .api(Method::POST, "/auth/signup", None)
        .json(&json!({"name": "ada LOVELACE", "email": "other@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::CONFLICT, "CONFLICT").await;
}

async fn signin_works_with_normalised_email(app: TestApp) {
    let user = app.signup("Grace").await;
    let response = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": "  GRACE@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86_400);
    assert_eq!(body["user"]["id"].as_str().unwrap(), user.id);
    assert_eq!(
        notification_types(&app, &user).await,
        vec!["SIGNUP", "LOGIN"]
    );
}

async fn wrong_password_and_unknown_email_look_the_same(app: TestApp) {
    app.signup("Grace").await;
    let wrong = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": "grace@example.com", "password": "Wrong-Passw0rd!"}))
        .send()
        .await
        .unwrap();
    let wrong = expect_error(wrong, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    let unknown = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": "nobody@example.com", "password": "Wrong-Passw0rd!"}))
        .send()
        .await
        .unwrap();
    let unknown = expect_error(unknown, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    assert_eq!(wrong, unknown);
    let missing = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": "grace@example.com"}))
        .send()
        .await
        .unwrap();
    let envelope = expect_error(
        missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["password"]);
}

async fn me_returns_the_user(app: TestApp) {
    let user = app.signup("Grace").await;
    let response = app
        .api(Method::GET, "/auth/me", Some(&user.token))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(body["id"].as_str().unwrap(), user.id);
    assert_eq!(body["email"], "grace@example.com");
    assert_eq!(body["name"], "Grace Tester");
}

async fn logout_revokes_the_token_and_notifies(app: TestApp) {
    let user = app.signup("Grace").await;
    // Used once before, so the server remembers it as good: the logout must undo that.
    let response = app
        .api(Method::GET, "/auth/me", Some(&user.token))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
    let response = app
        .api(Method::POST, "/auth/logout", Some(&user.token))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(body["user_id"].as_str().unwrap(), user.id);
    assert!(body["message"].is_string());
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());

    for (method, path) in [
        (Method::GET, "/auth/me"),
        (Method::GET, "/tasks"),
        (Method::POST, "/auth/logout"),
        (Method::POST, "/auth/refresh"),
    ] {
        let response = app
            .api(method, path, Some(&user.token))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
    }
    // A new sign-in works, and sees the LOGOUT notification.
    let response = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": user.email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::OK).await;
    let again = TestUser {
        token: body["token"].as_str().unwrap().into(),
        ..user
    };
    assert_eq!(
        notification_types(&app, &again).await,
        vec!["SIGNUP", "LOGOUT", "LOGIN"]
    );
}

async fn refresh_issues_a_working_token(app: TestApp) {
    let user = app.signup("Grace").await;
    let response = app
        .api(Method::POST, "/auth/refresh", Some(&user.token))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::OK).await;
    let token = body["token"].as_str().unwrap();
    assert_ne!(token, user.token);
    assert_eq!(body["user"]["id"].as_str().unwrap(), user.id);
    assert_eq!(body["token_type"], "Bearer");
    let response = app
        .api(Method::GET, "/auth/me", Some(token))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(response, StatusCode::OK).await["id"]
            .as_str()
            .unwrap(),
        user.id
    );
}

async fn missing_and_blank_credentials_are_auth_required(app: TestApp) {
    let url = app.url("/api/v1/auth/me");
    let response = app.client.get(&url).send().await.unwrap();
    let www = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED").await;
    assert_eq!(www.as_deref(), Some("Bearer"));
    for header in ["", "Bearer", "Bearer    "] {
        let response = app
            .client
            .get(&url)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED").await;
    }
    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer not.a.token",
        "Bearer abc",
        "Token xyz",
    ] {
        let response = app
            .client
            .get(&url)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

async fn tampered_tokens_are_invalid(app: TestApp) {
    let user = app.signup("Grace").await;
    let secret = app.jwt_secret();
    let now = chrono::Utc::now().timestamp();
    // A token is good only with its session's id and current jti: take them from the
    // user's own token.
    let issued: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(user.token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let claims = json!({"sub": user.id, "iat": now, "exp": now + 3600,
        "jti": issued["jti"], "sid": issued["sid"]});
    let sign = |alg: Algorithm, claims: &Value, key: &str| {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    };
    // A correctly made token works, so the refusals below are about what was changed.
    let good = sign(Algorithm::HS256, &claims, &secret);
    let response = app
        .api(Method::GET, "/auth/me", Some(&good))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;

    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    let none_upper = format!(
        "{}.{}.",
        b64(&json!({"alg": "NONE", "typ": "JWT"})),
        b64(&claims)
    );
    let wrong_key = sign(
        Algorithm::HS256,
        &claims,
        "another-secret-that-is-long-enough-123",
    );
    let other_alg = sign(Algorithm::HS512, &claims, &secret);
    let expired = sign(
        Algorithm::HS256,
        &json!({"sub": user.id, "iat": now - 7200, "exp": now - 3600, "jti": uuid::Uuid::new_v4()}),
        &secret,
    );
    let no_exp = sign(
        Algorithm::HS256,
        &json!({"sub": user.id, "iat": now, "jti": uuid::Uuid::new_v4()}),
        &secret,
    );
    let no_jti = sign(
        Algorithm::HS256,
        &json!({"sub": user.id, "iat": now, "exp": now + 3600}),
        &secret,
    );
    // Tokens from before sessions existed carry no session id.
    let no_sid = sign(
        Algorithm::HS256,
        &json!({"sub": user.id, "iat": now, "exp": now + 3600, "jti": issued["jti"]}),
        &secret,
    );
    let bad_sub = sign(
        Algorithm::HS256,
        &json!({"sub": "root", "iat": now, "exp": now + 3600, "jti": uuid::Uuid::new_v4()}),
        &secret,
    );
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let mut forged_claims = good.split('.').map(str::to_string).collect::<Vec<_>>();
    forged_claims[1] = b64(
        &json!({"sub": uuid::Uuid::new_v4(), "iat": now, "exp": now + 3600, "jti": uuid::Uuid::new_v4()}),
    );
    let forged_claims = forged_claims.join(".");

    for (what, token) in [
        ("alg none", none),
        ("alg NONE", none_upper),
        ("wrong key", wrong_key),
        ("HS512", other_alg),
        ("expired", expired),
        ("no exp", no_exp),
        ("no jti", no_jti),
        ("no sid", no_sid),
        ("non-uuid sub", bad_sub),
        ("flipped signature", flipped),
        ("swapped claims", forged_claims),
    ] {
        let response = app
            .api(Method::GET, "/auth/me", Some(&token))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["error"]["code"], "INVALID_TOKEN", "{what}: {body}");
    }
}

async fn token_of_a_deleted_user_is_invalid(app: TestApp) {
    let user = app.signup("Grace").await;
    app.sql_for_user("DELETE FROM users WHERE id = $1", &user.id)
        .await;
    let response = app
        .api(Method::GET, "/tasks", Some(&user.token))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
}

async fn outdated_password_hash_is_upgraded_on_signin(app: TestApp) {
    let user = app.signup("Grace").await;
    let hash_sql = "SELECT password_hash FROM users WHERE id = $1";
    let before = app.sql_for_user(hash_sql, &user.id).await.unwrap();
    assert!(before.contains("m=256,t=1"), "{before}");
    // Another instance configured with stronger parameters.
    let stronger = app
        .spawn_sibling(|c| c.auth.password.memory_kib = 512)
        .await;
    let response = app
        .client
        .post(format!("{}/api/v1/auth/signin", stronger.address))
        .json(&json!({"email": user.email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
    let after = app.sql_for_user(hash_sql, &user.id).await.unwrap();
    assert!(
        after.starts_with("$argon2id$") && after.contains("m=512,t=1"),
        "{after}"
    );
    // The upgraded hash still signs in, on either instance.
    let response = app
        .api(Method::POST, "/auth/signin", None)
        .json(&json!({"email": user.email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
}

async fn seed_paths_under_api_work_too(app: TestApp) {
    let response = app
        .client
        .post(app.url("/api/auth/signup"))
        .json(&json!({"name": "Seed User", "email": "seed@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, StatusCode::CREATED).await;
    let token = body["token"].as_str().unwrap();
    let response = app
        .client
        .get(app.url("/api/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
    let response = app
        .client
        .post(app.url("/api/tasks"))
        .bearer_auth(token)
        .json(&json!({"title": "From the old front-end"}))
        .send()
        .await
        .unwrap();
    let task = expect_json(response, StatusCode::CREATED).await;
    let response = app
        .client
        .get(app.url(&format!("/api/v1/tasks/{}", task["id"])))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(response, StatusCode::OK).await["title"],
        "From the old front-end"
    );
}
