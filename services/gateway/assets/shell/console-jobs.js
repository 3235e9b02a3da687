/*
 * Jobs: one's own, or everyone's with jobs:read_all; filtered by app, status and time.
 * Progress bars follow AdminWS live; a job opens to its result, error and logs (when
 * GET /api/async/jobs/<id>/logs answers); cancel, run again, re-queue a failed one.
 */
(function () {
  "use strict";
  var C = window.NRC, el = C.el;
  var FINAL = { completed: true, failed: true, cancelled: true };
  var rows = {};
  var filters = {};
  var nextBefore = null;

  function badge(status) {
    var k = { completed: "success", failed: "danger", cancelled: "secondary", running: "primary", pending: "warning" }[status] || "secondary";
    return el("span", { class: "badge text-bg-" + k + " nr-job-status" }, [status]);
  }

  function progress(job) {
    var pct = job.status === "completed" ? 100 : job.progress || 0;
    var inner = el("div", { class: "progress-bar" + (job.status === "failed" ? " bg-danger" : ""), role: "progressbar", style: "width: " + pct + "%", "aria-valuenow": String(pct), "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": "Progress of job " + job.id }, [pct + " %"]);
    return el("div", { class: "progress nr-job-progress", style: "min-width: 6rem" }, [inner]);
  }

  function actions(job) {
    var box = el("div", { class: "d-flex flex-wrap gap-1" }, [
      el("button", { class: "btn btn-sm btn-secondary", type: "button", onclick: function () { details(job.id); } }, ["Details"])
    ]);
    if (!FINAL[job.status]) {
      box.appendChild(el("button", { class: "btn btn-sm btn-danger nr-job-cancel", type: "button", onclick: function () { cancel(job.id); } }, ["Cancel"]));
    } else {
      box.appendChild(el("button", { class: "btn btn-sm btn-primary", type: "button", onclick: function () { again(job); } }, [job.status === "failed" ? "Re-queue" : "Run again"]));
    }
    return box;
  }

  function row(job) {
    var tr = el("tr", { id: "nr-job-" + job.id, "data-status": job.status }, [
      el("td", {}, [el("code", { class: "small", title: job.id }, ["…" + job.id.slice(-8)])]),
      el("td", { class: "text-break" }, [job.app_name]),
      el("td", {}, [badge(job.status)]),
      el("td", {}, [progress(job)]),
      el("td", { class: "small" }, [C.time(job.created_at)]),
      el("td", {}, [actions(job)])
    ]);
    rows[job.id] = { job: job, tr: tr };
    return tr;
  }

  function update(msg) {
    var r = rows[msg.job_id];
    if (!r) {
      if ((!filters.app || filters.app === msg.app_name) && !filters.status) { refresh(); }
      return;
    }
    r.job.status = msg.status;
    r.job.progress = msg.progress;
    var fresh = row(r.job);
    r.tr.replaceWith(fresh);
  }

  async function cancel(id) {
    if (!C.confirmed("Cancel this job?")) { return; }
    var r = await C.api("DELETE", "/api/async/jobs/" + encodeURIComponent(id));
    if (r.ok) { C.notice("success", "The job was cancelled."); update({ job_id: id, status: r.data.status, progress: r.data.progress }); }
    else { C.notice("danger", "The job was not cancelled: " + C.errorOf(r)); }
  }

  // The body fields the platform sets (the scheduler's `_schedule`, the job queue's
  // `_job_id`) and refuses from a caller (routes/direct.rs): a job is submitted again
  // without them.
  var PLATFORM_KEYS = ["_schedule", "_job_id"];

  function callerBody(payload) {
    var body = {};
    if (payload && typeof payload === "object" && !Array.isArray(payload)) {
      Object.keys(payload).forEach(function (k) { if (PLATFORM_KEYS.indexOf(k) < 0) { body[k] = payload[k]; } });
    }
    return body;
  }

  async function again(job) {
    var p = await C.api("GET", "/admin/api/console/jobs/" + encodeURIComponent(job.id) + "/payload");
    if (!p.ok) { C.notice("danger", "The job's body could not be read: " + C.errorOf(p)); return; }
    var r = await C.api("POST", "/api/async/" + encodeURIComponent(job.app_name), callerBody(p.data.payload));
    if (r.ok) { C.notice("success", "Queued again as job " + r.data.job_id + "."); refresh(); }
    else { C.notice("danger", "The job was not queued: " + C.errorOf(r)); }
  }

  async function details(id) {
    var box = document.getElementById("nr-job-details");
    var r = await C.api("GET", "/api/async/jobs/" + encodeURIComponent(id));
    if (!r.ok) { box.replaceChildren(el("div", { class: "alert alert-danger" }, [C.errorOf(r)])); return; }
    var j = r.data;
    var parts = [
      el("h2", { class: "h6" }, ["Job " + j.id]),
      el("p", { class: "small" }, [j.app_name + " · ", badge(j.status), " · attempt " + j.attempt + " · created " + C.time(j.created_at) + " · updated " + C.time(j.updated_at)])
    ];
    if (j.error_message) { parts.push(el("div", { class: "alert alert-danger py-2" }, [el("pre", { class: "mb-0 small nr-console-pre" }, [j.error_message])])); }
    if (j.result !== null && j.result !== undefined) { parts.push(el("pre", { class: "border rounded p-2 small nr-console-pre", tabindex: "0" }, [JSON.stringify(j.result, null, 2)])); }
    var logs = await C.api("GET", "/api/async/jobs/" + encodeURIComponent(id) + "/logs");
    if (logs.status === 200) {
      // `{job_id, status, logs}`: the lines themselves, one per line.
      var text = logs.data && typeof logs.data.logs === "string" ? logs.data.logs : "";
      parts.push(el("h3", { class: "h6" }, ["Logs"]), el("pre", { class: "border rounded p-2 small nr-console-pre nr-job-logs", tabindex: "0" }, [text || "(nothing printed)"]));
    }
    box.replaceChildren.apply(box, parts);
    box.scrollIntoView({ block: "nearest" });
  }

  function query(before) {
    var q = new URLSearchParams();
    if (filters.all) { q.set("all", "true"); }
    if (filters.app) { q.set("app_name", filters.app); }
    if (filters.status) { q.set("status", filters.status); }
    q.set("limit", "50");
    if (before) { q.set("before", before); }
    return "/api/async/jobs?" + q.toString();
  }

  function inTime(job) {
    if (!filters.since) { return true; }
    return new Date(job.created_at).getTime() >= Date.now() - filters.since * 1000;
  }

  async function load(append) {
    var r = await C.api("GET", query(append ? nextBefore : null));
    var tbody = document.getElementById("nr-jobs-rows");
    if (!r.ok) { C.notice("danger", "The jobs could not be listed: " + C.errorOf(r)); return; }
    if (!append) { tbody.replaceChildren(); rows = {}; }
    var jobs = (r.data.jobs || []).filter(inTime);
    jobs.forEach(function (j) { tbody.appendChild(row(j)); });
    nextBefore = r.data.next_before;
    document.getElementById("nr-jobs-more").hidden = !nextBefore;
    document.getElementById("nr-jobs-empty").hidden = tbody.children.length > 0;
  }

  var pending = null;
  function refresh() {
    if (pending) { return; }
    pending = setTimeout(function () { pending = null; load(false); }, 300);
  }

  function start() {
    var readAll = C.data("read-all") === "1";
    var params = new URLSearchParams(window.location.search);
    var app = el("input", { type: "text", placeholder: "any app" });
    app.value = params.get("app") || "";
    var status = el("select", {}, ["", "pending", "running", "completed", "failed", "cancelled"].map(function (s) { return el("option", { value: s }, [s || "any status"]); }));
    var since = el("select", {}, [["", "any time"], ["3600", "last hour"], ["86400", "last day"], ["604800", "last week"]].map(function (o) { return el("option", { value: o[0] }, [o[1]]); }));
    var all = el("input", { type: "checkbox", class: "form-check-input", id: "nr-jobs-all" });
    var form = el("form", { class: "row g-2 align-items-end mb-3", id: "nr-jobs-filter" }, [
      C.field("nr-jobs-app", "App", app), C.field("nr-jobs-status", "Status", status), C.field("nr-jobs-since", "Created", since),
      readAll ? el("div", { class: "col-auto form-check ms-2" }, [all, el("label", { class: "form-check-label", for: "nr-jobs-all" }, ["Every user's jobs"])]) : null,
      el("div", { class: "col-auto" }, [el("button", { class: "btn btn-sm btn-primary", type: "submit" }, ["Filter"])])
    ]);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      filters = { app: app.value.trim(), status: status.value, since: Number(since.value) || 0, all: all.checked };
      load(false);
    });
    var heads = ["Job", "App", "Status", "Progress", "Created", ""].map(function (h) { return el("th", { scope: "col" }, [h || el("span", { class: "visually-hidden" }, ["Actions"])]); });
    C.root().replaceChildren(form,
      el("div", { class: "table-responsive position-relative" }, [el("table", { class: "table table-sm align-middle", id: "nr-jobs-table" }, [
        el("caption", { class: "visually-hidden" }, ["Jobs"]), el("thead", {}, [el("tr", {}, heads)]), el("tbody", { id: "nr-jobs-rows" })])]),
      el("p", { id: "nr-jobs-empty", class: "text-body-secondary", hidden: true }, ["No jobs match. Queue one from ", el("a", { href: "/admin/run" }, ["Run an app"]), "."]),
      el("button", { id: "nr-jobs-more", class: "btn btn-sm btn-secondary", type: "button", hidden: true, onclick: function () { load(true); } }, ["Older jobs"]),
      el("div", { id: "nr-job-details", class: "mt-3", "aria-live": "polite" }));
    filters = { app: app.value.trim(), status: "", since: 0, all: false };
    load(false).then(function () { if (params.get("job")) { details(params.get("job")); } });
    if (window.AdminWS) { window.AdminWS.on("job", update); }
  }
  start();
})();
