(function () {
  "use strict";

  var root = document.querySelector(".nr-app") || document.body;

  function setBar(pct) {
    var bar = root.querySelector(".job-bar");
    bar.style.width = pct + "%";
    bar.textContent = pct + " %";
    bar.parentNode.setAttribute("aria-valuenow", String(pct));
  }

  function status(text) { root.querySelector(".job-status").textContent = text; }

  function showError(text) {
    var box = root.querySelector(".job-error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  async function json(res) {
    var data = {};
    try { data = await res.json(); } catch (_) { data = {}; }
    if (!res.ok) throw new Error(String(data.error || "HTTP " + res.status).replace(/^[A-Za-z]*Error: /, ""));
    return data;
  }

  function sleep(ms) { return new Promise(function (ok) { setTimeout(ok, ms); }); }

  /* Polls the job until it ends; live progress also arrives on the page's WebSocket. */
  async function follow(id) {
    for (;;) {
      var job = await json(await fetch("/api/async/jobs/" + encodeURIComponent(id)));
      setBar(job.progress || 0);
      status("Job " + job.status + "…");
      if (job.status === "completed") { status("Done: " + JSON.stringify(job.result)); return; }
      if (job.status === "failed" || job.status === "cancelled") {
        throw new Error(job.error_message || "the job " + job.status);
      }
      await sleep(500);
    }
  }

  root.querySelector(".job-form").addEventListener("submit", async function (e) {
    e.preventDefault();
    showError("");
    setBar(0);
    try {
      var res = await fetch("/api/async/progress", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ steps: e.target.elements.steps.value }),
      });
      var job = await json(res);
      status("Job queued.");
      await follow(job.job_id);
    } catch (err) {
      status("");
      showError("The job failed: " + err.message);
    }
  });
})();
