(function () {
  "use strict";

  var root = document.querySelector(".nr-app") || document.body;

  function esc(str) {
    return String(str == null ? "" : str)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  /* The app's answer, or an Error carrying the message to show the user: the app
     answers {"error": "..."} to input it refuses, the platform an HTTP error. */
  async function syncCall(body) {
    var res = await fetch("/api/sync/notes", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    var data = {};
    try { data = await res.json(); } catch (_) { data = {}; }
    if (!res.ok) {
      // "ValueError: name is required" reads "name is required".
      var msg = String(data.error || "the request failed (HTTP " + res.status + ")").replace(/^[A-Za-z]*Error: /, "");
      throw new Error(msg);
    }
    if (data && data.error) throw new Error(String(data.error));
    return data;
  }

  function showError(text) {
    var box = root.querySelector(".notes-error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  async function refresh() {
    var data = await syncCall({ action: "list" });
    root.querySelector(".notes-list").innerHTML = (data.rows || [])
      .map(function (r) { return '<li class="list-group-item notes-item">' + esc(r.name) + "</li>"; })
      .join("");
  }

  root.addEventListener("submit", async function (e) {
    var form = e.target.closest("[data-action='create']");
    if (!form) return;
    e.preventDefault();
    try {
      await syncCall({ action: "create", name: form.elements.name.value });
      showError("");
      form.reset();
      await refresh();
    } catch (err) {
      showError("Not saved: " + err.message);
      form.elements.name.focus();
    }
  });

  refresh().catch(function (err) { showError("Could not load the notes: " + err.message); });
})();
