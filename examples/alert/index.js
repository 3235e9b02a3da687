(function () {
  "use strict";

  var root = document.querySelector(".nr-app") || document.body;

  function showError(text) {
    var box = root.querySelector(".alert-error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  root.querySelector(".alert-form").addEventListener("submit", async function (e) {
    e.preventDefault();
    var form = e.target;
    var status = root.querySelector(".alert-status");
    try {
      var res = await fetch("/api/sync/alert", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text: form.elements.text.value }),
      });
      var data = {};
      try { data = await res.json(); } catch (_) { data = {}; }
      if (!res.ok) throw new Error(String(data.error || "HTTP " + res.status).replace(/^[A-Za-z]*Error: /, ""));
      showError("");
      status.textContent = "Alert sent to its subscribers.";
      form.reset();
    } catch (err) {
      status.textContent = "";
      showError("Not sent: " + err.message);
    }
  });
})();
