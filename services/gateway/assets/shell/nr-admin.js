/*
 * NodeRouter admin pages: /admin/apps (deployed apps, their versions, deploy bundle,
 * rollback, delete) and /admin/notifications (one toggle per app action). Every value
 * shown is set with textContent; nothing from the server becomes markup.
 */
(function () {
  "use strict";

  function byId(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function toLogin() {
    var next = window.location.pathname + window.location.search;
    window.location.replace("/login?next=" + encodeURIComponent(next));
  }

  /* fetch JSON; resolves to {ok, status, data}; a 401 goes to the login page. */
  async function call(url, options) {
    var opts = options || {};
    opts.credentials = "same-origin";
    opts.headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    var res = await fetch(url, opts);
    if (res.status === 401) { toLogin(); throw new Error("not logged in"); }
    var data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    return { ok: res.ok, status: res.status, data: data || {} };
  }

  function errorText(r) {
    return (r.data && r.data.error) || "HTTP " + r.status;
  }

  function postJson(url, body) {
    return call(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  /* A table of findings: rule, file, line, message. */
  function findingsTable(list) {
    var table = el("table", "table table-sm small mb-0 nr-findings");
    var head = el("thead");
    var hr = el("tr");
    ["Rule", "File", "Line", "Message"].forEach(function (h) { hr.appendChild(el("th", null, h)); });
    head.appendChild(hr);
    table.appendChild(head);
    var body = el("tbody");
    list.forEach(function (f) {
      var tr = el("tr", "nr-finding");
      tr.appendChild(el("td", "font-monospace", f.rule || ""));
      tr.appendChild(el("td", "font-monospace", f.file || ""));
      tr.appendChild(el("td", null, f.line === null || f.line === undefined ? "" : f.line));
      tr.appendChild(el("td", null, f.message || ""));
      body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }

  // ── /admin/apps ─────────────────────────────────────────────────────────────

  var canDeploy = false;

  function showReport(box, r) {
    box.textContent = "";
    if (r.ok) {
      var rep = r.data;
      var ok = el("div", "alert alert-success mb-0 nr-deploy-report");
      box.setAttribute("data-nr-outcome", "deployed");
      var line = "Deployed " + rep.app_name + " version " + rep.version;
      if (rep.previous_version) line += " (was " + rep.previous_version + ")";
      ok.appendChild(el("div", "fw-semibold nr-deploy-summary", line));
      var warnings = Array.isArray(rep.warnings) ? rep.warnings : [];
      ok.appendChild(el("div", "small mt-1", warnings.length ? warnings.length + " warning(s):" : "No warnings."));
      if (warnings.length) ok.appendChild(findingsTable(warnings));
      box.appendChild(ok);
    } else {
      var bad = el("div", "alert alert-danger mb-0 nr-deploy-refusal");
      box.setAttribute("data-nr-outcome", "refused");
      bad.appendChild(el("div", "fw-semibold", "Refused (" + r.status + "): " + errorText(r)));
      var details = Array.isArray(r.data.details) ? r.data.details : [];
      if (details.length) bad.appendChild(findingsTable(details));
      box.appendChild(bad);
    }
  }

  async function deploy(form) {
    var box = byId("nr-deploy-result");
    var button = byId("nr-deploy-submit");
    var input = form.elements.file;
    if (!input || !input.files || !input.files.length) {
      box.textContent = "Choose a bundle (.zip) first.";
      return;
    }
    var fd = new FormData();
    fd.append("file", input.files[0], input.files[0].name);
    box.removeAttribute("data-nr-outcome");
    box.textContent = "Deploying " + input.files[0].name + "…";
    if (button) button.disabled = true;
    try {
      var r = await call("/admin/api/apps/deploy", { method: "POST", body: fd });
      showReport(box, r);
      if (r.ok) {
        form.reset();
        await loadApps({ app: r.data.app_name, version: r.data.version });
        if (window.NodeRouterShell) window.NodeRouterShell.reloadMenu();
      }
    } catch (err) {
      box.setAttribute("data-nr-outcome", "error");
      box.textContent = "The upload failed: " + err.message;
    } finally {
      if (button) button.disabled = false;
    }
  }

  function versionRow(app, v) {
    var tr = el("tr", "nr-version");
    tr.setAttribute("data-version", v.version);
    var name = el("td", "font-monospace", v.version);
    if (v.current) {
      name.appendChild(document.createTextNode(" "));
      name.appendChild(el("span", "badge text-bg-success", "current"));
    }
    tr.appendChild(name);
    tr.appendChild(el("td", "small", v.deployed_at || ""));
    tr.appendChild(el("td", "small font-monospace text-body-secondary", String(v.sha256 || "").slice(0, 12)));
    var actions = el("td", "text-end");
    if (canDeploy && !v.current) {
      var b = el("button", "btn btn-sm btn-outline-primary", "Roll back to this");
      b.type = "button";
      b.setAttribute("data-nr-admin", "rollback");
      b.setAttribute("data-app", app);
      b.setAttribute("data-version", v.version);
      b.setAttribute("data-sha256", v.sha256 || "");
      actions.appendChild(b);
    }
    tr.appendChild(actions);
    return tr;
  }

  async function loadVersions(app, box) {
    var r = await call("/admin/api/apps/" + encodeURIComponent(app) + "/versions");
    box.textContent = "";
    if (!r.ok) {
      box.appendChild(el("p", "small text-danger mb-0", "Could not load the versions: " + errorText(r)));
      return;
    }
    var table = el("table", "table table-sm align-middle mb-0 nr-versions");
    var head = el("thead");
    var hr = el("tr");
    ["Version", "Deployed", "SHA-256", ""].forEach(function (h) { hr.appendChild(el("th", "small", h)); });
    head.appendChild(hr);
    table.appendChild(head);
    var body = el("tbody");
    (r.data.versions || []).forEach(function (v) { body.appendChild(versionRow(app, v)); });
    table.appendChild(body);
    box.appendChild(table);
  }

  function appCard(a) {
    var card = el("div", "card nr-admin-app");
    card.setAttribute("data-app", a.app_name);
    card.setAttribute("data-version", a.version);
    var header = el("div", "card-header d-flex flex-wrap gap-2 align-items-center");
    var title = el("div", "me-auto");
    title.appendChild(el("span", "fw-semibold", a.display_name || a.app_name));
    title.appendChild(el("span", "small text-body-secondary ms-2 nr-admin-app-meta", a.app_name + " · v" + a.version));
    header.appendChild(title);
    var open = el("a", "btn btn-sm btn-outline-secondary", "Open");
    open.href = "/apps/" + encodeURIComponent(a.app_name) + "/";
    header.appendChild(open);
    if (canDeploy) {
      var del = el("button", "btn btn-sm btn-outline-danger", "Delete");
      del.type = "button";
      del.setAttribute("data-nr-admin", "delete");
      del.setAttribute("data-app", a.app_name);
      header.appendChild(del);
    }
    card.appendChild(header);
    var body = el("div", "card-body");
    if (a.description) body.appendChild(el("p", "small mb-2", a.description));
    var versions = el("div", "nr-admin-versions small text-body-secondary", "Loading versions…");
    body.appendChild(versions);
    body.appendChild(el("div", "small mt-2 nr-admin-app-message"));
    card.appendChild(body);
    loadVersions(a.app_name, versions).catch(function (err) {
      versions.textContent = "Could not load the versions: " + err.message;
    });
    return card;
  }

  function sleep(ms) { return new Promise(function (ok) { window.setTimeout(ok, ms); }); }

  /* The registry's projection may lag a deploy, rollback or delete by a moment: when
     `expect` ({app, version} or {app, gone: true}) is given, ask again until it shows. */
  async function loadApps(expect) {
    var status = byId("nr-admin-apps-status");
    var list = byId("nr-admin-apps-list");
    var r = await call("/admin/api/apps");
    for (var i = 0; expect && r.ok && i < 20; i++) {
      var found = (r.data.apps || []).filter(function (a) { return a.app_name === expect.app; })[0];
      if (expect.gone ? !found : found && found.version === expect.version) break;
      await sleep(250);
      r = await call("/admin/api/apps");
    }
    list.textContent = "";
    if (!r.ok) {
      status.textContent = "Could not load the apps: " + errorText(r);
      return;
    }
    var apps = (r.data.apps || []).slice().sort(function (x, y) { return x.app_name < y.app_name ? -1 : 1; });
    status.textContent = apps.length ? apps.length + " deployed app(s)" : "No apps are deployed.";
    apps.forEach(function (a) { list.appendChild(appCard(a)); });
    list.setAttribute("data-nr-loaded", String(apps.length));
  }

  function cardMessage(app, text, bad) {
    var cards = document.querySelectorAll(".nr-admin-app");
    for (var i = 0; i < cards.length; i++) {
      if (cards[i].getAttribute("data-app") === app) {
        var m = cards[i].querySelector(".nr-admin-app-message");
        if (m) { m.textContent = text; m.className = "small mt-2 nr-admin-app-message " + (bad ? "text-danger" : "text-success"); }
      }
    }
  }

  async function onAppsClick(e) {
    var b = e.target.closest("[data-nr-admin]");
    if (!b) return;
    var app = b.getAttribute("data-app");
    var what = b.getAttribute("data-nr-admin");
    var r;
    if (what === "rollback") {
      var version = b.getAttribute("data-version");
      if (!window.confirm("Make version " + version + " of " + app + " current again?")) return;
      b.disabled = true;
      var body = { version: version };
      if (b.getAttribute("data-sha256")) body.sha256 = b.getAttribute("data-sha256");
      r = await postJson("/admin/api/apps/" + encodeURIComponent(app) + "/rollback", body);
      if (r.ok) { await loadApps({ app: app, version: r.data.version }); cardMessage(app, "Rolled back to version " + r.data.version + ".", false); }
      else { b.disabled = false; cardMessage(app, "Rollback refused: " + errorText(r), true); }
    } else if (what === "delete") {
      if (!window.confirm("Delete " + app + "? It stops being served; its versions are kept.")) return;
      b.disabled = true;
      r = await call("/admin/api/apps/" + encodeURIComponent(app), { method: "DELETE" });
      if (r.ok) {
        await loadApps({ app: app, gone: true });
        var status = byId("nr-admin-apps-status");
        if (status) status.textContent += " — deleted " + app + " (version " + r.data.version + ").";
      } else { b.disabled = false; cardMessage(app, "Delete refused: " + errorText(r), true); }
    }
    if (r && r.ok && window.NodeRouterShell) window.NodeRouterShell.reloadMenu();
  }

  async function initApps() {
    var me = await call("/api/auth/me");
    var perms = (me.data && me.data.permissions) || [];
    canDeploy = !!(me.data && (me.data.admin || perms.indexOf("apps:deploy") >= 0));
    var card = byId("nr-deploy-card");
    if (card) card.hidden = !canDeploy;
    var form = byId("nr-deploy-form");
    if (form && canDeploy) {
      form.addEventListener("submit", function (e) { e.preventDefault(); deploy(form); });
    }
    var list = byId("nr-admin-apps-list");
    list.addEventListener("click", function (e) {
      onAppsClick(e).catch(function (err) { window.alert("Failed: " + err.message); });
    });
    await loadApps();
  }

  // ── /admin/notifications ────────────────────────────────────────────────────

  function actionRow(app, action, subscribed) {
    var row = el("div", "list-group-item d-flex gap-3 align-items-start nr-notify-action");
    var id = "nr-notify-" + app + "-" + action.name;
    var sw = el("div", "form-check form-switch mb-0 pt-1");
    var input = el("input", "form-check-input nr-notify-toggle");
    input.type = "checkbox";
    input.setAttribute("role", "switch");
    input.id = id;
    input.checked = !!subscribed;
    input.disabled = !action.allowed;
    input.setAttribute("data-app", app);
    input.setAttribute("data-action", action.name);
    input.setAttribute("data-nr-state", subscribed ? "on" : "off");
    sw.appendChild(input);
    row.appendChild(sw);
    var text = el("div", "flex-grow-1");
    var label = el("label", "form-check-label fw-semibold", action.display_name || action.name);
    label.setAttribute("for", id);
    text.appendChild(label);
    text.appendChild(el("span", "small text-body-secondary font-monospace ms-2", action.name));
    if (action.description) text.appendChild(el("div", "small", action.description));
    if (!action.allowed) {
      text.appendChild(el("div", "small text-warning-emphasis nr-notify-denied",
        "You need the permission '" + (action.required_permission || "") + "' to subscribe."));
    }
    text.appendChild(el("div", "small nr-notify-message"));
    row.appendChild(text);
    return row;
  }

  async function onToggle(input) {
    var app = input.getAttribute("data-app");
    var action = input.getAttribute("data-action");
    var want = input.checked;
    var msg = input.closest(".nr-notify-action").querySelector(".nr-notify-message");
    input.disabled = true;
    input.setAttribute("data-nr-state", "saving");
    var r;
    try {
      r = await postJson(want ? "/api/notify/subscribe" : "/api/notify/unsubscribe", { app_name: app, action_name: action });
    } catch (err) {
      r = { ok: false, status: 0, data: { error: err.message } };
    }
    input.disabled = false;
    if (r.ok) {
      input.setAttribute("data-nr-state", want ? "on" : "off");
      msg.className = "small nr-notify-message text-success";
      msg.textContent = want ? "Subscribed." : "Unsubscribed.";
    } else {
      input.checked = !want;
      input.setAttribute("data-nr-state", want ? "off" : "on");
      msg.className = "small nr-notify-message text-danger";
      msg.textContent = "Not saved: " + errorText(r);
    }
  }

  async function initNotifications() {
    var status = byId("nr-notify-status");
    var list = byId("nr-notify-list");
    var apps = await call("/api/apps");
    var subs = await call("/api/notify/subscriptions");
    if (!apps.ok || !subs.ok) {
      status.textContent = "Could not load: " + errorText(apps.ok ? subs : apps);
      return;
    }
    var on = {};
    (subs.data.subscriptions || []).forEach(function (s) { on[s.app_name + "\u0000" + s.action_name] = true; });
    list.textContent = "";
    var withActions = (apps.data.apps || []).filter(function (a) { return (a.actions || []).length; });
    status.textContent = withActions.length
      ? withActions.length + " app(s) with actions you can follow"
      : "None of the apps you can use declares actions.";
    withActions.forEach(function (a) {
      var card = el("div", "card nr-notify-app");
      card.setAttribute("data-app", a.app_name);
      var header = el("div", "card-header");
      header.appendChild(el("span", "fw-semibold", a.display_name || a.app_name));
      header.appendChild(el("span", "small text-body-secondary ms-2", a.app_name));
      card.appendChild(header);
      var group = el("div", "list-group list-group-flush");
      a.actions.forEach(function (x) { group.appendChild(actionRow(a.app_name, x, on[a.app_name + "\u0000" + x.name])); });
      card.appendChild(group);
      list.appendChild(card);
    });
    list.addEventListener("change", function (e) {
      var t = e.target.closest(".nr-notify-toggle");
      if (t) onToggle(t);
    });
    list.setAttribute("data-nr-loaded", String(withActions.length));
  }

  function init() {
    if (byId("nr-admin-apps")) {
      initApps().catch(function (err) { byId("nr-admin-apps-status").textContent = "Could not load: " + err.message; });
    }
    if (byId("nr-admin-notifications")) {
      initNotifications().catch(function (err) { byId("nr-notify-status").textContent = "Could not load: " + err.message; });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
