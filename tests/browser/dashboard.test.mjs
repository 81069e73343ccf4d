// End-to-end test of the supervisor pages in real headless Chromium (Debian package) against
// `kommutator demo` with its simulated Asterisk running load: the live dashboard shows the
// agents and a caller waiting in a queue; the report page draws its charts.
// Screenshots: test-artifacts/dashboard-*.png, test-artifacts/reports-*.png.
// Usage: node dashboard.test.mjs [path to the kommutator binary]
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import assert from "node:assert/strict";

const root = resolve(import.meta.dirname, "../..");
const binary = process.argv[2] || join(root, "target/debug/kommutator");
const artifacts = join(root, "test-artifacts");
mkdirSync(artifacts, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "kmt-dash-"));
const readyFile = join(work, "ready.json");

const demo = spawn(binary, ["demo", "--listen", "127.0.0.1:0", "--calls-per-minute", "40",
  "--control", "127.0.0.1:0", "--ready-file", readyFile, "--data-dir", join(work, "data"),
  "--after-call-work-secs", "5"], { stdio: ["ignore", "ignore", "inherit"] });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The pages' CSP forbids eval, so poll with page.evaluate of a function.
async function until(page, predicate, timeout = 10000, arg) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(predicate, arg)) return;
    if (Date.now() > deadline) throw new Error("timed out waiting for " + predicate);
    await sleep(50);
  }
}
let browser;
try {
  for (let i = 0; i < 300 && !existsSync(readyFile); i++) await sleep(100);
  const ready = JSON.parse(readFileSync(readyFile, "utf8"));
  const supervisor = ready.accounts.find((a) => a.role === "supervisor");
  const agent = ready.accounts.find((a) => a.role === "agent");
  const control = async (path, body) => {
    const res = await fetch(ready.control + path, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    assert.ok(res.ok, path + ": " + res.status);
    return res.json();
  };
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
  const login = async (page, url, account) => {
    await page.goto(url);
    await page.fill("#login-user", account.login);
    await page.fill("#login-password", account.password);
    await page.click("#login-form button[type=submit]");
  };

  // An agent may not see the dashboard.
  const agentPage = await (await browser.newContext({ locale: "en-US" })).newPage();
  await login(agentPage, ready.url + "/dashboard/", agent);
  await until(agentPage, () => document.querySelector("#login-error").textContent.length > 0);
  const denied = await agentPage.evaluate(() => fetch("/api/v1/dashboard").then((r) => r.status));
  assert.equal(denied, 403);

  const context = await browser.newContext({ locale: "ru-RU", viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await login(page, ready.url + "/dashboard/", supervisor);
  await page.waitForSelector("#main-view:not([hidden])");
  await page.waitForSelector("#conn[data-state=on]");
  await until(page, () => document.querySelectorAll("#agents .agent").length >= 3);

  // Callers waiting: the hotline's only member is paused in the capture, so its callers wait.
  for (let i = 0; i < 3; i++) await control("/calls", { scenario: "queue_abandon", caller: "+7916555000" + i });
  await until(page, () => [...document.querySelectorAll("#queue-table tr.queue-row")]
    .some((row) => Number(row.dataset.waiting) >= 1), 15000);
  await page.screenshot({ path: join(artifacts, "dashboard-queue-waiting.png"), fullPage: true });
  const waiting = await page.evaluate(() => [...document.querySelectorAll("#queue-table tr.queue-row")]
    .map((row) => [row.dataset.queue, Number(row.dataset.waiting)]));
  assert.ok(waiting.some(([, n]) => n >= 1), JSON.stringify(waiting));
  assert.equal(await page.locator("#windows button").count(), 3);

  // Load keeps running: counters move once calls finish.
  await until(page, () => Number(document.querySelector("#tiles [data-kpi=offered] .value")?.textContent) > 0, 30000);
  await page.click("#windows button[data-window=shift]");
  await page.screenshot({ path: join(artifacts, "dashboard-shift.png"), fullPage: true });

  // The report page draws its charts.
  const reports = await context.newPage();
  reports.on("pageerror", (e) => errors.push(String(e)));
  await reports.goto(ready.url + "/reports/?preset=today&group=queue");
  await until(reports, () => document.body.dataset.loaded === "true", 15000);
  await until(reports, () => document.querySelectorAll("#kpi-chart svg rect.bar").length > 0);
  await reports.screenshot({ path: join(artifacts, "reports-kpis.png"), fullPage: true });
  await reports.click("#tabs button[data-tab=day]");
  await until(reports, () => document.querySelectorAll("#heatmap svg rect.cell").length === 7 * 24);
  await until(reports, () => document.querySelectorAll("#hour-chart svg rect.bar").length === 48);
  await reports.screenshot({ path: join(artifacts, "reports-day.png"), fullPage: true });
  await reports.click("#tabs button[data-tab=agents]");
  await until(reports, () => document.querySelectorAll("#agents-report tbody tr").length >= 3);
  await reports.screenshot({ path: join(artifacts, "reports-agents.png"), fullPage: true });
  const csv = await reports.evaluate(() => fetch(document.querySelector("#kpis-csv").href).then((r) => r.text()));
  assert.ok(csv.includes("Итого"), csv.slice(0, 200));
  assert.deepEqual(errors, []);
  console.log("dashboard e2e: ok; waiting", JSON.stringify(waiting), "; screenshots in", artifacts);
} finally {
  if (browser) await browser.close();
  demo.kill("SIGTERM");
}
