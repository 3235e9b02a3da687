/*
 * Run an app: every app the user may call, pages or not. A JSON body goes to
 * POST /api/sync/<app> or /api/async/<app>; the answer, its status and time are shown.
 * An async job's progress follows live over AdminWS.
 */
(function () {
  "use strict";
  var C = window.NRC, el = C.el;

  function pre(value) {
    return el("pre", { class: "nr-console-pre border rounded p-2 mb-0 small", tabindex: "0" }, [typeof value === "string" ? value : JSON.stringify(value, null, 2)]);
  }

  function bar(id) {
    var inner = el("div", { class: "progress-bar", role: "progressbar", style: "width: 0%", "aria-valuenow": "0", "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": "Job progress" }, ["0 %"]);
    return { node: el("div", { class: "progress mb-2", id: id }, [inner]), inner: inner };
  }

  function setBar(b, pct, status) {
    b.inner.style.width = pct + "%";
    b.inner.setAttribute("aria-valuenow", String(pct));
    b.inner.textContent = pct + " %" + (status ? " · " + status : "");
    b.inner.className = "progress-bar" + (status === "failed" ? " bg-danger" : status === "completed" ? " bg-success" : "");
  }

  async function runForm(app) {
    var prefill = new URLSearchParams(window.location.search).get("body") || "{}";
    var body = el("textarea", { rows: "8", spellcheck: "false", class: "form-control font-monospace" });
    body.value = prefill;
    var mode = el("select", {}, [el("option", { value: "sync" }, ["Sync (wait for the answer)"]), el("option", { value: "async" }, ["Async (queue a job)"])]);
    var out = el("div", { id: "nr-run-result", class: "mt-3", "aria-live": "polite" });
    var form = el("form", { id: "nr-run-form" }, [
      C.field("nr-run-body", "JSON body", body, "mb-2"),
      el("div", { class: "row g-2 align-items-end" }, [
        C.field("nr-run-mode", "Mode", mode),
        el("div", { class: "col-auto" }, [el("button", { class: "btn btn-primary btn-sm", type: "submit" }, ["Run"])])
      ]),
      out
    ]);
    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      var parsed;
      try { parsed = JSON.parse(body.value || "{}"); } catch (err) {
        out.replaceChildren(el("div", { class: "alert alert-danger py-2" }, ["The body is not JSON: " + err.message]));
        return;
      }
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
        out.replaceChildren(el("div", { class: "alert alert-danger py-2" }, ["The body must be one JSON object, like {\"name\": \"x\"}."]));
        return;
      }
      out.replaceChildren(el("p", { class: "text-body-secondary" }, ["Running…"]));
      var r = await C.api("POST", "/api/" + mode.value + "/" + encodeURIComponent(app), parsed);
      var head = el("p", { class: "mb-2" }, [
        el("span", { class: "badge " + (r.ok ? "text-bg-success" : "text-bg-danger"), id: "nr-run-status" }, ["HTTP " + r.status]),
        " ", el("span", { class: "small text-body-secondary", id: "nr-run-time" }, [r.ms.toFixed(1) + " ms"])
      ]);
      out.replaceChildren(head, pre(r.data));
      if (mode.value === "async" && r.ok && r.data && r.data.job_id) {
        var b = bar("nr-run-progress");
        var final = el("div", { id: "nr-run-final" });
        out.appendChild(el("div", { class: "mt-2" }, [el("a", { href: "/admin/jobs?job=" + encodeURIComponent(r.data.job_id) }, ["Open the job"]), b.node, final]));
        if (window.AdminWS) {
          window.AdminWS.onJob(r.data.job_id, async function (m) {
            setBar(b, m.status === "completed" ? 100 : m.progress || 0, m.status);
            if (m.status === "completed" || m.status === "failed" || m.status === "cancelled") {
              var j = await C.api("GET", "/api/async/jobs/" + encodeURIComponent(r.data.job_id));
              final.replaceChildren(pre(j.ok ? (j.data.error_message || j.data.result) : C.errorOf(j)));
            }
          });
        }
      }
    });
    return form;
  }

  async function start() {
    var app = C.data("app");
    var r = await C.api("GET", "/api/apps");
    if (!r.ok) { C.notice("danger", "The apps could not be listed: " + C.errorOf(r)); return; }
    var apps = (r.data.apps || []).slice().sort(function (a, b) { return (a.display_name || a.app_name).localeCompare(b.display_name || b.app_name); });
    if (!app) {
      if (!apps.length) { C.root().replaceChildren(el("p", {}, ["You may call no app yet. ", el("a", { href: "/admin/apps" }, ["Manage apps"])])); return; }
      C.root().replaceChildren(C.table(["App", "Version", ""], apps.map(function (a) {
        return [el("span", { class: "text-break" }, [a.display_name || a.app_name]), a.version,
          el("a", { class: "btn btn-sm btn-primary", href: "/admin/run/" + encodeURIComponent(a.app_name) }, ["Run"])];
      }), "Apps you may run"));
      return;
    }
    var entry = apps.find(function (a) { return a.app_name === app; });
    if (!entry) { C.notice("warning", "The app '" + app + "' is not deployed, or you may not call it."); C.root().replaceChildren(); return; }
    document.querySelector("#nr-console h1").textContent = "Run " + (entry.display_name || entry.app_name);
    C.root().replaceChildren(
      el("p", { class: "text-body-secondary" }, ["Version " + entry.version + " · ", el("a", { href: "/apps/" + encodeURIComponent(app) + "/" }, ["Open its page"])]),
      await runForm(app));
  }
  start();
})();
