// The REST helper against a real server, on SQLite and on PostgreSQL: every call it offers,
// the error envelope as ApiError, the single-flight refresh, and each change arriving on the
// socket as its event.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';

import { ApiError, TaskstreamApi } from '../src/index.js';
import { BACKENDS, Server, until } from '../support/harness.js';
import { protocolSchemas, validate } from '../support/schema.js';

// A 1x1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

/** Resolves with the error `promise` rejects with (fails if it resolves). */
async function failure(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected an ApiError');
}

for (const backend of BACKENDS) {
  test(`REST helper (${backend})`, { timeout: 60_000 }, async (t) => {
    const server = await Server.start({ backend });
    t.after(() => server.stop());

    await t.test('accounts: sign-up, sign-in, me, sessions, a single-flight refresh, logout', async () => {
      const tokens = [];
      const api = await server.signup('Ada', { onToken: (token) => tokens.push(token) });
      assert.equal(tokens.length, 1);
      const me = await api.me();
      assert.equal(me.email, api.credentials.email);

      const other = server.api();
      const signedIn = await other.signin({ email: api.credentials.email, password: api.credentials.password });
      assert.equal(signedIn.user.id, me.id);
      assert.equal(signedIn.token_type, 'Bearer');
      assert.equal((await other.sessions()).length, 2);

      // Two refreshes at once share one request: presenting the same token twice would be
      // taken for theft and end the session.
      const [a, b] = await Promise.all([api.refresh(), api.refresh()]);
      assert.equal(a.token, b.token);
      assert.equal(api.token, a.token);
      assert.deepEqual(tokens, [tokens[0], a.token]);
      assert.equal((await api.me()).id, me.id, 'the session survived');
      const stale = await failure(server.api({ token: tokens[0] }).me());
      assert.equal(stale.status, 401);

      const mine = (await other.sessions()).find((s) => !s.current);
      await other.endSession(mine.id);
      assert.equal((await failure(api.me())).code, 'INVALID_TOKEN');

      await other.logout();
      assert.equal(other.token, null);
      assert.equal((await failure(server.api({ token: signedIn.token }).me())).status, 401);
    });

    await t.test('tasks: create, list, get, update, replace, complete, delete, restore, purge; each arrives as its event', async () => {
      const api = await server.signup('Bea');
      const socket = api.connect({ WebSocket });
      t.after(() => socket.close());
      const seen = [];
      socket.on('task.*', (event) => seen.push(event.event));
      await until(socket, 'status', () => socket.status.state === 'live');

      const task = await api.createTask({ title: 'Write the client', priority: 'HIGH' });
      assert.equal(task.title, 'Write the client');
      assert.equal((await api.getTask(task.id)).priority, 'HIGH');
      const page = await api.listTasks({ limit: 10 });
      assert.equal(page.total, 1);
      assert.deepEqual(page.items.map((x) => x.id), [task.id]);

      assert.equal((await api.updateTask(task.id, { description: 'with tests' })).description, 'with tests');
      assert.equal((await api.replaceTask(task.id, { title: 'Write the JS client' })).description, null);
      assert.equal((await api.completeTask(task.id, true)).completed, true);
      assert.equal((await api.completeTask(task.id)).completed, false, 'no argument toggles');
      await api.deleteTask(task.id);
      assert.equal((await api.listTasks({ status: 'deleted' })).items[0].is_deleted, true);
      assert.equal((await api.restoreTask(task.id)).is_deleted, false);
      const notDeleted = await failure(api.restoreTask(task.id));
      assert.equal(notDeleted.status, 400);
      await api.deleteTask(task.id, { permanent: true });
      const gone = await failure(api.getTask(task.id));
      assert.ok(gone instanceof ApiError);
      assert.equal(gone.code, 'RESOURCE_NOT_FOUND');
      assert.equal(gone.status, 404);
      assert.ok(gone.requestId, 'the request id the server logged');

      const expected = ['task.created', 'task.updated', 'task.updated', 'task.completed', 'task.pending', 'task.deleted', 'task.restored', 'task.purged'];
      await until(socket, 'status', () => seen.length === expected.length);
      assert.deepEqual(seen, expected);
    });

    await t.test('notifications: list with counts, mark read, mark all read, delete', async () => {
      const api = await server.signup('Cy');
      const socket = api.connect({ WebSocket });
      t.after(() => socket.close());
      const seen = [];
      socket.on('notification.*', (event) => seen.push(event.event));
      socket.on('notifications.*', (event) => seen.push(event.event));
      await until(socket, 'status', () => socket.status.state === 'live');

      for (const title of ['one', 'two', 'three']) await api.createTask({ title });
      const list = await api.listNotifications({ sort: 'asc' });
      assert.equal(list.total, list.items.length);
      assert.equal(list.unread, list.items.length);
      const [first, second, third] = list.items.slice(-3);
      assert.equal((await api.markNotificationRead(first.id)).is_read, true);
      assert.equal(await api.unreadCount(), list.unread - 1);
      assert.equal((await api.getNotification(first.id)).is_read, true);
      await api.deleteNotification(second.id);
      assert.equal((await api.deleteNotifications([third.id])).count, 1);
      const all = await api.markAllNotificationsRead();
      assert.equal(all.count, list.unread - 3);
      assert.equal(await api.unreadCount(), 0);

      await until(socket, 'status', () => seen.includes('notifications.read_all'));
      assert.deepEqual(seen.slice(-4), ['notification.updated', 'notification.deleted', 'notification.deleted', 'notifications.read_all']);
    });

    await t.test('profile: read, update, photo upload and removal; the event log for pollers', async () => {
      const api = await server.signup('Dee');
      const profile = await api.getProfile();
      const updated = await api.updateProfile({ city: 'Lyon', bio: null });
      assert.deepEqual(updated.updated_fields.sort(), ['bio', 'city']);
      assert.equal(updated.profile.city, 'Lyon');
      assert.equal(updated.profile.id, profile.id);
      const photo = await api.uploadPhoto(new Blob([PNG], { type: 'image/png' }), 'dot.png');
      assert.match(photo.photo_url, /^http:\/\/127\.0\.0\.1:\d+\/media\//);
      assert.equal((await api.getProfile()).profile_photo_url, photo.photo_url);
      await api.deletePhoto();
      assert.equal((await api.getProfile()).profile_photo_url, null);

      const { events, last_seq: last } = await api.events(0);
      assert.equal(events.at(-1).seq, last);
      const { server: schemas } = protocolSchemas();
      for (const event of events) assert.deepEqual(validate(schemas.event, event), [], JSON.stringify(event));
      assert.ok(events.some((e) => e.event === 'profile.updated'));
    });

    await t.test('errors carry the envelope: validation details, authentication, conflicts, no answer', async () => {
      const api = await server.signup('Eve');
      const invalid = await failure(api.createTask({ title: '' }));
      assert.equal(invalid.status, 422);
      assert.equal(invalid.code, 'VALIDATION_ERROR');
      assert.ok(invalid.details.some((d) => d.field === 'title'), JSON.stringify(invalid.details));

      const anonymous = await failure(server.api().listTasks());
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.code, 'AUTH_REQUIRED');

      const taken = await failure(server.api().signup({ ...api.credentials, name: 'Someone Else' }));
      assert.equal(taken.status, 409);
      assert.equal(taken.code, 'CONFLICT');

      const wrong = await failure(server.api().signin({ email: api.credentials.email, password: 'Wrong-Password-1!' }));
      assert.equal(wrong.code, 'INVALID_CREDENTIALS');

      const nowhere = await failure(new TaskstreamApi({ baseUrl: 'http://127.0.0.1:9' }).me());
      assert.equal(nowhere.status, 0);
      assert.equal(nowhere.code, 'NETWORK_ERROR');
    });
  });
}
