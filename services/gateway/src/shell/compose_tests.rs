use super::*;

const GUIDE_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="UTF-8" />
  <title>app_x</title>
  <!-- Bootstrap — for standalone testing only; ignored by admin layout -->
  <link rel="stylesheet" href="/static/css/bootstrap.min.css" />
  <!-- <link rel="stylesheet" href="/assets/vendor/tabulator.min.css" /> -->
  <link rel="stylesheet" href="/assets/vendor/tabulator.min.css" />
  <link rel="stylesheet" href="style.css" />
  <script src="/assets/vendor/echarts.min.js"></script>
</head>
<body class="x">
  <div class="container py-4"><h1>Hi &amp; bye</h1></div>
  <!-- Stripped by admin shell; kept for standalone testing: -->
  <script src="/static/js/bootstrap.bundle.min.js"></script>
  <!-- <script src="/assets/vendor/dayjs.min.js"></script> -->
  <script>var inline = "<b>";</script>
  <script src="./index.js" defer></script>
</body>
</html>"#;

#[test]
fn head_keeps_vendor_and_app_styles_drops_bootstrap_and_comments() {
    let (head, _) = split_document(GUIDE_PAGE);
    let kept = head_resources(head, "app_x");
    assert!(
        kept.contains(r#"<link rel="stylesheet" href="/assets/vendor/tabulator.min.css">"#),
        "{kept}"
    );
    assert!(kept.contains(r#"href="/apps/app_x/style.css""#), "{kept}");
    assert!(
        kept.contains(r#"<script src="/assets/vendor/echarts.min.js"></script>"#),
        "{kept}"
    );
    assert!(!kept.contains("bootstrap"), "{kept}");
    assert!(!kept.contains("title"), "{kept}");
    assert_eq!(kept.matches("tabulator").count(), 1, "{kept}");
}

#[test]
fn body_loses_bootstrap_script_and_resolves_relative_sources() {
    let (_, body) = split_document(GUIDE_PAGE);
    let out = body_content(body, "app_x");
    assert!(
        !out.contains("bootstrap.bundle.min.js\"></script>\n"),
        "{out}"
    );
    assert!(!out.contains("<script src=\"/static/js/bootstrap"), "{out}");
    assert!(
        out.contains(r#"<script src="/apps/app_x/index.js" defer></script>"#),
        "{out}"
    );
    assert!(
        out.contains(r#"<script>var inline = "<b>";</script>"#),
        "{out}"
    );
    assert!(out.contains("<h1>Hi &amp; bye</h1>"), "{out}");
    assert!(out.contains("<!-- <script src=\"/assets/vendor/dayjs.min.js\"></script> -->"));
    assert!(!out.contains("<body"), "{out}");
    assert!(!out.contains("</html>"), "{out}");
}

#[test]
fn every_bootstrap_script_spelling_is_stripped() {
    for src in [
        "bootstrap.bundle.min.js",
        "/static/js/bootstrap.bundle.min.js",
        "https://cdn.example/bootstrap@5/dist/js/BOOTSTRAP.BUNDLE.MIN.JS?v=1",
        "./bootstrap.min.js",
    ] {
        let body = format!("<p>x</p><SCRIPT src='{src}' ></SCRIPT><p>y</p>");
        assert_eq!(body_content(&body, "a"), "<p>x</p><p>y</p>", "{src}");
    }
    assert!(
        body_content("<script src=\"bootstrap-table.js\"></script>", "a")
            .contains("bootstrap-table")
    );
}

#[test]
fn a_page_without_head_or_body_tags_is_all_body() {
    let (head, body) = split_document("<div class=\"a\">x</div>");
    assert_eq!(head, "");
    assert_eq!(body, "<div class=\"a\">x</div>");
}

#[test]
fn urls_resolve_against_the_app_folder_only_when_relative() {
    assert_eq!(resolve("index.js", "a"), "/apps/a/index.js");
    assert_eq!(resolve("./js/x.js", "a"), "/apps/a/js/x.js");
    assert_eq!(resolve("/assets/vendor/x.js", "a"), "/assets/vendor/x.js");
    assert_eq!(resolve("https://x/y.js", "a"), "https://x/y.js");
    assert_eq!(resolve("//x/y.js", "a"), "//x/y.js");
    assert_eq!(resolve("data:text/css,", "a"), "data:text/css,");
}

#[test]
fn attribute_values_are_escaped_when_rebuilt() {
    let out = body_content(
        "<script src='x.js?a=1&b=\"2\"' data-x=\"&quot;\"></script>",
        "a",
    );
    assert_eq!(
        out,
        r#"<script src="/apps/a/x.js?a=1&amp;b=&quot;2&quot;" data-x="&quot;"></script>"#
    );
}

#[test]
fn render_fills_once_and_escape_covers_the_five() {
    let t = "<p>{{a}}</p><i>{{ b }}</i>{{missing}}{{";
    assert_eq!(
        render(t, &[("a", "{{b}}"), ("b", "2")]),
        "<p>{{b}}</p><i>2</i>{{"
    );
    assert_eq!(
        esc("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
    assert_eq!(url_encode("/apps/a b/?x=1&y"), "/apps/a%20b/%3Fx%3D1%26y");
}

#[test]
fn a_fragment_links_its_stylesheet_from_the_body_resolved_against_the_app() {
    let page = "<link rel=\"stylesheet\" href=\"style.css\">\n<link rel=\"stylesheet\" href=\"/static/css/bootstrap.min.css\">\n<div class=\"x-card\">hi</div>";
    let (head, body) = split_document(page);
    assert_eq!(head, "");
    let out = body_content(body, "app_x");
    assert!(
        out.contains(r#"<link rel="stylesheet" href="/apps/app_x/style.css">"#),
        "{out}"
    );
    assert!(!out.contains("bootstrap"), "{out}");
    assert!(out.contains(r#"<div class="x-card">hi</div>"#), "{out}");
}
