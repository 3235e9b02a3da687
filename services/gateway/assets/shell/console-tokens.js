/* API tokens: create one (its secret is shown once), list, revoke. */
(function () {
  "use strict";
  var C = window.NRC, el = C.el;

  async function load() {
    var r = await C.api("GET", "/admin/api/tokens");
    if (!r.ok) { C.notice("danger", "The tokens could not be listed: " + C.errorOf(r)); return; }
    document.getElementById("nr-tokens-list").replaceChildren(C.table(["Name", "Owner", "Roles", "Created", "Expires", ""], r.data.tokens.map(function (t) {
      return [el("span", { class: "text-break", "data-token": t.name }, [t.name]), t.owner, t.roles.join(", "), C.time(t.created_at), t.expires_at ? C.time(t.expires_at) : "never",
        t.revoked ? el("span", { class: "badge text-bg-secondary" }, ["revoked"]) : el("button", { class: "btn btn-sm btn-danger", type: "button", onclick: async function () {
          if (!C.confirmed("Revoke the token " + t.name + "? Callers using it are refused from now on.")) { return; }
          var x = await C.api("DELETE", "/admin/api/tokens/" + encodeURIComponent(t.id));
          if (x.ok) { C.notice("success", "Token " + t.name + " revoked."); load(); } else { C.notice("danger", C.errorOf(x)); }
        } }, ["Revoke"])];
    }), "API tokens"));
  }

  function start() {
    var name = el("input", { type: "text", required: true, autocomplete: "off" });
    var roles = el("input", { type: "text", placeholder: "viewer" });
    var days = el("input", { type: "number", min: "1", placeholder: "never" });
    var shown = el("div", { id: "nr-token-secret", "aria-live": "polite" });
    var form = el("form", { class: "row g-2 align-items-end mb-3", id: "nr-token-form" }, [
      C.field("nr-token-name", "Name", name), C.field("nr-token-roles", "Roles (comma-separated)", roles), C.field("nr-token-days", "Expires in days", days),
      el("div", { class: "col-auto" }, [el("button", { class: "btn btn-sm btn-primary", type: "submit" }, ["Create token"])])
    ]);
    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      var body = { name: name.value.trim(), roles: roles.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean) };
      if (Number(days.value) > 0) { body.expires_in_s = Number(days.value) * 86400; }
      var r = await C.api("POST", "/admin/api/tokens", body);
      if (!r.ok) { C.notice("danger", "The token was not created: " + C.errorOf(r)); return; }
      form.reset();
      shown.replaceChildren(el("div", { class: "alert alert-warning" }, [
        el("p", { class: "mb-1" }, ["Token ", el("strong", {}, [r.data.name]), " created. Copy its secret now: it is shown only once."]),
        el("code", { class: "d-block text-break user-select-all", id: "nr-token-value" }, [r.data.token])
      ]));
      load();
    });
    C.root().replaceChildren(el("h2", { class: "h6" }, ["New token"]), form, shown, el("div", { id: "nr-tokens-list" }));
    load();
  }
  start();
})();
