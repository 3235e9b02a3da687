//! The registry's projection and versions lookup against a real Postgres database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use nr_contracts::events::{AppChange, AppUpdated, APP_UPDATED};
use nr_contracts::{encode, Envelope};
use nr_registry::{app_versions, list_apps, projection};
use nr_testkit::TestDb;
use serde_json::json;

fn event(app: &str, change: AppChange, version: &str, sha: &str, time: &str) -> Vec<u8> {
    let mut env = Envelope::new(
        APP_UPDATED,
        "test",
        AppUpdated {
            app_name: app.into(),
            change,
            version: version.into(),
            sha256: sha.into(),
            bundle_key: format!("bundles/{app}/{sha}.zip"),
            manifest: json!({"app_name": app, "version": version}),
            previous_version: None,
            actor: None,
            actor_id: None,
            undoes: None,
        },
    );
    env.time = time.into();
    encode(&env).unwrap()
}

async fn db() -> (TestDb, sqlx::PgPool) {
    let t = TestDb::create().await.unwrap();
    let pool = nr_infra::db::connect(&t.url, 2).await.unwrap();
    nr_infra::db::migrate(&pool).await.unwrap();
    (t, pool)
}

#[tokio::test]
async fn versions_follow_deploys_rollbacks_and_deletes() {
    let (_t, db) = db().await;
    let offset = nr_infra::offset::Offset::new("apps", 0);
    projection::apply(
        &db,
        &offset,
        1,
        &event(
            "notes",
            AppChange::Deployed,
            "1.0.0",
            "aa",
            "2026-01-01T00:00:00Z",
        ),
    )
    .await
    .unwrap();
    projection::apply(
        &db,
        &offset,
        2,
        &event(
            "notes",
            AppChange::Deployed,
            "1.1.0",
            "bb",
            "2026-01-02T00:00:00Z",
        ),
    )
    .await
    .unwrap();
    projection::apply(
        &db,
        &offset,
        3,
        &event(
            "notes",
            AppChange::RolledBack,
            "1.0.0",
            "aa",
            "2026-01-03T00:00:00Z",
        ),
    )
    .await
    .unwrap();
    let v = app_versions(&db, "notes").await.unwrap();
    assert!(v.found && !v.deleted);
    assert_eq!(v.current_version.as_deref(), Some("1.0.0"));
    let rows: Vec<(&str, bool, u64, u64, &str)> = v
        .versions
        .iter()
        .map(|x| {
            (
                x.version.as_str(),
                x.current,
                x.first_rev,
                x.last_rev,
                x.deployed_at.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("1.1.0", false, 2, 2, "2026-01-02T00:00:00Z"),
            ("1.0.0", true, 1, 3, "2026-01-01T00:00:00Z")
        ]
    );

    projection::apply(
        &db,
        &offset,
        4,
        &event(
            "notes",
            AppChange::Deleted,
            "1.0.0",
            "aa",
            "2026-01-04T00:00:00Z",
        ),
    )
    .await
    .unwrap();
    let v = app_versions(&db, "notes").await.unwrap();
    assert!(v.found && v.deleted);
    assert_eq!(v.current_version, None);
    assert!(v.versions.iter().all(|x| !x.current));
    assert_eq!(v.versions.len(), 2);
    assert!(list_apps(&db).await.unwrap().apps.is_empty());
    assert_eq!(projection::applied(&db).await.unwrap(), 4);

    let none = app_versions(&db, "never").await.unwrap();
    assert!(!none.found && none.versions.is_empty());
}

#[tokio::test]
async fn replaying_events_changes_nothing() {
    let (_t, db) = db().await;
    let offset = nr_infra::offset::Offset::new("apps", 0);
    let e1 = event(
        "x",
        AppChange::Deployed,
        "1.0.0",
        "aa",
        "2026-01-01T00:00:00Z",
    );
    projection::apply(&db, &offset, 1, &e1).await.unwrap();
    let before = app_versions(&db, "x").await.unwrap();
    projection::apply(&db, &offset, 1, &e1).await.unwrap();
    assert_eq!(app_versions(&db, "x").await.unwrap(), before);
}

#[tokio::test]
async fn a_deleted_app_gives_its_name_to_one_differing_only_in_case() {
    let (_t, db) = db().await;
    let offset = nr_infra::offset::Offset::new("apps", 0);
    projection::apply(
        &db,
        &offset,
        1,
        &event(
            "notes",
            AppChange::Deployed,
            "1.0.0",
            "aa",
            "2026-01-01T00:00:00Z",
        ),
    )
    .await
    .unwrap();
    projection::apply(
        &db,
        &offset,
        2,
        &event(
            "notes",
            AppChange::Deleted,
            "1.0.0",
            "aa",
            "2026-01-02T00:00:00Z",
        ),
    )
    .await
    .unwrap();
    projection::apply(
        &db,
        &offset,
        3,
        &event(
            "Notes",
            AppChange::Deployed,
            "2.0.0",
            "cc",
            "2026-01-03T00:00:00Z",
        ),
    )
    .await
    .unwrap();
    let apps = list_apps(&db).await.unwrap().apps;
    assert_eq!(apps.len(), 1);
    assert_eq!(
        (apps[0].app_name.as_str(), apps[0].version.as_str()),
        ("Notes", "2.0.0")
    );
    // A live case variant (deploy refuses it; a race could let one through) is skipped
    // without stalling the projection.
    projection::apply(
        &db,
        &offset,
        4,
        &event(
            "NOTES",
            AppChange::Deployed,
            "1.0.0",
            "dd",
            "2026-01-04T00:00:00Z",
        ),
    )
    .await
    .unwrap();
    projection::apply(
        &db,
        &offset,
        5,
        &event(
            "other",
            AppChange::Deployed,
            "1.0.0",
            "ee",
            "2026-01-05T00:00:00Z",
        ),
    )
    .await
    .unwrap();
    let names: Vec<String> = list_apps(&db)
        .await
        .unwrap()
        .apps
        .into_iter()
        .map(|a| a.app_name)
        .collect();
    assert_eq!(names, ["Notes", "other"]);
    assert_eq!(projection::applied(&db).await.unwrap(), 5);
}

/// The events of a deploy refused after publishing: deploy bb, then deploy's undo back
/// to aa naming bb, then a later rollback to bb that stays.
fn refused_history() -> Vec<Vec<u8>> {
    let undo = {
        let mut env: Envelope<AppUpdated> = nr_contracts::decode(&event(
            "notes",
            AppChange::RolledBack,
            "1.0.0",
            "aa",
            "2026-01-03T00:00:00Z",
        ))
        .unwrap();
        env.data.undoes = Some(nr_contracts::events::Undone {
            version: "1.1.0".into(),
            sha256: "bb".into(),
            reason: "runner r1 could not load it: ImportError: no".into(),
        });
        encode(&env).unwrap()
    };
    vec![
        event(
            "notes",
            AppChange::Deployed,
            "1.0.0",
            "aa",
            "2026-01-01T00:00:00Z",
        ),
        event(
            "notes",
            AppChange::Deployed,
            "1.1.0",
            "bb",
            "2026-01-02T00:00:00Z",
        ),
        undo,
        event(
            "notes",
            AppChange::RolledBack,
            "1.1.0",
            "bb",
            "2026-01-04T00:00:00Z",
        ),
    ]
}

fn refused_marks(v: &nr_contracts::requests::AppVersions) -> Vec<(String, Option<String>)> {
    v.versions
        .iter()
        .map(|x| (x.version.clone(), x.refused.clone()))
        .collect()
}

#[tokio::test]
async fn a_refused_version_is_marked_until_it_is_current_again_and_a_replay_agrees() {
    let (_t, pool) = db().await;
    let offset = nr_infra::offset::Offset::new("apps", 0);
    let history = refused_history();
    for (i, e) in history.iter().take(3).enumerate() {
        projection::apply(&pool, &offset, i as u64 + 1, e)
            .await
            .unwrap();
    }
    // Redelivered: applied once.
    projection::apply(&pool, &offset, 3, &history[2])
        .await
        .unwrap();
    let why = Some("runner r1 could not load it: ImportError: no".to_owned());
    let v = app_versions(&pool, "notes").await.unwrap();
    assert_eq!(v.current_version.as_deref(), Some("1.0.0"));
    assert_eq!(
        refused_marks(&v),
        [("1.1.0".to_owned(), why), ("1.0.0".to_owned(), None)]
    );
    projection::apply(&pool, &offset, 4, &history[3])
        .await
        .unwrap();
    let v = app_versions(&pool, "notes").await.unwrap();
    let cleared = [("1.1.0".to_owned(), None), ("1.0.0".to_owned(), None)];
    assert_eq!(refused_marks(&v), cleared);

    // A database rebuilt from the stream reads the same.
    let (_t2, fresh) = db().await;
    let fresh_offset = nr_infra::offset::Offset::new("apps", 0);
    for (i, e) in history.iter().enumerate() {
        projection::apply(&fresh, &fresh_offset, i as u64 + 1, e)
            .await
            .unwrap();
    }
    assert_eq!(app_versions(&fresh, "notes").await.unwrap(), v);
}

/// A database restored to an older offset under a running projection: the next event is
/// refused (taking it would skip the events the dump lacks for good) until the
/// projection starts again from the restored offset and replays them.
#[tokio::test]
async fn a_database_gone_back_under_the_projection_is_not_skipped_ahead() {
    let (_t, db) = db().await;
    let offset = nr_infra::offset::Offset::new("apps", 0);
    let e = |app: &str, sha: &str| {
        event(
            app,
            AppChange::Deployed,
            "1.0.0",
            sha,
            "2026-01-01T00:00:00Z",
        )
    };
    projection::apply(&db, &offset, 1, &e("one", "a1"))
        .await
        .unwrap();
    projection::apply(&db, &offset, 2, &e("two", "a2"))
        .await
        .unwrap();
    // The dump held sequence 1 only.
    sqlx::query("DELETE FROM noderouter_core.apps WHERE app_name = 'two'")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE noderouter_core.projection_offsets SET stream_seq = 1 WHERE projection = 'apps'",
    )
    .execute(&db)
    .await
    .unwrap();
    // Before: applied, the offset went to 3, and "two" was never projected again.
    let err = projection::apply(&db, &offset, 3, &e("three", "a3"))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("went back from stream sequence 2 to 1"),
        "{err}"
    );
    assert_eq!(projection::applied(&db).await.unwrap(), 1);
    // Started again from the restored offset, it replays what the dump lacks.
    let again = nr_infra::offset::Offset::new("apps", projection::applied(&db).await.unwrap());
    projection::apply(&db, &again, 2, &e("two", "a2"))
        .await
        .unwrap();
    projection::apply(&db, &again, 3, &e("three", "a3"))
        .await
        .unwrap();
    let names: Vec<String> = list_apps(&db)
        .await
        .unwrap()
        .apps
        .into_iter()
        .map(|a| a.app_name)
        .collect();
    assert_eq!(names, ["one", "three", "two"]);
}

/// The same guard on the RBAC projection, past the offset it started from.
#[tokio::test]
async fn a_database_gone_back_under_the_rbac_projection_is_not_skipped_ahead() {
    use nr_contracts::events::{RbacChange, RBAC_CHANGED};
    let (_t, db) = db().await;
    let offset = nr_infra::offset::Offset::new("rbac", 0);
    let user = |n: u64| {
        encode(&Envelope::new(
            RBAC_CHANGED,
            "test",
            RbacChange::UserCreated {
                id: format!("u{n}"),
                username: format!("user{n}"),
                password_hash: "x".into(),
            },
        ))
        .unwrap()
    };
    for n in 1..=3 {
        nr_registry::rbac::apply(&db, &offset, n, &user(n))
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM noderouter_core.users WHERE id = 'u3'")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE noderouter_core.projection_offsets SET stream_seq = 2 WHERE projection = 'rbac'",
    )
    .execute(&db)
    .await
    .unwrap();
    // Before: the guard stayed at the offset it started from (0) and let event 4 in.
    let err = nr_registry::rbac::apply(&db, &offset, 4, &user(4))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("went back from stream sequence 3 to 2"),
        "{err}"
    );
    assert_eq!(nr_registry::rbac::applied(&db).await.unwrap(), 2);
}
