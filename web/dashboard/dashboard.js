// Kommutator live dashboard: one WebSocket (/api/v1/dashboard/ws) pushes the whole picture
// every refresh; this page only draws it. Reconnects with backoff.
"use strict";

(function () {
  const { t, el, pct, dur, num, barChart } = window.KMT;
  const $ = (id) => document.getElementById(id);
  let frame = null;
  let windowName = localStorage.getItem("kmt.dash.window") || null;
  let delay = 500;

  const TILES = [
    ["offered", num], ["answered", num], ["missed", num], ["abandoned", num], ["answer_rate", pct],
    ["service_level", pct], ["asa_s", dur], ["max_wait_s", dur], ["aht_s", dur], ["callbacks_done", num],
    ["occupancy", pct],
  ];

  function windowLabel(name) {
    if (name === "shift") return t("dash.window.shift");
    if (name === "15m") return t("dash.window.15m");
    if (name === "60m") return t("dash.window.1h");
    return name;
  }

  function render() {
    if (!frame) return;
    const windows = frame.windows || [];
    if (!windows.some((w) => w.name === windowName)) windowName = windows.length ? windows[0].name : null;
    $("windows").replaceChildren(...windows.map((w) => el("button", {
      class: w.name === windowName ? "active" : "", dataset: { window: w.name },
      onclick: () => { windowName = w.name; localStorage.setItem("kmt.dash.window", w.name); render(); },
    }, windowLabel(w.name))));
    const win = windows.find((w) => w.name === windowName);
    const live = [
      ["waiting", frame.queues.reduce((n, q) => n + q.waiting, 0), num],
      ["longest_wait_s", Math.max(0, ...frame.queues.map((q) => q.longest_wait_s)), dur],
      ["available", frame.available_agents, num],
    ];
    $("tiles").replaceChildren(
      ...live.map(([k, v, f]) => el("div", { class: "tile live", dataset: { kpi: k } }, el("div", { class: "value" }, f(v)), el("div", { class: "name" }, t("kpi." + k)))),
      ...(win ? TILES.map(([k, f]) => el("div", { class: "tile", dataset: { kpi: k } }, el("div", { class: "value" }, f(win.kpis[k])), el("div", { class: "name" }, t("kpi." + k)))) : []));

    $("queues").replaceChildren(el("table", { id: "queue-table" },
      el("thead", {}, el("tr", {}, el("th", {}, t("dash.queue")), el("th", {}, t("kpi.waiting")), el("th", {}, t("kpi.longest_wait_s")), el("th", {}, t("kpi.available")), el("th", {}, t("kpi.service_level")))),
      el("tbody", {}, frame.queues.map((q) => {
        const wq = win && win.queues.find((x) => x.queue === q.queue);
        return el("tr", { class: "queue-row", dataset: { queue: q.queue, waiting: q.waiting } },
          el("td", {}, q.queue), el("td", { class: "waiting" }, q.waiting), el("td", {}, dur(q.longest_wait_s)),
          el("td", {}, q.available_agents), el("td", {}, pct(wq ? wq.kpis.service_level : null)));
      }))));
    $("queue-chart").replaceChildren(frame.queues.length ? barChart(frame.queues.map((q) => q.queue), [
      { name: t("kpi.waiting"), values: frame.queues.map((q) => q.waiting), color: "#cf222e" },
      { name: t("kpi.available"), values: frame.queues.map((q) => q.available_agents), color: "#1a7f37" },
    ], { height: 180 }) : "");

    const alerts = frame.alerts.map((a) => {
      const s = dur(a.seconds);
      const text = a.kind === "queue_long" ? t("alert.queue_long", { queue: a.queue, n: a.n })
        : a.kind === "wait_long" ? t("alert.wait_long", { queue: a.queue, s })
        : a.kind === "paused_long" ? t("alert.paused_long", { agent: a.agent || a.login, s })
        : t("alert.callback_late", { number: a.number, s });
      return el("li", { dataset: { kind: a.kind } }, text);
    });
    $("alerts").replaceChildren(...(alerts.length ? alerts : [el("li", { class: "muted" }, t("dash.no_alerts"))]));

    $("agents").replaceChildren(...frame.agents.map((a) => {
      const shown = a.call ? (a.call.state === "talking" ? "on_call" : "ringing") : a.status;
      const label = a.call ? t(a.call.state === "talking" ? "status.on_call" : "status.ringing") : t("status." + a.status) + (a.reason ? ": " + a.reason : "");
      return el("div", { class: "agent", dataset: { login: a.login, status: a.call && a.call.state === "talking" ? "on_call" : a.status, shown } },
        el("div", { class: "name" }, a.name || a.login, " ", el("span", { class: "muted small" }, a.extensions.join(", "))),
        el("div", { class: "status" }, label, " · ", dur(a.call ? a.call.since_s : a.in_status_s)),
        a.call ? el("div", { class: "status" }, t("dash.call"), ": ", a.call.number || "—", a.call.queue ? " · " + a.call.queue : "") : null);
    }));
    document.body.dataset.frames = String(Number(document.body.dataset.frames || 0) + 1);
  }

  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/dashboard/ws");
    ws.onopen = () => { delay = 500; $("conn").dataset.state = "on"; $("conn").textContent = t("dash.live"); };
    ws.onmessage = (event) => {
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "dashboard") render();
    };
    ws.onclose = () => {
      $("conn").dataset.state = "off"; $("conn").textContent = t("dash.offline");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  document.addEventListener("DOMContentLoaded", () => KMT.boot(() => {
    document.addEventListener("kmt-lang", render);
    connect();
  }));
})();
