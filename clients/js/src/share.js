// One connection for the tabs of a browser: the tabs whose clients connect to
// the same PNS URL with the same credentials form a group. A Web Lock elects
// the tab that holds the group's connection (the lock is freed the moment that
// tab closes, crashes or is discarded, and the next tab in the lock's queue
// takes over); a BroadcastChannel carries the holder's state, counts and
// application events to the other tabs, and their fetches to the holder.
//
// Fetches of every tab go through one queue in the holder, one at a time: the
// node serves one fetch per connection, and two tabs never get the same batch.
// A batch goes to the asking tab and is acknowledged only after that tab's
// handlers returned; each tab holds a lock of its own for its life, so the
// holder learns when an asking tab is gone and then accepts nothing.

import { Connection, FINAL } from "./connection.js";
import { PNSError, errorData, errorFrom } from "./errors.js";

/** True where the browser has what sharing needs (Web Locks, BroadcastChannel, a secure context). */
export function canShareTabs() {
  return (
    typeof BroadcastChannel === "function" &&
    typeof navigator !== "undefined" &&
    !!navigator.locks &&
    typeof navigator.locks.request === "function" &&
    typeof location !== "undefined" &&
    !!(globalThis.crypto && crypto.subtle && typeof crypto.randomUUID === "function")
  );
}

/** JSON with object keys sorted, so equal credentials give equal group names. */
function stableJson(value) {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value === undefined ? null : value);
}

/** The group's name: a hash, so credentials never appear in lock or channel names. */
async function groupName(parts) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(stableJson(parts)));
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `pns:${hex.slice(0, 32)}`;
}

/**
 * The link of a client in a tab group; the same two calls as a Connection
 * (fetch, stop), whichever role the tab has. `client` is the facade: it takes
 * state, error, count, event and batch as a Connection's sink does, and role.
 */
export class TabLink {
  constructor(client, config, shareKey) {
    this._client = client;
    this._config = config;
    this._tab = crypto.randomUUID();
    this._stopped = false;
    this._name = null;
    this._channel = null;
    this._holder = null; // the holding tab this tab follows (its own id while it holds)
    this._conn = null; // the Connection, while this tab holds
    this._direct = null; // the Connection of a tab that could not join a group
    this._queue = []; // fetches waiting for the holder's connection
    this._serving = false;
    this._remote = new Map(); // this follower's fetches sent to the holder, by tag
    this._waiting = new Map(); // batches the holder sent to other tabs, until their answer
    this._gone = new Set(); // holders seen to go away: a late message of theirs is not followed
    this._watch = null; // cancels the watch on the holder this tab follows
    this._locks = new AbortController(); // cancels this tab's lock requests when it stops
    this._releaseGroup = null;
    this._releaseTab = null;
    this._start(shareKey).catch(() => this._fallBack());
  }

  /** The holder's transport; null in a tab that follows. */
  get transport() {
    const conn = this._conn || this._direct;
    return conn ? conn.transport : null;
  }

  fetch(payload, tag) {
    if (this._direct) return this._direct.fetch(payload, tag);
    if (this._conn) return this._enqueue({ from: this._tab, tag, payload });
    if (this._stopped || this._holder === null || this._client.state !== "connected") {
      return Promise.reject(new PNSError("disconnected", "not connected"));
    }
    return new Promise((resolve, reject) => {
      this._remote.set(tag, { resolve, reject });
      this._post({ type: "fetch", to: this._holder, tag, payload });
    });
  }

  stop(state = "closed") {
    if (this._direct) return this._direct.stop(state);
    if (this._stopped) return undefined;
    if (this._conn) {
      // The connection's own stop reports the state; the next tab in the lock's queue takes over.
      this._post({ type: "leaving" });
      this._conn.stop(state);
    } else {
      this._client._setState(state);
    }
    this._shutdown();
    return undefined;
  }

  // -- joining -----------------------------------------------------------------

  async _start(shareKey) {
    const { url, path, token, auth, withCredentials } = this._config;
    let identity = shareKey;
    if (identity === undefined) identity = typeof token === "function" ? await token() : token;
    if (this._stopped) return;
    const where = url === undefined ? location.origin : new URL(url, location.href).href;
    this._name = await groupName([where, path, withCredentials, auth, identity == null ? null : String(identity)]);
    if (this._stopped) return;
    const signal = this._locks.signal;
    // This tab's own lock, held for its life: the holder learns from it that the tab is gone.
    await new Promise((granted, failed) => {
      navigator.locks
        .request(`${this._name}:tab:${this._tab}`, { signal }, () => {
          granted();
          return new Promise((release) => { this._releaseTab = release; });
        })
        .catch(failed);
    });
    if (this._stopped) return;
    this._channel = new BroadcastChannel(this._name);
    this._channel.onmessage = (event) => this._onMessage(event.data);
    this._client._setRole("follower");
    this._post({ type: "hello" });
    navigator.locks.request(this._name, { signal }, () => this._hold()).catch(() => {});
  }

  _fallBack() {
    if (this._stopped || this._direct) return;
    // No group (a lock refused, as in a sandboxed frame, or the token function failed,
    // which the connection's own handshake then reports): a connection of its own.
    this._shutdown();
    this._stopped = false;
    this._client._setRole("alone");
    this._direct = new Connection(this._config, this._client._sink);
  }

  _shutdown() {
    this._stopped = true;
    this._locks.abort();
    if (this._watch) this._watch.abort();
    for (const done of [...this._waiting.values()]) done(false);
    this._failRemote("client closed");
    if (this._releaseGroup) this._releaseGroup();
    if (this._releaseTab) this._releaseTab();
    if (this._channel) this._channel.close();
  }

  // -- holding -----------------------------------------------------------------

  /** Runs while this tab holds the group's lock; the lock is freed when it returns. */
  async _hold() {
    if (this._stopped) return;
    const held = new Promise((release) => { this._releaseGroup = release; });
    this._holder = this._tab;
    if (this._watch) this._watch.abort();
    this._failRemote("the tab holding the connection went away");
    this._client._setRole("holder");
    this._client._setState("connecting");
    this._conn = new Connection({ ...this._config, idPrefix: `${this._tab}:` }, this._hubSink());
    this._announce();
    await held;
  }

  _announce() {
    const client = this._client;
    this._post({ type: "holder", state: this._conn.state, conn: client._conn, count: client.count, rev: client._rev });
  }

  /** The holder's sink: the facade of its own tab, and a message to every other tab. */
  _hubSink() {
    const client = this._client;
    const sink = client._sink;
    return {
      state: (state) => {
        sink.state(state);
        if (state === "closed") return; // this tab's close(): "leaving" said it
        this._post({ type: "state", state });
        if (FINAL.has(state)) this._shutdown(); // unauthorized, stopped: every tab of the group stops
      },
      error: (error) => {
        sink.error(error);
        this._post({ type: "error", error: errorData(error) });
      },
      count: (payload, conn) => {
        sink.count(payload, conn);
        this._post({ type: "count", conn, count: payload.count, rev: payload.rev });
      },
      event: (name, args) => {
        sink.event(name, args);
        this._post({ type: "event", name, args });
      },
      batch: (batch, entry) => {
        if (!entry || entry.from === this._tab) return sink.batch(batch, entry && entry.tag);
        return this._batchElsewhere(entry, batch);
      },
    };
  }

  _enqueue(entry) {
    return new Promise((resolve, reject) => {
      this._queue.push({ ...entry, resolve, reject });
      this._serve();
    });
  }

  async _serve() {
    if (this._serving) return;
    this._serving = true;
    try {
      while (this._queue.length > 0 && this._conn) {
        const entry = this._queue.shift();
        try {
          entry.resolve(await this._conn.fetch(entry.payload, entry));
        } catch (err) {
          entry.reject(err instanceof PNSError ? err : new PNSError("internal", String(err && err.message)));
        }
      }
    } finally {
      this._serving = false;
    }
  }

  /** Hand a batch to the tab that asked; resolves with its answer (false once it is gone). */
  _batchElsewhere(entry, batch) {
    return new Promise((resolve) => {
      const key = `${entry.from}/${entry.tag}`;
      const watch = new AbortController();
      const done = (accepted) => {
        if (!this._waiting.has(key)) return;
        this._waiting.delete(key);
        watch.abort();
        resolve(accepted === true);
      };
      this._waiting.set(key, done);
      this._post({ type: "batch", to: entry.from, tag: entry.tag, batch });
      // Granted only once the asking tab is gone (it holds its lock for its life).
      navigator.locks
        .request(`${this._name}:tab:${entry.from}`, { signal: watch.signal }, () => undefined)
        .then(() => done(false), () => undefined);
    });
  }

  // -- messages ----------------------------------------------------------------

  _post(message) {
    if (!this._channel || this._stopped) return;
    try {
      this._channel.postMessage({ ...message, from: this._tab });
    } catch (err) {
      // An application event whose arguments cannot be cloned: the other tabs miss it; say so here.
      this._client._sink.error(new PNSError("share_failed", `cannot pass ${message.type} to other tabs: ${err.message}`,
        { cause: err }));
    }
  }

  _onMessage(msg) {
    if (this._stopped || !msg || typeof msg !== "object" || typeof msg.from !== "string") return;
    if (msg.to !== undefined && msg.to !== this._tab) return;
    if (this._conn) this._onMessageAsHolder(msg);
    else this._onMessageAsFollower(msg);
  }

  _onMessageAsHolder(msg) {
    if (msg.type === "hello") {
      this._announce();
    } else if (msg.type === "fetch") {
      const payload = msg.payload && typeof msg.payload === "object" ? msg.payload : {};
      this._enqueue({ from: msg.from, tag: msg.tag, payload }).then(
        (reply) => this._post({ type: "reply", to: msg.from, tag: msg.tag, reply }),
        (err) => this._post({ type: "reply", to: msg.from, tag: msg.tag, error: errorData(err) }),
      );
    } else if (msg.type === "batch-done") {
      const done = this._waiting.get(`${msg.from}/${msg.tag}`);
      if (done) done(msg.accepted);
    }
  }

  _onMessageAsFollower(msg) {
    const sink = this._client._sink;
    if (msg.type === "holder") {
      if (this._gone.has(msg.from)) return;
      if (msg.from !== this._holder) {
        if (this._holder !== null) this._failRemote("the tab holding the connection went away");
        this._holder = msg.from;
        this._watchHolder(msg.from);
      }
      this._followState(msg.state);
      if (typeof msg.conn === "string" && typeof msg.count === "number" && typeof msg.rev === "number") {
        sink.count({ count: msg.count, rev: msg.rev }, msg.conn);
      }
      return;
    }
    if (msg.type === "batch") {
      // Asked by this tab: its handlers decide, as with a connection of its own.
      Promise.resolve(sink.batch(msg.batch, msg.tag)).then(
        (accepted) => this._post({ type: "batch-done", to: msg.from, tag: msg.tag, accepted: accepted === true }),
        () => this._post({ type: "batch-done", to: msg.from, tag: msg.tag, accepted: false }),
      );
      return;
    }
    if (msg.from !== this._holder) return;
    if (msg.type === "state") this._followState(msg.state);
    else if (msg.type === "count") sink.count({ count: msg.count, rev: msg.rev }, msg.conn);
    else if (msg.type === "event" && typeof msg.name === "string" && Array.isArray(msg.args)) {
      sink.event(msg.name, msg.args);
    } else if (msg.type === "error" && msg.error) sink.error(errorFrom(msg.error));
    else if (msg.type === "reply") {
      const remote = this._remote.get(msg.tag);
      if (!remote) return;
      this._remote.delete(msg.tag);
      if (msg.error) remote.reject(errorFrom(msg.error));
      else remote.resolve(msg.reply);
    } else if (msg.type === "leaving") {
      this._gone.add(msg.from);
      this._holder = null;
      this._followState("connecting", "the tab holding the connection closed");
    }
  }

  /** Learn at once when the holder is gone (its tab lock is freed), before the next holder says so. */
  _watchHolder(holder) {
    if (this._watch) this._watch.abort();
    const watch = new AbortController();
    this._watch = watch;
    navigator.locks
      .request(`${this._name}:tab:${holder}`, { signal: watch.signal }, () => undefined)
      .then(() => {
        this._gone.add(holder);
        if (this._stopped || this._holder !== holder) return;
        this._holder = null;
        this._followState("connecting", "the tab holding the connection went away");
      }, () => undefined);
  }

  _followState(state, why = "connection lost") {
    if (typeof state !== "string") return;
    if (state !== "connected") this._failRemote(why);
    if (FINAL.has(state)) {
      this._client._setState(state);
      this._shutdown();
      return;
    }
    this._client._setState(state);
  }

  _failRemote(why) {
    const remote = [...this._remote.values()];
    this._remote.clear();
    for (const { reject } of remote) reject(new PNSError("disconnected", why));
  }
}
