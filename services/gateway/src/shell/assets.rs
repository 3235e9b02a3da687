//! Files compiled into the binary: Bootstrap, the vendor libraries apps may load from
//! `/assets/vendor/*`, and the shell's own script and styles. Each is served with its
//! content type and an ETag computed from its bytes. Each file is also served under a
//! versioned name, `/assets/v/<content hash>/<file>`, cached immutably for a year; pages
//! link those ([`versioned`] rewrites the known paths of every page the shell serves).
//! The plain names stay for bundles' standalone pages and are revalidated on every use.

use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::AppState;

pub(crate) const JS: &str = "text/javascript; charset=utf-8";
pub(crate) const CSS: &str = "text/css; charset=utf-8";

const REVALIDATE: &str = "no-cache";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

struct Asset {
    paths: &'static [&'static str],
    bytes: &'static [u8],
    content_type: &'static str,
    cache: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        paths: &[
            "/static/css/bootstrap.min.css",
            "/assets/bootstrap.min.css",
            "/assets/css/bootstrap.min.css",
            "/assets/vendor/bootstrap.min.css",
        ],
        bytes: include_bytes!("../../assets/vendor/bootstrap.min.css"),
        content_type: CSS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &[
            "/static/js/bootstrap.bundle.min.js",
            "/assets/bootstrap.bundle.min.js",
            "/assets/js/bootstrap.bundle.min.js",
            "/assets/vendor/bootstrap.bundle.min.js",
        ],
        bytes: include_bytes!("../../assets/vendor/bootstrap.bundle.min.js"),
        content_type: JS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/vendor/echarts.min.js"],
        bytes: include_bytes!("../../assets/vendor/echarts.min.js"),
        content_type: JS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/vendor/tabulator.min.js"],
        bytes: include_bytes!("../../assets/vendor/tabulator.min.js"),
        content_type: JS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/vendor/tabulator.min.css"],
        bytes: include_bytes!("../../assets/vendor/tabulator.min.css"),
        content_type: CSS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/vendor/xlsx.full.min.js"],
        bytes: include_bytes!("../../assets/vendor/xlsx.full.min.js"),
        content_type: JS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/vendor/papaparse.min.js"],
        bytes: include_bytes!("../../assets/vendor/papaparse.min.js"),
        content_type: JS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/vendor/dayjs.min.js"],
        bytes: include_bytes!("../../assets/vendor/dayjs.min.js"),
        content_type: JS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/vendor/lucide.min.js"],
        bytes: include_bytes!("../../assets/vendor/lucide.min.js"),
        content_type: JS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/nr-shell.js"],
        bytes: include_bytes!("../../assets/shell/nr-shell.js"),
        content_type: JS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/nr-theme.js"],
        bytes: include_bytes!("../../assets/shell/nr-theme.js"),
        content_type: JS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/nr-login.js"],
        bytes: include_bytes!("../../assets/shell/nr-login.js"),
        content_type: JS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/nr-admin.js"],
        bytes: include_bytes!("../../assets/shell/nr-admin.js"),
        content_type: JS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/nr-admin-apps.js"],
        bytes: include_bytes!("../../assets/shell/nr-admin-apps.js"),
        content_type: JS,
        cache: REVALIDATE,
    },
    Asset {
        paths: &["/assets/nr-shell.css"],
        bytes: include_bytes!("../../assets/shell/nr-shell.css"),
        content_type: CSS,
        cache: REVALIDATE,
    },
];

/// The quoted strong ETag of every asset, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.bytes))[..32]))
        .collect()
});

/// The versioned URL of every asset: `/assets/v/<first 12 hex of its ETag>/<file name>`.
static VERSIONED: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .zip(ETAGS.iter())
        .map(|(a, etag)| {
            let file = a.paths[0].rsplit('/').next().unwrap_or("file");
            format!("/assets/v/{}/{file}", &etag.trim_matches('"')[..12])
        })
        .collect()
});

/// The versioned URL of the asset served at `path`, if it is one.
#[cfg(test)]
pub(crate) fn versioned_url(path: &str) -> Option<&'static str> {
    ASSETS
        .iter()
        .position(|a| a.paths.contains(&path))
        .and_then(|i| VERSIONED.get(i))
        .map(String::as_str)
}

/// `html` with every quoted plain asset URL (`"/assets/nr-shell.css"`) replaced by its
/// versioned URL.
pub(crate) fn versioned(html: &str) -> String {
    let mut out = html.to_owned();
    for (asset, url) in ASSETS.iter().zip(VERSIONED.iter()) {
        for path in asset.paths {
            let quoted = format!("\"{path}\"");
            if out.contains(&quoted) {
                out = out.replace(&quoted, &format!("\"{url}\""));
            }
        }
    }
    out
}

/// True when the request's `If-None-Match` names `etag` (or `*`).
pub(crate) fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// A cacheable response: 304 when the client holds `etag`, else the bytes.
pub(crate) fn cached(
    headers: &HeaderMap,
    body: Body,
    content_type: &str,
    etag: &str,
    cache: &'static str,
) -> Response {
    let mut res = if not_modified(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

fn serve(index: usize, headers: &HeaderMap, immutable: bool) -> Response {
    let (Some(asset), Some(etag)) = (ASSETS.get(index), ETAGS.get(index)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    cached(
        headers,
        Body::from(asset.bytes),
        asset.content_type,
        etag,
        if immutable { IMMUTABLE } else { asset.cache },
    )
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    let mut router = Router::new();
    for (index, asset) in ASSETS.iter().enumerate() {
        for path in asset.paths {
            router = router.route(
                path,
                get(move |headers: HeaderMap| async move { serve(index, &headers, false) }),
            );
        }
        if let Some(url) = VERSIONED.get(index) {
            router = router.route(
                url,
                get(move |headers: HeaderMap| async move { serve(index, &headers, true) }),
            );
        }
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_minified_and_not_empty_and_paths_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for a in ASSETS {
            assert!(!a.bytes.is_empty());
            for p in a.paths {
                assert!(seen.insert(*p), "{p} twice");
                assert!(
                    p.starts_with("/static/") || p.starts_with("/assets/"),
                    "{p}"
                );
            }
        }
        let total: usize = ASSETS.iter().map(|a| a.bytes.len()).sum();
        assert!(
            total < 4 * 1024 * 1024,
            "embedded assets grew to {total} bytes"
        );
    }

    #[test]
    fn pages_link_versioned_names() {
        let page = versioned(
            r#"<link href="/assets/nr-shell.css"><script src="/assets/vendor/echarts.min.js"></script> "/assets/unknown.js""#,
        );
        let css = versioned_url("/assets/nr-shell.css").unwrap();
        assert!(
            css.starts_with("/assets/v/") && css.ends_with("/nr-shell.css"),
            "{css}"
        );
        assert!(page.contains(&format!("\"{css}\"")), "{page}");
        assert!(
            page.contains("/echarts.min.js\"")
                && !page.contains("\"/assets/vendor/echarts.min.js\"")
        );
        assert!(page.contains("\"/assets/unknown.js\""));
        let unique: std::collections::HashSet<_> = VERSIONED.iter().collect();
        assert_eq!(unique.len(), ASSETS.len());
    }

    #[test]
    fn if_none_match_is_honoured() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(not_modified(&h, "\"b\""));
        assert!(!not_modified(&h, "\"c\""));
    }
}
