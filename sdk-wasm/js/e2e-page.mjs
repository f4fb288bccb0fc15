// The live page against the real zone node, in headless Chromium
// (playwright-core driving the system chromium): log in as a new demo player,
// check the seeded inventory with descriptor names and stats, apply a change
// through the gameplay API, kill the page's WebSocket and check that it
// resumes and shows a change made while it was down, run demo actions from
// the panel (a trade, a craft), and save a screenshot.
//
// Usage: INVENTORY_SERVICE_TOKEN=<token> node e2e-page.mjs <node-url> <screenshot.png>
// where <node-url> is a zone node in its demo mode serving the web package
// (`cargo xtask test` starts one). The page's WebSocket goes through a TCP
// proxy in this script (the page's `?ws=` parameter), which can cut every
// connection and refuse new ones, as a network failure would.

import net from "node:net";
import { randomUUID } from "node:crypto";
import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
const serviceToken = process.env.INVENTORY_SERVICE_TOKEN;
if (!base || !screenshot || !serviceToken) {
  console.error("usage: INVENTORY_SERVICE_TOKEN=<token> node e2e-page.mjs <node-url> <screenshot.png>");
  process.exit(2);
}
const player = `e2e${Date.now()}`;
const bank = `a:${player}`;
const hero = `c:${player}:hero`;

// A TCP proxy to the node: `cut()` destroys every connection and refuses
// new ones until `restore()`.
const node = new URL(base);
const sockets = new Set();
let down = false;
const proxy = net.createServer((client) => {
  if (down) return client.destroy();
  const upstream = net.connect(Number(node.port), node.hostname);
  for (const socket of [client, upstream]) {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  }
  client.pipe(upstream).pipe(client);
});
await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
const cut = () => {
  down = true;
  for (const socket of sockets) socket.destroy();
};
const restore = () => {
  down = false;
};

// One change through the gameplay API, as a game server sends it.
async function apply(ops) {
  const response = await fetch(`${base}/v1/changes`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${serviceToken}` },
    body: JSON.stringify({ id: randomUUID(), ops }),
  });
  if (!response.ok) throw new Error(`POST /v1/changes: ${response.status} ${await response.text()}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
let failed = false;
const page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
page.setDefaultTimeout(15_000);
page.on("pageerror", (error) => console.error("page error:", error));
page.on("console", (message) => message.type() === "error" && console.error("page console:", message.text()));
try {
  const stack = (owner, item) => page.locator(`section[data-owner="${owner}"] li[data-item="${item}"]`);
  const shows = (owner, item, qty) => stack(owner, item).locator(".qty", { hasText: new RegExp(`^${qty}$`) }).waitFor();
  await page.goto(`${base}/?ws=ws://127.0.0.1:${proxy.address().port}/v1/ws`);
  await page.fill("#player", player);
  await page.click("#login button");

  await shows(bank, "gold", 120);
  await stack(bank, "gold").locator(".name", { hasText: "Gold coins" }).waitFor();
  await stack(bank, "gem").locator(".stats", { hasText: "value 40" }).waitFor();
  await stack(bank, "gem").locator(".name .tag", { hasText: "rare" }).waitFor();
  await shows(hero, "health-potion", 3);
  await stack(hero, "health-potion").locator(".stats", { hasText: "heal 50" }).waitFor();
  await page.locator("#connection", { hasText: /^connected$/ }).waitFor();
  await page.locator("#version", { hasText: "Bank v1" }).waitFor();
  console.log("ok: logged in; the seeded inventory shows names and stats");

  await apply([{ op: "grant", owner: bank, item: "wood", qty: 5 }]);
  await shows(bank, "wood", 25);
  await page.locator("#version", { hasText: "Bank v2" }).waitFor();
  console.log("ok: a change through the gameplay API is shown");

  cut();
  await page.locator("#connection", { hasText: /reconnecting|connecting/ }).waitFor();
  await apply([
    { op: "grant", owner: bank, item: "gem", qty: 3 },
    { op: "consume", owner: hero, item: "torch", qty: 1 },
  ]);
  restore();
  await shows(bank, "gem", 5);
  await shows(hero, "torch", 1);
  await page.locator("#connection", { hasText: /^connected$/ }).waitFor();
  await page.locator("#latency", { hasText: /latency \d/ }).waitFor();
  console.log("ok: the page resumed after its WebSocket was killed and shows the change made meanwhile");

  await page.click('#demo button[data-action="trade"]');
  await page.locator("#log li.mine", { hasText: "the merchant" }).waitFor();
  await page.locator("#log li.seen", { hasText: "Gold coins" }).waitFor();
  console.log("ok: a demo action ran on the node and the page shows its effect");

  await page.click('#demo button[data-action="craft"]');
  const crafted = page.locator(`section[data-owner="${bank}"] li.crafted`);
  await crafted.locator(".name .tag", { hasText: "crafted" }).waitFor();
  await crafted.locator(".stats", { hasText: `crafted by ${player}` }).waitFor();
  await page.locator("#log li.mine", { hasText: "Crafted a " }).waitFor();
  const craftedName = await crafted.locator(".name").evaluate((name) => name.firstChild.textContent);
  await page.locator("#log li.seen", { hasText: `+1 ${craftedName}` }).waitFor();
  console.log(`ok: crafting shows the new unique item (${craftedName})`);
} catch (error) {
  failed = true;
  console.error(`FAILED: ${error.message}`);
} finally {
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);
  await browser.close();
  proxy.close();
  for (const socket of sockets) socket.destroy();
}
process.exit(failed ? 1 : 0);
