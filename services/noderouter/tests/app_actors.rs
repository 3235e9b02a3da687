//! Who changed what, and deleted apps brought back, through the real gateway, deploy,
//! registry, Postgres and NATS: each version names who deployed it; the audit trail
//! names who deployed, rolled back and deleted an app and who changed access; a deleted
//! app is listed with its kept versions and a rollback restores it; an event published
//! before events named their author reads as "not recorded".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{client_with_token, post, role, Harness};
use nr_contracts::{encode, subjects};
use nr_testkit::{app_name, manifest, zip_files};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PASSWORD: &str = "password-123";

fn main_py(answer: &str) -> String {
    format!("def execute(data, conn=None):\n    return {{'answer': '{answer}'}}\n")
}

/// Creates user `name` with `roles` as the admin; returns a client with their session
/// token and their id.
async fn user(h: &Harness, name: &str, roles: &[&str]) -> (reqwest::Client, String) {
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": name, "password": PASSWORD, "roles": roles}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": name, "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let client = client_with_token(b["token"].as_str().unwrap());
    let (_, me) = get(&client, format!("{}/api/auth/me", h.url)).await;
    let id = me["id"]
        .as_str()
        .or(me["sub"].as_str())
        .unwrap_or_else(|| panic!("no id in {me}"))
        .to_owned();
    (client, id)
}

async fn get(c: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let r = c.get(url).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn deploy_as(c: &reqwest::Client, h: &Harness, app: &str, version: &str) -> Value {
    let zip = zip_files(&[
        ("manifest.json", &manifest(app, version, json!({}))),
        ("main.py", &main_py(version)),
    ]);
    let part = reqwest::multipart::Part::bytes(zip).file_name(format!("{app}.zip"));
    let res = c
        .post(format!("{}/admin/api/apps/deploy", h.url))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn by_version<'a>(versions: &'a Value, version: &str) -> &'a Value {
    versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .unwrap_or_else(|| panic!("no version {version} in {versions}"))
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| a["app_name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_the_audit_trail_name_who_deployed_rolled_back_and_deleted() {
    let h = Harness::start().await;
    let app = app_name("owned");
    role(&h, "deployers", &["apps:deploy", "apps:read"]).await;
    let (dora, dora_id) = user(&h, "dora", &["deployers"]).await;

    deploy_as(&dora, &h, &app, "1.0.0").await;
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "2.0.0", json!({}))),
            ("main.py", &main_py("2.0.0")),
        ],
    )
    .await;
    let (s, v) = get(&dora, format!("{}/admin/api/apps/{app}/versions", h.url)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let first = by_version(&v, "1.0.0");
    assert_eq!(
        (&first["deployed_by"], &first["deployed_by_id"]),
        (&json!("dora"), &json!(dora_id)),
        "{v}"
    );
    assert_eq!(by_version(&v, "2.0.0")["deployed_by"], "admin", "{v}");

    // Dora deletes it: gone from the apps, listed as deleted with the version it had.
    let r = dora
        .delete(format!("{}/admin/api/apps/{app}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, list) = get(&dora, format!("{}/admin/api/apps", h.url)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert!(!names(&list["apps"]).contains(&app), "{list}");
    let deleted = list["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app_name"] == app.as_str())
        .unwrap_or_else(|| panic!("{app} not listed as deleted: {list}"));
    assert_eq!(deleted["version"], "2.0.0", "{list}");
    // Its versions are kept, none current, each still naming who deployed it.
    let (s, v) = get(&dora, format!("{}/admin/api/apps/{app}/versions", h.url)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["deleted"], true, "{v}");
    assert!(v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["current"] == false));
    assert_eq!(by_version(&v, "1.0.0")["deployed_by"], "dora", "{v}");
    let (s, _) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A rollback restores it, at the version asked for.
    let (s, b) = post(
        &dora,
        format!("{}/admin/api/apps/{app}/rollback", h.url),
        json!({"version": "1.0.0"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["previous_version"], Value::Null, "{b}");
    let (_, list) = get(&dora, format!("{}/admin/api/apps", h.url)).await;
    let back = list["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app_name"] == app.as_str())
        .unwrap_or_else(|| panic!("{app} not restored: {list}"));
    assert_eq!(back["version"], "1.0.0");
    assert!(!names(&list["deleted"]).contains(&app), "{list}");
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, &b["answer"]), (StatusCode::OK, &json!("1.0.0")), "{b}");
    let (_, v) = get(&dora, format!("{}/admin/api/apps/{app}/versions", h.url)).await;
    assert_eq!(by_version(&v, "1.0.0")["current"], true, "{v}");
    assert_eq!(v["deleted"], false, "{v}");

    // The audit trail: who did each, newest first.
    let (s, a) = get(
        &h.http,
        format!("{}/admin/api/audit?kind=apps&q={app}", h.url),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let trail: Vec<(String, String, String)> = a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap_or("-").to_owned(),
                e["actor_id"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    let who = |a: &str, n: &str, id: &str| (a.to_owned(), n.to_owned(), id.to_owned());
    assert_eq!(trail.len(), 4, "{a}");
    assert_eq!(trail[0], who("rolled_back", "dora", &dora_id), "{a}");
    assert_eq!(trail[1], who("deleted", "dora", &dora_id), "{a}");
    assert_eq!(
        (trail[2].0.as_str(), trail[2].1.as_str()),
        ("deployed", "admin")
    );
    assert_eq!(trail[3], who("deployed", "dora", &dora_id), "{a}");
    assert!(!a.to_string().contains("\"manifest\""), "{a}");

    // Access changes name their author too: the admin made the role and the user.
    let (_, a) = get(&h.http, format!("{}/admin/api/audit?kind=access", h.url)).await;
    let entries = a["entries"].as_array().unwrap();
    let made = |action: &str, target: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["target"] == target)
            .unwrap_or_else(|| panic!("no {action} {target} in {a}"))
    };
    assert_eq!(made("role_created", "deployers")["actor"], "admin", "{a}");
    assert_eq!(made("permission_granted", "deployers")["actor"], "admin");
    assert_eq!(made("user_created", "dora")["actor"], "admin", "{a}");
    // Its event carries only the user's id: the trail names the user.
    let roles_set = made("user_roles_set", "dora");
    assert_eq!(roles_set["details"]["id"], dora_id.as_str(), "{a}");
    // The bootstrap has no author: nobody was logged in.
    assert_eq!(made("bootstrap", "admin")["actor"], Value::Null, "{a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_before_actors_projects_and_audits_as_not_recorded() {
    let h = Harness::start().await;
    let app = app_name("olden");
    let report = h
        .deploy_ok(
            &app,
            &[
                ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
                ("main.py", &main_py("1.0.0")),
            ],
        )
        .await;
    let sha = report["sha256"].as_str().unwrap();
    // Published as deploy did before events named their author: no actor fields at all.
    let old = json!({
        "id": uuid::Uuid::now_v7().to_string(),
        "type": "app.updated",
        "source": "deploy-old",
        "time": nr_contracts::envelope::now_rfc3339(),
        "data": {
            "app_name": app,
            "change": "deployed",
            "version": "1.0.1",
            "sha256": "ab".repeat(32),
            "bundle_key": format!("bundles/{app}/{sha}.zip"),
            "manifest": {"app_name": app, "version": "1.0.1"},
            "previous_version": "1.0.0"
        }
    });
    let js = async_nats::jetstream::new(h.nats_client().await);
    js.publish(subjects::app_updated(&app), encode(&old).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let (s, v) = get(&h.http, format!("{}/admin/api/apps/{app}/versions", h.url)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let old_version = by_version(&v, "1.0.1");
    assert_eq!(old_version["current"], true, "{v}");
    assert_eq!(
        (&old_version["deployed_by"], &old_version["deployed_by_id"]),
        (&Value::Null, &Value::Null),
        "{v}"
    );
    assert_eq!(by_version(&v, "1.0.0")["deployed_by"], "admin", "{v}");
    let (_, a) = get(
        &h.http,
        format!("{}/admin/api/audit?kind=apps&q={app}", h.url),
    )
    .await;
    let first = &a["entries"][0];
    assert_eq!(
        (&first["action"], &first["actor"]),
        (&json!("deployed"), &Value::Null),
        "{a}"
    );
}
