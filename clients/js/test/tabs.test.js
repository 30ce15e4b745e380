// The tabs of one browser share one connection, in headless Chromium against
// a real node (with Redis, for the application's own events). The pages are
// the demo page, which loads the committed bundle; the pages of one browser
// context are tabs of one browser, two contexts are two browsers. What the
// node holds is read from its /metrics; what the store holds, from a witness
// device (a client under Node) that connects and reads its first count.
import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";

import { PNSClient } from "../src/pns.js";
import { WAIT, badgeIs, connectedAs, launchChromium } from "./support/browser.js";
import { AppEmitter, JWT_SECRET, PnsNode, RedisServer, signJwt, tempDir, waitFor } from "./support/pns.js";

const tmp = tempDir("pns-tabs-");
const pageErrors = [];
let redis;
let node;
let emitter;
let browser;

before(async () => {
  redis = await new RedisServer().start();
  // A long acknowledgement timeout: a test holds a handler open on purpose. Demo mode
  // (auth: {user_id}), and tokens for handshakes that name no user.
  node = await new PnsNode({
    storeUrl: `sqlite:///${tmp.dir}/pns.db`,
    env: { PNS_REDIS_URL: redis.url, PNS_ACK_TIMEOUT: "30", PNS_JWT_SECRET: JWT_SECRET },
  }).start();
  emitter = new AppEmitter(redis.url);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await emitter?.stop();
  await node?.stop();
  await redis?.stop();
  tmp.remove();
});

beforeEach(async () => {
  // Every test starts from a node that holds nobody (the last test's tabs are gone).
  await waitFor(async () => (await connections()) === 0, { message: "no connection left on the node" });
});

/** The node's open Socket.IO connections, from /metrics. */
async function connections() {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("pns_connections "));
  return Number(line.split(" ")[1]);
}

/** The user's unseen count as the store has it: the first count a new device gets. */
async function storedCount(user) {
  const witness = new PNSClient({ url: node.url, auth: { user_id: user } });
  try {
    await waitFor(() => witness.count !== null, { message: `the witness's first count for ${user}` });
    return witness.count;
  } finally {
    witness.close();
  }
}

/** A new tab of `context` with the demo page signed in as `user`. */
async function tab(context, user) {
  const page = await context.newPage();
  page.on("pageerror", (error) => pageErrors.push(`${user}: ${error.message}`));
  await page.goto(`${node.url}/demo?user=${encodeURIComponent(user)}`);
  await connectedAs(page, user);
  // Every count the tab is told from here on, to check none goes backwards.
  await page.evaluate(() => {
    window.seen = [];
    window.pnsClient.onCount((count) => window.seen.push(count));
  });
  return page;
}

const role = (page) => page.evaluate(() => window.pnsClient.role);

/** The tab holding the connection and the others, once the roles have settled. */
async function rolesOf(pages) {
  let roles = [];
  await waitFor(
    async () => {
      roles = await Promise.all(pages.map(role));
      return roles.filter((r) => r === "holder").length === 1 && roles.filter((r) => r === "follower").length === pages.length - 1;
    },
    { message: "one holder, the other tabs following" },
  );
  const holder = pages[roles.indexOf("holder")];
  return { holder, followers: pages.filter((page) => page !== holder) };
}

/** `count` tabs of `user` in a new browser (context), roles settled; it closes after `fn`. */
async function withTabs(user, count, fn) {
  const context = await browser.newContext();
  try {
    const tabs = [];
    for (let i = 0; i < count; i += 1) tabs.push(await tab(context, user));
    return await fn({ tabs, ...(await rolesOf(tabs)) });
  } finally {
    await context.close();
  }
}

/**
 * Start a fetch in `page` whose handler records the batch and then waits
 * until openGate(); the outcome lands in window.outcome.
 */
function gatedFetch(page, options = {}) {
  return page.evaluate((opts) => {
    window.gate = new Promise((open) => { window.openGate = open; });
    window.got = null;
    window.outcome = null;
    window.pnsClient.onNotifications(async (batch) => {
      window.got = batch.map((n) => n.data.text);
      await window.gate;
    });
    window.pnsClient.fetchNew(opts).then(
      (answer) => { window.outcome = { ok: true, ...answer }; },
      (err) => { window.outcome = { ok: false, code: err.code }; },
    );
  }, options);
}

const got = (page) => page.waitForFunction(() => window.got, null, WAIT).then((handle) => handle.jsonValue());
const outcome = (page) => page.waitForFunction(() => window.outcome, null, WAIT).then((handle) => handle.jsonValue());
const fetched = (page) => page.evaluate(() => [...document.querySelectorAll("#list li:not(.empty) span")].map((s) => s.textContent));
const seen = (page) => page.evaluate(() => window.seen);
const ascending = (counts) => counts.every((count, i) => i === 0 || count >= counts[i - 1]);

test("three tabs share one connection: every tab gets every count and event, a fetch is the asking tab's", async () => {
  await withTabs("alice", 3, async ({ tabs, holder, followers }) => {
    const [asker, other] = followers;
    await waitFor(async () => (await connections()) === 1, { message: "exactly one connection for three tabs" });
    assert.equal(await holder.evaluate(() => window.pnsClient.transport), "websocket");
    assert.equal(await asker.evaluate(() => window.pnsClient.transport), null, "a following tab has no connection");
    assert.equal(await holder.locator("#role").textContent(), "this tab holds the connection");

    await node.notify("alice", { text: "one" });
    await Promise.all(tabs.map((page) => badgeIs(page, 1)));
    // The application's own events (python-socketio's write-only manager) reach every tab.
    await Promise.all(tabs.map((page) => page.evaluate(() => {
      window.events = [];
      window.pnsClient.on("app-event", (data) => window.events.push(data));
    })));
    await emitter.emit("app-event", { build: 42 }, "alice");
    for (const page of tabs) {
      const events = await page.waitForFunction(() => window.events.length && window.events, null, WAIT);
      assert.deepEqual(await events.jsonValue(), [{ build: 42 }]);
    }

    // A fetch from a following tab: the batch goes to it, and nothing is marked while its handler runs.
    await gatedFetch(asker);
    assert.deepEqual(await got(asker), ["one"]);
    assert.equal(await storedCount("alice"), 1, "still unseen while the asking tab's handler runs");
    await asker.evaluate(() => window.openGate());
    assert.deepEqual(await outcome(asker), { ok: true, delivered: 1, hasMore: false });
    await Promise.all(tabs.map((page) => badgeIs(page, 0)));
    assert.deepEqual(await fetched(asker), ["one"]);
    assert.deepEqual(await fetched(holder), [], "the batch went to the asking tab only");
    assert.deepEqual(await fetched(other), []);

    // Two tabs asking at once never get the same notification.
    await node.notify("alice", { text: "two" });
    await node.notify("alice", { text: "three" });
    await Promise.all(tabs.map((page) => badgeIs(page, 2)));
    const both = await Promise.all(
      [other, holder].map((page) => page.evaluate(() => window.pnsClient.fetchNew({ limit: 1 }))),
    );
    assert.deepEqual(both.map((answer) => answer.delivered), [1, 1]);
    assert.deepEqual(both.map((answer) => answer.hasMore).sort(), [false, true], "served one after the other");
    const lists = [...(await fetched(other)), ...(await fetched(holder))];
    assert.deepEqual(lists.sort(), ["three", "two"]);
    await Promise.all(tabs.map((page) => badgeIs(page, 0)));
    assert.equal(await connections(), 1);
  });
});

test("the holding tab closes while a notification arrives and a fetch is in flight: another takes over, nothing is marked or lost", async () => {
  await withTabs("alice", 3, async ({ tabs, holder, followers }) => {
    const [asker, other] = followers;
    await node.notify("alice", { text: "before" });
    await Promise.all(tabs.map((page) => badgeIs(page, 1)));

    await gatedFetch(asker);
    assert.deepEqual(await got(asker), ["before"]);
    const closedAt = Date.now();
    await Promise.all([holder.close(), node.notify("alice", { text: "during" })]);
    assert.deepEqual(await outcome(asker), { ok: false, code: "disconnected" }, "the fetch in flight fails");
    await asker.evaluate(() => window.openGate()); // its handler accepts now: too late, nothing is marked
    const { holder: next } = await rolesOf([asker, other]);
    await Promise.all([connectedAs(asker, "alice"), connectedAs(other, "alice")]);
    await Promise.all([badgeIs(asker, 2), badgeIs(other, 2)]);
    console.log(`# handover: the next tab held a connection and had the count ${Date.now() - closedAt} ms after the holder closed`);
    await waitFor(async () => (await connections()) === 1, { message: "one connection again" });
    assert.equal(await storedCount("alice"), 2, "nothing was marked that no handler accepted");
    for (const page of [asker, other]) {
      assert.ok(ascending(await seen(page)), `counts only went up: ${await seen(page)}`);
    }

    // Everything is still there: the tab that did not hold fetches both.
    const fetcher = next === asker ? other : asker;
    await fetcher.evaluate(() => { window.pnsClient.onNotifications(() => {}); });
    const earlier = (await fetched(fetcher)).length;
    const answer = await fetcher.evaluate(() => window.pnsClient.fetchNew());
    assert.deepEqual(answer, { delivered: 2, hasMore: false });
    const list = await fetched(fetcher);
    assert.equal(list.length, earlier + 2);
    assert.deepEqual(list.slice(0, 2).sort(), ["before", "during"], "the newest on top");
    await Promise.all([badgeIs(asker, 0), badgeIs(other, 0)]);
  });
});

test("the holding tab crashes: the next takes over, and the count is right", async () => {
  await withTabs("gina", 2, async ({ holder, followers: [other] }) => {
    const crashed = new Promise((resolve) => holder.once("crash", resolve));
    const cdp = await holder.context().newCDPSession(holder);
    cdp.send("Page.crash").catch(() => {}); // the renderer is gone before it could answer
    await crashed;
    await node.notify("gina", { text: "after the crash" });
    assert.equal((await rolesOf([other])).holder, other);
    await connectedAs(other, "gina");
    await badgeIs(other, 1);
    await waitFor(async () => (await connections()) === 1, { message: "the crashed tab's connection gone" });
  });
});

test("an asking tab that closes before its handler returned: the holder accepts nothing", async () => {
  await withTabs("erin", 2, async ({ holder, followers: [asker] }) => {
    await node.notify("erin", { text: "kept" });
    await badgeIs(holder, 1);
    await gatedFetch(asker);
    assert.deepEqual(await got(asker), ["kept"]);
    await asker.close();
    // The node answers the holder's fetch once the holder accepted none of the batch.
    await waitFor(async () => (await storedCount("erin")) === 1 && (await connections()) === 1, {
      message: "the notification still unseen, the holder still connected",
  });
  await holder.evaluate(() => { window.pnsClient.onNotifications(() => {}); });
  assert.deepEqual(await holder.evaluate(() => window.pnsClient.fetchNew()), { delivered: 1, hasMore: false });
  await badgeIs(holder, 0);
  });
});

test("tabs signed in as other users, and other browsers, never share a connection", async () => {
  const first = await browser.newContext();
  const second = await browser.newContext();
  try {
    const alice = [await tab(first, "alice2"), await tab(first, "alice2")];
    const carol = await tab(first, "carol"); // same browser, another user
    const bob = [await tab(second, "bob"), await tab(second, "bob")];
    await rolesOf(alice);
    await rolesOf(bob);
    assert.equal(await role(carol), "holder");
    await waitFor(async () => (await connections()) === 3, { message: "one connection per user and browser" });
    const everyone = [...alice, carol, ...bob];
    await Promise.all(everyone.map((page) => badgeIs(page, 0)));

    await node.notify("alice2", { text: "for alice" });
    await Promise.all(alice.map((page) => badgeIs(page, 1)));
    await node.notify("bob", { text: "for bob" });
    await node.notify("bob", { text: "for bob again" });
    await Promise.all(bob.map((page) => badgeIs(page, 2)));
    await badgeIs(carol, 0);
    const moves = async (page) => (await seen(page)).filter((count) => count !== 0);
    for (const page of alice) assert.deepEqual(await moves(page), [1]);
    assert.deepEqual(await moves(carol), [], "carol's tab never moved");
  } finally {
    await first.close();
    await second.close();
  }
});

test("tabs with tokens share only with the same token; a signed-out tab never joins", async () => {
  const context = await browser.newContext();
  try {
    const henry = signJwt({ sub: "henry" });
    const pages = [];
    for (const token of [henry, henry, signJwt({ sub: "iris" }), null]) {
      const page = await context.newPage();
      await page.goto(`${node.url}/demo`);
      await page.evaluate(({ url, token: t }) => {
        window.own = new window.PNS.PNSClient(t ? { url, token: t } : { url });
      }, { url: node.url, token });
      pages.push(page);
    }
    const [first, second, iris, signedOut] = pages;
    const state = (page) => page.evaluate(() => window.own.state);
    await waitFor(async () => (await state(first)) === "connected" && (await state(second)) === "connected"
      && (await state(iris)) === "connected" && (await state(signedOut)) === "unauthorized", {
      message: "henry's and iris's tabs connected, the signed-out tab refused",
    });
    const roles = await Promise.all(pages.map((page) => page.evaluate(() => window.own.role)));
    assert.deepEqual(roles.slice(0, 2).sort(), ["follower", "holder"], "henry's tabs share");
    assert.equal(roles[2], "holder", "iris's tab holds its own");
    await waitFor(async () => (await connections()) === 2, { message: "one connection for henry, one for iris" });

    await node.notify("henry", { text: "for henry" });
    for (const page of [first, second]) await page.waitForFunction(() => window.own.count === 1, null, WAIT);
    assert.equal(await iris.evaluate(() => window.own.count), 0);
    assert.equal(await signedOut.evaluate(() => window.own.count), null, "the signed-out tab got nothing");
  } finally {
    await context.close();
  }
});

test("without Web Locks or BroadcastChannel, or with shareAcrossTabs: false, each tab connects on its own", async () => {
  const noLocks = await browser.newContext();
  await noLocks.addInitScript(() => Object.defineProperty(Navigator.prototype, "locks", { get: () => undefined }));
  const noChannel = await browser.newContext();
  await noChannel.addInitScript(() => { delete window.BroadcastChannel; });
  // A lock refused (as in a sandboxed frame): the same, and no error for it.
  const refused = await browser.newContext();
  await refused.addInitScript(() => {
    navigator.locks.request = () => Promise.reject(new DOMException("refused", "SecurityError"));
  });
  const optedOut = await browser.newContext();
  try {
    const pages = [
      await tab(noLocks, "frank"), await tab(noLocks, "frank"),
      await tab(noChannel, "frank"), await tab(noChannel, "frank"),
      await tab(refused, "frank"),
    ];
    assert.deepEqual(await Promise.all(pages.map(role)), ["alone", "alone", "alone", "alone", "alone"]);
    assert.equal(await pages[4].locator("#error").isHidden(), true, "falling back is no error");
    assert.equal(await pages[0].locator("#role").textContent(), "own connection");
    const own = [await optedOut.newPage(), await optedOut.newPage()];
    for (const page of own) {
      await page.goto(`${node.url}/demo`);
      await page.evaluate((url) => {
        window.own = new window.PNS.PNSClient({ url, auth: { user_id: "frank" }, shareAcrossTabs: false });
      }, node.url);
      await page.waitForFunction(() => window.own.count === 0, null, WAIT);
      assert.equal(await page.evaluate(() => window.own.role), "alone");
    }
    await waitFor(async () => (await connections()) === 7, { message: "seven tabs, seven connections" });
    await node.notify("frank", { text: "to every tab" });
    await Promise.all(pages.map((page) => badgeIs(page, 1)));
    for (const page of own) await page.waitForFunction(() => window.own.count === 1, null, WAIT);
  } finally {
    await noLocks.close();
    await noChannel.close();
    await refused.close();
    await optedOut.close();
  }
});

test("no page error in any tab", () => {
  assert.deepEqual(pageErrors, []);
});
