/* Roles: create and delete roles, grant and revoke permissions from the catalogue. */
(function () {
  "use strict";
  var C = window.NRC, el = C.el;
  var catalogue = [];

  async function act(promise, done) {
    var r = await promise;
    if (r.ok) { C.notice("success", done); load(); } else { C.notice("danger", C.errorOf(r)); }
  }

  function grants(role) {
    var chips = role.permissions.map(function (p) {
      return el("span", { class: "badge text-bg-light border me-1 mb-1" }, [p, role.builtin ? null : el("button", { type: "button", class: "btn-close ms-1", style: "font-size: .55rem", "aria-label": "Revoke " + p + " from " + role.name, onclick: function () {
        act(C.api("DELETE", "/admin/api/roles/" + encodeURIComponent(role.name) + "/permissions/" + encodeURIComponent(p)), p + " revoked from " + role.name + ".");
      } })]);
    });
    if (role.builtin) { return el("div", {}, chips.length ? chips : [role.name === "admin" ? "every permission" : "none"]); }
    var sel = el("select", { class: "form-select form-select-sm", "aria-label": "Permission to grant to " + role.name }, [el("option", { value: "" }, ["grant a permission…"])].concat(
      catalogue.filter(function (p) { return role.permissions.indexOf(p.name) < 0; }).map(function (p) { return el("option", { value: p.name }, [p.name + (p.description ? " — " + p.description : "")]); })));
    sel.addEventListener("change", function () {
      if (sel.value) { act(C.api("POST", "/admin/api/roles/" + encodeURIComponent(role.name) + "/permissions", { permission: sel.value }), sel.value + " granted to " + role.name + "."); }
    });
    return el("div", {}, [el("div", {}, chips), el("div", { style: "max-width: 28rem" }, [sel])]);
  }

  /* Who holds the role, said before it is deleted: the count and the first names. */
  async function holders(name) {
    var r = await C.api("GET", "/admin/api/users");
    if (!r.ok) { return "The users holding " + name + " could not be listed (" + C.errorOf(r) + "): check on the Users page who holds it."; }
    var who = (r.data.users || []).filter(function (u) { return (u.roles || []).indexOf(name) >= 0; })
      .map(function (u) { return u.username; }).sort();
    if (!who.length) { return "No user holds " + name + "."; }
    var named = who.slice(0, 3).join(", ") + (who.length > 3 ? " and " + (who.length - 3) + " more" : "");
    return (who.length === 1 ? "1 user holds " : who.length + " users hold ") + name + ": " + named +
      ". They lose the permissions it grants.";
  }

  async function remove(name, button) {
    button.disabled = true;
    try {
      var said = await holders(name);
      if (!C.confirmed("Delete the role " + name + "? " + said)) { return; }
      await act(C.api("DELETE", "/admin/api/roles/" + encodeURIComponent(name)), "Role " + name + " deleted.");
    } finally { button.disabled = false; }
  }

  async function load() {
    var r = await C.api("GET", "/admin/api/roles");
    if (!r.ok) { C.notice("danger", "The roles could not be listed: " + C.errorOf(r)); return; }
    document.getElementById("nr-roles-list").replaceChildren(C.table(["Role", "Description", "Permissions", ""], r.data.roles.map(function (role) {
      return [el("span", { class: "text-break", "data-role": role.name }, [role.name]), role.description || "", grants(role),
        role.builtin ? el("span", { class: "small text-body-secondary" }, ["built in"]) : el("button", { class: "btn btn-sm btn-danger", type: "button", onclick: function (e) {
          remove(role.name, e.currentTarget);
        } }, ["Delete"])];
    }), "Roles"));
  }

  async function start() {
    var p = await C.api("GET", "/admin/api/permissions");
    catalogue = p.ok ? p.data.permissions : [];
    var name = el("input", { type: "text", required: true, autocomplete: "off" });
    var desc = el("input", { type: "text" });
    var form = el("form", { class: "row g-2 align-items-end mb-4", id: "nr-role-form" }, [
      C.field("nr-role-name", "Role name", name), C.field("nr-role-desc", "Description", desc),
      el("div", { class: "col-auto" }, [el("button", { class: "btn btn-sm btn-primary", type: "submit" }, ["Create role"])])
    ]);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      act(C.api("POST", "/admin/api/roles", { name: name.value.trim(), description: desc.value }), "Role " + name.value.trim() + " created.").then(function () { form.reset(); });
    });
    C.root().replaceChildren(el("h2", { class: "h6" }, ["New role"]), form, el("div", { id: "nr-roles-list" }),
      el("h2", { class: "h6 mt-4" }, ["Permission catalogue"]),
      C.table(["Permission", "Description", "Source"], catalogue.map(function (x) { return [el("code", {}, [x.name]), x.description || "", x.source]; }), "Permission catalogue"));
    load();
  }
  start();
})();
