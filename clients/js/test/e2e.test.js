// End to end in headless Chromium (Debian's `chromium`, driven by
// playwright-core): the demo page served by a real node, which loads the
// committed bundle /pns-client.js. Two browser contexts are two devices of
// alice, a third is bob.
//
// PNS_SCREENSHOT=path saves a screenshot of the demo page there
// (`make demo-screenshot` refreshes docs/demo.png).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { WAIT, badge, badgeIs, connectedAs, launchChromium } from "./support/browser.js";
import { PnsNode, tempDir } from "./support/pns.js";

const tmp = tempDir("pns-e2e-");
const storeUrl = `sqlite:///${tmp.dir}/pns.db`;
const pageErrors = [];
let node;
let browser;

before(async () => {
  node = await new PnsNode({ storeUrl }).start();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await node?.stop();
  tmp.remove();
});

/** A new browser context (a device) with the demo page signed in as `user`. */
async function device(user) {
  const context = await browser.newContext({ viewport: { width: 860, height: 600 } });
  const page = await context.newPage();
  page.on("pageerror", (error) => pageErrors.push(`${user}: ${error.message}`));
  await page.goto(`${node.url}/demo?user=${encodeURIComponent(user)}`);
  await connectedAs(page, user);
  return page;
}

test("the count moves on both of alice's devices, not on bob's, and survives a node restart", async () => {
  const phone = await device("alice");
  const laptop = await device("alice");
  const other = await device("bob");
  await Promise.all([badgeIs(phone, 0), badgeIs(laptop, 0), badgeIs(other, 0)]);
  assert.equal(
    await phone.evaluate(() => typeof window.PNS?.PNSClient),
    "function",
    "the bundle defines the global PNS.PNSClient",
  );
  assert.equal(await phone.evaluate(() => window.pnsClient.transport), "websocket");

  // "Send a test notification" (the HTTP API) to alice from her phone.
  await phone.fill("#text", "Your report is ready");
  await phone.click("#send button");
  await Promise.all([badgeIs(phone, 1), badgeIs(laptop, 1)]);
  assert.equal(await badge(other), "0");
  // bob's own notification reaches bob only.
  await other.fill("#text", "Hi bob");
  await other.click("#send button");
  await badgeIs(other, 1);
  assert.equal(await badge(phone), "1");

  // Fetching on the phone shows the notification there and clears the count on both devices.
  await phone.click("#fetch");
  await phone.waitForFunction(
    () => [...document.querySelectorAll("#list li")].some((li) => li.textContent.includes("Your report is ready")),
    null,
    WAIT,
  );
  await Promise.all([badgeIs(phone, 0), badgeIs(laptop, 0)]);
  assert.equal(await laptop.locator("#list li:not(.empty)").count(), 0, "nothing was fetched on the laptop");

  // The node restarts. While it is away another node on the same store takes
  // two notifications for alice: the devices can only learn of them by reconnecting.
  await node.stop();
  await Promise.all(
    [phone, laptop, other].map((page) =>
      page.waitForFunction(() => !document.getElementById("status-text").textContent.startsWith("connected"), null, WAIT),
    ),
  );
  const elsewhere = await new PnsNode({ storeUrl }).start();
  try {
    await elsewhere.notify("alice", { text: "Build #42 passed" });
    await elsewhere.notify("alice", { text: "New comment on your post" });
  } finally {
    await elsewhere.stop();
  }
  await node.start();
  await Promise.all([connectedAs(phone, "alice"), connectedAs(laptop, "alice"), connectedAs(other, "bob")]);
  await Promise.all([badgeIs(phone, 2), badgeIs(laptop, 2), badgeIs(other, 1)]);

  if (process.env.PNS_SCREENSHOT) {
    await phone.fill("#text", "Hello from PNS!");
    await phone.evaluate(() => document.activeElement?.blur());
    await phone.screenshot({ path: process.env.PNS_SCREENSHOT });
  }
  assert.deepEqual(pageErrors, []);
});
