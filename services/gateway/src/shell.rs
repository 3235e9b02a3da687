//! The browser side: the login page, the admin shell (`/`, `/admin`), app pages at
//! `/apps/<app>/` (the app's `index.html` body injected into the layout inside
//! `<div class="nr-app">`), the app's other public files, and the embedded Bootstrap
//! and vendor libraries. See `docs/admin-shell.md`.
//!
//! Pages answer errors as small HTML pages (not the API's JSON shape): a browser shows
//! them to a person.

mod assets;
mod bundle;
mod compose;
mod csp;
mod mime;
mod nav;
mod scope;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use nr_auth::Principal;

use crate::error::ApiError;
use crate::AppState;
use bundle::Bundles;
use compose::esc;
use mime::content_type;

// Shared with the console's pages (`crate::console`).
pub(crate) use assets::{cached as cached_asset, JS};
pub(crate) use compose::esc as esc_attr;

const LAYOUT: &str = include_str!("../assets/shell/layout.html");
const LOGIN: &str = include_str!("../assets/shell/login.html");
const ERROR: &str = include_str!("../assets/shell/error.html");
const HOME: &str = include_str!("../assets/shell/home.html");
const ADMIN_APPS: &str = include_str!("../assets/shell/admin-apps.html");
const ADMIN_NOTIFICATIONS: &str = include_str!("../assets/shell/admin-notifications.html");

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/login", get(login_page))
        .route("/", get(home))
        .route("/admin/apps", get(admin_apps))
        .route("/admin/notifications", get(admin_notifications))
        .route("/apps/{app}", get(app_slash))
        .route("/apps/{app}/", get(app_page))
        .route("/apps/{app}/{*path}", get(app_file))
        .merge(assets::routes())
        .layer(Extension(Arc::new(Bundles::new())))
}

// ── Responses ──────────────────────────────────────────────────────────────────

/// An HTML page: never cached (it carries the user's session view), not framed by
/// other sites, scripts and styles from this origin only.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    html_with_nonce(status, body, None)
}

/// [`html`], also allowing the inline scripts and styles that carry `nonce`.
fn html_with_nonce(status: StatusCode, body: String, nonce: Option<&str>) -> Response {
    let mut res = (status, assets::versioned(&body)).into_response();
    csp::set(&mut res, &csp::page_policy(nonce));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    html(
        status,
        compose::render(
            ERROR,
            &[("title", &esc(&title)), ("message", &esc(message))],
        ),
    )
}

/// The page for a path no route serves: a 404 a person can act on.
pub(crate) fn not_found_page() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "There is no page at this address. It may have moved, or the link is mistyped.",
    )
}

/// A plain-text error for a file (a script or stylesheet the page asked for).
fn file_error(status: StatusCode, message: &str) -> Response {
    let mut res = (status, format!("{message}\n")).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn to_login(uri: &Uri) -> Response {
    let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/admin");
    Redirect::to(&format!("/login?next={}", compose::url_encode(next))).into_response()
}

/// The session of a page request, or the response to give instead: a redirect to
/// the login page when there is none (or it is no longer valid).
pub(crate) async fn session(state: &AppState, parts: &Parts) -> Result<Principal, Response> {
    match crate::auth::authenticate(state, parts).await {
        Ok(p) => Ok(p),
        Err(ApiError::Internal(e)) => {
            tracing::error!(error = %format!("{e:#}"), "page authentication failed");
            Err(error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The session could not be checked. Try again shortly.",
            ))
        }
        Err(_) => Err(to_login(&parts.uri)),
    }
}

/// The app names the guide allows (the same rule deploy enforces).
fn valid_app_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// A shell page: the layout around `content`, with the sidebar's platform links
/// ([`nav::ADMIN_NAV`]) that `principal` may see, the one at `path` marked current.
pub(crate) fn layout(
    principal: &Principal,
    path: &str,
    title: &str,
    app: &str,
    head: &str,
    content: &str,
) -> String {
    compose::render(
        LAYOUT,
        &[
            ("title", &esc(title)),
            ("app", &esc(app)),
            ("nav", &nav::render(Some(principal), path)),
            ("head", head),
            ("content", content),
        ],
    )
}

// ── Pages ──────────────────────────────────────────────────────────────────────

/// Where the login page goes after signing in: `next` when it is a path on this site,
/// else `/admin`. Browsers drop tabs and newlines from URLs and read `\\` as `/`, so
/// `/%09/evil.example` would become `//evil.example`: any control character,
/// whitespace or backslash refuses the value.
fn safe_next(next: Option<&str>) -> &str {
    const HOME: &str = "/admin";
    let Some(next) = next else { return HOME };
    let b = next.as_bytes();
    let path_only = b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
        && next.len() <= 2048
        && !next
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        && !climbs(next);
    if path_only {
        next
    } else {
        HOME
    }
}

/// True when the path part of `next` has a dot segment (`.`, `..`, or either spelled
/// with `%2e`) or an empty one: a browser resolving it could end on `//host`, which
/// leaves the site (`/.//evil.example` resolves to `//evil.example`).
fn climbs(next: &str) -> bool {
    let path = next.split(['?', '#']).next().unwrap_or_default();
    path.contains("//")
        || path.split('/').any(|segment| {
            let dots = segment.to_ascii_lowercase().replace("%2e", ".");
            !dots.is_empty() && dots.bytes().all(|c| c == b'.')
        })
}

async fn login_page(
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let next = safe_next(query.get("next").map(String::as_str));
    html(
        StatusCode::OK,
        compose::render(LOGIN, &[("next", &esc(next))]),
    )
}

async fn home(State(state): State<Arc<AppState>>, parts: Parts) -> Response {
    let principal = match session(&state, &parts).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    html(
        StatusCode::OK,
        layout(&principal, parts.uri.path(), "Apps", "", "", HOME),
    )
}

/// `/admin/apps`: deployed apps, their versions, deploy / rollback / delete. Readers
/// (`apps:read`) see the lists; the buttons need `apps:deploy` (the page's script asks
/// `/api/auth/me`, and the API checks again).
async fn admin_apps(State(state): State<Arc<AppState>>, parts: Parts) -> Response {
    let principal = match session(&state, &parts).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    if !principal.has(nr_auth::perms::APPS_DEPLOY) && !principal.has(nr_auth::perms::APPS_READ) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Managing apps requires the permission 'apps:deploy' or 'apps:read'.",
        );
    }
    html(
        StatusCode::OK,
        layout(
            &principal,
            parts.uri.path(),
            "Manage apps",
            "",
            "",
            ADMIN_APPS,
        ),
    )
}

/// `/admin/notifications`: the caller's subscriptions, one toggle per (app, action).
async fn admin_notifications(State(state): State<Arc<AppState>>, parts: Parts) -> Response {
    let principal = match session(&state, &parts).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    html(
        StatusCode::OK,
        layout(
            &principal,
            parts.uri.path(),
            "Notifications",
            "",
            "",
            ADMIN_NOTIFICATIONS,
        ),
    )
}

async fn app_slash(Path(app): Path<String>) -> Response {
    if !valid_app_name(&app) {
        return error_page(StatusCode::NOT_FOUND, "There is no such app.");
    }
    Redirect::permanent(&format!("/apps/{app}/")).into_response()
}

/// The checks every app request passes: a valid name, a session, a deployed app, the
/// app's permission. `Err` holds the page to answer with.
async fn open_app(
    state: &AppState,
    parts: &Parts,
    app: &str,
) -> Result<(Principal, Arc<crate::apps::AppEntry>), Response> {
    if !valid_app_name(app) {
        return Err(error_page(StatusCode::NOT_FOUND, "There is no such app."));
    }
    let principal = session(state, parts).await?;
    let entry = state.apps.get(app).ok_or_else(|| {
        error_page(
            StatusCode::NOT_FOUND,
            &format!("The app '{app}' is not deployed."),
        )
    })?;
    let required = entry.manifest.required_permission.as_deref().unwrap_or("");
    if !principal.has(required) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            &format!("You may not use the app '{app}': it requires the permission '{required}'."),
        ));
    }
    Ok((principal, entry))
}

async fn app_page(
    State(state): State<Arc<AppState>>,
    Extension(bundles): Extension<Arc<Bundles>>,
    Path(app): Path<String>,
    parts: Parts,
) -> Response {
    let (principal, entry) = match open_app(&state, &parts, &app).await {
        Ok(e) => e,
        Err(res) => return res,
    };
    let bundle = match bundles.get(&state, &app, entry.rev).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(app = %app, rev = entry.rev, error = %e, "cannot load the app's bundle");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The app's files could not be loaded. Try again shortly.",
            );
        }
    };
    let title = entry
        .manifest
        .display_name
        .clone()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| app.clone());
    let (head, content) = match bundle.get("index.html") {
        Some(page) => {
            let page = String::from_utf8_lossy(page);
            let (head, body) = compose::split_document(&page);
            (
                compose::head_resources(head, &app),
                compose::body_content(body, &app),
            )
        }
        None => (
            String::new(),
            format!(
                "<div class=\"container py-4\"><h1 class=\"h4\">{}</h1><p class=\"text-body-secondary\">This app has no page of its own (no index.html in its bundle).</p><a class=\"btn btn-primary\" href=\"/admin/run/{}\">Run it with a JSON body</a></div>",
                esc(&title),
                esc(&app)
            ),
        ),
    };
    let content = format!(
        "<div class=\"nr-app\" data-app=\"{}\" data-version=\"{}\">\n{}\n</div>",
        esc(&app),
        esc(&entry.version),
        content
    );
    // The author's inline scripts and styles run under this response's nonce.
    let nonce = csp::nonce();
    let head = csp::add_nonce(&head, &nonce);
    let content = csp::add_nonce(&content, &nonce);
    html_with_nonce(
        StatusCode::OK,
        layout(&principal, parts.uri.path(), &title, &app, &head, &content),
        Some(&nonce),
    )
}

async fn app_file(
    State(state): State<Arc<AppState>>,
    Extension(bundles): Extension<Arc<Bundles>>,
    Path((app, path)): Path<(String, String)>,
    parts: Parts,
) -> Response {
    if !bundle::is_safe_path(&path) {
        return file_error(StatusCode::BAD_REQUEST, "invalid file path");
    }
    if bundle::is_private(&path) {
        return file_error(StatusCode::NOT_FOUND, "no such file");
    }
    if !valid_app_name(&app) {
        return file_error(StatusCode::NOT_FOUND, "no such app");
    }
    let entry = match crate::auth::authenticate(&state, &parts).await {
        Err(ApiError::Internal(e)) => {
            tracing::error!(error = %format!("{e:#}"), "file authentication failed");
            return file_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
        Err(_) => return file_error(StatusCode::UNAUTHORIZED, "log in first"),
        Ok(principal) => {
            let Some(entry) = state.apps.get(&app) else {
                return file_error(StatusCode::NOT_FOUND, "no such app");
            };
            if !principal.has(entry.manifest.required_permission.as_deref().unwrap_or("")) {
                return file_error(StatusCode::FORBIDDEN, "you may not use this app");
            }
            entry
        }
    };
    let bundle = match bundles.get(&state, &app, entry.rev).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(app = %app, rev = entry.rev, error = %e, "cannot load the app's bundle");
            return file_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the app's files could not be loaded",
            );
        }
    };
    let Some(bytes) = bundle.get(&path) else {
        return file_error(StatusCode::NOT_FOUND, "no such file");
    };
    let etag = format!(
        "\"{}-{}\"",
        &bundle.sha256.get(..16).unwrap_or(&bundle.sha256),
        fnv(&path)
    );
    let kind = content_type(&path);
    // The app's stylesheets reach its own wrapper only (`scope.rs`).
    let body = if kind == assets::CSS {
        Body::from(scope::scope_css(
            &String::from_utf8_lossy(bytes),
            &scope::prefix(&app),
        ))
    } else {
        Body::from(bytes.clone())
    };
    let mut res = assets::cached(&parts.headers, body, kind, &etag, "private, no-cache");
    // The page itself, opened raw (the guide's standalone check), is held to the
    // pages' policy; any other HTML or SVG must not act with the viewer's session.
    if path == "index.html" {
        csp::set(&mut res, &csp::page_policy(None));
    } else if !csp::is_subresource(kind) {
        csp::set(&mut res, csp::FILE_POLICY);
    }
    res.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("Cookie, Authorization"),
    );
    res
}

/// A short stable hash of a path, so two files of one bundle have different ETags.
fn fnv(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_follow_the_guide_pattern() {
        assert!(valid_app_name("app_sales-1"));
        assert!(!valid_app_name("_x"));
        assert!(!valid_app_name("a/b"));
        assert!(!valid_app_name(""));
    }

    #[test]
    fn next_takes_same_site_paths_only() {
        assert_eq!(safe_next(Some("/apps/x/?a=1")), "/apps/x/?a=1");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example/phish",
            "/\n/evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "/ /evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/admin", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/admin");
    }
}
