//! The platform keeps someone who can manage users and roles: disabling the last such
//! user, taking their roles away, revoking `rbac:manage` from the last role that gives
//! it or deleting that role is refused with 409, and everything stays as it was.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{client_with_token, post, role, Harness};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = req.send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn user_id(c: &reqwest::Client, h: &Harness) -> String {
    let me: Value = c
        .get(format!("{}/api/auth/me", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

fn refused_as_last(s: StatusCode, b: &Value) {
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["code"], "conflict", "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("manage users and roles"),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_user_who_can_manage_access_cannot_be_locked_out() {
    let h = Harness::start_with(&["--runners", "0"]).await;
    let admin = user_id(&h.http, &h).await;
    let users = format!("{}/admin/api/users", h.url);

    // The bootstrap admin is the only one: neither disabled nor stripped of its role.
    let (s, b) = send(
        h.http
            .patch(format!("{users}/{admin}"))
            .json(&json!({"disabled": true})),
    )
    .await;
    refused_as_last(s, &b);
    let (s, b) = send(
        h.http
            .put(format!("{users}/{admin}/roles"))
            .json(&json!({"roles": []})),
    )
    .await;
    refused_as_last(s, &b);
    let (s, b) = send(h.http.get(&users)).await;
    assert_eq!(s, StatusCode::OK, "the admin lost access: {b}");
    let listed = b["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == admin.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["disabled"], false, "{listed}");
    assert_eq!(listed["roles"], json!(["admin"]), "{listed}");

    // Another user whose role grants rbac:manage: now the admin may go...
    role(&h, "access_ops", &["rbac:manage"]).await;
    let (s, b) = post(
        &h.http,
        users.clone(),
        json!({"username": "olga", "password": "password-123", "roles": ["access_ops"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": "olga", "password": "password-123"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let olga = client_with_token(b["token"].as_str().unwrap());
    let olga_id = user_id(&olga, &h).await;
    let (s, b) = send(
        h.http
            .put(format!("{users}/{admin}/roles"))
            .json(&json!({"roles": []})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // ...and olga is the last: her role keeps the permission and exists, she stays.
    let ops = format!("{}/admin/api/roles/access_ops", h.url);
    let (s, b) = send(olga.delete(format!("{ops}/permissions/rbac:manage"))).await;
    refused_as_last(s, &b);
    let (s, b) = send(olga.delete(&ops)).await;
    refused_as_last(s, &b);
    let (s, b) = send(
        olga.patch(format!("{users}/{olga_id}"))
            .json(&json!({"disabled": true})),
    )
    .await;
    refused_as_last(s, &b);
    let (s, b) = send(olga.get(&users)).await;
    assert_eq!(s, StatusCode::OK, "olga lost access: {b}");
}

/// Two changes at once, each leaving the other's manager: one of them goes first, and
/// the second sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_changes_at_once_cannot_both_take_the_last_manager() {
    let h = Harness::start_with(&["--runners", "0"]).await;
    let admin = user_id(&h.http, &h).await;
    let users = format!("{}/admin/api/users", h.url);
    for round in 0..3 {
        let name = format!("second_admin_{round}");
        let (s, b) = post(
            &h.http,
            users.clone(),
            json!({"username": name, "password": "password-123", "roles": ["admin"]}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let other = b["id"].as_str().unwrap().to_owned();
        // Disable the other admin and, at the same moment, take this one's role away.
        let (a, b) = tokio::join!(
            send(
                h.http
                    .patch(format!("{users}/{other}"))
                    .json(&json!({"disabled": true}))
            ),
            send(
                h.http
                    .put(format!("{users}/{admin}/roles"))
                    .json(&json!({"roles": []}))
            ),
        );
        assert!(
            !(a.0 == StatusCode::OK && b.0 == StatusCode::OK),
            "round {round}: both changes passed, leaving no manager: {a:?} {b:?}"
        );
        // The one refused saw the other's change (409), or its caller had lost the role
        // by the time it was checked (403).
        for r in [&a, &b] {
            assert!(
                [StatusCode::OK, StatusCode::CONFLICT, StatusCode::FORBIDDEN].contains(&r.0),
                "{r:?}"
            );
        }
        if b.0 != StatusCode::OK {
            // The admin kept its role; the other was disabled: the next round adds one.
            assert_eq!(a.0, StatusCode::OK, "{a:?}");
            continue;
        }
        // The admin lost its role first: the other admin, still enabled, gives it back.
        assert_eq!(b.0, StatusCode::OK, "{b:?}");
        let (s, t) = post(
            &reqwest::Client::new(),
            format!("{}/api/auth/login", h.url),
            json!({"username": name, "password": "password-123"}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "the remaining admin cannot log in: {t}");
        let other_client = client_with_token(t["token"].as_str().unwrap());
        let (s, r) = send(
            other_client
                .put(format!("{users}/{admin}/roles"))
                .json(&json!({"roles": ["admin"]})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{r}");
        // Back to one manager for the next round.
        let (s, r) = send(
            h.http
                .patch(format!("{users}/{other}"))
                .json(&json!({"disabled": true})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{r}");
    }
}
