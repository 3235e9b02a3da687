/* The apps' schedules: state, next five fire times, latest ticks with their reason;
   pause and resume (apps:deploy). */
(function () {
  "use strict";
  var C = window.NRC, el = C.el;
  var canPause = C.data("can-pause") === "1";

  function badge(status) {
    var kind = { submitted: "success", queued: "info", skipped: "secondary", missed: "warning", paused: "secondary", failed: "danger" }[status] || "secondary";
    return el("span", { class: "badge text-bg-" + kind }, [status]);
  }

  function card(s) {
    var id = s.app + "/" + s.name;
    var path = "/admin/api/schedules/" + encodeURIComponent(s.app) + "/" + encodeURIComponent(s.name) + "/";
    var toggle = canPause ? el("button", { class: "btn btn-sm " + (s.paused ? "btn-primary" : "btn-secondary"), type: "button",
      "data-schedule": id, onclick: async function () {
        var r = await C.api("POST", path + (s.paused ? "resume" : "pause"), {});
        if (r.ok) { C.notice("success", id + (s.paused ? " resumed." : " paused.")); load(); } else { C.notice("danger", C.errorOf(r)); }
      } }, [s.paused ? "Resume" : "Pause"]) : null;
    var next = el("ol", { class: "small mb-0" }, s.next_local.map(function (t, i) {
      return el("li", {}, [el("time", { datetime: s.next[i] || t }, [t])]);
    }));
    var recent = s.recent.length ? C.table(["Tick", "Outcome", "Reason", "Job"], s.recent.map(function (t) {
      return [C.time(t.tick), badge(t.status), t.reason || "", t.job_id ? el("code", {}, [t.job_id]) : ""];
    }), "Latest ticks of " + id) : el("p", { class: "text-body-secondary small mb-0" }, ["No tick decided yet."]);
    return el("section", { class: "card mb-3", "aria-label": id }, [
      el("div", { class: "card-header d-flex align-items-center gap-2" }, [
        el("h2", { class: "h6 mb-0 me-auto" }, [id, " ", s.paused ? el("span", { class: "badge text-bg-warning" }, ["paused"]) : null]),
        toggle]),
      el("div", { class: "card-body row g-3" }, [
        el("div", { class: "col-md-4" }, [
          el("p", { class: "small mb-1" }, [el("code", {}, [s.cron]), " ", s.timezone, s.action ? " · action " + s.action : ""]),
          el("p", { class: "small text-body-secondary mb-1" }, ["overlap " + s.overlap + " · catch up " + s.catch_up]),
          el("h3", { class: "h6 mt-2" }, ["Next five"]), next]),
        el("div", { class: "col-md-8" }, [el("h3", { class: "h6" }, ["Latest ticks"]), recent])])
    ]);
  }

  async function load() {
    var r = await C.api("GET", "/admin/api/schedules");
    if (!r.ok) { C.notice("danger", "The schedules could not be listed: " + C.errorOf(r)); return; }
    if (!r.data.length) { C.root().replaceChildren(el("p", { class: "text-body-secondary" }, ["No deployed app declares a schedule."])); return; }
    C.root().replaceChildren.apply(C.root(), r.data.map(card));
  }
  load();
})();
