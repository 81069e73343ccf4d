// Kommutator supervisor pages (reports, dashboard): translations, API calls, login, and the
// small SVG chart kit both pages draw with. No dependencies, no build step.
"use strict";

(function () {
  const I18N = {
    en: {
      "app.reports": "Reports", "app.dashboard": "Live dashboard",
      "login.title": "Sign in", "login.user": "Login", "login.password": "Password",
      "login.submit": "Sign in", "login.failed": "Wrong login or password.",
      "login.limited": "Too many attempts; wait a minute.",
      "login.forbidden": "This page is for supervisors and administrators.",
      "logout": "Sign out",
      "period.from": "From", "period.to": "To", "period.today": "Today", "period.yesterday": "Yesterday",
      "period.7d": "7 days", "period.30d": "30 days", "period.apply": "Show",
      "group": "Group by", "group.total": "Total", "group.queue": "Queue", "group.agent": "Agent",
      "group.line": "Line", "group.day": "Day", "group.week": "Week", "group.month": "Month",
      "group.hour": "Hour of day", "group.weekday": "Weekday",
      "tab.kpis": "KPIs", "tab.day": "Over the day", "tab.agents": "Agents", "tab.lines": "Lines & campaigns",
      "tab.cost": "Call cost",
      "export.csv": "CSV", "export.xlsx": "Excel",
      "kpi.offered": "Offered", "kpi.answered": "Answered", "kpi.missed": "Missed",
      "kpi.abandoned": "Abandoned", "kpi.short_abandoned": "Short abandons",
      "kpi.answer_rate": "Answer rate", "kpi.service_level": "Service level", "kpi.asa_s": "ASA",
      "kpi.avg_wait_s": "Avg wait", "kpi.max_wait_s": "Max wait", "kpi.aht_s": "AHT",
      "kpi.transfers": "Transfers", "kpi.outbound": "Outbound", "kpi.callbacks_done": "Callbacks",
      "kpi.avg_time_to_callback_s": "Time to callback", "kpi.occupancy": "Occupancy",
      "kpi.waiting": "Waiting", "kpi.longest_wait_s": "Longest wait", "kpi.available": "Available agents",
      "total": "Total", "none": "—", "no_data": "No calls in this period.",
      "chart.offered_answered": "Offered and answered", "chart.by_hour": "Calls by hour of day",
      "chart.heatmap": "Calls by weekday and hour", "chart.status": "Status time",
      "chart.lines": "Calls per campaign",
      "agent": "Agent", "agent.rang": "Rang", "agent.handled": "Handled", "agent.talk": "Talk",
      "line": "Line", "campaign": "Campaign", "calls": "Calls", "unique_callers": "Unique callers",
      "new_callers": "New customers",
      "cost.not_configured": "No tariffs are configured ([[reports.tariffs]] in the configuration).",
      "cost.total": "Total cost", "cost.unpriced": "Calls without a tariff",
      "status.available": "Available", "status.away": "Away", "status.after_call_work": "After-call work",
      "status.offline": "Offline", "status.on_call": "On a call", "status.ringing": "Ringing",
      "dash.agents": "Agents", "dash.queues": "Queues", "dash.alerts": "Alerts", "dash.window": "Window",
      "dash.window.15m": "Last 15 min", "dash.window.1h": "Last hour", "dash.window.shift": "This shift",
      "dash.queue": "Queue", "dash.in_status": "in status", "dash.call": "Call",
      "dash.live": "Live", "dash.offline": "Reconnecting…", "dash.no_alerts": "No alerts.",
      "alert.queue_long": "Queue {queue}: {n} waiting", "alert.wait_long": "Queue {queue}: a caller waits {s}",
      "alert.paused_long": "{agent} away for {s}", "alert.callback_late": "Missed call from {number} not called back for {s}",
      "day.0": "Mon", "day.1": "Tue", "day.2": "Wed", "day.3": "Thu", "day.4": "Fri", "day.5": "Sat", "day.6": "Sun",
    },
    ru: {
      "app.reports": "Отчёты", "app.dashboard": "Онлайн-монитор",
      "login.title": "Вход", "login.user": "Логин", "login.password": "Пароль",
      "login.submit": "Войти", "login.failed": "Неверный логин или пароль.",
      "login.limited": "Слишком много попыток; подождите минуту.",
      "login.forbidden": "Эта страница — для супервизоров и администраторов.",
      "logout": "Выйти",
      "period.from": "С", "period.to": "По", "period.today": "Сегодня", "period.yesterday": "Вчера",
      "period.7d": "7 дней", "period.30d": "30 дней", "period.apply": "Показать",
      "group": "Группировка", "group.total": "Итого", "group.queue": "Очередь", "group.agent": "Оператор",
      "group.line": "Линия", "group.day": "День", "group.week": "Неделя", "group.month": "Месяц",
      "group.hour": "Час дня", "group.weekday": "День недели",
      "tab.kpis": "Показатели", "tab.day": "По часам", "tab.agents": "Операторы", "tab.lines": "Линии и кампании",
      "tab.cost": "Стоимость",
      "export.csv": "CSV", "export.xlsx": "Excel",
      "kpi.offered": "Поступило", "kpi.answered": "Отвечено", "kpi.missed": "Пропущено",
      "kpi.abandoned": "Брошено", "kpi.short_abandoned": "Короткие сбросы",
      "kpi.answer_rate": "Доля отвеченных", "kpi.service_level": "Уровень сервиса", "kpi.asa_s": "Ср. время ответа",
      "kpi.avg_wait_s": "Ср. ожидание", "kpi.max_wait_s": "Макс. ожидание", "kpi.aht_s": "Ср. время обработки",
      "kpi.transfers": "Переводы", "kpi.outbound": "Исходящие", "kpi.callbacks_done": "Перезвоны",
      "kpi.avg_time_to_callback_s": "Время до перезвона", "kpi.occupancy": "Занятость",
      "kpi.waiting": "В очереди", "kpi.longest_wait_s": "Дольше всех ждёт", "kpi.available": "Свободно операторов",
      "total": "Итого", "none": "—", "no_data": "За этот период звонков нет.",
      "chart.offered_answered": "Поступило и отвечено", "chart.by_hour": "Звонки по часам",
      "chart.heatmap": "Звонки по дням недели и часам", "chart.status": "Время в статусах",
      "chart.lines": "Звонки по кампаниям",
      "agent": "Оператор", "agent.rang": "Поступило", "agent.handled": "Обработано", "agent.talk": "Разговор",
      "line": "Линия", "campaign": "Кампания", "calls": "Звонков", "unique_callers": "Уникальных",
      "new_callers": "Новых клиентов",
      "cost.not_configured": "Тарифы не настроены ([[reports.tariffs]] в конфигурации).",
      "cost.total": "Итого стоимость", "cost.unpriced": "Звонков без тарифа",
      "status.available": "Доступен", "status.away": "Отошёл", "status.after_call_work": "Постобработка",
      "status.offline": "Не в сети", "status.on_call": "Разговаривает", "status.ringing": "Звонит",
      "dash.agents": "Операторы", "dash.queues": "Очереди", "dash.alerts": "Тревоги", "dash.window": "Окно",
      "dash.window.15m": "15 минут", "dash.window.1h": "Час", "dash.window.shift": "Смена",
      "dash.queue": "Очередь", "dash.in_status": "в статусе", "dash.call": "Звонок",
      "dash.live": "Онлайн", "dash.offline": "Переподключение…", "dash.no_alerts": "Тревог нет.",
      "alert.queue_long": "Очередь {queue}: ждут {n}", "alert.wait_long": "Очередь {queue}: абонент ждёт {s}",
      "alert.paused_long": "{agent} отошёл уже {s}", "alert.callback_late": "Пропущенный с {number} без перезвона {s}",
      "day.0": "Пн", "day.1": "Вт", "day.2": "Ср", "day.3": "Чт", "day.4": "Пт", "day.5": "Сб", "day.6": "Вс",
    },
  };

  const state = { lang: "en", csrf: null, me: null };

  function pickLanguage() {
    const saved = localStorage.getItem("kmt.lang");
    if (saved === "ru" || saved === "en") return saved;
    const nav = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
    return nav.toLowerCase().startsWith("ru") ? "ru" : "en";
  }
  function t(key, vars) {
    let text = (I18N[state.lang] && I18N[state.lang][key]) || I18N.en[key] || key;
    if (vars) for (const k of Object.keys(vars)) text = text.replace("{" + k + "}", vars[k]);
    return text;
  }
  function applyTexts() {
    document.documentElement.lang = state.lang;
    document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = t(node.dataset.i18n); });
    const lang = document.getElementById("lang");
    if (lang) lang.value = state.lang;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

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

  // Shows the login form until a supervisor or admin is signed in, then calls `start(me)`.
  async function boot(start) {
    state.lang = pickLanguage();
    applyTexts();
    const lang = document.getElementById("lang");
    lang.addEventListener("change", () => {
      state.lang = lang.value; localStorage.setItem("kmt.lang", state.lang); applyTexts();
      document.dispatchEvent(new Event("kmt-lang"));
    });
    document.getElementById("logout").addEventListener("click", async () => {
      try { await api("POST", "/auth/logout"); } catch (e) { /* already gone */ }
      location.reload();
    });
    document.getElementById("login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = document.getElementById("login-error");
      error.textContent = "";
      try {
        const session = await api("POST", "/auth/login", {
          login: document.getElementById("login-user").value,
          password: document.getElementById("login-password").value,
        });
        document.getElementById("login-password").value = "";
        enter(session, start);
      } catch (e) {
        error.textContent = e.status === 429 ? t("login.limited") : t("login.failed");
      }
    });
    try {
      enter(await api("GET", "/auth/me"), start);
    } catch (e) {
      document.getElementById("login-view").hidden = false;
    }
  }
  function enter(session, start) {
    const role = session.user.role;
    if (role !== "supervisor" && role !== "admin") {
      document.getElementById("login-view").hidden = false;
      document.getElementById("login-error").textContent = t("login.forbidden");
      return;
    }
    state.me = session.user; state.csrf = session.csrf_token;
    document.getElementById("login-view").hidden = true;
    document.getElementById("main-view").hidden = false;
    document.getElementById("logout").hidden = false;
    document.getElementById("me").textContent = session.user.display_name;
    start(session.user);
  }

  // ---------- formatting ----------
  function pct(v) { return v === null || v === undefined ? t("none") : (v * 100).toFixed(1) + " %"; }
  function dur(s) {
    if (s === null || s === undefined) return t("none");
    s = Math.round(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(sec).padStart(2, "0");
  }
  function num(v) { return v === null || v === undefined ? t("none") : String(v); }

  // ---------- charts (SVG, drawn here) ----------
  const COLORS = ["#1f6feb", "#1a7f37", "#cf222e", "#b76e00", "#8250df", "#8c959f"];

  // Grouped bars: labels along x, one bar per series in each group.
  function barChart(labels, series, opts) {
    const width = (opts && opts.width) || 720, height = (opts && opts.height) || 240;
    const pad = { l: 40, r: 10, t: 24, b: 40 };
    // Integer ticks: four equal steps of a whole number, so small counts do not repeat labels.
    const top = Math.max(1, ...series.flatMap((s) => s.values.map((v) => v || 0)));
    const max = Math.ceil(top / 4) * 4;
    const plotW = width - pad.l - pad.r, plotH = height - pad.t - pad.b;
    const groupW = plotW / Math.max(1, labels.length);
    const barW = Math.max(1, (groupW * 0.8) / series.length);
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + plotH - (plotH * i) / 4;
      root.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: y, y2: y, class: "grid" }));
      root.append(svg("text", { x: pad.l - 4, y: y + 4, "text-anchor": "end", class: "axis" }, Math.round((max * i) / 4)));
    }
    labels.forEach((label, i) => {
      const x0 = pad.l + i * groupW + groupW * 0.1;
      series.forEach((s, j) => {
        const v = s.values[i] || 0;
        const h = (plotH * v) / max;
        root.append(svg("rect", {
          x: x0 + j * barW, y: pad.t + plotH - h, width: Math.max(1, barW - 1), height: h,
          fill: s.color || COLORS[j % COLORS.length], class: "bar", "data-series": s.name, "data-value": v,
        }, svg("title", {}, `${label} · ${s.name}: ${v}`)));
      });
      const every = Math.ceil(labels.length / 24);
      if (i % every === 0) {
        root.append(svg("text", { x: x0 + (groupW * 0.8) / 2, y: height - pad.b + 14, "text-anchor": "middle", class: "axis" }, label));
      }
    });
    series.forEach((s, j) => {
      const x = pad.l + j * 150;
      root.append(svg("rect", { x, y: 6, width: 10, height: 10, fill: s.color || COLORS[j % COLORS.length] }));
      root.append(svg("text", { x: x + 14, y: 15, class: "legend" }, s.name));
    });
    return root;
  }

  // Stacked horizontal bars: one row per label, segments per series.
  function stackedBars(labels, series, opts) {
    const width = (opts && opts.width) || 720, rowH = 22;
    const pad = { l: 140, r: 10, t: 26, b: 8 };
    const height = pad.t + pad.b + rowH * Math.max(1, labels.length);
    const totals = labels.map((_, i) => series.reduce((a, s) => a + (s.values[i] || 0), 0));
    const max = Math.max(1, ...totals);
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
    labels.forEach((label, i) => {
      const y = pad.t + i * rowH;
      root.append(svg("text", { x: pad.l - 6, y: y + 15, "text-anchor": "end", class: "axis" }, label));
      let x = pad.l;
      series.forEach((s, j) => {
        const w = ((width - pad.l - pad.r) * (s.values[i] || 0)) / max;
        if (w > 0) {
          root.append(svg("rect", { x, y: y + 3, width: w, height: rowH - 6, fill: s.color || COLORS[j % COLORS.length], class: "bar" },
            svg("title", {}, `${label} · ${s.name}: ${dur(s.values[i])}`)));
        }
        x += w;
      });
    });
    series.forEach((s, j) => {
      const x = pad.l + j * 140;
      root.append(svg("rect", { x, y: 6, width: 10, height: 10, fill: s.color || COLORS[j % COLORS.length] }));
      root.append(svg("text", { x: x + 14, y: 15, class: "legend" }, s.name));
    });
    return root;
  }

  // A weekday × hour grid shaded by value.
  function heatmap(cells, valueOf) {
    const cw = 26, ch = 22, pad = { l: 40, t: 20 };
    const width = pad.l + 24 * cw + 4, height = pad.t + 7 * ch + 4;
    const max = Math.max(1, ...cells.map(valueOf));
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart heatmap", role: "img" });
    for (let h = 0; h < 24; h++) root.append(svg("text", { x: pad.l + h * cw + cw / 2, y: 14, "text-anchor": "middle", class: "axis" }, h));
    for (let d = 0; d < 7; d++) {
      root.append(svg("text", { x: pad.l - 6, y: pad.t + d * ch + 15, "text-anchor": "end", class: "axis" }, t("day." + d)));
      for (let h = 0; h < 24; h++) {
        const cell = cells.find((c) => c.weekday === d && c.hour === h);
        const v = cell ? valueOf(cell) : 0;
        const alpha = v ? 0.15 + 0.85 * (v / max) : 0.04;
        root.append(svg("rect", {
          x: pad.l + h * cw + 1, y: pad.t + d * ch + 1, width: cw - 2, height: ch - 2, rx: 3,
          fill: `rgba(31,111,235,${alpha.toFixed(3)})`, class: "cell", "data-value": v,
        }, svg("title", {}, `${t("day." + d)} ${h}:00 — ${v}`)));
      }
    }
    return root;
  }

  window.KMT = { state, t, el, svg, api, boot, applyTexts, pct, dur, num, barChart, stackedBars, heatmap, COLORS };
})();
