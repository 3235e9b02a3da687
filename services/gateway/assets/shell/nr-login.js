/* NodeRouter login page: posts the form as JSON, then goes to ?next= (same site only;
   the server has already vetted it into data-next). */
(function () {
  "use strict";
  var form = document.getElementById("nr-login");
  var error = document.getElementById("nr-login-error");
  var submit = document.getElementById("nr-login-submit");

  function target() {
    var next = form.getAttribute("data-next") || "/admin";
    // Only a path on this site: not "//host", not "/\host", not "/<tab>/host" (the URL
    // parser drops tabs and newlines), not "javascript:".
    if (next.charAt(0) !== "/" || /[\s\\]/.test(next)) return "/admin";
    try {
      var url = new URL(next, window.location.origin);
      if (url.origin !== window.location.origin) return "/admin";
      // The whole resolved URL: its path alone could start with "//" and name a host.
      return url.href;
    } catch (_) {
      return "/admin";
    }
  }

  function show(message) {
    error.textContent = message;
    error.classList.remove("d-none");
  }

  form.addEventListener("submit", async function (e) {
    e.preventDefault();
    error.classList.add("d-none");
    submit.disabled = true;
    try {
      var post = function () {
        return fetch("/api/auth/login", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          credentials: "same-origin",
          body: JSON.stringify({
            username: form.elements.username.value,
            password: form.elements.password.value,
          }),
        });
      };
      // The answer clears the origin's storage (Clear-Site-Data); the theme is kept.
      var res = await (window.NRTheme ? window.NRTheme.keep(post) : post());
      var data = {};
      try { data = await res.json(); } catch (_) { /* not JSON */ }
      if (!res.ok) {
        show(data.error || "Login failed (HTTP " + res.status + ")");
        return;
      }
      window.location.replace(target());
    } catch (err) {
      show("The server could not be reached: " + err.message);
    } finally {
      submit.disabled = false;
    }
  });
})();
