/*
 * Notification history page: what arrived (kept by console-history.js on every page),
 * and "Fetch retained" to replay what the hub still keeps (a socket with ?last_id=0).
 */
(function () {
  "use strict";
  var C = window.NRC, el = C.el;

  function render() {
    var items = window.NRHistory ? window.NRHistory.list() : [];
    var box = document.getElementById("nr-inbox-list");
    if (!items.length) {
      box.replaceChildren(el("p", { class: "text-body-secondary", id: "nr-inbox-empty" }, ["Nothing has arrived yet. Subscribe to an app's actions under ", el("a", { href: "/admin/notifications" }, ["Notifications"]), "."]));
      return;
    }
    box.replaceChildren(el("ul", { class: "list-group", id: "nr-inbox-items" }, items.map(function (m) {
      return el("li", { class: "list-group-item", "data-action": m.app_name + "/" + m.action_name }, [
        el("div", { class: "d-flex justify-content-between flex-wrap gap-2" }, [
          el("strong", { class: "text-break" }, [m.app_name + " · " + m.action_name]),
          el("span", { class: "small text-body-secondary" }, [C.time(m.ts || m.seen)])
        ]),
        el("pre", { class: "small mb-0 nr-console-pre text-break", tabindex: "0" }, [JSON.stringify(m.payload)])
      ]);
    })));
  }

  function replay() {
    var proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    var ws = new WebSocket(proto + "//" + window.location.host + "/api/ws/notify?last_id=0");
    var n = 0;
    ws.onmessage = function (e) {
      try { if (window.NRHistory.add(JSON.parse(e.data))) { n++; } } catch (_) { /* not JSON */ }
    };
    setTimeout(function () { ws.close(); C.notice("info", n + " retained notification(s) fetched."); render(); }, 1500);
  }

  function start() {
    C.root().replaceChildren(
      el("div", { class: "d-flex gap-2 mb-3" }, [
        el("button", { class: "btn btn-sm btn-primary", type: "button", onclick: replay }, ["Fetch retained"]),
        el("button", { class: "btn btn-sm btn-secondary", type: "button", onclick: function () { if (C.confirmed("Clear the history kept in this browser?")) { window.NRHistory.clear(); } } }, ["Clear"])
      ]),
      el("div", { id: "nr-inbox-list", "aria-live": "polite" }));
    window.addEventListener("nr:history", render);
    render();
  }
  start();
})();
