/* Cabinet live updates: one websocket per tab, resumed without loss (docs/realtime.md).
 * The last seq seen is kept in sessionStorage so a reconnect (or a reload of the tab)
 * asks only for what it missed. Reconnects back off from 0.5 s to 10 s. */
(function () {
  "use strict";
  // Pages may include this file more than once (the nav and the page): one socket only.
  if (window.CabinetLive) return;
  var handlers = {};

  /* The idle timeout is the person's, not the page's. This page refetches by itself when an
   * event arrives (the unread badge, the conversation list, the agenda, a live region), and
   * each fetch would push the timeout back, so a screen left open on a busy day would never
   * sign itself out. What our scripts fetch after a minute without a key, a click, a touch
   * or a scroll says so (X-Cabinet-Unattended): the server answers without counting it as
   * activity (server/web.py). Only our own paths ("/..."): no header goes to another site. */
  var lastInput = Date.now();
  // Scripts read it too (messaging.js: a message that arrives on an unattended screen is not
  // marked read); a person coming back fires "cabinet:attended" on the document.
  var idle = { after: 60000 };
  function unattended() { return Date.now() - lastInput > idle.after; }
  ["pointerdown", "keydown", "wheel", "touchstart", "input", "scroll"].forEach(function (t) {
    document.addEventListener(t, function () {
      var back = unattended();
      lastInput = Date.now();
      if (back) document.dispatchEvent(new Event("cabinet:attended"));
    }, { capture: true, passive: true });
  });
  var nativeFetch = window.fetch.bind(window);
  window.fetch = function (input, init) {
    if (typeof input === "string" && input.charAt(0) === "/" && input.charAt(1) !== "/" &&
        unattended()) {
      init = Object.assign({}, init || {});
      var headers = new Headers(init.headers || {});
      headers.set("X-Cabinet-Unattended", "1");
      init.headers = headers;
    }
    return nativeFetch(input, init);
  };
  var state = { ws: null, seq: null, url: null, opts: {}, backoff: 500, lastSeen: 0, timer: null };

  function key() { return "cabinet.seq:" + state.url; }

  var statusListeners = [];
  function status(s) {
    state.status = s;
    statusListeners.forEach(function (fn) { try { fn(s); } catch (e) { console.error(e); } });
    document.documentElement.dataset.live = s;
  }

  function open() {
    var stored = sessionStorage.getItem(key());
    if (state.seq === null && stored !== null) state.seq = parseInt(stored, 10);
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var url = proto + location.host + state.url + (state.seq !== null ? "?after=" + state.seq : "");
    var ws = new WebSocket(url);
    state.ws = ws;
    ws.onmessage = function (m) {
      state.lastSeen = Date.now();
      var msg = JSON.parse(m.data);
      if (msg.type === "ready") {
        // A lower seq than ours means the server's history restarted: take its numbering.
        if (state.seq !== null && msg.seq < state.seq) { state.seq = msg.seq; sessionStorage.setItem(key(), String(msg.seq)); }
        state.backoff = 500; status("live");
      }
      if (typeof msg.seq !== "number" && msg.data !== undefined) {
        // Ephemeral pushes (typing, presence) carry no seq: shown once, never resumed.
        var eph = handlers[msg.type] || [];
        for (var j = 0; j < eph.length; j++) { try { eph[j](msg.data, msg); } catch (e) { console.error(e); } }
        return;
      }
      if (typeof msg.seq === "number") {
        if (msg.data !== undefined) {
          if (state.seq !== null && msg.seq <= state.seq) return; // already shown
          state.seq = msg.seq;
          sessionStorage.setItem(key(), String(msg.seq));
          var list = (handlers[msg.type] || []).concat(handlers["*"] || []);
          for (var i = 0; i < list.length; i++) { try { list[i](msg.data, msg); } catch (e) { console.error(e); } }
        } else if (state.seq === null) {
          state.seq = msg.seq;
          sessionStorage.setItem(key(), String(msg.seq));
        }
      }
    };
    ws.onclose = function (ev) {
      if (ev.code === 4001 || ev.code === 4003) return signedOut();
      status("reconnecting");
      if (ev.code === 1006) {
        // A refused handshake (no session any more) reaches the browser as 1006 too: ask the
        // API who we are before retrying, so a signed-out tab goes to the sign-in page.
        var api = state.url.replace(/\/ws$/, "").replace(/^\/staff$/, "") + "/api/me";
        fetch(api, { credentials: "same-origin", headers: { "Accept": "application/json" } })
          .then(function (r) { if (r.status === 401) signedOut(); else retry(); })
          .catch(retry);
        return;
      }
      retry();
    };
  }

  function retry() {
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(open, state.backoff + Math.random() * 250);
    state.backoff = Math.min(state.backoff * 2, 10000);
  }
  // The device says its network went: the page says so at once, not when the heartbeat is
  // missed (up to 50 s of "live" over a dead link); back, it reconnects at once, not after
  // the backoff grown while it was away.
  window.addEventListener("offline", function () {
    if (!state.ws || state.ws.readyState > 1) return;
    status("reconnecting"); // the close below may wait for a handshake that cannot come
    state.ws.close();
  });
  window.addEventListener("online", function () {
    if (!state.url) return;
    state.backoff = 500;
    if (!state.ws || state.ws.readyState === 3) { clearTimeout(state.retryTimer); open(); }
  });

  function signedOut() {
    status("signed-out");
    if (state.opts.onSignedOut) state.opts.onSignedOut(); else location.reload();
  }

  window.CabinetLive = {
    idle: idle,
    unattended: unattended,
    // Several scripts of one page may ask for the socket (the nav badge, the page itself):
    // the first call opens it, later ones only add their status listener.
    connect: function (url, opts) {
      opts = opts || {};
      if (opts.onStatus) { statusListeners.push(opts.onStatus); if (state.status) opts.onStatus(state.status); }
      if (opts.onSignedOut) state.opts.onSignedOut = opts.onSignedOut;
      if (state.url) return;
      state.url = url;
      open();
      // The server sends a heartbeat every 20 s: silence for 50 s means a dead link.
      state.timer = setInterval(function () {
        if (state.ws && state.ws.readyState === 1 && Date.now() - state.lastSeen > 50000) state.ws.close();
      }, 5000);
    },
    on: function (type, fn) { (handlers[type] = handlers[type] || []).push(fn); },
    send: function (obj) { if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify(obj)); },
    csrf: function () { var m = document.querySelector('meta[name="csrf-token"]'); return m ? m.content : ""; }
  };
})();
