// The tests' kit: real taskstream server processes (SQLite or a fresh PostgreSQL database),
// signed-up users, a WebSocket that records every frame for the schema checks, and
// waiting for conditions (never for fixed times).

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import WebSocket from 'ws';

import { TaskstreamApi } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
export const SERVER_BIN = resolve(here, '..', process.env.TASKSTREAM_BIN ?? join('..', '..', 'target', 'debug', 'taskstream'));

/** The backends every behaviour test runs on. */
export const BACKENDS = ['sqlite', 'postgres'];

/** The PostgreSQL server the tests create their databases on (as the Rust tests do). */
const POSTGRES = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

function psql(sql) {
  execFileSync('psql', [POSTGRES, '-qc', sql], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Servers not stopped yet: a test run that ends abruptly still takes them down. */
const running = new Set();
process.on('exit', () => {
  for (const server of running) {
    server.process?.kill('SIGKILL');
    rmSync(server.dataDir, { recursive: true, force: true });
    if (server.database) {
      try {
        psql(`DROP DATABASE IF EXISTS ${server.database} WITH (FORCE)`);
      } catch {
        // Best effort on the way out.
      }
    }
  }
});

/**
 * A taskstream server process on a free port with a temporary DATA_DIR (also its working
 * directory, so no .env is read), cheap password hashing and no rate limits. `restart()`
 * brings it back on the same port, data and secret, with optional extra settings.
 */
export class Server {
  /** @param {{ backend?: string, env?: Record<string, string> }} [options] */
  static async start({ backend = 'sqlite', env = {} } = {}) {
    if (!existsSync(SERVER_BIN)) throw new Error(`no server binary at ${SERVER_BIN}: build it (cargo build --bin taskstream) or set TASKSTREAM_BIN`);
    const server = new Server(backend, await freePort(), env);
    running.add(server);
    if (backend === 'postgres') {
      server.database = `taskstream_js_${process.pid}_${randomBytes(4).toString('hex')}`;
      psql(`CREATE DATABASE ${server.database}`);
    }
    await server.run();
    return server;
  }

  constructor(backend, port, env) {
    this.backend = backend;
    this.port = port;
    this.env = env;
    this.dataDir = mkdtempSync(join(tmpdir(), 'taskstream-js-'));
    this.secret = randomBytes(32).toString('hex');
    this.baseUrl = `http://127.0.0.1:${port}`;
    this.database = null;
    this.process = null;
    this.log = '';
    this._logWaiters = [];
  }

  /** Starts the process and waits until it answers. */
  async run(extraEnv = {}) {
    const env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      BIND: `127.0.0.1:${this.port}`,
      DATA_DIR: this.dataDir,
      JWT_SECRET: this.secret,
      METRICS_BIND: 'off',
      RATE_LIMITS: 'off',
      ARGON2_MEMORY_KIB: '256',
      ARGON2_ITERATIONS: '1',
      LOG_FORMAT: 'json',
      // A restart must not wait for the sockets of the previous process to drain.
      SHUTDOWN_SPREAD: '0s',
      ...(this.database ? { DATABASE_URL: POSTGRES.replace(/\/[^/]*$/, `/${this.database}`) } : {}),
      ...this.env,
      ...extraEnv,
    };
    this.log = '';
    const child = spawn(SERVER_BIN, [], { cwd: this.dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.process = child;
    const exited = new Promise((resolveExit) => child.once('exit', (code, signal) => resolveExit({ code, signal })));
    this._exited = exited;
    const collect = (chunk) => {
      this.log += chunk.toString();
      this._logWaiters = this._logWaiters.filter(({ pattern, resolveLine }) => {
        const line = this.log.split('\n').find((l) => pattern.test(l));
        if (line) resolveLine(line);
        return !line;
      });
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const early = exited.then(({ code, signal }) => {
      throw new Error(`taskstream exited at start-up (${code ?? signal}):\n${this.log}`);
    });
    await Promise.race([early, this._answering()]);
    early.catch(() => {});
  }

  async _answering() {
    for (;;) {
      try {
        const response = await fetch(`${this.baseUrl}/health/live`);
        if (response.ok) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Resolves with the first log line (JSON) matching `pattern`, now or later. */
  waitForLog(pattern) {
    const line = this.log.split('\n').find((l) => pattern.test(l));
    if (line) return Promise.resolve(line);
    return new Promise((resolveLine) => this._logWaiters.push({ pattern, resolveLine }));
  }

  /** Kills the process without letting it shut down (SIGKILL: a crash). */
  async kill(signal = 'SIGKILL') {
    if (!this.process) return;
    this.process.kill(signal);
    await this._exited;
    this.process = null;
  }

  /** Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the process: it holds its sockets but says nothing. */
  signal(name) {
    this.process?.kill(name);
  }

  /** Stops the process (SIGKILL: a crash; SIGTERM: a graceful shutdown) and starts it again. */
  async restart(extraEnv = {}, signal = 'SIGKILL') {
    await this.kill(signal);
    await this.run(extraEnv);
  }

  /** Stops the process and removes its data (and database). */
  async stop() {
    running.delete(this);
    this.signal('SIGCONT');
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
    if (this.database) {
      psql(`DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`);
      this.database = null;
    }
  }

  /** A TaskstreamApi on this server (signed out). */
  api(options = {}) {
    return new TaskstreamApi({ baseUrl: this.baseUrl, ...options });
  }

  /** Signs a new user up; returns the API object holding its token. */
  async signup(name = 'Ada Lovelace', options = {}) {
    const api = this.api(options);
    const tag = randomBytes(4).toString('hex');
    const credentials = { name: `${name} ${letters(tag)}`, email: `user-${tag}@example.com`, password: 'Correct-Horse-9!' };
    await api.signup(credentials);
    return Object.assign(api, { credentials });
  }
}

/** Names allow letters only: hex digits become letters. */
function letters(hex) {
  return [...hex].map((c) => String.fromCharCode(97 + Number.parseInt(c, 16))).join('');
}

/**
 * A WebSocket class (ws's, as node 20 has none) that records every frame both ways in
 * `frames` and counts the connections made, for the schema checks and the no-loop checks.
 */
export function recordingWebSocket() {
  const waiters = new Set();
  const record = {
    frames: [],
    connections: 0,
    /** The latest WebSocket made, to send what the client never would. */
    current: null,
    /** Resolves with the first frame (recorded so far or later) for which `predicate` holds. */
    waitFor(predicate) {
      const frame = record.frames.find(predicate);
      if (frame) return Promise.resolve(frame);
      return new Promise((resolveFrame) => waiters.add({ predicate, resolveFrame }));
    },
  };
  const add = (frame) => {
    record.frames.push(frame);
    for (const waiter of waiters) {
      if (waiter.predicate(frame)) {
        waiters.delete(waiter);
        waiter.resolveFrame(frame);
      }
    }
  };
  class RecordingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      record.connections += 1;
      record.current = this;
      this.addEventListener('message', (message) => add({ direction: 'server', text: String(message.data) }));
    }

    send(data, ...rest) {
      add({ direction: 'client', text: String(data) });
      return super.send(data, ...rest);
    }
  }
  return { WebSocket: RecordingWebSocket, record };
}

/**
 * Resolves once `predicate()` holds, checked after each `name` event `emitter` emits (and
 * at once). The test runner's timeout bounds the wait.
 * @param {import('../src/index.js').TaskstreamSocket} socket
 * @param {string} name
 * @param {() => boolean} predicate
 */
export function until(socket, name, predicate) {
  return new Promise((resolveWait) => {
    if (predicate()) return resolveWait();
    const off = socket.on(name, () => {
      if (predicate()) {
        off();
        resolveWait();
      }
    });
  });
}

/** Collects every event a socket delivers, and checks each stream's seqs on the way. */
export function collect(socket) {
  const events = [];
  socket.on('*', (event) => events.push(event));
  return events;
}

/** Runs `scenario` once per backend, the backends side by side. */
export function perBackend(name, scenario, options = {}) {
  test(name, { concurrency: true, timeout: 60_000, ...options }, async (t) => {
    await Promise.all(
      BACKENDS.map((backend) =>
        t.test(backend, async (t) => {
          const servers = [];
          const sockets = [];
          const start = async (opts = {}) => {
            const server = await Server.start({ backend, ...opts });
            servers.push(server);
            return server;
          };
          /** Closes the socket when the test ends, whatever happens. */
          const own = (socket) => {
            sockets.push(socket);
            return socket;
          };
          try {
            await scenario({ start, own, t });
          } finally {
            for (const socket of sockets) socket.close();
            await Promise.all(servers.map((server) => server.stop()));
          }
        }),
      ),
    );
  });
}

export const range = (from, to) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
export const live = (socket) => until(socket, 'status', () => socket.status.state === 'live');
export const settled = (socket) => until(socket, 'status', () => socket.status.state === 'live' && socket.status.reloading.length === 0);
/** The user's latest seq, from the polling endpoint (which answers it even past retention). */
export async function latestSeq(api) {
  try {
    return (await api.events(0, 1)).last_seq;
  } catch (error) {
    if (error.code === 'EVENTS_EXPIRED') return error.lastSeq;
    throw error;
  }
}
/** Resolves once the socket has given the app everything up to the user's latest seq. */
export async function caughtUp(socket, api) {
  const last = await latestSeq(api);
  await until(socket, 'status', () => socket.status.positions.user === last);
  return last;
}
/** Fast retries for tests: the real defaults wait up to 30 s. */
export const quick = { backoff: { initialMs: 20, maxMs: 200 }, restartDelayMs: 50, connectTimeoutMs: 2000 };
