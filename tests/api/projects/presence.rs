//! Who is online in a project: in `ready`, then `presence.joined` / `presence.left`.

use serde_json::{json, Value};
use testkit::api::projects::id;
use testkit::api::TestUser;
use testkit::ws::{ws_url, WsClient};
use testkit::{Backend, TestApp};

use crate::{backend_tests, per_backend};

backend_tests!(
    members_see_each_other_come_and_go,
    a_member_who_joins_while_connected_is_told_who_is_online,
    an_instances_presence_mark_moves_only_with_a_change,
);
per_backend!(large_projects_get_counts_only);

async fn project_socket(app: &TestApp, user: &TestUser) -> (WsClient, Value) {
    let url = format!("{}?projects=true", ws_url(&app.address, None));
    WsClient::ready(&url, &user.token).await
}

/// The next presence message (events are skipped).
async fn next_presence(ws: &mut WsClient) -> Value {
    loop {
        let message = ws.next().await;
        if message["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("presence."))
        {
            return message;
        }
    }
}

fn presence_in_ready<'a>(ready: &'a Value, project: &str) -> &'a Value {
    ready["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == json!(format!("project:{project}")))
        .map(|s| &s["presence"])
        .expect("the project in ready")
}

async fn members_see_each_other_come_and_go(app: TestApp) {
    let olga = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let project = id(&app.create_project(&olga, "Board").await);
    app.add_member(&olga, &project, &bob, "viewer").await;
    let (mut ws, ready) = project_socket(&app, &olga).await;
    // Olga herself is online, and no one else.
    let seen = presence_in_ready(&ready, &project);
    let alone = json!({"online": 1, "members": [{"user_id": olga.id, "devices": 1}]});
    assert_eq!(seen, &alone);
    let (phone, ready) = project_socket(&app, &bob).await;
    let seen = presence_in_ready(&ready, &project);
    assert!(seen["online"].as_u64().unwrap() >= 1, "{seen}");
    let joined = next_presence(&mut ws).await;
    assert_eq!(joined["type"], "presence.joined");
    assert_eq!(joined["stream"], json!(format!("project:{project}")));
    assert_eq!(joined["online"], 2);
    assert_eq!(
        joined["members"],
        json!([{"user_id": bob.id, "devices": 1}])
    );
    // A second device is news; a socket that did not ask for projects counts too.
    let laptop = WsClient::connect(&ws_url(&app.address, None), Some(&bob.token)).await;
    let more = next_presence(&mut ws).await;
    assert_eq!(more["members"], json!([{"user_id": bob.id, "devices": 2}]));
    // A later socket is told who is online in ready.
    let (_tablet, ready) = project_socket(&app, &olga).await;
    let mut members = presence_in_ready(&ready, &project)["members"]
        .as_array()
        .unwrap()
        .clone();
    members.sort_by_key(|m| m["user_id"].as_str().unwrap().to_string());
    let mut expected = vec![
        json!({"user_id": bob.id, "devices": 2}),
        json!({"user_id": olga.id, "devices": 1}),
    ];
    expected.sort_by_key(|m| m["user_id"].as_str().unwrap().to_string());
    assert_eq!(members, expected);
    phone.close().await;
    laptop.close().await;
    // Olga's count of devices went to 2 (the tablet) and Bob left: one message per
    // second per project, joins first.
    let mut left = None;
    for _ in 0..3 {
        let message = next_presence(&mut ws).await;
        if message["type"] == "presence.left" {
            left = Some(message);
            break;
        }
    }
    let left = left.expect("presence.left");
    assert_eq!(left["members"], json!([{"user_id": bob.id, "devices": 0}]));
    assert_eq!(left["online"], 1);
    // An outsider's socket hears nothing of the project.
    let otto = app.signup("Otto").await;
    let (mut outsider, ready) = project_socket(&app, &otto).await;
    assert_eq!(ready["streams"].as_array().map(Vec::len), Some(1));
    assert!(outsider.roundtrip().await.is_empty());
}

/// A socket that starts a project's stream live (`project.joined`) was not in `ready`'s
/// picture of it: it is told who is online there, not only what changes from then on.
async fn a_member_who_joins_while_connected_is_told_who_is_online(app: TestApp) {
    let olga = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let project = id(&app.create_project(&olga, "Board").await);
    let (_olga_ws, _) = project_socket(&app, &olga).await;
    let (mut bob_ws, ready) = project_socket(&app, &bob).await;
    assert_eq!(ready["streams"].as_array().map(Vec::len), Some(1));
    app.add_member(&olga, &project, &bob, "editor").await;
    let told = next_presence(&mut bob_ws).await;
    assert_eq!(told["type"], "presence.joined");
    assert_eq!(told["stream"], json!(format!("project:{project}")));
    let members = told["members"].as_array().expect("members");
    assert!(
        members.contains(&json!({"user_id": olga.id, "devices": 1})),
        "{told}"
    );
    assert!(told["online"].as_u64().unwrap() >= 1);
}

async fn large_projects_get_counts_only(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.realtime.presence_max_members = 1).await;
    let olga = app.signup("Olga").await;
    let bob = app.signup_verified("Bob").await;
    let project = id(&app.create_project(&olga, "Board").await);
    app.add_member(&olga, &project, &bob, "editor").await;
    let (mut ws, ready) = project_socket(&app, &olga).await;
    assert_eq!(presence_in_ready(&ready, &project), &json!({"online": 1}));
    let (_bob_ws, _) = project_socket(&app, &bob).await;
    let second = next_presence(&mut ws).await;
    assert_eq!(second["online"], 2);
    assert!(second.get("members").is_none());
}

/// What an instance reads every second to know whether presence changed elsewhere: the
/// other live instances, each with when it last recorded a change. A mark of life alone
/// leaves it where it was; a change, or the instance written anew, moves it; a stale
/// instance drops out.
async fn an_instances_presence_mark_moves_only_with_a_change(app: TestApp) {
    use chrono::{Duration, SubsecRound, Utc};
    use taskstream::store::{self, PoolSizes};
    use uuid::Uuid;

    let user = app.signup_as("Ada Lovelace", "ada@example.com").await;
    let user_id = Uuid::parse_str(&user.id).unwrap();
    let store = store::connect(&app.config.database_url(), PoolSizes::SINGLE)
        .await
        .unwrap();
    let (other, me) = (Uuid::new_v4(), Uuid::new_v4());
    // Whole seconds: PostgreSQL keeps microseconds.
    let start = Utc::now().trunc_subsecs(0) - Duration::seconds(30);
    let at = |s: i64| start + Duration::seconds(s);
    // The marks of the instance `other` (on PostgreSQL the test's server is an instance
    // too), seen since second `s`.
    let since = |s: i64| {
        let store = store.clone();
        async move {
            let marks = store.presence_marks(me, at(s)).await.unwrap();
            marks
                .into_iter()
                .filter(|(id, _)| *id == other)
                .collect::<Vec<_>>()
        }
    };

    // First seen (not on record yet: the caller then writes all of its users).
    assert!(!store
        .record_presence(other, &[(user_id, 1)], at(0))
        .await
        .unwrap());
    assert_eq!(since(0).await, vec![(other, Some(at(0)))]);
    assert!(store
        .record_presence(other, &[(user_id, 1)], at(1))
        .await
        .unwrap());
    assert_eq!(since(0).await, vec![(other, Some(at(1)))]);
    // Alive, nothing changed: the mark stays.
    assert!(store.record_presence(other, &[], at(2)).await.unwrap());
    assert_eq!(since(0).await, vec![(other, Some(at(1)))]);
    // The user's last socket there closed: a change.
    assert!(store
        .record_presence(other, &[(user_id, 0)], at(3))
        .await
        .unwrap());
    assert_eq!(since(0).await, vec![(other, Some(at(3)))]);
    // Not seen since: stale. And an instance never lists itself.
    assert_eq!(since(4).await, vec![]);
    store
        .record_presence(me, &[(user_id, 1)], at(5))
        .await
        .unwrap();
    let all = store.presence_marks(me, at(0)).await.unwrap();
    assert!(all.contains(&(other, Some(at(3)))), "{all:?}");
    assert!(all.iter().all(|(id, _)| *id != me), "{all:?}");
}
