/* An app's variables (names and values) and secrets (names only); set and remove. */
(function () {
  "use strict";
  var C = window.NRC, el = C.el;
  var app = C.data("app");
  var base = "/admin/api/apps/" + encodeURIComponent(app) + "/env";
  // A change is saved; a runner whose reload failed serves on with the previous values.
  function reloaded(data, done) {
    var warnings = (data && data.warnings) || [];
    if (warnings.length === 0) { C.notice("success", done); return; }
    C.notice("warning", "Saved, but the app did not reload with it everywhere; it serves on with the previous values: " + warnings.join(" "));
  }

  async function load() {
    var r = await C.api("GET", base);
    if (!r.ok) { C.notice("danger", "The variables could not be listed: " + C.errorOf(r)); return; }
    var list = document.getElementById("nr-env-list");
    if (!r.data.env.length) { list.replaceChildren(el("p", { class: "text-body-secondary" }, ["This app has no variables or secrets yet."])); return; }
    list.replaceChildren(C.table(["Name", "Kind", "Value", "Updated", ""], r.data.env.map(function (v) {
      return [el("code", { "data-env": v.name }, [v.name]), v.secret ? el("span", { class: "badge text-bg-warning" }, ["secret"]) : "variable",
        v.secret ? el("span", { class: "text-body-secondary" }, ["hidden"]) : el("code", { class: "text-break" }, [v.value]),
        C.time(v.updated_at) + (v.updated_by ? " by " + v.updated_by : ""),
        el("button", { class: "btn btn-sm btn-danger", type: "button", onclick: async function () {
          if (!C.confirmed("Remove " + v.name + "? The app reloads without it.")) { return; }
          var x = await C.api("DELETE", base + "/" + encodeURIComponent(v.name));
          if (x.ok) { reloaded(x.data, v.name + " removed."); load(); } else { C.notice("danger", C.errorOf(x)); }
        } }, ["Remove"])];
    }), "Variables and secrets"));
  }

  function start() {
    var name = el("input", { type: "text", required: true, autocomplete: "off", placeholder: "REPORT_TITLE" });
    var value = el("input", { type: "text", autocomplete: "off" });
    var secret = el("input", { type: "checkbox", class: "form-check-input", id: "nr-env-secret" });
    secret.addEventListener("change", function () { value.type = secret.checked ? "password" : "text"; });
    var form = el("form", { class: "row g-2 align-items-end mb-3", id: "nr-env-form" }, [
      C.field("nr-env-name", "Name", name), C.field("nr-env-value", "Value", value),
      el("div", { class: "col-auto form-check ms-2" }, [secret, el("label", { class: "form-check-label", for: "nr-env-secret" }, ["Secret"])]),
      el("div", { class: "col-auto" }, [el("button", { class: "btn btn-sm btn-primary", type: "submit" }, ["Set"])])
    ]);
    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      var r = await C.api("PUT", base, { name: name.value.trim(), value: value.value, secret: secret.checked });
      if (r.ok) { reloaded(r.data, name.value.trim() + " set; the app reloaded with it."); form.reset(); value.type = "text"; load(); }
      else { C.notice("danger", C.errorOf(r)); }
    });
    C.root().replaceChildren(el("p", {}, [el("a", { href: "/admin/apps" }, ["Manage apps"]), " · ", el("a", { href: "/admin/run/" + encodeURIComponent(app) }, ["Run " + app])]),
      form, el("div", { id: "nr-env-list" }));
    load();
  }
  start();
})();
