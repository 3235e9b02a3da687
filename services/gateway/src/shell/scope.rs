//! Confines an app's CSS to the app's wrapper: every selector of the app's stylesheets
//! and `<style>` elements is rewritten at serve time to start at
//! `.nr-app[data-app="<app>"]`, so `button { text-transform: uppercase }` styles the
//! app's buttons and never the shell's (or another app's). Parsed with `cssparser`
//! (the tokenizer Servo and Firefox use; see `docs/adr/0011-app-css-confined-with-cssparser.md`).
//!
//! - `html`, `body`, `:root` and `[data-bs-theme…]` at the start of a selector stand for
//!   the page: they stay in front of the wrapper (`[data-bs-theme=dark] .x` →
//!   `[data-bs-theme=dark] .nr-app[…] .x`; `body { … }` → `body .nr-app[…] { … }`), so
//!   theme-aware app styles keep working.
//! - Rules inside `@media`, `@supports`, `@layer`, `@container`, `@scope` and
//!   `@starting-style` are rewritten the same way; `@keyframes`, `@font-face`,
//!   `@property`, `@page` and `@counter-style` are kept as written.
//! - `@import` is dropped (an imported sheet would escape the rewrite): link each
//!   stylesheet from `index.html` instead.
//! - Declarations are copied as written.

use cssparser::{ParseError, Parser, ParserInput, Token};

/// The wrapper selector of `app` (a valid app name: letters, digits, `_`, `-`).
pub(crate) fn prefix(app: &str) -> String {
    format!(".nr-app[data-app=\"{app}\"]")
}

/// `css` with every style rule confined under `prefix`.
pub(crate) fn scope_css(css: &str, prefix: &str) -> String {
    let mut input = ParserInput::new(css);
    let mut p = Parser::new(&mut input);
    let mut out = String::with_capacity(css.len() + css.len() / 4);
    rules(&mut p, prefix, &mut out);
    out
}

type NoError<'i> = ParseError<'i, ()>;

/// Reads past the contents of the `(…)`/`[…]`/function block `token` opened, so that
/// positions taken next lie after it.
fn skip_block(p: &mut Parser<'_, '_>, token: &Token<'_>) {
    if matches!(
        token,
        Token::Function(_) | Token::ParenthesisBlock | Token::SquareBracketBlock
    ) {
        let _ = p.parse_nested_block(|i| -> Result<(), NoError<'_>> {
            while i.next_including_whitespace_and_comments().is_ok() {}
            Ok(())
        });
    }
}

/// Copies a list of rules, rewriting style rules' selectors.
fn rules(p: &mut Parser<'_, '_>, prefix: &str, out: &mut String) {
    loop {
        let start = p.position();
        let token = match p.next_including_whitespace_and_comments() {
            Ok(t) => t.clone(),
            Err(_) => break,
        };
        match token {
            Token::WhiteSpace(_) | Token::Comment(_) => out.push_str(p.slice_from(start)),
            Token::CDO | Token::CDC | Token::Semicolon => {}
            Token::AtKeyword(name) => at_rule(p, &name.to_ascii_lowercase(), start, prefix, out),
            Token::CurlyBracketBlock => {
                // A block without a selector: nothing it could apply to.
                let _ = p.parse_nested_block(|i| -> Result<(), NoError<'_>> {
                    i.expect_exhausted().ok();
                    Ok(())
                });
            }
            other => {
                skip_block(p, &other);
                qualified_rule(p, start, prefix, out)
            }
        }
    }
}

/// A style rule whose first prelude token was read at `start`.
fn qualified_rule(
    p: &mut Parser<'_, '_>,
    start: cssparser::SourcePosition,
    prefix: &str,
    out: &mut String,
) {
    loop {
        let before = p.position();
        match p.next_including_whitespace_and_comments() {
            Ok(Token::CurlyBracketBlock) => {
                let selectors = p.slice(start..before).to_owned();
                out.push_str(&scope_selectors(&selectors, prefix));
                out.push_str(" {");
                let body_start = p.position();
                let _ = p.parse_nested_block(|i| -> Result<(), NoError<'_>> {
                    while i.next_including_whitespace_and_comments().is_ok() {}
                    Ok(())
                });
                // The declarations as written, without the closing brace the slice ends with.
                let body = p.slice_from(body_start);
                out.push_str(body.strip_suffix('}').unwrap_or(body));
                out.push('}');
                return;
            }
            // The end of input drops a rule without a block.
            Err(_) => return,
            Ok(other) => {
                let other = other.clone();
                skip_block(p, &other);
            }
        }
    }
}

/// Names of at-rules whose block holds style rules.
fn holds_rules(name: &str) -> bool {
    matches!(
        name,
        "media" | "supports" | "layer" | "container" | "scope" | "starting-style" | "document"
    ) || name.ends_with("-document")
}

fn at_rule(
    p: &mut Parser<'_, '_>,
    name: &str,
    start: cssparser::SourcePosition,
    prefix: &str,
    out: &mut String,
) {
    loop {
        let before = p.position();
        match p.next_including_whitespace_and_comments() {
            Ok(Token::CurlyBracketBlock) => {
                let prelude = p.slice(start..before).to_owned();
                if holds_rules(name) {
                    out.push_str(&prelude);
                    out.push('{');
                    let _ = p.parse_nested_block(|i| -> Result<(), NoError<'_>> {
                        rules(i, prefix, out);
                        Ok(())
                    });
                    out.push('}');
                } else {
                    let _ = p.parse_nested_block(|i| -> Result<(), NoError<'_>> {
                        while i.next_including_whitespace_and_comments().is_ok() {}
                        Ok(())
                    });
                    out.push_str(p.slice_from(start));
                }
                return;
            }
            Ok(Token::Semicolon) | Err(_) => {
                if name == "import" {
                    out.push_str("/* @import removed: link each stylesheet from index.html */");
                } else {
                    out.push_str(p.slice_from(start));
                }
                return;
            }
            Ok(other) => {
                let other = other.clone();
                skip_block(p, &other);
            }
        }
    }
}

/// True for a compound selector that names the page itself (`html`, `body`, `:root`,
/// `[data-bs-theme=dark]`, `html.x`).
fn is_page(compound: &str) -> bool {
    let c = compound.to_ascii_lowercase();
    let word = |w: &str| {
        c.strip_prefix(w).is_some_and(|rest| {
            !rest
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        })
    };
    word("html") || word("body") || word(":root") || c.starts_with("[data-bs-theme")
}

/// A selector list with each selector confined under `prefix`.
fn scope_selectors(list: &str, prefix: &str) -> String {
    let mut input = ParserInput::new(list);
    let mut p = Parser::new(&mut input);
    let mut selectors: Vec<Vec<String>> = Vec::new();
    let mut items: Vec<String> = Vec::new();
    let mut compound = String::new();
    fn end(compound: &mut String, items: &mut Vec<String>) {
        if !compound.is_empty() {
            items.push(std::mem::take(compound));
        }
    }
    loop {
        let start = p.position();
        let token = match p.next_including_whitespace_and_comments() {
            Ok(t) => t.clone(),
            Err(_) => break,
        };
        match token {
            Token::Comma => {
                end(&mut compound, &mut items);
                selectors.push(std::mem::take(&mut items));
            }
            Token::WhiteSpace(_) | Token::Comment(_) => end(&mut compound, &mut items),
            Token::Delim(c @ ('>' | '+' | '~')) => {
                end(&mut compound, &mut items);
                items.push(c.to_string());
            }
            other => {
                skip_block(&mut p, &other);
                compound.push_str(p.slice_from(start))
            }
        }
    }
    end(&mut compound, &mut items);
    selectors.push(items);
    selectors
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|items| {
            let page = items.iter().take_while(|i| is_page(i)).count();
            let (lead, rest) = items.split_at(page);
            let mut parts: Vec<&str> = lead.iter().map(String::as_str).collect();
            parts.push(prefix);
            parts.extend(rest.iter().map(String::as_str));
            parts.join(" ")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = ".nr-app[data-app=\"a\"]";

    fn s(css: &str) -> String {
        scope_css(css, P)
    }

    #[test]
    fn bare_selectors_are_confined_to_the_wrapper() {
        assert_eq!(
            s("button { text-transform: uppercase }"),
            ".nr-app[data-app=\"a\"] button { text-transform: uppercase }"
        );
        assert_eq!(
            s("a>b,.c:not(.d, .e) ~ p{x:1}"),
            ".nr-app[data-app=\"a\"] a > b, .nr-app[data-app=\"a\"] .c:not(.d, .e) ~ p {x:1}"
        );
        assert_eq!(
            s("*{box-sizing:border-box}"),
            ".nr-app[data-app=\"a\"] * {box-sizing:border-box}"
        );
    }

    #[test]
    fn the_page_and_theme_stay_in_front() {
        assert_eq!(
            s("body{margin:0}"),
            "body .nr-app[data-app=\"a\"] {margin:0}"
        );
        assert_eq!(
            s(":root { --c: red }"),
            ":root .nr-app[data-app=\"a\"] { --c: red }"
        );
        assert_eq!(
            s("[data-bs-theme=dark] .card{color:#fff}"),
            "[data-bs-theme=dark] .nr-app[data-app=\"a\"] .card {color:#fff}"
        );
        assert_eq!(s("bodyx{a:b}"), ".nr-app[data-app=\"a\"] bodyx {a:b}");
    }

    #[test]
    fn at_rules_nest_or_stay_and_imports_go() {
        let out = s("@media (max-width: 600px) { .x { a: b } } @keyframes k { from { opacity: 0 } } @import url(x.css); @font-face { font-family: f }");
        assert!(out.contains("@media (max-width: 600px) {"), "{out}");
        assert!(out.contains(".nr-app[data-app=\"a\"] .x { a: b }"), "{out}");
        assert!(
            out.contains("@keyframes k { from { opacity: 0 } }"),
            "{out}"
        );
        assert!(out.contains("@font-face { font-family: f }"), "{out}");
        assert!(!out.contains("x.css"), "{out}");
    }

    #[test]
    fn strings_comments_and_broken_input_do_not_escape() {
        assert_eq!(
            s(".a::before{content:\"}button{color:red}\"}"),
            ".nr-app[data-app=\"a\"] .a::before {content:\"}button{color:red}\"}"
        );
        // An unclosed block ends at the end of input; a stray block is dropped.
        assert_eq!(s("{color:red} .b{x:1"), " .nr-app[data-app=\"a\"] .b {x:1}");
        assert_eq!(s("/* c */ p{}"), "/* c */ .nr-app[data-app=\"a\"] p {}");
        // A `;` belongs to the selector, which the browser then refuses whole.
        assert_eq!(s("p;button{x:1}"), ".nr-app[data-app=\"a\"] p;button {x:1}");
    }
}
