// PNS browser client: the unseen count and at-least-once delivery over Socket.IO.
//
// The wire contract is docs/protocol.md; pns.d.ts beside this file is the API
// contract. One ES module, socket.io-client its only dependency.

import { io } from "socket.io-client";

const EV_COUNT = "new-notifications-count";
const EV_BATCH = "new-notifications";
const EV_FETCH = "get-new-notifications";
const EV_DISCONNECT = "pns:disconnect";
// Names a caller may not take over with on(): the client owns them.
const RESERVED = new Set([
  EV_COUNT, EV_BATCH, EV_FETCH, EV_DISCONNECT,
  "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
]);
// Connection states after which nothing reconnects.
const FINAL = new Set(["unauthorized", "stopped", "closed"]);

const DEFAULTS = {
  path: "/socket.io",
  fetchTimeout: 60000,
  reconnectionDelay: 1000,
  reconnectionDelayMax: 5000,
};

/** An error with the protocol's `code` (or the client's own: disconnected, timeout, ...). */
export class PNSError extends Error {
  constructor(code, message, options) {
    super(message || code, options);
    this.name = "PNSError";
    this.code = code;
  }
}

/**
 * One device's connection to PNS: the live unseen count, and fetching the
 * unseen notifications. Connects at once and reconnects on its own (with
 * back-off) until close(), an "unauthorized" refusal, or a node saying not to.
 */
export class PNSClient {
  constructor(options = {}) {
    const { url, token, withCredentials = false, auth, ...rest } = options;
    if (token !== undefined && token !== null && typeof token !== "string" && typeof token !== "function") {
      throw new TypeError("PNSClient: token must be a string or a function returning one");
    }
    if (auth !== undefined && (auth === null || typeof auth !== "object")) {
      throw new TypeError("PNSClient: auth must be an object of extra handshake fields");
    }
    this._opts = { ...DEFAULTS, ...rest };
    this._token = token;
    this._auth = auth || {};
    /** The kept unseen count; null until the first count arrives. */
    this.count = null;
    /** "connecting" | "connected" | "disconnected" | "unauthorized" | "stopped" | "closed" */
    this.state = "connecting";
    this._rev = null; // highest rev seen on the current connection
    this._epoch = 0; // bumps on every connect and disconnect: stale acks and tokens are dropped
    this._listeners = { count: new Set(), batch: new Set(), error: new Set(), state: new Set() };
    this._fetches = []; // pending fetchNew calls on the current connection, oldest first
    this._retryTimer = null;
    this._retries = 0;
    this._directive = null; // the last pns:disconnect, until the disconnect it announces

    const ioOptions = {
      path: this._opts.path,
      // PROTOCOL/README: WebSocket first; long-polling only as a fallback
      // (it needs sticky sessions behind a load balancer).
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      withCredentials,
      forceNew: true,
      reconnectionDelay: this._opts.reconnectionDelay,
      reconnectionDelayMax: this._opts.reconnectionDelayMax,
      // A function, so a token function is asked again on every (re)connection.
      auth: (send) => this._handshake(send),
      autoConnect: false,
    };
    this._socket = url === undefined ? io(ioOptions) : io(url, ioOptions);
    this._wire();
    this._socket.connect();
  }

  /** True while the connection is up. */
  get connected() {
    return this.state === "connected";
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

  /** fn(...args) for an event the application emits to its users. Returns an unsubscribe function. */
  on(event, fn) {
    if (typeof event !== "string" || RESERVED.has(event)) {
      throw new TypeError(`PNSClient.on: ${String(event)} is reserved (use onCount, onNotifications, onConnectionChange)`);
    }
    if (typeof fn !== "function") throw new TypeError("PNSClient.on: fn must be a function");
    const wrapped = (...args) => {
      // An ack callback from the server is not the application's business here.
      if (typeof args[args.length - 1] === "function") args.pop();
      fn(...args);
    };
    this._socket.on(event, wrapped);
    return () => this._socket.off(event, wrapped);
  }

  // -- fetching ----------------------------------------------------------------

  /**
   * Ask for the unseen notifications; they go to the onNotifications handlers.
   * Resolves with {delivered, hasMore}; rejects with a PNSError whose code is
   * the protocol's, or handler_failed, no_handler, disconnected or timeout.
   * Always settles (after `timeout` ms at the latest).
   */
  fetchNew({ limit, timeout } = {}) {
    if (this.state !== "connected" || !this._socket.connected) {
      return Promise.reject(new PNSError("disconnected", "not connected"));
    }
    if (this._listeners.batch.size === 0) {
      return Promise.reject(new PNSError("no_handler", "register onNotifications(handler) before fetchNew()"));
    }
    const ms = timeout ?? this._opts.fetchTimeout;
    return new Promise((resolve, reject) => {
      const pending = { resolve, reject, handlerError: null, timer: null };
      const settle = () => {
        clearTimeout(pending.timer);
        const i = this._fetches.indexOf(pending);
        if (i < 0) return false;
        this._fetches.splice(i, 1);
        return true;
      };
      pending.fail = (error) => settle() && reject(error);
      pending.answer = (reply) => {
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
      this._fetches.push(pending);
      const payload = limit === undefined ? {} : { limit };
      this._socket.emit(EV_FETCH, payload, (reply) => pending.answer(reply));
    });
  }

  /** Disconnect for good; pending fetches reject with "disconnected". */
  close() {
    if (this.state === "closed") return;
    this._stop("closed");
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
    for (const fn of [...this._listeners[kind]]) {
      try {
        fn(...args);
      } catch (err) {
        // A broken listener must not break the client; say so where it can be seen.
        if (kind !== "error") this._report(new PNSError("listener_failed", String(err && err.message), { cause: err }));
        else setTimeout(() => { throw err; });
      }
    }
  }

  _report(error) {
    this._emit("error", error);
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", state);
  }

  _handshake(send) {
    const epoch = this._epoch;
    const token = this._token;
    if (typeof token !== "function") {
      send(token ? { ...this._auth, token } : { ...this._auth });
      return;
    }
    Promise.resolve()
      .then(() => token())
      .then(
        (value) => {
          if (epoch !== this._epoch || FINAL.has(this.state)) return;
          send(value ? { ...this._auth, token: String(value) } : { ...this._auth });
        },
        (err) => {
          if (epoch !== this._epoch || FINAL.has(this.state)) return;
          this._report(new PNSError("token_failed", `token function failed: ${err && err.message}`, { cause: err }));
          this._socket.disconnect();
          this._retryLater();
        },
      );
  }

  _wire() {
    const socket = this._socket;
    socket.on("connect", () => {
      this._epoch += 1;
      this._rev = null; // PROTOCOL: the rev rule holds per connection
      this._retries = 0;
      this._directive = null;
      this._setState("connected");
    });
    socket.on("disconnect", (reason) => this._onDisconnect(reason));
    socket.on("connect_error", (err) => this._onConnectError(err));
    socket.io.on("reconnect_attempt", () => {
      if (!FINAL.has(this.state)) this._setState("connecting");
    });
    socket.on(EV_COUNT, (payload) => this._onCount(payload));
    socket.on(EV_BATCH, (batch, ack) => this._onBatch(batch, ack));
    socket.on(EV_DISCONNECT, (payload) => this._onDirective(payload));
  }

  _onCount(payload) {
    if (!payload || typeof payload.count !== "number" || typeof payload.rev !== "number") return;
    // PROTOCOL: keep the highest rev; on an equal rev the later value wins.
    if (this._rev !== null && payload.rev < this._rev) return;
    this._rev = payload.rev;
    if (payload.count !== this.count) {
      this.count = payload.count;
      this._emit("count", payload.count);
    }
  }

  async _onBatch(batch, ack) {
    const epoch = this._epoch;
    const pending = this._fetches[0]; // one fetch at a time is served per connection
    const notifications = (batch && Array.isArray(batch.notifications) ? batch.notifications : []).map((n) => ({
      id: n.id,
      data: n.data,
      createdAt: n.created_at,
    }));
    let failure = null;
    const handlers = [...this._listeners.batch];
    if (handlers.length === 0) failure = new PNSError("no_handler", "no onNotifications handler");
    for (const handler of handlers) {
      try {
        await handler(notifications);
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
        break;
      }
    }
    // An ack on a later connection would answer nothing (the node dropped it).
    if (epoch !== this._epoch || typeof ack !== "function") return;
    if (failure) {
      if (pending && this._fetches.includes(pending)) pending.handlerError = failure;
      else this._report(new PNSError("handler_failed", `notification handler failed: ${failure.message}`, { cause: failure }));
      // PROTOCOL: {"received": []} accepts none: they come again next time.
      ack({ received: [] });
    } else {
      ack(); // PROTOCOL: no argument accepts the whole batch
    }
  }

  _onDirective(payload) {
    if (!payload || typeof payload !== "object") return;
    this._directive = { code: String(payload.code || "disconnect"), reconnect: payload.reconnect === true };
    // The node disconnects right after; close first so nothing races the reconnect.
    if (this._socket.connected) this._socket.disconnect();
  }

  _onDisconnect(reason) {
    this._epoch += 1;
    for (const pending of [...this._fetches]) pending.fail(new PNSError("disconnected", `connection lost (${reason})`));
    if (FINAL.has(this.state)) return;
    const directive = this._directive;
    this._directive = null;
    if (directive) {
      if (directive.reconnect) {
        // shutdown, token_expired: connect again (the token function is asked anew).
        this._setState("disconnected");
        this._retryLater();
      } else {
        this._report(new PNSError(directive.code, `the node closed the connection (${directive.code}) and asked not to reconnect`));
        this._stop("stopped");
      }
      return;
    }
    if (reason === "io server disconnect") {
      // Socket.IO's rule: a disconnect by the server without a pns:disconnect is final.
      this._report(new PNSError("disconnected", "the node closed the connection"));
      this._stop("stopped");
      return;
    }
    // Transport lost: socket.io-client reconnects by itself, with back-off.
    this._setState("disconnected");
  }

  _onConnectError(err) {
    if (FINAL.has(this.state)) return;
    const code = err && err.data && typeof err.data === "object" ? err.data.code : undefined;
    if (code === "unauthorized") {
      // PROTOCOL: a refused connection is not retried.
      this._report(new PNSError("unauthorized", "the node refused the credentials"));
      this._stop("unauthorized");
      return;
    }
    if (code) {
      // unavailable, rate_limited, ...: a refusal Socket.IO does not retry by itself.
      this._report(new PNSError(code, (err && err.message) || code));
      this._setState("disconnected");
      this._retryLater();
      return;
    }
    // Transport failure: the manager retries on its own.
    this._setState("disconnected");
  }

  _retryLater() {
    if (this._retryTimer || FINAL.has(this.state)) return;
    const base = Math.min(this._opts.reconnectionDelay * 2 ** this._retries, this._opts.reconnectionDelayMax);
    this._retries += 1;
    const delay = base * (0.5 + Math.random()); // jitter: a stopping node's clients spread out
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      if (FINAL.has(this.state)) return;
      this._setState("connecting");
      this._socket.connect();
    }, Math.min(delay, this._opts.reconnectionDelayMax));
  }

  _stop(state) {
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._setState(state);
    this._epoch += 1;
    for (const pending of [...this._fetches]) pending.fail(new PNSError("disconnected", `client ${state}`));
    this._socket.disconnect();
  }
}

export default PNSClient;
