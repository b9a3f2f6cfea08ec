// A real taskstream server process for the node and browser tests (clients/js and
// dashboard share it): a free port, a temporary DATA_DIR as its working directory (so no
// .env is read), cheap hashing, no rate limits, no metrics listener, SQLite or a fresh
// PostgreSQL database, the mails it writes (DATA_DIR/mail, no SMTP), and clean-up even when
// a run ends abruptly. No dependencies.

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { TaskstreamApi } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The server binary: TASKSTREAM_BIN (relative to clients/js), or the debug build's. */
export const SERVER_BIN = resolve(here, '..', process.env.TASKSTREAM_BIN ?? join('..', '..', 'target', 'debug', 'taskstream'));

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
    const server = new this(backend, await freePort(), env);
    running.add(server);
    if (backend === 'postgres') {
      server.database = `taskstream_node_${process.pid}_${randomBytes(4).toString('hex')}`;
      psql(`CREATE DATABASE ${server.database}`);
    }
    await server.run();
    return server;
  }

  constructor(backend, port, env) {
    this.backend = backend;
    this.port = port;
    this.env = env;
    this.dataDir = mkdtempSync(join(tmpdir(), 'taskstream-node-'));
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
    const { user } = await api.signup(credentials);
    return Object.assign(api, { credentials, user });
  }

  /**
   * Signs a new user up and verifies the address as its owner would: the link of the
   * welcome mail, its token posted to `POST /auth/verify-email` (needed to accept a
   * project's invitation).
   */
  async signupVerified(name = 'Ada Lovelace', options = {}) {
    const api = await this.signup(name, options);
    const link = await this.mailLink('welcome', api.credentials.email);
    await api.verifyEmail(new URL(link).searchParams.get('token'));
    return api;
  }

  /**
   * The link of the newest mail of `kind` (`welcome`, `password_reset`, `invitation`, …)
   * sent to `email`, once the server has written it to DATA_DIR/mail (the delivery worker
   * sends within a second).
   */
  async mailLink(kind, email) {
    const folder = join(this.dataDir, 'mail');
    for (;;) {
      const names = existsSync(folder) ? readdirSync(folder).filter((n) => n.endsWith(`-${kind}.eml`)).sort().reverse() : [];
      for (const name of names) {
        const text = decodeQuotedPrintable(readFileSync(join(folder, name), 'utf8'));
        if (!text.includes(`<${email}>`)) continue;
        const link = text.match(/https?:\/\/\S+?\?token=[A-Za-z0-9_-]{43}/);
        if (link) return link[0];
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Mails are quoted-printable (long lines are split with `=` and `=` is `=3D`). */
function decodeQuotedPrintable(text) {
  return text
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(Number.parseInt(hex, 16)));
}

/** Names allow letters only: hex digits become letters. */
function letters(hex) {
  return [...hex].map((c) => String.fromCharCode(97 + Number.parseInt(c, 16))).join('');
}
