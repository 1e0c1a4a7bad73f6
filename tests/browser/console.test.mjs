// The admin console in a real browser: Debian's Chromium (headless), driven by playwright-core,
// against a real `calbridge serve` (SQLite file in a temporary directory) and the built-in
// Exchange simulator, both on 127.0.0.1 ports the system picks.
//
// The story: sign in (with the keyboard), create a Graph connection to the simulator, link the
// organizer and a room, test the connection, sync from the sync-health page (once throttled,
// and see the wait), book the room from the planner and see the booking accepted, book the
// same time again and see it declined, sign out. A screenshot of each page goes to
// docs/screenshots/. Any console error or uncaught exception in the page fails the test.
//
// Usage: node tests/browser/console.test.mjs
// Environment: CALBRIDGE_BIN (default: $CARGO_TARGET_DIR or target, then debug/calbridge),
//              CHROMIUM (default /usr/bin/chromium).

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.CALBRIDGE_BIN || join(process.env.CARGO_TARGET_DIR || join(root, "target"), "debug", "calbridge");
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = join(root, "docs", "screenshots");
const tmp = mkdtempSync(join(tmpdir(), "calbridge-browser-"));
const started = Date.now();
const children = [];

const env = {
  ...process.env,
  CALBRIDGE_STORE: `sqlite://${join(tmp, "calbridge.db")}`,
  CALBRIDGE_CONFIG: join(tmp, "none.toml"),
  CALBRIDGE_OUTBOUND_HOSTS: "127.0.0.1",
  CALBRIDGE_LOG: "warn",
};
writeFileSync(env.CALBRIDGE_CONFIG, "");
env.CALBRIDGE_MASTER_KEY = execFileSync(bin, ["secrets", "new-key"], { env }).toString().trim();

const ADMIN = "admin";
const PASSWORD = "a long test password";
execFileSync(bin, ["admin", "create", "--username", ADMIN], { env: { ...env, CALBRIDGE_ADMIN_PASSWORD: PASSWORD } });

/** Starts `calbridge ARGS` and resolves with the first URL on the line starting with `marker`. */
function start(args, marker) {
  return new Promise((ok, fail) => {
    const child = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let out = "";
    let err = "";
    const timer = setTimeout(() => fail(new Error(`calbridge ${args[0]} did not start:\n${out}\n${err}`)), 30000);
    child.stderr.on("data", (d) => (err += d));
    child.stdout.on("data", (d) => {
      out += d;
      const line = out.split("\n").find((l) => l.includes(marker));
      const url = line && line.match(/https?:\/\/[0-9.:]+/);
      if (url) {
        clearTimeout(timer);
        ok({ url: url[0], child, log: () => err });
      }
    });
    child.on("exit", (code) => fail(new Error(`calbridge ${args[0]} exited with ${code}:\n${out}\n${err}`)));
  });
}

function step(text) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${text}`);
}

let context;
let page;
let failed = false;
try {
  const sim = await start(["sim", "--listen", "127.0.0.1:0"], "  Graph:");
  const api = await start(["serve", "--listen", "127.0.0.1:0", "--sync-interval", "0"], "calbridge API listening");
  step(`simulator ${sim.url}, calbridge ${api.url}`);

  context = await chromium.launchPersistentContext(join(tmp, "profile"), {
    executablePath: browserPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 860 },
  });
  page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`uncaught exception: ${e.message}`));
  page.on("dialog", (d) => d.accept());
  page.setDefaultTimeout(20000);
  mkdirSync(shots, { recursive: true });
  const shot = async (name) => {
    await page.evaluate(() => document.querySelector("#toast").replaceChildren());
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  };

  // --- Sign in, with the keyboard only.
  await page.goto(`${api.url}/`);
  await page.waitForSelector("#username");
  assert.equal(new URL(page.url()).pathname, "/ui/", "/ redirects to the console");
  await shot("sign-in");
  await page.keyboard.type(ADMIN);
  await page.keyboard.press("Tab");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Exchange servers" }).waitFor();
  step("signed in");
  const cookies = await context.cookies();
  const cookie = cookies.find((c) => c.name === "calbridge_session");
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");

  // A request with the cookie but without the CSRF token is refused.
  const forged = await page.evaluate(async () => (await fetch("/sites", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })).status);
  assert.equal(forged, 403, "a change without the CSRF token is refused");
  await page.waitForTimeout(300);
  problems.length = 0; // the browser reports the refused request itself; that was the point

  // --- Create a connection to the simulator.
  await page.click("#add-connection");
  await page.fill("#name", "contoso");
  await page.selectOption("#kind", "graph");
  await page.fill("#tenant_id", "contoso.example");
  await page.fill("#client_id", "3f6a1c2e-8d4b-4e7a-9c1f-2b5d7e9a0c13");
  await page.fill("#authority_url", sim.url);
  await page.fill("#graph_url", sim.url);
  await page.fill("#secret", "demo-secret-change-me");
  await page.fill("#default_organizer", "scheduler@contoso.example");
  await shot("connection-form");
  await page.click("#connection-form button[type=submit]");
  await page.waitForSelector('tr[data-connection="contoso"]');
  assert.match(await page.textContent('tr[data-connection="contoso"]'), /set/, "the secret shows as set");
  step("connection created");

  // --- Link the organizer and a room; both are verified against Exchange.
  await page.click('nav a[href="#/calendars"]');
  await page.getByRole("heading", { name: "Link a mailbox" }).waitFor();
  for (const [email, kind, name] of [
    ["scheduler@contoso.example", "person", "Scheduler"],
    ["room201@contoso.example", "room", "Room 2.01"],
  ]) {
    await page.fill("#link-email", email);
    await page.selectOption("#link-kind", kind);
    await page.fill("#link-name", name);
    await page.click("#link-form button[type=submit]");
    await page.waitForSelector(`tr[data-calendar="${email}"] .badge.verified`);
  }
  step("organizer and room linked and verified");
  await shot("calendars");

  // --- Test the connection: every check with its detail.
  await page.click('nav a[href="#/connections"]');
  await page.getByRole("button", { name: "Test connection" }).click();
  await page.waitForSelector("#test-outcome");
  assert.equal(await page.textContent("#test-outcome"), "all checks passed", await page.textContent("#connection-panel"));
  assert.ok((await page.locator(".checks li").count()) >= 3, "the test lists its checks");
  step("connection tested");
  await shot("connections");

  // --- Sync health: sync the room and the organizer now; the table updates itself.
  await page.click('nav a[href="#/sync"]');
  for (const email of ["room201@contoso.example", "scheduler@contoso.example"]) {
    await page.click(`tr[data-calendar="${email}"] button`);
    await page.waitForSelector(`tr[data-calendar="${email}"] .badge.ok`);
  }
  step("calendars synced");

  // Exchange throttles the next request (429, Retry-After: 1 s): the room's sync waits it out
  // and the wait shows in its row and, summed, on the Exchange servers page.
  const injected = await fetch(`${sim.url}/_sim/faults`, { method: "POST", body: JSON.stringify({ throttle_next: { n: 1, retry_after_secs: 1 } }) });
  assert.equal(injected.status, 204, "the simulator takes the fault");
  await page.click('tr[data-calendar="room201@contoso.example"] button');
  const throttledCell = 'tr[data-calendar="room201@contoso.example"] td[data-throttled-ms]';
  await page.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.throttledMs) >= 1000, throttledCell);
  assert.equal(await page.textContent(throttledCell), "1.0 s", "the wait is shown as people read it");
  step("a throttled sync shows its wait");
  await shot("sync-health");
  await page.click('nav a[href="#/connections"]');
  await page.waitForSelector('tr[data-connection="contoso"] td[data-throttled-ms="1000"]');
  assert.match(await page.textContent('tr[data-connection="contoso"] td[data-throttled-ms]'), /1\.0 s1 of 2 calendars waited/);

  // --- Planner: the room on a day two days ahead, with its Exchange events and free slots.
  await page.click('nav a[href="#/planner"]');
  // The first day after tomorrow on which the room has events from Exchange.
  const firstBusy = await page.evaluate(async () => {
    const cals = await (await fetch("/calendars")).json();
    const room = cals.find((c) => c.email === "room201@contoso.example");
    const from = new Date(Date.now() + 2 * 86400000);
    const to = new Date(Date.now() + 30 * 86400000);
    const url = `/calendars/${room.id}/events?from=${from.toISOString()}&to=${to.toISOString()}`;
    const events = await (await fetch(url)).json();
    const e = events.find((x) => x.origin === "exchange");
    return e ? e.start : null;
  });
  const day = firstBusy ? new Date(firstBusy) : new Date(Date.now() + 2 * 86400000);
  const dayText = `${day.getFullYear()}-${String(day.getMonth() + 1).padStart(2, "0")}-${String(day.getDate()).padStart(2, "0")}`;
  await page.fill("#planner-date", dayText);
  await page.dispatchEvent("#planner-date", "change");
  await page.waitForSelector('.col[data-calendar="room201@contoso.example"]');
  await page.waitForSelector("#planner-slots button");
  await page.click("#planner-slots button");
  const when = { start: await page.inputValue("#book-start"), end: await page.inputValue("#book-end") };
  await page.fill("#book-subject", "Induction");
  await page.click("#booking-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#booking-state")?.textContent === "accepted", null, { timeout: 30000 });
  await page.waitForSelector('.ev[data-subject="Induction"][data-state="accepted"]');
  step(`room booked ${dayText} ${when.start}-${when.end}: accepted`);

  // The same time again: the room is taken and declines.
  await page.fill("#book-subject", "Clash");
  await page.fill("#book-date", dayText);
  await page.fill("#book-start", when.start);
  await page.fill("#book-end", when.end);
  await page.click("#booking-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#booking-state")?.textContent === "declined", null, { timeout: 30000 });
  await page.waitForSelector('.ev[data-subject="Clash"][data-state="declined"]');
  step("conflicting booking declined");
  await shot("planner");
  await page.selectOption("#planner-view", "week");
  await page.waitForSelector('table.week .chip[data-subject="Induction"]');
  await shot("planner-week");

  // A phone's width: the pages stay readable.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('nav a[href="#/sync"]');
  await page.waitForSelector('tr[data-calendar="room201@contoso.example"]');
  await shot("sync-health-phone");

  // --- Sign out: the API no longer answers to the cookie.
  await page.click("#logout");
  await page.waitForSelector("#username");
  const after = await page.evaluate(async () => (await fetch("/ui/session")).status);
  assert.equal(after, 204, "signed out");
  step("signed out");

  assert.deepEqual(problems, [], "the pages logged no errors");
  for (const p of [sim, api]) assert.doesNotMatch(p.log(), /panicked/);
  step(`passed; screenshots in ${shots}`);
} catch (e) {
  failed = true;
  console.error(e);
  if (page) {
    const path = join(tmpdir(), "calbridge-browser-failure.png");
    await page.screenshot({ path, fullPage: true }).catch(() => {});
    console.error(`the page at the failure: ${path}\n${await page.innerText("body").catch(() => "")}`);
  }
} finally {
  if (context) await context.close().catch(() => {});
  for (const c of children) c.kill("SIGTERM");
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
