//! `noderouter schedule list|pause|resume` against a running platform: the list shows
//! each schedule with its next five fire times in its zone, pause and resume change what
//! the admin API reports, and refusals name the schedule and the missing permission.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{post, role, Harness};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn cli(h: &Harness, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_noderouter"))
        .args(args)
        .env("NR_URL", &h.url)
        .env("NR_TOKEN", token)
        .env_remove("DATABASE_URL")
        // As many shells have it: a refusal is still its message, not a backtrace.
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn paused(h: &Harness) -> Value {
    let r = h
        .http
        .get(format!("{}/admin/api/schedules?app=nightly", h.url))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()[0]["paused"].clone()
}

// The CLI runs as a blocking child process: the platform keeps serving on the other
// worker thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_pauses_and_resumes_schedules() {
    let h = Harness::start_with(&["--scheduler-poll-s", "0.2"]).await;
    let manifest = json!({
        "app_name": "nightly",
        "version": "1.0.0",
        "actions": [{"name": "report", "display_name": "Report"}],
        "schedules": [{"name": "report", "cron": "30 2 * * *", "timezone": "Europe/Paris",
                       "action": "report", "payload": {"format": "csv"}}]
    })
    .to_string();
    h.deploy_ok(
        "nightly",
        &[
            ("manifest.json", &manifest),
            ("main.py", "def execute(data, conn=None):\n    return {}\n"),
        ],
    )
    .await;
    let admin = h.platform.as_ref().unwrap().admin_token().to_owned();

    let o = cli(&h, &admin, &["schedule", "list", "nightly"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("nightly/report  \"30 2 * * *\" Europe/Paris  overlap="),
        "{out}"
    );
    let next: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("next  "))
        .collect();
    assert_eq!(next.len(), 5, "{out}");
    for t in &next {
        // 02:30 in Paris, whatever the season's offset.
        assert!(
            t.contains("T02:30:00+01:00") || t.contains("T02:30:00+02:00"),
            "{t}"
        );
    }
    let o = cli(&h, &admin, &["schedule", "list", "nightly", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed[0]["next"].as_array().unwrap().len(), 5);

    let o = cli(&h, &admin, &["schedule", "pause", "nightly", "report"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("paused schedule report of nightly"));
    assert_eq!(paused(&h).await, json!(true));
    let o = cli(&h, &admin, &["schedule", "list", "nightly"]);
    assert!(text(&o).contains("PAUSED"), "{}", text(&o));

    let o = cli(&h, &admin, &["schedule", "resume", "nightly", "report"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(paused(&h).await, json!(false));

    // Unknown schedule: a clear refusal, non-zero exit, and no backtrace (before: about
    // 35 frames under RUST_BACKTRACE=1).
    let o = cli(&h, &admin, &["schedule", "pause", "nightly", "ghost"]);
    assert!(!o.status.success());
    let out = text(&o);
    assert!(out.starts_with("Error: ") && out.contains("ghost"), "{out}");
    assert!(
        !out.contains("backtrace") && out.lines().count() <= 3,
        "{out}"
    );

    // A reader may list but not pause.
    role(&h, "viewer", &["apps:read"]).await;
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": "vera", "password": "a-long-password-42", "roles": ["viewer"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": "vera", "password": "a-long-password-42"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let vera = b["token"].as_str().unwrap().to_owned();
    let o = cli(&h, &vera, &["schedule", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&h, &vera, &["schedule", "pause", "nightly", "report"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("apps:deploy"), "{}", text(&o));
    assert_eq!(paused(&h).await, json!(false));

    // The console's page: listed in the sidebar, pausing offered to deployers only.
    let page = |token: String| {
        let url = format!("{}/admin/schedules", h.url);
        async move {
            let r = common::client_with_token(&token)
                .get(url)
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (s, html) = page(admin.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("id=\"nr-link-schedules\""), "{html}");
    assert!(html.contains("/assets/console/schedules.js") && html.contains("data-can-pause=\"1\""));
    let (s, html) = page(vera).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("data-can-pause=\"0\""), "{html}");
    let r = reqwest::get(format!("{}/assets/console/schedules.js", h.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
