// The tests' kit: real taskstream server processes (SQLite or a fresh PostgreSQL database),
// signed-up users, a WebSocket that records every frame for the schema checks, and
// waiting for conditions (never for fixed times).

import { test } from 'node:test';
import WebSocket from 'ws';

import { Server } from './server.js';

export { SERVER_BIN, Server } from './server.js';

/** The backends every behaviour test runs on. */
export const BACKENDS = ['sqlite', 'postgres'];

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
