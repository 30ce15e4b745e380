// One Socket.IO connection to PNS: handshake, reconnection, the node's
// directives, and the protocol's events, handed to a sink. The facade (pns.js)
// is the sink of a tab's own connection; a tab holding a shared connection
// (share.js) is the sink that also tells the other tabs.

import { io } from "socket.io-client";

import { PNSError } from "./errors.js";

export const EV_COUNT = "new-notifications-count";
export const EV_BATCH = "new-notifications";
export const EV_FETCH = "get-new-notifications";
export const EV_DISCONNECT = "pns:disconnect";
// Names a caller may not take over with on(): the client owns them.
export const RESERVED = new Set([
  EV_COUNT, EV_BATCH, EV_FETCH, EV_DISCONNECT,
  "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
]);
// Connection states after which nothing reconnects.
export const FINAL = new Set(["unauthorized", "stopped", "closed"]);

/**
 * The sink a Connection reports to:
 *   state(state)            connecting | connected | disconnected | unauthorized | stopped | closed
 *   error(pnsError)         refusals and token failures (before the state they cause)
 *   count(payload, conn)    a new-notifications-count, with the id of the connection it came on
 *   event(name, args)       an application event
 *   batch(batch, tag)       a new-notifications batch for the fetch tagged `tag` (undefined: none
 *                           in flight); resolves true to accept it, false to accept none
 */
export class Connection {
  constructor({ url, path, token, auth, withCredentials, reconnectionDelay, reconnectionDelayMax, idPrefix },
    sink) {
    this._sink = sink;
    this._token = token;
    this._auth = auth;
    this._delays = { first: reconnectionDelay, max: reconnectionDelayMax };
    this._prefix = idPrefix || "";
    this.state = "connecting";
    this.conn = null; // id of the current connection: counts are compared within one
    this._connects = 0;
    this._epoch = 0; // bumps on every connect and disconnect: stale acks and tokens are dropped
    this._inflight = []; // fetches emitted on the current connection, oldest first
    this._retryTimer = null;
    this._retries = 0;
    this._directive = null; // the last pns:disconnect, until the disconnect it announces

    const ioOptions = {
      path,
      // PROTOCOL/README: WebSocket first; long-polling only as a fallback
      // (it needs sticky sessions behind a load balancer).
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      withCredentials,
      forceNew: true,
      reconnectionDelay,
      reconnectionDelayMax,
      // A function, so a token function is asked again on every (re)connection.
      auth: (send) => this._handshake(send),
      autoConnect: false,
    };
    this._socket = url === undefined ? io(ioOptions) : io(url, ioOptions);
    this._wire();
    this._socket.connect();
  }

  /** The transport in use ("websocket" or "polling"), null when not connected. */
  get transport() {
    return this._socket.connected ? this._socket.io.engine.transport.name : null;
  }

  /**
   * Emit get-new-notifications; resolves with the node's answer. Batches that
   * come meanwhile go to the sink tagged `tag`. Rejects with "disconnected"
   * when there is no connection or it is lost before the answer.
   */
  fetch(payload, tag) {
    if (this.state !== "connected" || !this._socket.connected) {
      return Promise.reject(new PNSError("disconnected", "not connected"));
    }
    return new Promise((resolve, reject) => {
      const entry = { tag, reject };
      this._inflight.push(entry);
      this._socket.emit(EV_FETCH, payload, (reply) => {
        const i = this._inflight.indexOf(entry);
        if (i < 0) return;
        this._inflight.splice(i, 1);
        resolve(reply);
      });
    });
  }

  /** Disconnect for good (state `state`: closed, or the final state a refusal caused). */
  stop(state = "closed") {
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._setState(state);
    this._epoch += 1;
    this._failInflight(`client ${state}`);
    this._socket.disconnect();
  }

  // -- internals ---------------------------------------------------------------

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._sink.state(state);
  }

  _failInflight(why) {
    const inflight = this._inflight;
    this._inflight = [];
    for (const entry of inflight) entry.reject(new PNSError("disconnected", why));
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
          this._sink.error(new PNSError("token_failed", `token function failed: ${err && err.message}`, { cause: err }));
          this._socket.disconnect();
          this._retryLater();
        },
      );
  }

  _wire() {
    const socket = this._socket;
    socket.on("connect", () => {
      this._epoch += 1;
      this._connects += 1;
      this.conn = `${this._prefix}${this._connects}`; // PROTOCOL: the rev rule holds per connection
      this._retries = 0;
      this._directive = null;
      this._setState("connected");
    });
    socket.on("disconnect", (reason) => this._onDisconnect(reason));
    socket.on("connect_error", (err) => this._onConnectError(err));
    socket.io.on("reconnect_attempt", () => {
      if (!FINAL.has(this.state)) this._setState("connecting");
    });
    socket.on(EV_COUNT, (payload) => {
      if (payload && typeof payload.count === "number" && typeof payload.rev === "number") {
        this._sink.count({ count: payload.count, rev: payload.rev }, this.conn);
      }
    });
    socket.on(EV_BATCH, (batch, ack) => this._onBatch(batch, ack));
    socket.on(EV_DISCONNECT, (payload) => this._onDirective(payload));
    socket.onAny((event, ...args) => {
      if (RESERVED.has(event)) return;
      // An ack callback from the server is not the application's business here.
      if (typeof args[args.length - 1] === "function") args.pop();
      this._sink.event(event, args);
    });
  }

  async _onBatch(batch, ack) {
    const epoch = this._epoch;
    const entry = this._inflight[0]; // the node serves one fetch at a time per connection
    let accepted = false;
    try {
      accepted = (await this._sink.batch(batch, entry && entry.tag)) === true;
    } catch {
      accepted = false;
    }
    // An ack on a later connection would answer nothing (the node dropped it).
    if (epoch !== this._epoch || typeof ack !== "function") return;
    // PROTOCOL: no argument accepts the whole batch; {"received": []} accepts none.
    if (accepted) ack();
    else ack({ received: [] });
  }

  _onDirective(payload) {
    if (!payload || typeof payload !== "object") return;
    this._directive = { code: String(payload.code || "disconnect"), reconnect: payload.reconnect === true };
    // The node disconnects right after; close first so nothing races the reconnect.
    if (this._socket.connected) this._socket.disconnect();
  }

  _onDisconnect(reason) {
    this._epoch += 1;
    this._failInflight(`connection lost (${reason})`);
    if (FINAL.has(this.state)) return;
    const directive = this._directive;
    this._directive = null;
    if (directive) {
      if (directive.reconnect) {
        // shutdown, token_expired: connect again (the token function is asked anew).
        this._setState("disconnected");
        this._retryLater();
      } else {
        this._sink.error(new PNSError(directive.code,
          `the node closed the connection (${directive.code}) and asked not to reconnect`));
        this.stop("stopped");
      }
      return;
    }
    if (reason === "io server disconnect") {
      // Socket.IO's rule: a disconnect by the server without a pns:disconnect is final.
      this._sink.error(new PNSError("disconnected", "the node closed the connection"));
      this.stop("stopped");
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
      this._sink.error(new PNSError("unauthorized", "the node refused the credentials"));
      this.stop("unauthorized");
      return;
    }
    if (code) {
      // unavailable, rate_limited, ...: a refusal Socket.IO does not retry by itself.
      this._sink.error(new PNSError(code, (err && err.message) || code));
      this._setState("disconnected");
      this._retryLater();
      return;
    }
    // Transport failure: the manager retries on its own.
    this._setState("disconnected");
  }

  _retryLater() {
    if (this._retryTimer || FINAL.has(this.state)) return;
    const { first, max } = this._delays;
    const base = Math.min(first * 2 ** this._retries, max);
    this._retries += 1;
    const delay = base * (0.5 + Math.random()); // jitter: a stopping node's clients spread out
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      if (FINAL.has(this.state)) return;
      this._setState("connecting");
      this._socket.connect();
    }, Math.min(delay, max));
  }
}
