// Kommutator operator panel. Plain JS, no build step, no third-party code.
// Rule: text from callers, customers and the CRM is only ever inserted with textContent
// (the el() helper below); nothing here parses HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const state = {
    lang: "en",
    me: null,
    csrf: null,
    ws: null,
    lastSeq: null,
    retry: 0,
    agents: new Map(),
    calls: new Map(),
    current: null,       // call id shown in the call card
    currentState: null,  // ringing | talking | held
    wrapup: null,        // { callId, label }
    myStatus: null,
    dispositions: [],
    awayReasons: [],
    pending: new Map(),  // command id -> callback
    nextId: 1,
  };
  // Test and diagnostics hook: screen pops with their latency from the server's receipt.
  window.kmtPops = [];

  // ---------- i18n ----------
  function pickLanguage() {
    const saved = localStorage.getItem("kmt.lang");
    if (saved === "ru" || saved === "en") return saved;
    const nav = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
    return nav.toLowerCase().startsWith("ru") ? "ru" : "en";
  }
  function t(key) {
    const dict = window.I18N[state.lang] || window.I18N.en;
    return dict[key] || window.I18N.en[key] || key;
  }
  function applyTexts() {
    document.documentElement.lang = state.lang;
    document.querySelectorAll("[data-i18n]").forEach((node) => {
      node.textContent = t(node.dataset.i18n);
    });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((node) => {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    });
    $("lang").value = state.lang;
    if (state.me) {
      renderStatusSelect();
      renderAgents();
      renderCall();
      renderWrapup();
    }
  }

  // ---------- DOM helper: text only ----------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = String(value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }
  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }
  function fmtDuration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }
  function fmtTime(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return "";
    return d.toLocaleString(state.lang === "ru" ? "ru-RU" : "en-GB", {
      day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit",
    });
  }
  function mine(extension) {
    return !!extension && state.me && state.me.extensions.includes(extension);
  }
  function statusLabel(agent) {
    let text = t("status." + agent.status);
    if (agent.status === "away" && agent.reason) text += ": " + t("reason." + agent.reason);
    return text;
  }

  // ---------- HTTP ----------
  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    const res = await fetch("/api/v1" + path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error((data && data.error && data.error.message) || res.statusText);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  // ---------- login ----------
  async function boot() {
    state.lang = pickLanguage();
    applyTexts();
    wireStatic();
    try {
      const session = await api("GET", "/auth/me");
      start(session);
    } catch (e) {
      showLogin();
    }
  }
  function showLogin() {
    $("panel-view").hidden = true;
    $("logout").hidden = true;
    $("login-view").hidden = false;
    $("me").textContent = "";
    $("login-user").focus();
  }
  async function submitLogin(event) {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      const session = await api("POST", "/auth/login", {
        login: $("login-user").value, password: $("login-password").value,
      });
      $("login-password").value = "";
      start(session);
    } catch (e) {
      $("login-error").textContent = e.status === 429 ? t("login.limited") : t("login.failed");
    }
  }
  function start(session) {
    state.me = session.user;
    state.csrf = session.csrf_token;
    $("login-view").hidden = true;
    $("panel-view").hidden = false;
    $("logout").hidden = false;
    $("me").textContent = session.user.display_name + (session.user.extensions.length ? " · " + session.user.extensions.join(", ") : "");
    connect();
    loadMissed();
    loadRecent();
  }
  async function logout() {
    try { await api("POST", "/auth/logout"); } catch (e) { /* the session may be gone already */ }
    if (state.ws) { state.ws.onclose = null; state.ws.close(); }
    state.me = null; state.csrf = null; state.lastSeq = null;
    showLogin();
  }

  // ---------- WebSocket ----------
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const since = state.lastSeq === null ? "" : "?since=" + state.lastSeq;
    const ws = new WebSocket(proto + "//" + location.host + "/api/v1/ws" + since);
    state.ws = ws;
    setConn("wait");
    ws.onopen = () => { state.retry = 0; setConn("on"); };
    ws.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      onMessage(msg);
    };
    ws.onclose = () => {
      setConn("off");
      if (!state.me) return;
      // Back off up to 10 s; resume from the last event seen so nothing is missed.
      const delay = Math.min(10000, 500 * Math.pow(2, state.retry++));
      setTimeout(() => { if (state.me) connect(); }, delay);
    };
  }
  function setConn(which) {
    const node = $("conn");
    node.dataset.state = which;
    node.dataset.i18n = "conn." + which;
    node.textContent = t("conn." + which);
  }
  function send(msg, onResult) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      if (onResult) onResult({ ok: false, error: { message: t("conn.off") } });
      return;
    }
    msg.id = "c" + state.nextId++;
    if (onResult) state.pending.set(msg.id, onResult);
    state.ws.send(JSON.stringify(msg));
  }

  function snapshotComplete() {
    if (state.current && !state.calls.has(state.current)) state.current = null;
    renderAgents();
    renderStatusSelect();
    renderCall();
  }

  function onMessage(msg) {
    if (typeof msg.seq === "number" && msg.type !== "heartbeat" && msg.type !== "hello" && msg.type !== "snapshot" && msg.type !== "snapshot_more") {
      state.lastSeq = Math.max(state.lastSeq || 0, msg.seq);
    }
    switch (msg.type) {
      case "hello":
        state.dispositions = msg.dispositions;
        state.awayReasons = msg.away_reasons;
        if (!msg.resumed) state.lastSeq = msg.seq;
        renderDispositions();
        break;
      case "snapshot":
        state.lastSeq = msg.seq;
        state.agents = new Map(msg.agents.map((a) => [a.login, a]));
        state.calls = new Map(msg.calls.map((c) => [c.id, c]));
        if (!msg.more) snapshotComplete();
        break;
      case "snapshot_more":
        // The rest of a large snapshot, in pieces.
        for (const a of msg.agents) state.agents.set(a.login, a);
        for (const c of msg.calls) state.calls.set(c.id, c);
        if (!msg.more) snapshotComplete();
        break;
      case "heartbeat":
        break;
      case "ringing": onRinging(msg); break;
      case "ring_ended":
        if (msg.call_id === state.current && mine(msg.agent) && msg.how !== "answered" && state.currentState === "ringing") {
          state.current = null;
          renderCall();
        }
        break;
      case "answered":
      case "held":
      case "unheld":
      case "call_updated":
        onCallChange(msg.call, msg.type);
        break;
      case "transferred": onCallChange(msg.call, "transferred"); break;
      case "agent_left":
        if (mine(msg.agent) && msg.call_id === state.current) leaveCall(msg.call_id);
        break;
      case "ended":
        state.calls.delete(msg.call.id);
        if (msg.call.id === state.current) leaveCall(msg.call.id);
        loadRecent();
        break;
      case "agent_status":
        state.agents.set(msg.agent.login, msg.agent);
        renderAgents();
        if (msg.agent.login === state.me.login) {
          renderStatusSelect();
          $("status-note").textContent = msg.source === "phone" ? t("status.changed_phone") : "";
          renderWrapup();
        }
        break;
      case "missed_call":
      case "task_updated":
        loadMissed();
        break;
      case "dial_progress":
        $("dial-progress").textContent = msg.state === "failed"
          ? t("dial.failed") + ": " + (msg.message || "")
          : t("dial.dialing");
        break;
      case "command_result": {
        const cb = state.pending.get(msg.id);
        state.pending.delete(msg.id);
        if (cb) cb(msg);
        break;
      }
      case "error":
        console.warn("panel protocol error", msg.error);
        break;
    }
  }

  // ---------- calls ----------
  function onRinging(msg) {
    state.calls.set(msg.call.id, msg.call);
    if (!mine(msg.agent)) return;
    state.current = msg.call.id;
    state.currentState = "ringing";
    state.customers = msg.customers;
    state.instructions = msg.instructions;
    state.lookup = msg.lookup;
    renderCall();
    window.kmtPops.push({
      call_id: msg.call.id,
      customer: msg.customers.length ? msg.customers[0].name : null,
      latency_ms: Date.now() - msg.received_at_ms,
    });
  }
  function onCallChange(call, kind) {
    state.calls.set(call.id, call);
    if (call.id !== state.current) return;
    if (mine(call.agent)) {
      state.currentState = call.on_hold ? "held" : "talking";
    } else if (kind === "transferred" || (kind === "answered" && call.agent)) {
      // Someone else has the customer now: this agent's part is over.
      leaveCall(call.id);
      return;
    }
    renderCall();
  }
  function leaveCall(callId) {
    const call = state.calls.get(callId);
    state.wrapup = {
      callId,
      label: call ? (call.number_display || call.number || "") + (call.caller_name ? " · " + call.caller_name : "") : "",
    };
    state.current = null;
    renderCall();
    renderWrapup();
  }
  function renderCall() {
    const card = $("call-card");
    const call = state.current && state.calls.get(state.current);
    if (!call) { card.hidden = true; $("transfer-box").hidden = true; return; }
    card.hidden = false;
    card.dataset.callId = call.id;
    card.dataset.state = state.currentState;
    const badge = state.currentState === "ringing"
      ? (call.direction === "outbound" ? t("call.outbound") : t("call.ringing"))
      : state.currentState === "held" ? t("call.held") : t("call.talking");
    $("call-state").textContent = badge;
    $("call-state").dataset.state = state.currentState;
    $("call-queue").textContent = call.queue || "";
    $("caller-number").textContent = call.number_display || call.number || t("call.unknown");
    $("caller-name").textContent = call.caller_name || "";
    const route = $("route-reason");
    route.hidden = !call.route_reason;
    route.textContent = call.route_reason ? t("call.route") + ": " + call.route_reason : "";
    renderCustomers();
    const talking = state.currentState !== "ringing";
    $("btn-hold").hidden = !talking || state.currentState === "held";
    $("btn-unhold").hidden = state.currentState !== "held";
    $("btn-transfer").disabled = !talking;
    $("btn-hangup").disabled = !talking;
    renderTransferAgents();
  }
  function renderCustomers() {
    const box = $("customers");
    clear(box);
    const customers = state.customers || [];
    if (customers.length > 1) box.append(el("p", { class: "warn", text: t("card.shared") }));
    if (!customers.length && state.lookup !== "no_number") {
      box.append(el("p", { class: "muted", text: t("card.none") }));
    }
    for (const c of customers) box.append(customerCard(c, true));
    const instr = $("call-instructions");
    clear(instr);
    for (const text of state.instructions || []) {
      instr.append(el("div", { class: "instructions" }, el("strong", { text: t("call.instructions") + ": " }), text));
    }
  }
  function customerCard(c, full) {
    const flags = [];
    if (c.segment) flags.push(el("span", { class: "tag seg", text: c.segment }));
    for (const tag of c.tags || []) if (tag !== c.segment) flags.push(el("span", { class: "tag", text: tag }));
    if (c.debtor) flags.push(el("span", { class: "tag bad", text: t("card.debtor") }));
    if (c.blacklisted) flags.push(el("span", { class: "tag bad", text: t("card.blacklisted") }));
    const node = el("div", { class: "customer", dataset: { customerId: c.id } },
      el("div", { class: "customer-name", text: c.name }),
      el("div", { class: "flags" }, ...flags),
      c.company ? el("div", {}, el("span", { class: "muted", text: t("card.company") + ": " }), c.company) : null,
      c.responsible ? el("div", {}, el("span", { class: "muted", text: t("card.manager") + ": " }), c.responsible) : null,
      el("div", { class: "phones" }, ...(c.phones || []).map((p) => telLink(p))),
    );
    if (full) {
      for (const text of c.instructions || []) {
        node.append(el("div", { class: "instructions" }, el("strong", { text: t("call.instructions") + ": " }), text));
      }
      if (c.notes) node.append(el("p", { class: "notes", text: c.notes }));
      if ((c.last_calls || []).length) {
        node.append(el("div", { class: "muted small", text: t("card.last") }));
        node.append(el("ul", { class: "mini" }, ...c.last_calls.map((i) => el("li", {
          text: fmtTime(i.at) + " · " + t("dir." + i.direction) + " · " + (i.outcome ? t("out." + i.outcome) : "…") +
            (i.disposition ? " · " + i.disposition : "") + (i.notes ? " · " + i.notes : ""),
        }))));
      }
      if ((c.open_tasks || []).length) {
        node.append(el("div", { class: "muted small", text: t("card.tasks") }));
        node.append(el("ul", { class: "mini" }, ...c.open_tasks.map((task) => el("li", {
          text: fmtTime(task.created_at) + " · " + task.kind + (task.note ? " · " + task.note : ""),
        }))));
      }
    }
    return node;
  }
  function telLink(number, taskId) {
    return el("a", {
      class: "tel", href: "tel:" + number, text: number,
      onclick: (e) => { e.preventDefault(); dial(number, taskId); },
    });
  }

  // ---------- transfer ----------
  function freeAgents() {
    return [...state.agents.values()].filter((a) =>
      a.login !== state.me.login && a.status === "available" && !a.on_call && a.extensions.length);
  }
  function renderTransferAgents() {
    const list = $("transfer-agents");
    clear(list);
    const free = freeAgents();
    if (!free.length) list.append(el("li", { class: "muted", text: t("transfer.none") }));
    for (const a of free) {
      list.append(el("li", {},
        el("button", {
          class: "agent-pick", dataset: { login: a.login },
          onclick: () => transfer({ agent: a.login }),
        }, a.display_name + " · " + a.extensions.join(", "))));
    }
  }
  function transferKind() {
    const checked = document.querySelector("input[name=xfer-kind]:checked");
    return checked ? checked.value : "blind";
  }
  function transfer(to) {
    const callId = state.current;
    if (!callId) return;
    $("call-error").textContent = "";
    send({ type: "transfer", call_id: callId, to, kind: transferKind() }, (res) => {
      if (!res.ok) $("call-error").textContent = res.error.message;
      else $("transfer-box").hidden = true;
    });
  }
  function callCommand(type) {
    const callId = state.current;
    if (!callId) return;
    $("call-error").textContent = "";
    send({ type, call_id: callId }, (res) => {
      if (!res.ok) $("call-error").textContent = res.error.message;
    });
  }

  // ---------- status ----------
  function renderStatusSelect() {
    const select = $("status-select");
    const me = state.agents.get(state.me.login);
    clear(select);
    const options = [["available", t("status.available")]];
    for (const r of state.awayReasons) options.push(["away:" + r, t("status.away") + ": " + t("reason." + r)]);
    options.push(["offline", t("status.offline")]);
    let value = me ? me.status + (me.status === "away" ? ":" + me.reason : "") : "offline";
    if (me && me.status === "after_call_work") options.unshift(["after_call_work", t("status.after_call_work")]);
    if (me && me.status === "away" && !state.awayReasons.includes(me.reason)) options.push([value, statusLabel(me)]);
    for (const [v, label] of options) select.append(el("option", { value: v, text: label }));
    select.value = value;
    select.disabled = !me;
    $("status-dot").dataset.status = me ? me.status : "offline";
    state.myStatus = me || null;
    tickTimers();
  }
  function changeStatus() {
    const value = $("status-select").value;
    const [status, reason] = value.split(":");
    send({ type: "set_status", status, reason: reason || undefined }, (res) => {
      if (!res.ok) { $("status-note").textContent = res.error.message; renderStatusSelect(); }
    });
  }
  function renderAgents() {
    const list = $("agents-list");
    clear(list);
    for (const a of [...state.agents.values()].sort((x, y) => x.display_name.localeCompare(y.display_name))) {
      list.append(el("li", { class: "agent", dataset: { login: a.login, status: a.status } },
        el("span", { class: "dot", dataset: { status: a.status } }),
        el("span", { class: "agent-name", text: a.display_name }),
        el("span", { class: "muted small", text: statusLabel(a) + (a.on_call ? " · " + t("call.talking") : "") })));
    }
    if (!$("call-card").hidden) renderTransferAgents();
  }

  // ---------- wrap-up ----------
  function renderDispositions() {
    const select = $("wrapup-disposition");
    clear(select);
    select.append(el("option", { value: "", text: "—" }));
    for (const d of state.dispositions) select.append(el("option", { value: d, text: t("disp." + d) }));
  }
  function renderWrapup() {
    const card = $("wrapup-card");
    card.hidden = !state.wrapup;
    if (!state.wrapup) return;
    card.dataset.callId = state.wrapup.callId;
    $("wrapup-call").textContent = state.wrapup.label;
    const acw = state.myStatus && state.myStatus.status === "after_call_work";
    $("wrapup-extend").hidden = !acw;
    $("wrapup-timer").hidden = !acw;
    tickTimers();
  }
  function saveWrapup() {
    if (!state.wrapup) return;
    const disposition = $("wrapup-disposition").value || undefined;
    const notes = $("wrapup-notes").value.trim() || undefined;
    send({ type: "wrapup", call_id: state.wrapup.callId, disposition, notes }, (res) => {
      if (!res.ok) { $("wrapup-result").textContent = res.error.message; return; }
      $("wrapup-result").textContent = t("wrapup.saved");
      $("wrapup-notes").value = "";
      $("wrapup-disposition").value = "";
      state.wrapup = null;
      setTimeout(() => { $("wrapup-result").textContent = ""; renderWrapup(); }, 800);
      loadRecent();
    });
  }

  // ---------- timers ----------
  function tickTimers() {
    const now = Date.now();
    const me = state.myStatus;
    if (me) $("status-time").textContent = fmtDuration((now - Date.parse(me.since)) / 1000);
    const call = state.current && state.calls.get(state.current);
    if (call) {
      const from = Date.parse(call.answered_at || call.started_at);
      $("call-timer").textContent = isNaN(from) ? "" : fmtDuration((now - from) / 1000);
    }
    if (me && me.status === "after_call_work" && me.until) {
      $("wrapup-timer").textContent = fmtDuration((Date.parse(me.until) - now) / 1000);
    }
  }

  // ---------- dial ----------
  function dial(number, taskId) {
    number = String(number || "").trim();
    if (!number) return;
    $("dial-number").value = number;
    $("dial-progress").textContent = t("dial.dialing");
    send({ type: "dial", number, task_id: taskId }, (res) => {
      if (!res.ok) $("dial-progress").textContent = t("dial.failed") + ": " + res.error.message;
    });
  }
  function buildDialpad() {
    const pad = $("dialpad");
    for (const key of ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#", "+"]) {
      pad.append(el("button", { class: "key", type: "button", onclick: () => { $("dial-number").value += key; } }, key));
    }
    pad.append(el("button", { class: "key", type: "button", onclick: () => {
      const input = $("dial-number"); input.value = input.value.slice(0, -1);
    } }, "⌫"));
  }

  // ---------- lists ----------
  async function loadMissed() {
    const list = $("missed-list");
    try {
      const tasks = await api("GET", "/cti/missed");
      clear(list);
      if (!tasks.length) list.append(el("li", { class: "muted", text: t("missed.none") }));
      for (const task of tasks) {
        list.append(el("li", { class: "row", dataset: { taskId: task.id } },
          el("div", {},
            el("div", { text: task.customer_name || task.phone_display || task.phone || "" }),
            el("div", { class: "muted small", text: fmtTime(task.created_at) + (task.attempts > 1 ? " · " + task.attempts + " " + t("missed.attempts") : "") })),
          el("button", { class: "small", onclick: () => dial(task.phone, task.id) }, t("missed.callback"))));
      }
    } catch (e) { /* shown again on the next event */ }
  }
  async function loadRecent() {
    const list = $("recent-list");
    try {
      const calls = await api("GET", "/cti/calls/recent?limit=15");
      clear(list);
      if (!calls.length) list.append(el("li", { class: "muted", text: t("recent.none") }));
      for (const c of calls) {
        list.append(el("li", { class: "row", dataset: { callId: c.call_id } },
          el("div", {},
            c.number ? telLink(c.number_display || c.number) : el("span", { text: "—" }),
            el("div", { class: "muted small", text: fmtTime(c.at) + " · " + t("dir." + c.direction) + " · " + (c.outcome ? t("out." + c.outcome) : "…") + (c.disposition ? " · " + c.disposition : "") })),
          c.has_recording ? el("button", { class: "small ghost", onclick: () => play(c.call_id) }, t("recent.play")) : null));
      }
    } catch (e) { /* shown again on the next event */ }
  }
  async function play(callId) {
    // The recording is fetched with the session (never a public URL) and played from memory.
    const res = await fetch("/api/v1/cti/recordings/" + encodeURIComponent(callId), { credentials: "same-origin" });
    if (!res.ok) return;
    const blob = await res.blob();
    const player = $("player");
    if (player.src) URL.revokeObjectURL(player.src);
    player.src = URL.createObjectURL(blob);
    player.hidden = false;
    player.play().catch(() => {});
  }
  let searchTimer = null;
  function search() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(async () => {
      const q = $("search-input").value.trim();
      const list = $("search-results");
      clear(list);
      if (q.length < 2) return;
      try {
        const found = await api("GET", "/cti/customers?q=" + encodeURIComponent(q));
        if (!found.length) list.append(el("li", { class: "muted", text: t("search.none") }));
        for (const c of found) list.append(el("li", {}, customerCard(c, false)));
      } catch (e) { list.append(el("li", { class: "error", text: e.message })); }
    }, 250);
  }

  // ---------- wiring ----------
  function wireStatic() {
    $("login-form").addEventListener("submit", submitLogin);
    $("logout").addEventListener("click", logout);
    $("lang").addEventListener("change", () => {
      state.lang = $("lang").value;
      localStorage.setItem("kmt.lang", state.lang);
      applyTexts();
    });
    $("status-select").addEventListener("change", changeStatus);
    $("btn-hold").addEventListener("click", () => callCommand("hold"));
    $("btn-unhold").addEventListener("click", () => callCommand("unhold"));
    $("btn-hangup").addEventListener("click", () => callCommand("hangup"));
    $("btn-transfer").addEventListener("click", () => {
      $("transfer-box").hidden = !$("transfer-box").hidden;
      renderTransferAgents();
    });
    $("transfer-number-go").addEventListener("click", () => {
      const number = $("transfer-number").value.trim();
      if (number) transfer({ number });
    });
    $("wrapup-save").addEventListener("click", saveWrapup);
    $("wrapup-extend").addEventListener("click", () => send({ type: "extend_wrapup", seconds: 30 }));
    $("dial-go").addEventListener("click", () => dial($("dial-number").value));
    $("dial-number").addEventListener("keydown", (e) => { if (e.key === "Enter") dial($("dial-number").value); });
    $("search-input").addEventListener("input", search);
    buildDialpad();
    setInterval(tickTimers, 1000);
  }

  document.addEventListener("DOMContentLoaded", boot);
})();
