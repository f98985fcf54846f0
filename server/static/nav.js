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

  /* Typing is being there. A session note or a form written for half an hour sends nothing
   * until it is saved, and the idle timeout would end the session under the writer's hands
   * (the socket is closed, the page reloads, the text is gone). So a keystroke in a form
   * touches the session, at most once a minute (the server records it at most that often). */
  var touched = Date.now(), unsaved = false;
  document.addEventListener("input", function (ev) {
    if (!ev.target || !ev.target.form) return;
    unsaved = true;
    if (Date.now() - touched < 60000) return;
    touched = Date.now();
    fetch(cfg.api + "/me", { credentials: "same-origin", headers: { "Accept": "application/json" } }).catch(function () {});
  }, true);
  document.addEventListener("submit", function () { unsaved = false; }, true);

  /* The session ended anyway (away from the desk past the timeout, or signed out in another
   * tab): reloading shows the sign-in page, but not over text that was never saved. */
  function signedOut() {
    if (!unsaved) { location.reload(); return; }
    if (document.querySelector("[data-session-ended]")) return;
    var box = document.createElement("div");
    box.className = "alert error session-ended";
    box.setAttribute("role", "alert");
    box.setAttribute("data-session-ended", "");
    var text = document.createElement("p");
    text.textContent = cfg.ended;
    var link = document.createElement("a");
    link.href = cfg.login; link.target = "_blank"; link.rel = "noopener";
    link.textContent = cfg.signIn;
    box.appendChild(text); box.appendChild(link);
    var main = document.querySelector("main") || document.body;
    main.insertBefore(box, main.firstChild);
  }

  CabinetLive.connect(cfg.ws, { onStatus: function (s) { if (s === "live") refresh(); }, onSignedOut: signedOut });
  refresh();
})();
