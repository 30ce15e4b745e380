'use strict';
// One load-generator process: many simulated devices, each a lean Socket.IO v5 /
// Engine.IO v4 client over a real WebSocket (the `ws` package), plus an open-loop
// HTTP publisher for the users it holds.
//
// Driven by bench/run.py over stdin/stdout, one JSON object per line:
//   -> {"id": 1, "cmd": "connect", ...}      <- {"id": 1, "ok": true, ...}
//   <- {"event": "progress", ...}             (unsolicited, while connecting)
// Every run is bounded: each command has its own deadline, and the process exits when
// stdin closes or after --max-seconds.
//
// Why a lean client instead of socket.io-client: socket.io-client keeps a Manager, a
// reconnection timer and an engine per socket; at 19,000 sockets per process that is
// the load generator's CPU, not the server's. The wire format is the same (EIO=4,
// transport=websocket, "40{auth}" CONNECT, "42[...]" events, "43<id>[...]" acks).

const http = require('node:http');
const crypto = require('node:crypto');
const readline = require('node:readline');
const { performance } = require('node:perf_hooks');
const WebSocket = require('ws');
const { Hist } = require('./hist');

const now = () => performance.now(); // ms, monotonic, sub-ms; one clock per process
const wallNow = () => performance.timeOrigin + performance.now(); // ms since epoch

const maxSeconds = Number((process.argv.find((a) => a.startsWith('--max-seconds=')) || '=3600').split('=')[1]);
setTimeout(() => {
  process.stderr.write('loadgen worker: --max-seconds reached, exiting\n');
  process.exit(3);
}, maxSeconds * 1000).unref();

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// -- JWT (HS256), signed here so the server verifies a real token per device ----------------

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const JWT_HEADER = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
function signJwt(secret, claims) {
  const body = JWT_HEADER + '.' + b64url(JSON.stringify(claims));
  return body + '.' + crypto.createHmac('sha256', secret).update(body).digest('base64url');
}

// -- devices ----------------------------------------------------------------------------------

const EV_COUNT = 'new-notifications-count';
const EV_BATCH = 'new-notifications';
const EV_FETCH = 'get-new-notifications';

const S_IDLE = 0, S_CONNECTING = 1, S_READY = 2, S_CLOSED = 3;

const state = {
  devices: [], // Device
  users: new Map(), // userId -> User
  secret: null,
  reconnect: false,
  storm: null, // {t0, backAt: Map device -> time} while a storm is watched
  fanout: null, // current post phase
  fetch: null, // current fetch phase
  errors: new Map(), // kind -> count
  connectHist: new Hist(),
  connectInFlight: 0,
  connectQueue: [],
  connectConcurrency: 100,
  readyCount: 0,
};

function noteError(kind) {
  state.errors.set(kind, (state.errors.get(kind) || 0) + 1);
}

class User {
  constructor(id) {
    this.id = id;
    this.devices = [];
    this.posts = []; // send times (now()) of this phase's posts, in send order
    this.okPosts = 0; // posts answered 201, ever
    this.expected = null; // the true unseen count, as far as this process knows
    this.ackWaits = []; // [{t, rev}] fetch phase: acks waiting for the other device's count
  }
}

class Device {
  constructor(user, index, target, localAddress) {
    this.user = user;
    this.index = index;
    this.target = target; // {host, port}
    this.localAddress = localAddress;
    this.ws = null;
    this.st = S_IDLE;
    this.kept = null; // {count, rev}: highest rev on the current connection wins
    this.base = 0; // kept.count at the start of a post phase
    this.cursor = 0; // post phase: how many of the user's posts this device has seen
    this.tStart = 0;
    this.attempt = 0;
    this.ackId = 0;
    this.acks = null; // Map id -> fn, created on first use
    this.fetching = false;
    this.wantClose = false;
    this.awaitRev = -1; // fetch phase: fetch again once a count with a higher rev arrived
    this.lastAckRev = -1;
  }

  connect() {
    this.st = S_CONNECTING;
    this.kept = null;
    this.tStart = now();
    const { host, port } = this.target;
    let ws;
    try {
      ws = new WebSocket(`ws://${host}:${port}/socket.io/?EIO=4&transport=websocket`, {
        localAddress: this.localAddress,
        handshakeTimeout: 30000,
        perMessageDeflate: state.offerDeflate, // browsers always offer it; the server decides
        maxPayload: 1 << 20,
        headers: state.cookie ? { Cookie: state.cookie } : undefined,
      });
    } catch (err) {
      noteError('ws_ctor:' + err.code);
      return this.onClosed();
    }
    this.ws = ws;
    ws.on('message', (data) => this.onMessage(data.toString()));
    ws.on('error', (err) => noteError('ws:' + (err.code || err.message.slice(0, 40))));
    ws.on('close', () => this.onClosed());
  }

  onClosed() {
    const wasConnecting = this.st === S_CONNECTING;
    if (this.st === S_READY) state.readyCount--;
    this.st = S_CLOSED;
    this.ws = null;
    this.fetching = false;
    if (this.acks) {
      for (const fn of this.acks.values()) fn(null, true);
      this.acks = null;
    }
    if (wasConnecting) connectSlotDone(this, false);
    if (state.reconnect && !this.wantClose) {
      // socket.io-client's policy: 1 s doubling to 5 s, randomized by ±50 %.
      const delay = Math.min(5000, 1000 * 2 ** Math.min(this.attempt, 3)) * (0.5 + Math.random());
      this.attempt++;
      setTimeout(() => {
        if (!this.wantClose && state.reconnect) this.connect();
      }, delay);
    }
  }

  sendRaw(text) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  onMessage(text) {
    const eio = text.charCodeAt(0);
    if (eio === 0x32 /* '2' ping */) return this.sendRaw('3');
    if (eio === 0x30 /* '0' open */) {
      this.sendRaw('40' + JSON.stringify({ token: this.token() }));
      return;
    }
    if (eio === 0x31 /* '1' close */) return;
    if (eio !== 0x34 /* '4' message */) return;
    const sio = text.charCodeAt(1);
    if (sio === 0x32 /* '2' event */) {
      let i = 2;
      let ackId = -1;
      while (i < text.length && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++;
      if (i > 2) ackId = Number(text.slice(2, i));
      const arr = JSON.parse(text.slice(i));
      return this.onEvent(arr[0], arr[1], ackId);
    }
    if (sio === 0x33 /* '3' ack */) {
      let i = 2;
      while (i < text.length && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++;
      const id = Number(text.slice(2, i));
      const fn = this.acks && this.acks.get(id);
      if (fn) {
        this.acks.delete(id);
        fn(JSON.parse(text.slice(i)), false);
      }
      return;
    }
    if (sio === 0x30 /* '0' connect */) {
      this.st = S_READY;
      this.attempt = 0;
      state.readyCount++;
      return;
    }
    if (sio === 0x34 /* '4' connect_error */) {
      let code = 'unknown';
      try {
        code = JSON.parse(text.slice(2)).data.code;
      } catch {}
      noteError('connect_error:' + code);
      if (this.ws) this.ws.close();
    }
  }

  token() {
    const t = Math.floor(Date.now() / 1000);
    return signJwt(state.secret, { sub: this.user.id, sid: `${this.user.id}-${this.index}`, iat: t, exp: t + 6 * 3600 });
  }

  onEvent(name, payload, ackId) {
    if (name === EV_COUNT) return this.onCount(payload);
    if (name === EV_BATCH) return this.onBatch(payload, ackId);
    if (name === 'pns:disconnect') return;
    noteError('unexpected_event:' + String(name).slice(0, 32));
  }

  onCount(c) {
    const t = now();
    const first = this.kept === null;
    // The rev rule: the highest rev wins; an equal rev replaces the kept value.
    if (!first && c.rev < this.kept.rev) return;
    this.kept = { count: c.count, rev: c.rev };
    const user = this.user;
    if (first) {
      state.connectHist.add(t - this.tStart);
      if (user.expected === null) user.expected = c.count;
      if (this.pendingSlot) connectSlotDone(this, true);
    }
    if (state.storm && c.count === user.expected && !state.storm.backAt.has(this)) {
      state.storm.backAt.set(this, wallNow());
    }
    const f = state.fanout;
    if (f && f.users.has(user)) {
      // Post k (1-based, in send order) has reached this device once count - base >= k.
      const reached = Math.min(c.count - this.base, user.posts.length);
      while (this.cursor < reached) {
        f.hist.add(t - user.posts[this.cursor]);
        f.delivered++;
        this.cursor++;
      }
    }
    const fe = state.fetch;
    if (fe) {
      if (this.index !== fe.fetcherIndex && user.ackWaits.length) {
        // The first count on another device with a rev above every rev known when the
        // fetcher acknowledged: the count that dropped after the ack.
        while (user.ackWaits.length && c.rev > user.ackWaits[0].rev) {
          fe.ackHist.add(t - user.ackWaits.shift().t);
        }
      }
      if (this.index === fe.fetcherIndex) this.maybeFetch();
    }
  }

  emitWithAck(event, payload, fn) {
    if (!this.acks) this.acks = new Map();
    const id = this.ackId++;
    this.acks.set(id, fn);
    this.sendRaw('42' + id + JSON.stringify([event, payload]));
  }

  maybeFetch() {
    const fe = state.fetch;
    if (fe && fe.running && this.user.fetcher && !this.fetching && this.st === S_READY && this.kept && this.kept.count > 0 && this.kept.rev > this.awaitRev) this.fetch();
  }

  fetch() {
    const fe = state.fetch;
    this.fetching = true;
    fe.requests++;
    const t0 = now();
    this.emitWithAck(EV_FETCH, { limit: fe.limit }, (answer, gone) => {
      this.fetching = false;
      if (gone) return;
      fe.answerHist.add(now() - t0);
      const a = answer && answer[0];
      if (a && a.ok) {
        fe.delivered += a.delivered;
        if (a.delivered === 0) fe.empty++;
        // Fetch again once the badge is fresh: a count newer than every rev known when
        // this batch was acknowledged (or, after an empty answer, any newer count).
        this.awaitRev = a.delivered > 0 ? this.lastAckRev : this.kept ? this.kept.rev : -1;
      } else {
        noteError('fetch:' + (a && a.error ? a.error.code : 'bad_answer'));
        this.awaitRev = this.kept ? this.kept.rev : -1;
      }
      this.maybeFetch();
    });
  }

  onBatch(batch, ackId) {
    const fe = state.fetch;
    const user = this.user;
    if (fe) {
      let maxRev = 0;
      for (const d of user.devices) if (d.kept && d.kept.rev > maxRev) maxRev = d.kept.rev;
      user.ackWaits.push({ t: now(), rev: maxRev });
      this.lastAckRev = maxRev;
      fe.batches++;
      fe.notifications += batch.notifications.length;
    }
    if (ackId >= 0) this.sendRaw('43' + ackId + '[]'); // accept the whole batch
  }

  close() {
    this.wantClose = true;
    if (this.ws) this.ws.terminate();
  }
}

// -- connecting, with a bounded number in flight --------------------------------------------

function connectSlotDone(dev, ok) {
  if (!dev.pendingSlot) return;
  const slot = dev.pendingSlot;
  dev.pendingSlot = null;
  state.connectInFlight--;
  slot.done(ok);
  pumpConnects();
}

function pumpConnects() {
  while (state.connectInFlight < state.connectConcurrency && state.connectQueue.length) {
    const { dev, slot } = state.connectQueue.shift();
    state.connectInFlight++;
    dev.pendingSlot = slot;
    dev.connect();
  }
}

// A Cookie header of about `bytes` bytes, shaped like a browser's on an application's
// domain: a session, a CSRF token, preferences, analytics ids. Random, so no server can
// share one copy between connections.
function cookieOf(bytes) {
  if (!bytes) return null;
  const names = ['session', 'csrftoken', 'prefs', '_ga', '_gid', 'ajs_anonymous_id', '_fbp'];
  const parts = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const name = names[i % names.length] + (i >= names.length ? String(i) : '');
    const value = crypto.randomBytes(96).toString('base64url');
    const part = `${name}=${value}`;
    parts.push(part);
    size += part.length + 2;
  }
  return parts.join('; ').slice(0, bytes);
}

async function cmdConnect(msg) {
  state.secret = msg.secret;
  state.offerDeflate = msg.offer_deflate !== false;
  state.cookie = cookieOf(msg.cookie_bytes || 0);
  state.connectConcurrency = msg.concurrency || 100;
  state.reconnect = !!msg.reconnect;
  const targets = msg.targets; // device index d goes to targets[d % targets.length]
  const addrs = msg.local_addresses || [undefined];
  const perUser = msg.per_user;
  const created = [];
  let a = 0;
  for (let u = msg.users[0]; u < msg.users[1]; u++) {
    const id = String(u);
    let user = state.users.get(id);
    if (!user) state.users.set(id, (user = new User(id)));
    for (let d = 0; d < perUser; d++) {
      const idx = user.devices.length;
      const dev = new Device(user, idx, targets[((msg.placement_offset || 0) + idx) % targets.length], addrs[a++ % addrs.length]);
      user.devices.push(dev);
      state.devices.push(dev);
      created.push(dev);
    }
  }
  state.connectHist = new Hist();
  const t0 = wallNow();
  let ok = 0, failed = 0, firstOk = null, lastOk = null;
  const deadline = Date.now() + (msg.timeout_s || 120) * 1000;
  await new Promise((resolve) => {
    let remaining = created.length;
    const progress = setInterval(() => send({ event: 'progress', ready: ok, failed, t: wallNow() }), msg.progress_ms || 250);
    const finish = () => {
      clearInterval(progress);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(finish, deadline - Date.now());
    if (remaining === 0) return finish();
    for (const dev of created) {
      state.connectQueue.push({
        dev,
        slot: {
          done(success) {
            const t = wallNow();
            if (success) {
              ok++;
              if (firstOk === null) firstOk = t;
              lastOk = t;
            } else failed++;
            if (--remaining === 0) finish();
          },
        },
      });
    }
    pumpConnects();
  });
  // Devices whose connection failed keep retrying only when reconnect is on.
  return {
    ok: true, ready: ok, failed, t0, first_ready: firstOk, last_ready: lastOk,
    connect_hist: state.connectHist.toJSON(), errors: Object.fromEntries(state.errors),
  };
}

// -- the HTTP publisher (open loop) -----------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 256, scheduling: 'fifo' });

function postNotification(target, token, userId, seq, cb) {
  const body = JSON.stringify({ user_id: userId, data: { kind: 'bench', seq, sent_at: wallNow() } });
  const req = http.request(
    {
      host: target.host, port: target.port, path: '/api/v1/notifications', method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Authorization: `Bearer ${token}` },
      timeout: 30000,
    },
    (res) => {
      res.resume();
      res.on('end', () => cb(res.statusCode === 201 ? null : 'http_' + res.statusCode));
    },
  );
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (err) => cb('post:' + (err.code || err.message.slice(0, 30))));
  req.end(body);
}

async function cmdPost(msg) {
  // Open loop: post k is due at t0 + k / rate, whatever the answers do; latency of a
  // delivery runs from the moment that post's request is issued (same clock as arrival).
  const users = selectUsers(msg.user_range);
  if (users.length === 0 || !(msg.rate > 0)) {
    return { ok: true, sent: 0, http_ok: 0, inflight_left: 0, elapsed_send_s: 0, delivered: 0, expected: 0,
      latency: new Hist().toJSON(), http: new Hist().toJSON(), lag: new Hist().toJSON(), errors: {} };
  }
  const watch = msg.watch !== false;
  const targets = msg.targets;
  const f = {
    users: new Set(watch ? users : []), hist: new Hist(), delivered: 0, expected: 0,
    httpHist: new Hist(), lagHist: new Hist(), sent: 0, ok: 0, errors: new Map(),
  };
  for (const user of users) {
    user.posts = [];
    for (const d of user.devices) {
      d.base = d.kept ? d.kept.count : 0;
      d.cursor = 0;
    }
  }
  if (watch) state.fanout = f;
  const rate = msg.rate;
  const total = Math.max(1, Math.round(rate * msg.duration_s));
  const t0 = now();
  let inflight = 0;
  let ui = msg.user_offset || 0;
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor((now() - t0) * rate / 1000) + 1);
      while (f.sent < due) {
        const scheduled = t0 + (f.sent * 1000) / rate;
        const user = users[ui++ % users.length];
        const seq = f.sent++;
        const target = targets[seq % targets.length];
        const tIssue = now();
        f.lagHist.add(tIssue - scheduled);
        user.posts.push(tIssue);
        inflight++;
        postNotification(target, msg.api_token, user.id, seq, (err) => {
          inflight--;
          f.httpHist.add(now() - tIssue);
          if (err) f.errors.set(err, (f.errors.get(err) || 0) + 1);
          else {
            f.ok++;
            user.okPosts++;
            if (user.expected !== null) user.expected++;
          }
        });
      }
      if (f.sent >= total) return resolve();
      // Sleep until the next post is due (at least 1 ms, at most 10 ms): few wake-ups at
      // low rates, posts sent in small groups at high ones.
      const nextDue = t0 + (f.sent * 1000) / rate;
      setTimeout(tick, Math.max(1, Math.min(10, nextDue - now())));
    };
    tick();
  });
  const tSent = now();
  // Wait for the answers and the deliveries (bounded by grace_s).
  const graceEnd = tSent + (msg.grace_s || 3) * 1000;
  const devicesPerUser = (u) => u.devices.filter((d) => d.st === S_READY).length;
  f.expected = watch ? users.reduce((n, u) => n + u.posts.length * devicesPerUser(u), 0) : 0;
  while (now() < graceEnd && (inflight > 0 || (watch && f.delivered < f.expected))) {
    await new Promise((r) => setTimeout(r, 20));
  }
  if (watch) state.fanout = null;
  return {
    ok: true, sent: f.sent, http_ok: f.ok, inflight_left: inflight, elapsed_send_s: (tSent - t0) / 1000,
    delivered: f.delivered, expected: f.expected, latency: f.hist.toJSON(), http: f.httpHist.toJSON(),
    lag: f.lagHist.toJSON(), errors: Object.fromEntries(f.errors),
  };
}

function selectUsers(range) {
  // [lo, hi): the users of that id range this process holds; none given: all of them.
  if (!range) return [...state.users.values()];
  const out = [];
  for (let u = range[0]; u < range[1]; u++) {
    const user = state.users.get(String(u));
    if (user) out.push(user);
  }
  return out;
}

// -- fetch and acknowledge --------------------------------------------------------------------

async function cmdFetch(msg) {
  const fe = {
    running: true, limit: msg.limit || 1, fetcherIndex: msg.fetcher_index || 0, requests: 0,
    delivered: 0, empty: 0, batches: 0, notifications: 0, ackHist: new Hist(), answerHist: new Hist(),
  };
  const fetchUsers = selectUsers(msg.user_range);
  for (const u of state.users.values()) u.ackWaits = [];
  state.fetch = fe;
  const t0 = now();
  for (const u of fetchUsers) {
    const d = u.devices[fe.fetcherIndex];
    u.fetcher = true;
    if (d) {
      d.awaitRev = -1;
      d.maybeFetch();
    }
  }
  await new Promise((r) => setTimeout(r, msg.duration_s * 1000));
  fe.running = false;
  for (const u of fetchUsers) u.fetcher = false;
  const elapsed = (now() - t0) / 1000;
  const delivered = fe.delivered;
  await new Promise((r) => setTimeout(r, (msg.grace_s || 1) * 1000)); // late other-device counts
  state.fetch = null;
  let waiting = 0;
  for (const u of fetchUsers) waiting += u.ackWaits.length;
  return {
    ok: true, elapsed_s: elapsed, requests: fe.requests, delivered, empty: fe.empty, batches: fe.batches,
    notifications: fe.notifications, ack_to_other: fe.ackHist.toJSON(), answer: fe.answerHist.toJSON(),
    ack_waits_unmatched: waiting, errors: Object.fromEntries(state.errors),
  };
}

// -- storm: who is back with the right count --------------------------------------------------

function cmdStormWatch(msg) {
  state.reconnect = true;
  state.storm = { t0: wallNow(), backAt: new Map() };
  return { ok: true };
}

async function cmdStormWait(msg) {
  const storm = state.storm;
  const deadline = Date.now() + msg.timeout_s * 1000;
  const total = state.devices.length;
  while (Date.now() < deadline && storm.backAt.size < total) {
    await new Promise((r) => setTimeout(r, 50));
  }
  state.storm = null;
  const times = [...storm.backAt.values()].sort((a, b) => a - b);
  let wrong = 0, missing = 0;
  for (const d of state.devices) {
    if (!storm.backAt.has(d)) {
      if (d.st === S_READY) wrong++;
      else missing++;
    }
  }
  return { ok: true, devices: total, back: times.length, wrong, missing, first_back: times[0] ?? null, last_back: times[times.length - 1] ?? null, back_times: sampleSorted(times, 200), errors: Object.fromEntries(state.errors) };
}

function sampleSorted(arr, n) {
  if (arr.length <= n) return arr;
  const out = [];
  for (let i = 0; i < n; i++) out.push(arr[Math.floor((i * (arr.length - 1)) / (n - 1))]);
  return out;
}

// -- status, close --------------------------------------------------------------------------

function cmdStatus() {
  let ready = 0, right = 0, wrong = 0;
  for (const d of state.devices) {
    if (d.st !== S_READY || !d.kept) continue;
    ready++;
    if (d.kept.count === d.user.expected) right++;
    else wrong++;
  }
  const cpu = process.cpuUsage();
  return { ok: true, devices: state.devices.length, ready, right, wrong, rss: process.memoryUsage().rss, cpu_user_us: cpu.user, cpu_system_us: cpu.system, errors: Object.fromEntries(state.errors) };
}

async function cmdClose(msg) {
  state.reconnect = false;
  for (const d of state.devices) d.close();
  const deadline = Date.now() + (msg.timeout_s || 10) * 1000;
  while (Date.now() < deadline && state.devices.some((d) => d.st !== S_CLOSED && d.st !== S_IDLE)) {
    await new Promise((r) => setTimeout(r, 20));
  }
  state.devices = [];
  state.users = new Map();
  state.errors = new Map();
  return { ok: true };
}

function cmdSetReconnect(msg) {
  state.reconnect = !!msg.on;
  return { ok: true };
}

const COMMANDS = {
  connect: cmdConnect, post: cmdPost, fetch: cmdFetch, storm_watch: cmdStormWatch, storm_wait: cmdStormWait,
  status: cmdStatus, close: cmdClose, set_reconnect: cmdSetReconnect,
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    return send({ event: 'error', message: 'bad command line' });
  }
  const fn = COMMANDS[msg.cmd];
  if (!fn) return send({ id: msg.id, ok: false, error: 'unknown command ' + msg.cmd });
  try {
    const result = await fn(msg);
    send({ id: msg.id, ...result });
  } catch (err) {
    send({ id: msg.id, ok: false, error: String(err && err.stack ? err.stack : err) });
  }
});
rl.on('close', () => process.exit(0));
send({ event: 'hello', pid: process.pid });
