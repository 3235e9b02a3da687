/* NodeRouter shell: applies the saved dark/light theme before the page paints. */
(function () {
  "use strict";
  var theme = null;
  try { theme = window.localStorage.getItem("nr-theme"); } catch (_) { /* storage off */ }
  if (theme !== "dark" && theme !== "light") {
    theme = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  document.documentElement.setAttribute("data-bs-theme", theme);
})();
