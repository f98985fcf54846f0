/* Cabinet secure messaging, shared by the staff app and the client portal.
 * Everything arrives through the API and the live socket (realtime.js); nothing is cached
 * beyond the page. Strings come translated from the page (window.CABINET_I18N). */
(function () {
  "use strict";
  var cfg = window.CABINET_MESSAGING, T = window.CABINET_I18N;
  var api = cfg.apiBase, state = { list: [], open: null, thread: null, typingTimer: null, lastTyping: 0 };
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
      return r.json().catch(function () { return {}; }).then(function (j) { if (!r.ok) { var e = new Error((j.error && j.error.message) || r.statusText); e.status = r.status; e.body = j; throw e; } return j; });
    });
  }
  function fmtTime(iso) { return new Date(iso).toLocaleString(document.documentElement.lang, { dateStyle: "short", timeStyle: "short", timeZone: cfg.timeZone }); }
  function uid() { return (crypto.randomUUID ? crypto.randomUUID() : (Date.now() + "-" + Math.random().toString(16).slice(2))); }
  function title(c) { return c.group_name ? c.group_name + " · " + c.subject : c.subject; }
  function others(c) { return c.participants.filter(function (p) { return !isMe(p); }).map(function (p) { return p.name; }).join(", "); }
  function isMe(p) { return cfg.isStaff ? p.staff_id === cfg.meId : p.portal_account_id === cfg.meId; }

  /* ---- conversation list ---- */
  function loadList() {
    var q = $("#conv-search") ? $("#conv-search").value : "";
    var waiting = $("#conv-waiting") && $("#conv-waiting").checked ? "1" : "";
    return call("GET", "/conversations?q=" + encodeURIComponent(q) + (waiting ? "&waiting=1" : "")).then(function (data) {
      state.list = data.conversations; renderList(data.unread_total);
    });
  }
  function renderList(total) {
    var ul = $("#conv-list"); ul.innerHTML = "";
    if (total === undefined) total = state.list.reduce(function (a, c) { return a + c.unread; }, 0);
    $("#unread-total").textContent = total ? String(total) : "";
    $("#unread-total").hidden = !total;
    if (!state.list.length) ul.appendChild(el("li", { "class": "empty", text: T.no_conversations }));
    state.list.forEach(function (c) {
      var li = el("li", { "class": "conv" + (state.open === c.id ? " open" : "") + (c.unread ? " unread" : ""), "data-id": c.id }, [
        el("button", { type: "button", onclick: function () { openThread(c.id); } }, [
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
  function openThread(id) {
    state.open = id;
    history.replaceState(null, "", "?c=" + id);
    document.body.classList.add("thread-open");
    return call("GET", "/conversations/" + id).then(function (t) {
      state.thread = t; renderThread(); markRead();
      renderList();
    }).catch(function (e) { if (e.status === 404) { state.open = null; $("#thread").innerHTML = ""; } });
  }
  function statusOf(m) {
    if (!isMe(m.sender)) return null;
    var readers = m.reads || [];
    if (!readers.length) return el("span", { "class": "status unread", "data-status": "unread", text: T.unread });
    var others = state.thread.participants.filter(function (p) { return !isMe(p); }).length;
    if (others <= 1) return el("span", { "class": "status read", "data-status": "read", title: fmtTime(readers[0].read_at), text: T.read });
    return el("span", { "class": "status read", "data-status": "read", text: T.read_by + " " + readers.map(function (r) { return r.name + " (" + fmtTime(r.read_at) + ")"; }).join(", ") });
  }
  function messageNode(m) {
    var mine = isMe(m.sender);
    var menu = el("details", { "class": "msg-menu" }, [
      el("summary", { "aria-label": T.actions, text: "⋯" }),
      el("div", { "class": "menu" }, [
        el("button", { type: "button", onclick: function () { navigator.clipboard && navigator.clipboard.writeText(m.body); this.closest("details").open = false; }, text: T.copy }),
        mine && !(m.reads || []).length ? el("button", { type: "button", "class": "danger", "data-action": "delete", onclick: function () { deleteMessage(m); }, text: T.delete }) : null,
        cfg.isStaff && m.sender.role !== "staff" ? el("button", { type: "button", "data-action": "task", onclick: function () { this.closest("details").open = false; openTaskDialog(m); }, text: T.create_task }) : null
      ])
    ]);
    return el("li", { "class": "msg" + (mine ? " mine" : ""), "data-id": m.id }, [
      el("div", { "class": "msg-head" }, [el("strong", { text: m.sender.name }), el("time", { text: fmtTime(m.created_at) }), menu]),
      el("div", { "class": "msg-body", text: m.body }),
      statusOf(m)
    ]);
  }
  function renderThread() {
    var t = state.thread, box = $("#thread"); box.innerHTML = "";
    var staffN = t.counts.staff, clientN = t.counts.clients + t.counts.linked;
    var head = el("header", { "class": "thread-head" }, [
      el("button", { type: "button", "class": "back", onclick: function () { document.body.classList.remove("thread-open"); }, text: "←" }),
      el("div", {}, [el("h2", { text: title(t.conversation) }), el("p", { "class": "muted small", text: others({ participants: t.participants }) })]),
      el("details", { "class": "participants" }, [
        el("summary", { text: T.show_participants }),
        el("div", { "class": "panel" }, [
          el("p", { "class": "small", text: T.counts.replace("%(clients)s", clientN).replace("%(staff)s", staffN) }),
          el("ul", {}, t.participants.map(function (p) {
            return el("li", {}, [p.online === true ? el("span", { "class": "dot on", title: T.online }) : (p.online === false ? el("span", { "class": "dot", title: T.offline }) : null), p.name + " ", el("span", { "class": "muted small", text: T.roles[p.role] })]);
          })),
          cfg.isStaff ? el("button", { type: "button", onclick: openAddDialog, text: T.add_participants }) : null
        ])
      ])
    ]);
    var list = el("ol", { "class": "messages", id: "messages" }, t.messages.map(messageNode));
    var typing = el("p", { "class": "typing muted small", id: "typing", "aria-live": "polite" });
    var composer = el("form", { "class": "composer", id: "composer" }, [
      el("textarea", { id: "composer-text", rows: "2", placeholder: T.write, "aria-label": T.write, maxlength: "10000" }),
      el("button", { type: "submit", "class": "primary", text: T.send })
    ]);
    composer.addEventListener("submit", function (e) { e.preventDefault(); send(); });
    var ta = composer.querySelector("textarea");
    ta.addEventListener("keydown", function (e) { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); } });
    ta.addEventListener("input", function () {
      if (Date.now() - state.lastTyping > 2500) { state.lastTyping = Date.now(); call("POST", "/conversations/" + t.conversation.id + "/typing").catch(function () {}); }
    });
    box.appendChild(head); box.appendChild(list); box.appendChild(typing); box.appendChild(composer);
    list.scrollTop = list.scrollHeight;
  }
  var pending = null;
  function send() {
    var ta = $("#composer-text"); var text = ta.value.trim(); if (!text) return;
    var conv = state.open;
    // The same uid is reused when retrying this very text: the server stores it once.
    if (!pending || pending.text !== text || pending.conv !== conv) pending = { text: text, uid: uid(), conv: conv };
    call("POST", "/conversations/" + conv + "/messages", { body: text, client_uid: pending.uid }).then(function () {
      pending = null; if ($("#composer-text")) $("#composer-text").value = "";
    }).catch(function (e) { alert(e.message); });
  }
  function deleteMessage(m) {
    if (!confirm(T.confirm_delete)) return;
    call("DELETE", "/messages/" + m.id).catch(function (e) { alert(e.message); });
  }
  function markRead() {
    if (!state.thread || document.hidden) return;
    var t = state.thread;
    var unread = t.messages.some(function (m) { return !isMe(m.sender); });
    if (!unread) return;
    call("POST", "/conversations/" + t.conversation.id + "/read", {}).then(function () {
      state.list.forEach(function (c) { if (c.id === t.conversation.id) c.unread = 0; }); renderList();
    }).catch(function () {});
  }
  document.addEventListener("visibilitychange", markRead);

  /* ---- live events ---- */
  CabinetLive.on("message.created", function (m) {
    var c = state.list.filter(function (x) { return x.id === m.conversation_id; })[0];
    if (c) {
      c.last_activity_at = m.created_at; c.awaiting_staff = m.sender.role !== "staff";
      if (!isMe(m.sender) && !(state.open === c.id && !document.hidden)) c.unread += 1;
      state.list.sort(function (a, b) { return a.last_activity_at < b.last_activity_at ? 1 : -1; });
      renderList();
    } else { loadList(); }
    if (state.thread && state.thread.conversation.id === m.conversation_id) {
      if (state.thread.messages.some(function (x) { return x.id === m.id; })) return;
      m.reads = []; state.thread.messages.push(m);
      var list = $("#messages"); list.appendChild(messageNode(m)); list.scrollTop = list.scrollHeight;
      $("#typing").textContent = "";
      if (!isMe(m.sender)) markRead();
    }
  });
  CabinetLive.on("message.read", function (d) {
    if (!state.thread || state.thread.conversation.id !== d.conversation_id) return;
    state.thread.messages.forEach(function (m) {
      if (d.message_ids.indexOf(m.id) >= 0 && !isMe(d.reader) && !m.reads.some(function (r) { return r.participant_id === d.reader.id; })) {
        m.reads.push({ participant_id: d.reader.id, name: d.reader.name, read_at: d.read_at });
        var node = document.querySelector('.msg[data-id="' + m.id + '"]'); if (node) node.replaceWith(messageNode(m));
      }
    });
  });
  CabinetLive.on("message.deleted", function (d) {
    if (state.thread && state.thread.conversation.id === d.conversation_id) {
      state.thread.messages = state.thread.messages.filter(function (m) { return m.id !== d.message_id; });
      var node = document.querySelector('.msg[data-id="' + d.message_id + '"]'); if (node) node.remove();
    }
    loadList();
  });
  CabinetLive.on("conversation.created", function () { loadList(); });
  CabinetLive.on("conversation.participants_added", function (d) {
    loadList(); if (state.open === d.conversation.id) openThread(state.open);
  });
  CabinetLive.on("typing", function (d) {
    if (!state.thread || state.thread.conversation.id !== d.conversation_id) return;
    $("#typing").textContent = T.typing.replace("%(name)s", d.name);
    clearTimeout(state.typingTimer); state.typingTimer = setTimeout(function () { $("#typing").textContent = ""; }, 4000);
  });

  /* ---- staff dialogs ---- */
  function openAddDialog() {
    var dlg = $("#add-dialog"); if (!dlg) return;
    dlg.querySelector("form").reset(); fillStaff(dlg.querySelector("[data-staff]"));
    var box = dlg.querySelector("[data-linked]"); box.innerHTML = "";
    if (state.thread.conversation.client_id) {
      call("GET", "/messaging/clients").then(function (cs) {
        cs.filter(function (c) { return c.id === state.thread.conversation.client_id; }).forEach(function (c) { fillLinked(box, c); });
      });
    }
    dlg.showModal();
  }
  function fillStaff(box) {
    box.innerHTML = "";
    call("GET", "/messaging/staff").then(function (users) {
      users.filter(function (u) { return u.id !== cfg.meId; }).forEach(function (u) {
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
        l.name + " (" + l.relationship + ")",
        l.has_portal ? null : el("a", { href: "/staff/clients/" + l.id, "class": "small", text: " " + T.no_portal })
      ]));
    });
  }
  /* A task on the file of the client who wrote the message, its note prefilled and editable. */
  function openTaskDialog(m) {
    var dlg = $("#task-dialog"); if (!dlg) return;
    var form = dlg.querySelector("form"); form.reset();
    form.querySelector(".form-errors").innerHTML = ""; $("#task-done").hidden = true; form.hidden = false;
    form.note.value = m.body; form.dataset.messageId = m.id;
    var sel = form.assignee_id; sel.innerHTML = "";
    call("GET", "/messaging/staff").then(function (users) {
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
        done.querySelector("a").href = "/staff/clients/" + t.client_id + "#tasks";
        done.querySelector("[data-client-name]").textContent = t.client_name;
      }).catch(function (err) { showErrors(form, err); });
    });
  }
  function checked(form, name) { return Array.prototype.map.call(form.querySelectorAll('input[name="' + name + '"]:checked'), function (i) { return parseInt(i.value, 10); }); }
  function setupDialogs() {
    var newDlg = $("#new-dialog"); if (!newDlg) return;
    var form = newDlg.querySelector("form"), chosen = null;
    $("#new-conversation").addEventListener("click", function () { form.reset(); chosen = null; $("#client-results").innerHTML = ""; $("#linked-box").innerHTML = ""; $("#chosen-client").textContent = ""; fillStaff($("#staff-box")); syncKind(); newDlg.showModal(); });
    function syncKind() { var office = form.kind.value === "office"; $("#client-part").hidden = office; $("#preset-part").hidden = !office; }
    form.kind.forEach ? form.kind.forEach(function (r) { r.addEventListener("change", syncKind); }) : null;
    Array.prototype.forEach.call(form.querySelectorAll('input[name="kind"]'), function (r) { r.addEventListener("change", syncKind); });
    $("#client-search").addEventListener("input", function () {
      var q = this.value;
      call("GET", "/messaging/clients?q=" + encodeURIComponent(q)).then(function (cs) {
        var ul = $("#client-results"); ul.innerHTML = "";
        cs.forEach(function (c) {
          ul.appendChild(el("li", {}, [
            el("button", { type: "button", disabled: c.has_portal ? null : "disabled", "data-client": c.id, onclick: function () { chosen = c; $("#chosen-client").textContent = c.name; ul.innerHTML = ""; fillLinked($("#linked-box"), c); }, text: c.name }),
            c.has_portal ? null : el("span", { "class": "small muted" }, [T.no_portal_why + " ", el("a", { href: "/staff/clients/" + c.id, text: T.open_file })])
          ]));
        });
      });
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var kind = form.querySelector('input[name="kind"]:checked').value;
      var body = { kind: kind, subject: form.subject.value, group_name: form.group_name.value || null, staff_ids: checked(form, "staff"), body: form.body.value || null, client_uid: uid() };
      if (kind === "client") { body.client_id = chosen ? chosen.id : null; body.linked_client_ids = checked(form, "linked"); }
      else if (form.preset.value) body.preset = form.preset.value;
      call("POST", "/conversations", body).then(function (r) { newDlg.close(); loadList().then(function () { openThread(r.id); }); })
        .catch(function (err) { showErrors(form, err); });
    });
    var addDlg = $("#add-dialog"), addForm = addDlg.querySelector("form");
    addForm.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!confirm(T.confirm_add)) return;
      call("POST", "/conversations/" + state.open + "/participants", { staff_ids: checked(addForm, "staff"), linked_client_ids: checked(addForm, "linked"), group_name: addForm.group_name.value || null })
        .then(function () { addDlg.close(); openThread(state.open); }).catch(function (err) { showErrors(addForm, err); });
    });
    Array.prototype.forEach.call(document.querySelectorAll("dialog [data-close]"), function (b) { b.addEventListener("click", function () { b.closest("dialog").close(); }); });
  }
  function showErrors(form, err) {
    var box = form.querySelector(".form-errors"); box.innerHTML = "";
    var fields = (err.body && err.body.error && err.body.error.fields) || {};
    box.appendChild(el("p", { "class": "alert error", role: "alert", text: err.message }));
    Object.keys(fields).forEach(function (k) { box.appendChild(el("p", { "class": "field-error", "data-field": k, text: fields[k] })); });
  }

  /* ---- start ---- */
  CabinetLive.connect(cfg.wsUrl, { onStatus: function (s) { var n = $("#live-status"); if (n) { n.dataset.state = s; n.textContent = s === "live" ? T.live_on : T.live_off; } if (s === "live" && state.open) openThread(state.open); } });
  if ($("#conv-search")) $("#conv-search").addEventListener("input", function () { clearTimeout(this._t); this._t = setTimeout(loadList, 250); });
  if ($("#conv-waiting")) $("#conv-waiting").addEventListener("change", loadList);
  setupDialogs();
  setupTaskDialog();
  loadList().then(function () { if (cfg.openId) openThread(parseInt(cfg.openId, 10)); });
})();
