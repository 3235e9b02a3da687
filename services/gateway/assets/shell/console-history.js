/*!
 * Notification history: every action AdminWS delivers on any page is kept in the
 * browser (localStorage, newest 200), so what arrived stays after its toast is gone.
 * window.NRHistory = { list(), clear(), add(msg) }
 */
(function (global) {
  "use strict";
  var KEY = "nr.console.history";
  var MAX = 200;

  function list() {
    try { return JSON.parse(global.localStorage.getItem(KEY) || "[]"); } catch (_) { return []; }
  }

  function add(msg) {
    if (!msg || msg.type !== "action") { return false; }
    var items = list();
    if (msg.id !== undefined && items.some(function (m) { return m.id === msg.id; })) { return false; }
    items.unshift({ id: msg.id, app_name: msg.app_name, action_name: msg.action_name, payload: msg.payload, ts: msg.ts, seen: new Date().toISOString() });
    try { global.localStorage.setItem(KEY, JSON.stringify(items.slice(0, MAX))); } catch (_) { /* storage off or full */ }
    global.dispatchEvent(new CustomEvent("nr:history"));
    return true;
  }

  function clear() {
    try { global.localStorage.removeItem(KEY); } catch (_) { /* storage off */ }
    global.dispatchEvent(new CustomEvent("nr:history"));
  }

  global.NRHistory = { list: list, add: add, clear: clear };
  function hook() {
    if (global.AdminWS && typeof global.AdminWS.on === "function") { global.AdminWS.on("action", add); }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", hook); } else { hook(); }
})(window);
