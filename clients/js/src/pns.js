// PNS browser client: the unseen count and at-least-once delivery over Socket.IO.
//
// The wire contract is docs/protocol.md; pns.d.ts beside this file is the API
// contract. socket.io-client is the only dependency. The tabs of one browser
// that connect with the same credentials share one connection (share.js);
// elsewhere each client has a connection of its own (connection.js).

import { Connection, FINAL, RESERVED } from "./connection.js";
import { PNSError } from "./errors.js";
import { TabLink, canShareTabs } from "./share.js";

export { PNSError };

const DEFAULTS = {
  path: "/socket.io",
  fetchTimeout: 60000,
  reconnectionDelay: 1000,
  reconnectionDelayMax: 5000,
};
const RETIRED_KEPT = 32; // connections whose late counts are still recognised as old

/**
 * One device's connection to PNS: the live unseen count, and fetching the
 * unseen notifications. Connects at once and reconnects on its own (with
 * back-off) until close(), an "unauthorized" refusal, or a node saying not to.
 */
export class PNSClient {
  constructor(options = {}) {
    const { url, token, withCredentials = false, auth, shareAcrossTabs = true, shareKey, ...rest } = options;
    if (token !== undefined && token !== null && typeof token !== "string" && typeof token !== "function") {
      throw new TypeError("PNSClient: token must be a string or a function returning one");
    }
    if (auth !== undefined && (auth === null || typeof auth !== "object")) {
      throw new TypeError("PNSClient: auth must be an object of extra handshake fields");
    }
    if (shareKey !== undefined && typeof shareKey !== "string") {
      throw new TypeError("PNSClient: shareKey must be a string (the signed-in user's id, say)");
    }
    this._opts = { ...DEFAULTS, ...rest };
    /** The kept unseen count; null until the first count arrives. */
    this.count = null;
    /** "connecting" | "connected" | "disconnected" | "unauthorized" | "stopped" | "closed" */
    this.state = "connecting";
    /** "alone" | "holder" | "follower"; null while a tab is joining its group. */
    this.role = null;
    this._conn = null; // the connection the kept count came on
    this._rev = null; // highest rev seen on that connection
    this._retired = []; // earlier connections: their counts are stale
    this._listeners = { count: new Set(), batch: new Set(), error: new Set(), state: new Set(), role: new Set() };
    this._events = new Map(); // application events: name -> Set of listeners
    this._fetches = new Map(); // pending fetchNew calls, by tag
    this._tags = 0;
    // What a Connection (or the tab holding the group's) reports to this client.
    this._sink = {
      state: (state) => this._setState(state),
      error: (error) => this._report(error),
      count: (payload, conn) => this._onCount(payload, conn),
      event: (name, args) => this._onEvent(name, args),
      batch: (batch, tag) => this._deliver(batch, tag),
    };
    const config = {
      url,
      path: this._opts.path,
      token,
      auth: auth || {},
      withCredentials,
      reconnectionDelay: this._opts.reconnectionDelay,
      reconnectionDelayMax: this._opts.reconnectionDelayMax,
    };
    if (shareAcrossTabs !== false && canShareTabs()) {
      this._link = new TabLink(this, config, shareKey);
    } else {
      this.role = "alone";
      this._link = new Connection(config, this._sink);
    }
  }

  /** True while the connection is up (in a follower tab: the holder's). */
  get connected() {
    return this.state === "connected";
  }

  /** The transport of this tab's connection ("websocket" or "polling"); null in a follower tab or when down. */
  get transport() {
    return this._link.transport;
  }

  // -- subscriptions -----------------------------------------------------------

  /** fn(count) whenever the kept count changes. Returns an unsubscribe function. */
  onCount(fn) {
    return this._add("count", fn);
  }

  /**
   * handler(notifications) receives each delivered batch; the batch is
   * acknowledged only after every handler has returned (or resolved).
   */
  onNotifications(handler) {
    return this._add("batch", handler);
  }

  /** fn(error) for refusals, token and handler failures. Returns an unsubscribe function. */
  onError(fn) {
    return this._add("error", fn);
  }

  /** fn(state) whenever the connection state changes. Returns an unsubscribe function. */
  onConnectionChange(fn) {
    return this._add("state", fn);
  }

  /** fn(role) when this tab starts or stops holding the shared connection. */
  onRoleChange(fn) {
    return this._add("role", fn);
  }

  /** fn(...args) for an event the application emits to its users. Returns an unsubscribe function. */
  on(event, fn) {
    if (typeof event !== "string" || RESERVED.has(event)) {
      throw new TypeError(`PNSClient.on: ${String(event)} is reserved (use onCount, onNotifications, onConnectionChange)`);
    }
    if (typeof fn !== "function") throw new TypeError("PNSClient.on: fn must be a function");
    if (!this._events.has(event)) this._events.set(event, new Set());
    const set = this._events.get(event);
    const entry = (args) => fn(...args);
    set.add(entry);
    return () => set.delete(entry);
  }

  // -- fetching ----------------------------------------------------------------

  /**
   * Ask for the unseen notifications; they go to the onNotifications handlers.
   * Resolves with {delivered, hasMore}; rejects with a PNSError whose code is
   * the protocol's, or handler_failed, no_handler, disconnected or timeout.
   * Always settles (after `timeout` ms at the latest).
   */
  fetchNew({ limit, timeout } = {}) {
    if (this.state !== "connected") {
      return Promise.reject(new PNSError("disconnected", "not connected"));
    }
    if (this._listeners.batch.size === 0) {
      return Promise.reject(new PNSError("no_handler", "register onNotifications(handler) before fetchNew()"));
    }
    const ms = timeout ?? this._opts.fetchTimeout;
    const tag = ++this._tags;
    return new Promise((resolve, reject) => {
      const pending = { handlerError: null, timer: null };
      const settle = () => {
        clearTimeout(pending.timer);
        return this._fetches.delete(tag);
      };
      pending.fail = (error) => settle() && reject(error);
      const answer = (reply) => {
        if (!settle()) return;
        if (reply && reply.ok === true) {
          if (pending.handlerError) {
            reject(new PNSError("handler_failed", `notification handler failed: ${pending.handlerError.message}`,
              { cause: pending.handlerError }));
          } else {
            resolve({ delivered: reply.delivered, hasMore: reply.has_more });
          }
        } else if (reply && reply.ok === false && reply.error) {
          reject(new PNSError(reply.error.code || "internal", reply.error.message));
        } else {
          reject(new PNSError("internal", "unexpected answer to get-new-notifications"));
        }
      };
      pending.timer = setTimeout(() => pending.fail(new PNSError("timeout", `no answer within ${ms} ms`)), ms);
      this._fetches.set(tag, pending);
      this._link.fetch(limit === undefined ? {} : { limit }, tag).then(answer, pending.fail);
    });
  }

  /** Disconnect for good; pending fetches reject with "disconnected". In a shared tab, another tab takes over. */
  close() {
    if (this.state === "closed") return;
    this._link.stop("closed");
    this._setState("closed");
  }

  // -- internals ---------------------------------------------------------------

  _add(kind, fn) {
    if (typeof fn !== "function") throw new TypeError("PNSClient: expected a function");
    const set = this._listeners[kind];
    // A wrapper, so registering the same function twice gives two independent subscriptions.
    const entry = (...args) => fn(...args);
    set.add(entry);
    return () => set.delete(entry);
  }

  _emit(kind, ...args) {
    this._call(this._listeners[kind], args, kind === "error");
  }

  _call(listeners, args, isErrorListener = false) {
    for (const fn of [...listeners]) {
      try {
        fn(...args);
      } catch (err) {
        // A broken listener must not break the client; say so where it can be seen.
        if (!isErrorListener) this._report(new PNSError("listener_failed", String(err && err.message), { cause: err }));
        else setTimeout(() => { throw err; });
      }
    }
  }

  _report(error) {
    this._emit("error", error);
  }

  _setState(state) {
    if (this.state === state || this.state === "closed") return;
    this.state = state;
    if (FINAL.has(state)) {
      for (const pending of [...this._fetches.values()]) pending.fail(new PNSError("disconnected", `client ${state}`));
    }
    this._emit("state", state);
  }

  _setRole(role) {
    if (this.role === role) return;
    this.role = role;
    this._emit("role", role);
  }

  _onCount(payload, conn) {
    if (conn !== this._conn) {
      // PROTOCOL: the rev rule holds per connection; a count from a connection
      // already left behind (a tab's that handed over) is stale.
      if (this._retired.includes(conn)) return;
      if (this._conn !== null) this._retired.push(this._conn);
      if (this._retired.length > RETIRED_KEPT) this._retired.shift();
      this._conn = conn;
      this._rev = null;
    }
    // PROTOCOL: keep the highest rev; on an equal rev the later value wins.
    if (this._rev !== null && payload.rev < this._rev) return;
    this._rev = payload.rev;
    if (payload.count !== this.count) {
      this.count = payload.count;
      this._emit("count", payload.count);
    }
  }

  _onEvent(name, args) {
    const listeners = this._events.get(name);
    if (listeners) this._call(listeners, [args]);
  }

  /** Run the handlers on a batch; true when all accepted it (the link acknowledges accordingly). */
  async _deliver(batch, tag) {
    const notifications = (batch && Array.isArray(batch.notifications) ? batch.notifications : []).map((n) => ({
      id: n.id,
      data: n.data,
      createdAt: n.created_at,
    }));
    const handlers = [...this._listeners.batch];
    let failure = handlers.length === 0 ? new PNSError("no_handler", "no onNotifications handler") : null;
    for (const handler of handlers) {
      try {
        await handler(notifications);
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
        break;
      }
    }
    if (!failure) return true;
    const pending = tag === undefined ? undefined : this._fetches.get(tag);
    if (pending) pending.handlerError = failure;
    else this._report(new PNSError("handler_failed", `notification handler failed: ${failure.message}`, { cause: failure }));
    return false;
  }
}

export default PNSClient;
