/* The unread-messages badge in the navigation, on every signed-in page. It shares the
 * page's one websocket (realtime.js) and asks the server for the count whenever something
 * that changes it happens, so every tab of the same person agrees. */
(function () {
  "use strict";
  var cfg = window.CABINET_NAV; if (!cfg || !window.CabinetLive) return;
  var timer = null;
  function show(total) {
    Array.prototype.forEach.call(document.querySelectorAll("[data-unread-badge]"), function (b) {
      b.textContent = total > 99 ? "99+" : String(total);
      b.hidden = total === 0;
      b.setAttribute("aria-label", cfg.label.replace("%(num)s", total));
    });
  }
  function refresh() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      fetch(cfg.api + "/unread", { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (j) { if (j) show(j.total); })
        .catch(function () {});
    }, 150);
  }
  ["message.created", "message.read", "message.deleted", "conversation.created", "conversation.participants_added"].forEach(function (t) { CabinetLive.on(t, refresh); });
  CabinetLive.connect(cfg.ws, { onStatus: function (s) { if (s === "live") refresh(); } });
  refresh();
})();
