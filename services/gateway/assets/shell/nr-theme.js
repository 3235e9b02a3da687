/* NodeRouter shell: applies the saved dark/light theme before the page paints.
   Logging in, logging out and changing one's password answer Clear-Site-Data "storage",
   which drops localStorage, the theme with the session's data: window.NRTheme.keep(work)
   writes the theme chosen before back once the answer has come (it is not session data). */
(function () {
  "use strict";
  var KEY = "nr-theme";
  var theme = null;
  try { theme = window.localStorage.getItem(KEY); } catch (_) { /* storage off */ }
  if (theme !== "dark" && theme !== "light") {
    theme = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  document.documentElement.setAttribute("data-bs-theme", theme);

  async function keep(work) {
    var saved = null;
    try { saved = window.localStorage.getItem(KEY); } catch (_) { /* storage off */ }
    try {
      return await work();
    } finally {
      if (saved === "dark" || saved === "light") {
        try { window.localStorage.setItem(KEY, saved); } catch (_) { /* storage off */ }
      }
    }
  }

  window.NRTheme = { keep: keep };
})();
