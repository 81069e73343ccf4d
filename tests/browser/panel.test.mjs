// End-to-end test of the operator panel in real headless Chromium (Debian package) against
// `kommutator demo` with its test control endpoint. Screenshots: test-artifacts/.
// Usage: node panel.test.mjs [path to the kommutator binary]
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
const work = mkdtempSync(join(tmpdir(), "kmt-e2e-"));
const readyFile = join(work, "ready.json");

const demo = spawn(binary, ["demo", "--listen", "127.0.0.1:0", "--calls-per-minute", "0",
  "--control", "127.0.0.1:0", "--ready-file", readyFile, "--data-dir", join(work, "data"),
  "--after-call-work-secs", "60"], { stdio: ["ignore", "ignore", "inherit"] });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// page.waitForFunction evaluates a string, which the panel's CSP (no unsafe-eval) forbids;
// page.evaluate of a function is allowed, so poll with it.
async function until(page, predicate, timeout = 5000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(predicate)) return;
    if (Date.now() > deadline) throw new Error("timed out waiting for " + predicate);
    await sleep(20);
  }
}
let browser;
try {
  for (let i = 0; i < 200 && !existsSync(readyFile); i++) await sleep(100);
  const ready = JSON.parse(readFileSync(readyFile, "utf8"));
  const account = (login) => ready.accounts.find((a) => a.login === login);
  const control = async (path, body) => {
    const res = await fetch(ready.control + path, body ? {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    } : undefined);
    assert.ok(res.ok, path + ": " + res.status);
    return res.json();
  };

  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
    // playwright gives every launch a fresh temporary user-data-dir of its own.
  });
  const open = async (login, locale) => {
    const context = await browser.newContext({ locale, viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    const alerts = [];
    page.on("dialog", async (d) => { alerts.push(d.message()); await d.dismiss(); });
    page.alerts = alerts;
    await page.goto(ready.panel);
    await page.fill("#login-user", login);
    await page.fill("#login-password", account(login).password);
    await page.click("#login-form button[type=submit]");
    await page.waitForSelector("#panel-view:not([hidden])");
    await page.waitForSelector("#conn[data-state=on]");
    await until(page, () => document.querySelector("#status-select").value === "available");
    return page;
  };
  const shot = (page, name) => page.screenshot({ path: join(artifacts, name + ".png"), fullPage: true });

  const anna = await open("anna", "ru-RU");
  const boris = await open("boris", "en-US");
  await shot(anna, "01-anna-logged-in");

  // A sales-queue call from Grace Green that waits for the panel's transfer.
  await control("/calls", { scenario: "blind_transfer", caller: "+15551230007", await_transfer: true });
  await anna.waitForSelector("#call-card:not([hidden])");
  await until(anna, () => document.querySelector("#customers .customer-name")?.textContent === "Grace Green");
  const pops = await anna.evaluate(() => window.kmtPops);
  assert.equal(pops[0].customer, "Grace Green");
  assert.ok(pops[0].latency_ms <= 100, "screen pop took " + pops[0].latency_ms + " ms");
  await shot(anna, "02-anna-ringing");

  await anna.waitForSelector("#call-card[data-state=talking]");
  await anna.click("#btn-transfer");
  await anna.waitForSelector("#transfer-agents button[data-login=boris]");
  await shot(anna, "03-anna-transfer");
  await anna.click("#transfer-agents button[data-login=boris]");
  await boris.waitForSelector("#call-card:not([hidden])");
  await until(boris, () => document.querySelector("#customers .customer-name")?.textContent === "Grace Green");
  await shot(boris, "04-boris-has-the-call");

  await anna.waitForSelector("#wrapup-card:not([hidden])");
  await anna.selectOption("#wrapup-disposition", "question");
  await anna.fill("#wrapup-notes", "Asked about delivery; passed to Boris.");
  await shot(anna, "05-anna-wrapup");
  await anna.click("#wrapup-save");
  await until(anna, () => document.querySelector("#wrapup-result").textContent.length > 0);

  await anna.selectOption("#status-select", "away:lunch");
  let paused = false;
  for (let i = 0; i < 50 && !paused; i++) {
    const log = await control("/pause-log");
    paused = log.some((p) => p.interface === "Local/101@agents/nm" && p.paused && p.reason === "lunch");
    if (!paused) await sleep(100);
  }
  assert.ok(paused, "the simulator received QueuePause reason=lunch for agent 101");
  await until(anna, () => document.querySelector("#status-dot").dataset.status === "away");
  await shot(anna, "06-anna-away-lunch");

  // A caller whose name is markup: shown as text, never run.
  await control("/calls", { scenario: "direct_answered", caller: "+15550009999", caller_name: "<img src=x onerror=alert(1)>" });
  await until(boris, () => document.querySelector("#caller-name")?.textContent === "<img src=x onerror=alert(1)>", 10000);
  assert.equal(await boris.locator("#call-card img").count(), 0);
  assert.deepEqual(boris.alerts, []);
  await shot(boris, "07-boris-markup-caller-is-text");
  console.log("panel e2e: ok; screen pop latency", pops[0].latency_ms, "ms; screenshots in", artifacts);
} finally {
  if (browser) await browser.close();
  demo.kill("SIGTERM");
}
