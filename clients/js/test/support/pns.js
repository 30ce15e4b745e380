// Real parts for the client tests: `pns serve` nodes, a redis-server, and an
// application emitting through python-socketio's write-only Redis manager.
// Every process is started here and stopped by its pid (never by name).
import { spawn, spawnSync } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const PNS_BIN = path.resolve(packageDir, process.env.PNS_BIN || "../../.venv/bin/pns");
export const JWT_SECRET = "client-test-secret-0123456789abcdef0123";

const children = new Set();
process.on("exit", () => {
  // Last resort if a test crashed before its after() hook: leave no node behind.
  for (const child of children) {
    try {
      process.kill(child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

/** Poll `check` until it returns a truthy value; reject with `message` after `timeout` ms. */
export async function waitFor(check, { timeout = 10000, interval = 25, message = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** Resolve when `register(callback)` calls back with a value passing `test`; reject after `timeout` ms. */
export function nextValue(register, test = () => true, { timeout = 10000, message = "event" } = {}) {
  return new Promise((resolve, reject) => {
    let unsubscribe = () => {};
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`timed out after ${timeout} ms waiting for ${message}`));
    }, timeout);
    unsubscribe = register((value) => {
      if (!test(value)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(value);
    });
  });
}

/** Resolve once the client's kept count is `expected` (at once if it already is). */
export function countIs(client, expected, timeout = 10000) {
  if (client.count === expected) return Promise.resolve(expected);
  return nextValue((fn) => client.onCount(fn), (count) => count === expected, {
    timeout,
    message: `count ${expected} (kept: ${client.count})`,
  });
}

/** Resolve once the client is in `expected` state (at once if it already is). */
export function stateIs(client, expected, timeout = 10000) {
  if (client.state === expected) return Promise.resolve(expected);
  return nextValue((fn) => client.onConnectionChange(fn), (state) => state === expected, {
    timeout,
    message: `state ${expected} (now: ${client.state})`,
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix = "pns-js-") {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

function baseEnv() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith("PNS_")) env[key] = value;
  return env;
}

async function untilExit(child, timeout) {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeout);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * A `pns serve` child process on 127.0.0.1. `env` adds PNS_* variables (demo
 * mode unless `demo: false`). stop() sends SIGTERM to its pid (SIGKILL after
 * 10 s); start() again reuses the port and the store.
 */
export class PnsNode {
  constructor({ port, storeUrl, env = {}, demo = true } = {}) {
    if (!existsSync(PNS_BIN)) {
      throw new Error(`no pns command at ${PNS_BIN}: run \`make\` at the repository root or set PNS_BIN`);
    }
    this.port = port;
    this.storeUrl = storeUrl;
    this.env = env;
    this.demo = demo;
    this.child = null;
    this.output = "";
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid() {
    return this.child?.pid;
  }

  async start() {
    this.port ||= await freePort();
    const env = {
      ...baseEnv(),
      PNS_HOST: "127.0.0.1",
      PNS_PORT: String(this.port),
      PNS_STORE_URL: this.storeUrl,
      PNS_ACK_TIMEOUT: "1",
      PNS_LOG_LEVEL: "WARNING",
      // Every test client connects from 127.0.0.1, many times a second: no
      // per-address rate limits here (a node ignores variables it does not know).
      PNS_HANDSHAKE_RATE: "0",
      PNS_EVENT_RATE: "0",
      ...this.env,
    };
    const args = ["serve", ...(this.demo ? ["--demo"] : [])];
    const child = spawn(PNS_BIN, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    children.add(child);
    child.once("exit", () => children.delete(child));
    const keep = (chunk) => {
      this.output = (this.output + chunk).slice(-20000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`pns serve exited (${child.exitCode}):\n${this.output}`);
        try {
          const response = await fetch(`${this.url}/healthz`);
          return response.ok;
        } catch {
          return false;
        }
      },
      { timeout: 20000, interval: 50, message: `pns serve on ${this.url}/healthz` },
    );
    return this;
  }

  /**
   * SIGTERM (the node tells its clients pns:disconnect and stops listening at
   * once), then SIGKILL if it has not exited after `grace` ms: a node with
   * WebSocket clients lingers until aiohttp's shutdown timeout (10 s) after
   * everything that matters is done, which would only slow the tests down.
   */
  async stop({ grace = 1500 } = {}) {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, "SIGTERM");
      if (!(await untilExit(child, grace))) {
        process.kill(child.pid, "SIGKILL");
        await untilExit(child, 5000);
      }
    }
  }

  async restart() {
    await this.stop();
    return this.start();
  }

  /** POST /api/v1/notifications (open in demo mode); returns {id, created_at}. */
  async notify(userId, data = { text: "hi" }) {
    const response = await fetch(`${this.url}/api/v1/notifications`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user_id: userId, data }),
    });
    const body = await response.json();
    if (response.status !== 201) throw new Error(`notify: ${response.status} ${JSON.stringify(body)}`);
    return body;
  }
}

/** An HS256 JWT for the test nodes' PNS_JWT_SECRET. */
export function signJwt(claims, secret = JWT_SECRET) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ iat: now, exp: now + 600, jti: randomUUID(), ...claims })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

export function redisServerPath() {
  const found = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  return found.status === 0 ? found.stdout.trim() : null;
}

/** A throw-away redis-server on a free port (no persistence). */
export class RedisServer {
  async start() {
    this.port = await freePort();
    this.child = spawn(redisServerPath(), ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    });
    children.add(this.child);
    await waitFor(() => ping(this.port), { timeout: 10000, message: "redis-server" });
    return this;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  async stop() {
    if (!this.child) return;
    const child = this.child;
    this.child = null;
    process.kill(child.pid, "SIGTERM");
    if (!(await untilExit(child, 5000))) process.kill(child.pid, "SIGKILL");
    children.delete(child);
  }
}

function ping(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.setTimeout(500);
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (data) => {
      socket.destroy();
      resolve(data.toString().startsWith("+PONG"));
    });
    socket.on("error", () => resolve(false));
    socket.on("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

const EMITTER = `
import asyncio, json, sys
import socketio

async def main(url):
    manager = socketio.AsyncRedisManager(url, write_only=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        msg = json.loads(line)
        await manager.emit(msg["event"], msg["data"], room=msg["room"], namespace="/")
        print("ok", flush=True)

asyncio.run(main(sys.argv[1]))
`;

/**
 * The application side: a Python process with python-socketio's write-only
 * Redis manager (how applications reach their users), fed one emit per line.
 */
export class AppEmitter {
  constructor(redisUrl) {
    const python = path.join(path.dirname(PNS_BIN), "python");
    this.child = spawn(python, ["-c", EMITTER, redisUrl], { stdio: ["pipe", "pipe", "pipe"] });
    children.add(this.child);
    this.errors = "";
    this.child.stderr.on("data", (chunk) => {
      this.errors += chunk;
    });
    this.waiting = [];
    let buffered = "";
    this.child.stdout.on("data", (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        buffered = buffered.slice(newline + 1);
        this.waiting.shift()?.resolve();
      }
    });
    this.child.once("exit", (code) => {
      for (const waiter of this.waiting.splice(0)) waiter.reject(new Error(`emitter exited (${code}): ${this.errors}`));
    });
  }

  /** Emit `event` with `data` to the room of `userId`; resolves once published. */
  emit(event, data, userId) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin.write(`${JSON.stringify({ event, data, room: `user:${userId}` })}\n`);
    });
  }

  async stop() {
    const child = this.child;
    child.stdin.end();
    if (!(await untilExit(child, 5000))) process.kill(child.pid, "SIGKILL");
    children.delete(child);
  }
}
