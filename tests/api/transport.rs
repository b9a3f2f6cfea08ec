//! The connection itself: slow and idle clients are cut off, client-chosen methods do not
//! become metric labels, metrics off records nothing, and browsers may open sockets only
//! from allowed origins.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use testkit::ws::ws_url;
use testkit::{Backend, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::{backend_tests, per_backend};

backend_tests!(browser_upgrades_from_other_origins_are_refused);
per_backend!(any_origin_may_upgrade_when_allowed_origins_is_star);

/// Guards the reads below: a server that never closes fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(15);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection; what it sent before closing.
async fn read_until_closed(tcp: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut received))
        .await
        .expect("the server closes the connection")
        .expect("a clean close");
    String::from_utf8_lossy(&received).into_owned()
}

const HEALTH: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[tokio::test]
async fn a_trickled_request_line_is_cut_off() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.http.http_header_timeout = Duration::from_millis(500);
    })
    .await;
    let mut tcp = connect(&app).await;
    tcp.write_all(b"GET /health/live HT").await.unwrap();
    let answer = read_until_closed(&mut tcp).await;
    assert!(!answer.contains(" 200 "), "{answer}");

    // A request sent at once is still served.
    let response = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        // Only the idle timeout can end this connection within the test's patience.
        c.http.http_header_timeout = Duration::from_secs(600);
        c.http.http_idle_timeout = Duration::from_secs(2);
        c.realtime.heartbeat = Duration::from_secs(1);
    })
    .await;
    let mut tcp = connect(&app).await;
    tcp.write_all(HEALTH).await.unwrap();
    let answer = read_until_closed(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

/// hyper starts its header timer when it starts waiting for a request, so the wait on a
/// keep-alive connection counts against HTTP_HEADER_TIMEOUT too (as the README says).
#[tokio::test]
async fn a_keep_alive_connection_waits_no_longer_than_the_header_timeout() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.http.http_header_timeout = Duration::from_millis(500);
        c.http.http_idle_timeout = Duration::from_secs(600);
    })
    .await;
    let mut tcp = connect(&app).await;
    tcp.write_all(HEALTH).await.unwrap();
    let answer = read_until_closed(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
}

#[tokio::test]
async fn invented_methods_share_one_metric_label() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.metrics.bind = Some(([127, 0, 0, 1], 0).into())
    })
    .await;
    for (i, path) in ["/api/v1/tasks", "/no/such/route"].iter().enumerate() {
        let method = Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url(path))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let url = format!("{}/metrics", app.metrics_address.as_ref().unwrap());
    let scrape = app
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!scrape.contains("INVENTED"), "{scrape}");
    assert!(
        scrape.contains(r#"taskstream_http_requests_total{method="OTHER",route="/api/v1/tasks""#),
        "{scrape}"
    );
    assert!(
        scrape.contains(r#"taskstream_http_requests_total{method="OTHER",route="<unmatched>""#),
        "{scrape}"
    );
}

/// Set by the test below for the child process it starts.
const METRICS_OFF_CHILD: &str = "TASKSTREAM_METRICS_OFF_CHILD";

/// Nothing is recorded with METRICS_BIND=off: no recorder is installed, so histogram
/// samples cannot pile up. In a child process, where no other test installed one.
#[tokio::test]
async fn metrics_off_installs_no_recorder() {
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "transport::metrics_off_child",
            "--ignored",
            "--test-threads=1",
        ])
        .env(METRICS_OFF_CHILD, "1")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[tokio::test]
#[ignore = "run by metrics_off_installs_no_recorder in its own process"]
async fn metrics_off_child() {
    assert!(std::env::var_os(METRICS_OFF_CHILD).is_some());
    // The test configuration has METRICS_BIND=off.
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert!(app.metrics_address.is_none());
    let user = app.signup("Ada").await;
    let response = app
        .api(Method::GET, "/tasks", Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        metrics::set_global_recorder(metrics::NoopRecorder).is_ok(),
        "a recorder was installed although metrics are off"
    );
}

/// Opens a socket (without a token: the upgrade itself is what is tested) sending
/// `origin`; the HTTP status of the answer, and the error code when refused.
async fn upgrade_from(app: &TestApp, origin: Option<&str>) -> (u16, Option<String>) {
    let mut request = ws_url(&app.address, None)
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut ws, response)) => {
            let _ = ws.close(None).await;
            // Drain the close handshake so the server sees a clean end.
            while let Some(Ok(message)) = futures_util::StreamExt::next(&mut ws).await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
            (response.status().as_u16(), None)
        }
        Err(tungstenite::Error::Http(response)) => {
            let body: serde_json::Value = response
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            let code = body["error"]["code"].as_str().map(str::to_owned);
            (response.status().as_u16(), code)
        }
        Err(err) => panic!("cannot connect: {err}"),
    }
}

async fn browser_upgrades_from_other_origins_are_refused(app: TestApp) {
    // The test configuration allows http://localhost:3000 and http://127.0.0.1:3000.
    assert_eq!(upgrade_from(&app, None).await, (101, None), "no browser");
    assert_eq!(
        upgrade_from(&app, Some("http://localhost:3000")).await,
        (101, None)
    );
    for origin in ["https://evil.example", "http://localhost:3001", "null"] {
        assert_eq!(
            upgrade_from(&app, Some(origin)).await,
            (403, Some("FORBIDDEN".to_owned())),
            "{origin}"
        );
    }
    // A page the server serves itself (the dashboard) is same-origin: its `Origin` is the
    // `Host` it asked for, which ALLOWED_ORIGINS need not list.
    assert_eq!(upgrade_from(&app, Some(&app.address)).await, (101, None));
    let other_port = app.address.replace("127.0.0.1:", "127.0.0.1:1");
    assert_eq!(
        upgrade_from(&app, Some(&other_port)).await,
        (403, Some("FORBIDDEN".to_owned())),
        "{other_port}"
    );
}

async fn any_origin_may_upgrade_when_allowed_origins_is_star(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.http.allowed_origins = vec!["*".into()]).await;
    assert_eq!(
        upgrade_from(&app, Some("https://evil.example")).await,
        (101, None)
    );
}
