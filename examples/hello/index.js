(function () {
  "use strict";
  var root = document.querySelector(".nr-app") || document.body;
  fetch("/api/sync/hello", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: "browser" }),
  })
    .then(function (r) { return r.json(); })
    .then(function (d) { root.querySelector(".hel-answer").textContent = d.message || d.error; });
})();
