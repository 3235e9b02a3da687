//! Submits written many to a statement, against a real Postgres: each job of a batch is
//! queued or reported taken on its own, in the batch's order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use nr_testkit::TestDb;
use serde_json::json;
use uuid::Uuid;

async fn db() -> (TestDb, sqlx::PgPool) {
    let t = TestDb::create().await.unwrap();
    let pool = nr_infra::db::connect(&t.url, 2).await.unwrap();
    nr_infra::db::migrate(&pool).await.unwrap();
    (t, pool)
}

fn job(app: &str, by: &str, key: Option<&str>, n: i64) -> nr_jobs::QueuedJob {
    nr_jobs::QueuedJob {
        id: Uuid::now_v7(),
        app: app.into(),
        payload: json!({"n": n}),
        max_attempts: 3,
        app_rev: 1,
        submitted_by: by.into(),
        idempotency_key: key.map(str::to_owned),
        node: "gateway-test".into(),
        request_id: Some(format!("req-{n}")),
    }
}

#[tokio::test]
async fn a_batch_queues_every_job_but_those_whose_key_is_taken_and_the_first_of_a_key_wins() {
    let (_t, db) = db().await;
    // A key taken before the batch.
    let earlier = job("shop", "alice", Some("order-0"), 0);
    nr_jobs::submit(&db, &earlier.as_new()).await.unwrap();

    let batch = vec![
        job("shop", "alice", Some("order-1"), 1),
        job("shop", "alice", Some("order-1"), 2), // same submitter and key: taken
        job("shop", "bob", Some("order-1"), 3),   // another submitter's key
        job("mail", "alice", None, 4),
        job("shop", "alice", Some("order-0"), 5), // taken before the batch
        job("mail", "alice", None, 6),
    ];
    let queued = nr_jobs::submit_many(&db, &batch).await.unwrap();
    assert_eq!(queued, vec![true, false, true, true, false, true]);

    for (j, q) in batch.iter().zip(&queued) {
        let row = nr_jobs::get(&db, j.id, nr_jobs::Viewer::All).await.unwrap();
        match (q, row) {
            (true, Some(row)) => {
                assert_eq!(row.status, "pending");
                assert_eq!(row.app_name, j.app);
                assert_eq!(row.attempt, 0);
                assert_eq!(row.max_attempts, 3);
                assert_eq!(row.submitted_by.as_deref(), Some(j.submitted_by.as_str()));
            }
            (false, None) => {}
            (q, row) => panic!("job {} queued={q} but its row is {row:?}", j.id),
        }
    }
    // The first of the two submits with one key owns it.
    let owner = nr_jobs::by_idempotency_key(
        &db,
        "alice",
        "order-1",
        std::time::Duration::from_secs(3600),
        &batch[0].payload,
    )
    .await
    .unwrap()
    .map(|j| (j.id, j.same_payload));
    assert_eq!(owner, Some((batch[0].id, true)));
}

#[tokio::test]
async fn an_empty_batch_writes_nothing() {
    let (_t, db) = db().await;
    assert!(nr_jobs::submit_many(&db, &[]).await.unwrap().is_empty());
}
