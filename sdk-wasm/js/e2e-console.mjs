// The operator console against a real zone node, in headless Chromium
// (playwright-core driving the system chromium): a bad trade is made through
// the gameplay API; an operator signs in, finds the player, sees their live
// inventories, finds the trade in the history, reverts it after a
// confirmation that lists what will change, and sees the live view, the
// history and the audit log show it.
//
// Usage: INVENTORY_SERVICE_TOKEN=<token> CONSOLE_OPERATOR_TOKEN=<token>
//        node e2e-console.mjs <node-url> <screenshot.png>

import { randomUUID } from "node:crypto";
import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
const serviceToken = process.env.INVENTORY_SERVICE_TOKEN;
const operatorToken = process.env.CONSOLE_OPERATOR_TOKEN;
if (!base || !screenshot || !serviceToken || !operatorToken) {
  console.error("usage: INVENTORY_SERVICE_TOKEN=<token> CONSOLE_OPERATOR_TOKEN=<token> node e2e-console.mjs <node-url> <screenshot.png>");
  process.exit(2);
}
const stamp = Date.now();
const victim = `victim${stamp}`;
const thief = `thief${stamp}`;

async function apply(ops, kind = "adjust") {
  const response = await fetch(`${base}/v1/changes`, {
    method: "POST",
    headers: { authorization: `Bearer ${serviceToken}`, "content-type": "application/json" },
    body: JSON.stringify({ id: randomUUID(), kind, ops }),
  });
  if (!response.ok) throw new Error(`apply: HTTP ${response.status} ${await response.text()}`);
  return response.json();
}

await apply([{ op: "grant", owner: `a:${victim}`, item: "sword", qty: 1 }]);
await apply([{ op: "grant", owner: `a:${thief}`, item: "gold", qty: 100 }]);
// The bad trade: a sword for 100 gold the thief should never have had.
await apply(
  [
    { op: "consume", owner: `a:${victim}`, item: "sword", qty: 1 },
    { op: "grant", owner: `a:${thief}`, item: "sword", qty: 1 },
    { op: "consume", owner: `a:${thief}`, item: "gold", qty: 100 },
    { op: "grant", owner: `a:${victim}`, item: "gold", qty: 100 },
  ],
  "trade",
);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.on("console", (message) => console.log(`page: ${message.text()}`));
page.on("pageerror", (error) => console.log(`page error: ${error.message}`));
const stack = (owner, item) => page.locator(`#inventories [data-owner="${owner}"] li[data-item="${item}"]`);
try {
  await page.goto(`${base}/console`);
  await page.fill("#token", operatorToken);
  await page.click("#signin-form button");
  await page.waitForSelector("#player:not([hidden])");

  await page.fill("#search", victim);
  await page.click("#search-form button");
  await stack(`a:${victim}`, "gold").waitFor();
  if ((await stack(`a:${victim}`, "gold").getAttribute("data-qty")) !== "100") throw new Error("the live view shows the traded gold");

  const trade = page.locator('#history tr[data-kind="trade"]');
  await trade.waitFor();
  await trade.locator("button.revert").click();
  await page.waitForSelector("#confirm[open]");
  const undo = await page.locator("#confirm-undo tr").count();
  if (undo !== 4) throw new Error(`the confirmation lists the 4 stacks the revert moves, not ${undo}`);
  await page.click("#confirm-ok");

  // The live view follows the revert, through the SDK.
  await stack(`a:${victim}`, "sword").waitFor();
  await stack(`a:${victim}`, "gold").waitFor({ state: "detached" });
  await page.locator('#history tr[data-kind="revert"]').first().waitFor();
  await page.locator("#audit tr", { hasText: "POST /v1/changes/{id}/revert" }).first().waitFor();
  const audited = await page.locator("#audit tr", { hasText: "POST /v1/changes/{id}/revert" }).first().innerText();
  if (!audited.includes("ok")) throw new Error(`the audit log records the revert: ${audited}`);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log("console: the bad trade was found, reverted, and shows in the live view, the history and the audit log");
} catch (error) {
  await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  console.error(`console e2e failed: ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
