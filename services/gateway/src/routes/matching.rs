//! Which manifest route a request path answers, and its `:params`.

use std::collections::BTreeMap;

use nr_contracts::manifest::RouteDecl;

/// The outcome of matching a path against an app's routes.
pub(crate) enum Match<'r> {
    Found(&'r RouteDecl, BTreeMap<String, String>),
    /// The path exists with other methods (for `Allow`).
    WrongMethod(Vec<&'static str>),
    None,
}

/// The segments of a path as sent (split on its literal `/`), each percent-decoded: an
/// encoded `%2F` stays inside its segment. None when one does not decode to UTF-8.
pub(crate) fn segments(raw: &str) -> Option<Vec<String>> {
    raw.split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|d| d.into_owned())
        })
        .collect()
}

fn params(pattern: &str, path: &[String]) -> Option<BTreeMap<String, String>> {
    let p: Vec<&str> = pattern.split('/').collect();
    if p.len() != path.len() {
        return None;
    }
    let mut out = BTreeMap::new();
    for (ps, seg) in p.iter().zip(path.iter()) {
        if let Some(name) = ps.strip_prefix(':') {
            if seg.is_empty() {
                return None;
            }
            out.insert(name.to_owned(), seg.clone());
        } else if ps != seg {
            return None;
        }
    }
    Some(out)
}

/// True when `a` beats `b` for a path both match: at the first place where one has a
/// literal segment and the other a `:param`, the literal wins. Declaration order plays
/// no part (deploy refuses two routes of the same shape, so there is always a first
/// such place).
fn more_specific(a: &str, b: &str) -> bool {
    for (x, y) in a.split('/').zip(b.split('/')) {
        match (x.starts_with(':'), y.starts_with(':')) {
            (false, true) => return true,
            (true, false) => return false,
            _ => {}
        }
    }
    false
}

/// Matches `method path` (the path's [`segments`], relative to `/apps/<app>/api`)
/// against `routes`. A literal segment wins over a `:param` in the same place, the
/// leftmost such place deciding ([`more_specific`]).
pub(crate) fn find<'r>(routes: &'r [RouteDecl], method: &str, path: &[String]) -> Match<'r> {
    let mut best: Option<(&RouteDecl, BTreeMap<String, String>)> = None;
    let mut allow: Vec<&'static str> = Vec::new();
    for r in routes {
        let Some(p) = params(&r.path, path) else {
            continue;
        };
        if !r.method.answers(method) {
            allow.push(r.method.as_str());
            if r.method.as_str() == "GET" {
                allow.push("HEAD");
            }
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|(b, _)| more_specific(&r.path, &b.path))
        {
            best = Some((r, p));
        }
    }
    match best {
        Some((r, p)) => Match::Found(r, p),
        None if !allow.is_empty() => {
            allow.sort_unstable();
            allow.dedup();
            Match::WrongMethod(allow)
        }
        None => Match::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Vec<RouteDecl> {
        serde_json::from_value(serde_json::json!([
            {"method": "GET", "path": "/items/:id", "action": "get"},
            {"method": "GET", "path": "/items/new", "action": "form"},
            {"method": "POST", "path": "/items", "action": "create"},
            {"method": "GET", "path": "/", "action": "home"}
        ]))
        .unwrap_or_default()
    }

    fn find<'r>(routes: &'r [RouteDecl], method: &str, raw: &str) -> Match<'r> {
        super::find(routes, method, &segments(raw).unwrap_or_default())
    }

    #[test]
    fn a_param_is_decoded_after_matching_so_an_encoded_slash_stays_in_it() {
        let r = routes();
        match find(&r, "GET", "/items/a%2Fb%20c") {
            Match::Found(route, p) => {
                assert_eq!(route.action, "get");
                assert_eq!(p.get("id").map(String::as_str), Some("a/b c"));
            }
            _ => unreachable!("an encoded slash split the param"),
        }
        // An encoded literal is the literal; a segment that is not UTF-8 matches nothing.
        assert!(
            matches!(find(&r, "GET", "/items/%6Eew"), Match::Found(x, _) if x.action == "form")
        );
        assert!(segments("/items/%FF").is_none());
    }

    #[test]
    fn literal_segments_win_params_are_extracted_and_methods_are_listed() {
        let r = routes();
        match find(&r, "GET", "/items/42") {
            Match::Found(route, p) => {
                assert_eq!(route.action, "get");
                assert_eq!(p.get("id").map(String::as_str), Some("42"));
            }
            _ => unreachable!("no match"),
        }
        assert!(matches!(find(&r, "HEAD", "/items/new"), Match::Found(x, _) if x.action == "form"));
        assert!(matches!(find(&r, "GET", "/"), Match::Found(x, _) if x.action == "home"));
        assert!(matches!(find(&r, "DELETE", "/items"), Match::WrongMethod(m) if m == vec!["POST"]));
        assert!(matches!(find(&r, "GET", "/items/1/x"), Match::None));
    }

    #[test]
    fn the_leftmost_literal_wins_whatever_the_order_of_declaration() {
        let one = serde_json::json!({"method": "GET", "path": "/a/:id/x", "action": "one"});
        let two = serde_json::json!({"method": "GET", "path": "/a/new/:y", "action": "two"});
        for list in [[one.clone(), two.clone()], [two, one]] {
            let r: Vec<RouteDecl> =
                serde_json::from_value(serde_json::json!(list)).unwrap_or_default();
            assert_eq!(r.len(), 2);
            assert!(
                matches!(find(&r, "GET", "/a/new/x"), Match::Found(x, p) if x.action == "two" && p.get("y").map(String::as_str) == Some("x"))
            );
            assert!(matches!(find(&r, "GET", "/a/7/x"), Match::Found(x, _) if x.action == "one"));
        }
    }
}
