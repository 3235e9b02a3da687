//! The console's page routes. A page is the layout around a container carrying what
//! its script needs (`data-*`), then `common.js` and the page's own script, deferred so
//! they run after the layout's `AdminWS` and Bootstrap. The permission a page needs is
//! checked here for a clear page; the API it calls checks again.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use axum::Router;
use nr_auth::perms;

use crate::shell::{error_page, html, layout, session};
use crate::AppState;

const HOME: &str = include_str!("../../assets/shell/home.html");

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/", get(dashboard))
        .route("/admin/jobs", get(jobs))
        .route(
            "/admin/run",
            page_with("Run an app", "run", &[], &[("app", "")]),
        )
        .route("/admin/run/{app}", get(run_app))
        .route(
            "/admin/users",
            page("Users", "users", &[perms::RBAC_MANAGE]),
        )
        .route(
            "/admin/roles",
            page("Roles", "roles", &[perms::RBAC_MANAGE]),
        )
        .route(
            "/admin/tokens",
            page("API tokens", "tokens", &[perms::RBAC_MANAGE]),
        )
        .route("/admin/profile", page("Profile", "profile", &[]))
        .route("/admin/audit", page("Audit", "audit", &[super::AUDIT_READ]))
        .route("/admin/apps/{app}/env", get(app_env))
        .route("/admin/inbox", page("Notification history", "inbox", &[]))
        .route("/admin/schedules", get(schedules))
}

/// A page that is only its title, its script and the permission it needs (any of).
fn page(
    title: &'static str,
    script: &'static str,
    needs: &'static [&'static str],
) -> MethodRouter<Arc<AppState>> {
    page_with(title, script, needs, &[])
}

/// [`page`] with fixed `data-*` values for its script.
fn page_with(
    title: &'static str,
    script: &'static str,
    needs: &'static [&'static str],
    data: &'static [(&'static str, &'static str)],
) -> MethodRouter<Arc<AppState>> {
    get(
        move |State(s): State<Arc<AppState>>, parts: Parts| async move {
            let page = Page {
                title,
                script,
                needs,
                data,
            };
            render(&s, &parts, page).await
        },
    )
}

/// What one page is: its title, its script, the permission it needs (any of), and
/// `data-*` values for its script.
struct Page<'a> {
    title: &'a str,
    script: &'a str,
    needs: &'a [&'a str],
    data: &'a [(&'a str, &'a str)],
}

fn attr(s: &str) -> String {
    crate::shell::esc_attr(s)
}

async fn render(state: &AppState, parts: &Parts, page: Page<'_>) -> Response {
    let principal = match session(state, parts).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    if !page.needs.is_empty() && !page.needs.iter().any(|p| principal.has(p)) {
        let list = page
            .needs
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(" or ");
        return error_page(
            StatusCode::FORBIDDEN,
            &format!("The page '{}' requires the permission {list}.", page.title),
        );
    }
    let mut data = String::new();
    for (k, v) in page.data {
        data.push_str(&format!(" data-{}=\"{}\"", k, attr(v)));
    }
    let content = format!(
        "<div class=\"container-fluid py-3 nr-console\" id=\"nr-console\" data-page=\"{script}\"{data}>\n\
         <h1 class=\"h4 mb-3\">{title}</h1>\n<div id=\"nr-console-body\"><p class=\"text-body-secondary\">Loading…</p></div>\n</div>\n\
         <script src=\"/assets/console/common.js\" defer></script>\n\
         <script src=\"/assets/console/{script}.js\" defer></script>",
        script = attr(page.script),
        title = attr(page.title),
    );
    html(
        StatusCode::OK,
        layout(&principal, parts.uri.path(), page.title, "", "", &content),
    )
}

async fn dashboard(State(s): State<Arc<AppState>>, parts: Parts) -> Response {
    let head = "<script src=\"/assets/vendor/echarts.min.js\" defer></script>";
    let principal = match session(&s, &parts).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let metrics = if principal.has(perms::METRICS_READ) {
        "1"
    } else {
        "0"
    };
    // The apps' cards first (the shell's home, filled by its script), then the charts.
    let content = format!(
        "{HOME}\n<div class=\"container-fluid pb-4 nr-console\" id=\"nr-console\" data-page=\"dashboard\" data-metrics=\"{metrics}\">\n\
         <h2 class=\"h5 mb-3\">Platform</h2>\n<div id=\"nr-console-body\"><p class=\"text-body-secondary\">Loading…</p></div>\n</div>\n\
         <script src=\"/assets/console/common.js\" defer></script>\n\
         <script src=\"/assets/console/dashboard.js\" defer></script>"
    );
    html(
        StatusCode::OK,
        layout(
            &principal,
            parts.uri.path(),
            "Dashboard",
            "",
            head,
            &content,
        ),
    )
}

async fn jobs(State(s): State<Arc<AppState>>, parts: Parts) -> Response {
    let all = match session(&s, &parts).await {
        Ok(p) => p.has(perms::JOBS_READ_ALL),
        Err(res) => return res,
    };
    let all = if all { "1" } else { "0" };
    let page = Page {
        title: "Jobs",
        script: "jobs",
        needs: &[],
        data: &[("read-all", all)],
    };
    render(&s, &parts, page).await
}

async fn run_app(
    State(s): State<Arc<AppState>>,
    Path(app): Path<String>,
    parts: Parts,
) -> Response {
    if !crate::jobs::is_app_name(&app) {
        return error_page(StatusCode::NOT_FOUND, "There is no such app.");
    }
    let page = Page {
        title: "Run an app",
        script: "run",
        needs: &[],
        data: &[("app", &app)],
    };
    render(&s, &parts, page).await
}

async fn app_env(
    State(s): State<Arc<AppState>>,
    Path(app): Path<String>,
    parts: Parts,
) -> Response {
    if !crate::jobs::is_app_name(&app) {
        return error_page(StatusCode::NOT_FOUND, "There is no such app.");
    }
    let title = format!("Variables and secrets of {app}");
    let page = Page {
        title: &title,
        script: "env",
        needs: &[perms::APPS_ENV],
        data: &[("app", &app)],
    };
    render(&s, &parts, page).await
}

async fn schedules(State(s): State<Arc<AppState>>, parts: Parts) -> Response {
    let can_pause = match session(&s, &parts).await {
        Ok(p) => p.has(perms::APPS_DEPLOY),
        Err(res) => return res,
    };
    let page = Page {
        title: "Schedules",
        script: "schedules",
        needs: &[perms::APPS_READ, perms::APPS_DEPLOY],
        data: &[("can-pause", if can_pause { "1" } else { "0" })],
    };
    render(&s, &parts, page).await
}
