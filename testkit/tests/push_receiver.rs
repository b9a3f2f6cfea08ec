//! The server's Web Push sender against the test kit's real push receiver, over loopback
//! HTTP: what arrives is checked (VAPID, headers) and decrypted with the subscription's
//! keys, independently of the sender's encryption. No storage is involved, so there is
//! no backend to run these on twice.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use taskstream::delivery::push::{
    PushError, PushOptions, PushSender, PushSubscription, Urgency, VapidKey, MAX_PAYLOAD_LEN,
};
use taskstream_testkit::push::{decrypt, PushReceiver, TestSubscription};

const SUBJECT: &str = "mailto:push-tests@example.com";
/// Generous: only the hanging receiver's test waits it out, with a sender of its own.
const TIMEOUT: Duration = Duration::from_secs(20);
const TTL: Duration = Duration::from_secs(60);

fn sender_with(key: VapidKey) -> PushSender {
    PushSender::new(key, SUBJECT.into(), true, TIMEOUT).expect("a push sender")
}

fn sender() -> PushSender {
    sender_with(VapidKey::generate())
}

fn parsed(subscription: &TestSubscription) -> PushSubscription {
    PushSubscription::parse(
        &subscription.endpoint,
        &subscription.p256dh,
        &subscription.auth,
        true,
    )
    .expect("the receiver's subscription is valid")
}

#[tokio::test]
async fn a_push_arrives_decrypted_with_its_headers() {
    let receiver = PushReceiver::start().await;
    let browser = receiver.subscribe();
    let sender = sender();
    let options = PushOptions {
        ttl: TTL,
        urgency: Some(Urgency::High),
        topic: Some("task-7".into()),
    };
    let first = br#"{"type":"TASK_DUE_SOON","task_id":7}"#;
    sender
        .send_with(&parsed(&browser), first, &options)
        .await
        .expect("accepted");
    sender
        .send(&parsed(&browser), b"second", Duration::ZERO)
        .await
        .expect("accepted");

    let messages = receiver.wait_for(&browser.id, 2, TIMEOUT).await;
    assert_eq!(messages, vec![first.to_vec(), b"second".to_vec()]);
    let received = receiver.received(&browser.id);
    assert_eq!(received[0].ttl, 60);
    assert_eq!(received[0].urgency.as_deref(), Some("high"));
    assert_eq!(received[0].topic.as_deref(), Some("task-7"));
    assert_eq!(received[0].vapid_key, sender.public_key_base64url());
    assert_eq!(received[0].subject, SUBJECT);
    assert_eq!((received[1].ttl, received[1].urgency.as_deref()), (0, None));
    assert_eq!(receiver.requests(&browser.id), 2);
    assert_eq!(receiver.count_all(), 2);
}

#[tokio::test]
async fn the_largest_payload_arrives_and_a_larger_one_is_refused_unsent() {
    let receiver = PushReceiver::start().await;
    let browser = receiver.subscribe();
    let sender = sender();
    let largest: Vec<u8> = (0..MAX_PAYLOAD_LEN).map(|i| (i % 251) as u8).collect();
    sender
        .send(&parsed(&browser), &largest, TTL)
        .await
        .expect("the largest payload is accepted");
    assert_eq!(receiver.messages(&browser.id), vec![largest]);

    let refused = sender
        .send(&parsed(&browser), &[b'a'; MAX_PAYLOAD_LEN + 1], TTL)
        .await;
    assert!(
        matches!(refused, Err(PushError::Permanent(_))),
        "{refused:?}"
    );
    assert_eq!(receiver.requests(&browser.id), 1);
}

#[tokio::test]
async fn a_push_under_another_auth_secret_does_not_decrypt() {
    let receiver = PushReceiver::start().await;
    let browser = receiver.subscribe_with_mismatched_auth();
    let refused = sender().send(&parsed(&browser), b"hello", TTL).await;
    match refused {
        Err(PushError::Permanent(message)) => assert!(message.contains("400"), "{message}"),
        other => panic!("not refused for good: {other:?}"),
    }
    assert!(receiver.messages(&browser.id).is_empty());
    let rejections = receiver.rejections(&browser.id);
    assert_eq!(rejections.len(), 1);
    assert!(rejections[0].contains("cannot decrypt"), "{rejections:?}");
}

#[tokio::test]
async fn a_subscription_the_push_service_no_longer_knows_is_gone() {
    let receiver = PushReceiver::start().await;
    let sender = sender();
    for status in [reqwest::StatusCode::GONE, reqwest::StatusCode::NOT_FOUND] {
        let browser = receiver.subscribe();
        receiver.set_status(&browser.id, status);
        assert_eq!(
            sender.send(&parsed(&browser), b"hello", TTL).await,
            Err(PushError::Gone),
            "{status}"
        );
    }
    let browser = receiver.subscribe();
    receiver.unsubscribe(&browser.id);
    assert_eq!(
        sender.send(&parsed(&browser), b"hello", TTL).await,
        Err(PushError::Gone)
    );
    assert_eq!(receiver.count_all(), 0);
}

#[tokio::test]
async fn an_outage_is_transient_and_the_next_push_arrives() {
    let receiver = PushReceiver::start().await;
    let browser = receiver.subscribe();
    let sender = sender();
    for status in [
        reqwest::StatusCode::INTERNAL_SERVER_ERROR,
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        reqwest::StatusCode::TOO_MANY_REQUESTS,
    ] {
        receiver.set_status(&browser.id, status);
        let failed = sender.send(&parsed(&browser), b"during", TTL).await;
        match failed {
            Err(PushError::Transient(message)) => {
                assert!(message.contains(&status.as_u16().to_string()), "{message}");
                // Only the origin is named: the endpoint's path is a capability.
                assert!(!message.contains(&browser.id), "{message}");
            }
            other => panic!("{status}: not transient: {other:?}"),
        }
    }
    receiver.accept(&browser.id);
    sender
        .send(&parsed(&browser), b"after", TTL)
        .await
        .expect("accepted once the outage ends");
    assert_eq!(receiver.messages(&browser.id), vec![b"after".to_vec()]);
    assert_eq!(receiver.requests(&browser.id), 4);
}

#[tokio::test]
async fn refusals_are_permanent() {
    let receiver = PushReceiver::start().await;
    let browser = receiver.subscribe();
    let sender = sender();
    for status in [400, 401, 403, 413] {
        let status = reqwest::StatusCode::from_u16(status).expect("status");
        receiver.set_status(&browser.id, status);
        let refused = sender.send(&parsed(&browser), b"hello", TTL).await;
        assert!(
            matches!(&refused, Err(PushError::Permanent(message)) if message.contains(&status.as_u16().to_string())),
            "{status}: {refused:?}"
        );
    }
    assert_eq!(receiver.count_all(), 0);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let receiver = PushReceiver::start().await;
    let browser = receiver.subscribe();
    // The receiver's redirect points back at the same endpoint: following it would
    // show as a second request.
    receiver.set_status(&browser.id, reqwest::StatusCode::TEMPORARY_REDIRECT);
    let refused = sender().send(&parsed(&browser), b"hello", TTL).await;
    assert!(
        matches!(refused, Err(PushError::Permanent(_))),
        "{refused:?}"
    );
    assert_eq!(receiver.requests(&browser.id), 1);
}

#[tokio::test]
async fn a_push_service_that_does_not_answer_is_transient() {
    let receiver = PushReceiver::start().await;
    let browser = receiver.subscribe();
    receiver.hang(&browser.id);
    let sender = PushSender::new(
        VapidKey::generate(),
        SUBJECT.into(),
        true,
        Duration::from_millis(300),
    )
    .expect("a push sender");
    let failed = sender.send(&parsed(&browser), b"hello", TTL).await;
    assert!(matches!(failed, Err(PushError::Transient(_))), "{failed:?}");
    assert_eq!(receiver.requests(&browser.id), 1);
}

#[tokio::test]
async fn an_unreachable_push_service_is_transient() {
    let receiver = PushReceiver::start().await;
    let browser = receiver.subscribe();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let subscription = PushSubscription::parse(
        &format!("http://127.0.0.1:{closed}/push/{}", browser.id),
        &browser.p256dh,
        &browser.auth,
        true,
    )
    .expect("valid");
    let failed = sender().send(&subscription, b"hello", TTL).await;
    assert!(matches!(failed, Err(PushError::Transient(_))), "{failed:?}");
}

#[tokio::test]
async fn http_endpoints_are_refused_unless_allowed() {
    let receiver = PushReceiver::start().await;
    let browser = receiver.subscribe();
    let refused = PushSubscription::parse(&browser.endpoint, &browser.p256dh, &browser.auth, false)
        .expect_err("http refused");
    assert_eq!(refused.field, "endpoint");

    // A sender without allow_http refuses it too, whatever was stored.
    let production = PushSender::new(VapidKey::generate(), SUBJECT.into(), false, TIMEOUT)
        .expect("a push sender");
    let failed = production.send(&parsed(&browser), b"hello", TTL).await;
    assert!(matches!(failed, Err(PushError::Permanent(_))), "{failed:?}");
    assert_eq!(receiver.requests(&browser.id), 0);
}

/// A change to a request's headers or body.
type Edit = Box<dyn FnOnce(&mut HeaderMap, &mut Vec<u8>)>;

/// Posts a request the sender built, after `edit` changed its headers or body, and
/// answers the status.
async fn post_edited(
    request: &reqwest::Request,
    edit: impl FnOnce(&mut HeaderMap, &mut Vec<u8>),
) -> u16 {
    let mut headers = request.headers().clone();
    let mut body = request
        .body()
        .and_then(|body| body.as_bytes())
        .expect("a body in memory")
        .to_vec();
    edit(&mut headers, &mut body);
    headers.remove("content-length");
    reqwest::Client::new()
        .post(request.url().clone())
        .headers(headers)
        .body(body)
        .send()
        .await
        .expect("the receiver answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_receiver_refuses_what_a_push_service_would() {
    let receiver = PushReceiver::start().await;
    let browser = receiver.subscribe();
    let key = VapidKey::generate();
    let sender = sender_with(key.clone());
    let built = sender
        .build_request(
            &parsed(&browser),
            b"hello",
            &PushOptions {
                ttl: TTL,
                ..PushOptions::default()
            },
        )
        .expect("a request");
    let request = reqwest::Request::try_from(built.map(reqwest::Body::from)).expect("a request");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let set_authorization = |value: String| {
        move |headers: &mut HeaderMap, _: &mut Vec<u8>| {
            headers.insert("authorization", value.parse().expect("header value"));
        }
    };

    assert_eq!(
        post_edited(&request, |_, _| {}).await,
        201,
        "the request as built"
    );
    assert_eq!(receiver.messages(&browser.id), vec![b"hello".to_vec()]);

    let cases: Vec<(&str, u16, Edit)> = vec![
        (
            "no Content-Encoding",
            400,
            Box::new(|headers: &mut HeaderMap, _: &mut Vec<u8>| {
                headers.remove("content-encoding");
            }),
        ),
        (
            "no TTL",
            400,
            Box::new(|headers: &mut HeaderMap, _: &mut Vec<u8>| {
                headers.remove("ttl");
            }),
        ),
        (
            "no Authorization",
            401,
            Box::new(|headers: &mut HeaderMap, _: &mut Vec<u8>| {
                headers.remove("authorization");
            }),
        ),
        (
            "a token for another origin",
            403,
            Box::new(set_authorization(key.authorization(
                "https://push.example.com",
                SUBJECT,
                now + 3600,
            ))),
        ),
        (
            "a token signed by another key than k",
            403,
            Box::new(set_authorization(format!(
                "vapid t={}, k={}",
                VapidKey::generate().sign_token(receiver.origin(), SUBJECT, now + 3600),
                key.public_key_base64url()
            ))),
        ),
        (
            "a token expiring in more than 24 hours",
            403,
            Box::new(set_authorization(key.authorization(
                receiver.origin(),
                SUBJECT,
                now + 25 * 3600,
            ))),
        ),
        (
            "an expired token",
            403,
            Box::new(set_authorization(key.authorization(
                receiver.origin(),
                SUBJECT,
                now - 60,
            ))),
        ),
        (
            "a token without a contact",
            403,
            Box::new(set_authorization(key.authorization(
                receiver.origin(),
                "ops",
                now + 3600,
            ))),
        ),
        (
            "a body over 4096 bytes",
            413,
            Box::new(|_: &mut HeaderMap, body: &mut Vec<u8>| body.resize(4097, 0)),
        ),
        (
            "a corrupted ciphertext",
            400,
            Box::new(|_: &mut HeaderMap, body: &mut Vec<u8>| {
                if let Some(last) = body.last_mut() {
                    *last ^= 1;
                }
            }),
        ),
    ];
    for (case, status, edit) in cases {
        assert_eq!(post_edited(&request, edit).await, status, "{case}");
    }
    assert_eq!(
        receiver.messages(&browser.id).len(),
        1,
        "only the request as built arrived"
    );
    assert_eq!(receiver.rejections(&browser.id).len(), 10);
}

/// RFC 8291 Appendix A, decrypted by the receiver's own implementation.
#[test]
fn the_receiver_decrypts_the_rfc_8291_example() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let decode = |text: &str| URL_SAFE_NO_PAD.decode(text).expect("base64url");
    let mut body = decode("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN");
    let secret =
        p256::SecretKey::from_slice(&decode("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
            .expect("the browser's private key");
    let auth: [u8; 16] = decode("BTBZMqHH6r4Tts7J_aSIgg")
        .try_into()
        .expect("16 bytes");
    assert_eq!(
        decrypt(&body, &secret, &auth).expect("decrypts"),
        b"When I grow up, I want to be a watermelon"
    );
    let mut other_auth = auth;
    other_auth[0] ^= 1;
    decrypt(&body, &secret, &other_auth).expect_err("another auth secret");
    body[100] ^= 1;
    decrypt(&body, &secret, &auth).expect_err("a corrupted record");
}
