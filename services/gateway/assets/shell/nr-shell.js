/*
 * NodeRouter shell: the user name, the menu built from GET /api/apps `nav`, the app
 * list on the home page, the dark/light toggle (Bootstrap's data-bs-theme, saved in
 * localStorage) and logout. Everything is scoped to elements with nr- ids/classes,
 * so an app's own markup inside .nr-app is never touched.
 */
(function () {
  "use strict";

  var THEME_KEY = "nr-theme";

  function byId(id) { return document.getElementById(id); }

  function toLogin() {
    var next = window.location.pathname + window.location.search;
    window.location.replace("/login?next=" + encodeURIComponent(next));
  }

  async function getJson(url) {
    var res = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (res.status === 401) { toLogin(); throw new Error("not logged in"); }
    var data = await res.json();
    if (!res.ok) throw new Error(data.error || "HTTP " + res.status);
    return data;
  }

  // ── Theme ──────────────────────────────────────────────────────────────────
  function setTheme(theme) {
    document.documentElement.setAttribute("data-bs-theme", theme);
    try { window.localStorage.setItem(THEME_KEY, theme); } catch (_) { /* storage off */ }
    window.dispatchEvent(new CustomEvent("nr:theme", { detail: { theme: theme } }));
  }

  function toggleTheme() {
    var now = document.documentElement.getAttribute("data-bs-theme");
    setTheme(now === "dark" ? "light" : "dark");
  }

  // ── Menu ───────────────────────────────────────────────────────────────────
  function samePage(href) {
    try {
      var u = new URL(href, window.location.href);
      return u.origin === window.location.origin && u.pathname === window.location.pathname;
    } catch (_) { return false; }
  }

  function safeHref(href) {
    if (typeof href !== "string" || href === "") return null;
    // Site paths and http(s) links only (no javascript: or data: URLs).
    if (href.charAt(0) === "/" && href.charAt(1) !== "/") return href;
    if (/^https?:\/\//i.test(href)) return href;
    return null;
  }

  function navNode(node) {
    var li = document.createElement("li");
    li.className = "nr-nav-item";
    var label = String(node.label || node.id || "");
    var href = safeHref(node.href);
    var item;
    if (href) {
      item = document.createElement("a");
      item.href = href;
      if (samePage(href)) { item.classList.add("active"); item.setAttribute("aria-current", "page"); }
    } else {
      item = document.createElement("span");
      item.classList.add("nr-nav-group");
    }
    item.classList.add("nr-nav-link");
    item.textContent = label;
    li.appendChild(item);
    if (Array.isArray(node.children) && node.children.length) {
      var ul = document.createElement("ul");
      ul.className = "nr-nav nr-nav-children list-unstyled mb-0";
      node.children.forEach(function (c) { ul.appendChild(navNode(c)); });
      li.appendChild(ul);
    }
    return li;
  }

  /* A group heading with nothing under it (a fragment whose pages the user may not
     open) is left out. */
  function useful(node) {
    if (!node) return false;
    if (safeHref(node.href)) return true;
    return Array.isArray(node.children) && node.children.some(useful);
  }

  function renderNav(nav) {
    var ul = byId("nr-nav");
    if (!ul) return;
    ul.textContent = "";
    (nav || []).filter(useful).forEach(function (n) {
      if (Array.isArray(n.children)) n = Object.assign({}, n, { children: n.children.filter(useful) });
      ul.appendChild(navNode(n));
    });
  }

  function shownName(a) { return String(a.display_name || a.app_name || ""); }

  function renderApps(apps) {
    var box = byId("nr-apps");
    var status = byId("nr-apps-status");
    if (!box) return;
    box.textContent = "";
    if (status) {
      status.textContent = apps.length ? apps.length + " app(s) you can use" : "No apps are deployed that you can use. ";
      if (!apps.length) {
        var manage = document.createElement("a");
        manage.href = "/admin/apps";
        manage.id = "nr-empty-manage";
        manage.textContent = "Deploy one in Manage apps";
        status.appendChild(manage);
      }
    }
    apps = apps.slice().sort(function (x, y) {
      return shownName(x).localeCompare(shownName(y), undefined, { sensitivity: "base" });
    });
    apps.forEach(function (a) {
      var col = document.createElement("div");
      col.className = "col-12 col-md-6 col-xl-4";
      var card = document.createElement("a");
      card.className = "card h-100 text-decoration-none nr-app-card";
      card.href = safeHref(a.href) || "#";
      var body = document.createElement("div");
      body.className = "card-body";
      var h = document.createElement("h2");
      h.className = "h6 card-title mb-1";
      h.textContent = a.display_name || a.app_name;
      var meta = document.createElement("div");
      meta.className = "small text-body-secondary mb-2";
      meta.textContent = a.app_name + " · v" + a.version;
      var p = document.createElement("p");
      p.className = "card-text small mb-0 text-body";
      p.textContent = a.description || "";
      body.appendChild(h); body.appendChild(meta); body.appendChild(p);
      card.appendChild(body);
      col.appendChild(card);
      box.appendChild(col);
    });
  }

  // ── Live notifications: a toast per action message from AdminWS ──────────
  var names = {};  // app -> {label, actions: {name -> label}}

  function rememberNames(apps) {
    names = {};
    apps.forEach(function (a) {
      var acts = {};
      (a.actions || []).forEach(function (x) { acts[x.name] = x.display_name || x.name; });
      names[a.app_name] = { label: a.display_name || a.app_name, actions: acts };
    });
  }

  function payloadText(payload) {
    if (payload === null || payload === undefined) return "";
    var text;
    try { text = typeof payload === "string" ? payload : JSON.stringify(payload); } catch (_) { text = String(payload); }
    return text.length > 200 ? text.slice(0, 199) + "…" : text;
  }

  function showToast(msg) {
    var box = byId("nr-toasts");
    if (!box || !msg) return;
    var app = String(msg.app_name || "");
    var action = String(msg.action_name || "");
    var known = names[app] || { label: app, actions: {} };
    var el = document.createElement("div");
    el.className = "toast nr-toast";
    el.setAttribute("role", "status");
    el.setAttribute("data-nr-app", app);
    el.setAttribute("data-nr-action-name", action);
    if (msg.id !== undefined && msg.id !== null) el.setAttribute("data-nr-id", String(msg.id));
    var head = document.createElement("div");
    head.className = "toast-header";
    var title = document.createElement("strong");
    title.className = "me-auto nr-toast-title";
    title.textContent = known.label + " · " + (known.actions[action] || action);
    var when = document.createElement("small");
    when.className = "text-body-secondary ms-2";
    var ts = msg.ts ? new Date(msg.ts) : new Date();
    when.textContent = isNaN(ts.getTime()) ? "" : ts.toLocaleTimeString();
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close ms-2";
    close.setAttribute("aria-label", "Close");
    close.setAttribute("data-bs-dismiss", "toast");
    head.appendChild(title); head.appendChild(when); head.appendChild(close);
    el.appendChild(head);
    var text = payloadText(msg.payload);
    if (text) {
      var body = document.createElement("div");
      body.className = "toast-body small text-break nr-toast-body";
      body.textContent = text;
      el.appendChild(body);
    }
    box.appendChild(el);
    while (box.children.length > 5) box.removeChild(box.firstChild);
    if (window.bootstrap && window.bootstrap.Toast) {
      el.addEventListener("hidden.bs.toast", function () { el.remove(); });
      new window.bootstrap.Toast(el, { delay: 8000 }).show();
    } else {
      el.classList.add("show");
      close.addEventListener("click", function () { el.remove(); });
      window.setTimeout(function () { el.remove(); }, 8000);
    }
  }

  /* A toast of the page's own: what an action just did (title, text). */
  function notify(title, text) {
    var box = byId("nr-toasts");
    if (!box) return;
    var el = document.createElement("div");
    el.className = "toast nr-toast nr-notice";
    el.setAttribute("role", "status");
    var head = document.createElement("div");
    head.className = "toast-header";
    var strong = document.createElement("strong");
    strong.className = "me-auto nr-toast-title";
    strong.textContent = String(title || "");
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close ms-2";
    close.setAttribute("aria-label", "Close");
    close.setAttribute("data-bs-dismiss", "toast");
    head.appendChild(strong); head.appendChild(close);
    el.appendChild(head);
    if (text) {
      var body = document.createElement("div");
      body.className = "toast-body small text-break nr-toast-body";
      body.textContent = String(text);
      el.appendChild(body);
    }
    box.appendChild(el);
    while (box.children.length > 5) box.removeChild(box.firstChild);
    if (window.bootstrap && window.bootstrap.Toast) {
      el.addEventListener("hidden.bs.toast", function () { el.remove(); });
      new window.bootstrap.Toast(el, { delay: 8000 }).show();
    } else {
      el.classList.add("show");
      close.addEventListener("click", function () { el.remove(); });
      window.setTimeout(function () { el.remove(); }, 8000);
    }
  }

  // A session that ended (expired, or logged out elsewhere: the hub closes the socket
  // with 4401) is said at once, before the next form is sent and refused. The socket
  // also closes when this tab's own session was renewed (a password changed here): the
  // renewed cookie answers then (it may arrive just after the close), and nothing is said.
  async function sessionEnded(e) {
    if (!e || e.code !== 4401 || document.getElementById("nr-session-ended")) return;
    for (var wait of [0, 1500]) {
      await new Promise(function (done) { window.setTimeout(done, wait); });
      try {
        var me = await fetch("/api/auth/me", { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (me.ok) return;
      } catch (err) { /* unreachable: say it ended */ }
    }
    if (document.getElementById("nr-session-ended")) return;
    // No more tries of a socket the hub refuses (one console error every few seconds).
    if (window.AdminWS && typeof window.AdminWS.close === "function") window.AdminWS.close();
    var box = document.createElement("div");
    box.id = "nr-session-ended";
    box.className = "alert alert-warning";
    box.setAttribute("role", "alert");
    box.appendChild(document.createTextNode(
      (e.reason === "session expired" ? "Your session has expired." : "Your session has ended.") +
      " What you send now will be refused: "));
    var a = document.createElement("a");
    a.href = "/login?next=" + encodeURIComponent(window.location.pathname + window.location.search);
    a.textContent = "log in again";
    box.appendChild(a);
    var main = document.querySelector("main") || document.body;
    main.insertBefore(box, main.firstChild);
  }

  function startToasts() {
    if (window.AdminWS && typeof window.AdminWS.on === "function") {
      window.AdminWS.on("action", showToast);
      window.AdminWS.on("close", sessionEnded);
    }
  }

  async function load() {
    try {
      var me = await getJson("/api/auth/me");
      var user = byId("nr-user");
      // A long name is cut with an ellipsis (nr-shell.css); the whole of it is its title.
      if (user) { user.textContent = me.username || ""; user.title = me.username || ""; }
    } catch (_) { /* handled by toLogin or shown below */ }
    try {
      var data = await getJson("/api/apps");
      rememberNames(data.apps || []);
      renderNav(data.nav);
      renderApps(data.apps || []);
    } catch (err) {
      var status = byId("nr-apps-status");
      if (status) status.textContent = "Could not load the apps: " + err.message;
    }
  }

  /* The answer drops the origin's storage (Clear-Site-Data): the session's data goes, the
     theme, a preference of this browser's, is kept (NRTheme.keep). */
  async function logout() {
    var post = function () { return fetch("/api/auth/logout", { method: "POST", credentials: "same-origin" }); };
    try {
      await (window.NRTheme ? window.NRTheme.keep(post) : post());
    } finally {
      window.location.replace("/login");
    }
  }

  // ── Off-canvas menu (phone width) ─────────────────────────────────────────
  function setMenu(open) {
    var s = byId("nr-sidebar");
    var toggle = byId("nr-menu-toggle");
    var backdrop = byId("nr-backdrop");
    if (!s) return;
    s.classList.toggle("nr-sidebar-open", open);
    if (backdrop) backdrop.hidden = !open;
    if (toggle) toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      var first = s.querySelector("a");
      if (first) first.focus();
    } else if (toggle && s.contains(document.activeElement)) {
      toggle.focus();
    }
  }

  function menuOpen() {
    var s = byId("nr-sidebar");
    return !!s && s.classList.contains("nr-sidebar-open");
  }

  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && menuOpen()) setMenu(false);
  });

  document.addEventListener("click", function (e) {
    var t = e.target.closest("[data-nr-action]");
    if (!t || t.closest(".nr-app")) return;
    var action = t.getAttribute("data-nr-action");
    if (action === "toggle-theme") toggleTheme();
    else if (action === "logout") logout();
    else if (action === "toggle-sidebar") setMenu(!menuOpen());
    else if (action === "close-sidebar") setMenu(false);
  });

  window.NodeRouterShell = { setTheme: setTheme, toggleTheme: toggleTheme, reloadMenu: load, showToast: showToast, notify: notify };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startToasts);
  else startToasts();
  load();
})();
