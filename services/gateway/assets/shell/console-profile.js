/* Profile: who one is, one's roles and permissions, and changing one's own password. */
(function () {
  "use strict";
  var C = window.NRC, el = C.el;

  async function start() {
    var me = await C.me();
    var cur = el("input", { type: "password", autocomplete: "current-password", required: true });
    // The server holds the minimum (NR_PASSWORD_MIN_LENGTH) and names it when refusing.
    var next = el("input", { type: "password", autocomplete: "new-password", required: true, "aria-describedby": "nr-pw-rule" });
    var again = el("input", { type: "password", autocomplete: "new-password", required: true });
    var form = el("form", { class: "row g-2 align-items-end", id: "nr-password-form" }, [
      C.field("nr-pw-current", "Current password", cur, "col-12 col-md-4"),
      C.field("nr-pw-new", "New password", next, "col-12 col-md-4"),
      C.field("nr-pw-again", "New password again", again, "col-12 col-md-4"),
      el("div", { class: "col-12 form-text", id: "nr-pw-rule" }, ["At least 12 characters, unless the operator set another minimum."]),
      el("div", { class: "col-12" }, [el("button", { class: "btn btn-primary btn-sm", type: "submit" }, ["Change password"])])
    ]);
    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      if (next.value !== again.value) { C.notice("danger", "The new passwords differ."); return; }
      // The answer clears the origin's storage (Clear-Site-Data); the theme is kept.
      var send = function () { return C.api("POST", "/api/auth/password", { current_password: cur.value, new_password: next.value }); };
      var r = await (window.NRTheme ? window.NRTheme.keep(send) : send());
      if (r.ok) { form.reset(); C.notice("success", "Your password was changed."); }
      else { C.notice("danger", "The password was not changed: " + C.errorOf(r)); }
    });
    C.root().replaceChildren(
      el("dl", { class: "row mb-4" }, [
        el("dt", { class: "col-sm-3" }, ["User"]), el("dd", { class: "col-sm-9", id: "nr-profile-name" }, [me.username || ""]),
        el("dt", { class: "col-sm-3" }, ["Roles"]), el("dd", { class: "col-sm-9" }, [(me.roles || []).join(", ") || "none"]),
        el("dt", { class: "col-sm-3" }, ["Permissions"]), el("dd", { class: "col-sm-9" }, [me.admin ? "all (admin)" : (me.permissions || []).join(", ") || "none"])
      ]),
      el("h2", { class: "h6" }, ["Change password"]), form);
  }
  start();
})();
