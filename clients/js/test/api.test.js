// The REST helper against a real server, on SQLite and on PostgreSQL: every call it offers,
// the error envelope as ApiError, the single-flight refresh, each change arriving on the
// socket as its event, and the project typedefs against the server's OpenAPI.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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

    await t.test('projects: create, list, update, invitations to a verified address, members and roles, leave, delete', async () => {
      const olga = await server.signup('Olga');
      const bob = await server.signup('Bob');
      const project = await olga.createProject({ name: 'Launch', description: 'the spring launch' });
      assert.equal(project.role, 'owner');
      assert.equal(project.last_seq, 1, 'her own member.added');
      assert.deepEqual((await olga.listProjects()).map((p) => p.id), [project.id]);
      assert.equal((await olga.updateProject(project.id, { name: 'Launch 2' })).name, 'Launch 2');
      assert.equal((await olga.getProject(project.id)).last_seq, 2);

      const invitation = await olga.invite(project.id, { email: bob.credentials.email, role: 'viewer' });
      assert.equal(invitation.project_name, 'Launch 2');
      assert.deepEqual((await olga.listProjectInvitations(project.id)).map((i) => i.id), [invitation.id]);
      assert.deepEqual((await bob.listInvitations()).map((i) => i.id), [invitation.id]);
      // Accepting takes a verified address: the welcome mail's link, as its owner would.
      const unverified = await failure(bob.acceptInvitation(invitation.id));
      assert.equal(unverified.status, 403);
      const link = await server.mailLink('welcome', bob.credentials.email);
      assert.equal((await bob.verifyEmail(new URL(link).searchParams.get('token'))).profile.is_email_verified, true);
      const joined = await bob.acceptInvitation(invitation.id);
      assert.equal(joined.role, 'viewer');
      const members = await olga.listMembers(project.id);
      assert.deepEqual(members.map((m) => [m.user_id, m.role]), [[olga.user.id, 'owner'], [bob.user.id, 'viewer']]);

      // A viewer reads, an editor writes.
      assert.equal((await failure(bob.createTask({ title: 'no', project_id: project.id }))).status, 403);
      assert.equal((await olga.setMemberRole(project.id, bob.user.id, 'editor')).role, 'editor');
      const task = await bob.createTask({ title: 'Press release', project_id: project.id, assignee_id: olga.user.id });
      assert.equal(task.project_id, project.id);
      assert.deepEqual((await olga.listTasks({ project_id: project.id, assignee_id: olga.user.id })).items.map((x) => x.id), [task.id]);
      assert.equal((await olga.listTasks()).total, 0, 'personal tasks only, without project_id');
      // The project's event log, for members who poll.
      const { events, last_seq: last } = await bob.events(joined.last_seq, 100, `project:${project.id}`);
      assert.equal(last, (await bob.getProject(project.id)).last_seq);
      assert.deepEqual(events.map((e) => e.event), ['member.updated', 'task.created']);
      const { server: schemas } = protocolSchemas();
      for (const event of events) assert.deepEqual(validate(schemas.event, event), [], JSON.stringify(event));
      const tooEarly = await failure(bob.events(0, 100, `project:${project.id}`));
      assert.equal(tooEarly.code, 'EVENTS_EXPIRED');

      // Invitations revoked and declined; leaving; removing; deleting.
      const cy = await server.signup('Cy');
      const revoked = await olga.invite(project.id, { email: cy.credentials.email });
      await olga.revokeInvitation(project.id, revoked.id);
      assert.deepEqual(await cy.listInvitations(), []);
      const declined = await olga.invite(project.id, { email: cy.credentials.email });
      await cy.declineInvitation(declined.id);
      assert.deepEqual(await olga.listProjectInvitations(project.id), []);
      await bob.leaveProject(project.id);
      assert.deepEqual(await bob.listProjects(), []);
      assert.equal((await failure(olga.leaveProject(project.id))).status >= 400, true, 'the last owner cannot leave');
      await olga.deleteProject(project.id);
      assert.equal((await failure(olga.getProject(project.id))).status, 404);
      // removeMember
      const other = await olga.createProject({ name: 'Other' });
      const dee = await server.signupVerified('Dee');
      await dee.acceptInvitation((await olga.invite(other.id, { email: dee.credentials.email })).id);
      await olga.removeMember(other.id, dee.user.id);
      assert.deepEqual((await olga.listMembers(other.id)).map((m) => m.user_id), [olga.user.id]);
    });

    await t.test('the project typedefs of src/api.js have the fields of the OpenAPI schemas', async () => {
      const spec = await (await fetch(`${server.baseUrl}/api/v1/openapi.json`)).json();
      const source = readFileSync(new URL('../src/api.js', import.meta.url), 'utf8');
      const typedefFields = (name) => {
        const line = source.split('\n').find((l) => l.includes('@typedef {{') && l.trimEnd().endsWith(`}} ${name} */`));
        assert.ok(line, `no one-line typedef ${name}`);
        return line.slice(line.indexOf('{{') + 2, line.lastIndexOf('}}')).split(',').map((f) => f.trim().split(':')[0].replace(/\?$/, '')).sort();
      };
      for (const [typedef, schema] of [['ProjectWithRole', 'Project'], ['ProjectMember', 'Member'], ['Invitation', 'Invitation']]) {
        assert.deepEqual(typedefFields(typedef), Object.keys(spec.components.schemas[schema].properties).sort(), typedef);
      }
      // And a project as REST returns it is the events' project plus the caller's role and position.
      const { server: schemas } = protocolSchemas();
      const eventProject = Object.keys(schemas.event.$defs.project.properties);
      assert.deepEqual(typedefFields('ProjectWithRole'), [...eventProject, 'role', 'last_seq'].sort());
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
