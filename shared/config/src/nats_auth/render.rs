//! The permission table rendered as the `accounts { ... }` block of a nats-server
//! config: the services and the admin in [`PLATFORM_ACCOUNT`], the reader in
//! [`READER_ACCOUNT`].

use std::fmt::Write as _;

use super::{permissions, Passwords, Role};

/// A nats-server config string (quoted; the characters of subjects and our passwords
/// never need more than escaping `"` and `\`).
pub(super) fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// Where a role's password comes from in the rendered config.
pub enum Secret<'a> {
    /// Written into the config (the file must be kept private).
    Literal(&'a str),
    /// An environment variable nats-server expands at start (`$NAME`).
    Env(&'a str),
}

/// The account of the services and the admin: it holds every stream.
pub const PLATFORM_ACCOUNT: &str = "NR";
/// The reader's account. A request's reply subject is checked against no permission, and
/// the JetStream API publishes its answer (a pull consumer its messages) on whatever
/// reply subject the request named: in the platform's account, a reader allowed any
/// JetStream request could have the server write onto `app.updated.<app>` or
/// `job.progress.…` and into their streams. Here the reader reaches the platform only
/// through what [`lent_to_reader`] imports, and the server answers into the reader's
/// own account, where no stream listens.
pub const READER_ACCOUNT: &str = "NR_READER";

/// What the platform's account lends the reader's: the two event subjects (live
/// messages, a stream export) and the JetStream requests of the reader's permissions
/// (service exports; `true` where one request has many answers: a pull's messages, a
/// batch of direct reads).
pub fn lent_to_reader() -> (Vec<String>, Vec<(String, bool)>) {
    let p = permissions(Role::Reader);
    let streams = p
        .subscribe
        .into_iter()
        .filter(|s| !s.starts_with("_INBOX"))
        .collect();
    let services = p
        .publish
        .into_iter()
        .map(|s| {
            let many =
                s.starts_with("$JS.API.CONSUMER.MSG.NEXT.") || s.starts_with("$JS.API.DIRECT.GET.");
            (s, many)
        })
        .collect();
    (streams, services)
}

/// The `accounts { ... }` block of a nats-server config for `users`: the reader (if
/// given) in [`READER_ACCOUNT`], everyone else in [`PLATFORM_ACCOUNT`].
pub fn render_authorization<'a>(users: impl IntoIterator<Item = (Role, Secret<'a>)>) -> String {
    let (readers, platform): (Vec<_>, Vec<_>) =
        users.into_iter().partition(|(r, _)| *r == Role::Reader);
    let (streams, services) = lent_to_reader();
    let mut out = String::from("accounts {\n");
    let _ = writeln!(out, "  {PLATFORM_ACCOUNT}: {{\n    jetstream: enabled");
    render_users(&mut out, platform);
    out.push_str("    exports = [\n");
    for s in &streams {
        let _ = writeln!(out, "      {{ stream: {} }}", quote(s));
    }
    for (s, many) in &services {
        let kind = if *many { ", response_type: stream" } else { "" };
        let _ = writeln!(out, "      {{ service: {}{kind} }}", quote(s));
    }
    out.push_str("    ]\n  }\n");
    if !readers.is_empty() {
        let _ = writeln!(out, "  {READER_ACCOUNT}: {{");
        render_users(&mut out, readers);
        out.push_str("    imports = [\n");
        for s in &streams {
            let _ = writeln!(
                out,
                "      {{ stream: {{ account: {PLATFORM_ACCOUNT}, subject: {} }} }}",
                quote(s)
            );
        }
        for (s, _) in &services {
            let _ = writeln!(
                out,
                "      {{ service: {{ account: {PLATFORM_ACCOUNT}, subject: {} }} }}",
                quote(s)
            );
        }
        out.push_str("    ]\n  }\n");
    }
    out.push_str("}\n");
    out
}

/// The `users = [...]` of an account.
fn render_users(out: &mut String, users: Vec<(Role, Secret<'_>)>) {
    out.push_str("    users = [\n");
    for (role, secret) in users {
        let p = permissions(role);
        let password = match secret {
            Secret::Literal(pw) => quote(pw),
            Secret::Env(var) => format!("${var}"),
        };
        let _ = writeln!(out, "      {{");
        let _ = writeln!(out, "        user: {}", quote(role.user()));
        let _ = writeln!(out, "        password: {password}");
        let _ = writeln!(out, "        permissions: {{");
        let _ = writeln!(out, "          publish: {{ allow: {} }}", list(&p.publish));
        let _ = writeln!(
            out,
            "          subscribe: {{ allow: {} }}",
            list(&p.subscribe)
        );
        if let Some(expires) = p.allow_responses {
            let _ = writeln!(
                out,
                "          allow_responses: {{ max: 1, expires: {} }}",
                quote(expires)
            );
        }
        let _ = writeln!(out, "        }}");
        let _ = writeln!(out, "      }}");
    }
    out.push_str("    ]\n");
}

/// The block `compose/nats/auth.conf` holds: every role, each password read by
/// nats-server from `NATS_<ROLE>_PASSWORD` in its environment.
pub fn render_for_compose() -> String {
    let vars: Vec<(Role, String)> = Role::ALL
        .into_iter()
        .map(|r| {
            let var = format!("NATS_{}_PASSWORD", r.password_role().user().to_uppercase());
            (r, var)
        })
        .collect();
    format!(
        "# Generated from shared/config/src/nats_auth.rs by its tests (NR_BLESS=1 rewrites it);\n\
         # do not edit by hand. Passwords come from the environment (compose/.env).\n{}",
        render_authorization(vars.iter().map(|(r, v)| (*r, Secret::Env(v))))
    )
}

/// The authorization block with every role's literal password.
pub fn render_with_passwords(passwords: &Passwords) -> String {
    render_authorization(
        Role::ALL
            .into_iter()
            .filter_map(|r| passwords.get(r).map(|pw| (r, Secret::Literal(pw)))),
    )
}
