// The socket client against a real taskstream server, on SQLite and on PostgreSQL: crashes
// and restarts lose and repeat nothing, tokens are refreshed across their expiry, `reset`
// makes the app reload and then continues, a silent server is noticed, and the close
// codes that must not loop stop the client. Every frame either way is checked against
// protocol/schemas.

import assert from 'node:assert/strict';

import { TaskstreamSocket } from '../src/index.js';
import { caughtUp, collect, latestSeq, live, perBackend, quick, range, recordingWebSocket, settled, until } from '../support/harness.js';
import { checkFrames } from '../support/schema.js';

perBackend('a crash and a restart mid-stream: the app sees every seq once, in order', async ({ start, own }) => {
  const server = await start();
  const api = await server.signup();
  const { WebSocket, record } = recordingWebSocket();
  const socket = own(api.connect({ WebSocket, ...quick }));
  const events = collect(socket);
  const closes = [];
  socket.on('status', (status) => status.state === 'reconnecting' && closes.push(status.lastClose?.code));
  await live(socket);
  const first = socket.positions.user;

  const created = [];
  const write = async (count) => {
    for (let i = 0; i < count; i += 1) created.push((await api.createTask({ title: `task ${created.length + 1}` })).id);
  };
  // Each restart comes right after the writes' answers, while their events are on their way.
  await write(8);
  await server.restart({}, 'SIGKILL');
  await write(8);
  await server.restart({}, 'SIGTERM');
  await write(8);

  const last = await caughtUp(socket, api);
  assert.deepEqual(events.map((e) => e.seq), range(first + 1, last), 'every seq once, in order');
  assert.deepEqual(events.filter((e) => e.event === 'task.created').map((e) => e.data.id), created);
  assert.ok(closes.includes(1006), `a crash is a lost connection: ${closes}`);
  assert.ok(closes.includes(1012), `a graceful restart closes with 1012: ${closes}`);
  assert.ok(record.connections >= 3);
  socket.close();
  assert.deepEqual(checkFrames(record.frames), []);
});

perBackend('while the server is down, attempts back off exponentially with jitter, capped', async ({ start, own }) => {
  const server = await start();
  const api = await server.signup();
  const backoff = { initialMs: 10, maxMs: 80 };
  const socket = own(api.connect({ WebSocket: recordingWebSocket().WebSocket, backoff }));
  await live(socket);
  const waits = [];
  socket.on('status', (status) => {
    if (status.state === 'reconnecting' && status.retryAt !== null) waits.push({ attempt: status.attempt, wait: status.retryAt - Date.now() });
  });
  await server.kill();
  await until(socket, 'status', () => socket.status.attempt >= 8);
  // Attempt n waited a random time up to min(maxMs, initialMs * 2^(n-1)).
  assert.deepEqual(waits.map((w) => w.attempt), range(1, waits.length));
  for (const { attempt, wait } of waits) {
    assert.ok(wait <= Math.min(backoff.maxMs, backoff.initialMs * 2 ** (attempt - 1)), `attempt ${attempt} waits ${wait} ms`);
  }
  assert.ok(new Set(waits.map((w) => Math.round(w.wait))).size > 1, 'the waits are jittered');
  await server.run();
  await live(socket);
  assert.equal(socket.status.attempt, 0, 'a connection that is ready starts the count again');
});

perBackend('a replayed stretch of the stream reaches the app once', async ({ start, own }) => {
  const server = await start();
  const api = await server.signup();
  const { WebSocket, record } = recordingWebSocket();
  const socket = own(api.connect({ WebSocket, ...quick }));
  const events = collect(socket);
  await live(socket);
  const first = socket.positions.user;
  for (let i = 0; i < 3; i += 1) await api.createTask({ title: `task ${i}` });
  const middle = await caughtUp(socket, api);
  // The server answers a resume by replaying everything after it: already seen here.
  record.current.send(JSON.stringify({ type: 'resume', since: first }));
  await api.createTask({ title: 'after the replay' });
  const last = await caughtUp(socket, api);
  const replayed = record.frames.filter((f) => f.direction === 'server' && JSON.parse(f.text).seq === middle);
  assert.equal(replayed.length, 2, 'the server did send the stretch again');
  assert.deepEqual(events.map((e) => e.seq), range(first + 1, last));
  assert.deepEqual(checkFrames(record.frames), []);
});

perBackend('tokens are refreshed across their expiry without losing the stream', async ({ start, own }) => {
  // auth.expiring comes half-way through lifetimes under two minutes: every 2 s here.
  const server = await start({ env: { JWT_TTL: '4s' } });
  const tokens = [];
  const api = await server.signup('Ada', { onToken: (token) => tokens.push(token) });
  const { WebSocket, record } = recordingWebSocket();
  const socket = own(api.connect({ WebSocket, ...quick }));
  const events = collect(socket);
  const states = [];
  socket.on('status', (status) => states.push([status.state, status.lastClose?.code ?? null]));
  await live(socket);
  const first = socket.positions.user;
  const firstExpiry = socket.status.tokenExpiresAt;

  // Three refreshes take at least 6 s: the first token has expired by then.
  for (let refreshes = 1; refreshes <= 3; refreshes += 1) {
    await api.createTask({ title: `before refresh ${refreshes}` });
    await until(socket, 'status', () => tokens.length >= refreshes + 1 && socket.status.state === 'live');
  }
  await api.createTask({ title: 'after the refreshes' });
  const last = await caughtUp(socket, api);

  assert.ok(Date.now() > Date.parse(firstExpiry), 'the first token expired meanwhile');
  assert.ok(Date.parse(socket.status.tokenExpiresAt) > Date.parse(firstExpiry));
  assert.deepEqual(events.map((e) => e.seq), range(first + 1, last));
  assert.ok(!states.some(([state]) => state === 'offline'), `never offline: ${JSON.stringify(states)}`);
  assert.ok(!states.some(([, code]) => code === 4001), 'never closed for an expired token');
  // The server moved the socket to a new token: by auth.refresh, or (the refresh having
  // rotated the socket's token: 4003) by reconnecting with it.
  const client = record.frames.filter((f) => f.direction === 'client').map((f) => JSON.parse(f.text));
  const offered = new Set(client.filter((m) => m.type === 'auth' || m.type === 'auth.refresh').map((m) => m.token));
  for (const token of tokens.slice(1)) assert.ok(offered.has(token), 'each refreshed token reached the socket');
  socket.close();
  assert.deepEqual(checkFrames(record.frames), []);
});

perBackend('reset after retention: the app reloads through REST, then the stream continues', async ({ start, own }) => {
  const server = await start();
  const api = await server.signup();
  const { WebSocket, record } = recordingWebSocket();
  const log = [];
  let tasks = [];
  const reload = async (request) => {
    log.push(['reload', request]);
    if (request.reason === 'reset') {
      // A change made while the app reloads: its event waits for the reload to finish.
      const late = await api.createTask({ title: 'during the reload' });
      await record.waitFor((f) => f.direction === 'server' && f.text.includes(`"id":${late.id},`));
    }
    tasks = (await api.listTasks()).items;
    log.push(['reloaded', request.reason]);
  };
  let socket = own(api.connect({ WebSocket, reload, ...quick }));
  socket.on('*', (event) => log.push(['event', event.seq]));
  await settled(socket);
  assert.deepEqual(log.slice(0, 2).map(([kind, x]) => [kind, x.reason ?? x]), [['reload', 'initial'], ['reloaded', 'initial']]);
  await api.createTask({ title: 'seen live' });
  await caughtUp(socket, api);
  const kept = socket.positions;
  socket.close();

  // Away: more changes; then a restart that keeps only the last event prunes the rest at
  // start-up, so the kept position is past retention.
  for (let i = 0; i < 3; i += 1) await api.createTask({ title: `missed ${i}` });
  const last = await latestSeq(api);
  await server.restart({ EVENT_RETENTION: '0s', EVENT_RETENTION_MIN_EVENTS: '1' });
  await server.waitForLog(/old events pruned/);
  await assert.rejects(api.events(kept.user), (error) => error.code === 'EVENTS_EXPIRED' && error.status === 410 && error.lastSeq === last);

  log.length = 0;
  socket = own(api.connect({ WebSocket, reload, positions: kept, ...quick }));
  const events = collect(socket);
  socket.on('*', (event) => log.push(['event', event.seq]));
  await until(socket, 'status', () => log.some(([kind]) => kind === 'reloaded') && socket.status.reloading.length === 0);
  await api.createTask({ title: 'after the reset' });
  const end = await caughtUp(socket, api);

  assert.deepEqual(log[0], ['reload', { stream: 'user', lastSeq: last, reason: 'reset' }]);
  assert.equal(log[1][0], 'reloaded', 'no event before the reload is done');
  assert.deepEqual(events.map((e) => e.seq), range(last + 1, end), 'nothing at or before last_seq, nothing skipped after');
  assert.equal(tasks.length, 5, 'the reload saw every task made until then');
  socket.close();
  assert.deepEqual(checkFrames(record.frames), []);
});

perBackend('a server that goes quiet is pinged, given up on, and reconnected to', async ({ start, own }) => {
  const server = await start({ env: { WS_HEARTBEAT: '1s' } });
  const api = await server.signup();
  const { WebSocket, record } = recordingWebSocket();
  const socket = own(api.connect({ WebSocket, ...quick, connectTimeoutMs: 500 }));
  const events = collect(socket);
  await live(socket);
  try {
    server.signal('SIGSTOP');
    await until(socket, 'status', () => socket.status.state === 'reconnecting' && /no answer to a ping/.test(socket.status.lastClose?.reason));
  } finally {
    server.signal('SIGCONT');
  }
  await live(socket);
  const task = await api.createTask({ title: 'after the silence' });
  await caughtUp(socket, api);
  assert.ok(events.some((e) => e.event === 'task.created' && e.data.id === task.id));
  assert.ok(record.frames.some((f) => f.direction === 'client' && JSON.parse(f.text).type === 'ping'));
  socket.close();
  assert.deepEqual(checkFrames(record.frames), []);
});

perBackend('close codes that must not loop stop the client (4401, 4003, 4009, 4400)', async ({ start, own }) => {
  const server = await start({ env: { WS_MAX_CONNECTIONS_PER_USER: '1' } });
  const recorders = [];
  const open = (options) => {
    const { WebSocket, record } = recordingWebSocket();
    recorders.push(record);
    const socket = own(new TaskstreamSocket({ url: server.baseUrl, WebSocket, ...quick, ...options }).start());
    return { socket, record };
  };
  const offline = (socket) => until(socket, 'status', () => socket.status.state === 'offline');
  const stopped = ({ socket, record }, reason, code, error) => {
    assert.equal(socket.status.reason, reason);
    assert.equal(socket.status.lastClose.code, code);
    assert.equal(socket.status.lastClose.error, error);
    assert.equal(socket.status.retryAt, null, 'no retry scheduled');
    assert.equal(record.connections, 1, 'no second attempt');
  };

  // 4401: a token the server refuses is not tried again.
  const refused = open({ token: 'not-a-token' });
  await offline(refused.socket);
  stopped(refused, 'auth-failed', 4401, 'AUTH_FAILED');

  // 4003: the session ended and no other token is available.
  const ada = await server.signup('Ada');
  const revoked = open({ token: ada.token });
  await live(revoked.socket);
  await server.api({ token: ada.token }).logout();
  await offline(revoked.socket);
  stopped(revoked, 'revoked', 4003, 'TOKEN_REVOKED');

  // 4009: the user's sockets are at the limit (1 here).
  const bob = await server.signup('Bob');
  const first = open({ token: bob.token });
  await live(first.socket);
  const second = open({ token: bob.token });
  await offline(second.socket);
  stopped(second, 'too-many-connections', 4009, 'TOO_MANY_CONNECTIONS');
  // Once the first is closed, asking again works (the server may still count the first
  // for a moment: each refusal stops the client again, and the test asks once more).
  first.socket.close();
  while (second.socket.status.state !== 'live') {
    second.socket.reconnect();
    await until(second.socket, 'status', () => ['live', 'offline'].includes(second.socket.status.state));
  }
  second.socket.close();

  // 4400: a message the server cannot accept (over 64 KiB) is a client bug, not retried.
  const cy = await server.signup('Cy');
  const bad = open({ token: cy.token });
  await live(bad.socket);
  bad.socket.updateToken('x'.repeat(70_000));
  await offline(bad.socket);
  stopped(bad, 'bad-message', 4400, 'BAD_MESSAGE');

  for (const record of recorders) {
    // The oversized auth.refresh is valid by the schema; only its size is refused.
    assert.deepEqual(checkFrames(record.frames), []);
  }
});
