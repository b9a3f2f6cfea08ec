//! The messages themselves: bad ones close the socket, ping gets pong, and the
//! protocol document covers them all.

use serde_json::json;
use testkit::ws::WsClient;
use testkit::TestApp;
use tokio_tungstenite::tungstenite::Message;

use super::url;
use crate::backend_tests;

backend_tests!(bad_messages_close_4400, ping_gets_pong,);

async fn bad_messages_close_4400(app: TestApp) {
    let user = app.signup("Ada").await;
    let cases = [
        Message::Text("{oops".into()),
        Message::Text(json!({"type": "dance"}).to_string().into()),
        Message::Text(json!({"no": "type"}).to_string().into()),
        Message::Text(json!({"type": "resume"}).to_string().into()),
        Message::Binary(vec![0; 16].into()),
        Message::Text(
            json!({"type": "ping", "pad": "x".repeat(70 * 1024)})
                .to_string()
                .into(),
        ),
        // Beyond the codec's own cap too.
        Message::Text(
            json!({"type": "ping", "pad": "x".repeat(2 * 1024 * 1024)})
                .to_string()
                .into(),
        ),
    ];
    for bad in cases {
        let (mut ws, _) = WsClient::ready(&url(&app, None), &user.token).await;
        ws.send_raw(bad).await;
        let (errors, code) = ws.closed().await;
        assert_eq!(code, 4400);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0]["code"], "BAD_MESSAGE");
    }
}

async fn ping_gets_pong(app: TestApp) {
    let user = app.signup("Ada").await;
    let (mut ws, _) = WsClient::ready(&url(&app, None), &user.token).await;
    for _ in 0..3 {
        assert!(ws.roundtrip().await.is_empty());
    }
    // A second auth is answered, not fatal.
    ws.send(json!({"type": "auth", "token": user.token})).await;
    assert_eq!(ws.next().await["code"], "ALREADY_AUTHENTICATED");
    assert!(ws.roundtrip().await.is_empty());
}

/// `protocol/asyncapi.yaml` documents every message schema and every close code the server
/// uses.
#[test]
fn the_protocol_document_covers_every_message_and_close_code() {
    use taskstream::realtime::protocol::close;
    let root = env!("CARGO_MANIFEST_DIR");
    let document = std::fs::read_to_string(format!("{root}/protocol/asyncapi.yaml")).unwrap();
    assert!(document.starts_with("asyncapi: 3.0") || document.contains("\nasyncapi: 3.0"));
    for side in ["server", "client"] {
        for entry in std::fs::read_dir(format!("{root}/protocol/schemas/{side}")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let reference = format!("./schemas/{side}/{name}");
            assert!(
                document.contains(&reference),
                "asyncapi.yaml does not reference {reference}"
            );
        }
    }
    for code in [
        close::TOKEN_EXPIRED,
        close::TOKEN_REVOKED,
        close::SLOW_CONSUMER,
        close::TOO_MANY_CONNECTIONS,
        close::AUTH_FAILED,
        close::BAD_MESSAGE,
        close::SERVER_RESTARTING,
        close::HEARTBEAT_TIMEOUT,
    ] {
        assert!(
            document.contains(&format!("{code}")),
            "close code {code} is not documented"
        );
    }
}
