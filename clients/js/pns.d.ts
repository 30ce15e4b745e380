// The PNS client's API contract (hand-written; src/pns.js implements it).
// Wire protocol: docs/protocol.md.

/** Stops listening; calling it twice is harmless. */
export type Unsubscribe = () => void;

/** A token, or a function giving one; the function is called on every (re)connection. */
export type TokenSource = string | (() => string | null | undefined | Promise<string | null | undefined>);

export interface PNSClientOptions {
  /** The PNS node (or its load balancer), e.g. "https://pns.example.com". Default: the page's origin. */
  url?: string;
  /** Sent as `auth.token` in the Socket.IO handshake. */
  token?: TokenSource;
  /** Send the application's cookies (cross-origin long-polling; WebSocket sends them anyway). Default false. */
  withCredentials?: boolean;
  /**
   * Extra handshake fields, merged under the token: `{user_id: "42"}` signs
   * in as that user on a node in demo mode.
   */
  auth?: Record<string, unknown>;
  /** Socket.IO path on the node. Default "/socket.io". */
  path?: string;
  /** fetchNew() rejects with "timeout" after this many ms; keep it above the node's PNS_ACK_TIMEOUT. Default 60000. */
  fetchTimeout?: number;
  /** First reconnection delay in ms (doubles, with jitter). Default 1000. */
  reconnectionDelay?: number;
  /** Longest reconnection delay in ms. Default 5000. */
  reconnectionDelayMax?: number;
  /**
   * Share one connection with the other tabs of this browser that connect to
   * the same URL with the same credentials (Web Locks + BroadcastChannel; in
   * a secure context). false: a connection of its own. Default true.
   */
  shareAcrossTabs?: boolean;
  /**
   * Who this tab is signed in as, for sharing: tabs share only when their URL,
   * path, `auth` and shareKey are equal. Default: the token (a token
   * function's first value), or none. Give the signed-in user's id when
   * tokens rotate, and with cookie sign-in, so that a tab signed in as
   * someone else never joins another user's connection.
   */
  shareKey?: string;
}

/** A notification as delivered to onNotifications handlers. */
export interface PNSNotification {
  id: string;
  /** The application's data, as it was created. */
  data: Record<string, unknown>;
  /** ISO 8601 UTC, e.g. "2026-11-26T02:30:00.123456Z". */
  createdAt: string;
}

export interface FetchResult {
  /** How many notifications this fetch newly marked seen. */
  delivered: number;
  /** More unseen notifications are waiting: fetch again. */
  hasMore: boolean;
}

/**
 * "alone": a connection of its own (sharing off or unavailable); "holder":
 * this tab holds the connection the other tabs share; "follower": it uses
 * the holder's.
 */
export type Role = "alone" | "holder" | "follower";

export type ConnectionState =
  /** Opening the connection (first time or again). */
  | "connecting"
  | "connected"
  /** Lost; the client connects again by itself. */
  | "disconnected"
  /** The node refused the credentials; the client stopped (make a new client with new credentials). */
  | "unauthorized"
  /** A node closed the connection and asked not to reconnect; the client stopped. */
  | "stopped"
  /** close() was called. */
  | "closed";

export type PNSErrorCode =
  // the protocol's codes
  | "invalid_request"
  | "rate_limited"
  | "unavailable"
  | "timeout"
  | "internal"
  | "unauthorized"
  // the client's own
  /** No connection, or it was lost before the answer. */
  | "disconnected"
  /** An onNotifications handler threw: nothing was marked seen (`cause` holds its error). */
  | "handler_failed"
  /** fetchNew() without any onNotifications handler. */
  | "no_handler"
  /** The token function threw or rejected (the client retries). */
  | "token_failed"
  /** An onCount / onConnectionChange listener threw. */
  | "listener_failed"
  /** An application event's data could not be passed to the other tabs (it reached this tab only). */
  | "share_failed"
  | (string & {});

export declare class PNSError extends Error {
  constructor(code: PNSErrorCode, message?: string, options?: { cause?: unknown });
  readonly name: "PNSError";
  readonly code: PNSErrorCode;
}

export declare class PNSClient {
  /** Connects at once (WebSocket first, long-polling as a fallback) and reconnects with back-off. */
  constructor(options?: PNSClientOptions);

  /** The kept unseen count (highest `rev` on the current connection); null before the first count. */
  readonly count: number | null;
  readonly state: ConnectionState;
  /** state === "connected" */
  readonly connected: boolean;
  /** This tab's part in sharing the connection; null while it joins the other tabs. */
  readonly role: Role | null;
  /** "websocket" or "polling" while this tab holds an open connection; null otherwise. */
  readonly transport: "websocket" | "polling" | null;

  /** fn(count) whenever the kept count changes (not on subscription: read `count` for that). */
  onCount(fn: (count: number) => void): Unsubscribe;

  /**
   * Receives each delivered batch (oldest first). The batch is acknowledged only
   * after the handler returns or its promise resolves; if it throws or rejects,
   * nothing is marked seen (delivered again next time) and fetchNew() rejects
   * with "handler_failed".
   */
  onNotifications(handler: (notifications: PNSNotification[]) => void | Promise<void>): Unsubscribe;

  /**
   * Asks for the unseen notifications (up to `limit`, 1-100, default 50); they go
   * to the onNotifications handlers. Resolves once they are marked seen. Rejects
   * with a PNSError: the protocol's code, or "handler_failed", "no_handler",
   * "disconnected" (no connection, lost before the answer, or the tab holding the shared connection went away) or "timeout"
   * (no answer within `timeout` ms, default the fetchTimeout option). Always settles.
   */
  fetchNew(options?: { limit?: number; timeout?: number }): Promise<FetchResult>;

  /** fn(...args) for another event the application emits to its users (through the Redis manager). */
  on(event: string, fn: (...args: any[]) => void): Unsubscribe;

  /** Refusals (unauthorized, unavailable, rate_limited), token, handler and listener failures. */
  onError(fn: (error: PNSError) => void): Unsubscribe;

  onConnectionChange(fn: (state: ConnectionState) => void): Unsubscribe;

  /** fn(role) when this tab starts or stops holding the shared connection. */
  onRoleChange(fn: (role: Role) => void): Unsubscribe;

  /** Disconnects for good; pending fetches reject with "disconnected". If this tab held the shared connection, another tab takes over. */
  close(): void;
}

export default PNSClient;
