/* Measures, live on every staff page (docs/realtime.md): a short notice when a client's
 * measure is answered or a form submitted, and a banner that stays until dismissed for a
 * safety alert. (Open lists and charts redraw themselves through live_regions.js.) */
(function () {
  "use strict";
  var cfg = window.CABINET_MEASURES; if (!cfg || !window.CabinetLive || window.CabinetMeasures) return;
  window.CabinetMeasures = true;

  function region() {
    var r = document.getElementById("live-notices");
    if (!r) {
      r = document.createElement("div");
      r.id = "live-notices"; r.className = "live-notices";
      r.setAttribute("aria-live", "polite");
      document.body.appendChild(r);
    }
    return r;
  }

  function notice(text, href, urgent) {
    var box = document.createElement("div");
    box.className = "live-notice" + (urgent ? " urgent" : "");
    box.setAttribute("role", urgent ? "alert" : "status");
    var link = document.createElement("a"); link.href = href; link.textContent = text;
    var close = document.createElement("button");
    close.type = "button"; close.className = "link"; close.textContent = "×";
    close.setAttribute("aria-label", cfg.dismiss);
    close.onclick = function () { box.remove(); };
    box.appendChild(link); box.appendChild(close);
    region().appendChild(box);
    // An alert stays until someone has seen it; a plain notice fades after a while.
    if (!urgent) setTimeout(function () { box.remove(); }, 12000);
  }

  function fill(template, d) {
    return template.replace("%(client)s", d.client_name).replace("%(measure)s", d.measure_name)
      .replace("%(score)s", d.score).replace("%(max)s", d.max_score).replace("%(band)s", cfg.bands[d.measure + "." + d.band] || d.band);
  }

  var href = function (d) { return "/staff/clients/" + d.client_id + "/measures"; };
  CabinetLive.on("measure.completed", function (d) {
    if (!d.safety_alert) notice(fill(cfg.completed, d), href(d), false);
  });
  CabinetLive.on("form.completed", function (d) {
    notice(cfg.form.replace("%(client)s", d.client_name).replace("%(form)s", d.form_name), "/staff/clients/" + d.client_id + "/forms", false);
  });
  CabinetLive.on("measure.alert", function (d) { notice(fill(cfg.alert, d), href(d), true); });
})();
