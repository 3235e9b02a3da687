/*
 * NodeRouter admin page /admin/notifications (one toggle per app action), and the
 * helpers both admin pages share, loaded before Manage apps' nr-admin-apps.js:
 * window.NRAdmin = { byId, el, toLogin, call, errorText, postJson, findingsTable }.
 * Every value shown is set with textContent; nothing from the server becomes markup.
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

  /* A table of findings: rule, file, line, message (line breaks kept). */
  function findingsTable(list) {
    var wrap = el("div", "table-responsive");
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
      var msg = el("td");
      var text = String(f.message || "");
      if (text.indexOf("\n") >= 0) msg.appendChild(el("pre", "nr-finding-text", text));
      else msg.textContent = text;
      tr.appendChild(msg);
      body.appendChild(tr);
    });
    table.appendChild(body);
    wrap.appendChild(table);
    return wrap;
  }

  window.NRAdmin = { findingsTable: findingsTable, byId: byId, el: el, toLogin: toLogin, call: call, errorText: errorText, postJson: postJson };

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
    if (byId("nr-admin-notifications")) {
      initNotifications().catch(function (err) { byId("nr-notify-status").textContent = "Could not load: " + err.message; });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
