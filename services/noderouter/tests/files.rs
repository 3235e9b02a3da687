//! App files against the real platform: uploads go to the object store and reach the
//! app as handles it reads through its runner (never another app's), files returned by
//! `noderouter.download(...)` from a sync call or an async job become links, and files
//! are removed with their job (job retention) or after their age.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Digest as _;

/// Fast scheduler passes (they prune files) and job retention passes.
const FAST: &[&str] = &["--scheduler-poll-s", "0.2", "--job-prune-interval-s", "0.2"];

const SHOP: &str = r#"
import hashlib
from noderouter import read_upload

def execute(data, conn=None):
    if data.get("action") == "up":
        files = data["body"]["files"]
        return {"handles": files,
                "sha": [hashlib.sha256(read_upload(f)).hexdigest() for f in files]}
    # A sync call handing a handle back: the same app may read its own upload.
    return {"size": len(read_upload(data["handle"]))}
"#;

const SNOOP: &str = r#"
from noderouter import read_upload

def execute(data, conn=None):
    try:
        return {"read": len(read_upload(data["handle"]))}
    except ValueError as e:
        return {"refused": str(e)}
"#;

const REPORT: &str = r#"
from noderouter import download, job_id

def execute(data, conn=None):
    link = download("a,b\n1,2\n", "report-%s.csv" % ("job" if job_id() else "sync"), "text/csv")
    return {"report": link, "job": job_id()}
"#;

fn shop_manifest() -> String {
    json!({
        "app_name": "shop",
        "version": "1.0.0",
        "actions": [{"name": "up", "display_name": "Upload"}],
        "routes": [{"method": "POST", "path": "/upload", "action": "up",
                    "upload": {"max_bytes": 100000}}]
    })
    .to_string()
}

fn plain_manifest(app: &str) -> String {
    json!({"app_name": app, "version": "1.0.0"}).to_string()
}

async fn exists_in_store(h: &Harness, key: &str) -> bool {
    h.dir.path().join("objects").join(key).exists()
}

async fn row_count(db: &sqlx::PgPool, token: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM noderouter_core.app_files WHERE token = $1")
        .bind(token)
        .fetch_one(db)
        .await
        .unwrap()
}

/// Waits (bounded) until the file's row and object are gone.
async fn wait_removed(h: &Harness, db: &sqlx::PgPool, token: &str, key: &str) {
    for _ in 0..300 {
        if row_count(db, token).await == 0 && !exists_in_store(h, key).await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("file {key} was not removed");
}

#[tokio::test]
async fn uploads_live_in_the_object_store_and_only_their_app_reads_them() {
    let h = Harness::start().await;
    h.deploy_ok(
        "shop",
        &[("manifest.json", &shop_manifest()), ("main.py", SHOP)],
    )
    .await;
    h.deploy_ok(
        "snoop",
        &[
            ("manifest.json", &plain_manifest("snoop")),
            ("main.py", SNOOP),
        ],
    )
    .await;
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
    let form = reqwest::multipart::Form::new().part(
        "sheet",
        reqwest::multipart::Part::bytes(bytes.clone())
            .file_name("q3.xlsx")
            .mime_str("application/vnd.ms-excel")
            .unwrap(),
    );
    let r = h
        .http
        .post(format!("{}/apps/shop/api/upload", h.url))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["sha"], json!([hex::encode(sha2::Sha256::digest(&bytes))]));
    let handle = b["handles"][0].clone();
    let id = handle["id"].as_str().unwrap().to_owned();
    // A handle, not the bytes: name, size, content type and the id the runner reads.
    assert_eq!(
        handle,
        json!({"id": id, "field": "sheet", "name": "q3.xlsx", "size": 50000,
               "content_type": "application/vnd.ms-excel"})
    );
    let key = format!("uploads/shop/{id}");
    assert_eq!(
        std::fs::read(h.dir.path().join("objects").join(&key)).unwrap(),
        bytes
    );

    // The same app reads it again later; another app is refused it.
    let (s, b) = h.sync("shop", json!({"handle": handle})).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"size": 50000})));
    let (s, b) = h.sync("snoop", json!({"handle": handle})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["refused"].as_str().unwrap(),
        format!("no upload \"{id}\" of app 'snoop'")
    );
    // A download link does not serve an upload.
    let r = reqwest::get(format!("{}/files/{id}", h.url)).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn returned_files_are_links_from_sync_calls_and_jobs_removed_with_the_job_or_age() {
    let h = Harness::start_with(FAST).await;
    h.deploy_ok(
        "rep",
        &[
            ("manifest.json", &plain_manifest("rep")),
            ("main.py", REPORT),
        ],
    )
    .await;
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();

    // A sync call.
    let (s, b) = h.sync("rep", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let sync_url = b["report"]["download_url"].as_str().unwrap().to_owned();
    assert_eq!(b["report"]["name"], "report-sync.csv");
    assert_eq!(b["report"]["size"], 8);
    let r = reqwest::get(format!("{}{sync_url}", h.url)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"report-sync.csv\""
    );
    // Sandboxed, and no other site may frame it.
    assert_eq!(
        r.headers()["content-security-policy"],
        "sandbox; default-src 'none'; frame-ancestors 'self'"
    );
    assert_eq!(r.text().await.unwrap(), "a,b\n1,2\n");

    // An async job: the link is in the job's result.
    let (s, b) = h.submit("rep", json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let job = b["job_id"].as_str().unwrap().to_owned();
    let done = h.wait_job(&job, |j| j["status"] == "completed").await;
    let job_url = done["result"]["report"]["download_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(done["result"]["job"], json!(job));
    let r = reqwest::get(format!("{}{job_url}", h.url)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"report-job.csv\""
    );
    let job_token = job_url.trim_start_matches("/files/").to_owned();
    let (job_key, job_of): (String, Option<uuid::Uuid>) =
        sqlx::query_as("SELECT object_key, job_id FROM noderouter_core.app_files WHERE token = $1")
            .bind(&job_token)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(job_of.map(|u| u.to_string()), Some(job.clone()));
    assert!(exists_in_store(&h, &job_key).await);

    // Job retention prunes the job (finished over 7 days ago): its file goes with it.
    let mut tx = db.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE noderouter_core.job_queue SET updated_at = NOW() - INTERVAL '8 days' WHERE id = $1::uuid",
    )
    .bind(&job)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    wait_removed(&h, &db, &job_token, &job_key).await;
    let r = reqwest::get(format!("{}{job_url}", h.url)).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The sync call's file is still there until it is older than NR_FILES_MAX_AGE_S.
    let sync_token = sync_url.trim_start_matches("/files/").to_owned();
    let sync_key: String =
        sqlx::query_scalar("SELECT object_key FROM noderouter_core.app_files WHERE token = $1")
            .bind(&sync_token)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(exists_in_store(&h, &sync_key).await);
    sqlx::query(
        "UPDATE noderouter_core.app_files SET created_at = NOW() - INTERVAL '2 days', \
         expires_at = NOW() + INTERVAL '1 hour' WHERE token = $1",
    )
    .bind(&sync_token)
    .execute(&db)
    .await
    .unwrap();
    wait_removed(&h, &db, &sync_token, &sync_key).await;
}

#[tokio::test]
async fn a_file_over_the_limit_is_refused_to_the_app() {
    let h = Harness::start_with(&["--file-max-bytes", "4"]).await;
    h.deploy_ok(
        "rep",
        &[
            ("manifest.json", &plain_manifest("rep")),
            ("main.py", REPORT),
        ],
    )
    .await;
    let (s, b) = h.sync("rep", json!({})).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{b}");
    let e = b["error"].as_str().unwrap();
    assert!(
        e.contains("ValueError") && e.contains("over the limit of 4 bytes"),
        "{e}"
    );
}

#[tokio::test]
async fn a_refused_upload_stores_nothing_and_an_upload_carries_at_most_a_hundred_files() {
    let h = Harness::start().await;
    h.deploy_ok(
        "shop",
        &[("manifest.json", &shop_manifest()), ("main.py", SHOP)],
    )
    .await;
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let stored = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM noderouter_core.app_files WHERE app_name = 'shop'",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    let send = |form: reqwest::multipart::Form| {
        h.http
            .post(format!("{}/apps/shop/api/upload", h.url))
            .multipart(form)
            .send()
    };
    let with_files = |n: usize| {
        (0..n).fold(reqwest::multipart::Form::new(), |f, i| {
            f.part(
                "f",
                reqwest::multipart::Part::bytes(vec![b'x']).file_name(format!("{i}.txt")),
            )
        })
    };
    // Three files, then a text field that is not UTF-8: 400, and the three files are
    // not kept (before: they stayed a day for an app that never ran).
    let form = with_files(3).part("note", reqwest::multipart::Part::bytes(vec![0xff, 0xfe]));
    let r = send(form).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("not UTF-8"));
    assert_eq!(stored().await, 0);
    // 101 one-byte files (before: 101 rows and objects per request, thousands in a
    // body of the route's size).
    let r = send(with_files(101)).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("at most 100 files"));
    assert_eq!(stored().await, 0);
    // A hundred are taken.
    let r = send(with_files(100)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(stored().await, 100);
}

/// The links of an app an operator deleted serve no more (410, naming the app), and
/// serve again, while valid, once it is restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_apps_links_serve_no_more_until_it_is_restored() {
    let h = Harness::start().await;
    let app = nr_testkit::app_name("gonelinks");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &plain_manifest(&app)),
            ("main.py", REPORT),
        ],
    )
    .await;
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let link = format!("{}{}", h.url, b["report"]["download_url"].as_str().unwrap());
    assert_eq!(reqwest::get(&link).await.unwrap().status(), StatusCode::OK);

    let r = h
        .http
        .delete(format!("{}/admin/api/apps/{app}", h.url))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let body = loop {
        let r = reqwest::get(&link).await.unwrap();
        if r.status() == StatusCode::GONE {
            break r.json::<Value>().await.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deleted app's link still answers {}",
            r.status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(&format!("'{app}', is not deployed")),
        "{body}"
    );

    let (s, b) = common::post(
        &h.http,
        format!("{}/admin/api/apps/{app}/rollback", h.url),
        json!({"version": "1.0.0"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reqwest::get(&link).await.unwrap().status() != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "the restored app's link does not serve"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
