/* Parts of a page that redraw themselves from the server when an event says they changed:
 * <div id="x" data-live-refresh="measure.completed form.completed" data-client-id="7">.
 * With data-client-id, only events about that client count. The page is fetched again
 * (the same access checks as a reload) and only that element is replaced, so what the
 * person is typing elsewhere on the page stays. */
(function () {
  "use strict";
  if (!window.CabinetLive || window.CabinetLiveRegions) return;
  window.CabinetLiveRegions = true;
  var timer = null, wanted = {};
  function redraw() {
    var ids = Object.keys(wanted); wanted = {};
    fetch(location.pathname + location.search, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        ids.forEach(function (id) {
          var mine = document.getElementById(id), fresh = doc.getElementById(id);
          if (mine && fresh) mine.innerHTML = fresh.innerHTML;
        });
      }).catch(function () {});
  }
  function changed(type, d) {
    Array.prototype.forEach.call(document.querySelectorAll("[data-live-refresh]"), function (el) {
      if (!el.id || el.dataset.liveRefresh.split(" ").indexOf(type) < 0) return;
      if (el.dataset.clientId && (!d || String(d.client_id) !== el.dataset.clientId)) return;
      wanted[el.id] = true;
    });
    if (Object.keys(wanted).length) { clearTimeout(timer); timer = setTimeout(redraw, 100); }
  }
  var types = {};
  Array.prototype.forEach.call(document.querySelectorAll("[data-live-refresh]"), function (el) {
    el.dataset.liveRefresh.split(" ").forEach(function (t) { if (t) types[t] = true; });
  });
  Object.keys(types).forEach(function (t) { CabinetLive.on(t, function (d) { changed(t, d); }); });
})();
