// The live page in headless Chromium (playwright-core driving the system
// chromium): log in, check the rendered inventory and descriptors, apply a
// change, kill the WebSocket and check the page resumes, save a screenshot.
//
// Usage: node e2e-page.mjs <base-url> <screenshot.png>
// where <base-url> serves the page, /demo/login, /v1/ws, the descriptors and
// the change API used here (today the stub node: `stub-node.mjs --page --pkg`).

import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
const player = `e2e${Date.now()}`;
const bank = `a:${player}`;

async function control(path, body) {
  const response = await fetch(`${base}${path}`, { method: "POST", body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
let failed = false;
const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
page.setDefaultTimeout(10_000);
page.on("pageerror", (error) => console.error("page error:", error));
try {
  const stack = (owner, item) => page.locator(`section[data-owner="${owner}"] li[data-item="${item}"]`);
  await page.goto(`${base}/`);
  await page.fill("#player", player);
  await page.click("#login button");

  await stack(bank, "wood").locator(".qty", { hasText: /^10$/ }).waitFor();
  await stack(`c:${player}:hero`, `${player}-sword`).locator(".name", { hasText: `The ${player}-sword` }).waitFor();
  await stack(bank, "wood").locator(".stats", { hasText: "power 3" }).waitFor();
  await page.locator("#connection", { hasText: "connected" }).waitFor();
  console.log("ok: logged in, inventory and descriptors rendered");

  await control("/test/grant", { user: player, owner: bank, item: "wood", qty: 5 });
  await stack(bank, "wood").locator(".qty", { hasText: /^15$/ }).waitFor();
  console.log("ok: a change through the API is shown");

  await control("/test/drop", { user: player });
  await control("/test/grant", { user: player, owner: bank, item: "gem", qty: 2 });
  await stack(bank, "gem").locator(".qty", { hasText: /^2$/ }).waitFor();
  await page.locator("#connection", { hasText: /^connected$/ }).waitFor();
  await page.locator("#latency", { hasText: /latency \d/ }).waitFor();
  console.log("ok: the page resumed after its WebSocket was killed and shows what it missed");
} catch (error) {
  failed = true;
  console.error(`FAILED: ${error.message}`);
} finally {
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);
  await browser.close();
}
process.exit(failed ? 1 : 0);
