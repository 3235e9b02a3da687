/*!
 * AdminWS — the browser client of NodeRouter's notification hub (/api/ws/notify).
 *
 * Loaded by the admin layout after the app's own script, so call AdminWS.* from event
 * listeners or callbacks, never at module scope (see the author guide).
 *
 * It connects with the session cookie, reconnects with exponential back-off (0.5 s
 * doubling to 30 s, with jitter), and resumes from the id of the last action it saw
 * (kept in sessionStorage, so a page navigation resumes too): the hub replays what was
 * missed while it is still retained, and AdminWS drops anything it has already seen.
 *
 * API
 *   AdminWS.on(type, fn)              type: "action" | "job" | "open" | "close" | "*";
 *                                     returns a function that removes the handler.
 *   AdminWS.off(type, fn)             removes a handler.
 *   AdminWS.onAction(app, action, fn) fn(msg) for one app's action (either may be "*").
 *   AdminWS.onJob(jobId, fn)          fn(msg) for each progress message of one job; the
 *                                     handler is removed after the final status.
 *   AdminWS.connect(options)          connects now (done automatically on load);
 *                                     options: { url, ticket } for non-cookie use.
 *   AdminWS.close()                   closes and stops reconnecting.
 *   AdminWS.lastId                    id of the last action received (number or null).
 *   AdminWS.state                     "idle" | "connecting" | "open" | "closed".
 *
 * Messages (JSON), as the server sends them:
 *   {"type":"action","id":17,"app_name":"sales","action_name":"deal_closed",
 *    "payload":{...},"ts":"2026-11-22T10:16:02Z"}
 *   {"type":"job","job_id":"…","app_name":"report","status":"running","progress":40,
 *    "message":null,"ts":"…"}
 */
(function (global) {
  "use strict";
  if (global.AdminWS && global.AdminWS.__noderouter) {
    return;
  }

  var STORAGE_KEY = "nr.adminws.lastId";
  var MIN_DELAY = 500;
  var MAX_DELAY = 30000;
  var FINAL = { completed: true, failed: true, cancelled: true };

  var handlers = {};
  var socket = null;
  var state = "idle";
  var delay = MIN_DELAY;
  var timer = null;
  var stopped = false;
  var options = {};
  var lastId = readLastId();

  function readLastId() {
    try {
      var v = global.sessionStorage && global.sessionStorage.getItem(STORAGE_KEY);
      var n = v ? parseInt(v, 10) : NaN;
      return isNaN(n) ? null : n;
    } catch (e) {
      return null;
    }
  }

  function writeLastId(id) {
    lastId = id;
    try {
      if (global.sessionStorage) {
        global.sessionStorage.setItem(STORAGE_KEY, String(id));
      }
    } catch (e) {
      /* storage may be disabled; resuming then works within this page only */
    }
  }

  function emit(type, msg) {
    var list = (handlers[type] || []).slice().concat(type === "*" ? [] : handlers["*"] || []);
    for (var i = 0; i < list.length; i++) {
      try {
        list[i](msg);
      } catch (e) {
        if (global.console) {
          global.console.error("AdminWS handler failed", e);
        }
      }
    }
  }

  function on(type, fn) {
    (handlers[type] = handlers[type] || []).push(fn);
    return function () {
      off(type, fn);
    };
  }

  function off(type, fn) {
    var list = handlers[type];
    if (!list) {
      return;
    }
    var i = list.indexOf(fn);
    if (i >= 0) {
      list.splice(i, 1);
    }
  }

  function url() {
    var base = options.url;
    if (!base) {
      var proto = global.location.protocol === "https:" ? "wss:" : "ws:";
      base = proto + "//" + global.location.host + "/api/ws/notify";
    }
    var params = [];
    if (lastId !== null) {
      params.push("last_id=" + encodeURIComponent(lastId));
    }
    if (options.ticket) {
      params.push("ticket=" + encodeURIComponent(options.ticket));
      options.ticket = null; // one-time: a reconnect needs a new one (or the cookie)
    }
    return params.length ? base + (base.indexOf("?") >= 0 ? "&" : "?") + params.join("&") : base;
  }

  function schedule() {
    if (stopped || timer) {
      return;
    }
    var wait = Math.min(delay, MAX_DELAY);
    wait = wait / 2 + Math.random() * (wait / 2);
    delay = Math.min(delay * 2, MAX_DELAY);
    timer = global.setTimeout(function () {
      timer = null;
      open();
    }, wait);
  }

  function handle(event) {
    var msg;
    try {
      msg = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (!msg || typeof msg.type !== "string") {
      return;
    }
    if (msg.type === "action") {
      if (typeof msg.id === "number") {
        if (lastId !== null && msg.id <= lastId) {
          return; // already seen (a replay overlapping what this page got live)
        }
        writeLastId(msg.id);
      }
    }
    emit(msg.type, msg);
  }

  function open() {
    if (stopped || (socket && socket.readyState <= 1)) {
      return;
    }
    state = "connecting";
    var ws;
    try {
      ws = new global.WebSocket(url());
    } catch (e) {
      state = "closed";
      schedule();
      return;
    }
    socket = ws;
    ws.onopen = function () {
      state = "open";
      delay = MIN_DELAY;
      emit("open", { type: "open" });
    };
    ws.onmessage = handle;
    ws.onclose = function (event) {
      if (socket === ws) {
        socket = null;
      }
      state = "closed";
      emit("close", { type: "close", code: event.code, reason: event.reason });
      schedule();
    };
    ws.onerror = function () {
      /* onclose follows and schedules the reconnect */
    };
  }

  var AdminWS = {
    __noderouter: true,
    on: on,
    off: off,
    onAction: function (app, action, fn) {
      return on("action", function (msg) {
        if ((app === "*" || msg.app_name === app) && (action === "*" || msg.action_name === action)) {
          fn(msg);
        }
      });
    },
    onJob: function (jobId, fn) {
      var remove = on("job", function (msg) {
        if (msg.job_id !== jobId) {
          return;
        }
        if (FINAL[msg.status]) {
          remove();
        }
        fn(msg);
      });
      return remove;
    },
    connect: function (opts) {
      options = opts || {};
      stopped = false;
      delay = MIN_DELAY;
      open();
    },
    close: function () {
      stopped = true;
      if (timer) {
        global.clearTimeout(timer);
        timer = null;
      }
      if (socket) {
        socket.close(1000, "closed by the page");
      }
      state = "closed";
    },
    get lastId() {
      return lastId;
    },
    get state() {
      return state;
    },
  };

  global.AdminWS = AdminWS;
  if (global.WebSocket && global.location && !global.NR_ADMIN_WS_MANUAL) {
    open();
  }
})(typeof window !== "undefined" ? window : this);
