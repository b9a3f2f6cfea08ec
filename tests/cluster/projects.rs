//! Project streams across instances: one order for every member wherever they are
//! connected, removal honoured everywhere, nothing lost through the faults the personal
//! streams survive; and presence across instances, gone with a killed instance.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::api::projects::id;
use testkit::api::{ApiClient, TestUser};
use testkit::process::Bus;
use testkit::ws::{assert_consecutive, WsClient};
use testkit::{PgDatabase, RedisServer};

use super::{counter, create_task, signup, Instance};

/// An owner and a member of one project (signed up on `base`), and the project's id.
/// Invitations need a verified address: the member's is marked verified in the database,
/// which is test setup (the verification flow is tested in tests/api).
async fn team(db: &PgDatabase, base: &str) -> (TestUser, TestUser, String) {
    let api = ApiClient::new(base);
    let owner = signup(base, "Olga").await;
    let member = signup(base, "Bob").await;
    verify(db, &member).await;
    let project = id(&api.create_project(&owner, "Board").await);
    api.add_member(&owner, &project, &member, "editor").await;
    (owner, member, project)
}

async fn verify(db: &PgDatabase, user: &TestUser) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE users SET is_email_verified = true WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&user.id).unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
}

async fn project_task(base: &str, user: &TestUser, project: &str, title: &str) {
    ApiClient::new(base)
        .create_task(user, json!({ "title": title, "project_id": project }))
        .await;
}

/// A socket on `instance` that receives project streams, and its ready.
async fn project_socket(instance: &Instance, user: &TestUser) -> (WsClient, Value) {
    WsClient::ready(&format!("{}?projects=true", instance.ws(None)), &user.token).await
}

fn position(ready: &Value, project: &str) -> i64 {
    ready["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == json!(format!("project:{project}")))
        .expect("the project in ready")["last_seq"]
        .as_i64()
        .unwrap()
}

/// Reads until `n` events of the project's stream arrived, or the socket drops.
async fn project_events(ws: &mut WsClient, project: &str, out: &mut Vec<Value>, n: usize) {
    let stream = json!(format!("project:{project}"));
    while out.len() < n {
        match ws.next_or_gone().await {
            Some(message) if message["type"] == "event" && message["stream"] == stream => {
                out.push(message)
            }
            Some(_) => {}
            None => return,
        }
    }
}

async fn members_on_different_instances_see_one_order(bus: Bus<'_>) {
    let db = PgDatabase::create().await;
    let a = Instance::start(&db.url, bus).await;
    let b = Instance::start(&db.url, bus).await;
    let (owner, member, project) = team(&db, &a.base).await;
    let (mut on_a, ready) = project_socket(&a, &owner).await;
    let (mut on_b, _) = project_socket(&b, &member).await;
    let start = position(&ready, &project);
    // Writers on both instances at once.
    let writers: Vec<_> = [
        (a.base.clone(), owner.clone()),
        (b.base.clone(), member.clone()),
    ]
    .into_iter()
    .enumerate()
    .map(|(w, (base, user))| {
        let project = project.clone();
        tokio::spawn(async move {
            for i in 0..15 {
                project_task(&base, &user, &project, &format!("W{w} {i}")).await;
            }
        })
    })
    .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    project_events(&mut on_a, &project, &mut seen_a, 30).await;
    project_events(&mut on_b, &project, &mut seen_b, 30).await;
    assert_consecutive(&seen_a, start + 1);
    assert_eq!(seen_a, seen_b, "one order for everyone");
}

async fn a_removal_on_one_instance_stops_the_stream_on_another(bus: Bus<'_>) {
    let db = PgDatabase::create().await;
    let a = Instance::start(&db.url, bus).await;
    let b = Instance::start(&db.url, bus).await;
    let (owner, member, project) = team(&db, &a.base).await;
    let (mut on_b, _) = project_socket(&b, &member).await;
    project_task(&a.base, &owner, &project, "Seen").await;
    let mut seen = Vec::new();
    project_events(&mut on_b, &project, &mut seen, 1).await;
    let api = ApiClient::new(&a.base);
    let removed = api
        .api(
            reqwest::Method::DELETE,
            &format!("/projects/{project}/members/{}", member.id),
            Some(&owner.token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), reqwest::StatusCode::NO_CONTENT);
    for i in 0..3 {
        project_task(&a.base, &owner, &project, &format!("Not for Bob {i}")).await;
    }
    let mut after = Vec::new();
    loop {
        let message = on_b.next().await;
        let left = message["event"] == "project.left";
        after.push(message);
        if left {
            break;
        }
    }
    after.extend(on_b.roundtrip().await);
    let leaked: Vec<&Value> = after
        .iter()
        .filter(|m| {
            m["data"]["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Not for"))
        })
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
}

/// One write, two streams, two instances: a task assigned on A reaches the assignee's
/// socket on B in the project's stream (`task.created`) and in the assignee's own
/// (`notification.created`), each at the next seq, and neither twice. (On PostgreSQL the
/// project's NOTIFY rides with its append, the assignee's goes just before the commit.)
async fn an_assignment_reaches_the_assignee_on_another_instance(bus: Bus<'_>) {
    let db = PgDatabase::create().await;
    let a = Instance::start(&db.url, bus).await;
    let b = Instance::start(&db.url, bus).await;
    let (owner, member, project) = team(&db, &a.base).await;
    let (mut on_b, ready) = project_socket(&b, &member).await;
    let project_start = position(&ready, &project);
    let own_start = ready["last_seq"].as_i64().unwrap();
    let api = ApiClient::new(&a.base);
    for i in 0..3 {
        api.create_task(
            &owner,
            json!({ "title": format!("For Bob {i}"), "project_id": project, "assignee_id": member.id }),
        )
        .await;
    }
    let stream = json!(format!("project:{project}"));
    let (mut in_project, mut own) = (Vec::new(), Vec::new());
    while in_project.len() < 3 || own.len() < 3 {
        let message = on_b.next().await;
        if message["type"] != "event" {
            continue;
        }
        if message["stream"] == stream {
            in_project.push(message);
        } else {
            assert!(message.get("stream").is_none(), "{message}");
            own.push(message);
        }
    }
    assert_consecutive(&in_project, project_start + 1);
    assert_consecutive(&own, own_start + 1);
    for (i, (task, note)) in in_project.iter().zip(&own).enumerate() {
        assert_eq!(task["event"], "task.created");
        assert_eq!(task["data"]["title"], format!("For Bob {i}"));
        assert_eq!(task["data"]["assignee_id"], json!(member.id));
        assert_eq!(note["event"], "notification.created");
        assert_eq!(note["data"]["task_id"], task["data"]["id"], "{note}");
    }
    let rest = on_b.roundtrip().await;
    assert!(
        rest.iter().all(|m| m["type"] != "event"),
        "nothing more: {rest:?}"
    );
}

/// Kills the instance a member is on while the project's stream flows; the member
/// reconnects elsewhere with their position and gets every event exactly once.
async fn killing_an_instance_loses_nothing_of_a_project(bus: Bus<'_>) {
    let db = PgDatabase::create().await;
    let mut a = Instance::start(&db.url, bus).await;
    let b = Instance::start(&db.url, bus).await;
    let (owner, member, project) = team(&db, &b.base).await;
    let (mut ws, ready) = project_socket(&a, &member).await;
    let start = position(&ready, &project);
    let writes = 40;
    let writer = {
        let (base, owner, project) = (b.base.clone(), owner.clone(), project.clone());
        tokio::spawn(async move {
            for i in 0..writes {
                project_task(&base, &owner, &project, &format!("T{i}")).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut events = Vec::new();
    project_events(&mut ws, &project, &mut events, 10).await;
    a.kill9().await;
    project_events(&mut ws, &project, &mut events, writes).await;
    let last = match events.last() {
        Some(_) => assert_consecutive(&events, start + 1),
        None => start,
    };
    let mut ws = WsClient::connect(&b.ws(None), None).await;
    let stream = format!("project:{project}");
    ws.send(json!({"type": "auth", "token": member.token, "positions": {stream: last}}))
        .await;
    assert_eq!(ws.next().await["type"], "ready");
    writer.await.unwrap();
    project_events(&mut ws, &project, &mut events, writes).await;
    assert_consecutive(&events, start + 1);
    assert!(ws.roundtrip().await.is_empty());
}

/// Stops Redis while an instance without the periodic catch-up delivers a project's
/// stream: the resync after resubscription brings what Redis lost.
async fn redis_outage_loses_nothing_of_a_project() {
    let db = PgDatabase::create().await;
    let mut redis = RedisServer::start().await;
    let a = Instance::bus_only(&db.url, Bus::Redis(&redis)).await;
    let b = Instance::start(&db.url, Bus::Redis(&redis)).await;
    let (owner, member, project) = team(&db, &b.base).await;
    let (mut ws, ready) = project_socket(&a, &member).await;
    let start = position(&ready, &project);
    let mut events = Vec::new();
    project_task(&b.base, &owner, &project, "Before").await;
    project_events(&mut ws, &project, &mut events, 1).await;
    redis.stop().await;
    for i in 0..5 {
        project_task(&b.base, &owner, &project, &format!("During {i}")).await;
    }
    redis.restart().await;
    project_events(&mut ws, &project, &mut events, 6).await;
    project_task(&b.base, &owner, &project, "After").await;
    project_events(&mut ws, &project, &mut events, 7).await;
    assert_consecutive(&events, start + 1);
    assert!(ws.roundtrip().await.is_empty());
}

/// Terminates the LISTEN connections while a project's stream flows (postgres bus).
async fn dropped_listen_loses_nothing_of_a_project() {
    let db = PgDatabase::create().await;
    let a = Instance::bus_only(&db.url, Bus::Postgres).await;
    let b = Instance::start(&db.url, Bus::Postgres).await;
    let (owner, member, project) = team(&db, &b.base).await;
    let (mut ws, ready) = project_socket(&a, &member).await;
    let start = position(&ready, &project);
    let mut events = Vec::new();
    for round in 0..3 {
        for i in 0..5 {
            project_task(&b.base, &owner, &project, &format!("R{round} {i}")).await;
        }
        assert!(super::terminate_listeners(&db).await >= 1);
        project_events(&mut ws, &project, &mut events, 5 * (round + 1)).await;
    }
    assert_consecutive(&events, start + 1);
    assert!(ws.roundtrip().await.is_empty());
}

/// The next presence message (anything else is skipped).
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

/// A member on instance B comes online for the owner on A; B killed, they go offline
/// within a few seconds.
async fn presence_spans_instances_and_dies_with_one() {
    let db = PgDatabase::create().await;
    let a = Instance::start(&db.url, Bus::Postgres).await;
    let mut b = Instance::start(&db.url, Bus::Postgres).await;
    let (owner, member, project) = team(&db, &a.base).await;
    let (mut on_a, _) = project_socket(&a, &owner).await;
    let (_on_b, _) = project_socket(&b, &member).await;
    let joined = next_presence(&mut on_a).await;
    assert_eq!(joined["type"], "presence.joined", "{joined}");
    assert_eq!(
        joined["members"],
        json!([{"user_id": member.id, "devices": 1}])
    );
    assert_eq!(joined["stream"], json!(format!("project:{project}")));
    // Nothing changes now: in the next three passes A reads presence at most once (its
    // read every ten passes), not once a pass.
    let reads = counter(&a.metrics, "taskstream_presence_reads_total").await;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let more = counter(&a.metrics, "taskstream_presence_reads_total").await - reads;
    assert!(more <= 1, "{more} presence reads while nothing changed");
    // B goes stale: A reads again and announces who left.
    b.kill9().await;
    let left = next_presence(&mut on_a).await;
    assert_eq!(left["type"], "presence.left", "{left}");
    assert_eq!(
        left["members"],
        json!([{"user_id": member.id, "devices": 0}])
    );
    assert_eq!(left["online"], 1);
}

/// Presence is state the instances rewrite, not history: when the tables are emptied (a
/// crash or a failover empties unlogged tables; an instance paused too long is forgotten),
/// each instance finds itself missing at its next mark and writes all of its sockets
/// again, and the owner's view follows.
async fn emptied_presence_is_written_again() {
    let db = PgDatabase::create().await;
    let a = Instance::start(&db.url, Bus::Postgres).await;
    let b = Instance::start(&db.url, Bus::Postgres).await;
    let (owner, member, _project) = team(&db, &a.base).await;
    let (mut on_a, _) = project_socket(&a, &owner).await;
    let (_on_b, _) = project_socket(&b, &member).await;
    let joined = next_presence(&mut on_a).await;
    assert_eq!(joined["type"], "presence.joined", "{joined}");
    super::wait_for_count(&db, "SELECT count(*) FROM socket_presence", 2).await;
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        sqlx::query("TRUNCATE socket_presence, instances")
            .execute(&mut conn)
            .await
            .expect("truncate");
    }
    // Both instances' users again, each under a live instance.
    super::wait_for_count(
        &db,
        "SELECT count(*) FROM socket_presence p JOIN instances i ON i.id = p.instance_id",
        2,
    )
    .await;
    assert_eq!(super::count(&db, "SELECT count(*) FROM instances").await, 2);
    // The owner still sees the member online: no left, or a left and a join again.
    let mut online = true;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while let Ok(message) = tokio::time::timeout_at(deadline, next_presence(&mut on_a)).await {
        online = message["type"] == "presence.joined";
    }
    assert!(online, "the member was left offline");
}

#[tokio::test]
async fn presence_is_written_again_when_emptied() {
    let _turn = crate::turn().await;
    emptied_presence_is_written_again().await;
}

/// The periodic catch-up wakes a stream only when a bus dropped one of its events: the
/// streams a socket read at connect (its own and its project's, both with events already)
/// do not look behind to it, and what comes over the bus wakes nothing either:
/// `taskstream_catch_up_wakeups_total` stays 0 on the socket's instance through many
/// passes.
async fn the_catch_up_wakes_nothing_the_bus_delivered(bus: Bus<'_>) {
    let db = PgDatabase::create().await;
    let a = Instance::start_with(&db.url, bus, &[("EVENT_CATCH_UP_INTERVAL", "400ms")]).await;
    let b = Instance::start(&db.url, bus).await;
    let (owner, member, project) = team(&db, &b.base).await;
    create_task(&b.base, &owner, "personal").await;
    project_task(&b.base, &owner, &project, "before").await;
    let (mut ws, ready) = project_socket(&a, &owner).await;
    assert!(ready["last_seq"].as_i64().unwrap() > 0, "{ready}");
    let from = position(&ready, &project);
    assert!(from > 0, "{ready}");
    let mut events = Vec::new();
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        project_task(&b.base, &member, &project, &format!("T{i}")).await;
        project_events(&mut ws, &project, &mut events, i + 1).await;
    }
    assert_consecutive(&events, from + 1);
    assert_eq!(
        counter(&a.metrics, "taskstream_catch_up_wakeups_total").await,
        0
    );
}

on_buses!(
    the_catch_up_wakes_nothing_the_bus_delivered,
    members_on_different_instances_see_one_order,
    an_assignment_reaches_the_assignee_on_another_instance,
    a_removal_on_one_instance_stops_the_stream_on_another,
    killing_an_instance_loses_nothing_of_a_project,
);

#[tokio::test]
async fn redis_outage_with_projects() {
    let _turn = crate::turn().await;
    redis_outage_loses_nothing_of_a_project().await;
}

#[tokio::test]
async fn listen_connection_terminated_with_projects() {
    let _turn = crate::turn().await;
    dropped_listen_loses_nothing_of_a_project().await;
}

#[tokio::test]
async fn presence_across_instances() {
    let _turn = crate::turn().await;
    presence_spans_instances_and_dies_with_one().await;
}
