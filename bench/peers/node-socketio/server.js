'use strict';
// The PNS protocol (docs/protocol.md) on Node.js 20 + socket.io 4.8: the peer the
// benchmark compares PNS against. Written the way a careful Node team would ship it:
// prepared statements on better-sqlite3 (WAL, synchronous=NORMAL, like PNS),
// @socket.io/redis-adapter for many nodes, counts coalesced per user, no strawman.
//
// Settings come from the environment, with the same names as PNS where they exist:
//   PNS_HOST, PNS_PORT, PNS_STORE_URL (sqlite:///path.db), PNS_REDIS_URL, PNS_REDIS_CHANNEL,
//   PNS_JWT_SECRET (HS256), PNS_API_TOKEN, PNS_ACK_TIMEOUT, PNS_PING_INTERVAL,
//   PNS_PING_TIMEOUT, PNS_MAX_MESSAGE_BYTES, PNS_MAX_BODY_BYTES,
//   PNS_MAX_NOTIFICATION_BYTES, PNS_ALLOWED_ORIGINS, PNS_LOG_LEVEL.

const http = require('node:http');
const crypto = require('node:crypto');
const path = require('node:path');
const fs = require('node:fs');
const { Server } = require('socket.io');
const Database = require('better-sqlite3');
const jwt = require('jsonwebtoken');

const EV_COUNT = 'new-notifications-count';
const EV_BATCH = 'new-notifications';
const EV_FETCH = 'get-new-notifications';
const EV_DISCONNECT = 'pns:disconnect';
const EV_SIGNAL = 'pns:notification';
const ROOM_PREFIX = 'user:';

// -- settings ----------------------------------------------------------------------------

function num(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`peer: ${name}=${JSON.stringify(raw)}: expected a positive number`);
    process.exit(2);
  }
  return v;
}

const settings = {
  host: process.env.PNS_HOST || '127.0.0.1',
  port: num('PNS_PORT', num('PORT', 8080)),
  storeUrl: process.env.PNS_STORE_URL || 'sqlite:///peer.db',
  redisUrl: process.env.PNS_REDIS_URL || null,
  redisChannel: process.env.PNS_REDIS_CHANNEL || 'socket.io',
  // classic: @socket.io/redis-adapter (every node hears everything); sharded: its
  // sharded adapter, subscriptionMode dynamic-private (a channel per room, heard only by
  // the nodes with members in it), and counts sent to the user's room from the creator.
  adapter: process.env.PEER_ADAPTER || 'classic',
  jwtSecret: process.env.PNS_JWT_SECRET || null,
  apiToken: process.env.PNS_API_TOKEN || null,
  ackTimeout: num('PNS_ACK_TIMEOUT', 30) * 1000,
  pingInterval: num('PNS_PING_INTERVAL', 25) * 1000,
  pingTimeout: num('PNS_PING_TIMEOUT', 20) * 1000,
  maxMessageBytes: num('PNS_MAX_MESSAGE_BYTES', 65536),
  maxBodyBytes: num('PNS_MAX_BODY_BYTES', 1048576),
  maxNotificationBytes: num('PNS_MAX_NOTIFICATION_BYTES', 16384),
  allowedOrigins: process.env.PNS_ALLOWED_ORIGINS
    ? process.env.PNS_ALLOWED_ORIGINS.split(',').map(normalizeOrigin).filter(Boolean)
    : null,
  logLevel: (process.env.PNS_LOG_LEVEL || 'INFO').toUpperCase(),
};
if (!settings.jwtSecret) {
  console.error('peer: PNS_JWT_SECRET is required');
  process.exit(2);
}
if (!settings.storeUrl.startsWith('sqlite:///')) {
  console.error('peer: PNS_STORE_URL must be sqlite:///path.db');
  process.exit(2);
}

const LOG_LEVELS = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40 };
const logLevel = LOG_LEVELS[settings.logLevel] ?? 20;
function log(level, ...args) {
  if (LOG_LEVELS[level] >= logLevel) console.error(new Date().toISOString(), level, 'peer:', ...args);
}

function normalizeOrigin(o) {
  return o.trim().replace(/\/+$/, '').toLowerCase();
}

// -- metrics (Prometheus text; the same names PNS exposes) -------------------------------

class Metrics {
  constructor() {
    this.counters = new Map(); // name -> Map(labelsString -> value)
    this.help = new Map();
    this.gauges = { pns_connections: 0 };
  }
  inc(name, labels = '', by = 1) {
    let m = this.counters.get(name);
    if (!m) this.counters.set(name, (m = new Map()));
    m.set(labels, (m.get(labels) || 0) + by);
  }
  render() {
    const out = [];
    for (const [name, v] of Object.entries(this.gauges)) {
      out.push(`# TYPE ${name} gauge`, `${name} ${v}`);
    }
    for (const [name, m] of this.counters) {
      out.push(`# TYPE ${name} counter`);
      for (const [labels, v] of m) out.push(`${name}_total${labels} ${v}`);
    }
    const mem = process.memoryUsage();
    out.push('# TYPE process_resident_memory_bytes gauge', `process_resident_memory_bytes ${mem.rss}`);
    return out.join('\n') + '\n';
  }
}
const metrics = new Metrics();
const opLabel = (op) => `{op="${op}"}`;

// -- store: better-sqlite3, prepared statements, WAL --------------------------------------

const SCHEMA = `
CREATE TABLE IF NOT EXISTS notifications (
    notification_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    notification_data TEXT NOT NULL,
    creation_date TEXT NOT NULL,
    seen_date TEXT
);
CREATE INDEX IF NOT EXISTS ix_notifications_user_seen_created
    ON notifications (user_id, seen_date, creation_date);
CREATE TABLE IF NOT EXISTS pns_users (
    user_id TEXT PRIMARY KEY,
    rev INTEGER NOT NULL
);
`;

class Store {
  constructor(file) {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.db = new Database(file, { timeout: 5000 });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const db = this.db;
    this.sInsert = db.prepare(
      'INSERT INTO notifications (notification_id, user_id, notification_data, creation_date, seen_date)' +
        ' VALUES (?, ?, ?, ?, NULL)',
    );
    this.sBump = db.prepare(
      'INSERT INTO pns_users (user_id, rev) VALUES (?, 1)' +
        ' ON CONFLICT (user_id) DO UPDATE SET rev = rev + 1 RETURNING rev',
    );
    this.sRev = db.prepare('SELECT rev FROM pns_users WHERE user_id = ?').pluck();
    this.sCount = db
      .prepare('SELECT COUNT(*) FROM notifications WHERE user_id = ? AND seen_date IS NULL')
      .pluck();
    this.sList = db.prepare(
      'SELECT notification_id, notification_data, creation_date FROM notifications' +
        ' WHERE user_id = ? AND seen_date IS NULL ORDER BY creation_date, rowid LIMIT ?',
    );
    this.sMark = db.prepare(
      'UPDATE notifications SET seen_date = ? WHERE notification_id = ? AND user_id = ? AND seen_date IS NULL',
    );
    // One transaction each: the record and its rev commit together (BEGIN IMMEDIATE).
    this.txCreate = db.transaction((id, userId, body, createdAt) => {
      this.sInsert.run(id, userId, body, createdAt);
      return this.sBump.get(userId).rev;
    }).immediate;
    this.txMark = db.transaction((userId, ids, seenAt) => {
      let changed = 0;
      for (const id of ids) changed += this.sMark.run(seenAt, id, userId).changes;
      const rev = changed ? this.sBump.get(userId).rev : this.sRev.get(userId) || 0;
      return { changed, rev };
    }).immediate;
    // rev read before the count, in one read transaction (one snapshot).
    this.txUnseen = db.transaction((userId) => {
      const rev = this.sRev.get(userId) || 0;
      const count = this.sCount.get(userId);
      return { count, rev };
    }).deferred;
  }
  create(userId, data) {
    metrics.inc('pns_store_queries', opLabel('create'));
    const id = objectId();
    const now = new Date();
    const rev = this.txCreate(id, userId, JSON.stringify(data), toText(now));
    return { id, createdAt: now, rev };
  }
  unseen(userId) {
    metrics.inc('pns_store_queries', opLabel('unseen'));
    return this.txUnseen(userId);
  }
  listUnseen(userId, limit) {
    metrics.inc('pns_store_queries', opLabel('list_unseen'));
    return this.sList.all(userId, limit);
  }
  markSeen(userId, ids) {
    metrics.inc('pns_store_queries', opLabel('mark_seen'));
    return this.txMark(userId, ids, toText(new Date()));
  }
  close() {
    this.db.close();
  }
}

// Fixed width, always UTC (the same text PNS stores), so ORDER BY is time order.
function toText(d) {
  return d.toISOString().replace('Z', '000+00:00');
}
function isoOut(d) {
  return d.toISOString().replace('Z', '000Z');
}
function isoFromText(t) {
  return t.replace('+00:00', 'Z');
}

// ObjectId-shaped ids (24 hex): 4 bytes seconds, 5 bytes process-random, 3 bytes counter.
const OID_RANDOM = crypto.randomBytes(5).toString('hex');
let oidCounter = crypto.randomInt(0xffffff);
function objectId() {
  oidCounter = (oidCounter + 1) & 0xffffff;
  const secs = Math.floor(Date.now() / 1000).toString(16).padStart(8, '0');
  return secs + OID_RANDOM + oidCounter.toString(16).padStart(6, '0');
}

// -- counts: coalesced per user ---------------------------------------------------------

// Every request for a user's count made during one turn of the event loop is folded
// into one store query at the next setImmediate; "everywhere" wins over "here".
class Counts {
  constructor(io, store) {
    this.io = io;
    this.store = store;
    this.wanted = new Map(); // userId -> everywhere?
    this.scheduled = false;
  }
  hasUser(userId) {
    const room = this.io.of('/').adapter.rooms.get(ROOM_PREFIX + userId);
    return room !== undefined && room.size > 0;
  }
  refresh(userId, everywhere = false) {
    this.wanted.set(userId, this.wanted.get(userId) || everywhere);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }
  flush() {
    this.scheduled = false;
    const wanted = this.wanted;
    this.wanted = new Map();
    for (const [userId, everywhere] of wanted) {
      if (!everywhere && !this.hasUser(userId)) continue;
      let unseen;
      try {
        unseen = this.store.unseen(userId);
      } catch (err) {
        metrics.inc('pns_store_errors', opLabel('unseen'));
        log('WARNING', 'count failed, retrying:', err.message);
        setTimeout(() => this.refresh(userId, everywhere), 200);
        continue;
      }
      this.send(userId, unseen, everywhere);
    }
  }
  send(userId, unseen, everywhere) {
    const payload = { count: unseen.count, rev: unseen.rev };
    const room = ROOM_PREFIX + userId;
    if (everywhere) this.io.to(room).emit(EV_COUNT, payload);
    else this.io.local.to(room).emit(EV_COUNT, payload);
    metrics.inc('pns_counts_sent');
  }
}

// -- server ---------------------------------------------------------------------------------

const store = new Store(settings.storeUrl.slice('sqlite:///'.length));
let stopping = false;

const httpServer = http.createServer((req, res) => {
  handleHttp(req, res).catch((err) => {
    log('ERROR', 'http handler failed', err);
    if (!res.headersSent) sendJson(res, 500, { error: { code: 'internal', message: 'internal error' } });
  });
});
httpServer.keepAliveTimeout = 65000;

const io = new Server(httpServer, {
  serveClient: false,
  pingInterval: settings.pingInterval,
  pingTimeout: settings.pingTimeout,
  maxHttpBufferSize: settings.maxMessageBytes,
  perMessageDeflate: false, // socket.io's default, stated: frames are tiny
  allowRequest: (req, callback) => {
    const origin = req.headers.origin;
    if (!origin) return callback(null, true); // not a browser: judged by credentials alone
    const o = normalizeOrigin(origin);
    if (settings.allowedOrigins) return callback(null, settings.allowedOrigins.includes(o));
    const host = (req.headers.host || '').toLowerCase();
    return callback(null, o === `http://${host}` || o === `https://${host}`);
  },
});
const counts = new Counts(io, store);

// -- authentication (JWT HS256 in auth.token) ---------------------------------------------

function refusal(message, code) {
  const err = new Error(message);
  err.data = { code };
  return err;
}

function idOf(v) {
  if (typeof v === 'string' && v.length > 0) return v;
  if (Number.isInteger(v)) return String(v);
  return null;
}

io.use((socket, next) => {
  if (stopping) {
    metrics.inc('pns_connects', '{outcome="stopping"}');
    return next(refusal('unavailable', 'unavailable'));
  }
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (typeof token !== 'string') {
    metrics.inc('pns_connects', '{outcome="unauthorized"}');
    return next(refusal('unauthorized', 'unauthorized'));
  }
  let claims;
  try {
    claims = jwt.verify(token, settings.jwtSecret, { algorithms: ['HS256'], clockTolerance: 5 });
  } catch (err) {
    metrics.inc('pns_connects', '{outcome="unauthorized"}');
    log('DEBUG', 'jwt refused:', err.name);
    return next(refusal('unauthorized', 'unauthorized'));
  }
  const userId = idOf(claims.sub);
  if (userId === null) {
    metrics.inc('pns_connects', '{outcome="unauthorized"}');
    return next(refusal('unauthorized', 'unauthorized'));
  }
  socket.data.userId = userId;
  socket.data.deviceId =
    idOf(claims.sid) ?? idOf(claims.jti) ?? 'jwt:' + crypto.createHash('sha256').update(token).digest('hex').slice(0, 32);
  next();
});

function errorPayload(code, message) {
  return { ok: false, error: { code, message } };
}

function validateFetch(args) {
  // args: payload-only (no ack) or [payload?]; returns {limit} or throws a message.
  if (args.length > 1) throw new Error('invalid payload: expected at most one argument');
  const payload = args.length ? args[0] : undefined;
  if (payload === undefined || payload === null) return { limit: 50 };
  if (typeof payload !== 'object' || Array.isArray(payload)) throw new Error('invalid payload: expected an object');
  for (const key of Object.keys(payload)) {
    if (key !== 'limit') throw new Error(`invalid payload: ${key}: Unknown field.`);
  }
  if (payload.limit === undefined) return { limit: 50 };
  const l = payload.limit;
  if (!Number.isInteger(l)) throw new Error('invalid payload: limit: Not a valid integer.');
  if (l < 1 || l > 100) throw new Error('invalid payload: limit: Must be greater than or equal to 1 and less than or equal to 100.');
  return { limit: l };
}

io.on('connection', (socket) => {
  const userId = socket.data.userId;
  metrics.inc('pns_connects', '{outcome="accepted"}');
  metrics.gauges.pns_connections += 1;
  socket.join(ROOM_PREFIX + userId);
  // The CONNECT packet is already written; the count is the first event.
  counts.refresh(userId);

  let fetching = false;
  let pending = null; // the ack waiter of the batch in flight

  socket.on(EV_FETCH, (...args) => {
    const cb = typeof args[args.length - 1] === 'function' ? args.pop() : () => {};
    let request;
    try {
      request = validateFetch(args);
    } catch (err) {
      metrics.inc('pns_fetches', '{outcome="invalid_request"}');
      return cb(errorPayload('invalid_request', err.message));
    }
    if (fetching) {
      metrics.inc('pns_fetches', '{outcome="rate_limited"}');
      return cb(errorPayload('rate_limited', 'a fetch is already in progress on this connection'));
    }
    let rows;
    try {
      rows = store.listUnseen(userId, request.limit + 1);
    } catch (err) {
      metrics.inc('pns_fetches', '{outcome="unavailable"}');
      return cb(errorPayload('unavailable', 'the notification store is unavailable'));
    }
    const hasMore = rows.length > request.limit;
    if (hasMore) rows.length = request.limit;
    if (rows.length === 0) {
      metrics.inc('pns_fetches', '{outcome="ok"}');
      return cb({ ok: true, delivered: 0, has_more: false });
    }
    const ids = rows.map((r) => r.notification_id);
    const batch = {
      notifications: rows.map((r) => ({
        id: r.notification_id,
        data: JSON.parse(r.notification_data),
        created_at: isoFromText(r.creation_date),
      })),
      has_more: hasMore,
    };
    fetching = true;
    const done = (answer, outcome) => {
      fetching = false;
      pending = null;
      metrics.inc('pns_fetches', `{outcome="${outcome}"}`);
      if (answer) cb(answer);
    };
    pending = done;
    socket.timeout(settings.ackTimeout).emit(EV_BATCH, batch, (err, ...ackArgs) => {
      if (pending !== done) return; // disconnected meanwhile: nothing is marked
      if (err) return done(errorPayload('timeout', 'no acknowledgement of new-notifications in time'), 'timeout');
      let accepted;
      const ack = ackArgs.length ? ackArgs[0] : null;
      if (ackArgs.length > 1) {
        return done(errorPayload('invalid_request', 'invalid acknowledgement'), 'invalid_request');
      } else if (ack === null || ack === undefined) {
        accepted = ids;
      } else if (
        typeof ack === 'object' && !Array.isArray(ack) && Object.keys(ack).length === 1 &&
        Array.isArray(ack.received) && ack.received.every((x) => typeof x === 'string')
      ) {
        const inBatch = new Set(ids);
        accepted = [...new Set(ack.received)].filter((x) => inBatch.has(x));
      } else {
        return done(errorPayload('invalid_request', 'invalid acknowledgement: expected nothing or {"received": [ids]}'), 'invalid_request');
      }
      if (accepted.length === 0) return done({ ok: true, delivered: 0, has_more: hasMore }, 'ok');
      let marked;
      try {
        marked = store.markSeen(userId, accepted);
      } catch (e) {
        return done(errorPayload('unavailable', 'the notification store is unavailable'), 'unavailable');
      }
      if (marked.changed) {
        metrics.inc('pns_notifications_seen', '', marked.changed);
        // Count once here, emit to every device of the user on every node.
        counts.refresh(userId, true);
      }
      done({ ok: true, delivered: marked.changed, has_more: hasMore }, 'ok');
    });
  });

  socket.onAny((event, ...args) => {
    if (event === EV_FETCH) return;
    const cb = args[args.length - 1];
    if (typeof cb === 'function') {
      cb(errorPayload('invalid_request', `unknown event '${String(event).slice(0, 64)}'`));
    }
  });

  socket.on('disconnect', () => {
    metrics.gauges.pns_connections -= 1;
    if (pending) {
      const p = pending;
      pending = null;
      fetching = false;
      metrics.inc('pns_fetches', '{outcome="client_gone"}');
      void p; // the client is gone: nobody to answer, nothing marked
    }
  });
});

// Signals from other nodes: a notification was created for this user.
function onSignal(msg) {
  const userId = msg && idOf(msg.user_id);
  if (!userId) return;
  const here = counts.hasUser(userId);
  metrics.inc('pns_signals', here ? '{handled="yes"}' : '{handled="no"}');
  if (here) counts.refresh(userId);
}
io.on(EV_SIGNAL, onSignal); // serverSideEmit from the other nodes

// -- HTTP: API, health, metrics -----------------------------------------------------------------

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function apiError(res, status, code, message, fields) {
  const body = { error: { code, message } };
  if (fields) body.error.fields = fields;
  metrics.inc('pns_http_requests', `{status="${status}"}`);
  sendJson(res, status, body);
}

const apiTokenBuf = settings.apiToken ? Buffer.from(settings.apiToken) : null;
function authorized(req) {
  const header = req.headers.authorization || '';
  const i = header.indexOf(' ');
  if (i < 0 || header.slice(0, i).toLowerCase() !== 'bearer') return false;
  const presented = Buffer.from(header.slice(i + 1).trim());
  // Constant time when the lengths match (a hash keeps it constant otherwise).
  const a = crypto.createHash('sha256').update(presented).digest();
  const b = crypto.createHash('sha256').update(apiTokenBuf).digest();
  return crypto.timingSafeEqual(a, b);
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(Object.assign(new Error('too large'), { tooLarge: true }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function createNotification(req, res) {
  if (!apiTokenBuf) return apiError(res, 404, 'not_found', 'the HTTP API is off on this node: set PNS_API_TOKEN to enable it');
  if (!authorized(req)) return apiError(res, 401, 'unauthorized', 'missing or wrong API token');
  const ctype = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (!(ctype === 'application/json' || (ctype.startsWith('application/') && ctype.endsWith('+json')))) {
    return apiError(res, 415, 'unsupported_media_type', 'expected a JSON body (Content-Type: application/json)');
  }
  const declared = Number(req.headers['content-length']);
  if (declared > settings.maxBodyBytes) return apiError(res, 413, 'too_large', `request body over ${settings.maxBodyBytes} bytes`);
  let raw;
  try {
    raw = await readBody(req, settings.maxBodyBytes);
  } catch (err) {
    if (err.tooLarge) return apiError(res, 413, 'too_large', `request body over ${settings.maxBodyBytes} bytes`);
    throw err;
  }
  let body;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    return apiError(res, 400, 'invalid_request', 'malformed JSON body');
  }
  const fields = {};
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return apiError(res, 400, 'invalid_request', 'invalid body: expected an object', { _schema: ['Invalid input type.'] });
  }
  for (const key of Object.keys(body)) if (key !== 'user_id' && key !== 'data') fields[key] = ['Unknown field.'];
  let userId = body.user_id;
  if (Number.isInteger(userId)) userId = String(userId);
  if (userId === undefined) fields.user_id = ['Missing data for required field.'];
  else if (typeof userId !== 'string' || !userId.trim()) fields.user_id = ['Not a valid user id: expected a non-empty string or an integer.'];
  else if (userId.length > 256) fields.user_id = ['Longer than 256 characters.'];
  const data = body.data;
  if (data === undefined) fields.data = ['Missing data for required field.'];
  else if (data === null || typeof data !== 'object' || Array.isArray(data)) fields.data = ['Not a valid mapping type.'];
  if (Object.keys(fields).length) {
    const first = Object.keys(fields)[0];
    return apiError(res, 400, 'invalid_request', `invalid body: ${first}: ${fields[first][0]}`, fields);
  }
  const dataText = JSON.stringify(data);
  if (Buffer.byteLength(dataText) > settings.maxNotificationBytes) {
    return apiError(res, 400, 'invalid_request', `invalid body: data: over the limit of ${settings.maxNotificationBytes}`, {
      data: [`Over the limit of ${settings.maxNotificationBytes} bytes.`],
    });
  }
  let created;
  try {
    created = store.create(userId, data);
  } catch (err) {
    log('WARNING', 'create failed:', err.message);
    return apiError(res, 503, 'unavailable', 'the notification store is unavailable');
  }
  metrics.inc('pns_notifications_created');
  if (settings.redisUrl && settings.adapter === 'sharded') {
    // One count, read here, to the user's room: only nodes holding the user hear it.
    counts.refresh(userId, true);
  } else {
    // Signal: this node counts for its own devices now; the others through the adapter.
    onSignal({ user_id: userId });
    if (settings.redisUrl) io.serverSideEmit(EV_SIGNAL, { user_id: userId, notification_id: created.id });
  }
  metrics.inc('pns_http_requests', '{status="201"}');
  sendJson(res, 201, { id: created.id, created_at: isoOut(created.createdAt) });
}

async function handleHttp(req, res) {
  const url = req.url.split('?')[0];
  if (url === '/api/v1/notifications') {
    if (req.method !== 'POST') return apiError(res, 405, 'http_error', 'Method Not Allowed');
    return createNotification(req, res);
  }
  if (req.method === 'GET' && url === '/healthz') return sendJson(res, 200, { status: 'ok' });
  if (req.method === 'GET' && url === '/readyz') {
    let storeUp = 'up';
    try {
      store.db.prepare('SELECT 1').get();
    } catch {
      storeUp = 'down';
    }
    const ready = storeUp === 'up' && !stopping;
    return sendJson(res, ready ? 200 : 503, {
      status: ready ? 'ready' : 'unavailable',
      store: storeUp,
      broker: settings.redisUrl ? 'up' : 'embedded',
      stopping,
      connections: metrics.gauges.pns_connections,
    });
  }
  if (req.method === 'GET' && url === '/metrics') {
    const text = metrics.render();
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
    return res.end(text);
  }
  if (url.startsWith('/socket.io/')) return; // socket.io's own listener answers
  sendJson(res, 404, { error: { code: 'not_found', message: 'not found' } });
}

// -- start, stop ------------------------------------------------------------------------------

async function main() {
  let pub = null;
  let sub = null;
  if (settings.redisUrl) {
    const { createClient, createCluster } = require('redis');
    const { createAdapter, createShardedAdapter } = require('@socket.io/redis-adapter');
    if (settings.redisUrl.startsWith('redis+cluster://')) {
      // redis+cluster://h:p,h:p (PNS's form): node-redis's cluster client; the sharded
      // adapter's SPUBLISH/SSUBSCRIBE follow each room's slot to its shard.
      if (settings.adapter !== 'sharded') throw new Error('a Redis Cluster needs PEER_ADAPTER=sharded');
      const seeds = settings.redisUrl.slice('redis+cluster://'.length).split('/')[0].split(',');
      pub = createCluster({ rootNodes: seeds.map((hostPort) => ({ url: `redis://${hostPort}` })) });
    } else {
      pub = createClient({ url: settings.redisUrl });
    }
    sub = pub.duplicate();
    for (const c of [pub, sub]) c.on('error', (err) => log('WARNING', 'redis:', err.message));
    await Promise.all([pub.connect(), sub.connect()]);
    if (settings.adapter === 'sharded') {
      io.adapter(
        createShardedAdapter(pub, sub, {
          channelPrefix: settings.redisChannel,
          subscriptionMode: 'dynamic-private',
        }),
      );
    } else {
      io.adapter(createAdapter(pub, sub, { key: settings.redisChannel }));
    }
  }
  httpServer.listen(settings.port, settings.host, 511, () => {
    console.log(`peer listening on http://${settings.host}:${settings.port}`);
  });

  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    const sockets = await io.local.fetchSockets();
    for (const s of sockets) {
      s.emit(EV_DISCONNECT, { code: 'shutdown', reconnect: true });
      s.disconnect(true);
    }
    io.close();
    const hard = setTimeout(() => process.exit(0), 5000);
    hard.unref();
    httpServer.close(() => {
      try {
        store.close();
      } catch {}
      Promise.allSettled([pub && pub.quit(), sub && sub.quit()]).finally(() => process.exit(0));
    });
    httpServer.closeAllConnections();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((err) => {
  console.error('peer: cannot start:', err);
  process.exit(1);
});
