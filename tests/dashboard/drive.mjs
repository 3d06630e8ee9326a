// Drives the wshub dashboard in headless Chromium for tests/dashboard.rs.
//
// The hub's address comes in HUB (http://host:port), the admin token in
// TOKEN (an environment variable: never a URL), where to save the
// screenshot in SHOT (optional), and MODE: "single" or "cluster" (then
// OTHER is the other hub's address). The test and this script take turns
// over stdout and stdin: this script prints `STEP <name> <json>` and, for
// a step that needs the test to act, waits for a line `go <json>` back.
// It ends with `DONE <json>`, what it saw, or `FAIL <message>`.

import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const HUB = process.env.HUB;
const TOKEN = process.env.TOKEN;
const MODE = process.env.MODE || "single";
const WAIT = 20000;

const input = createInterface({ input: process.stdin });
const lines = [];
let waiting = null;
input.on("line", (line) => {
  if (waiting) {
    const resolve = waiting;
    waiting = null;
    resolve(line);
  } else lines.push(line);
});

function step(name, data = {}) {
  process.stdout.write(`STEP ${name} ${JSON.stringify(data)}\n`);
}

/** Tells the test, then waits for its `go <json>`. */
async function ask(name, data = {}) {
  step(name, data);
  const line = lines.length ? lines.shift() : await new Promise((resolve) => (waiting = resolve));
  if (!line.startsWith("go")) throw new Error(`the test said ${line}`);
  return JSON.parse(line.slice(2).trim() || "{}");
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const seen = { urls: [], sockets: [], console: [] };

async function run() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
  const page = await context.newPage();
  page.on("request", (request) => seen.urls.push(request.url()));
  page.on("websocket", (ws) => seen.sockets.push(ws.url()));
  page.on("console", (message) => seen.console.push(message.text()));
  page.setDefaultTimeout(WAIT);

  // Without the token: the login form and nothing else.
  await page.goto(`${HUB}/admin`);
  await page.locator("#login").waitFor({ state: "visible" });
  seen.beforeLogin = {
    dashboardHidden: await page.locator("#dashboard").isHidden(),
    cards: await page.locator("[data-now]").count(),
    rows: await page.locator("tr[data-client]").count(),
  };

  // A wrong token is refused and shows why.
  await page.fill("#token", "not-the-token");
  await page.click("#login-submit");
  await page.locator("#login-message").filter({ hasText: /Unauthorized|Refused/ }).waitFor();
  seen.wrongToken = await page.locator("#login-message").textContent();
  seen.wrongTokenStored = await page.evaluate(() => sessionStorage.length);

  // Signing in: live numbers.
  await page.fill("#token", TOKEN);
  await page.click("#login-submit");
  await page.locator("#status", { hasText: "live" }).waitFor();
  const connections = async () =>
    Number(await page.locator('[data-now="connections"] .value').textContent());
  await page.locator('[data-now="connections"]').waitFor();
  const before = await connections();
  seen.tokenIn = await page.evaluate(() => Object.keys(sessionStorage));

  // The test connects clients; the numbers follow.
  const { client, user, others } = await ask("signed-in", { connections: before });
  await page.waitForFunction(
    (n) => Number(document.querySelector('[data-now="connections"] .value').textContent) === n,
    before + others,
  );
  seen.afterConnect = await connections();

  // A chart drawn with data: the messages chart has a non-flat line.
  // (A value of 0 is drawn at y 130, the bottom of the plot.)
  await page.waitForFunction(() =>
    [...document.querySelectorAll("svg.chart path.line")].some((p) =>
      p.getAttribute("d").slice(1).split("L").some((point) => Number(point.split(",")[1]) < 129.5),
    ),
  );
  seen.paths = await page.locator("svg.chart path.line").count();
  seen.legend = await page.locator("ul.legend li").allTextContents();

  // Top channels and users.
  await page.locator(`tr[data-user="${user}"]`).waitFor();
  await page.locator('tr[data-channel="news"]').first().waitFor();

  if (MODE === "cluster") {
    await page.waitForFunction(() => document.querySelectorAll("tr[data-hub]").length >= 3);
    await page.waitForFunction(
      (n) => {
        const total = document.querySelector('tr[data-hub="total"] [data-col="connections"]');
        return total && Number(total.textContent) >= n;
      },
      before + others + 1,
    );
    seen.hubs = await page.locator("tr[data-hub]").evaluateAll((rows) =>
      rows.map((row) => ({
        hub: row.dataset.hub,
        connections: Number(row.querySelector('[data-col="connections"]').textContent),
      })),
    );
  }

  // One client's detail.
  await page.click(`tr[data-client="${client}"]`);
  await page.locator('#detail [data-field="user"]', { hasText: user }).waitFor();
  seen.detail = {
    user: await page.locator('#detail [data-field="user"]').textContent(),
    address: await page.locator('#detail [data-field="address"]').textContent(),
    topics: await page.locator("#detail li[data-topic]").allTextContents(),
    queue: await page.locator('#detail [data-field="queue"]').textContent(),
  };
  if (process.env.SHOT) {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: process.env.SHOT, fullPage: false });
  }

  // Disconnecting it: confirmed first, then the client is really closed.
  await page.click("#detail-disconnect");
  await page.locator("#confirm").waitFor({ state: "visible" });
  seen.confirmText = await page.locator("#confirm-text").textContent();
  await page.click("#confirm-yes");
  await page.locator("#log li.ok", { hasText: "disconnected client" }).waitFor();
  seen.logged = await page.locator("#log li").first().textContent();
  await ask("disconnected", {});
  await page.waitForFunction(
    (n) => Number(document.querySelector('[data-now="connections"] .value').textContent) === n,
    before + others - 1,
  );

  // The others leave.
  await ask("left", {});
  await page.waitForFunction(
    (n) => Number(document.querySelector('[data-now="connections"] .value').textContent) === n,
    before,
  );
  seen.afterLeave = await connections();

  // Signing out forgets the token and every number.
  await page.click("#signout");
  await page.locator("#login").waitFor({ state: "visible" });
  seen.afterSignOut = {
    stored: await page.evaluate(() => sessionStorage.length),
    cards: await page.locator("[data-now]").count(),
  };
  await context.close();
}

try {
  await run();
  process.stdout.write(`DONE ${JSON.stringify(seen)}\n`);
} catch (err) {
  process.stdout.write(`FAIL ${JSON.stringify({ error: String((err && err.stack) || err), seen })}\n`);
} finally {
  await browser.close();
  input.close();
}
