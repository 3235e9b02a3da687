//! RBAC end to end through the gateway: a required permission gates calls and grants
//! take effect at once, role changes reach live sessions, jobs are private to their
//! submitter, subscriptions and the menu follow permissions, and a job an admin cancels
//! is announced to its submitter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::identity::{guarded_app, user};
use common::{post, role, Harness};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_permission_gates_calls_and_grants_take_effect_at_once() {
    let h = Harness::start().await;
    let app = guarded_app(&h).await;
    role(&h, "sales", &[]).await;
    let bob = user(&h, "bob", &["sales"]).await;
    let (s, b) = post(&bob, format!("{}/api/sync/{app}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(b["error"].as_str().unwrap().contains("sales:access"), "{b}");
    let (s, _) = post(&bob, format!("{}/api/async/{app}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, _) = post(
        &h.http,
        format!("{}/admin/api/roles/sales/permissions", h.url),
        json!({"permission": "sales:access"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = post(&bob, format!("{}/api/sync/{app}", h.url), json!({})).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the grant applies without a restart: {b}"
    );

    let r = h
        .http
        .delete(format!(
            "{}/admin/api/roles/sales/permissions/sales:access",
            h.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = post(&bob, format!("{}/api/sync/{app}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "revoking applies at once");

    // Admin endpoints need their own permission.
    let r = bob
        .get(format!("{}/admin/api/users", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("rbac:manage"));

    // The app's permissions joined the catalogue.
    let cat: Value = h
        .http
        .get(format!("{}/admin/api/permissions", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = cat["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in ["sales:access", "sales:notify", "apps:deploy", "rbac:manage"] {
        assert!(names.contains(&p), "{p} missing from {names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_of_a_user_takes_effect_on_live_sessions() {
    let h = Harness::start().await;
    let app = guarded_app(&h).await;
    role(&h, "sellers", &["sales:access"]).await;
    role(&h, "nobody", &[]).await;
    let carol = user(&h, "carol", &["sellers"]).await;
    assert_eq!(
        post(&carol, format!("{}/api/sync/{app}", h.url), json!({}))
            .await
            .0,
        StatusCode::OK
    );
    let users: Value = h
        .http
        .get(format!("{}/admin/api/users", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "carol")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .http
        .put(format!("{}/admin/api/users/{id}/roles", h.url))
        .json(&json!({"roles": ["nobody"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        post(&carol, format!("{}/api/sync/{app}", h.url), json!({}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let r = h
        .http
        .put(format!("{}/admin/api/users/{id}/roles", h.url))
        .json(&json!({"roles": ["ghost"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "unknown roles are refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_private_to_their_submitter_and_submit_is_idempotent() {
    let h = Harness::start().await;
    let app = guarded_app(&h).await;
    role(&h, "sellers", &["sales:access"]).await;
    let alice = user(&h, "alice", &["sellers"]).await;
    let bob = user(&h, "bob", &["sellers"]).await;
    let submit = |key: &'static str| {
        alice
            .post(format!("{}/api/async/{app}", h.url))
            .header("Idempotency-Key", key)
            .json(&json!({"n": 1}))
            .send()
    };
    let first: Value = submit("order-1").await.unwrap().json().await.unwrap();
    let again: Value = submit("order-1").await.unwrap().json().await.unwrap();
    assert_eq!(
        first["job_id"], again["job_id"],
        "a retry returns the same job"
    );
    let other: Value = submit("order-2").await.unwrap().json().await.unwrap();
    assert_ne!(first["job_id"], other["job_id"]);
    let id = first["job_id"].as_str().unwrap();
    // A retry after the job ran answers its status now (before: always "pending").
    let done = h
        .wait_job(id, |j| {
            j["status"] == "completed" || j["status"] == "failed"
        })
        .await;
    let r = submit("order-1").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.unwrap();
    assert_eq!(
        (&again["job_id"], &again["status"]),
        (&first["job_id"], &done["status"]),
        "{again}"
    );
    // The key with another body is a mistake, said so (before: 200 and the old job,
    // the new request silently not run). Key order and spacing do not count.
    let r = alice
        .post(format!("{}/api/async/{app}", h.url))
        .header("Idempotency-Key", "order-1")
        .json(&json!({"n": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let b: Value = r.json().await.unwrap();
    assert!(b["error"].as_str().unwrap().contains("another body"), "{b}");
    let r = alice
        .post(format!("{}/api/async/{app}", h.url))
        .header("Idempotency-Key", "order-1")
        .header("content-type", "application/json")
        .body("{ \"n\" : 1 }")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = alice
        .get(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = bob
        .get(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "another user's job does not exist for bob"
    );
    let r = bob
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = h
        .http
        .get(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "jobs:read_all (admin) sees every job"
    );

    let mine: Value = alice
        .get(format!("{}/api/async/jobs?limit=1", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["jobs"].as_array().unwrap().len(), 1);
    let next = mine["next_before"].as_str().unwrap();
    let page2: Value = alice
        .get(format!("{}/api/async/jobs?limit=1&before={next}", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page2["jobs"].as_array().unwrap().len(), 1);
    assert!(page2["next_before"].is_null());
    // A page size out of range is refused, not quietly changed (limit=0 listed a job).
    for limit in ["0", "501", "-1"] {
        let r = alice
            .get(format!("{}/api/async/jobs?limit={limit}", h.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "limit={limit}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(
            b["error"],
            format!("limit must be from 1 to 500 (got {limit})"),
            "{b}"
        );
    }
    let bobs: Value = bob
        .get(format!("{}/api/async/jobs", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(bobs["jobs"].as_array().unwrap().is_empty());
    let r = bob
        .get(format!("{}/api/async/jobs?all=true", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_follow_the_action_permission_and_the_menu_is_filtered() {
    let h = Harness::start().await;
    let app = guarded_app(&h).await;
    role(&h, "sellers", &["sales:access"]).await;
    let dave = user(&h, "dave", &["sellers"]).await;
    let sub = |action: &str| json!({"app_name": app, "action_name": action});
    let (s, b) = post(
        &dave,
        format!("{}/api/notify/subscribe", h.url),
        sub("deal_closed"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(b["error"].as_str().unwrap().contains("sales:notify"));
    let (s, _) = post(
        &dave,
        format!("{}/api/notify/subscribe", h.url),
        sub("open_event"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = post(
        &dave,
        format!("{}/api/notify/subscribe", h.url),
        sub("no_such_action"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let list: Value = dave
        .get(format!("{}/api/notify/subscriptions", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1);
    let (s, _) = post(
        &dave,
        format!("{}/api/notify/unsubscribe", h.url),
        sub("open_event"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let list: Value = dave
        .get(format!("{}/api/notify/subscriptions", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["subscriptions"].as_array().unwrap().is_empty());

    let apps: Value = dave
        .get(format!("{}/api/apps", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(apps["apps"][0]["app_name"], app.as_str());
    let nav = &apps["nav"][0];
    assert_eq!(nav["label"], "Sales");
    assert!(
        nav["children"].as_array().unwrap().is_empty(),
        "reports:read child hidden: {nav}"
    );
    let eve = user(&h, "eve", &[]).await;
    let apps: Value = eve
        .get(format!("{}/api/apps", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(apps["apps"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_by_an_admin_is_announced_to_its_submitter() {
    use futures::StreamExt;
    // No runner: the job stays pending until it is cancelled.
    let h = Harness::start_with(&["--runners", "0"]).await;
    let app = guarded_app(&h).await;
    role(&h, "sellers", &["sales:access"]).await;
    let alice = user(&h, "alice", &["sellers"]).await;
    let me: Value = alice
        .get(format!("{}/api/auth/me", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (s, sub) = post(&alice, format!("{}/api/async/{app}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{sub}");
    let id = sub["job_id"].as_str().unwrap();
    let nats = h.nats_client().await;
    let mut events = nats
        .subscribe(format!("job.progress.{app}.{id}"))
        .await
        .unwrap();
    h.nats
        .subscribed(&nats, &format!("job.progress.{app}.{id}"))
        .await;
    let r = h
        .http
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let msg = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap();
    let ev: nr_contracts::Envelope<nr_contracts::events::JobProgress> =
        nr_contracts::decode(&msg.payload).unwrap();
    assert_eq!(ev.data.status, nr_contracts::events::JobStatus::Cancelled);
    assert_eq!(
        ev.data.submitted_by.as_deref(),
        me["id"].as_str(),
        "the submitter, not the admin"
    );
}
