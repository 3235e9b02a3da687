/*!
 * Helpers shared by the console's pages (loaded before each page's own script).
 * window.NRC = { api, errorOf, el, time, root, data, notice, me, table, field, confirmed, dialog }
 */
(function (global) {
  "use strict";

  /** Calls the API with the session cookie: {ok, status, data, ms}. Never throws. */
  async function api(method, url, body) {
    var started = performance.now();
    var init = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    try {
      var res = await fetch(url, init);
      var text = await res.text();
      var data = null;
      try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
      if (res.status === 401 && url.indexOf("/api/auth/") !== 0) {
        global.location.replace("/login?next=" + encodeURIComponent(global.location.pathname + global.location.search));
      }
      return { ok: res.ok, status: res.status, data: data, ms: performance.now() - started };
    } catch (e) {
      return { ok: false, status: 0, data: { error: "The server could not be reached: " + e.message }, ms: performance.now() - started };
    }
  }

  /** The error message of an API answer. */
  function errorOf(r) {
    if (r.data && typeof r.data === "object" && r.data.error) { return r.data.error; }
    return typeof r.data === "string" && r.data ? r.data : "HTTP " + r.status;
  }

  /** el("button", {class: "btn", onclick: fn}, ["text", node]) */
  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) { return; }
      if (k.indexOf("on") === 0 && typeof v === "function") { n.addEventListener(k.slice(2), v); }
      else if (k === "text") { n.textContent = v; }
      else { n.setAttribute(k, v === true ? "" : String(v)); }
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) { return; }
      n.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return n;
  }

  /** A time in the viewer's zone, without microseconds. */
  function time(iso) {
    if (!iso) { return ""; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function root() { return document.getElementById("nr-console-body"); }
  function data(name) { return document.getElementById("nr-console").getAttribute("data-" + name) || ""; }

  /** A dismissible message above the page's content: kind is success|warning|danger|info. */
  function notice(kind, message) {
    var box = document.getElementById("nr-console-notice");
    if (!box) {
      box = el("div", { id: "nr-console-notice", "aria-live": "polite" });
      root().parentNode.insertBefore(box, root());
    }
    box.replaceChildren(el("div", { class: "alert alert-" + kind + " py-2", role: kind === "danger" ? "alert" : "status" }, [message]));
  }

  var meCache = null;
  async function me() {
    if (!meCache) {
      var r = await api("GET", "/api/auth/me");
      meCache = r.ok ? r.data : { permissions: [], roles: [], admin: false };
    }
    return meCache;
  }

  /** A responsive table: heads is a list of labels, rows a list of lists of cells. */
  function table(heads, rows, caption) {
    var thead = el("thead", {}, [el("tr", {}, heads.map(function (h) { return el("th", { scope: "col" }, [h]); }))]);
    var tbody = el("tbody", {}, rows.map(function (r) { return el("tr", {}, r.map(function (c) { return el("td", {}, [c]); })); }));
    var t = el("table", { class: "table table-sm align-middle mb-0" }, [caption ? el("caption", { class: "visually-hidden" }, [caption]) : null, thead, tbody]);
    return el("div", { class: "table-responsive position-relative" }, [t]);
  }

  /** A labelled form control in a Bootstrap column. */
  function field(id, label, control, col) {
    control.id = id;
    if (!control.className) { control.className = control.tagName === "SELECT" ? "form-select form-select-sm" : "form-control form-control-sm"; }
    return el("div", { class: col || "col-auto" }, [el("label", { class: "form-label small mb-1", for: id }, [label]), control]);
  }

  function confirmed(message) { return global.confirm(message); }

  var dialogs = 0;
  /**
   * A modal form of the console's own (a native <dialog>: the page behind is inert, the
   * focus stays inside, Escape or Cancel closes it and the focus goes back to the opener).
   * opts: {title, text, fields: [{label, input, hint}], confirm, send(inputs)}; send
   * resolves to an API answer: an ok one closes the dialog, a refusal is shown in it
   * ("<refused>: <the API's reason>") and the dialog stays open to try again.
   */
  function dialog(opts) {
    var opener = document.activeElement;
    var id = "nr-dialog-" + (++dialogs);
    var error = el("div", { class: "alert alert-danger py-2 small mt-3 mb-0", role: "alert", id: id + "-error", hidden: true });
    var inputs = (opts.fields || []).map(function (f) { return f.input; });
    var rows = (opts.fields || []).map(function (f, i) {
      var fid = id + "-field-" + i;
      f.input.id = fid;
      if (!f.input.className) { f.input.className = "form-control"; }
      if (f.hint) { f.input.setAttribute("aria-describedby", fid + "-hint " + id + "-error"); }
      return el("div", { class: "mb-2" }, [el("label", { class: "form-label", for: fid }, [f.label]), f.input,
        f.hint ? el("div", { class: "form-text", id: fid + "-hint" }, [f.hint]) : null]);
    });
    var ok = el("button", { type: "submit", class: "btn btn-sm btn-primary" }, [opts.confirm || "OK"]);
    var cancel = el("button", { type: "button", class: "btn btn-sm btn-secondary", onclick: function () { box.close(); } }, ["Cancel"]);
    var form = el("form", { novalidate: true }, [
      el("h2", { class: "h5 px-3 pt-3 pb-2 mb-0 border-bottom", id: id + "-title" }, [opts.title]),
      el("div", { class: "p-3" }, [opts.text ? el("p", { class: "small", id: id + "-text" }, [opts.text]) : null].concat(rows, [error])),
      el("div", { class: "d-flex justify-content-end gap-2 px-3 pb-3" }, [cancel, ok])
    ]);
    var box = el("dialog", { class: "nr-dialog", "aria-labelledby": id + "-title", "aria-describedby": opts.text ? id + "-text" : null }, [form]);
    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      ok.disabled = true;
      error.hidden = true;
      try {
        var r = await opts.send(inputs);
        if (r.ok) { box.close(); return; }
        error.textContent = (opts.refused || "Refused") + ": " + errorOf(r);
        error.hidden = false;
        if (inputs[0]) { inputs[0].focus(); inputs[0].select(); }
      } finally { ok.disabled = false; }
    });
    box.addEventListener("close", function () {
      box.remove();
      if (opener && opener.isConnected && typeof opener.focus === "function") { opener.focus(); }
    });
    document.body.appendChild(box);
    box.showModal();
    if (inputs[0]) { inputs[0].focus(); }
    return box;
  }

  global.NRC = { api: api, errorOf: errorOf, el: el, time: time, root: root, data: data, notice: notice, me: me, table: table, field: field, confirmed: confirmed, dialog: dialog };
})(window);
