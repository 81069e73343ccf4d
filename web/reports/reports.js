// Kommutator report page: period and grouping, KPI tiles and table, charts drawn in SVG by
// common.js, CSV/XLSX export links to the same REST endpoints.
"use strict";

(function () {
  const { t, el, api, pct, dur, num, barChart, stackedBars, heatmap } = window.KMT;
  const $ = (id) => document.getElementById(id);
  let last = null;

  function localInput(date) {
    const off = date.getTimezoneOffset() * 60000;
    return new Date(date.getTime() - off).toISOString().slice(0, 16);
  }
  function preset(name) {
    const now = new Date();
    const midnight = new Date(now.getFullYear(), now.getMonth(), now.getDate());
    const day = 86400000;
    const ranges = {
      today: [midnight, new Date(midnight.getTime() + day)],
      yesterday: [new Date(midnight.getTime() - day), midnight],
      "7d": [new Date(midnight.getTime() - 6 * day), new Date(midnight.getTime() + day)],
      "30d": [new Date(midnight.getTime() - 29 * day), new Date(midnight.getTime() + day)],
    };
    const [from, to] = ranges[name];
    $("from").value = localInput(from);
    $("to").value = localInput(to);
  }
  function params(extra) {
    const p = new URLSearchParams();
    p.set("from", new Date($("from").value).toISOString());
    p.set("to", new Date($("to").value).toISOString());
    p.set("lang", KMT.state.lang);
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    return p;
  }
  function exportLinks(name, path, extra) {
    for (const fmt of ["csv", "xlsx"]) {
      $(`${name}-${fmt}`).href = "/api/v1" + path + "?" + params(Object.assign({ format: fmt }, extra)).toString();
    }
  }

  const KPI_TILES = [
    ["offered", num], ["answered", num], ["missed", num], ["abandoned", num], ["short_abandoned", num],
    ["answer_rate", pct], ["service_level", pct], ["asa_s", dur], ["avg_wait_s", dur], ["max_wait_s", dur],
    ["aht_s", dur], ["transfers", num], ["outbound", num], ["callbacks_done", num],
    ["avg_time_to_callback_s", dur], ["occupancy", pct],
  ];

  function groupLabel(group, row) {
    if (row.key === null) return t("none");
    if (group === "weekday") return t("day." + row.key);
    if (group === "hour") return row.key.padStart(2, "0") + ":00";
    return row.label ? `${row.label} (${row.key})` : row.key;
  }

  function renderKpis(report) {
    const tiles = $("kpi-tiles");
    tiles.replaceChildren(...KPI_TILES.map(([key, f]) =>
      el("div", { class: "tile", dataset: { kpi: key } }, el("div", { class: "value" }, f(report.total[key])), el("div", { class: "name" }, t("kpi." + key)))));
    const labels = report.rows.map((r) => groupLabel(report.group, r));
    $("kpi-chart").replaceChildren(report.rows.length
      ? barChart(labels, [
        { name: t("kpi.offered"), values: report.rows.map((r) => r.offered) },
        { name: t("kpi.answered"), values: report.rows.map((r) => r.answered) },
        { name: t("kpi.abandoned"), values: report.rows.map((r) => r.abandoned + r.missed) },
      ])
      : el("p", { class: "muted" }, t("no_data")));
    const head = el("tr", {}, el("th", {}, t("group." + report.group)), ...KPI_TILES.map(([k]) => el("th", {}, t("kpi." + k))));
    const rows = report.rows.map((r) => el("tr", {}, el("td", {}, groupLabel(report.group, r)), ...KPI_TILES.map(([k, f]) => el("td", {}, f(r[k])))));
    const total = el("tr", { class: "total" }, el("td", {}, t("total")), ...KPI_TILES.map(([k, f]) => el("td", {}, f(report.total[k]))));
    $("kpi-table").replaceChildren(el("table", { id: "kpi-report" }, el("thead", {}, head), el("tbody", {}, rows, total)));
  }

  function renderDay(hours, map) {
    const byHour = Array.from({ length: 24 }, (_, h) => hours.rows.find((r) => r.key === String(h)) || { offered: 0, answered: 0 });
    $("hour-chart").replaceChildren(barChart(byHour.map((_, h) => String(h).padStart(2, "0")), [
      { name: t("kpi.offered"), values: byHour.map((r) => r.offered) },
      { name: t("kpi.answered"), values: byHour.map((r) => r.answered) },
    ]));
    $("heatmap").replaceChildren(heatmap(map.cells, (c) => c.offered));
  }

  function renderAgents(report) {
    const agents = report.agents;
    const name = (a) => a.name || a.login || a.extensions.join(", ");
    const away = (a) => Object.entries(a.status_s).filter(([k]) => k.startsWith("away")).reduce((s, [, v]) => s + v, 0);
    $("status-chart").replaceChildren(agents.length ? stackedBars(agents.map(name), [
      { name: t("status.available"), values: agents.map((a) => a.status_s.available || 0), color: "#1a7f37" },
      { name: t("status.after_call_work"), values: agents.map((a) => a.status_s.after_call_work || 0), color: "#1f6feb" },
      { name: t("status.away"), values: agents.map(away), color: "#b76e00" },
    ]) : el("p", { class: "muted" }, t("no_data")));
    const cols = [
      [t("agent.rang"), (a) => a.rang], [t("agent.handled"), (a) => a.handled], [t("kpi.answered"), (a) => a.answered],
      [t("kpi.outbound"), (a) => a.outbound], [t("agent.talk"), (a) => dur(a.talk_s)], [t("kpi.aht_s"), (a) => dur(a.aht_s)],
      [t("status.available"), (a) => dur(a.status_s.available || 0)], [t("status.away"), (a) => dur(away(a))],
      [t("status.after_call_work"), (a) => dur(a.status_s.after_call_work || 0)], [t("kpi.occupancy"), (a) => pct(a.occupancy)],
      [t("kpi.callbacks_done"), (a) => a.callbacks_done],
    ];
    $("agents-table").replaceChildren(el("table", { id: "agents-report" },
      el("thead", {}, el("tr", {}, el("th", {}, t("agent")), ...cols.map(([h]) => el("th", {}, h)))),
      el("tbody", {}, agents.map((a) => el("tr", {}, el("td", {}, name(a)), ...cols.map(([, f]) => el("td", {}, f(a))))))));
  }

  function renderLines(report) {
    const camps = report.campaigns;
    $("lines-chart").replaceChildren(camps.length ? barChart(camps.map((c) => c.campaign || t("none")), [
      { name: t("calls"), values: camps.map((c) => c.calls) },
      { name: t("kpi.answered"), values: camps.map((c) => c.answered) },
      { name: t("new_callers"), values: camps.map((c) => c.new_callers) },
    ]) : el("p", { class: "muted" }, t("no_data")));
    $("lines-table").replaceChildren(el("table", { id: "lines-report" },
      el("thead", {}, el("tr", {}, ...[t("line"), t("campaign"), t("calls"), t("kpi.answered"), t("kpi.answer_rate"), t("unique_callers"), t("new_callers")].map((h) => el("th", {}, h)))),
      el("tbody", {}, report.lines.map((l) => el("tr", {},
        el("td", {}, l.line || t("none")), el("td", { class: "text" }, l.campaign || t("none")), el("td", {}, l.calls),
        el("td", {}, l.answered), el("td", {}, pct(l.answer_rate)), el("td", {}, l.unique_callers), el("td", {}, l.new_callers))))));
  }

  function renderCost(report) {
    if (!report.configured) {
      $("cost").replaceChildren(el("p", { class: "muted" }, t("cost.not_configured")));
      return;
    }
    const table = (rows, head) => el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, head), el("th", {}, t("calls")), el("th", {}, t("agent.talk")), el("th", {}, report.currency))),
      el("tbody", {}, rows.map((r) => el("tr", {}, el("td", {}, r.key), el("td", {}, r.calls), el("td", {}, dur(r.talk_s)), el("td", {}, r.cost.toFixed(2))))));
    $("cost").replaceChildren(
      el("div", { class: "tiles" },
        el("div", { class: "tile" }, el("div", { class: "value" }, report.total.toFixed(2) + " " + report.currency), el("div", { class: "name" }, t("cost.total"))),
        el("div", { class: "tile" }, el("div", { class: "value" }, report.unpriced_calls), el("div", { class: "name" }, t("cost.unpriced")))),
      el("div", { class: "grid2" }, table(report.by_agent, t("agent")), table(report.by_line, t("line"))));
  }

  async function load() {
    const group = $("group").value;
    const [kpis, hours, map, agents, lines, cost] = await Promise.all([
      api("GET", "/reports/kpis?" + params({ group })),
      api("GET", "/reports/kpis?" + params({ group: "hour" })),
      api("GET", "/reports/heatmap?" + params()),
      api("GET", "/reports/agents?" + params()),
      api("GET", "/reports/lines?" + params()),
      api("GET", "/reports/cost?" + params()),
    ]);
    last = { kpis, hours, map, agents, lines, cost };
    render();
    exportLinks("kpis", "/reports/kpis", { group });
    exportLinks("heatmap", "/reports/heatmap");
    exportLinks("agents", "/reports/agents");
    exportLinks("lines", "/reports/lines");
    exportLinks("cost", "/reports/cost");
    document.body.dataset.loaded = "true";
  }
  function render() {
    if (!last) return;
    renderKpis(last.kpis);
    renderDay(last.hours, last.map);
    renderAgents(last.agents);
    renderLines(last.lines);
    renderCost(last.cost);
  }

  function showTab(name) {
    document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
    document.querySelectorAll(".tab").forEach((s) => { s.hidden = s.id !== "tab-" + name; });
  }

  function start() {
    const query = new URLSearchParams(location.search);
    preset(query.get("preset") || "today");
    if (query.get("from")) $("from").value = localInput(new Date(query.get("from")));
    if (query.get("to")) $("to").value = localInput(new Date(query.get("to")));
    $("group").value = query.get("group") || "queue";
    document.querySelectorAll("[data-preset]").forEach((b) => b.addEventListener("click", () => { preset(b.dataset.preset); load(); }));
    document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
    $("apply").addEventListener("click", load);
    $("group").addEventListener("change", load);
    document.addEventListener("kmt-lang", render);
    if (query.get("tab")) showTab(query.get("tab"));
    load().catch((e) => { $("kpi-tiles").replaceChildren(el("p", { class: "error" }, e.message)); });
  }

  document.addEventListener("DOMContentLoaded", () => KMT.boot(start));
})();
