/* Audit: who changed apps, access, app variables and schedules, newest first (audit:read). */
(function () {
  "use strict";
  var C = window.NRC, el = C.el;
  var next = null;
  var filter = {};

  function details(d) {
    return Object.keys(d).filter(function (k) { return d[k] !== null && d[k] !== ""; }).map(function (k) {
      var v = d[k];
      return k + ": " + (typeof v === "object" ? JSON.stringify(v) : String(v));
    }).join(" · ");
  }

  async function load(append) {
    var q = new URLSearchParams();
    if (filter.kind) { q.set("kind", filter.kind); }
    if (filter.q) { q.set("q", filter.q); }
    if (append && next) { q.set("before", next); }
    var r = await C.api("GET", "/admin/api/audit?" + q.toString());
    if (!r.ok) { C.notice("danger", "The audit trail could not be read: " + C.errorOf(r)); return; }
    var tbody = document.getElementById("nr-audit-rows");
    if (!append) { tbody.replaceChildren(); }
    r.data.entries.forEach(function (e) {
      tbody.appendChild(el("tr", { "data-action": e.action }, [
        el("td", { class: "small text-nowrap" }, [C.time(e.time)]),
        el("td", {}, [el("span", { class: "badge text-bg-secondary" }, [e.kind])]),
        el("td", { class: "text-nowrap" }, [e.action.replace(/_/g, " ")]),
        el("td", { class: "text-break" }, [e.target]),
        el("td", {}, [e.actor || el("span", { class: "text-body-secondary" }, ["not recorded"])]),
        el("td", { class: "small text-break" }, [details(e.details)])
      ]));
    });
    next = r.data.next_before;
    document.getElementById("nr-audit-more").hidden = !next;
    document.getElementById("nr-audit-empty").hidden = tbody.children.length > 0;
  }

  function start() {
    var kind = el("select", {}, [["", "everything"], ["apps", "apps"], ["access", "users, roles, tokens"], ["env", "app variables"], ["schedules", "schedules"]].map(function (o) { return el("option", { value: o[0] }, [o[1]]); }));
    var text = el("input", { type: "search", placeholder: "app, user, role, action" });
    var form = el("form", { class: "row g-2 align-items-end mb-3", id: "nr-audit-filter" }, [
      C.field("nr-audit-kind", "Kind", kind), C.field("nr-audit-q", "Contains", text),
      el("div", { class: "col-auto" }, [el("button", { class: "btn btn-sm btn-primary", type: "submit" }, ["Filter"])])
    ]);
    form.addEventListener("submit", function (e) { e.preventDefault(); filter = { kind: kind.value, q: text.value.trim() }; load(false); });
    var heads = ["When", "Kind", "Action", "Target", "By", "Details"].map(function (h) { return el("th", { scope: "col" }, [h]); });
    C.root().replaceChildren(form,
      el("div", { class: "table-responsive position-relative" }, [el("table", { class: "table table-sm align-middle", id: "nr-audit-table" }, [
        el("caption", { class: "visually-hidden" }, ["Audit trail"]), el("thead", {}, [el("tr", {}, heads)]), el("tbody", { id: "nr-audit-rows" })])]),
      el("p", { id: "nr-audit-empty", class: "text-body-secondary", hidden: true }, ["Nothing recorded matches."]),
      el("button", { id: "nr-audit-more", class: "btn btn-sm btn-secondary", type: "button", hidden: true, onclick: function () { load(true); } }, ["Older entries"]));
    load(false);
  }
  start();
})();
