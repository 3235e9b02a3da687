/*
 * Dashboard (below the shell's app cards): calls, errors and p95 latency per app and jobs by
 * status over time (ECharts, from GET /admin/api/console/metrics, metrics:read); the
 * runners' health as the job queue shows it. Refreshes every 15 s.
 */
(function () {
  "use strict";
  var C = window.NRC, el = C.el;
  var charts = {};

  function dark() { return document.documentElement.getAttribute("data-bs-theme") === "dark"; }

  function chart(id, title, series, xs, unit) {
    var node = document.getElementById(id);
    if (!node || !window.echarts) { return; }
    if (charts[id]) { charts[id].dispose(); }
    var c = window.echarts.init(node, dark() ? "dark" : null, { renderer: "svg" });
    c.setOption({
      backgroundColor: "transparent",
      title: { text: title, textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis" },
      legend: { type: "scroll", top: 22 },
      grid: { left: 48, right: 16, top: 60, bottom: 28 },
      xAxis: { type: "category", data: xs },
      yAxis: { type: "value", name: unit || "" },
      series: series
    });
    charts[id] = c;
  }

  function card(title, body, id) {
    return el("div", { class: "col-12 col-lg-6" }, [el("div", { class: "card h-100", id: id }, [el("div", { class: "card-body" }, [el("h2", { class: "h6 card-title" }, [title]), body])])]);
  }

  async function metrics() {
    var r = await C.api("GET", "/admin/api/console/metrics");
    if (!r.ok) { C.notice("warning", "Metrics could not be read: " + C.errorOf(r)); return; }
    var pts = r.data.points;
    var xs = pts.map(function (p) { return new Date(p.t).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }); });
    var apps = {};
    pts.forEach(function (p) { Object.keys(p.apps).forEach(function (a) { apps[a] = true; }); });
    var names = Object.keys(apps).sort();
    function per(field) {
      return names.map(function (a) { return { name: a, type: "line", smooth: true, data: pts.map(function (p) { return p.apps[a] ? p.apps[a][field] : 0; }) }; });
    }
    chart("nr-chart-calls", "Calls per interval", per("calls"), xs);
    chart("nr-chart-errors", "Errors per interval", per("errors"), xs);
    chart("nr-chart-p95", "p95 latency", per("p95_ms"), xs, "ms");
    var statuses = ["pending", "running", "completed", "failed", "cancelled"];
    chart("nr-chart-jobs", "Jobs by status", statuses.map(function (s) { return { name: s, type: "bar", stack: "jobs", data: pts.map(function (p) { return p.jobs[s] || 0; }) }; }), xs);
    var run = r.data.runners;
    var nodes = Object.keys(run.running_by_node);
    document.getElementById("nr-runners").replaceChildren(
      el("p", {}, [el("span", { class: "badge text-bg-" + (run.healthy ? "success" : "danger"), id: "nr-runners-health" }, [run.healthy ? "healthy" : "needs attention"])]),
      el("ul", { class: "mb-0 small" }, [
        el("li", {}, ["Stale leases (a runner stopped renewing): " + run.stale_leases]),
        el("li", {}, ["Oldest pending job: " + (run.oldest_pending_s === null ? "none pending" : Math.round(run.oldest_pending_s) + " s")]),
        el("li", {}, ["Running jobs by node: " + (nodes.length ? nodes.map(function (n) { return n + " (" + run.running_by_node[n] + ")"; }).join(", ") : "none")])
      ]));
  }

  async function start() {
    var grid = el("div", { class: "row g-3" });
    var showMetrics = C.data("metrics") === "1";
    if (!showMetrics) {
      C.root().replaceChildren(el("p", { class: "text-body-secondary small" }, ["Charts of calls, errors, latency and jobs need the permission metrics:read."]));
      return;
    }
    if (showMetrics) {
      grid.appendChild(card("Runners", el("div", { id: "nr-runners" }, ["…"]), "nr-dash-runners"));
      ["nr-chart-calls", "nr-chart-errors", "nr-chart-p95", "nr-chart-jobs"].forEach(function (id) {
        grid.appendChild(el("div", { class: "col-12 col-lg-6" }, [el("div", { class: "card" }, [el("div", { class: "card-body" }, [el("div", { id: id, class: "nr-chart", style: "height: 260px", role: "img", "aria-label": id.replace("nr-chart-", "") + " chart" })])])]));
      });
    }
    C.root().replaceChildren(grid);
    if (showMetrics) {
      await metrics();
      setInterval(metrics, 15000);
      window.addEventListener("nr:theme", metrics);
      window.addEventListener("resize", function () { Object.keys(charts).forEach(function (k) { charts[k].resize(); }); });
    }
  }
  start();
})();
