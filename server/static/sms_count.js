// Live SMS segment count under each textarea with data-sms-count="<id of the output>".
// Same rules as server/sms.py: GSM-7 160/153 (extension characters count twice), else
// UCS-2 70/67. Placeholders are counted as written; the server's preview shows real values.
(function () {
  "use strict";
  var BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXTENDED = "^{}\\[~]|€\f";
  var LOOKALIKE = { "\u202f": " ", "\u00a0": " ", "\u2009": " ", "’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-" };
  function count(text) {
    text = text.replace(/[\u202f\u00a0\u2009’‘“”–—]/g, function (c) { return LOOKALIKE[c]; });
    var gsm = true, units = 0, i, c;
    for (i = 0; i < text.length; i++) {
      c = text.charAt(i);
      if (BASIC.indexOf(c) >= 0) units += 1;
      else if (EXTENDED.indexOf(c) >= 0) units += 2;
      else { gsm = false; break; }
    }
    if (!gsm) units = text.length; // UTF-16 code units, like the server
    var single = gsm ? 160 : 70, multi = gsm ? 153 : 67;
    var segments = units === 0 ? 0 : units <= single ? 1 : Math.ceil(units / multi);
    return { units: units, encoding: gsm ? "GSM-7" : "UCS-2", segments: segments };
  }
  // The words come translated from the page (staff/templates/sms_count_words.html).
  var words = document.getElementById("sms-count-words");
  var rules = new Intl.PluralRules(document.documentElement.lang || "en");
  function plural(n, what) {
    var form = rules.select(n) === "one" ? "One" : "Other";
    return words.dataset[what + form].replace("{n}", String(n));
  }
  function wire(area) {
    var out = document.getElementById(area.getAttribute("data-sms-count"));
    if (!out) return;
    function update() {
      var r = count(area.value);
      out.textContent = words.dataset.sentence
        .replace("{chars}", plural(r.units, "chars"))
        .replace("{encoding}", r.encoding)
        .replace("{segments}", plural(r.segments, "segments"));
      out.setAttribute("data-segments", String(r.segments));
    }
    area.addEventListener("input", update);
    if (!out.textContent.trim()) update();
  }
  if (words) document.querySelectorAll("textarea[data-sms-count]").forEach(wire);
})();
