use super::*;

fn rules(f: &[Finding]) -> Vec<(&str, u32)> {
    f.iter()
        .map(|x| (x.rule.as_str(), x.line.unwrap_or(0)))
        .collect()
}

const GUIDE_JS: &str = r#"(function () {
  "use strict";
  // Scope all DOM queries to .nr-app (admin layout wrapper).
  var root = document.querySelector(".nr-app") || document.body;
  function el(id) { return document.getElementById(id); }
  async function syncCall(body) {
    const res = await fetch("/api/sync/app", { method: "POST", body: JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status} ${text.replace(/}/g, "")}`);
    return text;
  }
  root.addEventListener("click", function (e) {
    if (e.target.dataset.action === "x") { AdminWS.subscribe("a"); }
  });
  window.addEventListener("load", () => AdminWS.on("x", function () {}));
})();
"#;

#[test]
fn the_guide_starter_js_passes() {
    assert!(
        check_js("index.js", GUIDE_JS).is_empty(),
        "{:?}",
        check_js("index.js", GUIDE_JS)
    );
    let arrow = "(() => {\n  'use strict';\n  let a = 1;\n})();\n";
    assert!(check_js("index.js", arrow).is_empty());
    let call_inside = "// header\n(function () {\n  \"use strict\";\n}());\n";
    assert!(check_js("index.js", call_inside).is_empty());
}

#[test]
fn js_without_an_iife_or_use_strict_warns() {
    let f = check_js("index.js", "\n\nvar x = 1;\nfunction go() {}\n");
    assert_eq!(rules(&f), [("frontend.iife", 3)]);
    assert!(f[0].message.contains("not wrapped in an IIFE"));
    let f = check_js("index.js", "(function () {\n  var x = 1;\n})();\n");
    assert_eq!(rules(&f), [("frontend.iife", 1)]);
    assert!(f[0].message.contains("use strict"));
    let f = check_js(
        "index.js",
        "(function () {\n \"use strict\";\n})();\nwindow.leak = 1;\n",
    );
    assert_eq!(rules(&f), [("frontend.iife", 1)]);
}

#[test]
fn admin_ws_at_module_scope_warns_with_its_line() {
    let js = "(function () {\n  \"use strict\";\n  AdminWS.subscribe('x');\n  if (true) {\n    AdminWS.on('y');\n  }\n  document.addEventListener('click', function () { AdminWS.ok(); });\n  var s = \"AdminWS.inString\"; // AdminWS in a comment\n})();\n";
    let f = check_js("index.js", js);
    assert_eq!(
        rules(&f),
        [
            ("frontend.adminws_module_scope", 3),
            ("frontend.adminws_module_scope", 5)
        ]
    );
    let bare = "AdminWS.connect();\n";
    let f = check_js("x.js", bare);
    assert!(rules(&f).contains(&("frontend.adminws_module_scope", 1)));
}

#[test]
fn inline_handlers_in_html_built_by_js_warn() {
    let js = "(function () {\n  \"use strict\";\n  el.innerHTML = '<button class=\"x\" onclick=\"go()\">Go</button>';\n  el.onclick = function () {};\n})();\n";
    assert_eq!(
        rules(&check_js("index.js", js)),
        [("frontend.inline_handler", 3)]
    );
}

#[test]
fn the_lexer_blanks_strings_comments_and_regexes() {
    let code: String =
        blank_js("a = '{'; // }\nb = /[}/]{/g; c = `x${ {a: 1}.a }y`; d = 4 / 2 / 1;")
            .into_iter()
            .collect();
    assert!(
        !code.contains('}') || code.matches('{').count() == code.matches('}').count(),
        "{code}"
    );
    assert!(code.contains("4 / 2 / 1"), "{code}");
}

const GUIDE_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
  <link rel="stylesheet" href="/static/css/bootstrap.min.css" />
  <link rel="stylesheet" href="style.css" />
</head>
<body>
  <div class="container py-4">
    <button class="btn" data-action="go">Go</button>
  </div>
  <!-- Stripped by admin shell; kept for standalone testing: -->
  <script src="/static/js/bootstrap.bundle.min.js"></script>
  <script src="/assets/vendor/echarts.min.js"></script>
  <script src="index.js"></script>
</body>
</html>
"#;

#[test]
fn a_bootstrap_bundle_inside_body_warns_and_the_head_stylesheet_does_not() {
    assert_eq!(
        rules(&check_html("index.html", GUIDE_HTML)),
        [("frontend.bootstrap_in_body", 12)]
    );
    let head_only = GUIDE_HTML.replace(
        "  <script src=\"/static/js/bootstrap.bundle.min.js\"></script>\n",
        "",
    );
    assert!(check_html("index.html", &head_only).is_empty());
    let css_in_body =
        "<div>\n<link href=\"/static/css/bootstrap.min.css\" rel=\"stylesheet\">\n</div>";
    assert_eq!(
        rules(&check_html("index.html", css_in_body)),
        [("frontend.bootstrap_in_body", 2)]
    );
}

#[test]
fn external_scripts_and_styles_warn() {
    let html = "<head>\n<link rel=\"stylesheet\" href=\"https://cdn.example.com/x.css\">\n</head><body>\n<script src=\"//cdn.example.com/echarts.js\"></script>\n<script src=\"/assets/vendor/echarts.min.js\"></script>\n</body>";
    assert_eq!(
        rules(&check_html("index.html", html)),
        [("frontend.external_url", 2), ("frontend.external_url", 4)]
    );
    let css = "@import url(\"https://fonts.example.com/a.css\");\n.ab-x { background: url(https://cdn.example.com/i.png); }\n.ab-y { background: url(/assets/vendor/i.png); }\n";
    let f = check_css("style.css", css).findings;
    assert_eq!(
        rules(&f),
        [("frontend.external_url", 1), ("frontend.external_url", 2)]
    );
}

#[test]
fn onclick_style_attributes_in_html_warn() {
    let html = "<div>\n<button onclick=\"save()\">Save</button>\n<a href=\"#\"\n   onmouseover='x()'>x</a>\n<div data-onclick=\"fine\"></div>\n<script>\n var s = ' onclick=\"y\"';\n</script>\n</div>";
    assert_eq!(
        rules(&check_html("index.html", html)),
        [
            ("frontend.inline_handler", 2),
            ("frontend.inline_handler", 4)
        ]
    );
}

#[test]
fn hex_colours_warn_and_bootstrap_variables_do_not() {
    let css = ".ab-card {\n  background: var(--bs-secondary-bg);\n  color: #fff;\n  border: 1px solid #12ab34cc;\n}\n#abc.ab-x { color: var(--bs-body-color); }\n";
    assert_eq!(
        rules(&check_css("style.css", css).findings),
        [("frontend.hex_color", 3), ("frontend.hex_color", 4)]
    );
    let html = "<div style=\"color: #ff0000\">x</div>\n<a href=\"#abc\">y</a>";
    assert_eq!(
        rules(&check_html("index.html", html)),
        [("frontend.hex_color", 1)]
    );
}

#[test]
fn global_selectors_warn() {
    let css = "body { margin: 0; }\n:root { --x: 1; }\n* { box-sizing: border-box; }\n.ab-x p, h1 { color: var(--bs-body-color); }\n@media (max-width: 600px) {\n  table { width: 100%; }\n  .ab-y { width: 1px; }\n}\n@keyframes ab-spin { from { opacity: 0; } to { opacity: 1; } }\n/* p { } in a comment */\n";
    let f = check_css("style.css", css).findings;
    assert_eq!(
        rules(&f),
        [
            ("frontend.global_selector", 1),
            ("frontend.global_selector", 2),
            ("frontend.global_selector", 3),
            ("frontend.global_selector", 4),
            ("frontend.global_selector", 6),
        ]
    );
    assert!(f[3].message.contains("\"h1\""), "{}", f[3].message);
}

#[test]
fn global_selector_table() {
    for g in [
        "body",
        ":root",
        "*",
        "p",
        "div > span",
        "[data-x]",
        "a:hover",
        "html .x",
    ] {
        assert!(is_global_selector(g), "{g}");
    }
    for s in [
        ".ab-x",
        "#ab-id",
        ".ab-x p",
        "div.ab-x",
        ".ab-x:not(p)",
        "#x > *",
    ] {
        assert!(!is_global_selector(s), "{s}");
    }
}

#[test]
fn classes_without_the_common_prefix_warn() {
    let css = ".notes-list { }\n.notes-item { }\n.card { }\n.notes-item:hover, .btn-xs { }\n.notes-x[data-y=\".not-a-class\"] { }\n";
    let mut texts = BTreeMap::new();
    texts.insert("style.css".to_owned(), css.as_bytes().to_vec());
    let f = check("sales", &texts);
    assert_eq!(
        rules(&f),
        [("frontend.css_prefix", 3), ("frontend.css_prefix", 4)]
    );
    assert!(
        f[0].message.contains(".card") && f[0].message.contains("notes-"),
        "{}",
        f[0].message
    );
    assert!(f[1].message.contains(".btn-xs"));
}

#[test]
fn the_scaffolded_and_example_frontends_pass_clean() {
    let mut texts = BTreeMap::new();
    texts.insert("index.js".to_owned(), GUIDE_JS.as_bytes().to_vec());
    texts.insert(
        "style.css".to_owned(),
        b"/* prefixed */\n.sr-card {\n  background: var(--bs-secondary-bg);\n  border: 1px solid var(--bs-border-color);\n  padding: 1rem 0.5rem;\n}\n.sr-card .sr-title { font-size: 1.25rem; }\n".to_vec(),
    );
    texts.insert(
        "index.html".to_owned(),
        GUIDE_HTML
            .replace(
                "  <script src=\"/static/js/bootstrap.bundle.min.js\"></script>\n",
                "",
            )
            .into_bytes(),
    );
    assert!(
        check("sales", &texts).is_empty(),
        "{:?}",
        check("sales", &texts)
    );
}

#[test]
fn a_style_css_the_page_never_links_warns_and_a_linked_one_does_not() {
    let css = b".sr-card { padding: 1rem; }\n".to_vec();
    let mut texts = BTreeMap::new();
    texts.insert("style.css".to_owned(), css);
    texts.insert(
        "index.html".to_owned(),
        b"<div class=\"sr-card\">a fragment, no head</div>\n".to_vec(),
    );
    let f = check("sales", &texts);
    assert_eq!(rules(&f), vec![("frontend.style_unlinked", 1)], "{f:?}");
    assert_eq!(f[0].file.as_deref(), Some("index.html"));
    assert!(f[0]
        .message
        .contains("<link rel=\"stylesheet\" href=\"style.css\""));
    for linked in [
        "<link rel=\"stylesheet\" href=\"style.css\">\n<div class=\"sr-card\"></div>",
        "<head>\n  <LINK REL='stylesheet' HREF='./style.css' />\n</head>",
    ] {
        texts.insert("index.html".to_owned(), linked.as_bytes().to_vec());
        assert!(
            check("sales", &texts).is_empty(),
            "{linked}: {:?}",
            check("sales", &texts)
        );
    }
    // No style.css, nothing to link.
    texts.remove("style.css");
    texts.insert("index.html".to_owned(), b"<div>plain</div>".to_vec());
    assert!(check("sales", &texts).is_empty());
}

#[test]
fn globals_and_page_wide_queries_warn_where_the_guide_starter_does_not() {
    assert!(
        js::check_scope("app", "index.js", GUIDE_JS).is_empty(),
        "{:?}",
        js::check_scope("app", "index.js", GUIDE_JS)
    );
    let js = r#"(function () {
  "use strict";
  window.feGlobal = 1;
  window.sales_app = window.sales_app || {};
  if (window.feGlobal === 1) {}
  var all = document.querySelectorAll("button");
  var one = document.querySelector('#out');
  var root = document.querySelector('.nr-app');
  var s = "window.x = 1; document.querySelectorAll('a')";
})();
"#;
    let f = js::check_scope("sales-app", "index.js", js);
    assert_eq!(
        rules(&f),
        [
            ("frontend.global", 3),
            ("frontend.unscoped_query", 6),
            ("frontend.unscoped_query", 7)
        ],
        "{f:?}"
    );
    assert!(
        f[0].message.contains("window.sales_app"),
        "{}",
        f[0].message
    );
}

#[test]
fn named_and_functional_colours_warn_like_hex_and_the_prefix_hint_names_the_app() {
    let css = ".sales-a { color: red; }\n.sales-b {\n  background: rgba(var(--bs-primary-rgb), .5);\n  border-color: hsl(0 0% 0%);\n}\n";
    let r = check_css("style.css", css);
    assert_eq!(
        rules(&r.findings),
        [("frontend.named_color", 1), ("frontend.named_color", 4)],
        "{:?}",
        r.findings
    );
    let f = check_prefixes("my_app", &[("card".into(), "style.css".into(), 1)]);
    assert!(
        f[0].message.contains("such as my-app-card"),
        "{}",
        f[0].message
    );
}
