//! The secrets key: a platform without one refuses secrets, and a rotated key still
//! opens secrets sealed with the old one and seals them again.

use super::*;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secrets_key_secrets_are_refused_and_variables_still_work() {
    // An empty setting stands for a split gateway and runner started without one.
    let h = Harness::start_with(&["--secrets-key", ""]).await;
    let app = deploy_env_app(&h, "envnokey").await;
    let (s, b) = set(
        &h,
        &app,
        json!({"name": "API_KEY", "value": SECRET, "secret": true}),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("NR_SECRETS_KEY"),
        "{b}"
    );
    assert!(!b.to_string().contains(SECRET));
    assert_eq!(list(&h, &app).await["env"], json!([]));
    let (s, b) = set(&h, &app, json!({"name": "PLAIN", "value": "yes"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    wait_env(&h, &app, &["PLAIN"], |e| e["PLAIN"] == "yes").await;

    // A secret sealed by a service that has a key (written straight to the table) does
    // not open on this runner: the reload fails and the previous host keeps serving.
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let key = SecretsKey::parse(&SecretsKey::generate_text().unwrap()).unwrap();
    appenv::set(
        &db,
        Some(&key),
        SetEnv {
            app: &app,
            name: "API_KEY",
            value: SECRET,
            secret: true,
            actor: "test",
        },
    )
    .await
    .unwrap();
    let (s, b) = set(&h, &app, json!({"name": "PLAIN", "value": "again"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let env = env_of(&h, &app, &["PLAIN", "API_KEY"]).await;
    assert_eq!(env, json!({"PLAIN": "yes", "API_KEY": null}), "{env}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_key_rotation_old_secrets_still_open_and_are_sealed_again_with_the_new_key() {
    let old = SecretsKey::generate_text().unwrap();
    let new = SecretsKey::generate_text().unwrap();
    let h = Harness::start_with(&["--secrets-key", &format!("{new},{old}")]).await;
    let app = deploy_env_app(&h, "envrotate").await;
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let old_key = SecretsKey::parse(&old).unwrap();
    appenv::set(
        &db,
        Some(&old_key),
        SetEnv {
            app: &app,
            name: "OLD_SECRET",
            value: SECRET,
            secret: true,
            actor: "test",
        },
    )
    .await
    .unwrap();
    // Any change reloads the app, which reads every variable again.
    let (s, b) = set(
        &h,
        &app,
        json!({"name": "NEW_SECRET", "value": "fresh", "secret": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let env = wait_env(&h, &app, &["OLD_SECRET", "NEW_SECRET"], |e| {
        e["NEW_SECRET"] == "fresh"
    })
    .await;
    assert_eq!(env["OLD_SECRET"], SECRET, "{env}");

    let both = SecretsKey::parse(&format!("{new},{old}")).unwrap();
    assert_eq!(appenv::reseal(&db, &both, None).await.unwrap(), 1);
    let new_only = SecretsKey::parse(&new).unwrap();
    let opened = appenv::load_for_app(&db, Some(&new_only), &app)
        .await
        .unwrap();
    assert_eq!(
        opened,
        vec![
            ("NEW_SECRET".to_owned(), "fresh".to_owned()),
            ("OLD_SECRET".to_owned(), SECRET.to_owned())
        ]
    );
    let err = appenv::load_for_app(&db, Some(&old_key), &app)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not open") && !err.contains(SECRET),
        "{err}"
    );
    assert_eq!(appenv::reseal(&db, &both, None).await.unwrap(), 0);
    // With the new key lost, a start names every secret it cannot open.
    let mut unopened = Vec::new();
    assert_eq!(
        appenv::reseal(&db, &old_key, Some(&mut unopened))
            .await
            .unwrap(),
        0
    );
    unopened.sort();
    assert_eq!(
        unopened,
        [format!("{app}/NEW_SECRET"), format!("{app}/OLD_SECRET")]
    );
}

/// A change and its `app.env` event land together: with the stream refusing new
/// events (full, as its limits allow an operator to make it) the change is refused
/// whole, nothing is half-written, and once the stream takes events again changes go
/// through and reach the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_event_cannot_be_stored_is_not_made() {
    use async_nats::jetstream::stream::DiscardPolicy;
    let h = Harness::start().await;
    let app = deploy_env_app(&h, "envnoevent").await;
    let (s, b) = set(&h, &app, json!({"name": "SHOP_CURRENCY", "value": "EUR"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    wait_env(&h, &app, &["SHOP_CURRENCY"], |e| {
        e["SHOP_CURRENCY"] == "EUR"
    })
    .await;

    let js = async_nats::jetstream::new(h.nats_client().await);
    let mut stream = js
        .get_stream(nr_contracts::subjects::STREAM_APP_ENV)
        .await
        .unwrap();
    let info = stream.info().await.unwrap().clone();
    let open = info.config.clone();
    let full = async_nats::jetstream::stream::Config {
        max_messages: i64::try_from(info.state.messages).unwrap(),
        discard: DiscardPolicy::New,
        ..open.clone()
    };
    js.update_stream(full).await.unwrap();

    let refused = |(s, b): (StatusCode, Value)| {
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
        assert!(b["error"].as_str().unwrap().contains("was not made"), "{b}");
    };
    refused(set(&h, &app, json!({"name": "SHOP_CURRENCY", "value": "USD"})).await);
    refused(set(&h, &app, json!({"name": "NEW_NAME", "value": "x"})).await);
    refused(
        send(
            h.http
                .delete(format!("{}/admin/api/apps/{app}/env/SHOP_CURRENCY", h.url)),
        )
        .await,
    );
    let listed = list(&h, &app).await;
    assert_eq!(listed["env"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["env"][0]["value"], "EUR", "{listed}");
    assert_eq!(
        env_of(&h, &app, &["SHOP_CURRENCY"]).await["SHOP_CURRENCY"],
        "EUR"
    );

    js.update_stream(open).await.unwrap();
    let (s, b) = set(&h, &app, json!({"name": "SHOP_CURRENCY", "value": "USD"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    wait_env(&h, &app, &["SHOP_CURRENCY"], |e| {
        e["SHOP_CURRENCY"] == "USD"
    })
    .await;
}

/// A secret whose key is gone cannot be read: the operator sets it again, and that is
/// enough. The failed load is not kept as the app's answer once its variables change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_set_again_after_its_key_was_lost_brings_the_app_back() {
    let h = Harness::start().await;
    let app = app_name("envlost");
    // Sealed by a key this platform does not have (the lost one).
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let lost = SecretsKey::parse(&SecretsKey::generate_text().unwrap()).unwrap();
    appenv::set(
        &db,
        Some(&lost),
        SetEnv {
            app: &app,
            name: "API_KEY",
            value: "from-the-lost-key",
            secret: true,
            actor: "test",
        },
    )
    .await
    .unwrap();
    // A failure of the platform's (the key), not of the app's code: the deploy is
    // kept, with a warning naming the secret and not its value.
    let report = h
        .deploy_ok(
            &app,
            &[
                ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
                ("main.py", MAIN),
                ("data.txt", "bundled"),
            ],
        )
        .await;
    let warned: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["rule"] == "runner.load_failed")
        .map(|w| w["message"].as_str().unwrap())
        .collect();
    assert_eq!(warned.len(), 1, "{report}");
    assert!(warned[0].contains("secret API_KEY"), "{report}");
    assert!(
        !report.to_string().contains("from-the-lost-key"),
        "{report}"
    );
    // The platform's failure (its key), not the app's: 503, naming the secret.
    let (s, b) = h.sync(&app, json!({"names": ["API_KEY"]})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    let error = b["error"].as_str().unwrap();
    assert!(
        error.contains("API_KEY")
            && error.contains("version 1.0.0")
            && error.contains("the platform's failure, not the app's"),
        "{b}"
    );
    assert!(!error.contains("from-the-lost-key"), "{b}");

    let (s, b) = set(
        &h,
        &app,
        json!({"name": "API_KEY", "value": SECRET, "secret": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, b) = h.sync(&app, json!({"names": ["API_KEY"]})).await;
        if s == StatusCode::OK {
            assert_eq!(b["env"]["API_KEY"], SECRET, "{b}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {s} {b} after the secret was set again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
