/* Users: create, disable or enable, reset a password, set roles (rbac:manage). */
(function () {
  "use strict";
  var C = window.NRC, el = C.el;
  var roleNames = [];

  async function act(promise, done) {
    var r = await promise;
    if (r.ok) { C.notice("success", done); load(); } else { C.notice("danger", C.errorOf(r)); }
  }

  function rolesEditor(u) {
    var input = el("input", { type: "text", class: "form-control form-control-sm", value: u.roles.join(", "), "aria-label": "Roles of " + u.username, list: "nr-role-names", size: "18" });
    var save = el("button", { class: "btn btn-sm btn-primary", type: "button", onclick: function () {
      var roles = input.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      act(C.api("PUT", "/admin/api/users/" + encodeURIComponent(u.id) + "/roles", { roles: roles }), "Roles of " + u.username + " saved.");
    } }, ["Save roles"]);
    return el("div", { class: "input-group input-group-sm" }, [input, save]);
  }

  /* The new password in the console's dialog; the server holds the minimum length and
     names it when refusing, which the dialog shows. */
  function resetPassword(u) {
    C.dialog({
      title: "Reset the password of " + u.username,
      text: "Every session of " + u.username + " ends; give them the new password another way.",
      fields: [{ label: "New password", hint: "At least 12 characters, unless the operator set another minimum.",
        input: el("input", { type: "password", autocomplete: "new-password", required: true }) }],
      confirm: "Reset password",
      refused: "The password was not reset",
      send: async function (inputs) {
        if (!inputs[0].value) { return { ok: false, status: 0, data: { error: "type the new password first" } }; }
        var r = await C.api("PATCH", "/admin/api/users/" + encodeURIComponent(u.id), { password: inputs[0].value });
        if (r.ok) { C.notice("success", "Password of " + u.username + " reset."); load(); }
        return r;
      }
    });
  }

  function buttons(u) {
    return el("div", { class: "d-flex flex-wrap gap-1" }, [
      el("button", { class: "btn btn-sm btn-" + (u.disabled ? "success" : "danger"), type: "button", "data-nr-focus": "state:" + u.id, onclick: function () {
        if (!u.disabled && !C.confirmed("Disable " + u.username + "? Their sessions end.")) { return; }
        act(C.api("PATCH", "/admin/api/users/" + encodeURIComponent(u.id), { disabled: !u.disabled }), u.username + (u.disabled ? " enabled." : " disabled."));
      } }, [u.disabled ? "Enable" : "Disable"]),
      el("button", { class: "btn btn-sm btn-secondary", type: "button", "data-nr-focus": "reset:" + u.id, onclick: function () { resetPassword(u); } }, ["Reset password"])
    ]);
  }

  async function load() {
    var r = await C.api("GET", "/admin/api/users");
    if (!r.ok) { C.notice("danger", "The users could not be listed: " + C.errorOf(r)); return; }
    var users = (r.data.users || []).slice().sort(function (a, b) { return a.username.localeCompare(b.username); });
    // The list is drawn again after each change: the focus goes back to the same button.
    var focused = document.activeElement && document.activeElement.getAttribute("data-nr-focus");
    document.getElementById("nr-users-list").replaceChildren(C.table(["User", "State", "Roles", "Actions"], users.map(function (u) {
      return [el("span", { class: "text-break", "data-user": u.username }, [u.username]),
        el("span", { class: "badge text-bg-" + (u.disabled ? "secondary" : "success") }, [u.disabled ? "disabled" : "active"]),
        rolesEditor(u), buttons(u)];
    }), "Users"));
    var again = focused && document.querySelector("[data-nr-focus='" + focused.replace(/['\\]/g, "") + "']");
    if (again) { again.focus(); }
  }

  async function start() {
    var roles = await C.api("GET", "/admin/api/roles");
    roleNames = roles.ok ? roles.data.roles.map(function (x) { return x.name; }) : [];
    var name = el("input", { type: "text", required: true, autocomplete: "off" });
    var pw = el("input", { type: "password", required: true, autocomplete: "new-password" });
    var rl = el("input", { type: "text", list: "nr-role-names", placeholder: "viewer, sales" });
    var form = el("form", { class: "row g-2 align-items-end mb-4", id: "nr-user-form" }, [
      C.field("nr-user-name", "Username", name), C.field("nr-user-password", "Password", pw), C.field("nr-user-roles", "Roles (comma-separated)", rl),
      el("div", { class: "col-auto" }, [el("button", { class: "btn btn-sm btn-primary", type: "submit" }, ["Create user"])])
    ]);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var list = rl.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      act(C.api("POST", "/admin/api/users", { username: name.value.trim(), password: pw.value, roles: list }), "User " + name.value.trim() + " created.").then(function () { form.reset(); });
    });
    C.root().replaceChildren(
      el("datalist", { id: "nr-role-names" }, roleNames.map(function (n) { return el("option", { value: n }); })),
      el("h2", { class: "h6" }, ["New user"]), form, el("div", { id: "nr-users-list" }));
    load();
  }
  start();
})();
