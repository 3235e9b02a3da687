(function () {
  "use strict";

  var root = document.querySelector(".nr-app") || document.body;

  function esc(str) {
    return String(str == null ? "" : str)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  async function syncCall(body) {
    var res = await fetch("/api/sync/notes", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    var data = await res.json();
    if (!res.ok) throw new Error(data.error || "HTTP " + res.status);
    return data;
  }

  async function refresh() {
    var data = await syncCall({ action: "list" });
    root.querySelector(".notes-list").innerHTML = data.rows
      .map(function (r) { return '<li class="list-group-item notes-item">' + esc(r.name) + "</li>"; })
      .join("");
  }

  root.addEventListener("submit", async function (e) {
    var form = e.target.closest("[data-action='create']");
    if (!form) return;
    e.preventDefault();
    await syncCall({ action: "create", name: form.elements.name.value });
    form.reset();
    refresh();
  });

  refresh();
})();
