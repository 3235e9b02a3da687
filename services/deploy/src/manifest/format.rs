//! The formats of manifest values (names, tokens, versions, icons, links) and the
//! plugin contract's `api_version` rule: pure predicates, used by the checks and by
//! other modules of deploy.

/// `^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$`: the guide's app name (64 characters at most).
pub fn is_valid_app_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// An action name: same alphabet as an app name, because it becomes a NATS subject
/// token (`action.triggered.<app>.<action>`).
pub fn is_action_slug(name: &str) -> bool {
    is_valid_app_name(name)
}

/// A strict semver (`1.2.3`, optionally `-pre` and `+build`): no `v` prefix, no leading
/// zeros, no ranges, no missing parts, no surrounding spaces.
pub fn parse_semver(text: &str) -> Result<semver::Version, String> {
    if text.trim() != text {
        return Err("it has surrounding spaces".into());
    }
    semver::Version::parse(text).map_err(|e| e.to_string())
}

/// A permission token `<resource>:<action>`: each part starts with a letter or digit and
/// holds letters, digits, `_`, `-` and `.`; 64 characters at most per part.
pub fn is_permission_token(token: &str) -> bool {
    let part = |p: &str| {
        let b = p.as_bytes();
        !b.is_empty()
            && b.len() <= 64
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
    };
    match token.split_once(':') {
        Some((resource, action)) => part(resource) && part(action),
        None => false,
    }
}

/// A Lucide icon name: lowercase kebab case (`calendar`, `refresh-cw`).
pub fn is_lucide_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// A nav node id (`sales:root`, `sales.reports`): letters, digits, `_ - . :`.
pub fn is_nav_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':'))
}

/// A nav `href`: a path on this platform (`/apps/sales/`), never an external URL.
pub fn is_local_href(href: &str) -> bool {
    href.starts_with('/')
        && !href.starts_with("//")
        && !href.contains('\\')
        && !href.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// How a bundle's `api_version` relates to the platform's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiCompat {
    /// Same major and minor (patch ignored).
    Ok,
    /// Loaded; the message says why the author may want to look.
    Warn(String),
    /// Not loaded; the message says why.
    Refuse(String),
}

/// Provider/consumer semantics of the plugin contract: same major and minor is ok, an
/// older minor a warning, a newer minor or another major refused, malformed refused,
/// absent treated as `1.0.0` with a warning (bundles written to the guide have none).
pub fn check_api_version(declared: Option<&str>, platform: &semver::Version) -> ApiCompat {
    let Some(text) = declared else {
        return ApiCompat::Warn(format!(
            "api_version is absent; treated as 1.0.0 (add \"api_version\": \"{platform}\" to manifest.json)"
        ));
    };
    let v = match parse_semver(text) {
        Ok(v) => v,
        Err(e) => {
            return ApiCompat::Refuse(format!(
                "api_version {text:?} is not a strict semver such as \"{platform}\": {e}"
            ))
        }
    };
    if v.major != platform.major {
        ApiCompat::Refuse(format!(
            "api_version {v} is another major version than this platform's {platform}: the contract changed incompatibly; update the bundle to {}.x",
            platform.major
        ))
    } else if v.minor > platform.minor {
        ApiCompat::Refuse(format!(
            "api_version {v} needs a newer platform than this one ({platform}); upgrade the platform or write the bundle against {platform}"
        ))
    } else if v.minor < platform.minor {
        ApiCompat::Warn(format!(
            "api_version {v} is older than this platform's {platform}: it loads, and newer features exist"
        ))
    } else {
        ApiCompat::Ok
    }
}

/// `/actions/1/name` → `actions[1].name`, as an author reads a field.
pub fn display_path(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if token.bytes().all(|b| b.is_ascii_digit()) && !token.is_empty() {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    out
}
