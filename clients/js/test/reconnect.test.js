// PNSClient across node restarts and pns:disconnect, against real `pns serve`
// nodes; the application side emits through python-socketio's write-only
// Redis manager, as applications do.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";

import { PNSClient } from "../src/pns.js";
import {
  AppEmitter,
  JWT_SECRET,
  PnsNode,
  RedisServer,
  countIs,
  nextValue,
  redisServerPath,
  signJwt,
  stateIs,
  tempDir,
  waitFor,
} from "./support/pns.js";

const tmp = tempDir();
const clients = [];
const cleanups = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

after(() => tmp.remove());

function client(node, options) {
  const made = new PNSClient({ url: node.url, reconnectionDelay: 50, reconnectionDelayMax: 250, ...options });
  clients.push(made);
  return made;
}

async function startNode(options) {
  const node = await new PnsNode({ env: { PNS_JWT_SECRET: JWT_SECRET }, ...options }).start();
  cleanups.push(() => node.stop());
  return node;
}

/** A client whose token function counts its calls. */
function tokenClient(node, user) {
  const calls = { n: 0 };
  const made = client(node, {
    token: async () => {
      calls.n += 1;
      return signJwt({ sub: user });
    },
  });
  return { made, calls };
}

describe("node restart", () => {
  test("devices told pns:disconnect (shutdown) come back by themselves, with a fresh token and the right count", async () => {
    const storeUrl = `sqlite:///${tmp.dir}/restart.db`;
    const node = await startNode({ storeUrl });
    const { made: phone, calls } = tokenClient(node, "alice");
    const laptop = client(node, { auth: { user_id: "alice" } });
    const other = client(node, { auth: { user_id: "bob" } });
    await Promise.all([phone, laptop, other].map((c) => countIs(c, 0)));
    assert.equal(calls.n, 1);

    const told = nextValue((fn) => {
      phone._link._socket.on("pns:disconnect", fn);
      return () => phone._link._socket.off("pns:disconnect", fn);
    });
    const states = [];
    phone.onConnectionChange((s) => states.push(s));
    const errors = [];
    for (const c of [phone, laptop, other]) c.onError((e) => errors.push(e.code));

    await node.stop();
    assert.deepEqual(await told, { code: "shutdown", reconnect: true });
    await Promise.all([phone, laptop, other].map((c) => waitFor(() => !c.connected, { message: "disconnected" })));

    // While the node is away another node on the same store takes two notifications.
    const elsewhere = await startNode({ storeUrl });
    await elsewhere.notify("alice", { n: 1 });
    await elsewhere.notify("alice", { n: 2 });

    await node.start();
    await Promise.all([stateIs(phone, "connected"), stateIs(laptop, "connected"), stateIs(other, "connected")]);
    await Promise.all([countIs(phone, 2), countIs(laptop, 2)]);
    // bob's fresh first count (rev starts afresh on the new connection) is still 0.
    await waitFor(() => other._rev !== null, { message: "bob's first count after the restart" });
    assert.equal(other.count, 0);
    assert.ok(calls.n >= 2, `the token function is asked again (calls: ${calls.n})`);
    assert.ok(!states.includes("stopped") && !states.includes("unauthorized"), `states: ${states}`);
    assert.deepEqual(
      errors.filter((code) => code !== "unavailable"),
      [],
      "only a refusal by the stopping node may be reported",
    );

    phone.onNotifications(() => {});
    assert.deepEqual(await phone.fetchNew(), { delivered: 2, hasMore: false });
    await countIs(laptop, 0);
  });
});

const noRedis = redisServerPath() ? false : "redis-server is not installed (make system-deps installs it)";

describe("events from the application through the Redis manager", { skip: noRedis }, () => {
  let redis;
  let node;
  let app;

  before(async () => {
    redis = await new RedisServer().start();
    node = await new PnsNode({
      storeUrl: `sqlite:///${tmp.dir}/redis.db`,
      env: { PNS_JWT_SECRET: JWT_SECRET, PNS_REDIS_URL: redis.url },
    }).start();
    await waitFor(
      async () => (await (await fetch(`${node.url}/readyz`)).json()).broker === "up",
      { message: "the node's broker up" },
    );
    app = new AppEmitter(redis.url);
  });

  after(async () => {
    await app?.stop();
    await node?.stop();
    await redis?.stop();
  });

  test("on(event) receives what the application emits to its user, and only its user", async () => {
    const mine = client(node, { auth: { user_id: "carol" } });
    const theirs = client(node, { auth: { user_id: "dave" } });
    await Promise.all([stateIs(mine, "connected"), stateIs(theirs, "connected")]);
    const heardByOther = [];
    theirs.on("invoice-paid", (payload) => heardByOther.push(payload));
    const heard = nextValue((fn) => mine.on("invoice-paid", fn));
    await app.emit("invoice-paid", { invoice: 7 }, "carol");
    assert.deepEqual(await heard, { invoice: 7 });
    // A marker to dave after carol's event: when it arrives, carol's would have too.
    const marker = nextValue((fn) => theirs.on("marker", fn));
    await app.emit("marker", {}, "dave");
    await marker;
    assert.deepEqual(heardByOther, []);
  });

  test("pns:disconnect token_expired: reconnects with a fresh token from the token function", async () => {
    const { made, calls } = tokenClient(node, "erin");
    await countIs(made, 0);
    const states = [];
    made.onConnectionChange((s) => states.push(s));
    const back = nextValue((fn) => made.onConnectionChange(fn), (s) => s === "connected");
    await app.emit("pns:disconnect", { code: "token_expired", reconnect: true }, "erin");
    await back;
    assert.equal(calls.n, 2);
    assert.equal(states[0], "disconnected");
    assert.equal(states.at(-1), "connected");
    await node.notify("erin");
    await countIs(made, 1);
  });

  test("pns:disconnect with reconnect false: the client stops, reports the code, never reconnects", async () => {
    const { made, calls } = tokenClient(node, "frank");
    await stateIs(made, "connected");
    const reported = nextValue((fn) => made.onError(fn));
    await app.emit("pns:disconnect", { code: "rate_limited", reconnect: false }, "frank");
    assert.equal((await reported).code, "rate_limited");
    assert.equal(made.state, "stopped");
    assert.equal(made._link._socket.active, false, "nothing waits to reconnect");
    assert.equal(calls.n, 1);
    assert.equal((await made.fetchNew().catch((e) => e)).code, "disconnected");
  });
});
