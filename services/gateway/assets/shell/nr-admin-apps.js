/*
 * NodeRouter Manage apps (/admin/apps): deploy a bundle (file picker or drag and drop,
 * with upload progress), the report (success, warnings, refusal), the deployed apps with
 * search and pages, each app's versions folded (loaded when opened) with who deployed
 * each, a link to its variables (with apps:env), rollback and delete; deleted apps below,
 * each restorable to any of its kept versions. Every value shown is set with
 * textContent; nothing from the server becomes markup. Times are shown in the viewer's
 * zone (dayjs).
 */
(function () {
  "use strict";

  var PAGE_SIZE = 10;
  var canDeploy = false;
  var canEnv = false;
  var allApps = [];
  var allDeleted = [];
  var page = 0;
  // The versions folds the operator opened ("app", "deleted:app" -> true) stay open when
  // the list is rebuilt (deploy, rollback, restore) and, for the tab's life (sessionStorage,
  // dropped at logout), when the page loads again. `shown`: folds this page opened itself
  // (the app just deployed or restored), open until the page goes. `expected`: the version
  // a change made current, which the reloaded versions are asked again until they show.
  var FOLDS = "nr.admin.apps.opened";
  var opened = {}, shown = {}, expected = null;
  try { opened = JSON.parse(window.sessionStorage.getItem(FOLDS) || "{}") || {}; } catch (_) { opened = {}; }

  var A = window.NRAdmin;
  var byId = A.byId, el = A.el, toLogin = A.toLogin, call = A.call, errorText = A.errorText, postJson = A.postJson;
  var findingsTable = A.findingsTable;

  function setOpened(key, open) {
    if (open) opened[key] = true; else delete opened[key];
    try { window.sessionStorage.setItem(FOLDS, JSON.stringify(opened)); } catch (_) { /* storage off */ }
  }

  function when(iso) {
    if (!iso) return "";
    if (window.dayjs) {
      var d = window.dayjs(iso);
      if (d.isValid()) return d.format("YYYY-MM-DD HH:mm");
    }
    var t = new Date(iso);
    return isNaN(t.getTime()) ? String(iso) : t.toLocaleString();
  }

  function shownName(a) { return String(a.display_name || a.app_name || ""); }

  // ── Deploy ─────────────────────────────────────────────────────────────────

  function showReport(box, r) {
    box.textContent = "";
    if (r.ok) {
      var rep = r.data;
      var warnings = Array.isArray(rep.warnings) ? rep.warnings : [];
      var ok = el("div", "alert mb-0 nr-deploy-report " + (warnings.length ? "alert-warning" : "alert-success"));
      ok.setAttribute("role", "status");
      box.setAttribute("data-nr-outcome", "deployed");
      var line = "Deployed " + rep.app_name + " version " + rep.version;
      if (rep.previous_version) line += " (was " + rep.previous_version + ")";
      ok.appendChild(el("div", "fw-semibold nr-deploy-summary", line));
      ok.appendChild(el("div", "small mt-1", warnings.length ? warnings.length + " warning(s):" : "No warnings."));
      if (warnings.length) ok.appendChild(findingsTable(warnings));
      box.appendChild(ok);
    } else {
      var bad = el("div", "alert alert-danger mb-0 nr-deploy-refusal");
      bad.setAttribute("role", "alert");
      box.setAttribute("data-nr-outcome", "refused");
      var details = Array.isArray(r.data.details) ? r.data.details : [];
      var error = errorText(r);
      // The message is shown once: in the table when a finding already carries it.
      var repeated = details.some(function (d) { return String(d.message || "").indexOf(error) === 0; });
      bad.appendChild(el("div", "fw-semibold", "Refused (" + r.status + ")" +
        (repeated ? ": " + details.length + " problem(s)" : ": " + error)));
      if (details.length) bad.appendChild(findingsTable(details));
      // What would also have been warned of: every finding at once, not one deploy each.
      var also = Array.isArray(r.data.warnings) ? r.data.warnings : [];
      if (also.length) {
        bad.appendChild(el("div", "small mt-2 nr-deploy-also", "Also " + also.length + " warning(s):"));
        bad.appendChild(findingsTable(also));
      }
      box.appendChild(bad);
    }
  }

  function upload(file, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/admin/api/apps/deploy");
      xhr.withCredentials = true;
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      xhr.onload = function () {
        if (xhr.status === 401) { toLogin(); reject(new Error("not logged in")); return; }
        var data = {};
        try { data = JSON.parse(xhr.responseText) || {}; } catch (_) { data = {}; }
        resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, data: data });
      };
      xhr.onerror = function () { reject(new Error("the connection failed")); };
      var fd = new FormData();
      fd.append("file", file, file.name);
      xhr.send(fd);
    });
  }

  async function deploy(form, file) {
    var box = byId("nr-deploy-result");
    var button = byId("nr-deploy-submit");
    var bar = byId("nr-deploy-progress");
    if (!file) {
      box.textContent = "Choose a bundle (.zip) first.";
      return;
    }
    box.removeAttribute("data-nr-outcome");
    box.textContent = "Deploying " + file.name + "…";
    if (button) button.disabled = true;
    function progress(f) {
      if (!bar) return;
      bar.hidden = false;
      var pct = Math.round(f * 100);
      var inner = bar.querySelector(".progress-bar");
      inner.style.width = pct + "%";
      bar.setAttribute("aria-valuenow", String(pct));
      inner.textContent = pct < 100 ? pct + " %" : "Checking…";
    }
    try {
      progress(0);
      var r = await upload(file, progress);
      showReport(box, r);
      if (r.ok) {
        form.reset();
        shown[r.data.app_name] = true;
        await loadApps({ app: r.data.app_name, version: r.data.version });
        if (window.NodeRouterShell) window.NodeRouterShell.reloadMenu();
      }
    } catch (err) {
      box.setAttribute("data-nr-outcome", "error");
      box.textContent = "";
      box.appendChild(el("div", "alert alert-danger mb-0", "The upload failed: " + err.message));
    } finally {
      if (button) button.disabled = false;
      if (bar) bar.hidden = true;
    }
  }

  function initDropZone(form) {
    var zone = byId("nr-dropzone");
    var input = byId("nr-deploy-file");
    if (!zone || !input) return;
    ["dragenter", "dragover"].forEach(function (t) {
      zone.addEventListener(t, function (e) { e.preventDefault(); zone.classList.add("nr-drag"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      zone.addEventListener(t, function () { zone.classList.remove("nr-drag"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      var files = e.dataTransfer && e.dataTransfer.files;
      if (files && files.length) deploy(form, files[0]);
    });
  }

  // ── The list ───────────────────────────────────────────────────────────────

  function versionRow(app, v, deleted) {
    var tr = el("tr", "nr-version");
    tr.setAttribute("data-version", v.version);
    var name = el("td", "font-monospace", v.version);
    if (v.current) {
      name.appendChild(document.createTextNode(" "));
      name.appendChild(el("span", "badge text-bg-success", "current"));
    }
    if (v.refused) {
      name.appendChild(document.createTextNode(" "));
      var refused = el("span", "badge text-bg-danger nr-refused", "refused");
      refused.title = String(v.refused);
      name.appendChild(refused);
      name.appendChild(el("div", "small text-danger text-wrap nr-refused-why", String(v.refused)));
    }
    tr.appendChild(name);
    var at = el("td", "small", when(v.deployed_at));
    if (v.deployed_at) at.title = String(v.deployed_at);
    tr.appendChild(at);
    tr.appendChild(el("td", "small nr-deployed-by", v.deployed_by || "—"));
    tr.appendChild(el("td", "small font-monospace text-body-secondary", String(v.sha256 || "").slice(0, 12)));
    var actions = el("td", "text-end");
    if (canDeploy && !v.current) {
      var b = el("button", "btn btn-sm btn-outline-primary", deleted ? "Restore this version" : "Roll back to this");
      b.type = "button";
      b.setAttribute("data-nr-admin", deleted ? "restore" : "rollback");
      b.setAttribute("data-app", app);
      b.setAttribute("data-version", v.version);
      b.setAttribute("data-sha256", v.sha256 || "");
      actions.appendChild(b);
    }
    tr.appendChild(actions);
    return tr;
  }

  async function loadVersions(app, box, deleted, want) {
    var url = "/admin/api/apps/" + encodeURIComponent(app) + "/versions";
    var r = await call(url);
    var has = function () { return (r.data.versions || []).some(function (v) { return v.current && v.version === want; }); };
    for (var i = 0; want && r.ok && i < 20 && !has(); i++) { await sleep(250); r = await call(url); }
    box.textContent = "";
    if (!r.ok) {
      box.appendChild(el("p", "small text-danger mb-0", "Could not load the versions: " + errorText(r)));
      return;
    }
    var wrap = el("div", "table-responsive");
    var table = el("table", "table table-sm align-middle mb-0 nr-versions");
    var head = el("thead");
    var hr = el("tr");
    ["Version", "Deployed", "By", "SHA-256"].forEach(function (h) { hr.appendChild(el("th", "small", h)); });
    var act = el("th", "small text-end");
    act.appendChild(el("span", "visually-hidden", "Actions"));
    hr.appendChild(act);
    head.appendChild(hr);
    table.appendChild(head);
    var body = el("tbody");
    (r.data.versions || []).forEach(function (v) { body.appendChild(versionRow(app, v, deleted)); });
    table.appendChild(body);
    wrap.appendChild(table);
    box.appendChild(wrap);
    box.setAttribute("data-nr-loaded", "1");
  }

  function appCard(a) {
    var card = el("div", "card nr-admin-app");
    card.setAttribute("data-app", a.app_name);
    card.setAttribute("data-version", a.version);
    var header = el("div", "card-header d-flex flex-wrap gap-2 align-items-center");
    var title = el("div", "me-auto");
    title.appendChild(el("span", "fw-semibold", shownName(a)));
    title.appendChild(el("span", "small text-body-secondary ms-2 nr-admin-app-meta", a.app_name + " · v" + a.version));
    header.appendChild(title);
    var open = el("a", "btn btn-sm btn-outline-primary", "Open");
    open.href = "/apps/" + encodeURIComponent(a.app_name) + "/";
    open.setAttribute("aria-label", "Open " + shownName(a));
    header.appendChild(open);
    if (canEnv) {
      var env = el("a", "btn btn-sm btn-outline-primary nr-admin-env", "Variables");
      env.href = "/admin/apps/" + encodeURIComponent(a.app_name) + "/env";
      env.setAttribute("aria-label", "Variables and secrets of " + shownName(a));
      header.appendChild(env);
    }
    if (canDeploy) {
      var del = el("button", "btn btn-sm btn-outline-danger", "Delete");
      del.type = "button";
      del.setAttribute("data-nr-admin", "delete");
      del.setAttribute("data-app", a.app_name);
      del.setAttribute("aria-label", "Delete " + shownName(a));
      header.appendChild(del);
    }
    card.appendChild(header);
    var body = el("div", "card-body");
    if (a.description) body.appendChild(el("p", "small mb-2", a.description));
    body.appendChild(versionsFold(a, false));
    body.appendChild(el("div", "small mt-2 nr-admin-app-message"));
    card.appendChild(body);
    return card;
  }

  /* The app's versions, folded; loaded when first opened. */
  function versionsFold(a, deleted) {
    var key = (deleted ? "deleted:" : "") + a.app_name;
    var fold = el("details", "nr-admin-versions-fold");
    fold.appendChild(el("summary", "small", deleted ? "Kept versions" : "Versions"));
    var versions = el("div", "nr-admin-versions small text-body-secondary mt-2", "Loading versions…");
    fold.appendChild(versions);
    var want = !deleted && expected && expected.app === a.app_name ? expected.version : null;
    fold.addEventListener("toggle", function () {
      // A fold the list was rebuilt without no longer speaks for the app; the page's own
      // opening (data-nr-auto) is not the operator's choice.
      if (!fold.isConnected) return;
      if (fold.hasAttribute("data-nr-auto")) fold.removeAttribute("data-nr-auto");
      else { setOpened(key, fold.open); if (!fold.open) delete shown[key]; }
      if (fold.open && !versions.getAttribute("data-nr-loaded")) {
        loadVersions(a.app_name, versions, deleted, want).catch(function (err) {
          versions.textContent = "Could not load the versions: " + err.message;
        });
      }
    });
    if (opened[key] || (!deleted && shown[key])) { fold.setAttribute("data-nr-auto", "1"); fold.open = true; }
    return fold;
  }

  /* A deleted app: the version it had, when it was deleted, and a Restore button. One
     never served (its first version refused by the runners, so deploy deleted it) says
     so, with the runners' reason, instead of "deleted". */
  function deletedCard(a) {
    var card = el("div", "card nr-admin-app nr-admin-deleted-app");
    card.setAttribute("data-app", a.app_name);
    card.setAttribute("data-version", a.version);
    var header = el("div", "card-header d-flex flex-wrap gap-2 align-items-center");
    var title = el("div", "me-auto");
    title.appendChild(el("span", "fw-semibold", shownName(a)));
    var refused = typeof a.refused === "string";
    title.appendChild(el("span", refused ? "badge text-bg-warning ms-2" : "badge text-bg-secondary ms-2",
      refused ? "never served" : "deleted"));
    var meta = el("span", "small text-body-secondary ms-2 nr-admin-app-meta",
      a.app_name + " · v" + a.version + (refused ? " · refused by the runners " : " · deleted ") + when(a.updated_at));
    if (a.updated_at) meta.title = String(a.updated_at);
    title.appendChild(meta);
    header.appendChild(title);
    if (canDeploy) {
      var restore = el("button", "btn btn-sm btn-outline-primary", "Restore v" + a.version);
      restore.type = "button";
      restore.setAttribute("data-nr-admin", "restore");
      restore.setAttribute("data-app", a.app_name);
      restore.setAttribute("data-version", a.version);
      restore.setAttribute("data-sha256", a.sha256 || "");
      restore.setAttribute("aria-label", "Restore " + shownName(a) + " version " + a.version);
      header.appendChild(restore);
    }
    card.appendChild(header);
    var body = el("div", "card-body");
    if (refused) {
      var why = el("p", "small text-danger-emphasis text-break mb-2 nr-admin-never-served",
        "Its first deploy was undone: the runners could not load it. " + a.refused.slice(0, 600));
      body.appendChild(why);
    }
    body.appendChild(versionsFold(a, true));
    body.appendChild(el("div", "small mt-2 nr-admin-app-message"));
    card.appendChild(body);
    return card;
  }

  function renderDeleted(q) {
    var section = byId("nr-admin-deleted");
    var list = byId("nr-admin-deleted-list");
    if (!section || !list) return;
    var shown = allDeleted.filter(function (a) { return matches(a, q); });
    list.textContent = "";
    shown.forEach(function (a) { list.appendChild(deletedCard(a)); });
    section.hidden = shown.length === 0;
    list.setAttribute("data-nr-loaded", String(allDeleted.length));
  }

  function matches(a, q) {
    if (!q) return true;
    q = q.toLowerCase();
    return shownName(a).toLowerCase().indexOf(q) >= 0 || String(a.app_name).toLowerCase().indexOf(q) >= 0 ||
      String(a.description || "").toLowerCase().indexOf(q) >= 0;
  }

  function render() {
    var list = byId("nr-admin-apps-list");
    var status = byId("nr-admin-apps-status");
    var pager = byId("nr-admin-apps-pager");
    var search = byId("nr-admin-apps-search");
    var q = search ? search.value.trim() : "";
    var shown = allApps.filter(function (a) { return matches(a, q); });
    var pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    if (page >= pages) page = pages - 1;
    list.textContent = "";
    shown.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE).forEach(function (a) { list.appendChild(appCard(a)); });
    if (!allApps.length) status.textContent = "No apps are deployed.";
    else if (q) status.textContent = shown.length + " of " + allApps.length + " app(s) match “" + q + "”";
    else status.textContent = allApps.length + " deployed app(s)";
    if (pager) {
      // d-flex would win over the hidden attribute: d-none hides it.
      pager.hidden = pages < 2;
      pager.classList.toggle("d-none", pages < 2);
      byId("nr-admin-apps-page").textContent = "Page " + (page + 1) + " of " + pages;
      byId("nr-admin-apps-prev").disabled = page === 0;
      byId("nr-admin-apps-next").disabled = page >= pages - 1;
    }
    list.setAttribute("data-nr-loaded", String(allApps.length));
    renderDeleted(q);
  }

  function sleep(ms) { return new Promise(function (ok) { window.setTimeout(ok, ms); }); }

  /* The registry's projection may lag a deploy, rollback or delete by a moment: when
     `expect` ({app, version} or {app, gone: true}) is given, ask again until it shows. */
  async function loadApps(expect) {
    var status = byId("nr-admin-apps-status");
    var r = await call("/admin/api/apps");
    for (var i = 0; expect && r.ok && i < 20; i++) {
      var found = (r.data.apps || []).filter(function (a) { return a.app_name === expect.app; })[0];
      if (expect.gone ? !found : found && found.version === expect.version) break;
      await sleep(250);
      r = await call("/admin/api/apps");
    }
    if (!r.ok) {
      byId("nr-admin-apps-list").textContent = "";
      status.textContent = "Could not load the apps: " + errorText(r);
      return;
    }
    var byName = function (x, y) {
      return shownName(x).localeCompare(shownName(y), undefined, { sensitivity: "base" });
    };
    allApps = (r.data.apps || []).slice().sort(byName);
    allDeleted = (r.data.deleted || []).slice().sort(byName);
    expected = expect && !expect.gone ? expect : null;
    if (expected) {
      var at = allApps.map(function (a) { return a.app_name; }).indexOf(expect.app);
      if (at >= 0) page = Math.floor(at / PAGE_SIZE);
    }
    render();
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
    } else if (what === "restore") {
      var restoring = b.getAttribute("data-version");
      if (!window.confirm("Restore " + app + " with version " + restoring + "? It is served again, at /apps/" + app + "/.")) return;
      b.disabled = true;
      var req = { version: restoring };
      if (b.getAttribute("data-sha256")) req.sha256 = b.getAttribute("data-sha256");
      r = await postJson("/admin/api/apps/" + encodeURIComponent(app) + "/rollback", req);
      if (r.ok) {
        shown[app] = true;
        await loadApps({ app: app, version: r.data.version });
        cardMessage(app, "Restored with version " + r.data.version + ".", false);
        if (window.NodeRouterShell && window.NodeRouterShell.notify) {
          window.NodeRouterShell.notify("Restored " + app, "Version " + r.data.version + " is served again.");
        }
      } else { b.disabled = false; cardMessage(app, "Restore refused: " + errorText(r), true); }
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
    canEnv = !!(me.data && (me.data.admin || perms.indexOf("apps:env") >= 0));
    var card = byId("nr-deploy-card");
    if (card) card.hidden = !canDeploy;
    var form = byId("nr-deploy-form");
    if (form && canDeploy) {
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        var input = form.elements.file;
        deploy(form, input && input.files && input.files[0]);
      });
      initDropZone(form);
    }
    var search = byId("nr-admin-apps-search");
    if (search) search.addEventListener("input", function () { page = 0; render(); });
    var prev = byId("nr-admin-apps-prev");
    var next = byId("nr-admin-apps-next");
    if (prev) prev.addEventListener("click", function () { page = Math.max(0, page - 1); render(); });
    if (next) next.addEventListener("click", function () { page += 1; render(); });
    var list = byId("nr-admin-apps-list");
    [list, byId("nr-admin-deleted-list")].forEach(function (box) {
      if (!box) return;
      box.addEventListener("click", function (e) {
        onAppsClick(e).catch(function (err) { window.alert("Failed: " + err.message); });
      });
    });
    await loadApps();
  }

  function init() {
    if (byId("nr-admin-apps")) {
      initApps().catch(function (err) { byId("nr-admin-apps-status").textContent = "Could not load: " + err.message; });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
