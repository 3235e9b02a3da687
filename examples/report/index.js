(function () {
  "use strict";

  var root = document.querySelector(".nr-app") || document.body;
  var chart = null;
  var table = null;
  var last = null;

  function dark() { return document.documentElement.getAttribute("data-bs-theme") === "dark"; }

  function showError(text) {
    var box = root.querySelector(".report-error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  async function syncCall(body) {
    var res = await fetch("/api/sync/report", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    var data = {};
    try { data = await res.json(); } catch (_) { data = {}; }
    if (!res.ok) throw new Error(String(data.error || "HTTP " + res.status).replace(/^[A-Za-z]*Error: /, ""));
    return data;
  }

  function drawChart(data) {
    var el = root.querySelector(".report-chart");
    if (chart) chart.dispose();
    chart = window.echarts.init(el, dark() ? "dark" : null);
    chart.setOption({
      backgroundColor: "transparent",
      tooltip: { trigger: "axis" },
      legend: { data: data.regions },
      xAxis: { type: "category", data: data.months },
      yAxis: { type: "value" },
      series: data.regions.map(function (region) {
        return {
          name: region, type: "bar",
          data: data.months.map(function (m) {
            return data.rows.filter(function (r) { return r.region === region && r.month === m; })[0].amount;
          }),
        };
      }),
    });
  }

  function drawTable(data) {
    var el = root.querySelector(".report-table");
    if (table) { table.setData(data.rows); return; }
    table = new window.Tabulator(el, {
      data: data.rows, layout: "fitColumns", pagination: true, paginationSize: 8,
      columns: [
        { title: "Region", field: "region" },
        { title: "Month", field: "month" },
        { title: "Amount", field: "amount", hozAlign: "right" },
      ],
    });
  }

  async function load(year) {
    try {
      var data = await syncCall({ year: year });
      last = data;
      showError("");
      drawChart(data);
      drawTable(data);
    } catch (err) {
      showError("Could not build the report: " + err.message);
    }
  }

  function exportExcel() {
    if (!last) { showError("Show a report first."); return; }
    var sheet = window.XLSX.utils.json_to_sheet(last.rows);
    var book = window.XLSX.utils.book_new();
    window.XLSX.utils.book_append_sheet(book, sheet, "Sales " + last.year);
    window.XLSX.writeFile(book, "sales-" + last.year + ".xlsx");
  }

  root.querySelector(".report-form").addEventListener("submit", function (e) {
    e.preventDefault();
    load(e.target.elements.year.value);
  });
  root.querySelector(".report-export").addEventListener("click", exportExcel);
  window.addEventListener("nr:theme", function () { if (last) drawChart(last); });
  window.addEventListener("resize", function () { if (chart) chart.resize(); });
  load(2026);
})();
