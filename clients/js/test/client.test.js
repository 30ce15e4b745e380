// PNSClient under Node against one real `pns serve` node (demo mode, plus JWT
// authentication for the token tests; PNS_ACK_TIMEOUT=1 s).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import http from "node:http";
import { after, afterEach, before, describe, test } from "node:test";

import { PNSClient, PNSError } from "../src/pns.js";
import { JWT_SECRET, PnsNode, countIs, nextValue, signJwt, stateIs, tempDir, waitFor } from "./support/pns.js";

let node;
let tmp;
const clients = [];

before(async () => {
  tmp = tempDir();
  node = await new PnsNode({ storeUrl: `sqlite:///${tmp.dir}/pns.db`, env: { PNS_JWT_SECRET: JWT_SECRET } }).start();
});

after(async () => {
  await node?.stop();
  tmp?.remove();
});

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

const newUser = () => `u-${randomUUID().slice(0, 8)}`;

/** A client of the test node (demo sign-in as `user` unless options say otherwise). */
function client(user, options = {}) {
  const made = new PNSClient({
    url: node.url,
    reconnectionDelay: 50,
    reconnectionDelayMax: 200,
    ...(user === undefined ? {} : { auth: { user_id: user } }),
    ...options,
  });
  clients.push(made);
  return made;
}

async function connected(user, options) {
  const made = client(user, options);
  await stateIs(made, "connected");
  return made;
}

/** A promise and the function that settles it. */
function gate() {
  let open;
  const promise = new Promise((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Feed the client an event as if it had arrived on its connection. */
function inject(made, event, payload) {
  made._link._socket.onevent({ data: [event, payload] });
}

/** Drop the transport under the client (as a network failure would); it reconnects by itself. */
function dropTransport(made) {
  made._link._socket.io.engine.close();
}

describe("count", () => {
  test("count is null until the first count, then follows the user's unseen set", async () => {
    const user = newUser();
    const made = client(user);
    assert.equal(made.count, null);
    await countIs(made, 0);
    await node.notify(user);
    await countIs(made, 1);
    await node.notify(user);
    await countIs(made, 2);
  });

  test("every device of the user sees the count, another user's does not", async () => {
    const [alice, bob] = [newUser(), newUser()];
    const phone = await connected(alice);
    const laptop = await connected(alice);
    const other = await connected(bob);
    await Promise.all([countIs(phone, 0), countIs(laptop, 0), countIs(other, 0)]);
    const seenByOther = [];
    other.onCount((count) => seenByOther.push(count));
    await node.notify(alice);
    await Promise.all([countIs(phone, 1), countIs(laptop, 1)]);
    // bob's count is not disturbed: a later change of his own is the next thing he sees.
    await node.notify(bob);
    await countIs(other, 1);
    assert.deepEqual(seenByOther, [1]);
  });

  test("onCount fires only on a change, and its unsubscriber stops it", async () => {
    const user = newUser();
    const made = await connected(user);
    await countIs(made, 0);
    const seen = [];
    const stop = made.onCount((count) => seen.push(count));
    await node.notify(user);
    await countIs(made, 1);
    stop();
    stop(); // harmless twice
    await node.notify(user);
    await waitFor(() => made.count === 2, { message: "count 2" });
    assert.deepEqual(seen, [1]);
  });

  test("the highest rev is kept: a lower rev is ignored, an equal rev replaces", async () => {
    const user = newUser();
    const made = await connected(user);
    await countIs(made, 0);
    await node.notify(user);
    await countIs(made, 1);
    const rev = made._rev;
    assert.ok(rev >= 1, `rev after a notification: ${rev}`);
    inject(made, "new-notifications-count", { count: 7, rev: rev - 1 });
    assert.equal(made.count, 1, "a lower rev must not replace the kept count");
    inject(made, "new-notifications-count", { count: 3, rev });
    assert.equal(made.count, 3, "on an equal rev the later value replaces the kept one");
    inject(made, "new-notifications-count", { count: "x", rev: rev + 5 });
    assert.equal(made.count, 3, "a malformed count is ignored");
  });

  test("the rev rule starts afresh on every connection", async () => {
    const user = newUser();
    const made = await connected(user);
    await node.notify(user);
    await countIs(made, 1);
    assert.ok(made._rev >= 1);
    // The first count of the new connection wins whatever its rev: inject one
    // with rev 0 the moment the new connection is up, before the node's own.
    const stop = made.onConnectionChange((state) => {
      if (state === "connected") inject(made, "new-notifications-count", { count: 99, rev: 0 });
    });
    const saw99 = countIs(made, 99);
    dropTransport(made);
    await saw99;
    stop();
    await countIs(made, 1); // then the node's true count (rev >= 1) replaces it
  });
});

describe("fetchNew", () => {
  test("delivers oldest first as {id, data, createdAt}, resolves {delivered, hasMore}, count drops everywhere", async () => {
    const user = newUser();
    const phone = await connected(user);
    const laptop = await connected(user);
    const ids = [];
    for (const n of [1, 2, 3]) ids.push((await node.notify(user, { n })).id);
    await Promise.all([countIs(phone, 3), countIs(laptop, 3)]);
    const batches = [];
    phone.onNotifications((notifications) => batches.push(notifications));

    assert.deepEqual(await phone.fetchNew({ limit: 2 }), { delivered: 2, hasMore: true });
    await Promise.all([countIs(phone, 1), countIs(laptop, 1)]);
    assert.deepEqual(await phone.fetchNew(), { delivered: 1, hasMore: false });
    await Promise.all([countIs(phone, 0), countIs(laptop, 0)]);
    assert.deepEqual(await phone.fetchNew(), { delivered: 0, hasMore: false }, "nothing unseen: answered at once");

    assert.equal(batches.length, 2);
    const delivered = batches.flat();
    assert.deepEqual(delivered.map((n) => n.id), ids);
    assert.deepEqual(delivered.map((n) => n.data), [{ n: 1 }, { n: 2 }, { n: 3 }]);
    for (const n of delivered) {
      assert.deepEqual(Object.keys(n).sort(), ["createdAt", "data", "id"]);
      assert.match(n.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$/);
    }
  });

  test("fetchNew waits for an async handler; the batch is acknowledged when it resolves", async () => {
    const user = newUser();
    const phone = await connected(user);
    const laptop = await connected(user);
    await node.notify(user);
    await Promise.all([countIs(phone, 1), countIs(laptop, 1)]);
    const rendering = gate();
    const entered = gate();
    phone.onNotifications(async () => {
      entered.open();
      await rendering.promise;
    });
    let settled = false;
    const fetching = phone.fetchNew().finally(() => {
      settled = true;
    });
    await entered.promise;
    assert.equal(settled, false);
    rendering.open();
    assert.deepEqual(await fetching, { delivered: 1, hasMore: false });
    await Promise.all([countIs(phone, 0), countIs(laptop, 0)]);
  });

  test("a page that dies while its handler runs loses nothing: the batch was not acknowledged", async () => {
    const user = newUser();
    const phone = await connected(user);
    const { id } = await node.notify(user);
    await countIs(phone, 1);
    const rendering = gate();
    const entered = gate();
    phone.onNotifications(async () => {
      entered.open();
      await rendering.promise;
    });
    const fetching = phone.fetchNew().catch((e) => e);
    await entered.promise;
    phone.close(); // the tab crashed mid-render
    assert.equal((await fetching).code, "disconnected");
    rendering.open();
    const laptop = await connected(user);
    const got = [];
    laptop.onNotifications((notifications) => got.push(...notifications.map((n) => n.id)));
    assert.deepEqual(await laptop.fetchNew(), { delivered: 1, hasMore: false });
    assert.deepEqual(got, [id]);
  });

  test("a handler that throws: nothing is marked, fetchNew rejects handler_failed, the batch comes again", async () => {
    const user = newUser();
    const made = await connected(user);
    const { id } = await node.notify(user);
    await countIs(made, 1);
    const boom = new Error("render failed");
    const stopFailing = made.onNotifications(() => {
      throw boom;
    });
    const error = await made.fetchNew().then(
      () => assert.fail("fetchNew resolved"),
      (e) => e,
    );
    assert.ok(error instanceof PNSError);
    assert.equal(error.code, "handler_failed");
    assert.equal(error.cause, boom);
    stopFailing();
    assert.equal(made.count, 1);

    const again = [];
    made.onNotifications((notifications) => again.push(...notifications.map((n) => n.id)));
    assert.deepEqual(await made.fetchNew(), { delivered: 1, hasMore: false });
    assert.deepEqual(again, [id]);
    await countIs(made, 0);
  });

  test("a handler slower than the node's ack timeout: fetchNew rejects timeout, nothing is marked", async () => {
    const user = newUser();
    const made = await connected(user);
    await node.notify(user);
    await countIs(made, 1);
    const rendering = gate();
    made.onNotifications(() => rendering.promise);
    const error = await made.fetchNew().catch((e) => e);
    assert.equal(error.code, "timeout"); // the node's answer, after PNS_ACK_TIMEOUT
    rendering.open(); // the late ack marks nothing
    await new Promise((resolve) => setImmediate(resolve));
    const stop = made.onNotifications(() => {});
    assert.deepEqual(await made.fetchNew(), { delivered: 1, hasMore: false }, "delivered again");
    stop();
  });

  test("no answer within the client's timeout: rejects timeout", async () => {
    const user = newUser();
    const made = await connected(user);
    await node.notify(user);
    await countIs(made, 1);
    const rendering = gate();
    made.onNotifications(() => rendering.promise);
    const started = Date.now();
    const error = await made.fetchNew({ timeout: 150 }).catch((e) => e);
    assert.equal(error.code, "timeout");
    assert.ok(Date.now() - started < 900, "the client's own timeout, not the node's");
    rendering.open(); // acked in time for the node (1 s): marked after all
    await countIs(made, 0);
  });

  test("the protocol's errors reject with their code and message", async () => {
    const made = await connected(newUser());
    made.onNotifications(() => {});
    const error = await made.fetchNew({ limit: 0 }).catch((e) => e);
    assert.ok(error instanceof PNSError);
    assert.equal(error.code, "invalid_request");
    assert.match(error.message, /limit/);
    assert.equal(made.state, "connected", "an error answer keeps the connection");
  });

  test("a second fetch while one is in progress is rate_limited by the node", async () => {
    const user = newUser();
    const made = await connected(user);
    await node.notify(user);
    await countIs(made, 1);
    const rendering = gate();
    made.onNotifications(() => rendering.promise);
    const first = made.fetchNew();
    const second = await made.fetchNew().catch((e) => e);
    assert.equal(second.code, "rate_limited");
    rendering.open();
    assert.deepEqual(await first, { delivered: 1, hasMore: false });
  });

  test("without an onNotifications handler: rejects no_handler, nothing is asked", async () => {
    const made = await connected(newUser());
    const error = await made.fetchNew().catch((e) => e);
    assert.equal(error.code, "no_handler");
  });

  test("not connected: rejects disconnected at once", async () => {
    const made = client(newUser());
    made.onNotifications(() => {});
    assert.equal((await made.fetchNew().catch((e) => e)).code, "disconnected"); // still connecting
    await stateIs(made, "connected");
    made.close();
    assert.equal((await made.fetchNew().catch((e) => e)).code, "disconnected");
  });

  test("connection lost before the answer: rejects disconnected; nothing is marked and it comes again", async () => {
    const user = newUser();
    const made = await connected(user);
    const { id } = await node.notify(user);
    await countIs(made, 1);
    const seen = [];
    made.onNotifications((notifications) => {
      seen.push(...notifications.map((n) => n.id));
      if (seen.length === 1) dropTransport(made); // lost while rendering: never acked
    });
    const error = await made.fetchNew().catch((e) => e);
    assert.equal(error.code, "disconnected");
    await stateIs(made, "connected"); // reconnected by itself
    await countIs(made, 1);
    assert.deepEqual(await made.fetchNew(), { delivered: 1, hasMore: false });
    assert.deepEqual(seen, [id, id]);
  });
});

describe("credentials", () => {
  test("a token string authenticates as its sub", async () => {
    const user = newUser();
    const made = await connected(undefined, { token: signJwt({ sub: user }) });
    await countIs(made, 0);
    await node.notify(user);
    await countIs(made, 1);
  });

  test("a token function is called again on every reconnection", async () => {
    const user = newUser();
    let calls = 0;
    const made = await connected(undefined, {
      token: async () => {
        calls += 1;
        return signJwt({ sub: user });
      },
    });
    assert.equal(calls, 1);
    const reconnected = nextValue((fn) => made.onConnectionChange(fn), (s) => s === "connected");
    dropTransport(made);
    await reconnected;
    assert.equal(calls, 2);
    await countIs(made, 0);
  });

  test("extra auth fields are sent beside the token", async () => {
    // In demo mode {user_id} wins over a token that names someone else.
    const user = newUser();
    const made = await connected(user, { token: signJwt({ sub: "someone-else" }) });
    await node.notify(user);
    await countIs(made, 1);
  });

  test("unauthorized: reported once, the client stops and never retries", async () => {
    let calls = 0;
    const errors = [];
    const states = [];
    const made = client(undefined, {
      token: () => {
        calls += 1;
        return signJwt({ sub: "x" }, "not-the-secret");
      },
    });
    made.onError((e) => errors.push(e));
    made.onConnectionChange((s) => states.push(s));
    await stateIs(made, "unauthorized");
    assert.deepEqual(errors.map((e) => e.code), ["unauthorized"]);
    assert.equal(made._link._socket.active, false, "the socket is not waiting to reconnect");
    // Nothing is scheduled: with a 50 ms reconnection delay a retry would have come by now.
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(calls, 1);
    assert.deepEqual(states, ["unauthorized"]);
    assert.equal((await made.fetchNew().catch((e) => e)).code, "disconnected");
  });

  test("a missing token is unauthorized too", async () => {
    const made = client(undefined);
    await stateIs(made, "unauthorized");
  });

  test("a token function that fails is reported and asked again", async () => {
    const user = newUser();
    let calls = 0;
    const errors = [];
    const made = client(undefined, {
      token: () => {
        calls += 1;
        if (calls === 1) throw new Error("auth server down");
        return signJwt({ sub: user });
      },
    });
    made.onError((e) => errors.push(e.code));
    await stateIs(made, "connected");
    assert.equal(calls, 2);
    assert.deepEqual(errors, ["token_failed"]);
  });
});

describe("transport", () => {
  test("WebSocket first", async () => {
    const made = await connected(newUser());
    assert.equal(made.transport, "websocket");
    // Node has no Web Locks: a connection of its own, as in a browser without them.
    assert.equal(made.role, "alone");
  });

  test("long-polling when WebSockets are blocked on the way", async () => {
    // A proxy that forwards plain HTTP and refuses every WebSocket upgrade.
    const target = new URL(node.url);
    const proxy = http.createServer((req, res) => {
      const upstream = http.request(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    proxy.on("upgrade", (_req, socket) => socket.end("HTTP/1.1 403 Forbidden\r\n\r\n"));
    await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    try {
      const user = newUser();
      const made = await connected(user, { url: `http://127.0.0.1:${proxy.address().port}` });
      assert.equal(made.transport, "polling");
      await countIs(made, 0);
      await node.notify(user);
      await countIs(made, 1);
      made.close();
    } finally {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});

describe("API surface", () => {
  test("on() refuses the client's own events; its unsubscriber detaches", async () => {
    const made = await connected(newUser());
    for (const event of ["new-notifications-count", "new-notifications", "pns:disconnect", "connect"]) {
      assert.throws(() => made.on(event, () => {}), TypeError);
    }
    const seen = [];
    const stop = made.on("app-event", (...args) => seen.push(args));
    inject(made, "app-event", { a: 1 });
    stop();
    inject(made, "app-event", { a: 2 });
    assert.deepEqual(seen, [[{ a: 1 }]]);
  });

  test("close(): state closed, a pending fetch rejects disconnected, no more counts", async () => {
    const user = newUser();
    const made = await connected(user);
    await node.notify(user);
    await countIs(made, 1);
    const rendering = gate();
    const entered = gate();
    made.onNotifications(() => {
      entered.open();
      return rendering.promise;
    });
    const states = [];
    made.onConnectionChange((s) => states.push(s));
    const fetching = made.fetchNew().catch((e) => e);
    await entered.promise;
    made.close();
    made.close(); // idempotent
    assert.equal((await fetching).code, "disconnected");
    assert.equal(made.state, "closed");
    assert.deepEqual(states, ["closed"]);
    rendering.open();
    // The other devices still work, and the closed client hears nothing more.
    const watcher = await connected(user);
    await node.notify(user);
    await countIs(watcher, 2);
    assert.equal(made.count, 1);
  });

  test("bad options are refused up front", () => {
    assert.throws(() => new PNSClient({ url: node.url, token: 42 }), TypeError);
    assert.throws(() => new PNSClient({ url: node.url, auth: "x" }), TypeError);
    assert.throws(() => new PNSClient({ url: node.url, shareKey: 42 }), TypeError);
  });
});
