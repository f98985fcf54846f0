/* Cabinet's live agenda (staff): a day view with a column per practitioner and a week view
 * with a column per day, drawn in the practice's time zone from GET /api/agenda, and kept
 * current by the "appointment.changed" events of the page's one socket (realtime.js).
 * Events that arrive while a fetch is on its way are held and applied after it, so a change
 * made during the fetch is never lost (docs/realtime.md, "Subscribe before fetching"). */
(function () {
  "use strict";
  var cfg = window.CABINET_AGENDA, T = window.CABINET_AGENDA_I18N;
  if (!cfg || !window.CabinetLive) return;
  var TZ = cfg.timeZone, LANG = document.documentElement.lang || "en";
  var PX_PER_MIN = 1.1, SNAP = 15;
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var state = {
    start: cfg.today, days: 7, practitioner: "", location: "",
    data: null, byId: {}, loading: false, held: [], fetchNo: 0, current: null, chosenClient: null
  };

  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") n.textContent = attrs[k];
      else if (k === "style") n.setAttribute("style", attrs[k]);
      else if (k.slice(0, 2) === "on") n.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) n.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) n.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return n;
  }
  function call(method, path, body) {
    return fetch("/api" + path, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": CabinetLive.csrf() },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      // The server's message is in the reader's language; the browser's ("Failed to fetch")
      // and a proxy's status text ("Bad Gateway") are not: the page's own words instead.
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) { var e = new Error((j.error && j.error.message) || T.unreachable); e.status = r.status; e.body = j; throw e; }
        return j;
      });
    }, function () { var e = new Error(T.unreachable); e.status = 0; e.body = {}; throw e; });
  }

  /* ---- dates in the practice's time zone ---- */
  var partsFmt = new Intl.DateTimeFormat("en-US", { timeZone: TZ, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  // {date: "YYYY-MM-DD", minute: minutes after local midnight} of an instant.
  // Memoised: a busy week asks for the same few thousand instants on every redraw.
  var localCache = {}, cached = 0;
  function local(iso) {
    var hit = localCache[iso];
    if (hit) return hit;
    if (++cached > 20000) { localCache = {}; cached = 1; }
    return (localCache[iso] = localUncached(iso));
  }
  function localUncached(iso) {
    var p = {};
    partsFmt.formatToParts(new Date(iso)).forEach(function (x) { p[x.type] = x.value; });
    return { date: p.year + "-" + p.month + "-" + p.day, minute: parseInt(p.hour, 10) * 60 + parseInt(p.minute, 10) };
  }
  // The UTC instant of a local date and time (two passes settle daylight-saving offsets).
  function toUtc(dateStr, timeStr) {
    var d = dateStr.split("-").map(Number), t = timeStr.split(":").map(Number);
    var want = Date.UTC(d[0], d[1] - 1, d[2], t[0], t[1]);
    var guess = want;
    for (var i = 0; i < 2; i++) {
      var l = local(new Date(guess).toISOString()), ld = l.date.split("-").map(Number);
      var seen = Date.UTC(ld[0], ld[1] - 1, ld[2], Math.floor(l.minute / 60), l.minute % 60);
      guess += want - seen;
    }
    return new Date(guess).toISOString();
  }
  function addDays(dateStr, n) {
    var d = dateStr.split("-").map(Number), x = new Date(Date.UTC(d[0], d[1] - 1, d[2] + n));
    return x.toISOString().slice(0, 10);
  }
  function monday(dateStr) {
    var d = dateStr.split("-").map(Number), wd = new Date(Date.UTC(d[0], d[1] - 1, d[2])).getUTCDay();
    return addDays(dateStr, -((wd + 6) % 7));
  }
  // "14:00" or "2:00 PM", as the reader's locale writes a time of day (the grid and blocks,
  // like the dialogs); hhmm() stays the form fields' value.
  var twelveHour = /h1[12]/.test(new Intl.DateTimeFormat(LANG, { hour: "numeric" }).resolvedOptions().hourCycle || "");
  // "2:00 PM" but "09:00": the hour padded only on a 24-hour clock.
  var HOUR = twelveHour ? "numeric" : "2-digit";
  var clockFmt = new Intl.DateTimeFormat(LANG, { hour: HOUR, minute: "2-digit", timeZone: "UTC" });
  // The hour rail keeps to "2 PM" where a 12-hour clock would not fit its narrow column.
  var hourFmt = twelveHour ? new Intl.DateTimeFormat(LANG, { hour: "numeric", timeZone: "UTC" }) : clockFmt;
  function atMinute(fmt, minute) { return fmt.format(new Date(Date.UTC(2000, 0, 1, Math.floor(minute / 60), minute % 60))); }
  function clock(minute) { return atMinute(clockFmt, minute); }
  function plural(n, forms) { return forms[new Intl.PluralRules(LANG).select(n) === "one" ? 0 : 1]; }
  function hhmm(minute) { var h = Math.floor(minute / 60), m = minute % 60; return (h < 10 ? "0" : "") + h + ":" + (m < 10 ? "0" : "") + m; }
  function dayLabel(dateStr, long) {
    var d = dateStr.split("-").map(Number);
    return new Date(Date.UTC(d[0], d[1] - 1, d[2], 12)).toLocaleDateString(LANG, long ? { weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: "UTC" } : { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
  }
  function timeLabel(iso) { return new Date(iso).toLocaleTimeString(LANG, { hour: HOUR, minute: "2-digit", timeZone: TZ }); }
  function name(list, id) { var f = list.filter(function (x) { return x.id === id; })[0]; return f ? f.name : ""; }

  /* ---- loading and live patches ---- */
  function rangeStart() { return state.days === 7 ? monday(state.start) : state.start; }
  function load() {
    var n = ++state.fetchNo;
    state.loading = true;
    $("#agenda-grid").setAttribute("aria-busy", "true");
    var q = "?start=" + rangeStart() + "&days=" + state.days;
    if (state.practitioner) q += "&practitioner=" + state.practitioner;
    if (state.location) q += "&location=" + state.location;
    return call("GET", "/agenda" + q).then(function (data) {
      if (n !== state.fetchNo) return; // a newer view was asked for meanwhile
      state.data = data; state.byId = {};
      data.appointments.forEach(function (a) { state.byId[a.id] = a; });
      state.loading = false;
      var held = state.held; state.held = [];
      held.forEach(apply);
      $("#agenda-error").hidden = true;
      render();
    }).catch(function () {
      if (n !== state.fetchNo) return;
      var err = $("#agenda-error"); err.textContent = T.load_failed; err.hidden = false;
      setTimeout(function () { if (n === state.fetchNo) load(); }, 3000);
    });
  }
  function visible(a) {
    if (!state.data || a.deleted) return false;
    if (state.practitioner && String(a.practitioner_id) !== String(state.practitioner)) return false;
    if (state.location && String(a.location_id) !== String(state.location)) return false;
    return new Date(a.ends_at) > new Date(state.data.range_start) && new Date(a.starts_at) < new Date(state.data.range_end);
  }
  function apply(a) {
    if (visible(a)) state.byId[a.id] = a; else delete state.byId[a.id];
  }
  CabinetLive.on("appointment.changed", function (a) {
    if (state.loading) { state.held.push(a); return; }
    apply(a); render();
    if (state.current && state.current.id === a.id) { if (a.deleted || a.private) closeDialog($("#appt-dialog")); else showAppointment(a); }
  });
  // Someone changed opening hours or time off: the shaded hours come from a fresh fetch.
  CabinetLive.on("hours.changed", function () { if (!state.loading) load(); });
  CabinetLive.connect("/staff/ws", {
    onStatus: function (s) {
      var n = $("#live-status"); n.dataset.state = s; n.textContent = s === "live" ? T.live_on : T.live_off;
      // Back from a cut: whatever changed meanwhile is in a fresh fetch (and in the replay).
      if (s === "live" && state.data) load();
    }
  });

  /* ---- drawing ---- */
  function columns() {
    var first = rangeStart(), cols = [];
    if (state.days === 1) {
      var people = cfg.practitioners.filter(function (p) { return !state.practitioner || String(p.id) === String(state.practitioner); });
      people.forEach(function (p) { cols.push({ date: first, practitioner: p.id, title: p.name }); });
    } else {
      for (var i = 0; i < 7; i++) cols.push({ date: addDays(first, i), practitioner: null, title: dayLabel(addDays(first, i), false) });
    }
    return cols;
  }
  // The pieces of [start, end) that fall on a column's day, in minutes after its midnight.
  function span(col, startIso, endIso) {
    var s = local(startIso), e = local(endIso);
    var from = s.date < col.date ? 0 : s.date === col.date ? s.minute : null;
    var to = e.date > col.date ? 24 * 60 : e.date === col.date ? e.minute : null;
    if (from === null || to === null) return null;
    if (to <= from && s.date === col.date && e.date === col.date) {
      // The clocks went back inside it (02:30 summer time to 02:30 winter time): drawn for
      // as long as it lasts, over the hour that repeats, rather than not at all.
      to = Math.min(from + (new Date(endIso) - new Date(startIso)) / 60000, 24 * 60);
    }
    if (to <= from) return null;
    return { from: from, to: to };
  }
  // "GMT+2": tells apart the two 02:00 of the night the clocks go back.
  var zoneFmt = new Intl.DateTimeFormat(LANG, { timeZone: TZ, timeZoneName: "short" });
  function zoneLabel(iso) {
    var z = zoneFmt.formatToParts(new Date(iso)).filter(function (x) { return x.type === "timeZoneName"; })[0];
    return z ? z.value : "";
  }
  function inCol(col, item) { return col.practitioner === null || item.practitioner_id === col.practitioner; }

  function render() {
    var grid = $("#agenda-grid"), data = state.data;
    if (!data) return;
    grid.innerHTML = "";
    grid.setAttribute("aria-busy", "false");
    var first = rangeStart();
    $("#agenda-label").textContent = state.days === 1 ? dayLabel(first, true) : T.week_of.replace("%(date)s", dayLabel(first, true));
    Array.prototype.forEach.call(document.querySelectorAll("[data-view]"), function (b) { b.setAttribute("aria-pressed", String(b.dataset.view === String(state.days))); });
    var cols = columns();
    if (!cols.length) { grid.appendChild(el("p", { "class": "empty", text: T.no_practitioners })); return; }
    var appts = Object.keys(state.byId).map(function (k) { return state.byId[k]; });
    // Hours shown: 8:00-19:00 at least, stretched to whatever is open or booked.
    var lo = 8 * 60, hi = 19 * 60;
    cols.forEach(function (col) {
      data.availability.concat(appts.map(function (a) { return { practitioner_id: a.practitioner_id, start: a.starts_at, end: a.ends_at }; })).forEach(function (x) {
        if (!inCol(col, x)) return;
        var sp = span(col, x.start, x.end); if (!sp) return;
        lo = Math.min(lo, Math.floor(sp.from / 60) * 60); hi = Math.max(hi, Math.ceil(sp.to / 60) * 60);
      });
    });
    var height = (hi - lo) * PX_PER_MIN;
    grid.style.setProperty("--cols", cols.length);
    var head = el("div", { "class": "agenda-head" }, [el("div", { "class": "agenda-corner" })]);
    cols.forEach(function (col) {
      head.appendChild(el("div", { "class": "agenda-col-title" + (col.date === cfg.today && state.days === 7 ? " today" : ""), text: col.title }));
    });
    grid.appendChild(head);
    var body = el("div", { "class": "agenda-body", style: "height:" + height + "px" });
    var times = el("div", { "class": "agenda-times" });
    for (var m = lo; m < hi; m += 60) times.appendChild(el("div", { "class": "agenda-hour", style: "top:" + (m - lo) * PX_PER_MIN + "px", text: atMinute(hourFmt, m) }));
    body.appendChild(times);
    cols.forEach(function (col) {
      var c = el("div", { "class": "agenda-col", "data-date": col.date, "data-practitioner": col.practitioner || "" });
      for (var h = lo; h < hi; h += 60) c.appendChild(el("div", { "class": "agenda-line", style: "top:" + (h - lo) * PX_PER_MIN + "px" }));
      data.availability.forEach(function (w) {
        if (!inCol(col, w)) return;
        var sp = span(col, w.start, w.end); if (!sp) return;
        var who = name(cfg.practitioners, w.practitioner_id), where = name(cfg.locations, w.location_id);
        c.appendChild(el("div", {
          "class": "agenda-open" + (w.is_group ? " group" : ""), "data-practitioner": w.practitioner_id,
          title: who + (where ? " · " + where : "") + " · " + clock(sp.from) + "–" + clock(sp.to),
          style: "top:" + (sp.from - lo) * PX_PER_MIN + "px;height:" + (sp.to - sp.from) * PX_PER_MIN + "px",
          onclick: function (ev) {
            var rect = ev.currentTarget.getBoundingClientRect();
            var minute = sp.from + Math.floor((ev.clientY - rect.top) / PX_PER_MIN / SNAP) * SNAP;
            openBooking(col.date, minute, w);
          }
        }));
      });
      data.time_off.forEach(function (t) {
        if (!inCol(col, t)) return;
        var sp = span(col, t.start, t.end); if (!sp) return;
        c.appendChild(el("div", { "class": "agenda-off", title: name(cfg.practitioners, t.practitioner_id), style: "top:" + (Math.max(sp.from, lo) - lo) * PX_PER_MIN + "px;height:" + (Math.min(sp.to, hi) - Math.max(sp.from, lo)) * PX_PER_MIN + "px" }));
      });
      // A colleague's session shown private (its client is not the reader's) only says the
      // time is taken: once cancelled, it says nothing at all.
      layout(appts.filter(function (a) { return inCol(col, a) && span(col, a.starts_at, a.ends_at) && !(a.private && a.attendance !== "scheduled" && a.attendance !== "attended"); }), col).forEach(function (p) {
        c.appendChild(block(p.a, p.sp, lo, p.lane, p.lanes, col));
      });
      body.appendChild(c);
    });
    grid.appendChild(body);
  }
  // Side by side when they overlap: each cluster of overlapping blocks shares the width.
  function layout(list, col) {
    var items = list.map(function (a) { return { a: a, sp: span(col, a.starts_at, a.ends_at) }; })
      .sort(function (x, y) { return x.sp.from - y.sp.from || x.a.id - y.a.id; });
    var out = [], cluster = [], ends = [], clusterEnd = -1;
    function close() { cluster.forEach(function (p) { p.lanes = ends.length; }); cluster = []; ends = []; }
    items.forEach(function (p) {
      if (p.sp.from >= clusterEnd) { close(); clusterEnd = -1; }
      var lane = 0; while (lane < ends.length && ends[lane] > p.sp.from) lane++;
      ends[lane] = p.sp.to; p.lane = lane; clusterEnd = Math.max(clusterEnd, p.sp.to);
      cluster.push(p); out.push(p);
    });
    close();
    return out;
  }
  function block(a, sp, lo, lane, lanes, col) {
    var label = T.attendance[a.attendance] || a.attendance;
    var who = col.practitioner === null && !state.practitioner ? name(cfg.practitioners, a.practitioner_id) : "";
    var where = name(cfg.locations, a.location_id);
    var style = "--cat:" + a.color + ";top:" + (sp.from - lo) * PX_PER_MIN + "px;height:" + Math.max((sp.to - sp.from) * PX_PER_MIN, 18) + "px;left:calc(" + (lane * 100 / lanes) + "% + 2px);width:calc(" + (100 / lanes) + "% - 4px)";
    if (a.private) {
      // Not a button: nothing to open, mark or move (the server answers 404 all the same).
      return el("div", {
        "class": "appt appt-private", "data-appointment-id": a.id, "data-private": "", style: style,
        title: [clock(sp.from) + "–" + clock(sp.to), T.busy, who, where].filter(Boolean).join(" · ")
      }, [
        el("span", { "class": "appt-time", text: clock(sp.from) }),
        el("span", { "class": "appt-client", text: T.busy + (who ? " · " + who : "") })
      ]);
    }
    var b = el("button", {
      type: "button", "class": "appt att-" + a.attendance, "data-appointment-id": a.id, "data-attendance": a.attendance,
      style: style,
      title: [clock(sp.from) + "–" + clock(sp.to), a.client_name, a.service_name, who, where, label].filter(Boolean).join(" · "),
      onclick: function () { showAppointment(state.byId[a.id] || a); }
    }, [
      el("span", { "class": "appt-time", text: clock(sp.from) }),
      el("span", { "class": "appt-client", text: a.client_name }),
      el("span", { "class": "appt-service", text: a.service_name + (who ? " · " + who : "") }),
      a.attendance !== "scheduled" ? el("span", { "class": "appt-att", "data-attendance-label": "", text: label }) : null,
      // Earlier-slot alerts: the freed slot is out to the waiting list (then booked, live).
      a.slot_offer === "offered" ? el("span", { "class": "appt-offer", "data-slot-offered": "", text: T.slot_offered }) : null
    ]);
    return b;
  }

  /* ---- dialogs ---- */
  function openDialog(d) { if (!d.open) d.showModal(); }
  function closeDialog(d) { if (d.open) d.close(); if (d.id === "appt-dialog") state.current = null; }
  function showErrors(form, err) {
    var box = $(".form-errors", form); box.innerHTML = "";
    Array.prototype.forEach.call(form.querySelectorAll(".field-error"), function (n) { n.remove(); });
    if (!err) return;
    box.appendChild(el("p", { "class": "alert error", role: "alert", text: err.message }));
    var fields = (err.body && err.body.error && err.body.error.fields) || {};
    Object.keys(fields).forEach(function (f) {
      var input = form.querySelector('[data-field-for="' + f + '"]') || form.querySelector('[name="' + f + '"]');
      if (input) input.insertAdjacentElement("afterend", el("span", { "class": "field-error", text: fields[f] }));
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("dialog [data-close]"), function (b) {
    b.addEventListener("click", function () { closeDialog(b.closest("dialog")); });
  });

  // Booking: from a click on open hours, prefilled with its practitioner, place and time.
  var book = $("#book-dialog"), bookForm = $("form", book);
  function openBooking(dateStr, minute, w) {
    showErrors(bookForm, null);
    state.chosenClient = null;
    $("#book-client-chosen").textContent = ""; $("#book-client-search").value = ""; $("#book-client-results").innerHTML = "";
    bookForm.practitioner_id.value = String(w.practitioner_id);
    bookForm.location_id.value = w.location_id ? String(w.location_id) : "";
    var offered = cfg.services.filter(function (s) { return w.service_ids.indexOf(s.id) >= 0; });
    if (offered.length) bookForm.service_id.value = String(offered[0].id);
    bookForm.date.value = dateStr; bookForm.time.value = hhmm(minute); chosenSlot = null;
    bookForm.confirm_sms.checked = false; smsDefault();
    openDialog(book);
    freeTimes();
    $("#book-client-search").focus();
  }
  var searchTimer = null;
  $("#book-client-search").addEventListener("input", function () {
    clearTimeout(searchTimer);
    var q = this.value.trim();
    searchTimer = setTimeout(function () {
      var ul = $("#book-client-results"); ul.innerHTML = "";
      if (!q) return;
      call("GET", "/clients?q=" + encodeURIComponent(q)).then(function (res) {
        ul.innerHTML = "";
        if (!res.clients.length) ul.appendChild(el("li", { "class": "muted", text: T.no_clients }));
        res.clients.slice(0, 10).forEach(function (c) {
          var full = c.first_name + " " + c.last_name;
          ul.appendChild(el("li", {}, [el("button", { type: "button", "class": "link", "data-client-id": c.id, onclick: function () {
            state.chosenClient = c.id; $("#book-client-chosen").textContent = full; ul.innerHTML = ""; $("#book-client-search").value = full;
          } }, [full])]));
        });
      }).catch(function () {});
    }, 200);
  });
  // The free times of the chosen service that day (server/queries/agenda.py free_slots).
  var chosenSlot = null;
  function startsAt(form) {
    var c = chosenSlot;
    return c && c.date === form.date.value && c.time === form.time.value ? c.start : toUtc(form.date.value, form.time.value);
  }
  function freeTimes() {
    var box = $("#book-free"); box.innerHTML = "";
    var p = bookForm.practitioner_id.value, s = bookForm.service_id.value, d = bookForm.date.value;
    if (!p || !s || !d) return;
    var q = "/agenda/slots?practitioner=" + p + "&service=" + s + "&start=" + d + "&days=1";
    if (bookForm.location_id.value) q += "&location=" + bookForm.location_id.value;
    call("GET", q).then(function (slots) {
      box.innerHTML = "";
      if (!slots.length) { box.appendChild(el("span", { "class": "muted small", text: T.no_free })); return; }
      box.appendChild(el("span", { "class": "small", text: T.free_times + " " }));
      var seen = {};
      slots.forEach(function (slot) { var t = hhmm(local(slot.start).minute); seen[t] = (seen[t] || 0) + 1; });
      slots.forEach(function (slot) {
        var l = local(slot.start), t = hhmm(l.minute);
        box.appendChild(el("button", { type: "button", "class": "small", "data-start": slot.start, title: slot.is_group ? plural(slot.places_left, T.places_left).replace("%(num)s", slot.places_left) : null, onclick: function () {
          bookForm.time.value = t;
          // The very instant, for a time that happens twice that night.
          chosenSlot = { date: l.date, time: t, start: slot.start };
        } }, [seen[t] > 1 ? clock(l.minute) + " " + zoneLabel(slot.start) : clock(l.minute)]));
      });
    }).catch(function () {});
  }
  ["practitioner_id", "service_id", "date", "location_id"].forEach(function (f) { bookForm[f].addEventListener("change", freeTimes); });
  // "Confirm by SMS": the practitioner's default template preselected.
  function smsDefault() { bookForm.sms_template_id.value = String((cfg.sms_defaults || {})[bookForm.practitioner_id.value] || ""); }
  bookForm.practitioner_id.addEventListener("change", smsDefault);
  bookForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (!state.chosenClient) { showErrors(bookForm, { message: T.choose_client, body: { error: { fields: { client_id: T.choose_client } } } }); return; }
    var body = {
      practitioner_id: Number(bookForm.practitioner_id.value), client_id: state.chosenClient,
      service_id: Number(bookForm.service_id.value), location_id: bookForm.location_id.value ? Number(bookForm.location_id.value) : null,
      starts_at: startsAt(bookForm),
      alert_earlier: !!(bookForm.alert_earlier && bookForm.alert_earlier.checked),
      confirm_sms: bookForm.confirm_sms.checked,
      sms_template_id: bookForm.confirm_sms.checked && bookForm.sms_template_id.value ? Number(bookForm.sms_template_id.value) : null
    };
    call("POST", "/appointments", body).then(function (a) { apply(a); render(); closeDialog(book); })
      .catch(function (err) { showErrors(bookForm, err); });
  });

  // An appointment: attendance, move, delete.
  var appt = $("#appt-dialog"), moveForm = $("#move-form");
  function showAppointment(a) {
    state.current = a;
    var box = $(".stack", appt); showErrors(box, null);
    var l = local(a.starts_at);
    $("#appt-title").textContent = a.client_name + " · " + a.service_name;
    $("#appt-detail").textContent = [dayLabel(l.date, true) + " " + timeLabel(a.starts_at) + "–" + timeLabel(a.ends_at), name(cfg.practitioners, a.practitioner_id), name(cfg.locations, a.location_id)].filter(Boolean).join(" · ");
    $("#appt-attendance").textContent = T.attendance[a.attendance] || a.attendance;
    Array.prototype.forEach.call(appt.querySelectorAll("[data-attendance]"), function (b) {
      b.hidden = b.dataset.attendance === a.attendance || a.attendance === "moved" || (b.dataset.attendance !== "scheduled" && a.attendance !== "scheduled" && !(a.attendance === "attended" && b.dataset.attendance === "no_show") && !(a.attendance === "no_show" && b.dataset.attendance === "attended"));
    });
    moveForm.hidden = a.attendance !== "scheduled";
    showEarlierSlot(a);
    $("#appt-bill").action = "/staff/clients/" + a.client_id + "/bill";
    var note = $("#appt-note");
    note.hidden = String(a.practitioner_id) !== String(cfg.me) || (a.attendance !== "attended" && a.attendance !== "scheduled");
    $("[data-note-link]", note).href = "/staff/appointments/" + a.id + "/note";
    moveForm.date.value = l.date; moveForm.time.value = hhmm(l.minute);
    openDialog(appt);
  }
  Array.prototype.forEach.call(appt.querySelectorAll("[data-attendance]"), function (b) {
    b.addEventListener("click", function () {
      var a = state.current; if (!a) return;
      call("POST", "/appointments/" + a.id + "/attendance", { attendance: b.dataset.attendance })
        .then(function (res) { apply(res); render(); showAppointment(res); })
        .catch(function (err) { showErrors($(".stack", appt), err); });
    });
  });
  // Earlier-slot alerts: the waiting-list switch of a scheduled appointment, and for a freed
  // one, to whom its slot was offered (GET /api/appointments/{id}/offers).
  var alertBox = $("#appt-alert"), offersBox = $("#appt-offers");
  function showEarlierSlot(a) {
    if (alertBox) {
      alertBox.hidden = !cfg.earlier_slot_alerts || a.attendance !== "scheduled" || a.is_group;
      $("input", alertBox).checked = !!a.alert_earlier;
    }
    if (!offersBox) return;
    offersBox.innerHTML = "";
    if (a.attendance === "scheduled" || a.attendance === "attended") return;
    call("GET", "/appointments/" + a.id + "/offers").then(function (rows) {
      if (!state.current || state.current.id !== a.id) return;
      offersBox.innerHTML = "";
      var any = rows.some(function (r) { return r.offers.length; });
      offersBox.appendChild(el("h3", { text: T.offered_to }));
      if (!any) { offersBox.appendChild(el("p", { "class": "muted small", text: a.slot_offer === "waiting" ? T.offer_waiting : a.slot_offer === "closed" ? T.offer_closed : T.offered_nobody })); return; }
      rows.forEach(function (r) {
        if (!r.offers.length) return;
        offersBox.appendChild(el("p", { "class": "small", text: (r.client_name || T.another_client) + " · " + (T.attendance[r.attendance] || r.attendance) }));
        offersBox.appendChild(el("ul", { "class": "offer-list", "data-offers-of": r.appointment_id }, r.offers.map(function (o) {
          var when = dayLabel(local(o.sent_at).date) + " " + timeLabel(o.sent_at);
          var answered = o.answered_at ? " → " + dayLabel(local(o.answered_at).date) + " " + timeLabel(o.answered_at) : "";
          return el("li", { "data-offer-status": o.status }, [(o.client_name || T.another_client) + " · " + (T.offer_status[o.status] || o.status) + " · " + when + answered]);
        })));
      });
    }).catch(function () {});
  }
  if (alertBox) $("input", alertBox).addEventListener("change", function () {
    var a = state.current, box = $(".stack", appt); if (!a) return;
    var input = this;
    call("POST", "/appointments/" + a.id + "/earlier-alert", { on: input.checked })
      .then(function (res) { a.alert_earlier = res.alert_earlier; showErrors(box, null); })
      .catch(function (err) { input.checked = !input.checked; showErrors(box, err); });
  });
  moveForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var a = state.current; if (!a) return;
    call("POST", "/appointments/" + a.id + "/move", { starts_at: toUtc(moveForm.date.value, moveForm.time.value) })
      .then(function (res) { apply(res); render(); closeDialog(appt); })
      .catch(function (err) { showErrors($(".stack", appt), err); });
  });
  $("#appt-delete").addEventListener("click", function () {
    var a = state.current; if (!a || !window.confirm(T.confirm_delete)) return;
    call("DELETE", "/appointments/" + a.id).then(function () { delete state.byId[a.id]; render(); closeDialog(appt); })
      .catch(function (err) { showErrors($(".stack", appt), err); });
  });

  /* ---- toolbar ---- */
  function go(n) { state.start = addDays(rangeStart(), n * state.days); load(); }
  $("#agenda-prev").addEventListener("click", function () { go(-1); });
  $("#agenda-next").addEventListener("click", function () { go(1); });
  $("#agenda-today").addEventListener("click", function () { state.start = cfg.today; load(); });
  Array.prototype.forEach.call(document.querySelectorAll("[data-view]"), function (b) {
    b.addEventListener("click", function () {
      var first = rangeStart();
      state.days = Number(b.dataset.view);
      // From a week to a day: today if it is in that week, else the week's Monday.
      if (state.days === 1) state.start = monday(cfg.today) === first ? cfg.today : first;
      load();
    });
  });
  $("#agenda-practitioner").addEventListener("change", function () { state.practitioner = this.value; load(); });
  $("#agenda-location").addEventListener("change", function () { state.location = this.value; load(); });

  // The view is in the address, so a reload or a shared link opens the same agenda.
  var params = new URLSearchParams(location.search);
  if (/^\d{4}-\d{2}-\d{2}$/.test(params.get("date") || "")) state.start = params.get("date");
  if (params.get("view") === "day") state.days = 1;
  if (params.get("practitioner")) { state.practitioner = params.get("practitioner"); $("#agenda-practitioner").value = state.practitioner; }
  if (params.get("location")) { state.location = params.get("location"); $("#agenda-location").value = state.location; }
  load();
})();
