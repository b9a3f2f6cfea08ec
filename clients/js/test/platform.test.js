// The client on the platform's own WebSocket (the browsers' API, which node has globally
// from version 22 and behind --experimental-websocket in 20): no `WebSocket` option, no
// ws-only method such as terminate(). On node 20 this file runs itself again with the flag.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { TaskstreamSocket } from '../src/index.js';
import { caughtUp, collect, live, perBackend, quick, range, until } from '../support/harness.js';

if (typeof globalThis.WebSocket !== 'function') {
  test('the platform WebSocket (node 20: run again with --experimental-websocket)', { timeout: 120_000 }, () => {
    // Not as a child of this test run (which would report to it in its own format).
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const args = ['--experimental-websocket', '--no-warnings', '--test', '--test-reporter=tap', fileURLToPath(import.meta.url)];
    const run = spawnSync(process.execPath, args, { encoding: 'utf8', env });
    assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /# pass [1-9]/);
    assert.match(run.stdout, /# fail 0/);
  });
} else {
  perBackend('platform WebSocket: a crash, then a silent server: every seq once, in order', async ({ start, own }) => {
    const server = await start({ env: { WS_HEARTBEAT: '1s' } });
    const api = await server.signup();
    const socket = own(api.connect({ ...quick, connectTimeoutMs: 500 }));
    const events = collect(socket);
    await live(socket);
    const first = socket.positions.user;
    await api.createTask({ title: 'before the crash' });
    await server.restart();
    await api.createTask({ title: 'after the crash' });
    await caughtUp(socket, api);
    try {
      server.signal('SIGSTOP');
      await until(socket, 'status', () => socket.status.state === 'reconnecting' && /no answer to a ping/.test(socket.status.lastClose?.reason));
    } finally {
      server.signal('SIGCONT');
    }
    await api.createTask({ title: 'after the silence' });
    const last = await caughtUp(socket, api);
    assert.deepEqual(events.map((e) => e.seq), range(first + 1, last));
  });

  perBackend('platform WebSocket: a refused token stops the client', async ({ start, own }) => {
    const server = await start();
    const socket = own(new TaskstreamSocket({ url: server.baseUrl, token: 'not-a-token', ...quick }).start());
    await until(socket, 'status', () => socket.status.state === 'offline');
    assert.equal(socket.status.reason, 'auth-failed');
    assert.equal(socket.status.lastClose.code, 4401);
    assert.equal(socket.status.retryAt, null);
  });
}
