/* Cabinet secure messaging, shared by the staff app and the client portal.
 * Everything arrives through the API and the live socket (realtime.js); nothing is cached
 * beyond the page. Strings come translated from the page (window.CABINET_I18N). */
(function () {
  "use strict";
  var cfg = window.CABINET_MESSAGING, T = window.CABINET_I18N;
  var api = cfg.apiBase, state = { list: [], total: 0, open: null, thread: null, typingTimer: null, lastTyping: 0, drafts: {} };
  var $ = function (sel, root) { return (root || document).querySelector(sel); };

  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") n.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") n.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) n.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) n.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return n;
  }
  function call(method, path, body) {
    return fetch(api + path, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": CabinetLive.csrf() },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      // The server's message is in the reader's language; the browser's ("Failed to fetch")
      // and a proxy's status text ("Bad Gateway") are not: the page's own words instead.
      return r.json().catch(function () { return {}; }).then(function (j) { if (!r.ok) { var e = new Error((j.error && j.error.message) || T.unreachable); e.status = r.status; e.body = j; throw e; } return j; });
    }, function () { var e = new Error(T.unreachable); e.status = 0; e.body = {}; throw e; });
  }
  function fmtTime(iso) { return new Date(iso).toLocaleString(document.documentElement.lang, { dateStyle: "short", timeStyle: "short", timeZone: cfg.timeZone }); }
  // Messages show their time; the day is a heading above the first message of each day,
  // both in the practice's zone.
  function fmtClock(iso) { return new Date(iso).toLocaleTimeString(document.documentElement.lang, { timeStyle: "short", timeZone: cfg.timeZone }); }
  function dayKey(iso) { return new Date(iso).toLocaleDateString("en-CA", { timeZone: cfg.timeZone }); }
  function dayLabel(iso) {
    var key = dayKey(iso), lang = document.documentElement.lang, now = Date.now();
    for (var ago = 0; ago < 2; ago++) {
      // Noon-to-noon steps would miss a day around a clock change; whole days of 24 h from
      // now, compared by their date in the zone, do not.
      if (dayKey(new Date(now - ago * 864e5).toISOString()) === key && window.Intl && Intl.RelativeTimeFormat) {
        var word = new Intl.RelativeTimeFormat(lang, { numeric: "auto" }).format(-ago, "day");
        return word.charAt(0).toUpperCase() + word.slice(1);
      }
    }
    var sameYear = key.slice(0, 4) === dayKey(new Date(now).toISOString()).slice(0, 4);
    return new Date(iso).toLocaleDateString(lang, { weekday: "long", day: "numeric", month: "long", year: sameYear ? undefined : "numeric", timeZone: cfg.timeZone });
  }
  function daySeparator(iso) { return el("li", { "class": "day", "data-day": dayKey(iso) }, [el("h3", { text: dayLabel(iso) })]); }
  // The messages of a thread, each day's first one preceded by the day's heading.
  function withDays(messages) {
    var nodes = [], last = null;
    messages.forEach(function (m) {
      var key = dayKey(m.created_at);
      if (key !== last) { nodes.push(daySeparator(m.created_at)); last = key; }
      nodes.push(messageNode(m));
    });
    return nodes;
  }
  function uid() { return (crypto.randomUUID ? crypto.randomUUID() : (Date.now() + "-" + Math.random().toString(16).slice(2))); }
  function title(c) { return c.group_name ? c.group_name + " · " + c.subject : c.subject; }
  function others(c) { return c.participants.filter(function (p) { return !isMe(p) && !p.left; }).map(function (p) { return p.name; }).join(", "); }
  function isMe(p) { return cfg.isStaff ? p.staff_id === cfg.meId : p.portal_account_id === cfg.meId; }

  /* ---- conversation list ---- */
  // Unread counts always come from the server: a live event only asks for a fresh list, so a
  // replayed event (after a reconnect or a reload) can never count a message twice.
  var listSeq = 0, listTimer = null, baseTitle = document.title;
  function loadList() {
    var q = $("#conv-search") ? $("#conv-search").value : "";
    var waiting = $("#conv-waiting") && $("#conv-waiting").checked ? "1" : "";
    var n = ++listSeq;
    return call("GET", "/conversations?q=" + encodeURIComponent(q) + (waiting ? "&waiting=1" : "")).then(function (data) {
      if (n !== listSeq) return; // an older answer arriving late
      state.list = data.conversations; state.total = data.unread_total; renderList();
      // The conversation on screen is being read: whatever arrived in it is read now.
      if (state.thread && !document.hidden && state.list.some(function (c) { return c.id === state.thread.conversation.id && c.unread; })) markRead();
    });
  }
  function refreshList() { clearTimeout(listTimer); listTimer = setTimeout(loadList, 50); }
  function renderList() {
    var ul = $("#conv-list"); ul.innerHTML = "";
    var total = state.total;
    $("#unread-total").textContent = total ? String(total) : "";
    $("#unread-total").hidden = !total;
    document.title = (total ? "(" + total + ") " : "") + baseTitle;
    if (!state.list.length) ul.appendChild(el("li", { "class": "empty", text: T.no_conversations }));
    state.list.forEach(function (c) {
      var li = el("li", { "class": "conv" + (state.open === c.id ? " open" : "") + (c.unread ? " unread" : ""), "data-id": c.id }, [
        // Found by a search in its messages: it opens at the newest one that matched.
        el("button", { type: "button", onclick: function () { openThread(c.id, c.match_id); } }, [
          el("span", { "class": "conv-title", text: title(c) }),
          c.unread ? el("span", { "class": "badge", "data-unread": c.unread, text: String(c.unread) }) : null,
          el("span", { "class": "conv-who", text: others(c) }),
          el("span", { "class": "conv-time", text: fmtTime(c.last_activity_at) }),
          cfg.isStaff && c.awaiting_staff ? el("span", { "class": "tag", text: T.awaiting }) : null
        ])
      ]);
      ul.appendChild(li);
    });
  }

  /* ---- thread ---- */
  function openThread(id, matchId) {
    // Drawn again (back live after a drop, people added): the reader keeps the older pages
    // loaded and their place in them, where a redraw threw them back to the newest message.
    var place = state.thread && state.thread.conversation.id === id ? readerPlace() : null;
    if (matchId) place = { oldest: Math.min(matchId, place ? place.oldest : matchId), match: matchId };
    state.open = id;
    history.replaceState(null, "", "?c=" + id);
    document.body.classList.add("thread-open");
    return call("GET", "/conversations/" + id).then(function (t) {
      return place ? olderUntil(t, place.oldest) : t;
    }).then(function (t) {
      if (state.open !== id) return; // another conversation was chosen meanwhile
      state.thread = t; renderThread(place); markRead();
      renderList();
    }).catch(function (e) { if (e.status === 404 && state.open === id) closeThread(); });
  }
  // Where the reader is in the thread on screen: at its end, or the first message in view and
  // how far below the list's top it stands; and the oldest message loaded.
  function readerPlace() {
    var list = $("#messages"), t = state.thread;
    if (!list || !t.messages.length) return null;
    var place = { oldest: t.messages[0].id, atEnd: list.scrollHeight - list.scrollTop - list.clientHeight < 40 };
    if (place.atEnd) return place;
    var top = list.getBoundingClientRect().top;
    var seen = Array.prototype.find.call(list.querySelectorAll(".msg"), function (n) { return n.getBoundingClientRect().bottom > top; });
    if (seen) { place.id = seen.dataset.id; place.offset = seen.getBoundingClientRect().top - top; }
    return place;
  }
  // The page before ``t``'s oldest message, put before its messages (those not there
  // already); resolves to the ones added.
  function fetchOlder(t) {
    return call("GET", "/conversations/" + t.conversation.id + "?before=" + t.messages[0].id).then(function (page) {
      var known = {}; t.messages.forEach(function (m) { known[m.id] = true; });
      var older = page.messages.filter(function (m) { return !known[m.id]; });
      t.messages = older.concat(t.messages); t.has_more = page.has_more;
      return older;
    });
  }
  // The pages before ``t``'s until the message ``oldest`` is in it again.
  function olderUntil(t, oldest) {
    if (!t.has_more || !t.messages.length || t.messages[0].id <= oldest) return t;
    return fetchOlder(t).then(function (older) { return older.length ? olderUntil(t, oldest) : t; });
  }
  // Back to the list (phones): the conversation is no longer on screen, so nothing arriving in
  // it may be marked read.
  var emptyThread = $("#thread").innerHTML;
  function closeThread() {
    state.open = null; state.thread = null;
    document.body.classList.remove("thread-open");
    history.replaceState(null, "", location.pathname);
    $("#thread").innerHTML = emptyThread; delete $("#thread").dataset.conv;
    renderList();
  }
  function statusOf(m) {
    if (!isMe(m.sender)) return null;
    var readers = m.reads || [];
    if (!readers.length) return el("span", { "class": "status unread", "data-status": "unread", text: T.unread });
    var others = state.thread.participants.filter(function (p) { return !isMe(p) && !p.left; }).length;
    if (others <= 1) return el("span", { "class": "status read", "data-status": "read", title: fmtTime(readers[0].read_at), text: T.read });
    return el("span", { "class": "status read", "data-status": "read", text: T.read_by + " " + readers.map(function (r) { return r.name + " (" + fmtTime(r.read_at) + ")"; }).join(", ") });
  }
  function messageNode(m) {
    var mine = isMe(m.sender);
    var menu = el("details", { "class": "msg-menu" }, [
      el("summary", { "aria-label": T.actions, text: "⋯" }),
      el("div", { "class": "menu" }, [
        el("button", { type: "button", "data-action": "copy", onclick: function () { copyText(m.body); this.closest("details").open = false; }, text: T.copy }),
        mine && !(m.reads || []).length ? el("button", { type: "button", "class": "danger", "data-action": "delete", onclick: function () { this.closest("details").open = false; deleteMessage(m); }, text: T.delete }) : null,
        cfg.isStaff && m.sender.role !== "staff" ? el("button", { type: "button", "data-action": "task", onclick: function () { this.closest("details").open = false; openTaskDialog(m); }, text: T.create_task }) : null
      ])
    ]);
    menu.addEventListener("toggle", placeMenu);
    return el("li", { "class": "msg" + (mine ? " mine" : ""), "data-id": m.id }, [
      el("div", { "class": "msg-head" }, [el("strong", { text: m.sender.name }), el("time", { datetime: m.created_at, title: fmtTime(m.created_at), text: fmtClock(m.created_at) }), menu]),
      bodyNode(m.body),
      statusOf(m)
    ]);
  }
  /* A message's text, its web addresses made links. Built from text nodes and <a> elements,
     never from HTML: a message cannot inject markup. Only http(s) addresses become links
     (never javascript: or data:), opened in a new tab that gets no hold on this page. */
  var ADDRESS = /\bhttps?:\/\/[^\s<>"]+/gi;
  function bodyNode(text) {
    var box = el("div", { "class": "msg-body" }), at = 0, match;
    ADDRESS.lastIndex = 0;
    while ((match = ADDRESS.exec(text))) {
      var href = trimAddress(match[0]), url = null;
      try { url = new URL(href); } catch (e) { url = null; }
      if (!url || (url.protocol !== "https:" && url.protocol !== "http:") || !url.hostname) continue;
      box.appendChild(document.createTextNode(text.slice(at, match.index)));
      box.appendChild(el("a", { href: href, target: "_blank", rel: "noopener noreferrer", text: href }));
      at = match.index + href.length;
    }
    box.appendChild(document.createTextNode(text.slice(at)));
    return box;
  }
  // The punctuation closing a sentence or a bracket is not part of the address before it:
  // "(see https://x.org/a)." links https://x.org/a.
  function trimAddress(href) {
    for (;;) {
      var last = href.slice(-1);
      if (".,;:!?'\"".indexOf(last) >= 0) href = href.slice(0, -1);
      else if (last === ")" && href.split("(").length < href.split(")").length) href = href.slice(0, -1);
      else if (last === "]" && href.split("[").length < href.split("]").length) href = href.slice(0, -1);
      else return href;
    }
  }
  // A menu opens upwards when there is no room below it in the message list.
  function placeMenu() {
    var d = this; d.classList.remove("up"); if (!d.open) return;
    var box = d.querySelector(".menu"), list = d.closest(".messages"); if (!list) return;
    var r = box.getBoundingClientRect(), l = list.getBoundingClientRect();
    if (r.bottom > l.bottom && r.top - l.top > r.height + d.offsetHeight) d.classList.add("up");
  }
  // The id of the message whose menu is open under ``root``, if any.
  function openMenuId(root) {
    var d = root.querySelector("details.msg-menu[open]"); return d ? d.closest(".msg").dataset.id : null;
  }
  function reopenMenu(root, id) {
    var d = id && root.querySelector('.msg[data-id="' + id + '"] details.msg-menu'); if (d) d.open = true;
  }
  function renderThread(place) {
    var t = state.thread, box = $("#thread");
    var hadFocus = document.activeElement && document.activeElement.id === "composer-text";
    // A redraw of the same conversation (back live, people added) leaves an open message menu
    // or participants panel open: it must not close under the pointer of someone using it.
    var same = box.dataset.conv === String(t.conversation.id);
    var menuId = same ? openMenuId(box) : null, panelOpen = same && !!box.querySelector("details.participants[open]");
    box.innerHTML = ""; box.dataset.conv = t.conversation.id;
    var staffN = t.counts.staff, clientN = t.counts.clients + t.counts.linked;
    var head = el("header", { "class": "thread-head" }, [
      el("button", { type: "button", "class": "back", "aria-label": T.back, title: T.back, onclick: closeThread, text: "←" }),
      el("div", {}, [el("h2", { text: title(t.conversation) }), el("p", { "class": "muted small", text: others({ participants: t.participants }) })]),
      // A questionnaire for the client of this conversation, sent from their file.
      cfg.isStaff && t.conversation.client_id ? el("a", { "class": "button small", "data-send-measure": "", href: "/staff/clients/" + t.conversation.client_id + "/measures#send", text: T.send_measure }) : null,
      cfg.isStaff && t.conversation.client_id ? el("a", { "class": "button small", "data-send-form": "", href: "/staff/clients/" + t.conversation.client_id + "/forms#send-form", text: T.send_form }) : null,
      el("details", { "class": "participants", open: panelOpen ? "open" : null }, [
        el("summary", { text: T.show_participants }),
        el("div", { "class": "panel" }, [
          el("p", { "class": "small", text: T.counts.replace("%(clients)s", clientN).replace("%(staff)s", staffN) }),
          el("ul", {}, t.participants.map(function (p) {
            var dot = p.online === null || p.online === undefined ? null : el("span", { "class": "dot" + (p.online ? " on" : ""), "data-presence": p.staff_id, title: p.online ? T.online : T.offline });
            // Someone who left (a linked account unlinked from the client) stays listed for
            // the messages they wrote, marked so nobody thinks they still read along.
            return el("li", p.left ? { "data-left": "" } : {}, [dot, p.name + " ", el("span", { "class": "muted small", text: T.roles[p.role] + (p.left ? " · " + T.left : "") })]);
          })),
          cfg.isStaff ? el("button", { type: "button", onclick: openAddDialog, text: T.add_participants }) : null
        ])
      ])
    ]);
    // A log: a screen reader announces each message added, not the history on opening.
    var list = el("ol", { "class": "messages", id: "messages", role: "log", "aria-live": "polite", "aria-label": T.messages }, [t.has_more ? earlierNode() : null].concat(withDays(t.messages)));
    list.addEventListener("scroll", function () { if (list.scrollTop < 150) loadOlder(); }, { passive: true });
    var typing = el("p", { "class": "typing muted small", id: "typing", "aria-live": "polite" });
    var note = el("div", { id: "thread-notice", hidden: "hidden" });
    var composer = el("form", { "class": "composer", id: "composer" }, [
      // No maxlength: it cut a long paste short, silently. send() says the text is too long.
      el("textarea", { id: "composer-text", rows: "2", placeholder: touch ? T.write_touch : T.write, "aria-label": touch ? T.write_touch : T.write }),
      el("button", { type: "submit", "class": "primary", text: T.send })
    ]);
    composer.addEventListener("submit", function (e) { e.preventDefault(); send(); });
    var ta = composer.querySelector("textarea");
    // A draft survives a redraw (participants added, reconnect) and a switch of conversation.
    ta.value = state.drafts[t.conversation.id] || "";
    // Enter while an input method is composing (accents, Asian scripts) is not a send; nor
    // on a touch screen, whose keyboard has no Shift+Enter: return is a new line there.
    ta.addEventListener("keydown", function (e) { if (e.key === "Enter" && !touch && !e.shiftKey && !e.isComposing && e.keyCode !== 229) { e.preventDefault(); send(); } });
    ta.addEventListener("input", function () {
      state.drafts[t.conversation.id] = ta.value;
      if (ta.value.trim() && Date.now() - state.lastTyping > 2500) { state.lastTyping = Date.now(); call("POST", "/conversations/" + t.conversation.id + "/typing").catch(function () {}); }
    });
    reopenMenu(list, menuId);
    box.appendChild(head); box.appendChild(list); box.appendChild(typing); box.appendChild(note); box.appendChild(composer);
    var anchor = place && !place.atEnd && place.id && list.querySelector('.msg[data-id="' + place.id + '"]');
    var found = place && place.match && list.querySelector('.msg[data-id="' + place.match + '"]');
    if (found) {
      // The message a search found, in the middle of the list and marked until the next search.
      found.classList.add("match");
      list.scrollTop += found.getBoundingClientRect().top - list.getBoundingClientRect().top - (list.clientHeight - found.offsetHeight) / 2;
    } else if (anchor) list.scrollTop += anchor.getBoundingClientRect().top - list.getBoundingClientRect().top - place.offset;
    else list.scrollTop = list.scrollHeight;
    if (hadFocus) ta.focus({ preventScroll: true });
  }
  /* A thread opens at its newest page; the pages before come when the reader scrolls to the
     top (or presses the button, from the keyboard), the message being read staying where
     it is on the screen. */
  function earlierNode() { return el("li", { "class": "earlier" }, [el("button", { type: "button", "class": "small", onclick: loadOlder, text: T.earlier })]); }
  function loadOlder() {
    var t = state.thread, list = $("#messages");
    if (!t || !t.has_more || t.loadingOlder || !list || !t.messages.length) return;
    t.loadingOlder = true;
    fetchOlder(t).then(function (older) {
      t.loadingOlder = false;
      if (state.thread !== t) return; // redrawn or closed meanwhile
      var height = list.scrollHeight, top = list.scrollTop;
      var button = list.querySelector(".earlier"), hadFocus = button && button.contains(document.activeElement);
      if (button) button.remove();
      // The day the older page ends on already has its heading, above the newer messages.
      var firstDay = list.querySelector(".day");
      if (firstDay && older.length && dayKey(older[older.length - 1].created_at) === firstDay.dataset.day) firstDay.remove();
      var nodes = [t.has_more ? earlierNode() : null].concat(withDays(older)), first = list.firstChild;
      nodes.forEach(function (n) { if (n) list.insertBefore(n, first); });
      list.scrollTop = top + (list.scrollHeight - height);
      // The keyboard stays on the button, or on the oldest message once all are there.
      if (hadFocus) {
        var next = list.querySelector(".earlier button") || list.querySelector(".msg");
        if (next.tagName !== "BUTTON") next.setAttribute("tabindex", "-1");
        next.focus({ preventScroll: true });
      }
    }, function (e) { t.loadingOlder = false; notice(e.message, true); });
  }
  // Feedback under the thread: a success fades, an error stays until the next action.
  function notice(text, isError) {
    var old = $("#thread-notice"); if (!old) { if (isError) alert(text); return; }
    var n = el("div", { id: "thread-notice", "class": "thread-notice alert " + (isError ? "error" : "ok"), role: isError ? "alert" : "status", text: text });
    old.replaceWith(n);
    clearTimeout(state.noticeTimer);
    if (!isError) state.noticeTimer = setTimeout(function () { n.hidden = true; }, 3000);
  }
  function copyText(text) {
    function done() { notice(T.copied); }
    function fallback() { if (legacyCopy(text)) done(); else notice(T.copy_failed, true); }
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
    else fallback();
  }
  function legacyCopy(text) {
    var ta = el("textarea", { readonly: "readonly", style: "position:fixed;top:0;opacity:0" }); ta.value = text;
    document.body.appendChild(ta); ta.select();
    var ok = false; try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    ta.remove(); return ok;
  }
  function appendMessage(m) {
    var list = $("#messages"); if (!list) return;
    var atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    var days = list.querySelectorAll(".day"), lastDay = days.length ? days[days.length - 1].dataset.day : null;
    if (lastDay !== dayKey(m.created_at)) list.appendChild(daySeparator(m.created_at));
    list.appendChild(messageNode(m));
    // Someone reading older messages is not pulled down, unless the new message is their own.
    if (atBottom || isMe(m.sender)) list.scrollTop = list.scrollHeight;
  }
  function removeMessage(id) {
    if (!state.thread) return;
    state.thread.messages = state.thread.messages.filter(function (m) { return m.id !== id; });
    var node = document.querySelector('.msg[data-id="' + id + '"]'); if (!node) return;
    // A day left with no message loses its heading.
    var before = node.previousElementSibling, after = node.nextElementSibling;
    node.remove();
    if (before && before.classList.contains("day") && (!after || after.classList.contains("day"))) before.remove();
  }
  // A phone or tablet (no mouse): the Send button sends, and return starts a new line.
  var touch = window.matchMedia && matchMedia("(pointer: coarse)").matches && !matchMedia("(any-pointer: fine)").matches;
  var pending = null, MAX_BODY = 10000; // server/actions/messaging.py's MAX_BODY
  function send(auto) {
    var ta = $("#composer-text"); var text = ta.value.trim();
    // Refused here with the server's own words, the box untouched and the cursor in it.
    // The limit counts characters as the server does (an emoji is one, not two). A send
    // of its own (back online) does not take the focus: a phone's keyboard stays down.
    if (auto !== true) ta.focus();
    if (!text) { notice(T.empty, true); return; }
    if (Array.from(text).length > MAX_BODY) { notice(T.too_long, true); return; }
    var conv = state.open;
    // The same uid is reused when retrying this very text: the server stores it once.
    if (!pending || pending.text !== text || pending.conv !== conv) pending = { text: text, uid: uid(), conv: conv };
    // Emptied at once: what is typed while this send is on its way (the recipients' tabs
    // may show it before the answer comes) is the next message, and the answer must not
    // wipe it. A send that fails is put back, to be sent again with the same uid.
    ta.value = ""; delete state.drafts[conv];
    var mine = pending;
    call("POST", "/conversations/" + conv + "/messages", { body: text, client_uid: mine.uid }).then(function (r) {
      // An answer that comes after a later send began (slow network) must not forget that
      // send's uid (its retry would be stored twice) nor hide what it said when it failed.
      var latest = pending === mine;
      if (latest) pending = null;
      if (!state.thread || state.thread.conversation.id !== conv) return;
      if (latest && $("#thread-notice")) $("#thread-notice").hidden = true;
      // Shown at once, even before the live event (which is then recognised by its id).
      if (!state.thread.messages.some(function (x) { return x.id === r.id; })) {
        var m = { id: r.id, conversation_id: conv, body: r.body, client_uid: r.client_uid, created_at: r.created_at, sender: state.thread.me, reads: [] };
        state.thread.messages.push(m); appendMessage(m);
      }
    }).catch(function (e) {
      if (!state.drafts[conv]) {
        state.drafts[conv] = text;
        var box = $("#composer-text");
        if (box && state.open === conv && !box.value) box.value = text;
      }
      // No network at all (a tunnel, the metro): said so, and sent again by itself, with
      // the same uid, as soon as the network is back (sendWhenBack).
      if (e.status === 0 && navigator.onLine === false) { state.offlineSend = mine; notice(T.offline_kept, true); }
      else notice(e.message, true);
    });
  }
  // Back online: the message that failed for want of a network goes, if it is still the
  // one in the box of the conversation on screen (not edited, not sent by hand meanwhile).
  function sendWhenBack() {
    var waiting = state.offlineSend, box = $("#composer-text"); state.offlineSend = null;
    if (!waiting || !box || state.open !== waiting.conv || box.value.trim() !== waiting.text) return;
    if (pending !== waiting) pending = waiting;
    send(true);
  }
  window.addEventListener("online", sendWhenBack);
  function deleteMessage(m) {
    if (!confirm(T.confirm_delete)) return;
    // Refused (409) once someone has read it: the server's message says so.
    call("DELETE", "/messages/" + m.id).then(function () { removeMessage(m.id); refreshList(); })
      .catch(function (e) { notice(e.message, true); });
  }
  /* Read means someone saw it: not on a screen left open and untouched for a minute (the
   * clinician in a session, the phone on a table), where the sender would be told "Read"
   * though nobody was there. The first key, click, touch or scroll marks it read. */
  function markRead() {
    if (!state.thread || document.hidden || CabinetLive.unattended()) return;
    var t = state.thread;
    var unread = t.messages.some(function (m) { return !isMe(m.sender); });
    if (!unread) return;
    call("POST", "/conversations/" + t.conversation.id + "/read", {}).then(function (r) {
      if (!r.message_ids || !r.message_ids.length) return;
      state.list.forEach(function (c) { if (c.id === t.conversation.id) { state.total = Math.max(0, state.total - c.unread); c.unread = 0; } });
      renderList(); refreshList();
    }).catch(function () {});
  }
  document.addEventListener("visibilitychange", markRead);
  document.addEventListener("cabinet:attended", markRead);

  /* ---- live events ---- */
  CabinetLive.on("message.created", function (m) {
    // Replayed after its deletion: the server blanked it, and message.deleted follows.
    if (m.deleted) return;
    refreshList();
    if (state.thread && state.thread.conversation.id === m.conversation_id) {
      if (state.thread.messages.some(function (x) { return x.id === m.id; })) return;
      m.reads = []; state.thread.messages.push(m);
      appendMessage(m);
      if (!isMe(m.sender)) { $("#typing").textContent = ""; markRead(); }
    }
  });
  CabinetLive.on("message.read", function (d) {
    if (isMe(d.reader)) refreshList(); // read in another tab or device of mine
    if (!state.thread || state.thread.conversation.id !== d.conversation_id) return;
    state.thread.messages.forEach(function (m) {
      if (d.message_ids.indexOf(m.id) >= 0 && !isMe(d.reader) && !m.reads.some(function (r) { return r.participant_id === d.reader.id; })) {
        m.reads.push({ participant_id: d.reader.id, name: d.reader.name, read_at: d.read_at });
        var node = document.querySelector('.msg[data-id="' + m.id + '"]');
        if (node) { var menuId = openMenuId(node); node.replaceWith(messageNode(m)); reopenMenu($("#messages"), menuId); }
      }
    });
  });
  CabinetLive.on("message.deleted", function (d) {
    if (state.thread && state.thread.conversation.id === d.conversation_id) removeMessage(d.message_id);
    refreshList();
  });
  CabinetLive.on("conversation.created", refreshList);
  CabinetLive.on("conversation.participants_added", function (d) {
    refreshList(); if (state.open === d.conversation.id) openThread(state.open);
  });
  /* Someone left (a linked account unlinked from the client). If it is me, the conversation
     answers 404 now: opening it again closes it. Otherwise their name is marked as gone. */
  CabinetLive.on("conversation.participant_left", function (d) {
    refreshList(); if (state.open === d.conversation_id) openThread(state.open);
  });
  /* A staff member came online or left: update their dot wherever it shows. */
  CabinetLive.on("presence", function (d) {
    if (state.thread) state.thread.participants.forEach(function (p) { if (p.staff_id === d.staff_id) p.online = d.online; });
    Array.prototype.forEach.call(document.querySelectorAll('[data-presence="' + d.staff_id + '"]'), function (n) {
      n.classList.toggle("on", d.online); n.title = d.online ? T.online : T.offline;
    });
  });
  CabinetLive.on("typing", function (d) {
    if (!state.thread || state.thread.conversation.id !== d.conversation_id) return;
    // The push carries ids only (it crosses Redis): the name comes from the thread.
    var who = state.thread.participants.filter(function (p) { return p.id === d.participant_id; })[0];
    if (!who) return;
    $("#typing").textContent = T.typing.replace("%(name)s", who.name);
    clearTimeout(state.typingTimer); state.typingTimer = setTimeout(function () { $("#typing").textContent = ""; }, 4000);
  });

  /* ---- staff dialogs ---- */
  function openAddDialog() {
    var dlg = $("#add-dialog"); if (!dlg) return;
    var form = dlg.querySelector("form"); form.reset(); clearErrors(form);
    form.group_name.value = state.thread.conversation.group_name || "";
    // Who already takes part is not offered again.
    var present = state.thread.participants.map(function (p) { return p.staff_id; }).filter(Boolean);
    fillStaff(dlg.querySelector("[data-staff]"), present);
    var box = dlg.querySelector("[data-linked]"); box.innerHTML = "";
    var clientId = state.thread.conversation.client_id;
    if (clientId) {
      call("GET", "/messaging/clients?id=" + clientId).then(function (cs) {
        cs.filter(function (c) { return c.id === clientId; }).forEach(function (c) { fillLinked(box, c); });
      });
    }
    dlg.showModal();
  }
  function fillStaff(box, exclude) {
    box.innerHTML = ""; exclude = exclude || [cfg.meId];
    call("GET", "/messaging/staff").then(function (users) {
      users.filter(function (u) { return exclude.indexOf(u.id) < 0; }).forEach(function (u) {
        box.appendChild(el("label", { "class": "check" }, [el("input", { type: "checkbox", name: "staff", value: u.id }), u.name + " (" + T.roles_staff[u.role] + ")"]));
      });
    });
  }
  function fillLinked(box, client) {
    box.innerHTML = "";
    if (!client || !client.links.length) return;
    box.appendChild(el("p", { "class": "small", text: T.linked_accounts }));
    client.links.forEach(function (l) {
      box.appendChild(el("label", { "class": "check" + (l.has_portal ? "" : " disabled") }, [
        el("input", { type: "checkbox", name: "linked", value: l.id, disabled: l.has_portal ? null : "disabled" }),
        l.name + " (" + (T.relationships[l.relationship] || l.relationship) + ")",
        l.has_portal ? null : el("a", { href: "/staff/clients/" + l.id, "class": "small", text: " " + T.no_portal })
      ]));
    });
  }
  /* A task on the file of the client who wrote the message, its note prefilled and editable. */
  function openTaskDialog(m) {
    var dlg = $("#task-dialog"); if (!dlg) return;
    var form = dlg.querySelector("form"); form.reset();
    clearErrors(form); $("#task-done").hidden = true; form.hidden = false;
    form.note.value = m.body; form.dataset.messageId = m.id;
    var sel = form.assignee_id; sel.innerHTML = "";
    // Only who may open the writer's file: a task for anyone else would be in no one's list.
    call("GET", "/messaging/staff?message_id=" + m.id).then(function (users) {
      users.forEach(function (u) { sel.appendChild(el("option", { value: u.id, selected: u.id === cfg.meId ? "selected" : null, text: u.name })); });
    });
    dlg.showModal(); form.note.focus();
  }
  function setupTaskDialog() {
    var dlg = $("#task-dialog"); if (!dlg) return;
    var form = dlg.querySelector("form");
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var body = { note: form.note.value, assignee_id: parseInt(form.assignee_id.value, 10) || null, due_date: form.due_date.value || null };
      call("POST", "/messages/" + form.dataset.messageId + "/task", body).then(function (t) {
        form.hidden = true; var done = $("#task-done"); done.hidden = false;
        done.querySelector("a").href = "/staff/clients/" + t.client_id + "/tasks";
        done.querySelector("[data-client-name]").textContent = t.client_name;
      }).catch(function (err) { showErrors(form, err); });
    });
  }
  /* ---- the portal: a client writes first ---- */
  function setupWriteDialog() {
    var dlg = $("#write-dialog"), open = $("#new-message"); if (!dlg || !open) return;
    var form = dlg.querySelector("form");
    open.addEventListener("click", function () { form.reset(); clearErrors(form); delete form.dataset.uid; dlg.showModal(); form.subject.focus(); });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      // One key per message being started, kept across retries of the same dialog (see the
      // staff's dialog): sent again after a lost answer, it finds what the first one started.
      if (!form.dataset.uid) form.dataset.uid = uid();
      busy(form, call("POST", "/conversations", { subject: form.subject.value, body: form.body.value, client_uid: form.dataset.uid }))
        .then(function (r) { delete form.dataset.uid; dlg.close(); loadList().then(function () { openThread(r.id); }); })
        .catch(function (err) { showErrors(form, err); });
    });
    Array.prototype.forEach.call(dlg.querySelectorAll("[data-close]"), function (b) { b.addEventListener("click", function () { dlg.close(); }); });
  }
  function checked(form, name) { return Array.prototype.map.call(form.querySelectorAll('input[name="' + name + '"]:checked'), function (i) { return parseInt(i.value, 10); }); }
  function setupDialogs() {
    var newDlg = $("#new-dialog"); if (!newDlg) return;
    var form = newDlg.querySelector("form"), chosen = null, pickSeq = 0;
    function openNew() { form.reset(); clearErrors(form); chosen = null; $("#linked-box").innerHTML = ""; $("#chosen-client").textContent = ""; fillStaff($("#staff-box")); syncKind(); searchClients(); newDlg.showModal(); }
    $("#new-conversation").addEventListener("click", openNew);
    // "New secure message" on a client file: the dialog opens with that client chosen.
    if (cfg.newClientId) {
      openNew();
      call("GET", "/messaging/clients?id=" + cfg.newClientId).then(function (cs) {
        var c = cs[0]; if (!c || !c.has_portal) return;
        chosen = c; $("#chosen-client").textContent = c.name; fillLinked($("#linked-box"), c);
        form.subject.focus();
      });
    }
    function syncKind() { var office = form.kind.value === "office"; $("#client-part").hidden = office; $("#preset-part").hidden = !office; }
    Array.prototype.forEach.call(form.querySelectorAll('input[name="kind"]'), function (r) { r.addEventListener("change", syncKind); });
    // Clients without a portal account are listed but cannot be chosen: the link opens their
    // file, where an account can be created.
    function searchClients() {
      var n = ++pickSeq;
      call("GET", "/messaging/clients?q=" + encodeURIComponent($("#client-search").value)).then(function (cs) {
        if (n !== pickSeq) return; // a later search already answered
        var ul = $("#client-results"); ul.innerHTML = "";
        cs.forEach(function (c) {
          ul.appendChild(el("li", { "class": c.has_portal ? null : "no-portal" }, [
            el("button", { type: "button", disabled: c.has_portal ? null : "disabled", "aria-pressed": chosen && chosen.id === c.id ? "true" : "false", "data-client": c.id, onclick: function () { chosen = c; $("#chosen-client").textContent = c.name; ul.innerHTML = ""; fillLinked($("#linked-box"), c); }, text: c.name }),
            c.has_portal ? null : el("span", { "class": "small muted" }, [T.no_portal_why + " ", el("a", { href: "/staff/clients/" + c.id, text: T.open_file })])
          ]));
        });
      });
    }
    $("#client-search").addEventListener("input", searchClients);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var kind = form.querySelector('input[name="kind"]:checked').value;
      // One key per conversation being started, kept across retries of the same dialog: a
      // resubmit after a lost answer finds the conversation made the first time.
      if (!form.dataset.uid) form.dataset.uid = uid();
      var body = { kind: kind, subject: form.subject.value, group_name: form.group_name.value || null, staff_ids: checked(form, "staff"), body: form.body.value || null, client_uid: form.dataset.uid };
      if (kind === "client") { body.client_id = chosen ? chosen.id : null; body.linked_client_ids = checked(form, "linked"); }
      else if (form.preset.value) body.preset = form.preset.value;
      busy(form, call("POST", "/conversations", body)).then(function (r) { delete form.dataset.uid; newDlg.close(); loadList().then(function () { openThread(r.id); }); })
        .catch(function (err) { showErrors(form, err); });
    });
    var addDlg = $("#add-dialog"), addForm = addDlg.querySelector("form");
    addForm.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!confirm(T.confirm_add)) return;
      busy(addForm, call("POST", "/conversations/" + state.open + "/participants", { staff_ids: checked(addForm, "staff"), linked_client_ids: checked(addForm, "linked"), group_name: addForm.group_name.value || null }))
        .then(function () { addDlg.close(); openThread(state.open); }).catch(function (err) { showErrors(addForm, err); });
    });
    Array.prototype.forEach.call(document.querySelectorAll("dialog [data-close]"), function (b) { b.addEventListener("click", function () { b.closest("dialog").close(); }); });
  }
  // The submit button waits for the answer: a double click starts one conversation, not two.
  function busy(form, promise) {
    var btn = form.querySelector('button[type="submit"]'); btn.disabled = true;
    return promise.then(function (r) { btn.disabled = false; return r; }, function (e) { btn.disabled = false; throw e; });
  }
  function clearErrors(form) {
    form.querySelector(".form-errors").innerHTML = "";
    Array.prototype.forEach.call(form.querySelectorAll(".field-error[data-field]"), function (n) { n.remove(); });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (n) { n.removeAttribute("aria-invalid"); n.removeAttribute("aria-describedby"); });
  }
  // The summary goes by the buttons; each field's own error goes right under that field.
  function showErrors(form, err) {
    clearErrors(form);
    var box = form.querySelector(".form-errors");
    var fields = (err.body && err.body.error && err.body.error.fields) || {};
    box.appendChild(el("p", { "class": "alert error", role: "alert", text: err.message }));
    var first = null;
    Object.keys(fields).forEach(function (k) {
      var msg = el("p", { "class": "field-error", "data-field": k, id: (form.closest("dialog") || form).id + "-error-" + k, text: fields[k] });
      var target = form.querySelector('[data-field-for="' + k + '"]') || form.querySelector('[name="' + k + '"]');
      if (!target || target.closest("[hidden]")) { box.appendChild(msg); return; }
      target.setAttribute("aria-invalid", "true"); target.setAttribute("aria-describedby", msg.id);
      var after = target.tagName === "FIELDSET" ? null : (target.closest("label") || target);
      if (after) after.insertAdjacentElement("afterend", msg); else target.appendChild(msg);
      if (!first && target.focus && target.tagName !== "FIELDSET") first = target;
    });
    if (first) first.focus();
  }

  /* ---- start ---- */
  // Back live (first connection or after a drop): the list and the open thread are fetched
  // again, so nothing that happened before the socket was ready is missing.
  CabinetLive.connect(cfg.wsUrl, { onStatus: function (s) { var n = $("#live-status"); if (n) { n.dataset.state = s; n.textContent = s === "live" ? T.live_on : T.live_off; } if (s === "live") { refreshList(); if (state.open) openThread(state.open); } } });
  // A click outside an open menu closes it.
  document.addEventListener("click", function (e) {
    Array.prototype.forEach.call(document.querySelectorAll("details.msg-menu[open], details.participants[open]"), function (d) { if (!d.contains(e.target)) d.open = false; });
  });
  if ($("#conv-search")) $("#conv-search").addEventListener("input", function () { clearTimeout(this._t); this._t = setTimeout(loadList, 250); });
  if ($("#conv-waiting")) $("#conv-waiting").addEventListener("change", loadList);
  setupDialogs();
  setupTaskDialog();
  setupWriteDialog();
  loadList().then(function () { if (cfg.openId) openThread(parseInt(cfg.openId, 10)); });
})();
